//! The records a source reads in one step ([`Chunk`]), as the decoder and
//! the workers see them: a source fills chunks, the decoder reads them.

use std::sync::Arc;

use sluice_sink_api::Position;

/// The names of a source's partition slots: (topic or file, partition).
pub type Partitions = Arc<[(Arc<str>, i32)]>;

/// One raw record, what came with it, and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The partition's slot.
    pub slot: usize,
    /// Kafka offset, or 1-based line number for files.
    pub offset: i64,
    /// The payload: a Kafka record's value, a file's line.
    pub bytes: &'a [u8],
    /// What a Kafka record carries besides its value; nothing for a line.
    pub metadata: Metadata<'a>,
}

/// A Kafka record's key, timestamp and headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metadata<'a> {
    /// The record's key, if it has one.
    pub key: Option<&'a [u8]>,
    /// The record's timestamp (its producer's CreateTime, or the broker's
    /// LogAppendTime), milliseconds since the epoch, if it has one.
    pub timestamp: Option<i64>,
    pub headers: &'a [Header],
}

/// A record header: a name and a value (which may be null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: Box<str>,
    pub value: Option<Box<[u8]>>,
}

/// Where one record is in a [`Chunk`].
#[derive(Debug, Clone, Copy)]
struct Span {
    slot: u32,
    offset: i64,
    /// The end of its payload in `data`; its key, when it has one,
    /// follows, up to `end`.
    payload_end: usize,
    end: usize,
    has_key: bool,
    timestamp: Option<i64>,
    /// The end of its headers in `headers`.
    headers_end: u32,
}

/// A record the source hands out only to be dead-lettered: only its
/// first bytes (at most [`sluice_sink_api::MAX_RAW_BYTES`]) are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Longer than the source's limit: `size` bytes.
    TooLarge { size: u64 },
    /// Bytes the source could not frame as records (a corrupt block of an
    /// Avro container file): `size` of them, why (`message`), and a
    /// stable name for it (`class`).
    Broken { size: u64, class: &'static str, message: String },
}

/// Records read in one step, back to back in one buffer; shared by the
/// workers.
#[derive(Debug, Default)]
pub struct Chunk {
    partitions: Partitions,
    /// Each record's payload and then its key.
    data: Vec<u8>,
    spans: Vec<Span>,
    headers: Vec<Header>,
    /// Records only to be dead-lettered, ascending by record.
    unreadable: Vec<(u32, Unreadable)>,
    /// The schema every record was written with, when the source knows it
    /// (an Avro container file's header): its JSON text.
    writer_schema: Option<Arc<str>>,
}

impl Chunk {
    pub fn new(partitions: Partitions) -> Self {
        Chunk {
            partitions,
            data: Vec::new(),
            spans: Vec::new(),
            headers: Vec::new(),
            unreadable: Vec::new(),
            writer_schema: None,
        }
    }

    /// The chunk with records all written with `schema`.
    pub fn with_writer_schema(mut self, schema: Arc<str>) -> Self {
        self.writer_schema = Some(schema);
        self
    }

    /// The schema the records were written with, if the source knows it.
    pub fn writer_schema(&self) -> Option<&Arc<str>> {
        self.writer_schema.as_ref()
    }

    /// Append a record with its key, timestamp and headers; one whose
    /// payload is longer than `limit` bytes keeps only its first bytes and
    /// is marked as too large.
    pub fn push(&mut self, slot: usize, offset: i64, bytes: &[u8], metadata: Metadata<'_>, limit: usize) {
        if bytes.len() > limit {
            let keep = bytes.len().min(sluice_sink_api::MAX_RAW_BYTES);
            self.mark(Unreadable::TooLarge { size: bytes.len() as u64 });
            self.data.extend_from_slice(&bytes[..keep]);
        } else {
            self.data.extend_from_slice(bytes);
        }
        let payload_end = self.data.len();
        if let Some(key) = metadata.key {
            self.data.extend_from_slice(key);
        }
        self.headers.extend_from_slice(metadata.headers);
        self.spans.push(Span {
            slot: slot as u32,
            offset,
            payload_end,
            end: self.data.len(),
            has_key: metadata.key.is_some(),
            timestamp: metadata.timestamp,
            headers_end: self.headers.len() as u32,
        });
    }

    /// The record added next (by [`Chunk::seal`] or [`Chunk::push_unreadable`])
    /// is only to be dead-lettered, for `why`.
    pub(crate) fn mark(&mut self, why: Unreadable) {
        self.unreadable.push((self.spans.len() as u32, why));
    }

