//! End-to-end throughput of the example pipelines: read a JSON-lines file,
//! decode, window, call the WebAssembly transform, write feature rows.
//!
//! `cargo bench -p sluice-host --bench pipeline` (after
//! `scripts/build-transforms`). Generates its inputs once (2,000,000 events,
//! 10,000 users, 1,000 events per second of event time, up to 20 s out of
//! order) into the target directory, twice: users evenly, and skewed (a
//! Zipf law, the discrete Pareto: the first user makes a tenth of the
//! events). Each pipeline runs over both, and the report gives the time,
//! events/s and peak memory of each, and the skewed run's time over the
//! even one's. `SLUICE_BENCH_EVENTS` changes the size;
//! `SLUICE_BENCH_ONLY=session-features` (or `tx-velocity`) runs one
//! pipeline, for profiling (`many-keys`: the last part alone);
//! `SLUICE_BENCH_MODULES=DIR` takes the modules
//! from `DIR` (a build that keeps the guest's function names for `perf`).
//!
//! Then Avro against JSON (`SLUICE_BENCH_ONLY=avro`): session-features over
//! the even clicks as JSON lines and as an Avro object container file of
//! the same events (one schema: the key, the time and the two declared
//! fields; no codec), three rounds interleaved: events/s of each, and
//! Avro's median over JSON's.
//!
//! Python against Rust (`SLUICE_BENCH_ONLY=python`): session-features with
//! the Rust module, with the Python one (`session-features-python`) and,
//! when `scripts/setup-pyflink` has installed PyFlink, seed 000's PyFlink
//! job (`pyflink/session_features_job.py`), three rounds interleaved,
//! each in a process of its own: events/s and peak memory, and the Python
//! module's median over the Rust one's (100,000 even clicks,
//! `SLUICE_BENCH_PYTHON_EVENTS`) and over PyFlink's (all three over 2,000
//! of them, `SLUICE_BENCH_PYFLINK_EVENTS`: PyFlink evaluates a few hundred
//! windows a second); then each module's start-up: compiling it with an
//! empty code cache, loading it from a warm one, and one more instance
//! (PyFlink's: the job over no events).
//!
//! Last, state larger than memory: session-features over the same number
//! of clicks from 200,000 users (`SLUICE_BENCH_USERS`), with memory state
//! and then with RocksDB state within 32MiB (`SLUICE_BENCH_BUDGET`), far
//! below what the memory run holds: events/s and peak memory of each.

mod common;
mod pyflink;

use std::path::{Path, PathBuf};

use common::{USERS, data_dir, input, root};
use sluice_examples::Shape;
use sluice_host::manifest::Manifest;
use sluice_host::pipeline::{self, Plan};
use sluice_host::runtime::Runtime;

/// Users evenly, or by a Zipf law of exponent 1.
const SKEWS: [(&str, f64); 2] = [("even", 0.0), ("skewed", 1.0)];

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Avro container file of the clicks of `json` (made once, beside it).
fn avro_input(json: &Path) -> anyhow::Result<PathBuf> {
    use apache_avro::types::Value;
    const SCHEMA: &str = r#"{"type": "record", "name": "click", "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "timestamp", "type": "double"},
        {"name": "item_id", "type": "string"},
        {"name": "category", "type": "string"}]}"#;
    let path = json.with_extension("avro");
    if path.exists() {
        return Ok(path);
    }
    let schema = apache_avro::Schema::parse_str(SCHEMA)?;
    let mut writer = apache_avro::Writer::new(&schema, std::io::BufWriter::new(std::fs::File::create(&path)?));
    for line in std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(json)?)) {
        let event: serde_json::Value = serde_json::from_str(&line?)?;
        let text = |name: &str| Value::String(event[name].as_str().unwrap_or_default().to_string());
        writer.append(Value::Record(vec![
            ("user_id".into(), text("user_id")),
            ("timestamp".into(), Value::Double(event["timestamp"].as_f64().unwrap_or_default())),
            ("item_id".into(), text("item_id")),
            ("category".into(), text("category")),
        ]))?;
    }
    std::io::Write::flush(&mut writer.into_inner()?)?;
    Ok(path)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

fn run(example: &str, input: &Path, state: &str, format: &str) -> anyhow::Result<pipeline::Summary> {
    let modules = std::env::var_os("SLUICE_BENCH_MODULES").map_or_else(|| root().join("target/modules"), PathBuf::from);
    let out = data_dir().join(format!("out-{example}"));
    // Freeing the last run's 600 MB of output is not this run's work.
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let mut overrides = vec![
        format!("source.path={}", input.display()),
        format!("transform.module={}", modules.join(format!("{example}.wasm")).display()),
        format!("outputs.features.0.path={}/features.jsonl", out.display()),
        format!("outputs.dead_letters.0.path={}/dead-letters.jsonl", out.display()),
        format!("outputs.late_events.0.path={}/late-events.jsonl", out.display()),
    ];
    if !state.is_empty() {
        overrides.push(format!("state={state}"));
    }
    if !format.is_empty() {
        overrides.push(format!("events.format={format}"));
    }
    let manifest = Manifest::load(&root().join(format!("examples/{example}.yaml")), &overrides)?;
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let runtime = Runtime::new(tokio.handle().clone())?;
    let plan = Plan::new(manifest.lower(), &runtime)?;
    Ok(tokio.block_on(pipeline::run(plan, &runtime))?.0)
}

