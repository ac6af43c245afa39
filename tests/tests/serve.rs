//! `sluice serve` over real HTTP, with the real broker and Redis: a module
//! pushed and a pipeline applied with the CLI client, features in Redis,
//! pause, a restart of the host process, resume, a config update, delete.
//! Through all of it the pipeline's state moves by its checkpoints, and
//! Redis ends as a clean run of the same events leaves it. A module
//! swapped mid-stream (and a swap that fails and rolls back), read back
//! from the Iceberg table with pyiceberg; the status page in Chromium.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BROKERS, Host, REDIS, Running, TOKEN, Topics, produce, redis_hashes, stored_row};
use redis::Commands;
use serde_json::{Value, json};
use sluice_tests::e2e::{self, expected, now_ms, wait_until};
use sluice_tests::jsonl::parse_line;

/// `examples/session-features.yaml` as pipeline `clicks`: from `t.input`
/// (to its end and on, or stopping there when `bounded`), its module the
/// registered `session-features`, features to Redis under `prefix`.
fn manifest(t: &Topics, prefix: &str, bounded: bool) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(e2e::root().join("examples/session-features.yaml"))?;
    let mut m: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let set = |m: &mut serde_yaml::Value, key: &str, yaml: &str| -> anyhow::Result<()> {
        m[key] = serde_yaml::from_str(yaml)?;
        Ok(())
    };
    set(&mut m, "name", "clicks")?;
    set(&mut m, "source", &t.source(e2e::session_features().spec.step, bounded))?;
    m["transform"]["module"] = "session-features".into();
    set(
        &mut m,
        "outputs",
        &format!(
            "{{features: [{{type: redis, url: '{REDIS}', key: '{prefix}{{key}}', ttl: 10m}}], \
             dead_letters: [{{type: file, path: out/dead.jsonl}}], late_events: [{{type: file, path: out/late.jsonl}}]}}"
        ),
    )?;
    Ok(serde_yaml::to_string(&m)?)
}

