//! Bytes for keyed state: what a RocksDB backend and checkpoints store.
//!
//! Varints (LEB128, zigzag for signed values); times and starts as deltas
//! from the one before; each of a key's strings written out once, then
//! referred to by number (symbols are only meaningful within one process).
//! Checkpoints compress this further with zstd.

use std::collections::VecDeque;

use super::{Column, Interner, KeyState, NULL_SYM, Session, Slice, Sym};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    #[error("state bytes end early")]
    Truncated,
    #[error("state bytes hold an unknown tag {0}")]
    BadTag(u8),
    #[error("state bytes hold invalid UTF-8")]
    BadUtf8,
    #[error("state format version {0} is not supported")]
    Version(u8),
    #[error("state bytes hold {0} columns, more than a state can have")]
    Width(u64),
    #[error("state bytes go on after their last key")]
    Trailing,
}

/// 2: varints, times as deltas, strings by a per-key dictionary.
pub(super) const VERSION: u8 = 2;

/// Zigzag: small magnitudes of either sign become small varints.
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// LEB128.
pub(super) fn put_uv(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Length-prefixed bytes.
pub(super) fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    put_uv(out, v.len() as u64);
    out.extend_from_slice(v);
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// The key's strings so far, by symbol: their number in the dictionary.
    dict: rustc_hash::FxHashMap<Sym, u64>,
}

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn uv(&mut self, v: u64) {
        put_uv(self.out, v);
    }
    fn iv(&mut self, v: i64) {
        self.uv(zigzag(v));
    }
    fn bytes(&mut self, v: &[u8]) {
        put_bytes(self.out, v);
    }
    /// A string value: 0 for null, its number if the key had it already,
    /// else the next number and the string.
    fn string(&mut self, sym: Sym, interner: &Interner) {
        if sym == NULL_SYM {
            return self.uv(0);
        }
        let next = self.dict.len() as u64 + 1;
        match self.dict.get(&sym) {
            Some(&n) => self.uv(n),
            None => {
                self.dict.insert(sym, next);
                self.uv(next);
                self.bytes(interner.resolve(sym).as_bytes());
            }
        }
    }
    fn slice(&mut self, s: &Slice, interner: &Interner, base: i64) {
        self.iv(s.start.wrapping_sub(base));
        self.iv(s.latest.wrapping_sub(s.start));
        match &s.acc {
            Some(acc) => {
                self.u8(1);
                self.bytes(acc);
            }
            None => self.u8(0),
        }
        self.uv(s.len() as u64);
        // Times ascend within a slice: deltas are small.
        let mut prev = s.start;
        for &t in &s.times {
            self.iv(t.wrapping_sub(prev));
            prev = t;
        }
        self.uv(s.columns.len() as u64);
        for column in &s.columns {
            match column {
                Column::Bools(v) => {
                    self.u8(0);
                    v.iter().for_each(|&b| self.u8(u8::from(b)));
                }
                Column::Ints(v) => {
                    self.u8(1);
                    v.iter().for_each(|&i| self.iv(i));
                }
                Column::Floats(v) => {
                    self.u8(2);
                    v.iter().for_each(|&f| self.out.extend_from_slice(&f.to_bits().to_le_bytes()));
                }
                Column::Strs(v) => {
                    self.u8(3);
                    v.iter().for_each(|&sym| self.string(sym, interner));
                }
            }
        }
        self.uv(s.nulls.len() as u64);
        let mut row = 0;
        for &(r, column) in &s.nulls {
            self.uv(u64::from(r - row));
            self.uv(u64::from(column));
            row = r;
        }
    }
}

pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    /// The key's strings so far, in the order they were first written.
    dict: Vec<&'a str>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, dict: Vec::new() }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.bytes.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    pub(super) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn uv(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(CodecError::BadTag(0x80))
    }
    fn iv(&mut self) -> Result<i64, CodecError> {
        self.uv().map(unzigzag)
    }
    /// A count, bounded by the bytes left (each item takes at least one),
    /// so that a bad length cannot allocate.
    fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.uv()? as usize;
        if n > self.bytes.len() { Err(CodecError::Truncated) } else { Ok(n) }
    }
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.uv()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<Option<&'a str>, CodecError> {
        let n = self.uv()? as usize;
        if n == 0 {
            return Ok(None);
        }
        if n == self.dict.len() + 1 {
            let text = std::str::from_utf8(self.bytes()?).map_err(|_| CodecError::BadUtf8)?;
            self.dict.push(text);
        }
        self.dict.get(n - 1).copied().map(Some).ok_or(CodecError::BadTag(3))
    }
    fn slice(&mut self, interner: &mut Interner, base: i64) -> Result<Slice, CodecError> {
        let start = base.wrapping_add(self.iv()?);
        let latest = start.wrapping_add(self.iv()?);
        let acc = match self.u8()? {
            0 => None,
            1 => Some(self.bytes()?.to_vec()),
            t => return Err(CodecError::BadTag(t)),
        };
        let n = self.count()?;
        let mut times = Vec::with_capacity(n);
        let mut prev = start;
        for _ in 0..n {
            prev = prev.wrapping_add(self.iv()?);
            times.push(prev);
        }
        let width = self.count()?;
        let mut text_bytes = 0u64;
        let mut columns = Vec::with_capacity(width);
        for _ in 0..width {
            columns.push(match self.u8()? {
                0 => Column::Bools((0..n).map(|_| self.u8().map(|b| b != 0)).collect::<Result<_, _>>()?),
                1 => Column::Ints((0..n).map(|_| self.iv()).collect::<Result<_, _>>()?),
                2 => Column::Floats(
                    (0..n)
                        .map(|_| {
                            let mut a = [0; 8];
                            a.copy_from_slice(self.take(8)?);
                            Ok(f64::from_bits(u64::from_le_bytes(a)))
                        })
                        .collect::<Result<_, CodecError>>()?,
                ),
                3 => {
                    let mut syms = Vec::with_capacity(n);
                    for _ in 0..n {
                        syms.push(match self.string()? {
                            None => NULL_SYM,
                            Some(text) => {
                                text_bytes += text.len() as u64;
                                interner.intern(text)
                            }
                        });
                    }
                    Column::Strs(syms)
                }
                t => return Err(CodecError::BadTag(t)),
            });
        }
        let m = self.count()?;
        let mut nulls = Vec::with_capacity(m);
        let mut row = 0u32;
        for _ in 0..m {
            row += self.uv()? as u32;
            nulls.push((row, self.uv()? as u16));
        }
        Ok(Slice { start, latest, text_bytes, times, columns, nulls, acc, ..Slice::default() })
    }
}

impl KeyState {
    /// Append this key's state to `out`.
    pub fn encode(&self, interner: &Interner, out: &mut Vec<u8>) {
        let mut w = Writer { out, dict: Default::default() };
        w.u8(VERSION);
        w.bytes(self.key.as_bytes());
        w.iv(self.last_event);
        w.uv(u64::from(self.partition));
        match self.next_close {
            Some(t) => {
                w.u8(1);
                w.iv(t.wrapping_sub(self.last_event));
            }
            None => w.u8(0),
        }
        // Starts as deltas from the one before, from the last event.
        let mut base = self.last_event;
        w.uv(self.slices.len() as u64);
        for s in &self.slices {
            w.slice(s, interner, base);
            base = s.start;
        }
        w.uv(self.sessions.len() as u64);
        for session in &self.sessions {
            w.iv(session.start.wrapping_sub(base));
            w.iv(session.end.wrapping_sub(session.start));
            w.u8(u8::from(session.fired));
            w.uv(session.parts.len() as u64);
            for p in &session.parts {
                w.slice(p, interner, session.start);
            }
            base = session.start;
        }
    }