/// Peak resident memory of this process (`VmHWM`), MiB.
fn peak_memory_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB").and_then(|n| n.trim().parse::<u64>().ok()));
    kib.unwrap_or(0) / 1024
}

/// Set for a child that runs one pipeline:
/// `example<TAB>input<TAB>state<TAB>format` (the manifest's `state` and
/// `events.format`, empty for the default).
const CHILD: &str = "SLUICE_BENCH_CHILD";

fn main() -> anyhow::Result<()> {
    sluice_host::alloc::tune();
    if let Ok(child) = std::env::var(CHILD) {
        let mut parts = child.split('\t');
        let mut part = || parts.next().unwrap_or("");
        let (example, input, state, format) = (part(), part(), part(), part());
        let summary = run(example, Path::new(input), state, format)?;
        println!(
            "{} {} events in {:.2} s = {:.0} events/s ({} feature rows, {} dead letters), peak memory {} MiB",
            summary.elapsed.as_secs_f64(),
            summary.events_read,
            summary.elapsed.as_secs_f64(),
            summary.events_per_second(),
            summary.feature_rows,
            summary.dead_letters,
            peak_memory_mib()
        );
        return Ok(());
    }
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
        let mut seconds = Vec::new();
        for (users, skew) in SKEWS {
            let input = input(shape, events, USERS, skew)?;
            let (seconds_taken, report) = child(example, &input, "", "")?;
            println!("{example} ({users} users): {report}");
            seconds.push(seconds_taken);
        }
        if let [even, skewed] = seconds[..] {
            println!("{example}: the skewed run took {:.2}x the even one's time", skewed / even.max(1e-9));
        }
    }
    if only.as_deref().is_none_or(|o| o == "avro") {
        let json = input(Shape::Clicks, events, USERS, 0.0)?;
        let avro = avro_input(&json)?;
        let rounds = if quick { 1 } else { 3 };
        let (mut json_rates, mut avro_rates) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (format, path, rates) in [("json", &json, &mut json_rates), ("avro", &avro, &mut avro_rates)] {
                let (seconds_taken, report) = child("session-features", path, "", format)?;
                println!("session-features ({format}): {report}");
                rates.push(events as f64 / seconds_taken.max(1e-9));
            }
        }
        let (json_rate, avro_rate) = (median(json_rates), median(avro_rates));
        println!(
            "session-features: Avro {avro_rate:.0} events/s, JSON {json_rate:.0} events/s (medians of {rounds}): \
             Avro {:.2}x JSON",
            avro_rate / json_rate.max(1e-9)
        );
    }
    if only.as_deref().is_none_or(|o| o == "python") {
        python_against_rust(quick)?;
    }
    if only.as_deref().is_none_or(|o| o == "many-keys") {
        let users = match std::env::var("SLUICE_BENCH_USERS") {
            Ok(n) => n.parse()?,
            Err(_) if quick => 2_000,
            Err(_) => 200_000,
        };
        let budget = std::env::var("SLUICE_BENCH_BUDGET").unwrap_or_else(|_| "32MiB".into());
        let input = input(Shape::Clicks, events, users, 0.0)?;
        let rocksdb = format!("{{backend: rocksdb, memory: {budget}, path: '{}'}}", data_dir().join("state").display());
        for state in ["{backend: memory}", rocksdb.as_str()] {
            let (_, report) = child("session-features", &input, state, "")?;
            println!("session-features ({users} users, state {state}): {report}");
        }
    }
    Ok(())
}

