//! Apache Iceberg sink: feature rows appended to a table, the offline store
//! models train on, exactly once across crashes.
//!
//! The table has one typed column per declared feature besides the row's
//! own (key, window bounds, trigger, times), Parquet data files, and is
//! partitioned by day of `window_end`. It is created from the module's
//! declared features when missing, registered in the SQL catalog on a
//! SQLite file (what pyiceberg's `SqlCatalog` and Java's `JdbcCatalog`
//! read) or in a REST catalog (a cluster's: Polaris, Lakekeeper, Nessie,
//! Gravitino, Unity, …). Data files go under a directory this host can
//! write, local or shared.
//!
//! Two-phase commit on the checkpoint, as Flink's Iceberg committer: rows
//! go to data files as they come; at a barrier the files are closed and
//! listed in a staging file named after the run and the barrier
//! (pre-commit); once the checkpoint is durable they are appended to the
//! table in one snapshot whose summary carries the run and barrier
//! (commit). A run that dies between its checkpoint and its commit
//! leaves the staging file behind, and the next run to open the table
//! publishes it, unless the table's snapshots say it was published
//! already. What a run staged after its last checkpoint is never
//! published: its input is read again from that checkpoint.
//!
//! A backfill and the live pipeline share the table, each window written
//! by one of them: see [`claim`].

mod claim;
mod columns;
mod data_files;
mod new_table;
mod staging;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalogBuilder};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};
use parquet::file::properties::WriterProperties;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{Access, Batch, Component, Context, Error, NamedPath, Output, Result, Sink, SinkComponent};

use claim::Claim;
pub use columns::{Columns, row_columns};
pub use new_table::NewTable;
use staging::Staging;

/// An Apache Iceberg table (feature rows only): the offline store,
/// exactly once with checkpoints.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IcebergSinkConfig {
    /// Directory the tables' data and metadata go under
    /// (`{warehouse}/{namespace}/{table}`), local or a shared mount every
    /// host writes the same; created when missing. With a REST catalog
    /// too: a table this sink creates is placed here, whatever the
    /// catalog's default.
    pub warehouse: PathBuf,
    /// The catalog the table is registered in.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// The table's namespace (database); created when missing.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The table; created from the module's declared features when
    /// missing. An existing table must have the columns the features make.
    pub table: String,
}

impl Component for IcebergSinkConfig {
    fn paths(&mut self) -> Vec<NamedPath<'_>> {
        let mut paths = vec![NamedPath { field: "warehouse", path: &mut self.warehouse, access: Access::WriteFolder }];
        if let CatalogConfig::Sql { path: Some(path), .. } = &mut self.catalog {
            paths.push(NamedPath { field: "catalog.path", path, access: Access::WriteFile });
        }
        paths
    }
}

#[async_trait]
impl SinkComponent for IcebergSinkConfig {
    const SERVES: &'static [Output] = &[Output::Features];

    fn location(&self) -> Vec<(&'static str, String)> {
        vec![
            ("table", format!("{}.{}", self.namespace, self.table)),
            ("warehouse", self.warehouse.display().to_string()),
        ]
    }

    async fn build(&self, name: &str, context: &Context) -> Result<Box<dyn Sink>> {
        Ok(Box::new(IcebergSink::open(name, self, context).await?))
    }
}

fn default_namespace() -> String {
    "sluice".to_string()
}

/// Where tables are registered.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CatalogConfig {
    /// The SQL catalog on a SQLite file, as pyiceberg's `SqlCatalog` and
    /// Java's `JdbcCatalog` keep it.
    Sql {
        /// The SQLite file; default `{warehouse}/catalog.db`.
        #[serde(default)]
        path: Option<PathBuf>,
        /// The catalog's name in the file (pyiceberg's
        /// `SqlCatalog(name, ...)`).
        #[serde(default = "default_catalog_name")]
        name: String,
    },
    /// An Iceberg REST catalog: a cluster's (Polaris, Lakekeeper, Nessie,
    /// Gravitino, Unity). The table's files must be where this host can
    /// write them (`warehouse`): object stores are not supported yet.
    Rest {
        /// The catalog's base URL, without `/v1`:
        /// `https://catalog.example.com/api/catalog`.
        uri: String,
        /// The warehouse to ask the catalog for (the REST `warehouse`
        /// property), where the catalog serves several.
        #[serde(default)]
        warehouse: Option<String>,
        /// More client properties, passed as they are: `token` (a bearer
        /// token), `credential` (`client_id:client_secret` for OAuth2) with
        /// `oauth2-server-uri` and `scope`, `prefix`, `header.NAME` (a
        /// header on every request).
        #[serde(default)]
        properties: BTreeMap<String, String>,
    },
}

