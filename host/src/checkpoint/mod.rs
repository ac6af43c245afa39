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
mod layout;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use file::{read, read_header};
pub use layout::{LAYOUT_VERSION, Layout, Mismatch, Shape, TransformKind};

use sluice_sink_api::Duration;

/// Where and how often checkpoints are taken.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Directory of the checkpoints. Hosts of one consumer group may share
    /// it (a network file system): a partition that moves takes its state
    /// from the newest checkpoint that holds it, whichever host wrote it.
    pub dir: PathBuf,
    /// Time between checkpoints. A graceful stop takes one too.
    #[serde(default = "default_checkpoint_interval")]
    pub interval: Duration,
    /// Checkpoints of this host kept; older ones are deleted, unless one is
    /// the newest that holds some partition.
    #[serde(default = "default_retain")]
    pub retain: usize,
}

impl CheckpointConfig {
    /// Checkpoints in `dir`, at the default interval and retention.
    pub fn in_dir(dir: PathBuf) -> CheckpointConfig {
        CheckpointConfig { dir, interval: default_checkpoint_interval(), retain: default_retain() }
    }
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_millis(10_000)
}

fn default_retain() -> usize {
    3
}

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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub pipeline: String,
    /// The state's layout as text: all that headers before versioned
    /// layouts say of it (see [`Layout`]).
    pub fingerprint: String,
    /// The state's layout: what a pipeline must have to restore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
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

/// Checkpoint files in a directory, for one pipeline.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    host: String,
    pipeline: String,
    layout: Layout,
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
    /// The store of `config.dir` for pipeline `pipeline`, whose state has
    /// `layout`, created if needed. With `fresh`, the checkpoints already
    /// there are moved aside (to `superseded-{time}/`); without, a
    /// checkpoint of the pipeline that the layout does not admit is an
    /// error.
    pub fn open(config: &CheckpointConfig, pipeline: &str, layout: Layout, fresh: bool) -> Result<Store> {
        let dir = config.dir.clone();
        let shown = dir.display().to_string();
        let dir_err = |message: String| Error::Dir { dir: shown.clone(), message };
        std::fs::create_dir_all(&dir).map_err(|e| dir_err(e.to_string()))?;
        let host = run_id();
        let store = Store { dir, host, pipeline: pipeline.to_string(), layout, retain: config.retain.max(1) };
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
        if let Some((listed, mismatch)) = refused(&found, &store.pipeline, &store.layout).next() {
            return Err(Error::Incompatible {
                path: listed.path.display().to_string(),
                found: mismatch.found,
                expected: mismatch.expected,
            });
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
        (h.pipeline, h.fingerprint, h.layout, h.host, h.epoch) =
            (self.pipeline.clone(), self.layout.to_string(), Some(self.layout.clone()), self.host.clone(), epoch);
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
                .filter(|(_, h)| {
                    h.pipeline == self.pipeline && self.layout.admits(h.layout.as_ref(), &h.fingerprint).is_ok()
                })
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

/// The checkpoints of `pipeline` in `listed` whose state `layout` cannot
/// restore, each with why: what `validate`, `run` and `inspect` refuse.
pub fn refused<'l>(
    listed: &'l [Listed],
    pipeline: &str,
    layout: &Layout,
) -> impl Iterator<Item = (&'l Listed, Mismatch)> {
    listed.iter().filter_map(move |l| {
        let h = l.header.as_ref().ok().filter(|h| h.pipeline == pipeline)?;
        layout.admits(h.layout.as_ref(), &h.fingerprint).err().map(|m| (l, m))
    })
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

    /// The layout of a pipeline keyed by `user_id` with one string field.
    pub(crate) fn layout(window: crate::window::Kind) -> Layout {
        let fields = vec![("item_id".to_string(), crate::decode::FieldType::String)];
        Layout::new("user_id", window, fields, crate::wasm::Kind::Window)
    }

    /// A store in `dir` keeping two checkpoints, for pipeline `clicks` with
    /// a tumbling window of `size_ms`.
    pub(crate) fn store(dir: &Path, size_ms: i64, fresh: bool) -> Result<Store> {
        let config = CheckpointConfig { retain: 2, ..CheckpointConfig::in_dir(dir.to_path_buf()) };
        Store::open(&config, "clicks", layout(crate::window::Kind::Tumbling { size: size_ms }), fresh)
    }

    /// A key's state as checkpoints hold it: a key with no windows.
    pub(crate) fn key_state(key: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        KeyState { key: key.into(), ..KeyState::default() }.encode(&Interner::new(), &mut bytes);
        bytes
    }

    fn checkpoint(created_ms: i64, parts: &[(i32, i64, &str)]) -> Checkpoint {
        let header = Header { created_ms, watermark: created_ms, ..Header::default() };
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
        let store = store(dir.path(), 300_000, false)?;
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
        let refused = self::store(dir.path(), 600_000, false).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("incompatible") && refused.contains("size 5m") && refused.contains("size 10m"));
        let fresh = self::store(dir.path(), 600_000, true)?;
        assert!(fresh.list()?.is_empty());
        assert!(
            std::fs::read_dir(dir.path())?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("superseded-"))
        );
        Ok(())
    }
}
