//! A running pipeline: source → decode → windows → transform → sinks.
//!
//! The compute loop runs on its own thread (decoding, windowing and guest
//! calls are CPU work); sinks run on the async runtime and receive batches
//! through a bounded channel, so a slow sink slows the source down instead
//! of filling memory.

mod evaluate;
mod outputs;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_sink_api::{DeadLetter, LateEvent, Position};

use crate::manifest::{Manifest, SourceConfig, TransformKind};
use crate::metrics::Metrics;
use crate::source::{Chunk, FileSource};
use crate::time::{Watermarks, now_ms};
use crate::wasm::{self, Instance, Module};
use crate::window::{Mode, Operator};
pub use evaluate::evaluate;
pub use outputs::Output;
use tokio::sync::mpsc::Sender;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Module(#[from] wasm::LoadError),
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    #[error("cannot read {path}: {source}")]
    Source { path: String, source: std::io::Error },
    #[error(transparent)]
    Sink(#[from] sluice_sink_api::Error),
    #[error("the compute thread failed: {0}")]
    Thread(String),
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

/// Run a pipeline over a bounded source to its end.
pub async fn run(manifest: Manifest, metrics: Arc<Metrics>) -> Result<Summary> {
    let started = Instant::now();
    let module = load_module(&manifest)?;
    let outputs = outputs::Outputs::open(&manifest.outputs).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Output>(4);
    tracing::info!(pipeline = %manifest.name, workers = manifest.parallelism(), module = module.name(), "running");
    let compute_metrics = metrics.clone();
    let compute = std::thread::Builder::new()
        .name("sluice-compute".into())
        .spawn(move || compute(&manifest, &module, &tx, &compute_metrics))
        .map_err(|e| Error::Thread(e.to_string()))?;
    let written = outputs.drain(rx, &metrics).await;
    let computed = compute.join().map_err(|_| Error::Thread("panicked".into()))?;
    computed?;
    written?;
    let g = Metrics::get;
    Ok(Summary {
        events_read: g(&metrics.events_read),
        events_accepted: g(&metrics.events_accepted),
        dead_letters: g(&metrics.dead_letters_decode)
            + g(&metrics.dead_letters_validate)
            + g(&metrics.dead_letters_transform),
        late_events: g(&metrics.events_late),
        feature_rows: g(&metrics.feature_rows),
        elapsed: started.elapsed(),
    })
}

/// The compute loop over a file source: this thread reads chunks and hands
/// each to every worker; each worker decodes it, follows the (shared)
/// watermark and processes the keys it owns. Sends outputs until the input
/// ends (or the sinks are gone).
fn compute(manifest: &Manifest, module: &Module, tx: &Sender<Output>, metrics: &Metrics) -> Result<()> {
    let SourceConfig::File { path, step } = &manifest.source;
    let source_err = |source| Error::Source { path: path.display().to_string(), source };
    let mut source = FileSource::open(path, *step).map_err(source_err)?;
    let count = manifest.parallelism();
    std::thread::scope(|scope| {
        let mut inboxes = Vec::with_capacity(count);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            // Two chunks in flight per worker: enough to overlap reading
            // with work, little enough to bound memory.
            let (inbox, chunks) = std::sync::mpsc::sync_channel::<Arc<Chunk>>(2);
            inboxes.push(inbox);
            let mut worker = Worker::new(manifest, module, tx, metrics, index, count)?;
            let thread = std::thread::Builder::new()
                .name(format!("sluice-worker-{index}"))
                .spawn_scoped(scope, move || -> Result<()> {
                    for chunk in chunks {
                        let (now_ms, now) = (now_ms(), Instant::now());
                        for record in chunk.records() {
                            worker.record(&chunk.source, record, now_ms, now)?;
                        }
                        worker.end_chunk(now)?;
                    }
                    worker.finish()
                })
                .map_err(|e| Error::Thread(e.to_string()))?;
            workers.push(thread);
        }
        let mut read = Ok(());
        loop {
            match source.next_chunk() {
                Ok(Some(chunk)) => {
                    let chunk = Arc::new(chunk);
                    // A worker that stopped has failed; its error is
                    // reported below.
                    if inboxes.iter().any(|inbox| inbox.send(chunk.clone()).is_err()) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read = Err(source_err(e));
                    break;
                }
            }
        }
        drop(inboxes);
        for worker in workers {
            worker.join().map_err(|_| Error::Thread("a worker panicked".into()))??;
        }
        read
    })
}

/// Decode, window and evaluate for the keys one worker owns.
pub struct Worker<'a> {
    schema: crate::decode::Schema,
    operator: Operator,
    instance: Instance,
    mode: Mode,
    max_batch: usize,
    max_delay: Duration,
    /// When the oldest window waiting for a call fired.
    pending_since: Option<Instant>,
    /// This worker's share of the keys: those that hash to `index`.
    index: usize,
    count: usize,
    pub watermarks: Watermarks,
    tx: &'a Sender<Output>,
    metrics: &'a Metrics,
    dead: Vec<DeadLetter>,
    late: Vec<LateEvent>,
}

/// Which worker owns `key`.
fn owner(key: &str, count: usize) -> usize {
    use std::hash::BuildHasher;
    (rustc_hash::FxBuildHasher.hash_one(key) % count as u64) as usize
}

