use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{Chunk, Error, Partitions, Polled, Result, Source};

/// A JSON-lines file read in chunks of `step` lines: a bounded source with
/// one partition (slot 0). Blank lines are skipped; line numbers are kept
/// for the dead-letter output.
pub struct FileSource {
    reader: BufReader<File>,
    partitions: Partitions,
    line: i64,
    step: usize,
    started: bool,
}

impl FileSource {
    pub fn open(path: &Path, step: usize) -> Result<Self> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| Error::File { path: name.clone(), source })?;
        Ok(FileSource {
            reader: BufReader::with_capacity(1 << 20, file),
            partitions: vec![(name.into(), 0)].into(),
            line: 0,
            step: step.max(1),
            started: false,
        })
    }

    /// Read the next chunk; `None` at the end of the file.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        let mut chunk = Chunk::new(self.partitions.clone());
        while chunk.len() < self.step {
            let data = chunk.buffer();
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
            chunk.seal(0, self.line);
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

impl Source for FileSource {
    fn poll(&mut self) -> Result<Polled> {
        if !self.started {
            self.started = true;
            return Ok(Polled::Assigned(vec![0]));
        }
        match self.next_chunk() {
            Ok(Some(chunk)) => Ok(Polled::Chunk { chunk, caught_up: false }),
            Ok(None) => Ok(Polled::End),
            Err(source) => Err(Error::File { path: self.partitions[0].0.to_string(), source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_line_numbers_and_skip_blank_lines() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "a\r\n\n  \nbb\nc\nd")?;
        let mut src = FileSource::open(&path, 2)?;
        let mut seen = Vec::new();
        while let Some(chunk) = src.next_chunk()? {
            assert_eq!(chunk.source(0), path.display().to_string());
            seen.push(
                chunk.records().map(|r| (r.offset, String::from_utf8_lossy(r.bytes).into_owned())).collect::<Vec<_>>(),
            );
        }
        let expect = |v: &[(i64, &str)]| v.iter().map(|(l, s)| (*l, s.to_string())).collect::<Vec<_>>();
        assert_eq!(seen, vec![expect(&[(1, "a"), (4, "bb")]), expect(&[(5, "c"), (6, "d")])]);
        Ok(())
    }
}
