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

/// A stored field value; strings are interned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Sym),
}

/// Marks a row not yet copied into the current call.
pub(crate) const NO_ROW: u32 = u32::MAX;

/// A slice of a key's timeline: the unit of window state.
///
/// For window transforms it holds every event of the slice; for aggregate
/// transforms, the events not yet folded into `acc`. Events are kept in
/// event-time order (ties in arrival order), stored flat: `times[i]` and
/// `values[i * width..(i + 1) * width]`, so reading a slice for a call
/// streams through memory.
#[derive(Debug, Default, PartialEq)]
pub struct Slice {
    /// Start of the slice (grid windows) or of the part (sessions).
    pub start: i64,
    pub times: Vec<i64>,
    pub values: Vec<Value>,
    pub acc: Option<Vec<u8>>,
    /// The call these rows belong to; not state, never encoded.
    pub(crate) batch: u64,
    /// Row of each event in call `batch`, or [`NO_ROW`].
    pub(crate) rows: Vec<u32>,
}

impl Slice {
    pub fn new(start: i64) -> Self {
        Slice { start, ..Slice::default() }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Fields per event.
    pub fn width(&self) -> usize {
        self.values.len().checked_div(self.times.len()).unwrap_or(0)
    }

    /// The fields of event `i`.
    pub fn row(&self, i: usize, width: usize) -> &[Value] {
        &self.values[i * width..(i + 1) * width]
    }

    /// Insert keeping event-time order.
    pub(crate) fn insert(&mut self, time: i64, values: &[Value], current_batch: u64) {
        let at = self.times.partition_point(|&t| t <= time);
        let width = values.len();
        if at == self.times.len() {
            self.values.extend_from_slice(values);
        } else {
            self.values.splice(at * width..at * width, values.iter().copied());
        }
        self.times.insert(at, time);
        if self.batch == current_batch {
            self.rows.insert(at, NO_ROW);
        }
    }

    /// Append another slice's events (later in time than all of this one's).
    pub(crate) fn append(&mut self, other: Slice) {
        self.times.extend(other.times);
        self.values.extend(other.values);
        self.batch = 0;
    }

    /// Release the interned strings of every event and forget them.
    pub(crate) fn release(&mut self, interner: &mut Interner) {
        release_values(&self.values, interner);
        self.times.clear();
        self.values.clear();
        self.rows.clear();
    }
}

pub(crate) fn release_values(values: &[Value], interner: &mut Interner) {
    for v in values {
        if let Value::Str(s) = v {
            interner.release(*s);
        }
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
