//! A file source: JSON lines, or an Avro object container file
//! ([`container`]), one record per line or datum.

mod container;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{Access, NamedPath, Problem};

use super::component::{Component, SourceComponent, check_step};
use super::{Chunk, Error, Metadata, Partitions, Polled, Result, Source, Unreadable};
use crate::checkpoint::{Restored, Store};
use crate::position::PartitionId;
use container::{Block, Container};

/// A JSON-lines file, one event per line, or (with `events.format: avro`)
/// an Avro object container file, one event per datum: a bounded input.
/// At its end a final watermark fires every remaining window. With
/// `checkpoint` (a `sluice serve` host takes them of every pipeline), a
/// run resumes at the line (or block) the newest checkpoint holds, with
/// its state: a file read to its end is not read again.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Path of the file, relative to the working directory. A file that
    /// starts as an Avro object container file does (`Obj` and byte 1) is
    /// read as one: its header's writer schema, its codec (`null`,
    /// `deflate`, `snappy`, `zstandard`).
    pub path: PathBuf,
    /// Lines read per step. The watermark advances between steps (as
    /// Flink's periodic watermarks do), so 1 gives a watermark after
    /// every event. An Avro container file is read a block at a time: a
    /// step is whole blocks, at least `step` records.
    #[serde(default = "default_step")]
    pub step: usize,
}

fn default_step() -> usize {
    4096
}

impl Component for FileSourceConfig {
    fn check(&self) -> Vec<Problem> {
        let mut found: Vec<Problem> = check_step(self.step).into_iter().collect();
        if self.path.as_os_str().is_empty() {
            found.push(Problem::new("path", "the path is empty", "name the JSON-lines or Avro file to read"));
        }
        found
    }

    fn paths(&mut self) -> Vec<NamedPath<'_>> {
        vec![NamedPath { field: "path", path: &mut self.path, access: Access::ReadFile }]
    }
}

impl SourceComponent for FileSourceConfig {
    fn bounded(&self) -> bool {
        true
    }

    fn open(&self, max_event_bytes: usize, checkpoints: Option<Arc<Store>>) -> Result<Box<dyn Source>> {
        Ok(Box::new(FileSource::open(&self.path, self.step, max_event_bytes, checkpoints)?))
    }
}

/// A JSON-lines file read in chunks of `step` lines: a bounded source with
/// one partition (slot 0). Blank lines are skipped; line numbers are kept
/// for the dead-letter output. A line longer than the limit is read past
/// without being held whole: the chunk keeps its first bytes, marked as too
/// large.
///
/// With checkpoints, a checkpoint keeps the next line and the byte it
/// starts at, and a run that restores one seeks there (Flink's file
/// source keeps a split's offset the same way): a paused, stopped or
/// restarted pipeline goes on where it was, and one that read its file to
/// the end stays at the end.
pub struct FileSource {
    reader: BufReader<File>,
    partitions: Partitions,
    /// The line (or an Avro file's record) last read, 1-based.
    line: i64,
    /// An Avro container file's header; `None` for JSON lines.
    container: Option<Container>,
    step: usize,
    max_line: usize,
    started: bool,
    /// The file's size when opened.
    size: u64,
    /// Bytes read so far: where the next line starts.
    consumed: u64,
    /// The byte after the last line handed out in a chunk: where a run
    /// that restores this one's checkpoint resumes. (Blank lines after it
    /// are read again then, and skipped again.)
    resume: u64,
    /// The checkpoint's state and position, handed out with the
    /// assignment.
    restored: Option<Restored>,
}

impl FileSource {
    /// Open `path`, a regular file (a device or a pipe is refused: it may
    /// never end). With `checkpoints`, the newest checkpoint that holds
    /// this file says where to start, and with what state.
    pub fn open(path: &Path, step: usize, max_line: usize, checkpoints: Option<Arc<Store>>) -> Result<Self> {
        let name = path.display().to_string();
        let err = |source| Error::File { path: name.clone(), source };
        let file = File::open(path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(Error::File { path: name.clone(), source: std::io::Error::other("not a regular file") });
        }
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let container = container(&mut reader, meta.len())
            .map_err(err)?
            .map_err(|why| Error::File { path: name.clone(), source: std::io::Error::other(why) })?;
        let start = container.as_ref().map_or(0, |c| c.header_end);
        let mut source = FileSource {
            reader,
            partitions: vec![(name.as_str().into(), 0)].into(),
            line: 0,
            container,
            step: step.max(1),
            max_line,
            started: false,
            size: meta.len(),
            consumed: start,
            resume: start,
            restored: None,
        };
        if let Some(store) = checkpoints {
            let wanted = PartitionId::new(name.clone(), 0);
            let mut found = store.restore(std::slice::from_ref(&wanted)).map_err(|e| Error::Restore(Box::new(e)))?;
            if let Some(restored) = found.remove(&wanted) {
                source.seek_to(&restored)?;
                source.restored = Some(restored);
            }
        }
        Ok(source)
    }

