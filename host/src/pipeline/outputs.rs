//! The sinks of a pipeline's three outputs, fed from the compute thread.
//!
//! Barriers from the workers are aligned here: once a worker's barrier is
//! in, its later outputs wait until every worker's is. Then every sink
//! pre-commits and commits, and the source may commit its positions at
//! the barrier.

use std::collections::VecDeque;
use std::time::Duration;

use sluice_sink_api::{Batch, Context, DeadLetter, FeatureRow, LateEvent, Rejected, Sink, Stage};
use tokio::sync::mpsc::Receiver;

use super::control::{Control, Stop};
use super::progress::Done;
use crate::checkpoint::{Checkpoint, Header, PartitionState, Store};
use crate::metrics::Metrics;
use crate::sinks::{OutputsConfig, SinkConfig};
use crate::window::Snapshot;

/// What a worker sends to the sinks' side.
#[derive(Debug)]
pub struct Output {
    pub worker: usize,
    pub item: Item,
}

#[derive(Debug)]
pub enum Item {
    Features(Vec<FeatureRow>),
    DeadLetters(Vec<DeadLetter>),
    LateEvents(Vec<LateEvent>),
    /// The worker has sent every output of the records before `control`;
    /// `done` says how far that is, for the source's commit; `snapshot` is
    /// its state there, when checkpoints are taken.
    Barrier {
        control: Control,
        done: Done,
        snapshot: Option<Snapshot>,
    },
}

pub(super) struct Outputs {
    features: Vec<(String, Box<dyn Sink>)>,
    dead_letters: Vec<(String, Box<dyn Sink>)>,
    late_events: Vec<(String, Box<dyn Sink>)>,
}

async fn open_all(
    output: &str,
    configs: &[SinkConfig],
    context: &Context,
) -> sluice_sink_api::Result<Vec<(String, Box<dyn Sink>)>> {
    let mut sinks = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let name = format!("outputs.{output}[{i}]");
        sinks.push((name.clone(), c.build(&name, context).await?));
    }
    Ok(sinks)
}

/// Back-off between retries of a failing sink.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What to ask of a sink.
#[derive(Debug, Clone, Copy)]
enum Op<'a> {
    Write(Batch<'a>),
    Flush,
    PreCommit(u64),
    Commit(u64),
}