fn default_catalog_name() -> String {
    "sluice".to_string()
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig::Sql { path: None, name: default_catalog_name() }
    }
}

/// The writers of one barrier's data files, one per partition.
type Writer =
    FanoutWriter<DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>>;

/// The snapshot summary keys that say which run and barrier a snapshot
/// published.
const SUMMARY_RUN: &str = "sluice.run";
const SUMMARY_BARRIER: &str = "sluice.barrier";
const SUMMARY_PIPELINE: &str = "sluice.pipeline";

pub struct IcebergSink {
    name: String,
    catalog: Arc<dyn Catalog>,
    table: Table,
    columns: Columns,
    splitter: RecordBatchPartitionSplitter,
    /// How data files are written (the table's `write.parquet.*`).
    parquet: WriterProperties,
    /// Data files of the rows since the last barrier.
    writer: Option<Writer>,
    /// Writers made so far: numbers the files.
    writers: u64,
    run: String,
    pipeline: String,
    staging: Staging,
    /// Staged at barriers, not yet committed, oldest first.
    staged: Vec<(u64, Vec<DataFile>)>,
    /// Closed at a barrier whose staging file is still to be written.
    unlisted: Option<(u64, Vec<DataFile>)>,
    /// Without checkpoints, what is staged at a barrier is committed at
    /// once and nothing is ever recovered.
    checkpoints: bool,
    /// The windows this run writes (all but a backfill's, or a
    /// backfill's range).
    claim: Claim,
    /// Rows of windows another writer claims, left out since the last
    /// commit.
    left_out: u64,
}

/// Errors of the sink `name` (the closures own the name, so `self` stays
/// free to borrow).
fn fatal(name: &str) -> impl Fn(String) -> Error + use<> {
    let sink = name.to_string();
    move |message| Error { sink: sink.clone(), message, retriable: false }
}

fn retriable(name: &str) -> impl Fn(String) -> Error + use<> {
    let sink = name.to_string();
    move |message| Error { sink: sink.clone(), message, retriable: true }
}

/// `path` as a `file://` URL (absolute).
fn file_url(path: &std::path::Path) -> std::io::Result<String> {
    Ok(format!("file://{}", std::path::absolute(path)?.display()))
}

impl IcebergSink {
    /// Open (or create) the table and publish what an earlier run left
    /// staged for a checkpoint it took.
    pub async fn open(name: &str, config: &IcebergSinkConfig, context: &Context) -> Result<Self> {
        let fatal = fatal(name);
        let warehouse = &config.warehouse;
        std::fs::create_dir_all(warehouse)
            .map_err(|e| fatal(format!("cannot create the warehouse {}: {e}", warehouse.display())))?;
        let warehouse_url = file_url(warehouse).map_err(|e| fatal(format!("{}: {e}", warehouse.display())))?;
        let catalog = open_catalog(config, warehouse_url).await.map_err(&fatal)?;
        let mut columns = Columns::new(&context.schema, context.key_type).map_err(&fatal)?;
        let table = open_table(catalog.as_ref(), config, &columns).await.map_err(&fatal)?;
        columns.bind(table.metadata().current_schema()).map_err(&fatal)?;
        let metadata = table.metadata();
        let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(
            metadata.current_schema().clone(),
            metadata.default_partition_spec().clone(),
        )
        .map_err(|e| fatal(format!("partitioning by day of window_end: {e}")))?;
        let parquet = data_files::writer_properties(metadata.properties())
            .map_err(|e| fatal(format!("{}.{}: {e}", config.namespace, config.table)))?;
        let staging = Staging::open(metadata.location(), &context.pipeline).map_err(&fatal)?;
        let claim = match context.backfill {
            Some(requested) => Claim::Backfill(claim::bound(requested, &table).await.map_err(&fatal)?),
            None => Claim::Live { backfilled: claim::backfilled(&table) },
        };
        let mut sink = IcebergSink {
            name: name.to_string(),
            catalog,
            table,
            columns,
            splitter,
            parquet,
            writer: None,
            writers: 0,
            run: context.run.clone(),
            pipeline: context.pipeline.clone(),
            staging,
            staged: Vec::new(),
            unlisted: None,
            checkpoints: context.checkpoints,
            claim,
            left_out: 0,
        };
        // A backfill has nothing staged to recover, and what the live
        // pipeline staged is the live pipeline's to publish.
        if context.backfill.is_none() {
            sink.recover(&context.checkpointed).await?;
        }
        Ok(sink)
    }

