//! Keyed state in RocksDB, with the recently used keys kept decoded.
//!
//! Every key has an id, an entry in the index and its [`Meta`] in memory;
//! its windows are either decoded (resident) or encoded in RocksDB
//! (spilled). Between steps, and every few hundred windows while a
//! watermark fires many keys, [`StateBackend::spill`] writes the least
//! recently used resident keys out until the decoded ones fit the budget
//! again (the clock algorithm: a key used since the hand last passed gets
//! a second chance). A spilled key is read back when the operator asks for
//! its windows.
//!
//! RocksDB is a working store here, not a durable one: each run opens a
//! new directory, removed at the end (or by the next run, if the process
//! was killed), and writes without a write-ahead log. What outlives a run
//! is in the checkpoints (as with Flink's local RocksDB directory).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

use hashbrown::HashTable;
use rocksdb::{
    BlockBasedOptions, Cache, DB, DBCompressionType, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};
use rustc_hash::FxBuildHasher;

use super::{Error, Interner, Io, KeyId, KeyState, Meta, StateBackend};

/// Remove the directories of runs that were killed (their process is gone),
/// which could not remove their own.
fn remove_orphans(parent: &Path, prefix: &str) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|rest| rest.split('.').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::info!(dir = %entry.path().display(), "removed the state of a run that was killed"),
                Err(e) => tracing::warn!(dir = %entry.path().display(), "cannot remove the state of a killed run: {e}"),
            }
        }
    }
}

/// One RocksDB instance shared by a pipeline's workers (one block cache,
/// one set of write buffers); each worker's keys under its own prefix.
pub struct RocksStore {
    // Declared before `dir`: the database closes before its directory goes.
    db: DB,
    dir: tempfile::TempDir,
    /// Bytes of decoded keys each worker keeps.
    resident_budget: usize,
    write: WriteOptions,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore").field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Open a new store in a directory of its own under `parent`, within
    /// `memory` bytes for `workers` workers (see [`crate::state::StateConfig`]).
    pub fn open(parent: &Path, pipeline: &str, memory: u64, workers: usize) -> Result<Arc<Self>, Error> {
        let dir_error = |source| Error::Dir { path: parent.to_path_buf(), source };
        std::fs::create_dir_all(parent).map_err(dir_error)?;
        let name: String = pipeline.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        // `name.pid.random`: names hold no dots, so a prefix is one pipeline's.
        let prefix = format!("sluice-state-{name}.");
        remove_orphans(parent, &prefix);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}{}.", std::process::id()))
            .tempdir_in(parent)
            .map_err(dir_error)?;
        let memory = usize::try_from(memory).unwrap_or(usize::MAX);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(memory / 4));
        // Index and filter blocks count against the cache, so the budget
        // holds however many files there are.
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        // Reads are point lookups of keys, most of them present.
        table.set_bloom_filter(10.0, false);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_block_based_table_factory(&table);
        opts.set_write_buffer_size(memory / 8);
        opts.set_max_write_buffer_number(2);
        opts.set_db_write_buffer_size(memory / 4);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_max_open_files(256);
        let db =
            DB::open(&opts, dir.path()).map_err(|source| Error::Rocks { path: dir.path().to_path_buf(), source })?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        tracing::info!(dir = %dir.path().display(), memory, "RocksDB state opened");
        Ok(Arc::new(RocksStore { db, dir, resident_budget: memory / 2 / workers.max(1), write }))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn error(&self, source: rocksdb::Error) -> Error {
        Error::Rocks { path: self.path().to_path_buf(), source }
    }
}

struct Resident {
    state: KeyState,
    /// [`KeyState::heap_bytes`] when last measured.
    bytes: usize,
    /// Used since the clock hand last passed.
    referenced: bool,
    /// Used since last measured (listed in `RocksState::stale`).
    stale: bool,
    /// RocksDB holds an older copy, to delete with the key.
    on_disk: bool,
}

enum Slot {
    Free,
    Resident(Box<Resident>),
    Spilled { key: Box<str>, meta: Meta },
}

impl Slot {
    fn key(&self) -> &str {
        match self {
            Slot::Free => "",
            Slot::Resident(r) => &r.state.key,
            Slot::Spilled { key, .. } => key,
        }
    }
}

