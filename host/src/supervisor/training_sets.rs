//! Training sets a host builds (`POST /training-sets`): jobs joining
//! labels with the views of its pipelines, the labels and the result in
//! its `files/` directory. A job runs on a thread of its own (with its
//! own async runtime, DataFusion's), so the pipelines' sinks keep theirs;
//! its state is kept in memory (a restarted host forgets its jobs, not
//! their results).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};

use super::{Error, Result, Supervisor, paths};
use crate::training;

/// Jobs kept: the oldest finished ones are forgotten past it.
const KEPT: usize = 100;

/// What `POST /training-sets` asks for.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The labels: a `.csv` (with a header row) or `.parquet` file under
    /// the host's `files/` (upload it with `PUT /files/{path}`).
    pub labels: String,
    /// The labels' entity-key column.
    pub key: String,
    /// The labels' time column.
    #[serde(default = "default_time")]
    pub time: String,
    /// Pipelines of this host whose views to join, in order.
    pub views: Vec<String>,
    /// `as-of` (the offline table's newest row available at each label's
    /// time) or `exact` (the window ending at it, computed from the raw
    /// events by the view's module).
    #[serde(default)]
    pub mode: Mode,
    /// The Parquet file to write, under the host's `files/`.
    pub out: String,
    /// How long after its window's end a row fired on close reached the
    /// online store (`0s` for Feast's as-of; default: each pipeline's
    /// out-of-orderness).
    #[serde(default)]
    pub serving_delay: Option<String>,
    /// Name feature columns `VIEW__FEATURE`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// Memory the join may take before it spills to disk, MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: usize,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    AsOf,
    Exact,
}

fn default_time() -> String {
    "event_timestamp".to_string()
}

fn default_memory_mib() -> usize {
    2048
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// A job as `GET /training-sets/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: u64,
    pub state: JobState,
    /// When it was asked for and when it ended (RFC 3339).
    pub submitted: String,
    pub finished: Option<String>,
    pub request: Request,
    /// What it is doing (or did last).
    pub stage: String,
    /// Views joined so far, of `views`.
    pub views_done: usize,
    pub views: usize,
    /// What it wrote, once it succeeded.
    #[schema(value_type = Option<Object>)]
    pub report: Option<training::Report>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A job's shared state: the job's thread writes it, requests read it.
struct Entry {
    job: std::sync::Mutex<Job>,
    progress: Arc<training::Progress>,
}

impl Entry {
    fn shown(&self) -> Job {
        let mut job = self.job.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if job.state == JobState::Running {
            job.stage = self.progress.stage();
            job.views_done = self.progress.views_done();
        }
        job
    }
}

/// The host's jobs.
#[derive(Default)]
pub(super) struct TrainingSets {
    jobs: std::sync::Mutex<BTreeMap<u64, Arc<Entry>>>,
    next: AtomicU64,
}

impl Supervisor {
    /// Check `request` and start building it: the job, running.
    pub async fn build_training_set(&self, request: Request) -> Result<Job> {
        let spec = self.training_spec(&request).await?;
        let id = self.training_sets.next.fetch_add(1, Ordering::Relaxed) + 1;
        let progress = Arc::new(training::Progress::default());
        let job = Job {
            id,
            state: JobState::Running,
            submitted: crate::time::format_ms(crate::time::now_ms()),
            finished: None,
            views: request.views.len(),
            request,
            stage: progress.stage(),
            views_done: 0,
            report: None,
            error: None,
        };
        let entry = Arc::new(Entry { job: std::sync::Mutex::new(job), progress });
        self.keep(id, entry.clone());
        let engine = self.runtime.engine().clone();
        let data = self.data.clone();
        let running = entry.clone();
        std::thread::Builder::new()
            .name(format!("sluice-training-set-{id}"))
            .spawn(move || {
                let built = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|tokio| {
                        tokio
                            .block_on(training::build_with(&spec, &engine, &running.progress))
                            .map_err(|e| super::without_data_dir(&data, &e.to_string()))
                    });
                let mut job = running.job.lock().unwrap_or_else(PoisonError::into_inner);
                job.finished = Some(crate::time::format_ms(crate::time::now_ms()));
                job.stage = running.progress.stage();
                job.views_done = running.progress.views_done();
                match built {
                    Ok(report) => {
                        tracing::info!(job = id, written = report.written, "training set built");
                        job.state = JobState::Succeeded;
                        job.report = Some(report);
                    }
                    Err(e) => {
                        tracing::warn!(job = id, error = %e, "training set failed");
                        job.state = JobState::Failed;
                        job.error = Some(e);
                    }
                }
            })
            .map_err(|e| Error::Io { dir: String::new(), message: format!("cannot start a job: {e}") })?;
        Ok(entry.shown())
    }

    /// Every job, newest first.
    pub fn training_sets(&self) -> Vec<Job> {
        let jobs = self.training_sets.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.values().rev().map(|e| e.shown()).collect()
    }

    pub fn training_set(&self, id: u64) -> Result<Job> {
        let jobs = self.training_sets.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.get(&id).map(|e| e.shown()).ok_or_else(|| Error::NoJob(id))
    }

    fn keep(&self, id: u64, entry: Arc<Entry>) {
        let mut jobs = self.training_sets.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.insert(id, entry);
        while jobs.len() > KEPT {
            let finished = jobs.iter().find(|(_, e)| e.shown().state != JobState::Running).map(|(id, _)| *id);
            match finished {
                Some(old) => jobs.remove(&old),
                None => break,
            };
        }
    }

    /// The build `request` asks for: its paths confined to `files/`, its
    /// views those of this host's pipelines (their manifests as checked
    /// when applied).
    async fn training_spec(&self, request: &Request) -> Result<training::Spec> {
        let bad = |message: String| Error::BadRequest(message);
        if request.views.is_empty() {
            return Err(bad("name at least one view (a pipeline of this host) in `views`".into()));
        }
        let files = self.files();
        let confined = |field: &str, path: &str| -> Result<PathBuf> {
            let mut path = PathBuf::from(path);
            paths::confine(&files, &mut path).map_err(|e| bad(format!("`{field}`: {e}")))?;
            Ok(path)
        };
        let labels = confined("labels", &request.labels)?;
        if !labels.is_file() {
            return Err(bad(format!("`labels`: there is no file {} (upload it: PUT /files/{0})", request.labels)));
        }
        let out = confined("out", &request.out)?;
        let serving_delay_ms = match &request.serving_delay {
            None => None,
            Some(text) => Some(
                humantime::parse_duration(text)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .map_err(|e| bad(format!("`serving_delay` `{text}`: {e}")))?,
            ),
        };
        let mut views = Vec::new();
        for name in &request.views {
            let definition = self.pipelines.lock().await.get(name).map(|e| e.definition.clone());
            let definition = definition.ok_or_else(|| Error::NotFound(name.clone()))?;
            let prepared = self.prepare_defined(&definition, false).await?;
            views.push(training::View::of(prepared.manifest.lower(), serving_delay_ms));
        }
        Ok(training::Spec {
            labels: training::LabelsSpec { path: labels, key: request.key.clone(), time: request.time.clone() },
            views,
            mode: match request.mode {
                Mode::AsOf => training::Mode::AsOf,
                Mode::Exact => training::Mode::Exact,
            },
            out: training::Destination::Parquet(out),
            full_feature_names: request.full_feature_names,
            memory_limit: request.memory_mib.saturating_mul(1 << 20),
        })
    }
}
