//! RocksDB state with a budget far below what the state needs: every key
//! goes to disk and comes back many times over a run, and the features are
//! still the reference model's, row for row (the file source, so the run
//! is deterministic; the memory backend passes the same check in the
//! `sluice-tests` end-to-end suite).

mod common;

use sluice_examples::Config;
use sluice_host::metrics::Metrics;
use sluice_tests::e2e::{self, actual_rows, assert_rows, expected, now_ms};
use sluice_tests::jsonl;

#[test]
fn rocksdb_state_beyond_its_budget_gives_the_reference_features() -> anyhow::Result<()> {
    let example = e2e::session_features();
    // A few KB of state for each of 1,000 users at the peak, against
    // 1 MiB of decoded keys for each of the two workers (half of 4MiB).
    let config = Config { events: 40_000, users: 1_000, rate: 20.0, ..example.config };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    let text = String::from_utf8(text)?;
    let input = tempfile::NamedTempFile::new()?;
    std::fs::write(input.path(), &text)?;
    let step = format!("source.step={}", example.spec.step);
    let state = "state={backend: rocksdb, memory: 4MiB}".to_string();
    let run = common::run_example("session-features", &text, &[step.as_str(), state.as_str(), "parallelism=2"])?;

    let spilled = Metrics::get(&run.metrics.state_spilled);
    let loaded = Metrics::get(&run.metrics.state_loaded);
    assert!(spilled > 5_000 && loaded > 5_000, "keys spilled {spilled}, loaded {loaded}: the budget was not binding");
    let parsed = jsonl::parse_file(input.path(), example.fields, now_ms())?;
    let want = expected(&parsed, &example.spec, &example.compute);
    assert!(want.rows.iter().any(|r| r.4 == "late"), "late updates are exercised");
    assert_rows("session-features on RocksDB", &actual_rows(&run.features), &want.rows);
    Ok(())
}