fn hash(key: &str) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// One worker's keys: see the module documentation.
pub struct RocksState {
    store: Arc<RocksStore>,
    prefix: [u8; 2],
    index: HashTable<KeyId>,
    slots: Vec<Slot>,
    free: Vec<KeyId>,
    /// Resident keys in clock order (may list a key twice, or one no longer
    /// resident: both are skipped).
    ring: VecDeque<KeyId>,
    stale: Vec<KeyId>,
    resident: usize,
    /// Decoded bytes of the resident keys, as last measured.
    bytes: usize,
    /// Deletes not yet written: they go with the next spill's writes.
    pending: WriteBatch,
    /// Bytes of decoded keys kept.
    budget: usize,
    io: Io,
    error: Option<Error>,
    db_key: Vec<u8>,
}

impl std::fmt::Debug for RocksState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksState")
            .field("keys", &self.index.len())
            .field("resident", &self.resident)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl RocksState {
    /// The keys of worker `worker` in `store`.
    pub fn new(store: Arc<RocksStore>, worker: usize) -> Self {
        RocksState {
            prefix: (worker as u16).to_be_bytes(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            ring: VecDeque::new(),
            stale: Vec::new(),
            resident: 0,
            bytes: 0,
            pending: WriteBatch::default(),
            budget: store.resident_budget,
            io: Io::default(),
            error: None,
            db_key: Vec::new(),
            store,
        }
    }

    /// Keep at most `bytes` of decoded keys instead of the store's share.
    pub fn with_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes;
        self
    }

    /// Keys decoded in memory, and their bytes as last measured.
    pub fn resident(&self) -> (usize, usize) {
        (self.resident, self.bytes)
    }

    fn db_key(&mut self, key: &str) -> &[u8] {
        self.db_key.clear();
        self.db_key.extend_from_slice(&self.prefix);
        self.db_key.extend_from_slice(key.as_bytes());
        &self.db_key
    }

    fn fail(&mut self, error: Error) {
        tracing::error!("{error}");
        self.error.get_or_insert(error);
    }

    fn admit(&mut self, id: KeyId, resident: Resident) {
        self.bytes += resident.bytes;
        self.resident += 1;
        if resident.stale {
            self.stale.push(id);
        }
        self.slots[id as usize] = Slot::Resident(Box::new(resident));
        self.ring.push_back(id);
    }

    /// Read a spilled key back; `false` (and an error kept) if it cannot.
    fn load(&mut self, id: KeyId, interner: &mut Interner) -> bool {
        let Some(Slot::Spilled { key, .. }) = self.slots.get(id as usize) else {
            return false;
        };
        let key = key.clone();
        let store = Arc::clone(&self.store);
        let read = store.db.get_pinned(self.db_key(&key));
        let state = match read {
            Ok(Some(bytes)) => {
                KeyState::decode(&bytes, interner).map_err(|source| Error::Codec { key: key.to_string(), source })
            }
            Ok(None) => Err(Error::Missing(key.to_string())),
            Err(e) => Err(store.error(e)),
        };
        match state {
            Ok(state) => {
                let bytes = state.heap_bytes();
                self.admit(id, Resident { state, bytes, referenced: true, stale: false, on_disk: true });
                self.io.loaded += 1;
                true
            }
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Write resident key `id` out (into `batch`) and keep only its meta.
    fn evict(&mut self, id: KeyId, batch: &mut WriteBatch, interner: &mut Interner) {
        let Some(slot) = self.slots.get_mut(id as usize) else { return };
        let Slot::Resident(mut r) = std::mem::replace(slot, Slot::Free) else { return };
        let meta = r.state.meta();
        let mut bytes = Vec::with_capacity(r.bytes / 2);
        r.state.encode(interner, &mut bytes);
        r.state.release(interner);
        self.bytes -= r.bytes;
        self.resident -= 1;
        let key = std::mem::take(&mut r.state.key);
        batch.put(self.db_key(&key), &bytes);
        self.slots[id as usize] = Slot::Spilled { key, meta };
        self.io.spilled += 1;
    }

    fn write(&mut self, batch: WriteBatch) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.db.write_opt(batch, &self.store.write) {
            let e = self.store.error(e);
            self.fail(e);
        }
    }

    /// Drop ring entries of keys no longer resident, and repeats.
    fn compact_ring(&mut self) {
        let mut seen = vec![false; self.slots.len()];
        let slots = &self.slots;
        self.ring.retain(|&id| {
            let keep = matches!(slots.get(id as usize), Some(Slot::Resident(_))) && !seen[id as usize];
            seen[id as usize] = true;
            keep
        });
    }
}

impl StateBackend for RocksState {
    fn lookup_or_insert(&mut self, key: &str) -> KeyId {
        if let Some(id) = self.lookup(key) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(Slot::Free);
                (self.slots.len() - 1) as KeyId
            }
        };
        let state = KeyState { key: key.into(), ..KeyState::default() };
        self.admit(id, Resident { bytes: state.heap_bytes(), state, referenced: true, stale: true, on_disk: false });
        let slots = &self.slots;
        self.index.insert_unique(hash(key), id, |&j| hash(slots[j as usize].key()));
        id
    }

    fn lookup(&self, key: &str) -> Option<KeyId> {
        self.index.find(hash(key), |&id| self.slots[id as usize].key() == key).copied()
    }

    fn get_mut(&mut self, id: KeyId, interner: &mut Interner) -> Option<&mut KeyState> {
        if matches!(self.slots.get(id as usize), Some(Slot::Spilled { .. })) && !self.load(id, interner) {
            return None;
        }
        let Some(Slot::Resident(r)) = self.slots.get_mut(id as usize) else {
            return None;
        };
        r.referenced = true;
        if !r.stale {
            r.stale = true;
            self.stale.push(id);
        }
        Some(&mut r.state)
    }

    fn meta(&self, id: KeyId) -> Option<Meta> {
        match self.slots.get(id as usize)? {
            Slot::Free => None,
            Slot::Resident(r) => Some(r.state.meta()),
            Slot::Spilled { meta, .. } => Some(*meta),
        }
    }

    fn remove(&mut self, id: KeyId, interner: &mut Interner) -> Option<bool> {
        let slot = self.slots.get_mut(id as usize)?;
        let (key, on_disk, held) = match std::mem::replace(slot, Slot::Free) {
            Slot::Free => return None,
            Slot::Resident(mut r) => {
                self.bytes -= r.bytes;
                self.resident -= 1;
                let held = !r.state.is_empty();
                r.state.release(interner);
                (std::mem::take(&mut r.state.key), r.on_disk, held)
            }
            Slot::Spilled { key, .. } => (key, true, true),
        };
        if let Ok(entry) = self.index.find_entry(hash(&key), |&j| j == id) {
            entry.remove();
        }
        if on_disk {
            let mut pending = std::mem::take(&mut self.pending);
            pending.delete(self.db_key(&key));
            self.pending = pending;
        }
        self.free.push(id);
        Some(held)
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn ids(&self) -> Vec<KeyId> {
        self.index.iter().copied().collect()
    }

    fn encode_all(&mut self, interner: &Interner, out: &mut dyn FnMut(u32, Vec<u8>)) {
        let pending = std::mem::take(&mut self.pending);
        self.write(pending);
        for slot in &self.slots {
            if let Slot::Resident(r) = slot {
                let mut bytes = Vec::with_capacity(r.bytes / 2);
                r.state.encode(interner, &mut bytes);
                out(r.state.partition, bytes);
            }
        }
        // Spilled keys are already encoded: copied as they are, in key order.
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_upper_bound(next_prefix(self.prefix));
        read.fill_cache(false);
        let mut failed = None;
        for item in self.store.db.iterator_opt(IteratorMode::From(&self.prefix, Direction::Forward), read) {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    failed = Some(self.store.error(e));
                    break;
                }
            };
            let Ok(key) = std::str::from_utf8(&key[2..]) else { continue };
            if let Some(Slot::Spilled { meta, .. }) = self.lookup(key).map(|id| &self.slots[id as usize]) {
                out(meta.partition, value.into_vec());
            }
        }
        if let Some(e) = failed {
            self.fail(e);
        }
    }

    fn spill(&mut self, interner: &mut Interner) {
        for id in std::mem::take(&mut self.stale) {
            if let Some(Slot::Resident(r)) = self.slots.get_mut(id as usize)
                && r.stale
            {
                let bytes = r.state.heap_bytes();
                self.bytes = self.bytes - r.bytes + bytes;
                r.bytes = bytes;
                r.stale = false;
            }
        }
        let budget = self.budget;
        let mut batch = std::mem::take(&mut self.pending);
        if self.bytes > budget {
            // Down to 90%, so that a few new keys do not mean a spill per step.
            let target = budget / 10 * 9;
            // Two turns of the clock clear every second chance.
            let mut turns = 2 * self.ring.len();
            while self.bytes > target && turns > 0 {
                turns -= 1;
                let Some(id) = self.ring.pop_front() else { break };
                let Some(Slot::Resident(r)) = self.slots.get_mut(id as usize) else { continue };
                if r.referenced || r.state.dirty {
                    // Used lately, or with events an aggregate has not folded
                    // yet (the fold holds its id): not now.
                    r.referenced = false;
                    self.ring.push_back(id);
                } else {
                    self.evict(id, &mut batch, interner);
                }
            }
        }
        self.write(batch);
        if self.ring.len() > 2 * self.resident + 1024 {
            self.compact_ring();
        }
    }

    fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    fn take_io(&mut self) -> Io {
        std::mem::take(&mut self.io)
    }
}

