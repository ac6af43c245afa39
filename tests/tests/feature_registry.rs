//! The feature registry of a `sluice serve` host: three pipelines (a
//! sliding window to Redis in the Feast layout, an aggregate's tumbling
//! window to a plain hash and an Iceberg table, a per-event session
//! count), and `GET /features` checked field by field against their
//! manifests and their modules as the module registry records them; a
//! view's history after its module changes; online reads in both layouts
//! against the rows the pipelines wrote to files; the CLI's list; and a
//! pipeline's Feast repository from the API.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Host, REDIS, unique};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_examples::Shape;
use sluice_tests::e2e::{self, troubled_stream};

/// Generated events in the host's `files/in/{name}.jsonl`.
fn events(data: &Path, name: &str, shape: Shape, users: u64) -> anyhow::Result<()> {
    let mut text = Vec::new();
    sluice_examples::generate(&troubled_stream(shape, 3_000, users, 5.0), &mut text)?;
    std::fs::create_dir_all(data.join("files/in"))?;
    Ok(std::fs::write(data.join(format!("files/in/{name}.jsonl")), text)?)
}

/// The newest row of each key of a file of feature rows, by the online
/// layouts' rule (a row's time: its window's end, or its event's per
/// event; of rows of one time, the last written): key → (time, features).
fn newest(path: &Path) -> anyhow::Result<BTreeMap<String, (i64, Value)>> {
    let mut newest: BTreeMap<String, (i64, Value)> = BTreeMap::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let row: Value = serde_json::from_str(line)?;
        let time = if row["trigger"] == "event" { &row["event_time"] } else { &row["window_end"] };
        let time = time.as_i64().unwrap_or_default();
        let key = row["key"].as_str().unwrap_or_default().to_string();
        if newest.get(&key).is_none_or(|(held, _)| time >= *held) {
            newest.insert(key, (time, row["features"].clone()));
        }
    }
    Ok(newest)
}

