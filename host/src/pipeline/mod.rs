//! A running pipeline: source → decode → windows → transform → sinks.
//!
//! [`Pipeline::start`] takes a [`Plan`] (a [`Spec`], which a checked
//! manifest lowers to, and its compiled module) and a shared [`Runtime`],
//! and gives a [`Handle`]: stop it in one
//! of three [`StopMode`]s, ask its status and metrics, join it.
//!
//! Reading and decoding run on one thread, windows and guest calls on
//! `parallelism` worker threads that each own a share of the keys; sinks
//! run on the async runtime and receive batches through a bounded channel,
//! so a slow sink slows the source down instead of filling memory.
//! Barriers, stops and the end of the input travel with the data
//! ([`Control`]); sinks commit at barriers, and source positions are
//! committed after them.

mod control;
mod evaluate;
mod handle;
mod outputs;
mod progress;
mod reader;
mod spec;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::Store;
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use crate::source::{Assignment, Polled, Source};
use crate::state::{Backend, KeyState, MemoryState, RocksState, RocksStore, StateBackendKind};
use crate::time::Watermarks;
use crate::wasm::{self, Module};
use crate::window::Snapshot;
pub use control::{Control, Stop, StopMode};
use crossbeam_channel::{SendTimeoutError, Sender as Inbox};
pub use evaluate::evaluate;
pub use handle::{Handle, Pipeline, State, Status};
pub(crate) use outputs::Output;
use outputs::{Ack, CutPartition, SourceCut};
use progress::{Done, Progress};
use reader::{Reader, Routed};
pub use spec::{Spec, TransformSpec};
use tokio::sync::mpsc::Sender;
use worker::Worker;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Module(#[from] wasm::LoadError),
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    #[error(transparent)]
    Source(#[from] crate::source::Error),
    #[error(transparent)]
    Sink(#[from] sluice_sink_api::Error),
    #[error("the compute thread failed: {0}")]
    Thread(String),
    #[error("the pipeline was joined already")]
    Joined,
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::Error),
    #[error("cannot restore the state of a checkpoint: {0}")]
    Restore(String),
    #[error(transparent)]
    State(#[from] crate::state::Error),
    /// A worker gave up because the pipeline was stopped at once (never
    /// reported: the step's records are not committed).
    #[error("stopped")]
    Stopped,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub events_read: u64,
    pub events_accepted: u64,
    pub dead_letters: u64,
    pub late_events: u64,
    pub feature_rows: u64,
    pub elapsed: Duration,
}

impl Summary {
    pub fn events_per_second(&self) -> f64 {
        self.events_read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events in {:.2} s ({:.0} events/s): {} accepted, {} dead letters, {} late, {} feature rows",
            self.events_read,
            self.elapsed.as_secs_f64(),
            self.events_per_second(),
            self.events_accepted,
            self.dead_letters,
            self.late_events,
            self.feature_rows
        )
    }
}

/// Compile the transform's module and check it is of the kind declared.
pub fn load_module(transform: &TransformSpec, engine: &wasm::Engine) -> Result<Module> {
    Ok(Module::load(engine, &transform.module, transform.kind, transform.limits)?)
}

/// A pipeline ready to start: its spec and its compiled module.
#[derive(Debug)]
pub struct Plan {
    spec: Spec,
    module: Module,
    /// Move existing checkpoints aside instead of restoring them.
    fresh: bool,
}

impl Plan {
    /// Compile the spec's module on the runtime's engine.
    pub fn new(spec: Spec, runtime: &Runtime) -> Result<Plan> {
        let module = load_module(&spec.transform, runtime.engine())?;
        Ok(Plan { spec, module, fresh: false })
    }

    /// With a module already compiled (on the same runtime's engine).
    pub fn with_module(spec: Spec, module: Module) -> Plan {
        Plan { spec, module, fresh: false }
    }

    /// Start over: checkpoints already taken are moved aside, not restored
    /// (a manifest whose window or key changed cannot restore them).
    pub fn fresh(mut self) -> Plan {
        self.fresh = true;
        self
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }
}

/// Start `plan` and wait for it to end (a bounded input): its summary and
/// its metrics.
pub async fn run(plan: Plan, runtime: &Runtime) -> Result<(Summary, Arc<Metrics>)> {
    let handle = Pipeline::start(plan, runtime).await?;
    let metrics = handle.metrics().clone();
    Ok((handle.join().await?, metrics))
}

fn open_source(spec: &Spec, store: Option<Arc<Store>>) -> Result<Box<dyn Source>> {
    Ok(spec.source.component().open(spec.max_event_bytes, store)?)
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

/// How often the partitions' consumer lag is brought up to date (the
/// broker's side of it comes every second, with librdkafka's statistics).
const LAG_EVERY: Duration = Duration::from_millis(500);

/// How long the reading thread waits for a busy worker before it tends
/// the source (a Kafka consumer must keep polling).
const HOLD: Duration = Duration::from_millis(1);

/// The compute loop: this thread polls the source, the reader decodes and
/// follows the watermark, and each worker thread processes the events of
/// the keys it owns. Sends outputs until the input ends, a stop, or the
/// sinks are gone; commits source positions as the sinks' side
/// acknowledges barriers.
fn compute(
    spec: &Spec,
    module: &Module,
    tx: Sender<Output>,
    (acked, cuts, store): (&std::sync::mpsc::Receiver<Ack>, std::sync::mpsc::Sender<SourceCut>, Option<Arc<Store>>),
    metrics: &Metrics,
    stop: &Stop,
) -> Result<()> {
    let checkpoints = store.is_some();
    let mut source = open_source(spec, store)?;
    let count = spec.parallelism;
    let watermarks = Watermarks::new(spec.out_of_orderness_ms, spec.idle_timeout);
    let mut reader = Reader::new(spec.schema.decoder(), spec.max_event_bytes, watermarks, count, metrics);
    let mut progress = Progress::default();
    // Barriers go through as often as checkpoints are taken, or else as
    // the source commits; a source that does neither only has the last.
    let every = match &spec.checkpoint {
        Some(c) => Some(c.interval.std()),
        None => spec.source.component().commit_interval(),
    };
    let mut names: Vec<Option<(Arc<str>, i32)>> = Vec::new();
    let rocks = match spec.state.backend {
        StateBackendKind::Memory => None,
        StateBackendKind::RocksDb => {
            let parent = spec.state.path.clone().unwrap_or_else(std::env::temp_dir);
            Some(RocksStore::open(&parent, &spec.name, spec.state.memory(), count)?)
        }
    };
    let read = std::thread::scope(|scope| {
        let mut inboxes = Vec::with_capacity(count);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            // Two chunks in flight per worker: enough to overlap reading
            // with work, little enough to bound memory.
            let (inbox, shares) = crossbeam_channel::bounded::<Routed>(2);
            inboxes.push(inbox);
            let state = match &rocks {
                None => Backend::Memory(MemoryState::new()),
                Some(store) => Backend::Rocks(RocksState::new(Arc::clone(store), index)),
            };
            let mut worker = Worker::new(index, spec, module, state, (&tx, metrics, stop))?;
            let thread = std::thread::Builder::new()
                .name(format!("sluice-worker-{index}"))
                .spawn_scoped(scope, move || -> Result<()> {
                    for share in shares {
                        match worker.chunk(share) {
                            Err(Error::Stopped) => return Ok(()),
                            r => r?,
                        }
                    }
                    Ok(())
                })
                .map_err(|e| Error::Thread(e.to_string()))?;
            workers.push(thread);
        }
        let (mut seq, mut epoch) = (0u64, 0u64);
        let mut barrier_due = every.map(|d| Instant::now() + d);
        let mut lag_due = Instant::now();
        // The barrier a hand-over of revoked partitions waits for.
        let mut handing_over: Option<u64> = None;
        let read = (|| -> Result<()> {
            loop {
                while let Ok(ack) = acked.try_recv() {
                    let epoch = ack.epoch;
                    source.commit(&committable(&mut progress, ack))?;
                    if handing_over.is_some_and(|e| epoch >= e) {
                        handing_over = None;
                        source.release(ack.checkpointed);
                    }
                }
                if stop.cancelled() {
                    return Ok(());
                }
                let now = Instant::now();
                // Before polling: a source waiting for its partitions
                // hands out nothing for a long time.
                if now >= lag_due {
                    metrics.set_partitions(source.lag());
                    metrics.set_waiting(source.waiting());
                    lag_due = now + LAG_EVERY;
                }
                let mut hand_over = false;
                let (mut shares, last) = match stop.requested() {
                    Some(StopMode::Drain) => {
                        tracing::info!("draining: firing every open window, then writing and committing");
                        (reader.end(seq), Some(Control::End(0)))
                    }
                    Some(_) => {
                        tracing::info!("stopping: no more records; writing and committing what was read");
                        (reader.tick(seq, &[], true), Some(Control::Stop(0)))
                    }
                    None => match source.poll()? {
                        Polled::Chunk { chunk, caught_up } => {
                            seq += 1;
                            (reader.read(Arc::new(chunk), seq, caught_up, &mut progress), None)
                        }
                        Polled::Assigned(mut assigned) => {
                            for a in &assigned {
                                reader.watermarks.assign(a.slot, now);
                                let latest = a.restored.as_ref().and_then(|r| r.state.max_event_time);
                                if let Some(t) = latest {
                                    reader.watermarks.observe(a.slot, t, now);
                                }
                                progress.assign(a.slot, a.start, latest);
                                if names.len() <= a.slot {
                                    names.resize(a.slot + 1, None);
                                }
                                names[a.slot] = Some((a.topic.clone(), a.partition));
                            }
                            if assigned.iter().all(|a| a.restored.is_none()) {
                                continue;
                            }
                            // Restored state goes in before the partitions'
                            // first records.
                            let mut shares = reader.tick(seq, &[], false);
                            for (share, restore) in shares.iter_mut().zip(restores(&mut assigned, count)) {
                                share.restore = restore;
                            }
                            (shares, None)
                        }
                        Polled::Revoked(slots) => {
                            for &s in &slots {
                                reader.watermarks.revoke(s);
                                progress.revoke(s);
                            }
                            (reader.tick(seq, &slots, true), None)
                        }
                        Polled::Finished(slots) => {
                            slots.iter().for_each(|&s| reader.watermarks.finish(s));
                            (reader.tick(seq, &[], true), None)
                        }
                        Polled::Idle => (reader.tick(seq, &[], true), None),
                        // Everything read of the revoked partitions is in
                        // this barrier's checkpoint; windows are not
                        // flushed (the partitions' new owner fires them).
                        Polled::HandOver => {
                            hand_over = true;
                            (reader.tick(seq, &[], false), None)
                        }
                        Polled::Waiting => continue,
                        // The end of a bounded input: the final watermark
                        // fires every remaining window.
                        Polled::End => (reader.end(seq), Some(Control::End(0))),
                    },
                };
                let control = match last {
                    Some(last) => Some(last),
                    None if hand_over || barrier_due.is_some_and(|due| now >= due) => Some(Control::Barrier(0)),
                    None => None,
                };
                if let Some(first) = shares.first() {
                    metrics.set_watermark(first.watermark);
                }
                if let Some((read, total)) = source.progress() {
                    Metrics::set(&metrics.source_read, read);
                    Metrics::set(&metrics.source_total, total);
                }
                if let Some(control) = control {
                    epoch += 1;
                    barrier_due = every.map(|d| now + d);
                    if hand_over {
                        handing_over = Some(epoch);
                    }
                    shares.iter_mut().for_each(|s| s.control = Some(control.numbered(epoch)));
                    if checkpoints {
                        let partitions = progress
                            .cut()
                            .into_iter()
                            .filter_map(|(slot, offset, max_event_time)| {
                                let (topic, partition) = names.get(slot)?.clone()?;
                                let byte_offset = source.byte_offset(slot);
                                Some(CutPartition { slot, topic, partition, offset, byte_offset, max_event_time })
                            })
                            .collect();
                        // The outputs' side may be gone (it failed).
                        let _ = cuts.send(SourceCut { epoch, partitions });
                    }
                }
                // A worker that stopped has failed; its error is reported
                // below.
                let sending = Instant::now();
                let sent = send(&inboxes, shares, source.as_mut())?;
                // Time the workers could take nothing does not make a
                // partition idle: its records are waiting, not absent.
                reader.watermarks.hold(sending.elapsed());
                if !sent || last.is_some() {
                    return Ok(());
                }
            }
        })();
        drop(inboxes);
        for worker in workers {
            worker.join().map_err(|_| Error::Thread("a worker panicked".into()))??;
        }
        read
    });
    // Where the partitions ended, rather than the last sample's figures.
    metrics.set_partitions(source.lag());
    metrics.set_waiting(None);
    // The sinks' side acknowledges the last barrier once every worker is
    // done: commit it before the source closes. Acks queued before it are
    // older: the last one counts.
    drop(tx);
    if read.is_ok()
        && !stop.cancelled()
        && let Some(ack) = acked.iter().last()
    {
        source.commit_last(&committable(&mut progress, ack))?;
    }
    read
}

/// The offsets a barrier's acknowledgement allows to commit: all that
/// was read before it once its checkpoint is durable; without one, only
/// what no window still holds.
fn committable(progress: &mut Progress, ack: Ack) -> Vec<(usize, i64)> {
    let done = match ack.checkpointed {
        true => Done { seq: ack.done.seq, oldest: i64::MAX },
        false => ack.done,
    };
    progress.committable(done)
}

/// Hand each worker its share, holding the source while a worker's inbox
/// is full (backpressure from a slow or failing sink). `false` when a
/// worker has stopped.
fn send(inboxes: &[Inbox<Routed>], shares: Vec<Routed>, source: &mut dyn Source) -> Result<bool> {
    for (inbox, share) in inboxes.iter().zip(shares) {
        let mut share = share;
        loop {
            // Waits for room, and wakes as soon as there is some.
            match inbox.send_timeout(share, HOLD) {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(back)) => {
                    share = back;
                    source.hold(Duration::ZERO)?;
                }
                Err(SendTimeoutError::Disconnected(_)) => return Ok(false),
            }
        }
    }
    Ok(true)
}