    /// Go to where a checkpoint says the next line starts, making sure
    /// the file is still the one it was taken of (long enough, a line
    /// starting there).
    fn seek_to(&mut self, restored: &Restored) -> Result<()> {
        let name = self.partitions[0].0.to_string();
        let next_line = restored.state.position.offset.max(1);
        if self.container.is_some() {
            return self.seek_to_block(restored);
        }
        let Some(byte) = restored.state.position.byte_offset else {
            // A checkpoint that kept only the line: read up to it.
            let mut skipped = Vec::new();
            while self.line + 1 < next_line {
                skipped.clear();
                match read_line(&mut self.reader, &mut skipped, 0)
                    .map_err(|source| Error::File { path: name.clone(), source })?
                {
                    Some((_, consumed)) => {
                        self.line += 1;
                        self.consumed += consumed;
                    }
                    None => break,
                }
            }
            self.resume = self.consumed;
            return Ok(());
        };
        let replaced = |why: String| {
            Error::Position(format!(
                "{name}: checkpoint {} says reading stopped at line {next_line} (byte {byte}), but {why}: was the \
                 file replaced? Start over to read it from the beginning (sluice run --fresh, or ?fresh=true)",
                restored.from
            ))
        };
        if byte > self.size {
            return Err(replaced(format!("the file has {} bytes now", self.size)));
        }
        let io = |source| Error::File { path: name.clone(), source };
        if byte > 0 && byte < self.size {
            // The byte before a line's start ends the line before it.
            let mut before = [0u8; 1];
            self.reader.seek(SeekFrom::Start(byte - 1)).map_err(io)?;
            std::io::Read::read_exact(&mut self.reader, &mut before).map_err(io)?;
            if before[0] != b'\n' {
                return Err(replaced("no line starts there".into()));
            }
        }
        self.reader.seek(SeekFrom::Start(byte)).map_err(io)?;
        (self.line, self.consumed, self.resume) = (next_line - 1, byte, byte);
        Ok(())
    }

    /// Go to the block a checkpoint says the next record starts (a
    /// container file's checkpoints are taken between blocks), making
    /// sure a block starts there.
    fn seek_to_block(&mut self, restored: &Restored) -> Result<()> {
        let name = self.partitions[0].0.to_string();
        let Some(container) = &self.container else { return Ok(()) };
        let next = restored.state.position.offset.max(1);
        let byte = restored.state.position.byte_offset.unwrap_or(0);
        let io = |source| Error::File { path: name.clone(), source };
        let mut before = [0u8; 16];
        if (container.header_end + 16..=self.size).contains(&byte) {
            self.reader.seek(SeekFrom::Start(byte - 16)).map_err(io)?;
            self.reader.read_exact(&mut before).map_err(io)?;
        }
        if byte > self.size || !container.starts_block(byte, &before) {
            return Err(Error::Position(format!(
                "{name}: checkpoint {} says reading stopped at record {next} (byte {byte}), but no block of the \
                 Avro file starts there: was the file replaced? Start over to read it from the beginning \
                 (sluice run --fresh, or ?fresh=true)",
                restored.from
            )));
        }
        self.reader.seek(SeekFrom::Start(byte)).map_err(io)?;
        (self.line, self.consumed, self.resume) = (next - 1, byte, byte);
        Ok(())
    }

