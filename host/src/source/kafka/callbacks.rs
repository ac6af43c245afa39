//! What librdkafka calls back into, inside `poll`: statistics (the
//! partitions' ends, for the consumer lag), errors, commits, and the
//! rebalance callback, which only notes what the group did (see the
//! source's documentation) and, for a deferred revocation, pauses the
//! partitions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use serde::Deserialize;

use super::starts::Start;
use crate::position::PartitionId;
use crate::source::Error;

/// A change the rebalance callbacks noted, in order.
#[derive(Debug)]
pub(super) enum Change {
    /// The group assigned these partitions; the source has yet to assign
    /// them (see the module's documentation).
    Assign(Vec<PartitionId>),
    /// The source assigned them, from these starts.
    Assigned(Vec<Start>),
    /// `deferred`: the partitions are paused, not let go, until the
    /// pipeline has checkpointed them.
    Revoke {
        gone: Vec<PartitionId>,
        deferred: bool,
    },
    Failed(Error),
}

/// What the rebalance callbacks (which run inside `poll`) share with the
/// source.
#[derive(Default)]
pub(super) struct Shared {
    pub changes: Vec<Change>,
    /// Each partition's end (high watermark), from librdkafka's statistics.
    pub ends: HashMap<PartitionId, i64>,
    /// A revocation is waiting for the hand-over checkpoint: the
    /// partitions are still assigned.
    pub deferred: bool,
}

/// How often librdkafka reports statistics, where the partitions' ends
/// (and so the consumer lag) come from.
pub(super) const STATISTICS_INTERVAL: &str = "1000";

/// The part of librdkafka's statistics the source reads.
#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    topics: HashMap<String, TopicStatistics>,
}

#[derive(Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: HashMap<String, PartitionStatistics>,
}

#[derive(Deserialize)]
struct PartitionStatistics {
    partition: i32,
    /// -1 until a fetch has answered.
    hi_offset: i64,
    // For the trace of a partition that stops moving: librdkafka's side.
    #[serde(default)]
    fetch_state: String,
    #[serde(default)]
    next_offset: i64,
    #[serde(default)]
    fetchq_cnt: i64,
}

pub(super) struct Context {
    pub shared: Mutex<Shared>,
    /// Checkpoints are taken: revoked partitions are handed over at one.
    pub hands_over: bool,
    /// The consumer is closing: revocations let go at once.
    pub closing: AtomicBool,
}

impl ClientContext for Context {
    fn stats_raw(&self, statistics: &[u8]) {
        let parsed: Statistics = match serde_json::from_slice(statistics) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "librdkafka statistics not understood; consumer lag unknown");
                return;
            }
        };
        let Ok(mut shared) = self.shared.lock() else { return };
        for (topic, t) in parsed.topics {
            // librdkafka's internal partition -1 is no real one.
            for p in t.partitions.into_values().filter(|p| p.partition >= 0 && p.hi_offset >= 0) {
                tracing::trace!(
                    topic,
                    partition = p.partition,
                    end = p.hi_offset,
                    fetch_state = p.fetch_state,
                    next_offset = p.next_offset,
                    queued = p.fetchq_cnt,
                    "librdkafka statistics"
                );
                shared.ends.insert(PartitionId::new(topic.as_str(), p.partition), p.hi_offset);
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            // Bounded reading asks for these; they arrive through `poll`.
            KafkaError::Global(RDKafkaErrorCode::PartitionEOF) | KafkaError::PartitionEOF(_) => {}
            e => tracing::error!(error = %e, "librdkafka: {reason}"),
        }
    }
}

impl ConsumerContext for Context {
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, offsets: &TopicPartitionList) {
        let committed = || -> Vec<String> {
            offsets.elements().iter().map(|e| format!("{}[{}]@{:?}", e.topic(), e.partition(), e.offset())).collect()
        };
        match result {
            Ok(()) => tracing::debug!(offsets = ?committed(), "offsets committed"),
            Err(e) => tracing::warn!(
                error = %e,
                offsets = ?committed(),
                "offset commit failed; the next commit covers these records, or a restart reads them again"
            ),
        }
    }

    /// Replaces rdkafka's default, which lets revoked partitions go at
    /// once, to defer a revocation until its hand-over checkpoint (see the
    /// module's documentation). Runs inside `poll`.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let given = tpl.elements().iter().map(|e| PartitionId::new(e.topic(), e.partition())).collect();
                self.record(Change::Assign(given));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let gone = tpl.elements().iter().map(|e| PartitionId::new(e.topic(), e.partition())).collect();
                let deferred = self.hands_over && !self.closing.load(Ordering::SeqCst);
                if deferred && let Err(e) = consumer.pause(tpl) {
                    // Not fatal: records that still arrive once the
                    // checkpoint is under way are dropped, left to the
                    // next owner.
                    tracing::warn!(error = %e, "cannot pause the revoked partitions");
                }
                if let Ok(mut shared) = self.shared.lock() {
                    shared.deferred = deferred;
                    shared.changes.push(Change::Revoke { gone, deferred });
                }
                if !deferred {
                    unassign(consumer);
                }
            }
            e => {
                self.record(Change::Failed(Error::Kafka {
                    what: "rebalance failed".into(),
                    source: Box::new(KafkaError::Rebalance(e.into())),
                }));
                unassign(consumer);
            }
        }
    }
}

pub(super) fn unassign(consumer: &BaseConsumer<Context>) {
    if let Err(e) = consumer.unassign() {
        tracing::warn!(error = %e, "cannot let the revoked partitions go");
    }
}

impl Context {
    fn record(&self, change: Change) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.changes.push(change);
        }
    }
}
