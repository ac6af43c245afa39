//! `sluice training-set --check-online`: the same logic, checked. For a
//! sample of keys a view serves now, its online store's row is compared
//! with the offline table's row of the same window and with that window
//! computed again from the raw events by the view's module (the exact
//! mode); every difference is skew, counted per feature.
//!
//! Which keys: up to `sample` of them, drawn at random among those whose
//! newest offline row's time (its window's end; its event's time for a
//! row fired per event) is within one window (the size; a session's gap)
//! of the table's newest: the keys whose newest online row is within the
//! window the pipeline is at.
//!
//! Which rows, for a key whose online row has time `T`:
//! - offline: the key's newest row in the table, by the rule the online
//!   store keeps its rows by (time, then window end, then `computed_at`).
//!   At `T`, it is compared. Before `T`, the table does not hold the online
//!   row yet (the Iceberg sink commits at checkpoints): counted, not skew.
//!   After `T`, the online store missed the table's newest row: skew,
//!   counted as "online behind".
//! - exact: the window ending at `T`, computed from the view's raw events
//!   (its file or its topic) by its module, as `--mode exact` computes it
//!   for a label at `T`. Not for a view fired per event: its rows' windows end
//!   after their event, not at its time.
//!
//! Values are the same when both are null, the same text or boolean,
//! numbers within a relative 1e-9 of each other (the plain layout keeps
//! floats as text, and an aggregate folds its events in the order they
//! arrived online, in time order when computed again), or lists of the
//! same values.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use serde_json::{Map, Value};
use sluice_sink_api::{EntityKey, KeyType};

use super::{Error, LabelsSpec, View, as_of, exact, ident, labels};
use crate::wasm::{Engine, Module};
use crate::window::{Kind, TriggerMode};

/// How many differences a report lists per view (all are counted).
const LISTED: usize = 20;

/// A check to run.
#[derive(Debug, Clone)]
pub struct Check {
    pub views: Vec<View>,
    /// Keys to sample per view.
    pub sample: usize,
    /// The memory the queries may take before they spill to disk, bytes.
    pub memory_limit: usize,
}

/// What checking a view found.
#[derive(Debug, Clone)]
pub struct ViewSkew {
    pub view: String,
    /// Keys sampled from the offline table.
    pub sampled: u64,
    /// Of those, keys the online store holds no row with a time for
    /// (expired, or never written).
    pub without_online_row: u64,
    /// Online rows the offline table does not hold yet.
    pub not_yet_offline: u64,
    /// Online rows older than the table's newest row of their key: skew.
    pub online_behind: u64,
    /// The first of them.
    pub behind_listed: Vec<Behind>,
    /// Online rows compared with the table's row of the same time.
    pub compared: u64,
    /// The windows computed again, or why none were.
    pub exact: Recomputed,
    /// Per feature, the rows whose values differ.
    pub features: Vec<FeatureSkew>,
    /// Keys and features whose values differ anywhere.
    pub differences: u64,
    /// The first of them.
    pub listed: Vec<Difference>,
}

impl ViewSkew {
    /// Whether the view's online store differs from its offline table or
    /// from its events anywhere.
    pub fn skewed(&self) -> bool {
        self.online_behind > 0 || self.differences > 0
    }
}

/// The exact recomputation of a view's online rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recomputed {
    /// The windows computed (one per online row), those the module failed
    /// on, and the raw events read and left out (as the pipeline would).
    Windows { windows: u64, failed: u64, events: u64, unreadable_events: u64 },
    /// Why the view's windows cannot be computed again.
    Skipped(String),
}

/// One feature's differences: rows where online and offline differ, where
/// online and exact differ, and where offline and exact differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureSkew {
    pub feature: String,
    pub online_offline: u64,
    pub online_exact: u64,
    pub offline_exact: u64,
}

/// A key's feature whose values differ: online, offline (when compared)
/// and exact (when computed).
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub key: String,
    /// The online row's time, ms since the epoch.
    pub time_ms: i64,
    pub feature: String,
    pub online: Value,
    pub offline: Option<Value>,
    pub exact: Option<Value>,
}

/// An online row older than the offline table's newest row of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub key: String,
    pub online_ms: i64,
    pub offline_ms: i64,
}

