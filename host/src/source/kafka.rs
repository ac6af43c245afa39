//! Kafka topics through a consumer group (rdkafka).
//!
//! Each partition this host is given becomes a slot with its own
//! watermark. Where a newly assigned partition starts is set explicitly at
//! assignment (the manifest's `start`), and a partition this host keeps
//! across a rebalance resumes where it was, not at the committed offset:
//! the committed offset lags behind what the window state already holds,
//! and re-reading it would count events twice. Offsets are committed only
//! when the pipeline says the records' effects reached the sinks.
//!
//! The assignment callback re-assigns with explicit offsets, which needs
//! the eager rebalance protocol (librdkafka's default `range,roundrobin`).
//!
//! With checkpoints, revoked partitions are handed over rather than
//! dropped: the revocation callback pauses them and returns without
//! letting them go (the group waits, up to `max.poll.interval.ms`), the
//! pipeline takes a checkpoint of all that was read, and only once it is
//! acknowledged does the source unassign. The partitions' new owner then
//! restores exactly the state and position at which this host's outputs
//! stop (Kafka Streams commits its tasks on revocation for the same
//! reason).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use sluice_sink_api::{Preflight, Problem};
use sluice_sink_kafka::preflight;

use super::component::{Component, SourceComponent, check_step};
use super::{Assignment, Chunk, Error, Header, Metadata, Partitions, Polled, Result, Source};
use crate::checkpoint::{Restored, Store};
use crate::metrics::PartitionLag;
use crate::time::TimestampFormat;
use sluice_sink_api::Duration;

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

/// Longest a poll waits when nothing arrives; idle partitions are looked
/// at this often.
const POLL_IDLE: StdDuration = StdDuration::from_millis(100);
/// How long the source is held back before its partitions are paused
/// (well within librdkafka's default `max.poll.interval.ms`, 5 min).
const PAUSE_AFTER: StdDuration = StdDuration::from_secs(60);
/// Timeout of the broker requests made at assignment.
const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(10);

type TopicPartition = (String, i32);

/// An assignment the callback made: where each partition starts and, for
/// bounded reading, where it ends.
#[derive(Debug)]
enum Change {
    /// Each partition's start, end, and state restored from a checkpoint.
    Assign(Vec<(TopicPartition, i64, i64, Option<Restored>)>),
    /// `deferred`: the partitions are paused, not let go, until the
    /// pipeline has checkpointed them.
    Revoke {
        gone: Vec<TopicPartition>,
        deferred: bool,
    },
    Failed(String),
}

/// What the rebalance callbacks (which run inside `poll`) share with the
/// source.
#[derive(Default)]
struct Shared {
    /// Per slot: the partition, and the next offset while this host holds it.
    positions: Vec<(TopicPartition, Option<i64>)>,
    changes: Vec<Change>,
    /// Each partition's end (high watermark), from librdkafka's statistics.
    ends: HashMap<TopicPartition, i64>,
    /// A revocation is waiting for the hand-over checkpoint: the
    /// partitions are still assigned.
    deferred: bool,
}

/// How often librdkafka reports statistics, where the partitions' ends
/// (and so the consumer lag) come from.
const STATISTICS_INTERVAL: &str = "1000";

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

struct Context {
    start: StartConfig,
    shared: Mutex<Shared>,
    /// Checkpoints: a partition given to this host starts from the newest
    /// checkpoint that holds it, with that checkpoint's state.
    checkpoints: Option<Arc<Store>>,
    /// The consumer is closing: revocations let go at once.
    closing: AtomicBool,
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
                shared.ends.insert((topic.clone(), p.partition), p.hi_offset);
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
                let change = match self.starts(consumer, tpl) {
                    Ok(starts) => starts,
                    Err(e) => Change::Failed(e),
                };
                self.record(change);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let gone = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                let deferred = self.checkpoints.is_some() && !self.closing.load(Ordering::SeqCst);
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
                self.record(Change::Failed(format!("rebalance failed: {}", KafkaError::Rebalance(e.into()))));
                unassign(consumer);
            }
        }
    }
}

