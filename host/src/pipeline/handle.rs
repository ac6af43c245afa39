//! A pipeline you can hold: started on a shared [`Runtime`], stopped in one
//! of three modes, asked for its status and metrics, joined for its
//! summary (as Vector's `RunningTopology`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::Links;
use super::control::{Stop, StopMode};
use super::outputs::{Ack, Coordinator, Output, Outputs, SourceCut, WorkerSnapshot};
use super::{Error, Plan, Result, Summary, compute};
use crate::checkpoint::Store;
use crate::metrics::Metrics;
use crate::runtime::Runtime;

/// Starts pipelines.
#[derive(Debug)]
pub struct Pipeline;

/// Where a pipeline is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running,
    /// Asked to stop, finishing as the mode says.
    Stopping(StopMode),
    /// Ended: its input ended or it was stopped.
    Finished,
    /// Ended on an error.
    Failed(String),
}

/// What a pipeline is doing, for people and the admin API.
#[derive(Debug, Clone)]
pub struct Status {
    pub name: String,
    pub state: State,
    pub events_read: u64,
    pub feature_rows: u64,
    pub dead_letters: u64,
    /// The operator's watermark (ms since the epoch), once there is one.
    pub watermark: Option<i64>,
    /// The last barrier whose outputs every sink has committed.
    pub last_barrier: Option<u64>,
}

/// A running pipeline.
#[derive(Debug)]
pub struct Handle {
    name: String,
    stop: Arc<Stop>,
    metrics: Arc<Metrics>,
    ended: Arc<Mutex<Option<State>>>,
    /// Taken by the one [`Handle::join`].
    outcome: Mutex<Option<oneshot::Receiver<Result<Summary>>>>,
}

impl Pipeline {
    /// Open the plan's sinks and start reading. Fails if a sink cannot be
    /// opened; everything after that is reported by [`Handle::join`].
    /// Whatever runtime it is called from, the pipeline's tasks (and the
    /// sinks' connections) are the runtime's: the admin API of a host
    /// runs on a runtime of its own.
    pub async fn start(plan: Plan, runtime: &Runtime) -> Result<Handle> {
        let on = runtime.clone();
        let started = runtime.tokio().spawn(async move { Self::start_on(plan, &on).await });
        started.await.map_err(|e| Error::Thread(format!("starting the pipeline: {e}")))?
    }

    async fn start_on(plan: Plan, runtime: &Runtime) -> Result<Handle> {
        let Plan { spec, module, fresh, backfill } = plan;
        // Reading (or moving aside) the checkpoints waits on the disk: off
        // the async threads.
        let (store, checkpointed) = match spec.checkpoint.clone() {
            Some(config) => {
                let opened = tokio::task::spawn_blocking({
                    let (name, layout) = (spec.name.clone(), spec.layout());
                    move || -> Result<_> {
                        let store = Store::open(&config, &name, layout, fresh)?;
                        let last = store.last_epochs()?;
                        Ok((Some(Arc::new(store)), last))
                    }
                });
                opened.await.map_err(|e| Error::Thread(format!("opening the checkpoints: {e}")))??
            }
            None => (None, Default::default()),
        };
        let started = Instant::now();
        let name = spec.name.clone();
        let (stop, metrics) = (Arc::new(Stop::default()), Arc::new(Metrics::default()));
        let context = sluice_sink_api::Context {
            pipeline: spec.name.clone(),
            run: store.as_ref().map_or_else(crate::checkpoint::run_id, |s| s.host().to_string()),
            schema: module.schema().clone(),
            checkpointed,
            checkpoints: store.is_some(),
            key_type: spec.schema.key_type,
            backfill,
        };
        let outputs = Outputs::open(&spec.outputs, &context).await?;
        let (tx, rx) = mpsc::channel::<Output>(4);
        let (acks, acked) = std::sync::mpsc::channel::<Ack>();
        let (cut_tx, cuts) = std::sync::mpsc::channel::<SourceCut>();
        let (snapshot_tx, snapshots) = std::sync::mpsc::channel::<WorkerSnapshot>();
        tracing::info!(pipeline = %spec.name, workers = spec.parallelism, module = module.name(), "running");
        let coordinator = Coordinator::new(spec.parallelism, acks, cuts, snapshots, store.clone());
        let written = runtime.tokio().spawn({
            let (metrics, stop) = (metrics.clone(), stop.clone());
            async move { outputs.drain(rx, coordinator, &metrics, &stop).await }
        });
        let (computed_tx, computed) = oneshot::channel();
        std::thread::Builder::new()
            .name("sluice-compute".into())
            .spawn({
                let (metrics, stop) = (metrics.clone(), stop.clone());
                move || {
                    let links = Links { acks: acked, cuts: cut_tx, snapshots: snapshot_tx, store };
                    let r = compute(&spec, &module, tx, links, &metrics, &stop);
                    let _ = computed_tx.send(r);
                }
            })
            .map_err(|e| Error::Thread(e.to_string()))?;
        let ended = Arc::new(Mutex::new(None));
        let (outcome_tx, outcome) = oneshot::channel();
        runtime.tokio().spawn({
            let (metrics, ended) = (metrics.clone(), ended.clone());
            async move {
                let written = written.await.map_err(|e| Error::Thread(format!("the sinks' task: {e}")));
                let computed = computed.await.map_err(|_| Error::Thread("the compute thread panicked".into()));
                // A sink's failure stops the compute thread too: report
                // its cause.
                let result = written.and_then(|w| Ok(w?)).and(computed.and_then(|c| c)).map(|()| {
                    let g = Metrics::get;
                    Summary {
                        events_read: g(&metrics.events_read),
                        events_accepted: g(&metrics.events_accepted),
                        dead_letters: metrics.dead_letters(),
                        late_events: g(&metrics.events_late),
                        feature_rows: g(&metrics.feature_rows),
                        elapsed: started.elapsed(),
                    }
                });
                let state = match &result {
                    Ok(_) => State::Finished,
                    Err(e) => State::Failed(e.to_string()),
                };
                *ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
                let _ = outcome_tx.send(result);
            }
        });
        Ok(Handle { name, stop, metrics, ended, outcome: Mutex::new(Some(outcome)) })
    }
}

impl Handle {
    /// Ask the pipeline to stop; returns at once (see [`Handle::join`]).
    pub fn stop(&self, mode: StopMode) {
        tracing::info!(pipeline = %self.name, ?mode, "stop requested");
        self.stop.request(mode);
    }

    pub fn status(&self) -> Status {
        let ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let state = match (ended, self.stop.requested()) {
            (Some(state), _) => state,
            (None, Some(mode)) => State::Stopping(mode),
            (None, None) => State::Running,
        };
        let m = &self.metrics;
        Status {
            name: self.name.clone(),
            state,
            events_read: Metrics::get(&m.events_read),
            feature_rows: Metrics::get(&m.feature_rows),
            dead_letters: m.dead_letters(),
            watermark: m.watermark(),
            last_barrier: Some(Metrics::get(&m.last_barrier)).filter(|&b| b > 0),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Wait for the pipeline to end: the end of a bounded input, a stop,
    /// or a failure. Takes `&self`, so the pipeline can be stopped while
    /// it is awaited; only the first call gets the outcome.
    pub async fn join(&self) -> Result<Summary> {
        let outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner).take();
        match outcome {
            Some(outcome) => outcome.await.unwrap_or_else(|_| Err(Error::Thread("the pipeline's task is gone".into()))),
            None => Err(Error::Joined),
        }
    }
}
