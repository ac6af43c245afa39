//! The exact mode (Chronon's temporal accuracy): each label gets the
//! window of its key that ends exactly at its time, computed from the
//! view's raw events by the view's own module, in calls batched as the
//! pipeline batches them.
//!
//! Which window, for a label at `t`:
//! - a sliding or tumbling view: the events in `[t - size, t)`, a window
//!   of the view's size ending at `t`;
//! - a session view: the key's session before `t` (its events less than
//!   `gap` apart), ending at `t` while open (its last event less than
//!   `gap` before `t`), at its last event plus `gap` once closed.
//!
//! A label with no event in its window gets no row (nulls), as online.
//! An aggregate transform folds each window's events into a new
//! accumulator and finishes it.
//! The raw events are the view's file (JSON lines or an Avro container
//! file) or topic (from the first label's time less a window, by the
//! brokers' offsets for times, to the partitions' ends), decoded as the
//! pipeline decodes them (an event it would dead-letter is left out and
//! counted) into a scratch Parquet file (`events.rs`).
//! DataFusion merges them with the labels in order of key and time (a
//! label before an event of the same time: its window ends before that
//! event), and one pass over that order keeps each key's recent events.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::SessionContext;
use futures_util::StreamExt;
use sluice_sink_api::{EntityKey, FeatureRow, KeyType, Trigger};
use sluice_sink_iceberg::Columns;

use super::labels::{KEY_INT, KEY_TEXT, ROW, TABLE as LABELS};
use super::{BATCH_ROWS, Error, ParquetFile, View, ident};
use crate::decode::FieldType;
use crate::source::SourceConfig;
use crate::wasm::{self, AddGroup, Engine, Features, Instance, Module};
use crate::window::{Batch, Column, ColumnData, Fired, Kind};

/// What computing a view's windows did.
#[derive(Debug, Default)]
pub(super) struct Computed {
    /// The scratch file of its rows: `key` is the label's row number.
    pub path: PathBuf,
    pub features: Vec<String>,
    /// Raw events decoded, and left out (the pipeline would dead-letter
    /// them).
    pub events: u64,
    pub unreadable_events: u64,
    /// Windows the module computed, and those it failed on (their
    /// features are null).
    pub windows: u64,
    pub failed: u64,
}

/// The table of view `i`'s computed rows in the session.
pub(super) fn table(i: usize) -> String {
    format!("exact_{i}")
}

fn events_table(i: usize) -> String {
    format!("events_{i}")
}

/// The view's module, compiled by `engine`.
pub(super) fn module(view: &View, engine: &Engine) -> Result<Module, Error> {
    let transform = &view.pipeline.transform;
    Module::load(engine, &transform.module, transform.kind, transform.limits)
        .map_err(|e| Error::Table { view: view.name.clone(), message: format!("its module: {e}") })
}