/// The first key after every key that starts with `prefix`.
fn next_prefix(prefix: [u8; 2]) -> Vec<u8> {
    match u16::from_be_bytes(prefix).checked_add(1) {
        Some(n) => n.to_be_bytes().to_vec(),
        None => vec![0xff, 0xff, 0xff],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::FieldType;
    use crate::state::{Slice, Value};

    fn state(dir: &Path) -> RocksState {
        let store = RocksStore::open(dir, "test", 16 << 20, 1).unwrap_or_else(|e| panic!("{e}"));
        RocksState::new(store, 0).with_budget(0)
    }

    /// A key with one slice of two events, one string each.
    fn fill(s: &mut RocksState, interner: &mut Interner, key: &str, partition: u32) -> KeyId {
        let id = s.lookup_or_insert(key);
        let ks = s.get_mut(id, interner).unwrap_or_else(|| panic!("{key} is missing"));
        let mut slice = Slice::new(100, &[FieldType::String]);
        for (t, text) in [(105, "a"), (107, key)] {
            let sym = interner.intern(text);
            slice.insert(t, &[Value::Str(sym)], text.len() as u64);
        }
        ks.slices.push_back(slice);
        ks.last_event = 107;
        ks.partition = partition;
        id
    }

    #[test]
    fn keys_go_to_disk_and_come_back_whole() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut s = state(dir.path());
        let mut interner = Interner::new();
        let a = fill(&mut s, &mut interner, "a", 3);
        let b = fill(&mut s, &mut interner, "b", 5);
        let mut before = Vec::new();
        s.encode_all(&interner, &mut |p, bytes| before.push((p, bytes)));
        before.sort();
        s.spill(&mut interner);
        // Two turns of the clock: the first only takes away second chances.
        assert_eq!(s.resident().0, 0, "with no budget every key goes");
        assert!(interner.is_empty(), "their strings are released");
        assert_eq!(s.take_io(), Io { spilled: 2, loaded: 0 });
        assert_eq!(s.meta(a).map(|m| (m.partition, m.last_event, m.oldest)), Some((3, 107, 100)));
        assert_eq!(s.lookup("b"), Some(b));
        // Snapshots read spilled keys as they are on disk.
        let mut after = Vec::new();
        s.encode_all(&interner, &mut |p, bytes| after.push((p, bytes)));
        after.sort();
        assert_eq!(after, before);
        let ks = s.get_mut(b, &mut interner).unwrap_or_else(|| panic!("b is gone"));
        let row = |i| match ks.slices[0].row(i)[0] {
            Value::Str(sym) => interner.resolve(sym).to_string(),
            ref v => panic!("{v:?}"),
        };
        assert_eq!((row(0), row(1)), ("a".to_string(), "b".to_string()));
        assert_eq!(s.take_io(), Io { spilled: 0, loaded: 1 });
        // Removed keys leave RocksDB too, spilled or not.
        assert_eq!(s.remove(a, &mut interner), Some(true));
        assert_eq!(s.remove(b, &mut interner), Some(true));
        assert_eq!(s.remove(b, &mut interner), None);
        let mut left = 0;
        s.encode_all(&interner, &mut |_, _| left += 1);
        assert_eq!(left, 0);
        assert!(s.store.db.iterator(IteratorMode::Start).next().is_none(), "RocksDB still holds keys");
        assert!(interner.is_empty());
        assert!(s.take_error().is_none());
    }

    #[test]
    fn directories_of_killed_runs_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let own = format!("sluice-state-test.{}.live", std::process::id());
        for name in ["sluice-state-test.4000000000.dead", &own, "sluice-state-test-2.4000000000.other", "unrelated"] {
            std::fs::create_dir(dir.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
        }
        let store = RocksStore::open(dir.path(), "test", 16 << 20, 1).unwrap_or_else(|e| panic!("{e}"));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !store.path().ends_with(n))
            .collect();
        let mut want = vec![own.clone(), "sluice-state-test-2.4000000000.other".into(), "unrelated".into()];
        left.sort();
        want.sort();
        assert_eq!(left, want);
        let path = store.path().to_path_buf();
        drop(store);
        assert!(!path.exists(), "a run removes its own directory");
    }
}
