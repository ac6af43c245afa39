//! Sources of raw events: a file (JSON lines or Avro) or Kafka topics. A source
//! yields chunks of records; the watermark advances between chunks.
//!
//! Partitions are numbered by *slot*: a small index the source gives each
//! (topic, partition) it reads, stable for the run, that the watermarks
//! and the window state use.

mod component;
mod file;
mod kafka;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::chunk::{Chunk, Header, Metadata, Partitions, Record, Unreadable};
pub use component::{Component, MAX_STEP, SourceComponent};
pub use file::{FileSource, FileSourceConfig, avro_container_schema};
pub use kafka::{KafkaSource, KafkaSourceConfig, StartConfig, managed_property};

/// A source of events.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    File(FileSourceConfig),
    Kafka(KafkaSourceConfig),
}

impl SourceConfig {
    /// What the source says of itself.
    pub fn component(&self) -> &dyn SourceComponent {
        match self {
            SourceConfig::File(c) => c,
            SourceConfig::Kafka(c) => c,
        }
    }

    /// [`SourceConfig::component`], to rewrite.
    pub fn component_mut(&mut self) -> &mut dyn SourceComponent {
        match self {
            SourceConfig::File(c) => c,
            SourceConfig::Kafka(c) => c,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kafka: {what}: {source}")]
    Kafka {
        what: String,
        /// Boxed: librdkafka's error is large, and this one is rare.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A setting the manifest's checks should have refused.
    #[error("source: {0}")]
    Config(String),
    /// The checkpoints cannot be read.
    #[error("cannot restore a checkpoint: {0}")]
    Restore(#[source] Box<crate::checkpoint::Error>),
    /// A checkpoint's position does not fit the input.
    #[error("cannot restore a checkpoint: {0}")]
    Position(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a poll of the source gave.
#[derive(Debug)]
pub enum Polled {
    /// Records. `caught_up`: the source had nothing more at hand, so
    /// results should go out now rather than wait for more input.
    Chunk { chunk: Chunk, caught_up: bool },
    /// Partitions now read, before any of their records.
    Assigned(Vec<Assignment>),
    /// Partitions taken away (a consumer-group rebalance): their windows
    /// are dropped; their new owner restores them from the checkpoint
    /// taken at the hand-over, or (without checkpoints) rebuilds them
    /// from committed offsets.
    Revoked(Vec<usize>),
    /// Bounded partitions that reached their end.
    Finished(Vec<usize>),
    /// The group is taking partitions away and waits while this host
    /// hands them over: everything read has been handed out, and the
    /// pipeline is to take a checkpoint now and call
    /// [`Source::release`] once it is acknowledged. The new owner then
    /// starts from that checkpoint, where this host's outputs end.
    HandOver,
    /// A hand-over is under way: no records until the partitions are let
    /// go and the group has assigned them again.
    Waiting,
    /// Nothing arrived for a while: time to look at idle partitions.
    Idle,
    /// A bounded source was read to its end.
    End,
}

/// A partition given to this host.
#[derive(Debug)]
pub struct Assignment {
    pub slot: usize,
    pub partition: crate::position::PartitionId,
    /// The offset it is read from.
    pub start: i64,
    /// Its state, when a checkpoint held it (`start` is then the
    /// checkpoint's offset).
    pub restored: Option<crate::checkpoint::Restored>,
}

/// A source of records, polled by the pipeline's reading thread.
pub trait Source {
    fn poll(&mut self) -> Result<Polled>;

    /// The pipeline cannot take more records yet (the workers are busy, a
    /// sink is slow or down): stay alive for `wait` (which may be zero)
    /// without handing out records. A Kafka source keeps up to a step of
    /// records for the next chunk and, after a long hold, pauses its
    /// partitions and keeps polling, so the consumer stays in its group.
    fn hold(&mut self, wait: Duration) -> Result<()> {
        std::thread::sleep(wait);
        Ok(())
    }

    /// Every record of `slot` before `offset` has had all its effects
    /// written to the sinks: the position may be committed.
    fn commit(&mut self, _offsets: &[(usize, i64)]) -> Result<()> {
        Ok(())
    }

    /// Where the next record of `slot` starts in bytes, for a source read
    /// by seeking (a file): a checkpoint keeps it, and a restore seeks
    /// there. Asked at a barrier, when everything read has been handed
    /// out. `None` for sources that resume by offset (Kafka).
    fn byte_offset(&self, _slot: usize) -> Option<u64> {
        None
    }

    /// How far a bounded source is: (read, to read), in bytes of a file or
    /// records of the partitions. `None` for an unbounded source.
    fn progress(&self) -> Option<(u64, u64)> {
        None
    }

    /// Why the source reads nothing, when something outside it holds it
    /// up (a consumer group that has assigned this host no partition),
    /// and for how long: what the status shows.
    fn waiting(&self) -> Option<String> {
        None
    }

    /// Each partition read and how far behind its end; empty when the
    /// source cannot tell (a file).
    fn lag(&self) -> Vec<crate::metrics::PartitionLag> {
        Vec::new()
    }

    /// The checkpoint asked for by [`Polled::HandOver`] is acknowledged
    /// (`checkpointed`: it is durable and the sinks committed it): let the
    /// revoked partitions go.
    fn release(&mut self, _checkpointed: bool) {}

    /// The run's last commit: made before the source closes, waited for,
    /// and checked.
    fn commit_last(&mut self, offsets: &[(usize, i64)]) -> Result<()> {
        self.commit(offsets)
    }
}
