//! What `sluice serve` runs: any number of pipelines on one shared
//! [`Runtime`], their definitions kept in a data directory so that a host
//! restarted resumes every pipeline that was running, and the module
//! registry they take their transforms from. Kafka Connect's herder, for
//! Sluice pipelines.
//!
//! The data directory:
//!
//! - `modules/`: the [module registry](crate::registry);
//! - `pipelines/{name}.json`: a pipeline's definition (its manifest as
//!   submitted, the module version it was applied with, whether it should
//!   run, and which module produced which features since when: the feature
//!   registry's history);
//! - `checkpoints/{name}/`: its checkpoints, unless its manifest says
//!   otherwise;
//! - `files/`: where the paths of manifests point; relative paths are
//!   relative to it, and no path may leave it.

mod catalog;
mod history;
mod paths;
pub mod training_sets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::checkpoint;
use crate::checkpoint::CheckpointConfig;
use crate::manifest::{Document, Finding, Manifest, ManifestError};
use crate::metrics::{DeadLetterNote, Metrics, PartitionLag};
use crate::pipeline::{self, Handle, Pipeline, Plan, State, StopMode};
use crate::position::{PartitionId, Position};
use crate::registry::{self, Modules, Reference};
use crate::runtime::Runtime;
use crate::wasm::Module;
use history::History;
pub use history::Sample;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no pipeline {0}")]
    NotFound(String),
    /// The manifest, located problem by problem.
    #[error(transparent)]
    Manifest(ManifestError),
    #[error(transparent)]
    Module(#[from] registry::Error),
    #[error("pipeline {0} is being changed by another request; try again")]
    Busy(String),
    #[error("pipeline {0} exists; change it with PUT /pipelines/{0}/config")]
    Exists(String),
    #[error("cannot start pipeline {name}: {source}")]
    Start { name: String, source: pipeline::Error },
    #[error("the data directory {dir}: {message}")]
    Io { dir: String, message: String },
    #[error("the view {0} has no online store: none of its feature sinks is a redis sink")]
    NoOnlineStore(String),
    #[error("`{key}` is not a key of the view {view}: its keys are integers")]
    BadKey { view: String, key: String },
    #[error("cannot read the online store of the view {view}: {message}")]
    Online { view: String, message: String, retriable: bool },
    #[error(transparent)]
    Feast(crate::feast::FeastError),
    /// A request that cannot be carried out as it is (a training set's).
    #[error("{0}")]
    BadRequest(String),
    #[error("no training set {0}")]
    NoJob(u64),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a pipeline should run: what a restarted host restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Target {
    Running,
    Paused,
    Stopped,
}

/// A pipeline as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Definition {
    name: String,
    /// The manifest as submitted (YAML or JSON).
    config: String,
    /// The registered module it was applied with: a restarted host runs
    /// this version, not whatever the name's newest is by then.
    #[serde(default)]
    module: Option<registry::Version>,
    target: Target,
    /// Which module produced which features since when, oldest first (the
    /// feature registry's history of the view).
    #[serde(default)]
    produced: Vec<crate::catalog::Produced>,
}

/// A pipeline's state, as Kafka Connect names a connector's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Phase {
    /// Defined to run, not started yet.
    Unassigned,
    Running,
    Paused,
    /// Stopped on request, or its bounded input ended.
    Stopped,
    Failed,
}

/// What the status route reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = PipelineStatus)]
pub struct Status {
    pub name: String,
    pub state: Phase,
    /// Why it failed, or why it stopped by itself.
    pub trace: Option<String>,
    /// `name@version` of its registered module, or `file <path>` for one
    /// named by its path.
    pub module: String,
    pub events_read: u64,
    pub feature_rows: u64,
    pub dead_letters: u64,
    pub late_events: u64,
    /// The operator's watermark (RFC 3339), once there is one.
    pub watermark: Option<String>,
    /// How far the watermark is behind the wall clock, in ms.
    pub watermark_lag_ms: Option<i64>,
    /// The last checkpoint every sink has committed.
    pub last_checkpoint: Option<u64>,
    /// Records behind the ends of all its partitions (a Kafka source),
    /// once the broker has told their ends.
    pub consumer_lag: Option<i64>,
    /// Each partition it reads: position, end and lag.
    pub partitions: Vec<PartitionLag>,
    /// Why it reads nothing, when something outside it holds it up, and
    /// for how long (a consumer group that has assigned it no partition).
    pub waiting: Option<String>,
}

/// What a pipeline has done lately: what the status page shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Activity {
    /// Time between samples, in ms (`sluice serve --sample-every`).
    pub interval_ms: u64,
    /// Oldest first; ten minutes at most at the default interval.
    pub samples: Vec<Sample>,
    /// Its current run's last dead letters, oldest first.
    pub dead_letters: Vec<DeadLetterNote>,
}

