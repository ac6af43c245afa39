//! The admin API through its router (no socket), over a real data
//! directory and real modules: what it accepts, and that every request it
//! refuses gets a clear 4xx and changes nothing.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use sluice_host::api::{self, Api};
use sluice_host::runtime::Runtime;
use sluice_host::supervisor::Supervisor;
use tower::ServiceExt;

const TOKEN: &str = "s3cret-token";

struct Host {
    router: Router,
    files: std::path::PathBuf,
    _data: tempfile::TempDir,
}

async fn host() -> anyhow::Result<Host> {
    let data = tempfile::tempdir()?;
    let supervisor = Supervisor::open(data.path(), Runtime::current()?).await?;
    let files = supervisor.files();
    supervisor.record_history(Duration::from_millis(100));
    let router = api::router(Arc::new(Api { supervisor, token: Some(TOKEN.into()) }));
    Ok(Host { router, files, _data: data })
}

impl Host {
    /// A request with the token; the status and the JSON body (`null`
    /// for none, a string for text).
    async fn call(&self, method: Method, uri: &str, body: impl Into<Body>) -> anyhow::Result<(StatusCode, Value)> {
        self.send(Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {TOKEN}")), body)
            .await
    }

    async fn send(
        &self,
        request: axum::http::request::Builder,
        body: impl Into<Body>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.router.clone().oneshot(request.body(body.into())?).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        // Text (the metrics) as a JSON string.
        let value = match serde_json::from_slice(&bytes) {
            _ if bytes.is_empty() => Value::Null,
            Ok(v) => v,
            Err(_) => Value::String(String::from_utf8(bytes.to_vec())?),
        };
        Ok((status, value))
    }

    /// GET with the token; the status and the body as text.
    async fn text(&self, uri: &str) -> anyhow::Result<(StatusCode, String)> {
        let request = Request::builder().uri(uri).header("authorization", format!("Bearer {TOKEN}"));
        let response = self.router.clone().oneshot(request.body(Body::empty())?).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        Ok((status, String::from_utf8(bytes.to_vec())?))
    }

    async fn get(&self, uri: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.call(Method::GET, uri, Body::empty()).await
    }

    /// What the host holds: its modules and pipelines.
    async fn holdings(&self) -> anyhow::Result<(Value, Value)> {
        Ok((self.get("/modules").await?.1, self.get("/pipelines").await?.1))
    }
}

fn module_bytes(name: &str) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(common::module(name))?)
}

