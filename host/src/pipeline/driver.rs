//! The read loop's decisions, apart from its threads and channels: one
//! [`Driver::turn`] polls the source once and says what the workers get
//! (the shares of a chunk, a tick that moves the watermark or drops
//! revoked partitions, restored state), whether a barrier goes with it and
//! where the source was at that barrier; [`Driver::acknowledged`] turns
//! the outputs' acknowledgements into commits and lets a hand-over's
//! partitions go. The compute loop ([`super::compute`]) sends what it is
//! told to send; the unit tests below drive a scripted source.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Result;
use super::control::{Control, StopMode};
use super::outputs::{Ack, CutPartition, SourceCut};
use super::progress::{Progress, Written};
use super::reader::{self, Reader, Routed};
use crate::decode::Unavailable;
use crate::position::{PartitionId, Position};
use crate::source::{Assignment, Chunk, Polled, Source};
use crate::state::KeyState;
use crate::window::Snapshot;

/// What the workers get in one turn.
#[derive(Debug)]
pub(super) struct Turn {
    /// One share per worker.
    pub shares: Vec<Routed>,
    /// Where the source was at this turn's barrier, with checkpoints.
    pub cut: Option<SourceCut>,
    /// The run ends after it (a stop, or the end of a bounded input).
    pub last: bool,
}

pub(super) struct Driver<'a> {
    pub reader: Reader<'a>,
    progress: Progress,
    workers: usize,
    /// Checkpoints are taken: barriers carry the source's cut.
    checkpoints: bool,
    /// Each slot's partition, once assigned.
    partitions: Vec<Option<PartitionId>>,
    /// The last step read, and the last barrier's number.
    seq: u64,
    epoch: u64,
    /// Time between barriers, and when the next is due.
    every: Option<Duration>,
    barrier_due: Option<Instant>,
    /// The barrier a hand-over of revoked partitions waits for.
    handing_over: Option<u64>,
    /// A chunk the decoder could not prepare for yet.
    held: Option<Held>,
}

/// A chunk whose decoding waits for something outside the host (a schema
/// registry that did not answer): nothing after it is read, and nothing
/// of it counts as read, until it is decoded.
#[derive(Debug)]
struct Held {
    chunk: Chunk,
    caught_up: bool,
    attempt: Attempt,
}

/// Since when a held chunk waits, why, and when to try it again.
#[derive(Debug)]
struct Attempt {
    since: Instant,
    why: String,
    backoff: Duration,
    retry_at: Instant,
}

/// The first wait before a held chunk is tried again, doubling up to the
/// longest.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A held source is tended at least this often (a Kafka consumer keeps
/// polling, so it stays in its group).
const TEND_EVERY: Duration = Duration::from_millis(100);

impl<'a> Driver<'a> {
    /// Barriers go through every `every` (`None`: only the last);
    /// with `checkpoints`, each with the source's cut.
    pub fn new(reader: Reader<'a>, workers: usize, every: Option<Duration>, checkpoints: bool, now: Instant) -> Self {
        Driver {
            reader,
            progress: Progress::default(),
            workers,
            checkpoints,
            partitions: Vec::new(),
            seq: 0,
            epoch: 0,
            every,
            barrier_due: every.map(|d| now + d),
            handing_over: None,
            held: None,
        }
    }

    /// Why nothing is read, when a held chunk waits (see [`Held`]), for
    /// the status.
    pub fn waiting(&self, now: Instant) -> Option<String> {
        let held = &self.held.as_ref()?.attempt;
        let waited = now.saturating_duration_since(held.since).as_secs();
        Some(format!(
            "{waited} s: {}; trying again every {} s at most, reading nothing past the position until then",
            held.why,
            held.backoff.as_secs_f32().ceil()
        ))
    }

    /// The outputs committed a barrier: the source may commit what it
    /// allows, and a hand-over waiting for it lets its partitions go.
    pub fn acknowledged(&mut self, ack: Ack, source: &mut dyn Source) -> Result<()> {
        source.commit(&self.committable(ack))?;
        if self.handing_over.is_some_and(|e| ack.epoch >= e) {
            self.handing_over = None;
            source.release(ack.checkpointed);
        }
        Ok(())
    }