    /// Publish what earlier runs staged up to their last checkpoint and
    /// did not commit; drop what can never be published.
    async fn recover(&mut self, checkpointed: &HashMap<String, u64>) -> Result<()> {
        let fatal = fatal(&self.name);
        let staged = self.staging.list().map_err(&fatal)?;
        let mut runs: HashMap<String, Vec<staging::Entry>> = HashMap::new();
        for entry in staged {
            runs.entry(entry.run.clone()).or_default().push(entry);
        }
        for (run, mut entries) in runs {
            entries.sort_by_key(|e| e.barrier);
            let published = self.published(&run);
            let last = checkpointed.get(&run).copied().filter(|_| self.checkpoints);
            let (mut files, mut barriers) = (Vec::new(), Vec::new());
            for e in &entries {
                match last {
                    Some(last) if e.barrier <= last && published.is_none_or(|p| e.barrier > p) => {
                        files.extend(self.staging.read(e, &self.table).map_err(&fatal)?);
                        barriers.push(e.barrier);
                    }
                    _ => {}
                }
            }
            if let Some(&top) = barriers.last() {
                tracing::info!(
                    sink = %self.name, run = %run, barriers = ?barriers, files = files.len(),
                    "publishing data files an earlier run staged for its last checkpoint"
                );
                self.append(files, &run, top).await?;
            }
            for e in entries {
                let done = published.is_some_and(|p| e.barrier <= p) || barriers.contains(&e.barrier);
                // Staged after the run's last checkpoint, or without
                // checkpoints: never to be published (the input is read
                // again). Kept a day in case the run is alive and about to
                // checkpoint (hosts sharing a checkpoint directory).
                let abandoned = last.is_none_or(|l| e.barrier > l) && e.age > staging::ABANDONED_AFTER;
                if done || abandoned {
                    self.staging.remove(&e);
                }
            }
        }
        Ok(())
    }

    /// The last barrier of `run` the table holds a snapshot of.
    fn published(&self, run: &str) -> Option<u64> {
        self.table
            .metadata()
            .snapshots()
            .filter_map(|s| {
                let props = &s.summary().additional_properties;
                (props.get(SUMMARY_RUN).map(String::as_str) == Some(run))
                    .then(|| props.get(SUMMARY_BARRIER)?.parse::<u64>().ok())?
            })
            .max()
    }

    /// Append `files` in one snapshot that says it published `run`'s
    /// barriers up to `barrier`, unless the table has it already.
    async fn append(&mut self, files: Vec<DataFile>, run: &str, barrier: u64) -> Result<()> {
        let retriable = retriable(&self.name);
        let ident = self.table.identifier().clone();
        self.table =
            self.catalog.load_table(&ident).await.map_err(|e| retriable(format!("cannot load table {ident}: {e}")))?;
        if self.published(run).is_some_and(|p| p >= barrier) {
            return Ok(());
        }
        if let Claim::Backfill(backfill) = &self.claim {
            // The live pipeline may have begun writing while this ran.
            let bounded = claim::bound(*backfill, &self.table).await.map_err(fatal(&self.name))?;
            if bounded.to_ms < backfill.to_ms {
                return Err(fatal(&self.name)(format!(
                    "while the backfill ran, the live pipeline wrote windows ending before its end: nothing of it \
                     is published; run it again (it will stop where the live rows begin, at {})",
                    sluice_sink_api::time::format_ms(bounded.to_ms)
                )));
            }
        }
        let mut properties = HashMap::from([
            (SUMMARY_RUN.to_string(), run.to_string()),
            (SUMMARY_BARRIER.to_string(), barrier.to_string()),
            (SUMMARY_PIPELINE.to_string(), self.pipeline.clone()),
        ]);
        properties.extend(self.claim.summary());
        let tx = Transaction::new(&self.table);
        let action = tx.fast_append().add_data_files(files).set_snapshot_properties(properties);
        let tx = action.apply(tx).map_err(|e| retriable(format!("cannot append to {ident}: {e}")))?;
        self.table =
            tx.commit(self.catalog.as_ref()).await.map_err(|e| retriable(format!("cannot commit to {ident}: {e}")))?;
        Ok(())
    }

    fn new_writer(&mut self) -> Result<Writer> {
        // Named after the run: a file tells where it came from.
        self.writers += 1;
        let prefix = format!("{}-{:06}", self.run, self.writers);
        let files = data_files::files(&self.table, self.parquet.clone(), prefix).map_err(fatal(&self.name))?;
        Ok(FanoutWriter::new(DataFileWriterBuilder::new(files)))
    }
}

