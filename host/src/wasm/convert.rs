//! Between the host's batches and the WIT types, moving vectors rather
//! than copying them where the batch is not needed afterwards.

use std::sync::Arc;

use sluice_sink_api::{FeatureValue, Features as FeatureMap, Scalar, StrTable, Trigger};

use super::bindings::exports::sluice::transform::window_transform as wt;
use super::bindings::sluice::transform::types as wit;
use super::{CallError, Features};
use crate::window::{Batch, ColumnData};

/// A feature value the host cannot accept.
#[derive(Debug, thiserror::Error)]
#[error("feature `{feature}`: {reason}")]
pub struct InvalidResult {
    pub feature: String,
    pub reason: &'static str,
}

pub(super) fn trigger(t: Trigger) -> wit::Trigger {
    match t {
        Trigger::Close => wit::Trigger::Close,
        Trigger::Event => wit::Trigger::Event,
        Trigger::Late => wit::Trigger::Late,
    }
}

fn column_data(data: ColumnData) -> wit::ColumnData {
    match data {
        ColumnData::Bools(v) => wit::ColumnData::Bools(v),
        ColumnData::Ints(v) => wit::ColumnData::Ints(v),
        ColumnData::Floats(v) => wit::ColumnData::Floats(v),
        ColumnData::Strs(codes) => wit::ColumnData::Strs(codes),
    }
}

fn column_data_back(data: wit::ColumnData) -> ColumnData {
    match data {
        wit::ColumnData::Bools(v) => ColumnData::Bools(v),
        wit::ColumnData::Ints(v) => ColumnData::Ints(v),
        wit::ColumnData::Floats(v) => ColumnData::Floats(v),
        wit::ColumnData::Strs(codes) => ColumnData::Strs(codes),
    }
}

/// Take the batch's events (give them back with [`give_back`]).
pub(super) fn events(batch: &mut Batch) -> wit::Events {
    wit::Events {
        timestamps: std::mem::take(&mut batch.times),
        strings: std::mem::take(&mut batch.strings),
        columns: batch
            .columns
            .iter_mut()
            .map(|c| wit::Column {
                name: std::mem::take(&mut c.name),
                data: column_data(std::mem::replace(&mut c.data, ColumnData::Bools(Vec::new()))),
                nulls: std::mem::take(&mut c.nulls),
            })
            .collect(),
    }
}

/// A copy of the batch's events (when the batch stays borrowed).
pub(super) fn events_ref(batch: &Batch) -> wit::Events {
    wit::Events {
        timestamps: batch.times.clone(),
        strings: batch.strings.clone(),
        columns: batch
            .columns
            .iter()
            .map(|c| wit::Column { name: c.name.clone(), data: column_data(c.data.clone()), nulls: c.nulls.clone() })
            .collect(),
    }
}

pub(super) fn windows(batch: &mut Batch) -> Vec<wt::Window> {
    batch
        .windows
        .iter_mut()
        .map(|w| wt::Window {
            key: std::mem::take(&mut w.key),
            start: w.start,
            end: w.end,
            trigger: trigger(w.trigger),
            rows: std::mem::take(&mut w.rows),
        })
        .collect()
}

/// Restore what [`events`] and [`windows`] took, for dead letters.
pub(super) fn give_back(batch: &mut Batch, events: wit::Events, windows: Vec<wt::Window>) {
    batch.times = events.timestamps;
    batch.strings = events.strings;
    for (c, w) in batch.columns.iter_mut().zip(events.columns) {
        c.name = w.name;
        c.data = column_data_back(w.data);
        c.nulls = w.nulls;
    }
    for (f, w) in batch.windows.iter_mut().zip(windows) {
        f.key = w.key;
        f.rows = w.rows;
    }
}

pub(super) fn check_len<T>(out: Vec<T>, expected: usize) -> Result<Vec<T>, CallError> {
    if out.len() == expected {
        Ok(out)
    } else {
        Err(CallError::Contract(format!("returned {} results for {expected} inputs", out.len())))
    }
}

/// The results of a call whose string table was `strings`.
pub(super) fn results(
    out: Vec<Result<Vec<wit::Feature>, String>>,
    expected: usize,
    strings: &[String],
) -> Result<Vec<Result<Features, String>>, CallError> {
    let mut names = Names::default();
    let mut table = CallTable { strings, table: None };
    Ok(check_len(out, expected)?
        .into_iter()
        .map(|r| r.and_then(|features| features_of(features, &mut table, &mut names).map_err(|e| e.to_string())))
        .collect())
}

/// The call's strings as a [`StrTable`], made when a row first refers to
/// them and shared by all its rows.
struct CallTable<'a> {
    strings: &'a [String],
    table: Option<Arc<StrTable>>,
}

impl CallTable<'_> {
    fn get(&mut self) -> Arc<StrTable> {
        let strings = self.strings;
        self.table.get_or_insert_with(|| Arc::new(StrTable::new(strings.iter().map(String::as_str)))).clone()
    }
}

/// Feature names seen in a call, shared by its rows.
#[derive(Default)]
struct Names(Vec<Arc<str>>);

impl Names {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.0.iter().find(|n| &***n == name) {
            return n.clone();
        }
        let n: Arc<str> = name.into();
        self.0.push(n.clone());
        n
    }
}

fn scalar(s: wit::Scalar) -> Scalar {
    match s {
        wit::Scalar::Null => Scalar::Null,
        wit::Scalar::Boolean(b) => Scalar::Bool(b),
        wit::Scalar::Int(i) => Scalar::Int(i),
        wit::Scalar::Float(f) => Scalar::Float(f),
        wit::Scalar::Str(s) => Scalar::Str(s),
    }
}

fn features_of(
    features: Vec<wit::Feature>,
    table: &mut CallTable<'_>,
    names: &mut Names,
) -> Result<Features, InvalidResult> {
    features
        .into_iter()
        .map(|f| {
            let value = match f.value {
                wit::FeatureValue::Null => FeatureValue::Null,
                wit::FeatureValue::Boolean(b) => FeatureValue::Bool(b),
                wit::FeatureValue::Int(i) => FeatureValue::Int(i),
                wit::FeatureValue::Float(x) => FeatureValue::Float(x),
                wit::FeatureValue::Str(s) => FeatureValue::Str(s),
                wit::FeatureValue::Bools(v) => FeatureValue::Bools(v),
                wit::FeatureValue::Ints(v) => FeatureValue::Ints(v),
                wit::FeatureValue::Floats(v) => FeatureValue::Floats(v),
                wit::FeatureValue::Strs(p) => {
                    let value = FeatureValue::Strs { data: p.data, ends: p.ends };
                    if value.str_items().is_none() {
                        return Err(InvalidResult {
                            feature: f.name,
                            reason: "packed string ends do not fit the data",
                        });
                    }
                    value
                }
                wit::FeatureValue::CallStrs(codes) => match FeatureValue::coded(table.get(), codes) {
                    Some(value) => value,
                    None => return Err(InvalidResult { feature: f.name, reason: "index past the call's strings" }),
                },
                wit::FeatureValue::Mixed(v) => FeatureValue::Mixed(v.into_iter().map(scalar).collect()),
            };
            Ok((names.get(&f.name), value))
        })
        .collect::<Result<_, _>>()
        .map(FeatureMap)
}
