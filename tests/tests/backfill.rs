//! `sluice backfill`: history (a file) run through the pipeline's module
//! into its Iceberg table, beside the live pipeline on a topic of the
//! real broker; the table read back with pyiceberg. Whatever the order of
//! the two, the table holds each window once, and every window the
//! backfill wrote is whole: the same count as a brute-force count over
//! every event.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::{BROKERS, Topics};
use sluice_tests::{e2e, windows_of};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;
/// Sliding windows of 5 minutes every minute.
const SIZE: i64 = 5 * MINUTE;
const SLIDE: i64 = MINUTE;
/// Past every window's end (the events end at minute 100), in minutes.
const LAST: i64 = 1_000;

/// `(key, window_start, window_end)` → events in the window.
type Windows = BTreeMap<(String, i64, i64), i64>;

/// 100 minutes of events in time order, one every 2 s, among 5 users:
/// `(user, ms)`.
fn events() -> Vec<(String, i64)> {
    (0..3_000i64).map(|i| (format!("u{}", (i * 7 + i / 3) % 5), T0 + i * 2_000)).collect()
}

fn line((user, ms): &(String, i64)) -> String {
    format!(r#"{{"user": "{user}", "ts": {ms}}}"#)
}

/// Every window holding an event, counted by brute force.
fn reference(events: &[(String, i64)]) -> Windows {
    let mut windows = Windows::new();
    for (user, t) in events {
        for (start, end) in windows_of(*t, SIZE, SLIDE) {
            *windows.entry((user.clone(), start, end)).or_default() += 1;
        }
    }
    windows
}

/// The history file (events of the first hour), the live topic (events
/// from minute 40 on: the two overlap), and the pipeline's manifest,
/// which reads the topic into an Iceberg table.
struct Setup {
    _dir: tempfile::TempDir,
    manifest: PathBuf,
    history: PathBuf,
    warehouse: PathBuf,
    table: String,
    events: Vec<(String, i64)>,
    topic: String,
}

/// How the topic is filled.
enum Topic {
    /// The events from minute 40 on, stamped when produced.
    Live,
    /// Every event, stamped with its event time (as a producer that sets
    /// `CreateTime` from the event does), one record a batch.
    EventTimed,
}

/// Produce `events` to `topic`, each record's timestamp its event time.
fn produce_event_timed(events: &[(String, i64)], topic: &str) -> anyhow::Result<()> {
    use rdkafka::producer::{BaseRecord, Producer};
    // The development broker serves a fetch inside a batch from the next
    // batch: one record a batch, so that an offset for a time is exact.
    let producer = sluice_examples::kafka::producer(BROKERS, &[("batch.num.messages", "1"), ("linger.ms", "0")])?;
    for event in events {
        let payload = line(event);
        let mut record = BaseRecord::to(topic).key(event.0.as_str()).payload(payload.as_str()).timestamp(event.1);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    producer.poll(std::time::Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(std::time::Duration::from_secs(60))?;
    Ok(())
}

impl Setup {
    fn new(what: &str) -> anyhow::Result<Setup> {
        Setup::with_topic(what, Topic::Live)
    }

    fn with_topic(what: &str, topic: Topic) -> anyhow::Result<Setup> {
        let dir = tempfile::tempdir()?;
        let events = events();
        let history = dir.path().join("history.jsonl");
        let lines: Vec<String> = events.iter().filter(|(_, t)| *t < T0 + 60 * MINUTE).map(line).collect();
        std::fs::write(&history, lines.join("\n") + "\n")?;
        let topics = Topics::create(what, 1)?;
        match topic {
            Topic::Live => {
                let live: Vec<String> = events.iter().filter(|(_, t)| *t >= T0 + 40 * MINUTE).map(line).collect();
                common::produce_lines(&live, &topics.input)?;
            }
            Topic::EventTimed => produce_event_timed(&events, &topics.input)?,
        }
        let warehouse = dir.path().join("warehouse");
        let module = e2e::root().join("target/modules/misbehave.wasm");
        let file = |name: &str| dir.path().join(name).display().to_string();
        let manifest = dir.path().join("clicks.yaml");
        std::fs::write(
            &manifest,
            format!(
                "name: clicks\n\
                 source: {{type: kafka, brokers: '{BROKERS}', topics: ['{topic}'], group: '{group}', start: earliest, \
                   stop_at_end: true, step: 500}}\n\
                 events: {{key: user, timestamp: {{field: ts, format: millis}}}}\n\
                 time: {{out_of_orderness: 10s}}\n\
                 window: {{type: sliding, size: 5m, slide: 1m}}\n\
                 transform: {{module: '{module}'}}\n\
                 outputs:\n  \
                   features: [{{type: iceberg, warehouse: '{warehouse}', namespace: offline, table: clicks}}]\n  \
                   dead_letters: [{{type: file, path: '{dead}'}}]\n  \
                   late_events: [{{type: file, path: '{late}'}}]\n",
                topic = topics.input,
                group = topics.id,
                module = module.display(),
                warehouse = warehouse.display(),
                dead = file("dead.jsonl"),
                late = file("late.jsonl"),
            ),
        )?;
        Ok(Setup {
            _dir: dir,
            manifest,
            history,
            warehouse,
            table: "offline.clicks".into(),
            events,
            topic: topics.input,
        })
    }

    /// The live pipeline, to the topic's end.
    fn live(&self) -> anyhow::Result<()> {
        let run = Command::new(e2e::sluice()).arg("run").arg(&self.manifest).output()?;
        anyhow::ensure!(run.status.success(), "sluice run: {}", String::from_utf8_lossy(&run.stderr));
        Ok(())
    }

    /// `sluice backfill` of the history file, windows ending from minute
    /// `from` to minute `to`.
    fn backfill(&self, from: i64, to: i64) -> anyhow::Result<Output> {
        self.backfill_with(from, to, &["--set", &format!("source={{type: file, path: '{}'}}", self.history.display())])
    }

    /// `sluice backfill` of windows ending from minute `from` to minute
    /// `to`, with `args`.
    fn backfill_with(&self, from: i64, to: i64, args: &[&str]) -> anyhow::Result<Output> {
        let at = |minute: i64| rfc3339(T0 + minute * MINUTE);
        Ok(Command::new(e2e::sluice())
            .arg("backfill")
            .arg(&self.manifest)
            .args(args)
            .args(["--from", &at(from), "--to", &at(to)])
            .output()?)
    }

    /// The table's windows as pyiceberg reads them; each must be there
    /// once.
    fn table(&self) -> anyhow::Result<Windows> {
        let mut windows = Windows::new();
        for row in e2e::iceberg_rows(&self.warehouse, &self.table)? {
            let key = (
                row["key"].as_str().unwrap_or_default().to_string(),
                row["window_start"].as_i64().unwrap_or_default(),
                row["window_end"].as_i64().unwrap_or_default(),
            );
            let count = row["count"].as_i64().unwrap_or_default();
            if let Some(before) = windows.insert(key.clone(), count) {
                anyhow::bail!("the window {key:?} is in the table twice (counts {before} and {count})");
            }
        }
        Ok(windows)
    }
}

fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.unsigned_abs());
    humantime::format_rfc3339_millis(t).to_string()
}

fn succeeded(what: &str, run: &Output) -> anyhow::Result<()> {
    anyhow::ensure!(run.status.success(), "{what}: {}", String::from_utf8_lossy(&run.stderr));
    Ok(())
}

/// The reference's windows ending in `[from, to)` (minutes after T0).
fn ending_in(all: &Windows, from: i64, to: i64) -> Windows {
    let range = T0 + from * MINUTE..T0 + to * MINUTE;
    all.iter().filter(|((_, _, end), _)| range.contains(end)).map(|(k, v)| (k.clone(), *v)).collect()
}

/// History backfilled up to minute 50, then the live pipeline over the
/// topic (which holds events from minute 40): the live run leaves out the
/// windows the backfill wrote (ending before minute 50, the partial ones
/// among them), and its own from minute 50 on are whole (they start at 45
/// or later). A backfill overlapping the first is refused; one of the
/// minutes before it is added.
#[test]
fn a_backfill_then_the_live_pipeline_write_each_window_once() -> anyhow::Result<()> {
    let setup = Setup::new("backfill-first")?;
    let all = reference(&setup.events);

    let first = setup.backfill(10, 50)?;
    succeeded("backfill 10..50", &first)?;
    assert_eq!(setup.table()?, ending_in(&all, 10, 50), "the backfill writes the windows ending in its range");
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        said.contains(
            "backfilled windows ending from 2026-01-01T00:10:00Z up to (not including) 2026-01-01T00:50:00Z\n"
        ),
        "{said}"
    );

    setup.live()?;
    let table = setup.table()?;
    assert_eq!(table, ending_in(&all, 10, LAST), "each window once, and whole");

    let overlapping = setup.backfill(30, 70)?;
    assert!(!overlapping.status.success(), "a backfill over windows another one wrote is refused");
    let said = String::from_utf8_lossy(&overlapping.stderr);
    assert!(said.contains("an earlier backfill covers windows ending from 2026-01-01T00:10:00"), "{said}");
    assert_eq!(setup.table()?, table, "a refused backfill writes nothing");

    succeeded("backfill 0..10", &setup.backfill(0, 10)?)?;
    assert_eq!(setup.table()?, ending_in(&all, 0, LAST), "the minutes before, added");
    Ok(())
}

