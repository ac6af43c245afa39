use std::sync::Arc;

use sluice_sink_api::Position;

/// The names of a source's partition slots: (topic or file, partition).
pub type Partitions = Arc<[(Arc<str>, i32)]>;

/// One raw record and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The partition's slot.
    pub slot: usize,
    /// Kafka offset, or 1-based line number for files.
    pub offset: i64,
    pub bytes: &'a [u8],
}

/// Records read in one step, back to back in one buffer; shared by the
/// workers.
#[derive(Debug, Default)]
pub struct Chunk {
    partitions: Partitions,
    data: Vec<u8>,
    /// (slot, offset, end in `data`) of each record.
    spans: Vec<(u32, i64, usize)>,
    /// Records longer than the source's limit, ascending: (record, full
    /// size). Only their first bytes are kept, for the dead letter.
    oversize: Vec<(u32, u64)>,
}

impl Chunk {
    pub fn new(partitions: Partitions) -> Self {
        Chunk { partitions, data: Vec::new(), spans: Vec::new(), oversize: Vec::new() }
    }

    /// Append a record; one longer than `limit` bytes keeps only its first
    /// bytes and is marked as too large.
    pub fn push(&mut self, slot: usize, offset: i64, bytes: &[u8], limit: usize) {
        if bytes.len() > limit {
            let keep = bytes.len().min(sluice_sink_api::MAX_RAW_BYTES);
            self.oversize.push((self.spans.len() as u32, bytes.len() as u64));
            self.data.extend_from_slice(&bytes[..keep]);
        } else {
            self.data.extend_from_slice(bytes);
        }
        self.spans.push((slot as u32, offset, self.data.len()));
    }

    /// The record being sealed next (see [`Chunk::seal`]) was longer than
    /// the limit: `size` bytes, of which the buffer holds the first.
    pub(super) fn mark_oversize(&mut self, size: u64) {
        self.oversize.push((self.spans.len() as u32, size));
    }

    /// Records too large to decode: (record, full size), ascending.
    pub fn oversize(&self) -> &[(u32, u64)] {
        &self.oversize
    }

    /// Append a record whose bytes were just written to [`Chunk::buffer`].
    pub(super) fn seal(&mut self, slot: usize, offset: i64) {
        self.spans.push((slot as u32, offset, self.data.len()));
    }

    /// The buffer the next record's bytes go to.
    pub(super) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// The chunk's records.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let mut start = 0;
        self.spans.iter().map(move |&(slot, offset, end)| {
            let bytes = &self.data[start..end];
            start = end;
            Record { slot: slot as usize, offset, bytes }
        })
    }

    /// Record `i` of the chunk.
    pub fn record(&self, i: usize) -> Option<Record<'_>> {
        let &(slot, offset, end) = self.spans.get(i)?;
        let start = if i == 0 { 0 } else { self.spans[i - 1].2 };
        Some(Record { slot: slot as usize, offset, bytes: &self.data[start..end] })
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
