//! End to end against the real broker and Redis (scripts/setup starts
//! both): the `sluice` binary runs each example manifest with its source
//! switched to a fresh Kafka topic, writing features to Redis and to a
//! feature topic (dual write), dead letters and late events to their own
//! topics. Everything written must be what the reference model says.
//! Plus the failure stories: Redis restarting in the middle of a run, a
//! partition with no events at all, a second host joining the group, and a
//! stop signal.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{BROKERS, REDIS, Running, Topics, produce, redis_hashes, stored_row};
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::Producer;
use redis::Commands;
use serde_json::{Map, Value};
use sluice_examples::kafka::{producer, read_all, send};
use sluice_examples::{Config, Shape};
use sluice_tests::e2e::{
    self, Example, Row, actual_rows, assert_rows, canonical, expected, file_outputs, now_ms, run_to_end, sluice_run,
    wait_until,
};
use sluice_tests::jsonl::parse_line;
use sluice_tests::{Spec, features};

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    let headers = m.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Dead letters and late events on their topics: by source offset, with
/// the raw bytes as the value and the source in the headers.
fn check_routed(what: &str, records: &[OwnedMessage], want: &BTreeSet<i64>, t: &Topics, lines: &[String]) {
    let mut offsets = BTreeSet::new();
    for m in records {
        let offset = header(m, "__connect.errors.offset").and_then(|o| o.parse::<i64>().ok()).unwrap_or(-1);
        offsets.insert(offset);
        let raw = usize::try_from(offset).ok().and_then(|o| lines.get(o)).map(String::as_bytes);
        assert_eq!(m.payload(), raw, "{what}: the value is the raw record at offset {offset}");
        assert_eq!(header(m, "__connect.errors.topic").as_deref(), Some(t.input.as_str()), "{what}: source topic");
        assert_eq!(header(m, "__connect.errors.partition").as_deref(), Some("0"), "{what}: source partition");
    }
    assert_eq!(&offsets, want, "{what}: source offsets");
}

fn check(example: Example) -> anyhow::Result<()> {
    let Example { name, config, fields, spec, compute } = example;
    let t = Topics::create(name, 1)?;
    let lines = produce(&config, &t.input)?;
    let prefix = format!("{}:", t.id);
    let (source, outputs) = (t.source(spec.step, true), t.outputs(REDIS, &format!("{prefix}{{key}}")));
    run_to_end(name, &[("source", &source), ("outputs", &outputs)])?;

    let now = now_ms();
    let parsed: Vec<_> = lines.iter().map(|l| parse_line(l, fields, now)).collect();
    let want = expected(&parsed, &spec, &compute);
    assert!(want.rows.iter().any(|r| r.4 == "late"), "{name}: no late updates exercised");
    assert!(!want.dead.is_empty() && !want.late.is_empty(), "the input exercises dead letters and late events");

    // The feature topic: every row, keyed by entity.
    let rows = read_all(BROKERS, &t.features)?;
    let json: Vec<Value> =
        rows.iter().map(|m| serde_json::from_slice(m.payload().unwrap_or_default())).collect::<Result<_, _>>()?;
    // Each carries an id that names its content, `computed_at` aside.
    let mut ids: BTreeMap<String, Row> = BTreeMap::new();
    for (m, row) in rows.iter().zip(&json) {
        assert_eq!(m.key(), row["key"].as_str().map(str::as_bytes), "feature records are keyed by entity");
        let id = header(m, "__sluice.row_id").unwrap_or_default();
        assert_eq!(id.len(), 32, "{name}: row id {id:?}");
        let content = e2e::actual_row(row);
        let seen = ids.insert(id.clone(), content.clone());
        assert!(seen.is_none_or(|s| s == content), "{name}: row id {id} names two rows");
    }
    let distinct: BTreeSet<&Row> = ids.values().collect();
    assert_eq!(distinct.len(), ids.len(), "{name}: one row, one id");
    assert_rows(&format!("{name}: feature topic"), &actual_rows(&json), &want.rows);

    // Redis: each entity's hash holds its last row.
    let mut redis = redis::Client::open(REDIS)?.get_connection()?;
    let hashes = redis_hashes(&mut redis, &prefix)?;
    assert_eq!(hashes.keys().collect::<Vec<_>>(), want.last.keys().collect::<Vec<_>>(), "{name}: Redis keys");
    for (key, row) in &want.last {
        assert_eq!(&stored_row(key, &hashes[key], row), row, "{name}: Redis hash of {key}");
    }
    let _: () = redis.del(hashes.keys().map(|k| format!("{prefix}{k}")).collect::<Vec<_>>())?;

    let dead = read_all(BROKERS, &t.dead)?;
    check_routed("dead letters", &dead, &want.dead, &t, &lines);
    for m in &dead {
        for h in
            ["__connect.errors.stage", "__connect.errors.exception.class.name", "__connect.errors.exception.message"]
        {
            assert!(header(m, h).is_some_and(|v| !v.is_empty()), "dead letter without {h}");
        }
    }
    check_routed("late events", &read_all(BROKERS, &t.late)?, &want.late, &t, &lines);
    Ok(())
}

#[test]
fn session_features_from_kafka_to_redis_and_topics() -> anyhow::Result<()> {
    check(e2e::session_features())
}

#[test]
fn tx_velocity_from_kafka_to_redis_and_topics() -> anyhow::Result<()> {
    check(e2e::tx_velocity())
}

#[test]
fn user_session_from_kafka_to_redis_and_topics() -> anyhow::Result<()> {
    check(e2e::user_session())
}

