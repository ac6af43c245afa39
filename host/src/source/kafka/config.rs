//! The Kafka source's configuration: what a manifest says, its checks
//! and its preflight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{Duration, Preflight, Problem};
use sluice_sink_kafka::preflight;

use super::KafkaSource;
use crate::checkpoint::Store;
use crate::source::component::{Component, SourceComponent, check_step};
use crate::source::{Result, Source};
use crate::time::TimestampFormat;

/// Kafka topics, read through a consumer group: an unbounded input
/// (unless `stop_at_end`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topics to read. Their partitions are split among the hosts of the
    /// consumer group; each partition keeps its own watermark.
    pub topics: Vec<String>,
    /// Consumer group id. Offsets are committed for the group.
    pub group: String,
    /// Where a partition starts when this run is first given it:
    /// `committed` (the group's committed offset, or the earliest record
    /// where there is none), `earliest`, `latest`, or
    /// `{timestamp: 2026-11-21T10:00:00Z}` (the first record whose Kafka
    /// timestamp is at or after that time). With `checkpoint`, a partition
    /// a checkpoint holds starts at that checkpoint's offset instead, with
    /// its state.
    #[serde(default)]
    pub start: StartConfig,
    /// Stop once every partition has been read to its end: the consumer
    /// has caught up with the partition's high watermark (librdkafka's
    /// partition EOF) and is at or past the end offset the partition had
    /// when it was assigned. A final watermark then fires every remaining
    /// window, as at the end of a file. For backfills, tests and demos.
    #[serde(default)]
    pub stop_at_end: bool,
    /// Most records per step. The watermark advances between steps.
    #[serde(default = "default_step")]
    pub step: usize,
    /// Once a step has a record, how long it may wait for more before it
    /// goes on with fewer than `step`. `0ms` (the default) takes what has
    /// arrived, for the freshest features; a longer linger gives fuller,
    /// steadier steps.
    #[serde(default = "default_linger")]
    pub linger: Duration,
    /// How often offsets are committed (those whose records' effects have
    /// reached every sink).
    #[serde(default = "default_commit_interval")]
    pub commit_interval: Duration,
    /// librdkafka consumer properties, passed through as they are: for
    /// example `security.protocol: SASL_SSL`, `sasl.mechanism: PLAIN`,
    /// `sasl.username`, `sasl.password`. Sluice sets
    /// `enable.auto.commit: "false"` (it commits itself),
    /// `fetch.wait.max.ms: "5"` (brokers such as Tansu hold a fetch that
    /// long even when records are waiting), `fetch.queue.backoff.ms: "10"`
    /// (librdkafka otherwise stops fetching for a second whenever its
    /// prefetch queue is full), `session.timeout.ms: "6000"` with
    /// `heartbeat.interval.ms: "2000"` (a host restarted after a crash gets
    /// its partitions back within seconds, not librdkafka's 45), and
    /// `statistics.interval.ms: "1000"` (the partitions' ends, for the
    /// consumer lag; `"0"` turns it off) unless given here. Refused,
    /// because the
    /// delivery guarantee and rebalance handling depend on them:
    /// `bootstrap.servers` and `group.id` (use `brokers` and `group`),
    /// `enable.auto.commit` other than `"false"`, a cooperative
    /// `partition.assignment.strategy`, and `group.protocol` other than
    /// `classic`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Why a librdkafka property may not be passed through (and what to do
/// instead): the ones Sluice's delivery guarantee and rebalance handling
/// depend on.
pub fn managed_property(key: &str, value: &str) -> Option<(&'static str, &'static str)> {
    let value = value.trim().to_ascii_lowercase();
    match key {
        "bootstrap.servers" => Some(("the brokers are set by `source.brokers`", "move the value there")),
        "group.id" => Some(("the consumer group is set by `source.group`", "move the value there")),
        "enable.auto.commit" if value != "false" => Some((
            "Sluice commits offsets itself, only for records whose effects reached every sink; \
             auto-commit would also commit records not yet written, and a crash would lose them",
            "remove it",
        )),
        "partition.assignment.strategy" if value.contains("cooperative") => Some((
            "Sluice needs the eager rebalance protocol: it re-assigns partitions with explicit start \
             offsets when they are assigned",
            "use range or roundrobin (librdkafka's default is range,roundrobin), or remove it",
        )),
        "group.protocol" if value != "classic" => Some((
            "Sluice needs the classic consumer group protocol (the new one rebalances incrementally)",
            "remove it",
        )),
        _ => None,
    }
}

/// Where a partition starts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum StartConfig {
    /// The group's committed offset; the earliest record without one.
    #[default]
    Committed,
    /// The earliest record still in the partition.
    Earliest,
    /// Only records produced after the assignment.
    Latest,
    /// The first record with a Kafka timestamp at or after a time.
    Timestamp(
        /// An RFC 3339 time, e.g. `2026-11-21T10:00:00Z`.
        String,
    ),
}

fn default_step() -> usize {
    4096
}

fn default_linger() -> Duration {
    Duration::from_millis(0)
}

fn default_commit_interval() -> Duration {
    Duration::from_millis(1_000)
}

impl Component for KafkaSourceConfig {
    fn check(&self) -> Vec<Problem> {
        let mut found: Vec<Problem> = check_step(self.step).into_iter().collect();
        if self.topics.is_empty() {
            found.push(Problem::new("topics", "no topic to read", "for example topics: [clicks]"));
        }
        if self.brokers.trim().is_empty() {
            found.push(Problem::new("brokers", "no broker", "for example brokers: 127.0.0.1:9092"));
        }
        if self.group.trim().is_empty() {
            found.push(Problem::new(
                "group",
                "the consumer group is empty",
                "name the group, e.g. group: session-features",
            ));
        }
        if let StartConfig::Timestamp(at) = &self.start
            && TimestampFormat::Rfc3339.from_str(at).is_err()
        {
            found.push(Problem::new(
                "start.timestamp",
                format!("`{at}` is not an RFC 3339 time"),
                "for example 2026-11-21T10:00:00Z",
            ));
        }
        for (key, value) in &self.properties {
            if let Some((why, hint)) = managed_property(key, value) {
                found.push(Problem::new(format!("properties.{key}"), why, hint));
            }
        }
        found
    }

    fn client_properties(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.properties)
    }

    fn client_properties_mut(&mut self) -> Option<&mut BTreeMap<String, String>> {
        Some(&mut self.properties)
    }

    /// The properties librdkafka takes, and (online) brokers that answer
    /// and topics that exist.
    fn preflight(&self, checks: &Preflight<'_>) -> Vec<Problem> {
        let topics: Vec<(String, &str)> =
            self.topics.iter().enumerate().map(|(i, t)| (format!("topics[{i}]"), t.as_str())).collect();
        preflight::check(&self.brokers, &self.properties, preflight::Client::Consumer, &topics, checks)
    }
}

impl SourceComponent for KafkaSourceConfig {
    fn bounded(&self) -> bool {
        self.stop_at_end
    }

    fn commit_interval(&self) -> Option<StdDuration> {
        Some(self.commit_interval.std().max(StdDuration::from_millis(10)))
    }

    fn open(&self, max_event_bytes: usize, checkpoints: Option<Arc<Store>>) -> Result<Box<dyn Source>> {
        Ok(Box::new(KafkaSource::open(self, max_event_bytes, checkpoints)?))
    }
}
