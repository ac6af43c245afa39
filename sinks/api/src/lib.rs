//! The records Sluice writes and the [`Sink`] trait every connector
//! implements (file, Redis, Kafka, Delta Lake).
//!
//! A sink receives batches; [`Sink::flush`] makes what it was given durable
//! (or visible). Checkpoints call [`Sink::pre_commit`] before the checkpoint
//! is written and [`Sink::commit`] once it is durable, so a transactional
//! sink can make its writes visible exactly once.

pub mod duration;
mod record;

pub use duration::Duration;
pub use record::{
    DeadLetter, FeatureRow, FeatureValue, Features, LateEvent, Position, Scalar, Stage, StrTable, Trigger,
};

/// Errors a sink reports. `retriable` tells the host whether to back off
/// and try the same batch again (an outage) or to give up (bad config).
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct Error {
    /// The sink's name in the manifest.
    pub sink: String,
    pub message: String,
    pub retriable: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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

    /// A checkpoint is about to be taken: stage what was written.
    async fn pre_commit(&mut self, _checkpoint: u64) -> Result<()> {
        self.flush().await
    }

    /// The checkpoint is durable: publish what was staged for it.
    async fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }
}