/// The on-event trigger and an event older than its key's newest, across
/// a slide boundary: its row is of an older window, which the feature
/// topic gets and the user's Redis hash must not (it keeps the newest
/// window, as an online store should).
#[test]
fn an_out_of_order_event_does_not_take_redis_back_to_an_older_window() -> anyhow::Result<()> {
    let t = Topics::create("out-of-order", 1)?;
    // 2026-01-01T00:00:00Z, on a minute (the slide).
    let base = 1_767_225_600_000;
    let click = |item: &str, ms: i64| {
        let v = serde_json::json!({"user_id": "u1", "item_id": item, "category": "c1", "timestamp": ms as f64 / 1e3});
        (0, "u1".to_string(), ms, v)
    };
    // The watermark trails by 30 s, so the third click (20 s older than
    // the second) still belongs to open windows: the first of them ends at
    // minute 1, the second click's at minute 2.
    let events = [click("i1", base + 30_000), click("i2", base + 70_000), click("i3", base + 50_000)];
    produce_placed(&t.input, &events, false)?;
    let prefix = format!("{}:", t.id);
    let (source, outputs) = (t.source(1, true), t.outputs(REDIS, &format!("{prefix}{{key}}")));
    run_to_end("session-features", &[("source", &source), ("outputs", &outputs), ("window.trigger", "event")])?;

    let minute = |m: i64| base + m * 60_000;
    let rows: Vec<Value> = read_all(BROKERS, &t.features)?
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let ends: Vec<i64> = rows.iter().map(|r| r["window_end"].as_i64().unwrap_or_default()).collect();
    assert_eq!(ends, vec![minute(1), minute(2), minute(1)], "the feature topic gets every row, in order");
    assert_eq!(rows[2]["features"]["items_clicked_30m"], serde_json::json!(["i1", "i3"]));

    let mut redis = redis::Client::open(REDIS)?.get_connection()?;
    let key = format!("{prefix}u1");
    let hash: BTreeMap<String, String> = redis.hgetall(&key)?;
    let _: () = redis.del(&key)?;
    assert_eq!(hash.get("window_end"), Some(&minute(2).to_string()), "Redis keeps the newest window");
    assert_eq!(hash.get("items_clicked_30m").map(String::as_str), Some(r#"["i1","i2"]"#));
    Ok(())
}

/// A private redis-server that keeps every acknowledged write on disk
/// (append-only file, fsync always), so it can be killed and restarted.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut r = PrivateRedis { port, dir: tempfile::tempdir()?, child: None };
        r.restart()?;
        Ok(r)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let url = self.url();
        wait_until(&format!("redis-server on {url} up"), Duration::from_secs(10), Duration::from_millis(20), || {
            let ping = redis::Client::open(url.as_str())?
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            Ok(ping.is_ok())
        })
    }

    /// Kill -9: nothing but the append-only file survives.
    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Redis goes away in the middle of a run and comes back: the sink
/// retries, the source waits, and at the end every window's hash (the key
/// template has the window start) holds that window's last row.
#[test]
fn a_redis_restart_in_the_middle_of_a_run_loses_no_feature_row() -> anyhow::Result<()> {
    let mut server = PrivateRedis::start()?;
    let t = Topics::create("redis-restart", 1)?;
    // Long enough for the restart to fall in the middle, with a watermark
    // step of 50 records.
    let example = e2e::session_features();
    let lines = produce(&Config { events: 30_000, ..example.config }, &t.input)?;
    let spec = Spec { step: 50, ..example.spec };
    let outputs = t.outputs(&server.url(), "{key}:{window_start}");
    let log_path = server.dir.path().join("sluice.log");
    let mut child = Running(
        sluice_run("session-features", &[("source", &t.source(spec.step, true)), ("outputs", &outputs)])
            .stderr(std::fs::File::create(&log_path)?)
            .spawn()?,
    );

    // Once the first rows are in, hold every write (so the run cannot get
    // ahead of the restart) and kill the server.
    let mut redis = redis::Client::open(server.url())?.get_connection()?;
    wait_until("a feature row in Redis", Duration::from_secs(60), Duration::from_millis(2), || {
        Ok(redis::cmd("DBSIZE").query::<usize>(&mut redis)? > 0)
    })?;
    redis::cmd("CLIENT").arg("PAUSE").arg(5_000).arg("WRITE").query::<()>(&mut redis)?;
    anyhow::ensure!(child.0.try_wait()?.is_none(), "the run ended before Redis went away; give it more events");
    server.kill()?;
    std::thread::sleep(Duration::from_secs(2));
    anyhow::ensure!(child.0.try_wait()?.is_none(), "the run should wait for Redis, not end or fail");
    server.restart()?;
    let status = child.0.wait()?;
    let log = std::fs::read_to_string(&log_path)?;
    anyhow::ensure!(status.success(), "sluice failed:\n{log}");
    assert!(log.contains("retry_in_ms"), "the sink said it was retrying:\n{log}");
    // Shown with a failure below.
    eprintln!("{log}");

    let now = now_ms();
    let parsed: Vec<_> = lines.iter().map(|l| parse_line(l, example.fields, now)).collect();
    let want = expected(&parsed, &spec, &example.compute);
    let mut redis = redis::Client::open(server.url())?.get_connection()?;
    let hashes = redis_hashes(&mut redis, "")?;
    assert_eq!(hashes.len(), want.windows.len(), "one hash per window");
    for ((key, start), row) in &want.windows {
        let hash = hashes.get(&format!("{key}:{start}"));
        assert!(hash.is_some(), "no hash for window {start} of {key}");
        assert_eq!(&stored_row(key, hash.unwrap_or(&BTreeMap::new()), row), row, "window {start} of {key}");
    }
    Ok(())
}

/// A transaction produced to a chosen partition: partition, key, event
/// time, and the JSON.
type Placed = (i32, String, i64, Value);

/// In-order transactions (no disorder past what the out-of-orderness
/// allows, nothing late or malformed), so that every window of a key holds
/// exactly that key's events in its bounds. Each key goes to partition
/// `sum of its bytes % partitions`.
fn in_order_transactions(events: u64, partitions: u32) -> anyhow::Result<Vec<Placed>> {
    let c = Config {
        max_delay: 10.0,
        late: 0.0,
        malformed: 0.0,
        ..e2e::troubled_stream(Shape::Transactions, events, 30, 2.0)
    };
    let mut text = Vec::new();
    sluice_examples::generate(&c, &mut text)?;
    let mut placed = Vec::new();
    for line in String::from_utf8(text)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        let key = v["user_id"].as_str().unwrap_or_default().to_string();
        let partition = (key.bytes().map(u32::from).sum::<u32>() % partitions) as i32;
        let ms = (v["timestamp"].as_f64().unwrap_or_default() * 1000.0).round() as i64;
        placed.push((partition, key, ms, v));
    }
    Ok(placed)
}

