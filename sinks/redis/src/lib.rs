//! Redis online store: one hash per entity key, laid out for Sluice's own
//! readers (`layout: plain`, [`plain`]) or as Feast's Redis online store
//! reads it (`layout: feast`, [`feast`]), which the model servers of a
//! Feast deployment read with `get_online_features`.
//!
//! Each batch is one Redis pipeline. Writes are idempotent, so a retried
//! batch (after a connection error, which the host retries with backoff)
//! changes nothing, and each layout keeps the newest row of an entity (a
//! late update of an older window does not replace a newer one).
//!
//! Failures, by class: a dropped or refused connection, a timeout, a
//! server loading its data, out of memory (`OOM`), read-only (a failover)
//! or a forgotten script are retriable (the host backs off and writes the
//! batch again); refused credentials (`NOAUTH`, `WRONGPASS`, `NOPERM`) are
//! fatal; a row Redis refuses on its own (its key holds another type,
//! `WRONGTYPE`) is poison: the batch is written row by row, and the rows
//! refused go to the dead-letter output, as do rows a layout cannot hold
//! (a Feast list with a null item).

pub mod feast;
pub mod plain;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{
    Batch, Component, Context, Duration, EntityKey, Error, FeatureRow, FeatureSchema, KeyType, Output, Preflight,
    Problem, Rejected, Result, Sink, SinkComponent,
};

use feast::FeastLayout;
use plain::PlainLayout;

/// Redis hashes, one per entity (feature rows only): the online store.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// Connection URL: `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS.
    pub url: String,
    /// How rows are stored: `plain` (a hash per `key`, features as text,
    /// with the row's window and times) or `feast` (what Feast's Redis
    /// online store reads: `get_online_features` of `feature_view` in
    /// `project` returns them).
    #[serde(default)]
    pub layout: Layout,
    /// `layout: plain`: the key of each entity's hash: `{key}` is replaced
    /// by the entity key. `{window_start}` and `{window_end}`
    /// (milliseconds) give each window its own hash, for history rather
    /// than only the latest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `layout: plain`: put before the names of the fields every row
    /// writes besides its features (`window_start`, `window_end`,
    /// `event_time`, `trigger`, `computed_at`), so that pipelines writing
    /// their features to one hash (`tx_` and `session_`, say) keep their
    /// own times and the newest-window rule compares each pipeline's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_prefix: Option<String>,
    /// `layout: feast`: the Feast project (its `feature_store.yaml`'s
    /// `project`), the end of every key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// `layout: feast`: the feature view the rows are, named in each
    /// feature's field and in `_ts:{feature_view}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_view: Option<String>,
    /// `layout: feast`: the entity's join key (the name model servers pass
    /// the key under, `user_id`). Its type is the pipeline's
    /// `events.key_type`: `string` is Feast's `STRING`, `int` its `INT64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_key: Option<String>,
    /// Expiry of a hash after its last write (`EXPIRE`); `off` keeps hashes
    /// forever. With `layout: feast` it covers the entity's whole hash,
    /// every feature view written to it.
    #[serde(default, deserialize_with = "sluice_sink_api::duration::optional")]
    pub ttl: Option<Duration>,
}

/// How a Redis sink lays out its hashes.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// A hash per entity under a key template, features as text.
    #[default]
    Plain,
    /// Feast 0.67's Redis online store layout (entity key serialization
    /// version 3).
    Feast,
}

/// What a Feast-layout sink writes: the names `feast generate` defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeastView<'a> {
    pub project: &'a str,
    pub feature_view: &'a str,
    pub join_key: &'a str,
}

impl RedisSinkConfig {
    /// A plain-layout sink of hashes keyed by `key`.
    pub fn plain(url: &str, key: &str, ttl: Option<Duration>) -> RedisSinkConfig {
        RedisSinkConfig {
            url: url.into(),
            layout: Layout::Plain,
            key: Some(key.into()),
            metadata_prefix: None,
            project: None,
            feature_view: None,
            join_key: None,
            ttl,
        }
    }

    /// A Feast-layout sink of `view`.
    pub fn feast(url: &str, view: &FeastView<'_>, ttl: Option<Duration>) -> RedisSinkConfig {
        RedisSinkConfig {
            url: url.into(),
            layout: Layout::Feast,
            key: None,
            metadata_prefix: None,
            project: Some(view.project.into()),
            feature_view: Some(view.feature_view.into()),
            join_key: Some(view.join_key.into()),
            ttl,
        }
    }