/// A key drawn from the offline table, with its newest row.
struct Sampled {
    key: String,
    time_ms: i64,
    features: Map<String, Value>,
}

/// Check each view of `check`; the exact pass compiles the views' modules
/// with `engine`.
pub async fn check(check: &Check, engine: &Engine) -> Result<Vec<ViewSkew>, Error> {
    let mut found = Vec::with_capacity(check.views.len());
    for view in &check.views {
        found.push(check_view(view, engine, check).await?);
    }
    Ok(found)
}

async fn check_view(view: &View, engine: &Engine, check: &Check) -> Result<ViewSkew, Error> {
    let online = view.online.as_ref().ok_or_else(|| Error::NoOnlineStore { view: view.name.clone() })?;
    let module = exact::module(view, engine)?;
    let scratch = tempfile::tempdir().map_err(|e| Error::Scratch { path: std::env::temp_dir(), source: e })?;
    let ctx = super::session(check.memory_limit)?;
    let table_features = super::register_table(&ctx, 0, view).await?;
    let sampled = sample(&ctx, view, &table_features, check.sample).await?;
    tracing::info!(view = %view.name, keys = sampled.len(), "sampled the offline table");

    let keys: Vec<EntityKey> = sampled.iter().map(|s| EntityKey::typed(&s.key, view.key_type)).collect();
    let stored = online
        .lookup(module.schema(), &keys)
        .await
        .map_err(|e| Error::Online { view: view.name.clone(), message: e.message })?;
    // The online rows to check: which key, its time, its row.
    let mut rows = Vec::new();
    let mut without_online_row = 0;
    for (sampled, stored) in sampled.iter().zip(stored) {
        match stored.and_then(|s| Some((s.time?, s.features))) {
            None => without_online_row += 1,
            Some((time_ms, features)) => rows.push((sampled, time_ms, features)),
        }
    }
    let at: Vec<(String, i64)> = rows.iter().map(|(s, t, _)| (s.key.clone(), *t)).collect();
    let (recomputed, exact) = match not_recomputed(view) {
        Some(reason) => (None, Recomputed::Skipped(reason)),
        None => {
            let (windows, recomputed) = recompute(view, &module, &ctx, &at, scratch.path()).await?;
            (Some(windows), recomputed)
        }
    };
    let mut skew = ViewSkew {
        view: view.name.clone(),
        sampled: sampled.len() as u64,
        without_online_row,
        not_yet_offline: 0,
        online_behind: 0,
        behind_listed: Vec::new(),
        compared: 0,
        exact,
        features: (module.schema().specs().iter())
            .map(|f| FeatureSkew { feature: f.name.to_string(), ..FeatureSkew::default() })
            .collect(),
        differences: 0,
        listed: Vec::new(),
    };

    for (n, (sampled, time_ms, online)) in rows.iter().enumerate() {
        // No window computed: no event in it, every feature null.
        let exact = recomputed.as_ref().map(|windows| windows.get(n).and_then(Option::as_ref));
        skew.compare(sampled, *time_ms, online, exact);
    }
    Ok(skew)
}

impl ViewSkew {
    /// Count the differences of a sampled key's online row (at `time_ms`)
    /// with its newest offline row and with the window computed again
    /// (`exact`: `None` when not computed; `Some(None)`: no event in it).
    fn compare(
        &mut self,
        sampled: &Sampled,
        time_ms: i64,
        online: &Map<String, Value>,
        exact: Option<Option<&Map<String, Value>>>,
    ) {
        let offline = match sampled.time_ms.cmp(&time_ms) {
            std::cmp::Ordering::Equal => {
                self.compared += 1;
                Some(&sampled.features)
            }
            std::cmp::Ordering::Less => {
                self.not_yet_offline += 1;
                None
            }
            std::cmp::Ordering::Greater => {
                self.online_behind += 1;
                if self.behind_listed.len() < LISTED {
                    let key = sampled.key.clone();
                    self.behind_listed.push(Behind { key, online_ms: time_ms, offline_ms: sampled.time_ms });
                }
                None
            }
        };
        for counts in &mut self.features {
            let feature = &counts.feature;
            let on = value_of(Some(online), feature);
            let off = offline.map(|row| value_of(Some(row), feature));
            let ex = exact.map(|row| value_of(row, feature));
            let mut differs = false;
            if off.is_some_and(|off| !same(on, off)) {
                counts.online_offline += 1;
                differs = true;
            }
            if let Some(ex) = ex {
                if !same(on, ex) {
                    counts.online_exact += 1;
                    differs = true;
                }
                if off.is_some_and(|off| !same(off, ex)) {
                    counts.offline_exact += 1;
                    differs = true;
                }
            }
            if differs {
                self.differences += 1;
                if self.listed.len() < LISTED {
                    self.listed.push(Difference {
                        key: sampled.key.clone(),
                        time_ms,
                        feature: feature.clone(),
                        online: on.clone(),
                        offline: off.cloned(),
                        exact: ex.cloned(),
                    });
                }
            }
        }
    }
}