fn unassign(consumer: &BaseConsumer<Context>) {
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

    /// Pick the start of every assigned partition and re-assign with them.
    fn starts(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> Result<Change, String> {
        let held: HashMap<TopicPartition, i64> = self
            .shared
            .lock()
            .map(|s| s.positions.iter().filter_map(|(tp, next)| Some((tp.clone(), (*next)?))).collect())
            .unwrap_or_default();
        let mut new = TopicPartitionList::new();
        for e in tpl.elements() {
            if !held.contains_key(&(e.topic().to_string(), e.partition())) {
                new.add_partition(e.topic(), e.partition());
            }
        }
        let wanted: Vec<TopicPartition> =
            new.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let from_broker: HashMap<TopicPartition, Offset> = match &self.start {
            _ if new.count() == 0 => HashMap::new(),
            StartConfig::Committed => offsets(consumer.committed_offsets(new, REQUEST_TIMEOUT))?,
            StartConfig::Timestamp(at) => {
                let ms = TimestampFormat::Rfc3339.from_str(at).map_err(|e| format!("start.timestamp: {e}"))?;
                let mut query = TopicPartitionList::new();
                for e in new.elements() {
                    query
                        .add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms))
                        .map_err(|e| e.to_string())?;
                }
                offsets(consumer.offsets_for_times(query, REQUEST_TIMEOUT))?
            }
            StartConfig::Earliest | StartConfig::Latest => HashMap::new(),
        };
        let mut restored = match &self.checkpoints {
            Some(store) if !wanted.is_empty() => store.restore(&wanted).map_err(|e| e.to_string())?,
            _ => HashMap::new(),
        };
        let mut assign = TopicPartitionList::new();
        let mut starts = Vec::new();
        for e in tpl.elements() {
            let tp = (e.topic().to_string(), e.partition());
            let restored = restored.remove(&tp);
            let (low, high) = consumer
                .fetch_watermarks(&tp.0, tp.1, REQUEST_TIMEOUT)
                .map_err(|err| format!("cannot read the offsets of {}[{}]: {err}", tp.0, tp.1))?;
            // Held here: where it is. Restored: where its state is (state
            // and position move together). Otherwise as the manifest says.
            let checkpointed = restored.as_ref().map(|r| r.state.offset);
            let start = held.get(&tp).copied().or(checkpointed).unwrap_or(match (&self.start, from_broker.get(&tp)) {
                (StartConfig::Latest, _) => high,
                (StartConfig::Earliest, _) => low,
                // Not clamped to [low, high]: Tansu reports a short high,
                // and an offset out of range is librdkafka's to handle
                // (`auto.offset.reset`).
                (_, Some(Offset::Offset(o))) => *o,
                // No committed offset: the earliest. No record at or after
                // the timestamp: the end.
                (StartConfig::Timestamp(_), _) => high,
                (_, _) => low,
            });
            if self.checkpoints.is_some() && restored.is_none() && !held.contains_key(&tp) {
                tracing::info!(
                    topic = tp.0,
                    partition = tp.1,
                    offset = start,
                    "no checkpoint holds this partition: reading it without state"
                );
            }
            assign.add_partition_offset(&tp.0, tp.1, Offset::Offset(start)).map_err(|e| e.to_string())?;
            starts.push((tp, start, high, restored));
        }
        consumer.assign(&assign).map_err(|e| format!("cannot assign partitions: {e}"))?;
        Ok(Change::Assign(starts))
    }
}

fn offsets(tpl: rdkafka::error::KafkaResult<TopicPartitionList>) -> Result<HashMap<TopicPartition, Offset>, String> {
    let tpl = tpl.map_err(|e| format!("cannot look up start offsets: {e}"))?;
    Ok(tpl.elements().iter().map(|e| ((e.topic().to_string(), e.partition()), e.offset())).collect())
}

/// What one poll of the consumer gave.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Record,
    /// A record below its partition's position, dropped (see [`keep`]).
    Again,
    /// A partition was read to its end (bounded reading).
    End,
    Nothing,
}

/// A partition slot's bookkeeping.
#[derive(Debug, Clone)]
struct Slot {
    topic: Arc<str>,
    partition: i32,
    assigned: bool,
    /// Next offset to read.
    next: i64,
    /// Bounded reading: the end offset at assignment.
    end: i64,
    /// Where this host started reading it.
    start: i64,
    /// Read to its end; reported as finished once its records are out.
    ended: bool,
    finished: bool,
}