/// A source position of a pipeline's newest checkpoint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Offset {
    pub topic: String,
    pub partition: i32,
    /// The next offset to read (a file: the next line, 1-based).
    pub offset: i64,
    /// The checkpoint it is from.
    pub checkpoint: String,
}

struct Entry {
    definition: Definition,
    handle: Option<Handle>,
    /// Why it could not be started.
    failed: Option<String>,
    /// A request is stopping or starting it.
    busy: bool,
}

/// What a change needs of the pipeline's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// It must exist.
    Existing,
    /// It must not exist: a create.
    New,
    /// Either: a create or an update.
    Any,
}

/// What a host lets the manifests applied to it do.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// librdkafka properties that load code or run a command
    /// ([`crate::librdkafka::LOADS_CODE`]) that manifests may still use
    /// (`sluice serve --allow-kafka-property`). None by default.
    pub allowed_kafka_properties: std::collections::BTreeSet<String>,
}

/// The pipelines of one host.
pub struct Supervisor {
    runtime: Runtime,
    data: PathBuf,
    settings: Settings,
    /// The module registry. Taken before `pipelines` where both are.
    modules: Mutex<Modules>,
    /// The schema registry the host serves.
    schemas: crate::schema_registry::Registry,
    /// Short critical sections only: what the status calls wait for.
    pipelines: Mutex<BTreeMap<String, Entry>>,
    /// Short critical sections only, never across an await.
    history: std::sync::Mutex<History>,
    /// ms between samples of the history; 0 until it is recorded.
    sample_ms: AtomicU64,
    /// Training sets asked for over the API.
    training_sets: training_sets::TrainingSets,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("data", &self.data).finish_non_exhaustive()
    }
}

/// A manifest ready to start: checked, its paths confined, its module
/// compiled.
struct Prepared {
    manifest: Manifest,
    module: Module,
    version: Option<registry::Version>,
}

impl Supervisor {
    /// Open the data directory (created if needed) and start every
    /// pipeline that was running when the host last stopped. A pipeline
    /// that cannot start is reported as failed; the host still starts.
    pub async fn open(data: &Path, runtime: Runtime) -> Result<Arc<Supervisor>> {
        Self::open_with(data, runtime, Settings::default()).await
    }