/// The Python session-features module against the Rust one, and against
/// the seed's PyFlink job when there is a PyFlink to run it: throughput,
/// peak memory and start-up (see the module's documentation).
fn python_against_rust(quick: bool) -> anyhow::Result<()> {
    let count = |name: &str, quick_default: u64, default: u64| -> anyhow::Result<u64> {
        match std::env::var(name) {
            Ok(n) => Ok(n.parse()?),
            Err(_) if quick => Ok(quick_default),
            Err(_) => Ok(default),
        }
    };
    let rounds = if quick { 1 } else { 3 };
    let events = count("SLUICE_BENCH_PYTHON_EVENTS", 5_000, 100_000)?;
    let [rust, python, _] = interleaved(&input(Shape::Clicks, events, USERS, 0.0)?, events, rounds, None)?;
    println!(
        "session-features: Python {python:.0} events/s, Rust {rust:.0} events/s (medians of {rounds}): Python {:.3}x Rust",
        python / rust.max(1e-9)
    );
    match pyflink::python(quick) {
        // PyFlink evaluates a few hundred windows a second: the three
        // compare on fewer events.
        Some(pyflink_python) => {
            let events = count("SLUICE_BENCH_PYFLINK_EVENTS", 2_000, 2_000)?;
            let input = input(Shape::Clicks, events, USERS, 0.0)?;
            let [rust, python, peer] = interleaved(&input, events, rounds, Some(&pyflink_python))?;
            println!(
                "session-features over {events} events: Python {python:.0} events/s, Rust {rust:.0}, the seed's \
                 PyFlink job {peer:.0} (medians of {rounds}): Python {:.1}x PyFlink, Rust {:.1}x PyFlink",
                python / peer.max(1e-9),
                rust / peer.max(1e-9)
            );
            // Start-up: the same job over no events.
            let empty = data_dir().join("empty.jsonl");
            std::fs::write(&empty, "")?;
            let run = pyflink::run(&pyflink_python, &empty, &data_dir().join("out-pyflink"))?;
            println!(
                "PyFlink: start-up (the job over no events) {:.2} s, of which the job itself {:.2} s, peak memory {} \
                 MiB",
                run.wall_seconds, run.net_seconds, run.peak_mib
            );
        }
        None if !quick => {
            println!("PyFlink: not measured (no {}: scripts/setup-pyflink installs it)", pyflink::PYTHON_LOCATION)
        }
        None => {}
    }
    let modules = std::env::var_os("SLUICE_BENCH_MODULES").map_or_else(|| root().join("target/modules"), PathBuf::from);
    let limits = sluice_host::wasm::Limits { timeout: std::time::Duration::from_secs(10), memory_bytes: 256 << 20 };
    for example in PYTHON_PAIR {
        let path = modules.join(format!("{example}.wasm"));
        let cache = tempfile::tempdir()?;
        let load = || -> anyhow::Result<(f64, sluice_host::wasm::Module)> {
            let engine = sluice_host::wasm::Engine::cached(cache.path())?;
            let started = std::time::Instant::now();
            let module = sluice_host::wasm::Module::load(&engine, &path, sluice_host::wasm::Kind::Window, limits)?;
            Ok((started.elapsed().as_secs_f64(), module))
        };
        let (cold, _) = load()?;
        let (warm, module) = load()?;
        let started = std::time::Instant::now();
        drop(module.instantiate().map_err(|e| anyhow::anyhow!("{e:#}"))?);
        let instance = started.elapsed().as_secs_f64();
        println!(
            "{example}: {:.1} MB; start-up: compiled {cold:.2} s (empty code cache), loaded {:.0} ms (warm cache), \
             one more instance {:.1} ms",
            std::fs::metadata(&path)?.len() as f64 / 1e6,
            warm * 1e3,
            instance * 1e3
        );
    }
    Ok(())
}

/// Session-features with the Rust module and with the Python one.
const PYTHON_PAIR: [&str; 2] = ["session-features", "session-features-python"];

/// The Rust and the Python session-features over `input` (`events`
/// clicks), and the seed's PyFlink job when given its Python, in turn for
/// `rounds` rounds: the median events/s of each, in that order (0 for
/// PyFlink when not run).
fn interleaved(input: &Path, events: u64, rounds: usize, pyflink_python: Option<&Path>) -> anyhow::Result<[f64; 3]> {
    let mut rates = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (example, rates) in PYTHON_PAIR.iter().zip(&mut rates) {
            let (seconds_taken, report) = child(example, input, "", "")?;
            println!("{example}: {report}");
            rates.push(events as f64 / seconds_taken.max(1e-9));
        }
        if let Some(python) = pyflink_python {
            let run = pyflink::run(python, input, &data_dir().join("out-pyflink"))?;
            println!("PyFlink (the seed's job): {run}");
            rates[2].push(events as f64 / run.net_seconds.max(1e-9));
        }
    }
    Ok(rates.map(median))
}

/// Run one pipeline in a process of its own, for its own peak memory: its
/// seconds, and its report.
fn child(example: &str, input: &Path, state: &str, format: &str) -> anyhow::Result<(f64, String)> {
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .env(CHILD, format!("{example}\t{}\t{state}\t{format}", input.display()))
        .output()?;
    let report = String::from_utf8(child.stdout)?;
    anyhow::ensure!(child.status.success(), "{example}: {}", String::from_utf8_lossy(&child.stderr));
    let seconds: f64 = report.split_whitespace().next().unwrap_or("0").parse()?;
    Ok((seconds, report.split_once(' ').map_or("", |r| r.1).trim().to_string()))
}
