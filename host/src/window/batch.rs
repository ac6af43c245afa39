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

/// How much one call into the transform may carry. A window larger than
/// the bounds goes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Windows and folds.
    pub windows: usize,
    /// Event rows the windows and folds refer to, an event counted once per
    /// window that holds it: the transform's work and most of its memory.
    pub rows: usize,
    /// Bytes of the events sent (timestamps, fields, strings) and of the
    /// accumulators.
    pub bytes: usize,
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
    /// Rows referred to by the windows and folds (see [`Bounds::rows`]).
    pub refs: usize,
    /// Bytes of the events and accumulators (see [`Bounds::bytes`]).
    pub bytes: usize,
}

/// Bytes of one event row of these columns, strings aside.
fn row_width(columns: &[Column]) -> usize {
    8 + columns
        .iter()
        .map(|c| match c.data {
            ColumnData::Bools(_) => 1,
            ColumnData::Ints(_) | ColumnData::Floats(_) => 8,
            ColumnData::Strs(_) => 4,
        })
        .sum::<usize>()
}

impl Batch {
    /// An empty call `id` whose events have `fields`.
    pub fn of_fields(id: u64, fields: &[(String, FieldType)]) -> Batch {
        let columns = fields
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

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.folds.is_empty()
    }

    /// Windows and folds.
    pub fn items(&self) -> usize {
        self.windows.len() + self.folds.len()
    }

    /// Whether `rows` and `bytes` more fit within `bounds`. An empty batch
    /// takes anything: a window larger than the bounds goes alone.
    pub fn has_room(&self, bounds: &Bounds, rows: usize, bytes: usize) -> bool {
        self.is_empty()
            || (self.items() < bounds.windows
                && self.refs.saturating_add(rows) <= bounds.rows
                && self.bytes.saturating_add(bytes) <= bounds.bytes)
    }

    /// At or past one of the bounds: hand it over before adding more.
    pub fn is_full(&self, bounds: &Bounds) -> bool {
        !self.is_empty() && !self.has_room(bounds, 1, 0)
    }

    pub fn push_window(&mut self, w: Fired) {
        self.refs += w.rows.len();
        self.bytes += w.accs.iter().map(Vec::len).sum::<usize>();
        self.windows.push(w);
    }

    pub fn push_fold(&mut self, f: Fold) {
        self.refs += f.rows.len();
        self.bytes += f.acc.as_ref().map_or(0, Vec::len);
        self.folds.push(f);
    }

    /// Bytes of event row `r` as [`Batch::bytes`] counts them: the fixed
    /// widths and its strings. (Not the hot path: splitting a call.)
    pub fn row_bytes(&self, r: u32) -> usize {
        let strings: usize = self
            .columns
            .iter()
            .filter(|c| c.nulls.binary_search(&r).is_err())
            .map(|c| match &c.data {
                ColumnData::Strs(codes) => {
                    codes.get(r as usize).and_then(|&code| self.strings.get(code as usize)).map_or(0, String::len)
                }
                _ => 0,
            })
            .sum();
        row_width(&self.columns) + strings
    }

    /// A call of the windows `range` alone: only the events they refer to
    /// (renumbered) and only the strings those hold. For splitting a call
    /// that is over its bounds or that failed; the hot path never copies.
    pub fn subset(&self, range: std::ops::Range<usize>) -> Batch {
        let windows = self.windows.get(range).unwrap_or_default();
        let mut row_map: Vec<u32> = vec![u32::MAX; self.times.len()];
        let mut kept: Vec<u32> = Vec::new();
        for w in windows {
            for &r in &w.rows {
                if let Some(slot) = row_map.get_mut(r as usize)
                    && *slot == u32::MAX
                {
                    *slot = kept.len() as u32;
                    kept.push(r);
                }
            }
        }
        let mut string_map: Vec<u32> = vec![u32::MAX; self.strings.len()];
        let mut strings = Vec::new();
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let data = match &c.data {
                    ColumnData::Bools(v) => ColumnData::Bools(kept.iter().map(|&r| v[r as usize]).collect()),
                    ColumnData::Ints(v) => ColumnData::Ints(kept.iter().map(|&r| v[r as usize]).collect()),
                    ColumnData::Floats(v) => ColumnData::Floats(kept.iter().map(|&r| v[r as usize]).collect()),
                    ColumnData::Strs(v) => ColumnData::Strs(
                        kept.iter()
                            .map(|&r| {
                                let code = v[r as usize];
                                match string_map.get_mut(code as usize) {
                                    Some(slot) if *slot == u32::MAX => {
                                        *slot = strings.len() as u32;
                                        strings.push(self.strings[code as usize].clone());
                                        *slot
                                    }
                                    Some(slot) => *slot,
                                    // Null rows hold 0 whatever the table.
                                    None => 0,
                                }
                            })
                            .collect(),
                    ),
                };
                let mut nulls: Vec<u32> = c
                    .nulls
                    .iter()
                    .filter_map(|&r| row_map.get(r as usize).copied())
                    .filter(|&r| r != u32::MAX)
                    .collect();
                nulls.sort_unstable();
                Column { name: c.name.clone(), data, nulls }
            })
            .collect::<Vec<_>>();
        let mut sub = Batch {
            id: self.id,
            times: kept.iter().map(|&r| self.times[r as usize]).collect(),
            strings,
            bytes: kept.iter().map(|&r| self.row_bytes(r)).sum(),
            columns,
            ..Batch::default()
        };
        for w in windows {
            let rows = w.rows.iter().map(|&r| row_map[r as usize]).collect();
            sub.push_window(Fired { rows, ..w.clone() });
        }
        sub
    }

    /// The window's input as JSON, for the dead-letter output: its events
    /// up to about [`sluice_sink_api::MAX_RAW_BYTES`], with how many there
    /// were and how many were left out.
    pub fn window_json(&self, w: &Fired) -> Vec<u8> {
        let (events, omitted) = self.events_json(&w.rows);
        let mut doc = serde_json::json!({
            "key": w.key,
            "window_start": w.start,
            "window_end": w.end,
            "trigger": w.trigger,
            "events": events,
        });
        if omitted > 0 {
            doc["events_total"] = w.rows.len().into();
            doc["events_omitted"] = omitted.into();
        }
        doc.to_string().into_bytes()
    }

    /// The events of `rows` as a JSON array (dead letters of failed folds),
    /// cut like [`Batch::window_json`]'s.
    pub fn rows_json(&self, rows: &[u32]) -> Vec<u8> {
        let (events, omitted) = self.events_json(rows);
        let mut doc = serde_json::Value::Array(events);
        if omitted > 0 {
            doc = serde_json::json!({"events": doc, "events_total": rows.len(), "events_omitted": omitted});
        }
        doc.to_string().into_bytes()
    }

    /// The first events of `rows` that fit a dead letter, and how many more
    /// there are.
    fn events_json(&self, rows: &[u32]) -> (Vec<serde_json::Value>, usize) {
        // Room for the window's own fields besides.
        let budget = sluice_sink_api::MAX_RAW_BYTES - 4096;
        let mut used = 0;
        let mut events = Vec::new();
        for &r in rows {
            let event = self.row_json(r);
            used += event.to_string().len() + 1;
            if used > budget {
                break;
            }
            events.push(event);
        }
        let omitted = rows.len() - events.len();
        (events, omitted)
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
    /// Bytes of an event row, strings aside.
    width: usize,
}

