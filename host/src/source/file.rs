use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{Chunk, Error, Partitions, Polled, Result, Source};

/// A JSON-lines file read in chunks of `step` lines: a bounded source with
/// one partition (slot 0). Blank lines are skipped; line numbers are kept
/// for the dead-letter output. A line longer than the limit is read past
/// without being held whole: the chunk keeps its first bytes, marked as too
/// large.
pub struct FileSource {
    reader: BufReader<File>,
    partitions: Partitions,
    line: i64,
    step: usize,
    max_line: usize,
    started: bool,
    /// The file's size when opened, and the bytes read so far.
    size: u64,
    read: u64,
}

impl FileSource {
    /// Open `path`, a regular file (a device or a pipe is refused: it may
    /// never end).
    pub fn open(path: &Path, step: usize, max_line: usize) -> Result<Self> {
        let name = path.display().to_string();
        let err = |source| Error::File { path: name.clone(), source };
        let file = File::open(path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(Error::File { path: name.clone(), source: std::io::Error::other("not a regular file") });
        }
        Ok(FileSource {
            reader: BufReader::with_capacity(1 << 20, file),
            partitions: vec![(name.into(), 0)].into(),
            line: 0,
            step: step.max(1),
            max_line,
            started: false,
            size: meta.len(),
            read: 0,
        })
    }

    /// Read the next chunk; `None` at the end of the file.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        let mut chunk = Chunk::new(self.partitions.clone());
        while chunk.len() < self.step {
            let start = chunk.buffer().len();
            let Some(size) = read_line(&mut self.reader, chunk.buffer(), self.max_line)? else {
                break;
            };
            self.line += 1;
            let data = chunk.buffer();
            while data.len() > start && matches!(data[data.len() - 1], b'\n' | b'\r') {
                data.pop();
            }
            if size <= self.max_line as u64 && data[start..].iter().all(u8::is_ascii_whitespace) {
                data.truncate(start);
                continue;
            }
            if size > self.max_line as u64 {
                chunk.mark_oversize(size);
            }
            chunk.seal(0, self.line);
        }
        // Where the buffered reader is in the file (no read, no discard).
        if let Ok(at) = std::io::Seek::stream_position(&mut self.reader) {
            self.read = at;
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// Append the next line (its newline included) to `out`; of a line longer
/// than `limit` bytes, only the first [`sluice_sink_api::MAX_RAW_BYTES`]
/// (what its dead letter keeps; [`Chunk::push`] keeps the same). Returns
/// the line's size without its newline, or `None` at the end of the input.
fn read_line(reader: &mut impl BufRead, out: &mut Vec<u8>, limit: usize) -> std::io::Result<Option<u64>> {
    let start = out.len();
    let mut size = 0u64;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((out.len() > start).then_some(size));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        size += (take - usize::from(done)) as u64;
        let held = out.len() - start;
        if size > limit as u64 {
            // Too long: keep the head for the dead letter, skip the rest.
            let room = sluice_sink_api::MAX_RAW_BYTES.saturating_sub(held);
            out.extend_from_slice(&buf[..take.min(room)]);
        } else {
            out.extend_from_slice(&buf[..take]);
        }
        reader.consume(take);
        if done {
            return Ok(Some(size));
        }
    }
}

impl Source for FileSource {
    fn progress(&self) -> Option<(u64, u64)> {
        Some((self.read, self.size.max(self.read)))
    }

    fn poll(&mut self) -> Result<Polled> {
        if !self.started {
            self.started = true;
            let (topic, partition) = self.partitions.first().cloned().unwrap_or_else(|| ("".into(), 0));
            return Ok(Polled::Assigned(vec![super::Assignment {
                slot: 0,
                topic,
                partition,
                start: 0,
                restored: None,
            }]));
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
        let mut src = FileSource::open(&path, 2, 1 << 20)?;
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

    /// A line over the limit is marked with its full size and keeps only
    /// its head; the lines around it are whole.
    #[test]
    fn a_long_line_is_marked_and_read_past() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("in.jsonl");
        let long = "x".repeat(sluice_sink_api::MAX_RAW_BYTES + 5_000);
        std::fs::write(&path, format!("short\n{long}\n   \nafter"))?;
        // A small read buffer, so the long line spans many fills.
        let mut src = FileSource::open(&path, 10, 100)?;
        src.reader = BufReader::with_capacity(4096, File::open(&path)?);
        let chunk = src.next_chunk()?.ok_or_else(|| anyhow::anyhow!("no chunk"))?;
        let records: Vec<(i64, usize)> = chunk.records().map(|r| (r.offset, r.bytes.len())).collect();
        assert_eq!(records, vec![(1, 5), (2, sluice_sink_api::MAX_RAW_BYTES), (4, 5)]);
        assert_eq!(chunk.oversize(), &[(1, long.len() as u64)]);
        Ok(())
    }

    #[test]
    fn a_device_is_not_a_source() {
        let err = FileSource::open(Path::new("/dev/zero"), 10, 100).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("cannot read /dev/zero: not a regular file"));
    }
}
