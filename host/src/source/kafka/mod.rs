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
//! The assignment callback only notes the partitions; the source assigns
//! them with explicit offsets after the poll that ran the callback
//! (librdkafka's group waits for that call), so the broker requests and
//! the checkpoint reads that choose the offsets and restore the state run
//! outside librdkafka's callback. Explicit offsets need the eager
//! rebalance protocol (librdkafka's default `range,roundrobin`).
//!
//! With checkpoints, revoked partitions are handed over rather than
//! dropped: the revocation callback pauses them and returns without
//! letting them go (the group waits, up to `max.poll.interval.ms`), the
//! pipeline takes a checkpoint of all that was read, and only once it is
//! acknowledged does the source unassign. The partitions' new owner then
//! restores exactly the state and position at which this host's outputs
//! stop (Kafka Streams commits its tasks on revocation for the same
//! reason).

mod callbacks;
mod config;
mod hand_over;
mod starts;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{Assignment, Chunk, Error, Header, Metadata, Partitions, Polled, Result, Source};
use crate::checkpoint::Store;
use crate::metrics::PartitionLag;
use crate::position::PartitionId;
use callbacks::{Change, Context, STATISTICS_INTERVAL, unassign};
pub use config::{KafkaSourceConfig, StartConfig, managed_property};
use hand_over::HandOver;
use starts::Start;

/// Longest a poll waits when nothing arrives; idle partitions are looked
/// at this often.
const POLL_IDLE: StdDuration = StdDuration::from_millis(100);
/// How long the source is held back before its partitions are paused
/// (well within librdkafka's default `max.poll.interval.ms`, 5 min).
const PAUSE_AFTER: StdDuration = StdDuration::from_secs(60);
/// Timeout of the broker requests made at assignment.
const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// What one poll of the consumer gave.
#[derive(Debug, PartialEq, Eq)]
enum Fetched {
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
    /// Where a hand-over of revoked partitions is, and what follows it.
    hand_over: HandOver,
    config: KafkaSourceConfig,
    slots: Vec<Slot>,
    partitions: Partitions,
    /// Revocations waiting for the assignment that follows them (eager
    /// rebalances revoke everything, then assign what stays).
    revoking: Vec<PartitionId>,
    notes: std::collections::VecDeque<Polled>,
    /// Records that arrived while the source was held.
    held: Option<Chunk>,
    /// Since when the pipeline has been holding the source back.
    held_since: Option<Instant>,
    paused: bool,
    /// Longest record value decoded (longer ones are dead letters).
    max_bytes: usize,
    /// Records dropped as sent again (see [`keep`]).
    again: u64,
    /// A record of a partition assigned inside a poll, kept for after the
    /// assignment.
    pending: Option<rdkafka::message::OwnedMessage>,
}

/// A consumer of `config`'s group, subscribed to its topics.
fn join(client: &ClientConfig, config: &KafkaSourceConfig, hands_over: bool) -> Result<BaseConsumer<Context>> {
    let context = Context { shared: Mutex::default(), hands_over, closing: AtomicBool::new(false) };
    let consumer: BaseConsumer<Context> =
        client.create_with_context(context).map_err(kafka_err("cannot create the consumer"))?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(kafka_err("cannot subscribe"))?;
    Ok(consumer)
}

