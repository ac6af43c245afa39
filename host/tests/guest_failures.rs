//! A guest that loops, panics, allocates without bound or returns an error
//! costs only the windows that make it: they go to the dead-letter output
//! with the reason, the instance is rebuilt, and the pipeline goes on.

mod common;

use serde_json::{Value, json};

/// One worker, so which windows share a call is known.
fn manifest(max_batch: usize) -> String {
    common::misbehave_manifest(
        "misbehave",
        common::GuestLimits { parallelism: 1, timeout: "300ms", memory_mib: 16, max_batch },
    )
}

fn dead_by_key(dead: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = dead
        .iter()
        .map(|d| {
            let raw: Value = serde_json::from_str(d["raw"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
            (raw["key"].as_str().unwrap_or("?").to_string(), d["error_class"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn each_failure_costs_only_its_own_batch() -> anyhow::Result<()> {
    // One window per call: each misbehaving window fails alone.
    let run = common::run(
        &manifest(1),
        &common::two_events_per_key(&["ok1", "loop", "ok2", "panic", "oom", "error", "ok3"]),
    )?;
    let mut good: Vec<(String, Value)> =
        run.features.iter().map(|f| (f["key"].as_str().unwrap_or("").to_string(), f["features"].clone())).collect();
    good.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        good,
        vec![
            ("ok1".to_string(), json!({"count": 2})),
            ("ok2".to_string(), json!({"count": 2})),
            ("ok3".to_string(), json!({"count": 2})),
        ]
    );
    assert_eq!(
        dead_by_key(&run.dead),
        vec![
            ("error".into(), "transform_error".into()),
            ("loop".into(), "timeout".into()),
            ("oom".into(), "out_of_memory".into()),
            ("panic".into(), "trap".into()),
        ]
    );
    // The dead letter carries the window's input and a readable reason.
    let panic = run.dead.iter().find(|d| d["error_class"] == "trap").cloned().unwrap_or_default();
    assert_eq!(panic["stage"], "transform");
    assert!(panic["message"].as_str().is_some_and(|m| m.contains("asked to panic")), "{panic}");
    let raw: Value = serde_json::from_str(panic["raw"].as_str().unwrap_or("null"))?;
    assert_eq!(raw["events"], json!([{"timestamp_ms": 1000}, {"timestamp_ms": 2000}]));
    assert_eq!(raw["window_end"], 10_000);
    let m = &run.metrics;
    use sluice_host::metrics::Metrics;
    assert_eq!(Metrics::get(&m.guest_failures), 3);
    assert_eq!(Metrics::get(&m.dead_letters_transform), 4);
    assert_eq!(run.summary.feature_rows, 3);
    Ok(())
}

/// Misbehaving windows among many ordinary ones, all in one call: the call
/// is split until the failing windows are alone, so exactly those are
/// dead-lettered, each under its own key, and every other window gets its
/// features.
#[test]
fn a_failed_call_costs_only_the_failing_windows() -> anyhow::Result<()> {
    let ok: Vec<String> = (0..200).map(|i| format!("ok{i:03}")).collect();
    let mut keys: Vec<&str> = ok.iter().map(String::as_str).collect();
    for (at, bad) in [(17, "loop"), (90, "panic"), (150, "oom"), (199, "error")] {
        keys.insert(at, bad);
    }
    let run = common::run(&manifest(16_384), &common::two_events_per_key(&keys))?;
    let mut good: Vec<(String, Value)> =
        run.features.iter().map(|f| (f["key"].as_str().unwrap_or("").to_string(), f["features"].clone())).collect();
    good.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, Value)> = ok.iter().map(|k| (k.clone(), json!({"count": 2}))).collect();
    assert_eq!(good, want);
    assert_eq!(
        dead_by_key(&run.dead),
        vec![
            ("error".into(), "transform_error".into()),
            ("loop".into(), "timeout".into()),
            ("oom".into(), "out_of_memory".into()),
            ("panic".into(), "trap".into()),
        ]
    );
    for d in &run.dead {
        let raw: Value = serde_json::from_str(d["raw"].as_str().unwrap_or("null"))?;
        let key = raw["key"].as_str().unwrap_or("?");
        assert!(d["message"].as_str().is_some_and(|m| m.contains(&format!("of key `{key}`"))), "{d}");
    }
    // Each of the three failing windows is found by halving the call:
    // at most two calls per level of a binary split of 204 windows.
    use sluice_host::metrics::Metrics;
    let retries = Metrics::get(&run.metrics.guest_retries);
    assert!((6..=3 * 2 * 8).contains(&retries), "{retries} retries");
    assert_eq!(run.summary.feature_rows, 200);
    Ok(())
}

#[test]
fn a_module_that_is_not_a_component_is_a_clear_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really")?;
    let limits = sluice_host::wasm::Limits { timeout: std::time::Duration::from_secs(1), memory_bytes: 1 << 24 };
    let engine = sluice_host::wasm::Engine::new()?;
    let err = sluice_host::wasm::Module::load(&engine, &bogus, sluice_host::wasm::Kind::Window, limits).err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("is not a valid WebAssembly component"), "{message}");
    // A real component of the other kind is refused by name.
    let tx_velocity = common::module("tx-velocity");
    let err = sluice_host::wasm::Module::load(&engine, &tx_velocity, sluice_host::wasm::Kind::Window, limits).err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("is an aggregate transform but the manifest says `transform.kind: window`"), "{message}");
    Ok(())
}

/// Rows that break the module's declared features (`count: i64`) go to the
/// dead letters with what is wrong; the rows around them, in the same call,
/// are written.
#[test]
fn rows_that_break_the_declared_features_are_dead_letters() -> anyhow::Result<()> {
    let run = common::run(&manifest(16_384), &common::two_events_per_key(&["ok1", "undeclared", "ok2", "wrong-type"]))?;
    let good: Vec<&str> = run.features.iter().filter_map(|f| f["key"].as_str()).collect();
    assert_eq!(good.len(), 2);
    assert!(good.contains(&"ok1") && good.contains(&"ok2"), "{good:?}");
    assert_eq!(
        dead_by_key(&run.dead),
        vec![("undeclared".into(), "schema".into()), ("wrong-type".into(), "schema".into())]
    );
    let message = |key: &str| {
        run.dead
            .iter()
            .find(|d| d["raw"].as_str().is_some_and(|r| r.contains(&format!("\"key\":\"{key}\""))))
            .and_then(|d| d["message"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(message("undeclared").contains("feature `surprise` is not among the module's declared features"));
    assert!(message("wrong-type").contains("feature `count` is declared int but the row holds a string"));
    // The module's declaration, as the host read it.
    let limits = sluice_host::wasm::Limits { timeout: std::time::Duration::from_secs(1), memory_bytes: 1 << 24 };
    let engine = sluice_host::wasm::Engine::new()?;
    let module = sluice_host::wasm::Module::load(
        &engine,
        &common::module("misbehave"),
        sluice_host::wasm::Kind::Window,
        limits,
    )?;
    let specs = module.schema().specs();
    assert_eq!(specs.len(), 1);
    assert_eq!((&*specs[0].name, specs[0].ty, specs[0].nullable), ("count", sluice_sink_api::FeatureType::Int, false));
    assert_eq!(specs[0].description, "Events in the window.");
    Ok(())
}
