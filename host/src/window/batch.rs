//! One call's worth of work for the transform: the events it needs, once
//! each, by column, and the windows that refer to them by row.

use sluice_sink_api::Trigger;

use crate::decode::FieldType;
use crate::state::{Interner, Sym, Value};

/// A column of the call's events.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Bools(Vec<bool>),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    /// Each distinct string once in `dict`; rows hold codes.
    Strs {
        dict: Vec<String>,
        codes: Vec<u32>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
    /// Rows that are null, ascending.
    pub nulls: Vec<u32>,
}

/// A window to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub key: String,
    pub start: i64,
    pub end: i64,
    pub trigger: Trigger,
    /// The window's events (aggregates: those not yet folded), as rows.
    pub rows: Vec<u32>,
    /// Aggregates: the accumulators of the window's slices.
    pub accs: Vec<Vec<u8>>,
}

/// Aggregates: fold these rows into a slice's accumulator.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    pub key: crate::state::KeyId,
    /// Which slice: its start (grid), or (session start, part index).
    pub slice: SliceRef,
    pub acc: Option<Vec<u8>>,
    pub rows: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SliceRef {
    Grid(i64),
    Session { start: i64, part: usize },
}

/// The events, windows and folds of one call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub id: u64,
    pub times: Vec<i64>,
    pub columns: Vec<Column>,
    pub windows: Vec<Fired>,
    pub folds: Vec<Fold>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.folds.is_empty()
    }

    /// The window's input as JSON, for the dead-letter output.
    pub fn window_json(&self, w: &Fired) -> Vec<u8> {
        let events: Vec<serde_json::Value> = w.rows.iter().map(|&r| self.row_json(r)).collect();
        let doc = serde_json::json!({
            "key": w.key,
            "window_start": w.start,
            "window_end": w.end,
            "trigger": w.trigger,
            "events": events,
            "accumulators": w.accs.len(),
        });
        doc.to_string().into_bytes()
    }

    /// The events of `rows` as a JSON array (dead letters of failed folds).
    pub fn rows_json(&self, rows: &[u32]) -> Vec<u8> {
        let events: Vec<serde_json::Value> = rows.iter().map(|&r| self.row_json(r)).collect();
        serde_json::Value::Array(events).to_string().into_bytes()
    }

    fn row_json(&self, row: u32) -> serde_json::Value {
        let r = row as usize;
        let mut obj = serde_json::Map::new();
        obj.insert("timestamp_ms".into(), self.times.get(r).copied().into());
        for c in &self.columns {
            let v = if c.nulls.binary_search(&row).is_ok() {
                serde_json::Value::Null
            } else {
                match &c.data {
                    ColumnData::Bools(v) => v.get(r).copied().into(),
                    ColumnData::Ints(v) => v.get(r).copied().into(),
                    ColumnData::Floats(v) => v.get(r).copied().into(),
                    ColumnData::Strs { dict, codes } => {
                        codes.get(r).and_then(|&c| dict.get(c as usize)).cloned().into()
                    }
                }
            };
            obj.insert(c.name.clone(), v);
        }
        serde_json::Value::Object(obj)
    }
}

/// Builds batches; keeps, per string column, the map from symbol to the
/// current call's code (stamped with the call id, so it never needs
/// clearing).
#[derive(Debug)]
pub struct BatchBuilder {
    fields: Vec<(String, FieldType)>,
    codes: Vec<Vec<(u64, u32)>>,
    pub batch: Batch,
    spare: Option<Batch>,
}

impl BatchBuilder {
    pub fn new(fields: Vec<(String, FieldType)>) -> Self {
        let codes = fields.iter().map(|_| Vec::new()).collect();
        let mut b = BatchBuilder { fields, codes, batch: Batch::default(), spare: None };
        b.batch = b.empty(1);
        b
    }

    fn empty(&self, id: u64) -> Batch {
        let columns = self
            .fields
            .iter()
            .map(|(name, ty)| Column {
                name: name.clone(),
                data: match ty {
                    FieldType::Bool => ColumnData::Bools(Vec::new()),
                    FieldType::Int => ColumnData::Ints(Vec::new()),
                    FieldType::Float => ColumnData::Floats(Vec::new()),
                    FieldType::String => ColumnData::Strs { dict: Vec::new(), codes: Vec::new() },
                },
                nulls: Vec::new(),
            })
            .collect();
        Batch { id, columns, ..Batch::default() }
    }