/// Up to `n` keys of view 0's table (`features` its feature columns) whose
/// newest row is within a window of the table's newest, drawn at random,
/// with that row.
async fn sample(ctx: &SessionContext, view: &View, features: &[String], n: usize) -> Result<Vec<Sampled>, Error> {
    let span = match view.pipeline.window.kind {
        Kind::Tumbling { size } | Kind::Sliding { size, .. } => size,
        Kind::Session { gap } => gap,
    };
    let selected: String = features.iter().map(|f| format!(", {}", ident(f))).collect();
    // The newest row by the online store's rule: time, window end,
    // computed_at (the Redis sink's; `as_of`'s too).
    let sql = format!(
        "WITH stamped AS ( \
           SELECT *, CASE trigger WHEN 'event' THEN event_time ELSE window_end END AS __stamp FROM {table}), \
         newest AS ( \
           SELECT *, row_number() OVER ( \
             PARTITION BY key ORDER BY __stamp DESC, window_end DESC, computed_at DESC) AS __rank FROM stamped) \
         SELECT CAST(key AS VARCHAR) AS __key, CAST(__stamp AS BIGINT) AS __micros{selected} FROM newest \
         WHERE __rank = 1 AND __stamp >= (SELECT max(__stamp) FROM stamped) - INTERVAL '{span} milliseconds' \
         ORDER BY random() LIMIT {n}",
        table = as_of::table(0),
    );
    let batches = ctx.sql(&sql).await.map_err(Error::Query)?.collect().await.map_err(Error::Query)?;
    let mut sampled = Vec::new();
    for batch in &batches {
        let keys = compute::cast(batch.column(0), &DataType::Utf8).map_err(arrow_error)?;
        let keys = keys.as_any().downcast_ref::<StringArray>().ok_or_else(|| super::unexpected("__key"))?;
        let micros = compute::cast(batch.column(1), &DataType::Int64).map_err(arrow_error)?;
        let micros = micros.as_any().downcast_ref::<Int64Array>().ok_or_else(|| super::unexpected("__micros"))?;
        let rows = json_rows(&batch.project(&(2..batch.num_columns()).collect::<Vec<_>>()).map_err(arrow_error)?)?;
        for (r, features) in rows.into_iter().enumerate() {
            sampled.push(Sampled {
                key: keys.value(r).to_string(),
                time_ms: micros.value(r).div_euclid(1_000),
                features,
            });
        }
    }
    Ok(sampled)
}

/// Why the view's windows cannot be computed again at its online rows'
/// times, if they cannot.
fn not_recomputed(view: &View) -> Option<String> {
    (view.pipeline.window.trigger == TriggerMode::Event)
        .then(|| "it fires per event: its rows' windows end after their event, not at its time".to_string())
}

