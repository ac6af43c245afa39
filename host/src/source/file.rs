use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::Record;

/// A JSON-lines file read in chunks of `step` lines: a bounded source with
/// one partition. Blank lines are skipped; line numbers are kept for the
/// dead-letter output.
pub struct FileSource {
    reader: BufReader<File>,
    name: String,
    line: i64,
    step: usize,
    data: Vec<u8>,
    /// (line number, end offset in `data`) of each record of the chunk.
    spans: Vec<(i64, usize)>,
}

impl FileSource {
    pub fn open(path: &Path, step: usize) -> std::io::Result<Self> {
        let file = File::open(path)?;
        Ok(FileSource {
            reader: BufReader::with_capacity(1 << 20, file),
            name: path.display().to_string(),
            line: 0,
            step: step.max(1),
            data: Vec::new(),
            spans: Vec::new(),
        })
    }

    /// The source's name in dead letters and late events.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Read the next chunk; `false` at the end of the file.
    pub fn next_chunk(&mut self) -> std::io::Result<bool> {
        self.data.clear();
        self.spans.clear();
        while self.spans.len() < self.step {
            let start = self.data.len();
            if self.reader.read_until(b'\n', &mut self.data)? == 0 {
                break;
            }
            self.line += 1;
            while self.data.len() > start && matches!(self.data[self.data.len() - 1], b'\n' | b'\r') {
                self.data.pop();
            }
            if self.data[start..].iter().all(u8::is_ascii_whitespace) {
                self.data.truncate(start);
                continue;
            }
            self.spans.push((self.line, self.data.len()));
        }
        Ok(!self.spans.is_empty())
    }

    /// Records of the current chunk.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let mut start = 0;
        self.spans.iter().map(move |&(line, end)| {
            let bytes = &self.data[start..end];
            start = end;
            Record { partition: 0, offset: line, bytes }
        })
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
        while src.next_chunk()? {
            let chunk: Vec<(i64, String)> =
                src.records().map(|r| (r.offset, String::from_utf8_lossy(r.bytes).into_owned())).collect();
            seen.push(chunk);
        }
        let expect = |v: &[(i64, &str)]| v.iter().map(|(l, s)| (*l, s.to_string())).collect::<Vec<_>>();
        assert_eq!(seen, vec![expect(&[(1, "a"), (4, "bb")]), expect(&[(5, "c"), (6, "d")])]);
        Ok(())
    }
}