pub struct KafkaSource {
    consumer: BaseConsumer<Context>,
    /// What the consumer was made with: a fresh member is made the same.
    client: ClientConfig,
    checkpoints: Option<Arc<Store>>,
    /// Since when partitions revoked from this host have been let go
    /// without the group assigning any again (an eager rebalance revokes,
    /// then assigns at once), or since this host last rejoined the group
    /// without an assignment since.
    let_go_since: Option<Instant>,
    /// How long that may last before this host rejoins the group as a
    /// fresh member, the first time; each rejoin without an assignment
    /// since doubles it (see [`rejoin_wait`]).
    rejoin_after: StdDuration,
    /// Rejoins since the last assignment.
    rejoins: u32,
    config: KafkaSourceConfig,
    slots: Vec<Slot>,
    partitions: Partitions,
    /// Revocations waiting for the assignment that follows them (eager
    /// rebalances revoke everything, then assign what stays).
    revoking: Vec<TopicPartition>,
    notes: std::collections::VecDeque<Polled>,
    /// Records that arrived while the source was held.
    held: Option<Chunk>,
    /// Since when the pipeline has been holding the source back.
    held_since: Option<Instant>,
    paused: bool,
    /// Longest record value decoded (longer ones are dead letters).
    max_bytes: usize,
    /// Since when this host has had no partition, and when it last said so.
    unassigned_since: Option<Instant>,
    said_waiting: Option<Instant>,
    /// Records dropped as sent again (see [`keep`]).
    again: u64,
    /// A record of a partition assigned inside a poll, kept for after the
    /// assignment.
    pending: Option<rdkafka::message::OwnedMessage>,
    /// Where a hand-over of revoked partitions is.
    handing_over: Option<HandingOver>,
}

/// The steps of a hand-over (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandingOver {
    /// The group revoked partitions; the pipeline has yet to be told
    /// (records read before the revocation go out first).
    Asked,
    /// The pipeline is taking the hand-over checkpoint.
    Told,
    /// The partitions were let go; the group's next assignment ends it.
    Released,
}

/// How long a consumer without partitions waits before it says so, and
/// how often it says it again.
const WAITING_NOTICE: StdDuration = StdDuration::from_secs(5);
const WAITING_REPEAT: StdDuration = StdDuration::from_secs(30);
/// Session timeouts (`session.timeout.ms`, 6 s by default: 30 s) after
/// partitions were let go with no assignment since before this host
/// rejoins the group as a new member. A group that lost this member's
/// session may go on waiting for members that are gone; a healthy
/// rebalance assigns within a few heartbeats. (Tansu 0.6 can keep naming
/// a member that is gone the group's leader for good: when a stale
/// heartbeat of the member is the request that finds its session over,
/// the leader is not reset, and no later member can complete a
/// rebalance. No rejoin helps there; the status says so until the broker
/// is restarted.)
const REJOIN_AFTER_SESSIONS: u64 = 5;
/// Longest wait between two rejoins that got no assignment.
const REJOIN_MAX: StdDuration = StdDuration::from_secs(600);

/// How long to wait for an assignment before rejoining, after `rejoins`
/// rejoins that got none: `first`, doubled each time up to
/// [`REJOIN_MAX`], so a rebalance that is merely slow (a member taking a
/// long hand-over checkpoint) is not restarted over and over.
fn rejoin_wait(first: StdDuration, rejoins: u32) -> StdDuration {
    first.saturating_mul(1 << rejoins.min(16)).min(REJOIN_MAX.max(first))
}

/// A consumer of `config`'s group, subscribed to its topics.
fn join(
    client: &ClientConfig,
    config: &KafkaSourceConfig,
    checkpoints: Option<Arc<Store>>,
) -> Result<BaseConsumer<Context>> {
    let context =
        Context { start: config.start.clone(), shared: Mutex::default(), checkpoints, closing: AtomicBool::new(false) };
    let consumer: BaseConsumer<Context> =
        client.create_with_context(context).map_err(kafka_err("cannot create the consumer"))?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(kafka_err("cannot subscribe"))?;
    Ok(consumer)
}

fn kafka_err(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> Error + '_ {
    move |e| Error::Kafka(format!("{what}: {e}"))
}

