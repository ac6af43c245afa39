//! Avro object container files (the Avro specification's "Object
//! Container Files", what Spark, Hive, Flink and `avro-tools` write to a
//! data lake): a header holding the writer schema, the codec and a
//! 16-byte sync marker, then blocks, each a count of datums, their size,
//! the datums (compressed by the codec) and the sync marker again.
//!
//! A file source reads one block at a time and cuts it into its datums
//! with the writer schema ([`Splitter`]), so each datum is a record with
//! its own number (1-based across the file) and dead letter; the chunk
//! carries the writer schema for the decoder. The header is read with the
//! `apache-avro` crate (its metadata is an Avro map) and blocks are
//! decompressed by its codecs (`null`, `deflate`, `snappy`, `zstandard`).
//!
//! What cannot be read never stops the run: a block that cannot be
//! decompressed, or whose datums cannot be told apart, is one dead letter
//! (`avro_container`) and reading goes on at the next block; bytes that
//! are not a block (a broken count or size, a sync marker that is not
//! the file's) are one dead letter up to the next sync marker, where
//! reading goes on, as the specification's markers allow.

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::str::FromStr;
use std::sync::Arc;

use apache_avro::Codec;
use apache_avro::types::Value;

use crate::decode::avro::Splitter;

/// The first bytes of every container file.
pub(super) const MAGIC: [u8; 4] = *b"Obj\x01";

/// The length of a sync marker.
const SYNC: usize = 16;

/// Most datums one block may say it holds: a block's records are held at
/// once (a lying count must not make the reader allocate without end).
const MAX_BLOCK_RECORDS: i64 = 1 << 24;

/// A container file's header: what reading its blocks needs.
pub(super) struct Container {
    /// The writer schema's JSON text, as the header holds it.
    pub writer_schema: Arc<str>,
    codec: Codec,
    sync: [u8; SYNC],
    splitter: Splitter,
    /// Where the first block starts.
    pub header_end: u64,
}

/// What reading at a block's start found.
pub(super) enum Block {
    /// A block, decompressed, and the bytes it took (its sync included).
    Datums { count: i64, data: Vec<u8>, taken: u64 },
    /// A block framed well whose datums cannot be read: its bytes as
    /// they are (compressed), the records it says it holds, why.
    Unreadable { count: i64, raw: Vec<u8>, taken: u64, why: String },
    /// Bytes that are not a block, up to the next sync marker (or the
    /// end of the file): the first of them, how many, why.
    Stray { head: Vec<u8>, taken: u64, why: String },
}

impl Container {
    /// Read the header of a file whose first bytes were [`MAGIC`] (read
    /// already). An error says why the file cannot be read.
    pub fn read_header(reader: &mut impl BufRead) -> Result<Container, String> {
        let mut counted = Counted { inner: reader, read: MAGIC.len() as u64 };
        let metadata =
            apache_avro::from_avro_datum(&apache_avro::Schema::map(apache_avro::Schema::Bytes), &mut counted, None)
                .map_err(|e| format!("its header's metadata cannot be read: {e}"))?;
        let Value::Map(metadata) = metadata else {
            return Err("its header's metadata is not a map".into());
        };
        let text = |key: &str| match metadata.get(key) {
            Some(Value::Bytes(b)) => String::from_utf8(b.clone()).map(Some).map_err(|_| format!("{key} is not UTF-8")),
            _ => Ok(None),
        };
        let writer_schema = text("avro.schema")?.ok_or("its header has no avro.schema")?;
        let codec_name = text("avro.codec")?.unwrap_or_else(|| "null".into());
        let codec = Codec::from_str(&codec_name).map_err(|_| {
            format!("its codec `{codec_name}` is not one this host reads (null, deflate, snappy, zstandard)")
        })?;
        let splitter = Splitter::new(&writer_schema).map_err(|e| format!("its writer schema cannot be read: {e}"))?;
        let mut sync = [0u8; SYNC];
        counted.read_exact(&mut sync).map_err(|e| format!("its header ends early: {e}"))?;
        Ok(Container { writer_schema: writer_schema.into(), codec, sync, splitter, header_end: counted.read })
    }

    /// Whether the bytes before `at` (read into `before`) end a block or
    /// the header: where a checkpoint may say a block starts.
    pub fn starts_block(&self, at: u64, before: &[u8]) -> bool {
        at == self.header_end || before == self.sync
    }