    /// [`Supervisor::open`], with `settings` for what manifests may do.
    pub async fn open_with(data: &Path, runtime: Runtime, settings: Settings) -> Result<Arc<Supervisor>> {
        let io = |e: std::io::Error| Error::Io { dir: data.display().to_string(), message: e.to_string() };
        for sub in ["pipelines", "checkpoints", "files", "uploads"] {
            std::fs::create_dir_all(data.join(sub)).map_err(io)?;
        }
        // Uploads a stop cut short.
        for entry in std::fs::read_dir(data.join("uploads")).map_err(io)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let data = std::fs::canonicalize(data).map_err(io)?;
        let modules = Modules::open(&data.join("modules"))?;
        let schemas = crate::schema_registry::Registry::open(&data.join("schema-registry"))
            .map_err(|e| Error::Io { dir: data.display().to_string(), message: e.to_string() })?;
        let mut pipelines = BTreeMap::new();
        for entry in std::fs::read_dir(data.join("pipelines")).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let read = std::fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| {
                serde_json::from_slice::<Definition>(&bytes).map_err(|e| format!("not a pipeline definition: {e}"))
            });
            match read {
                Ok(d) => {
                    let entry = Entry { definition: d, handle: None, failed: None, busy: false };
                    pipelines.insert(entry.definition.name.clone(), entry);
                }
                // Kept for a person to look at; the others still run.
                Err(e) => tracing::error!(file = %path.display(), "skipping a pipeline definition: {e}"),
            }
        }
        let supervisor = Arc::new(Supervisor {
            runtime,
            data,
            settings,
            modules: Mutex::new(modules),
            schemas,
            pipelines: Mutex::new(pipelines),
            history: Default::default(),
            sample_ms: AtomicU64::new(0),
            training_sets: Default::default(),
        });
        let names: Vec<String> = {
            let pipelines = supervisor.pipelines.lock().await;
            pipelines
                .values()
                .filter(|e| e.definition.target == Target::Running)
                .map(|e| e.definition.name.clone())
                .collect()
        };
        for name in names {
            if let Err(e) = supervisor.start_defined(&name, false).await {
                tracing::error!(pipeline = %name, "cannot resume: {e}");
            }
        }
        Ok(supervisor)
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Sample every pipeline's throughput and lags `every` so long as the
    /// supervisor lives, for [`Supervisor::activity`].
    pub fn record_history(self: &Arc<Self>, every: Duration) {
        let every = every.max(Duration::from_millis(100));
        self.sample_ms.store(every.as_millis() as u64, Ordering::Relaxed);
        let weak = Arc::downgrade(self);
        self.runtime.tokio().spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(supervisor) = weak.upgrade() else { return };
                let runs: Vec<(String, Option<Arc<Metrics>>)> = {
                    let pipelines = supervisor.pipelines.lock().await;
                    let run = |e: &Entry| e.handle.as_ref().map(|h| h.metrics().clone());
                    pipelines.iter().map(|(name, e)| (name.clone(), run(e))).collect()
                };
                let mut history = supervisor.history.lock().unwrap_or_else(PoisonError::into_inner);
                history.record(std::time::Instant::now(), crate::time::now_ms(), runs);
            }
        });
    }

    /// The schema registry the host serves.
    pub fn schemas(&self) -> &crate::schema_registry::Registry {
        &self.schemas
    }

    /// Where manifests' paths point.
    pub fn files(&self) -> PathBuf {
        self.data.join("files")
    }

    /// Where uploads are received before they are checked.
    pub fn uploads(&self) -> PathBuf {
        self.data.join("uploads")
    }

    /// The file `name` of [`Supervisor::files`] (`PUT /files/{name}`): a
    /// plain file name, no folders.
    pub fn file_path(&self, name: &str) -> Result<PathBuf> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !plain {
            return Err(Error::BadRequest(format!(
                "`{name}`: a file name is letters, digits, `.`, `-` and `_`, not beginning with `.`"
            )));
        }
        Ok(self.files().join(name))
    }

    /// `text` with the data directory's path taken out of it: what the API
    /// shows of paths and messages (a host's layout is its own business).
    /// Paths under it read as relative to it (`files/in/clicks.jsonl`).
    pub fn shown(&self, text: &str) -> String {
        without_data_dir(&self.data, text)
    }

    // ---- modules ----

    /// [`Supervisor::push_module`] of an upload received in a file (in
    /// [`Supervisor::uploads`]); the file is removed.
    pub async fn push_module_file(
        &self,
        name: &str,
        upload: tempfile::NamedTempFile,
        kind: Option<crate::wasm::Kind>,
    ) -> Result<(registry::Version, bool)> {
        let path = upload.path().to_path_buf();
        let read = blocking(move || crate::files::read_limited(&path, registry::MAX_MODULE_BYTES, "module")).await?;
        drop(upload);
        let bytes = read.map_err(|message| Error::Io { dir: self.uploads().display().to_string(), message })?;
        self.push_module(name, bytes, kind).await
    }

    /// Check and keep an uploaded module (see [`Modules::record`]).
    pub async fn push_module(
        &self,
        name: &str,
        bytes: Vec<u8>,
        kind: Option<crate::wasm::Kind>,
    ) -> Result<(registry::Version, bool)> {
        // Compiling takes a while: the registry stays readable meanwhile.
        // Two uploads of one name are ordered by the lock taken to record.
        let engine = self.runtime.engine().clone();
        registry::check_upload(name, &bytes)?;
        let (check_name, bytes) = (name.to_string(), Arc::new(bytes));
        let checked = tokio::task::spawn_blocking({
            let bytes = bytes.clone();
            move || Module::inspect(&engine, &check_name, &bytes, registry::CHECK_LIMITS)
        })
        .await
        .map_err(|e| Error::Io { dir: String::new(), message: e.to_string() })?;
        let module = checked.map_err(registry::Error::Invalid)?;
        Ok(self.modules.lock().await.record(name, &bytes, &module, kind)?)
    }

    pub async fn modules(&self) -> BTreeMap<String, Vec<registry::Version>> {
        self.modules.lock().await.list().clone()
    }

    pub async fn module(&self, name: &str) -> Result<Vec<registry::Version>> {
        Ok(self.modules.lock().await.versions(name)?.to_vec())
    }

    /// Delete every version of a module no pipeline uses.
    pub async fn delete_module(&self, name: &str) -> Result<Vec<registry::Version>> {
        let mut modules = self.modules.lock().await;
        let pipelines = self.pipelines.lock().await;
        Ok(modules.delete(name, |v| {
            pipelines
                .values()
                .filter(|e| e.definition.module.as_ref().is_some_and(|m| m.sha256 == v.sha256))
                .map(|e| e.definition.name.clone())
                .collect()
        })?)
    }

    // ---- pipelines ----

    /// Check a manifest as `apply` would, starting nothing: every problem,
    /// located. `online` also reaches its brokers, Redis servers and
    /// schema registry.
    pub async fn validate(&self, text: &str, online: bool) -> Result<()> {
        self.prepare("request", text, None, (online, online, true), false).await.map(|_| ())
    }

    /// Create or replace pipeline `name` (the manifest's own name when
    /// `None`) and start it. A running pipeline takes a checkpoint and
    /// stops first; its state carries over unless the change makes it
    /// incompatible (another key, window or fields), which needs `fresh`.
    /// If the new one cannot start, the old one is started again. A paused
    /// or stopped pipeline stays so, with the new definition.
    /// Returns whether it was created.
    pub async fn apply(&self, name: Option<&str>, text: &str, fresh: bool) -> Result<(String, bool)> {
        let file = name.map_or_else(|| "request".to_string(), |n| format!("pipelines/{n}"));
        self.apply_as(&file, Claim::Any, text, fresh).await
    }

    /// Create the pipeline a manifest defines and start it: of concurrent
    /// creates of one name, one succeeds and the others get
    /// [`Error::Exists`] (Kafka Connect's `POST /connectors`).
    pub async fn create(&self, text: &str, fresh: bool) -> Result<String> {
        self.apply_as("request", Claim::New, text, fresh).await.map(|(name, _)| name)
    }

    async fn apply_as(&self, file: &str, claim: Claim, text: &str, fresh: bool) -> Result<(String, bool)> {
        // A registry that does not answer yet holds the run, not its start.
        let prepared = self.prepare(file, text, None, (true, false, true), fresh).await?;
        let (module, features) = catalog::module_of(&prepared).await?;
        let name = prepared.manifest.name.clone();
        let old = self.claim(&name, claim).await?;
        let history = old.as_ref().map_or(&[][..], |old| &old.definition.produced[..]);
        let now = crate::time::format_ms(crate::time::now_ms());
        let definition = Definition {
            name: name.clone(),
            config: text.to_string(),
            module: prepared.version.clone(),
            target: Target::Running,
            produced: crate::catalog::record(history, module, features, now),
        };
        let created = old.is_none();
        let old = match old {
            // Kafka Connect's rule: a new config does not change whether a
            // pipeline runs. A paused one takes it when resumed.
            Some(old) if old.definition.target != Target::Running => {
                let definition = Definition { target: old.definition.target, ..definition };
                let kept = self.keep_paused(&prepared, &definition, fresh).await;
                let definition = if kept.is_ok() { definition } else { old.definition };
                self.put_back(Entry { definition, handle: old.handle, failed: old.failed, busy: false }).await;
                return kept.map(|()| (name, false));
            }
            old => old,
        };
        let result = self.replace(&name, old.as_ref(), prepared, fresh).await;
        let entry_of = |handle, failed| Entry { definition: definition.clone(), handle, failed, busy: false };
        match result {
            Ok(handle) => {
                // The entry is claimed: the definition is saved without the
                // lock (an fsync can take seconds while pipelines write).
                if let Err(e) = self.save(&definition).await {
                    // Not kept, so not run: the old definition stays, stopped.
                    stop_and_join(&name, handle.as_ref(), StopMode::Checkpoint).await;
                    let mut pipelines = self.pipelines.lock().await;
                    match old {
                        Some(old) => {
                            let failed = Some(e.to_string());
                            pipelines.insert(name, Entry { handle: None, busy: false, failed, ..old });
                        }
                        None => {
                            pipelines.remove(&name);
                        }
                    }
                    return Err(e);
                }
                self.pipelines.lock().await.insert(name.clone(), entry_of(handle, None));
                Ok((name, created))
            }
            Err((e, restored)) => {
                let mut pipelines = self.pipelines.lock().await;
                match old {
                    Some(old) => {
                        pipelines.insert(name.clone(), Entry { handle: restored, busy: false, failed: None, ..old });
                    }
                    None => {
                        pipelines.remove(&name);
                    }
                }
                Err(e)
            }
        }
    }

    /// Save the new definition of a paused (or stopped) pipeline without
    /// starting it; `fresh` moves its checkpoints aside now, as a start
    /// would.
    async fn keep_paused(&self, prepared: &Prepared, definition: &Definition, fresh: bool) -> Result<()> {
        if fresh && let Some(c) = &prepared.manifest.checkpoint {
            let spec = prepared.manifest.lower();
            let config = c.clone();
            blocking(move || checkpoint::Store::open(&config, &spec.name, spec.layout(), true))
                .await?
                .map_err(|e| Error::Io { dir: c.shown(), message: e.to_string() })?;
        }
        self.save(definition).await
    }

    /// Stop the old run (checkpoint first), start the new; on failure,
    /// start the old definition again and give back its handle.
    async fn replace(
        &self,
        name: &str,
        old: Option<&Entry>,
        prepared: Prepared,
        fresh: bool,
    ) -> Result<Option<Handle>, (Error, Option<Handle>)> {
        // An incompatible change was refused by the checks already (the
        // checkpoints' fingerprint), unless `fresh`.
        if let Some(old) = old {
            stop_and_join(name, old.handle.as_ref(), StopMode::Checkpoint).await;
        }
        let mut plan = Plan::with_module(prepared.manifest.lower(), prepared.module);
        if fresh {
            plan = plan.fresh();
        }
        match Pipeline::start(plan, &self.runtime).await {
            Ok(handle) => Ok(Some(handle)),
            Err(source) => {
                let error = Error::Start { name: name.to_string(), source };
                let restored = match old {
                    Some(old) if old.definition.target == Target::Running => {
                        tracing::warn!(
                            pipeline = name,
                            "the new definition cannot start ({error}); the old one runs again"
                        );
                        match self.start_definition(&old.definition, false).await {
                            Ok(h) => Some(h),
                            Err(e) => {
                                tracing::error!(pipeline = name, "the old definition cannot start either: {e}");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                Err((error, restored))
            }
        }
    }

    /// The metrics of every pipeline that has run since the host started,
    /// by name.
    pub async fn metrics(&self) -> Vec<(String, Arc<crate::metrics::Metrics>)> {
        let pipelines = self.pipelines.lock().await;
        pipelines
            .values()
            .filter_map(|e| Some((e.definition.name.clone(), e.handle.as_ref()?.metrics().clone())))
            .collect()
    }

    pub async fn names(&self) -> Vec<String> {
        self.pipelines.lock().await.keys().cloned().collect()
    }

    /// The manifest of `name` as submitted.
    pub async fn config(&self, name: &str) -> Result<String> {
        let pipelines = self.pipelines.lock().await;
        let entry = pipelines.get(name).ok_or_else(|| Error::NotFound(name.to_string()))?;
        Ok(entry.definition.config.clone())
    }

    /// Its samples and last dead letters.
    pub async fn activity(&self, name: &str) -> Result<Activity> {
        let dead_letters = {
            let pipelines = self.pipelines.lock().await;
            let entry = pipelines.get(name).ok_or_else(|| Error::NotFound(name.to_string()))?;
            entry.handle.as_ref().map(|h| h.metrics().recent_dead_letters()).unwrap_or_default()
        };
        let dead_letters = dead_letters
            .into_iter()
            .map(|d| DeadLetterNote {
                message: self.shown(&d.message),
                position: d.position.as_deref().map(|p| self.shown(p)),
                ..d
            })
            .collect();
        let samples = self.history.lock().unwrap_or_else(PoisonError::into_inner).samples(name);
        Ok(Activity { interval_ms: self.sample_ms.load(Ordering::Relaxed), samples, dead_letters })
    }

    pub async fn status(&self, name: &str) -> Result<Status> {
        let pipelines = self.pipelines.lock().await;
        let entry = pipelines.get(name).ok_or_else(|| Error::NotFound(name.to_string()))?;
        let status = status_of(entry);
        Ok(Status {
            trace: status.trace.as_deref().map(|t| self.shown(t)),
            partitions: status
                .partitions
                .into_iter()
                .map(|p| PartitionLag { topic: self.shown(&p.topic), ..p })
                .collect(),
            ..status
        })
    }

    /// The source positions of the pipeline's newest checkpoint, partition
    /// by partition.
    pub async fn offsets(&self, name: &str) -> Result<Vec<Offset>> {
        let config = {
            let pipelines = self.pipelines.lock().await;
            let entry = pipelines.get(name).ok_or_else(|| Error::NotFound(name.to_string()))?;
            self.definition_manifest(&entry.definition)?.checkpoint
        };
        let Some(config) = config else { return Ok(Vec::new()) };
        let at = config.shown();
        let existing = blocking(move || checkpoint::existing(&config))
            .await?
            .map_err(|e| Error::Io { dir: self.shown(&at), message: e.to_string() })?;
        let listed = existing.map(|(_, listed)| listed).unwrap_or_default();
        let mut newest: BTreeMap<PartitionId, (i64, Offset)> = BTreeMap::new();
        for l in listed {
            let Ok(h) = l.header else { continue };
            if h.pipeline != name {
                continue;
            }
            let file = l.name;
            for p in h.partitions {
                let Position { id, offset, .. } = p.position;
                let offset =
                    Offset { topic: self.shown(&id.topic), partition: id.partition, offset, checkpoint: file.clone() };
                let slot = newest.entry(id).or_insert((h.created_ms, offset.clone()));
                if h.created_ms > slot.0 {
                    *slot = (h.created_ms, offset);
                }
            }
        }
        Ok(newest.into_values().map(|(_, o)| o).collect())
    }

    /// Pause (or stop) a pipeline: a checkpoint, then it stops; it stays
    /// so across host restarts until resumed.
    pub async fn pause(&self, name: &str, target: Target) -> Result<()> {
        let entry = self.claim(name, Claim::Existing).await?.ok_or_else(|| Error::NotFound(name.to_string()))?;
        stop_and_join(name, entry.handle.as_ref(), StopMode::Checkpoint).await;
        let definition = Definition { target, ..entry.definition.clone() };
        let saved = self.save(&definition).await;
        self.put_back(Entry { definition: if saved.is_ok() { definition } else { entry.definition.clone() }, ..entry })
            .await;
        saved
    }

    /// Start a paused or stopped pipeline (or restart a running one) from
    /// its last checkpoint.
    pub async fn resume(&self, name: &str) -> Result<()> {
        let entry = self.claim(name, Claim::Existing).await?.ok_or_else(|| Error::NotFound(name.to_string()))?;
        stop_and_join(name, entry.handle.as_ref(), StopMode::Checkpoint).await;
        let definition = Definition { target: Target::Running, ..entry.definition.clone() };
        let started = match self.save(&definition).await {
            Ok(()) => self.start_definition(&definition, false).await,
            Err(e) => Err(e),
        };
        let (handle, failed, result) = match started {
            Ok(h) => (Some(h), None, Ok(())),
            Err(e) => (None, Some(e.to_string()), Err(e)),
        };
        self.put_back(Entry { definition, handle, failed, busy: false }).await;
        result
    }

    /// Stop and forget a pipeline. Its checkpoints stay: applying it again
    /// resumes from them (`?fresh=true` starts over).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let entry = self.claim(name, Claim::Existing).await?.ok_or_else(|| Error::NotFound(name.to_string()))?;
        stop_and_join(name, entry.handle.as_ref(), StopMode::Checkpoint).await;
        let file = self.definition_file(name);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let dir = file.display().to_string();
                self.put_back(Entry { handle: None, ..entry }).await;
                return Err(Error::Io { dir, message: e.to_string() });
            }
        }
        self.pipelines.lock().await.remove(name);
        tracing::info!(pipeline = name, "deleted");
        Ok(())
    }

    /// Stop every pipeline, each with a checkpoint; their definitions say
    /// they run, so the next start of the host resumes them.
    pub async fn shutdown(&self) {
        let handles: Vec<(String, Handle)> = {
            let mut pipelines = self.pipelines.lock().await;
            pipelines.values_mut().filter_map(|e| Some((e.definition.name.clone(), e.handle.take()?))).collect()
        };
        for (name, handle) in &handles {
            tracing::info!(pipeline = %name, "stopping for the host's shutdown");
            handle.stop(StopMode::Checkpoint);
        }
        for (name, handle) in handles {
            stop_and_join(&name, Some(&handle), StopMode::Checkpoint).await;
        }
    }

    /// Take a pipeline's entry out of the map for a long change, marking
    /// it busy; `None` when there is none (and `claim` allows that). The
    /// lock held for the look-up and the placeholder is what makes a
    /// create atomic.
    async fn claim(&self, name: &str, claim: Claim) -> Result<Option<Entry>> {
        let mut pipelines = self.pipelines.lock().await;
        if claim == Claim::New && pipelines.contains_key(name) {
            return Err(Error::Exists(name.to_string()));
        }
        let Some(entry) = pipelines.get_mut(name) else {
            if claim != Claim::Existing {
                // A placeholder, so that a concurrent apply of the same
                // name is told to wait.
                let config = String::new();
                let definition = Definition {
                    name: name.to_string(),
                    config,
                    module: None,
                    target: Target::Running,
                    produced: Vec::new(),
                };
                pipelines.insert(name.to_string(), Entry { definition, handle: None, failed: None, busy: true });
                return Ok(None);
            }
            return Err(Error::NotFound(name.to_string()));
        };
        if entry.busy {
            return Err(Error::Busy(name.to_string()));
        }
        entry.busy = true;
        let taken = Entry {
            definition: entry.definition.clone(),
            handle: entry.handle.take(),
            failed: entry.failed.take(),
            busy: true,
        };
        Ok(Some(taken))
    }

    async fn put_back(&self, entry: Entry) {
        let mut pipelines = self.pipelines.lock().await;
        pipelines.insert(entry.definition.name.clone(), Entry { busy: false, ..entry });
    }

    /// Start pipeline `name` as defined (at the host's start).
    async fn start_defined(&self, name: &str, fresh: bool) -> Result<()> {
        let entry = self.claim(name, Claim::Existing).await?.ok_or_else(|| Error::NotFound(name.to_string()))?;
        let started = self.start_definition(&entry.definition, fresh).await;
        let (handle, failed, result) = match started {
            Ok(h) => (Some(h), None, Ok(())),
            Err(e) => (None, Some(e.to_string()), Err(e)),
        };
        self.put_back(Entry { handle, failed, ..entry }).await;
        result
    }

    async fn start_definition(&self, definition: &Definition, fresh: bool) -> Result<Handle> {
        let name = definition.name.clone();
        let prepared = self.prepare_defined(definition, fresh).await?;
        let mut plan = Plan::with_module(prepared.manifest.lower(), prepared.module);
        if fresh {
            plan = plan.fresh();
        }
        Pipeline::start(plan, &self.runtime).await.map_err(|source| Error::Start { name, source })
    }

    /// A saved definition, prepared as when it was applied (its module the
    /// version it was applied with).
    async fn prepare_defined(&self, definition: &Definition, fresh: bool) -> Result<Prepared> {
        let file = format!("pipelines/{}", definition.name);
        self.prepare(&file, &definition.config, definition.module.as_ref(), (false, false, false), fresh).await
    }

    /// Parse and check a manifest, confine its paths to `files/`, resolve
    /// and compile its module (`pinned`: the registered version a
    /// definition was applied with). `online` reaches servers,
    /// `ask_registry` the schema registry; `new` is a definition being
    /// applied or validated, not one the host restarts: it may not write
    /// where another pipeline writes.
    async fn prepare(
        &self,
        file: &str,
        text: &str,
        pinned: Option<&registry::Version>,
        (online, ask_registry, new): (bool, bool, bool),
        fresh: bool,
    ) -> Result<Prepared> {
        // Every stage runs, whatever the ones before found, so that one
        // answer lists every problem; what a stage refused, the next ones
        // do not look at.
        let document = Document::read(file, text, &[]).map_err(Error::Manifest)?;
        let mut manifest = document.manifest.clone();
        let mut findings: Vec<Finding> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let named = registry::valid_name(&manifest.name);
        if !named {
            let message = "a pipeline's name is 1 to 64 lowercase letters, digits, `-`, `_` or `.`".to_string();
            findings.push(("name".into(), message, None));
        }
        // The module: a registered one, or a file under `files/`.
        let written = manifest.transform.module.display().to_string();
        let reference = match pinned {
            Some(v) => Some(Reference::Sha256(v.sha256.clone())),
            None => Reference::parse(&written),
        };
        let mut version = None;
        if let Some(reference) = &reference {
            match self.modules.lock().await.resolve(reference) {
                Ok((v, path)) => {
                    manifest.transform.module = path;
                    version = Some(v);
                }
                Err(e) => {
                    findings.push((
                        "transform.module".into(),
                        e.to_string(),
                        Some("upload it first (POST /modules/{name}), or name an uploaded one".into()),
                    ));
                    refused.push("transform.module".into());
                }
            }
        }
        // The host's environment is its own, as its files are: a secret a
        // manifest sent over HTTP names must be in a file under `files/`.
        let mut environment: Vec<(String, String)> = manifest
            .events
            .registry
            .iter()
            .flat_map(|registry| {
                registry
                    .environment()
                    .into_iter()
                    .map(|(field, name)| (format!("events.registry.{field}"), name.to_string()))
            })
            .collect();
        for (entry, _, sink) in manifest.outputs.entries() {
            environment.extend(sink.environment().into_iter().map(|(field, name)| (format!("{entry}.{field}"), name)));
        }
        for (at, variable) in environment {
            let field = at.rsplit('.').next().unwrap_or_default();
            let message =
                format!("`{field}` reads the host's environment ({variable}), which a served pipeline may not");
            let hint = format!(
                "put the secret in a file under the host's files directory and name it in `{}`",
                field.replace("_env", "_file")
            );
            findings.push((at.clone(), message, Some(hint)));
            refused.push(at);
        }
        let files = self.files();
        manifest.visit_paths(&mut |at, path| {
            if at == "transform.module" && reference.is_some() {
                return;
            }
            if let Err(message) = paths::confine(&files, path) {
                let hint = "use a path inside the host's files directory (a relative path is relative to it)";
                findings.push((at.to_string(), message, Some(hint.into())));
                refused.push(at.to_string());
            }
        });
        for (at, properties) in manifest.client_properties() {
            for key in properties.keys() {
                if let Some(why) = crate::librdkafka::loads_code(key)
                    && !self.settings.allowed_kafka_properties.contains(key.trim())
                {
                    findings.push((
                        format!("{at}.{key}"),
                        format!("`{key}` {why}: this host does not take it from a manifest"),
                        Some(format!(
                            "remove it; a host's operator can allow it with sluice serve --allow-kafka-property {}",
                            key.trim()
                        )),
                    ));
                }
            }
        }
        if manifest.checkpoint.is_none() {
            if named {
                let dir = self.data.join("checkpoints").join(&manifest.name);
                manifest.checkpoint = Some(CheckpointConfig::in_dir(dir));
            } else {
                // No directory can be named after it.
                refused.push("checkpoint.dir".into());
            }
        }
        // A definition applied (not one the host restarts) may not write
        // where another pipeline writes.
        if new {
            findings.extend(self.shared_destinations(&manifest).await);
        }
        // Compiling and reaching brokers block: off the async threads.
        let engine = self.runtime.engine().clone();
        let checks = crate::preflight::Checks { online, fresh, registry: ask_registry, refused };
        let checked = tokio::task::spawn_blocking(move || {
            let (module, found) = crate::preflight::check_with_module(&manifest, &engine, &checks);
            (manifest, module, found)
        })
        .await
        .map_err(|e| Error::Io { dir: String::new(), message: e.to_string() })?;
        let (manifest, module, found) = checked;
        findings.extend(found);
        match module {
            Some(module) if findings.is_empty() && document.is_clean() => Ok(Prepared { manifest, module, version }),
            _ => Err(Error::Manifest(document.error(findings))),
        }
    }

    /// The manifest of a definition, with its paths as it runs them (for
    /// its checkpoint directory and fingerprint), without compiling it.
    fn definition_manifest(&self, definition: &Definition) -> Result<Manifest> {
        let mut manifest = Manifest::parse(&definition.name, &definition.config, &[]).map_err(Error::Manifest)?;
        let files = self.files();
        manifest.visit_paths(&mut |_, path| {
            let _ = paths::confine(&files, path);
        });
        if manifest.checkpoint.is_none() {
            manifest.checkpoint = Some(CheckpointConfig::in_dir(self.data.join("checkpoints").join(&manifest.name)));
        }
        Ok(manifest)
    }

    fn definition_file(&self, name: &str) -> PathBuf {
        self.data.join("pipelines").join(format!("{name}.json"))
    }

    /// Write a definition durably, off the async threads.
    async fn save(&self, definition: &Definition) -> Result<()> {
        let file = self.definition_file(&definition.name);
        let io = |e: std::io::Error| Error::Io { dir: file.display().to_string(), message: e.to_string() };
        let json = serde_json::to_vec_pretty(definition).map_err(|e| io(std::io::Error::other(e)))?;
        let path = file.clone();
        blocking(move || crate::files::write_atomic(&path, &json)).await?.map_err(io)
    }
}