    /// The offsets a barrier's acknowledgement allows to commit: all that
    /// was read before it once its checkpoint is durable; without one,
    /// only what no window still holds.
    pub fn committable(&mut self, ack: Ack) -> Vec<(usize, i64)> {
        let written = match ack.checkpointed {
            true => Written { seq: ack.written.seq, oldest: i64::MAX },
            false => ack.written,
        };
        self.progress.committable(written)
    }

    /// Poll the source once (or, when a stop is asked, end the run): what
    /// the workers get, or `None` when there is nothing for them yet.
    pub fn turn(&mut self, source: &mut dyn Source, stop: Option<StopMode>, now: Instant) -> Result<Option<Turn>> {
        let seq = self.seq;
        let mut hand_over = false;
        let (mut shares, last) = match stop {
            Some(StopMode::Drain) => {
                tracing::info!("draining: firing every open window, then writing and committing");
                (self.reader.end(seq), Some(Control::End(0)))
            }
            Some(_) => {
                tracing::info!("stopping: no more records; writing and committing what was read");
                (self.reader.tick(seq, &[], true), Some(Control::Stop(0)))
            }
            None if self.held.is_some() => match self.retry(source, now)? {
                Some((chunk, caught_up)) => (self.read(chunk, caught_up), None),
                None => return Ok(None),
            },
            None => match source.poll()? {
                Polled::Chunk { chunk, caught_up } => match self.prepared(chunk, caught_up, None, now) {
                    Some((chunk, caught_up)) => (self.read(chunk, caught_up), None),
                    None => return Ok(None),
                },
                Polled::Assigned(mut assigned) => {
                    self.assigned(&assigned, now);
                    if assigned.iter().all(|a| a.restored.is_none()) {
                        return Ok(None);
                    }
                    // Restored state goes in before the partitions' first
                    // records.
                    let mut shares = self.reader.tick(seq, &[], false);
                    for (share, restore) in shares.iter_mut().zip(restores(&mut assigned, self.workers)) {
                        share.restore = restore;
                    }
                    (shares, None)
                }
                Polled::Revoked(slots) => {
                    for &s in &slots {
                        self.reader.watermarks.revoke(s);
                        self.progress.revoke(s);
                    }
                    (self.reader.tick(seq, &slots, true), None)
                }
                Polled::Finished(slots) => {
                    slots.iter().for_each(|&s| self.reader.watermarks.finish(s));
                    (self.reader.tick(seq, &[], true), None)
                }
                Polled::Idle => (self.reader.tick(seq, &[], true), None),
                // Everything read of the revoked partitions is in this
                // barrier's checkpoint; windows are not flushed (the
                // partitions' new owner fires them).
                Polled::HandOver => {
                    hand_over = true;
                    (self.reader.tick(seq, &[], false), None)
                }
                Polled::Waiting => return Ok(None),
                // The end of a bounded input: the final watermark fires
                // every remaining window.
                Polled::End => (self.reader.end(seq), Some(Control::End(0))),
            },
        };
        let control = match last {
            Some(last) => Some(last),
            None if hand_over || self.barrier_due.is_some_and(|due| now >= due) => Some(Control::Barrier(0)),
            None => None,
        };
        let mut cut = None;
        if let Some(control) = control {
            self.epoch += 1;
            let epoch = self.epoch;
            self.barrier_due = self.every.map(|d| now + d);
            if hand_over {
                self.handing_over = Some(epoch);
            }
            shares.iter_mut().for_each(|s| s.control = Some(control.numbered(epoch)));
            if self.checkpoints {
                cut = Some(SourceCut { epoch, partitions: self.cut(source) });
            }
        }
        Ok(Some(Turn { shares, cut, last: last.is_some() }))
    }

    /// The workers' shares of a prepared chunk, the next in sequence.
    fn read(&mut self, chunk: Chunk, caught_up: bool) -> Vec<Routed> {
        self.seq += 1;
        self.reader.read(Arc::new(chunk), self.seq, caught_up, &mut self.progress)
    }

