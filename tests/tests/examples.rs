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

/// A Pareto-skewed stream (users by a Zipf law: of 2,000 the first makes an
/// eighth of the events, tens of thousands in a window) through the example
/// as shipped, default limits and all: every window's features are the
/// reference's, hot keys' and ordinary keys' alike, and nothing but the
/// malformed lines is dead-lettered.
fn check_skewed(example: Example) -> anyhow::Result<()> {
    let config = Config { events: 150_000, users: 2_000, rate: 50.0, skew: 1.0, ..example.config };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    let hot = String::from_utf8(text)?.lines().filter(|l| l.contains(r#""user_id":"u0""#)).count();
    assert!(hot > 15_000, "the first user is hot: {hot} events");
    let spec = sluice_tests::Spec { step: 1_000, ..example.spec };
    check(Example { config, spec, ..example })
}

#[test]
fn session_features_over_a_skewed_stream() -> anyhow::Result<()> {
    check_skewed(e2e::session_features())
}

#[test]
fn tx_velocity_over_a_skewed_stream() -> anyhow::Result<()> {
    check_skewed(e2e::tx_velocity())
}

/// A line longer than `events.max_bytes` is a dead letter with its first
/// 256 KiB and its size, and the lines after it are read as usual.
#[test]
fn a_line_over_the_limit_is_a_dead_letter_and_read_past() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let click =
        |user: &str, t: f64| format!(r#"{{"user_id":"{user}","item_id":"i1","category":"c1","timestamp":{t}}}"#);
    let long =
        format!(r#"{{"user_id":"u1","item_id":"{}","category":"c1","timestamp":1767225601}}"#, "x".repeat(3 << 20));
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, [click("u1", 1_767_225_600.0), long.clone(), click("u2", 1_767_225_602.0)].join("\n"))?;
    let out = run("session-features", &input, dir.path(), 1)?;
    assert_eq!(out.dead.len(), 1, "{:?}", out.dead);
    let d = &out.dead[0];
    assert_eq!(d["error_class"], "record_too_large");
    assert_eq!(d["position"]["offset"], 2);
    assert_eq!(d["truncated"], long.len());
    assert_eq!(d["raw"].as_str().map(str::len), Some(256 * 1024));
    assert!(d["message"].as_str().is_some_and(|m| m.contains("over events.max_bytes (1048576 bytes)")), "{d}");
    let keys: BTreeSet<&str> = out.features.iter().filter_map(|f| f["key"].as_str()).collect();
    assert_eq!(keys, BTreeSet::from(["u1", "u2"]));
    Ok(())
}