/// Bytes a slice's events add to a call.
pub fn slice_bytes(slice: &Slice, width: usize) -> usize {
    slice.len() * width + slice.text_bytes as usize
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
            width: 0,
        };
        b.batch = b.empty(1);
        b.width = row_width(&b.batch.columns);
        b
    }

    fn empty(&self, id: u64) -> Batch {
        Batch::of_fields(id, &self.fields)
    }

    /// Id of the call being built: placements in another call are stale.
    pub fn id(&self) -> u64 {
        self.batch.id
    }

    /// Bytes of an event row, strings aside.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Copy a slice's events into the call; returns the first row.
    pub fn push_slice(&mut self, slice: &Slice) -> u32 {
        let base = self.batch.times.len() as u32;
        self.batch.bytes += slice_bytes(slice, self.width);
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
        (batch.refs, batch.bytes) = (0, 0);
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
            s.insert(i as i64, &[Value::Str(sym), n.map_or(Value::Null, Value::Int)], text.len() as u64);
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

    /// A part of a call holds just the events its windows refer to, and
    /// just their strings; each window sees the same events as before.
    #[test]
    fn a_subset_keeps_only_what_its_windows_need() {
        let mut interner = Interner::new();
        let mut builder = BatchBuilder::new(vec![("s".into(), FieldType::String), ("n".into(), FieldType::Int)]);
        let a = slice(&mut interner, &[("a", Some(1)), ("b", None)]);
        let b = slice(&mut interner, &[("c", Some(3)), ("a", Some(4))]);
        builder.push_slice(&a);
        builder.push_slice(&b);
        let window = |key: &str, rows: Vec<u32>| Fired {
            key: key.into(),
            start: 0,
            end: 10,
            latest: 1,
            trigger: Trigger::Close,
            rows,
            accs: Vec::new(),
        };
        builder.batch.push_window(window("k1", vec![0, 1]));
        builder.batch.push_window(window("k2", vec![1, 2, 3]));
        builder.batch.push_window(window("k3", vec![3]));
        let batch = builder.take(&mut interner);
        assert_eq!(batch.refs, 6);
        // 20 bytes a row (time 8, string code 4, integer 8), and each
        // string's bytes where it occurs.
        assert_eq!(batch.bytes, 4 * (8 + 4 + 8) + 4);
        let events = |b: &Batch, w: usize| -> Vec<(i64, Option<String>)> {
            let ColumnData::Strs(codes) = &b.columns[0].data else { return Vec::new() };
            b.windows[w]
                .rows
                .iter()
                .map(|&r| {
                    let null = b.columns[0].nulls.contains(&r);
                    (b.times[r as usize], (!null).then(|| b.strings[codes[r as usize] as usize].clone()))
                })
                .collect()
        };
        let sub = batch.subset(1..3);
        assert_eq!(sub.windows.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(), vec!["k2", "k3"]);
        assert_eq!(sub.times.len(), 3, "rows 1, 2 and 3 only");
        assert_eq!(events(&sub, 0), events(&batch, 1));
        assert_eq!(events(&sub, 1), events(&batch, 2));
        assert_eq!(sub.columns[1].nulls, vec![0]);
        assert_eq!(sub.refs, 4);
        let mut strings = sub.strings.clone();
        strings.sort();
        assert!(strings.len() <= 3 && !strings.contains(&"zz".to_string()), "{strings:?}");
        let alone = batch.subset(0..1);
        assert_eq!(events(&alone, 0), vec![(0, Some("a".into())), (1, Some("b".into()))]);
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