    /// The chunk, once the decoder is ready for it; otherwise it is held
    /// (after `before`, an earlier attempt) and `None`.
    fn prepared(
        &mut self,
        chunk: Chunk,
        caught_up: bool,
        before: Option<Attempt>,
        now: Instant,
    ) -> Option<(Chunk, bool)> {
        match self.reader.prepare(&chunk) {
            Ok(()) => {
                if let Some(before) = before {
                    let waited_s = now.saturating_duration_since(before.since).as_secs();
                    tracing::info!(waited_s, "what decoding waited for answered; reading on");
                }
                Some((chunk, caught_up))
            }
            Err(Unavailable(why)) => {
                let (since, backoff) = match &before {
                    Some(b) => (b.since, (b.backoff * 2).min(MAX_BACKOFF)),
                    None => (now, FIRST_BACKOFF),
                };
                if before.is_none() || backoff < MAX_BACKOFF {
                    tracing::warn!(retry_ms = backoff.as_millis() as u64, "cannot decode the next records yet: {why}");
                }
                let attempt = Attempt { since, why, backoff, retry_at: now + backoff };
                self.held = Some(Held { chunk, caught_up, attempt });
                None
            }
        }
    }

    /// Tend the source while a chunk is held, and try the chunk again when
    /// its back-off is over.
    fn retry(&mut self, source: &mut dyn Source, now: Instant) -> Result<Option<(Chunk, bool)>> {
        let Some(held) = self.held.take() else { return Ok(None) };
        if now < held.attempt.retry_at {
            let wait = (held.attempt.retry_at - now).min(TEND_EVERY);
            self.held = Some(held);
            let holding = Instant::now();
            source.hold(wait)?;
            // Time spent waiting does not make a partition idle.
            self.reader.watermarks.hold(holding.elapsed());
            return Ok(None);
        }
        let Held { chunk, caught_up, attempt } = held;
        Ok(self.prepared(chunk, caught_up, Some(attempt), now))
    }

    /// Partitions now read: their watermarks, positions and ids.
    fn assigned(&mut self, assigned: &[Assignment], now: Instant) {
        for a in assigned {
            self.reader.watermarks.assign(a.slot, now);
            let latest = a.restored.as_ref().and_then(|r| r.state.position.max_event_time);
            if let Some(t) = latest {
                self.reader.watermarks.observe(a.slot, t, now);
            }
            self.progress.assign(a.slot, a.start, latest);
            if self.partitions.len() <= a.slot {
                self.partitions.resize(a.slot + 1, None);
            }
            self.partitions[a.slot] = Some(a.partition.clone());
        }
    }

    /// Where each held partition is: everything read has been handed out.
    fn cut(&self, source: &dyn Source) -> Vec<CutPartition> {
        self.progress
            .cut()
            .into_iter()
            .filter_map(|(slot, offset, max_event_time)| {
                let id = self.partitions.get(slot)?.clone()?;
                let byte_offset = source.byte_offset(slot);
                Some(CutPartition { slot, position: Position { id, offset, byte_offset, max_event_time } })
            })
            .collect()
    }
}

