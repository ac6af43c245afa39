//! Avro's binary encoding, read in place: the primitives of the
//! specification's "Binary Encoding" section over a byte slice, so that
//! strings come out borrowed from the record and values nobody asked for
//! are stepped over without being built.

/// How a datum does not match its writer schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Broken {
    /// The bytes end inside a value.
    Truncated,
    /// A variable-length integer runs past 64 bits.
    LongVarint,
    /// A length or count below zero where none may be.
    NegativeLength(i64),
    /// A union branch or enum symbol the schema does not have.
    NoSuchIndex { what: &'static str, index: i64, count: usize },
    /// A boolean byte other than 0 or 1.
    NotBoolean(u8),
    /// Values nested deeper than a reader follows (a recursive type):
    /// that many levels.
    TooDeep(usize),
    /// An array or map block of more items than bytes left for them.
    TooManyItems(usize),
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Truncated => f.write_str("the datum ends inside a value"),
            Broken::LongVarint => f.write_str("a variable-length integer is longer than 64 bits"),
            Broken::NegativeLength(n) => write!(f, "a length of {n}"),
            Broken::NoSuchIndex { what, index, count } => write!(f, "{what} {index} of {count}"),
            Broken::NotBoolean(b) => write!(f, "a boolean byte of {b}"),
            Broken::TooDeep(levels) => write!(f, "values nested deeper than {levels} levels"),
            Broken::TooManyItems(n) => write!(f, "a block of {n} items, more than the bytes left"),
        }
    }
}

/// A position in a datum.
#[derive(Debug)]
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> usize {
        self.bytes.len()
    }

    /// A zig-zag variable-length `long` (an `int` is the same encoding).
    pub fn long(&mut self) -> Result<i64, Broken> {
        let mut value: u64 = 0;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(if self.bytes.len() >= 10 { Broken::LongVarint } else { Broken::Truncated })
    }

    /// A length or a count: a `long` that may not be negative.
    pub fn length(&mut self) -> Result<usize, Broken> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Broken::NegativeLength(n))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Broken> {
        if n > self.bytes.len() {
            return Err(Broken::Truncated);
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    /// `bytes` or `string`: a length, then that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], Broken> {
        let n = self.length()?;
        self.take(n)
    }

    pub fn boolean(&mut self) -> Result<bool, Broken> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Broken::NotBoolean(b)),
        }
    }

    pub fn float(&mut self) -> Result<f32, Broken> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn double(&mut self) -> Result<f64, Broken> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    /// An index into `count` choices (a union's branch, an enum's symbol).
    pub fn index(&mut self, what: &'static str, count: usize) -> Result<usize, Broken> {
        let index = self.long()?;
        usize::try_from(index).ok().filter(|&i| i < count).ok_or(Broken::NoSuchIndex { what, index, count })
    }

    /// The next block of an array or a map: its item count (0 ends the
    /// value) and, when the writer gave it, its size in bytes, which lets
    /// a reader step over the block whole.
    pub fn block(&mut self) -> Result<(usize, Option<usize>), Broken> {
        let count = self.long()?;
        if count >= 0 {
            return Ok((count as usize, None));
        }
        let size = self.length()?;
        Ok((count.unsigned_abs() as usize, Some(size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's table of zig-zag encodings, and the ends of
    /// the range.
    #[test]
    fn longs_read_as_the_specification_encodes_them() {
        let cases: &[(&[u8], i64)] = &[
            (&[0x00], 0),
            (&[0x01], -1),
            (&[0x02], 1),
            (&[0x03], -2),
            (&[0x04], 2),
            (&[0x7f], -64),
            (&[0x80, 0x01], 64),
            (&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], i64::MAX),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], i64::MIN),
        ];
        for (bytes, value) in cases {
            let mut cursor = Cursor::new(bytes);
            assert_eq!(cursor.long(), Ok(*value), "{bytes:02x?}");
            assert_eq!(cursor.rest(), 0);
        }
        assert_eq!(Cursor::new(&[0x80]).long(), Err(Broken::Truncated));
        assert_eq!(Cursor::new(&[0x80; 11]).long(), Err(Broken::LongVarint));
        assert_eq!(Cursor::new(&[0x01]).length(), Err(Broken::NegativeLength(-1)));
        assert_eq!(Cursor::new(&[0x04, b'a']).bytes(), Err(Broken::Truncated));
        assert_eq!(Cursor::new(&[0x02]).boolean(), Err(Broken::NotBoolean(2)));
        assert_eq!(
            Cursor::new(&[0x04]).index("branch", 2),
            Err(Broken::NoSuchIndex { what: "branch", index: 2, count: 2 })
        );
    }
}
