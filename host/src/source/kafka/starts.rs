//! Where the partitions the group gives this host start, and their
//! assignment, with each one's state from the checkpoints: run after the
//! poll whose rebalance callback noted them, not inside it.

use std::collections::HashMap;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::config::StartConfig;
use super::{KafkaSource, REQUEST_TIMEOUT, kafka_err};
use crate::checkpoint::Restored;
use crate::position::PartitionId;
use crate::source::{Error, Result};
use crate::time::TimestampFormat;

/// Where an assigned partition starts and, for bounded reading, where it
/// ends; its state, when a checkpoint holds it.
#[derive(Debug)]
pub(super) struct Start {
    pub partition: PartitionId,
    pub offset: i64,
    pub end: i64,
    pub restored: Option<Restored>,
}

impl KafkaSource {
    /// Pick the start of every partition given and assign them: a
    /// partition this host holds already resumes where it is; one a
    /// checkpoint holds starts at the checkpoint's offset, with its state;
    /// any other as the manifest's `start` says.
    pub(super) fn starts(&self, given: &[PartitionId]) -> Result<Vec<Start>> {
        let held: HashMap<PartitionId, i64> = self
            .slots
            .iter()
            .filter(|s| s.assigned)
            .map(|s| (PartitionId::new(s.topic.as_ref(), s.partition), s.next))
            .collect();
        let consumer = &self.consumer;
        let wanted: Vec<PartitionId> = given.iter().filter(|tp| !held.contains_key(*tp)).cloned().collect();
        let mut new = TopicPartitionList::new();
        for id in &wanted {
            new.add_partition(&id.topic, id.partition);
        }
        let from_broker: HashMap<PartitionId, Offset> = match &self.config.start {
            _ if new.count() == 0 => HashMap::new(),
            StartConfig::Committed => offsets(consumer.committed_offsets(new, REQUEST_TIMEOUT))?,
            StartConfig::Timestamp(at) => {
                let ms = TimestampFormat::Rfc3339
                    .from_str(at)
                    .map_err(|e| Error::Config(format!("start.timestamp `{at}`: {e}")))?;
                let mut query = TopicPartitionList::new();
                for e in new.elements() {
                    query
                        .add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms))
                        .map_err(kafka_err("bad start time"))?;
                }
                offsets(consumer.offsets_for_times(query, REQUEST_TIMEOUT))?
            }
            StartConfig::Earliest | StartConfig::Latest => HashMap::new(),
        };
        let mut restored = match &self.checkpoints {
            Some(store) if !wanted.is_empty() => store.restore(&wanted).map_err(|e| Error::Restore(Box::new(e)))?,
            _ => HashMap::new(),
        };
        let mut assign = TopicPartitionList::new();
        let mut starts = Vec::new();
        for tp in given {
            let restored = restored.remove(tp);
            let (low, high) =
                consumer.fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT).map_err(|source| Error::Kafka {
                    what: format!("cannot read the offsets of {}[{}]", tp.topic, tp.partition),
                    source: Box::new(source),
                })?;
            let checkpointed = restored.as_ref().map(|r| r.state.position.offset);
            let start = choose(held.get(tp).copied(), checkpointed, &self.config.start, from_broker.get(tp), low, high);
            if self.checkpoints.is_some() && restored.is_none() && !held.contains_key(tp) {
                tracing::info!(
                    topic = tp.topic,
                    partition = tp.partition,
                    offset = start,
                    "no checkpoint holds this partition: reading it without state"
                );
            }
            assign
                .add_partition_offset(&tp.topic, tp.partition, Offset::Offset(start))
                .map_err(kafka_err("bad start offset"))?;
            starts.push(Start { partition: tp.clone(), offset: start, end: high, restored });
        }
        consumer.assign(&assign).map_err(kafka_err("cannot assign partitions"))?;
        Ok(starts)
    }
}

fn offsets(tpl: rdkafka::error::KafkaResult<TopicPartitionList>) -> Result<HashMap<PartitionId, Offset>> {
    let tpl = tpl.map_err(kafka_err("cannot look up start offsets"))?;
    Ok(tpl.elements().iter().map(|e| (PartitionId::new(e.topic(), e.partition()), e.offset())).collect())
}

/// Where a partition given to this host starts: where this host is, if it
/// holds it already (`held`); else where a checkpoint's state of it is
/// (state and position move together); else as `start` says, from the
/// broker's answer (`found`: the committed offset, or the first at the
/// timestamp) and the partition's first and next offsets (`low`, `high`).
fn choose(
    held: Option<i64>,
    checkpointed: Option<i64>,
    start: &StartConfig,
    found: Option<&Offset>,
    low: i64,
    high: i64,
) -> i64 {
    held.or(checkpointed).unwrap_or(match (start, found) {
        (StartConfig::Latest, _) => high,
        (StartConfig::Earliest, _) => low,
        // Not clamped to [low, high]: Tansu reports a short high, and an
        // offset out of range is librdkafka's to handle
        // (`auto.offset.reset`).
        (_, Some(Offset::Offset(o))) => *o,
        // No record at or after the timestamp: the end.
        (StartConfig::Timestamp(_), _) => high,
        // No committed offset: the earliest.
        (_, _) => low,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held beats checkpointed beats the manifest's start; the broker's
    /// answer is taken as it is, and its absence falls back to the
    /// partition's first offset (committed) or its end (timestamp).
    #[test]
    fn a_partition_starts_where_its_state_is_else_as_the_manifest_says() {
        let (low, high) = (10, 50);
        let at = StartConfig::Timestamp("2026-11-21T10:00:00Z".into());
        // Held, checkpointed, the manifest's start, the broker's answer: the start.
        type Case<'a> = (Option<i64>, Option<i64>, &'a StartConfig, Option<Offset>, i64);
        let cases: [Case<'_>; 10] = [
            (Some(42), Some(30), &StartConfig::Earliest, None, 42),
            (None, Some(30), &StartConfig::Latest, Some(Offset::Offset(45)), 30),
            (None, None, &StartConfig::Earliest, Some(Offset::Offset(45)), low),
            (None, None, &StartConfig::Latest, None, high),
            (None, None, &StartConfig::Committed, Some(Offset::Offset(45)), 45),
            (None, None, &StartConfig::Committed, Some(Offset::Invalid), low),
            (None, None, &StartConfig::Committed, None, low),
            // Beyond the reported end: kept (Tansu's end is short).
            (None, None, &StartConfig::Committed, Some(Offset::Offset(60)), 60),
            (None, None, &at, Some(Offset::Offset(20)), 20),
            (None, None, &at, Some(Offset::End), high),
        ];
        for (held, checkpointed, start, found, want) in cases {
            assert_eq!(
                choose(held, checkpointed, start, found.as_ref(), low, high),
                want,
                "{held:?} {checkpointed:?} {start:?} {found:?}"
            );
        }
    }
}