impl IcebergSinkConfig {
    /// The table's name in its catalog.
    fn ident(&self) -> TableIdent {
        TableIdent::new(NamespaceIdent::new(self.namespace.clone()), self.table.clone())
    }

    /// The catalog, for messages.
    fn catalog_named(&self) -> String {
        match &self.catalog {
            CatalogConfig::Sql { .. } => "the SQL catalog".to_string(),
            CatalogConfig::Rest { uri, .. } => format!("the REST catalog {uri} (check its uri and properties)"),
        }
    }

    /// The table as it is now, to read (training sets, backfills): an
    /// error when the catalog has no such table, which is made only by a
    /// pipeline's first run.
    pub async fn read_table(&self) -> Result<Table, String> {
        let catalog = self.catalog().await?;
        let ident = self.ident();
        let err = |what: &str, e: iceberg::Error| format!("{what} the table {ident}: {e}");
        if !catalog.table_exists(&ident).await.map_err(|e| err("cannot look up", e))? {
            return Err(format!(
                "there is no table {ident} in the catalog of {} (a pipeline makes it at its first run)",
                self.warehouse.display()
            ));
        }
        catalog.load_table(&ident).await.map_err(|e| err("cannot load", e))
    }

    /// The catalog the table is in.
    async fn catalog(&self) -> Result<Arc<dyn Catalog>, String> {
        let warehouse_url = file_url(&self.warehouse).map_err(|e| format!("{}: {e}", self.warehouse.display()))?;
        open_catalog(self, warehouse_url).await
    }

    /// The ranges of window ends backfills wrote to the table (from their
    /// snapshots' summaries: what each wrote, after any cut).
    pub async fn backfills(&self) -> Result<Vec<std::ops::Range<i64>>, String> {
        Ok(claim::backfilled(&self.read_table().await?))
    }
}

/// Connect to the catalog `config` names; local files in either case.
async fn open_catalog(config: &IcebergSinkConfig, warehouse_url: String) -> Result<Arc<dyn Catalog>, String> {
    let files = Arc::new(iceberg::io::LocalFsStorageFactory);
    Ok(match &config.catalog {
        CatalogConfig::Sql { path, name } => {
            let db = path.clone().unwrap_or_else(|| config.warehouse.join("catalog.db"));
            let catalog = SqlCatalogBuilder::default()
                .uri(format!("sqlite:{}?mode=rwc", db.display()))
                .warehouse_location(warehouse_url)
                .sql_bind_style(SqlBindStyle::QMark)
                .with_storage_factory(files)
                .load(name.clone(), HashMap::new())
                .await
                .map_err(|e| format!("cannot open the SQL catalog {}: {e}", db.display()))?;
            Arc::new(catalog)
        }
        CatalogConfig::Rest { uri, warehouse, properties } => {
            let mut props: HashMap<String, String> = properties.clone().into_iter().collect();
            props.insert(REST_CATALOG_PROP_URI.to_string(), uri.clone());
            if let Some(w) = warehouse {
                props.insert(REST_CATALOG_PROP_WAREHOUSE.to_string(), w.clone());
            }
            let catalog = RestCatalogBuilder::default()
                .with_storage_factory(files)
                .load("sluice", props)
                .await
                .map_err(|e| format!("cannot open the REST catalog {uri}: {e}"))?;
            Arc::new(catalog)
        }
    })
}

/// Load the table, or create it (and its namespace) from `columns`. An
/// existing table must have the columns the module's features make.
async fn open_table(catalog: &dyn Catalog, config: &IcebergSinkConfig, columns: &Columns) -> Result<Table, String> {
    let ident = config.ident();
    let err = |what: &str, e: iceberg::Error| format!("{what} {ident} in {}: {e}", config.catalog_named());
    if catalog.table_exists(&ident).await.map_err(|e| err("cannot look up", e))? {
        let table = catalog.load_table(&ident).await.map_err(|e| err("cannot load", e))?;
        columns.check(table.metadata().current_schema()).map_err(|e| format!("table {ident} {e}"))?;
        return Ok(table);
    }
    let location = prepare_location(catalog, config).await?;
    let creation = TableCreation::builder()
        .name(config.table.clone())
        .location(location)
        .schema(columns.schema().clone())
        .partition_spec(columns.partition_spec())
        .build();
    match catalog.create_table(ident.namespace(), creation).await {
        Ok(table) => {
            tracing::info!(table = %ident, "created the Iceberg table");
            Ok(table)
        }
        // Created by another host meanwhile.
        Err(e) => match catalog.load_table(&ident).await {
            Ok(table) => Ok(table),
            Err(_) => Err(err("cannot create", e)),
        },
    }
}

