//! End-to-end throughput of the example pipelines: read a JSON-lines file,
//! decode, window, call the WebAssembly transform, write feature rows.
//!
//! `cargo bench -p sluice-host --bench pipeline` (after
//! `scripts/build-transforms`). Generates its inputs once (2,000,000 events,
//! 10,000 users, 1,000 events per second of event time, up to 20 s out of
//! order) into the target directory. `SLUICE_BENCH_EVENTS` changes the size;
//! `SLUICE_BENCH_ONLY=session-features` (or `tx-velocity`) runs one
//! pipeline, for profiling; `SLUICE_BENCH_MODULES=DIR` takes the modules
//! from `DIR` (a build that keeps the guest's function names for `perf`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_examples::{Config, Shape};
use sluice_host::manifest::Manifest;
use sluice_host::metrics::Metrics;
use sluice_host::pipeline;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    target.join("sluice-bench")
}

fn input(shape: Shape, events: u64) -> anyhow::Result<PathBuf> {
    let name = match shape {
        Shape::Clicks => "clicks",
        Shape::Transactions => "transactions",
    };
    let path = data_dir().join(format!("{name}-{events}.jsonl"));
    if !path.exists() {
        std::fs::create_dir_all(data_dir())?;
        let config = Config { shape, events, users: 10_000, rate: 1_000.0, max_delay: 20.0, ..Config::default() };
        let tmp = path.with_extension("tmp");
        sluice_examples::generate(&config, &mut std::io::BufWriter::new(std::fs::File::create(&tmp)?))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

fn run(example: &str, input: &Path) -> anyhow::Result<pipeline::Summary> {
    let modules = std::env::var_os("SLUICE_BENCH_MODULES").map_or_else(|| root().join("target/modules"), PathBuf::from);
    let out = data_dir().join(format!("out-{example}"));
    // Freeing the last run's 600 MB of output is not this run's work.
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let overrides = vec![
        format!("source.path={}", input.display()),
        format!("transform.module={}", modules.join(format!("{example}.wasm")).display()),
        format!("outputs.features.0.path={}/features.jsonl", out.display()),
        format!("outputs.dead_letters.0.path={}/dead-letters.jsonl", out.display()),
        format!("outputs.late_events.0.path={}/late-events.jsonl", out.display()),
    ];
    let manifest = Manifest::load(&root().join(format!("examples/{example}.yaml")), &overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    Ok(runtime.block_on(pipeline::run(manifest, Arc::new(Metrics::default())))?)
}

fn main() -> anyhow::Result<()> {
    sluice_host::alloc::tune();
    // `cargo test --benches` runs this with `--bench` absent: stay quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let events: u64 = match std::env::var("SLUICE_BENCH_EVENTS") {
        Ok(n) => n.parse()?,
        Err(_) if quick => 20_000,
        Err(_) => 2_000_000,
    };
    let only = std::env::var("SLUICE_BENCH_ONLY").ok();
    for (example, shape) in [("session-features", Shape::Clicks), ("tx-velocity", Shape::Transactions)] {
        if only.as_deref().is_some_and(|o| o != example) {
            continue;
        }
        let input = input(shape, events)?;
        let summary = run(example, &input)?;
        println!(
            "{example}: {} events in {:.2} s = {:.0} events/s ({} feature rows)",
            summary.events_read,
            summary.elapsed.as_secs_f64(),
            summary.events_per_second(),
            summary.feature_rows
        );
    }
    Ok(())
}
