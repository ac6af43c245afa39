//! The sink registry: each manifest `type`, its config, and the connector
//! it builds. One explicit list; a new sink is one more arm.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{Context, Result, Sink};

/// Where results go. Each output takes any number of sinks; all of them
/// receive every record (dual write).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputsConfig {
    /// Feature rows.
    pub features: Vec<SinkConfig>,
    /// Events and windows that could not be processed, with the reason.
    #[schemars(with = "Vec<RecordSinkConfig>")]
    pub dead_letters: Vec<SinkConfig>,
    /// Events that arrived after their windows' allowed lateness.
    #[schemars(with = "Vec<RecordSinkConfig>")]
    pub late_events: Vec<SinkConfig>,
}

impl OutputsConfig {
    /// Each output by its field's name, with its sinks.
    pub fn all(&self) -> [(&'static str, &[SinkConfig]); 3] {
        [("features", &self.features), ("dead_letters", &self.dead_letters), ("late_events", &self.late_events)]
    }

    pub(crate) fn all_mut(&mut self) -> [(&'static str, &mut [SinkConfig]); 3] {
        [
            ("features", &mut self.features),
            ("dead_letters", &mut self.dead_letters),
            ("late_events", &mut self.late_events),
        ]
    }
}

/// The sinks that take raw records (dead letters, late events): the
/// reference's view of [`SinkConfig`] there, as validation refuses Redis
/// and Iceberg.
#[derive(JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
#[allow(dead_code)]
enum RecordSinkConfig {
    /// JSON lines in a local file.
    File(sluice_sink_file::FileSinkConfig),
    /// A Kafka topic: the raw bytes with the context in headers.
    Kafka(sluice_sink_kafka::KafkaSinkConfig),
}

/// A sink, chosen by `type`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    /// JSON lines in a local file.
    File(sluice_sink_file::FileSinkConfig),
    /// Redis hashes, one per entity (feature rows only): the online store.
    Redis(sluice_sink_redis::RedisSinkConfig),
    /// A Kafka topic: feature rows as JSON keyed by entity; dead letters and
    /// late events as their raw bytes with the context in headers.
    Kafka(sluice_sink_kafka::KafkaSinkConfig),
    /// An Apache Iceberg table (feature rows only): the offline store,
    /// exactly once with checkpoints.
    Iceberg(sluice_sink_iceberg::IcebergSinkConfig),
}

/// Build the sink a manifest entry describes; `name` names it in errors.
pub async fn build(name: &str, config: &SinkConfig, context: &Context) -> Result<Box<dyn Sink>> {
    match config {
        SinkConfig::File(c) => Ok(Box::new(sluice_sink_file::FileSink::open(name, c).await?)),
        SinkConfig::Redis(c) => Ok(Box::new(sluice_sink_redis::RedisSink::open(name, c).await?)),
        SinkConfig::Kafka(c) => Ok(Box::new(sluice_sink_kafka::KafkaSink::open(name, c).await?)),
        SinkConfig::Iceberg(c) => Ok(Box::new(sluice_sink_iceberg::IcebergSink::open(name, c, context).await?)),
    }
}