/// The live pipeline first: its first windows are partial (the topic
/// starts at minute 40). A backfill asked for minutes 10 to 90 stops at
/// the first window end the live pipeline wrote: the table gains the
/// windows before it, whole, and keeps the live rows as they were.
#[test]
fn a_backfill_after_the_live_pipeline_stops_where_its_rows_begin() -> anyhow::Result<()> {
    let setup = Setup::new("live-first")?;
    let all = reference(&setup.events);

    setup.live()?;
    let live = setup.table()?;
    let live_start = live.keys().map(|(_, _, end)| *end).min().ok_or_else(|| anyhow::anyhow!("no live rows"))?;
    // The topic's first event is at minute 40: the live pipeline's first
    // window holding it ends at minute 41, and holds nothing from before.
    assert_eq!(live_start, T0 + 41 * MINUTE);
    assert_ne!(ending_in(&live, 41, 45), ending_in(&all, 41, 45), "the live run's first windows are partial");

    let backfill = setup.backfill(10, 90)?;
    succeeded("backfill 10..90", &backfill)?;
    let said = String::from_utf8_lossy(&backfill.stderr);
    assert!(said.contains("the backfill stops where the live pipeline's rows begin"), "{said}");
    let said = String::from_utf8_lossy(&backfill.stdout);
    assert!(
        said.contains(
            "backfilled windows ending from 2026-01-01T00:10:00Z up to (not including) 2026-01-01T00:41:00Z: cut where \
             the live pipeline's rows begin (asked up to 2026-01-01T01:30:00Z)"
        ),
        "{said}"
    );

    let mut expected = live;
    expected.extend(ending_in(&all, 10, 41));
    assert_eq!(setup.table()?, expected, "the windows before the live rows, whole; the live rows unchanged");
    Ok(())
}

