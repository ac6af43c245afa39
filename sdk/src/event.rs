use crate::Error;
use crate::bindings::exports::sluice::transform::window_transform;
use crate::bindings::sluice::transform::types::{self, ColumnData, Trigger};

/// The events of one call into the module, stored by column.
pub struct Events<'a> {
    raw: &'a types::Events,
}

impl<'a> Events<'a> {
    pub(crate) fn new(raw: &'a types::Events) -> Self {
        Events { raw }
    }

    fn column(&self, name: &str) -> Option<&'a types::Column> {
        self.raw.columns.iter().find(|c| c.name == name)
    }

    /// Event time of `row`, milliseconds since the Unix epoch.
    pub fn timestamp(&self, row: u32) -> i64 {
        self.raw.timestamps.get(row as usize).copied().unwrap_or(i64::MIN)
    }

    /// The string column `name`, for fast per-row access and distinct
    /// counts over dictionary codes.
    pub fn strs(&self, name: &str) -> Result<StrColumn<'a>, Error> {
        match self.column(name) {
            Some(types::Column { data: ColumnData::Strs(codes), nulls, .. }) => {
                Ok(StrColumn { dict: &self.raw.strings, codes, nulls })
            }
            Some(_) => Err(Error(format!("field `{name}` is not a string"))),
            None => Err(Error(format!("field `{name}` is not declared in the manifest"))),
        }
    }

    fn is_null(column: &types::Column, row: u32) -> bool {
        !column.nulls.is_empty() && column.nulls.binary_search(&row).is_ok()
    }

    fn str(&self, name: &str, row: u32) -> Option<&'a str> {
        let column = self.column(name)?;
        if Self::is_null(column, row) {
            return None;
        }
        match &column.data {
            ColumnData::Strs(codes) => {
                let code = *codes.get(row as usize)?;
                self.raw.strings.get(code as usize).map(String::as_str)
            }
            _ => None,
        }
    }

    fn i64(&self, name: &str, row: u32) -> Option<i64> {
        let column = self.column(name)?;
        if Self::is_null(column, row) {
            return None;
        }
        match &column.data {
            ColumnData::Ints(v) => v.get(row as usize).copied(),
            _ => None,
        }
    }

    fn f64(&self, name: &str, row: u32) -> Option<f64> {
        let column = self.column(name)?;
        if Self::is_null(column, row) {
            return None;
        }
        match &column.data {
            ColumnData::Floats(v) => v.get(row as usize).copied(),
            ColumnData::Ints(v) => v.get(row as usize).map(|&i| i as f64),
            _ => None,
        }
    }

    fn bool(&self, name: &str, row: u32) -> Option<bool> {
        let column = self.column(name)?;
        if Self::is_null(column, row) {
            return None;
        }
        match &column.data {
            ColumnData::Bools(v) => v.get(row as usize).copied(),
            _ => None,
        }
    }
}

/// One event: a row of a call's [`Events`].
#[derive(Clone, Copy)]
pub struct Event<'a> {
    events: &'a Events<'a>,
    row: u32,
}

impl<'a> Event<'a> {
    pub(crate) fn new(events: &'a Events<'a>, row: u32) -> Self {
        Event { events, row }
    }

    /// Event time, milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.events.timestamp(self.row)
    }

    /// The row number in the call's events.
    pub fn row(&self) -> u32 {
        self.row
    }

    /// A string field; `None` when null or not a string.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        self.events.str(name, self.row)
    }

    /// An integer field; `None` when null or not an integer.
    pub fn i64(&self, name: &str) -> Option<i64> {
        self.events.i64(name, self.row)
    }

    /// A float field (integers widen); `None` when null or not a number.
    pub fn f64(&self, name: &str) -> Option<f64> {
        self.events.f64(name, self.row)
    }

    /// A boolean field; `None` when null or not a boolean.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.events.bool(name, self.row)
    }
}

/// A string column of a call: each distinct string once, rows as codes.
#[derive(Clone, Copy)]
pub struct StrColumn<'a> {
    dict: &'a [String],
    codes: &'a [u32],
    nulls: &'a [u32],
}

impl<'a> StrColumn<'a> {
    fn is_null(&self, row: u32) -> bool {
        !self.nulls.is_empty() && self.nulls.binary_search(&row).is_ok()
    }

