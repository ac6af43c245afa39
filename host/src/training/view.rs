//! A feature view as a training set reads it: the offline table a
//! pipeline writes, its online store, its key's type, and when its rows
//! reached the online store.

use sluice_sink_api::KeyType;
use sluice_sink_iceberg::IcebergSinkConfig;
use sluice_sink_redis::RedisSinkConfig;

use crate::sinks::SinkConfig;

/// One pipeline's offline table, read as a feature view.
#[derive(Debug, Clone)]
pub struct View {
    /// The pipeline's name: the view's name in messages and in
    /// `--full-feature-names` columns (`{view}__{feature}`).
    pub name: String,
    pub key_type: KeyType,
    /// The pipeline's Iceberg feature output (the as-of mode reads it).
    pub table: Option<IcebergSinkConfig>,
    /// The pipeline's Redis feature output (`--check-online` reads it).
    pub online: Option<RedisSinkConfig>,
    /// How long after its window's end a row fired on close reached the
    /// online store: the watermark passes `window_end` only
    /// `out_of_orderness` after an event at that time was read.
    pub serving_delay_ms: i64,
    /// The pipeline as it runs: its events, window and module, which the
    /// exact mode runs again.
    pub pipeline: crate::pipeline::Spec,
}

impl View {
    /// The view of a pipeline (a checked manifest, lowered): its Iceberg
    /// and Redis feature outputs (the first of each, if it has several),
    /// and `serving_delay_ms` or else its out-of-orderness.
    pub fn of(pipeline: crate::pipeline::Spec, serving_delay_ms: Option<i64>) -> View {
        let table = pipeline.outputs.features.iter().find_map(|sink| match sink {
            SinkConfig::Iceberg(config) => Some(config.clone()),
            _ => None,
        });
        let online = pipeline.outputs.features.iter().find_map(|sink| match sink {
            SinkConfig::Redis(config) => Some(config.clone()),
            _ => None,
        });
        View {
            name: pipeline.name.clone(),
            key_type: pipeline.schema.key_type,
            table,
            online,
            serving_delay_ms: serving_delay_ms.unwrap_or(pipeline.out_of_orderness_ms),
            pipeline,
        }
    }
}
