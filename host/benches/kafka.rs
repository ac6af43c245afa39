//! Kafka to Redis: the `session-features` pipeline reading a 4-partition
//! topic on the local broker and writing the local Redis, as in
//! production.
//!
//! `cargo bench -p sluice-host --bench kafka` (after `scripts/setup` and
//! `scripts/build-transforms`). Two parts (`SLUICE_BENCH_ONLY=throughput`
//! or `freshness` runs one; state larger than memory is in the `pipeline`
//! bench):
//!
//! 1. Throughput: produce generated clicks (2,000,000, 10,000 users; the
//!    size from `SLUICE_BENCH_EVENTS`) to a fresh 4-partition topic, then
//!    run the pipeline over it to the end and print the events consumed
//!    per second, from its first record to its end (joining the consumer
//!    group is not counted): with memory state without checkpoints, with
//!    a checkpoint every 10 s and every second, with a checkpoint every
//!    10 s writing the Iceberg table as well, and with RocksDB state
//!    (the default budget, which this state fits) without checkpoints and
//!    with one every 10 s; twice over, interleaved. Then the largest
//!    checkpoint taken: its size per key and the time to restore it (read,
//!    check, decode into window state), the events it holds a key, and
//!    what the same keys took in checkpoint format 1 (key by key), and the
//!    time each format takes to lay out and compress them.
//! 2. Freshness: with the on-event trigger, produce live clicks (event time
//!    now) at a steady rate (`SLUICE_BENCH_RATE`, default 20,000/s) for
//!    `SLUICE_BENCH_SECONDS` (default 20) while the pipeline runs. Every
//!    100th click is a probe, the only click of its own user; a poller
//!    reads Redis every millisecond and takes the moment a probe's hash
//!    appears. Freshness is that moment less the moment the probe was
//!    handed to the producer: p50, p99 and the worst.
//!    It also prints the share before the Redis write (the row's
//!    `computed_at` less the probe's event time). `SLUICE_BENCH_BARE=1`
//!    adds a bare consumer of the topic to time the broker alone (it
//!    doubles the broker's fetch load); `SLUICE_BENCH_BARE=only` times the
//!    bare consumer without the pipeline: the broker's own freshness at
//!    that rate, the floor of the pipeline's. `SLUICE_BENCH_LOG=FILE` keeps the
//!    pipeline's log. For tuning: `SLUICE_BENCH_LINGER` (the producer's
//!    `linger.ms`, default 5) and `SLUICE_BENCH_SET` (more `--set`
//!    overrides for the pipeline, separated by `;`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_examples::kafka::{create_topic, key_of, producer, send};
use sluice_examples::{Config, Shape};
use sluice_host::checkpoint::{Listed, Storage};
use sluice_host::manifest::Manifest;
use sluice_host::metrics::Metrics;
use sluice_host::pipeline::{self, Pipeline, Plan};
use sluice_host::runtime::Runtime;
use sluice_host::state::{Interner, KeyState};
use sluice_host::window::{Operator, Snapshot};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BROKERS: &str = "127.0.0.1:9092";
const REDIS: &str = "redis://127.0.0.1:6379/0";
const MANIFEST: &str = "examples/session-features-kafka.yaml";
const PARTITIONS: i32 = 4;
/// One probe every this many events.
const PROBE_EVERY: u64 = 100;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(match std::env::var(name) {
        Ok(v) => v.parse()?,
        Err(_) => default,
    })
}

/// Where the bench keeps its checkpoints (outside the clone).
fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    target.join("sluice-bench")
}

fn unique(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("sluice-bench-{what}-{nanos}")
}