#[test]
fn a_host_runs_a_pipeline_through_pause_restart_resume_and_update_and_ends_as_a_clean_run() -> anyhow::Result<()> {
    let example = e2e::session_features();
    let t = Topics::create("serve", 1)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let prefix = format!("{}:", t.id);
    let host = Host::start(&data, dir.path().join("serve-1.log"))?;
    let module = e2e::root().join("target/modules/session-features.wasm");
    let pushed = host.cli(&["modules", "push", "session-features", &module.display().to_string()])?;
    assert!(pushed.starts_with("session-features@1 sha256:"), "{pushed}");

    let lines = produce(&example.config, &t.input)?;
    let file = dir.path().join("clicks.yaml");
    std::fs::write(&file, manifest(&t, &prefix, false)?)?;
    let applied = host.cli(&["pipelines", "apply", &file.display().to_string()])?;
    assert_eq!(applied.trim(), "clicks: created, RUNNING");
    let read = host.wait("clicks", "every event read", |s| s["events_read"] == lines.len())?;
    assert_eq!(read["state"], "RUNNING");
    assert_eq!(read["module"], "session-features@1");
    // Its lag: the partition's end is the records produced, all read.
    let caught_up = host.wait("clicks", "no lag", |s| s["consumer_lag"] == 0)?;
    let partition = json!({"topic": t.input, "partition": 0, "position": lines.len(), "end": lines.len(), "lag": 0});
    assert_eq!(caught_up["partitions"], json!([partition]), "{caught_up}");
    let metrics =
        reqwest::blocking::Client::new().get(format!("{}/metrics", host.url)).bearer_auth(TOKEN).send()?.text()?;
    let lag = format!("sluice_consumer_lag{{pipeline=\"clicks\",topic=\"{}\",partition=\"0\"}} 0", t.input);
    assert!(metrics.lines().any(|l| l == lag), "no {lag:?} in\n{metrics}");

    // Paused: a checkpoint at the topic's end, and it stays paused.
    let (code, _) = host.call(reqwest::Method::PUT, "/pipelines/clicks/pause")?;
    assert_eq!(code, 202);
    assert_eq!(host.status("clicks")?["state"], "PAUSED");
    let (_, offsets) = host.call(reqwest::Method::GET, "/pipelines/clicks/offsets")?;
    assert_eq!(offsets["offsets"][0]["offset"], lines.len(), "{offsets}");
    assert_eq!(offsets["offsets"][0]["topic"], t.input);

    // The host restarts: the pipeline is still there, still paused.
    let Host { mut process, .. } = host;
    let exit = process.terminate()?;
    assert!(exit.success(), "the host's exit: {exit}");
    let host = Host::start(&data, dir.path().join("serve-2.log"))?;
    let listed = host.cli(&["pipelines", "list"])?;
    assert!(listed.starts_with("clicks  PAUSED"), "{listed}");
    assert!(host.cli(&["modules", "list"])?.starts_with("session-features@1  window"));

    let resumed = host.cli(&["pipelines", "resume", "clicks"])?;
    assert_eq!(resumed.trim(), "clicks: resumed");
    host.wait("clicks", "running again", |s| s["state"] == "RUNNING")?;
    // Bounded now: a compatible change, so the state carries over; at the
    // topic's end every window still open fires.
    std::fs::write(&file, manifest(&t, &prefix, true)?)?;
    let updated = host.cli(&["pipelines", "apply", &file.display().to_string()])?;
    assert!(updated.starts_with("clicks: updated"), "{updated}");
    let ended = host.wait("clicks", "the end of the topic", |s| s["state"] == "STOPPED")?;
    assert_eq!(ended["trace"], "its input ended", "{ended}");
    assert!(host.log_text().contains("state restored from a checkpoint"), "{}", host.log_text());

    // Redis holds each user's last row, as a clean run would leave it.
    let now = now_ms();
    let parsed: Vec<_> = lines.iter().map(|l| parse_line(l, example.fields, now)).collect();
    let want = expected(&parsed, &example.spec, &example.compute);
    let mut redis = redis::Client::open(REDIS)?.get_connection()?;
    let hashes = redis_hashes(&mut redis, &prefix)?;
    assert_eq!(hashes.keys().collect::<Vec<_>>(), want.last.keys().collect::<Vec<_>>(), "Redis keys");
    for (key, row) in &want.last {
        assert_eq!(&stored_row(key, &hashes[key], row), row, "Redis hash of {key}");
    }
    let _: () = redis.del(hashes.keys().map(|k| format!("{prefix}{k}")).collect::<Vec<_>>())?;

    let deleted = host.cli(&["pipelines", "delete", "clicks"])?;
    assert_eq!(deleted.trim(), "clicks: deleted");
    let (code, body) = host.call(reqwest::Method::GET, "/pipelines/clicks/status")?;
    assert_eq!((code, body["error_code"].clone()), (404, Value::from(404)));
    let (code, _) = host.call(reqwest::Method::DELETE, "/modules/session-features")?;
    assert_eq!(code, 204);
    Ok(())
}

/// Events a second apart from 2026-01-01, keyed by a small generator so
/// that windows hold different counts: (key, event time in ms).
fn counted_events(n: usize) -> Vec<(String, i64)> {
    const START: i64 = 1_767_225_600_000;
    let mut seed: u64 = 7;
    (0..n)
        .map(|i| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (format!("u{}", (seed >> 33) % 17), START + i as i64 * 1_000)
        })
        .collect()
}

