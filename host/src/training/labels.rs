//! The labels file, read once and written again as the join takes it:
//! each row numbered, its time as UTC microseconds, its key as text (and
//! as an integer for integer-keyed views). A row whose key or time cannot
//! be read is left out and reported with its number.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{self, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig};
use futures_util::StreamExt;

use super::Error;

/// The time zone of every time the join compares: Iceberg's (UTC).
pub(super) const UTC: &str = "+00:00";
/// The labels' table in a training set's query session.
pub(super) const TABLE: &str = "labels";
/// The columns the join adds to the labels'.
pub(super) const ROW: &str = "__label_row";
pub(super) const KEY_TEXT: &str = "__key";
pub(super) const KEY_INT: &str = "__key_int";
/// How many unreadable rows a report lists (all are counted).
const LISTED: usize = 20;

/// Where the labels are and which columns are the key and the time.
#[derive(Debug, Clone)]
pub struct LabelsSpec {
    /// A `.csv` file (with a header row) or a `.parquet` file.
    pub path: PathBuf,
    /// The column of entity keys.
    pub key: String,
    /// The column of label times: a timestamp (naive ones are UTC), a
    /// date, RFC 3339 or `YYYY-MM-DD HH:MM:SS[.fff]` text, or an integer of
    /// milliseconds since the Unix epoch.
    pub time: String,
}

/// A label row left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadLabel {
    /// Its number among the file's rows, from 1 (the header is not a row).
    pub row: u64,
    pub reason: String,
}

/// The labels as the join reads them.
#[derive(Debug)]
pub(super) struct Labels {
    pub path: PathBuf,
    /// The file's own columns, in order (the time column now UTC
    /// microseconds).
    pub columns: Vec<String>,
    pub read: u64,
    pub bad: u64,
    /// The first [`LISTED`] of them.
    pub listed: Vec<BadLabel>,
}

impl Labels {
    /// Register them as the session's [`TABLE`].
    pub async fn register(&self, ctx: &SessionContext) -> Result<(), Error> {
        super::register_file(ctx, TABLE, &self.path).await
    }
}

/// Read the labels of `spec` into `dir/labels.parquet`, with integer keys
/// too when `int_keys`.
pub(super) async fn prepare(spec: &LabelsSpec, int_keys: bool, dir: &Path) -> Result<Labels, Error> {
    let read_error = |source| Error::Labels { path: spec.path.clone(), source };
    // One partition: rows come in file order, so their numbers are the file's.
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let path = spec.path.to_string_lossy().into_owned();
    let frame = match spec.path.extension().and_then(|e| e.to_str()) {
        Some("csv") => {
            // Keys and times are read as text, so that one that does not
            // parse is this row's problem rather than the whole file's.
            let inferred = ctx.read_csv(&path, CsvReadOptions::new()).await.map_err(read_error)?;
            let fields: Vec<Field> = inferred
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    if f.name() == &spec.key || f.name() == &spec.time {
                        Field::new(f.name(), DataType::Utf8, true)
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect();
            let schema = Schema::new(fields);
            ctx.read_csv(&path, CsvReadOptions::new().schema(&schema)).await.map_err(read_error)?
        }
        Some("parquet") => ctx.read_parquet(&path, ParquetReadOptions::default()).await.map_err(read_error)?,
        _ => return Err(Error::LabelsFormat { path: spec.path.clone() }),
    };
    let input: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let columns: Vec<String> = input.fields().iter().map(|f| f.name().clone()).collect();
    for (role, name) in [("key", &spec.key), ("time", &spec.time)] {
        if !columns.contains(name) {
            return Err(Error::LabelsColumn {
                path: spec.path.clone(),
                role,
                column: name.clone(),
                have: columns.join(", "),
            });
        }
    }
    if let Some(clash) = columns.iter().find(|c| c.starts_with("__")) {
        return Err(Error::LabelsReserved { path: spec.path.clone(), column: clash.clone() });
    }
    let normalizer = Normalizer::new(spec, &input, int_keys)?;
    let out = dir.join("labels.parquet");
    let mut writer = super::ParquetFile::create(&out, normalizer.schema.clone())?;
    let mut labels = Labels { path: out.clone(), columns, read: 0, bad: 0, listed: Vec::new() };
    let mut batches = frame.execute_stream().await.map_err(read_error)?;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(read_error)?;
        let normalized = normalizer.batch(&batch, labels.read, &mut labels)?;
        labels.read += batch.num_rows() as u64;
        writer.write(&normalized)?;
    }
    writer.close()?;
    Ok(labels)
}