    /// Append bytes the source could not frame as records, as one record
    /// only to be dead-lettered (keeping its first bytes).
    pub(crate) fn push_unreadable(&mut self, slot: usize, offset: i64, bytes: &[u8], why: Unreadable) {
        self.mark(why);
        let keep = bytes.len().min(sluice_sink_api::MAX_RAW_BYTES);
        self.data.extend_from_slice(&bytes[..keep]);
        self.seal(slot, offset);
    }

    /// Records only to be dead-lettered, with why, ascending.
    pub fn unreadable(&self) -> &[(u32, Unreadable)] {
        &self.unreadable
    }

    /// Append a record, without metadata, whose bytes were just written
    /// to [`Chunk::buffer`].
    pub(crate) fn seal(&mut self, slot: usize, offset: i64) {
        let end = self.data.len();
        let headers_end = self.headers.len() as u32;
        let span =
            Span { slot: slot as u32, offset, payload_end: end, end, has_key: false, timestamp: None, headers_end };
        self.spans.push(span);
    }

    /// The buffer the next record's bytes go to.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// The chunk's records.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        (0..self.spans.len()).filter_map(|i| self.record(i))
    }

    /// Record `i` of the chunk.
    pub fn record(&self, i: usize) -> Option<Record<'_>> {
        let span = self.spans.get(i)?;
        let previous = i.checked_sub(1).and_then(|p| self.spans.get(p));
        let (start, headers_start) = previous.map_or((0, 0), |p| (p.end, p.headers_end as usize));
        let metadata = Metadata {
            key: span.has_key.then(|| &self.data[span.payload_end..span.end]),
            timestamp: span.timestamp,
            headers: &self.headers[headers_start..span.headers_end as usize],
        };
        Some(Record {
            slot: span.slot as usize,
            offset: span.offset,
            bytes: &self.data[start..span.payload_end],
            metadata,
        })
    }

    /// Where a record came from.
    pub fn position(&self, record: &Record<'_>) -> Position {
        let (source, partition) = self.partitions.get(record.slot).cloned().unwrap_or_else(|| ("?".into(), -1));
        Position { source: source.to_string(), partition, offset: record.offset }
    }

    /// Name of a slot's topic or file.
    pub fn source(&self, slot: usize) -> &str {
        self.partitions.get(slot).map_or("?", |(s, _)| s)
    }

    /// All records' bytes, back to back (decoded strings point into it).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record gets back its own payload, key, timestamp and headers,
    /// whatever its neighbours carry; a line has none.
    #[test]
    fn records_keep_their_key_timestamp_and_headers() {
        let mut chunk = Chunk::new(vec![("clicks".into(), 0), ("clicks".into(), 1)].into());
        let trace = [Header { name: "trace".into(), value: Some(b"t-1".as_slice().into()) }];
        let nulls = [Header { name: "a".into(), value: None }, Header { name: "b".into(), value: Some([0u8].into()) }];
        chunk.push(0, 10, b"{\"a\":1}", Metadata { key: Some(b"u1"), timestamp: Some(1_000), headers: &trace }, 100);
        chunk.push(1, 11, b"{}", Metadata::default(), 100);
        chunk.buffer().extend_from_slice(b"line");
        chunk.seal(0, 3);
        chunk.push(1, 12, b"0123456789", Metadata { key: Some(b""), timestamp: Some(-5), headers: &nulls }, 4);
        let got: Vec<_> = chunk
            .records()
            .map(|r| {
                let m = r.metadata;
                (r.slot, r.offset, r.bytes.to_vec(), m.key.map(<[u8]>::to_vec), m.timestamp, m.headers.to_vec())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 10, b"{\"a\":1}".to_vec(), Some(b"u1".to_vec()), Some(1_000), trace.to_vec()),
                (1, 11, b"{}".to_vec(), None, None, vec![]),
                (0, 3, b"line".to_vec(), None, None, vec![]),
                (1, 12, b"0123456789".to_vec(), Some(vec![]), Some(-5), nulls.to_vec()),
            ]
        );
        assert_eq!(chunk.unreadable(), &[(3, Unreadable::TooLarge { size: 10 })]);
        assert_eq!(chunk.record(1).map(|r| r.bytes), Some(&b"{}"[..]));
        assert!(chunk.record(4).is_none());
    }
}
