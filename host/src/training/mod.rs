//! Training sets: labels (an entity key, a time, any other columns,
//! carried through) joined with feature views as they were at each
//! label's time, one output row per label, written to Parquet or a new
//! Iceberg table: as of the offline table's rows ([`as_of`]), or with the
//! window ending exactly at the label's time computed again from the raw
//! events ([`exact`]).
//!
//! `--check-online` ([`skew`]) compares a sample of the online store's
//! rows with the offline table and the exact recomputation.
//!
//! Reading, sorting and joining are DataFusion's, over the labels file,
//! the views' Iceberg tables and the decoded events; its sorts spill to
//! disk under a memory limit. Each view is a sort and one pass over it,
//! giving a table of its rows by label row number (as-of: the picked
//! rows' features fetched by a hash join); the labels then take every
//! view's row by row number.

mod as_of;
mod events;
mod exact;
mod labels;
mod skew;
mod view;

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures_util::StreamExt;
use iceberg_datafusion::IcebergStaticTableProvider;
use sluice_sink_api::KeyType;
use sluice_sink_iceberg::{IcebergSinkConfig, NewTable};

use crate::wasm::Engine;

pub use labels::{BadLabel, LabelsSpec};
pub use skew::{Behind, Check, Difference, FeatureSkew, Recomputed, ViewSkew, check};
pub use view::View;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the labels {path}: {source}", path = path.display())]
    Labels {
        path: PathBuf,
        #[source]
        source: DataFusionError,
    },
    #[error("the labels {path} are neither `.csv` nor `.parquet`", path = path.display())]
    LabelsFormat { path: PathBuf },
    #[error("the labels {path} have no {role} column `{column}` (their columns: {have})", path = path.display())]
    LabelsColumn { path: PathBuf, role: &'static str, column: String, have: String },
    #[error("the labels {path} have a column `{column}`: names beginning with `__` are the join's, rename it", path = path.display())]
    LabelsReserved { path: PathBuf, column: String },
    #[error(
        "the labels' time column `{column}` is {found}: give timestamps, dates, text (RFC 3339) or integers (milliseconds)"
    )]
    LabelsTimeType { column: String, found: String },
    #[error(
        "pipeline `{view}` writes no Iceberg table (an `iceberg` sink in `outputs.features`): it has no offline rows"
    )]
    NoOfflineTable { view: String },
    #[error(
        "pipeline `{view}` writes no online store (a `redis` sink in `outputs.features`): there is nothing to check"
    )]
    NoOnlineStore { view: String },
    #[error("view `{view}`: cannot read its online store: {message}")]
    Online { view: String, message: String },
    #[error("view `{view}`: {message}")]
    Table { view: String, message: String },
    #[error(
        "the column `{column}` would come from {first} and from {second}: give --full-feature-names (columns `VIEW__FEATURE`)"
    )]
    Clash { column: String, first: String, second: String },
    #[error("two views are both named `{view}`")]
    SameView { view: String },
    #[error("the join failed: {0}{hint}", hint = memory_hint(.0))]
    Query(#[source] DataFusionError),
    #[error("cannot write {path}: {source}", path = path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("cannot write {name}: {message}")]
    Destination { name: String, message: String },
    #[error("cannot create {path}: {source}", path = path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the scratch file {path}: {source}", path = path.display())]
    Scratch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to do about a query that ran out of its memory (a sort that
/// could not spill enough): DataFusion's message names its own settings.
fn memory_hint(e: &DataFusionError) -> &'static str {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => {
            "\n  hint: give the join more memory (--memory-mib, default 2048), or sort in one partition \
             (DATAFUSION_EXECUTION_TARGET_PARTITIONS=1)"
        }
        _ => "",
    }
}

/// Which rows a label gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The newest row of the offline table available at the label's time
    /// (Feast's point-in-time join).
    AsOf,
    /// The window ending exactly at the label's time, computed from the
    /// raw events by the view's module (Chronon's temporal accuracy).
    Exact,
}