    /// The block at the reader's position, which is `at` of a file of
    /// `size` bytes; `None` at the end of the file.
    pub fn next_block(&self, reader: &mut (impl BufRead + Seek), at: u64, size: u64) -> std::io::Result<Option<Block>> {
        if reader.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let mut counted = Counted { inner: &mut *reader, read: 0 };
        let framing = (|| {
            let count = read_long(&mut counted)?;
            let length = read_long(&mut counted)?;
            Ok::<_, std::io::Error>((count, length))
        })();
        let (count, length) = match framing {
            Ok(framing) => framing,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return self.not_a_block(reader, at, "the file ends inside a block's header".into()).map(Some);
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return self.not_a_block(reader, at, format!("a block's header is not two longs: {e}")).map(Some);
            }
            Err(e) => return Err(e),
        };
        let header = counted.read;
        let left = size.saturating_sub(at + header);
        if !(0..=MAX_BLOCK_RECORDS).contains(&count) || length < 0 || length as u64 + SYNC as u64 > left {
            return self
                .not_a_block(
                    reader,
                    at,
                    format!(
                        "a block says it holds {count} records in {length} bytes, with {left} bytes left in the \
                         file"
                    ),
                )
                .map(Some);
        }
        let mut raw = vec![0u8; length as usize];
        reader.read_exact(&mut raw)?;
        let mut sync = [0u8; SYNC];
        reader.read_exact(&mut sync)?;
        let taken = header + length as u64 + SYNC as u64;
        if sync != self.sync {
            // The block's length was wrong, or the bytes are not blocks:
            // the next marker may be among the bytes just read.
            return self.not_a_block(reader, at, "a block does not end with the file's sync marker".into()).map(Some);
        }
        if matches!(self.codec, Codec::Null) {
            return Ok(Some(Block::Datums { count, data: raw, taken }));
        }
        let mut data = raw.clone();
        Ok(Some(match self.codec.decompress(&mut data) {
            Ok(()) => Block::Datums { count, data, taken },
            Err(e) => Block::Unreadable { count, raw, taken, why: format!("the block cannot be decompressed: {e}") },
        }))
    }

    /// Cut a decompressed block of `count` datums into them.
    pub fn datums<'a>(&self, count: i64, data: &'a [u8]) -> Cut<'a> {
        let mut datums = Vec::with_capacity(count as usize);
        let mut at = 0usize;
        for i in 0..count {
            match self.splitter.datum_len(&data[at..]) {
                Ok(len) => {
                    datums.push(&data[at..at + len]);
                    at += len;
                }
                Err(why) => {
                    let why =
                        format!("record {} of {count} of the block does not match the writer schema: {why}", i + 1);
                    return Cut { datums, rest: Some((&data[at..], why)) };
                }
            }
        }
        let rest = match data.len() - at {
            0 => None,
            n => Some((&data[at..], format!("{n} bytes follow the block's {count} records"))),
        };
        Cut { datums, rest }
    }

    /// Bytes from `at` that are not a block: up to and with the next sync
    /// marker (or to the end of the file), where the next block starts.
    fn not_a_block(&self, reader: &mut (impl BufRead + Seek), at: u64, why: String) -> std::io::Result<Block> {
        reader.seek(SeekFrom::Start(at))?;
        let (mut head, mut taken) = (Vec::new(), 0u64);
        let mut window = std::collections::VecDeque::with_capacity(SYNC);
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(Block::Stray { head, taken, why });
            }
            let (mut used, mut found) = (0, false);
            for &b in buf {
                used += 1;
                if window.len() == SYNC {
                    window.pop_front();
                }
                window.push_back(b);
                if window.iter().eq(self.sync.iter()) {
                    found = true;
                    break;
                }
            }
            let room = sluice_sink_api::MAX_RAW_BYTES.saturating_sub(head.len());
            head.extend_from_slice(&buf[..used.min(room)]);
            reader.consume(used);
            taken += used as u64;
            if found {
                return Ok(Block::Stray { head, taken, why });
            }
        }
    }
}

/// A block cut into its datums.
pub(super) struct Cut<'a> {
    /// Each datum's bytes, in order.
    pub datums: Vec<&'a [u8]>,
    /// If they cannot all be told apart: the bytes from the first that
    /// cannot, and why.
    pub rest: Option<(&'a [u8], String)>,
}

/// A reader that counts the bytes read through it.
struct Counted<'r, R> {
    inner: &'r mut R,
    read: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// An Avro `long` (zig-zag, variable length) from `reader`.
