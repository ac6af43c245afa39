//! A checked manifest lowered into the runtime's [`Spec`]: defaults
//! filled in, durations in milliseconds, each part in the form the
//! component that runs it takes.

use super::{Duration, KeyConfig, KeyFrom, Manifest, TimestampFrom, TransformKind, TriggerConfig, WindowType};
use crate::decode::{self, Format, avro::Writers};
use crate::pipeline::{Spec, TransformSpec};
use crate::source::SourceConfig;
use crate::time::TimestampFormat;
use crate::{wasm, window};

impl Manifest {
    /// The pipeline as the runtime runs it. Total: a manifest with
    /// problems still lowers (missing durations become 1 ms), so checks
    /// that look at the lowered form can run beside the manifest's own.
    pub fn lower(&self) -> Spec {
        Spec {
            name: self.name.clone(),
            source: self.source.clone(),
            schema: self.schema(),
            max_event_bytes: self.events.max_bytes,
            out_of_orderness_ms: self.time.out_of_orderness.millis(),
            idle_timeout: self.time.idle_timeout.map(Duration::std),
            window: self.window_spec(),
            transform: self.transform_spec(),
            outputs: self.outputs.clone(),
            parallelism: self.parallelism(),
            checkpoint: self.checkpoint.clone(),
            state: self.state.clone(),
        }
    }

    /// Worker threads to run.
    fn parallelism(&self) -> usize {
        self.parallelism.unwrap_or_else(super::cores).max(1)
    }

    /// The decoder's schema.
    pub(super) fn schema(&self) -> decode::Schema {
        let e = &self.events;
        let key = match &e.key {
            KeyConfig::Field(name) => decode::KeySource::Field(name.clone()),
            KeyConfig::From { from: KeyFrom::KafkaKey, format } => decode::KeySource::KafkaKey(*format),
        };
        let timestamp = match e.timestamp.from {
            Some(TimestampFrom::KafkaTimestamp) => decode::TimeSource::KafkaTimestamp,
            None => decode::TimeSource::Field {
                name: e.timestamp.field.clone().unwrap_or_default(),
                format: e.timestamp.format,
            },
        };
        decode::Schema {
            format: e.format,
            key,
            key_type: e.key_type,
            timestamp,
            fields: e
                .fields
                .iter()
                .map(|f| decode::Field { name: f.name.clone(), ty: f.ty, required: f.required })
                .collect(),
            max_future_skew_ms: e.max_future_skew.map(Duration::millis),
            min_timestamp_ms: e.min_timestamp.as_deref().and_then(|m| TimestampFormat::Rfc3339.from_str(m).ok()),
            avro: match e.format {
                Format::Json => None,
                Format::Avro => e
                    .registry
                    .clone()
                    .map(Writers::Registry)
                    .or_else(|| e.writer_schema.clone().map(Writers::Given))
                    .or_else(|| e.writer_schema_file.clone().map(Writers::File))
                    .or_else(|| matches!(self.source, SourceConfig::File(_)).then_some(Writers::Container)),
            },
        }
    }

    /// The window operator's spec.
    fn window_spec(&self) -> window::Spec {
        let w = &self.window;
        let ms = |d: Option<Duration>| d.map_or(1, Duration::millis).max(1);
        let kind = match w.kind {
            WindowType::Tumbling => window::Kind::Tumbling { size: ms(w.size) },
            WindowType::Sliding => window::Kind::Sliding { size: ms(w.size), slide: ms(w.slide) },
            WindowType::Session => window::Kind::Session { gap: ms(w.gap) },
        };
        let lateness = w.allowed_lateness.millis();
        let span = self.span().unwrap_or(0);
        let state_ttl = w.state_ttl.map_or(span + lateness + 3_600_000, Duration::millis);
        let trigger = match w.trigger {
            TriggerConfig::Close => window::TriggerMode::Close,
            TriggerConfig::Event => window::TriggerMode::Event,
        };
        window::Spec { kind, trigger, allowed_lateness: lateness, state_ttl }
    }

    fn transform_spec(&self) -> TransformSpec {
        let t = &self.transform;
        TransformSpec {
            module: t.module.clone(),
            kind: match t.kind {
                TransformKind::Window => wasm::Kind::Window,
                TransformKind::Aggregate => wasm::Kind::Aggregate,
            },
            limits: wasm::Limits { timeout: t.timeout.std(), memory_bytes: t.memory_mib as usize * 1024 * 1024 },
            bounds: window::Bounds { windows: t.max_batch.max(1), rows: t.max_rows.max(1), bytes: t.max_bytes.max(1) },
            max_delay: t.max_delay.std(),
        }
    }
}