/// A training set to build.
#[derive(Debug, Clone)]
pub struct Spec {
    pub labels: LabelsSpec,
    pub views: Vec<View>,
    pub mode: Mode,
    /// Where the training set goes.
    pub out: Destination,
    /// Name feature columns `{view}__{feature}` rather than `{feature}`.
    pub full_feature_names: bool,
    /// The memory the join may take before it spills to disk, bytes.
    pub memory_limit: usize,
}

/// Where a training set is written.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A Parquet file.
    Parquet(PathBuf),
    /// A new Iceberg table, named as an Iceberg sink names its table:
    /// created, written and published in one snapshot once the set is
    /// built; dropped again if the build fails while writing it.
    Table(Box<IcebergSinkConfig>),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Parquet(path) => write!(f, "{}", path.display()),
            Destination::Table(table) => {
                write!(f, "the table {}.{} ({})", table.namespace, table.table, table.warehouse.display())
            }
        }
    }
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Label rows in the file.
    pub labels: u64,
    /// Rows written: one per readable label.
    pub written: u64,
    /// Labels left out: their key or time could not be read.
    pub unreadable: u64,
    /// The first of them, by row number.
    pub unreadable_listed: Vec<BadLabel>,
    /// Per view, labels that got no row (their features are null).
    pub without_row: Vec<(String, u64)>,
    /// The exact mode: per view, the raw events read and those left out
    /// (the pipeline dead-letters them), the windows computed and those
    /// the module failed on.
    pub computed: Vec<Computed>,
}

/// What the exact mode computed for a view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Computed {
    pub view: String,
    pub events: u64,
    pub unreadable_events: u64,
    pub windows: u64,
    pub failed: u64,
}

/// Register view `i`'s offline table as `view_{i}`: its feature columns.
async fn register_table(ctx: &SessionContext, i: usize, view: &View) -> Result<Vec<String>, Error> {
    let table_error = |message| Error::Table { view: view.name.clone(), message };
    let config = view.table.as_ref().ok_or_else(|| Error::NoOfflineTable { view: view.name.clone() })?;
    let table = config.read_table().await.map_err(table_error)?;
    let row_columns: Vec<&str> = sluice_sink_iceberg::row_columns().collect();
    let features = table
        .metadata()
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| f.name.clone())
        .filter(|name| !row_columns.contains(&name.as_str()))
        .collect();
    let provider =
        IcebergStaticTableProvider::try_new_from_table(table).await.map_err(|e| table_error(e.to_string()))?;
    ctx.register_table(as_of::table(i), Arc::new(provider)).map_err(Error::Query)?;
    Ok(features)
}

/// Rows a scratch file's batches hold.
const BATCH_ROWS: usize = 8_192;

/// The most a Parquet writer buffers before it writes a row group: its
/// default is a million rows, which for rows holding lists is gigabytes,
/// and a reader fetches a row group whole.
const ROW_GROUP_BYTES: usize = 32 << 20;

/// A Parquet file being written (a scratch file or the training set),
/// its row groups at most [`ROW_GROUP_BYTES`]; its errors name it.
struct ParquetFile {
    path: PathBuf,
    writer: ArrowWriter<std::fs::File>,
}

impl ParquetFile {
    /// A new scratch file at `path`.
    fn create(path: &std::path::Path, schema: SchemaRef) -> Result<ParquetFile, Error> {
        let file = std::fs::File::create(path).map_err(|e| Error::Scratch { path: path.to_path_buf(), source: e })?;
        ParquetFile::new(path, file, schema)
    }

    /// Parquet into `file`, created at `path`.
    fn new(path: &std::path::Path, file: std::fs::File, schema: SchemaRef) -> Result<ParquetFile, Error> {
        let properties = WriterProperties::builder().set_max_row_group_bytes(Some(ROW_GROUP_BYTES)).build();
        let writer = ArrowWriter::try_new(file, schema, Some(properties))
            .map_err(|e| Error::Write { path: path.to_path_buf(), source: e })?;
        Ok(ParquetFile { path: path.to_path_buf(), writer })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        self.writer.write(batch).map_err(|e| Error::Write { path: self.path.clone(), source: e })
    }

