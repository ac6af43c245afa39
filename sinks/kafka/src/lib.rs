//! Kafka sink: feature rows as JSON or as Avro in Confluent's wire format
//! (keyed by entity, see [`avro`]), dead letters and late events as their
//! raw bytes with the context in headers.
//!
//! Dead-letter headers follow Kafka Connect's
//! `errors.deadletterqueue.context.headers.enable` names, so tools that read
//! a Connect dead-letter queue read Sluice's too:
//!
//! | header | value |
//! |---|---|
//! | `__connect.errors.topic` | source topic (or file) |
//! | `__connect.errors.partition` | source partition |
//! | `__connect.errors.offset` | source offset (a file's line number) |
//! | `__connect.errors.stage` | `decode`, `validate`, `transform` or `sink` |
//! | `__connect.errors.exception.class.name` | error class (`invalid_json`, `missing_field`, `trap`, …) |
//! | `__connect.errors.exception.message` | what went wrong |
//! | `__sluice.truncated` | the full size in bytes, when the value was cut to its first 256 KiB |
//!
//! Late events carry the same source headers plus `__sluice.event_time` and
//! `__sluice.watermark` (milliseconds).
//!
//! Feature rows carry `__sluice.row_id`: 32 hex digits of a SHA-256 of
//! the row without its `computed_at`. The topic is at-least-once (a
//! restart writes again the rows since the last checkpoint), and a row
//! written again has the same id, so consumers can drop repeats.
//!
//! Records are handed to librdkafka's queue; [`Sink::flush`] waits until
//! the broker acknowledged all of them, which is what the host waits for
//! before it commits source offsets.
//!
//! Failures, by class:
//!
//! - poison: a record larger than the producer's `message.max.bytes` or
//!   the topic's `max.message.bytes` (or one the broker calls invalid) is
//!   handed back to the host ([`Sink::take_rejected`]), which dead-letters
//!   it; the other records go on;
//! - retriable: brokers down or slow. librdkafka retries delivery for as
//!   long as `message.timeout.ms` allows, which Sluice sets to forever
//!   (`0`) unless the manifest says otherwise; a flush that times out, or
//!   a full queue, is retried by the host with backoff;
//! - fatal: authentication or authorization refused, a topic that does
//!   not exist, a record librdkafka gave up on: the pipeline stops with the
//!   reason, and the source offsets of what was not delivered are not
//!   committed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_schema_registry::{ClientError, RegistryConfig};
use sluice_sink_api::{
    Access, Batch, Component, Context, DeadLetter, Error, FeatureSchema, KeyType, LateEvent, NamedPath, Output,
    Position, Preflight, Problem, Rejected, Result, Sink, SinkComponent, Stage,
};

pub mod avro;
pub mod preflight;

use avro::AvroRows;

/// Header names of dead letters and late events.
pub mod headers {
    pub const TOPIC: &str = "__connect.errors.topic";
    pub const PARTITION: &str = "__connect.errors.partition";
    pub const OFFSET: &str = "__connect.errors.offset";
    pub const STAGE: &str = "__connect.errors.stage";
    pub const CLASS: &str = "__connect.errors.exception.class.name";
    pub const MESSAGE: &str = "__connect.errors.exception.message";
    pub const EVENT_TIME: &str = "__sluice.event_time";
    pub const WATERMARK: &str = "__sluice.watermark";
    pub const TRUNCATED: &str = "__sluice.truncated";
    pub const ROW_ID: &str = "__sluice.row_id";
}

