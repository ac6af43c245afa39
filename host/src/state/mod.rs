//! Keyed window state behind one boundary.
//!
//! The operator reaches its state through [`StateBackend`]: all in memory
//! ([`MemoryState`]), or the recently used keys in memory and the rest in
//! RocksDB ([`RocksState`]). Everything a backend stores encodes to bytes
//! ([`KeyState::encode`]), the same bytes checkpoints hold.

mod codec;
pub mod columnar;
pub mod intern;
mod memory;
mod rocks;

pub use codec::CodecError;
pub use intern::{Interner, Sym};
pub use memory::MemoryState;
pub use rocks::{RocksState, RocksStore};

use std::collections::VecDeque;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::decode::FieldType;

/// Where window state lives. Either way, what outlives a run is in the
/// checkpoints: a restart restores from them, whichever backend wrote
/// them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `memory` (the default) keeps every key's state in memory: the
    /// fastest, for state that fits. `rocksdb` keeps the recently used
    /// keys in memory and the rest on local disk in RocksDB, so the number
    /// of keys can grow past `memory`.
    #[serde(default)]
    pub backend: StateBackendKind,
    /// `rocksdb`: the directory for RocksDB's files. Each run makes its own
    /// directory inside and removes it at the end (a run that was killed
    /// leaves its directory to the next run to remove). Put it on a local
    /// disk.
    /// Default: the system's temporary directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `rocksdb`: memory for state across all workers, split between
    /// recently used keys kept decoded (half), RocksDB's block cache (a
    /// quarter) and its write buffers (a quarter). The key index and
    /// timers stay in memory besides, about 100 bytes a key. At least
    /// 4MiB. Default: 256MiB.
    #[serde(default)]
    pub memory: Option<sluice_sink_api::size::Size>,
}

/// The state backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateBackendKind {
    #[default]
    Memory,
    #[serde(rename = "rocksdb")]
    RocksDb,
}

impl StateConfig {
    /// The `rocksdb` backend's memory budget.
    pub fn memory(&self) -> u64 {
        self.memory.unwrap_or(sluice_sink_api::size::Size::mib(256)).bytes()
    }
}

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

/// What the operator reads of every key without its windows (scans over
/// all keys, and timers that may be out of date): a backend keeps it in
/// memory for keys whose state is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub partition: u32,
    pub last_event: i64,
    pub next_close: Option<i64>,
    /// The earliest slice or session start, `i64::MAX` for none.
    pub oldest: i64,
}

impl KeyState {
    pub fn meta(&self) -> Meta {
        let first = self.slices.front().map_or(i64::MAX, |s| s.start);
        let session = self.sessions.first().map_or(i64::MAX, |s| s.start);
        Meta {
            partition: self.partition,
            last_event: self.last_event,
            next_close: self.next_close,
            oldest: first.min(session),
        }
    }

    /// Memory the state holds, roughly: what a backend's budget counts.
    /// Strings count their length, although keys may share them.
    pub fn heap_bytes(&self) -> usize {
        fn slice(s: &Slice) -> usize {
            let columns: usize = s
                .columns
                .iter()
                .map(|c| match c {
                    Column::Bools(v) => v.capacity() + 24,
                    Column::Ints(v) => v.capacity() * 8 + 24,
                    Column::Floats(v) => v.capacity() * 8 + 24,
                    Column::Strs(v) => v.capacity() * 4 + 24,
                })
                .sum();
            size_of::<Slice>()
                + s.times.capacity() * 8
                + s.nulls.capacity() * 8
                + columns
                + s.acc.as_ref().map_or(0, Vec::capacity)
                + s.text_bytes as usize
        }
        let slices: usize = self.slices.iter().map(slice).sum();
        let sessions: usize =
            self.sessions.iter().map(|s| size_of::<Session>() + s.parts.iter().map(slice).sum::<usize>()).sum();
        size_of::<KeyState>() + self.key.len() + slices + sessions
    }
}