    fn close(self) -> Result<(), Error> {
        self.writer.close().map(|_| ()).map_err(|e| Error::Write { path: self.path, source: e })
    }
}

/// Make the scratch Parquet file at `path` the session's table `name`.
async fn register_file(ctx: &SessionContext, name: &str, path: &std::path::Path) -> Result<(), Error> {
    ctx.register_parquet(name, path.to_string_lossy().as_ref(), Default::default()).await.map_err(Error::Query)
}

/// A query's column of another type than this module asks of it: a bug
/// here, not in the input.
fn unexpected(column: &str) -> Error {
    Error::Query(datafusion::error::DataFusionError::Internal(format!(
        "the query's column `{column}` has another type"
    )))
}

/// Quote `name` as a SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How the training set takes view `i`'s features.
struct Join {
    /// The JOIN clauses that bring them, if any.
    clauses: String,
    /// Whether a label got a row.
    found: String,
    /// Each feature's expression and the column it becomes.
    columns: Vec<(String, String)>,
}

/// The training set: the labels' `columns`, then each view's features,
/// then a `__found_{i}` flag per view, in the labels' order.
fn joined_sql(columns: &[String], views: &[Join]) -> String {
    let mut select: Vec<String> = columns.iter().map(|c| format!("l.{}", ident(c))).collect();
    let mut joins = String::new();
    for (i, view) in views.iter().enumerate() {
        for (feature, column) in &view.columns {
            select.push(format!("{feature} AS {}", ident(column)));
        }
        select.push(format!("{} AS {}", view.found, found_flag(i)));
        joins.push_str(&view.clauses);
    }
    format!("SELECT {} FROM {} l{joins} ORDER BY l.{}", select.join(", "), labels::TABLE, labels::ROW)
}

/// The flag column of view `i` in [`joined_sql`].
fn found_flag(i: usize) -> String {
    format!("__found_{i}")
}

/// Rows in the batches the queries pass between their operators, unless
/// [`BATCH_SIZE_VARIABLE`] says. Rows carrying lists make a batch
/// megabytes, and a sort that spilled holds a batch of every spilled run
/// outside its pool while it merges them. As-of no longer sorts the
/// features (its peak is flat in the table at this size); the sorts that
/// still carry them (the labels' final join, the exact mode's rows) are
/// as large as the labels. At DataFusion's default (8,192) 512 MiB peaked
/// as 2048 did; 256 is flatter still but makes in-memory sorts half as
/// slow again. README, Performance, "Training sets".
const QUERY_BATCH_ROWS: usize = 1_024;
const BATCH_SIZE_VARIABLE: &str = "DATAFUSION_EXECUTION_BATCH_SIZE";

/// A query session whose sorts spill to disk past `memory_limit` bytes.
fn session(memory_limit: usize) -> Result<SessionContext, Error> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
        .build_arc()
        .map_err(Error::Query)?;
    // Sort-merge joins: they spill, where a hash join must hold its build
    // side (a million labels) in memory.
    // DataFusion's settings can be tuned by `DATAFUSION_*` variables
    // (`DATAFUSION_EXECUTION_TARGET_PARTITIONS=4`).
    let mut config =
        SessionConfig::from_env().map_err(Error::Query)?.set_bool("datafusion.optimizer.prefer_hash_join", false);
    if std::env::var_os(BATCH_SIZE_VARIABLE).is_none() {
        config = config.with_batch_size(QUERY_BATCH_ROWS);
    }
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// How far a build has come, for whoever follows it (a host's jobs):
/// what it is doing and how many views it has joined.
#[derive(Debug)]
pub struct Progress {
    stage: std::sync::Mutex<String>,
    views_done: std::sync::atomic::AtomicUsize,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { stage: std::sync::Mutex::new("starting".to_string()), views_done: Default::default() }
    }
}

