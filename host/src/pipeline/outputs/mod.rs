//! The outputs of a pipeline, fed from the workers: the sinks
//! ([`sink_set`]), barrier alignment ([`align`]) and the checkpoint
//! coordinator ([`coordinator`]), tied together by [`Outputs::drain`].
//!
//! Once every worker has passed a barrier, every sink pre-commits; the
//! barrier's checkpoint is written meanwhile, and once it is durable (or
//! without checkpoints, at once) every sink commits and the source may
//! commit its positions at the barrier.

mod align;
mod coordinator;
mod sink_set;

use sluice_sink_api::{Batch, Context, DeadLetter, FeatureRow, LateEvent};
use std::sync::mpsc::Sender;

use tokio::sync::mpsc::Receiver;

use super::control::{Control, Stop};
use super::progress::Written;
use crate::metrics::Metrics;
use crate::sinks::OutputsConfig;
use align::Align;
pub use coordinator::{Ack, Coordinator, CutPartition, SourceCut, WorkerSnapshot};
use coordinator::{CheckpointOutcome, CheckpointWrite};
use sink_set::SinkSet;

/// What a worker sends to the outputs.
#[derive(Debug)]
pub struct Output {
    pub worker: usize,
    pub message: OutputMessage,
}

#[derive(Debug)]
pub enum OutputMessage {
    Features(Vec<FeatureRow>),
    DeadLetters(Vec<DeadLetter>),
    LateEvents(Vec<LateEvent>),
    /// The worker has sent every output of the records before `control`;
    /// `written` says how far that is, for the source's commit. Its state
    /// there, when checkpoints are taken, went to the coordinator first.
    Barrier {
        control: Control,
        written: Written,
    },
}

pub(super) struct Outputs {
    sinks: SinkSet,
}

impl Outputs {
    pub(super) async fn open(config: &OutputsConfig, context: &Context) -> sluice_sink_api::Result<Self> {
        Ok(Outputs { sinks: SinkSet::open(config, context).await? })
    }

