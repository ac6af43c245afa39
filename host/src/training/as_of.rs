//! The as-of join (Feast's `get_historical_features`): for each label,
//! each view's newest row for its key among those the online store could
//! have served at the label's time.
//!
//! A row is *available* from:
//! - `window_end + serving delay`, fired on close (its events are all
//!   before `window_end`; the watermark passes it `out_of_orderness`
//!   later);
//! - `event_time + 1 ms`, fired by an event (it holds that event);
//! - `computed_at`, a late correction, and not before its window closed:
//!   it holds an event read only then.
//!
//! Among the available rows the newest is the one with the latest
//! timestamp (`window_end`, or `event_time` for a row fired by an event),
//! then the latest `window_end`, then the latest `computed_at` (a
//! correction replaces the row it corrects): the rule the Redis sink
//! writes by, so the join gives what the online store held.
//!
//! DataFusion merges the view's rows with the labels in order of key and
//! time (a row available at a label's time first), sorting out of core;
//! one pass over that order keeps each key's newest available row and
//! gives it to the key's labels. The labels come out with the view's
//! features added, the next view's input.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::prelude::{DataFrame, Expr, SessionContext, cast, lit};
use futures_util::StreamExt;
use sluice_sink_api::KeyType;

use super::labels::{KEY_INT, KEY_TEXT, UTC};
use super::{Error, View};

/// The name of view `i`'s table in the session.
pub(super) fn table(i: usize) -> String {
    format!("view_{i}")
}

/// The column of view `i`'s feature `j` in the labels the join gives.
pub(super) fn feature_column(i: usize, j: usize) -> String {
    format!("__v{i}_{j}")
}

/// Whether a label got a row of view `i`.
pub(super) fn found_column(i: usize) -> String {
    format!("__found_{i}")
}

/// The merged order's own columns, ahead of the features and the labels'.
const KEY: usize = 0;
const SIDE: usize = 2;
const NEWNESS: [usize; 3] = [3, 4, 5];
const FEATURES: usize = 6;

fn column(name: &str) -> Expr {
    datafusion::prelude::ident(name)
}

fn query(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::Query(datafusion::error::DataFusionError::ArrowError(Box::new(e), None))
}

/// Join view `i` (its table registered, its `features`) to the labels
/// of `labels` (a table of the session, `time` their time column) into
/// `out`: the labels' columns, then the view's features, then its flag.
pub(super) async fn join(
    i: usize,
    view: &View,
    features: &[String],
    ctx: &SessionContext,
    labels: &str,
    time: &str,
    out: &Path,
) -> Result<(), Error> {
    let rows = ctx.table(table(i)).await.map_err(Error::Query)?;
    let labelled = ctx.table(labels).await.map_err(Error::Query)?;
    let label_fields: Vec<Field> = labelled.schema().as_arrow().fields().iter().map(|f| f.as_ref().clone()).collect();
    let feature_fields: Vec<Field> = features
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let field = rows.schema().as_arrow().field_with_name(name).map_err(query)?;
            Ok(Field::new(feature_column(i, j), field.data_type().clone(), true))
        })
        .collect::<Result<_, Error>>()?;
    let merged = merged(view, features, rows, labelled, &feature_fields, &label_fields, time)?;
    let mut stream = merged.execute_stream().await.map_err(Error::Query)?;

    let mut fields = label_fields.clone();
    fields.extend(feature_fields.iter().cloned());
    fields.push(Field::new(found_column(i), DataType::Boolean, false));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let file = std::fs::File::create(out).map_err(|e| Error::Scratch { path: out.to_path_buf(), source: e })?;
    let write_error = |e| Error::Write { path: out.to_path_buf(), source: e };
    let mut writer = super::parquet_writer(file, schema.clone()).map_err(write_error)?;
    let mut pass = Pass::new(&feature_fields, label_fields.len());
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::Query)?;
        if let Some(labelled) = pass.batch(&batch, &schema)? {
            writer.write(&labelled).map_err(write_error)?;
        }
    }
    writer.close().map_err(write_error)?;
    Ok(())
}