/// Create the namespace of `config`'s table when missing: where the
/// table is to be placed (under the warehouse whichever the catalog: a
/// REST catalog's default location may be where this host cannot write).
async fn prepare_location(catalog: &dyn Catalog, config: &IcebergSinkConfig) -> Result<String, String> {
    let namespace = NamespaceIdent::new(config.namespace.clone());
    let err = |e: iceberg::Error| {
        format!("cannot create the namespace of {} in {}: {e}", config.ident(), config.catalog_named())
    };
    if !catalog.namespace_exists(&namespace).await.map_err(err)? {
        // Another host may create it at the same time.
        if let Err(e) = catalog.create_namespace(&namespace, HashMap::new()).await
            && !catalog.namespace_exists(&namespace).await.unwrap_or(false)
        {
            return Err(err(e));
        }
    }
    file_url(&config.warehouse.join(&config.namespace).join(&config.table))
        .map_err(|e| format!("{}: {e}", config.warehouse.display()))
}

#[async_trait]
impl Sink for IcebergSink {
    async fn write(&mut self, batch: Batch<'_>) -> Result<()> {
        let Batch::Features(rows) = batch else {
            return Err(fatal(&self.name)("the Iceberg sink takes feature rows only".to_string()));
        };
        if rows.is_empty() {
            return Ok(());
        }
        // Rows were checked against the declared features before any sink:
        // a batch that still does not fit would not fit on a retry either.
        let fatal = fatal(&self.name);
        let mut records = self.columns.batch(rows).map_err(&fatal)?;
        if !self.claim.takes_all() {
            let taken = arrow_array::BooleanArray::from_iter(rows.iter().map(|r| Some(self.claim.takes(r))));
            self.left_out += taken.false_count() as u64;
            records = arrow_select::filter::filter_record_batch(&records, &taken)
                .map_err(|e| fatal(format!("leaving out rows of windows another writer claims: {e}")))?;
            if records.num_rows() == 0 {
                return Ok(());
            }
        }
        let parts = self.splitter.split(&records).map_err(|e| fatal(format!("partitioning rows: {e}")))?;
        if self.writer.is_none() {
            self.writer = Some(self.new_writer()?);
        }
        if let Some(writer) = self.writer.as_mut() {
            for (key, part) in parts {
                // A failed write leaves the barrier's files in doubt: the
                // pipeline fails and its input is read again.
                writer.write(key, part).await.map_err(|e| fatal(format!("writing a data file: {e}")))?;
            }
        }
        Ok(())
    }

    /// Rows are durable at a barrier, when their files are closed.
    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Close the barrier's files and list them in its staging file. A
    /// staging file that cannot be written (a full disk) is retried: the
    /// closed files wait in `unlisted` meanwhile.
    async fn pre_commit(&mut self, barrier: u64) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            let files = writer.close().await.map_err(|e| fatal(&self.name)(format!("closing data files: {e}")))?;
            if !files.is_empty() {
                self.unlisted = Some((barrier, files));
            }
        }
        let Some((barrier, files)) = self.unlisted.take() else {
            return Ok(());
        };
        if self.checkpoints
            && let Err(e) = self.staging.write(&self.run, barrier, &files, &self.table)
        {
            self.unlisted = Some((barrier, files));
            return Err(retriable(&self.name)(format!("staging the data files of barrier {barrier}: {e}")));
        }
        self.staged.push((barrier, files));
        Ok(())
    }

    async fn commit(&mut self, barrier: u64) -> Result<()> {
        if self.left_out > 0 {
            let claim = match &self.claim {
                Claim::Live { .. } => "their windows are a backfill's",
                Claim::Backfill(_) => "their windows are outside the backfill's range",
            };
            tracing::info!(sink = %self.name, rows = self.left_out, "rows left out of the table: {claim}");
            self.left_out = 0;
        }
        let ready = self.staged.iter().take_while(|(b, _)| *b <= barrier).count();
        if ready == 0 {
            return Ok(());
        }
        let files: Vec<DataFile> = self.staged[..ready].iter().flat_map(|(_, f)| f.iter().cloned()).collect();
        let run = self.run.clone();
        self.append(files, &run, barrier).await?;
        for (b, _) in self.staged.drain(..ready) {
            self.staging.remove_barrier(&run, b);
        }
        Ok(())
    }
}
