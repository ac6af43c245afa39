//! Redis online store: one hash per entity key, for a model server to read
//! with one `HGETALL` (seed 000's layout: `user:{key}:session_features`).
//!
//! Each batch is one pipeline: for every row, `HSET` of all its features
//! plus `window_start`, `window_end`, `event_time`, `trigger` and
//! `computed_at`, then
//! `EXPIRE` with the TTL. Writes are idempotent, so a retried batch (after a
//! connection error, which the host retries with backoff) changes nothing.
//! Lists are stored as JSON arrays, numbers as decimal text, strings as
//! they are, null as `null`.
//!
//! A hash keeps the newest window, as an online store should (Feast keeps
//! the newest event timestamp the same way): a late update of an older
//! window, or an on-event row for an out-of-order event, would otherwise
//! replace a newer window's features until the entity's next row, which
//! for an idle entity never comes. Those rows go through a script that
//! writes only when the hash holds no later `window_end`. Rows fired on
//! close arrive in window order and are written directly: the script costs
//! Redis about twice a plain `HSET`.
//!
//! Failures, by class: a dropped or refused connection, a timeout, a
//! server loading its data, out of memory (`OOM`), read-only (a failover)
//! or a forgotten script are retriable (the host backs off and writes the
//! batch again); refused credentials (`NOAUTH`, `WRONGPASS`, `NOPERM`) are
//! fatal; a row Redis refuses on its own (its key holds another type,
//! `WRONGTYPE`) is poison: the batch is written row by row, and the rows
//! refused go to the dead-letter output.

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{
    Batch, Component, Context, Duration, Error, FeatureRow, FeatureValue, Output, Preflight, Problem, Rejected, Result,
    Sink, SinkComponent, Trigger,
};

/// Redis hashes, one per entity (feature rows only): the online store.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// Connection URL: `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS.
    pub url: String,
    /// Key of each entity's hash: `{key}` is replaced by the entity key.
    /// `{window_start}` and `{window_end}` (milliseconds) give each window
    /// its own hash, for history rather than only the latest value.
    pub key: String,
    /// Expiry of a hash after its last write (`EXPIRE`); `off` keeps hashes
    /// forever.
    #[serde(default, deserialize_with = "sluice_sink_api::duration::optional")]
    pub ttl: Option<Duration>,
}

impl Component for RedisSinkConfig {
    /// A URL that parses, and (online) a server that answers `PING`.
    fn preflight(&self, checks: &Preflight<'_>) -> Vec<Problem> {
        const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
        let url = &self.url;
        let client = match redis::Client::open(url.as_str()) {
            Ok(client) => client,
            Err(e) => {
                return vec![Problem::new(
                    "url",
                    format!("`{url}` is not a Redis URL: {e}"),
                    "write redis://[user:password@]host[:port][/db], or rediss:// for TLS",
                )];
            }
        };
        if !checks.online {
            return Vec::new();
        }
        let pong = client.get_connection_with_timeout(TIMEOUT).and_then(|mut c| {
            c.set_read_timeout(Some(TIMEOUT))?;
            redis::cmd("PING").query::<String>(&mut c)
        });
        match pong {
            Ok(_) => Vec::new(),
            Err(e) => vec![Problem::new(
                "url",
                format!("Redis at `{url}` does not answer: {e}"),
                "check that Redis runs there and that the password and database are right",
            )],
        }
    }
}

#[async_trait]
impl SinkComponent for RedisSinkConfig {
    const SERVES: &'static [Output] = &[Output::Features];

    async fn build(&self, name: &str, _context: &Context) -> Result<Box<dyn Sink>> {
        Ok(Box::new(RedisSink::open(name, self).await?))
    }
}

pub struct RedisSink {
    name: String,
    config: RedisSinkConfig,
    connection: ConnectionManager,
    /// [`WRITE_UNLESS_NEWER`].
    guarded: redis::Script,
    rejected: Vec<Rejected>,
}

/// `KEYS[1]`: the hash; `ARGV`: the row's `window_end`, the TTL in seconds
/// (0: none), then field, value, field, value… Writes unless the hash holds
/// a later window (an equal one is a correction, and is written).
const WRITE_UNLESS_NEWER: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], 'window_end'))
if stored and stored > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
";

/// How a failed write is handled (see the module's comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Retriable,
    Fatal,
    /// Refused for this row only.
    Poison,
}

fn class(e: &redis::RedisError) -> Class {
    use redis::ErrorKind as K;
    // A script Redis forgot between loading and running it (`SCRIPT
    // FLUSH` from another client) is loaded again by the retried pipeline.
    let transient = matches!(
        e.kind(),
        K::IoError
            | K::NoScriptError
            | K::BusyLoadingError
            | K::TryAgain
            | K::ClusterDown
            | K::MasterDown
            | K::ReadOnly
    );
    if transient || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return Class::Retriable;
    }
    match (e.kind(), e.code()) {
        (_, Some("OOM" | "MISCONF")) => Class::Retriable,
        (K::AuthenticationFailed | K::InvalidClientConfig, _) | (_, Some("NOAUTH" | "WRONGPASS" | "NOPERM")) => {
            Class::Fatal
        }
        (K::ResponseError | K::ExtensionError | K::TypeError | K::ExecAbortError, _) => Class::Poison,
        _ => Class::Fatal,
    }
}

fn error(sink: &str, what: &str, e: &redis::RedisError) -> Error {
    // A poison row is never reported as an error, only a batch's first
    // failure before it is written row by row: retrying is not the answer.
    let retriable = class(e) == Class::Retriable;
    Error { sink: sink.to_string(), message: format!("{what}: {e}"), retriable }
}