    /// Id of the call being built: rows cached under another id are stale.
    pub fn id(&self) -> u64 {
        self.batch.id
    }

    /// Hand over the call built so far and start the next.
    pub fn take(&mut self) -> Batch {
        let next = match self.spare.take() {
            Some(mut spare) => {
                spare.id = self.batch.id + 1;
                spare
            }
            None => self.empty(self.batch.id + 1),
        };
        std::mem::replace(&mut self.batch, next)
    }

    /// Keep a used batch's buffers for the next call.
    pub fn recycle(&mut self, mut batch: Batch) {
        batch.times.clear();
        batch.windows.clear();
        batch.folds.clear();
        for (c, (name, _)) in batch.columns.iter_mut().zip(&self.fields) {
            if c.name.is_empty() {
                c.name.clone_from(name);
            }
            c.nulls.clear();
            match &mut c.data {
                ColumnData::Bools(v) => v.clear(),
                ColumnData::Ints(v) => v.clear(),
                ColumnData::Floats(v) => v.clear(),
                ColumnData::Strs { dict, codes } => {
                    dict.clear();
                    codes.clear();
                }
            }
        }
        // Only a batch shaped like ours (the guest may have kept a column).
        if batch.columns.len() == self.fields.len() {
            self.spare = Some(batch);
        }
    }

    /// Copy an event into the call; returns its row.
    pub fn push(&mut self, time: i64, values: &[Value], interner: &Interner) -> u32 {
        let row = self.batch.times.len() as u32;
        self.batch.times.push(time);
        let id = self.batch.id;
        for ((column, codes), value) in self.batch.columns.iter_mut().zip(&mut self.codes).zip(values) {
            if matches!(value, Value::Null) {
                column.nulls.push(row);
            }
            match &mut column.data {
                ColumnData::Bools(v) => v.push(matches!(value, Value::Bool(true))),
                ColumnData::Ints(v) => v.push(if let Value::Int(i) = value { *i } else { 0 }),
                ColumnData::Floats(v) => v.push(match value {
                    Value::Float(f) => *f,
                    Value::Int(i) => *i as f64,
                    _ => 0.0,
                }),
                ColumnData::Strs { dict, codes: out } => {
                    let code = match value {
                        Value::Str(sym) => code_of(*sym, id, codes, dict, interner),
                        _ => 0,
                    };
                    out.push(code);
                }
            }
        }
        row
    }
}

fn code_of(sym: Sym, id: u64, codes: &mut Vec<(u64, u32)>, dict: &mut Vec<String>, interner: &Interner) -> u32 {
    let i = sym.0 as usize;
    if codes.len() <= i {
        codes.resize(interner.capacity().max(i + 1), (0, 0));
    }
    let slot = &mut codes[i];
    if slot.0 != id {
        *slot = (id, dict.len() as u32);
        dict.push(interner.resolve(sym).to_string());
    }
    slot.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_coded_once_per_call() {
        let mut interner = Interner::new();
        let a = interner.intern("a");
        let b = interner.intern("b");
        let mut builder = BatchBuilder::new(vec![("s".into(), FieldType::String), ("n".into(), FieldType::Int)]);
        assert_eq!(builder.push(5, &[Value::Str(a), Value::Int(1)], &interner), 0);
        assert_eq!(builder.push(5, &[Value::Str(b), Value::Null], &interner), 1);
        assert_eq!(builder.push(5, &[Value::Str(a), Value::Int(3)], &interner), 2);
        let batch = builder.take();
        assert_eq!(
            batch.columns[0].data,
            ColumnData::Strs { dict: vec!["a".into(), "b".into()], codes: vec![0, 1, 0] }
        );
        assert_eq!(batch.columns[1].nulls, vec![1]);
        // The next call codes from scratch.
        builder.push(5, &[Value::Str(b), Value::Int(1)], &interner);
        let next = builder.take();
        assert_eq!(next.columns[0].data, ColumnData::Strs { dict: vec!["b".into()], codes: vec![0] });
        assert_eq!(next.id, batch.id + 1);
    }
}