    /// The Feast view it writes, with `layout: feast`.
    pub fn feast_view(&self) -> Option<FeastView<'_>> {
        match (self.layout, &self.project, &self.feature_view, &self.join_key) {
            (Layout::Feast, Some(project), Some(feature_view), Some(join_key)) => {
                Some(FeastView { project, feature_view, join_key })
            }
            _ => None,
        }
    }

    /// The settings of each layout: the field, its layout, whether that
    /// layout needs it, and whether it is set.
    fn settings(&self) -> [(&'static str, Layout, bool, bool); 5] {
        [
            ("key", Layout::Plain, true, self.key.is_some()),
            ("metadata_prefix", Layout::Plain, false, self.metadata_prefix.is_some()),
            ("project", Layout::Feast, true, self.project.is_some()),
            ("feature_view", Layout::Feast, true, self.feature_view.is_some()),
            ("join_key", Layout::Feast, true, self.join_key.is_some()),
        ]
    }
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Plain => "plain",
            Layout::Feast => "feast",
        }
    }
}

/// Whether Feast takes `name` as a project or feature view name (its
/// `is_valid_name`: letters, digits, `_` and `-`, not first `_` or `-`).
fn feast_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['_', '-'])
        && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

impl Component for RedisSinkConfig {
    /// Each layout's settings, set for it and only for it.
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (field, layout, needed, set) in self.settings() {
            if layout == self.layout && needed && !set {
                problems.push(Problem::new(
                    field,
                    format!("`layout: {}` needs `{field}`", layout.name()),
                    match field {
                        "key" => "give the key template, as `user:{key}:features`",
                        "project" => "give the Feast project's name (`project` in its feature_store.yaml)",
                        "feature_view" => "give the name of the feature view the rows are",
                        _ => "give the entity's join key, the name model servers look keys up by (`user_id`)",
                    },
                ));
            } else if layout != self.layout && set {
                problems.push(Problem::new(
                    field,
                    format!("`{field}` is a setting of `layout: {}`", layout.name()),
                    format!("remove it, or write `layout: {}`", layout.name()),
                ));
            }
        }
        for (field, name) in [("project", &self.project), ("feature_view", &self.feature_view)] {
            if let Some(name) = name.as_deref().filter(|name| !feast_name(name)) {
                problems.push(Problem::new(
                    field,
                    format!("Feast does not take `{name}` as a name"),
                    "use letters, digits, `_` and `-`, and begin with a letter or a digit",
                ));
            }
        }
        if self.join_key.as_deref() == Some("") {
            problems.push(Problem::new("join_key", "the join key is empty", "give the entity's join key (`user_id`)"));
        }
        problems
    }

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

    /// A Feast view needs declared features, none named as its join key.
    fn check_features(&self, features: &FeatureSchema, _key_type: KeyType) -> Vec<Problem> {
        let Some(view) = self.feast_view() else { return Vec::new() };
        if features.specs().is_empty() {
            return vec![Problem::new(
                "layout",
                "the module declares no features, and a Feast feature view is made of them",
                "declare the module's features (the `features { … }` of its transform macro)",
            )];
        }
        match features.get(view.join_key) {
            Some(_) => vec![Problem::new(
                "join_key",
                format!("the module has a feature named `{}`, the join key", view.join_key),
                "name the join key or the feature otherwise: Feast keeps them in one namespace",
            )],
            None => Vec::new(),
        }
    }

    /// The server (no credentials), the layout and its settings.
    fn location(&self) -> Vec<(&'static str, String)> {
        let settings = [
            ("key", &self.key),
            ("metadata_prefix", &self.metadata_prefix),
            ("project", &self.project),
            ("feature_view", &self.feature_view),
            ("join_key", &self.join_key),
        ];
        let mut location = vec![("redis", self.server()), ("layout", self.layout.name().to_string())];
        location.extend(settings.into_iter().filter_map(|(field, value)| Some((field, value.clone()?))));
        location
    }

    async fn build(&self, name: &str, context: &Context) -> Result<Box<dyn Sink>> {
        Ok(Box::new(RedisSink::open(name, self, context).await?))
    }
}

/// What the online store holds for one entity: its newest row's features.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored {
    /// When the features held, ms since the epoch: the window's end for a
    /// row fired on close or a late correction, the event's time for one
    /// fired per event (the Feast layout's `_ts`).
    pub time: Option<i64>,
    /// Every declared feature, null where none is stored.
    pub features: serde_json::Map<String, serde_json::Value>,
}

