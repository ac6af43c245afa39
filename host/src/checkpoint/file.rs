//! A checkpoint's data: a magic number, a format version, a JSON header,
//! the key states of every partition in turn, laid out by kind of value
//! ([`crate::state::columnar`]) and zstd-compressed, and a CRC-32 of all
//! that. Format 1 held the key states one after another, length-prefixed;
//! it is still read.

use super::{Checkpoint, Error, Header, PartitionEntry, PartitionState, Result};

const MAGIC: &[u8; 8] = b"SLUICECK";
const VERSION: u8 = 2;
/// Key states one after another, each length-prefixed.
const VERSION_KEY_BY_KEY: u8 = 1;
/// A header larger than this is not ours.
const MAX_HEADER: usize = 64 << 20;
/// zstd's fastest levels: window state is mostly short strings and close
/// times, which compress well even so, and a checkpoint must not hold the
/// pipeline up for long.
const LEVEL: i32 = 1;

fn file_err(at: &str, message: impl std::fmt::Display) -> Error {
    Error::File { path: at.to_string(), message: message.to_string() }
}

/// `checkpoint` as bytes, and the header they begin with (the header given,
/// with each partition's entry filled in).
pub fn encode(checkpoint: &Checkpoint) -> Result<(Vec<u8>, Header)> {
    let mut header = checkpoint.header.clone();
    header.partitions = checkpoint
        .partitions
        .iter()
        .map(|p| PartitionEntry {
            position: p.position.clone(),
            keys: p.keys.len() as u64,
            bytes: p.keys.iter().map(|k| k.len() as u64 + 4).sum(),
        })
        .collect();
    let at = "(being written)";
    let json = serde_json::to_vec(&header).map_err(|e| file_err(at, e))?;
    let mut out =
        Vec::with_capacity(json.len() + header.partitions.iter().map(|p| p.bytes as usize).sum::<usize>() + 32);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    let keys = checkpoint.partitions.iter().flat_map(|p| p.keys.iter().map(Vec::as_slice));
    let body =
        crate::state::columnar::pack(keys).map_err(|e| file_err(at, format!("a key's state does not encode: {e}")))?;
    let compressed = zstd::bulk::compress(&body, LEVEL).map_err(|e| file_err(at, e))?;
    drop(body);
    out.extend_from_slice(&compressed);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok((out, header))
}

/// The header `bytes` begin with (the state is not read, nor the checksum
/// checked). `at` names them in errors.
pub fn decode_header(at: &str, bytes: &[u8]) -> Result<Header> {
    let head = bytes.get(..13).ok_or_else(|| file_err(at, "shorter than a checkpoint's header"))?;
    let (_, len) = header_len(at, head)?;
    let json = bytes.get(13..13 + len).ok_or_else(|| file_err(at, "the header is cut short"))?;
    serde_json::from_slice(json).map_err(|e| file_err(at, format!("the header is not valid: {e}")))
}

/// The file's format version and the length of its header.
fn header_len(at: &str, head: &[u8]) -> Result<(u8, usize)> {
    if head.get(..8) != Some(MAGIC.as_slice()) {
        return Err(file_err(at, "not a Sluice checkpoint"));
    }
    if head[8] != VERSION && head[8] != VERSION_KEY_BY_KEY {
        return Err(file_err(
            at,
            format!(
                "checkpoint format {} is not supported (this host reads formats {VERSION_KEY_BY_KEY} and {VERSION})",
                head[8]
            ),
        ));
    }
    let len = u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as usize;
    if len > MAX_HEADER {
        return Err(file_err(at, "the header length is not plausible"));
    }
    Ok((head[8], len))
}

