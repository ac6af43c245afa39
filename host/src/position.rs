//! Where the reading of an input partition is: the one type for a
//! partition and its position that the source, the read loop, the
//! checkpoint coordinator and the checkpoints share.

use serde::{Deserialize, Serialize};

/// A partition of the input: a Kafka topic's partition, or a file (its
/// name, partition 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionId {
    pub topic: String,
    pub partition: i32,
}

impl PartitionId {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        PartitionId { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for PartitionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// How far a partition was read: every record before `offset` has been
/// handed out (a file: the next line, 1-based, and the byte at which it
/// starts, where reading resumes), and the largest event time among them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(flatten)]
    pub id: PartitionId,
    /// The next offset to read.
    pub offset: i64,
    /// A file: the byte at which the next line starts (absent for Kafka).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
    /// The largest event time the partition had delivered.
    pub max_event_time: Option<i64>,
}
