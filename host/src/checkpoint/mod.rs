//! Checkpoints: a consistent cut of source positions, watermarks and
//! window state, taken at a barrier, in a directory.
//!
//! One file per checkpoint, `{time}-{host}-{epoch}.ckpt`, written under a
//! temporary name, synced and renamed: a file with its final name is
//! complete, and its checksum says whether it is intact. State is kept by
//! input partition (Kafka Streams' model), so hosts of one consumer group
//! can share the directory: a partition's state is found in the newest
//! checkpoint that holds it (the furthest position, then the newest
//! time), whichever host wrote it, together with the offset it reflects.
//! A checkpoint that does not read back (truncated, corrupt) is skipped
//! with a logged reason, and the one before it is used.

mod file;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use file::{read, read_header};

use crate::manifest::{CheckpointConfig, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("checkpoint directory {dir}: {message}")]
    Dir { dir: String, message: String },
    #[error("checkpoint {path}: {message}")]
    File { path: String, message: String },
    #[error(
        "{path} was written by an incompatible pipeline: it has {found}, the manifest has {expected}; \
         its state cannot be restored (run with --fresh to start over: the old checkpoints are moved aside)"
    )]
    Incompatible { path: String, found: String, expected: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One partition's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// The next offset to read: every record before it is in the state
    /// (a file: the next line, 1-based).
    pub offset: i64,
    /// A file: the byte at which that line starts, where reading resumes.
    pub byte_offset: Option<u64>,
    /// The largest event time the partition had delivered.
    pub max_event_time: Option<i64>,
    /// The partition's keys, each as [`crate::state::KeyState::encode`]
    /// wrote it.
    pub keys: Vec<Vec<u8>>,
}

/// What a checkpoint file says about itself, ahead of the state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub pipeline: String,
    /// What the state's layout depends on (see [`fingerprint`]).
    pub fingerprint: String,
    /// The process that wrote it.
    pub host: String,
    /// Its barrier number in that process.
    pub epoch: u64,
    /// When it was written, ms since the epoch.
    pub created_ms: i64,
    /// The operator's watermark at the barrier.
    pub watermark: i64,
    /// The watermark of the operator's last sweep for idle keys.
    pub last_sweep: i64,
    pub partitions: Vec<PartitionEntry>,
}

/// A partition in a checkpoint's header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// A file: the byte at which the next line starts (absent for Kafka).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
    pub max_event_time: Option<i64>,
    pub keys: u64,
    /// Bytes of the partition's key states.
    pub bytes: u64,
}

/// A whole checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub header: Header,
    pub partitions: Vec<PartitionState>,
}

/// A partition's state as restored, and where from.
#[derive(Debug, Clone)]
pub struct Restored {
    pub state: PartitionState,
    pub watermark: i64,
    pub last_sweep: i64,
    /// The checkpoint's file name.
    pub from: String,
}

/// What the state's layout depends on: a checkpoint of another key,
/// window shape, fields or kind of transform cannot be restored.
pub fn fingerprint(manifest: &Manifest) -> String {
    let w = &manifest.window;
    let shape = [("size", w.size), ("slide", w.slide), ("gap", w.gap)]
        .iter()
        .filter_map(|(name, d)| d.map(|d| format!(" {name} {d}")))
        .collect::<String>();
    let name = |t: &dyn std::fmt::Debug| format!("{t:?}").to_lowercase();
    let fields: Vec<String> = manifest.events.fields.iter().map(|f| format!("{}: {}", f.name, name(&f.ty))).collect();
    format!(
        "key {}, {} window{shape}, fields [{}], {} transform",
        manifest.events.key,
        name(&w.kind),
        fields.join(", "),
        name(&manifest.transform.kind)
    )
}

/// Checkpoint files in a directory, for one pipeline.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    host: String,
    pipeline: String,
    fingerprint: String,
    retain: usize,
}