fn kafka_err(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> Error + '_ {
    move |source| Error::Kafka { what: what.to_string(), source: Box::new(source) }
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
        let consumer = join(&client, config, checkpoints.is_some())?;
        let session = client.get("session.timeout.ms").and_then(|v| v.parse::<u64>().ok()).unwrap_or(6_000);
        Ok(KafkaSource {
            consumer,
            client,
            checkpoints,
            hand_over: HandOver::new(StdDuration::from_millis(session), Instant::now()),
            config: config.clone(),
            slots: Vec::new(),
            partitions: Arc::from(Vec::new()),
            revoking: Vec::new(),
            notes: Default::default(),
            held: None,
            held_since: None,
            paused: false,
            max_bytes,
            again: 0,
            pending: None,
        })
    }

    fn slot_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.slots.iter().position(|s| s.partition == partition && &*s.topic == topic)
    }

    /// Assign the partitions the group gave this host (the callback noted
    /// them inside a poll): each from its start, with its state. Called
    /// after a poll that handed out no record, and before the changes are
    /// taken; a failure is a change too, reported where it is taken.
    fn assign_given(&mut self) {
        let context = self.consumer.context();
        if !context.shared.lock().is_ok_and(|s| s.changes.iter().any(|c| matches!(c, Change::Assign(_)))) {
            return;
        }
        let noted = context.shared.lock().map(|mut s| std::mem::take(&mut s.changes)).unwrap_or_default();
        let mut resolved = Vec::with_capacity(noted.len());
        for change in noted {
            resolved.push(match change {
                Change::Assign(given) => match self.starts(&given) {
                    Ok(starts) => Change::Assigned(starts),
                    Err(e) => Change::Failed(e),
                },
                other => other,
            });
        }
        // No poll ran meanwhile, so no callback noted anything after them.
        if let Ok(mut shared) = self.consumer.context().shared.lock() {
            resolved.append(&mut shared.changes);
            shared.changes = resolved;
        }
    }

    /// Turn what the rebalance callbacks recorded into notes.
    fn take_changes(&mut self) -> Result<()> {
        self.assign_given();
        let changes = self.consumer.context().shared.lock().map(|mut s| std::mem::take(&mut s.changes));
        let mut changes = changes.unwrap_or_default().into_iter();
        while let Some(change) = changes.next() {
            match change {
                Change::Failed(e) => return Err(e),
                Change::Revoke { gone, deferred } => {
                    if deferred {
                        tracing::info!(partitions = ?gone, "partitions revoked: handing them over at a checkpoint");
                    }
                    self.hand_over.revoked(deferred, Instant::now());
                    self.revoking.extend(gone);
                }
                // Assigned by `assign_given` above; one noted since is
                // left, with what follows it, for the next call.
                Change::Assign(given) => {
                    if let Ok(mut shared) = self.consumer.context().shared.lock() {
                        let mut later: Vec<Change> = std::iter::once(Change::Assign(given)).chain(changes).collect();
                        later.append(&mut shared.changes);
                        shared.changes = later;
                    }
                    break;
                }
                Change::Assigned(mut starts) => {
                    let mut assigned = Vec::new();
                    for Start { partition: id, offset: start, end, restored } in &mut starts {
                        let (start, end) = (&*start, &*end);
                        let slot = match self.slot_of(&id.topic, id.partition) {
                            Some(i) => i,
                            None => {
                                self.slots.push(Slot {
                                    topic: id.topic.as_str().into(),
                                    partition: id.partition,
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
                                partition: id.clone(),
                                start: *start,
                                restored: restored.take(),
                            });
                        }
                    }
                    let kept = |id: &PartitionId| starts.iter().any(|s| &s.partition == id);
                    let revoked: Vec<usize> = std::mem::take(&mut self.revoking)
                        .iter()
                        .filter(|tp| !kept(tp))
                        .filter_map(|id| self.slot_of(&id.topic, id.partition))
                        .collect();
                    if !revoked.is_empty() {
                        for &slot in &revoked {
                            self.slots[slot].assigned = false;
                        }
                        tracing::info!(partitions = ?revoked, "partitions revoked");
                        self.notes.push_back(Polled::Revoked(revoked));
                    }
                    if starts.is_empty() {
                        // An empty assignment ends the wait after a
                        // hand-over (the group answered) and leaves no
                        // other trace. It comes from a group with more
                        // members than partitions, or from one that gave
                        // them to a member that is gone.
                        tracing::info!(
                            group = self.config.group,
                            "the consumer group assigned this host no partitions"
                        );
                    }
                    // librdkafka keeps a partition paused across unassign
                    // and assign (a hand-over pauses it); a long hold
                    // pauses again when it has to.
                    self.hand_over.assigned();
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
    fn poll_into(&mut self, chunk: &mut Chunk, timeout: StdDuration) -> Result<Fetched> {
        let Some(polled) = self.consumer.poll(timeout) else {
            // The group may have given partitions inside the poll (one
            // that hands out a record is followed by more polls).
            self.assign_given();
            return Ok(Fetched::Nothing);
        };
        let message = match polled {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(partition)) => {
                self.reached_end(partition);
                return Ok(Fetched::End);
            }
            Err(e) => {
                // Broker and transport trouble: librdkafka retries on its
                // own; say so and go on.
                tracing::warn!(error = %e, "kafka consumer");
                return Ok(Fetched::Nothing);
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
                    return Ok(Fetched::Nothing);
                };
                // Its assignment (and restored state) goes out first.
                if !self.notes.is_empty() {
                    self.pending = Some(message);
                    return Ok(Fetched::Nothing);
                }
                let kept = keep(&mut self.slots, chunk, slot, &message, self.max_bytes);
                return Ok(again(kept, &mut self.again, &self.slots[slot], message.offset()));
            }
        };
        let kept = keep(&mut self.slots, chunk, slot, &message, self.max_bytes);
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
/// [`Fetched::Record`] for a record kept; otherwise count it as sent again,
/// saying so the first time.
fn again(kept: bool, count: &mut u64, slot: &Slot, offset: i64) -> Fetched {
    if kept {
        return Fetched::Record;
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
    Fetched::Again
}

/// Add a record to the chunk and move its partition's position; `false`
/// (and nothing added) for a record below the position: one read already,
/// or before where the partition started. Brokers send those again: Tansu,
/// once a partition is read to its end, answers the next fetch as out of
/// range, and librdkafka resets to the broker's "latest", which Tansu puts
/// at the start of its newest batch, so that batch comes again.
fn keep(slots: &mut [Slot], chunk: &mut Chunk, slot: usize, message: &impl Message, limit: usize) -> bool {
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
    true
}

impl KafkaSource {
    /// Whether this host holds any partition.
    fn holds(&self) -> bool {
        self.slots.iter().any(|s| s.assigned)
    }

    /// A consumer waiting for the group to give it partitions says so: after
    /// a crash, the group waits for the dead member's session to expire.
    fn note_waiting(&mut self) {
        if let Some((waited, why)) = self.hand_over.note_waiting(self.holds(), Instant::now()) {
            tracing::info!(group = self.config.group, waited_s = waited.as_secs(), "{why}");
        }
    }

    /// Rejoin the group as a new member when partitions were let go (or
    /// this host rejoined) and none were assigned for long enough (see
    /// [`HandOver::rejoin_due`]):
    /// the revoked partitions are given up (their state is dropped; a
    /// checkpoint or the committed offsets have it), and the new member
    /// starts as a restarted host would.
    fn rejoin_if_stuck(&mut self) -> Result<()> {
        let Some(waited) = self.hand_over.rejoin_due(Instant::now()) else { return Ok(()) };
        tracing::info!(
            group = self.config.group,
            waited_s = waited.as_secs(),
            rejoined_before = self.hand_over.rejoins(),
            "no partitions assigned since the revoked ones were let go: rejoining the consumer group as a new member"
        );
        let revoked: Vec<usize> = std::mem::take(&mut self.revoking)
            .iter()
            .filter_map(|id| self.slot_of(&id.topic, id.partition))
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
        self.consumer = join(&self.client, &self.config, self.checkpoints.is_some())?;
        (self.pending, self.held, self.paused) = (None, None, false);
        // Waiting for the new member's assignment, which may not come
        // either: the wait starts again, longer.
        self.hand_over.rejoined(Instant::now());
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
                let end = ends.get(&PartitionId::new(s.topic.as_ref(), s.partition)).copied();
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
        self.hand_over.waiting(self.holds(), Instant::now())
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
                Fetched::Record => {}
                Fetched::Again => continue,
                Fetched::End | Fetched::Nothing => {
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
        if self.hand_over.past_the_cut() {
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
        if !self.hand_over.release(Instant::now()) {
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
                Err(Error::Kafka { what: "the last offset commit failed".into(), source: Box::new(e) })
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
            keep(&mut self.slots, &mut chunk, slot, &m, self.max_bytes);
        }
        chunk
    }

    /// What to hand out while partitions are being handed over.
    fn hand_over(&mut self) -> Result<Option<Polled>> {
        match self.hand_over.step() {
            None => Ok(None),
            Some(hand_over::Step::Asked) => {
                // Records read before the revocation are in the checkpoint.
                let chunk = self.held_chunk();
                if !chunk.is_empty() {
                    return Ok(Some(Polled::Chunk { chunk, caught_up: true }));
                }
                self.hand_over.tell();
                Ok(Some(Polled::HandOver))
            }
            Some(hand_over::Step::Told | hand_over::Step::Released) => {
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
