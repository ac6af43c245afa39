//! A running pipeline: source → decode → windows → transform → sinks.
//!
//! Reading and decoding run on one thread, windows and guest calls on
//! `parallelism` worker threads that each own a share of the keys; sinks
//! run on the async runtime and receive batches through a bounded channel,
//! so a slow sink slows the source down instead of filling memory.

mod evaluate;
mod outputs;
mod progress;
mod reader;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::manifest::{Manifest, SourceConfig, TransformKind};
use crate::metrics::Metrics;
use crate::source::{FileSource, KafkaSource, Polled, Source};
use crate::time::Watermarks;
use crate::wasm::{self, Module};
use crate::window::Mode;
use crossbeam_channel::{SendTimeoutError, Sender as Inbox};
pub use evaluate::evaluate;
pub use outputs::Output;
use progress::{Done, Progress};
use reader::{Reader, Routed};
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
    /// A worker gave up a step because the pipeline is stopping (never
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

/// Limits of the manifest's transform.
pub fn limits(manifest: &Manifest) -> wasm::Limits {
    wasm::Limits {
        timeout: manifest.transform.timeout.std(),
        memory_bytes: manifest.transform.memory_mib as usize * 1024 * 1024,
    }
}

fn kinds(manifest: &Manifest) -> (wasm::Kind, Mode) {
    match manifest.transform.kind {
        TransformKind::Window => (wasm::Kind::Window, Mode::Window),
        TransformKind::Aggregate => (wasm::Kind::Aggregate, Mode::Aggregate),
    }
}

/// Compile the manifest's module and check it against the manifest.
pub fn load_module(manifest: &Manifest) -> Result<Module> {
    Ok(Module::load(&manifest.transform.module, kinds(manifest).0, limits(manifest))?)
}

/// Run a pipeline: to the end of a bounded source, or until it fails.
pub async fn run(manifest: Manifest, metrics: Arc<Metrics>) -> Result<Summary> {
    run_until(manifest, metrics, Arc::new(AtomicBool::new(false))).await
}

/// Run a pipeline until the end of a bounded source, a failure, or `stop`.
/// A stop takes no more records, writes and flushes the outputs of those
/// taken, commits what is safe to commit and returns; windows still open
/// are not fired (their records are read again after a restart).
pub async fn run_until(manifest: Manifest, metrics: Arc<Metrics>, stop: Arc<AtomicBool>) -> Result<Summary> {
    let module = load_module(&manifest)?;
    run_module(manifest, module, metrics, stop).await
}

