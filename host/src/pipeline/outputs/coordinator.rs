//! The checkpoint coordinator: at a barrier every worker has passed, it
//! puts the source's cut and the workers' snapshots together into a
//! checkpoint and writes it off the async threads; the sinks commit the
//! barrier, and the source hears of it, once the checkpoint is durable.
//!
//! The workers' snapshots come on a channel of their own, not through the
//! sinks' channel: the barrier that passes the sinks carries how far each
//! worker is, and the state goes straight to the checkpoint writer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use crate::checkpoint::{Checkpoint, Header, PartitionState, Store};
use crate::metrics::Metrics;
use crate::pipeline::control::Control;
use crate::pipeline::progress::Written;
use crate::position::Position;
use crate::window::Snapshot;

/// Where the source was at a barrier.
#[derive(Debug, Clone)]
pub struct SourceCut {
    pub epoch: u64,
    pub partitions: Vec<CutPartition>,
}

/// A partition held at a barrier: its slot, and where it was read to.
#[derive(Debug, Clone)]
pub struct CutPartition {
    pub slot: usize,
    pub position: Position,
}

/// A worker's state at barrier `epoch`, sent before the barrier itself.
#[derive(Debug)]
pub struct WorkerSnapshot {
    pub epoch: u64,
    pub snapshot: Snapshot,
}

/// What the outputs report back to the source, per barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The barrier's number.
    pub epoch: u64,
    pub written: Written,
    /// A checkpoint of the barrier is durable: every record before it may
    /// be committed, whatever the windows still hold.
    pub checkpointed: bool,
}

/// What became of a barrier's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckpointOutcome {
    Durable,
    Failed,
    /// The pipeline takes none.
    NotTaken,
}

/// The coordinator's ends of the channels from the reading thread and the
/// workers, and the store.
pub struct Coordinator {
    pub workers: usize,
    pub acks: Sender<Ack>,
    /// The source's cut at each barrier, in order (with checkpoints).
    pub cuts: Receiver<SourceCut>,
    /// The workers' snapshots (with checkpoints).
    pub snapshots: Receiver<WorkerSnapshot>,
    pub store: Option<Arc<Store>>,
    /// Snapshots received, by barrier: a worker may be a barrier ahead.
    pub(super) received: BTreeMap<u64, Vec<Snapshot>>,
}

/// A barrier whose checkpoint is being written while the outputs go on.
pub(super) struct CheckpointWrite {
    pub control: Control,
    pub written: Written,
    started: Instant,
    write: tokio::task::JoinHandle<crate::checkpoint::Result<u64>>,
}

impl Coordinator {
    pub fn new(
        workers: usize,
        acks: Sender<Ack>,
        cuts: Receiver<SourceCut>,
        snapshots: Receiver<WorkerSnapshot>,
        store: Option<Arc<Store>>,
    ) -> Self {
        Coordinator { workers, acks, cuts, snapshots, store, received: BTreeMap::new() }
    }

    /// Start writing the checkpoint of a complete barrier, off the async
    /// threads. `None` without checkpoints, or when the source's cut or a
    /// worker's snapshot is missing (the checkpoint is then skipped).
    pub(super) fn start(&mut self, control: Control, written: Written) -> Option<CheckpointWrite> {
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
        for s in self.snapshots.try_iter() {
            self.received.entry(s.epoch).or_default().push(s.snapshot);
        }
        let snapshots = self.received.remove(&epoch).unwrap_or_default();
        // Those of barriers before it were of checkpoints skipped.
        self.received.retain(|&e, _| e > epoch);
        if snapshots.len() != self.workers {
            tracing::error!(
                epoch,
                snapshots = snapshots.len(),
                workers = self.workers,
                "a worker's state is missing at the barrier; the checkpoint is skipped"
            );
            return None;
        }
        let started = Instant::now();
        let write = tokio::task::spawn_blocking(move || {
            let mut checkpoint = assemble(epoch, &cut, snapshots);
            store.write(epoch, &mut checkpoint)
        });
        Some(CheckpointWrite { control, written, started, write })
    }
}

/// The checkpoint of barrier `epoch`: each partition of the source's cut
/// with the keys the workers hold of it; the least advanced watermark and
/// sweep over the workers. The store fills in whose it is.
fn assemble(epoch: u64, cut: &SourceCut, snapshots: Vec<Snapshot>) -> Checkpoint {
    let mut partitions: Vec<PartitionState> =
        cut.partitions.iter().map(|p| PartitionState { position: p.position.clone(), keys: Vec::new() }).collect();
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
    let header = Header { epoch, created_ms: crate::time::now_ms(), watermark, last_sweep, ..Header::default() };
    Checkpoint { header, partitions }
}

impl CheckpointWrite {
    /// Wait for the write. A failure (a full disk, say) fails the
    /// checkpoint, not the pipeline: it is logged and counted, and the
    /// source commits as if there were none.
    pub async fn durable(&mut self, metrics: &Metrics) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(watermark: i64, parts: &[(u32, &str)]) -> Snapshot {
        let mut s = Snapshot { watermark, last_sweep: watermark - 10, ..Snapshot::default() };
        for &(slot, key) in parts {
            s.partitions.entry(slot).or_default().push(key.as_bytes().to_vec());
        }
        s
    }

    /// Each partition of the cut gets the keys every worker holds of it;
    /// keys of a partition not in the cut (revoked) are left out; the
    /// watermark is the least advanced worker's.
    #[test]
    fn a_checkpoint_is_the_cut_with_every_worker_s_keys() {
        let part = |slot: usize, partition: i32, offset: i64| CutPartition {
            slot,
            position: Position {
                id: crate::position::PartitionId::new("t", partition),
                offset,
                byte_offset: None,
                max_event_time: Some(offset * 10),
            },
        };
        let cut = SourceCut { epoch: 4, partitions: vec![part(0, 5, 100), part(2, 7, 200)] };
        let workers = vec![snapshot(1_000, &[(0, "a"), (1, "gone"), (2, "b")]), snapshot(900, &[(0, "c")])];
        let checkpoint = assemble(4, &cut, workers);
        let keys: Vec<(i32, i64, Vec<&[u8]>)> = checkpoint
            .partitions
            .iter()
            .map(|p| (p.position.id.partition, p.position.offset, p.keys.iter().map(Vec::as_slice).collect()))
            .collect();
        assert_eq!(keys, [(5, 100, vec![&b"a"[..], b"c"]), (7, 200, vec![&b"b"[..]])]);
        assert_eq!((checkpoint.header.epoch, checkpoint.header.watermark, checkpoint.header.last_sweep), (4, 900, 890));
    }
}