/// An error body: its code is the status, and it has a message.
fn assert_error(status: StatusCode, body: &Value, want: StatusCode, says: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error_code"], json!(want.as_u16()), "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "the message {message:?} does not say {says:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_needs_the_token() -> anyhow::Result<()> {
    let host = host().await?;
    let (status, body) = host.send(Request::builder().uri("/health"), Body::empty()).await?;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    for uri in ["/modules", "/pipelines", "/plugins", "/pipelines/x/status", "/nowhere"] {
        let (status, body) = host.send(Request::builder().uri(uri), Body::empty()).await?;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "Bearer");
        let wrong = Request::builder().uri(uri).header("authorization", "Bearer s3cret-tokem");
        let (status, body) = host.send(wrong, Body::empty()).await?;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "Bearer");
    }
    let upload = Request::builder().method(Method::POST).uri("/modules/counter");
    let (status, _) = host.send(upload, module_bytes("misbehave")?).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(host.holdings().await?, (json!([]), json!([])));
    let (status, body) = host.get("/nowhere").await?;
    assert_error(status, &body, StatusCode::NOT_FOUND, "no such resource");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_are_checked_content_addressed_and_versioned() -> anyhow::Result<()> {
    let host = host().await?;
    let bytes = module_bytes("misbehave")?;
    let (status, v1) = host.call(Method::POST, "/modules/counter", bytes.clone()).await?;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["name"], "counter");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["sha256"], format!("{:x}", sha2::Sha256::digest(&bytes)));
    assert_eq!(v1["size"], bytes.len());
    assert_eq!(v1["kind"], "window");
    assert_eq!(
        v1["features"],
        json!([{"name": "count", "type": "int", "nullable": false, "description": "Events in the window."}])
    );
    // The same bytes again are the same version.
    let (status, again) = host.call(Method::POST, "/modules/counter", bytes.clone()).await?;
    assert_eq!((status, &again), (StatusCode::OK, &v1));
    let other = module_bytes("session-features")?;
    let (status, v2) = host.call(Method::POST, "/modules/counter?kind=window", other.clone()).await?;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(
        (v2["version"].clone(), v2["sha256"].clone()),
        (json!(2), json!(format!("{:x}", sha2::Sha256::digest(&other))))
    );
    let (status, listed) = host.get("/modules/counter").await?;
    assert_eq!((status, listed), (StatusCode::OK, json!({"name": "counter", "versions": [v1, v2]})));
    let (status, body) = host.call(Method::DELETE, "/modules/counter", Body::empty()).await?;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = host.get("/modules/counter").await?;
    assert_error(status, &body, StatusCode::NOT_FOUND, "no module counter");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let host = host().await?;
    let good = module_bytes("misbehave")?;
    let (status, kept) = host.call(Method::POST, "/modules/kept", good.clone()).await?;
    assert_eq!(status, StatusCode::CREATED);
    let before = host.holdings().await?;

    let (status, body) =
        host.call(Method::POST, "/modules/garbage", b"\0asm garbage, not a component".to_vec()).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "not a valid WebAssembly component");
    let (status, body) = host.call(Method::POST, "/modules/empty", Body::empty()).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "the body is empty");
    let huge = vec![0u8; sluice_host::registry::MAX_MODULE_BYTES as usize + 1];
    let (status, body) = host.call(Method::POST, "/modules/huge", huge).await?;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "more than the 67108864 bytes");
    let (status, body) = host.call(Method::POST, "/modules/Bad%20Name", good.clone()).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "is not a module name");
    let (status, body) = host.call(Method::POST, "/modules/kept?kind=aggregate", good.clone()).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "is a window transform");
    // A module that never finishes starting is stopped at the deadline.
    let started = Instant::now();
    let (status, body) = host.call(Method::POST, "/modules/stuck", module_bytes("stuck")?).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "deadline");
    assert!(started.elapsed() < Duration::from_secs(60), "the check of a stuck module must end");

    assert_eq!(host.holdings().await?, before);
    assert_eq!(host.get("/modules/kept").await?.1["versions"], json!([kept]));
    Ok(())
}

/// A file pipeline whose paths are `files`-relative, its module named
/// `module`.
fn manifest(name: &str, module: &str) -> String {
    format!(
        "name: {name}
parallelism: 1
source: {{type: file, path: in.jsonl}}
events:
  key: user_id
  timestamp: {{field: timestamp, format: millis}}
  max_future_skew: off
window: {{type: tumbling, size: 10s}}
transform: {{module: '{module}'}}
outputs:
  features: [{{type: file, path: out/features.jsonl}}]
  dead_letters: [{{type: file, path: out/dead.jsonl}}]
  late_events: [{{type: file, path: out/late.jsonl}}]
"
    )
}