/// A checkpoint file found in the directory.
#[derive(Debug)]
pub struct Listed {
    pub path: PathBuf,
    pub size: u64,
    /// Its header, or why it cannot be read.
    pub header: Result<Header, String>,
}

impl Store {
    /// The store of `config.dir`, created if needed. With `fresh`, the
    /// checkpoints already there are moved aside (to `superseded-{time}/`);
    /// without, a checkpoint of an incompatible pipeline is an error.
    pub fn open(config: &CheckpointConfig, manifest: &Manifest, fresh: bool) -> Result<Store> {
        let dir = config.dir.clone();
        let shown = dir.display().to_string();
        let dir_err = |message: String| Error::Dir { dir: shown.clone(), message };
        std::fs::create_dir_all(&dir).map_err(|e| dir_err(e.to_string()))?;
        let host = run_id();
        let store = Store {
            dir,
            host,
            pipeline: manifest.name.clone(),
            fingerprint: fingerprint(manifest),
            retain: config.retain.max(1),
        };
        let found = store.list()?;
        if fresh && !found.is_empty() {
            let aside = store.dir.join(format!("superseded-{}", crate::time::now_ms()));
            std::fs::create_dir_all(&aside).map_err(|e| dir_err(e.to_string()))?;
            for f in &found {
                if let Some(name) = f.path.file_name() {
                    std::fs::rename(&f.path, aside.join(name)).map_err(|e| dir_err(e.to_string()))?;
                }
            }
            tracing::info!(checkpoints = found.len(), to = %aside.display(), "starting fresh: checkpoints moved aside");
            return Ok(store);
        }
        for f in &found {
            if let Ok(h) = &f.header
                && h.pipeline == store.pipeline
                && h.fingerprint != store.fingerprint
            {
                return Err(Error::Incompatible {
                    path: f.path.display().to_string(),
                    found: h.fingerprint.clone(),
                    expected: store.fingerprint.clone(),
                });
            }
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This process's name in its checkpoints.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// For each run of this pipeline, the epoch of the last checkpoint it
    /// took (of those that can be read).
    pub fn last_epochs(&self) -> Result<HashMap<String, u64>> {
        let mut out: HashMap<String, u64> = HashMap::new();
        for l in self.list()? {
            if let Ok(h) = l.header
                && h.pipeline == self.pipeline
            {
                let e = out.entry(h.host).or_default();
                *e = (*e).max(h.epoch);
            }
        }
        Ok(out)
    }

    /// Every complete checkpoint file of the directory, oldest first, with
    /// its header (or why it could not be read).
    pub fn list(&self) -> Result<Vec<Listed>> {
        list(&self.dir)
    }

    /// Write `checkpoint` durably, then delete this host's old ones.
    /// Returns the file's size.
    pub fn write(&self, epoch: u64, checkpoint: &mut Checkpoint) -> Result<u64> {
        let h = &mut checkpoint.header;
        (h.pipeline, h.fingerprint, h.host, h.epoch) =
            (self.pipeline.clone(), self.fingerprint.clone(), self.host.clone(), epoch);
        let name = format!("{:013}-{}-{epoch:08}.ckpt", h.created_ms.max(0), self.host);
        let size = file::write(&self.dir, &name, checkpoint)?;
        self.prune();
        Ok(size)
    }

    /// The newest intact state of each partition of `wanted` that some
    /// checkpoint of this pipeline holds. Each file is read (and checked)
    /// once, however many of the partitions it holds.
    pub fn restore(&self, wanted: &[(String, i32)]) -> Result<HashMap<(String, i32), Restored>> {
        let listed = self.list()?;
        let mut read: HashMap<&Path, Option<Checkpoint>> = HashMap::new();
        let mut out = HashMap::new();
        for tp in wanted {
            // Best first: the furthest offset, then the newest.
            let mut candidates: Vec<(&Listed, &Header, &PartitionEntry)> = listed
                .iter()
                .filter_map(|l| Some((l, l.header.as_ref().ok()?)))
                .filter(|(_, h)| h.pipeline == self.pipeline && h.fingerprint == self.fingerprint)
                .filter_map(|(l, h)| {
                    let entry = h.partitions.iter().find(|p| p.topic == tp.0 && p.partition == tp.1)?;
                    Some((l, h, entry))
                })
                .collect();
            candidates.sort_by_key(|(_, h, e)| std::cmp::Reverse((e.offset, h.created_ms)));
            for (l, h, _) in candidates {
                let checkpoint = read.entry(&l.path).or_insert_with(|| {
                    file::read(&l.path)
                        .inspect_err(|e| {
                            tracing::warn!("skipping a checkpoint that does not read back, trying an older one: {e}")
                        })
                        .ok()
                });
                let Some(checkpoint) = checkpoint else { continue };
                let Some(at) = checkpoint.partitions.iter().position(|p| p.topic == tp.0 && p.partition == tp.1) else {
                    continue;
                };
                let state = checkpoint.partitions.swap_remove(at);
                let from = l.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                out.insert(tp.clone(), Restored { state, watermark: h.watermark, last_sweep: h.last_sweep, from });
                break;
            }
        }
        Ok(out)
    }

    /// Delete this host's checkpoints beyond the newest `retain`, except
    /// one that is the newest of some partition; and temporary files of a
    /// write that never finished, once an hour old.
    fn prune(&self) {
        let Ok(listed) = self.list() else {
            return;
        };
        let mut newest: HashMap<(String, i32), (i64, i64, PathBuf)> = HashMap::new();
        for l in &listed {
            let Ok(h) = &l.header else { continue };
            for p in &h.partitions {
                let entry =
                    newest.entry((p.topic.clone(), p.partition)).or_insert((i64::MIN, i64::MIN, PathBuf::new()));
                if (p.offset, h.created_ms) > (entry.0, entry.1) {
                    *entry = (p.offset, h.created_ms, l.path.clone());
                }
            }
        }
        let mine: Vec<&Listed> =
            listed.iter().filter(|l| l.header.as_ref().is_ok_and(|h| h.host == self.host)).collect();
        let keep_from = mine.len().saturating_sub(self.retain);
        for l in &mine[..keep_from] {
            if newest.values().any(|(_, _, p)| *p == l.path) {
                continue;
            }
            if let Err(e) = std::fs::remove_file(&l.path) {
                tracing::warn!(path = %l.path.display(), "cannot delete an old checkpoint: {e}");
            }
        }
        file::remove_stale_temporaries(&self.dir);
    }
}

/// A name for this run of a pipeline, unique per process: its start time
/// and its process id.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}{:05x}", nanos & 0xffff_ffff_ffff, std::process::id() & 0xfffff)
}

/// Every complete checkpoint file in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<Listed>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Dir { dir: dir.display().to_string(), message: e.to_string() }),
    };
    let mut out: Vec<Listed> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ckpt") && p.is_file())
        .map(|path| {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let header = read_header(&path).map_err(|e| e.to_string());
            Listed { path, size, header }
        })
        .collect();
    // Names start with the creation time.
    out.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::{Interner, KeyState};

    /// A Kafka pipeline's manifest whose checkpoints go to `dir`.
    pub(crate) fn manifest(dir: &Path, window: &str) -> anyhow::Result<Manifest> {
        let text = format!(
            "name: clicks
source: {{type: kafka, brokers: '127.0.0.1:9092', topics: [t], group: g}}
events:
  key: user_id
  timestamp: {{field: timestamp}}
  fields: [{{name: item_id, type: string}}]
window: {window}
transform: {{module: m.wasm}}
outputs:
  features: [{{type: file, path: f.jsonl}}]
  dead_letters: [{{type: file, path: d.jsonl}}]
  late_events: [{{type: file, path: l.jsonl}}]
checkpoint: {{dir: '{}', retain: 2}}
",
            dir.display()
        );
        Ok(Manifest::parse("m.yaml", &text, &[])?)
    }

    /// A key's state as checkpoints hold it: a key with no windows.
    pub(crate) fn key_state(key: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        KeyState { key: key.into(), ..KeyState::default() }.encode(&Interner::new(), &mut bytes);
        bytes
    }

    fn checkpoint(created_ms: i64, parts: &[(i32, i64, &str)]) -> Checkpoint {
        let header = Header {
            pipeline: String::new(),
            fingerprint: String::new(),
            host: String::new(),
            epoch: 0,
            created_ms,
            watermark: created_ms,
            last_sweep: 0,
            partitions: Vec::new(),
        };
        let partitions = parts
            .iter()
            .map(|&(partition, offset, key)| PartitionState {
                topic: "t".into(),
                partition,
                offset,
                byte_offset: None,
                max_event_time: Some(offset * 10),
                keys: vec![key_state(key)],
            })
            .collect();
        Checkpoint { header, partitions }
    }

    /// Each restored partition's offset and its keys.
    fn offsets(store: &Store) -> anyhow::Result<Vec<(i32, i64, String)>> {
        let wanted = [("t".to_string(), 0), ("t".to_string(), 1)];
        let mut got = Vec::new();
        for ((_, p), r) in store.restore(&wanted)? {
            let keys = r.state.keys.iter().map(|k| KeyState::peek_key(k)).collect::<Result<String, _>>()?;
            got.push((p, r.state.offset, keys));
        }
        got.sort();
        Ok(got)
    }

    /// Each partition comes from the newest checkpoint that holds it; a
    /// damaged newest one (and a write that never finished) is passed
    /// over for the one before; old checkpoints go, except the newest of
    /// a partition.
    #[test]
    fn partitions_restore_from_the_newest_intact_checkpoint() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let m = manifest(dir.path(), "{type: tumbling, size: 5m}")?;
        let Some(config) = &m.checkpoint else { anyhow::bail!("no checkpoint section") };
        let store = Store::open(config, &m, false)?;
        store.write(1, &mut checkpoint(1_000, &[(0, 10, "a"), (1, 5, "b")]))?;
        // Partition 1 moved away: the next ones hold partition 0 only.
        store.write(2, &mut checkpoint(2_000, &[(0, 20, "c")]))?;
        store.write(3, &mut checkpoint(3_000, &[(0, 30, "d")]))?;
        // A write cut short by a crash never has the final name.
        std::fs::write(dir.path().join("9999999999999-x-00000009.ckpt.tmp"), b"SLUICECK")?;
        assert_eq!(offsets(&store)?, [(0, 30, "d".into()), (1, 5, "b".into())]);
        // Retention kept two of partition 0's, and the one holding 1.
        let names = |store: &Store| -> anyhow::Result<Vec<i64>> {
            Ok(store.list()?.iter().filter_map(|l| l.header.as_ref().ok().map(|h| h.created_ms)).collect())
        };
        assert_eq!(names(&store)?, [1_000, 2_000, 3_000]);
        store.write(4, &mut checkpoint(4_000, &[(0, 40, "e")]))?;
        assert_eq!(names(&store)?, [1_000, 3_000, 4_000]);

        // The newest is damaged: the one before it is used.
        let newest = store.list()?.pop().map(|l| l.path).unwrap_or_default();
        let bytes = std::fs::read(&newest)?;
        std::fs::write(&newest, &bytes[..bytes.len() - 3])?;
        assert_eq!(offsets(&store)?, [(0, 30, "d".into()), (1, 5, "b".into())]);

        // Another window cannot restore them, unless it starts fresh
        // (they are then kept aside).
        let other = manifest(dir.path(), "{type: tumbling, size: 10m}")?;
        let refused = Store::open(config, &other, false).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("incompatible") && refused.contains("size 5m") && refused.contains("size 10m"));
        let fresh = Store::open(config, &other, true)?;
        assert!(fresh.list()?.is_empty());
        assert!(
            std::fs::read_dir(dir.path())?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("superseded-"))
        );
        Ok(())
    }
}