impl KafkaSource {
    /// With `checkpoints`, each partition starts from (and with the state
    /// of) the newest checkpoint that holds it.
    pub fn open(config: &KafkaSourceConfig, max_bytes: usize, checkpoints: Option<Arc<Store>>) -> Result<Self> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5")
            // librdkafka's default (1 s) idles the consumer whenever its
            // prefetch queue fills up, which one large fetch does.
            .set("fetch.queue.backoff.ms", "10")
            // After a crash, the group gives a restarted host its partitions
            // once the dead member's session has expired: 6 s (the least
            // Kafka brokers accept by default) rather than librdkafka's 45.
            // Heartbeats come from librdkafka's own thread, so a busy
            // pipeline does not miss them.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "2000")
            .set("statistics.interval.ms", STATISTICS_INTERVAL);
        if config.stop_at_end {
            client.set("enable.partition.eof", "true");
        }
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let consumer = join(&client, config, checkpoints.clone())?;
        let session = client.get("session.timeout.ms").and_then(|v| v.parse::<u64>().ok()).unwrap_or(6_000);
        Ok(KafkaSource {
            consumer,
            client,
            checkpoints,
            rejoin_after: StdDuration::from_millis(session.saturating_mul(REJOIN_AFTER_SESSIONS)),
            let_go_since: None,
            rejoins: 0,
            config: config.clone(),
            slots: Vec::new(),
            partitions: Arc::from(Vec::new()),
            revoking: Vec::new(),
            notes: Default::default(),
            held: None,
            held_since: None,
            paused: false,
            max_bytes,
            unassigned_since: Some(Instant::now()),
            said_waiting: None,
            again: 0,
            pending: None,
            handing_over: None,
        })
    }

    fn slot_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.slots.iter().position(|s| s.partition == partition && &*s.topic == topic)
    }

    /// Turn what the rebalance callbacks recorded into notes.
    fn take_changes(&mut self) -> Result<()> {
        let changes = self.consumer.context().shared.lock().map(|mut s| std::mem::take(&mut s.changes));
        for change in changes.unwrap_or_default() {
            match change {
                Change::Failed(e) => return Err(Error::Kafka(e)),
                Change::Revoke { gone, deferred } => {
                    if deferred {
                        tracing::info!(partitions = ?gone, "partitions revoked: handing them over at a checkpoint");
                        self.handing_over = Some(HandingOver::Asked);
                    } else {
                        self.let_go_since.get_or_insert_with(Instant::now);
                    }
                    self.revoking.extend(gone);
                }
                Change::Assign(mut starts) => {
                    let mut assigned = Vec::new();
                    for ((topic, partition), start, end, restored) in &mut starts {
                        let (start, end) = (&*start, &*end);
                        let slot = match self.slot_of(topic, *partition) {
                            Some(i) => i,
                            None => {
                                if let Ok(mut shared) = self.consumer.context().shared.lock() {
                                    shared.positions.push(((topic.clone(), *partition), None));
                                }
                                self.slots.push(Slot {
                                    topic: topic.as_str().into(),
                                    partition: *partition,
                                    assigned: false,
                                    next: *start,
                                    end: *end,
                                    start: *start,
                                    ended: false,
                                    finished: false,
                                });
                                self.partitions = self.slots.iter().map(|s| (s.topic.clone(), s.partition)).collect();
                                self.slots.len() - 1
                            }
                        };
                        let s = &mut self.slots[slot];
                        if !s.assigned {
                            (s.assigned, s.next, s.end, s.ended, s.finished) = (true, *start, *end, false, false);
                            s.start = *start;
                            assigned.push(Assignment {
                                slot,
                                topic: s.topic.clone(),
                                partition: s.partition,
                                start: *start,
                                restored: restored.take(),
                            });
                            if let Ok(mut shared) = self.consumer.context().shared.lock()
                                && let Some(p) = shared.positions.get_mut(slot)
                            {
                                p.1 = Some(*start);
                            }
                        }
                    }
                    let kept = |tp: &TopicPartition| starts.iter().any(|(t, _, _, _)| t == tp);
                    let revoked: Vec<usize> = std::mem::take(&mut self.revoking)
                        .iter()
                        .filter(|tp| !kept(tp))
                        .filter_map(|(t, p)| self.slot_of(t, *p))
                        .collect();
                    if !revoked.is_empty() {
                        let mut shared = self.consumer.context().shared.lock();
                        for &slot in &revoked {
                            self.slots[slot].assigned = false;
                            if let Ok(shared) = shared.as_mut()
                                && let Some(p) = shared.positions.get_mut(slot)
                            {
                                p.1 = None;
                            }
                        }
                        tracing::info!(partitions = ?revoked, "partitions revoked");
                        self.notes.push_back(Polled::Revoked(revoked));
                    }
                    // librdkafka keeps a partition paused across unassign
                    // and assign (a hand-over pauses it); a long hold
                    // pauses again when it has to.
                    self.handing_over = None;
                    self.let_go_since = None;
                    self.rejoins = 0;
                    self.consumer.resume(&self.assignment()).map_err(kafka_err("cannot resume"))?;
                    self.paused = false;
                    if !assigned.is_empty() {
                        let slots: Vec<usize> = assigned.iter().map(|a| a.slot).collect();
                        tracing::info!(partitions = ?self.describe(&slots), "partitions assigned");
                        for a in &assigned {
                            if let Some(r) = &a.restored {
                                tracing::info!(
                                    partition = self.describe(&[a.slot]).join(""),
                                    keys = r.state.keys.len(),
                                    checkpoint = r.from,
                                    "state restored from a checkpoint"
                                );
                            }
                        }
                        self.notes.push_back(Polled::Assigned(assigned));
                    }
                }
            }
        }
        Ok(())
    }

    /// Bounded reading: librdkafka reports that partition number
    /// `partition` (of some topic) has been read up to the high watermark
    /// of the last fetch response. The end offset read at assignment also
    /// has to be reached: it is the exact end on Kafka, and tells apart
    /// the topics that share the partition number. (Tansu reports a short
    /// end offset from ListOffsets but the true high watermark in fetch
    /// responses, hence both.)
    fn reached_end(&mut self, partition: i32) {
        for s in &mut self.slots {
            if s.partition == partition && s.assigned && !s.finished && s.next >= s.end {
                s.ended = true;
            }
        }
    }

    /// Partitions read to their end whose records have all been handed
    /// out (none is held): from now on they hold no window back.
    fn take_finished(&mut self) -> Option<Polled> {
        if self.held.is_some() {
            return None;
        }
        let done: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                let s = &self.slots[i];
                s.assigned && s.ended && !s.finished
            })
            .collect();
        if done.is_empty() {
            return None;
        }
        for &i in &done {
            self.slots[i].finished = true;
        }
        tracing::debug!(partitions = ?self.describe(&done), "read to the end");
        Some(Polled::Finished(done))
    }

    fn describe(&self, slots: &[usize]) -> Vec<String> {
        slots
            .iter()
            .map(|&i| {
                let s = &self.slots[i];
                format!("{}[{}]@{}", s.topic, s.partition, s.next)
            })
            .collect()
    }

    /// Every assigned partition read to its end and handed out (bounded
    /// reading).
    fn at_end(&self) -> bool {
        self.config.stop_at_end
            && self.held.is_none()
            && self.revoking.is_empty()
            && self.slots.iter().any(|s| s.assigned)
            && self.slots.iter().filter(|s| s.assigned).all(|s| s.finished)
    }

    /// Poll one message into `chunk`.
    fn poll_into(&mut self, chunk: &mut Chunk, timeout: StdDuration) -> Result<Got> {
        let Some(polled) = self.consumer.poll(timeout) else {
            return Ok(Got::Nothing);
        };
        let message = match polled {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(partition)) => {
                self.reached_end(partition);
                return Ok(Got::End);
            }
            Err(e) => {
                // Broker and transport trouble: librdkafka retries on its
                // own; say so and go on.
                tracing::warn!(error = %e, "kafka consumer");
                return Ok(Got::Nothing);
            }
        };
        let slot = match self.slot_of(message.topic(), message.partition()) {
            Some(slot) => slot,
            // Assigned inside this poll: learn the slot, then keep the record.
            None => {
                let message = message.detach();
                self.take_changes()?;
                let Some(slot) = self.slot_of(message.topic(), message.partition()) else {
                    tracing::warn!(
                        topic = message.topic(),
                        partition = message.partition(),
                        "record of a partition not assigned here"
                    );
                    return Ok(Got::Nothing);
                };
                // Its assignment (and restored state) goes out first.
                if !self.notes.is_empty() {
                    self.pending = Some(message);
                    return Ok(Got::Nothing);
                }
                let kept = keep(&mut self.slots, self.consumer.context(), chunk, slot, &message, self.max_bytes);
                return Ok(again(kept, &mut self.again, &self.slots[slot], message.offset()));
            }
        };
        let kept = keep(&mut self.slots, self.consumer.context(), chunk, slot, &message, self.max_bytes);
        Ok(again(kept, &mut self.again, &self.slots[slot], message.offset()))
    }

    fn assignment(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for s in self.slots.iter().filter(|s| s.assigned) {
            tpl.add_partition(&s.topic, s.partition);
        }
        tpl
    }
}