/// Overrides that point the example manifest at fresh topics and a fresh
/// Redis key prefix, features to Redis only, no checkpoints.
fn overrides(topic: &str, prefix: &str, bounded: bool) -> anyhow::Result<Vec<String>> {
    let (dead, late) = (format!("{topic}-dead"), format!("{topic}-late"));
    create_topic(BROKERS, &dead, 1)?;
    create_topic(BROKERS, &late, 1)?;
    Ok(vec![
        format!("source.topics=['{topic}']"),
        format!("source.group='{topic}'"),
        "source.start=earliest".into(),
        format!("source.stop_at_end={bounded}"),
        format!("transform.module={}", root().join("target/modules/session-features.wasm").display()),
        format!("outputs.features=[{{type: redis, url: '{REDIS}', key: '{prefix}:{{key}}', ttl: 10m}}]"),
        format!("outputs.dead_letters=[{{type: kafka, brokers: '{BROKERS}', topic: '{dead}'}}]"),
        format!("outputs.late_events=[{{type: kafka, brokers: '{BROKERS}', topic: '{late}'}}]"),
        "checkpoint=null".into(),
    ])
}

/// Remove the hashes a run wrote.
fn clean_redis(prefix: &str) -> anyhow::Result<()> {
    let mut redis = redis::Client::open(REDIS)?.get_connection()?;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut redis)?;
    for chunk in keys.chunks(1_000) {
        redis::cmd("UNLINK").arg(chunk).query::<()>(&mut redis)?;
    }
    Ok(())
}

fn throughput(events: u64) -> anyhow::Result<()> {
    let topic = unique("clicks");
    create_topic(BROKERS, &topic, PARTITIONS)?;
    let config =
        Config { shape: Shape::Clicks, events, users: 10_000, rate: 1_000.0, max_delay: 20.0, ..Config::default() };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    let started = Instant::now();
    let producer = producer(BROKERS, &[("linger.ms", "20"), ("batch.num.messages", "10000")])?;
    for (i, line) in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        send(&producer, &topic, key_of(line).as_deref(), line)?;
        if i % 4096 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let produced = started.elapsed();
    println!(
        "produced {events} events to {PARTITIONS} partitions in {:.2} s ({:.0} events/s)",
        produced.as_secs_f64(),
        events as f64 / produced.as_secs_f64()
    );

    // Memory and RocksDB state, each without checkpoints and with one every
    // 10 s, and memory with one every second; twice over, interleaved.
    let modes: [(&str, Option<&str>); 6] = [
        ("memory", None),
        ("memory, checkpoint/10s", Some("10s")),
        ("memory, checkpoint/1s", Some("1s")),
        ("memory, checkpoint/10s, + Iceberg", Some("10s")),
        ("rocksdb", None),
        ("rocksdb, checkpoint/10s", Some("10s")),
    ];
    let mut largest: Option<(u64, Storage, Listed, Manifest)> = None;
    for round in 0..2 {
        for (name, interval) in modes {
            let checkpoints = data_dir().join(format!("checkpoints-{round}-{}", name.replace('/', "-")));
            let _ = std::fs::remove_dir_all(&checkpoints);
            let group = unique("group");
            let prefix = unique("features");
            let mut sets = overrides(&topic, &prefix, true)?;
            sets.push(format!("source.group='{group}'"));
            if let Some(every) = interval {
                sets.push(format!("checkpoint={{dir: '{}', interval: {every}}}", checkpoints.display()));
            }
            if name.starts_with("rocksdb") {
                sets.push(format!("state={{backend: rocksdb, path: '{}'}}", data_dir().join("state").display()));
            }
            // The offline store as well: rows to an Iceberg table, committed
            // at each checkpoint.
            let warehouse = data_dir().join(format!("warehouse-{round}"));
            if name.ends_with("Iceberg") {
                let _ = std::fs::remove_dir_all(&warehouse);
                sets.push(format!(
                    "outputs.features=[{{type: redis, url: '{REDIS}', key: '{prefix}:{{key}}', ttl: 10m}}, \
                     {{type: iceberg, warehouse: '{}', table: session_features}}]",
                    warehouse.display()
                ));
            }
            let manifest = Manifest::load(&root().join(MANIFEST), &sets)?;
            let (summary, secs, metrics) = run_to_end(manifest.clone())?;
            let n = Metrics::get(&metrics.checkpoints);
            let extra = match n {
                0 => String::new(),
                n => format!(
                    "; {n} checkpoints, {:.0} ms each on average",
                    Metrics::get(&metrics.checkpoint_ms) as f64 / n as f64
                ),
            };
            println!(
                "session-features, Kafka to Redis, {name}: {} events in {secs:.2} s = {:.0} events/s ({} feature rows{extra})",
                summary.events_read,
                summary.events_read as f64 / secs,
                summary.feature_rows
            );
            // Runs without checkpoints make no directory.
            let config = sluice_host::checkpoint::CheckpointConfig::in_dir(checkpoints.clone());
            if let Some((storage, listed)) = sluice_host::checkpoint::existing(&config)? {
                for listed in listed {
                    if largest.as_ref().is_none_or(|(size, _, _, _)| listed.size > *size) {
                        largest = Some((listed.size, storage.clone(), listed, manifest.clone()));
                    }
                }
            }
            clean_redis(&prefix)?;
        }
    }
    if let Some((size, storage, listed, manifest)) = largest {
        restore(size, &storage, &listed, &manifest)?;
    }
    Ok(())
}

