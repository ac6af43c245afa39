//! `sluice serve` over real HTTP, with the real broker and Redis: a module
//! pushed and a pipeline applied with the CLI client, features in Redis,
//! pause, a restart of the host process, resume, a config update, delete.
//! Through all of it the pipeline's state moves by its checkpoints, and
//! Redis ends as a clean run of the same events leaves it.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{REDIS, Running, Topics, produce, redis_hashes, stored_row};
use redis::Commands;
use serde_json::Value;
use sluice_tests::e2e::{self, expected, now_ms, wait_until};
use sluice_tests::jsonl::parse_line;

const TOKEN: &str = "serve-test-token";

/// A `sluice serve` process on a port of its own.
struct Host {
    process: Running,
    url: String,
    log: PathBuf,
}

impl Host {
    fn start(data: &Path, log: PathBuf) -> anyhow::Result<Host> {
        let mut child = Command::new(e2e::sluice())
            .args(["serve", "--bind", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("SLUICE_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let process = Running(child);
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let url = line.trim().strip_prefix("listening on ").map(str::to_string).ok_or_else(|| {
            anyhow::anyhow!(
                "sluice serve did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?;
        Ok(Host { process, url, log })
    }

    /// `sluice ARGS` against this host; its stdout.
    fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(e2e::sluice())
            .args(args)
            .env("SLUICE_HOST", &self.url)
            .env("SLUICE_TOKEN", TOKEN)
            .current_dir(e2e::root())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "sluice {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `method path` over HTTP; the status and the JSON body.
    fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(120))
            .send()?;
        let status = response.status().as_u16();
        let text = response.text()?;
        Ok((status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? }))
    }

    fn status(&self, name: &str) -> anyhow::Result<Value> {
        let (code, body) = self.call(reqwest::Method::GET, &format!("/pipelines/{name}/status"))?;
        anyhow::ensure!(code == 200, "status of {name}: {code} {body}");
        Ok(body)
    }

    /// Wait until the status of `name` satisfies `done`; the status.
    fn wait(&self, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        let waited = wait_until(what, Duration::from_secs(120), Duration::from_millis(100), || {
            last = self.status(name)?;
            Ok(done(&last))
        });
        waited.map_err(|e| anyhow::anyhow!("{e}; the last status: {last}\n{}", self.log_text()))?;
        Ok(last)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

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
