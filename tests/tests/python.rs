//! Python transforms end to end: the Python session-features module gives
//! the Rust module's rows over the same troubled stream (and the SDK run
//! natively on the same windows gives them too); seed 001's features as a
//! Python aggregate equal a plain Python computation; a transform made by
//! `sluice transform new` passes its test, builds and runs; the SDK's and
//! the examples' own tests pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sluice_examples::{Config, Shape};
use sluice_tests::e2e::{self, actual_rows, assert_rows, canonical, file_outputs, now_ms, run_to_end};
use sluice_tests::jsonl::{self, Parsed};
use sluice_tests::model;

fn generate(config: &Config, path: &Path) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    sluice_examples::generate(config, &mut file)?;
    Ok(())
}

/// Run `example` over `input`, outputs to files in `dir`.
fn run(example: &str, input: &Path, dir: &Path, step: usize) -> anyhow::Result<(Vec<Value>, Vec<Value>, Vec<Value>)> {
    std::fs::create_dir_all(dir)?;
    let (input, step) = (input.display().to_string(), step.to_string());
    let sets = [("source.path", input.as_str()), ("source.step", step.as_str()), ("outputs", &file_outputs(dir))];
    run_to_end(example, &sets)?;
    let read = |name: &str| jsonl::read_output(&dir.join(name));
    Ok((read("features.jsonl"), read("dead.jsonl"), read("late.jsonl")))
}

/// Records' positions (line numbers), sorted.
fn offsets(records: &[Value]) -> Vec<i64> {
    let mut out: Vec<i64> = records.iter().filter_map(|r| r["position"]["offset"].as_i64()).collect();
    out.sort();
    out
}

