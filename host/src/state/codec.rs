//! Bytes for keyed state: what a RocksDB backend and checkpoints store.
//!
//! Little-endian, length-prefixed, strings written out (symbols are only
//! meaningful within one process).

use std::collections::VecDeque;

use super::{Column, Interner, KeyState, NULL_SYM, Session, Slice};

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
}

const VERSION: u8 = 1;

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn slice(&mut self, s: &Slice, interner: &Interner) {
        self.i64(s.start);
        self.i64(s.latest);
        match &s.acc {
            Some(acc) => {
                self.u8(1);
                self.bytes(acc);
            }
            None => self.u8(0),
        }
        self.u32(s.len() as u32);
        for &t in &s.times {
            self.i64(t);
        }
        self.u32(s.columns.len() as u32);
        for column in &s.columns {
            match column {
                Column::Bools(v) => {
                    self.u8(0);
                    v.iter().for_each(|&b| self.u8(u8::from(b)));
                }
                Column::Ints(v) => {
                    self.u8(1);
                    v.iter().for_each(|&i| self.i64(i));
                }
                Column::Floats(v) => {
                    self.u8(2);
                    v.iter().for_each(|&f| self.i64(f.to_bits() as i64));
                }
                Column::Strs(v) => {
                    self.u8(3);
                    for &sym in v {
                        if sym == NULL_SYM {
                            self.u8(0);
                        } else {
                            self.u8(1);
                            self.bytes(interner.resolve(sym).as_bytes());
                        }
                    }
                }
            }
        }
        self.u32(s.nulls.len() as u32);
        for &(row, column) in &s.nulls {
            self.u32(row);
            self.u32(u32::from(column));
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn slice(&mut self, interner: &mut Interner) -> Result<Slice, CodecError> {
        let start = self.i64()?;
        let latest = self.i64()?;
        let acc = match self.u8()? {
            0 => None,
            1 => Some(self.bytes()?.to_vec()),
            t => return Err(CodecError::BadTag(t)),
        };
        let n = self.u32()? as usize;
        // Bounds from the remaining bytes, so bad lengths cannot allocate.
        let mut times = Vec::with_capacity(n.min(self.0.len() / 8));
        for _ in 0..n {
            times.push(self.i64()?);
        }
        let width = self.u32()? as usize;
        let mut text_bytes = 0u64;
        let mut columns = Vec::with_capacity(width.min(self.0.len()));
        for _ in 0..width {
            columns.push(match self.u8()? {
                0 => Column::Bools((0..n).map(|_| self.u8().map(|b| b != 0)).collect::<Result<_, _>>()?),
                1 => Column::Ints((0..n).map(|_| self.i64()).collect::<Result<_, _>>()?),
                2 => Column::Floats(
                    (0..n).map(|_| self.i64().map(|b| f64::from_bits(b as u64))).collect::<Result<_, _>>()?,
                ),
                3 => {
                    let mut syms = Vec::with_capacity(n.min(self.0.len()));
                    for _ in 0..n {
                        syms.push(match self.u8()? {
                            0 => NULL_SYM,
                            _ => {
                                let text = std::str::from_utf8(self.bytes()?).map_err(|_| CodecError::BadUtf8)?;
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
        let m = self.u32()? as usize;
        let mut nulls = Vec::with_capacity(m.min(self.0.len() / 8));
        for _ in 0..m {
            nulls.push((self.u32()?, self.u32()? as u16));
        }
        Ok(Slice { start, latest, text_bytes, times, columns, nulls, acc, ..Slice::default() })
    }
}

impl KeyState {
    /// Append this key's state to `out`.
    pub fn encode(&self, interner: &Interner, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        w.u8(VERSION);
        w.bytes(self.key.as_bytes());
        w.i64(self.last_event);
        w.u32(self.partition);
        match self.next_close {
            Some(t) => {
                w.u8(1);
                w.i64(t);
            }
            None => w.u8(0),
        }
        w.u32(self.slices.len() as u32);
        for s in &self.slices {
            w.slice(s, interner);
        }
        w.u32(self.sessions.len() as u32);
        for session in &self.sessions {
            w.i64(session.start);
            w.i64(session.end);
            w.u8(u8::from(session.fired));
            w.u32(session.parts.len() as u32);
            for p in &session.parts {
                w.slice(p, interner);
            }
        }
    }

    /// The key of an encoded state, without decoding the rest.
    pub fn peek_key(bytes: &[u8]) -> Result<&str, CodecError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(CodecError::Version(version));
        }
        std::str::from_utf8(r.bytes()?).map_err(|_| CodecError::BadUtf8)
    }

    /// Read what [`KeyState::encode`] wrote, interning strings into
    /// `interner`.
    pub fn decode(bytes: &[u8], interner: &mut Interner) -> Result<KeyState, CodecError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(CodecError::Version(version));
        }
        let key = std::str::from_utf8(r.bytes()?).map_err(|_| CodecError::BadUtf8)?.into();
        let last_event = r.i64()?;
        let partition = r.u32()?;
        let next_close = match r.u8()? {
            0 => None,
            1 => Some(r.i64()?),
            t => return Err(CodecError::BadTag(t)),
        };
        let n = r.u32()? as usize;
        let mut slices = VecDeque::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            slices.push_back(r.slice(interner)?);
        }
        let n = r.u32()? as usize;
        let mut sessions = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let start = r.i64()?;
            let end = r.i64()?;
            let fired = r.u8()? != 0;
            let m = r.u32()? as usize;
            let mut parts = Vec::with_capacity(m.min(1 << 10));
            for _ in 0..m {
                parts.push(r.slice(interner)?);
            }
            sessions.push(Session { start, end, fired, parts });
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
        assert_eq!(KeyState::decode(&[9], &mut other).err(), Some(CodecError::Version(9)));
    }
}
