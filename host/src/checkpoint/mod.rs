//! Checkpoints: a consistent cut of source positions, watermarks and
//! window state, taken at a barrier, kept in an object store (a local
//! directory by default, or an S3-compatible bucket: [`storage`]).
//!
//! A checkpoint is written as a data object, `data/{time}-{host}-{epoch}.ckpt`,
//! and then published by a small entry in the index,
//! `index/{time}-{host}-{epoch}.json`, that repeats its header: a
//! checkpoint without an entry (its host died between the two writes) is
//! never restored, and nothing relies on an atomic rename. Listing,
//! restoring and pruning read the index, and a restore reads only the data
//! it restores; the data's checksum says whether it is intact.
//!
//! State is kept by input partition (Kafka Streams' model), so hosts of
//! one consumer group can share the store: a partition's state is found in
//! the newest checkpoint that holds it (the furthest position, then the
//! newest time), whichever host wrote it, together with the offset it
//! reflects. A checkpoint that does not read back (truncated, corrupt) is
//! skipped with a logged reason, and the one before it is used.
//! Checkpoint files of hosts before the index (`{name}.ckpt` at the root)
//! are still listed and restored.

mod file;
mod index;
mod layout;
pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use file::{decode, decode_header, encode};
pub use layout::{LAYOUT_VERSION, Layout, Mismatch, Shape, TransformKind};
pub use storage::Storage;

use crate::position::{PartitionId, Position};
use sluice_sink_api::Duration;

/// Where and how often checkpoints are taken.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Directory of the checkpoints (the local filesystem; each is synced
    /// to disk as it is written). Hosts of one consumer group may share it
    /// (a network file system): a partition that moves takes its state
    /// from the newest checkpoint that holds it, whichever host wrote it.
    /// Give `dir` or `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// An object store instead of a directory: `s3://bucket/prefix`, on
    /// AWS or any S3-compatible store (MinIO, Ceph, R2: set
    /// `options.aws_endpoint`). Credentials and region come from
    /// `options` or from the `AWS_*` environment variables, as AWS's own
    /// clients read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Options of the store named by `url`, as the `object_store` crate's
    /// S3 builder takes them: `aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`
    /// (`"true"` for an `http://` endpoint), `aws_virtual_hosted_style_request`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
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
        CheckpointConfig {
            dir: Some(dir),
            url: None,
            options: BTreeMap::new(),
            interval: default_checkpoint_interval(),
            retain: default_retain(),
        }
    }

    /// Where the checkpoints are, as people name it.
    pub fn shown(&self) -> String {
        match (&self.dir, &self.url) {
            (Some(dir), _) => dir.display().to_string(),
            (None, Some(url)) => url.clone(),
            (None, None) => String::new(),
        }
    }

    /// The field that says where they are.
    pub fn field(&self) -> &'static str {
        if self.dir.is_none() && self.url.is_some() { "url" } else { "dir" }
    }

    /// What is wrong with where the checkpoints are: each field, why, and
    /// what to do.
    pub fn problems(&self) -> Vec<(String, String, &'static str)> {
        let mut found = Vec::new();
        match (&self.dir, &self.url) {
            (Some(_), Some(_)) => found.push((
                "url".into(),
                "both `dir` and `url` are given".into(),
                "keep `dir` for a local directory, or `url` for an object store",
            )),
            (None, None) => found.push((
                "dir".into(),
                "no `dir` or `url` says where the checkpoints go".into(),
                "for example dir: /var/lib/sluice/checkpoints, or url: s3://bucket/checkpoints",
            )),
            (None, Some(url)) => {
                let scheme = url.split_once("://").map(|(s, _)| s);
                if !scheme.is_some_and(|s| storage::SCHEMES.contains(&s)) {
                    found.push((
                        "url".into(),
                        format!("`{url}` is not an s3:// URL"),
                        "for example s3://bucket/checkpoints (a local directory is `dir`)",
                    ));
                }
            }
            (Some(_), None) => {}
        }
        if self.url.is_none() && !self.options.is_empty() {
            found.push(("options".into(), "options are for an object store's `url`".into(), "remove them"));
        }
        for key in self.options.keys().filter(|k| !storage::s3_option(k)) {
            found.push((
                format!("options.{key}"),
                format!("`{key}` is not an option of the S3 store"),
                "for example aws_endpoint, aws_region, aws_access_key_id, aws_secret_access_key, aws_allow_http",
            ));
        }
        found
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
    #[error("checkpoints at {dir}: {message}")]
    Dir { dir: String, message: String },
    #[error("checkpoint {path}: {message}")]
    File { path: String, message: String },
    #[error("checkpoint storage at {at}: {source}")]
    Storage {
        at: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("checkpoint storage: {0}")]
    Runtime(#[source] crate::io_runtime::Error),
    #[error(
        "{path} was written by an incompatible pipeline: it has {found}, the manifest has {expected}; \
         its state cannot be restored (run with --fresh to start over: the old checkpoints are moved aside)"
    )]
    Incompatible { path: String, found: String, expected: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One partition's part of a checkpoint: where it was read to, and its
/// keys' state there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Every record before it is in the state.
    pub position: Position,
    /// The partition's keys, each as [`crate::state::KeyState::encode`]
    /// wrote it.
    pub keys: Vec<Vec<u8>>,
}

