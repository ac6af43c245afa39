//! Which source offsets may be committed.
//!
//! A record's effects have all reached the sinks once (1) every worker has
//! written the outputs of the step that read it, and (2) no window state
//! holds it any more — the state's oldest time is past the record's event
//! time, so no later fire (close, late update) can include it. Event times
//! are out of order, so the test is on the *largest* event time of a
//! partition's records up to an offset: a running maximum, which only grows
//! along the offsets, so the committable prefix is found from the front.
//! Without state checkpoints this is at-least-once: after a restart the
//! records whose windows were still open are read again.

use std::collections::VecDeque;

/// Per partition slot: (step, next offset after the step, largest event
/// time up to it), one entry per step that read the partition.
#[derive(Debug, Default)]
pub struct Progress {
    slots: Vec<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    steps: VecDeque<(u64, i64, i64)>,
    /// Read in the step being decoded: next offset and the running maximum.
    next: Option<i64>,
    latest: i64,
    /// While the partition is held: the next offset after every record
    /// decoded so far (a checkpoint's position).
    position: Option<i64>,
}

/// What every worker reported: steps up to `seq` written, and the oldest
/// time any window state still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub seq: u64,
    pub oldest: i64,
}

impl Progress {
    fn slot(&mut self, slot: usize) -> &mut Slot {
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || Slot { latest: i64::MIN, ..Slot::default() });
        }
        &mut self.slots[slot]
    }

    /// A record was read; `time` is its event time, `None` when it went to
    /// the dead-letter output (which it reaches in the same step).
    pub fn read(&mut self, slot: usize, offset: i64, time: Option<i64>) {
        let s = self.slot(slot);
        s.next = Some(offset + 1);
        s.position = Some(offset + 1);
        if let Some(t) = time {
            s.latest = s.latest.max(t);
        }
    }

    /// The partition is read from `start`; `latest` is the largest event
    /// time of its records before (from a checkpoint).
    pub fn assign(&mut self, slot: usize, start: i64, latest: Option<i64>) {
        let s = self.slot(slot);
        s.position = Some(start);
        s.latest = latest.unwrap_or(i64::MIN);
    }

    /// Where each held partition is: (slot, next offset, largest event
    /// time so far).
    pub fn cut(&self) -> Vec<(usize, i64, Option<i64>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.position?, Some(s.latest).filter(|&t| t != i64::MIN))))
            .collect()
    }

    /// The step `seq` has been decoded.
    pub fn seal(&mut self, seq: u64) {
        for s in &mut self.slots {
            if let Some(next) = s.next.take() {
                s.steps.push_back((seq, next, s.latest));
            }
        }
    }

    /// The partition is gone: what it read is no longer ours to commit.
    pub fn revoke(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Slot { latest: i64::MIN, ..Slot::default() };
        }
    }

    /// The offsets that may be committed now, per slot (the next offset to
    /// read, as Kafka commits).
    pub fn committable(&mut self, written: Written) -> Vec<(usize, i64)> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let mut last = None;
            while let Some(&(seq, next, latest)) = s.steps.front() {
                if seq > written.seq || latest >= written.oldest {
                    break;
                }
                last = Some(next);
                s.steps.pop_front();
            }
            if let Some(next) = last {
                out.push((i, next));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_the_prefix_whose_events_left_the_state() {
        let mut p = Progress::default();
        // Step 1: offsets 0..3 of slot 0 at times 10, 30, 20; offset 0 of
        // slot 1 is a dead letter.
        p.read(0, 0, Some(10));
        p.read(0, 1, Some(30));
        p.read(1, 0, None);
        p.read(0, 2, Some(20));
        p.seal(1);
        // Step 2: slot 0 offset 3 at time 5 (out of order).
        p.read(0, 3, Some(5));
        p.seal(2);
        // Workers wrote step 1 only; the state still holds time 25.
        assert_eq!(p.committable(Written { seq: 1, oldest: 25 }), vec![(1, 1)]);
        // State moved past 30: step 1 of slot 0 goes; step 2's running
        // maximum is still 30 (the time-5 record follows a time-30 one).
        assert_eq!(p.committable(Written { seq: 1, oldest: 31 }), vec![(0, 3)]);
        assert_eq!(p.committable(Written { seq: 2, oldest: 30 }), vec![]);
        assert_eq!(p.committable(Written { seq: 2, oldest: i64::MAX }), vec![(0, 4)]);
        assert_eq!(p.committable(Written { seq: 2, oldest: i64::MAX }), vec![]);
    }

    #[test]
    fn a_revoked_partition_commits_nothing() {
        let mut p = Progress::default();
        p.read(0, 7, Some(1));
        p.seal(1);
        p.revoke(0);
        assert_eq!(p.committable(Written { seq: 1, oldest: i64::MAX }), vec![]);
    }
}
