//! A Python module (transforms/misbehave-python, built with the Python
//! SDK) among ordinary windows: a window whose code raises is a dead letter
//! carrying the Python traceback; one that loops is stopped by the host's
//! deadline, one that asks for more memory than its limit by the limit
//! (a trap, not a Python `MemoryError` its code could catch); only those
//! windows are lost, and the instance is rebuilt. A set's iteration order
//! (the interpreter's hash seed) is the same on every instance and run.

mod common;

use serde_json::{Value, json};
use sluice_host::metrics::Metrics;

/// Python needs more memory and time than a Rust guest: 64 MiB, 500 ms.
fn manifest(parallelism: usize, max_batch: usize) -> String {
    let limits = common::GuestLimits { parallelism, timeout: "500ms", memory_mib: 64, max_batch };
    common::misbehave_manifest("misbehave-python", limits)
}

fn raw(dead: &Value) -> Value {
    serde_json::from_str(dead["raw"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[test]
fn only_the_windows_that_raise_loop_or_hog_memory_are_dead_letters() -> anyhow::Result<()> {
    let ok: Vec<String> = (0..120).map(|i| format!("ok{i:03}")).collect();
    let mut keys: Vec<&str> = ok.iter().map(String::as_str).collect();
    for (at, bad) in [(10, "raise"), (60, "loop"), (100, "hog")] {
        keys.insert(at, bad);
    }
    // All in one call: the failed calls are split until the bad windows
    // are alone.
    let run = common::run(&manifest(1, 16_384), &common::two_events_per_key(&keys))?;
    let mut good: Vec<(String, Value)> =
        run.features.iter().map(|f| (f["key"].as_str().unwrap_or("").to_string(), f["features"].clone())).collect();
    good.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, Value)> = ok.iter().map(|k| (k.clone(), json!({"count": 2}))).collect();
    assert_eq!(good, want);
    let mut dead: Vec<(String, String)> = run
        .dead
        .iter()
        .map(|d| {
            (raw(d)["key"].as_str().unwrap_or("?").to_string(), d["error_class"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    dead.sort();
    assert_eq!(
        dead,
        vec![
            ("hog".into(), "out_of_memory".into()),
            ("loop".into(), "timeout".into()),
            ("raise".into(), "transform_error".into()),
        ]
    );
    // The traceback, from the user's code to the exception.
    let raised = run.dead.iter().find(|d| raw(d)["key"] == "raise").cloned().unwrap_or_default();
    let message = raised["message"].as_str().unwrap_or_default();
    for part in [
        "Traceback (most recent call last):",
        "transform.py\", line",
        "in misbehave\n    return {\"count\": explode(window)}",
        "in explode\n",
        "ZeroDivisionError: ",
    ] {
        assert!(message.contains(part), "`{part}` not in the dead letter's message:\n{message}");
    }
    assert_eq!(raw(&raised)["events"], json!([{"timestamp_ms": 1000}, {"timestamp_ms": 2000}]));
    // Each failed call counts: the loop's and the hog's, halved until they
    // are alone (at most 8 levels for 123 windows); the raise fails no call.
    let failures = Metrics::get(&run.metrics.guest_failures);
    assert!((2..=2 * 8).contains(&failures), "{failures} failed calls");
    assert_eq!(Metrics::get(&run.metrics.dead_letters_transform), 3);
    assert_eq!(run.summary.feature_rows, 120);
    Ok(())
}

/// The order of a set of strings depends on the interpreter's hash seed,
/// which the build fixes in the module: two runs, one and two workers
/// (each its own instances), write the same order.
#[test]
fn a_sets_order_is_the_same_on_every_instance_and_run() -> anyhow::Result<()> {
    let keys = ["set-order", "a", "b", "c"];
    let order = |parallelism: usize| -> anyhow::Result<String> {
        let run = common::run(&manifest(parallelism, 1), &common::two_events_per_key(&keys))?;
        let row = run.features.iter().find(|f| f["key"] == "set-order").cloned().unwrap_or_default();
        Ok(row["features"]["set_order"].as_str().unwrap_or_default().to_string())
    };
    let first = order(1)?;
    let mut items: Vec<&str> = first.split(',').collect();
    assert_eq!(items.len(), 50, "{first}");
    items.sort_unstable();
    items.dedup();
    assert_eq!(items.len(), 50);
    assert_eq!(order(2)?, first);
    assert_eq!(order(1)?, first);
    Ok(())
}

/// The Python session-features module declares what the Rust one declares,
/// feature for feature: names, types, nullability and descriptions, as
/// the host reads them.
#[test]
fn the_python_module_declares_the_rust_modules_features() -> anyhow::Result<()> {
    let engine = sluice_host::wasm::Engine::cached(&std::env::temp_dir().join("sluice-test-code-cache"))?;
    let limits = sluice_host::wasm::Limits { timeout: std::time::Duration::from_secs(5), memory_bytes: 256 << 20 };
    let load = |name: &str| {
        sluice_host::wasm::Module::load(&engine, &common::module(name), sluice_host::wasm::Kind::Window, limits)
    };
    let (python, rust) = (load("session-features-python")?, load("session-features")?);
    assert_eq!(python.schema().specs(), rust.schema().specs());
    assert_eq!(python.schema().specs().len(), 5);
    Ok(())
}