impl Progress {
    pub fn stage(&self) -> String {
        self.stage.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn views_done(&self) -> usize {
        self.views_done.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn enter(&self, stage: String) {
        *self.stage.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = stage;
    }

    fn joined(&self) {
        self.views_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Build the training set `spec` asks for; the exact mode compiles the
/// views' modules with `engine`.
pub async fn build(spec: &Spec, engine: &Engine) -> Result<Report, Error> {
    build_with(spec, engine, &Progress::default()).await
}

/// [`build`], telling `progress` how far it is.
pub async fn build_with(spec: &Spec, engine: &Engine, progress: &Progress) -> Result<Report, Error> {
    let mut names = std::collections::BTreeSet::new();
    for view in &spec.views {
        if !names.insert(&view.name) {
            return Err(Error::SameView { view: view.name.clone() });
        }
    }
    let scratch = tempfile::tempdir().map_err(|e| Error::Scratch { path: std::env::temp_dir(), source: e })?;
    let int_keys = spec.views.iter().any(|v| v.key_type == KeyType::Int);
    progress.enter("reading the labels".to_string());
    let labels = labels::prepare(&spec.labels, int_keys, scratch.path()).await?;
    tracing::info!(labels = labels.read, unreadable = labels.bad, "read the labels");

    let ctx = session(spec.memory_limit)?;
    labels.register(&ctx).await?;

    // Which column each feature becomes, clashes refused.
    let mut taken: std::collections::BTreeMap<String, String> =
        labels.columns.iter().map(|c| (c.clone(), "the labels".to_string())).collect();
    let mut views = Vec::new();
    let mut computed = Vec::new();
    for (i, view) in spec.views.iter().enumerate() {
        let verb = match spec.mode {
            Mode::AsOf => "joining",
            Mode::Exact => "computing the windows of",
        };
        progress.enter(format!("{verb} view `{}` ({} of {})", view.name, i + 1, spec.views.len()));
        let (table, path, features) = match spec.mode {
            Mode::AsOf => {
                let features = register_table(&ctx, i, view).await?;
                let path = as_of::join(i, view, &features, &ctx, &spec.labels.time, scratch.path()).await?;
                (as_of::rows(i), path, features)
            }
            Mode::Exact => {
                let module = exact::module(view, engine)?;
                let done = exact::compute(i, view, &module, &ctx, &spec.labels.time, scratch.path()).await?;
                computed.push(Computed {
                    view: view.name.clone(),
                    events: done.events,
                    unreadable_events: done.unreadable_events,
                    windows: done.windows,
                    failed: done.failed,
                });
                (exact::table(i), done.path, done.features)
            }
        };
        // Either mode's rows: `key` is the label's row number.
        register_file(&ctx, &table, &path).await?;
        let clauses = format!(" LEFT JOIN {table} r{i} ON r{i}.key = l.{}", labels::ROW);
        let found = format!("r{i}.key IS NOT NULL");
        let sources: Vec<String> = features.iter().map(|f| format!("r{i}.{}", ident(f))).collect();
        tracing::info!(view = %view.name, "joined a view");
        let mut columns = Vec::new();
        for (feature, source) in features.into_iter().zip(sources) {
            let column = if spec.full_feature_names { format!("{}__{feature}", view.name) } else { feature.clone() };
            let from = format!("view `{}`", view.name);
            if let Some(first) = taken.insert(column.clone(), from.clone()) {
                return Err(Error::Clash { column, first, second: from });
            }
            columns.push((source, column));
        }
        views.push(Join { clauses, found, columns });
        progress.joined();
    }
    progress.enter(format!("writing {}", spec.out));
    let sql = joined_sql(&labels.columns, &views);
    let (written, without_row) = write_joined(&ctx, &sql, views.len(), spec).await?;
    progress.enter("done".to_string());
    Ok(Report {
        labels: labels.read,
        written,
        unreadable: labels.bad,
        unreadable_listed: labels.listed,
        without_row: spec.views.iter().map(|v| v.name.clone()).zip(without_row).collect(),
        computed,
    })
}

/// Run the final join (`sql`, of `views` views) into `spec`'s
/// destination, without the views' found flags: the rows written, and per
/// view the labels that got no row.
async fn write_joined(ctx: &SessionContext, sql: &str, views: usize, spec: &Spec) -> Result<(u64, Vec<u64>), Error> {
    let frame = ctx.sql(sql).await.map_err(Error::Query)?;
    let schema = frame.schema().as_arrow().clone();
    let flags: Vec<usize> = (0..views).filter_map(|i| schema.index_of(&found_flag(i)).ok()).collect();
    let kept: Vec<usize> = (0..schema.fields().len()).filter(|c| !flags.contains(c)).collect();
    let out_schema = Arc::new(schema.project(&kept).map_err(|e| Error::Query(e.into()))?);
    let mut out = Output::open(&spec.out, &out_schema).await?;
    let mut without_row = vec![0u64; views];
    let mut written = 0u64;
    let mut batches = frame.execute_stream().await.map_err(Error::Query)?;
    let copied: Result<(), Error> = async {
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(Error::Query)?;
            for (count, &flag) in without_row.iter_mut().zip(&flags) {
                if let Some(found) = batch.column(flag).as_any().downcast_ref::<BooleanArray>() {
                    *count += (found.len() - found.true_count()) as u64;
                }
            }
            written += batch.num_rows() as u64;
            out.write(&batch.project(&kept).map_err(|e| Error::Query(e.into()))?).await?;
        }
        Ok(())
    }
    .await;
    match copied {
        Ok(()) => out.close(spec).await?,
        Err(e) => {
            out.abandon().await;
            return Err(e);
        }
    }
    Ok((written, without_row))
}

/// A destination being written.
enum Output {
    Parquet(Box<ParquetFile>),
    Table { writing: Box<NewTable>, name: String },
}

impl Output {
    async fn open(destination: &Destination, schema: &SchemaRef) -> Result<Output, Error> {
        Ok(match destination {
            Destination::Parquet(path) => {
                let file =
                    std::fs::File::create(path).map_err(|e| Error::Create { path: path.to_path_buf(), source: e })?;
                Output::Parquet(Box::new(ParquetFile::new(path, file, schema.clone())?))
            }
            Destination::Table(table) => {
                let name = destination.to_string();
                let writing = table
                    .create_new(schema)
                    .await
                    .map_err(|message| Error::Destination { name: name.clone(), message })?;
                Output::Table { writing: Box::new(writing), name }
            }
        })
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        match self {
            Output::Parquet(file) => file.write(batch),
            Output::Table { writing, name } => {
                writing.write(batch).await.map_err(|message| Error::Destination { name: name.clone(), message })
            }
        }
    }

    /// Finish it: the file closed, the table's snapshot published (its
    /// summary says how the set was built).
    async fn close(self, spec: &Spec) -> Result<(), Error> {
        match self {
            Output::Parquet(file) => file.close(),
            Output::Table { writing, name } => {
                let mode = match spec.mode {
                    Mode::AsOf => "as-of",
                    Mode::Exact => "exact",
                };
                let views: Vec<&str> = spec.views.iter().map(|v| v.name.as_str()).collect();
                let summary = std::collections::HashMap::from([
                    ("sluice.training-set.labels".to_string(), spec.labels.path.display().to_string()),
                    ("sluice.training-set.mode".to_string(), mode.to_string()),
                    ("sluice.training-set.views".to_string(), views.join(",")),
                ]);
                writing.commit(summary).await.map(|_| ()).map_err(|message| Error::Destination { name, message })
            }
        }
    }

    /// Leave nothing half written in a catalog (a file is the caller's).
    async fn abandon(self) {
        if let Output::Table { writing, .. } = self {
            writing.abandon().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_out_of_memory_says_what_to_give_it() {
        let exhausted = DataFusionError::ResourcesExhausted("Not enough memory to continue external sort".into());
        let shown = Error::Query(DataFusionError::Context("sorting".into(), Box::new(exhausted))).to_string();
        assert!(shown.contains("Not enough memory") && shown.contains("--memory-mib"), "{shown}");
        let other = Error::Query(DataFusionError::Plan("no such column".into())).to_string();
        assert!(!other.contains("hint"), "{other}");
    }
}