impl RedisSinkConfig {
    /// The server and database of `url`, without its credentials: for
    /// what a person or an API client is shown.
    pub fn server(&self) -> String {
        let Ok(client) = redis::Client::open(self.url.as_str()) else { return "(not a Redis URL)".into() };
        let info = client.get_connection_info();
        match &info.addr {
            redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}/{}", info.redis.db)
            }
            other => format!("{other}/{}", info.redis.db),
        }
    }

    /// What this sink's store holds for each of `keys` (`None`: nothing),
    /// read as `schema` declares. A plain key with window bounds keeps a
    /// hash per window, not one to read per key: an error says so.
    pub async fn lookup(&self, schema: &FeatureSchema, keys: &[EntityKey]) -> Result<Vec<Option<Stored>>> {
        const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
        let fatal = |message: String| Error { sink: "redis".into(), message, retriable: false };
        let client = redis::Client::open(self.url.as_str()).map_err(|e| fatal(format!("not a Redis URL: {e}")))?;
        let mut connection = client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_connection_timeout(TIMEOUT).set_response_timeout(TIMEOUT),
            )
            .await
            .map_err(|e| error("redis", &format!("cannot connect to {}", self.server()), &e))?;
        let failed = |e: redis::RedisError| error("redis", "read failed", &e);
        match (self.feast_view(), &self.key) {
            (Some(view), _) => {
                let layout = FeastLayout::new(view.project, view.feature_view, view.join_key, schema);
                let fields = layout.read_fields();
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.cmd("HMGET").arg(layout.key(key)).arg(&fields);
                }
                let values: Vec<Vec<Option<Vec<u8>>>> = pipe.query_async(&mut connection).await.map_err(failed)?;
                Ok(values.iter().map(|v| layout.read(v)).collect())
            }
            (None, Some(template)) => {
                let layout = PlainLayout::new(template, self.metadata_prefix.as_deref().unwrap_or_default(), schema);
                if !layout.one_hash_per_entity() {
                    return Err(fatal(format!(
                        "the key `{template}` keeps a hash per window, not one per entity to look up"
                    )));
                }
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.hgetall(layout.entity_key(key));
                }
                let hashes: Vec<std::collections::HashMap<String, String>> =
                    pipe.query_async(&mut connection).await.map_err(failed)?;
                Ok(hashes.iter().map(|h| (!h.is_empty()).then(|| layout.read(h, schema))).collect())
            }
            (None, None) => Err(fatal("the sink has no `key`".into())),
        }
    }
}

/// How a sink's rows become Redis commands.
#[derive(Debug)]
enum Writer {
    Plain(PlainLayout),
    Feast(FeastLayout),
}

pub struct RedisSink {
    name: String,
    writer: Writer,
    ttl_seconds: u64,
    connection: ConnectionManager,
    rejected: Vec<Rejected>,
}

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

