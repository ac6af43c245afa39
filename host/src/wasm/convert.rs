//! Between the host's batches and the WIT types, moving vectors rather
//! than copying them where the batch is not needed afterwards.

use std::sync::Arc;

use sluice_sink_api::{FeatureValue, Features as FeatureMap, Scalar, StrTable, Trigger};

use super::bindings::exports::sluice::transform::window_transform as wt;
use super::bindings::sluice::transform::types as wit;
use super::{CallError, Features, RowError};
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

/// The feature maps of a call with `expected` inputs whose string table was
/// `strings`.
pub(super) fn results(
    out: wit::FeatureRows,
    expected: usize,
    strings: &[String],
) -> Result<Vec<Result<Features, RowError>>, CallError> {
    let wit::FeatureRows { names, features, rows } = out;
    let rows = check_len(rows, expected)?;
    let claimed: u64 = rows.iter().filter_map(|r| r.as_ref().ok()).map(|&n| u64::from(n)).sum();
    if claimed != features.len() as u64 {
        return Err(CallError::Contract(format!(
            "the rows take {claimed} features but {} were returned",
            features.len()
        )));
    }
    let names: Vec<Arc<str>> = names.into_iter().map(Arc::from).collect();
    let mut table = CallTable { strings, table: None };
    let mut features = features.into_iter();
    Ok(rows
        .into_iter()
        .map(|r| {
            let n = r.map_err(RowError::returned)? as usize;
            row(features.by_ref().take(n), n, &names, &mut table).map_err(|e| RowError::returned(e.to_string()))
        })
        .collect())
}

/// One row's features; the first invalid one fails the row (after the
/// row's other features are consumed, so the next row starts in place).
fn row(
    features: impl Iterator<Item = wit::Feature>,
    n: usize,
    names: &[Arc<str>],
    table: &mut CallTable<'_>,
) -> Result<Features, InvalidResult> {
    let mut out = Vec::with_capacity(n);
    let mut invalid = None;
    for f in features {
        if invalid.is_some() {
            continue;
        }
        let Some(name) = names.get(f.name as usize) else {
            invalid =
                Some(InvalidResult { feature: format!("#{}", f.name), reason: "name index past the call's names" });
            continue;
        };
        match value(f.value, table) {
            Ok(v) => out.push((name.clone(), v)),
            Err(reason) => invalid = Some(InvalidResult { feature: name.to_string(), reason }),
        }
    }
    match invalid {
        Some(e) => Err(e),
        None => Ok(FeatureMap(out)),
    }
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

fn scalar(s: wit::Scalar) -> Scalar {
    match s {
        wit::Scalar::Null => Scalar::Null,
        wit::Scalar::Boolean(b) => Scalar::Bool(b),
        wit::Scalar::Int(i) => Scalar::Int(i),
        wit::Scalar::Float(f) => Scalar::Float(f),
        wit::Scalar::Str(s) => Scalar::Str(s),
    }
}

fn value(value: wit::FeatureValue, table: &mut CallTable<'_>) -> Result<FeatureValue, &'static str> {
    Ok(match value {
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
                return Err("packed string ends do not fit the data");
            }
            value
        }
        wit::FeatureValue::CallStrs(codes) => {
            FeatureValue::coded(table.get(), codes).ok_or("index past the call's strings")?
        }
        wit::FeatureValue::Mixed(v) => FeatureValue::Mixed(v.into_iter().map(scalar).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(name: u32, value: i64) -> wit::Feature {
        wit::Feature { name, value: wit::FeatureValue::Int(value) }
    }

    fn ints(row: &Result<Features, RowError>) -> Result<Vec<(&str, i64)>, &str> {
        match row {
            Ok(map) => Ok(map
                .0
                .iter()
                .map(|(name, v)| (&**name, if let FeatureValue::Int(i) = v { *i } else { i64::MIN }))
                .collect()),
            Err(e) => Err(e.message.as_str()),
        }
    }

    #[test]
    fn rows_take_their_features_in_order_and_a_bad_one_fails_only_its_row() -> Result<(), CallError> {
        let out = wit::FeatureRows {
            names: vec!["a".into(), "b".into()],
            features: vec![feature(0, 1), feature(1, 2), feature(7, 3), feature(0, 4), feature(1, 5)],
            rows: vec![Ok(2), Err("guest said no".into()), Ok(2), Ok(1)],
        };
        let rows = results(out, 4, &[])?;
        let rows: Vec<_> = rows.iter().map(ints).collect();
        assert_eq!(
            rows,
            vec![
                Ok(vec![("a", 1), ("b", 2)]),
                Err("guest said no"),
                Err("feature `#7`: name index past the call's names"),
                Ok(vec![("b", 5)]),
            ]
        );
        Ok(())
    }

    #[test]
    fn rows_that_miscount_their_features_break_the_contract() {
        let miscounted = |rows: Vec<Result<u32, String>>| wit::FeatureRows {
            names: vec!["a".into()],
            features: vec![feature(0, 1), feature(0, 2)],
            rows,
        };
        let too_many = results(miscounted(vec![Ok(2), Ok(1)]), 2, &[]).err();
        assert_eq!(too_many, Some(CallError::Contract("the rows take 3 features but 2 were returned".into())));
        let too_few = results(miscounted(vec![Ok(1)]), 1, &[]).err();
        assert_eq!(too_few, Some(CallError::Contract("the rows take 1 features but 2 were returned".into())));
        let wrong_rows = results(miscounted(vec![Ok(2)]), 3, &[]).err();
        assert_eq!(wrong_rows, Some(CallError::Contract("returned 1 results for 3 inputs".into())));
    }
}