    /// The dictionary code of `row`: equal codes are equal strings within
    /// one call. `None` when null.
    pub fn code(&self, row: u32) -> Option<u32> {
        if self.is_null(row) {
            return None;
        }
        self.codes.get(row as usize).copied()
    }

    /// The string of `row`; `None` when null.
    pub fn get(&self, row: u32) -> Option<&'a str> {
        self.code(row).and_then(|c| self.dict.get(c as usize)).map(String::as_str)
    }

    /// The string with dictionary code `code`.
    pub fn resolve(&self, code: u32) -> &'a str {
        self.dict.get(code as usize).map_or("", String::as_str)
    }

    /// How many distinct strings the call holds (codes are below this).
    pub fn dict_len(&self) -> usize {
        self.dict.len()
    }

    /// Distinct non-null values over `rows`.
    pub fn distinct(&self, rows: &[u32]) -> usize {
        SCRATCH.with_borrow_mut(|scratch| {
            let counts = scratch.counts.reset(self.dict.len());
            rows.iter().filter_map(|&r| self.code(r)).filter(|&c| counts.bump(c) == 1).count()
        })
    }

    /// The most frequent non-null value over `rows`; ties go to the
    /// smallest string. `None` when every value is null.
    pub fn mode(&self, rows: &[u32]) -> Option<&'a str> {
        self.stats(rows).mode
    }

    /// Distinct values and the most frequent one: one pass over `rows`
    /// counts, then only the values tied for the top count are compared as
    /// strings.
    pub fn stats(&self, rows: &[u32]) -> ColumnStats<'a> {
        SCRATCH.with_borrow_mut(|scratch| {
            let Scratch { counts, seen } = scratch;
            let counts = counts.reset(self.dict.len());
            seen.clear();
            let mut top = 0;
            for code in rows.iter().filter_map(|&r| self.code(r)) {
                let n = counts.bump(code);
                if n == 1 {
                    seen.push(code);
                }
                top = top.max(n);
            }
            let mode = seen.iter().filter(|&&code| counts.get(code) == top).map(|&code| self.resolve(code)).min();
            ColumnStats { distinct: seen.len(), mode }
        })
    }
}

/// What [`StrColumn::stats`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnStats<'a> {
    /// Distinct non-null values.
    pub distinct: usize,
    /// The most frequent non-null value (ties: the smallest string).
    pub mode: Option<&'a str>,
}

/// Per-code counters reused across windows: resetting bumps a generation
/// instead of clearing, so a window costs its own size, not the
/// dictionary's.
#[derive(Default)]
struct Counts {
    generation: u32,
    /// Per code: (generation it was last counted in, count). Together, so
    /// a bump touches one cache line.
    slots: Vec<(u32, u32)>,
}

impl Counts {
    fn reset(&mut self, len: usize) -> &mut Self {
        if self.slots.len() < len {
            self.slots.resize(len, (0, 0));
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slots.fill((0, 0));
            self.generation = 1;
        }
        self
    }

    /// Count one more `code`; returns its new count.
    fn bump(&mut self, code: u32) -> u32 {
        let generation = self.generation;
        let slot = &mut self.slots[code as usize];
        if slot.0 != generation {
            *slot = (generation, 0);
        }
        slot.1 += 1;
        slot.1
    }

    /// How often `code` was counted since the last reset.
    fn get(&self, code: u32) -> u32 {
        match self.slots.get(code as usize) {
            Some(&(generation, n)) if generation == self.generation => n,
            _ => 0,
        }
    }
}

/// Reused across windows: per-code counts, and the codes seen in order.
#[derive(Default)]
struct Scratch {
    counts: Counts,
    seen: Vec<u32>,
}

thread_local! {
    static SCRATCH: core::cell::RefCell<Scratch> = core::cell::RefCell::new(Scratch::default());
}

/// Key, bounds and trigger of a window.
#[derive(Clone, Copy)]
pub struct WindowInfo<'a> {
    /// The value of the manifest's key field.
    pub key: &'a str,
    /// Inclusive start, milliseconds.
    pub start: i64,
    /// Exclusive end, milliseconds.
    pub end: i64,
    pub trigger: Trigger,
}