/// The id of a feature row from its JSON: the same for the same window,
/// trigger, event time and features, whenever it was computed.
pub fn row_id(json: &[u8]) -> String {
    use sha2::Digest;
    const COMPUTED_AT: &[u8] = b",\"computed_at\":";
    // `computed_at` is the last field: the last match is it.
    let content = json.windows(COMPUTED_AT.len()).rposition(|w| w == COMPUTED_AT).map_or(json, |at| &json[..at]);
    let digest = sha2::Sha256::digest(content);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A Kafka topic: feature rows as JSON or Avro, keyed by entity (the key
/// as text); dead letters and late events as their raw bytes with the
/// context in headers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic to write to. Create it beforehand unless the cluster creates
    /// topics on first use.
    pub topic: String,
    /// librdkafka producer properties, passed through as they are: for
    /// example `security.protocol: SASL_SSL`, `sasl.mechanism: PLAIN`,
    /// `compression.type: lz4`, `linger.ms: "5"`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// How feature rows are written (a sink of dead letters or late
    /// events writes their raw bytes, and takes no `format`).
    #[serde(default)]
    pub format: RowFormat,
    /// The schema registry `format: avro` registers the rows' schema with,
    /// under `{topic}-value`, before the first row (Confluent's registry,
    /// or `sluice serve`'s at the host's URL with the admin token as the
    /// basic-auth password). A module whose features changed registers a
    /// new version; one the subject's compatibility level refuses stops
    /// the pipeline with the registry's message.
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
}

/// How a Kafka sink writes feature rows.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RowFormat {
    /// A JSON object per row, as the file sink writes it.
    #[default]
    Json,
    /// Avro in Confluent's wire format (magic byte, schema id, datum), for
    /// consumers with an `AvroDeserializer`: a record `sluice.FeatureRow`
    /// of `key`, `window_start`, `window_end`, `event_time` and
    /// `computed_at` (`timestamp-millis`), `trigger` and a `features`
    /// record with a field per declared feature (a nullable one
    /// `["null", type]` with default null).
    Avro,
}

impl Component for KafkaSinkConfig {
    fn check(&self) -> Vec<Problem> {
        let mut found = Vec::new();
        match (self.format, &self.registry) {
            (RowFormat::Avro, None) => found.push(Problem::new(
                "registry",
                "format avro registers the rows' schema, and no registry is given",
                "give registry: {url: ...}, the schema registry the topic's consumers read schemas from",
            )),
            (RowFormat::Json, Some(_)) => found.push(Problem::new(
                "registry",
                "only format: avro uses a registry",
                "remove it, or set format: avro",
            )),
            (_, Some(registry)) => found.extend(
                registry
                    .problems()
                    .into_iter()
                    .map(|(field, message)| Problem::new(format!("registry.{field}"), message, "")),
            ),
            (RowFormat::Json, None) => {}
        }
        found
    }

    fn paths(&mut self) -> Vec<NamedPath<'_>> {
        let Some(registry) = &mut self.registry else { return Vec::new() };
        let files = [
            ("registry.password_file", &mut registry.password_file),
            ("registry.token_file", &mut registry.token_file),
        ];
        files
            .into_iter()
            .filter_map(|(field, file)| file.as_mut().map(|path| NamedPath { field, path, access: Access::ReadFile }))
            .collect()
    }

    fn environment(&self) -> Vec<(String, String)> {
        let Some(registry) = &self.registry else { return Vec::new() };
        registry
            .environment()
            .into_iter()
            .map(|(field, name)| (format!("registry.{field}"), name.to_string()))
            .collect()
    }

    fn client_properties(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.properties)
    }

    fn client_properties_mut(&mut self) -> Option<&mut BTreeMap<String, String>> {
        Some(&mut self.properties)
    }

    /// The properties librdkafka takes, and (online) brokers that answer
    /// and a topic that exists.
    fn preflight(&self, checks: &Preflight<'_>) -> Vec<Problem> {
        let topic = [("topic".to_string(), self.topic.as_str())];
        preflight::check(&self.brokers, &self.properties, preflight::Client::Producer, &topic, checks)
    }
}

#[async_trait]
impl SinkComponent for KafkaSinkConfig {
    const SERVES: &'static [Output] = &Output::ALL;

