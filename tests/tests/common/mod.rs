//! What the tests against the real broker and Redis share: fresh topics,
//! a `sluice` process killed when dropped, a `sluice serve` host,
//! producing generated events, and reading Redis hashes back as rows.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::producer::Producer;
use redis::Commands;
use serde_json::{Map, Value};
use sluice_examples::Config;
use sluice_examples::kafka::{create_topic, key_of, producer, send};
use sluice_tests::e2e::{self, Row, canonical, wait_until};

pub const BROKERS: &str = "127.0.0.1:9092";
pub const REDIS: &str = "redis://127.0.0.1:6379/0";

pub fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("sluice-test-{what}-{}-{nanos}", std::process::id())
}

/// A run's fresh topics and Redis key prefix.
pub struct Topics {
    pub id: String,
    pub input: String,
    pub features: String,
    pub dead: String,
    pub late: String,
}

impl Topics {
    pub fn create(what: &str, partitions: i32) -> anyhow::Result<Self> {
        let id = unique(what);
        let t = Topics {
            input: format!("{id}-in"),
            features: format!("{id}-features"),
            dead: format!("{id}-dead"),
            late: format!("{id}-late"),
            id,
        };
        create_topic(BROKERS, &t.input, partitions)?;
        for topic in [&t.features, &t.dead, &t.late] {
            create_topic(BROKERS, topic, 1)?;
        }
        Ok(t)
    }

    /// `--set source=…`: the input topic from its start. A step waits (up
    /// to `linger`) until it is full, so the watermark moves every `step`
    /// records as in the reference model.
    pub fn source(&self, step: usize, bounded: bool) -> String {
        format!(
            "{{type: kafka, brokers: '{BROKERS}', topics: ['{}'], group: '{}', start: earliest, \
             stop_at_end: {bounded}, step: {step}, linger: 2s}}",
            self.input, self.id
        )
    }

    /// `--set outputs=…`: features to Redis (`redis_key`) and the feature
    /// topic, dead letters and late events to theirs.
    pub fn outputs(&self, redis: &str, redis_key: &str) -> String {
        let kafka = |topic: &str| format!("{{type: kafka, brokers: '{BROKERS}', topic: '{topic}'}}");
        format!(
            "{{features: [{{type: redis, url: '{redis}', key: '{redis_key}', ttl: 10m}}, {}], \
             dead_letters: [{}], late_events: [{}]}}",
            kafka(&self.features),
            kafka(&self.dead),
            kafka(&self.late)
        )
    }
}

/// A running `sluice`, killed when dropped (a failed assertion must not
/// leave it running).
pub struct Running(pub Child);

impl Running {
    /// SIGTERM, and the exit status within 30 s.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let signal = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status()?;
        anyhow::ensure!(signal.success(), "kill -TERM failed");
        let mut status = None;
        wait_until("the exit after SIGTERM", Duration::from_secs(30), Duration::from_millis(50), || {
            status = self.0.try_wait()?;
            Ok(status.is_some())
        })?;
        status.ok_or_else(|| anyhow::anyhow!("no exit status"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Generated lines, each produced as one record, in order, to partition 0
/// of `topic`; returns the lines (line i is offset i).
pub fn produce(config: &Config, topic: &str) -> anyhow::Result<Vec<String>> {
    let lines = generated(config)?;
    produce_lines(&lines, topic)?;
    Ok(lines)
}

/// The lines `config` generates.
pub fn generated(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut text = Vec::new();
    sluice_examples::generate(config, &mut text)?;
    Ok(String::from_utf8(text)?.lines().map(str::to_string).collect())
}

/// `lines`, each one record keyed by its `user_id`, in order.
pub fn produce_lines(lines: &[String], topic: &str) -> anyhow::Result<()> {
    let producer = producer(BROKERS, &[])?;
    for line in lines {
        let key = key_of(line.as_bytes());
        send(&producer, topic, key.as_deref(), line.as_bytes())?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// A Redis hash as the row it stores; features are typed like the
/// expected row's (strings are stored bare, everything else as JSON).
pub fn stored_row(key: &str, hash: &BTreeMap<String, String>, like: &Row) -> Row {
    let want: Map<String, Value> = serde_json::from_str(&like.5).unwrap_or_default();
    let number = |f: &str| hash.get(f).and_then(|v| v.parse::<i64>().ok()).unwrap_or(i64::MIN);
    let features: Map<String, Value> = hash
        .iter()
        .filter(|(f, _)| !["window_start", "window_end", "event_time", "trigger", "computed_at"].contains(&f.as_str()))
        .map(|(f, v)| {
            let value = match want.get(f) {
                Some(Value::String(_)) => Value::String(v.clone()),
                _ => serde_json::from_str(v).unwrap_or(Value::String(v.clone())),
            };
            (f.clone(), value)
        })
        .collect();
    (
        key.to_string(),
        number("window_start"),
        number("window_end"),
        number("event_time"),
        hash.get("trigger").cloned().unwrap_or_default(),
        canonical(&features),
    )
}

/// Keys under `prefix`, and their hashes.
pub fn redis_hashes(
    redis: &mut redis::Connection,
    prefix: &str,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
    let keys: Vec<String> = redis.keys(format!("{prefix}*"))?;
    let mut out = BTreeMap::new();
    for k in keys {
        let hash: BTreeMap<String, String> = redis.hgetall(&k)?;
        out.insert(k[prefix.len()..].to_string(), hash);
    }
    Ok(out)
}

/// `tests/python/SCRIPT ARGS` with the virtualenv's Python; its stdout as
/// JSON (its stderr passed on, shown when a test fails).
pub fn python(script: &str, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(e2e::python()).arg(e2e::root().join("tests/python").join(script)).args(args).output()?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub const TOKEN: &str = "serve-test-token";

/// A `sluice serve` process on a port of its own.
pub struct Host {
    pub process: Running,
    pub url: String,
    pub log: PathBuf,
}

impl Host {
    pub fn start(data: &Path, log: PathBuf) -> anyhow::Result<Host> {
        Self::start_on("127.0.0.1:0", data, log)
    }

    /// A host listening on `bind`.
    pub fn start_on(bind: &str, data: &Path, log: PathBuf) -> anyhow::Result<Host> {
        let mut child = Command::new(e2e::sluice())
            .args(["serve", "--bind", bind, "--sample-every", "300ms", "--data"])
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
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
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
    pub fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(method, path, String::new())
    }

    /// `method path` with `body`; the status and the JSON body.
    pub fn send(&self, method: reqwest::Method, path: &str, body: String) -> anyhow::Result<(u16, Value)> {
        let response = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .body(body)
            .timeout(Duration::from_secs(120))
            .send()?;
        let status = response.status().as_u16();
        let text = response.text()?;
        Ok((status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? }))
    }

    pub fn status(&self, name: &str) -> anyhow::Result<Value> {
        let (code, body) = self.call(reqwest::Method::GET, &format!("/pipelines/{name}/status"))?;
        anyhow::ensure!(code == 200, "status of {name}: {code} {body}");
        Ok(body)
    }

    /// Wait until the status of `name` satisfies `done`; the status.
    pub fn wait(&self, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        let waited = wait_until(what, Duration::from_secs(120), Duration::from_millis(100), || {
            last = self.status(name)?;
            Ok(done(&last))
        });
        waited.map_err(|e| anyhow::anyhow!("{e}; the last status: {last}\n{}", self.log_text()))?;
        Ok(last)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