/// Run a bounded pipeline: its summary, the seconds from its first record
/// to its end (joining the consumer group is not counted), its metrics.
fn run_to_end(manifest: Manifest) -> anyhow::Result<(pipeline::Summary, f64, Arc<Metrics>)> {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let runtime = Runtime::new(tokio.handle().clone())?;
    let plan = Plan::new(manifest.lower(), &runtime)?;
    let handle = tokio.block_on(Pipeline::start(plan, &runtime))?;
    let metrics = handle.metrics().clone();
    let first = Arc::new(Mutex::new(None::<Instant>));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (metrics, first, done) = (metrics.clone(), first.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) && Metrics::get(&metrics.events_read) == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            if let Ok(mut f) = first.lock() {
                *f = Some(Instant::now());
            }
        })
    };
    let summary = tokio.block_on(handle.join());
    let end = Instant::now();
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let summary = summary?;
    let from = first.lock().ok().and_then(|f| *f).unwrap_or(end);
    Ok((summary, (end - from).as_secs_f64(), metrics))
}

/// The largest checkpoint taken: its size per key, and the time to read,
/// check and decode it into window state (a restore). Then what it holds:
/// events a key, and what the same keys take compressed one after another
/// (checkpoint format 1) rather than laid out by column.
fn restore(size: u64, storage: &Storage, listed: &Listed, manifest: &Manifest) -> anyhow::Result<()> {
    let started = Instant::now();
    let checkpoint = sluice_host::checkpoint::read(storage, listed)?;
    let spec = manifest.lower();
    let mut operator = Operator::in_memory(spec.window, spec.transform.mode(), spec.fields());
    let mut snapshot = Snapshot { watermark: checkpoint.header.watermark, ..Snapshot::default() };
    for (slot, p) in checkpoint.partitions.into_iter().enumerate() {
        snapshot.partitions.insert(slot as u32, p.keys);
    }
    let keys = operator.restore(&snapshot, |_| true)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "largest checkpoint: {:.1} MiB, {keys} keys, {:.0} bytes per key; restored (read, checked, decoded) in {:.0} ms",
        size as f64 / (1 << 20) as f64,
        size as f64 / keys.max(1) as f64,
        secs * 1000.0
    );
    if keys == 0 {
        return Ok(());
    }
    let mut interner = Interner::new();
    let mut events = 0;
    let mut key_by_key = Vec::new();
    for key in snapshot.partitions.values().flatten() {
        let state = KeyState::decode(key, &mut interner)?;
        events +=
            state.slices.iter().chain(state.sessions.iter().flat_map(|s| &s.parts)).map(|s| s.len()).sum::<usize>();
        key_by_key.extend_from_slice(&(key.len() as u32).to_le_bytes());
        key_by_key.extend_from_slice(key);
    }
    let started = Instant::now();
    let one_after_another = zstd::bulk::compress(&key_by_key, 1)?.len();
    let format_1 = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let packed = sluice_host::state::columnar::pack(snapshot.partitions.values().flatten().map(Vec::as_slice))?;
    let packing = started.elapsed().as_secs_f64();
    let format_2 = zstd::bulk::compress(&packed, 1)?.len();
    let compressing = started.elapsed().as_secs_f64() - packing;
    let keys = keys as f64;
    println!(
        "  it holds {:.0} events a key, {:.1} bytes an event; key by key (format 1) it would take {:.0} bytes a key",
        events as f64 / keys,
        size as f64 / (events.max(1) as f64),
        one_after_another as f64 / keys
    );
    println!(
        "  writing its state: format 2 laid it out in {:.0} ms and compressed it in {:.0} ms ({:.0} bytes a key); \
         format 1 compressed it in {:.0} ms",
        packing * 1000.0,
        compressing * 1000.0,
        format_2 as f64 / keys,
        format_1 * 1000.0
    );
    // A key holds its windows' events and the events read ahead of the
    // watermark, which waits for the partition read the least far.
    let latest: Vec<i64> = checkpoint.header.partitions.iter().filter_map(|p| p.position.max_event_time).collect();
    if let (Some(first), Some(last)) = (latest.iter().min(), latest.iter().max()) {
        println!(
            "  its partitions had been read to event times {:.1} min apart (the watermark follows the earliest)",
            (last - first) as f64 / 60_000.0
        );
    }
    Ok(())
}

