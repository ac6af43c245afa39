//! What the tests against the real broker and Redis share: fresh topics,
//! a `sluice` process killed when dropped, producing generated events,
//! and reading Redis hashes back as rows.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::Duration;

use rdkafka::producer::Producer;
use redis::Commands;
use serde_json::{Map, Value};
use sluice_examples::Config;
use sluice_examples::kafka::{create_topic, key_of, producer, send};
use sluice_tests::e2e::{Row, canonical, wait_until};

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
    let mut text = Vec::new();
    sluice_examples::generate(config, &mut text)?;
    let lines: Vec<String> = String::from_utf8(text)?.lines().map(str::to_string).collect();
    let producer = producer(BROKERS, &[])?;
    for line in &lines {
        let key = key_of(line.as_bytes());
        send(&producer, topic, key.as_deref(), line.as_bytes())?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(lines)
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