/// Each key's online answer must be the newest row of `path`, with every
/// declared feature (null where the row has none).
fn check_online(host: &Host, view: &str, path: &Path, declared: &[&str]) -> anyhow::Result<()> {
    let want = newest(path)?;
    anyhow::ensure!(want.len() >= 10, "{} keys in {}", want.len(), path.display());
    let query: Vec<String> = want.keys().map(|k| format!("key={k}")).chain(["key=nobody".to_string()]).collect();
    let (code, online) = host.call(Method::GET, &format!("/features/{view}/online?{}", query.join("&")))?;
    anyhow::ensure!(code == 200, "{code} {online}");
    let rows = online["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), want.len() + 1, "{online}");
    for (row, (key, (time, features))) in rows.iter().zip(&want) {
        assert_eq!((row["key"].as_str(), row["found"].as_bool()), (Some(key.as_str()), Some(true)), "{row}");
        assert_eq!(row["time"].as_i64(), Some(*time), "{view} {key}: {row}");
        assert!(row["age_ms"].as_i64() > Some(0), "{row}");
        let mut expected = serde_json::Map::new();
        for name in declared {
            expected.insert(name.to_string(), features.get(name).cloned().unwrap_or(Value::Null));
        }
        assert_eq!(row["features"], Value::Object(expected), "{view} {key}");
    }
    let absent = rows.last().cloned().unwrap_or_default();
    assert_eq!(absent, json!({"key": "nobody", "found": false, "time": null, "age_ms": null, "features": null}));
    Ok(())
}

#[test]
fn the_feature_registry_lists_what_each_pipeline_produces_and_reads_its_online_store() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let host = Host::start(&data, dir.path().join("serve.log"))?;
    let mut pushed = BTreeMap::new();
    for module in ["session-features", "tx-velocity", "tally", "user-session"] {
        let path = e2e::root().join(format!("target/modules/{module}.wasm"));
        let said = host.cli(&["modules", "push", module, &path.display().to_string()])?;
        let sha = said.split("sha256:").nth(1).unwrap_or_default().trim().to_string();
        pushed.insert(module, sha);
    }
    events(&data, "clicks", Shape::Clicks, 30)?;
    events(&data, "transactions", Shape::Transactions, 30)?;
    let project = unique("registry").replace('-', "_");
    let prefix = unique("registry");

    let sessions = format!(
        "name: sessions
source: {{type: file, path: in/clicks.jsonl}}
events:
  key: user_id
  timestamp: {{field: timestamp, format: seconds}}
  fields: [{{name: item_id, type: string}}, {{name: category, type: string}}]
time: {{out_of_orderness: 30s}}
window: {{type: sliding, size: 30m, slide: 1m, allowed_lateness: 1m}}
transform: {{module: session-features}}
outputs:
  features:
    - {{type: redis, url: '{REDIS}', layout: feast, project: {project}, feature_view: session_features, join_key: user_id, ttl: 1h}}
    - {{type: file, path: out/sessions.jsonl}}
  dead_letters: [{{type: file, path: out/sessions-dead.jsonl}}]
  late_events: [{{type: file, path: out/sessions-late.jsonl}}]
"
    );
    let velocity = format!(
        "name: velocity
source: {{type: file, path: in/transactions.jsonl}}
events:
  key: user_id
  timestamp: {{field: timestamp, format: seconds}}
  fields: [{{name: amount, type: float}}, {{name: merchant_id, type: string}}]
time: {{out_of_orderness: 30s}}
window: {{type: tumbling, size: 5m, allowed_lateness: 1m}}
transform: {{module: tx-velocity, kind: aggregate}}
outputs:
  features:
    - {{type: redis, url: '{REDIS}', key: '{prefix}:{{key}}', metadata_prefix: tx_}}
    - {{type: iceberg, warehouse: warehouse, namespace: features, table: velocity}}
    - {{type: file, path: out/velocity.jsonl}}
  dead_letters: [{{type: file, path: out/velocity-dead.jsonl}}]
  late_events: [{{type: file, path: out/velocity-late.jsonl}}]
"
    );
    let tally = "name: tally
source: {type: file, path: in/clicks.jsonl}
events:
  key: user_id
  timestamp: {field: timestamp, format: seconds}
time: {out_of_orderness: 30s}
window: {type: session, gap: 10m, trigger: event}
transform: {module: tally}
outputs:
  features: [{type: file, path: out/tally.jsonl}]
  dead_letters: [{type: file, path: out/tally-dead.jsonl}]
  late_events: [{type: file, path: out/tally-late.jsonl}]
";
    for manifest in [&sessions, &velocity, tally] {
        let (code, body) = host.send(Method::POST, "/pipelines", manifest.to_string())?;
        assert_eq!(code, 201, "{body}");
    }
    for name in ["sessions", "velocity", "tally"] {
        host.wait(name, "the end of its file", |s| s["state"] == "STOPPED")?;
    }
    // Another pipeline may not write the same Feast view, nor the same
    // plain hashes with the same metadata_prefix.
    for (copy, field, other) in [
        (sessions.replace("name: sessions", "name: sessions-copy"), "outputs.features[0].feature_view", "sessions"),
        (velocity.replace("name: velocity", "name: velocity-copy"), "outputs.features[0].key", "velocity"),
    ] {
        let (code, body) = host.send(Method::POST, "/pipelines", copy)?;
        assert_eq!(code, 400, "{body}");
        let problems = body["problems"].as_array().cloned().unwrap_or_default();
        let says = format!("the pipeline `{other}` writes");
        let found =
            problems.iter().any(|p| p["field"] == field && p["message"].as_str().is_some_and(|m| m.contains(&says)));
        assert!(found, "{body}");
    }

    // Field by field: the manifests above, and the modules as the module
    // registry recorded their declarations when they were pushed.
    let (code, listed) = host.call(Method::GET, "/features")?;
    assert_eq!(code, 200, "{listed}");
    let views: BTreeMap<String, Value> = listed["views"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["view"].as_str().unwrap_or_default().to_string(), v.clone()))
        .collect();
    assert_eq!(views.keys().collect::<Vec<_>>(), ["sessions", "tally", "velocity"], "{listed}");
    let declared = |module: &str| -> anyhow::Result<Value> {
        let (_, versions) = host.call(Method::GET, &format!("/modules/{module}"))?;
        Ok(versions["versions"][0]["features"].clone())
    };
    let module = |name: &str| json!({"name": name, "version": 1, "sha256": pushed[name]});
    let mut want = BTreeMap::new();
    want.insert(
        "sessions",
        json!({
            "view": "sessions", "pipeline": "sessions",
            "entity": {"key": "user_id", "type": "string"},
            "window": {"type": "sliding", "size_ms": 1_800_000, "slide_ms": 60_000, "allowed_lateness_ms": 60_000},
            "trigger": "close",
            "module": module("session-features"),
            "features": declared("session-features")?,
            "stored": [
                {"sink": "outputs.features[0]", "type": "redis", "location": {
                    "redis": "127.0.0.1:6379/0", "layout": "feast", "project": project,
                    "feature_view": "session_features", "join_key": "user_id"}},
                {"sink": "outputs.features[1]", "type": "file", "location": {"path": "out/sessions.jsonl"}},
            ],
        }),
    );
    want.insert(
        "velocity",
        json!({
            "view": "velocity", "pipeline": "velocity",
            "entity": {"key": "user_id", "type": "string"},
            "window": {"type": "tumbling", "size_ms": 300_000, "allowed_lateness_ms": 60_000},
            "trigger": "close",
            "module": module("tx-velocity"),
            "features": declared("tx-velocity")?,
            "stored": [
                {"sink": "outputs.features[0]", "type": "redis", "location": {
                    "redis": "127.0.0.1:6379/0", "layout": "plain", "key": format!("{prefix}:{{key}}"),
                    "metadata_prefix": "tx_"}},
                {"sink": "outputs.features[1]", "type": "iceberg", "location": {
                    "table": "features.velocity", "warehouse": "warehouse"}},
                {"sink": "outputs.features[2]", "type": "file", "location": {"path": "out/velocity.jsonl"}},
            ],
        }),
    );
    want.insert(
        "tally",
        json!({
            "view": "tally", "pipeline": "tally",
            "entity": {"key": "user_id", "type": "string"},
            "window": {"type": "session", "gap_ms": 600_000, "allowed_lateness_ms": 0},
            "trigger": "event",
            "module": module("tally"),
            "features": declared("tally")?,
            "stored": [{"sink": "outputs.features[0]", "type": "file", "location": {"path": "out/tally.jsonl"}}],
        }),
    );
    for (name, want) in &want {
        assert_eq!(&views[*name], want, "{name}");
    }
    // The module registry's record, against the transform's source.
    let names: Vec<&str> =
        want["sessions"]["features"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(
        names,
        ["items_clicked_30m", "item_count_30m", "distinct_items_30m", "distinct_categories_30m", "top_category_30m"]
    );
    assert_eq!(want["sessions"]["features"][0]["type"], "list<string>");
    assert_eq!(want["sessions"]["features"][4]["nullable"], true);

    // Online reads, in each layout, equal the rows each pipeline wrote.
    let files = data.join("files/out");
    let session_names =
        ["items_clicked_30m", "item_count_30m", "distinct_items_30m", "distinct_categories_30m", "top_category_30m"];
    check_online(&host, "sessions", &files.join("sessions.jsonl"), &session_names)?;
    check_online(&host, "velocity", &files.join("velocity.jsonl"), &["tx_count", "tx_sum", "distinct_merchants"])?;
    let (code, body) = host.call(Method::GET, "/features/tally/online?key=u1")?;
    assert_eq!(code, 409, "no Redis sink: {body}");
    let (code, body) = host.call(Method::GET, "/features/velocity/online")?;
    assert_eq!(code, 400, "no keys: {body}");

    // A Feast view's name finds its pipeline; its Feast repository.
    let (code, by_feast_name) = host.call(Method::GET, "/features/session_features")?;
    assert_eq!((code, &by_feast_name["view"]), (200, &json!("sessions")), "{by_feast_name}");
    let (code, repository) = host.call(Method::GET, "/pipelines/sessions/feast")?;
    assert_eq!(code, 200, "{repository}");
    let files: Vec<&str> =
        repository["files"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(files, ["feature_store.yaml", "sluice_entity_user_id.py", "sluice_view_session_features.py"]);
    assert!(
        repository["files"][2]["text"]
            .as_str()
            .is_some_and(|t| t.contains("name=\"items_clicked_30m\", dtype=Array(String)")),
        "{repository}"
    );
    let (code, body) = host.call(Method::GET, "/pipelines/velocity/feast")?;
    assert_eq!(code, 409, "no Feast view: {body}");

    // The history: applied again with another module, the view lists both.
    let changed = sessions
        .replace("module: session-features", "module: user-session")
        .replace("sliding, size: 30m, slide: 1m", "session, gap: 10m");
    let (code, body) = host.send(Method::PUT, "/pipelines/sessions/config?fresh=true", changed)?;
    assert_eq!(code, 200, "{body}");
    let (_, view) = host.call(Method::GET, "/features/sessions")?;
    let history = view["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 2, "{view}");
    assert_eq!(
        (&history[0]["module"], &history[0]["features"]),
        (&module("session-features"), &declared("session-features")?)
    );
    assert_eq!((&history[1]["module"], &history[1]["features"]), (&module("user-session"), &declared("user-session")?));
    assert!(history[0]["since"].as_str() <= history[1]["since"].as_str(), "{view}");
    assert_eq!(view["features"], declared("user-session")?);

    // The CLI's list: a line per feature of every view.
    let lines = host.cli(&["features", "list"])?;
    assert_eq!(lines.lines().count(), 2 + 3 + 1, "{lines}");
    let line = lines.lines().find(|l| l.starts_with("velocity.tx_sum ")).unwrap_or_default();
    for part in [
        "float",
        "key user_id (string)",
        "tumbling size 300000ms lateness 60000ms",
        "close",
        "tx-velocity@1",
        "iceberg(table=features.velocity",
    ] {
        assert!(line.contains(part), "`{part}` in {line}");
    }

    let mut redis = redis::Client::open(REDIS)?.get_connection()?;
    for pattern in [format!("{prefix}:*"), format!("*{project}")] {
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(pattern).query(&mut redis)?;
        if !keys.is_empty() {
            redis::cmd("UNLINK").arg(keys).query::<()>(&mut redis)?;
        }
    }
    Ok(())
}
