//! One call's worth of work for the transform: the events it needs, once
//! each, by column, and the windows that refer to them by row.

use sluice_sink_api::Trigger;

use crate::decode::FieldType;
use crate::state::{self, Interner, Slice};

/// A column of the call's events.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Bools(Vec<bool>),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    /// Indices into [`Batch::strings`].
    Strs(Vec<u32>),
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
    /// The latest event time in the window.
    pub latest: i64,
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
    /// The strings string columns point into.
    pub strings: Vec<String>,
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
                    ColumnData::Strs(codes) => codes.get(r).and_then(|&c| self.strings.get(c as usize)).cloned().into(),
                }
            };
            obj.insert(c.name.clone(), v);
        }
        serde_json::Value::Object(obj)
    }
}

/// Builds batches. String columns are first filled with interner symbols;
/// [`BatchBuilder::take`] then either ships the interner's whole table
/// (kept as a mirror, updated with what changed) so symbols are the codes,
/// or, when the table is much larger than the call, maps symbols to a
/// table of the call's own strings.
#[derive(Debug)]
pub struct BatchBuilder {
    fields: Vec<(String, FieldType)>,
    /// The interner's table as of the last call; lent to the call that
    /// ships it (`lent_to`) until that batch is recycled.
    mirror: Vec<String>,
    lent_to: Option<u64>,
    /// Symbol → (call, local code), for the per-call table.
    local: Vec<(u64, u32)>,
    pub batch: Batch,
    spare: Option<Batch>,
}

/// Below this many strings the interner's whole table is sent.
const SHARED_TABLE_MIN: usize = 1 << 16;

impl BatchBuilder {
    pub fn new(fields: Vec<(String, FieldType)>) -> Self {
        let mut b = BatchBuilder {
            fields,
            mirror: Vec::new(),
            lent_to: None,
            local: Vec::new(),
            batch: Batch::default(),
            spare: None,
        };
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
                    FieldType::String => ColumnData::Strs(Vec::new()),
                },
                nulls: Vec::new(),
            })
            .collect();
        Batch { id, columns, ..Batch::default() }
    }

    /// Id of the call being built: placements in another call are stale.
    pub fn id(&self) -> u64 {
        self.batch.id
    }

    /// Copy a slice's events into the call; returns the first row.
    pub fn push_slice(&mut self, slice: &Slice) -> u32 {
        let base = self.batch.times.len() as u32;
        self.batch.times.extend_from_slice(&slice.times);
        for (column, stored) in self.batch.columns.iter_mut().zip(&slice.columns) {
            match (&mut column.data, stored) {
                (ColumnData::Bools(v), state::Column::Bools(s)) => v.extend_from_slice(s),
                (ColumnData::Ints(v), state::Column::Ints(s)) => v.extend_from_slice(s),
                (ColumnData::Floats(v), state::Column::Floats(s)) => v.extend_from_slice(s),
                (ColumnData::Strs(v), state::Column::Strs(s)) => v.extend(s.iter().map(|sym| sym.0)),
                // A slice always has the builder's shape; keep rows aligned
                // if it ever does not.
                (data, _) => pad(data, slice.len()),
            }
        }
        for &(row, c) in &slice.nulls {
            if let Some(column) = self.batch.columns.get_mut(c as usize) {
                let r = base + row;
                column.nulls.push(r);
                if let ColumnData::Strs(v) = &mut column.data {
                    v[r as usize] = 0;
                }
            }
        }
        base
    }

    /// Hand over the call built so far (with its string table) and start
    /// the next.
    pub fn take(&mut self, interner: &mut Interner) -> Batch {
        let next = match self.spare.take() {
            Some(mut spare) => {
                spare.id = self.batch.id + 1;
                spare
            }
            None => self.empty(self.batch.id + 1),
        };
        let mut batch = std::mem::replace(&mut self.batch, next);
        let codes: usize =
            batch.columns.iter().map(|c| if let ColumnData::Strs(v) = &c.data { v.len() } else { 0 }).sum();
        if codes == 0 {
            interner.reclaim();
            return batch;
        }
        self.sync_mirror(interner);
        if self.mirror.len() <= SHARED_TABLE_MIN.max(codes) {
            batch.strings = std::mem::take(&mut self.mirror);
            self.lent_to = Some(batch.id);
        } else {
            self.localize(&mut batch);
        }
        // The call now holds its own string table: symbols freed while it
        // was built may be reused.
        interner.reclaim();
        batch
    }

    /// Bring the mirror up to date: only the changes, unless it was lent
    /// out and not given back.
    fn sync_mirror(&mut self, interner: &mut Interner) {
        let set = |mirror: &mut Vec<String>, i: usize, text: &str| {
            if mirror.len() <= i {
                mirror.resize(i + 1, String::new());
            }
            text.clone_into(&mut mirror[i]);
        };
        if self.lent_to.take().is_some() {
            self.mirror.clear();
            for (sym, text) in interner.slots() {
                set(&mut self.mirror, sym.0 as usize, text);
            }
        }
        for (sym, text) in interner.drain_changes() {
            set(&mut self.mirror, sym.0 as usize, text);
        }
    }

    fn localize(&mut self, batch: &mut Batch) {
        let id = batch.id;
        let mut strings = std::mem::take(&mut batch.strings);
        strings.clear();
        for column in &mut batch.columns {
            let ColumnData::Strs(codes) = &mut column.data else { continue };
            for code in codes.iter_mut() {
                let i = *code as usize;
                if self.local.len() <= i {
                    self.local.resize(self.mirror.len().max(i + 1), (0, 0));
                }
                let slot = &mut self.local[i];
                if slot.0 != id {
                    *slot = (id, strings.len() as u32);
                    strings.push(self.mirror.get(i).cloned().unwrap_or_default());
                }
                *code = slot.1;
            }
        }
        batch.strings = strings;
    }

    /// Keep a used batch's buffers for the next call (and the string table
    /// as the mirror, when it was the shared one).
    pub fn recycle(&mut self, mut batch: Batch) {
        if self.lent_to == Some(batch.id) {
            // The shared table comes back: it is still the mirror.
            self.mirror = std::mem::take(&mut batch.strings);
            self.lent_to = None;
        }
        batch.times.clear();
        batch.strings.clear();
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
                ColumnData::Strs(v) => v.clear(),
            }
        }
        // Only a batch shaped like ours.
        if batch.columns.len() == self.fields.len() {
            self.spare = Some(batch);
        }
    }
}