async fn wait_for_state(host: &Host, name: &str, state: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, status) = host.get(&format!("/pipelines/{name}/status")).await?;
        if status["state"] == state {
            return Ok(status);
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} did not reach {state}: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_applied_over_the_api_runs_its_registered_module() -> anyhow::Result<()> {
    let host = host().await?;
    // Keys a (3 events), b (2) in [0, 10s), a again (1) in [10s, 20s);
    // line 7 is no JSON.
    let mut input: String = [("a", 1_000), ("b", 2_000), ("a", 3_000), ("a", 4_000), ("b", 5_000), ("a", 12_000)]
        .iter()
        .map(|(k, t)| format!("{{\"user_id\":\"{k}\",\"timestamp\":{t}}}\n"))
        .collect();
    input.push_str("not JSON at all\n");
    std::fs::write(host.files.join("in.jsonl"), &input)?;
    let (status, _) = host.call(Method::POST, "/modules/counter", module_bytes("misbehave")?).await?;
    assert_eq!(status, StatusCode::CREATED);

    let (status, created) = host.call(Method::POST, "/pipelines", manifest("counts", "counter")).await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "counts");
    assert_eq!(created["config"]["transform"], json!({"module": "counter"}));
    let status = wait_for_state(&host, "counts", "STOPPED").await?;
    assert_eq!(status["trace"], "its input ended");
    assert_eq!(status["module"], "counter@1");
    assert_eq!(status["events_read"], 7);
    assert_eq!(status["feature_rows"], 3);
    assert_eq!(status["dead_letters"], 1);
    let mut rows: Vec<(String, i64, Value)> = common::read_lines(&host.files.join("out/features.jsonl"))
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or("").to_string(),
                r["window_start"].as_i64().unwrap_or(-1),
                r["features"].clone(),
            )
        })
        .collect();
    rows.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
    assert_eq!(
        rows,
        vec![
            ("a".into(), 0, json!({"count": 3})),
            ("a".into(), 10_000, json!({"count": 1})),
            ("b".into(), 0, json!({"count": 2})),
        ]
    );
    let (status, metrics) = host.text("/metrics").await?;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "sluice_events_read_total{pipeline=\"counts\"} 7",
        "sluice_dead_letters_total{pipeline=\"counts\",stage=\"decode\"} 1",
        "sluice_feature_rows_total{pipeline=\"counts\"} 3",
        "sluice_windows_fired_total{pipeline=\"counts\",trigger=\"close\"} 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in\n{metrics}");
    }
    // Every call is timed.
    let value = |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name)).map(str::to_string);
    let calls = value("sluice_guest_calls_total{pipeline=\"counts\"} ");
    assert!(calls.as_deref().is_some_and(|c| c != "0"), "{metrics}");
    assert_eq!(value("sluice_guest_call_seconds_count{pipeline=\"counts\"} "), calls);
    // The checkpoint at the end holds the file's end as its position: the
    // next line, 1-based.
    let (_, offsets) = host.get("/pipelines/counts/offsets").await?;
    assert_eq!(offsets["offsets"][0]["offset"], input.lines().count() + 1, "{offsets}");

    // What the status page shows: the dead letter, and samples.
    let (status, activity) = host.get("/pipelines/counts/activity").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(activity["interval_ms"], 100);
    let dead = &activity["dead_letters"];
    assert_eq!(dead.as_array().map(Vec::len), Some(1), "{activity}");
    assert_eq!((&dead[0]["stage"], &dead[0]["error_class"]), (&json!("decode"), &json!("invalid_json")));
    assert_eq!(dead[0]["excerpt"], "not JSON at all");
    assert!(dead[0]["position"].as_str().is_some_and(|p| p.ends_with("in.jsonl[0]@7")), "{activity}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.get("/pipelines/counts/activity").await?.1["samples"].as_array().is_none_or(|s| s.len() < 2) {
        anyhow::ensure!(Instant::now() < deadline, "no samples of counts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // In use: the module stays.
    let (status, body) = host.call(Method::DELETE, "/modules/counter", Body::empty()).await?;
    assert_error(status, &body, StatusCode::CONFLICT, "used by pipeline(s) counts");
    // Creating it again is a conflict; its config through the name route
    // must agree on the name.
    let (status, body) = host.call(Method::POST, "/pipelines", manifest("counts", "counter")).await?;
    assert_error(status, &body, StatusCode::CONFLICT, "exists");
    let (status, body) = host.call(Method::PUT, "/pipelines/other/config", manifest("counts", "counter")).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "must agree");

    let (status, _) = host.call(Method::DELETE, "/pipelines/counts", Body::empty()).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = host.get("/pipelines/counts/status").await?;
    assert_error(status, &body, StatusCode::NOT_FOUND, "no pipeline counts");
    let (status, _) = host.call(Method::DELETE, "/modules/counter", Body::empty()).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(host.holdings().await?, (json!([]), json!([])));
    Ok(())
}