/// Run a sink operation, retrying what the sink says is retriable, with
/// backoff. The compute thread waits meanwhile (the channel is bounded):
/// backpressure. A stop request ends the retries with the last error;
/// [`super::StopMode::Now`] abandons the operation in flight as well.
async fn retry(
    name: &str,
    sink: &mut dyn Sink,
    op: Op<'_>,
    metrics: &Metrics,
    stop: &Stop,
) -> sluice_sink_api::Result<()> {
    let cancelled = |what: &str| sluice_sink_api::Error {
        sink: name.to_string(),
        message: format!("{what}: the pipeline was stopped at once"),
        retriable: false,
    };
    let (mut delay, started) = (RETRY_FIRST, std::time::Instant::now());
    let written = || {
        if let Op::Write(_) = op {
            metrics.sink_write_seconds.observe(started.elapsed());
        }
    };
    loop {
        let attempt = async {
            match op {
                Op::Write(batch) => sink.write(batch).await,
                Op::Flush => sink.flush().await,
                Op::PreCommit(epoch) => sink.pre_commit(epoch).await,
                Op::Commit(epoch) => sink.commit(epoch).await,
            }
        };
        let outcome = tokio::select! {
            r = attempt => r,
            () = stop.until_cancelled() => return Err(cancelled("abandoned")),
        };
        match outcome {
            Ok(()) => {
                written();
                return Ok(());
            }
            Err(mut e) if e.retriable && stop.stopping() => {
                e.message =
                    format!("{} (given up: the pipeline is stopping; nothing after it is committed)", e.message);
                return Err(e);
            }
            Err(e) if e.retriable => {
                Metrics::add(&metrics.sink_retries, 1);
                tracing::warn!(sink = name, retry_in_ms = delay.as_millis() as u64, "{e}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.until_cancelled() => return Err(cancelled("retries abandoned")),
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A worker's barrier: the message, how far the worker is, its state.
type Arrived = (Control, Done, Option<Snapshot>);

/// Barrier alignment: per worker, the barrier it has sent and the outputs
/// it sent after it.
struct Align {
    arrived: Vec<Option<Arrived>>,
    held: Vec<VecDeque<Item>>,
}

impl Align {
    fn new(workers: usize) -> Self {
        Align { arrived: (0..workers).map(|_| None).collect(), held: (0..workers).map(|_| VecDeque::new()).collect() }
    }

    /// Every worker's barrier is in: the barrier, the oldest state and
    /// lowest step over the workers, and their snapshots.
    fn complete(&mut self) -> Option<(Control, Done, Vec<Snapshot>)> {
        if self.arrived.iter().any(Option::is_none) {
            return None;
        }
        let all: Vec<Arrived> = self.arrived.iter_mut().filter_map(Option::take).collect();
        let control = all.first()?.0;
        let seq = all.iter().map(|(_, d, _)| d.seq).min()?;
        let oldest = all.iter().map(|(_, d, _)| d.oldest).min()?;
        let snapshots = all.into_iter().filter_map(|(_, _, s)| s).collect();
        Some((control, Done { seq, oldest }, snapshots))
    }
}

/// Where the source was at a barrier.
#[derive(Debug, Clone)]
pub(super) struct SourceCut {
    pub epoch: u64,
    pub partitions: Vec<CutPartition>,
}

/// A partition held at a barrier.
#[derive(Debug, Clone)]
pub(super) struct CutPartition {
    pub slot: usize,
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    /// The next offset to read.
    pub offset: i64,
    /// A file: the byte at which the next record starts.
    pub byte_offset: Option<u64>,
    /// The largest event time it delivered.
    pub max_event_time: Option<i64>,
}

/// What the outputs report back to the source, per barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ack {
    /// The barrier's number.
    pub epoch: u64,
    pub done: Done,
    /// A checkpoint of the barrier is durable: every record before it may
    /// be committed, whatever the windows still hold.
    pub checkpointed: bool,
}

/// The barrier side of the outputs: alignment's counterpart upstream.
pub(super) struct Coordinator {
    pub workers: usize,
    pub acks: std::sync::mpsc::Sender<Ack>,
    /// The source's cut at each barrier, in order (with checkpoints).
    pub cuts: std::sync::mpsc::Receiver<SourceCut>,
    pub store: Option<std::sync::Arc<Store>>,
}

/// What became of a barrier's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    Checkpointed,
    Failed,
    /// The pipeline takes none.
    Without,
}

impl From<bool> for Taken {
    fn from(durable: bool) -> Taken {
        if durable { Taken::Checkpointed } else { Taken::Failed }
    }
}

/// A barrier whose checkpoint is being written while the outputs go on
/// (the sinks commit it, and the source hears of it, once it is durable).
struct Pending {
    control: Control,
    done: Done,
    started: std::time::Instant,
    write: tokio::task::JoinHandle<crate::checkpoint::Result<u64>>,
}

impl Coordinator {
    /// Start writing the checkpoint of barrier `epoch` from the workers'
    /// snapshots and the source's cut, off the async threads. `None`
    /// without checkpoints, or without the source's cut.
    fn start(&mut self, control: Control, done: Done, snapshots: Vec<Snapshot>) -> Option<Pending> {
        let store = self.store.clone()?;
        let epoch = control.epoch();
        let cut = loop {
            match self.cuts.try_recv() {
                Ok(cut) if cut.epoch < epoch => continue,
                Ok(cut) if cut.epoch == epoch => break cut,
                _ => {
                    tracing::error!(epoch, "no source position for the barrier; the checkpoint is skipped");
                    return None;
                }
            }
        };
        let started = std::time::Instant::now();
        let write = tokio::task::spawn_blocking(move || {
            let mut partitions: Vec<PartitionState> = cut
                .partitions
                .iter()
                .map(|p| PartitionState {
                    topic: p.topic.to_string(),
                    partition: p.partition,
                    offset: p.offset,
                    byte_offset: p.byte_offset,
                    max_event_time: p.max_event_time,
                    keys: Vec::new(),
                })
                .collect();
            let (mut watermark, mut last_sweep) = (i64::MAX, i64::MAX);
            for snapshot in snapshots {
                watermark = watermark.min(snapshot.watermark);
                last_sweep = last_sweep.min(snapshot.last_sweep);
                for (slot, keys) in snapshot.partitions {
                    // Keys of a partition no longer held were dropped with it.
                    if let Some(at) = cut.partitions.iter().position(|p| p.slot == slot as usize) {
                        partitions[at].keys.extend(keys);
                    }
                }
            }
            // The store fills in whose it is.
            let header =
                Header { epoch, created_ms: crate::time::now_ms(), watermark, last_sweep, ..Header::default() };
            store.write(epoch, &mut Checkpoint { header, partitions })
        });
        Some(Pending { control, done, started, write })
    }
}

impl Pending {
    /// Wait for the write. A failure (a full disk, say) fails the
    /// checkpoint, not the pipeline: it is logged and counted, and the
    /// source commits as if there were none.
    async fn durable(&mut self, metrics: &Metrics) -> bool {
        let epoch = self.control.epoch();
        match (&mut self.write).await {
            Ok(Ok(bytes)) => {
                let ms = self.started.elapsed().as_millis() as u64;
                Metrics::add(&metrics.checkpoints, 1);
                metrics.checkpoint_seconds.observe(self.started.elapsed());
                Metrics::set(&metrics.checkpoint_bytes, bytes);
                Metrics::add(&metrics.checkpoint_ms, ms);
                tracing::debug!(epoch, bytes, ms, "checkpoint written");
                true
            }
            Ok(Err(e)) => {
                Metrics::add(&metrics.checkpoint_failures, 1);
                tracing::error!(epoch, "the checkpoint failed; the pipeline goes on without it: {e}");
                false
            }
            Err(e) => {
                Metrics::add(&metrics.checkpoint_failures, 1);
                tracing::error!(epoch, "the checkpoint failed: {e}");
                false
            }
        }
    }
}

impl Outputs {
    pub(super) async fn open(config: &OutputsConfig, context: &Context) -> sluice_sink_api::Result<Self> {
        Ok(Outputs {
            features: open_all("features", &config.features, context).await?,
            dead_letters: open_all("dead_letters", &config.dead_letters, context).await?,
            late_events: open_all("late_events", &config.late_events, context).await?,
        })
    }

    /// Write everything received until the sender is gone; at each
    /// barrier every worker has passed, pre-commit and commit every sink
    /// and acknowledge the barrier to the source through `acks`.
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
        let mut pending: Option<Pending> = None;
        loop {
            let received = tokio::select! {
                r = rx.recv() => r,
                durable = async { pending.as_mut()?.durable(metrics).await.into() }, if pending.is_some() => {
                    if let (Some(p), Some(checkpointed)) = (pending.take(), durable) {
                        finished |= self.committed(p.control, p.done, checkpointed.into(), &coordinator.acks, metrics, stop).await?;
                    }
                    continue;
                }
                () = stop.until_cancelled() => return Ok(()),
            };
            let Some(Output { worker, item }) = received else {
                break;
            };
            if align.arrived.get(worker).is_some_and(Option::is_some) {
                align.held[worker].push_back(item);
                continue;
            }
            self.take(worker, item, &mut align, metrics, stop).await?;
            // A completed barrier releases what waited behind it, which may
            // hold the next barrier.
            while let Some((control, done, snapshots)) = align.complete() {
                // Checkpoints complete in order, one at a time.
                finished |= self.settle(pending.take(), &coordinator.acks, metrics, stop).await?;
                self.pre_commit(control, metrics, stop).await?;
                match coordinator.start(control, done, snapshots) {
                    Some(p) => pending = Some(p),
                    None => {
                        // Without checkpoints the sinks commit at every
                        // barrier; a checkpoint skipped is one that failed.
                        let taken = if coordinator.store.is_none() { Taken::Without } else { Taken::Failed };
                        finished |= self.committed(control, done, taken, &coordinator.acks, metrics, stop).await?;
                    }
                }
                for w in 0..workers {
                    while align.arrived[w].is_none()
                        && let Some(item) = align.held[w].pop_front()
                    {
                        self.take(w, item, &mut align, metrics, stop).await?;
                    }
                }
            }
        }
        finished |= self.settle(pending.take(), &coordinator.acks, metrics, stop).await?;
        // Ended without a last barrier (a failure elsewhere, reported
        // there): what was written is still made durable.
        if !finished {
            self.flush(metrics, stop).await?;
        }
        Ok(())
    }

    /// Wait for the checkpoint being written, if any, and commit its
    /// barrier. Whether it was the last.
    async fn settle(
        &mut self,
        pending: Option<Pending>,
        acks: &std::sync::mpsc::Sender<Ack>,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<bool> {
        let Some(mut p) = pending else {
            return Ok(false);
        };
        let checkpointed = p.durable(metrics).await;
        self.committed(p.control, p.done, checkpointed.into(), acks, metrics, stop).await
    }

    /// The barrier's checkpoint is durable (or there is none): the sinks
    /// commit, and the source hears of it. A checkpoint that failed is not
    /// committed: what the sinks staged for it waits for the next one, as
    /// the source's position does. Whether it was the last barrier.
    async fn committed(
        &mut self,
        control: Control,
        done: Done,
        taken: Taken,
        acks: &std::sync::mpsc::Sender<Ack>,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<bool> {
        if taken != Taken::Failed {
            self.commit(control, metrics, stop).await?;
            Metrics::set(&metrics.last_barrier, control.epoch());
        }
        // The source may be gone already (a bounded run that ended).
        let _ = acks.send(Ack { epoch: control.epoch(), done, checkpointed: taken == Taken::Checkpointed });
        Ok(control.is_last())
    }

    /// Write one output, or note a worker's barrier.
    async fn take(
        &mut self,
        worker: usize,
        item: Item,
        align: &mut Align,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<()> {
        let (sinks, batch) = match &item {
            Item::Features(r) => (&mut self.features, Batch::Features(r)),
            Item::DeadLetters(r) => {
                metrics.note_dead_letters(r);
                (&mut self.dead_letters, Batch::DeadLetters(r))
            }
            Item::LateEvents(r) => (&mut self.late_events, Batch::LateEvents(r)),
            Item::Barrier { .. } => {
                if let (Item::Barrier { control, done, snapshot }, Some(slot)) = (item, align.arrived.get_mut(worker)) {
                    *slot = Some((control, done, snapshot));
                }
                return Ok(());
            }
        };
        let mut rejected = Vec::new();
        for (name, sink) in sinks.iter_mut() {
            retry(name, sink.as_mut(), Op::Write(batch), metrics, stop).await?;
            if matches!(batch, Batch::DeadLetters(_)) {
                drop_refused(name, sink.as_mut(), metrics);
            } else {
                rejected.extend(sink.take_rejected().into_iter().map(|r| (name.clone(), r)));
            }
        }
        self.dead_letter(rejected, metrics, stop).await
    }

    /// Every output before the barrier is written: pre-commit every sink
    /// (feature and late-event sinks first, as what they refuse becomes
    /// dead letters).
    async fn pre_commit(&mut self, control: Control, metrics: &Metrics, stop: &Stop) -> sluice_sink_api::Result<()> {
        let epoch = control.epoch();
        let mut rejected = Vec::new();
        for (name, sink) in self.features.iter_mut().chain(&mut self.late_events) {
            retry(name, sink.as_mut(), Op::PreCommit(epoch), metrics, stop).await?;
            rejected.extend(sink.take_rejected().into_iter().map(|r| (name.clone(), r)));
        }
        self.dead_letter(rejected, metrics, stop).await?;
        for (name, sink) in self.dead_letters.iter_mut() {
            retry(name, sink.as_mut(), Op::PreCommit(epoch), metrics, stop).await?;
            drop_refused(name, sink.as_mut(), metrics);
        }
        Ok(())
    }

    /// The barrier's checkpoint is taken (or there is none): every sink
    /// publishes what it staged.
    async fn commit(&mut self, control: Control, metrics: &Metrics, stop: &Stop) -> sluice_sink_api::Result<()> {
        let epoch = control.epoch();
        for (name, sink) in self.features.iter_mut().chain(&mut self.late_events).chain(&mut self.dead_letters) {
            retry(name, sink.as_mut(), Op::Commit(epoch), metrics, stop).await?;
        }
        tracing::debug!(epoch, last = control.is_last(), "barrier committed by every sink");
        Ok(())
    }

    /// Records a sink refused for good go to the dead-letter output; one a
    /// dead-letter sink refused can only be logged.
    async fn dead_letter(
        &mut self,
        rejected: Vec<(String, Rejected)>,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<()> {
        if rejected.is_empty() {
            return Ok(());
        }
        Metrics::add(&metrics.dead_letters_sink, rejected.len() as u64);
        // One line a batch, not one a record: a hot key can make many.
        if let Some((sink, first)) = rejected.first() {
            let (count, class) = (rejected.len(), &first.error_class);
            tracing::warn!(
                sink,
                count,
                class,
                "records refused, sent to the dead-letter output; the first: {}",
                first.message
            );
        }
        let letters: Vec<DeadLetter> = rejected
            .into_iter()
            .map(|(sink, r)| {
                DeadLetter::new(r.raw, None, Stage::Sink, &r.error_class, format!("{sink}: {}", r.message))
            })
            .collect();
        metrics.note_dead_letters(&letters);
        for (name, sink) in self.dead_letters.iter_mut() {
            retry(name, sink.as_mut(), Op::Write(Batch::DeadLetters(&letters)), metrics, stop).await?;
            drop_refused(name, sink.as_mut(), metrics);
        }
        Ok(())
    }

    /// Flush every sink, retrying what is retriable; rows refused on the
    /// way go to the dead-letter output before it is flushed.
    async fn flush(&mut self, metrics: &Metrics, stop: &Stop) -> sluice_sink_api::Result<()> {
        let mut rejected = Vec::new();
        for (name, sink) in self.features.iter_mut().chain(&mut self.late_events) {
            retry(name, sink.as_mut(), Op::Flush, metrics, stop).await?;
            rejected.extend(sink.take_rejected().into_iter().map(|r| (name.clone(), r)));
        }
        self.dead_letter(rejected, metrics, stop).await?;
        for (name, sink) in self.dead_letters.iter_mut() {
            retry(name, sink.as_mut(), Op::Flush, metrics, stop).await?;
            drop_refused(name, sink.as_mut(), metrics);
        }
        Ok(())
    }
}

/// Dead letters a dead-letter sink refused: nowhere left to send them.
fn drop_refused(name: &str, sink: &mut dyn Sink, metrics: &Metrics) {
    for r in sink.take_rejected() {
        Metrics::add(&metrics.dead_letters_dropped, 1);
        tracing::error!(sink = name, class = r.error_class, "a dead letter was refused and is lost: {}", r.message);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use sluice_sink_api::{Features, Trigger};

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

    fn rows(key: &str) -> Item {
        Item::Features(vec![FeatureRow {
            key: key.into(),
            window_start: 0,
            window_end: 1,
            event_time: 0,
            trigger: Trigger::Close,
            features: Features(Vec::new()),
            computed_at: 0,
        }])
    }

    fn barrier(control: Control, seq: u64, oldest: i64) -> Item {
        Item::Barrier { control, done: Done { seq, oldest }, snapshot: None }
    }

    /// Worker 0 passes barrier 1 before worker 1 has: its next rows wait,
    /// so the sink commits barrier 1 with exactly the rows before it on
    /// both workers. The source hears of each barrier once, with the
    /// lowest step and oldest state over the workers.
    #[tokio::test]
    async fn a_barrier_commits_once_every_worker_has_passed_it() -> anyhow::Result<()> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink: Box<dyn Sink> = Box::new(Recorder(log.clone()));
        let outputs = Outputs { features: vec![("f".into(), sink)], dead_letters: Vec::new(), late_events: Vec::new() };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for (worker, item) in [
            (0, rows("a")),
            (0, barrier(Control::Barrier(1), 3, 100)),
            (0, rows("c")),
            (1, rows("b")),
            (0, barrier(Control::End(2), 4, i64::MAX)),
            (1, barrier(Control::Barrier(1), 3, 50)),
            (1, rows("d")),
            (1, barrier(Control::End(2), 4, i64::MAX)),
        ] {
            tx.send(Output { worker, item }).await?;
        }
        drop(tx);
        let (acks, acked) = std::sync::mpsc::channel();
        let (_, cuts) = std::sync::mpsc::channel();
        let metrics = Metrics::default();
        let coordinator = Coordinator { workers: 2, acks, cuts, store: None };
        outputs.drain(rx, coordinator, &metrics, &Stop::default()).await?;
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        let want = ["write a", "write b", "pre_commit 1", "commit 1", "write c", "write d", "pre_commit 2", "commit 2"];
        assert_eq!(log, want);
        let acked: Vec<Done> = acked.try_iter().map(|a: Ack| a.done).collect();
        assert_eq!(acked, [Done { seq: 3, oldest: 50 }, Done { seq: 4, oldest: i64::MAX }]);
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
        let outputs = Outputs { features: vec![("f".into(), sink)], dead_letters: Vec::new(), late_events: Vec::new() };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for item in [rows("a"), barrier(Control::Barrier(1), 3, 0), rows("b"), barrier(Control::End(2), 4, i64::MAX)] {
            tx.send(Output { worker: 0, item }).await?;
        }
        drop(tx);
        let (acks, acked) = std::sync::mpsc::channel();
        let (_, cuts) = std::sync::mpsc::channel();
        let metrics = Metrics::default();
        let coordinator = Coordinator { workers: 1, acks, cuts, store: Some(store.clone()) };
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
