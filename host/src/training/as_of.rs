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
//! Two steps, both DataFusion's:
//! - *pick*: the view's rows and the labels merged in order of key and
//!   time (a row available at a label's time first), sorted out of core;
//!   one pass over that order keeps each key's newest available row and
//!   names it to the key's labels by its newness (key, timestamp,
//!   `window_end`, `computed_at`). Only those narrow columns are sorted:
//!   a sort that spills merges its runs holding a batch of each run, and
//!   with the features' lists in it these were megabytes a run, so the
//!   peak grew with the table; narrow, they are kilobytes.
//! - *fetch*: a hash join of the picked rows (at most one per label, its
//!   build side) with the table, which streams past them, gives each
//!   label its row's features. Rows that tie on all four (a duplicate)
//!   are one row to the rule: the label takes the first that comes.
//!
//! The result is a table of the labels that got a row, `key` their row
//! number, then the view's features: joined to the labels as the exact
//! mode's rows are.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{Column, JoinType, ScalarValue};
use datafusion::prelude::{DataFrame, Expr, SessionContext, cast, lit};
use futures_util::StreamExt;
use sluice_sink_api::KeyType;

use super::labels::{KEY_INT, KEY_TEXT, ROW, TABLE as LABELS, UTC};
use super::{Error, View};

/// The name of view `i`'s table in the session.
pub(super) fn table(i: usize) -> String {
    format!("view_{i}")
}

/// The name of view `i`'s rows by label in the session: `key` the
/// label's row number, then the features.
pub(super) fn rows(i: usize) -> String {
    format!("as_of_{i}")
}

/// The picked rows of view `i` in the session.
fn picked(i: usize) -> String {
    format!("as_of_picked_{i}")
}

/// The merged order's columns, and the picked rows': the label's row
/// number (null for a view's row) ahead of these.
const KEY: &str = "__k";
const TIME: &str = "__t";
const SIDE: &str = "__side";
const LABEL: &str = "__label";
/// What makes a row newer, in the order it counts (module doc).
const NEWNESS: [&str; 3] = ["__stamp", "__end", "__computed"];

fn column(name: &str) -> Expr {
    datafusion::prelude::ident(name)
}

fn query(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::Query(datafusion::error::DataFusionError::ArrowError(Box::new(e), None))
}

/// Join view `i` (its table registered, its `features`) to the
/// session's labels (`time` their time column): the rows of [`rows`],
/// written into `scratch`.
pub(super) async fn join(
    i: usize,
    view: &View,
    features: &[String],
    ctx: &SessionContext,
    time: &str,
    scratch: &Path,
) -> Result<PathBuf, Error> {
    let picked_path = scratch.join(format!("{}.parquet", picked(i)));
    pick(i, view, ctx, time, &picked_path).await?;
    super::register_file(ctx, &picked(i), &picked_path).await?;
    let out = scratch.join(format!("{}.parquet", rows(i)));
    fetch(i, view, features, ctx, &out).await?;
    Ok(out)
}

/// The key and newness of each of the view's rows (`rows`): how the pick
/// names a row and the fetch finds it.
fn newness(view: &View, rows: &DataFrame) -> Result<[Expr; 4], Error> {
    let stamp =
        rows.parse_sql_expr("CASE trigger WHEN 'event' THEN event_time ELSE window_end END").map_err(Error::Query)?;
    Ok([
        cast(column("key"), key_type(view)).alias(KEY),
        cast(stamp, DataType::Int64).alias(NEWNESS[0]),
        cast(column("window_end"), DataType::Int64).alias(NEWNESS[1]),
        cast(column("computed_at"), DataType::Int64).alias(NEWNESS[2]),
    ])
}

/// The picked rows: a label's row number, then its row's key and newness
/// (the names [`newness`] gives them).
fn picked_schema(view: &View) -> SchemaRef {
    let mut fields = vec![Field::new(LABEL, DataType::Int64, false), Field::new(KEY, key_type(view), false)];
    fields.extend(NEWNESS.map(|name| Field::new(name, DataType::Int64, false)));
    Arc::new(Schema::new(fields))
}