/// `work` on a blocking thread: file system calls that may wait on the
/// disk (an fsync, a directory of checkpoints) stay off the async threads
/// the API and the sinks share.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Io { dir: String::new(), message: e.to_string() })
}

/// Stop a run (if any is still going) and wait for it to end.
async fn stop_and_join(name: &str, handle: Option<&Handle>, mode: StopMode) {
    let Some(handle) = handle else { return };
    if matches!(handle.status().state, State::Finished | State::Failed(_)) {
        return;
    }
    handle.stop(mode);
    match handle.join().await {
        Ok(summary) => tracing::info!(pipeline = name, "stopped: {summary}"),
        Err(e) => tracing::warn!(pipeline = name, "stopped with an error: {e}"),
    }
}

fn status_of(entry: &Entry) -> Status {
    let d = &entry.definition;
    let run = entry.handle.as_ref().map(Handle::status);
    let (state, trace) = match (d.target, run.as_ref().map(|s| &s.state), &entry.failed) {
        (_, Some(State::Failed(e)), _) => (Phase::Failed, Some(e.clone())),
        (Target::Running, None, Some(e)) => (Phase::Failed, Some(e.clone())),
        (Target::Paused, _, _) => (Phase::Paused, None),
        (Target::Stopped, _, _) => (Phase::Stopped, None),
        (Target::Running, Some(State::Finished), _) => (Phase::Stopped, Some("its input ended".to_string())),
        (Target::Running, Some(State::Running | State::Stopping(_)), _) => (Phase::Running, None),
        (Target::Running, None, None) => (Phase::Unassigned, None),
    };
    let module = d.module.as_ref().map_or_else(|| module_path(&d.config), registry::Version::reference);
    let metrics = entry.handle.as_ref().map(|h| h.metrics().clone());
    let get = |f: fn(&Metrics) -> u64| metrics.as_deref().map_or(0, f);
    let watermark = run.as_ref().and_then(|s| s.watermark);
    Status {
        name: d.name.clone(),
        state,
        trace,
        module,
        events_read: get(|m| Metrics::get(&m.events_read)),
        feature_rows: get(|m| Metrics::get(&m.feature_rows)),
        dead_letters: get(Metrics::dead_letters),
        late_events: get(|m| Metrics::get(&m.events_late)),
        watermark: watermark.map(crate::time::format_ms),
        watermark_lag_ms: watermark.map(|w| crate::time::now_ms() - w),
        last_checkpoint: run.and_then(|s| s.last_barrier),
        consumer_lag: metrics.as_deref().and_then(Metrics::consumer_lag),
        partitions: metrics.as_deref().map(Metrics::partitions).unwrap_or_default(),
        waiting: metrics.as_deref().and_then(Metrics::waiting).filter(|_| state == Phase::Running),
    }
}

/// The module path a manifest names (one not in the registry), as
/// written: relative to the data directory's `files/`.
fn module_path(config: &str) -> String {
    let manifest: serde_yaml::Value = serde_yaml::from_str(config).unwrap_or_default();
    manifest["transform"]["module"].as_str().map_or_else(|| "?".to_string(), |p| format!("file {p}"))
}

/// `text` with the data directory `data` taken out ([`Supervisor::shown`]).
fn without_data_dir(data: &std::path::Path, text: &str) -> String {
    let mut prefix = data.display().to_string();
    prefix.push('/');
    text.replace(&prefix, "")
}