/// The window ending at each of `at` (a key and a time, ms), computed by
/// the view's `module` as the exact mode computes a label's: its
/// features, `None` where no event was in it.
async fn recompute(
    view: &View,
    module: &Module,
    ctx: &SessionContext,
    at: &[(String, i64)],
    scratch: &Path,
) -> Result<(Vec<Option<Map<String, Value>>>, Recomputed), Error> {
    let asked = scratch.join("online_rows.parquet");
    write_labels(at, &asked)?;
    let spec = LabelsSpec { path: asked, key: "key".to_string(), time: "at".to_string() };
    let labels = labels::prepare(&spec, view.key_type == KeyType::Int, scratch).await?;
    labels.register(ctx).await?;
    let done = exact::compute(0, view, module, ctx, &spec.time, scratch).await?;

    let path = done.path.to_string_lossy().into_owned();
    let mut selected = vec![datafusion::prelude::ident("key")];
    selected.extend(done.features.iter().map(datafusion::prelude::ident));
    let frame = ctx.read_parquet(&path, Default::default()).await.map_err(Error::Query)?;
    let batches = frame.select(selected).map_err(Error::Query)?.collect().await.map_err(Error::Query)?;
    let mut windows = vec![None; at.len()];
    for batch in &batches {
        // `key` is the label's row: the index into `at`.
        let rows = compute::cast(batch.column(0), &DataType::Int64).map_err(arrow_error)?;
        let rows = rows.as_any().downcast_ref::<Int64Array>().ok_or_else(|| super::unexpected("key"))?;
        let features = json_rows(&batch.project(&(1..batch.num_columns()).collect::<Vec<_>>()).map_err(arrow_error)?)?;
        for (r, features) in features.into_iter().enumerate() {
            if let Some(slot) = usize::try_from(rows.value(r)).ok().and_then(|i| windows.get_mut(i)) {
                *slot = Some(features);
            }
        }
    }
    let recomputed = Recomputed::Windows {
        windows: done.windows,
        failed: done.failed,
        events: done.events,
        unreadable_events: done.unreadable_events,
    };
    Ok((windows, recomputed))
}

/// Write `at` as labels the exact mode reads: columns `key` and `at`
/// (ms).
fn write_labels(at: &[(String, i64)], path: &Path) -> Result<(), Error> {
    let schema =
        Arc::new(Schema::new(vec![Field::new("key", DataType::Utf8, false), Field::new("at", DataType::Int64, false)]));
    let keys = StringArray::from_iter_values(at.iter().map(|(k, _)| k.as_str()));
    let times = Int64Array::from_iter_values(at.iter().map(|(_, t)| *t));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(keys), Arc::new(times)]).map_err(arrow_error)?;
    let mut writer = super::ParquetFile::create(path, schema)?;
    writer.write(&batch)?;
    writer.close()
}

/// `batch`'s rows as JSON objects, nulls included: the form the online
/// store's rows are read in.
fn json_rows(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, Error> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::JsonArray>(Vec::new());
    writer.write_batches(&[batch]).map_err(arrow_error)?;
    writer.finish().map_err(arrow_error)?;
    serde_json::from_slice(&writer.into_inner()).map_err(|e| {
        Error::Query(datafusion::error::DataFusionError::Internal(format!("the check's rows as JSON: {e}")))
    })
}

/// `feature`'s value in `row`: null where the row or the value is
/// missing.
fn value_of<'a>(row: Option<&'a Map<String, Value>>, feature: &str) -> &'a Value {
    row.and_then(|r| r.get(feature)).unwrap_or(&Value::Null)
}

/// Whether two values of a feature are the same (see the module's
/// comment).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
                _ => false,
            },
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        _ => a == b,
    }
}

fn arrow_error(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::Query(datafusion::error::DataFusionError::ArrowError(Box::new(e), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_the_same_within_a_float_s_rounding_and_not_otherwise() {
        assert!(same(&json!(null), &json!(null)));
        assert!(same(&json!(3), &json!(3.0)));
        assert!(same(&json!(0.1 + 0.2), &json!(0.3)));
        assert!(same(&json!(["a", 1.5]), &json!(["a", 1.5])));
        assert!(!same(&json!(3), &json!(4)));
        assert!(!same(&json!(1.0), &json!(1.001)));
        assert!(!same(&json!(null), &json!(0)));
        assert!(!same(&json!([1, 2]), &json!([1, 2, 3])));
        assert!(!same(&json!("1"), &json!(1)));
        assert!(!same(&json!(i64::MAX), &json!(i64::MAX - 1)));
    }

    #[test]
    fn rows_read_as_json_keep_their_nulls() -> Result<(), Error> {
        use datafusion::arrow::array::Float64Array;
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![Some(2), None])), Arc::new(Float64Array::from(vec![None, Some(0.5)]))],
        )
        .map_err(arrow_error)?;
        let rows = json_rows(&batch)?;
        assert_eq!(Value::from(rows), json!([{"n": 2, "x": null}, {"n": null, "x": 0.5}]));
        Ok(())
    }
}