/// A backend failed; the pipeline stops (a restart resumes from the last
/// checkpoint).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "RocksDB state at {path} failed: {source} (check the disk under `state.path`; a restart resumes from the \
         last checkpoint)"
    )]
    Rocks { path: std::path::PathBuf, source: rocksdb::Error },
    #[error("cannot make the state directory {path}: {source}")]
    Dir { path: std::path::PathBuf, source: std::io::Error },
    #[error("the stored state of key `{key}` is unreadable: {source}")]
    Codec { key: String, source: CodecError },
    #[error("the state of key `{0}` is missing from RocksDB")]
    Missing(String),
}

/// Where the operator keeps keyed state.
///
/// A backend may keep a key's state as bytes (on disk) until
/// [`StateBackend::get_mut`] asks for it: strings are then interned into
/// the operator's interner, and released again when the state goes back.
pub trait StateBackend {
    /// The id of `key`, adding an empty state when it is new.
    fn lookup_or_insert(&mut self, key: &str) -> KeyId;
    /// The id of `key`, if it has state.
    fn lookup(&self, key: &str) -> Option<KeyId>;
    /// The state of `id`, loaded if it was put away.
    fn get_mut(&mut self, id: KeyId, interner: &mut Interner) -> Option<&mut KeyState>;
    /// What scans and timers read, without loading the state.
    fn meta(&self, id: KeyId) -> Option<Meta>;
    /// Forget `id` and release its strings. Returns whether it held any
    /// window (`None`: no such key).
    fn remove(&mut self, id: KeyId, interner: &mut Interner) -> Option<bool>;
    /// Live keys.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn ids(&self) -> Vec<KeyId>;
    /// Every key's state encoded ([`KeyState::encode`]), with its
    /// partition.
    fn encode_all(&mut self, interner: &Interner, out: &mut dyn FnMut(u32, Vec<u8>));
    /// Between steps: bring memory back within budget.
    fn spill(&mut self, _interner: &mut Interner) {}
    /// The first failure since the last call: the operator's view of state
    /// is wrong from then on, and the pipeline must stop.
    fn take_error(&mut self) -> Option<Error> {
        None
    }
    /// Keys put away and read back since the last call.
    fn take_io(&mut self) -> Io {
        Io::default()
    }
}

/// Keys a backend moved between memory and disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Io {
    pub spilled: u64,
    pub loaded: u64,
}

/// The backend a manifest chose.
#[derive(Debug)]
pub enum Backend {
    Memory(MemoryState),
    Rocks(RocksState),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Backend::Memory($s) => $e,
            Backend::Rocks($s) => $e,
        }
    };
}

impl StateBackend for Backend {
    fn lookup_or_insert(&mut self, key: &str) -> KeyId {
        each!(self, s => s.lookup_or_insert(key))
    }
    fn lookup(&self, key: &str) -> Option<KeyId> {
        each!(self, s => s.lookup(key))
    }
    fn get_mut(&mut self, id: KeyId, interner: &mut Interner) -> Option<&mut KeyState> {
        each!(self, s => s.get_mut(id, interner))
    }
    fn meta(&self, id: KeyId) -> Option<Meta> {
        each!(self, s => s.meta(id))
    }
    fn remove(&mut self, id: KeyId, interner: &mut Interner) -> Option<bool> {
        each!(self, s => s.remove(id, interner))
    }
    fn len(&self) -> usize {
        each!(self, s => s.len())
    }
    fn ids(&self) -> Vec<KeyId> {
        each!(self, s => s.ids())
    }
    fn encode_all(&mut self, interner: &Interner, out: &mut dyn FnMut(u32, Vec<u8>)) {
        each!(self, s => s.encode_all(interner, out))
    }
    fn spill(&mut self, interner: &mut Interner) {
        each!(self, s => s.spill(interner))
    }
    fn take_error(&mut self) -> Option<Error> {
        each!(self, s => s.take_error())
    }
    fn take_io(&mut self) -> Io {
        each!(self, s => s.take_io())
    }
}
