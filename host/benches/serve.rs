//! The load check of `sluice serve`: many pipelines on one host.
//!
//! `cargo bench -p sluice-host --bench serve` (after `scripts/setup` and
//! `scripts/build-transforms`). Produces the same generated clicks
//! (`SLUICE_BENCH_EVENTS`, default 50,000) to `SLUICE_BENCH_PIPELINES`
//! (default 20) fresh one-partition topics, starts a host in this process
//! (a supervisor and the admin API on a local port), pushes the
//! session-features module through it, then:
//!
//! 1. applies one pipeline (the example manifest, reading one topic to its
//!    end, features to a file) and times it from the apply to its end;
//! 2. applies one pipeline per topic, all at once, and times them from the
//!    first apply to the last end, while a client asks the API for one
//!    pipeline's status after another (over HTTP) and the host's resident
//!    memory is sampled.
//!
//! It prints the events/s of each (the total, for the many), their ratio,
//! the peak resident memory, and the status calls' p50, p99 and worst.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::producer::Producer;
use sluice_examples::kafka::{create_topic, key_of, producer, send};
use sluice_examples::{Config, Shape};
use sluice_host::api::{self, Api};
use sluice_host::runtime::Runtime;
use sluice_host::supervisor::{Phase, Supervisor};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BROKERS: &str = "127.0.0.1:9092";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_or(name: &str, default: u64) -> anyhow::Result<u64> {
    Ok(match std::env::var(name) {
        Ok(v) => v.parse()?,
        Err(_) => default,
    })
}

fn unique(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("sluice-bench-{what}-{nanos}")
}

/// This process's resident memory, bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).map(|v| v.trim().trim_end_matches(" kB"));
    kib.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// The example manifest as pipeline `name`, reading `topic` to its end.
fn manifest(name: &str, topic: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(root().join("examples/session-features-kafka.yaml"))?;
    let file = |what: &str| format!("[{{type: file, path: 'out/{name}/{what}.jsonl'}}]");
    let sets = [
        format!("name={name}"),
        format!("source.topics=['{topic}']"),
        format!("source.group='{}'", unique(name)),
        "source.stop_at_end=true".into(),
        "transform.module=session-features".into(),
        format!("outputs.features={}", file("features")),
        format!("outputs.dead_letters={}", file("dead")),
        format!("outputs.late_events={}", file("late")),
        "checkpoint=null".into(),
    ];
    sluice_host::manifest::with_overrides(&text, &sets).map_err(anyhow::Error::msg)
}

