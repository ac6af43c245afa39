//! A new table written whole from Arrow batches, in one snapshot: a
//! training set (`sluice training-set --out-table`), any columns, not
//! feature rows. Unpartitioned; registered where the sink's config says,
//! so whatever reads the offline store (pyiceberg, Spark, Trino) reads it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema as ArrowSchema, SchemaRef};
use iceberg::Catalog;
use iceberg::arrow::{arrow_schema_to_schema_auto_assign_ids, schema_to_arrow_schema};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};

use crate::{IcebergSinkConfig, prepare_location};

type Writer = DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// A table being written: nothing of it is visible until [`NewTable::commit`].
pub struct NewTable {
    catalog: Arc<dyn Catalog>,
    table: Table,
    /// The table's columns as Arrow sees them (with their field ids).
    arrow: SchemaRef,
    writer: Writer,
}

impl IcebergSinkConfig {
    /// Create the table with the columns of `schema` (and its namespace
    /// when missing), to write whole. An existing table is refused: a
    /// training set is written once, under a name of its own.
    pub async fn create_new(&self, schema: &ArrowSchema) -> Result<NewTable, String> {
        let ident = self.ident();
        std::fs::create_dir_all(&self.warehouse)
            .map_err(|e| format!("cannot create the warehouse {}: {e}", self.warehouse.display()))?;
        let columns = arrow_schema_to_schema_auto_assign_ids(schema)
            .map_err(|e| format!("the columns cannot be those of an Iceberg table: {e}"))?;
        let catalog = self.catalog().await?;
        let err = |what: &str, e: iceberg::Error| format!("{what} {ident} in {}: {e}", self.catalog_named());
        if catalog.table_exists(&ident).await.map_err(|e| err("cannot look up", e))? {
            return Err(format!("the table {ident} exists: name a new one (or drop it first)"));
        }
        let location = prepare_location(catalog.as_ref(), self).await?;
        let creation =
            iceberg::TableCreation::builder().name(self.table.clone()).location(location).schema(columns).build();
        let table = catalog.create_table(ident.namespace(), creation).await.map_err(|e| err("cannot create", e))?;
        let arrow = schema_to_arrow_schema(table.metadata().current_schema())
            .map_err(|e| format!("the columns of {ident}: {e}"))?;
        let opened = writer(&table).await.map_err(|e| format!("cannot write {ident}: {e}"));
        let writer = match opened {
            Ok(writer) => writer,
            Err(e) => {
                let _ = catalog.drop_table(&ident).await;
                return Err(e);
            }
        };
        tracing::info!(table = %ident, "created the Iceberg table");
        Ok(NewTable { catalog, table, arrow: Arc::new(arrow), writer })
    }
}

/// Data files under the table's location, rolled at the default size,
/// written as the table's properties say.
async fn writer(table: &Table) -> Result<Writer, String> {
    let properties = crate::data_files::writer_properties(table.metadata().properties())?;
    let files = crate::data_files::files(table, properties, "data".to_string())?;
    DataFileWriterBuilder::new(files).build(None).await.map_err(|e| e.to_string())
}

impl NewTable {
    /// Write `batch`, whose columns are those the table was created with,
    /// in order.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let ident = self.table.identifier();
        // The table's Arrow types may be spelled otherwise (a list's item
        // field, a time zone `+00:00` for `UTC`): the same values.
        let columns = batch
            .columns()
            .iter()
            .zip(self.arrow.fields())
            .map(|(column, field)| arrow_cast::cast(column, field.data_type()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the rows for {ident}: {e}"))?;
        let batch =
            RecordBatch::try_new(self.arrow.clone(), columns).map_err(|e| format!("the rows for {ident}: {e}"))?;
        self.writer.write(batch).await.map_err(|e| format!("cannot write to {ident}: {e}"))
    }

    /// Publish what was written in one snapshot, `summary` in its summary;
    /// if it cannot be, drop the table, as [`NewTable::abandon`].
    pub async fn commit(mut self, summary: HashMap<String, String>) -> Result<Table, String> {
        let ident = self.table.identifier().clone();
        let published = async {
            let files = self.writer.close().await.map_err(|e| format!("cannot write to {ident}: {e}"))?;
            let tx = Transaction::new(&self.table);
            let action = tx.fast_append().add_data_files(files).set_snapshot_properties(summary);
            let tx = action.apply(tx).map_err(|e| format!("cannot append to {ident}: {e}"))?;
            tx.commit(self.catalog.as_ref()).await.map_err(|e| format!("cannot commit to {ident}: {e}"))
        }
        .await;
        if published.is_err() {
            self.abandon().await;
        }
        published
    }

    /// Drop the table (a build that failed): nothing of it is left in the
    /// catalog.
    pub async fn abandon(self) {
        let ident = self.table.identifier();
        if let Err(e) = self.catalog.drop_table(ident).await {
            tracing::warn!(table = %ident, error = %e, "cannot drop the table of a failed build");
        }
    }
}