/// The problems of a refused manifest: (field, line) each.
fn located(body: &Value) -> Vec<(String, Option<u64>)> {
    body["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["field"].as_str().unwrap_or("").to_string(), p["line"].as_u64()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_are_refused_with_every_problem_located() -> anyhow::Result<()> {
    let host = host().await?;
    std::fs::write(host.files.join("in.jsonl"), "")?;
    let (status, _) = host.call(Method::POST, "/modules/counter", module_bytes("misbehave")?).await?;
    assert_eq!(status, StatusCode::CREATED);
    let before = host.holdings().await?;

    // Paths out of the host's files directory, each at its line.
    let escaping = manifest("escape", "counter")
        .replace("path: in.jsonl", "path: /etc/passwd")
        .replace("path: out/dead.jsonl", "path: ../../dead.jsonl");
    let (status, body) = host.call(Method::POST, "/pipelines", escaping.clone()).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "outside the host's files directory");
    assert_eq!(
        located(&body),
        vec![("source.path".into(), Some(3)), ("outputs.dead_letters[0].path".into(), Some(12))],
        "{body}"
    );
    let (status, body) = host.call(Method::PUT, "/pipelines/escape/config", escaping.clone()).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "outside");
    // A module that is not registered, nor a file there.
    let (status, body) = host.call(Method::POST, "/pipelines", manifest("m", "nothing@3")).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "no module nothing@3");
    let (status, body) = host.call(Method::POST, "/pipelines", manifest("m", "/etc/x.wasm")).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "outside");
    // Not YAML, and not UTF-8.
    let (status, body) = host.call(Method::POST, "/pipelines", "name: x\nsource: [unclosed\n").await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "not valid YAML");
    assert!(body["problems"][0]["line"].as_u64().is_some(), "{body}");
    let (status, body) = host.call(Method::POST, "/pipelines", vec![0xff, 0xfe]).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "not UTF-8");
    let huge = format!("name: x\n# {}\n", "x".repeat(sluice_host::manifest::MAX_MANIFEST_BYTES as usize));
    let (status, body) = host.call(Method::POST, "/pipelines", huge).await?;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "length limit");

    // Validate lists the same problems and starts nothing.
    let (status, body) = host.call(Method::PUT, "/pipelines/validate?offline=true", escaping).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error_count"], 2, "{body}");
    let (status, body) =
        host.call(Method::PUT, "/pipelines/validate?offline=true", manifest("fine", "counter")).await?;
    assert_eq!((status, body), (StatusCode::OK, json!({"error_count": 0, "problems": []})));

    assert_eq!(host.holdings().await?, before);
    assert!(!host.files.join("out").exists(), "nothing ran");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_name_what_a_manifest_can_use() -> anyhow::Result<()> {
    let host = host().await?;
    let (status, body) = host.get("/plugins").await?;
    assert_eq!(status, StatusCode::OK);
    let plugins = body.as_array().cloned().unwrap_or_default();
    for p in &plugins {
        assert!(p["description"].as_str().is_some_and(|d| d.len() > 10), "{p}");
    }
    // A sink says which outputs it serves; the online and offline stores
    // take feature rows only.
    let outputs = |class: &str| {
        let sink = plugins.iter().find(|p| p["type"] == "sink" && p["class"] == class);
        sink.map(|p| p["outputs"].clone())
    };
    assert_eq!(outputs("redis"), Some(serde_json::json!(["features"])));
    assert_eq!(outputs("iceberg"), Some(serde_json::json!(["features"])));
    assert_eq!(outputs("kafka"), Some(serde_json::json!(["features", "dead_letters", "late_events"])));
    let mut got: Vec<(String, String)> = plugins
        .iter()
        .map(|p| (p["type"].as_str().unwrap_or("").into(), p["class"].as_str().unwrap_or("").into()))
        .collect();
    got.sort();
    let want: Vec<(String, String)> = [
        ("sink", "blackhole"),
        ("sink", "file"),
        ("sink", "iceberg"),
        ("sink", "kafka"),
        ("sink", "redis"),
        ("source", "file"),
        ("source", "kafka"),
        ("transform", "aggregate"),
        ("transform", "window"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    Ok(())
}

/// The OpenAPI document is generated from the handlers: each operation it
/// lists is routed (not the fallback, not another method), and each route
/// of the README's table is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_routes_there_are() -> anyhow::Result<()> {
    let host = host().await?;
    let (status, doc) = host.get("/openapi.json").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let method = method.to_uppercase();
            operations.push(format!("{method} {path}"));
            assert!(operation["responses"]["401"].is_object(), "{method} {path} does not say it needs the token");
            let uri = path.replace("{name}", "nothing-here").replace("{view}", "nothing-here");
            let (status, body) = host.call(Method::from_bytes(method.as_bytes())?, &uri, Body::empty()).await?;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let fallback = body["message"].as_str().is_some_and(|m| m.starts_with("no such resource"));
            assert!(!fallback, "{method} {path} is documented but not routed");
        }
    }
    operations.sort();
    let want = [
        "DELETE /modules/{name}",
        "DELETE /pipelines/{name}",
        "GET /features",
        "GET /features/{view}",
        "GET /features/{view}/online",
        "GET /files/{name}",
        "GET /metrics",
        "GET /modules",
        "GET /modules/{name}",
        "GET /pipelines",
        "GET /pipelines/{name}",
        "GET /pipelines/{name}/activity",
        "GET /pipelines/{name}/config",
        "GET /pipelines/{name}/feast",
        "GET /pipelines/{name}/offsets",
        "GET /pipelines/{name}/status",
        "GET /plugins",
        "GET /training-sets",
        "GET /training-sets/{id}",
        "POST /modules/{name}",
        "POST /pipelines",
        "POST /pipelines/{name}/restart",
        "POST /training-sets",
        "PUT /files/{name}",
        "PUT /pipelines/validate",
        "PUT /pipelines/{name}/config",
        "PUT /pipelines/{name}/pause",
        "PUT /pipelines/{name}/resume",
        "PUT /pipelines/{name}/stop",
    ];
    assert_eq!(operations, want);
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object(), "{doc}");
    Ok(())
}