/// What a checkpoint says about itself, ahead of the state (in its data
/// and in its index entry).
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

/// A partition in a checkpoint's header: its position, and how much
/// state it has there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionEntry {
    #[serde(flatten)]
    pub position: Position,
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
    /// The checkpoint's name.
    pub from: String,
}

/// The checkpoints of one pipeline in a store.
#[derive(Debug)]
pub struct Store {
    storage: Storage,
    host: String,
    pipeline: String,
    layout: Layout,
    retain: usize,
}

/// A published checkpoint.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its name, `{time}-{host}-{epoch}.ckpt`.
    pub name: String,
    /// Its data's key in the store.
    pub data: String,
    /// Its data's size in bytes.
    pub size: u64,
    /// Its header, or why it cannot be read.
    pub header: Result<Header, String>,
}

impl Store {
    /// The store of `config` for pipeline `pipeline`, whose state has
    /// `layout`. With `fresh`, the checkpoints already there are moved
    /// aside (to `superseded-{time}/`); without, a checkpoint of the
    /// pipeline that the layout does not admit is an error.
    pub fn open(config: &CheckpointConfig, pipeline: &str, layout: Layout, fresh: bool) -> Result<Store> {
        let storage = Storage::create(config)?;
        let host = run_id();
        let store = Store { storage, host, pipeline: pipeline.to_string(), layout, retain: config.retain.max(1) };
        let found = list(&store.storage)?;
        if fresh && !found.is_empty() {
            let aside = format!("superseded-{}", crate::time::now_ms());
            index::move_aside(&store.storage, &aside)?;
            tracing::info!(
                checkpoints = found.len(),
                to = store.storage.show(&aside),
                "starting fresh: checkpoints moved aside"
            );
            return Ok(store);
        }
        if let Some((listed, mismatch)) = refused(&found, &store.pipeline, &store.layout).next() {
            return Err(Error::Incompatible {
                path: store.storage.show(&listed.data),
                found: mismatch.found,
                expected: mismatch.expected,
            });
        }
        Ok(store)
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
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

    /// Every published checkpoint of the store, oldest first.
    pub fn list(&self) -> Result<Vec<Listed>> {
        list(&self.storage)
    }

    /// Write `checkpoint` durably and publish it, then delete this host's
    /// old ones. Returns the data's size.
    pub fn write(&self, epoch: u64, checkpoint: &mut Checkpoint) -> Result<u64> {
        let h = &mut checkpoint.header;
        (h.pipeline, h.fingerprint, h.layout, h.host, h.epoch) =
            (self.pipeline.clone(), self.layout.to_string(), Some(self.layout.clone()), self.host.clone(), epoch);
        let name = format!("{:013}-{}-{epoch:08}.ckpt", h.created_ms.max(0), self.host);
        let size = index::publish(&self.storage, &name, checkpoint)?;
        self.prune();
        Ok(size)
    }

    /// The newest intact state of each partition of `wanted` that some
    /// checkpoint of this pipeline holds. Each checkpoint's data is read
    /// (and checked) once, however many of the partitions it holds.
    pub fn restore(&self, wanted: &[PartitionId]) -> Result<HashMap<PartitionId, Restored>> {
        let listed = self.list()?;
        let mut read: HashMap<&str, Option<Checkpoint>> = HashMap::new();
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
                    let entry = h.partitions.iter().find(|p| p.position.id == *tp)?;
                    Some((l, h, entry))
                })
                .collect();
            candidates.sort_by_key(|(_, h, e)| std::cmp::Reverse((e.position.offset, h.created_ms)));
            for (l, h, _) in candidates {
                let checkpoint = read.entry(&l.data).or_insert_with(|| {
                    self.read(l)
                        .inspect_err(|e| {
                            tracing::warn!("skipping a checkpoint that does not read back, trying an older one: {e}")
                        })
                        .ok()
                });
                let Some(checkpoint) = checkpoint else { continue };
                let Some(at) = checkpoint.partitions.iter().position(|p| p.position.id == *tp) else {
                    continue;
                };
                let state = checkpoint.partitions.swap_remove(at);
                out.insert(
                    tp.clone(),
                    Restored { state, watermark: h.watermark, last_sweep: h.last_sweep, from: l.name.clone() },
                );
                break;
            }
        }
        Ok(out)
    }

    /// A published checkpoint, whole and checked.
    pub fn read(&self, listed: &Listed) -> Result<Checkpoint> {
        read(&self.storage, listed)
    }

    /// Delete this host's checkpoints beyond the newest `retain`, except
    /// one that is the newest of some partition (its entry first, so no
    /// entry outlives its data); and data never published (its host died
    /// before the entry was written), once an hour old.
    fn prune(&self) {
        let Ok(listed) = self.list() else {
            return;
        };
        let mut newest: HashMap<&PartitionId, (i64, i64, &str)> = HashMap::new();
        for l in &listed {
            let Ok(h) = &l.header else { continue };
            for p in &h.partitions {
                let entry = newest.entry(&p.position.id).or_insert((i64::MIN, i64::MIN, ""));
                if (p.position.offset, h.created_ms) > (entry.0, entry.1) {
                    *entry = (p.position.offset, h.created_ms, &l.name);
                }
            }
        }
        let mine: Vec<&Listed> =
            listed.iter().filter(|l| l.header.as_ref().is_ok_and(|h| h.host == self.host)).collect();
        let keep_from = mine.len().saturating_sub(self.retain);
        for l in &mine[..keep_from] {
            if newest.values().any(|(_, _, name)| *name == l.name) {
                continue;
            }
            if let Err(e) = index::remove(&self.storage, l) {
                tracing::warn!(checkpoint = l.name, "cannot delete an old checkpoint: {e}");
            }
        }
        index::remove_unpublished(&self.storage, &listed);
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

/// The store `config` names and its published checkpoints, for looking
/// at them: `None` for a directory not made yet (it holds none). Creates
/// and changes nothing.
pub fn existing(config: &CheckpointConfig) -> Result<Option<(Storage, Vec<Listed>)>> {
    if config.dir.as_ref().is_some_and(|dir| !dir.is_dir()) {
        return Ok(None);
    }
    let storage = Storage::open(config)?;
    let listed = list(&storage)?;
    Ok(Some((storage, listed)))
}

/// Every published checkpoint in `storage`, oldest first.
pub fn list(storage: &Storage) -> Result<Vec<Listed>> {
    index::list(storage)
}

/// A published checkpoint, whole and checked.
pub fn read(storage: &Storage, listed: &Listed) -> Result<Checkpoint> {
    let bytes = storage.get(&listed.data)?;
    decode(&storage.show(&listed.data), &bytes)
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
    pub(crate) fn store(dir: &std::path::Path, size_ms: i64, fresh: bool) -> Result<Store> {
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
                position: Position {
                    id: PartitionId::new("t", partition),
                    offset,
                    byte_offset: None,
                    max_event_time: Some(offset * 10),
                },
                keys: vec![key_state(key)],
            })
            .collect();
        Checkpoint { header, partitions }
    }

    /// Each restored partition's offset and its keys.
    fn offsets(store: &Store) -> anyhow::Result<Vec<(i32, i64, String)>> {
        let wanted = [PartitionId::new("t", 0), PartitionId::new("t", 1)];
        let mut got = Vec::new();
        for (id, r) in store.restore(&wanted)? {
            let keys = r.state.keys.iter().map(|k| KeyState::peek_key(k)).collect::<Result<String, _>>()?;
            got.push((id.partition, r.state.position.offset, keys));
        }
        got.sort();
        Ok(got)
    }

    /// Each partition comes from the newest checkpoint that holds it; a
    /// damaged newest one is passed over for the one before; old
    /// checkpoints go, except the newest of a partition.
    #[test]
    fn partitions_restore_from_the_newest_intact_checkpoint() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = store(dir.path(), 300_000, false)?;
        store.write(1, &mut checkpoint(1_000, &[(0, 10, "a"), (1, 5, "b")]))?;
        // Partition 1 moved away: the next ones hold partition 0 only.
        store.write(2, &mut checkpoint(2_000, &[(0, 20, "c")]))?;
        store.write(3, &mut checkpoint(3_000, &[(0, 30, "d")]))?;
        assert_eq!(offsets(&store)?, [(0, 30, "d".into()), (1, 5, "b".into())]);
        // Retention kept two of partition 0's, and the one holding 1.
        let names = |store: &Store| -> anyhow::Result<Vec<i64>> {
            Ok(store.list()?.iter().filter_map(|l| l.header.as_ref().ok().map(|h| h.created_ms)).collect())
        };
        assert_eq!(names(&store)?, [1_000, 2_000, 3_000]);
        store.write(4, &mut checkpoint(4_000, &[(0, 40, "e")]))?;
        assert_eq!(names(&store)?, [1_000, 3_000, 4_000]);
        // Deleted with its entry: no data is left of the one pruned.
        let data = std::fs::read_dir(dir.path().join("data"))?.count();
        assert_eq!(data, 3);

        // The newest is damaged: the one before it is used.
        let newest = store.list()?.pop().map(|l| dir.path().join(l.data)).unwrap_or_default();
        let bytes = std::fs::read(&newest)?;
        std::fs::write(&newest, &bytes[..bytes.len() - 3])?;
        assert_eq!(offsets(&store)?, [(0, 30, "d".into()), (1, 5, "b".into())]);

        // Another window cannot restore them, unless it starts fresh
        // (they are then kept aside).
        let refused = self::store(dir.path(), 600_000, false).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("incompatible") && refused.contains("size 5m") && refused.contains("size 10m"));
        let fresh = self::store(dir.path(), 600_000, true)?;
        assert!(fresh.list()?.is_empty());
        let aside = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("superseded-"))
            .map(|e| e.path())
            .unwrap_or_default();
        assert_eq!(std::fs::read_dir(aside.join("index"))?.count(), 3);
        assert_eq!(std::fs::read_dir(aside.join("data"))?.count(), 3);
        Ok(())
    }

    /// A host killed between writing a checkpoint's data and publishing it
    /// leaves data without an entry: it is never restored (the one before
    /// it is), however much further it is, and it is deleted once it is
    /// old enough that no host can still be publishing it.
    #[test]
    fn a_checkpoint_not_published_is_never_restored() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = store(dir.path(), 300_000, false)?;
        store.write(1, &mut checkpoint(1_000, &[(0, 10, "a"), (1, 5, "b")]))?;
        // What `publish` writes first, and then the host dies.
        let mut half = checkpoint(2_000, &[(0, 99, "z"), (1, 99, "z")]);
        half.header.pipeline = "clicks".into();
        half.header.layout = Some(layout(crate::window::Kind::Tumbling { size: 300_000 }));
        let (bytes, _) = encode(&half)?;
        let unpublished = "data/0000000002000-dead-00000002.ckpt";
        store.storage().put(unpublished, bytes)?;

        assert_eq!(offsets(&store)?, [(0, 10, "a".into()), (1, 5, "b".into())]);
        assert_eq!(store.list()?.len(), 1);
        assert_eq!(store.last_epochs()?.into_values().collect::<Vec<_>>(), [1]);
        // A reopened store (a restarted host) does not see it either.
        let again = self::store(dir.path(), 300_000, false)?;
        assert_eq!(offsets(&again)?, [(0, 10, "a".into()), (1, 5, "b".into())]);

        // Young unpublished data is left alone (it may be another host's
        // write in progress); once an hour old, a prune deletes it.
        store.write(2, &mut checkpoint(3_000, &[(0, 20, "c")]))?;
        assert!(dir.path().join(unpublished).exists());
        let file = std::fs::File::options().write(true).open(dir.path().join(unpublished))?;
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7_200))?;
        store.write(3, &mut checkpoint(4_000, &[(0, 30, "d")]))?;
        assert!(!dir.path().join(unpublished).exists());
        assert_eq!(offsets(&store)?, [(0, 30, "d".into()), (1, 5, "b".into())]);
        Ok(())
    }

    /// A checkpoint file of a host before the index (`{name}.ckpt` at the
    /// root, its header inside) is listed and restored.
    #[test]
    fn a_checkpoint_file_from_before_the_index_restores() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = store(dir.path(), 300_000, false)?;
        let mut old = checkpoint(1_000, &[(0, 10, "a")]);
        old.header.pipeline = "clicks".into();
        old.header.host = "old".into();
        old.header.layout = Some(layout(crate::window::Kind::Tumbling { size: 300_000 }));
        let (bytes, _) = encode(&old)?;
        std::fs::write(dir.path().join("0000000001000-old-00000001.ckpt"), bytes)?;
        let listed = store.list()?;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "0000000001000-old-00000001.ckpt");
        assert_eq!(offsets(&store)?, [(0, 10, "a".into())]);
        Ok(())
    }
}
