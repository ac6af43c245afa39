//! End to end: the `sluice` binary runs each example manifest as shipped
//! (from the repository root, only input and outputs overridden) over a
//! generated stream with malformed, out-of-order, late-but-allowed and too-
//! late events; every feature row, dead letter and late event must be what
//! the reference model and feature functions say.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sluice_examples::{Config, Shape};
use sluice_tests::e2e::{Compute, actual_rows, assert_rows, expected, now_ms, root, sluice};
use sluice_tests::jsonl::{self, Type};
use sluice_tests::{Kind, Spec, features};

struct Outputs {
    features: Vec<Value>,
    dead: Vec<Value>,
    late: Vec<Value>,
}

fn run(example: &str, input: &Path, dir: &Path, step: usize) -> anyhow::Result<Outputs> {
    let d = dir.display();
    let status = Command::new(sluice())
        .current_dir(root())
        .args(["run", &format!("examples/{example}.yaml")])
        .args(["--set", &format!("source.path={}", input.display())])
        .args(["--set", &format!("source.step={step}")])
        .args(["--set", &format!("outputs.features.0.path={d}/features.jsonl")])
        .args(["--set", &format!("outputs.dead_letters.0.path={d}/dead.jsonl")])
        .args(["--set", &format!("outputs.late_events.0.path={d}/late.jsonl")])
        .output()?;
    anyhow::ensure!(
        status.status.success(),
        "sluice run {example} failed ({}):\n{}",
        status.status,
        String::from_utf8_lossy(&status.stderr)
    );
    Ok(Outputs {
        features: jsonl::read_output(&dir.join("features.jsonl")),
        dead: jsonl::read_output(&dir.join("dead.jsonl")),
        late: jsonl::read_output(&dir.join("late.jsonl")),
    })
}

fn generate(config: &Config, path: &Path) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    sluice_examples::generate(config, &mut file)?;
    Ok(())
}

fn offsets(records: &[Value]) -> BTreeSet<i64> {
    records.iter().filter_map(|r| r["position"]["offset"].as_i64()).collect()
}

fn check(example: &str, config: Config, fields: &[(&str, Type)], spec: Spec, compute: &Compute) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    generate(&config, &input)?;
    let out = run(example, &input, dir.path(), spec.step)?;
    let parsed = jsonl::parse_file(&input, fields, now_ms())?;
    let want = expected(&parsed, &spec, compute);
    assert!(want.rows.iter().any(|r| r.4 == "late"), "{example}: no late updates exercised");
    assert_rows(example, &actual_rows(&out.features), &want.rows);
    assert!(!want.dead.is_empty() && !want.late.is_empty(), "the input exercises dead letters and late events");
    // Files number their lines from 1.
    let lines = |s: &BTreeSet<i64>| s.iter().map(|i| i + 1).collect::<BTreeSet<i64>>();
    assert_eq!(offsets(&out.dead), lines(&want.dead), "{example}: dead-letter lines");
    assert_eq!(offsets(&out.late), lines(&want.late), "{example}: late-event lines");
    // Dead letters keep the raw line and say why.
    for d in &out.dead {
        assert!(d["raw"].is_string() && d["error_class"].is_string() && d["message"].is_string(), "{d}");
    }
    Ok(())
}

/// A stream with every kind of trouble: up to 20 s of ordinary disorder
/// (within the 30 s out-of-orderness), 3% of events 72 s to an hour late
/// (some within the 1 min lateness of their windows, some past it), 1%
/// malformed. The watermark moves every 100 records (20 s at 5 events/s).
fn config(shape: Shape, events: u64, users: u64, rate: f64) -> Config {
    Config {
        shape,
        events,
        users,
        rate,
        max_delay: 20.0,
        late: 0.03,
        late_delay: 3_600.0,
        malformed: 0.01,
        ..Config::default()
    }
}

#[test]
fn session_features_end_to_end() -> anyhow::Result<()> {
    let spec = Spec {
        kind: Kind::Sliding { size: 1_800_000, slide: 60_000 },
        on_event: false,
        lateness: 60_000,
        out_of_orderness: 30_000,
        step: 100,
    };
    let c = config(Shape::Clicks, 12_000, 40, 5.0);
    check("session-features", c, &[("item_id", Type::String), ("category", Type::String)], spec, &|e, _| {
        features::session_features(e)
    })
}

#[test]
fn tx_velocity_end_to_end() -> anyhow::Result<()> {
    let spec = Spec {
        kind: Kind::Tumbling { size: 300_000 },
        on_event: false,
        lateness: 60_000,
        out_of_orderness: 30_000,
        step: 100,
    };
    let c = config(Shape::Transactions, 12_000, 40, 5.0);
    check("tx-velocity", c, &[("amount", Type::Number), ("merchant_id", Type::String)], spec, &|e, _| {
        features::tx_velocity(e)
    })
}

#[test]
fn user_session_end_to_end() -> anyhow::Result<()> {
    let spec = Spec {
        kind: Kind::Session { gap: 900_000 },
        on_event: true,
        lateness: 60_000,
        out_of_orderness: 30_000,
        step: 20,
    };
    // Sparse users (a click every ~10 min each), so sessions open, merge
    // and close.
    let c = config(Shape::Clicks, 8_000, 400, 0.6);
    check("user-session", c, &[], spec, &|_, t| features::user_session(t))
}