/// Kafka Connect's rule: a new config does not change whether a pipeline
/// runs. A paused one keeps its new definition, paused, and runs it when
/// resumed; a change its checkpoints cannot take needs `?fresh=true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_pipeline_takes_a_new_config_and_stays_paused_until_resumed() -> anyhow::Result<()> {
    let host = host().await?;
    let input: String = [("a", 1_000), ("b", 2_000), ("a", 3_000), ("a", 4_000), ("b", 5_000), ("a", 12_000)]
        .iter()
        .map(|(k, t)| format!("{{\"user_id\":\"{k}\",\"timestamp\":{t}}}\n"))
        .collect();
    std::fs::write(host.files.join("in.jsonl"), &input)?;
    let (status, _) = host.call(Method::POST, "/modules/counter", module_bytes("misbehave")?).await?;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = host.call(Method::POST, "/pipelines", manifest("counts", "counter")).await?;
    assert_eq!(status, StatusCode::CREATED);
    wait_for_state(&host, "counts", "STOPPED").await?;
    let (status, _) = host.call(Method::PUT, "/pipelines/counts/pause", Body::empty()).await?;
    assert_eq!(status, StatusCode::ACCEPTED);

    // 20 s windows into another file: the checkpoints hold 10 s ones.
    let wider = manifest("counts", "counter")
        .replace("size: 10s", "size: 20s")
        .replace("out/features.jsonl", "out/features-20s.jsonl");
    let (status, body) = host.call(Method::PUT, "/pipelines/counts/config", wider.clone()).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "fresh");
    let (status, body) = host.call(Method::PUT, "/pipelines/counts/config?fresh=true", wider).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"]["state"], "PAUSED", "{body}");
    let (_, config) = host.get("/pipelines/counts/config").await?;
    assert_eq!(config["window"]["size"], "20s");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!host.files.join("out/features-20s.jsonl").exists(), "a paused pipeline does not run");

    let (status, _) = host.call(Method::PUT, "/pipelines/counts/resume", Body::empty()).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_for_state(&host, "counts", "STOPPED").await?;
    let mut rows: Vec<(String, i64, Value)> = common::read_lines(&host.files.join("out/features-20s.jsonl"))
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or("").to_string(),
                r["window_start"].as_i64().unwrap_or(-1),
                r["features"].clone(),
            )
        })
        .collect();
    rows.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
    // From the start of the file again (fresh): a has 4 events in [0, 20s), b 2.
    assert_eq!(rows, vec![("a".into(), 0, json!({"count": 4})), ("b".into(), 0, json!({"count": 2}))]);
    Ok(())
}

