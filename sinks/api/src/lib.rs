//! The records Sluice writes and the [`Sink`] trait every connector
//! implements (file, Redis, Kafka, Delta Lake).
//!
//! A sink receives batches; [`Sink::flush`] makes what it was given durable
//! (or visible). Checkpoints call [`Sink::pre_commit`] before the checkpoint
//! is written and [`Sink::commit`] once it is durable, so a transactional
//! sink can make its writes visible exactly once.

pub mod component;
pub mod duration;
mod record;
pub mod schema;
pub mod size;
pub mod time;

pub use component::{Access, Component, NamedPath, Output, Preflight, Problem, SinkComponent};
pub use duration::Duration;
pub use record::{
    DeadLetter, EntityKey, FeatureRow, FeatureValue, Features, KeyType, LateEvent, MAX_RAW_BYTES, Position, Scalar,
    Stage, StrTable, Trigger, truncate_raw,
};
pub use schema::{FeatureSchema, FeatureSpec, FeatureType};

/// A sink's failure, of one of two classes. Retriable (an outage, a
/// timeout): the host backs off and writes the same batch again, holding
/// the source meanwhile, so nothing is lost. Fatal (bad credentials, a
/// topic that does not exist): retrying cannot help, and the pipeline
/// stops with the message. A record that can never be written (the third
/// class, poison) is not an error: see [`Sink::take_rejected`].
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct Error {
    /// The sink's name in the manifest.
    pub sink: String,
    pub message: String,
    pub retriable: bool,
}

/// A record a sink can never write (larger than the destination takes,
/// say): the host sends it to the dead-letter output with the reason and
/// goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The record as the sink would have written it (a feature row's JSON,
    /// a dead letter's or late event's raw bytes).
    pub raw: Vec<u8>,
    /// A stable name for the reason (`record_too_large`, `wrong_type`, …).
    pub error_class: String,
    /// The reason, for a person.
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a sink is told of the pipeline it writes for, when it opens.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The pipeline's name.
    pub pipeline: String,
    /// This run of the pipeline, unique to it (the name its checkpoints
    /// carry): what a sink stages is named after it.
    pub run: String,
    /// The features the module declares (typed sinks make their columns
    /// from them).
    pub schema: std::sync::Arc<FeatureSchema>,
    /// For each run that took checkpoints, the last one it took: what
    /// that run staged up to that barrier is to be published (it may have
    /// died between its checkpoint and its commit), whatever it staged
    /// after is not (its input is read again from the checkpoint).
    pub checkpointed: std::collections::HashMap<String, u64>,
    /// Whether checkpoints are taken: without, what is staged at a barrier
    /// is committed at once.
    pub checkpoints: bool,
    /// How the entity keys are typed (a typed sink's key column).
    pub key_type: KeyType,
    /// Set when this run is a backfill (`sluice backfill`): what it may
    /// write to the offline table.
    pub backfill: Option<Backfill>,
}

/// The bounds of a backfill: the windows it writes to the offline table
/// are those ending in `[from_ms, to_ms)` that start at or after
/// `complete_from_ms` (before it, a window may hold only part of its
/// events: the run read its input from a point in time). Times in
/// milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backfill {
    pub from_ms: i64,
    pub to_ms: i64,
    pub complete_from_ms: i64,
}

impl Backfill {
    /// Whether a window `[start, end)` is the backfill's to write.
    pub fn covers(&self, window_start: i64, window_end: i64) -> bool {
        (self.from_ms..self.to_ms).contains(&window_end) && window_start >= self.complete_from_ms
    }
}

/// One batch of one output.
#[derive(Debug, Clone, Copy)]
pub enum Batch<'a> {
    Features(&'a [FeatureRow]),
    DeadLetters(&'a [DeadLetter]),
    LateEvents(&'a [LateEvent]),
}

impl Batch<'_> {
    pub fn len(&self) -> usize {
        match self {
            Batch::Features(r) => r.len(),
            Batch::DeadLetters(r) => r.len(),
            Batch::LateEvents(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
pub trait Sink: Send {
    /// Write a batch. It need not be durable until [`Sink::flush`].
    async fn write(&mut self, batch: Batch<'_>) -> Result<()>;

    /// Make everything written so far durable.
    async fn flush(&mut self) -> Result<()>;

    /// The records refused for good since the last call (poison), which
    /// the sink has dropped and gone on without. Asked after every write
    /// and flush.
    fn take_rejected(&mut self) -> Vec<Rejected> {
        Vec::new()
    }

    /// A checkpoint is about to be taken: stage what was written.
    async fn pre_commit(&mut self, _checkpoint: u64) -> Result<()> {
        self.flush().await
    }

    /// The checkpoint is durable: publish what was staged for it and for
    /// any earlier barrier whose checkpoint failed (a failed checkpoint
    /// is not followed by a commit; what it staged waits for the next).
    async fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }
}