fn pad(data: &mut ColumnData, n: usize) {
    match data {
        ColumnData::Bools(v) => v.resize(v.len() + n, false),
        ColumnData::Ints(v) => v.resize(v.len() + n, 0),
        ColumnData::Floats(v) => v.resize(v.len() + n, 0.0),
        ColumnData::Strs(v) => v.resize(v.len() + n, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Value;

    fn slice(interner: &mut Interner, rows: &[(&str, Option<i64>)]) -> Slice {
        let mut s = Slice::new(0, &[FieldType::String, FieldType::Int]);
        for (i, (text, n)) in rows.iter().enumerate() {
            let sym = interner.intern(text);
            s.insert(i as i64, &[Value::Str(sym), n.map_or(Value::Null, Value::Int)]);
        }
        s
    }

    fn strings_of(batch: &Batch, column: usize) -> Vec<String> {
        let ColumnData::Strs(codes) = &batch.columns[column].data else { return Vec::new() };
        codes.iter().map(|&c| batch.strings[c as usize].clone()).collect()
    }

    #[test]
    fn slices_copy_in_bulk_with_nulls_and_a_shared_table() {
        let mut interner = Interner::new();
        let mut builder = BatchBuilder::new(vec![("s".into(), FieldType::String), ("n".into(), FieldType::Int)]);
        let a = slice(&mut interner, &[("a", Some(1)), ("b", None)]);
        let b = slice(&mut interner, &[("a", Some(3))]);
        assert_eq!(builder.push_slice(&a), 0);
        assert_eq!(builder.push_slice(&b), 2);
        let batch = builder.take(&mut interner);
        assert_eq!(batch.times, vec![0, 1, 0]);
        assert_eq!(strings_of(&batch, 0), vec!["a", "b", "a"]);
        assert_eq!(batch.columns[1].nulls, vec![1]);
        assert_eq!(batch.columns[1].data, ColumnData::Ints(vec![1, 0, 3]));
        builder.recycle(batch);
        // The next call sees strings interned since.
        let c = slice(&mut interner, &[("c", Some(5))]);
        builder.push_slice(&c);
        let next = builder.take(&mut interner);
        assert_eq!(strings_of(&next, 0), vec!["c"]);
    }

    /// A string placed in a call and freed (its slice dropped) before the
    /// call is handed over must still resolve, even if its slot is reused
    /// for another string in a later call.
    #[test]
    fn strings_freed_before_the_call_is_taken_still_resolve() {
        let mut interner = Interner::new();
        let mut builder = BatchBuilder::new(vec![("s".into(), FieldType::String), ("n".into(), FieldType::Int)]);
        let mut first = slice(&mut interner, &[("gone", Some(1))]);
        builder.push_slice(&first);
        first.release(&mut interner);
        let batch = builder.take(&mut interner);
        assert_eq!(strings_of(&batch, 0), vec!["gone"]);
        builder.recycle(batch);
        // The slot is reused by a new string, then freed again, all between
        // two calls: the next call still sees the right text.
        let mut second = slice(&mut interner, &[("new", Some(2))]);
        builder.push_slice(&second);
        second.release(&mut interner);
        let batch = builder.take(&mut interner);
        assert_eq!(strings_of(&batch, 0), vec!["new"]);
    }

    #[test]
    fn a_large_table_is_replaced_by_the_calls_own_strings() {
        let mut interner = Interner::new();
        let many: Vec<_> = (0..SHARED_TABLE_MIN + 10).map(|i| interner.intern(&format!("x{i}"))).collect();
        let mut builder = BatchBuilder::new(vec![("s".into(), FieldType::String), ("n".into(), FieldType::Int)]);
        let s = slice(&mut interner, &[("x5", Some(1)), ("zz", Some(2)), ("x5", None)]);
        builder.push_slice(&s);
        let batch = builder.take(&mut interner);
        assert_eq!(batch.strings, vec!["x5".to_string(), "zz".to_string()]);
        assert_eq!(strings_of(&batch, 0), vec!["x5", "zz", "x5"]);
        assert!(many.len() > SHARED_TABLE_MIN);
    }
}