/// Compute view `i`'s window at each label of the session's labels
/// (`time` their time column) into `scratch`, with the view's `module`.
pub(super) async fn compute(
    i: usize,
    view: &View,
    module: &Module,
    ctx: &SessionContext,
    time: &str,
    scratch: &Path,
) -> Result<Computed, Error> {
    let failed = |message: String| Error::Table { view: view.name.clone(), message };
    let spec = &view.pipeline;
    let mut instance = module.instantiate().map_err(|e| failed(format!("its module: {e:#}")))?;
    let features: Vec<String> = module.schema().specs().iter().map(|s| s.name.to_string()).collect();

    let events_path = scratch.join(format!("events_{i}.parquet"));
    let first_ms = match spec.source {
        SourceConfig::Kafka(_) => first_label_ms(ctx, time).await?,
        // A file is read whole.
        SourceConfig::File(_) => None,
    };
    // Reading a file or polling a topic blocks: off the runtime's workers.
    let (events, unreadable_events) = {
        let (view, events_path) = (view.clone(), events_path.clone());
        tokio::task::spawn_blocking(move || super::events::decode(&view, &events_path, first_ms))
            .await
            .map_err(|e| failed(format!("reading its events: {e}")))??
    };
    super::register_file(ctx, &events_table(i), &events_path).await?;

    let fields = spec.fields();
    let null_of = |ty: FieldType| match ty {
        FieldType::String => "CAST(NULL AS VARCHAR)",
        FieldType::Int => "CAST(NULL AS BIGINT)",
        FieldType::Float => "CAST(NULL AS DOUBLE)",
        FieldType::Bool => "CAST(NULL AS BOOLEAN)",
    };
    let event_fields: String = fields.iter().map(|(name, _)| format!(", {}", ident(name))).collect();
    let label_fields: String =
        fields.iter().map(|(name, ty)| format!(", {} AS {}", null_of(*ty), ident(name))).collect();
    let label_key = match view.key_type {
        KeyType::String => KEY_TEXT.to_string(),
        // Events' integer keys are their decimal text: `007` is `7`.
        KeyType::Int => format!("CAST({KEY_INT} AS VARCHAR)"),
    };
    // A label's window ends at its time in whole milliseconds, rounded up:
    // events strictly before the label's time are exactly those before it.
    // Events of the same time keep the file's order, as in the pipeline.
    let sql = format!(
        "SELECT key, t, side, label_row{event_fields} FROM ( \
           SELECT key, t, 1 AS side, seq, CAST(NULL AS BIGINT) AS label_row{event_fields} FROM {events} \
           UNION ALL \
           SELECT {label_key} AS key, CAST(ceil(CAST({time} AS BIGINT) / 1000.0) AS BIGINT) AS t, 0 AS side, \
             CAST(NULL AS BIGINT) AS seq, {ROW} AS label_row{label_fields} FROM {LABELS}) \
         ORDER BY key, t, side, seq",
        events = events_table(i),
        time = ident(time),
    );
    let mut merged = ctx.sql(&sql).await.map_err(Error::Query)?.execute_stream().await.map_err(Error::Query)?;

    let out = scratch.join(format!("exact_{i}.parquet"));
    let columns = Columns::standalone(module.schema(), KeyType::Int).map_err(failed)?;
    let schema = columns.arrow_schema().cloned().ok_or_else(|| failed("no schema for its rows".to_string()))?;
    let mut writer = Writer::open(&out, &view.name, columns, schema)?;
    let mut pass = Pass::new(view, &fields);
    let mut computed = Computed { events, unreadable_events, features, ..Computed::default() };
    while let Some(batch) = merged.next().await {
        let batch = batch.map_err(Error::Query)?;
        pass.batch(&batch, &mut instance, &mut writer, &mut computed)?;
    }
    pass.call(&mut instance, &mut writer, &mut computed)?;
    writer.close()?;
    computed.path = out;
    Ok(computed)
}

/// The first label's time in milliseconds (`None` without labels): where
/// a topic's history must begin.
async fn first_label_ms(ctx: &SessionContext, time: &str) -> Result<Option<i64>, Error> {
    let sql = format!("SELECT min(CAST({} AS BIGINT)) FROM {LABELS}", ident(time));
    let batches = ctx.sql(&sql).await.map_err(Error::Query)?.collect().await.map_err(Error::Query)?;
    let Some(first) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let micros = first.column(0).as_any().downcast_ref::<Int64Array>().ok_or_else(|| super::unexpected("min"))?;
    Ok((!micros.is_null(0)).then(|| micros.value(0).div_euclid(1_000)))
}

/// A decoded field value, owned: a key's recent events outlive the
/// batches they came in.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// One raw event as the pass keeps it.
#[derive(Debug)]
struct Held {
    time: i64,
    values: Vec<Value>,
}

/// The pass over the merged events and labels.
struct Pass {
    kind: Kind,
    key: String,
    recent: VecDeque<Held>,
    /// The call being filled, and the label of each of its windows.
    batch: Batch,
    labels: Vec<i64>,
    /// The code of each string in the call's table: one string, one code,
    /// as the pipeline's calls (transforms may count distinct codes).
    codes: rustc_hash::FxHashMap<String, u32>,
    bounds: crate::window::Bounds,
    transform: wasm::Kind,
    timeout: std::time::Duration,
    fields: Vec<(String, FieldType)>,
}

