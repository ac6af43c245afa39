//! The sink registry: each manifest `type` and the connector it builds.
//! One explicit list; a new sink is one more arm.

use sluice_sink_api::{Context, Result, Sink};

use crate::manifest::SinkConfig;

/// Build the sink a manifest entry describes; `name` names it in errors.
pub async fn build(name: &str, config: &SinkConfig, context: &Context) -> Result<Box<dyn Sink>> {
    match config {
        SinkConfig::File(c) => Ok(Box::new(sluice_sink_file::FileSink::open(name, c).await?)),
        SinkConfig::Redis(c) => Ok(Box::new(sluice_sink_redis::RedisSink::open(name, c).await?)),
        SinkConfig::Kafka(c) => Ok(Box::new(sluice_sink_kafka::KafkaSink::open(name, c).await?)),
        SinkConfig::Iceberg(c) => Ok(Box::new(sluice_sink_iceberg::IcebergSink::open(name, c, context).await?)),
    }
}