fn produce_counted(topic: &str, events: &[(String, i64)]) -> anyhow::Result<()> {
    use rdkafka::producer::Producer;
    let producer = sluice_examples::kafka::producer(BROKERS, &[])?;
    for (key, at) in events {
        let line = format!("{{\"user_id\":\"{key}\",\"timestamp\":{at}}}");
        sluice_examples::kafka::send(&producer, topic, Some(key), line.as_bytes())?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// Pipeline `counts`: one-minute windows per user of `t.input`, computed
/// by `module`, each window a row of the Iceberg table `offline.counts`.
fn counts_manifest(t: &Topics, module: &str, bounded: bool) -> String {
    format!(
        "name: counts
source: {source}
events:
  key: user_id
  timestamp: {{field: timestamp, format: millis}}
  max_future_skew: off
time: {{out_of_orderness: 0s}}
window: {{type: tumbling, size: 1m}}
transform: {{module: '{module}'}}
outputs:
  features: [{{type: iceberg, warehouse: out/warehouse, namespace: offline, table: counts}}]
  dead_letters: [{{type: file, path: out/dead.jsonl}}]
  late_events: [{{type: file, path: out/late.jsonl}}]
",
        source = t.source(100, bounded).replace("linger: 2s", "linger: 100ms"),
    )
}

/// A module swapped in a running pipeline takes over at one point: every
/// window is one row of the offline table (none lost, none twice), the
/// windows that closed before the swap computed by the old module and all
/// later ones by the new, with the events from before the swap still in
/// them (its state carried over). A swap to a module the table cannot
/// take fails to start and rolls back to the module that ran.
#[test]
fn a_module_swapped_mid_stream_takes_over_at_one_point_and_a_failed_swap_rolls_back() -> anyhow::Result<()> {
    let t = Topics::create("swap", 1)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let host = Host::start(&data, dir.path().join("serve.log"))?;
    let module = |name: &str| e2e::root().join(format!("target/modules/{name}.wasm")).display().to_string();
    // Version 1 counts a window's events; version 2 (another build, the
    // same feature) counts them times 1,000.
    assert!(host.cli(&["modules", "push", "count", &module("misbehave")])?.starts_with("count@1 "));
    let events = counted_events(3_000);
    produce_counted(&t.input, &events[..1_000])?;
    let (code, body) = host.send(reqwest::Method::POST, "/pipelines", counts_manifest(&t, "count@1", false))?;
    assert_eq!(code, 201, "{body}");
    host.wait("counts", "the first third read", |s| s["events_read"].as_u64() >= Some(1_000))?;

    assert!(host.cli(&["modules", "push", "count", &module("tally")])?.starts_with("count@2 "));
    let producing = std::thread::spawn({
        let (topic, rest) = (t.input.clone(), events[1_000..].to_vec());
        move || -> anyhow::Result<()> {
            for part in rest.chunks(100) {
                produce_counted(&topic, part)?;
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        }
    });
    let (code, body) =
        host.send(reqwest::Method::PUT, "/pipelines/counts/config", counts_manifest(&t, "count@2", false))?;
    assert_eq!(code, 200, "the swap: {body}");
    assert_eq!(host.status("counts")?["module"], "count@2");

    // session-features makes columns the table does not have: it cannot
    // start, and count@2 runs on.
    assert!(host.cli(&["modules", "push", "clicks", &module("session-features")])?.starts_with("clicks@1 "));
    let (code, body) =
        host.send(reqwest::Method::PUT, "/pipelines/counts/config", counts_manifest(&t, "clicks", false))?;
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("has no column")), "{body}");
    let after = host.wait("counts", "running again", |s| s["state"] == "RUNNING")?;
    assert_eq!(after["module"], "count@2", "{after}");
    assert!(host.log_text().contains("the old one runs again"), "{}", host.log_text());

    producing.join().map_err(|_| anyhow::anyhow!("the producer panicked"))??;
    let (code, body) =
        host.send(reqwest::Method::PUT, "/pipelines/counts/config", counts_manifest(&t, "count@2", true))?;
    assert_eq!(code, 200, "{body}");
    host.wait("counts", "the end of the topic", |s| s["state"] == "STOPPED")?;

    // The windows, counted here from the events.
    let mut want: std::collections::BTreeMap<(String, i64), i64> = Default::default();
    for (key, at) in &events {
        *want.entry((key.clone(), at - at.rem_euclid(60_000))).or_default() += 1;
    }
    let rows = e2e::iceberg_rows(&data.join("files/out/warehouse"), "offline.counts")?;
    let mut got: std::collections::BTreeMap<(String, i64), Vec<(i64, i64)>> = Default::default();
    for r in &rows {
        let key = (r["key"].as_str().unwrap_or("?").to_string(), r["window_start"].as_i64().unwrap_or(i64::MIN));
        got.entry(key).or_default().push((r["count"].as_i64().unwrap_or(-1), r["window_end"].as_i64().unwrap_or(-1)));
    }
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let mut wrong = Vec::new();
    for (window, n) in &want {
        match got.get(window).map(Vec::as_slice) {
            Some(&[(count, end)]) if count == *n => old.push(end),
            Some(&[(count, end)]) if count == n * 1_000 => new.push(end),
            other => wrong.push(format!("{window:?} ({n} events): {other:?}")),
        }
    }
    let unknown = got.keys().filter(|w| !want.contains_key(*w)).count();
    assert!(
        wrong.is_empty() && unknown == 0,
        "{} rows for {} windows: {} wrong (first: {:?}), {unknown} unknown",
        rows.len(),
        want.len(),
        wrong.len(),
        wrong.first()
    );
    let (last_old, first_new) = (old.iter().max(), new.iter().min());
    assert!(
        !old.is_empty() && !new.is_empty() && last_old < first_new,
        "the output must switch at one point: {} old rows ending up to {last_old:?}, {} new from {first_new:?}",
        old.len(),
        new.len()
    );
    Ok(())
}

/// `n` as the status page writes it (`12,345`).
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Chromium, headless, with `args`; its stdout.
fn chromium(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=4000"])
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run chromium ({e}): scripts/setup installs it"))?;
    anyhow::ensure!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

/// The status page, in a real browser: each pipeline with its state and
/// figures, charts of its recent samples, and its last dead letters with
/// why they were refused; without the token it asks for one and shows
/// nothing. A screenshot is kept in `out/test-artifacts/`.
#[test]
fn the_status_page_shows_pipelines_their_charts_and_last_dead_letters_in_a_browser() -> anyhow::Result<()> {
    let example = e2e::session_features();
    let t = Topics::create("page", 1)?;
    let dir = tempfile::tempdir()?;
    let host = Host::start(&dir.path().join("data"), dir.path().join("serve.log"))?;
    let module = e2e::root().join("target/modules/session-features.wasm");
    host.cli(&["modules", "push", "session-features", &module.display().to_string()])?;
    // Clean events, then the only two dead letters.
    let clean = sluice_examples::Config { events: 2_000, malformed: 0.0, late: 0.0, ..example.config };
    let lines = produce(&clean, &t.input)?;
    let bad = ["this is not JSON", "[\"an\", \"array\"]"];
    produce_lines(&t.input, &bad)?;
    let prefix = format!("{}:", t.id);
    let (code, body) = host.send(reqwest::Method::POST, "/pipelines", manifest(&t, &prefix, false)?)?;
    assert_eq!(code, 201, "{body}");
    let read = lines.len() + bad.len();
    host.wait("clicks", "every record read", |s| s["events_read"] == read && s["dead_letters"] == 2)?;
    // The consumer lag is known once librdkafka's statistics come (every
    // second).
    wait_until("samples with every series", Duration::from_secs(30), Duration::from_millis(100), || {
        let (_, activity) = host.call(reqwest::Method::GET, "/pipelines/clicks/activity")?;
        let samples = activity["samples"].as_array().cloned().unwrap_or_default();
        let known = |field: &str| samples.iter().filter(|s| !s[field].is_null()).count();
        Ok(known("consumer_lag") >= 2 && known("watermark_lag_ms") >= 2)
    })?;

    let page = format!("{}/#token={TOKEN}", host.url);
    let dom = chromium(&["--dump-dom", &page])?;
    for shown in [
        "data-name=\"clicks\" data-state=\"RUNNING\"".to_string(),
        format!("<dd data-figure=\"events read\">{}</dd>", grouped(read)),
        "<dd data-figure=\"dead letters\">2</dd>".to_string(),
        "<dd data-figure=\"module\">session-features@1</dd>".to_string(),
        // Both refused records, with their class and where they were.
        "<td>invalid_json</td>".to_string(),
        "<td>not_an_object</td>".to_string(),
        format!("<td>{}[0]@{}</td>", t.input, lines.len()),
        "this is not JSON".to_string(),
    ] {
        assert!(dom.contains(&shown), "the page does not show {shown:?}:\n{dom}");
    }
    for series in ["events_per_second", "consumer_lag", "watermark_lag_ms"] {
        let points = dom
            .split(&format!("data-series=\"{series}\" data-points=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|n| n.parse::<usize>().ok());
        assert!(points.is_some_and(|p| p >= 2), "chart {series}: {points:?} points\n{dom}");
    }
    assert!(dom.contains("<polyline points="), "{dom}");

    let artifacts = e2e::root().join("out/test-artifacts");
    std::fs::create_dir_all(&artifacts)?;
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&["--window-size=1280,1000", &format!("--screenshot={}", shot.display()), &page])?;
    let png = std::fs::read(&shot)?;
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{}: {} bytes", shot.display(), png.len());
    eprintln!("the status page: {}", shot.display());

    // No token: the form asks for it, and nothing is shown.
    let dom = chromium(&["--dump-dom", &format!("{}/", host.url)])?;
    assert!(dom.contains("this host needs its token") && !dom.contains("data-name="), "{dom}");
    assert!(!dom.contains("<form id=\"login\" hidden"), "{dom}");
    let (code, _) = host.call(reqwest::Method::DELETE, "/pipelines/clicks")?;
    assert_eq!(code, 204);
    Ok(())
}

fn produce_lines(topic: &str, lines: &[&str]) -> anyhow::Result<()> {
    use rdkafka::producer::Producer;
    let producer = sluice_examples::kafka::producer(BROKERS, &[])?;
    for line in lines {
        sluice_examples::kafka::send(&producer, topic, None, line.as_bytes())?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// `examples/session-features.yaml` as pipeline `name`, reading the host's
/// `in/clicks.jsonl`, every output appended to a file of `out/{name}/`.
fn file_manifest(name: &str) -> anyhow::Result<String> {
    appending_manifest(name, "{type: file, path: in/clicks.jsonl, step: 2000}")
}

/// `examples/session-features.yaml` as pipeline `name`, reading `source`
/// (YAML), every output appended to a file of `out/{name}/`.
fn appending_manifest(name: &str, source: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(e2e::root().join("examples/session-features.yaml"))?;
    let mut m: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let output = |what: &str| -> anyhow::Result<serde_yaml::Value> {
        Ok(serde_yaml::from_str(&format!("[{{type: file, path: 'out/{name}/{what}.jsonl', append: true}}]"))?)
    };
    m["name"] = name.into();
    m["source"] = serde_yaml::from_str(source)?;
    m["parallelism"] = 1.into();
    m["transform"]["module"] = "session-features".into();
    m["outputs"]["features"] = output("features")?;
    m["outputs"]["dead_letters"] = output("dead")?;
    m["outputs"]["late_events"] = output("late")?;
    Ok(serde_yaml::to_string(&m)?)
}

/// The lines of a file pipeline's output `what`, each as written but for
/// the wall-clock times in it (when a row was computed, a dead letter
/// made, how far an event is ahead of the clock), sorted: a multiset to compare runs by.
fn appended(data: &Path, name: &str, what: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(data.join(format!("files/out/{name}/{what}.jsonl")))?;
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut v: Value = serde_json::from_str(line)?;
        if let Some(row) = v.as_object_mut() {
            row.remove("computed_at");
            row.remove("at");
            // "… ms ahead of the clock": a dead letter is told by its class.
            if row.get("error_class").is_some_and(|c| c == "timestamp_out_of_range") {
                row.remove("message");
            }
        }
        lines.push(v.to_string());
    }
    lines.sort();
    Ok(lines)
}

/// A file pipeline keeps its place as Flink's file source does: paused
/// and resumed, stopped and started, through a restart of the host and
/// an unchanged config it goes on from its last checkpoint, and once its
/// file is read it stays finished across a restart. Its outputs, appended
/// to, hold each row once: what a clean run of the same file writes.
#[test]
fn a_file_pipeline_goes_on_from_its_checkpoints_and_writes_each_row_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let host = Host::start(&data, dir.path().join("serve-1.log"))?;
    let module = e2e::root().join("target/modules/session-features.wasm");
    host.cli(&["modules", "push", "session-features", &module.display().to_string()])?;
    let config =
        sluice_examples::Config { events: 400_000, users: 2_000, rate: 100.0, ..e2e::session_features().config };
    let mut input = Vec::new();
    sluice_examples::generate(&config, &mut input)?;
    let lines = input.iter().filter(|&&b| b == b'\n').count();
    std::fs::create_dir_all(data.join("files/in"))?;
    std::fs::write(data.join("files/in/clicks.jsonl"), &input)?;

    let (code, body) = host.send(reqwest::Method::POST, "/pipelines", file_manifest("clean")?)?;
    assert_eq!(code, 201, "{body}");
    let clean = host.wait("clean", "the clean run's end", |s| s["state"] == "STOPPED")?;
    assert_eq!(clean["events_read"], lines, "{clean}");

    let (code, body) = host.send(reqwest::Method::POST, "/pipelines", file_manifest("resumed")?)?;
    assert_eq!(code, 201, "{body}");
    // Where the newest checkpoint left the file: the next line.
    let next_line = |host: &Host| -> anyhow::Result<u64> {
        let (_, offsets) = host.call(reqwest::Method::GET, "/pipelines/resumed/offsets")?;
        anyhow::ensure!(offsets["offsets"][0]["topic"] == "files/in/clicks.jsonl", "{offsets}");
        offsets["offsets"][0]["offset"].as_u64().ok_or_else(|| anyhow::anyhow!("no offset: {offsets}"))
    };
    let mut stops = Vec::new();
    for (verb, state) in [("pause", "PAUSED"), ("stop", "STOPPED")] {
        host.wait("resumed", "some events read", |s| s["events_read"].as_u64() > Some(0))?;
        let (code, body) = host.call(reqwest::Method::PUT, &format!("/pipelines/resumed/{verb}"))?;
        assert_eq!(code, 202, "{body}");
        assert_eq!(host.status("resumed")?["state"], state);
        stops.push(next_line(&host)?);
        let (code, body) = host.call(reqwest::Method::PUT, "/pipelines/resumed/resume")?;
        assert_eq!(code, 202, "{body}");
    }
    host.wait("resumed", "some events read", |s| s["events_read"].as_u64() > Some(0))?;
    let Host { mut process, .. } = host;
    assert!(process.terminate()?.success());
    let host = Host::start(&data, dir.path().join("serve-2.log"))?;
    host.wait("resumed", "some events read", |s| s["events_read"].as_u64() > Some(0))?;
    stops.push(next_line(&host)?);
    let (code, body) = host.send(reqwest::Method::PUT, "/pipelines/resumed/config", file_manifest("resumed")?)?;
    assert_eq!(code, 200, "{body}");
    let ended = host.wait("resumed", "the end of the file", |s| s["state"] == "STOPPED")?;
    assert_eq!(ended["trace"], "its input ended", "{ended}");
    // Each stop was in the middle of the file, and the next went further.
    stops.push(next_line(&host)?);
    eprintln!("the checkpoints' next lines at each stop: {stops:?} of {lines} lines");
    assert!(stops.windows(2).all(|w| w[0] <= w[1]) && stops[0] > 1, "{stops:?}");
    assert_eq!(stops.last().copied(), Some(lines as u64 + 1), "{stops:?}");
    assert!(stops[..3].iter().all(|&s| s < lines as u64 + 1), "a stop came after the end: {stops:?}");
    assert!(host.log_text().contains("resuming where a checkpoint stopped"), "{}", host.log_text());

    // A restart after the end reads nothing again.
    let Host { mut process, .. } = host;
    assert!(process.terminate()?.success());
    let host = Host::start(&data, dir.path().join("serve-3.log"))?;
    let again = host.wait("resumed", "the end, again", |s| s["state"] == "STOPPED")?;
    assert_eq!(again["events_read"], 0, "{again}");

    for what in ["features", "dead", "late"] {
        let (want, got) = (appended(&data, "clean", what)?, appended(&data, "resumed", what)?);
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "{what}: {} lines written more than once", got.len() - unique.len());
        assert!(!want.is_empty() || what != "features", "the clean run wrote no features");
        assert_eq!(got.len(), want.len(), "{what}: {} lines for the clean run's {}", got.len(), want.len());
        let first = got.iter().zip(&want).find(|(g, w)| g != w);
        assert!(first.is_none(), "{what}: the lines differ from the clean run's, first {first:?}");
    }
    Ok(())
}

/// The CLI is quiet when its reader goes away (`| head -c1`), as Unix
/// tools are: no panic, no backtrace, exit 0.
#[test]
fn the_cli_exits_quietly_when_its_reader_goes_away() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(&dir.path().join("data"), dir.path().join("serve.log"))?;
    let module = e2e::root().join("target/modules/misbehave.wasm");
    host.cli(&["modules", "push", "counter", &module.display().to_string()])?;
    let sluice = e2e::sluice().display().to_string();
    // `true` reads nothing and is gone by the time the answer comes.
    for reader in ["head -c1", "true"] {
        for command in ["modules list", "pipelines list", "reference"] {
            let out = Command::new("bash")
                .args(["-c", &format!("set -o pipefail; '{sluice}' {command} | {reader} >/dev/null")])
                .env("SLUICE_HOST", &host.url)
                .env("SLUICE_TOKEN", TOKEN)
                .env("RUST_BACKTRACE", "1")
                .output()?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && stderr.is_empty(), "{command} | {reader}: {}: {stderr}", out.status);
        }
    }
    Ok(())
}