impl Pass {
    fn new(view: &View, fields: &[(String, FieldType)]) -> Pass {
        let mut pass = Pass {
            kind: view.pipeline.window.kind,
            key: String::new(),
            recent: VecDeque::new(),
            batch: Batch::default(),
            labels: Vec::new(),
            codes: rustc_hash::FxHashMap::default(),
            bounds: view.pipeline.transform.bounds,
            transform: view.pipeline.transform.kind,
            timeout: view.pipeline.transform.limits.timeout,
            fields: fields.to_vec(),
        };
        pass.batch = pass.empty_batch();
        pass
    }

    fn empty_batch(&self) -> Batch {
        Batch::of_fields(0, &self.fields)
    }

    fn batch(
        &mut self,
        batch: &RecordBatch,
        instance: &mut Instance,
        writer: &mut Writer,
        computed: &mut Computed,
    ) -> Result<(), Error> {
        let query = |e| Error::Query(datafusion::error::DataFusionError::ArrowError(Box::new(e), None));
        let keys = compute::cast(batch.column(0), &DataType::Utf8).map_err(query)?;
        let keys = keys.as_any().downcast_ref::<StringArray>().ok_or_else(|| super::unexpected("key"))?;
        let ints = |c: usize| compute::cast(batch.column(c), &DataType::Int64).map_err(query);
        let (times, sides, rows) = (ints(1)?, ints(2)?, ints(3)?);
        let times = times.as_any().downcast_ref::<Int64Array>().ok_or_else(|| super::unexpected("t"))?;
        let sides = sides.as_any().downcast_ref::<Int64Array>().ok_or_else(|| super::unexpected("side"))?;
        let rows = rows.as_any().downcast_ref::<Int64Array>().ok_or_else(|| super::unexpected("label_row"))?;
        let values: Vec<FieldColumn> = self
            .fields
            .iter()
            .enumerate()
            .map(|(f, (_, ty))| FieldColumn::of(batch.column(4 + f), *ty).map_err(query))
            .collect::<Result<_, _>>()?;
        for r in 0..batch.num_rows() {
            let key = keys.value(r);
            if key != self.key {
                key.clone_into(&mut self.key);
                self.recent.clear();
            }
            let time = times.value(r);
            if sides.value(r) == 1 {
                self.event(Held { time, values: values.iter().map(|c| c.value(r)).collect() });
            } else {
                self.label(rows.value(r), time, instance, writer, computed)?;
            }
        }
        Ok(())
    }

    /// An event of the current key: kept while a later label's window can
    /// hold it.
    fn event(&mut self, event: Held) {
        match self.kind {
            Kind::Session { gap } => {
                if self.recent.back().is_some_and(|last| event.time - last.time >= gap) {
                    self.recent.clear();
                }
            }
            Kind::Tumbling { size } | Kind::Sliding { size, .. } => {
                while self.recent.front().is_some_and(|e| e.time < event.time.saturating_sub(size)) {
                    self.recent.pop_front();
                }
            }
        }
        self.recent.push_back(event);
    }