/// A whole checkpoint from its bytes, checked. `at` names them in errors.
pub fn decode(at: &str, bytes: &[u8]) -> Result<Checkpoint> {
    if bytes.len() < 17 {
        return Err(file_err(at, "shorter than a checkpoint"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != crc {
        return Err(file_err(at, "the checksum does not match (a truncated or damaged file)"));
    }
    let (version, len) = header_len(at, body)?;
    let json = body.get(13..13 + len).ok_or_else(|| file_err(at, "the header is cut short"))?;
    let header: Header =
        serde_json::from_slice(json).map_err(|e| file_err(at, format!("the header is not valid: {e}")))?;
    let compressed = body.get(13 + len..).unwrap_or_default();
    let body = zstd::stream::decode_all(compressed).map_err(|e| file_err(at, format!("the state: {e}")))?;
    let mut keys = match version {
        VERSION_KEY_BY_KEY => key_by_key(at, &body)?,
        _ => crate::state::columnar::unpack(&body)
            .map_err(|e| file_err(at, format!("the state does not read back: {e}")))?,
    }
    .into_iter();
    let total: u64 = header.partitions.iter().map(|p| p.keys).sum();
    if keys.len() as u64 != total {
        return Err(file_err(at, format!("the state holds {} keys, its header says {total}", keys.len())));
    }
    let partitions = header
        .partitions
        .iter()
        .map(|p| PartitionState { position: p.position.clone(), keys: keys.by_ref().take(p.keys as usize).collect() })
        .collect();
    Ok(Checkpoint { header, partitions })
}

/// Format 1's state: each key length-prefixed.
fn key_by_key(at: &str, mut body: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    while !body.is_empty() {
        let (n, rest) = body.split_first_chunk::<4>().ok_or_else(|| file_err(at, "the state is cut short"))?;
        let n = u32::from_le_bytes(*n) as usize;
        let key = rest.get(..n).ok_or_else(|| file_err(at, "the state is cut short"))?;
        keys.push(key.to_vec());
        body = &rest[n..];
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::key_state;
    use crate::position::{PartitionId, Position};

    fn sample() -> Checkpoint {
        let header = Header {
            pipeline: "p".into(),
            fingerprint: "f".into(),
            layout: Some(crate::checkpoint::tests::layout(crate::window::Kind::Session { gap: 60_000 })),
            host: "h".into(),
            epoch: 7,
            created_ms: 1_000,
            watermark: 500,
            last_sweep: 400,
            partitions: Vec::new(),
        };
        let partitions = vec![
            PartitionState {
                position: Position {
                    id: PartitionId::new("t", 0),
                    offset: 42,
                    byte_offset: Some(4_096),
                    max_event_time: Some(900),
                },
                keys: vec![key_state("abc"), key_state("")],
            },
            PartitionState {
                position: Position { id: PartitionId::new("t", 3), offset: 0, byte_offset: None, max_event_time: None },
                keys: Vec::new(),
            },
        ];
        Checkpoint { header, partitions }
    }

    #[test]
    fn a_checkpoint_reads_back_and_damage_is_found() -> anyhow::Result<()> {
        let checkpoint = sample();
        let (bytes, header) = encode(&checkpoint)?;
        let back = decode("a", &bytes)?;
        assert_eq!(back.partitions, checkpoint.partitions);
        assert_eq!(back.header, header);
        assert_eq!(back.header.partitions.len(), 2);
        assert_eq!(back.header.partitions[0].keys, 2);
        assert_eq!(decode_header("a", &bytes)?, back.header);

        // Cut short, anywhere.
        for cut in [bytes.len() - 1, bytes.len() / 2, 20, 3] {
            let e = decode("a", &bytes[..cut]).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("checksum") || e.contains("shorter"), "cut at {cut}: {e}");
        }
        // One bit flipped in the state.
        let mut flipped = bytes.clone();
        let at = flipped.len() - 8;
        flipped[at] ^= 1;
        assert!(decode("a", &flipped).err().map(|e| e.to_string()).unwrap_or_default().contains("checksum"));
        Ok(())
    }

    /// A header's partitions are flat objects, as every host has written
    /// them (checkpoints of older hosts restore, and theirs read ours).
    #[test]
    fn a_header_s_partitions_are_written_as_before() -> anyhow::Result<()> {
        let (_, header) = encode(&sample())?;
        let json = serde_json::to_value(&header.partitions)?;
        let want = serde_json::json!([
            {"topic": "t", "partition": 0, "offset": 42, "byte_offset": 4096, "max_event_time": 900, "keys": 2, "bytes": header.partitions[0].bytes},
            {"topic": "t", "partition": 3, "offset": 0, "max_event_time": null, "keys": 0, "bytes": 0}
        ]);
        assert_eq!(json, want);
        let back: Vec<PartitionEntry> = serde_json::from_value(want)?;
        assert_eq!(back, header.partitions);
        Ok(())
    }

    /// Data of format 1 (keys one after another, length-prefixed), as
    /// hosts before format 2 wrote them, still restores.
    #[test]
    fn a_checkpoint_of_format_1_reads() -> anyhow::Result<()> {
        let checkpoint = sample();
        let (_, header) = encode(&checkpoint)?;
        let json = serde_json::to_vec(&header)?;
        let mut body = Vec::new();
        for key in checkpoint.partitions.iter().flat_map(|p| &p.keys) {
            body.extend_from_slice(&(key.len() as u32).to_le_bytes());
            body.extend_from_slice(key);
        }
        let mut file = b"SLUICECK\x01".to_vec();
        file.extend_from_slice(&(json.len() as u32).to_le_bytes());
        file.extend_from_slice(&json);
        file.extend_from_slice(&zstd::bulk::compress(&body, 1)?);
        let crc = crc32fast::hash(&file);
        file.extend_from_slice(&crc.to_le_bytes());
        let back = decode("old", &file)?;
        assert_eq!(back.partitions, checkpoint.partitions);
        assert_eq!(back.header, header);
        Ok(())
    }
}
