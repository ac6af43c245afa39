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

use sluice_sink_api::DeadLetter;

use super::control::Control;
use super::progress::Progress;
use crate::window::Snapshot;

use crate::decode::{self, Decoder};
use crate::metrics::Metrics;
use crate::source::{Chunk, Unreadable};
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

/// One worker's share of a chunk (or of a step without records).
#[derive(Debug)]
pub(super) struct Routed {
    /// The step's number: a worker that reports it has written every
    /// effect of the records up to it.
    pub seq: u64,
    pub chunk: Arc<Chunk>,
    /// Per event: its record in the chunk, its time and its key.
    pub events: Vec<(u32, i64, Text)>,
    /// The declared fields of each event, `width` per event.
    pub fields: Vec<Field>,
    /// Records that could not be decoded (sent by the first worker, so one
    /// thread owns every write to the sinks' channel).
    pub dead: Vec<DeadLetter>,
    /// Partitions revoked before this step: drop their keys' state.
    pub revoked: Vec<usize>,
    /// The watermark after this chunk.
    pub watermark: i64,
    /// The source is caught up: evaluate fired windows now.
    pub flush: bool,
    /// A barrier, stop or end of input, after this share's events.
    pub control: Option<Control>,
    /// State restored from a checkpoint: taken in before the events.
    pub restore: Option<Snapshot>,
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
    decoder: Box<dyn Decoder>,
    /// `events.max_bytes`, for the message of a record over it.
    max_bytes: usize,
    pub watermarks: Watermarks,
    workers: usize,
    metrics: &'a Metrics,
}

impl<'a> Reader<'a> {
    pub fn new(
        decoder: Box<dyn Decoder>,
        max_bytes: usize,
        watermarks: Watermarks,
        workers: usize,
        metrics: &'a Metrics,
    ) -> Self {
        Reader { decoder, max_bytes, watermarks, workers: workers.max(1), metrics }
    }

    /// Fetch what decoding `chunk` needs (see [`Decoder::prepare`]); each
    /// time it cannot is counted.
    pub fn prepare(&mut self, chunk: &Chunk) -> Result<(), decode::Unavailable> {
        let prepared = self.decoder.prepare(chunk);
        if prepared.is_err() {
            Metrics::add(&self.metrics.decode_waits, 1);
        }
        prepared
    }

    /// Shares without records: a step that only moves the watermark (idle
    /// or finished partitions) or drops revoked partitions.
    pub fn tick(&mut self, seq: u64, revoked: &[usize], flush: bool) -> Vec<Routed> {
        let watermark = self.watermarks.current(Instant::now());
        let empty = Arc::new(Chunk::default());
        (0..self.workers)
            .map(|_| Routed {
                seq,
                chunk: empty.clone(),
                events: Vec::new(),
                fields: Vec::new(),
                dead: Vec::new(),
                revoked: revoked.to_vec(),
                watermark,
                flush,
                control: None,
                restore: None,
            })
            .collect()
    }

    /// Shares with the final watermark: every window fires.
    pub fn end(&mut self, seq: u64) -> Vec<Routed> {
        let mut shares = self.tick(seq, &[], true);
        for share in &mut shares {
            share.watermark = i64::MAX;
        }
        shares
    }

    /// Decode a chunk into the workers' shares; `progress` learns how far
    /// each partition was read and the latest event time it gave.
    pub fn read(&mut self, chunk: Arc<Chunk>, seq: u64, flush: bool, progress: &mut Progress) -> Vec<Routed> {
        let (now_ms, now) = (crate::time::now_ms(), Instant::now());
        let mut shares = self.tick(seq, &[], flush);
        for share in &mut shares {
            share.chunk = chunk.clone();
        }
        let mut dead = Vec::new();
        let data = chunk.data();
        let mut unreadable = chunk.unreadable().iter().peekable();
        for (i, record) in chunk.records().enumerate() {
            if let Some((_, why)) = unreadable.next_if(|(at, _)| *at as usize == i) {
                progress.read(record.slot, record.offset, None);
                self.watermarks.touch(record.slot, now);
                Metrics::add(&self.metrics.dead_letters_decode, 1);
                let (class, message, size) = match why {
                    Unreadable::TooLarge { size } => (
                        "record_too_large",
                        format!("the event is {size} bytes, over events.max_bytes ({} bytes)", self.max_bytes),
                        *size,
                    ),
                    Unreadable::Broken { size, class, message } => (*class, message.clone(), *size),
                };
                let mut letter = DeadLetter::new(
                    record.bytes.to_vec(),
                    Some(chunk.position(&record)),
                    sluice_sink_api::Stage::Decode,
                    class,
                    message,
                );
                letter.truncated = (size > record.bytes.len() as u64).then_some(size);
                dead.push(letter);
                continue;
            }
            let decoded = self.decoder.decode(&record, now_ms);
            progress.read(record.slot, record.offset, decoded.as_ref().ok().map(|e| e.time));
            match decoded {
                Ok(event) => {
                    self.watermarks.observe(record.slot, event.time, now);
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
                    self.watermarks.touch(record.slot, now);
                    let position = chunk.position(&record);
                    tracing::debug!(source = position.source, offset = record.offset, class = e.class(), "{e}");
                    let counter = match e.stage() {
                        sluice_sink_api::Stage::Decode => &self.metrics.dead_letters_decode,
                        _ => &self.metrics.dead_letters_validate,
                    };
                    Metrics::add(counter, 1);
                    dead.push(DeadLetter::new(
                        record.bytes.to_vec(),
                        Some(position),
                        e.stage(),
                        e.class(),
                        e.to_string(),
                    ));
                }
            }
        }
        Metrics::add(&self.metrics.events_read, chunk.len() as u64);
        progress.seal(seq);
        let watermark = self.watermarks.current(now);
        for share in &mut shares {
            share.watermark = watermark;
        }
        if let Some(first) = shares.first_mut() {
            first.dead = dead;
        }
        shares
    }
}