/// `python` with the repository's SDK on its path, running `args` in `dir`.
fn python_with_sdk(dir: &Path) -> Command {
    let mut command = Command::new(e2e::python());
    command.current_dir(dir).env("PYTHONPATH", e2e::root().join("sdk/python")).env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// The Python module's rows are the Rust module's, row for row, over a
/// stream with disorder, late events (corrections) and malformed lines;
/// its dead letters and late events are the same lines. And each window
/// the reference model says fires, run natively through the SDK
/// (`sluice.testing`) on that window's events, gives the row the host
/// wrote for it.
#[test]
fn python_session_features_give_the_rust_modules_rows() -> anyhow::Result<()> {
    let example = e2e::session_features();
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    generate(&example.config, &input)?;
    let (rust, rust_dead, rust_late) = run("session-features", &input, &dir.path().join("rust"), example.spec.step)?;
    let (python, python_dead, python_late) =
        run("session-features-python", &input, &dir.path().join("python"), example.spec.step)?;
    let python_rows = actual_rows(&python);
    assert!(python_rows.iter().any(|r| r.4 == "late"), "late corrections exercised");
    assert_rows("python against rust", &python_rows, &actual_rows(&rust));
    assert!(!rust_dead.is_empty() && !rust_late.is_empty());
    assert_eq!(offsets(&python_dead), offsets(&rust_dead), "dead-letter lines");
    assert_eq!(offsets(&python_late), offsets(&rust_late), "late-event lines");

    // The same windows, run natively.
    let parsed: Vec<Parsed> = jsonl::parse_file(&input, example.fields, now_ms())?;
    let records: Vec<sluice_tests::Record> =
        parsed.iter().map(|p| p.as_ref().map(|(k, t, _)| (k.clone(), *t))).collect();
    let fires = model(&records, &example.spec).all_sorted();
    let mut windows = String::new();
    for f in &fires {
        let events: Vec<Value> = f
            .members
            .iter()
            .filter_map(|&i| parsed[i].as_ref())
            .map(|(_, t, v)| json!({"timestamp": t, "item_id": v["item_id"], "category": v["category"]}))
            .collect();
        let window =
            json!({"key": f.key, "start": f.start, "end": f.end, "trigger": f.trigger.name(), "events": events});
        windows.push_str(&format!("{window}\n"));
    }
    let windows_file = dir.path().join("windows.jsonl");
    std::fs::write(&windows_file, windows)?;
    let out = python_with_sdk(&e2e::root())
        .arg(e2e::root().join("tests/python/native_windows.py"))
        .args([
            e2e::root().join("transforms/session-features-python").display().to_string(),
            "session_features".into(),
            r#"{"item_id": "str", "category": "str"}"#.into(),
        ])
        .stdin(std::fs::File::open(&windows_file)?)
        .output()?;
    anyhow::ensure!(out.status.success(), "native_windows.py: {}", String::from_utf8_lossy(&out.stderr));
    let native: Vec<Value> =
        String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(native.len(), fires.len());
    // The host's rows by window and trigger; a window corrected several
    // times has one row per correction, each from more events: the model's
    // fires come in the same order.
    let mut by_window: BTreeMap<(String, i64, String), Vec<String>> = BTreeMap::new();
    for f in &python {
        let key = (f["key"].as_str().unwrap_or("").to_string(), f["window_start"].as_i64().unwrap_or(0));
        let trigger = f["trigger"].as_str().unwrap_or("").to_string();
        let features = canonical(f["features"].as_object().unwrap_or(&serde_json::Map::new()));
        by_window.entry((key.0, key.1, trigger)).or_default().push(features);
    }
    let mut from_native: BTreeMap<(String, i64, String), Vec<String>> = BTreeMap::new();
    for (f, n) in fires.iter().zip(&native) {
        let features = n["features"].as_object().ok_or_else(|| anyhow::anyhow!("window {f:?}: {n}"))?;
        from_native.entry((f.key.clone(), f.start, f.trigger.name().into())).or_default().push(canonical(features));
    }
    for rows in by_window.values_mut().chain(from_native.values_mut()) {
        rows.sort();
    }
    assert_eq!(by_window.len(), from_native.len(), "windows");
    for (window, rows) in &from_native {
        assert_eq!(by_window.get(window), Some(rows), "window {window:?}: host against native");
    }
    Ok(())
}

/// Seed 001's `compute_features` as a Python aggregate over a one-hour
/// window sliding every five minutes: every window's row equals what
/// `tests/python/activity_reference.py` computes from the raw lines, with
/// plain Python and no Sluice code.
#[test]
fn user_activity_equals_a_plain_python_computation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("activity.jsonl");
    // Disorder within the manifest's 30 s out-of-orderness; nothing late
    // or malformed: each window fires once, on close.
    let config =
        Config { shape: Shape::Activity, events: 6_000, users: 30, rate: 2.0, max_delay: 20.0, ..Config::default() };
    generate(&config, &input)?;
    let (features, dead, late) = run("user-activity", &input, &dir.path().join("out"), 100)?;
    assert!(dead.is_empty() && late.is_empty(), "{dead:?} {late:?}");
    let out =
        Command::new(e2e::python()).arg(e2e::root().join("tests/python/activity_reference.py")).arg(&input).output()?;
    anyhow::ensure!(out.status.success(), "activity_reference.py: {}", String::from_utf8_lossy(&out.stderr));
    // (key, start, end, the features but the mean), and the mean: the
    // host sums a window's slices in another order than the reference
    // sums its events, so the means may differ in the last bits.
    type Window = ((String, i64, i64, String), f64);
    let window = |key: &str, start: i64, end: i64, features: &Value| -> Window {
        let mut exact = features.as_object().cloned().unwrap_or_default();
        let mean = exact.remove("avg_value_1h").and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        ((key.to_string(), start, end, Value::Object(exact).to_string()), mean)
    };
    let mut want: Vec<Window> = Vec::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let w: Value = serde_json::from_str(line)?;
        want.push(window(
            w["key"].as_str().unwrap_or(""),
            w["start"].as_i64().unwrap_or(0),
            w["end"].as_i64().unwrap_or(0),
            &w["features"],
        ));
    }
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let mut got: Vec<Window> = Vec::new();
    for f in &features {
        assert_eq!(f["trigger"], "close", "{f}");
        let (start, end) = (f["window_start"].as_i64().unwrap_or(0), f["window_end"].as_i64().unwrap_or(0));
        got.push(window(f["key"].as_str().unwrap_or(""), start, end, &f["features"]));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(want.len() > 500, "{} windows", want.len());
    assert_eq!(got.len(), want.len(), "window count");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0, "first differing window");
        assert!((g.1 - w.1).abs() <= 1e-9 * w.1.abs().max(1.0), "{:?}: mean {} against {}", g.0, g.1, w.1);
    }
    Ok(())
}