    /// Write everything received until the sender is gone; at each
    /// barrier every worker has passed, pre-commit and commit every sink
    /// and acknowledge the barrier to the source through the coordinator.
    pub(super) async fn drain(
        self,
        rx: Receiver<Output>,
        coordinator: Coordinator,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<()> {
        match self.write_all(rx, coordinator, metrics, stop).await {
            // What a stop at once abandoned is not a failure.
            Err(_) if stop.cancelled() => Ok(()),
            r => r,
        }
    }

    async fn write_all(
        mut self,
        mut rx: Receiver<Output>,
        mut coordinator: Coordinator,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<()> {
        let workers = coordinator.workers;
        let mut align = Align::new(workers);
        let mut finished = false;
        let mut writing: Option<CheckpointWrite> = None;
        loop {
            let received = tokio::select! {
                r = rx.recv() => r,
                durable = async { Some(writing.as_mut()?.durable(metrics).await) }, if writing.is_some() => {
                    if let (Some(w), Some(durable)) = (writing.take(), durable) {
                        let outcome = if durable { CheckpointOutcome::Durable } else { CheckpointOutcome::Failed };
                        finished |= self.committed(w.control, w.written, outcome, &coordinator.acks, metrics, stop).await?;
                    }
                    continue;
                }
                () = stop.until_cancelled() => return Ok(()),
            };
            let Some(Output { worker, message }) = received else {
                break;
            };
            if align.waits(worker) {
                align.hold(worker, message);
                continue;
            }
            self.take(worker, message, &mut align, metrics, stop).await?;
            // A completed barrier releases what waited behind it, which may
            // hold the next barrier.
            while let Some((control, written)) = align.complete() {
                // Checkpoints complete in order, one at a time.
                finished |= self.settle(writing.take(), &coordinator.acks, metrics, stop).await?;
                self.sinks.pre_commit(control, metrics, stop).await?;
                match coordinator.start(control, written) {
                    Some(w) => writing = Some(w),
                    None => {
                        // Without checkpoints the sinks commit at every
                        // barrier; a checkpoint skipped is one that failed.
                        let outcome = match coordinator.store {
                            None => CheckpointOutcome::NotTaken,
                            Some(_) => CheckpointOutcome::Failed,
                        };
                        finished |= self.committed(control, written, outcome, &coordinator.acks, metrics, stop).await?;
                    }
                }
                for w in 0..workers {
                    while let Some(message) = align.release(w) {
                        self.take(w, message, &mut align, metrics, stop).await?;
                    }
                }
            }
        }
        finished |= self.settle(writing.take(), &coordinator.acks, metrics, stop).await?;
        // Ended without a last barrier (a failure elsewhere, reported
        // there): what was written is still made durable.
        if !finished {
            self.sinks.flush(metrics, stop).await?;
        }
        Ok(())
    }

    /// Wait for the checkpoint being written, if any, and commit its
    /// barrier. Whether it was the last.
    async fn settle(
        &mut self,
        writing: Option<CheckpointWrite>,
        acks: &Sender<Ack>,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<bool> {
        let Some(mut w) = writing else {
            return Ok(false);
        };
        let outcome = if w.durable(metrics).await { CheckpointOutcome::Durable } else { CheckpointOutcome::Failed };
        self.committed(w.control, w.written, outcome, acks, metrics, stop).await
    }

    /// The barrier's checkpoint is durable (or there is none): the sinks
    /// commit, and the source hears of it. A checkpoint that failed is not
    /// committed: what the sinks staged for it waits for the next one, as
    /// the source's position does. Whether it was the last barrier.
    async fn committed(
        &mut self,
        control: Control,
        written: Written,
        outcome: CheckpointOutcome,
        acks: &Sender<Ack>,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<bool> {
        if outcome != CheckpointOutcome::Failed {
            self.sinks.commit(control, metrics, stop).await?;
            Metrics::set(&metrics.last_barrier, control.epoch());
        }
        let checkpointed = outcome == CheckpointOutcome::Durable;
        // The source may be gone already (a bounded run that ended).
        let _ = acks.send(Ack { epoch: control.epoch(), written, checkpointed });
        Ok(control.is_last())
    }

    /// Write one output, or note a worker's barrier.
    async fn take(
        &mut self,
        worker: usize,
        message: OutputMessage,
        align: &mut Align,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<()> {
        let batch = match &message {
            OutputMessage::Features(rows) => Batch::Features(rows),
            OutputMessage::DeadLetters(letters) => Batch::DeadLetters(letters),
            OutputMessage::LateEvents(events) => Batch::LateEvents(events),
            OutputMessage::Barrier { control, written } => {
                align.arrive(worker, *control, *written);
                return Ok(());
            }
        };
        self.sinks.write(batch, metrics, stop).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use sluice_sink_api::{Features, Sink, Trigger};

    use super::*;

    /// Notes what it is asked to do, in order.
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Recorder {
        fn note(&self, what: String) {
            if let Ok(mut log) = self.0.lock() {
                log.push(what);
            }
        }
    }

    #[async_trait::async_trait]
    impl Sink for Recorder {
        async fn write(&mut self, batch: Batch<'_>) -> sluice_sink_api::Result<()> {
            if let Batch::Features(rows) = batch {
                rows.iter().for_each(|r| self.note(format!("write {}", r.key)));
            }
            Ok(())
        }
        async fn flush(&mut self) -> sluice_sink_api::Result<()> {
            self.note("flush".into());
            Ok(())
        }
        async fn pre_commit(&mut self, epoch: u64) -> sluice_sink_api::Result<()> {
            self.note(format!("pre_commit {epoch}"));
            Ok(())
        }
        async fn commit(&mut self, epoch: u64) -> sluice_sink_api::Result<()> {
            self.note(format!("commit {epoch}"));
            Ok(())
        }
    }

    fn rows(key: &str) -> OutputMessage {
        OutputMessage::Features(vec![FeatureRow {
            key: key.into(),
            window_start: 0,
            window_end: 1,
            event_time: 0,
            trigger: Trigger::Close,
            features: Features(Vec::new()),
            computed_at: 0,
        }])
    }

    fn barrier(control: Control, seq: u64, oldest: i64) -> OutputMessage {
        OutputMessage::Barrier { control, written: Written { seq, oldest } }
    }

    /// Worker 0 passes barrier 1 before worker 1 has: its next rows wait,
    /// so the sink commits barrier 1 with exactly the rows before it on
    /// both workers. The source hears of each barrier once, with the
    /// lowest step and oldest state over the workers.
    #[tokio::test]
    async fn a_barrier_commits_once_every_worker_has_passed_it() -> anyhow::Result<()> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink: Box<dyn Sink> = Box::new(Recorder(log.clone()));
        let sinks = SinkSet { features: vec![("f".into(), sink)], dead_letters: Vec::new(), late_events: Vec::new() };
        let outputs = Outputs { sinks };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for (worker, message) in [
            (0, rows("a")),
            (0, barrier(Control::Barrier(1), 3, 100)),
            (0, rows("c")),
            (1, rows("b")),
            (0, barrier(Control::End(2), 4, i64::MAX)),
            (1, barrier(Control::Barrier(1), 3, 50)),
            (1, rows("d")),
            (1, barrier(Control::End(2), 4, i64::MAX)),
        ] {
            tx.send(Output { worker, message }).await?;
        }
        drop(tx);
        let (acks, acked) = std::sync::mpsc::channel();
        let ((_, cuts), (_, snapshots)) = (std::sync::mpsc::channel(), std::sync::mpsc::channel());
        let metrics = Metrics::default();
        let coordinator = Coordinator::new(2, acks, cuts, snapshots, None);
        outputs.drain(rx, coordinator, &metrics, &Stop::default()).await?;
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        let want = ["write a", "write b", "pre_commit 1", "commit 1", "write c", "write d", "pre_commit 2", "commit 2"];
        assert_eq!(log, want);
        let acked: Vec<Written> = acked.try_iter().map(|a: Ack| a.written).collect();
        assert_eq!(acked, [Written { seq: 3, oldest: 50 }, Written { seq: 4, oldest: i64::MAX }]);
        assert_eq!(Metrics::get(&metrics.last_barrier), 2);
        Ok(())
    }

    /// A barrier whose checkpoint fails (here: no source position for it)
    /// is pre-committed but not committed (what the sinks staged waits for
    /// a checkpoint that is taken), and the source hears it was not
    /// checkpointed.
    #[tokio::test]
    async fn a_failed_checkpoint_is_not_committed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(crate::checkpoint::tests::store(dir.path(), 60_000, false)?);
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink: Box<dyn Sink> = Box::new(Recorder(log.clone()));
        let sinks = SinkSet { features: vec![("f".into(), sink)], dead_letters: Vec::new(), late_events: Vec::new() };
        let outputs = Outputs { sinks };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for message in [rows("a"), barrier(Control::Barrier(1), 3, 0), rows("b"), barrier(Control::End(2), 4, i64::MAX)]
        {
            tx.send(Output { worker: 0, message }).await?;
        }
        drop(tx);
        let (acks, acked) = std::sync::mpsc::channel();
        let ((_, cuts), (_, snapshots)) = (std::sync::mpsc::channel(), std::sync::mpsc::channel());
        let metrics = Metrics::default();
        let coordinator = Coordinator::new(1, acks, cuts, snapshots, Some(store.clone()));
        outputs.drain(rx, coordinator, &metrics, &Stop::default()).await?;
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(log, ["write a", "pre_commit 1", "write b", "pre_commit 2"]);
        let acked: Vec<bool> = acked.try_iter().map(|a: Ack| a.checkpointed).collect();
        assert_eq!(acked, [false, false]);
        assert_eq!(Metrics::get(&metrics.last_barrier), 0);
        assert!(store.last_epochs()?.is_empty());
        Ok(())
    }
}