    /// `format` and `registry` are for feature rows: dead letters and late
    /// events are their records' raw bytes.
    fn check_output(&self, output: Output) -> Vec<Problem> {
        if output == Output::Features || (self.format == RowFormat::Json && self.registry.is_none()) {
            return Vec::new();
        }
        let field = if self.format == RowFormat::Avro { "format" } else { "registry" };
        vec![Problem::new(
            field,
            format!("`{field}` is for feature rows; {} are written as their raw bytes", output.records()),
            "remove `format` and `registry` from this sink",
        )]
    }

    /// With `format: avro`, features Avro can name (the row schema made of
    /// them).
    fn check_features(&self, features: &FeatureSchema, key_type: KeyType) -> Vec<Problem> {
        if self.format != RowFormat::Avro {
            return Vec::new();
        }
        match avro::row_schema(features, key_type) {
            Ok(_) => Vec::new(),
            Err(why) => vec![Problem::new(
                "format",
                format!("the module's features cannot be an Avro record: {why}"),
                "rename the features Avro does not take, or write JSON rows",
            )],
        }
    }

    fn location(&self) -> Vec<(&'static str, String)> {
        let format = match self.format {
            RowFormat::Json => "json",
            RowFormat::Avro => "avro",
        };
        vec![("topic", self.topic.clone()), ("format", format.to_string())]
    }

    async fn build(&self, name: &str, context: &Context) -> Result<Box<dyn Sink>> {
        Ok(Box::new(KafkaSink::open(name, self, context).await?))
    }
}

/// A failure retrying cannot help.
fn fatal(sink: &str, message: String) -> Error {
    Error { sink: sink.to_string(), message, retriable: false }
}

/// Longest a flush waits for the broker's acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a write waits for room in librdkafka's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the producer's callbacks learned: records it gave up on, records
/// refused for good, and client-wide errors that stop the sink.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<(u64, Option<String>)>,
    rejected: Mutex<Vec<Rejected>>,
    fatal: Mutex<Option<String>>,
}

/// A record no retry can deliver: too large, or invalid for the broker.
fn is_poison(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
    )
}

fn rejected(code: RDKafkaErrorCode, raw: &[u8], topic: &str) -> Rejected {
    let (class, message) = match code {
        RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge => (
            "record_too_large",
            format!(
                "a {} byte record is larger than `{topic}` takes (the producer's message.max.bytes or the \
                 topic's max.message.bytes)",
                raw.len()
            ),
        ),
        other => ("record_refused", format!("`{topic}` refused the record: {other}")),
    };
    Rejected { raw: raw.to_vec(), error_class: class.into(), message }
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        let fatal = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::Fatal
            )
        );
        if fatal && let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert_with(|| format!("{error}: {reason}"));
        }
        tracing::warn!(error = %error, "librdkafka producer: {reason}");
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let Err((e, message)) = result else { return };
        match e.rdkafka_error_code() {
            Some(code) if is_poison(code) => {
                if let Ok(mut r) = self.rejected.lock() {
                    r.push(rejected(code, message.payload().unwrap_or_default(), message.topic()));
                }
            }
            _ => {
                if let Ok(mut failed) = self.failed.lock() {
                    failed.0 += 1;
                    failed.1.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

pub struct KafkaSink {
    name: String,
    topic: String,
    producer: ThreadedProducer<Deliveries>,
    /// With `format: avro`, the rows' schema and its id.
    avro: Option<AvroRows>,
}

fn source_headers(position: &Position) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header { key: headers::TOPIC, value: Some(&position.source) })
        .insert(Header { key: headers::PARTITION, value: Some(&position.partition.to_string()) })
        .insert(Header { key: headers::OFFSET, value: Some(&position.offset.to_string()) })
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Decode => "decode",
        Stage::Validate => "validate",
        Stage::Transform => "transform",
        Stage::Sink => "sink",
    }
}

/// The headers of a dead letter.
pub fn dead_letter_headers(d: &DeadLetter) -> OwnedHeaders {
    let h = d.position.as_ref().map_or_else(OwnedHeaders::new, source_headers);
    let h = h
        .insert(Header { key: headers::STAGE, value: Some(stage_name(d.stage)) })
        .insert(Header { key: headers::CLASS, value: Some(&d.error_class) })
        .insert(Header { key: headers::MESSAGE, value: Some(&d.message) });
    match d.truncated {
        Some(size) => h.insert(Header { key: headers::TRUNCATED, value: Some(&size.to_string()) }),
        None => h,
    }
}

