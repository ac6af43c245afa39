//! Barrier alignment: once a worker's barrier is in, what that worker
//! sends after it waits until every worker's barrier is in, so the sinks
//! commit at a barrier exactly the outputs of the records before it.

use std::collections::VecDeque;

use super::OutputMessage;
use crate::pipeline::control::Control;
use crate::pipeline::progress::Written;

/// Per worker, the barrier it has sent and what it sent after it.
pub(super) struct Align {
    arrived: Vec<Option<(Control, Written)>>,
    held: Vec<VecDeque<OutputMessage>>,
}

impl Align {
    pub fn new(workers: usize) -> Self {
        Align { arrived: (0..workers).map(|_| None).collect(), held: (0..workers).map(|_| VecDeque::new()).collect() }
    }

    /// `worker` has sent a barrier that is not complete yet: its later
    /// messages wait.
    pub fn waits(&self, worker: usize) -> bool {
        self.arrived.get(worker).is_some_and(Option::is_some)
    }

    /// Keep a message of a waiting worker for after the barrier.
    pub fn hold(&mut self, worker: usize, message: OutputMessage) {
        if let Some(held) = self.held.get_mut(worker) {
            held.push_back(message);
        }
    }

    /// `worker`'s barrier is in.
    pub fn arrive(&mut self, worker: usize, control: Control, written: Written) {
        if let Some(slot) = self.arrived.get_mut(worker) {
            *slot = Some((control, written));
        }
    }

    /// Every worker's barrier is in: the barrier, with the lowest step and
    /// the oldest state over the workers. The workers wait no more.
    pub fn complete(&mut self) -> Option<(Control, Written)> {
        if self.arrived.iter().any(Option::is_none) {
            return None;
        }
        let all: Vec<(Control, Written)> = self.arrived.iter_mut().filter_map(Option::take).collect();
        let control = all.first()?.0;
        let seq = all.iter().map(|(_, w)| w.seq).min()?;
        let oldest = all.iter().map(|(_, w)| w.oldest).min()?;
        Some((control, Written { seq, oldest }))
    }

    /// The next message `worker` sent after its last complete barrier, as
    /// long as it is not waiting at another.
    pub fn release(&mut self, worker: usize) -> Option<OutputMessage> {
        if self.waits(worker) {
            return None;
        }
        self.held.get_mut(worker)?.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message told apart by its number.
    fn message(n: usize) -> OutputMessage {
        OutputMessage::DeadLetters(Vec::with_capacity(n))
    }

    fn number(message: &OutputMessage) -> Option<usize> {
        match message {
            OutputMessage::DeadLetters(d) => Some(d.capacity()),
            _ => None,
        }
    }

    /// A barrier completes once every worker's is in, with the lowest step
    /// and the oldest state; a worker's messages after its barrier wait
    /// until then, in order, and stop again at its next barrier.
    #[test]
    fn a_barrier_completes_when_every_worker_is_in() {
        let mut align = Align::new(2);
        align.arrive(0, Control::Barrier(1), Written { seq: 3, oldest: 100 });
        assert!(align.waits(0) && !align.waits(1));
        align.hold(0, message(1));
        align
            .hold(0, OutputMessage::Barrier { control: Control::Barrier(2), written: Written { seq: 4, oldest: 200 } });
        align.hold(0, message(2));
        assert_eq!(align.complete(), None);
        assert!(align.release(0).is_none());

        align.arrive(1, Control::Barrier(1), Written { seq: 2, oldest: 50 });
        assert_eq!(align.complete(), Some((Control::Barrier(1), Written { seq: 2, oldest: 50 })));
        assert!(!align.waits(0) && !align.waits(1));
        assert_eq!(align.release(0).as_ref().and_then(number), Some(1));
        // The held barrier is worker 0's next: what follows it waits again.
        match align.release(0) {
            Some(OutputMessage::Barrier { control, written }) => align.arrive(0, control, written),
            other => panic!("expected the held barrier, got {other:?}"),
        }
        assert!(align.release(0).is_none());
        align.arrive(1, Control::Barrier(2), Written { seq: 4, oldest: i64::MAX });
        assert_eq!(align.complete(), Some((Control::Barrier(2), Written { seq: 4, oldest: 200 })));
        assert_eq!(align.release(0).as_ref().and_then(number), Some(2));
        assert!(align.release(0).is_none());
    }
}