/// A shared library whose constructor writes `marker` when it is loaded,
/// built with the system's C compiler.
fn marker_library(dir: &std::path::Path, marker: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let source = dir.join("marker.c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void mark(void) {{ FILE *f = fopen(\"{}\", \"w\"); \
             if (f) {{ fputs(\"loaded\", f); fclose(f); }} }}\n",
            marker.display()
        ),
    )?;
    let library = dir.join("libmarker.so");
    let built =
        std::process::Command::new("cc").arg("-shared").arg("-fPIC").arg("-o").arg(&library).arg(&source).output()?;
    anyhow::ensure!(built.status.success(), "cc: {}", String::from_utf8_lossy(&built.stderr));
    Ok(library)
}

/// A Kafka pipeline whose source passes `properties` (YAML) through.
fn kafka_manifest(name: &str, properties: &str) -> String {
    format!(
        "name: {name}
source: {{type: kafka, brokers: '127.0.0.1:9', topics: [t], group: g, properties: {properties}}}
events:
  key: user_id
  timestamp: {{field: timestamp, format: millis}}
window: {{type: tumbling, size: 10s}}
transform: {{module: counter}}
outputs:
  features: [{{type: file, path: out/features.jsonl}}]
  dead_letters: [{{type: file, path: out/dead.jsonl}}]
  late_events: [{{type: file, path: out/late.jsonl}}]
"
    )
}

