//! Keyed window state behind one boundary.
//!
//! The operator reaches its state through [`StateBackend`]; the in-memory
//! [`MemoryState`] is the one backend today. Everything a backend stores
//! encodes to bytes ([`KeyState::encode`]), so a RocksDB backend and
//! checkpoints can hold the same state.

mod codec;
pub mod intern;
mod memory;

pub use codec::CodecError;
pub use intern::{Interner, Sym};
pub use memory::MemoryState;

use std::collections::VecDeque;

use crate::decode::FieldType;

/// A stored field value; strings are interned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Sym),
}

/// The values of one declared field over a slice's events.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Bools(Vec<bool>),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    /// Interned strings; [`NULL_SYM`] for null.
    Strs(Vec<Sym>),
}

/// The symbol stored for a null string.
pub const NULL_SYM: Sym = Sym(u32::MAX);

impl Column {
    pub fn new(ty: FieldType) -> Self {
        match ty {
            FieldType::Bool => Column::Bools(Vec::new()),
            FieldType::Int => Column::Ints(Vec::new()),
            FieldType::Float => Column::Floats(Vec::new()),
            FieldType::String => Column::Strs(Vec::new()),
        }
    }

    fn insert(&mut self, at: usize, value: Value) {
        match (self, value) {
            (Column::Bools(v), value) => v.insert(at, matches!(value, Value::Bool(true))),
            (Column::Ints(v), value) => v.insert(at, if let Value::Int(i) = value { i } else { 0 }),
            (Column::Floats(v), value) => v.insert(
                at,
                match value {
                    Value::Float(f) => f,
                    Value::Int(i) => i as f64,
                    _ => 0.0,
                },
            ),
            (Column::Strs(v), value) => v.insert(at, if let Value::Str(s) = value { s } else { NULL_SYM }),
        }
    }

    fn get(&self, i: usize) -> Value {
        match self {
            Column::Bools(v) => Value::Bool(v[i]),
            Column::Ints(v) => Value::Int(v[i]),
            Column::Floats(v) => Value::Float(v[i]),
            Column::Strs(v) => Value::Str(v[i]),
        }
    }

    fn clear(&mut self) {
        match self {
            Column::Bools(v) => v.clear(),
            Column::Ints(v) => v.clear(),
            Column::Floats(v) => v.clear(),
            Column::Strs(v) => v.clear(),
        }
    }

    fn append(&mut self, other: Column) {
        match (self, other) {
            (Column::Bools(a), Column::Bools(b)) => a.extend(b),
            (Column::Ints(a), Column::Ints(b)) => a.extend(b),
            (Column::Floats(a), Column::Floats(b)) => a.extend(b),
            (Column::Strs(a), Column::Strs(b)) => a.extend(b),
            _ => {}
        }
    }
}

/// A slice of a key's timeline: the unit of window state.
///
/// For window transforms it holds every event of the slice; for aggregate
/// transforms, the events not yet folded into `acc`. Events are kept in
/// event-time order (ties in arrival order), by column, so a slice goes
/// into a call with a few bulk copies.
#[derive(Debug, Default, PartialEq)]
pub struct Slice {
    /// Start of the slice (grid windows) or of the part (sessions).
    pub start: i64,
    pub times: Vec<i64>,
    pub columns: Vec<Column>,
    /// Rows whose field is null, as (row, column), ascending by row.
    pub nulls: Vec<(u32, u16)>,
    pub acc: Option<Vec<u8>>,
    /// Latest event time ever inserted (folded or released events
    /// included): the event time of a window's feature row.
    pub latest: i64,
    /// Bytes of the string values of the events held, for bounding the
    /// size of a call.
    pub text_bytes: u64,
    /// Where the slice sits in the call being built: (call, version, first
    /// row). Not state, never encoded.
    pub(crate) placed: Option<(u64, u32, u32)>,
    /// Bumped by every change, to invalidate `placed`.
    pub(crate) version: u32,
}

