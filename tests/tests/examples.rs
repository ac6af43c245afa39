//! End to end: the `sluice` binary runs each example manifest as shipped
//! (from the repository root, only input and outputs overridden) over a
//! generated stream with malformed, out-of-order, late-but-allowed and too-
//! late events; every feature row, dead letter and late event must be what
//! the reference model and feature functions say.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sluice_examples::Config;
use sluice_tests::e2e::{self, Example, actual_rows, assert_rows, expected, file_outputs, now_ms, run_to_end};
use sluice_tests::jsonl;

struct Outputs {
    features: Vec<Value>,
    dead: Vec<Value>,
    late: Vec<Value>,
}

fn run(example: &str, input: &Path, dir: &Path, step: usize) -> anyhow::Result<Outputs> {
    let (input, step) = (input.display().to_string(), step.to_string());
    let sets = [("source.path", input.as_str()), ("source.step", step.as_str()), ("outputs", &file_outputs(dir))];
    run_to_end(example, &sets)?;
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

fn check(example: Example) -> anyhow::Result<()> {
    let Example { name, config, fields, spec, compute } = example;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    generate(&config, &input)?;
    let out = run(name, &input, dir.path(), spec.step)?;
    let parsed = jsonl::parse_file(&input, fields, now_ms())?;
    let want = expected(&parsed, &spec, &compute);
    assert!(want.rows.iter().any(|r| r.4 == "late"), "{name}: no late updates exercised");
    assert_rows(name, &actual_rows(&out.features), &want.rows);
    assert!(!want.dead.is_empty() && !want.late.is_empty(), "the input exercises dead letters and late events");
    // Files number their lines from 1.
    let lines = |s: &BTreeSet<i64>| s.iter().map(|i| i + 1).collect::<BTreeSet<i64>>();
    assert_eq!(offsets(&out.dead), lines(&want.dead), "{name}: dead-letter lines");
    assert_eq!(offsets(&out.late), lines(&want.late), "{name}: late-event lines");
    // Dead letters keep the raw line and say why.
    for d in &out.dead {
        assert!(d["raw"].is_string() && d["error_class"].is_string() && d["message"].is_string(), "{d}");
    }
    Ok(())
}

#[test]
fn session_features_end_to_end() -> anyhow::Result<()> {
    check(e2e::session_features())
}

#[test]
fn tx_velocity_end_to_end() -> anyhow::Result<()> {
    check(e2e::tx_velocity())
}

#[test]
fn user_session_end_to_end() -> anyhow::Result<()> {
    check(e2e::user_session())
}