    /// Read the next chunk; `None` at the end of the file.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        if self.container.is_some() {
            return self.next_blocks();
        }
        let mut chunk = Chunk::new(self.partitions.clone());
        while chunk.len() < self.step {
            let start = chunk.buffer().len();
            let Some((size, consumed)) = read_line(&mut self.reader, chunk.buffer(), self.max_line)? else {
                break;
            };
            self.line += 1;
            self.consumed += consumed;
            let data = chunk.buffer();
            while data.len() > start && matches!(data[data.len() - 1], b'\n' | b'\r') {
                data.pop();
            }
            if size <= self.max_line as u64 && data[start..].iter().all(u8::is_ascii_whitespace) {
                data.truncate(start);
                continue;
            }
            if size > self.max_line as u64 {
                chunk.mark(Unreadable::TooLarge { size });
            }
            chunk.seal(0, self.line);
            self.resume = self.consumed;
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

impl FileSource {
    /// Whole blocks of an Avro container file, at least `step` records;
    /// `None` at the end of the file.
    fn next_blocks(&mut self) -> std::io::Result<Option<Chunk>> {
        let Some(container) = &self.container else { return Ok(None) };
        let mut chunk = Chunk::new(self.partitions.clone()).with_writer_schema(container.writer_schema.clone());
        while chunk.len() < self.step {
            let at = self.consumed;
            let Some(block) = container.next_block(&mut self.reader, at, self.size)? else { break };
            let before = self.line;
            let broken = |first: i64, count: i64, why: String| {
                let records = match count {
                    0 | 1 => format!("record {first}"),
                    n => format!("records {first} to {}", first + n - 1),
                };
                format!("the block at byte {at} ({records}): {why}")
            };
            let (taken, count) = match block {
                Block::Datums { count, data, taken } => {
                    let container::Cut { datums, rest } = container.datums(count, &data);
                    for datum in &datums {
                        self.line += 1;
                        chunk.push(0, self.line, datum, Metadata::default(), self.max_line);
                    }
                    if let Some((bytes, why)) = rest {
                        let message = broken(self.line + 1, count - datums.len() as i64, why);
                        self.line += 1;
                        let why = Unreadable::Broken { size: bytes.len() as u64, class: AVRO_CONTAINER, message };
                        chunk.push_unreadable(0, self.line, bytes, why);
                    }
                    (taken, count)
                }
                Block::Unreadable { count, raw, taken, why } => {
                    let message = broken(self.line + 1, count, why);
                    self.line += 1;
                    let why = Unreadable::Broken { size: raw.len() as u64, class: AVRO_CONTAINER, message };
                    chunk.push_unreadable(0, self.line, &raw, why);
                    (taken, count)
                }
                Block::Stray { head, taken, why } => {
                    let message = format!("{taken} bytes at byte {at} are not a block: {why}");
                    self.line += 1;
                    chunk.push_unreadable(
                        0,
                        self.line,
                        &head,
                        Unreadable::Broken { size: taken, class: AVRO_CONTAINER, message },
                    );
                    (taken, 0)
                }
            };
            // The records a broken block holds keep their numbers: those
            // after it are numbered as in a sound file.
            self.line = self.line.max(before + count);
            self.consumed += taken;
            self.resume = self.consumed;
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// The writer schema of the Avro object container file at `path`: `None`
/// when the file is not one; the inner error says why one cannot be
/// read.
pub fn avro_container_schema(path: &Path) -> std::io::Result<Option<Result<Arc<str>, String>>> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let found = container(&mut BufReader::new(file), size)?;
    Ok(found.transpose().map(|c| c.map(|c| c.writer_schema)))
}

/// The class of a dead letter holding bytes of an Avro container file
/// that are not readable records.
const AVRO_CONTAINER: &str = "avro_container";

/// The header of `reader`'s file (of `size` bytes) if it is an Avro
/// container file (the reader is after it), or `None` (the reader is at
/// the start); the inner error says why a container file cannot be read.
fn container(reader: &mut BufReader<File>, size: u64) -> std::io::Result<Result<Option<Container>, String>> {
    let mut magic = [0u8; 4];
    if size < magic.len() as u64 {
        return Ok(Ok(None));
    }
    reader.read_exact(&mut magic)?;
    if magic != container::MAGIC {
        reader.seek(SeekFrom::Start(0))?;
        return Ok(Ok(None));
    }
    Ok(Container::read_header(reader).map(Some).map_err(|why| format!("an Avro container file, but {why}")))
}

/// Append the next line (its newline included) to `out`; of a line longer
/// than `limit` bytes, only the first [`sluice_sink_api::MAX_RAW_BYTES`]
/// (what its dead letter keeps; [`Chunk::push`] keeps the same). Returns
/// the line's size without its newline and the bytes read (with it), or
/// `None` at the end of the input.
fn read_line(reader: &mut impl BufRead, out: &mut Vec<u8>, limit: usize) -> std::io::Result<Option<(u64, u64)>> {
    let start = out.len();
    let (mut size, mut consumed) = (0u64, 0u64);
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((consumed > 0).then_some((size, consumed)));
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
        consumed += take as u64;
        if done {
            return Ok(Some((size, consumed)));
        }
    }
}

impl Source for FileSource {
    fn progress(&self) -> Option<(u64, u64)> {
        Some((self.consumed, self.size.max(self.consumed)))
    }

    fn byte_offset(&self, _slot: usize) -> Option<u64> {
        Some(self.resume)
    }

    fn poll(&mut self) -> Result<Polled> {
        if !self.started {
            self.started = true;
            let (topic, partition) = self.partitions.first().cloned().unwrap_or_else(|| ("".into(), 0));
            let restored = self.restored.take();
            if let Some(r) = &restored {
                tracing::info!(file = %topic, line = r.state.position.offset, byte = self.resume, from = %r.from, "resuming where a checkpoint stopped");
            }
            return Ok(Polled::Assigned(vec![super::Assignment {
                slot: 0,
                partition: PartitionId::new(topic.as_ref(), partition),
                // The next line, 1-based.
                start: self.line + 1,
                restored,
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
        let mut src = FileSource::open(&path, 2, 1 << 20, None)?;
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
        let mut src = FileSource::open(&path, 10, 100, None)?;
        src.reader = BufReader::with_capacity(4096, File::open(&path)?);
        let chunk = src.next_chunk()?.ok_or_else(|| anyhow::anyhow!("no chunk"))?;
        let records: Vec<(i64, usize)> = chunk.records().map(|r| (r.offset, r.bytes.len())).collect();
        assert_eq!(records, vec![(1, 5), (2, sluice_sink_api::MAX_RAW_BYTES), (4, 5)]);
        assert_eq!(chunk.unreadable(), &[(1, Unreadable::TooLarge { size: long.len() as u64 })]);
        Ok(())
    }

    /// A checkpoint's line and byte: the next run reads on from there with
    /// the same line numbers; a file that no longer fits it is an error
    /// that says so.
    #[test]
    fn a_checkpoint_resumes_at_its_line_and_byte_and_a_replaced_file_is_refused() -> anyhow::Result<()> {
        use crate::checkpoint::{Checkpoint, Header, PartitionState};
        use crate::position::Position;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "a\nbb\n\nccc\nd\n")?;
        let store = Arc::new(crate::checkpoint::tests::store(&dir.path().join("ck"), 300_000, false)?);
        // Read the first two lines, as a run would before its barrier.
        let mut first = FileSource::open(&path, 2, 1 << 20, None)?;
        let chunk = first.next_chunk()?.ok_or_else(|| anyhow::anyhow!("no chunk"))?;
        assert_eq!(chunk.records().map(|r| r.offset).collect::<Vec<_>>(), [1, 2]);
        let (line, byte) = (first.line + 1, first.byte_offset(0));
        assert_eq!((line, byte), (3, Some(5)));
        let header = Header { created_ms: 1, ..Header::default() };
        let position = Position {
            id: PartitionId::new(path.display().to_string(), 0),
            offset: line,
            byte_offset: byte,
            max_event_time: None,
        };
        let partition = PartitionState { position, keys: Vec::new() };
        store.write(1, &mut Checkpoint { header, partitions: vec![partition] })?;

        let mut resumed = FileSource::open(&path, 10, 1 << 20, Some(store.clone()))?;
        let Polled::Assigned(assigned) = resumed.poll()? else { anyhow::bail!("no assignment first") };
        assert_eq!((assigned[0].start, assigned[0].restored.is_some()), (3, true));
        let Polled::Chunk { chunk, .. } = resumed.poll()? else { anyhow::bail!("no chunk") };
        let rest: Vec<(i64, String)> =
            chunk.records().map(|r| (r.offset, String::from_utf8_lossy(r.bytes).into_owned())).collect();
        assert_eq!(rest, [(4, "ccc".to_string()), (5, "d".to_string())]);
        assert!(matches!(resumed.poll()?, Polled::End));

        for replaced in ["abc", "abcdefgh\n"] {
            std::fs::write(&path, replaced)?;
            let refused = FileSource::open(&path, 10, 1 << 20, Some(store.clone())).err().map(|e| e.to_string());
            assert!(refused.as_deref().is_some_and(|m| m.contains("was the file replaced")), "{refused:?}");
        }
        Ok(())
    }

    #[test]
    fn a_device_is_not_a_source() {
        let err = FileSource::open(Path::new("/dev/zero"), 10, 100, None).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("cannot read /dev/zero: not a regular file"));
    }
}