/// The offset the broker gives for `time` in partition 0 of `topic`
/// (offsets for times).
fn offset_for_time(topic: &str, time: i64) -> anyhow::Result<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", BROKERS).create()?;
    let mut asked = rdkafka::TopicPartitionList::new();
    asked.add_partition_offset(topic, 0, rdkafka::Offset::Offset(time))?;
    let answered = consumer.offsets_for_times(asked, std::time::Duration::from_secs(10))?;
    match answered.elements().first().map(|e| e.offset()) {
        Some(rdkafka::Offset::Offset(offset)) => Ok(offset),
        other => anyhow::bail!("no offset for {time} in {topic}: {other:?}"),
    }
}

/// A backfill from the pipeline's own topic, whose records carry their
/// event times: it starts at the offsets for `--from` less the lookback
/// (a window, by default) and the out-of-orderness (10 s), minute 24:50,
/// and writes every window ending in its range, whole. The events it
/// reads are those from the offset the broker gives for that time (the
/// 746th event on Kafka; the first on Tansu, which answers 0 for any
/// time: see the README's *Tansu*).
#[test]
fn a_backfill_from_the_topic_starts_at_the_offsets_for_its_time() -> anyhow::Result<()> {
    let setup = Setup::with_topic("from-topic", Topic::EventTimed)?;
    let all = reference(&setup.events);
    let backfill = setup.backfill_with(30, 60, &[])?;
    succeeded("backfill 30..60 from the topic", &backfill)?;
    let start = T0 + 30 * MINUTE - SIZE - 10_000;
    let from = usize::try_from(offset_for_time(&setup.topic, start)?)?;
    let read = setup.events.len() - from;
    let said = String::from_utf8_lossy(&backfill.stdout);
    assert!(said.contains(&format!(": {read} events in ")), "it reads the {read} events from offset {from}: {said}");
    assert!(
        said.contains(
            "backfilled windows ending from 2026-01-01T00:30:00Z up to (not including) 2026-01-01T01:00:00Z\n"
        ),
        "{said}"
    );
    assert_eq!(setup.table()?, ending_in(&all, 30, 60), "the windows ending in its range, whole");
    Ok(())
}