fn key_type(view: &View) -> DataType {
    match view.key_type {
        KeyType::String => DataType::Utf8,
        KeyType::Int => DataType::Int64,
    }
}

/// Sort the view's rows' and the labels' narrow columns together and
/// write each label's newest available row, named by its newness, into
/// `out`.
async fn pick(i: usize, view: &View, ctx: &SessionContext, time: &str, out: &Path) -> Result<(), Error> {
    let rows = ctx.table(table(i)).await.map_err(Error::Query)?;
    let labelled = ctx.table(LABELS).await.map_err(Error::Query)?;
    let delay = view.serving_delay_ms.max(0);
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
    let available = rows
        .parse_sql_expr(&format!(
            "CASE trigger \
               WHEN 'event' THEN event_time + INTERVAL '1 millisecond' \
               WHEN 'late' THEN greatest(window_end + INTERVAL '{delay} milliseconds', computed_at) \
               ELSE window_end + INTERVAL '{delay} milliseconds' END"
        ))
        .map_err(Error::Query)?;
    let [key, stamp, end, computed] = newness(view, &rows)?;
    let no_time = || ScalarValue::try_new_null(&DataType::Int64).map(lit).map_err(Error::Query);
    // Both sides' columns in one order: a union takes them by position.
    let of_rows = vec![
        key,
        cast(available, utc.clone()).alias(TIME),
        lit(0i64).alias(SIDE),
        stamp,
        end,
        computed,
        no_time()?.alias(LABEL),
    ];
    let label_key = match view.key_type {
        KeyType::String => KEY_TEXT,
        KeyType::Int => KEY_INT,
    };
    let of_labels = vec![
        cast(column(label_key), key_type(view)).alias(KEY),
        cast(column(time), utc).alias(TIME),
        lit(1i64).alias(SIDE),
        no_time()?.alias(NEWNESS[0]),
        no_time()?.alias(NEWNESS[1]),
        no_time()?.alias(NEWNESS[2]),
        column(ROW).alias(LABEL),
    ];
    let rows = rows.select(of_rows).map_err(Error::Query)?;
    let labelled = labelled.select(of_labels).map_err(Error::Query)?;
    let order = [KEY, TIME, SIDE].map(|c| column(c).sort(true, false)).to_vec();
    let merged = rows.union(labelled).and_then(|u| u.sort(order)).map_err(Error::Query)?;
    let mut stream = merged.execute_stream().await.map_err(Error::Query)?;

    let schema = picked_schema(view);
    let mut writer = super::ParquetFile::create(out, schema.clone())?;
    let mut pass = Pass::default();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::Query)?;
        if let Some(picked) = pass.batch(&batch, &schema)? {
            writer.write(&picked)?;
        }
    }
    writer.close()
}