/// A window and its events, in event-time order.
pub struct Window<'a> {
    info: WindowInfo<'a>,
    rows: &'a [u32],
    events: &'a Events<'a>,
}

impl<'a> Window<'a> {
    pub(crate) fn new(raw: &'a window_transform::Window, events: &'a Events<'a>) -> Self {
        Window {
            info: WindowInfo { key: &raw.key, start: raw.start, end: raw.end, trigger: raw.trigger },
            rows: &raw.rows,
            events,
        }
    }

    pub fn info(&self) -> &WindowInfo<'a> {
        &self.info
    }

    pub fn key(&self) -> &'a str {
        self.info.key
    }

    pub fn start(&self) -> i64 {
        self.info.start
    }

    pub fn end(&self) -> i64 {
        self.info.end
    }

    pub fn trigger(&self) -> Trigger {
        self.info.trigger
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row numbers of the window's events, for use with column handles.
    pub fn rows(&self) -> &'a [u32] {
        self.rows
    }

    /// The window's events, in event-time order.
    pub fn events(&self) -> impl Iterator<Item = Event<'a>> + 'a {
        let events = self.events;
        self.rows.iter().map(move |&row| Event::new(events, row))
    }

    /// The string column `name`, see [`StrColumn`].
    pub fn strs(&self, name: &str) -> Result<StrColumn<'a>, Error> {
        self.events.strs(name)
    }

    /// The event time of `row`.
    pub fn timestamp(&self, row: u32) -> i64 {
        self.events.timestamp(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn events(dict: &[&str], codes: Vec<u32>, nulls: Vec<u32>) -> types::Events {
        types::Events {
            timestamps: vec![0; codes.len()],
            strings: dict.iter().map(|s| s.to_string()).collect(),
            columns: vec![types::Column { name: "c".into(), data: ColumnData::Strs(codes), nulls }],
        }
    }

    /// The definition, by brute force: count each non-null string, take the
    /// highest count, ties to the smallest string.
    fn reference(raw: &types::Events, rows: &[u32]) -> (usize, Option<String>) {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        let types::Column { data: ColumnData::Strs(codes), nulls, .. } = &raw.columns[0] else {
            return (0, None);
        };
        for &r in rows.iter().filter(|r| !nulls.contains(r)) {
            *counts.entry(raw.strings[codes[r as usize] as usize].as_str()).or_default() += 1;
        }
        let top = counts.values().copied().max();
        let mode = counts.iter().find(|(_, n)| Some(**n) == top).map(|(s, _)| s.to_string());
        (counts.len(), mode)
    }

    #[test]
    fn mode_ties_go_to_the_smallest_string() -> Result<(), Error> {
        let raw = events(&["b", "a", "c"], vec![0, 2, 1, 2, 0, 1], vec![3]);
        let column = Events::new(&raw).strs("c")?;
        // b, c, a, (null), b, a: a and b twice each.
        let stats = column.stats(&[0, 1, 2, 3, 4, 5]);
        assert_eq!((stats.distinct, stats.mode), (3, Some("a")));
        assert_eq!(column.stats(&[1, 3]), ColumnStats { distinct: 1, mode: Some("c") });
        assert_eq!(column.stats(&[3]), ColumnStats { distinct: 0, mode: None });
        Ok(())
    }

    proptest! {
        #[test]
        fn stats_match_the_definition(
            codes in proptest::collection::vec(0u32..6, 1..60),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
            null_every in 0usize..5,
        ) {
            let dict = ["d", "a", "f", "b", "e", "c"];
            let nulls: Vec<u32> =
                (0..codes.len() as u32).filter(|&r| null_every > 0 && (r as usize).is_multiple_of(null_every + 2)).collect();
            let rows: Vec<u32> = picks.iter().map(|i| i.index(codes.len()) as u32).collect();
            let raw = events(&dict, codes, nulls);
            let column = Events::new(&raw).strs("c").map_err(|e| TestCaseError::fail(e.0))?;
            let stats = column.stats(&rows);
            let (distinct, mode) = reference(&raw, &rows);
            prop_assert_eq!(stats.distinct, distinct);
            prop_assert_eq!(stats.mode.map(str::to_string), mode);
            prop_assert_eq!(column.distinct(&rows), distinct);
        }
    }
}
