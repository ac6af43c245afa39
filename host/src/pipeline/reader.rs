//! The reader: decodes every record once, follows the watermark, sends bad
//! records to the dead-letter output and hands each worker the events of
//! the keys it owns.
//!
//! Decoded strings travel as spans of the shared chunk (copied only when
//! JSON escapes made the decoder build a new string), so routing an event
//! allocates nothing.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use sluice_sink_api::{DeadLetter, Position};

use crate::decode::{self, Schema};
use crate::metrics::Metrics;
use crate::source::Chunk;
use crate::time::Watermarks;

/// A decoded string.
#[derive(Debug, Clone)]
pub(super) enum Text {
    /// Bytes `start..start + len` of the chunk's data.
    Span(u32, u32),
    Owned(Box<str>),
}

/// A decoded field value.
#[derive(Debug, Clone)]
pub(super) enum Field {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text),
}

/// One worker's share of a chunk.
#[derive(Debug)]
pub(super) struct Routed {
    pub chunk: Arc<Chunk>,
    /// Per event: its record in the chunk, its time and its key.
    pub events: Vec<(u32, i64, Text)>,
    /// The declared fields of each event, `width` per event.
    pub fields: Vec<Field>,
    /// The watermark after this chunk.
    pub watermark: i64,
}

impl Routed {
    pub fn text<'c>(&'c self, t: &'c Text) -> &'c str {
        match t {
            Text::Owned(s) => s,
            Text::Span(start, len) => {
                let bytes = self.chunk.data().get(*start as usize..(*start + *len) as usize).unwrap_or_default();
                // Spans come from &str the decoder returned: valid UTF-8.
                std::str::from_utf8(bytes).unwrap_or_default()
            }
        }
    }

    pub fn value<'c>(&'c self, f: &'c Field) -> decode::Value<'c> {
        match f {
            Field::Null => decode::Value::Null,
            Field::Bool(b) => decode::Value::Bool(*b),
            Field::Int(i) => decode::Value::Int(*i),
            Field::Float(x) => decode::Value::Float(*x),
            Field::Str(t) => decode::Value::Str(Cow::Borrowed(self.text(t))),
        }
    }
}

fn text(data: &[u8], s: Cow<'_, str>) -> Text {
    match s {
        Cow::Borrowed(b) => {
            let (base, at) = (data.as_ptr() as usize, b.as_ptr() as usize);
            if at >= base && at + b.len() <= base + data.len() {
                Text::Span((at - base) as u32, b.len() as u32)
            } else {
                Text::Owned(b.into())
            }
        }
        Cow::Owned(o) => Text::Owned(o.into_boxed_str()),
    }
}

/// Which worker owns `key`.
pub(super) fn owner(key: &str, workers: usize) -> usize {
    use std::hash::BuildHasher;
    (rustc_hash::FxBuildHasher.hash_one(key) % workers as u64) as usize
}

pub(super) struct Reader<'a> {
    schema: Schema,
    watermarks: Watermarks,
    workers: usize,
    metrics: &'a Metrics,
}

impl<'a> Reader<'a> {
    pub fn new(schema: Schema, watermarks: Watermarks, workers: usize, metrics: &'a Metrics) -> Self {
        Reader { schema, watermarks, workers: workers.max(1), metrics }
    }

    /// Decode a chunk: the workers' shares and the dead letters.
    pub fn read(&mut self, chunk: Arc<Chunk>) -> (Vec<Routed>, Vec<DeadLetter>) {
        let (now_ms, now) = (crate::time::now_ms(), Instant::now());
        let mut shares: Vec<Routed> = (0..self.workers)
            .map(|_| Routed { chunk: chunk.clone(), events: Vec::new(), fields: Vec::new(), watermark: i64::MIN })
            .collect();
        let mut dead = Vec::new();
        let data = chunk.data();
        for (i, record) in chunk.records().enumerate() {
            match self.schema.decode(record.bytes, now_ms) {
                Ok(event) => {
                    self.watermarks.observe(record.partition, event.time, now);
                    let share = &mut shares[owner(&event.key, self.workers)];
                    share.events.push((i as u32, event.time, text(data, event.key)));
                    share.fields.extend(event.values.into_iter().map(|v| match v {
                        decode::Value::Null => Field::Null,
                        decode::Value::Bool(b) => Field::Bool(b),
                        decode::Value::Int(i) => Field::Int(i),
                        decode::Value::Float(x) => Field::Float(x),
                        decode::Value::Str(s) => Field::Str(text(data, s)),
                    }));
                }
                Err(e) => {
                    self.watermarks.touch(record.partition, now);
                    tracing::debug!(source = &*chunk.source, offset = record.offset, class = e.class(), "{e}");
                    let counter = match e.stage() {
                        sluice_sink_api::Stage::Decode => &self.metrics.dead_letters_decode,
                        _ => &self.metrics.dead_letters_validate,
                    };
                    Metrics::add(counter, 1);
                    dead.push(DeadLetter {
                        raw: record.bytes.to_vec(),
                        position: Some(Position {
                            source: chunk.source.to_string(),
                            partition: record.partition as i32,
                            offset: record.offset,
                        }),
                        stage: e.stage(),
                        error_class: e.class().to_string(),
                        message: e.to_string(),
                        at: now_ms,
                    });
                }
            }
        }
        Metrics::add(&self.metrics.events_read, chunk.len() as u64);
        let watermark = self.watermarks.current(now);
        for share in &mut shares {
            share.watermark = watermark;
        }
        (shares, dead)
    }
}