/// Apply `names` (pipeline, topic) and wait for all to end: the seconds
/// from the first apply to the last end.
async fn run(supervisor: &Supervisor, pipelines: &[(String, String)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    for (name, topic) in pipelines {
        supervisor.apply(None, &manifest(name, topic)?, false).await?;
    }
    let mut shown = Instant::now();
    // Per pipeline: its events read, since when, and whether it was
    // restarted for standing still.
    let mut moved: std::collections::HashMap<&str, (u64, Instant, bool)> = Default::default();
    loop {
        let mut running = Vec::new();
        for (name, topic) in pipelines {
            let status = supervisor.status(name).await?;
            match status.state {
                Phase::Stopped => {}
                Phase::Failed => anyhow::bail!("{name} failed: {:?}", status.trace),
                _ => running.push(format!("{name} ({topic}: {} events)", status.events_read)),
            }
            let seen = moved.entry(name).or_insert((status.events_read, Instant::now(), false));
            if status.events_read != seen.0 {
                (seen.0, seen.1) = (status.events_read, Instant::now());
            } else if status.state == Phase::Running && !seen.2 && seen.1.elapsed() > STALLED {
                // A stall seen once on Tansu (two of 20 at 60,000 records):
                // say where it stands, then restart it from its checkpoint.
                eprintln!(
                    "{name} stalled at {} events for {} s: partitions {:?}, waiting {:?}; restarting it",
                    status.events_read,
                    seen.1.elapsed().as_secs(),
                    status.partitions,
                    status.waiting
                );
                supervisor.resume(name).await?;
                seen.2 = true;
            }
        }
        if running.is_empty() {
            return Ok(started.elapsed().as_secs_f64());
        }
        if shown.elapsed() > Duration::from_secs(30) {
            eprintln!("still running: {}", running.join(", "));
            shown = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a running pipeline may read nothing before the bench calls it
/// stalled.
const STALLED: Duration = Duration::from_secs(30);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    // Quiet but for errors, unless RUST_LOG asks (say, for a stalled
    // pipeline: `RUST_LOG=sluice_host::source=trace`).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let n = env_or("SLUICE_BENCH_PIPELINES", 20)? as usize;
    let events = env_or("SLUICE_BENCH_EVENTS", 50_000)?;
    let config =
        Config { shape: Shape::Clicks, events, users: 2_000, rate: 100.0, max_delay: 20.0, ..Config::default() };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    let topics: Vec<String> = (0..=n).map(|i| unique(&format!("serve-{i}"))).collect();
    let produced = Instant::now();
    let producer = producer(BROKERS, &[("linger.ms", "20"), ("batch.num.messages", "10000")])?;
    for topic in &topics {
        create_topic(BROKERS, topic, 1)?;
        for (i, line) in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            send(&producer, topic, key_of(line).as_deref(), line)?;
            if i % 4096 == 0 {
                producer.poll(Duration::ZERO);
            }
        }
    }
    producer.flush(Duration::from_secs(600))?;
    println!(
        "produced {events} events to each of {} topics in {:.1} s",
        topics.len(),
        produced.elapsed().as_secs_f64()
    );

    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    tokio.block_on(async {
        let data = tempfile::tempdir()?;
        let supervisor = Supervisor::open(data.path(), Runtime::current()?).await?;
        let module = std::fs::read(root().join("target/modules/session-features.wasm"))?;
        supervisor.push_module("session-features", module, None).await?;
        // As `sluice serve` runs it: the API on a thread of its own.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let router = api::router(Arc::new(Api { supervisor: supervisor.clone(), token: None }));
        let server = api::Server::start(listener, router)?;
        let url = format!("http://{}", server.address());
        let before = resident();

        // The last topic is the lone pipeline's, so that the many do not
        // read a topic the broker has just served.
        let alone = [("alone".to_string(), topics[n].clone())];
        let secs = run(&supervisor, &alone).await?;
        let alone_rate = events as f64 / secs;
        println!("1 pipeline: {events} events in {secs:.2} s = {alone_rate:.0} events/s (apply to end)");

        let many: Vec<(String, String)> = (0..n).map(|i| (format!("p{i}"), topics[i].clone())).collect();
        let done = Arc::new(AtomicBool::new(false));
        // A client of its own, as another process would be.
        let prober = std::thread::spawn({
            let (done, names) = (done.clone(), many.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
            let client_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            move || {
                client_runtime.block_on(async move {
                    let client = reqwest::Client::new();
                    let (mut latencies, mut peak, mut i) = (Vec::new(), 0u64, 0usize);
                    while !done.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let response =
                            client.get(format!("{url}/pipelines/{}/status", names[i % names.len()])).send().await;
                        if response.is_ok_and(|r| r.status().is_success()) {
                            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                        }
                        peak = peak.max(resident());
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    (latencies, peak)
                })
            }
        });
        let secs = run(&supervisor, &many).await?;
        done.store(true, Ordering::Relaxed);
        let (mut latencies, peak) = prober.join().map_err(|_| anyhow::anyhow!("the prober panicked"))?;
        let total = (events * n as u64) as f64 / secs;
        println!(
            "{n} pipelines: {} events in {secs:.2} s = {total:.0} events/s in all, {:.0} each ({:.2}x one alone)",
            events * n as u64,
            total / n as f64,
            total / alone_rate
        );
        println!(
            "host memory: {:.0} MiB before, {:.0} MiB at the peak with {n} pipelines",
            before as f64 / (1 << 20) as f64,
            peak as f64 / (1 << 20) as f64
        );
        latencies.sort_by(f64::total_cmp);
        println!(
            "GET /pipelines/NAME/status while they ran: {} calls, p50 {:.2} ms, p99 {:.2} ms, worst {:.2} ms",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
        tokio::task::spawn_blocking(move || server.stop()).await??;
        supervisor.shutdown().await;
        anyhow::Ok(())
    })
}