impl<'a> Worker<'a> {
    pub fn new(
        manifest: &Manifest,
        module: &Module,
        tx: &'a Sender<Output>,
        metrics: &'a Metrics,
        index: usize,
        count: usize,
    ) -> Result<Self> {
        let mode = kinds(manifest).1;
        let idle = manifest.time.idle_timeout.map(|d| d.std());
        Ok(Worker {
            schema: manifest.schema(),
            operator: Operator::in_memory(manifest.window_spec(), mode, manifest.fields()),
            instance: module.instantiate().map_err(|e| Error::Instantiate(format!("{e:#}")))?,
            mode,
            max_batch: manifest.transform.max_batch,
            max_delay: manifest.transform.max_delay.std(),
            pending_since: None,
            index,
            count: count.max(1),
            watermarks: Watermarks::new(1, manifest.time.out_of_orderness.millis(), idle),
            tx,
            metrics,
            dead: Vec::new(),
            late: Vec::new(),
        })
    }

    /// Decode one record and assign it to windows.
    pub fn record(&mut self, source: &str, record: crate::source::Record<'_>, now_ms: i64, now: Instant) -> Result<()> {
        // Every worker sees every record (and so the same watermark);
        // worker 0 counts them and owns the bad ones.
        let first = self.index == 0;
        if first {
            Metrics::add(&self.metrics.events_read, 1);
        }
        let position =
            || Position { source: source.to_string(), partition: record.partition as i32, offset: record.offset };
        match self.schema.decode(record.bytes, now_ms) {
            Ok(event) => {
                self.watermarks.observe(record.partition, event.time, now);
                if self.count > 1 && owner(&event.key, self.count) != self.index {
                    return Ok(());
                }
                if let Err(late) = self.operator.process(&event) {
                    self.late.push(LateEvent {
                        raw: record.bytes.to_vec(),
                        position: position(),
                        event_time: event.time,
                        watermark: late.watermark,
                        key: event.key.into_owned(),
                    });
                }
                if self.operator.pending_windows() >= self.max_batch {
                    self.evaluate()?;
                }
            }
            Err(_) if !first => self.watermarks.touch(record.partition, now),
            Err(e) => {
                self.watermarks.touch(record.partition, now);
                tracing::debug!(source, offset = record.offset, class = e.class(), "{e}");
                self.dead.push(DeadLetter {
                    raw: record.bytes.to_vec(),
                    position: Some(position()),
                    stage: e.stage(),
                    error_class: e.class().to_string(),
                    message: e.to_string(),
                    at: now_ms,
                });
            }
        }
        Ok(())
    }

    /// Between chunks: late updates and the new watermark. Fired windows
    /// wait for more (a key's consecutive windows then share one copy of
    /// their events in a call) until `max_batch` of them or `max_delay`;
    /// aggregates fold their slices, so they are evaluated at once.
    pub fn end_chunk(&mut self, now: Instant) -> Result<()> {
        self.step(now, false)
    }

    /// The end of a bounded input: the final watermark, and everything out.
    pub fn finish(&mut self) -> Result<()> {
        self.watermarks.finish(0);
        self.step(Instant::now(), true)
    }

    fn step(&mut self, now: Instant, last: bool) -> Result<()> {
        self.operator.flush_late();
        let watermark = self.watermarks.current(now);
        while !self.operator.advance(watermark, self.max_batch) {
            self.evaluate()?;
        }
        if self.mode == Mode::Aggregate {
            self.operator.collect_folds();
            self.evaluate()?;
        } else if self.operator.pending_windows() > 0 {
            let since = *self.pending_since.get_or_insert(now);
            if last || now.duration_since(since) >= self.max_delay {
                self.evaluate()?;
            }
        }
        self.send_side_outputs()
    }

    fn evaluate(&mut self) -> Result<()> {
        self.pending_since = None;
        let batch = self.operator.take_batch();
        if batch.is_empty() {
            return Ok(());
        }
        let (out, batch) = evaluate(&mut self.instance, self.mode, batch, self.metrics);
        self.operator.recycle(batch);
        if let Some((folds, results)) = out.folds {
            self.operator.apply_folds(folds, results);
        }
        self.dead.extend(out.dead);
        if !out.rows.is_empty() {
            Metrics::add(&self.metrics.feature_rows, out.rows.len() as u64);
            self.send(Output::Features(out.rows))?;
        }
        Ok(())
    }

    fn send_side_outputs(&mut self) -> Result<()> {
        let stats = std::mem::take(&mut self.operator.stats);
        let m = self.metrics;
        Metrics::add(&m.events_accepted, stats.events_accepted);
        Metrics::add(&m.events_late, stats.events_late);
        Metrics::add(&m.windows_fired_close, stats.fired_close);
        Metrics::add(&m.windows_fired_event, stats.fired_event);
        Metrics::add(&m.windows_fired_late, stats.fired_late);
        Metrics::add(&m.keys_expired, stats.keys_expired);
        if !self.dead.is_empty() {
            for d in &self.dead {
                let counter = match d.stage {
                    sluice_sink_api::Stage::Decode => &m.dead_letters_decode,
                    sluice_sink_api::Stage::Validate => &m.dead_letters_validate,
                    sluice_sink_api::Stage::Transform => &m.dead_letters_transform,
                };
                Metrics::add(counter, 1);
            }
            let dead = std::mem::take(&mut self.dead);
            self.send(Output::DeadLetters(dead))?;
        }
        if !self.late.is_empty() {
            let late = std::mem::take(&mut self.late);
            self.send(Output::LateEvents(late))?;
        }
        Ok(())
    }

    fn send(&self, output: Output) -> Result<()> {
        self.tx.blocking_send(output).map_err(|_| Error::Thread("the sinks stopped".into()))
    }
}

/// `sluice run` for a manifest path: load, run, print the summary.
pub async fn run_file(path: &Path, overrides: &[String]) -> anyhow::Result<Summary> {
    let manifest = Manifest::load(path, overrides)?;
    let metrics = Arc::new(Metrics::default());
    Ok(run(manifest, metrics).await?)
}