/// A live click: event time now.
fn click(rng: &mut impl Rng, user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    format!(
        r#"{{"user_id":"{user}","item_id":"i{}","category":"c{}","timestamp":{now:.6}}}"#,
        rng.random_range(0..5_000),
        rng.random_range(0..20)
    )
}

struct Probe {
    key: String,
    sent: Instant,
    measured: bool,
}

/// A probe seen in Redis.
struct Sample {
    sent: Instant,
    /// From handing the probe to the producer to its hash in Redis, ms.
    visible: f64,
    /// From the probe's event time (taken just before it was handed to
    /// the producer) to the host computing its row (`computed_at`): the
    /// broker's and the pipeline's share, without the Redis write.
    computed: f64,
}

/// Poll Redis for outstanding probes.
fn poll_probes(
    probes: Arc<Mutex<VecDeque<Probe>>>,
    seen: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Sample>> {
    let mut redis = redis::Client::open(REDIS)?.get_connection()?;
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let keys: Vec<String> = probes.lock().map(|p| p.iter().map(|p| p.key.clone()).collect()).unwrap_or_default();
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HMGET").arg(k).arg("computed_at").arg("event_time");
            }
            let found: Vec<(Option<i64>, Option<i64>)> = pipe.query(&mut redis)?;
            let now = Instant::now();
            if let Ok(mut p) = probes.lock() {
                for (probe, found) in p.iter_mut().zip(found) {
                    if let (Some(computed_at), Some(event_time)) = found {
                        samples.push(Sample {
                            sent: probe.sent,
                            visible: (now - probe.sent).as_secs_f64() * 1e3,
                            computed: (computed_at - event_time) as f64,
                        });
                        probe.measured = true;
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                }
                p.retain(|p| !p.measured);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(samples)
}

/// The broker's share: a bare consumer of the same topic takes the delay
/// from each probe's event time (taken just before it was handed to the
/// producer) to its arrival, in ms, paired with the arrival.
fn broker_delays(topic: &str, stop: Arc<AtomicBool>, seen: Arc<AtomicU64>) -> anyhow::Result<Vec<(Instant, f64)>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("group.id", format!("{topic}-bare"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut delays = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(10)) else {
            continue;
        };
        if !m.key().is_some_and(|k| k.starts_with(b"probe-")) {
            continue;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let event: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
        let created = event["timestamp"].as_f64().unwrap_or(now);
        delays.push((Instant::now(), (now - created) * 1e3));
        seen.fetch_add(1, Ordering::Relaxed);
    }
    Ok(delays)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The pipeline as its own process, killed when dropped (it runs until
/// then).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_sluice(overrides: &[String]) -> anyhow::Result<Running> {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(root()).args(["run", MANIFEST]);
    for o in overrides {
        c.args(["--set", o]);
    }
    // `SLUICE_BENCH_LOG=FILE` keeps the pipeline's log.
    let log = match std::env::var_os("SLUICE_BENCH_LOG") {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None => Stdio::null(),
    };
    Ok(Running(c.stdout(Stdio::null()).stderr(log).spawn()?))
}

fn freshness(rate: u64, seconds: u64) -> anyhow::Result<()> {
    let topic = unique("live");
    create_topic(BROKERS, &topic, PARTITIONS)?;
    let prefix = unique("fresh");
    let mut o = overrides(&topic, &prefix, false)?;
    o.push("window.trigger=event".into());
    o.extend(
        std::env::var("SLUICE_BENCH_SET")
            .ok()
            .into_iter()
            .flat_map(|v| v.split(';').map(str::to_string).collect::<Vec<_>>()),
    );
    // `SLUICE_BENCH_BARE=1`: also time a bare consumer (which doubles the
    // broker's fetch load); `only`: time it without the pipeline.
    let bare_mode = std::env::var("SLUICE_BENCH_BARE").ok();
    let broker_only = bare_mode.as_deref() == Some("only");
    let child = if broker_only { None } else { Some(spawn_sluice(&o)?) };

    // Tansu stores each produced batch as an object and lists them all on
    // every fetch: a producer linger of a few milliseconds keeps batches
    // few enough for the broker, at that cost in freshness.
    let linger = std::env::var("SLUICE_BENCH_LINGER").unwrap_or_else(|_| "5".into());
    let producer = producer(BROKERS, &[("linger.ms", linger.as_str())])?;
    let probes = Arc::new(Mutex::new(VecDeque::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let bare_seen = Arc::new(AtomicU64::new(0));
    let bare = bare_mode.map(|_| {
        let (topic, stop, bare_seen) = (topic.clone(), stop.clone(), bare_seen.clone());
        std::thread::spawn(move || broker_delays(&topic, stop, bare_seen))
    });
    let poller = {
        let (probes, seen, stop) = (probes.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || poll_probes(probes, seen, stop))
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // Warm up until the first probe is seen (the consumer group has formed
    // and the pipeline keeps up), then measure.
    let warm_until = Instant::now() + Duration::from_secs(60);
    let mut measuring: Option<Instant> = None;
    let mut sent = 0u64;
    let start = Instant::now();
    let interval = Duration::from_secs(1) / 1_000;
    let per_tick = (rate / 1_000).max(1);
    let mut tick = 0u32;
    let mut measured_from = 0;
    let mut first_seen: Option<Instant> = None;
    loop {
        let due = start + interval * tick;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        tick += 1;
        for _ in 0..per_tick {
            sent += 1;
            if sent.is_multiple_of(PROBE_EVERY) {
                let user = format!("probe-{sent}");
                let line = click(&mut rng, &user);
                let sent_at = Instant::now();
                send(&producer, &topic, Some(&user), line.as_bytes())?;
                if let Ok(mut p) = probes.lock()
                    && !broker_only
                {
                    p.push_back(Probe { key: format!("{prefix}:{user}"), sent: sent_at, measured: false });
                }
            } else {
                let user = format!("u{}", rng.random_range(0..10_000));
                send(&producer, &topic, Some(&user), click(&mut rng, &user).as_bytes())?;
            }
        }
        producer.poll(Duration::ZERO);
        match measuring {
            Some(t) if t.elapsed() >= Duration::from_secs(seconds) => break,
            Some(_) => {}
            None => {
                // Measuring starts once probes arrive and the backlog of
                // the warm-up is gone.
                let outstanding = probes.lock().map(|p| p.len()).unwrap_or(usize::MAX);
                // The bare consumer has no backlog to show: give it the
                // few seconds a pipeline's warm-up takes anyway.
                if bare_seen.load(Ordering::Relaxed) > 0 {
                    first_seen.get_or_insert_with(Instant::now);
                }
                let ready = if broker_only {
                    first_seen.is_some_and(|t| t.elapsed() >= Duration::from_secs(3))
                } else {
                    seen.load(Ordering::Relaxed) > 0 && outstanding < 10
                };
                if ready {
                    measuring = Some(Instant::now());
                    measured_from = sent;
                }
                anyhow::ensure!(Instant::now() < warm_until, "no feature reached Redis within a minute");
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;
    let elapsed = measuring.map_or(0.0, |t| t.elapsed().as_secs_f64());
    // Let the last probes arrive.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let from = measuring.unwrap_or_else(Instant::now);
    let samples: Vec<Sample> = poller
        .join()
        .map_err(|_| anyhow::anyhow!("the poller panicked"))??
        .into_iter()
        .filter(|s| s.sent >= from)
        .collect();
    let sorted = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (delays, computed) = (sorted(|s| s.visible), sorted(|s| s.computed));
    let broker: Option<Vec<f64>> = match bare {
        Some(thread) => {
            let delays = thread.join().map_err(|_| anyhow::anyhow!("the bare consumer panicked"))??;
            let mut d: Vec<f64> = delays.into_iter().filter(|(at, _)| *at >= from).map(|(_, d)| d).collect();
            d.sort_by(f64::total_cmp);
            Some(d)
        }
        None => None,
    };
    let lost = probes.lock().map(|p| p.len()).unwrap_or(0);
    drop(child);
    if !broker_only {
        println!(
            "freshness at {:.0} events/s (on-event trigger, {} probes over {elapsed:.1} s): \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {lost} probes not seen within 2 s",
            (sent - measured_from) as f64 / elapsed.max(1e-9),
            delays.len(),
            percentile(&delays, 0.5),
            percentile(&delays, 0.99),
            delays.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "  of which from producing to the row computed (no Redis write): p50 {:.1} ms, p99 {:.1} ms",
            percentile(&computed, 0.5),
            percentile(&computed, 0.99)
        );
    }
    if let Some(broker) = broker {
        println!(
            "  the broker alone (producing to a bare consumer{}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            if broker_only {
                format!(", no pipeline, {:.0} events/s", (sent - measured_from) as f64 / elapsed.max(1e-9))
            } else {
                String::new()
            },
            percentile(&broker, 0.5),
            percentile(&broker, 0.99),
            broker.last().copied().unwrap_or(f64::NAN)
        );
    }
    clean_redis(&prefix)
}

fn main() -> anyhow::Result<()> {
    sluice_host::alloc::tune();
    // `cargo test --benches` runs this with `--bench` absent: stay quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let events = env_or("SLUICE_BENCH_EVENTS", if quick { 20_000 } else { 2_000_000 })?;
    let rate = env_or("SLUICE_BENCH_RATE", 20_000)?;
    let seconds = env_or("SLUICE_BENCH_SECONDS", if quick { 2 } else { 20 })?;
    let only = std::env::var("SLUICE_BENCH_ONLY").ok();
    if only.as_deref().is_none_or(|o| o == "throughput") {
        throughput(events)?;
    }
    if only.as_deref().is_none_or(|o| o == "freshness") {
        freshness(rate, seconds)?;
    }
    Ok(())
}