/// Add a record to the chunk and move its partition's position.
/// [`Got::Record`] for a record kept; otherwise count it as sent again,
/// saying so the first time.
fn again(kept: bool, count: &mut u64, slot: &Slot, offset: i64) -> Got {
    if kept {
        return Got::Record;
    }
    *count += 1;
    if *count == 1 {
        tracing::info!(
            partition = format!("{}[{}]", slot.topic, slot.partition),
            offset,
            position = slot.next,
            "the broker sent records below the partition's position again; they are skipped (each record \
             counts once)"
        );
    }
    Got::Again
}

/// Add a record to the chunk and move its partition's position; `false`
/// (and nothing added) for a record below the position: one read already,
/// or before where the partition started. Brokers send those again: Tansu,
/// once a partition is read to its end, answers the next fetch as out of
/// range, and librdkafka resets to the broker's "latest", which Tansu puts
/// at the start of its newest batch, so that batch comes again.
fn keep(
    slots: &mut [Slot],
    context: &Context,
    chunk: &mut Chunk,
    slot: usize,
    message: &impl Message,
    limit: usize,
) -> bool {
    let offset = message.offset();
    if offset < slots[slot].next {
        return false;
    }
    // Most records carry no headers: then nothing is allocated.
    let headers: Vec<Header> = message.headers().map_or_else(Vec::new, |headers| {
        headers.iter().map(|h| Header { name: h.key.into(), value: h.value.map(Into::into) }).collect()
    });
    let metadata = Metadata { key: message.key(), timestamp: message.timestamp().to_millis(), headers: &headers };
    chunk.push(slot, offset, message.payload().unwrap_or_default(), metadata, limit);
    slots[slot].next = offset + 1;
    // More came after the end (the topic is still being written).
    slots[slot].ended = false;
    // Kept for the rebalance callback, which runs inside `poll`.
    if let Ok(mut shared) = context.shared.lock()
        && let Some(p) = shared.positions.get_mut(slot)
    {
        p.1 = Some(offset + 1);
    }
    true
}