fn read_long(reader: &mut impl Read) -> std::io::Result<i64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte)?;
        if shift == 63 && byte[0] > 1 {
            break;
        }
        value |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a long longer than 10 bytes"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use apache_avro::types::Value;
    use apache_avro::{Codec, DeflateSettings, Schema, Writer, ZstandardSettings};

    use crate::source::file::FileSource;
    use crate::source::{Chunk, Polled, Source, Unreadable};

    const SCHEMA: &str = r#"{"type": "record", "name": "click", "fields": [
        {"name": "user_id", "type": "string"}, {"name": "n", "type": "long"}]}"#;

    fn click(n: i64) -> Value {
        Value::Record(vec![("user_id".into(), Value::String(format!("user-{n}"))), ("n".into(), Value::Long(n))])
    }

    /// A container file of clicks 1..=`records`, a block every `block`.
    fn write(path: &Path, codec: Codec, records: i64, block: i64) -> anyhow::Result<()> {
        let schema = Schema::parse_str(SCHEMA)?;
        let mut writer = Writer::with_codec(&schema, Vec::new(), codec);
        for n in 1..=records {
            writer.append(click(n))?;
            if n % block == 0 {
                writer.flush()?;
            }
        }
        std::fs::write(path, writer.into_inner()?)?;
        Ok(())
    }

    /// Each record of `chunk`: its number and its `n` as the crate reads
    /// the datum (or the dead letter's class and first bytes' length).
    fn read(chunk: &Chunk) -> anyhow::Result<Records> {
        let schema = Schema::parse_str(SCHEMA)?;
        let mut out = Vec::new();
        for (i, record) in chunk.records().enumerate() {
            if let Some((_, why)) = chunk.unreadable().iter().find(|(at, _)| *at as usize == i) {
                let Unreadable::Broken { class, message, .. } = why else { anyhow::bail!("{why:?}") };
                out.push((record.offset, Err(format!("{class}: {message}"))));
                continue;
            }
            let value = apache_avro::from_avro_datum(&schema, &mut &record.bytes[..], None)?;
            let Value::Record(fields) = value else { anyhow::bail!("not a record") };
            let Some((_, Value::Long(n))) = fields.into_iter().nth(1) else { anyhow::bail!("no n") };
            out.push((record.offset, Ok(n)));
        }
        Ok(out)
    }

    /// Each chunk's records: number, and `n` or the dead letter's reason.
    type Records = Vec<(i64, Result<i64, String>)>;

    fn all(source: &mut FileSource) -> anyhow::Result<Vec<Records>> {
        let mut chunks = Vec::new();
        while let Some(chunk) = source.next_chunk()? {
            let carried = chunk.writer_schema().map(|s| Schema::parse_str(s)).transpose()?;
            assert_eq!(carried, Some(Schema::parse_str(SCHEMA)?));
            chunks.push(read(&chunk)?);
        }
        Ok(chunks)
    }

    /// Every codec: blocks of 100 read whole, at least `step` (150)
    /// records a chunk, each record one datum numbered from 1, as the
    /// crate's reader reads it.
    #[test]
    fn a_container_file_is_read_in_whole_blocks_one_record_a_datum() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let codecs = [
            Codec::Null,
            Codec::Deflate(DeflateSettings::default()),
            Codec::Snappy,
            Codec::Zstandard(ZstandardSettings::default()),
        ];
        for codec in codecs {
            let path = dir.path().join("clicks.avro");
            write(&path, codec, 1_000, 100)?;
            let mut source = FileSource::open(&path, 150, 1 << 20, None)?;
            let chunks = all(&mut source)?;
            let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
            assert_eq!(sizes, [200; 5], "{codec:?}");
            let records: Vec<(i64, Result<i64, String>)> = chunks.into_iter().flatten().collect();
            let want: Vec<(i64, Result<i64, String>)> = (1..=1_000).map(|n| (n, Ok(n))).collect();
            assert_eq!(records, want, "{codec:?}");
            assert_eq!(source.progress(), Some((source.size, source.size)));
        }
        Ok(())
    }

    /// A checkpoint taken between chunks resumes at its block with the
    /// same record numbers; one whose byte starts no block is refused.
    #[test]
    fn a_checkpoint_resumes_at_its_block_and_one_that_fits_no_block_is_refused() -> anyhow::Result<()> {
        use crate::checkpoint::{Checkpoint, Header, PartitionState};
        use crate::position::{PartitionId, Position};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("clicks.avro");
        write(&path, Codec::Deflate(DeflateSettings::default()), 500, 100)?;
        let store = Arc::new(crate::checkpoint::tests::store(&dir.path().join("ck"), 300_000, false)?);
        let mut first = FileSource::open(&path, 150, 1 << 20, None)?;
        first.next_chunk()?;
        let checkpoint = |epoch: u64, offset: i64, byte: Option<u64>| -> anyhow::Result<()> {
            let position = Position {
                id: PartitionId::new(path.display().to_string(), 0),
                offset,
                byte_offset: byte,
                max_event_time: None,
            };
            let header = Header { created_ms: epoch as i64, ..Header::default() };
            store.write(
                epoch,
                &mut Checkpoint { header, partitions: vec![PartitionState { position, keys: Vec::new() }] },
            )?;
            Ok(())
        };
        checkpoint(1, first.line + 1, first.byte_offset(0))?;
        let mut resumed = FileSource::open(&path, 150, 1 << 20, Some(store.clone()))?;
        let Polled::Assigned(assigned) = resumed.poll()? else { anyhow::bail!("no assignment first") };
        assert_eq!(assigned[0].start, 201);
        let rest: Vec<(i64, Result<i64, String>)> = all(&mut resumed)?.into_iter().flatten().collect();
        assert_eq!(rest, (201..=500).map(|n| (n, Ok(n))).collect::<Vec<_>>());

        checkpoint(2, 201, first.byte_offset(0).map(|b| b - 3))?;
        let refused = FileSource::open(&path, 150, 1 << 20, Some(store)).err().map(|e| e.to_string());
        assert!(
            refused.as_deref().is_some_and(|m| m.contains("no block of the Avro file starts there")),
            "{refused:?}"
        );
        Ok(())
    }

    /// A datum that does not match the schema: the block's records before
    /// it are read, the rest of the block is one dead letter numbered as
    /// its first record, and the next block is read as in a sound file. A
    /// block whose sync marker is wrong: it and what follows up to the
    /// next marker are one dead letter. A file cut short: its last block
    /// is one.
    #[test]
    fn broken_blocks_are_dead_letters_and_reading_goes_on() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("clicks.avro");
        write(&path, Codec::Null, 400, 100)?;
        let sound = std::fs::read(&path)?;
        let find = |what: &[u8]| sound.windows(what.len()).position(|w| w == what).unwrap_or(0);

        // Record 150's string length made negative (zig-zag 1 is -1).
        let mut bytes = sound.clone();
        bytes[find(b"user-150") - 1] = 1;
        std::fs::write(&path, &bytes)?;
        let records: Vec<_> = all(&mut FileSource::open(&path, 1, 1 << 20, None)?)?.into_iter().flatten().collect();
        let numbers: Vec<i64> = records.iter().map(|r| r.0).collect();
        let want: Vec<i64> = (1..=150).chain(201..=400).collect();
        assert_eq!(numbers, want);
        let dead: Vec<&(i64, Result<i64, String>)> = records.iter().filter(|r| r.1.is_err()).collect();
        assert_eq!(dead.len(), 1);
        let message = dead[0].1.clone().err().unwrap_or_default();
        assert!(
            message.starts_with("avro_container: the block at byte")
                && message.contains("(records 150 to 200): record 50 of 100 of the block does not match"),
            "{message}"
        );

        // Block 2's sync marker (the third in the file) broken: blocks 2
        // and 3, to the next sound marker, are one dead letter, and the
        // records after it are numbered on from it (how many it held is
        // not known).
        let marker = &sound[sound.len() - 16..];
        let markers: Vec<usize> = sound.windows(16).enumerate().filter(|(_, w)| *w == marker).map(|(i, _)| i).collect();
        assert_eq!(markers.len(), 5, "the header's and four blocks'");
        let mut bytes = sound.clone();
        bytes[markers[2]] ^= 0xff;
        std::fs::write(&path, &bytes)?;
        let records: Vec<_> = all(&mut FileSource::open(&path, 1, 1 << 20, None)?)?.into_iter().flatten().collect();
        let numbers: Vec<i64> = records.iter().map(|r| r.0).collect();
        assert_eq!(numbers, (1..=201).collect::<Vec<_>>());
        let message = records[100].1.clone().err().unwrap_or_default();
        assert!(message.contains("are not a block: a block does not end with the file's sync marker"), "{message}");

        // Cut short inside the last block.
        std::fs::write(&path, &sound[..sound.len() - 20])?;
        let records: Vec<_> = all(&mut FileSource::open(&path, 1, 1 << 20, None)?)?.into_iter().flatten().collect();
        assert_eq!(records.len(), 301);
        let message = records[300].1.clone().err().unwrap_or_default();
        assert!(message.contains("with") && message.contains("bytes left in the file"), "{message}");
        Ok(())
    }

    /// A codec this host does not read is an error that names it.
    #[test]
    fn an_unknown_codec_is_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("clicks.avro");
        write(&path, Codec::Null, 10, 5)?;
        let bytes = std::fs::read(&path)?;
        // "null" as the codec's value: the same length as "lzma".
        let at = bytes.windows(4).position(|w| w == b"null").unwrap_or(0);
        let mut renamed = bytes.clone();
        renamed[at..at + 4].copy_from_slice(b"lzma");
        std::fs::write(&path, renamed)?;
        let refused = FileSource::open(&path, 10, 1 << 20, None).err().map(|e| e.to_string());
        assert!(
            refused.as_deref().is_some_and(|m| m.contains("an Avro container file, but its codec `lzma` is not one")),
            "{refused:?}"
        );
        Ok(())
    }
}