    /// The key of an encoded state, without decoding the rest.
    pub fn peek_key(bytes: &[u8]) -> Result<&str, CodecError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(CodecError::Version(version));
        }
        std::str::from_utf8(r.bytes()?).map_err(|_| CodecError::BadUtf8)
    }

    /// Read what [`KeyState::encode`] wrote, interning strings into
    /// `interner`.
    pub fn decode(bytes: &[u8], interner: &mut Interner) -> Result<KeyState, CodecError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(CodecError::Version(version));
        }
        let key = std::str::from_utf8(r.bytes()?).map_err(|_| CodecError::BadUtf8)?.into();
        let last_event = r.iv()?;
        let partition = r.uv()? as u32;
        let next_close = match r.u8()? {
            0 => None,
            1 => Some(last_event.wrapping_add(r.iv()?)),
            t => return Err(CodecError::BadTag(t)),
        };
        let mut base = last_event;
        let n = r.count()?;
        let mut slices = VecDeque::with_capacity(n);
        for _ in 0..n {
            let slice = r.slice(interner, base)?;
            base = slice.start;
            slices.push_back(slice);
        }
        let n = r.count()?;
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            let start = base.wrapping_add(r.iv()?);
            let end = start.wrapping_add(r.iv()?);
            let fired = r.u8()? != 0;
            let m = r.count()?;
            let mut parts = Vec::with_capacity(m);
            for _ in 0..m {
                parts.push(r.slice(interner, start)?);
            }
            sessions.push(Session { start, end, fired, parts });
            base = start;
        }
        let dirty =
            slices.iter().chain(sessions.iter().flat_map(|s| &s.parts)).any(|s| !s.is_empty() && s.acc.is_some());
        Ok(KeyState { key, slices, sessions, next_close, last_event, partition, dirty })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_state_round_trips_through_bytes() {
        use crate::decode::FieldType as T;
        use crate::state::Value;
        let mut interner = Interner::new();
        let item = interner.intern("item-7");
        let mut slice = Slice::new(60_000, &[T::String, T::Int, T::Float, T::Bool, T::String]);
        let row = [Value::Str(item), Value::Int(-3), Value::Float(2.5), Value::Bool(true), Value::Null];
        slice.insert(61_000, &row, "item-7".len() as u64);
        slice.insert(60_500, &[Value::Null, Value::Int(1), Value::Float(0.5), Value::Bool(false), Value::Null], 0);
        let state = KeyState {
            key: "user-1".into(),
            slices: VecDeque::from([slice]),
            sessions: vec![Session {
                start: 0,
                end: 900_000,
                fired: true,
                parts: vec![Slice { start: 0, acc: Some(vec![1, 2, 3]), ..Slice::default() }],
            }],
            next_close: Some(120_000),
            last_event: 61_000,
            partition: 3,
            dirty: false,
        };
        let mut bytes = Vec::new();
        state.encode(&interner, &mut bytes);

        // Decoding into a fresh interner resolves to the same strings.
        let mut other = Interner::new();
        let back = KeyState::decode(&bytes, &mut other);
        let back = back.as_ref().map_err(ToString::to_string);
        let Ok(back) = back else { panic!("decode failed: {back:?}") };
        assert_eq!(back.key, state.key);
        assert_eq!(back.sessions, state.sessions);
        assert_eq!(back.next_close, Some(120_000));
        assert_eq!(back.partition, 3);
        let s = &back.slices[0];
        assert_eq!(s.latest, 61_000);
        assert_eq!(s.times, vec![60_500, 61_000]);
        let Value::Str(sym) = s.row(1)[0] else { panic!("not a string") };
        assert_eq!(other.resolve(sym), "item-7");
        assert_eq!(s.row(1)[1..], state.slices[0].row(1)[1..]);
        assert_eq!(s.row(0), state.slices[0].row(0));
        assert_eq!(s.row(0)[0], Value::Null);
        assert_eq!(KeyState::decode(&bytes[..bytes.len() - 1], &mut other).err(), Some(CodecError::Truncated));
        // A string the key holds twice is written once.
        let mut twice = state;
        let mut second = Slice::new(120_000, &[T::String, T::Int, T::Float, T::Bool, T::String]);
        second.insert(121_000, &row, "item-7".len() as u64);
        twice.slices.push_back(second);
        let mut bytes = Vec::new();
        twice.encode(&interner, &mut bytes);
        assert_eq!(bytes.windows(6).filter(|w| w == b"item-7").count(), 1);
        let back = KeyState::decode(&bytes, &mut other).map_err(|e| e.to_string());
        let Ok(back) = back else { panic!("decode failed: {back:?}") };
        let Value::Str(sym) = back.slices[1].row(0)[0] else { panic!("not a string") };
        assert_eq!(other.resolve(sym), "item-7");
        assert_eq!(back.slices[1].times, vec![121_000]);
        assert_eq!(back.slices[1].text_bytes, 6);
        assert_eq!(KeyState::decode(&[9], &mut other).err(), Some(CodecError::Version(9)));
    }
}