impl KafkaSource {
    /// Whether this host reads no partition: none assigned yet, or the
    /// ones it had were let go and none came back.
    fn without_partitions(&self) -> bool {
        self.let_go_since.is_some() || !self.slots.iter().any(|s| s.assigned)
    }

    /// A consumer waiting for the group to give it partitions says so: after
    /// a crash, the group waits for the dead member's session to expire.
    fn note_waiting(&mut self) {
        if !self.without_partitions() {
            self.unassigned_since = None;
            return;
        }
        let since = *self.unassigned_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= WAITING_NOTICE && self.said_waiting.is_none_or(|t| t.elapsed() >= WAITING_REPEAT) {
            self.said_waiting = Some(Instant::now());
            tracing::info!(group = self.config.group, waited_s = since.elapsed().as_secs(), "{}", self.why_waiting());
        }
    }

    fn why_waiting(&self) -> String {
        let next = rejoin_wait(self.rejoin_after, self.rejoins).as_secs();
        if self.rejoins > 0 {
            format!(
                "rejoined the consumer group as a new member {} time(s) and still no assignment: the group's \
                 coordinator may be stuck on members that are gone (see the broker's log); rejoining again after \
                 {next} s",
                self.rejoins
            )
        } else if self.let_go_since.is_some() {
            format!(
                "partitions let go after a revocation; waiting for the consumer group to assign partitions again (a \
                 group that lost this member's session may not: this host rejoins as a new member after {next} s)"
            )
        } else {
            "waiting for the consumer group to assign partitions (a rebalance is under way; after a crash, the group \
             first waits for the old member's session to time out: session.timeout.ms)"
                .into()
        }
    }

    /// Rejoin the group as a new member when partitions were let go (or
    /// this host rejoined) and none were assigned for [`rejoin_wait`]:
    /// the revoked partitions are given up (their state is dropped; a
    /// checkpoint or the committed offsets have it), and the new member
    /// starts as a restarted host would.
    fn rejoin_if_stuck(&mut self) -> Result<()> {
        let Some(since) = self.let_go_since else { return Ok(()) };
        if since.elapsed() < rejoin_wait(self.rejoin_after, self.rejoins) {
            return Ok(());
        }
        tracing::info!(
            group = self.config.group,
            waited_s = since.elapsed().as_secs(),
            rejoined_before = self.rejoins,
            "no partitions assigned since the revoked ones were let go: rejoining the consumer group as a new member"
        );
        let revoked: Vec<usize> = std::mem::take(&mut self.revoking)
            .iter()
            .filter_map(|(t, p)| self.slot_of(t, *p))
            .filter(|&slot| self.slots[slot].assigned)
            .collect();
        for &slot in &revoked {
            self.slots[slot].assigned = false;
        }
        if !revoked.is_empty() {
            self.notes.push_back(Polled::Revoked(revoked));
        }
        // The old member closes without waiting for any hand-over.
        self.consumer.context().closing.store(true, Ordering::SeqCst);
        let fresh = join(&self.client, &self.config, self.checkpoints.clone())?;
        let positions = self.slots.iter().map(|s| ((s.topic.to_string(), s.partition), None)).collect();
        if let Ok(mut shared) = fresh.context().shared.lock() {
            shared.positions = positions;
        }
        self.consumer = fresh;
        (self.handing_over, self.pending, self.held, self.paused) = (None, None, None, false);
        // Waiting for the new member's assignment, which may not come
        // either: the wait starts again, longer.
        (self.let_go_since, self.rejoins) = (Some(Instant::now()), self.rejoins.saturating_add(1));
        self.unassigned_since = Some(Instant::now());
        Ok(())
    }
}