/// Turns the file's batches into the join's.
struct Normalizer {
    key: usize,
    time: usize,
    time_type: DataType,
    int_keys: bool,
    /// What the join reads.
    schema: SchemaRef,
    /// The same, every column nullable: a batch before its unreadable
    /// rows are left out.
    nullable: SchemaRef,
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

impl Normalizer {
    fn new(spec: &LabelsSpec, input: &SchemaRef, int_keys: bool) -> Result<Normalizer, Error> {
        let index =
            |name: &str| input.index_of(name).map_err(|e| Error::Labels { path: spec.path.clone(), source: e.into() });
        let (key, time) = (index(&spec.key)?, index(&spec.time)?);
        let time_type = input.field(time).data_type().clone();
        let readable = matches!(
            time_type,
            DataType::Timestamp(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Int64
                | DataType::Int32
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
        );
        if !readable {
            return Err(Error::LabelsTimeType { column: spec.time.clone(), found: time_type.to_string() });
        }
        let mut fields: Vec<Field> = input
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| if i == time { Field::new(f.name(), utc_micros(), false) } else { f.as_ref().clone() })
            .collect();
        fields.push(Field::new(ROW, DataType::Int64, false));
        fields.push(Field::new(KEY_TEXT, DataType::Utf8, false));
        if int_keys {
            fields.push(Field::new(KEY_INT, DataType::Int64, false));
        }
        let nullable = fields.iter().map(|f| f.clone().with_nullable(true)).collect::<Vec<_>>();
        Ok(Normalizer {
            key,
            time,
            time_type,
            int_keys,
            schema: Arc::new(Schema::new(fields)),
            nullable: Arc::new(Schema::new(nullable)),
        })
    }

    /// `batch`, whose first row is the file's `first + 1`th, with its
    /// unreadable rows left out and counted in `labels`.
    fn batch(&self, batch: &RecordBatch, first: u64, labels: &mut Labels) -> Result<RecordBatch, Error> {
        let cast_error = |e| Error::Query(datafusion::error::DataFusionError::ArrowError(Box::new(e), None));
        let keys = batch.column(self.key);
        let text = compute::cast(keys, &DataType::Utf8).map_err(cast_error)?;
        let ints = if self.int_keys { Some(safe_cast(keys, &DataType::Int64).map_err(cast_error)?) } else { None };
        let times = self.times(batch.column(self.time)).map_err(cast_error)?;
        let rows = batch.num_rows();
        let mut keep = Vec::with_capacity(rows);
        for i in 0..rows {
            let reason = if keys.is_null(i)
                || text.as_any().downcast_ref::<StringArray>().is_some_and(|t| t.value(i).is_empty())
            {
                Some("it has no key".to_string())
            } else if ints.as_ref().is_some_and(|a| a.is_null(i)) {
                Some(format!("its key {} is not an integer (a view's keys are)", shown(&text, i)))
            } else if times.is_null(i) {
                Some(if batch.column(self.time).is_null(i) {
                    "it has no time".to_string()
                } else {
                    format!(
                        "its time {} is not a time (RFC 3339, `YYYY-MM-DD HH:MM:SS`, or milliseconds since the epoch)",
                        shown(&compute::cast(batch.column(self.time), &DataType::Utf8).map_err(cast_error)?, i)
                    )
                })
            } else {
                None
            };
            keep.push(reason.is_none());
            if let Some(reason) = reason {
                labels.bad += 1;
                if labels.listed.len() < LISTED {
                    labels.listed.push(BadLabel { row: first + i as u64 + 1, reason });
                }
            }
        }
        let numbers: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows).map(|i| (first + i as u64) as i64)));
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[self.time] = times;
        columns.push(numbers);
        columns.push(text);
        columns.extend(ints);
        // The left-out rows hold nulls where the join's columns hold none.
        let all = RecordBatch::try_new(self.nullable.clone(), columns).map_err(cast_error)?;
        let kept = compute::filter_record_batch(&all, &BooleanArray::from(keep)).map_err(cast_error)?;
        RecordBatch::try_new(self.schema.clone(), kept.columns().to_vec()).map_err(cast_error)
    }

    /// The time column as UTC microseconds; null where it does not read.
    fn times(&self, column: &ArrayRef) -> Result<ArrayRef, datafusion::arrow::error::ArrowError> {
        match &self.time_type {
            DataType::Int64 | DataType::Int32 => millis(&safe_cast(column, &DataType::Int64)?),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                // Digits are milliseconds; anything else is a time's text.
                let as_millis = millis(&safe_cast(column, &DataType::Int64)?)?;
                let as_text = safe_cast(column, &utc_micros())?;
                let mask = compute::is_not_null(&as_millis)?;
                Ok(compute::kernels::zip::zip(&mask, &as_millis, &as_text)?)
            }
            _ => safe_cast(column, &utc_micros()),
        }
    }
}

/// `cast` that gives null where a value does not convert.
fn safe_cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, datafusion::arrow::error::ArrowError> {
    compute::cast_with_options(array, to, &CastOptions { safe: true, ..Default::default() })
}

/// Milliseconds since the epoch as UTC microseconds (null on overflow).
fn millis(ints: &ArrayRef) -> Result<ArrayRef, datafusion::arrow::error::ArrowError> {
    let ints = ints.as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
        datafusion::arrow::error::ArrowError::CastError(format!("expected 64-bit integers, found {}", ints.data_type()))
    })?;
    let micros: TimestampMicrosecondArray = ints.iter().map(|v| v.and_then(|ms| ms.checked_mul(1000))).collect();
    Ok(Arc::new(micros.with_timezone(UTC)))
}

fn shown(text: &ArrayRef, i: usize) -> String {
    let value = text.as_any().downcast_ref::<StringArray>().map(|a| a.value(i).to_string()).unwrap_or_default();
    let clipped: String = value.chars().take(60).collect();
    format!("`{clipped}`")
}