/// The view's rows and the labels in one order: key, time, rows first.
fn merged(
    view: &View,
    features: &[String],
    rows: DataFrame,
    labelled: DataFrame,
    feature_fields: &[Field],
    label_fields: &[Field],
    time: &str,
) -> Result<DataFrame, Error> {
    let delay = view.serving_delay_ms.max(0);
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
    let key_type = match view.key_type {
        KeyType::String => DataType::Utf8,
        KeyType::Int => DataType::Int64,
    };
    let null = |ty: &DataType| ScalarValue::try_new_null(ty).map(lit).map_err(Error::Query);
    let sql = |frame: &DataFrame, text: &str| frame.parse_sql_expr(text).map_err(Error::Query);
    let available = sql(
        &rows,
        &format!(
            "CASE trigger \
               WHEN 'event' THEN event_time + INTERVAL '1 millisecond' \
               WHEN 'late' THEN greatest(window_end + INTERVAL '{delay} milliseconds', computed_at) \
               ELSE window_end + INTERVAL '{delay} milliseconds' END"
        ),
    )?;
    let stamp = sql(&rows, "CASE trigger WHEN 'event' THEN event_time ELSE window_end END")?;
    let mut of_rows = vec![
        cast(column("key"), key_type.clone()).alias("__k"),
        cast(available, utc.clone()).alias("__t"),
        lit(0i64).alias("__side"),
        cast(stamp, DataType::Int64).alias("__stamp"),
        cast(column("window_end"), DataType::Int64).alias("__end"),
        cast(column("computed_at"), DataType::Int64).alias("__computed"),
    ];
    let mut of_labels = vec![
        cast(
            column(match view.key_type {
                KeyType::String => KEY_TEXT,
                KeyType::Int => KEY_INT,
            }),
            key_type,
        )
        .alias("__k"),
        cast(column(time), utc).alias("__t"),
        lit(1i64).alias("__side"),
        null(&DataType::Int64)?.alias("__stamp"),
        null(&DataType::Int64)?.alias("__end"),
        null(&DataType::Int64)?.alias("__computed"),
    ];
    for (name, field) in features.iter().zip(feature_fields) {
        of_rows.push(column(name).alias(field.name()));
        of_labels.push(null(field.data_type())?.alias(field.name()));
    }
    for field in label_fields {
        of_rows.push(null(field.data_type())?.alias(field.name()));
        of_labels.push(column(field.name()));
    }
    let rows = rows.select(of_rows).map_err(Error::Query)?;
    let labelled = labelled.select(of_labels).map_err(Error::Query)?;
    let order = ["__k", "__t", "__side"].map(|c| column(c).sort(true, false)).to_vec();
    rows.union(labelled).and_then(|u| u.sort(order)).map_err(Error::Query)
}

/// The pass over the merged order.
struct Pass {
    /// The current key (as text) and its newest available row: how new,
    /// and where (a batch of the merged order and a row of it).
    key: Option<String>,
    best: Option<((i64, i64, i64), RecordBatch, usize)>,
    /// A row of nulls of the features' types, for labels with no row.
    nulls: Vec<ArrayRef>,
    label_columns: usize,
}

impl Pass {
    fn new(feature_fields: &[Field], label_columns: usize) -> Pass {
        let nulls = feature_fields.iter().map(|f| datafusion::arrow::array::new_null_array(f.data_type(), 1)).collect();
        Pass { key: None, best: None, nulls, label_columns }
    }

    /// The labels of `batch` with their features, if it holds any.
    fn batch(&mut self, batch: &RecordBatch, schema: &SchemaRef) -> Result<Option<RecordBatch>, Error> {
        let keys = compute::cast(batch.column(KEY), &DataType::Utf8).map_err(query)?;
        let keys = keys.as_any().downcast_ref::<StringArray>().ok_or_else(|| super::unexpected("__k"))?;
        let ints = |c: usize| -> Result<Int64Array, Error> {
            let array = compute::cast(batch.column(c), &DataType::Int64).map_err(query)?;
            array.as_any().downcast_ref::<Int64Array>().cloned().ok_or_else(|| super::unexpected("newness"))
        };
        let side = ints(SIDE)?;
        let [stamp, end, computed] = NEWNESS.map(ints);
        let (stamp, end, computed) = (stamp?, end?, computed?);
        // Where each label's features come from: 0 none, 1 the batch held
        // from before this one, 2 this one.
        let held = self.best.as_ref().map(|(_, b, _)| b.clone());
        let mut labels: Vec<u32> = Vec::new();
        let mut sources: Vec<(usize, usize)> = Vec::new();
        let mut found: Vec<bool> = Vec::new();
        for r in 0..batch.num_rows() {
            let key = keys.value(r);
            if self.key.as_deref() != Some(key) {
                self.key = Some(key.to_string());
                self.best = None;
            }
            if side.value(r) == 0 {
                let newness = (stamp.value(r), end.value(r), computed.value(r));
                if self.best.as_ref().is_none_or(|(best, _, _)| newness >= *best) {
                    self.best = Some((newness, batch.clone(), r));
                }
                continue;
            }
            labels.push(r as u32);
            let source = match &self.best {
                None => (0, 0),
                Some((_, b, row)) if Arc::ptr_eq(b.column(0), batch.column(0)) => (2, *row),
                Some((_, _, row)) => (1, *row),
            };
            found.push(source.0 != 0);
            sources.push(source);
        }
        if labels.is_empty() {
            return Ok(None);
        }
        let indices = UInt32Array::from(labels);
        let first_label = FEATURES + self.nulls.len();
        let mut columns: Vec<ArrayRef> = (first_label..first_label + self.label_columns)
            .map(|c| compute::take(batch.column(c), &indices, None).map_err(query))
            .collect::<Result<_, _>>()?;
        for (j, nulls) in self.nulls.iter().enumerate() {
            let c = FEATURES + j;
            let before = held.as_ref().map_or_else(|| nulls.clone(), |b| b.column(c).clone());
            let arrays: [&dyn Array; 3] = [nulls.as_ref(), before.as_ref(), batch.column(c).as_ref()];
            columns.push(compute::interleave(&arrays, &sources).map_err(query)?);
        }
        columns.push(Arc::new(BooleanArray::from(found)));
        RecordBatch::try_new(schema.clone(), columns).map(Some).map_err(query)
    }
}
