//! What the end-to-end tests share: the binary, and the feature rows the
//! host must write, from the reference model.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sluice_examples::{Config, Shape};

use crate::jsonl::{Parsed, Type};
use crate::{Fire, Kind, Spec, features, model};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python of the virtualenv `scripts/setup` makes (pyiceberg and the
/// other real clients): `$SLUICE_PYTHON`, or `~/.cache/sluice/venv`'s.
pub fn python() -> PathBuf {
    match std::env::var_os("SLUICE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/sluice/venv/bin/python"),
    }
}

/// The rows of the Iceberg table `table` (`namespace.table`) in
/// `warehouse`, as pyiceberg reads them (`scripts/iceberg-read`): times in
/// milliseconds, one JSON object per row.
pub fn iceberg_rows(warehouse: &Path, table: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = std::process::Command::new(python())
        .arg(root().join("scripts/iceberg-read"))
        .arg("--warehouse")
        .arg(warehouse)
        .args(["--table", table])
        .output()?;
    anyhow::ensure!(out.status.success(), "scripts/iceberg-read failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)?.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
}

/// The release `sluice` binary next to the running test binary's folder.
pub fn sluice() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("sluice")).unwrap_or_default();
    assert!(bin.exists(), "{} is missing: build with `cargo build --release -p sluice-host` first", bin.display());
    bin
}

/// `sluice run examples/<example>.yaml` with `--set path=value`
/// overrides, from the repository root.
pub fn sluice_run(example: &str, sets: &[(&str, &str)]) -> Command {
    let mut c = Command::new(sluice());
    c.current_dir(root()).args(["run", &format!("examples/{example}.yaml")]);
    for (path, value) in sets {
        c.args(["--set", &format!("{path}={value}")]);
    }
    c
}