/// Fetch the picked rows' features from view `i`'s table into `out`:
/// `key` the label's row number, then the features.
async fn fetch(i: usize, view: &View, features: &[String], ctx: &SessionContext, out: &Path) -> Result<(), Error> {
    let rows = ctx.table(table(i)).await.map_err(Error::Query)?;
    let mut of_rows = newness(view, &rows)?.to_vec();
    of_rows.extend(features.iter().map(|f| column(f)));
    let rows = rows.select(of_rows).and_then(|r| r.alias("v")).map_err(Error::Query)?;
    let picked = ctx.table(picked(i)).await.and_then(|p| p.alias("p")).map_err(Error::Query)?;
    let of = |side: &str, name: &str| Expr::Column(Column::new(Some(side), name));
    let on = std::iter::once(KEY).chain(NEWNESS).map(|c| of("p", c).eq(of("v", c)));
    let mut selected = vec![of("p", LABEL).alias("key")];
    selected.extend(features.iter().map(|f| of("v", f).alias(f)));
    let joined = picked.join_on(rows, JoinType::Inner, on).and_then(|j| j.select(selected)).map_err(Error::Query)?;
    // A hash join, whatever the session prefers for its other joins: the
    // picked rows are its build side (the table gives DataFusion no
    // statistics, so it keeps them left), and the table streams past
    // them unsorted. A sort-merge join would sort the table's features.
    let (mut state, plan) = joined.into_parts();
    state.config_mut().options_mut().optimizer.prefer_hash_join = true;
    let mut stream = DataFrame::new(state, plan).execute_stream().await.map_err(Error::Query)?;

    let mut writer = super::ParquetFile::create(out, stream.schema())?;
    // Labels that got their row, by row number (the labels' positions in
    // their file): a tie (module doc) would give another.
    let mut fetched: Vec<bool> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::Query)?;
        let labels = batch.column(0).as_any().downcast_ref::<Int64Array>().ok_or_else(|| super::unexpected("key"))?;
        let mut first = Vec::with_capacity(labels.len());
        for &label in labels.values() {
            let at = usize::try_from(label).map_err(|_| {
                let bug = format!("a picked row names label row {label}: row numbers count from 0");
                Error::Query(datafusion::error::DataFusionError::Internal(bug))
            })?;
            if at >= fetched.len() {
                fetched.resize((at + 1).max(fetched.len() * 2), false);
            }
            first.push(!std::mem::replace(&mut fetched[at], true));
        }
        let first = compute::filter_record_batch(&batch, &BooleanArray::from(first)).map_err(query)?;
        writer.write(&first)?;
    }
    writer.close()
}

/// The pass over the merged order.
#[derive(Default)]
struct Pass {
    /// The current key (as text) and the newness of its newest available
    /// row.
    key: Option<String>,
    best: Option<[i64; 3]>,
}

impl Pass {
    /// The labels of `batch` that have a row, each with its row's key and
    /// newness (`schema`), if it holds any.
    fn batch(&mut self, batch: &RecordBatch, schema: &SchemaRef) -> Result<Option<RecordBatch>, Error> {
        let at = |name: &str| batch.schema().index_of(name).map_err(|_| super::unexpected(name));
        let keys = compute::cast(batch.column(at(KEY)?), &DataType::Utf8).map_err(query)?;
        let keys = keys.as_any().downcast_ref::<StringArray>().ok_or_else(|| super::unexpected(KEY))?;
        let ints = |name: &str| -> Result<Int64Array, Error> {
            let array = batch.column(at(name)?);
            array.as_any().downcast_ref::<Int64Array>().cloned().ok_or_else(|| super::unexpected(name))
        };
        let side = ints(SIDE)?;
        let [stamp, end, computed] = NEWNESS.map(ints);
        let newness = [stamp?, end?, computed?];
        let mut labels: Vec<u32> = Vec::new();
        let mut picked: [Vec<i64>; 3] = Default::default();
        for r in 0..batch.num_rows() {
            let key = keys.value(r);
            if self.key.as_deref() != Some(key) {
                self.key = Some(key.to_string());
                self.best = None;
            }
            if side.value(r) == 0 {
                let row = newness.each_ref().map(|c| c.value(r));
                if self.best.is_none_or(|best| row >= best) {
                    self.best = Some(row);
                }
            } else if let Some(best) = self.best {
                labels.push(r as u32);
                for (column, value) in picked.iter_mut().zip(best) {
                    column.push(value);
                }
            }
        }
        if labels.is_empty() {
            return Ok(None);
        }
        let indices = UInt32Array::from(labels);
        let mut columns = vec![
            compute::take(batch.column(at(LABEL)?), &indices, None).map_err(query)?,
            compute::take(batch.column(at(KEY)?), &indices, None).map_err(query)?,
        ];
        columns.extend(picked.map(|values| Arc::new(Int64Array::from(values)) as ArrayRef));
        RecordBatch::try_new(schema.clone(), columns).map(Some).map_err(query)
    }
}
