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
            let counts = scratch.reset(self.dict.len());
            rows.iter().filter_map(|&r| self.code(r)).filter(|&c| counts.bump(c) == 1).count()
        })
    }

    /// The most frequent non-null value over `rows`; ties go to the
    /// smallest string. `None` when every value is null.
    pub fn mode(&self, rows: &[u32]) -> Option<&'a str> {
        self.stats(rows).mode
    }

    /// Distinct values and the most frequent one, in one pass over `rows`.
    pub fn stats(&self, rows: &[u32]) -> ColumnStats<'a> {
        SCRATCH.with_borrow_mut(|scratch| {
            let counts = scratch.reset(self.dict.len());
            let mut distinct = 0;
            let mut best: Option<(u32, u32)> = None;
            for code in rows.iter().filter_map(|&r| self.code(r)) {
                let n = counts.bump(code);
                distinct += usize::from(n == 1);
                let better = match best {
                    None => true,
                    Some((bn, bc)) => n > bn || (n == bn && code != bc && self.resolve(code) < self.resolve(bc)),
                };
                if better {
                    best = Some((n, code));
                }
            }
            ColumnStats { distinct, mode: best.map(|(_, code)| self.resolve(code)) }
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
}

thread_local! {
    static SCRATCH: core::cell::RefCell<Counts> = core::cell::RefCell::new(Counts::default());
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