/// No librdkafka property brings code into the host: one that loads a
/// library (or runs a command) is refused at its line by validate and by
/// apply, and the library is never loaded, even by a host that allows the
/// property (validate passes it to no client); one that names a file is
/// kept inside the files directory, as are the schema registry's secrets,
/// which may not come from the host's environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_properties_load_no_code_and_name_no_file_outside() -> anyhow::Result<()> {
    let host = host().await?;
    let (status, _) = host.call(Method::POST, "/modules/counter", module_bytes("misbehave")?).await?;
    assert_eq!(status, StatusCode::CREATED);
    let outside = tempfile::tempdir()?;
    let marker = outside.path().join("loaded");
    let library = marker_library(outside.path(), &marker)?;
    let plugin = kafka_manifest("plugin", &format!("{{plugin.library.paths: '{}'}}", library.display()));
    // Online, the checks reach the brokers too (none answers there).
    for uri in ["/pipelines/validate?offline=true", "/pipelines/validate"] {
        let (status, body) = host.call(Method::PUT, uri, plugin.clone()).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let found = located(&body);
        assert_eq!(found[0], ("source.properties.plugin.library.paths".into(), Some(2)), "{uri}: {body}");
        assert!(found[1..].iter().all(|(f, _)| f == "source.brokers"), "{uri}: {body}");
        assert!(body["problems"][0]["message"].as_str().is_some_and(|m| m.contains("loads the shared libraries")));
    }
    let (status, body) = host.call(Method::POST, "/pipelines", plugin.clone()).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "plugin.library.paths");
    let kinit = kafka_manifest("kinit", &format!("{{sasl.kerberos.kinit.cmd: 'touch {}'}}", marker.display()));
    let (status, body) = host.call(Method::PUT, "/pipelines/kinit/config", kinit).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "shell command");
    let key_file = kafka_manifest("key", "{sasl.oauthbearer.assertion.private.key.file: /etc/ssl/private/key.pem}");
    let (status, body) = host.call(Method::PUT, "/pipelines/validate?offline=true", key_file).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(located(&body), vec![("source.properties.sasl.oauthbearer.assertion.private.key.file".into(), Some(2))]);
    // Nor do the schema registry's secrets come from the host's
    // environment or from a file outside.
    for (registry, at) in [
        ("{url: 'http://127.0.0.1:9', username: u, password_env: HOME}", "events.registry.password_env"),
        ("{url: 'http://127.0.0.1:9', token_file: /etc/passwd}", "events.registry.token_file"),
    ] {
        let avro = kafka_manifest("avro", "{}")
            .replace("events:\n", &format!("events:\n  format: avro\n  registry: {registry}\n"));
        let (status, body) = host.call(Method::PUT, "/pipelines/validate?offline=true", avro).await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(located(&body), vec![(at.to_string(), Some(5))], "{body}");
        // The same for the registry of an Avro Kafka sink.
        let sink = kafka_manifest("avro-rows", "{}").replace(
            "  features: [{type: file, path: out/features.jsonl}]",
            &format!(
                "  features: [{{type: kafka, brokers: '127.0.0.1:9', topic: f, format: avro, registry: {registry}}}]"
            ),
        );
        let (status, body) = host.call(Method::PUT, "/pipelines/validate?offline=true", sink).await?;
        assert_eq!(status, StatusCode::OK);
        let at = at.replace("events.registry", "outputs.features[0].registry");
        assert_eq!(located(&body), vec![(at, Some(9))], "{body}");
    }
    assert_eq!(host.get("/pipelines").await?.1, json!([]));

    // A host that allows the property takes the manifest, but validate
    // still loads nothing.
    let data = tempfile::tempdir()?;
    let settings = sluice_host::supervisor::Settings {
        allowed_kafka_properties: ["plugin.library.paths".to_string()].into_iter().collect(),
    };
    let allowing = Supervisor::open_with(data.path(), Runtime::current()?, settings).await?;
    let bytes = module_bytes("misbehave")?;
    allowing.push_module("counter", bytes, None).await?;
    allowing.validate(&plugin, false).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(!marker.exists(), "the library was loaded: {}", std::fs::read_to_string(&marker)?);
    Ok(())
}

/// Kafka Connect's create: of many concurrent creates of one name, one
/// gets 201 and keeps its config; every other gets 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_creates_of_one_name_exactly_one_wins() -> anyhow::Result<()> {
    let host = Arc::new(host().await?);
    std::fs::write(host.files.join("in.jsonl"), "")?;
    let (status, _) = host.call(Method::POST, "/modules/counter", module_bytes("misbehave")?).await?;
    assert_eq!(status, StatusCode::CREATED);
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..32 {
        let host = host.clone();
        let text = manifest("race", "counter").replace("out/features.jsonl", &format!("out/features-{i}.jsonl"));
        creates.spawn(async move { (i, host.call(Method::POST, "/pipelines", text).await) });
    }
    let mut created = Vec::new();
    while let Some(done) = creates.join_next().await {
        let (i, answer) = done?;
        let (status, body) = answer?;
        match status {
            StatusCode::CREATED => created.push(i),
            StatusCode::CONFLICT => assert_error(status, &body, StatusCode::CONFLICT, "exists"),
            other => anyhow::bail!("create {i}: {other} {body}"),
        }
    }
    assert_eq!(created.len(), 1, "created by {created:?}");
    let (_, config) = host.get("/pipelines/race/config").await?;
    let kept = format!("out/features-{}.jsonl", created[0]);
    assert_eq!(config["outputs"]["features"][0]["path"], kept.as_str());
    Ok(())
}