fn sluice(args: &[&str], dir: &Path) -> anyhow::Result<String> {
    let out = Command::new(e2e::sluice()).args(args).current_dir(dir).env("SLUICE_PYTHON", e2e::python()).output()?;
    anyhow::ensure!(
        out.status.success(),
        "sluice {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// `sluice transform new` makes a transform whose test passes (`sluice
/// transform test`), that builds (`sluice transform build`) into a module
/// `sluice validate` takes, and that runs: its rows are the counts worked
/// out by hand. A folder without transform.py is refused by name.
#[test]
fn a_new_python_transform_tests_builds_and_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let written = sluice(&["transform", "new", "clicks"], dir.path())?;
    assert!(written.contains("transform.py") && written.contains("test_transform.py"), "{written}");
    let tests = sluice(&["transform", "test", "clicks", "--", "-q"], dir.path())?;
    assert!(tests.contains("1 passed"), "{tests}");
    sluice(&["transform", "build", "clicks", "--out", "clicks.wasm"], dir.path())?;
    let module = dir.path().join("clicks.wasm");
    assert!(std::fs::metadata(&module)?.len() > 1 << 20);

    let input = dir.path().join("in.jsonl");
    let clicks = [("u1", "a", 1), ("u1", "b", 2), ("u1", "a", 3), ("u2", "c", 4), ("u1", "z", 70)];
    let lines: Vec<String> =
        clicks.iter().map(|(u, i, s)| format!(r#"{{"user_id":"{u}","item_id":"{i}","timestamp":{s}}}"#)).collect();
    std::fs::write(&input, lines.join("\n"))?;
    let manifest = format!(
        "name: clicks\nsource: {{type: file, path: '{}'}}\nevents:\n  key: user_id\n  timestamp: {{field: timestamp, format: seconds}}\n  \
         max_future_skew: off\n  fields: [{{name: item_id, type: string}}]\nwindow: {{type: tumbling, size: 1m}}\n\
         transform: {{module: '{}'}}\n{}",
        input.display(),
        module.display(),
        format_args!("outputs: {}\n", file_outputs(dir.path()))
    );
    std::fs::write(dir.path().join("clicks.yaml"), manifest)?;
    assert!(sluice(&["validate", "--offline", "clicks.yaml"], dir.path())?.contains("ok"));
    sluice(&["run", "clicks.yaml"], dir.path())?;
    let mut rows: Vec<(String, i64, Value)> = jsonl::read_output(&dir.path().join("features.jsonl"))
        .iter()
        .map(|f| {
            (f["key"].as_str().unwrap_or("").into(), f["window_start"].as_i64().unwrap_or(0), f["features"].clone())
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let row = |count: i64, distinct: i64, top: &str, last: &[&str]| json!({"event_count": count, "distinct_items": distinct, "top_item": top, "last_items": last});
    assert_eq!(
        rows,
        vec![
            ("u1".into(), 0, row(3, 2, "a", &["a", "b", "a"])),
            ("u1".into(), 60_000, row(1, 1, "z", &["z"])),
            ("u2".into(), 0, row(1, 1, "c", &["c"])),
        ]
    );

    let out = Command::new(e2e::sluice()).args(["transform", "build", "."]).current_dir(dir.path()).output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no transform.py"), "{out:?}");
    Ok(())
}

/// The SDK's tests and every Python example's tests pass, run natively.
#[test]
fn the_sdk_and_example_tests_pass_natively() -> anyhow::Result<()> {
    let root = e2e::root();
    let out = python_with_sdk(&root.join("sdk/python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    for example in ["session-features-python", "user-activity"] {
        let tests = sluice(&["transform", "test", &format!("transforms/{example}"), "--", "-q"], &root)?;
        assert!(tests.contains("passed") && !tests.contains("failed"), "{example}: {tests}");
    }
    Ok(())
}
