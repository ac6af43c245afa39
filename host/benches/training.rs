//! Training sets at scale: `sluice training-set` joining 1,000,000 labels
//! (`SLUICE_BENCH_LABELS`) with the offline table session-features writes
//! over the pipeline bench's 2,000,000 clicks (`SLUICE_BENCH_EVENTS`;
//! 10,000 users, 1,000 a second of event time).
//!
//! `cargo bench -p sluice-host --bench training` (after
//! `scripts/build-transforms`). The table is made by the pipeline run in
//! this process into an Iceberg table under the bench's data directory
//! (its windows/s are the online path's figure); the labels once (a CSV
//! file: a user, a time uniform over the clicks' span and ten minutes
//! after, a carried outcome). Then each mode runs as the binary, in a
//! process of its own, with the default memory limit (2048 MiB) and with
//! 512 MiB (its sorts spill): wall time, labels/s and the process's peak
//! resident memory (sampled every 20 ms) of each. The exact mode's
//! labels/s are label-windows computed per second, against the
//! pipeline's windows/s.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{USERS, data_dir, input, root};
use rand::{Rng, SeedableRng};
use sluice_examples::Shape;
use sluice_host::manifest::Manifest;
use sluice_host::pipeline::{self, Plan};
use sluice_host::runtime::Runtime;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `name` from the environment, else `default`.
fn count(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// session-features over `clicks` into an Iceberg table in `dir` (made
/// again each run: its time is the online path's figure): the manifest
/// that names it (the view), the windows it computed and its time.
fn offline_table(clicks: &Path, dir: &Path) -> anyhow::Result<(PathBuf, u64, f64)> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let overrides = vec![
        format!("source.path={}", clicks.display()),
        format!("transform.module={}", root().join("target/modules/session-features.wasm").display()),
        format!(
            "outputs.features.0={{type: iceberg, warehouse: '{}', namespace: bench, table: session_features}}",
            dir.join("warehouse").display()
        ),
        format!("outputs.dead_letters.0.path={}", dir.join("dead-letters.jsonl").display()),
        format!("outputs.late_events.0.path={}", dir.join("late-events.jsonl").display()),
    ];
    let manifest = Manifest::load(&root().join("examples/session-features.yaml"), &overrides)?;
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let runtime = Runtime::new(tokio.handle().clone())?;
    let summary = tokio.block_on(pipeline::run(Plan::new(manifest.lower(), &runtime)?, &runtime))?.0;
    let view = dir.join("session-features.yaml");
    std::fs::write(&view, serde_yaml::to_string(&manifest)?)?;
    Ok((view, summary.feature_rows, summary.elapsed.as_secs_f64()))
}

/// `labels` labels over the clicks' time and ten minutes after, once.
fn labels(clicks: &Path, labels: u64) -> anyhow::Result<PathBuf> {
    let path = data_dir().join(format!("labels-{labels}.csv"));
    if path.exists() {
        return Ok(path);
    }
    let mut first = f64::MAX;
    let mut last = f64::MIN;
    for line in std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(clicks)?)) {
        if let Some(t) = serde_json::from_str::<serde_json::Value>(&line?).ok().and_then(|v| v["timestamp"].as_f64()) {
            first = first.min(t);
            last = last.max(t);
        }
    }
    let (from, to) = ((first * 1000.0) as i64, (last * 1000.0) as i64 + 600_000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(29);
    let tmp = path.with_extension("tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    std::io::Write::write_all(&mut out, b"user_id,at,outcome\n")?;
    for _ in 0..labels {
        let line =
            format!("u{},{},{}\n", rng.random_range(0..USERS), rng.random_range(from..to), rng.random_range(0..2u8));
        std::io::Write::write_all(&mut out, line.as_bytes())?;
    }
    std::io::Write::flush(&mut out)?;
    drop(out);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Peak resident memory (`VmHWM`) of process `pid`, MiB, while it lives.
fn peak_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches(" kB").trim();
    kib.parse::<u64>().ok().map(|k| k / 1024)
}

/// One `sluice training-set`: wall time and peak memory.
fn training_set(
    labels: &Path,
    view: &Path,
    out: &Path,
    mode: &str,
    memory_mib: u64,
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("training-set")
        .arg("--labels")
        .arg(labels)
        .args(["--key", "user_id", "--time", "at", "--view"])
        .arg(view)
        .arg("--out")
        .arg(out)
        .args(["--mode", mode, "--memory-mib", &memory_mib.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut peak = 0;
    while child.try_wait()?.is_none() {
        peak = peak_mib(child.id()).unwrap_or(peak).max(peak);
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "sluice training-set failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("  {line}");
    }
    Ok((elapsed, peak))
}

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs this with `--bench` absent: stay quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let events = count("SLUICE_BENCH_EVENTS", if quick { 20_000 } else { 2_000_000 });
    let label_count = count("SLUICE_BENCH_LABELS", if quick { 10_000 } else { 1_000_000 });
    let clicks = input(Shape::Clicks, events, USERS, 0.0)?;
    let (view, online_rows, online_seconds) = offline_table(&clicks, &data_dir().join(format!("training-{events}")))?;
    let labels = labels(&clicks, label_count)?;
    let out = data_dir().join("training-set.parquet");
    println!(
        "{label_count} labels against {online_rows} feature rows (session-features over {events} clicks, \
         sliding 30 min every 1 min)"
    );
    for (mode, memory_mib) in [("as-of", 2048), ("as-of", 512), ("exact", 2048), ("exact", 512)] {
        let (elapsed, peak) = training_set(&labels, &view, &out, mode, memory_mib)?;
        println!(
            "{mode}, memory limit {memory_mib} MiB: {:.2} s = {:.0} labels/s, peak memory {peak} MiB",
            elapsed.as_secs_f64(),
            label_count as f64 / elapsed.as_secs_f64()
        );
    }
    println!(
        "online (the pipeline that made the table): {online_rows} windows in {online_seconds:.2} s = {:.0} windows/s",
        online_rows as f64 / online_seconds
    );
    Ok(())
}
