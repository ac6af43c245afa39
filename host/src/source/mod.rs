//! Sources of raw events. A source yields chunks of records; the watermark
//! advances between chunks.

mod file;

pub use file::{Chunk, FileSource};

/// One raw record and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub partition: usize,
    /// Kafka offset, or 1-based line number for files.
    pub offset: i64,
    pub bytes: &'a [u8],
}
