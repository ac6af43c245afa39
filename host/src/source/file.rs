use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use super::Record;

/// A JSON-lines file read in chunks of `step` lines: a bounded source with
/// one partition. Blank lines are skipped; line numbers are kept for the
/// dead-letter output.
pub struct FileSource {
    reader: BufReader<File>,
    name: Arc<str>,
    line: i64,
    step: usize,
}

/// Lines read in one step; shared by the workers.
#[derive(Debug, Default)]
pub struct Chunk {
    pub source: Arc<str>,
    data: Vec<u8>,
    /// (line number, end offset in `data`) of each record.
    spans: Vec<(i64, usize)>,
}

impl Chunk {
    /// The chunk's records.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let mut start = 0;
        self.spans.iter().map(move |&(line, end)| {
            let bytes = &self.data[start..end];
            start = end;
            Record { partition: 0, offset: line, bytes }
        })
    }

    /// Record `i` of the chunk.
    pub fn record(&self, i: usize) -> Option<Record<'_>> {
        let &(line, end) = self.spans.get(i)?;
        let start = if i == 0 { 0 } else { self.spans[i - 1].1 };
        Some(Record { partition: 0, offset: line, bytes: &self.data[start..end] })
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

impl FileSource {
    pub fn open(path: &Path, step: usize) -> std::io::Result<Self> {
        let file = File::open(path)?;
        Ok(FileSource {
            reader: BufReader::with_capacity(1 << 20, file),
            name: path.display().to_string().into(),
            line: 0,
            step: step.max(1),
        })
    }

    /// Read the next chunk; `None` at the end of the file.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        let mut chunk = Chunk { source: self.name.clone(), ..Chunk::default() };
        let data = &mut chunk.data;
        while chunk.spans.len() < self.step {
            let start = data.len();
            if self.reader.read_until(b'\n', data)? == 0 {
                break;
            }
            self.line += 1;
            while data.len() > start && matches!(data[data.len() - 1], b'\n' | b'\r') {
                data.pop();
            }
            if data[start..].iter().all(u8::is_ascii_whitespace) {
                data.truncate(start);
                continue;
            }
            chunk.spans.push((self.line, data.len()));
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_line_numbers_and_skip_blank_lines() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "a\r\n\n  \nbb\nc\nd")?;
        let mut src = FileSource::open(&path, 2)?;
        let mut seen = Vec::new();
        while let Some(chunk) = src.next_chunk()? {
            assert_eq!(&*chunk.source, path.display().to_string());
            seen.push(
                chunk.records().map(|r| (r.offset, String::from_utf8_lossy(r.bytes).into_owned())).collect::<Vec<_>>(),
            );
        }
        let expect = |v: &[(i64, &str)]| v.iter().map(|(l, s)| (*l, s.to_string())).collect::<Vec<_>>();
        assert_eq!(seen, vec![expect(&[(1, "a"), (4, "bb")]), expect(&[(5, "c"), (6, "d")])]);
        Ok(())
    }
}