/// A body whose declared length is over the limit is refused before it is
/// sent: the 413 comes while the client still holds the rest of it (on
/// main before, the host waited for the whole terabyte).
#[test]
fn a_body_declared_too_large_is_refused_before_it_is_read() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir()?;
    let host = Host::start(&dir.path().join("data"), dir.path().join("serve.log"))?;
    let address = host.url.trim_start_matches("http://");
    for path in ["/modules/huge", "/pipelines"] {
        let mut socket = std::net::TcpStream::connect(address)?;
        // Only a guard: the answer must come with the body unsent.
        socket.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            socket,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: 1099511627776\r\n\r\n"
        )?;
        // A start of the body, which the socket's buffers take at once.
        socket.write_all(&vec![0u8; 64 << 10])?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buffer)?;
            anyhow::ensure!(n > 0, "{path}: the connection closed without an answer");
            answer.extend_from_slice(&buffer[..n]);
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 413"), "{path}: {text}");
        assert!(text.to_ascii_lowercase().contains("content-type: application/json"), "{path}: {text}");
    }
    Ok(())
}

/// A Tansu broker of the test's own on a free port, with nothing in it:
/// one test may stop it without stopping the others'. Killed when dropped.
fn private_broker(log: &Path) -> anyhow::Result<(Running, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new("tansu")
        .args([
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start tansu ({e}): scripts/setup installs it"))?;
    let broker = Running(child);
    let address = format!("127.0.0.1:{port}");
    wait_until("the private broker", Duration::from_secs(30), Duration::from_millis(50), || {
        Ok(std::net::TcpStream::connect(&address).is_ok())
    })?;
    Ok((broker, address))
}

/// A consumer whose group session is lost (its broker stopped past the
/// session timeout) says so in its status, and after its bounded wait
/// rejoins the group as a new member. Then either the group assigns the
/// new member partitions, which it restores from the hand-over
/// checkpoint, or (Tansu 0.6, when the member's last heartbeat reaches
/// the broker after its session is over: the group keeps a leader that
/// is gone, for good) the host says it rejoined without an assignment and
/// rejoins again after twice the wait. Which of the two depends on when
/// the broker was stopped; both are Sluice doing its part.
#[test]
fn a_consumer_that_lost_its_group_session_says_so_and_rejoins_as_a_new_member() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (broker, brokers) = private_broker(&dir.path().join("tansu.log"))?;
    sluice_examples::kafka::create_topic(&brokers, "clicks", 2)?;
    let config = sluice_examples::Config { events: 1_000, ..e2e::session_features().config };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    let produced = sluice_examples::kafka::produce_lines(&brokers, "clicks", &text)?;
    let host = Host::start(&dir.path().join("data"), dir.path().join("serve.log"))?;
    let module = e2e::root().join("target/modules/session-features.wasm");
    host.cli(&["modules", "push", "session-features", &module.display().to_string()])?;
    // A 3 s session: the member rejoins 15 s after it let go.
    let source = format!(
        "{{type: kafka, brokers: '{brokers}', topics: [clicks], group: lost, start: earliest, \
         properties: {{session.timeout.ms: '3000', heartbeat.interval.ms: '1000'}}}}"
    );
    let manifest = appending_manifest("lost", &source)?;
    let (code, body) = host.send(reqwest::Method::POST, "/pipelines", manifest)?;
    assert_eq!(code, 201, "{body}");
    host.wait("lost", "every record read", |s| s["events_read"] == produced)?;
    assert_eq!(host.status("lost")?["waiting"], Value::Null);

    let pid = broker.0.id().to_string();
    anyhow::ensure!(Command::new("kill").args(["-STOP", &pid]).status()?.success(), "kill -STOP");
    std::thread::sleep(Duration::from_secs(6));
    anyhow::ensure!(Command::new("kill").args(["-CONT", &pid]).status()?.success(), "kill -CONT");
    let waiting = host.wait("lost", "a status that says it waits", |s| s["waiting"].is_string())?;
    assert!(waiting["waiting"].as_str().is_some_and(|w| w.contains("let go")), "{waiting}");
    assert_eq!(waiting["state"], "RUNNING");
    let log = |what: &str| host.log_text().lines().filter(|l| l.contains(what)).count();
    let (assigned, restored) = (log("partitions assigned"), log("state restored from a checkpoint"));
    let with_log = |e: anyhow::Error| anyhow::anyhow!("{e}\n{}", host.log_text());
    wait_until("a rejoin as a new member", Duration::from_secs(40), Duration::from_millis(200), || {
        Ok(log("rejoining the consumer group as a new member") > 0)
    })
    .map_err(with_log)?;
    let taken_over = || log("partitions assigned") > assigned && log("state restored from a checkpoint") > restored;
    let again = || log("rejoined_before=1") > 0;
    wait_until(
        "the new member's partitions, or a second rejoin",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || Ok(taken_over() || again()),
    )
    .map_err(with_log)?;
    if !taken_over() {
        let says =
            |s: &Value| s["waiting"].as_str().is_some_and(|w| w.contains("rejoined the consumer group as a new"));
        host.wait("lost", "a status that says it rejoined without an assignment", says)?;
    }
    assert!(log("partitions let go after a revocation; waiting for the consumer group") > 0, "{}", host.log_text());
    assert_ne!(host.status("lost")?["state"], "FAILED");
    let Host { mut process, .. } = host;
    assert!(process.terminate()?.success(), "the host stops cleanly");
    Ok(())
}