/// The text stored for a feature value.
pub fn field_text(value: &FeatureValue) -> String {
    match value {
        FeatureValue::Str(s) => s.clone(),
        other => {
            let mut json = Vec::new();
            other.write_json(&mut json);
            // JSON text from strings and numbers is UTF-8.
            String::from_utf8(json).unwrap_or_default()
        }
    }
}

/// The field-value pairs of a row's hash.
pub fn fields(row: &FeatureRow) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = row.features.0.iter().map(|(k, v)| (k.to_string(), field_text(v))).collect();
    out.push(("window_start".into(), row.window_start.to_string()));
    out.push(("window_end".into(), row.window_end.to_string()));
    out.push(("event_time".into(), row.event_time.to_string()));
    out.push((
        "trigger".into(),
        serde_json::to_value(row.trigger).ok().and_then(|t| t.as_str().map(str::to_string)).unwrap_or_default(),
    ));
    out.push(("computed_at".into(), row.computed_at.to_string()));
    out
}

impl RedisSink {
    pub async fn open(name: &str, config: &RedisSinkConfig) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| Error {
            sink: name.to_string(),
            message: format!("`{}` is not a Redis URL: {e}", config.url),
            retriable: false,
        })?;
        // Fail fast: the host retries failed writes with its own backoff
        // (holding the source back meanwhile), and the manager reconnects
        // in the background after a drop.
        let manager = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(1_000)
            .set_connection_timeout(std::time::Duration::from_secs(5))
            .set_response_timeout(std::time::Duration::from_secs(10));
        let connection = ConnectionManager::new_with_config(client, manager)
            .await
            .map_err(|e| error(name, &format!("cannot connect to {}", config.url), &e))?;
        Ok(RedisSink {
            name: name.to_string(),
            config: config.clone(),
            connection,
            guarded: redis::Script::new(WRITE_UNLESS_NEWER),
            rejected: Vec::new(),
        })
    }

    /// One pipeline writing `rows`.
    fn pipeline(&self, rows: &[FeatureRow]) -> redis::Pipeline {
        let ttl = self.config.ttl.map_or(0, |ttl| (ttl.millis() / 1000).max(1));
        let mut pipe = redis::pipe();
        if rows.iter().any(|r| r.trigger != Trigger::Close) {
            // Cheap when loaded already, and Redis forgets scripts when it
            // restarts.
            pipe.load_script(&self.guarded).ignore();
        }
        for row in rows {
            let key = self.key(row);
            let fields = fields(row);
            if row.trigger == Trigger::Close {
                pipe.hset_multiple(&key, &fields).ignore();
                if ttl > 0 {
                    pipe.expire(&key, ttl).ignore();
                }
            } else {
                let mut write = self.guarded.key(&key);
                write.arg(row.window_end).arg(ttl);
                for (field, value) in &fields {
                    write.arg(field).arg(value);
                }
                pipe.invoke_script(&write).ignore();
            }
        }
        pipe
    }

    /// The hash key of a row.
    pub fn key(&self, row: &FeatureRow) -> String {
        let template = &self.config.key;
        // Window bounds first, so an entity key that happens to contain
        // `{window_start}` stays as it is.
        if !template.contains("{window_") {
            return template.replace("{key}", &row.key.text());
        }
        template
            .replace("{window_start}", &row.window_start.to_string())
            .replace("{window_end}", &row.window_end.to_string())
            .replace("{key}", &row.key.text())
    }
}

#[async_trait]
impl Sink for RedisSink {
    async fn write(&mut self, batch: Batch<'_>) -> Result<()> {
        let Batch::Features(rows) = batch else {
            return Err(Error {
                sink: self.name.clone(),
                message:
                    "the redis sink stores feature rows; use a file or Kafka sink for dead letters and late events"
                        .into(),
                retriable: false,
            });
        };
        if rows.is_empty() {
            return Ok(());
        }
        let pipe = self.pipeline(rows);
        let e = match pipe.query_async::<()>(&mut self.connection).await {
            Ok(()) => return Ok(()),
            Err(e) if class(&e) != Class::Poison => return Err(error(&self.name, "write failed", &e)),
            Err(e) => e,
        };
        // Some row was refused: write them one by one (each write is
        // idempotent) to find which, and keep the rest.
        tracing::warn!(sink = self.name, "a row was refused ({e}); writing the batch row by row");
        for row in rows {
            let pipe = self.pipeline(std::slice::from_ref(row));
            match pipe.query_async::<()>(&mut self.connection).await {
                Ok(()) => {}
                Err(e) if class(&e) == Class::Poison => {
                    let mut raw = Vec::new();
                    row.write_json(&mut raw);
                    let message = format!("Redis refused the row for `{}`: {e}", self.key(row));
                    self.rejected.push(Rejected { raw, error_class: "redis_refused".into(), message });
                }
                Err(e) => return Err(error(&self.name, "write failed", &e)),
            }
        }
        Ok(())
    }

    fn take_rejected(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.rejected)
    }

    async fn flush(&mut self) -> Result<()> {
        // Every write completes its pipeline before returning.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_fall_in_their_classes() {
        let e = |kind, code: &'static str| redis::RedisError::from((kind, code));
        use redis::ErrorKind as K;
        assert_eq!(class(&e(K::NoScriptError, "NOSCRIPT")), Class::Retriable);
        assert_eq!(class(&e(K::BusyLoadingError, "LOADING")), Class::Retriable);
        assert_eq!(class(&e(K::ReadOnly, "READONLY")), Class::Retriable);
        assert_eq!(class(&e(K::AuthenticationFailed, "WRONGPASS")), Class::Fatal);
        assert!(!error("features", "write failed", &e(K::AuthenticationFailed, "WRONGPASS")).retriable);
    }
}