impl Source for KafkaSource {
    fn lag(&self) -> Vec<PartitionLag> {
        let ends = self.consumer.context().shared.lock().map(|s| s.ends.clone()).unwrap_or_default();
        self.slots
            .iter()
            .filter(|s| s.assigned)
            .map(|s| {
                let end = ends.get(&(s.topic.to_string(), s.partition)).copied();
                PartitionLag::new(&s.topic, s.partition, s.next, end)
            })
            .collect()
    }

    fn progress(&self) -> Option<(u64, u64)> {
        if !self.config.stop_at_end {
            return None;
        }
        let held = self.slots.iter().filter(|s| s.assigned);
        let (read, total) = held.fold((0, 0), |(r, t), s| {
            let total = (s.end - s.start).max(0) as u64;
            (r + ((s.next - s.start).max(0) as u64).min(total), t + total)
        });
        Some((read, total))
    }

    fn waiting(&self) -> Option<String> {
        let since = self.unassigned_since?;
        (self.without_partitions() && since.elapsed() >= WAITING_NOTICE)
            .then(|| format!("{} s: {}", since.elapsed().as_secs(), self.why_waiting()))
    }

    fn poll(&mut self) -> Result<Polled> {
        self.held_since = None;
        self.note_waiting();
        self.take_changes()?;
        self.rejoin_if_stuck()?;
        // Assignments come before the records of what they assign.
        if let Some(note) = self.notes.pop_front() {
            return Ok(note);
        }
        if let Some(polled) = self.hand_over()? {
            return Ok(polled);
        }
        if self.paused {
            self.consumer.resume(&self.assignment()).map_err(kafka_err("cannot resume"))?;
            self.paused = false;
        }
        // A partition's end comes after its records (it lets the
        // watermark pass them).
        if let Some(finished) = self.take_finished() {
            return Ok(finished);
        }
        if self.at_end() {
            return Ok(Polled::End);
        }
        let mut chunk = self.held_chunk();
        let step = self.config.step.max(1);
        let linger = self.config.linger.std();
        let mut started = (!chunk.is_empty()).then(Instant::now);
        let mut caught_up = false;
        while chunk.len() < step {
            let timeout = match started {
                None => POLL_IDLE,
                Some(t) => linger.saturating_sub(t.elapsed()),
            };
            match self.poll_into(&mut chunk, timeout)? {
                Got::Record => {}
                Got::Again => continue,
                Got::End | Got::Nothing => {
                    caught_up = true;
                    break;
                }
            }
            started.get_or_insert_with(Instant::now);
            // A rebalance happened inside the poll: deal with it first.
            if self.consumer.context().shared.lock().is_ok_and(|s| !s.changes.is_empty()) {
                break;
            }
        }
        if chunk.is_empty() {
            self.take_changes()?;
            let note = self.notes.pop_front().or_else(|| self.take_finished());
            return Ok(note.unwrap_or(Polled::Idle));
        }
        Ok(Polled::Chunk { chunk, caught_up })
    }

    fn hold(&mut self, wait: StdDuration) -> Result<()> {
        // A short hold only stops taking records: librdkafka's prefetch
        // queue is bounded (`queued.max.messages.kbytes`). A long one
        // pauses the partitions and keeps polling, which keeps the
        // consumer in its group (`max.poll.interval.ms`) and serves
        // rebalances. Not pausing at once matters on Tansu: after a resume
        // it is asked for an offset inside a batch, and it skips the rest
        // of that batch.
        let since = *self.held_since.get_or_insert_with(Instant::now);
        if !self.paused && since.elapsed() >= PAUSE_AFTER {
            tracing::info!(held_s = since.elapsed().as_secs(), "outputs are behind; pausing the partitions");
            self.consumer.pause(&self.assignment()).map_err(kafka_err("cannot pause"))?;
            self.paused = true;
        }
        // Records read after the hand-over's cut are not this host's to
        // keep.
        if matches!(self.handing_over, Some(HandingOver::Told | HandingOver::Released)) {
            return self.wait_out(wait);
        }
        // The held chunk keeps at most a step: steps are the same size
        // however often the source is held.
        let mut chunk = self.held_chunk();
        // At least one poll, even for a zero wait.
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if chunk.len() >= self.config.step.max(1) && !self.paused {
                std::thread::sleep(left);
                break;
            }
            self.poll_into(&mut chunk, left)?;
            if left.is_zero() {
                break;
            }
        }
        self.held = (!chunk.is_empty()).then_some(chunk);
        Ok(())
    }

    fn release(&mut self, checkpointed: bool) {
        if self.handing_over != Some(HandingOver::Told) {
            return;
        }
        if !checkpointed {
            tracing::warn!(
                "the hand-over checkpoint failed: the partitions' new owner starts from an older checkpoint, and \
                 feature rows since then may be written twice"
            );
        }
        if let Ok(mut shared) = self.consumer.context().shared.lock() {
            shared.deferred = false;
        }
        unassign(&self.consumer);
        self.handing_over = Some(HandingOver::Released);
        self.let_go_since = Some(Instant::now());
        tracing::info!(checkpointed, "revoked partitions let go");
    }

    fn commit(&mut self, offsets: &[(usize, i64)]) -> Result<()> {
        let tpl = self.offsets(offsets)?;
        if tpl.count() > 0 {
            tracing::debug!(offsets = ?self.describe_offsets(offsets), "committing");
            self.consumer.commit(&tpl, CommitMode::Async).map_err(kafka_err("commit failed"))?;
        }
        Ok(())
    }

    fn commit_last(&mut self, offsets: &[(usize, i64)]) -> Result<()> {
        let tpl = self.offsets(offsets)?;
        if tpl.count() == 0 {
            return Ok(());
        }
        // The consumer closes next: an asynchronous commit could be lost
        // with it, and the next run would read these records again.
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                tracing::info!(offsets = ?self.describe_offsets(offsets), "offsets committed");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "the last offset commit failed: the next run reads these records again");
                Err(Error::Kafka(format!("the last offset commit failed: {e}")))
            }
        }
    }
}

