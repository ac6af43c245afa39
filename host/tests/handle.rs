//! A pipeline held by its handle, against the real broker and a real
//! Redis: stop modes, status, and a stop that reaches a sink stuck
//! retrying.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value};
use sluice_examples::kafka::{create_topic, produce_lines};
use sluice_examples::{Config, Shape};
use sluice_host::manifest::Manifest;
use sluice_host::metrics::Metrics;
use sluice_host::pipeline::{Handle, Pipeline, Plan, State, StopMode};
use sluice_host::runtime::Runtime;
use sluice_tests::e2e::{canonical, root, wait_until};
use sluice_tests::features;

const BROKERS: &str = "127.0.0.1:9092";

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("sluice-handle-{what}-{}-{nanos}", std::process::id())
}

fn tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?)
}

/// `examples/tx-velocity.yaml` with `overrides`, outputs in `dir`.
fn start(tokio: &tokio::runtime::Runtime, dir: &Path, overrides: &[String]) -> anyhow::Result<Handle> {
    let d = dir.display();
    let mut all = vec![
        format!("transform.module={}", common::module("tx-velocity").display()),
        format!("outputs.features.0.path={d}/features.jsonl"),
        format!("outputs.dead_letters.0.path={d}/dead.jsonl"),
        format!("outputs.late_events.0.path={d}/late.jsonl"),
    ];
    all.extend(overrides.iter().cloned());
    let manifest = Manifest::load(&root().join("examples/tx-velocity.yaml"), &all)?;
    let runtime = Runtime::new(tokio.handle().clone())?;
    let plan = Plan::new(manifest.lower(), &runtime)?;
    Ok(tokio.block_on(Pipeline::start(plan, &runtime))?)
}

/// An unbounded Kafka source stopped with [`StopMode::Drain`]: every
/// window fires with all its events, as at the end of a bounded input, and
/// the pipeline ends finished with its last barrier committed. The events
/// are in order within the out-of-orderness (none late, none malformed),
/// so each key's 5-minute windows are its events grouped by time.
#[test]
fn a_drain_fires_every_open_window() -> anyhow::Result<()> {
    let topic = unique("drain");
    create_topic(BROKERS, &topic, 2)?;
    let config = Config {
        shape: Shape::Transactions,
        events: 3_000,
        users: 20,
        rate: 2.0,
        max_delay: 10.0,
        late: 0.0,
        malformed: 0.0,
        ..Config::default()
    };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    produce_lines(BROKERS, &topic, &text)?;
    let mut want: BTreeMap<(String, i64), Vec<Value>> = BTreeMap::new();
    for line in std::str::from_utf8(&text)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        let ms = (v["timestamp"].as_f64().unwrap_or_default() * 1000.0).round() as i64;
        let key = v["user_id"].as_str().unwrap_or_default().to_string();
        want.entry((key, ms - ms.rem_euclid(300_000))).or_default().push(v);
    }

    let dir = tempfile::tempdir()?;
    let tokio = tokio()?;
    let source = format!(
        "source={{type: kafka, brokers: '{BROKERS}', topics: ['{topic}'], group: '{topic}', start: earliest, commit_interval: 200ms}}"
    );
    let handle = start(&tokio, dir.path(), &[source])?;
    let metrics = handle.metrics().clone();
    wait_until("every event read", Duration::from_secs(60), Duration::from_millis(20), || {
        Ok(Metrics::get(&metrics.events_read) == config.events)
    })?;
    assert_eq!(handle.status().state, State::Running);
    handle.stop(StopMode::Drain);
    let summary = tokio.block_on(handle.join())?;
    let status = handle.status();
    assert_eq!(status.state, State::Finished);
    assert_eq!(summary.events_read, config.events);
    assert_eq!(summary.late_events, 0);
    assert!(status.last_barrier.is_some_and(|b| b >= 1), "{status:?}");

    let mut got = BTreeMap::new();
    for row in sluice_tests::jsonl::read_output(&dir.path().join("features.jsonl")) {
        let key = row["key"].as_str().unwrap_or_default().to_string();
        let window = (key, row["window_start"].as_i64().unwrap_or_default());
        let features = canonical(row["features"].as_object().unwrap_or(&Map::new()));
        assert!(got.insert(window.clone(), features).is_none(), "window {window:?} fired twice");
    }
    assert_eq!(got.len(), want.len(), "windows fired");
    for (window, events) in &want {
        let events: Vec<&Value> = events.iter().collect();
        assert_eq!(got.get(window), Some(&canonical(&features::tx_velocity(&events))), "window {window:?}");
    }
    Ok(())
}

/// A redis-server of this test's own, on a free port.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()?;
        let url = format!("redis://127.0.0.1:{port}");
        wait_until("redis-server up", Duration::from_secs(10), Duration::from_millis(20), || {
            Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        })?;
        Ok(PrivateRedis { child, url })
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis goes away for good before the pipeline's first write to it (the
/// events are produced after): the sink retries without end. A graceful
/// stop ends the retries and fails with the reason (nothing after the
/// failed write is committed); a stop at once abandons the write in flight
/// and ends cleanly. Neither hangs.
#[test]
fn a_stop_reaches_a_sink_stuck_retrying() -> anyhow::Result<()> {
    let config = Config { shape: Shape::Transactions, events: 2_000, users: 20, rate: 2.0, ..Config::default() };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    for (mode, fails) in [(StopMode::Checkpoint, true), (StopMode::Now, false)] {
        let dir = tempfile::tempdir()?;
        let topic = unique("stuck");
        create_topic(BROKERS, &topic, 1)?;
        let redis = PrivateRedis::start()?;
        let tokio = tokio()?;
        let outputs = format!("outputs.features.0={{type: redis, url: '{}', key: 'f:{{key}}', ttl: 10m}}", redis.url);
        let source = format!(
            "source={{type: kafka, brokers: '{BROKERS}', topics: ['{topic}'], group: '{topic}', start: earliest}}"
        );
        let handle = start(&tokio, dir.path(), &[source, outputs])?;
        drop(redis);
        produce_lines(BROKERS, &topic, &text)?;
        let metrics = handle.metrics().clone();
        wait_until("the sink retrying", Duration::from_secs(60), Duration::from_millis(20), || {
            Ok(Metrics::get(&metrics.sink_retries) > 0)
        })?;
        handle.stop(mode);
        let joined = tokio.block_on(async { tokio::time::timeout(Duration::from_secs(30), handle.join()).await });
        let Ok(outcome) = joined else { panic!("{mode:?}: the pipeline did not stop") };
        match outcome {
            Err(e) if fails => assert!(e.to_string().contains("given up: the pipeline is stopping"), "{e}"),
            Ok(_) if !fails => assert_eq!(handle.status().state, State::Finished),
            other => panic!("{mode:?}: {other:?}"),
        }
    }
    Ok(())
}

/// A bounded run's progress (what `sluice run` shows at a terminal): a
/// file read to its end has read all its bytes.
#[test]
fn a_file_run_reports_its_progress_in_bytes() -> anyhow::Result<()> {
    let config = Config { shape: Shape::Transactions, events: 1_000, users: 10, ..Config::default() };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, &text)?;
    let tokio = tokio()?;
    let handle = start(&tokio, dir.path(), &[format!("source.path={}", input.display())])?;
    let metrics = handle.metrics().clone();
    tokio.block_on(handle.join())?;
    assert_eq!(Metrics::get(&metrics.source_total), text.len() as u64);
    assert_eq!(Metrics::get(&metrics.source_read), text.len() as u64);
    assert_eq!(Metrics::get(&metrics.events_read), config.events);
    Ok(())
}