/// Every error answer is `{"error_code", "message"}` JSON, axum's own
/// (a 405, a query or path it cannot read) included; the bearer scheme's
/// case does not matter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_json() -> anyhow::Result<()> {
    let host = host().await?;
    let (status, body) = host.call(Method::POST, "/", Body::empty()).await?;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "does not take POST");
    let request =
        Request::builder().method(Method::PUT).uri("/modules").header("authorization", format!("Bearer {TOKEN}"));
    let response = host.router.clone().oneshot(request.body(Body::empty())?).await?;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET,HEAD"));
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    let body: Value = serde_json::from_slice(&bytes)?;
    assert_error(StatusCode::METHOD_NOT_ALLOWED, &body, StatusCode::METHOD_NOT_ALLOWED, "does not take PUT");
    for (method, uri) in [
        (Method::GET, "/pipelines?bogus=1"),
        (Method::PUT, "/pipelines/x/config?fresh=maybe"),
        (Method::POST, "/modules/x?kind=window&kind=aggregate"),
        (Method::GET, "/modules/%ff"),
    ] {
        let (status, body) = host.call(method.clone(), uri, Body::empty()).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {body}");
        assert_eq!(body["error_code"], 400, "{method} {uri}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {uri}: {body}");
    }
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let request = Request::builder().uri("/pipelines").header("authorization", format!("{scheme} {TOKEN}"));
        let (status, body) = host.send(request, Body::empty()).await?;
        assert_eq!((status, body), (StatusCode::OK, json!([])), "{scheme}");
    }
    let (status, body) =
        host.send(Request::builder().uri("/pipelines").header("authorization", TOKEN), Body::empty()).await?;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "Bearer");
    Ok(())
}

/// One validate answers with the problems of every stage, each at its
/// line: an unknown field (reading), a slide longer than the size (the
/// manifest's checks), a path outside the files directory, a module not
/// registered, a Redis URL that does not parse (the checks of what it
/// names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_the_problems_of_every_stage_at_once() -> anyhow::Result<()> {
    let host = host().await?;
    let text = "name: everything
source: {type: file, path: /etc/passwd}
events:
  key: user_id
  timestamp: {field: timestamp, format: millis}
window:
  type: sliding
  size: 30m
  slide: 45m
  slid: 1m
transform: {module: 'nothing@3'}
outputs:
  features: [{type: redis, url: 'http://not-redis', key: 'f:{key}'}]
  dead_letters: [{type: file, path: out/dead.jsonl}]
  late_events: [{type: file, path: out/late.jsonl}]
";
    let (status, body) = host.call(Method::PUT, "/pipelines/validate?offline=true", text).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut got = located(&body);
    got.sort();
    let mut want: Vec<(String, Option<u64>)> = [
        ("window.slid", 10),
        ("window.slide", 9),
        ("source.path", 2),
        ("transform.module", 11),
        ("outputs.features[0].url", 13),
    ]
    .iter()
    .map(|(f, l)| (f.to_string(), Some(*l)))
    .collect();
    want.sort();
    assert_eq!(got, want, "{body}");
    assert_eq!(body["error_count"], 5);
    for p in body["problems"].as_array().into_iter().flatten() {
        assert!(p["column"].as_u64().is_some(), "{p}");
    }
    let (status, body) = host.call(Method::POST, "/pipelines", text).await?;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "5 problems");
    Ok(())
}