impl RedisSink {
    /// The sink of `config`, for rows of `context.schema`.
    pub async fn open(name: &str, config: &RedisSinkConfig, context: &Context) -> Result<Self> {
        let fatal = |message: String| Error { sink: name.to_string(), message, retriable: false };
        if let Some(problem) = config.check().into_iter().next() {
            return Err(fatal(format!("{}: {}", problem.field, problem.message)));
        }
        let writer = match (config.feast_view(), &config.key) {
            (Some(view), _) => {
                if let Some(problem) = config.check_features(&context.schema, context.key_type).into_iter().next() {
                    return Err(fatal(problem.message));
                }
                Writer::Feast(FeastLayout::new(view.project, view.feature_view, view.join_key, &context.schema))
            }
            (None, Some(key)) => Writer::Plain(PlainLayout::new(
                key,
                config.metadata_prefix.as_deref().unwrap_or_default(),
                &context.schema,
            )),
            (None, None) => return Err(fatal("the sink has no `key`".into())),
        };
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| fatal(format!("`{}` is not a Redis URL: {e}", config.url)))?;
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
            writer,
            ttl_seconds: config.ttl.map_or(0, |ttl| (ttl.millis() / 1000).max(1) as u64),
            connection,
            rejected: Vec::new(),
        })
    }

    /// One pipeline writing `rows`, and the rows the layout cannot hold
    /// (each with why), which it leaves out.
    fn pipeline<'r>(&self, rows: &'r [FeatureRow]) -> (redis::Pipeline, Vec<(&'r FeatureRow, String)>) {
        let mut pipe = redis::pipe();
        let refused = match &self.writer {
            Writer::Plain(plain) => {
                plain.queue(&mut pipe, rows, self.ttl_seconds);
                Vec::new()
            }
            Writer::Feast(feast) => feast.queue(&mut pipe, rows, self.ttl_seconds),
        };
        (pipe, refused)
    }

    /// The key of a row, as a person reads it.
    fn describe(&self, row: &FeatureRow) -> String {
        match &self.writer {
            Writer::Plain(plain) => format!("`{}`", plain.key(row)),
            Writer::Feast(feast) => feast.describe(&row.key),
        }
    }

    fn reject(&mut self, row: &FeatureRow, error_class: &str, message: String) {
        let mut raw = Vec::new();
        row.write_json(&mut raw);
        self.rejected.push(Rejected { raw, error_class: error_class.into(), message });
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
        let (pipe, refused) = self.pipeline(rows);
        let result = pipe.query_async::<()>(&mut self.connection).await;
        for (row, why) in refused {
            let message = format!("{} cannot hold the row for {}: {why}", self.name, self.describe(row));
            self.reject(row, "redis_unrepresentable", message);
        }
        let e = match result {
            Ok(()) => return Ok(()),
            Err(e) if class(&e) != Class::Poison => return Err(error(&self.name, "write failed", &e)),
            Err(e) => e,
        };
        // Some row was refused: write them one by one (each write is
        // idempotent) to find which, and keep the rest. (A row the layout
        // cannot hold was rejected above, and is left out again.)
        tracing::warn!(sink = self.name, "a row was refused ({e}); writing the batch row by row");
        for row in rows {
            let (pipe, _) = self.pipeline(std::slice::from_ref(row));
            match pipe.query_async::<()>(&mut self.connection).await {
                Ok(()) => {}
                Err(e) if class(&e) == Class::Poison => {
                    let message = format!("Redis refused the row for {}: {e}", self.describe(row));
                    self.reject(row, "redis_refused", message);
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
    use sluice_sink_api::{FeatureSpec, FeatureType};

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

    #[test]
    fn each_layout_takes_its_settings_and_only_them() {
        let fields = |config: &RedisSinkConfig| config.check().into_iter().map(|p| p.field).collect::<Vec<_>>();
        let plain = RedisSinkConfig::plain("redis://h", "u:{key}", None);
        assert!(fields(&plain).is_empty());
        let view = FeastView { project: "shop", feature_view: "tx_velocity", join_key: "user_id" };
        let feast = RedisSinkConfig::feast("redis://h", &view, None);
        assert!(fields(&feast).is_empty());
        assert_eq!(fields(&RedisSinkConfig { key: Some("k".into()), ..feast.clone() }), ["key"]);
        assert_eq!(
            fields(&RedisSinkConfig { project: None, join_key: None, ..feast.clone() }),
            ["project", "join_key"]
        );
        assert_eq!(fields(&RedisSinkConfig { project: Some("shop".into()), ..plain }), ["project"]);
        assert_eq!(
            fields(&RedisSinkConfig { metadata_prefix: Some("tx_".into()), ..feast.clone() }),
            ["metadata_prefix"]
        );
        let bad = FeastView { project: "_shop", feature_view: "tx velocity", join_key: "" };
        assert_eq!(fields(&RedisSinkConfig::feast("redis://h", &bad, None)), ["project", "feature_view", "join_key"]);
    }

    #[test]
    fn a_feast_view_needs_declared_features_none_named_as_the_join_key() {
        let view = FeastView { project: "shop", feature_view: "v", join_key: "user_id" };
        let feast = RedisSinkConfig::feast("redis://h", &view, None);
        let spec = |name: &str| FeatureSpec {
            name: name.into(),
            ty: FeatureType::Int,
            nullable: false,
            description: String::new(),
        };
        let problems = |specs| {
            let schema = FeatureSchema::new(specs).unwrap_or_default();
            feast.check_features(&schema, KeyType::String).into_iter().map(|p| p.message).collect::<Vec<_>>()
        };
        assert!(problems(vec![spec("count")]).is_empty());
        assert!(problems(Vec::new()).iter().any(|m| m.contains("declares no features")));
        assert!(problems(vec![spec("count"), spec("user_id")]).iter().any(|m| m.contains("the join key")));
        // The plain layout writes whatever a row holds.
        let plain = RedisSinkConfig::plain("redis://h", "u:{key}", None);
        assert!(plain.check_features(&FeatureSchema::default(), KeyType::String).is_empty());
    }
}