/// Per worker, the keys of restored partitions it owns (taken out of
/// `assigned`).
fn restores(assigned: &mut [Assignment], workers: usize) -> Vec<Option<Snapshot>> {
    let mut out: Vec<Option<Snapshot>> = (0..workers).map(|_| None).collect();
    for a in assigned {
        let Some(r) = a.restored.take() else { continue };
        for bytes in r.state.keys {
            // A key that does not decode fails the restore on any worker.
            let worker = KeyState::peek_key(&bytes).map_or(0, |key| reader::owner(key, workers));
            let s = out[worker].get_or_insert_with(|| Snapshot {
                watermark: r.watermark,
                last_sweep: r.last_sweep,
                ..Snapshot::default()
            });
            // Restored from several checkpoints: the least advanced.
            (s.watermark, s.last_sweep) = (s.watermark.min(r.watermark), s.last_sweep.min(r.last_sweep));
            s.partitions.entry(a.slot as u32).or_default().push(bytes);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::checkpoint::{PartitionState, Restored};
    use crate::decode::{DecodeError, Decoder, Event};
    use crate::metrics::Metrics;
    use crate::source::{Chunk, Metadata, Record};
    use crate::time::Watermarks;

    /// Every record is an event of key `k` at its offset, in seconds.
    struct ByOffset;

    impl Decoder for ByOffset {
        fn decode<'a>(&self, record: &Record<'a>, _now_ms: i64) -> Result<Event<'a>, DecodeError> {
            Ok(Event { key: "k".into(), time: record.offset * 1_000, values: Vec::new() })
        }
    }

    /// [`ByOffset`], once it has failed to prepare `failures` times (a
    /// registry that does not answer).
    struct Unready {
        failures: usize,
    }

    impl Decoder for Unready {
        fn prepare(&mut self, _chunk: &Chunk) -> Result<(), Unavailable> {
            if self.failures == 0 {
                return Ok(());
            }
            self.failures -= 1;
            Err(Unavailable("the registry did not answer".into()))
        }
        fn decode<'a>(&self, record: &Record<'a>, now_ms: i64) -> Result<Event<'a>, DecodeError> {
            ByOffset.decode(record, now_ms)
        }
    }

    /// A source that hands out what the test scripted, and notes what the
    /// driver asked of it.
    #[derive(Default)]
    struct Scripted {
        polls: VecDeque<Polled>,
        commits: Vec<Vec<(usize, i64)>>,
        released: Vec<bool>,
        holds: Vec<Duration>,
    }

    impl Source for Scripted {
        fn poll(&mut self) -> crate::source::Result<Polled> {
            Ok(self.polls.pop_front().unwrap_or(Polled::Idle))
        }
        fn hold(&mut self, wait: Duration) -> crate::source::Result<()> {
            self.holds.push(wait);
            Ok(())
        }
        fn commit(&mut self, offsets: &[(usize, i64)]) -> crate::source::Result<()> {
            self.commits.push(offsets.to_vec());
            Ok(())
        }
        fn release(&mut self, checkpointed: bool) {
            self.released.push(checkpointed);
        }
    }

    fn partitions() -> crate::source::Partitions {
        Arc::from(vec![(Arc::<str>::from("t"), 3), (Arc::<str>::from("t"), 4)])
    }

    /// Records of `slot` at `offsets`.
    fn chunk(slot: usize, offsets: std::ops::Range<i64>) -> Polled {
        let mut chunk = Chunk::new(partitions());
        for offset in offsets {
            chunk.push(slot, offset, b"{}", Metadata::default(), 1 << 20);
        }
        Polled::Chunk { chunk, caught_up: true }
    }

    fn assigned(slot: usize, start: i64, keys: &[&str]) -> Assignment {
        let restored = (!keys.is_empty()).then(|| Restored {
            state: PartitionState {
                position: Position {
                    id: PartitionId::new("t", 3 + slot as i32),
                    offset: start,
                    byte_offset: None,
                    max_event_time: Some(start * 1_000),
                },
                keys: keys.iter().map(|k| crate::checkpoint::tests::key_state(k)).collect(),
            },
            watermark: 5,
            last_sweep: 4,
            from: "c".into(),
        });
        Assignment { slot, partition: PartitionId::new("t", 3 + slot as i32), start, restored }
    }

    fn driver(metrics: &Metrics, every: Option<Duration>, now: Instant) -> Driver<'_> {
        let reader = Reader::new(Box::new(ByOffset), 1 << 20, Watermarks::new(0, None), 2, metrics);
        Driver::new(reader, 2, every, true, now)
    }

    fn control(turn: &Turn) -> Option<Control> {
        turn.shares.first().and_then(|s| s.control)
    }

    /// A barrier goes with the first turn at or after each interval, on
    /// every share, numbered in order, with where each partition was: the
    /// next offset after all it handed out, and its latest event time.
    #[test]
    fn barriers_go_every_interval_with_the_source_s_cut() -> anyhow::Result<()> {
        let (metrics, t0, s) = (Metrics::default(), Instant::now(), Duration::from_secs);
        let mut d = driver(&metrics, Some(s(10)), t0);
        let mut source = Scripted::default();
        source.polls.extend([
            Polled::Assigned(vec![assigned(0, 100, &[]), assigned(1, 7, &[])]),
            chunk(0, 100..103),
            chunk(1, 7..9),
            chunk(0, 103..104),
        ]);
        // A partition given without state: nothing for the workers.
        assert!(d.turn(&mut source, None, t0)?.is_none());
        let first = d.turn(&mut source, None, t0 + s(1))?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert_eq!((control(&first), first.cut.is_none(), first.last), (None, true, false));
        assert_eq!(first.shares.iter().map(|s| s.events.len()).sum::<usize>(), 3);
        let due = d.turn(&mut source, None, t0 + s(10))?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert!(due.shares.iter().all(|s| s.control == Some(Control::Barrier(1))));
        let cut = due.cut.ok_or_else(|| anyhow::anyhow!("no cut"))?;
        let at: Vec<(usize, i32, i64, Option<i64>)> = cut
            .partitions
            .iter()
            .map(|p| (p.slot, p.position.id.partition, p.position.offset, p.position.max_event_time))
            .collect();
        assert_eq!((cut.epoch, at), (1, vec![(0, 3, 103, Some(102_000)), (1, 4, 9, Some(8_000))]));
        // The next is due ten seconds after that one.
        let before = d.turn(&mut source, None, t0 + s(19))?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert_eq!(control(&before), None);
        let next = d.turn(&mut source, None, t0 + s(20))?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert_eq!(control(&next), Some(Control::Barrier(2)));
        Ok(())
    }

    /// A hand-over gets a barrier at once; only the acknowledgement of that
    /// barrier (or a later one) lets the partitions go, once, saying
    /// whether it was checkpointed; every acknowledgement commits.
    #[test]
    fn a_hand_over_is_released_by_its_own_barrier_s_acknowledgement() -> anyhow::Result<()> {
        let (metrics, t0) = (Metrics::default(), Instant::now());
        let mut d = driver(&metrics, Some(Duration::from_secs(3_600)), t0);
        let mut source = Scripted::default();
        source.polls.extend([Polled::Assigned(vec![assigned(0, 0, &[])]), chunk(0, 0..4), Polled::HandOver]);
        d.turn(&mut source, None, t0)?;
        d.turn(&mut source, None, t0)?;
        let over = d.turn(&mut source, None, t0)?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert_eq!(control(&over), Some(Control::Barrier(1)));
        assert!(over.shares.iter().all(|s| !s.flush), "the new owner fires the windows");
        // An acknowledgement of an earlier barrier does not release it.
        let ack = |epoch, seq, checkpointed| Ack { epoch, written: Written { seq, oldest: i64::MIN }, checkpointed };
        d.acknowledged(ack(0, 0, false), &mut source)?;
        assert!(source.released.is_empty());
        d.acknowledged(ack(1, 1, true), &mut source)?;
        d.acknowledged(ack(2, 1, true), &mut source)?;
        assert_eq!(source.released, [true]);
        // Checkpointed: everything read before the barrier is committed,
        // whatever the windows hold.
        assert_eq!(source.commits, [vec![], vec![(0, 4)], vec![]]);
        Ok(())
    }

    /// A chunk the decoder cannot prepare for (its registry does not
    /// answer) is held: no share, nothing of it counted as read, nothing
    /// polled after it, the source tended meanwhile and the status saying
    /// why; it is tried again after a doubling back-off and handed out whole
    /// once the decoder is ready.
    #[test]
    fn a_chunk_the_decoder_cannot_prepare_for_is_held_and_tried_again() -> anyhow::Result<()> {
        let (metrics, t0, ms) = (Metrics::default(), Instant::now(), Duration::from_millis);
        let reader = Reader::new(Box::new(Unready { failures: 2 }), 1 << 20, Watermarks::new(0, None), 2, &metrics);
        let mut d = Driver::new(reader, 2, Some(ms(1_000)), true, t0);
        let mut source = Scripted::default();
        source.polls.extend([Polled::Assigned(vec![assigned(0, 0, &[])]), chunk(0, 0..3), chunk(0, 3..5)]);
        assert!(d.turn(&mut source, None, t0)?.is_none());
        assert!(d.turn(&mut source, None, t0)?.is_none(), "the first attempt fails");
        assert_eq!(Metrics::get(&metrics.decode_waits), 1);
        assert!(d.waiting(t0).is_some_and(|w| w.contains("the registry did not answer")), "{:?}", d.waiting(t0));
        let at =
            |d: &Driver<'_>, source: &Scripted| d.cut(source).iter().map(|p| p.position.offset).collect::<Vec<_>>();
        assert_eq!(at(&d, &source), [0], "nothing of the held chunk counts as read");
        // Before its back-off (200 ms) is over, the source is tended, not
        // polled.
        assert!(d.turn(&mut source, None, t0 + ms(100))?.is_none());
        assert_eq!((source.holds.len(), source.polls.len()), (1, 1));
        // The second attempt fails too: the next waits 400 ms.
        assert!(d.turn(&mut source, None, t0 + ms(200))?.is_none());
        assert_eq!(Metrics::get(&metrics.decode_waits), 2);
        assert!(d.turn(&mut source, None, t0 + ms(599))?.is_none());
        let ready = d.turn(&mut source, None, t0 + ms(600))?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert_eq!(ready.shares.iter().map(|s| s.events.len()).sum::<usize>(), 3);
        assert_eq!((d.waiting(t0 + ms(600)), source.polls.len()), (None, 1));
        let next = d.turn(&mut source, None, t0 + ms(1_000))?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        let cut = next.cut.map(|c| c.partitions.iter().map(|p| p.position.offset).collect::<Vec<_>>());
        assert_eq!(cut, Some(vec![5]));
        Ok(())
    }

    /// Restored state goes to the workers before the partition's records,
    /// each key to the worker that owns it; a stop ends the run with a last
    /// barrier (drain: with the final watermark).
    #[test]
    fn restored_state_goes_ahead_to_the_owning_workers_and_a_stop_ends_the_run() -> anyhow::Result<()> {
        let (metrics, t0) = (Metrics::default(), Instant::now());
        let mut d = driver(&metrics, None, t0);
        let mut source = Scripted::default();
        let keys = ["a", "b", "c", "d", "e"];
        source.polls.push_back(Polled::Assigned(vec![assigned(1, 40, &keys)]));
        let restore = d.turn(&mut source, None, t0)?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert_eq!(control(&restore), None);
        for (worker, share) in restore.shares.iter().enumerate() {
            let want: Vec<&str> = keys.iter().copied().filter(|k| reader::owner(k, 2) == worker).collect();
            let got: Vec<String> = share
                .restore
                .iter()
                .flat_map(|s| s.partitions.get(&1).into_iter().flatten())
                .filter_map(|bytes| KeyState::peek_key(bytes).ok().map(str::to_string))
                .collect();
            assert_eq!(got, want, "worker {worker}");
            assert!(share.restore.as_ref().is_none_or(|s| (s.watermark, s.last_sweep) == (5, 4)));
        }
        let stop = d.turn(&mut source, Some(StopMode::Checkpoint), t0)?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert_eq!((control(&stop), stop.last), (Some(Control::Stop(1)), true));
        let cut = stop.cut.map(|c| c.partitions.iter().map(|p| (p.slot, p.position.offset)).collect::<Vec<_>>());
        assert_eq!(cut, Some(vec![(1, 40)]));
        let drain = d.turn(&mut source, Some(StopMode::Drain), t0)?.ok_or_else(|| anyhow::anyhow!("no turn"))?;
        assert_eq!(control(&drain), Some(Control::End(2)));
        assert!(drain.shares.iter().all(|s| s.watermark == i64::MAX));
        Ok(())
    }
}