/// The headers of a late event.
pub fn late_event_headers(e: &LateEvent) -> OwnedHeaders {
    source_headers(&e.position)
        .insert(Header { key: headers::EVENT_TIME, value: Some(&e.event_time.to_string()) })
        .insert(Header { key: headers::WATERMARK, value: Some(&e.watermark.to_string()) })
}

impl KafkaSink {
    /// The sink `config` describes, for the pipeline `context` describes.
    /// With `format: avro` the rows' schema is registered now: a registry
    /// that refuses it is an error, one that does not answer is asked
    /// again before the first row.
    pub async fn open(name: &str, config: &KafkaSinkConfig, context: &Context) -> Result<Self> {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &config.brokers);
        // Keep retrying through an outage rather than drop records.
        client.set("message.timeout.ms", "0");
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let producer: ThreadedProducer<Deliveries> =
            client.create_with_context(Deliveries::default()).map_err(|e| Error {
                sink: name.to_string(),
                message: format!("cannot create a Kafka producer for {}: {e}", config.brokers),
                retriable: false,
            })?;
        let avro = match (config.format, &config.registry) {
            (RowFormat::Json, _) => None,
            (RowFormat::Avro, None) => return Err(fatal(name, "format avro needs a registry".into())),
            (RowFormat::Avro, Some(registry)) => {
                let rows = AvroRows::new(registry, &config.topic, context.schema.clone(), context.key_type);
                Some(rows.map_err(|e| fatal(name, e.to_string()))?)
            }
        };
        let mut sink = KafkaSink { name: name.to_string(), topic: config.topic.clone(), producer, avro };
        match sink.schema_id().await {
            Err(e) if e.retriable => tracing::warn!(sink = name, "{e} (asked again before the first row)"),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        Ok(sink)
    }

    /// The Avro rows' schema id (registered at the first call that
    /// reaches the registry); `None` for JSON rows.
    async fn schema_id(&mut self) -> Result<Option<u32>> {
        let Some(avro) = &mut self.avro else { return Ok(None) };
        match avro.register().await {
            Ok(id) => Ok(Some(id)),
            Err(e @ ClientError::Unavailable { .. }) => {
                Err(Error { sink: self.name.clone(), message: e.to_string(), retriable: true })
            }
            Err(e) => {
                let hint = match &e {
                    ClientError::Refused { code: 409 | 40901, .. } => {
                        " (the module's features changed in a way the subject's compatibility level does not \
                         allow: write to another topic, or change the subject's level)"
                    }
                    _ => "",
                };
                let subject = avro.subject();
                Err(fatal(
                    &self.name,
                    format!("cannot register the feature rows' Avro schema under {subject}: {e}{hint}"),
                ))
            }
        }
    }

    fn failed(&self) -> Result<()> {
        let context = self.producer.context();
        if let Some(reason) = context.fatal.lock().ok().and_then(|f| f.clone()) {
            return Err(Error {
                sink: self.name.clone(),
                message: format!("the brokers refused the producer of `{}`: {reason}", self.topic),
                retriable: false,
            });
        }
        let failed = context.failed.lock().map(|f| f.clone()).unwrap_or_default();
        match failed {
            (0, _) => Ok(()),
            (n, first) => Err(Error {
                sink: self.name.clone(),
                message: format!(
                    "{n} records could not be delivered to `{}`: {} (check that the topic exists and the \
                     brokers accept writes; the source offsets were not committed, so a restart writes them again)",
                    self.topic,
                    first.unwrap_or_default()
                ),
                // librdkafka already retried them until message.timeout.ms:
                // stop, and leave the source offsets uncommitted.
                retriable: false,
            }),
        }
    }