/// Run a pipeline to its end; its log when it fails.
pub fn run_to_end(example: &str, sets: &[(&str, &str)]) -> anyhow::Result<()> {
    let out = sluice_run(example, sets).output()?;
    anyhow::ensure!(
        out.status.success(),
        "sluice run {example} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `--set outputs=…`: every output to a JSON-lines file in `dir`
/// (`features.jsonl`, `dead.jsonl`, `late.jsonl`).
pub fn file_outputs(dir: &Path) -> String {
    let file = |name: &str| format!("[{{type: file, path: '{}'}}]", dir.join(name).display());
    format!(
        "{{features: {}, dead_letters: {}, late_events: {}}}",
        file("features.jsonl"),
        file("dead.jsonl"),
        file("late.jsonl")
    )
}

/// Check `done` every `every` until it holds; after `limit`, fail saying
/// what did not happen.
pub fn wait_until(
    what: &str,
    limit: Duration,
    every: Duration,
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done()? {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {} s", limit.as_secs());
        std::thread::sleep(every);
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A row without its wall-clock time: key, window start and end, event
/// time, trigger and the features (floats rounded, since the host may add
/// in another order than the reference).
pub type Row = (String, i64, i64, i64, String, String);

/// Features of a window from its events (JSON) and their times.
pub type Compute = dyn Fn(&[&Value], &[i64]) -> Map<String, Value>;

pub fn canonical(features: &Map<String, Value>) -> String {
    let rounded: Map<String, Value> = features
        .iter()
        .map(|(k, v)| match v.as_f64() {
            Some(f) if v.is_f64() => (k.clone(), Value::from((f * 1e6).round() / 1e6)),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    Value::Object(rounded).to_string()
}

/// A feature row as the host wrote it (JSON).
pub fn actual_row(f: &Value) -> Row {
    (
        f["key"].as_str().unwrap_or_default().to_string(),
        f["window_start"].as_i64().unwrap_or_default(),
        f["window_end"].as_i64().unwrap_or_default(),
        f["event_time"].as_i64().unwrap_or_default(),
        f["trigger"].as_str().unwrap_or_default().to_string(),
        canonical(f["features"].as_object().unwrap_or(&Map::new())),
    )
}

pub fn actual_rows(features: &[Value]) -> Vec<Row> {
    let mut rows: Vec<Row> = features.iter().map(actual_row).collect();
    rows.sort();
    rows
}

/// The row a fire must give.
pub fn expected_row(parsed: &[Parsed], f: &Fire, compute: &Compute) -> Row {
    let events: Vec<&Value> = f.members.iter().filter_map(|&i| parsed[i].as_ref().map(|(_, _, v)| v)).collect();
    let times: Vec<i64> = f.members.iter().filter_map(|&i| parsed[i].as_ref().map(|(_, t, _)| *t)).collect();
    let latest = times.iter().copied().max().unwrap_or(i64::MIN);
    (f.key.clone(), f.start, f.end, latest, f.trigger.name().to_string(), canonical(&compute(&events, &times)))
}

/// What the host must write for `parsed`: every row (sorted); what an
/// online store holds at the end, keyed by entity (the row of the newest
/// window, the last emitted among equals: a late update of an older window
/// must not replace it) or by entity and window (each window's last row);
/// and the indices of dead and late records.
pub struct Expected {
    pub rows: Vec<Row>,
    pub last: BTreeMap<String, Row>,
    pub windows: BTreeMap<(String, i64), Row>,
    pub dead: BTreeSet<i64>,
    pub late: BTreeSet<i64>,
}

pub fn expected(parsed: &[Parsed], spec: &Spec, compute: &Compute) -> Expected {
    let records: Vec<crate::Record> = parsed.iter().map(|p| p.as_ref().map(|(k, t, _)| (k.clone(), *t))).collect();
    let outcome = model(&records, spec);
    let mut last = BTreeMap::new();
    let mut windows = BTreeMap::new();
    for f in outcome.normalized().iter().flatten() {
        let row = expected_row(parsed, f, compute);
        windows.insert((f.key.clone(), f.start), row.clone());
        if last.get(&f.key).is_none_or(|stored: &Row| stored.2 <= row.2) {
            last.insert(f.key.clone(), row);
        }
    }
    let mut rows: Vec<Row> = outcome.all_sorted().iter().map(|f| expected_row(parsed, f, compute)).collect();
    rows.sort();
    let dead = parsed.iter().enumerate().filter(|(_, p)| p.is_none()).map(|(i, _)| i as i64).collect();
    let late = outcome.late.iter().map(|&i| i as i64).collect();
    Expected { rows, last, windows, dead, late }
}

/// Compare row lists, naming the first difference.
pub fn assert_rows(what: &str, got: &[Row], want: &[Row]) {
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}: first differing row");
    }
    assert_eq!(got.len(), want.len(), "{what}: row count");
}

/// An example manifest and the stream its end-to-end tests feed it: the
/// generator's settings, the fields the manifest declares, the window spec
/// of the manifest, and the example transform's features as plain Rust.
pub struct Example {
    pub name: &'static str,
    pub config: Config,
    pub fields: &'static [(&'static str, Type)],
    pub spec: Spec,
    pub compute: fn(&[&Value], &[i64]) -> Map<String, Value>,
}

/// A stream with every kind of trouble: up to 20 s of ordinary disorder
/// (within the manifests' 30 s out-of-orderness), 3% of events 72 s to an
/// hour late (some within the 1 min lateness of their windows, some past
/// it), 1% malformed.
pub fn troubled_stream(shape: Shape, events: u64, users: u64, rate: f64) -> Config {
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

/// The example manifests' time settings (1 min allowed lateness, 30 s
/// out-of-orderness) with their window; the watermark moves every `step`
/// records.
fn manifest_spec(kind: Kind, on_event: bool, step: usize) -> Spec {
    Spec { kind, on_event, lateness: 60_000, out_of_orderness: 30_000, step }
}

/// `examples/session-features.yaml`; the watermark moves every 100 records
/// (20 s at 5 events/s).
pub fn session_features() -> Example {
    Example {
        name: "session-features",
        config: troubled_stream(Shape::Clicks, 12_000, 40, 5.0),
        fields: &[("item_id", Type::String), ("category", Type::String)],
        spec: manifest_spec(Kind::Sliding { size: 1_800_000, slide: 60_000 }, false, 100),
        compute: |e, _| features::session_features(e),
    }
}

/// `examples/tx-velocity.yaml`.
pub fn tx_velocity() -> Example {
    Example {
        name: "tx-velocity",
        config: troubled_stream(Shape::Transactions, 12_000, 40, 5.0),
        fields: &[("amount", Type::Number), ("merchant_id", Type::String)],
        spec: manifest_spec(Kind::Tumbling { size: 300_000 }, false, 100),
        compute: |e, _| features::tx_velocity(e),
    }
}

/// `examples/user-session.yaml`: sparse users (a click every ~10 min
/// each), so sessions open, merge and close.
pub fn user_session() -> Example {
    Example {
        name: "user-session",
        config: troubled_stream(Shape::Clicks, 8_000, 400, 0.6),
        fields: &[],
        spec: manifest_spec(Kind::Session { gap: 900_000 }, true, 20),
        compute: |_, t| features::user_session(t),
    }
}
