//! Control of a running pipeline.
//!
//! Out of band, a [`Stop`] request from the handle: the reader sees it
//! between steps and turns it into a control message; [`StopMode::Now`]
//! also cancels every stage at once (a worker's backlog, a sink retrying).
//!
//! In band, a [`Control`] message travels with the data, from the reader
//! through every worker to the outputs, behind the records read before it.
//! A worker forwards it once it has sent every output of those records;
//! the outputs align the workers' copies (a worker's later outputs wait
//! until every copy is in), pre-commit and commit every sink, and only
//! then acknowledge the source's positions at the barrier. This is the
//! cut a checkpoint is taken at, as in Flink and Arroyo.

use std::sync::atomic::{AtomicU8, Ordering};

use tokio_util::sync::CancellationToken;

/// How a pipeline is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Fire every open window as if the input had ended, then write and
    /// commit everything (Flink's `stop --drain`): for a pipeline that will
    /// not run again.
    Drain,
    /// Take no more records, write the outputs of those taken, commit at a
    /// last barrier and stop. Windows still open do not fire: the next run
    /// completes them (it reads their records again from the committed
    /// positions).
    Checkpoint,
    /// Stop at once: guest calls and sink writes in flight are abandoned;
    /// nothing more is written or committed.
    Now,
}

impl StopMode {
    fn code(self) -> u8 {
        match self {
            StopMode::Drain => 1,
            StopMode::Checkpoint => 2,
            StopMode::Now => 3,
        }
    }

    fn from_code(code: u8) -> Option<StopMode> {
        match code {
            1 => Some(StopMode::Drain),
            2 => Some(StopMode::Checkpoint),
            3 => Some(StopMode::Now),
            _ => None,
        }
    }
}

/// A stop request, shared by the handle and every stage.
#[derive(Debug, Default)]
pub struct Stop {
    mode: AtomicU8,
    cancel: CancellationToken,
}

impl Stop {
    /// The first graceful request holds (a drain is not turned into a
    /// checkpoint half-way); [`StopMode::Now`] overrides either.
    pub fn request(&self, mode: StopMode) {
        if mode == StopMode::Now {
            self.mode.store(mode.code(), Ordering::SeqCst);
            self.cancel.cancel();
        } else {
            let _ = self.mode.compare_exchange(0, mode.code(), Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    pub fn requested(&self) -> Option<StopMode> {
        StopMode::from_code(self.mode.load(Ordering::Relaxed))
    }

    /// A stop of any mode was asked for.
    pub fn stopping(&self) -> bool {
        self.requested().is_some()
    }

    /// [`StopMode::Now`]: drop what is in hand. Workers ask per event: an
    /// atomic load (the token's own check takes a lock).
    pub fn cancelled(&self) -> bool {
        self.requested() == Some(StopMode::Now)
    }

    /// Completes once [`StopMode::Now`] is requested.
    pub async fn until_cancelled(&self) {
        self.cancel.cancelled().await
    }
}

/// A control message, in order with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Everything read before it is to be written, then committed.
    Barrier(u64),
    /// The last barrier of a run asked to stop (the input goes on).
    Stop(u64),
    /// The last barrier of the input: the final watermark before it has
    /// fired every window.
    End(u64),
}

impl Control {
    /// The barrier's number, increasing through a run.
    pub fn epoch(self) -> u64 {
        match self {
            Control::Barrier(e) | Control::Stop(e) | Control::End(e) => e,
        }
    }

    /// The same message with barrier number `epoch`.
    pub fn numbered(self, epoch: u64) -> Control {
        match self {
            Control::Barrier(_) => Control::Barrier(epoch),
            Control::Stop(_) => Control::Stop(epoch),
            Control::End(_) => Control::End(epoch),
        }
    }

    /// Nothing follows it.
    pub fn is_last(self) -> bool {
        !matches!(self, Control::Barrier(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_graceful_stop_holds_and_now_overrides_it() {
        let stop = Stop::default();
        assert_eq!(stop.requested(), None);
        stop.request(StopMode::Drain);
        stop.request(StopMode::Checkpoint);
        assert_eq!(stop.requested(), Some(StopMode::Drain));
        assert!(!stop.cancelled());
        stop.request(StopMode::Now);
        assert_eq!(stop.requested(), Some(StopMode::Now));
        assert!(stop.cancelled());
        stop.request(StopMode::Checkpoint);
        assert_eq!(stop.requested(), Some(StopMode::Now));
    }
}