impl Slice {
    pub fn new(start: i64, fields: &[FieldType]) -> Self {
        Slice { start, latest: i64::MIN, columns: fields.iter().map(|&t| Column::new(t)).collect(), ..Slice::default() }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The fields of event `i` (tests and dead letters; not the hot path).
    pub fn row(&self, i: usize) -> Vec<Value> {
        self.columns
            .iter()
            .enumerate()
            .map(|(c, col)| if self.nulls.contains(&(i as u32, c as u16)) { Value::Null } else { col.get(i) })
            .collect()
    }

    /// Insert keeping event-time order; `text` is the byte length of the
    /// event's string values.
    pub(crate) fn insert(&mut self, time: i64, values: &[Value], text: u64) {
        self.latest = self.latest.max(time);
        self.text_bytes += text;
        if self.times.last().is_none_or(|&last| last <= time) {
            return self.push(time, values);
        }
        let at = self.times.partition_point(|&t| t <= time);
        self.times.insert(at, time);
        let first_after = self.nulls.partition_point(|&(r, _)| (r as usize) < at);
        for n in &mut self.nulls[first_after..] {
            n.0 += 1;
        }
        for (c, (column, &value)) in self.columns.iter_mut().zip(values).enumerate() {
            column.insert(at, value);
            if value == Value::Null {
                let i = self.nulls.partition_point(|&n| n < (at as u32, c as u16));
                self.nulls.insert(i, (at as u32, c as u16));
            }
        }
        self.version = self.version.wrapping_add(1);
    }

    /// Append an event no earlier than the last (the usual case).
    fn push(&mut self, time: i64, values: &[Value]) {
        let at = self.times.len();
        self.times.push(time);
        for (c, (column, &value)) in self.columns.iter_mut().zip(values).enumerate() {
            column.insert(at, value);
            if value == Value::Null {
                self.nulls.push((at as u32, c as u16));
            }
        }
        self.version = self.version.wrapping_add(1);
    }

    /// Append another slice's events (later in time than all of this one's).
    pub(crate) fn append(&mut self, other: Slice) {
        let offset = self.times.len() as u32;
        self.latest = self.latest.max(other.latest);
        self.text_bytes += other.text_bytes;
        self.times.extend(other.times);
        self.nulls.extend(other.nulls.into_iter().map(|(r, c)| (r + offset, c)));
        for (a, b) in self.columns.iter_mut().zip(other.columns) {
            a.append(b);
        }
        self.version = self.version.wrapping_add(1);
    }

    /// Release the interned strings of every event and forget the events.
    pub(crate) fn release(&mut self, interner: &mut Interner) {
        for column in &mut self.columns {
            if let Column::Strs(syms) = column {
                for &s in syms.iter() {
                    interner.release(s);
                }
            }
            column.clear();
        }
        self.times.clear();
        self.nulls.clear();
        self.text_bytes = 0;
        self.version = self.version.wrapping_add(1);
    }
}

/// A session: activity separated from the next by more than the gap.
#[derive(Debug, PartialEq)]
pub struct Session {
    pub start: i64,
    /// Last event time plus the gap.
    pub end: i64,
    /// Whether the session's close has been emitted.
    pub fired: bool,
    /// One part for window transforms; for aggregates, the parts of merged
    /// sessions, each with its own accumulator.
    pub parts: Vec<Slice>,
}

/// Everything kept for one key.
#[derive(Debug, Default, PartialEq)]
pub struct KeyState {
    pub key: Box<str>,
    /// Grid slices (tumbling and sliding windows), ascending by start.
    pub slices: VecDeque<Slice>,
    /// Sessions, ascending by start, disjoint.
    pub sessions: Vec<Session>,
    /// End of the next window to fire on close.
    pub next_close: Option<i64>,
    /// Largest event time seen, for the state TTL.
    pub last_event: i64,
    /// The source partition that last delivered an event of this key: its
    /// state goes when the partition is revoked.
    pub partition: u32,
    /// Has events not yet folded into accumulators.
    pub(crate) dirty: bool,
}

impl KeyState {
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty() && self.sessions.is_empty()
    }

    pub(crate) fn release(&mut self, interner: &mut Interner) {
        for s in &mut self.slices {
            s.release(interner);
        }
        for session in &mut self.sessions {
            for p in &mut session.parts {
                p.release(interner);
            }
        }
        self.slices.clear();
        self.sessions.clear();
    }
}

/// A key's handle in a backend; reused after the key is removed.
pub type KeyId = u32;

/// Where the operator keeps keyed state.
pub trait StateBackend {
    /// The id of `key`, adding an empty state when it is new.
    fn lookup_or_insert(&mut self, key: &str) -> KeyId;
    /// The id of `key`, if it has state.
    fn lookup(&self, key: &str) -> Option<KeyId>;
    fn get(&self, id: KeyId) -> Option<&KeyState>;
    fn get_mut(&mut self, id: KeyId) -> Option<&mut KeyState>;
    fn remove(&mut self, id: KeyId) -> Option<KeyState>;
    /// Live keys.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn ids(&self) -> Vec<KeyId>;
}