    /// Queue one record, waiting while librdkafka's queue is full (for at
    /// most [`QUEUE_TIMEOUT`]). A record that can never be sent is kept
    /// for [`Sink::take_rejected`].
    async fn send(&self, key: Option<&str>, payload: &[u8], headers: Option<OwnedHeaders>) -> Result<()> {
        let mut record = BaseRecord::to(&self.topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        let since = std::time::Instant::now();
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    if since.elapsed() > QUEUE_TIMEOUT {
                        return Err(Error {
                            sink: self.name.clone(),
                            message: format!(
                                "librdkafka's queue for `{}` has been full for {} s: the brokers are not \
                                 taking records",
                                self.topic,
                                QUEUE_TIMEOUT.as_secs()
                            ),
                            retriable: true,
                        });
                    }
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((KafkaError::MessageProduction(code), _)) if is_poison(code) => {
                    if let Ok(mut r) = self.producer.context().rejected.lock() {
                        r.push(rejected(code, payload, &self.topic));
                    }
                    return Ok(());
                }
                Err((e, _)) => {
                    return Err(Error {
                        sink: self.name.clone(),
                        message: format!("cannot produce to `{}`: {e}", self.topic),
                        retriable: false,
                    });
                }
            }
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write(&mut self, batch: Batch<'_>) -> Result<()> {
        self.failed()?;
        match batch {
            Batch::Features(rows) => {
                let schema_id = self.schema_id().await?;
                let (mut json, mut avro) = (Vec::with_capacity(512), Vec::new());
                for row in rows {
                    json.clear();
                    row.write_json(&mut json);
                    let id = row_id(&json);
                    let headers = OwnedHeaders::new().insert(Header { key: headers::ROW_ID, value: Some(&id) });
                    let payload = match (&self.avro, schema_id) {
                        (Some(rows), Some(schema_id)) => {
                            avro.clear();
                            if let Err(message) = rows.encode(schema_id, row, &mut avro) {
                                let refused =
                                    Rejected { raw: json.clone(), error_class: "avro_encode".into(), message };
                                if let Ok(mut r) = self.producer.context().rejected.lock() {
                                    r.push(refused);
                                }
                                continue;
                            }
                            &avro
                        }
                        _ => &json,
                    };
                    self.send(Some(&row.key.text()), payload, Some(headers)).await?;
                }
            }
            Batch::DeadLetters(letters) => {
                for d in letters {
                    self.send(None, &d.raw, Some(dead_letter_headers(d))).await?;
                }
            }
            Batch::LateEvents(events) => {
                for e in events {
                    self.send(Some(&e.key), &e.raw, Some(late_event_headers(e))).await?;
                }
            }
        }
        Ok(())
    }

    fn take_rejected(&mut self) -> Vec<Rejected> {
        self.producer.context().rejected.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }

    async fn flush(&mut self) -> Result<()> {
        let producer = self.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT)).await;
        let error = |message: String| Error { sink: self.name.clone(), message, retriable: true };
        match flushed {
            Ok(Ok(())) => self.failed(),
            Ok(Err(e)) => Err(error(format!("flush to `{}` did not complete: {e}", self.topic))),
            Err(e) => Err(error(format!("flush task failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_sink_api::{FeatureRow, FeatureValue, Features, Trigger};

    use super::row_id;

    fn json(count: i64, computed_at: i64) -> Vec<u8> {
        let row = FeatureRow {
            key: "u1".into(),
            window_start: 0,
            window_end: 300_000,
            event_time: 299_000,
            trigger: Trigger::Close,
            features: Features(vec![("tx_count".into(), FeatureValue::Int(count))]),
            computed_at,
        };
        let mut out = Vec::new();
        row.write_json(&mut out);
        out
    }

    /// A row computed again (after a restart) has the same id; another
    /// result of the same window has another.
    #[test]
    fn a_row_written_again_has_the_same_id() {
        let first = row_id(&json(3, 1_000));
        assert_eq!(first.len(), 32);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(row_id(&json(3, 9_999)), first);
        assert_ne!(row_id(&json(4, 1_000)), first);
    }
}