/// [`run_until`] with the manifest's module already loaded.
pub async fn run_module(
    manifest: Manifest,
    module: Module,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> Result<Summary> {
    let started = Instant::now();
    let outputs = outputs::Outputs::open(&manifest.outputs).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Output>(4);
    let (acks, acked) = std::sync::mpsc::channel::<Done>();
    let commits = manifest.source.commit_interval().map(|interval| outputs::Commits {
        interval,
        workers: manifest.parallelism(),
        acks,
    });
    tracing::info!(pipeline = %manifest.name, workers = manifest.parallelism(), module = module.name(), "running");
    let compute_metrics = metrics.clone();
    let compute = std::thread::Builder::new()
        .name("sluice-compute".into())
        .spawn({
            let stop = stop.clone();
            move || compute(&manifest, &module, tx, &acked, &compute_metrics, &stop)
        })
        .map_err(|e| Error::Thread(e.to_string()))?;
    let written = outputs.drain(rx, &metrics, commits, &stop).await;
    let computed = compute.join().map_err(|_| Error::Thread("panicked".into()))?;
    // A sink's failure stops the compute thread too: report its cause.
    written?;
    computed?;
    let g = Metrics::get;
    Ok(Summary {
        events_read: g(&metrics.events_read),
        events_accepted: g(&metrics.events_accepted),
        dead_letters: g(&metrics.dead_letters_decode)
            + g(&metrics.dead_letters_validate)
            + g(&metrics.dead_letters_transform)
            + g(&metrics.dead_letters_sink),
        late_events: g(&metrics.events_late),
        feature_rows: g(&metrics.feature_rows),
        elapsed: started.elapsed(),
    })
}

fn open_source(manifest: &Manifest) -> Result<Box<dyn Source>> {
    Ok(match &manifest.source {
        SourceConfig::File { path, step } => Box::new(FileSource::open(path, *step, manifest.events.max_bytes)?),
        SourceConfig::Kafka(config) => Box::new(KafkaSource::open(config, manifest.events.max_bytes)?),
    })
}

/// How long the reading thread waits for a busy worker before it tends
/// the source (a Kafka consumer must keep polling).
const HOLD: Duration = Duration::from_millis(1);

/// The compute loop: this thread polls the source, the reader decodes and
/// follows the watermark, and each worker thread processes the events of
/// the keys it owns. Sends outputs until the input ends (or the sinks are
/// gone); commits source offsets as the sinks' side acknowledges them.
fn compute(
    manifest: &Manifest,
    module: &Module,
    tx: Sender<Output>,
    acked: &std::sync::mpsc::Receiver<Done>,
    metrics: &Metrics,
    stop: &AtomicBool,
) -> Result<()> {
    let mut source = open_source(manifest)?;
    let count = manifest.parallelism();
    let idle = manifest.time.idle_timeout.map(|d| d.std());
    let watermarks = Watermarks::new(manifest.time.out_of_orderness.millis(), idle);
    let mut reader = Reader::new(manifest.schema(), manifest.events.max_bytes, watermarks, count, metrics);
    let mut progress = Progress::default();
    let read = std::thread::scope(|scope| {
        let mut inboxes = Vec::with_capacity(count);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            // Two chunks in flight per worker: enough to overlap reading
            // with work, little enough to bound memory.
            let (inbox, shares) = crossbeam_channel::bounded::<Routed>(2);
            inboxes.push(inbox);
            let mut worker = Worker::new(index, manifest, module, &tx, metrics, stop)?;
            let thread = std::thread::Builder::new()
                .name(format!("sluice-worker-{index}"))
                .spawn_scoped(scope, move || -> Result<()> {
                    for share in shares {
                        worker.chunk(share)?;
                    }
                    Ok(())
                })
                .map_err(|e| Error::Thread(e.to_string()))?;
            workers.push(thread);
        }
        let mut seq = 0u64;
        let read = (|| -> Result<()> {
            loop {
                if stop.load(Ordering::Relaxed) {
                    tracing::info!("stopping: no more records; writing and committing what was read");
                    return Ok(());
                }
                while let Ok(done) = acked.try_recv() {
                    source.commit(&progress.committable(done))?;
                }
                let now = Instant::now();
                let shares = match source.poll()? {
                    Polled::Chunk { chunk, caught_up } => {
                        seq += 1;
                        reader.read(Arc::new(chunk), seq, caught_up, &mut progress)
                    }
                    Polled::Assigned(slots) => {
                        slots.iter().for_each(|&s| reader.watermarks.assign(s, now));
                        continue;
                    }
                    Polled::Revoked(slots) => {
                        for &s in &slots {
                            reader.watermarks.revoke(s);
                            progress.revoke(s);
                        }
                        reader.tick(seq, &slots, true)
                    }
                    Polled::Finished(slots) => {
                        slots.iter().for_each(|&s| reader.watermarks.finish(s));
                        reader.tick(seq, &[], true)
                    }
                    Polled::Idle => reader.tick(seq, &[], true),
                    // The end of a bounded input: the final watermark
                    // fires every remaining window.
                    Polled::End => reader.end(seq),
                };
                let end = shares.iter().any(|s| s.last);
                // A worker that stopped has failed; its error is reported
                // below.
                if !send(&inboxes, shares, source.as_mut())? || end {
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
    // The sinks' side flushes once every worker is done and acknowledges
    // the last progress: commit it before the source closes. Acks queued
    // before it are older: the last one counts.
    drop(tx);
    if read.is_ok()
        && let Some(done) = acked.iter().last()
    {
        source.commit_last(&progress.committable(done))?;
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