    /// A label of the current key at `time`: its window into the call.
    fn label(
        &mut self,
        label: i64,
        time: i64,
        instance: &mut Instance,
        writer: &mut Writer,
        computed: &mut Computed,
    ) -> Result<(), Error> {
        let (start, end) = match self.kind {
            Kind::Tumbling { size } | Kind::Sliding { size, .. } => {
                let start = time.saturating_sub(size);
                while self.recent.front().is_some_and(|e| e.time < start) {
                    self.recent.pop_front();
                }
                (start, time)
            }
            Kind::Session { gap } => match (self.recent.front(), self.recent.back()) {
                (Some(first), Some(last)) => (first.time, time.min(last.time.saturating_add(gap))),
                _ => (time, time),
            },
        };
        if self.recent.is_empty() {
            return Ok(());
        }
        let held = self.recent.len();
        let bytes: usize = self.recent.iter().map(row_bytes).sum();
        if !self.batch.has_room(&self.bounds, held, bytes) {
            self.call(instance, writer, computed)?;
        }
        let first = self.batch.times.len() as u32;
        for event in &self.recent {
            let row = self.batch.times.len() as u32;
            self.batch.times.push(event.time);
            for (column, value) in self.batch.columns.iter_mut().zip(&event.values) {
                push(column, &mut self.batch.strings, &mut self.codes, row, value);
            }
        }
        self.batch.bytes += bytes;
        let latest = self.recent.back().map_or(start, |e| e.time);
        self.batch.push_window(Fired {
            key: self.key.clone(),
            start,
            end,
            latest,
            trigger: Trigger::Close,
            rows: (first..first + held as u32).collect(),
            accs: Vec::new(),
        });
        self.labels.push(label);
        if self.batch.is_full(&self.bounds) {
            self.call(instance, writer, computed)?;
        }
        Ok(())
    }

    /// Call the module with the windows gathered; a failed call is tried
    /// again a window at a time, and a window that fails alone has no row.
    fn call(&mut self, instance: &mut Instance, writer: &mut Writer, computed: &mut Computed) -> Result<(), Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let empty = self.empty_batch();
        let mut batch = std::mem::replace(&mut self.batch, empty);
        self.codes.clear();
        let labels = std::mem::take(&mut self.labels);
        let results = match evaluate(instance, self.transform, &mut batch, self.timeout) {
            Ok(results) => results,
            Err(_) => (0..batch.windows.len())
                .map(|w| {
                    let mut alone = batch.subset(w..w + 1);
                    match evaluate(instance, self.transform, &mut alone, self.timeout) {
                        Ok(mut one) => one.pop().unwrap_or_else(|| Err(wasm::RowError::returned(String::new()))),
                        Err(e) => Err(wasm::RowError { class: e.class(), message: e.to_string() }),
                    }
                })
                .collect(),
        };
        let now = crate::time::now_ms();
        for ((window, label), result) in batch.windows.iter().zip(labels).zip(results) {
            computed.windows += 1;
            match result {
                Ok(features) => writer.push(FeatureRow {
                    key: EntityKey::Int(label),
                    window_start: window.start,
                    window_end: window.end,
                    event_time: window.latest,
                    trigger: Trigger::Close,
                    features,
                    computed_at: now,
                })?,
                Err(error) => {
                    computed.failed += 1;
                    tracing::warn!(
                        label_row = label + 1,
                        key = %window.key,
                        class = error.class,
                        "the module failed on a label's window: {}",
                        error.message
                    );
                }
            }
        }
        Ok(())
    }
}

/// The features of each window of `batch`: a window transform's
/// `process`, or an aggregate's `add` (one new accumulator per window,
/// its events folded in) then `finish`.
fn evaluate(
    instance: &mut Instance,
    kind: wasm::Kind,
    batch: &mut Batch,
    timeout: std::time::Duration,
) -> Result<Vec<Result<Features, wasm::RowError>>, wasm::CallError> {
    if kind == wasm::Kind::Window {
        return instance.process(batch, timeout);
    }
    let groups: Vec<AddGroup> = batch.windows.iter().map(|w| AddGroup { acc: None, rows: w.rows.clone() }).collect();
    let accumulators = instance.add(batch, &groups, timeout)?;
    let folded: Vec<(&Fired, Vec<u8>)> = batch
        .windows
        .iter()
        .zip(&accumulators)
        .filter_map(|(w, acc)| acc.as_ref().ok().map(|acc| (w, acc.clone())))
        .collect();
    let mut finished = instance.finish(&folded, timeout)?.into_iter();
    Ok(accumulators
        .into_iter()
        .map(|acc| match acc {
            Ok(_) => finished.next().unwrap_or_else(|| Err(wasm::RowError::returned("no result".to_string()))),
            Err(e) => Err(e),
        })
        .collect())
}