/// How long a poll waits while a hand-over is under way: the pipeline
/// is waiting for the checkpoint's acknowledgement meanwhile.
const HAND_OVER_POLL: StdDuration = StdDuration::from_millis(10);

impl KafkaSource {
    /// The records held back, and a record kept for after its assignment.
    fn held_chunk(&mut self) -> Chunk {
        let mut chunk = self.held.take().unwrap_or_else(|| Chunk::new(self.partitions.clone()));
        if let Some(m) = self.pending.take()
            && let Some(slot) = self.slot_of(m.topic(), m.partition())
        {
            keep(&mut self.slots, self.consumer.context(), &mut chunk, slot, &m, self.max_bytes);
        }
        chunk
    }

    /// What to hand out while partitions are being handed over.
    fn hand_over(&mut self) -> Result<Option<Polled>> {
        match self.handing_over {
            None => Ok(None),
            Some(HandingOver::Asked) => {
                // Records read before the revocation are in the checkpoint.
                let chunk = self.held_chunk();
                if !chunk.is_empty() {
                    return Ok(Some(Polled::Chunk { chunk, caught_up: true }));
                }
                self.handing_over = Some(HandingOver::Told);
                Ok(Some(Polled::HandOver))
            }
            Some(HandingOver::Told | HandingOver::Released) => {
                self.wait_out(HAND_OVER_POLL)?;
                Ok(Some(self.notes.pop_front().unwrap_or(Polled::Waiting)))
            }
        }
    }

    /// Keep polling (the rebalance goes on inside `poll`) without taking
    /// records: one that arrives is dropped without moving its partition's
    /// position, so whoever holds the partition next reads it.
    fn wait_out(&mut self, wait: StdDuration) -> Result<()> {
        match self.consumer.poll(wait) {
            Some(Ok(m)) => tracing::trace!(
                topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                "record after the hand-over's cut, left to the next owner"
            ),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer"),
        }
        self.take_changes()
    }

    /// Offsets of assigned slots, for a commit.
    fn offsets(&self, offsets: &[(usize, i64)]) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for &(slot, offset) in offsets {
            if let Some(s) = self.slots.get(slot).filter(|s| s.assigned) {
                tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(offset))
                    .map_err(kafka_err("bad offset"))?;
            }
        }
        Ok(tpl)
    }

    fn describe_offsets(&self, offsets: &[(usize, i64)]) -> Vec<String> {
        offsets
            .iter()
            .filter_map(|&(slot, offset)| {
                self.slots.get(slot).map(|s| format!("{}[{}]@{offset}", s.topic, s.partition))
            })
            .collect()
    }
}

impl Drop for KafkaSource {
    /// A source dropped in the middle of a hand-over lets its partitions
    /// go; closing the consumer then revokes without waiting.
    fn drop(&mut self) {
        let context = self.consumer.context();
        context.closing.store(true, Ordering::SeqCst);
        if context.shared.lock().is_ok_and(|s| s.deferred) {
            unassign(&self.consumer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rejoin_without_an_assignment_waits_twice_as_long_up_to_a_bound() {
        let first = StdDuration::from_secs(30);
        let waits: Vec<u64> = (0..7).map(|n| rejoin_wait(first, n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(rejoin_wait(first, u32::MAX), REJOIN_MAX);
        // A session longer than the bound is not cut short.
        let long = StdDuration::from_secs(900);
        assert_eq!(rejoin_wait(long, 3), long);
    }
}
