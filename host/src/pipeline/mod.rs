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
mod driver;
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
use crate::source::Source;
use crate::state::{Backend, MemoryState, RocksState, RocksStore, StateBackendKind};
use crate::time::Watermarks;
use crate::wasm::{self, Module};
pub use control::{Control, Stop, StopMode};
use crossbeam_channel::{SendTimeoutError, Sender as Inbox};
use driver::Driver;
pub use evaluate::evaluate;
pub use handle::{Handle, Pipeline, State, Status};
pub(crate) use outputs::Output;
use outputs::{Ack, SourceCut, WorkerSnapshot};
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
    Decoder(#[from] crate::decode::avro::BuildError),
    #[error(transparent)]
    Sink(#[from] sluice_sink_api::Error),
    #[error("the compute thread failed: {0}")]
    Thread(String),
    #[error("the pipeline was joined already")]
    Joined,
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::Error),
    #[error("cannot restore the state of a checkpoint: {0}")]
    Restore(#[source] crate::state::CodecError),
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
    /// A backfill's bounds (`sluice backfill`), for its Iceberg sink.
    backfill: Option<sluice_sink_api::Backfill>,
}

impl Plan {
    /// Compile the spec's module on the runtime's engine.
    pub fn new(spec: Spec, runtime: &Runtime) -> Result<Plan> {
        let module = load_module(&spec.transform, runtime.engine())?;
        Ok(Plan { spec, module, fresh: false, backfill: None })
    }

    /// With a module already compiled (on the same runtime's engine).
    pub fn with_module(spec: Spec, module: Module) -> Plan {
        Plan { spec, module, fresh: false, backfill: None }
    }

    /// A backfill (its spec made by [`crate::backfill::plan`]): its
    /// Iceberg sink writes the windows `bounds` covers.
    pub fn backfill(mut self, bounds: sluice_sink_api::Backfill) -> Plan {
        self.backfill = Some(bounds);
        self
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

/// How often the partitions' consumer lag is brought up to date (the
/// broker's side of it comes every second, with librdkafka's statistics).
const LAG_EVERY: Duration = Duration::from_millis(500);

/// How long the reading thread waits for a busy worker before it tends
/// the source (a Kafka consumer must keep polling).
const HOLD: Duration = Duration::from_millis(1);

/// The reading thread's ends of the channels to and from the checkpoint
/// coordinator, and the checkpoint store.
pub(crate) struct Links {
    /// Barriers the outputs have committed.
    pub acks: std::sync::mpsc::Receiver<Ack>,
    /// Where the source was at each barrier.
    pub cuts: std::sync::mpsc::Sender<SourceCut>,
    /// For the workers: their state at each barrier.
    pub snapshots: std::sync::mpsc::Sender<WorkerSnapshot>,
    pub store: Option<Arc<Store>>,
}

/// The compute loop: this thread polls the source, the reader decodes and
/// follows the watermark, and each worker thread processes the events of
/// the keys it owns. Sends outputs until the input ends, a stop, or the
/// sinks are gone; commits source positions as the sinks' side
/// acknowledges barriers.
fn compute(
    spec: &Spec,
    module: &Module,
    tx: Sender<Output>,
    links: Links,
    metrics: &Metrics,
    stop: &Stop,
) -> Result<()> {
    let Links { acks: acked, cuts, snapshots, store } = links;
    let checkpoints = store.is_some();
    let mut source = open_source(spec, store)?;
    let count = spec.parallelism;
    let watermarks = Watermarks::new(spec.out_of_orderness_ms, spec.idle_timeout);
    let reader = Reader::new(spec.schema.decoder()?, spec.max_event_bytes, watermarks, count, metrics);
    // Barriers go through as often as checkpoints are taken, or else as
    // the source commits; a source that does neither only has the last.
    let every = match &spec.checkpoint {
        Some(c) => Some(c.interval.std()),
        None => spec.source.component().commit_interval(),
    };
    let mut driver = Driver::new(reader, count, every, checkpoints, Instant::now());
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
            let snapshots = checkpoints.then(|| snapshots.clone());
            let mut worker = Worker::new(index, spec, module, state, (&tx, metrics, stop), snapshots)?;
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
        let mut lag_due = Instant::now();
        let read = (|| -> Result<()> {
            loop {
                while let Ok(ack) = acked.try_recv() {
                    driver.acknowledged(ack, source.as_mut())?;
                }
                if stop.cancelled() {
                    return Ok(());
                }
                let now = Instant::now();
                // Before polling: a source waiting for its partitions
                // hands out nothing for a long time.
                if now >= lag_due {
                    metrics.set_partitions(source.lag());
                    metrics.set_waiting(driver.waiting(now).or_else(|| source.waiting()));
                    lag_due = now + LAG_EVERY;
                }
                let Some(turn) = driver.turn(source.as_mut(), stop.requested(), now)? else {
                    continue;
                };
                if let Some(first) = turn.shares.first() {
                    metrics.set_watermark(first.watermark);
                }
                if let Some((read, total)) = source.progress() {
                    Metrics::set(&metrics.source_read, read);
                    Metrics::set(&metrics.source_total, total);
                }
                if let Some(cut) = turn.cut {
                    // The outputs' side may be gone (it failed).
                    let _ = cuts.send(cut);
                }
                // A worker that stopped has failed; its error is reported
                // below.
                let sending = Instant::now();
                let sent = send(&inboxes, turn.shares, source.as_mut())?;
                // Time the workers could take nothing does not make a
                // partition idle: its records are waiting, not absent.
                driver.reader.watermarks.hold(sending.elapsed());
                if !sent || turn.last {
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
        source.commit_last(&driver.committable(ack))?;
    }
    read
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