/// Produce each event to its partition. `one_per_batch` makes every
/// record a batch of its own, so that every offset starts a batch: a
/// consumer resuming from a committed offset then reads on from it even on
/// Tansu (which skips the rest of a batch fetched from its middle).
fn produce_placed(topic: &str, events: &[Placed], one_per_batch: bool) -> anyhow::Result<()> {
    let producer = producer(BROKERS, if one_per_batch { &[("batch.num.messages", "1")] } else { &[] })?;
    for (partition, key, _, v) in events {
        let payload = v.to_string();
        let record = rdkafka::producer::BaseRecord::to(topic).key(key).payload(&payload).partition(*partition);
        producer.send(record).map_err(|(e, _)| e)?;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// The 5-minute tumbling windows that must have fired once every event has
/// been read: those ending at or before the smallest partition watermark
/// (largest event time less the 30 s out-of-orderness) over `partitions`.
fn must_fire(events: &[Placed], partitions: i32) -> BTreeMap<(String, i64), Vec<&Value>> {
    let watermark = (0..partitions)
        .map(|p| events.iter().filter(|e| e.0 == p).map(|e| e.2).max().unwrap_or(i64::MIN) - 30_000)
        .min()
        .unwrap_or(i64::MIN);
    let mut want: BTreeMap<(String, i64), Vec<&Value>> = BTreeMap::new();
    for (_, key, ms, v) in events {
        let start = ms - ms.rem_euclid(300_000);
        if start + 300_000 <= watermark {
            want.entry((key.clone(), start)).or_default().push(v);
        }
    }
    want
}

/// Read the output (`(key, window start)` → canonical features) until it
/// has every window of `want` or a minute has passed, then compare.
fn assert_windows(
    want: &BTreeMap<(String, i64), Vec<&Value>>,
    mut read: impl FnMut() -> anyhow::Result<BTreeMap<(String, i64), String>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = read()?;
        if want.keys().all(|k| got.contains_key(k)) || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for (window, events) in want {
        let expected = canonical(&features::tx_velocity(events));
        assert_eq!(got.get(window), Some(&expected), "window {window:?}");
    }
    Ok(())
}

/// A 4-partition topic with events on three partitions only: once the idle
/// timeout has passed, the empty partition no longer holds the watermark
/// back and windows fire, long before the input ends (it does not: the
/// source is unbounded).
#[test]
fn an_idle_partition_does_not_hold_windows_back() -> anyhow::Result<()> {
    let t = Topics::create("idle", 4)?;
    let events = in_order_transactions(6_000, 3)?;
    produce_placed(&t.input, &events, false)?;

    let dir = tempfile::tempdir()?;
    let features = dir.path().join("features.jsonl");
    let outputs = file_outputs(dir.path());
    let _running = Running(
        sluice_run(
            "tx-velocity",
            &[("source", &t.source(100, false)), ("outputs", &outputs), ("time.idle_timeout", "1s")],
        )
        .stderr(std::process::Stdio::null())
        .spawn()?,
    );

    let want = must_fire(&events, 3);
    assert!(want.len() > 100, "the input closes windows");
    assert_windows(&want, || {
        Ok(sluice_tests::jsonl::read_output(&features)
            .iter()
            .map(|r| {
                let key = r["key"].as_str().unwrap_or_default().to_string();
                let features = canonical(r["features"].as_object().unwrap_or(&Map::new()));
                ((key, r["window_start"].as_i64().unwrap_or_default()), features)
            })
            .collect())
    })
}

/// The key and the event time taken from the Kafka record (`key: {from:
/// kafka_key}`, `timestamp: {from: kafka_timestamp}`). The payloads carry
/// decoys where the example reads its key and time (`user_id: decoy`,
/// `timestamp: 0`): every window must hold the events of its record's key
/// and time, and the key must reach the features as the record's key.
#[test]
fn the_key_and_the_event_time_from_the_kafka_record() -> anyhow::Result<()> {
    let t = Topics::create("metadata", 1)?;
    let events = in_order_transactions(2_000, 1)?;
    let kafka = producer(BROKERS, &[])?;
    for (_, key, ms, v) in &events {
        let mut decoy = v.clone();
        decoy["user_id"] = Value::from("decoy");
        decoy["timestamp"] = Value::from(0);
        let payload = decoy.to_string();
        let record = rdkafka::producer::BaseRecord::to(&t.input).key(key).payload(&payload).timestamp(*ms);
        kafka.send(record).map_err(|(e, _)| e)?;
        kafka.poll(Duration::ZERO);
    }
    kafka.flush(Duration::from_secs(60))?;

    let dir = tempfile::tempdir()?;
    run_to_end(
        "tx-velocity",
        &[
            ("source", &t.source(100, true)),
            ("outputs", &file_outputs(dir.path())),
            ("events.key", "{from: kafka_key}"),
            ("events.timestamp", "{from: kafka_timestamp}"),
        ],
    )?;
    // The input is bounded: at its end every window fires.
    let mut want: BTreeMap<(String, i64), Vec<&Value>> = BTreeMap::new();
    for (_, key, ms, v) in &events {
        want.entry((key.clone(), ms - ms.rem_euclid(300_000))).or_default().push(v);
    }
    let rows = sluice_tests::jsonl::read_output(&dir.path().join("features.jsonl"));
    let got: BTreeMap<(String, i64), String> = rows
        .iter()
        .map(|r| {
            let key = r["key"].as_str().unwrap_or_default().to_string();
            let features = canonical(r["features"].as_object().unwrap_or(&Map::new()));
            ((key, r["window_start"].as_i64().unwrap_or_default()), features)
        })
        .collect();
    let want: BTreeMap<(String, i64), String> =
        want.into_iter().map(|(window, events)| (window, canonical(&features::tx_velocity(&events)))).collect();
    assert_eq!(got, want);
    assert_eq!(rows.len(), got.len(), "one row per window");
    assert!(sluice_tests::jsonl::read_output(&dir.path().join("dead.jsonl")).is_empty(), "no dead letters");
    Ok(())
}

/// Wait until `log` (a sluice's standard error) says `what`.
fn wait_for_log(log: &std::path::Path, what: &str) -> anyhow::Result<()> {
    wait_until(&format!("\"{what}\" in {}", log.display()), Duration::from_secs(60), Duration::from_millis(50), || {
        Ok(std::fs::read_to_string(log).unwrap_or_default().contains(what))
    })
}

/// A second host joins the group in the middle of a run: the first gives
/// up some partitions (and drops their windows), the second takes them
/// from the committed offsets and rebuilds their windows. At the end every
/// window that must have fired holds the features of all its events, in
/// its own hash (`{key}:{window_start}`), whichever host wrote it.
#[test]
fn a_rebalance_moves_partitions_without_losing_or_mangling_windows() -> anyhow::Result<()> {
    let t = Topics::create("rebalance", 4)?;
    let events = in_order_transactions(4_000, 4)?;
    let (first, second) = events.split_at(events.len() / 2);
    produce_placed(&t.input, first, true)?;

    let dir = tempfile::tempdir()?;
    let prefix = format!("{}:", t.id);
    let outputs = t.outputs(REDIS, &format!("{prefix}{{key}}:{{window_start}}"));
    let start = |name: &str| -> anyhow::Result<Running> {
        let log = std::fs::File::create(dir.path().join(name))?;
        Ok(Running(
            sluice_run("tx-velocity", &[("source", &t.source(50, false)), ("outputs", &outputs)])
                .stderr(log)
                .spawn()?,
        ))
    };
    let _a = start("a.log")?;
    wait_for_log(&dir.path().join("a.log"), "partitions assigned")?;
    let mut redis = redis::Client::open(REDIS)?.get_connection()?;
    wait_until("a row from the first host", Duration::from_secs(60), Duration::from_millis(50), || {
        Ok(!redis.keys::<_, Vec<String>>(format!("{prefix}*"))?.is_empty())
    })?;
    // Past a commit (every second), so the second host starts from one.
    std::thread::sleep(Duration::from_secs(2));
    let _b = start("b.log")?;
    wait_for_log(&dir.path().join("b.log"), "partitions assigned")?;
    wait_for_log(&dir.path().join("a.log"), "partitions revoked")?;
    produce_placed(&t.input, second, true)?;

    let want = must_fire(&events, 4);
    assert!(want.len() > 100, "the input closes windows");
    assert_windows(&want, || {
        let hashes = redis_hashes(&mut redis, &prefix)?;
        Ok(hashes
            .into_iter()
            .filter_map(|(k, hash)| {
                let (key, start) = k.rsplit_once(':')?;
                let features: Map<String, Value> = hash
                    .into_iter()
                    .filter(|(f, _)| {
                        !["window_start", "window_end", "event_time", "trigger", "computed_at"].contains(&f.as_str())
                    })
                    .map(|(f, v)| {
                        let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
                        (f, value)
                    })
                    .collect();
                Some(((key.to_string(), start.parse().ok()?), canonical(&features)))
            })
            .collect())
    })
}

/// SIGTERM stops a running pipeline cleanly: it exits with success, having
/// committed an offset for records whose effects are written (and not past
/// the input).
#[test]
fn a_stop_signal_writes_commits_and_exits() -> anyhow::Result<()> {
    let t = Topics::create("stop", 1)?;
    let events = in_order_transactions(2_000, 1)?;
    produce_placed(&t.input, &events, false)?;

    let dir = tempfile::tempdir()?;
    let outputs = file_outputs(dir.path());
    let log = dir.path().join("sluice.log");
    let mut running = Running(
        sluice_run("tx-velocity", &[("source", &t.source(100, false)), ("outputs", &outputs)])
            .stderr(std::fs::File::create(&log)?)
            .spawn()?,
    );
    // Rows on disk: the outputs have been flushed at least once.
    let features = dir.path().join("features.jsonl");
    wait_until("feature rows on disk", Duration::from_secs(60), Duration::from_millis(50), || {
        Ok(!sluice_tests::jsonl::read_output(&features).is_empty())
    })?;
    let status = running.terminate()?;
    let text = std::fs::read_to_string(&log)?;
    assert!(status.success(), "exit status {status}:\n{text}");
    assert!(text.contains("stopping"), "the log says it stopped:\n{text}");

    // The group's committed offset: some records, not past the input.
    let consumer: rdkafka::consumer::BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", BROKERS).set("group.id", &t.id).create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&t.input, 0);
    let committed = rdkafka::consumer::Consumer::committed_offsets(&consumer, tpl, Duration::from_secs(10))?;
    let offset = committed.elements().first().map(|e| e.offset());
    match offset {
        Some(rdkafka::Offset::Offset(o)) => assert!(o > 0 && o <= events.len() as i64, "committed {o}"),
        other => panic!("no committed offset: {other:?}"),
    }
    Ok(())
}

/// A partition resumed from a committed offset in the middle of one of the
/// broker's record batches: Tansu then sends the partition's newest batch
/// again once it is read to the end. Each record must count once. Every
/// click has its own item, so a window that counts a click twice has more
/// items than distinct ones.
#[test]
fn records_sent_again_by_the_broker_count_once() -> anyhow::Result<()> {
    let t = Topics::create("again", 1)?;
    let config = Config { items: 1 << 40, late: 0.0, malformed: 0.0, ..e2e::session_features().config };
    let config = Config { events: 30_000, ..config };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    // Large batches, as a producer that lingers makes them.
    sluice_examples::kafka::produce_lines(BROKERS, &t.input, &text)?;
    let consumer: rdkafka::consumer::BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", BROKERS).set("group.id", &t.id).create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&t.input, 0, rdkafka::Offset::Offset(1))?;
    rdkafka::consumer::Consumer::commit(&consumer, &tpl, rdkafka::consumer::CommitMode::Sync)?;
    drop(consumer);

    let dir = tempfile::tempdir()?;
    let source = t.source(100, true).replace("start: earliest", "start: committed");
    let log = dir.path().join("sluice.log");
    let out = sluice_run("session-features", &[("source", &source), ("outputs", &file_outputs(dir.path()))])
        .stderr(std::fs::File::create(&log)?)
        .output()?;
    let text = std::fs::read_to_string(&log)?;
    anyhow::ensure!(out.status.success(), "sluice failed:\n{text}");
    // Shown with a failure below.
    eprintln!("{text}");
    let rows = sluice_tests::jsonl::read_output(&dir.path().join("features.jsonl"));
    assert!(rows.len() > 1_000, "{} rows", rows.len());
    for r in &rows {
        let f = &r["features"];
        assert_eq!(f["item_count_30m"], f["distinct_items_30m"], "a click counted twice: {r}");
    }
    Ok(())
}

/// The last commit of a bounded run is waited for: the next run of the
/// group has nothing left to read.
#[test]
fn a_bounded_run_commits_all_it_read_before_it_exits() -> anyhow::Result<()> {
    let t = Topics::create("final-commit", 1)?;
    produce(&Config { events: 20_000, ..e2e::session_features().config }, &t.input)?;
    let dir = tempfile::tempdir()?;
    // Frequent commits along the run, and one at its end that counts.
    let source = t.source(500, true).replace("start: earliest", "start: committed, commit_interval: 10ms");
    let run = || -> anyhow::Result<String> {
        let out =
            sluice_run("session-features", &[("source", &source), ("outputs", &file_outputs(dir.path()))]).output()?;
        anyhow::ensure!(out.status.success(), "sluice failed:\n{}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    };
    let first = run()?;
    assert!(first.contains(": 20000 events in"), "{first}");
    let second = run()?;
    assert!(second.contains(": 0 events in"), "{second}");
    Ok(())
}

/// A feature row larger than the feature topic takes (the producer's
/// `message.max.bytes` at its least, 1000) is a dead letter, with the row
/// as its value and the reason in its headers; the pipeline goes on, and
/// every row is on the feature topic or in the dead-letter topic, once.
#[test]
fn a_row_the_topic_cannot_take_is_a_dead_letter() -> anyhow::Result<()> {
    let example = e2e::session_features();
    let t = Topics::create("too-large", 1)?;
    let lines = produce(&example.config, &t.input)?;
    let kafka = |topic: &str, properties: &str| {
        format!("{{type: kafka, brokers: '{BROKERS}', topic: '{topic}', properties: {{{properties}}}}}")
    };
    let outputs = format!(
        "{{features: [{}], dead_letters: [{}], late_events: [{}]}}",
        kafka(&t.features, "message.max.bytes: '1000'"),
        kafka(&t.dead, ""),
        kafka(&t.late, "")
    );
    run_to_end("session-features", &[("source", &t.source(example.spec.step, true)), ("outputs", &outputs)])?;

    let parsed: Vec<_> = lines.iter().map(|l| parse_line(l, example.fields, now_ms())).collect();
    let want = expected(&parsed, &example.spec, &example.compute);
    let written: Vec<Vec<u8>> =
        read_all(BROKERS, &t.features)?.iter().map(|m| m.payload().unwrap_or_default().to_vec()).collect();
    let mut refused = Vec::new();
    for m in read_all(BROKERS, &t.dead)? {
        if header(&m, "__connect.errors.stage").as_deref() == Some("sink") {
            assert_eq!(header(&m, "__connect.errors.exception.class.name").as_deref(), Some("record_too_large"));
            let message = header(&m, "__connect.errors.exception.message").unwrap_or_default();
            assert!(message.starts_with("outputs.features[0]: a "), "{message}");
            refused.push(m.payload().unwrap_or_default().to_vec());
        }
    }
    assert!(!refused.is_empty() && !written.is_empty(), "{} refused, {} written", refused.len(), written.len());
    let largest_written = written.iter().map(Vec::len).max().unwrap_or(0);
    let smallest_refused = refused.iter().map(Vec::len).min().unwrap_or(0);
    assert!(largest_written < smallest_refused, "{largest_written} written, {smallest_refused} refused");
    let rows: Vec<Value> =
        written.iter().chain(&refused).map(|p| serde_json::from_slice(p)).collect::<Result<_, _>>()?;
    assert_rows("feature topic and refused rows", &actual_rows(&rows), &want.rows);
    Ok(())
}

/// Event times no window arithmetic could take, among ordinary events on
/// an unbounded run: each is a dead letter saying why, the other events'
/// windows fire, and a stop request is honoured.
#[test]
fn extreme_timestamps_are_dead_letters_and_the_run_still_stops() -> anyhow::Result<()> {
    let t = Topics::create("extreme", 1)?;
    let base = 1_767_225_600.0;
    let mut lines: Vec<String> = (0..2_000)
        .map(|i| {
            format!(r#"{{"user_id":"u{}","item_id":"i{i}","category":"c1","timestamp":{}}}"#, i % 7, base + i as f64)
        })
        .collect();
    let extreme = ["-9223372036854775", "9223372036854775807", "-9223372036854000", "1e300"];
    for (i, ts) in extreme.iter().enumerate() {
        lines.insert(100 + 300 * i, format!(r#"{{"user_id":"u1","item_id":"x","category":"c1","timestamp":{ts}}}"#));
    }
    let producer = producer(BROKERS, &[])?;
    for line in &lines {
        send(&producer, &t.input, Some("k"), line.as_bytes())?;
    }
    producer.flush(Duration::from_secs(60))?;

    let dir = tempfile::tempdir()?;
    let log = dir.path().join("sluice.log");
    let mut running = Running(
        sluice_run(
            "session-features",
            &[
                ("source", &t.source(100, false)),
                ("outputs", &file_outputs(dir.path())),
                ("events.max_future_skew", "off"),
            ],
        )
        .stderr(std::fs::File::create(&log)?)
        .spawn()?,
    );
    let dead = dir.path().join("dead.jsonl");
    let features = dir.path().join("features.jsonl");
    wait_until("the dead letters and feature rows", Duration::from_secs(60), Duration::from_millis(50), || {
        Ok(sluice_tests::jsonl::read_output(&dead).len() == extreme.len()
            && !sluice_tests::jsonl::read_output(&features).is_empty())
    })?;
    for (d, ts) in sluice_tests::jsonl::read_output(&dead).iter().zip(extreme) {
        assert_eq!(d["error_class"], "timestamp_out_of_range", "{d}");
        assert!(d["raw"].as_str().is_some_and(|r| r.contains(ts)), "{d}");
        assert!(d["message"].as_str().is_some_and(|m| m.contains("outside the supported range")), "{d}");
    }
    let status = running.terminate()?;
    let text = std::fs::read_to_string(&log)?;
    assert!(status.success(), "exit status {status}:\n{text}");
    Ok(())
}

/// Checkpointed runs of tx-velocity over in-order transactions on four
/// partitions, writing each window to its own Redis hash, with one
/// checkpoint directory.
struct Rig {
    t: Topics,
    events: Vec<Placed>,
    dir: tempfile::TempDir,
    prefix: String,
    outputs: String,
    checkpoint: String,
    /// Features go to an Iceberg table in this warehouse too.
    iceberg: Option<std::path::PathBuf>,
    /// The offline table may hold corrections: a window closed early
    /// (its partition moved and caught up behind the new host's
    /// watermark) has later rows marked `late`, the newest with all its
    /// events.
    corrections: bool,
}

impl Rig {
    fn new(what: &str, events: u64) -> anyhow::Result<Self> {
        Self::with(what, events, false)
    }

    /// With the features written to an Iceberg table as well.
    fn with_iceberg(what: &str, events: u64) -> anyhow::Result<Self> {
        Self::with(what, events, true)
    }

    fn with(what: &str, events: u64, iceberg: bool) -> anyhow::Result<Self> {
        let t = Topics::create(what, 4)?;
        let events = in_order_transactions(events, 4)?;
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let prefix = format!("{}:", t.id);
        let warehouse = iceberg.then(|| dir.path().join("warehouse"));
        let offline = match &warehouse {
            Some(w) => format!(", {{type: iceberg, warehouse: '{}', namespace: offline, table: tx}}", w.display()),
            None => String::new(),
        };
        let outputs = format!(
            "{{features: [{{type: redis, url: '{REDIS}', key: '{prefix}{{key}}:{{window_start}}', ttl: 10m}}{offline}], \
             dead_letters: [{{type: file, path: '{d}/dead.jsonl'}}], \
             late_events: [{{type: file, path: '{d}/late.jsonl'}}]}}"
        );
        let checkpoint = format!("{{dir: '{d}/checkpoints', interval: 200ms}}");
        Ok(Rig { t, events, dir, prefix, outputs, checkpoint, iceberg: warehouse, corrections: false })
    }

    /// Produce the events over a few seconds, one record a batch (Tansu
    /// loses the rest of a batch read from its middle, and a checkpoint's
    /// offset can be anywhere).
    fn produce_slowly(&self) -> std::thread::JoinHandle<anyhow::Result<()>> {
        let (topic, events) = (self.t.input.clone(), self.events.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            for part in events.chunks(400) {
                produce_placed(&topic, part, true)?;
                std::thread::sleep(Duration::from_millis(250));
            }
            Ok(())
        })
    }

    fn log(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// A run in consumer group `group`, its log in `{name}.log`.
    fn command(&self, group: &str, bounded: bool, name: &str) -> anyhow::Result<Command> {
        let source = format!(
            "{{type: kafka, brokers: '{BROKERS}', topics: ['{}'], group: '{group}', start: earliest, \
             stop_at_end: {bounded}, step: 100, linger: 100ms}}",
            self.t.input
        );
        // A partition that moves to another host is read from its
        // checkpoint's offset while the host's watermark is already past
        // it (set by the partitions it kept): the lateness allowed covers
        // the whole stream, so its windows are corrected (trigger `late`)
        // rather than its events dropped as late.
        let mut command = sluice_run(
            "tx-velocity",
            &[
                ("source", &source),
                ("outputs", &self.outputs),
                ("checkpoint", &self.checkpoint),
                ("window.allowed_lateness", "1h"),
            ],
        );
        command.stderr(std::fs::File::create(self.log(name))?);
        Ok(command)
    }

    fn spawn(&self, group: &str, name: &str) -> anyhow::Result<Running> {
        Ok(Running(self.command(group, false, name)?.spawn()?))
    }

    /// Spawn a member of `group` and wait until the group has given it
    /// partitions.
    fn join(&self, group: &str, name: &str) -> anyhow::Result<Running> {
        let running = self.spawn(group, name)?;
        wait_for_log(&self.log(name), "partitions assigned")?;
        Ok(running)
    }

    /// Stop member `name` with SIGTERM: it must end well (its log if not).
    fn stop(&self, member: &mut Running, name: &str) -> anyhow::Result<()> {
        let status = member.terminate()?;
        assert!(status.success(), "{name}: {status}\n{}", std::fs::read_to_string(self.log(name))?);
        Ok(())
    }

    /// `sluice checkpoints COMMAND examples/tx-velocity.yaml [NAME]` on
    /// this rig's checkpoints: whether it succeeded, and what it printed.
    fn checkpoints(&self, command: &str, name: Option<&str>) -> anyhow::Result<(bool, String)> {
        let out = Command::new(e2e::sluice())
            .current_dir(e2e::root())
            .args(["checkpoints", command, "examples/tx-velocity.yaml"])
            .args(name)
            .args(["--set", &format!("checkpoint={}", self.checkpoint)])
            .args(["--set", &format!("source={{type: kafka, brokers: '{BROKERS}', topics: [t], group: g}}")])
            .output()?;
        let text = String::from_utf8(out.stdout)? + &String::from_utf8(out.stderr)?;
        Ok((out.status.success(), text))
    }

    fn restored(&self, name: &str) -> bool {
        std::fs::read_to_string(self.log(name)).unwrap_or_default().contains("state restored from a checkpoint")
    }

    /// A last run, in a group of its own, reads to the end from the
    /// checkpoints; then every window's hash holds the features of exactly
    /// its events: none counted twice, none lost.
    fn finish_and_check(&self, what: &str) -> anyhow::Result<()> {
        let last = self.command(&format!("{}-last", self.t.id), true, "last")?.status()?;
        let text = std::fs::read_to_string(self.log("last"))?;
        assert!(last.success(), "{what}: the last run failed:\n{text}");
        let mut want: BTreeMap<(String, i64), Vec<&Value>> = BTreeMap::new();
        for (_, key, ms, v) in &self.events {
            want.entry((key.clone(), ms - ms.rem_euclid(300_000))).or_default().push(v);
        }
        let mut redis = redis::Client::open(REDIS)?.get_connection()?;
        let stored = redis_hashes(&mut redis, &self.prefix)?;
        let mut wrong = Vec::new();
        for ((key, start), events) in &want {
            let times = events.iter().map(|v| (v["timestamp"].as_f64().unwrap_or_default() * 1000.0).round() as i64);
            let row: Row = (
                key.clone(),
                *start,
                start + 300_000,
                times.max().unwrap_or(i64::MIN),
                "close".into(),
                canonical(&features::tx_velocity(events)),
            );
            let got = stored.get(&format!("{key}:{start}")).map(|h| stored_row(key, h, &row));
            // A window corrected once a moved partition caught up ends
            // `late`, with the same features.
            let got = got.map(|mut g| {
                if g.4 == "late" {
                    g.4 = "close".into();
                }
                g
            });
            if got.as_ref() != Some(&row) {
                wrong.push(format!("{key}:{start}: got {got:?}, want {row:?}"));
            }
        }
        assert!(wrong.is_empty(), "{what}: {} of {} windows differ; the first: {}", wrong.len(), want.len(), wrong[0]);
        assert_eq!(stored.len(), want.len(), "{what}: windows in Redis");
        if let Some(warehouse) = &self.iceberg {
            check_offline(what, warehouse, &want, self.corrections)?;
        }
        Ok(())
    }
}

/// The Iceberg table, read with pyiceberg, holds exactly one row per window
/// (none missing, none twice) with the window's features. With
/// `corrections`, a window may have more rows, each with other features,
/// all but one `close` marked `late`, and the newest has its features.
fn check_offline(
    what: &str,
    warehouse: &std::path::Path,
    want: &BTreeMap<(String, i64), Vec<&Value>>,
    corrections: bool,
) -> anyhow::Result<()> {
    let rows = e2e::iceberg_rows(warehouse, "offline.tx")?;
    // Each window's rows, oldest first, as (computed_at, trigger, features).
    type Rows = Vec<(i64, String, String)>;
    let mut got: BTreeMap<(String, i64), Rows> = BTreeMap::new();
    for r in &rows {
        let key = (r["key"].as_str().unwrap_or("?").to_string(), r["window_start"].as_i64().unwrap_or(i64::MIN));
        let features: Map<String, Value> =
            ["tx_count", "tx_sum", "distinct_merchants"].into_iter().map(|f| (f.to_string(), r[f].clone())).collect();
        let at = r["computed_at"].as_i64().unwrap_or(i64::MIN);
        got.entry(key).or_default().push((at, r["trigger"].to_string(), canonical(&features)));
    }
    // Stable: rows of one millisecond stay in the order written.
    got.values_mut().for_each(|rows| rows.sort_by_key(|r| r.0));
    let (mut missing, mut repeated, mut wrong) = (0, 0, Vec::new());
    for ((key, start), events) in want {
        let expected = canonical(&features::tx_velocity(events));
        let Some(rows) = got.get(&(key.clone(), *start)) else {
            missing += 1;
            continue;
        };
        // A correction adds events, so every row of a window has other
        // features: a row repeated under another trigger is still a repeat.
        let distinct: BTreeSet<&str> = rows.iter().map(|(_, _, f)| f.as_str()).collect();
        let triggers: Vec<&str> = rows.iter().map(|(_, t, _)| t.as_str()).collect();
        let newest = &rows[rows.len() - 1];
        // A window can also start behind the watermark: all its rows late.
        let closes = triggers.iter().filter(|t| **t == "\"close\"").count();
        let shape_ok = match corrections {
            false => triggers == ["\"close\""],
            true => closes <= 1 && triggers.iter().all(|t| *t == "\"close\"" || *t == "\"late\""),
        };
        if distinct.len() < rows.len() || (!corrections && rows.len() > 1) {
            repeated += 1;
        } else if !shape_ok || newest.2 != expected {
            wrong.push(format!("{key}:{start}: got {rows:?}, want the newest {expected}"));
        }
    }
    let unknown = got.keys().filter(|k| !want.contains_key(*k)).count();
    assert!(
        (missing, repeated, unknown) == (0, 0, 0) && wrong.is_empty(),
        "{what}: the offline table has {} rows for {} windows: {missing} missing, {repeated} written more than once, \
         {unknown} unknown, {} wrong (first: {:?})",
        rows.len(),
        want.len(),
        wrong.len(),
        wrong.first()
    );
    Ok(())
}

/// Checkpoints keep their word across crashes. While the input is being
/// produced, the pipeline (a checkpoint every 200 ms) is killed with
/// SIGKILL at random moments, twelve times (some kills land during a
/// checkpoint write), and restarted each time from its checkpoints; the
/// last run reads to the end. Every window then holds exactly its events,
/// in Redis and in the Iceberg table, where each window is one row: none
/// missing, none written twice.
/// Each run joins a fresh group, so a restart's positions come from the
/// checkpoints alone (and it does not wait for the killed member's session
/// to expire).
#[test]
fn a_checkpointed_pipeline_killed_again_and_again_ends_as_a_clean_run() -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    let rig = Rig::with_iceberg("crash", 8_000)?;
    let seed = now_ms() as u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let producing = rig.produce_slowly();
    let mut restored = 0;
    for run in 0..12 {
        let name = format!("run-{run}");
        let mut running = rig.join(&format!("{}-{run}", rig.t.id), &name)?;
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
        running.0.kill()?;
        running.0.wait()?;
        restored += usize::from(rig.restored(&name));
    }
    producing.join().map_err(|_| anyhow::anyhow!("the producer panicked"))??;
    assert!(restored >= 8, "only {restored} of 12 restarts resumed from a checkpoint (seed {seed})");
    rig.finish_and_check(&format!("seed {seed}"))
}

/// Two hosts of one group share the checkpoint directory. The second
/// joins while the first runs (the group splits the partitions), then the
/// first is killed. Its partitions come to the second with their state,
/// from the checkpoints. (Tansu ends a dead member's session only when
/// another member joins: a third one joins and leaves to make the group
/// rebalance, as a replacement host would.)
#[test]
fn a_host_takes_over_a_dead_hosts_partitions_from_its_checkpoints() -> anyhow::Result<()> {
    let rig = Rig::new("takeover", 6_000)?;
    let group = format!("{}-group", rig.t.id);
    let producing = rig.produce_slowly();
    let mut first = rig.join(&group, "first")?;
    std::thread::sleep(Duration::from_millis(1_500));
    // The rebalance gives the second host some partitions.
    let mut second = rig.join(&group, "second")?;
    std::thread::sleep(Duration::from_millis(1_000));
    first.0.kill()?;
    first.0.wait()?;
    // Past the dead member's session (6 s), a third joins, then leaves.
    std::thread::sleep(Duration::from_millis(7_000));
    let mut third = rig.join(&group, "third")?;
    rig.stop(&mut third, "third")?;
    let every = |text: &str| {
        (0..4).all(|p| text.lines().any(|l| l.contains("state restored") && l.contains(&format!("-in[{p}]"))))
    };
    let took_over = wait_until("the takeover", Duration::from_secs(60), Duration::from_millis(100), || {
        Ok(every(&std::fs::read_to_string(rig.log("second"))?))
    });
    if let Err(e) = took_over {
        anyhow::bail!("{e}; the second host's log:\n{}", std::fs::read_to_string(rig.log("second"))?);
    }
    producing.join().map_err(|_| anyhow::anyhow!("the producer panicked"))??;
    rig.stop(&mut second, "second")?;

    // What the directory holds: each checkpoint (of the three hosts), and
    // each read whole. Together they hold every partition; which holds
    // which depends on when the group rebalanced.
    let (ok, listed) = rig.checkpoints("list", None)?;
    let names: Vec<&str> =
        listed.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| n.ends_with(".ckpt")).collect();
    assert!(ok && names.len() >= 3, "{listed}");
    assert!(listed.starts_with(&format!("{} checkpoint(s) in ", names.len())), "{listed}");
    let mut held = BTreeSet::new();
    for name in names {
        let (ok, inspected) = rig.checkpoints("inspect", Some(name))?;
        assert!(ok && inspected.contains(": intact (") && !inspected.contains("cannot restore"), "{inspected}");
        held.extend((0..4).filter(|p| inspected.contains(&format!("-in[{p}] next offset "))));
    }
    assert_eq!(held.len(), 4, "partitions in the checkpoints: {held:?}");
    rig.finish_and_check("takeover")
}

/// Three members of one group that overlap in time: started one after the
/// other, one stopped cleanly while another starts, one killed. Every
/// rebalance moves partitions with their state and position together, so
/// no window ends with more or fewer events than it has.
#[test]
fn members_that_overlap_never_count_an_event_twice() -> anyhow::Result<()> {
    let rig = Rig::new("overlap", 6_000)?;
    let group = format!("{}-group", rig.t.id);
    let producing = rig.produce_slowly();
    let mut a = rig.join(&group, "a")?;
    std::thread::sleep(Duration::from_millis(800));
    let mut b = rig.spawn(&group, "b")?;
    std::thread::sleep(Duration::from_millis(800));
    let mut c = rig.spawn(&group, "c")?;
    // a leaves cleanly while c is joining.
    rig.stop(&mut a, "a")?;
    std::thread::sleep(Duration::from_millis(1_200));
    b.0.kill()?;
    b.0.wait()?;
    producing.join().map_err(|_| anyhow::anyhow!("the producer panicked"))??;
    // c ends up with every partition once b's session expires.
    std::thread::sleep(Duration::from_millis(8_000));
    rig.stop(&mut c, "c")?;
    rig.finish_and_check("overlap")
}

/// A partition that moves on a rebalance goes with a checkpoint of all
/// its old owner read of it, taken when the group revokes it, and its new
/// owner starts from exactly there. Checkpoints are otherwise 5 s apart,
/// so the rebalances fall between them: without the hand-over, the old
/// owner would publish the rows since its last checkpoint with its next
/// one while the new owner writes them again from that last one.
#[test]
fn a_rebalance_between_checkpoints_writes_each_offline_row_once() -> anyhow::Result<()> {
    let mut rig = Rig::with_iceberg("handover", 8_000)?;
    rig.checkpoint = format!("{{dir: '{}/checkpoints', interval: 5s}}", rig.dir.path().display());
    // A moved partition is read behind its new host's watermark (one per
    // host, not per partition): windows it closes early are corrected by
    // `late` rows. Those are new rows; a row written twice is the defect.
    rig.corrections = true;
    let group = format!("{}-group", rig.t.id);
    let producing = rig.produce_slowly();
    let mut a = rig.join(&group, "a")?;
    std::thread::sleep(Duration::from_millis(1_500));
    // b joins: a hands some partitions over; then b leaves and hands them
    // back.
    let mut b = rig.join(&group, "b")?;
    std::thread::sleep(Duration::from_millis(1_500));
    rig.stop(&mut b, "b")?;
    producing.join().map_err(|_| anyhow::anyhow!("the producer panicked"))??;
    std::thread::sleep(Duration::from_millis(2_000));
    rig.stop(&mut a, "a")?;
    let said = std::fs::read_to_string(rig.log("a"))?;
    assert!(said.contains("revoked partitions let go checkpointed=true"), "a never handed over:\n{said}");
    rig.finish_and_check("handover")
}

/// A checkpoint of another window cannot be restored: `sluice run` refuses
/// with both descriptions and the way out, and `--fresh` moves the old
/// checkpoints aside and starts over.
#[test]
fn a_changed_window_is_refused_until_the_run_starts_fresh() -> anyhow::Result<()> {
    let rig = Rig::new("fresh", 400)?;
    produce_placed(&rig.t.input, &rig.events, false)?;
    let first = rig.command(&format!("{}-1", rig.t.id), true, "first")?.status()?;
    assert!(first.success(), "{}", std::fs::read_to_string(rig.log("first"))?);

    let mut changed = rig.command(&format!("{}-2", rig.t.id), true, "changed")?;
    changed.args(["--set", "window.size=10m"]);
    assert!(!changed.status()?.success(), "a changed window ran");
    let said = std::fs::read_to_string(rig.log("changed"))?;
    assert!(said.contains("error: ") && said.contains("was written by an incompatible pipeline"), "{said}");
    assert!(said.contains("tumbling window size 5m") && said.contains("tumbling window size 10m"), "{said}");
    assert!(said.contains("(at `checkpoint.dir`)") && said.contains("hint: run with --fresh"), "{said}");

    let mut fresh = rig.command(&format!("{}-3", rig.t.id), true, "fresh")?;
    fresh.args(["--set", "window.size=10m", "--fresh"]);
    assert!(fresh.status()?.success(), "{}", std::fs::read_to_string(rig.log("fresh"))?);
    let aside = std::fs::read_dir(rig.dir.path().join("checkpoints"))?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("superseded-"));
    let Some(aside) = aside else { panic!("the old checkpoints were not moved aside") };
    assert!(std::fs::read_dir(aside.path())?.count() >= 1, "nothing in {}", aside.path().display());
    Ok(())
}