/// Bytes of an event as a call counts them (see [`crate::window::Bounds`]).
fn row_bytes(event: &Held) -> usize {
    8 + event
        .values
        .iter()
        .map(|v| match v {
            Value::Str(s) => 4 + s.len(),
            Value::Bool(_) => 1,
            _ => 8,
        })
        .sum::<usize>()
}

fn push(
    column: &mut Column,
    strings: &mut Vec<String>,
    codes: &mut rustc_hash::FxHashMap<String, u32>,
    row: u32,
    value: &Value,
) {
    match (&mut column.data, value) {
        (ColumnData::Strs(column_codes), Value::Str(s)) => {
            let code = match codes.get(s) {
                Some(&code) => code,
                None => {
                    let code = strings.len() as u32;
                    strings.push(s.clone());
                    codes.insert(s.clone(), code);
                    code
                }
            };
            column_codes.push(code);
        }
        (ColumnData::Ints(v), Value::Int(i)) => v.push(*i),
        (ColumnData::Floats(v), Value::Float(x)) => v.push(*x),
        (ColumnData::Bools(v), Value::Bool(b)) => v.push(*b),
        (data, _) => {
            match data {
                ColumnData::Strs(codes) => codes.push(0),
                ColumnData::Ints(v) => v.push(0),
                ColumnData::Floats(v) => v.push(0.0),
                ColumnData::Bools(v) => v.push(false),
            }
            column.nulls.push(row);
        }
    }
}

/// A declared field's column of a merged batch.
enum FieldColumn {
    Str(StringArray),
    Int(Int64Array),
    Float(Float64Array),
    Bool(BooleanArray),
}

impl FieldColumn {
    fn of(column: &ArrayRef, ty: FieldType) -> Result<FieldColumn, datafusion::arrow::error::ArrowError> {
        let cast = |to: &DataType| compute::cast(column, to);
        let wrong = || datafusion::arrow::error::ArrowError::CastError("a field's column".to_string());
        Ok(match ty {
            FieldType::String => FieldColumn::Str(
                cast(&DataType::Utf8)?.as_any().downcast_ref::<StringArray>().ok_or_else(wrong)?.clone(),
            ),
            FieldType::Int => FieldColumn::Int(
                cast(&DataType::Int64)?.as_any().downcast_ref::<Int64Array>().ok_or_else(wrong)?.clone(),
            ),
            FieldType::Float => FieldColumn::Float(
                cast(&DataType::Float64)?.as_any().downcast_ref::<Float64Array>().ok_or_else(wrong)?.clone(),
            ),
            FieldType::Bool => FieldColumn::Bool(
                cast(&DataType::Boolean)?.as_any().downcast_ref::<BooleanArray>().ok_or_else(wrong)?.clone(),
            ),
        })
    }

    fn value(&self, r: usize) -> Value {
        match self {
            FieldColumn::Str(a) if a.is_valid(r) => Value::Str(a.value(r).to_string()),
            FieldColumn::Int(a) if a.is_valid(r) => Value::Int(a.value(r)),
            FieldColumn::Float(a) if a.is_valid(r) => Value::Float(a.value(r)),
            FieldColumn::Bool(a) if a.is_valid(r) => Value::Bool(a.value(r)),
            _ => Value::Null,
        }
    }
}

/// Computed rows into a scratch Parquet file.
struct Writer {
    view: String,
    columns: Columns,
    file: ParquetFile,
    rows: Vec<FeatureRow>,
}

impl Writer {
    fn open(path: &Path, view: &str, columns: Columns, schema: SchemaRef) -> Result<Writer, Error> {
        let file = ParquetFile::create(path, schema)?;
        Ok(Writer { view: view.to_string(), columns, file, rows: Vec::new() })
    }

    fn push(&mut self, row: FeatureRow) -> Result<(), Error> {
        self.rows.push(row);
        if self.rows.len() >= BATCH_ROWS { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch =
            self.columns.batch(&self.rows).map_err(|message| Error::Table { view: self.view.clone(), message })?;
        self.rows.clear();
        self.file.write(&batch)
    }

    fn close(mut self) -> Result<(), Error> {
        self.flush()?;
        self.file.close()
    }
}
