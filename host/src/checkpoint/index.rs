//! The checkpoints' index: a checkpoint is published by an entry,
//! `index/{name}.json`, written once its data, `data/{name}`, is in the
//! store. The entry repeats the data's header, so listing, choosing what
//! to restore and pruning read entries only: small objects, one per
//! checkpoint. Data without an entry was never published (its host died
//! between the two writes) and is never restored.
//!
//! Checkpoint files of hosts before the index, `{name}` at the root, were
//! complete once they had their name (they were renamed into place): they
//! are listed with their header read from the file.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::storage::{Object, Storage};
use super::{Checkpoint, Header, Listed, Result, decode_header, encode};

/// Folder of the entries.
const INDEX: &str = "index";
/// Folder of the data.
const DATA: &str = "data";
/// How long data may wait for its entry before it is taken for a write
/// that never finished: a younger one may be another host's publishing.
const UNPUBLISHED_AFTER_MS: i64 = 3_600_000;

/// A checkpoint's entry in the index.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// The data's key in the store.
    data: String,
    /// The data's size in bytes.
    size: u64,
    header: Header,
}

fn entry_key(name: &str) -> String {
    format!("{INDEX}/{name}.json")
}

/// Write `checkpoint`'s data as `name`, then its entry. Returns the data's
/// size.
pub(super) fn publish(storage: &Storage, name: &str, checkpoint: &Checkpoint) -> Result<u64> {
    let (bytes, header) = encode(checkpoint)?;
    let (data, size) = (format!("{DATA}/{name}"), bytes.len() as u64);
    storage.put(&data, bytes)?;
    let entry = Entry { data, size, header };
    let json = serde_json::to_vec(&entry).map_err(|e| super::Error::File {
        path: storage.show(&entry_key(name)),
        message: format!("the index entry does not encode: {e}"),
    })?;
    storage.put(&entry_key(name), json)?;
    Ok(size)
}

/// Every published checkpoint, oldest first (names begin with the time
/// they were written).
pub(super) fn list(storage: &Storage) -> Result<Vec<Listed>> {
    let mut out: Vec<Listed> = storage
        .list(INDEX)?
        .into_iter()
        .filter_map(|object| {
            let name = object.key.strip_prefix(&format!("{INDEX}/"))?.strip_suffix(".json")?.to_string();
            Some(listed(storage, name, &object))
        })
        .collect();
    for object in storage.list_root()? {
        if object.key.ends_with(".ckpt") {
            let header = storage
                .get(&object.key)
                .and_then(|bytes| decode_header(&storage.show(&object.key), &bytes))
                .map_err(|e| e.to_string());
            out.push(Listed { name: object.key.clone(), data: object.key, size: object.size, header });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The checkpoint an entry publishes, or why the entry cannot be read.
fn listed(storage: &Storage, name: String, object: &Object) -> Listed {
    let entry = storage.get(&object.key).map_err(|e| e.to_string()).and_then(|bytes| {
        serde_json::from_slice::<Entry>(&bytes)
            .map_err(|e| format!("the index entry {} is not valid: {e}", storage.show(&object.key)))
    });
    match entry {
        Ok(Entry { data, size, header }) => Listed { name, data, size, header: Ok(header) },
        Err(e) => Listed { data: format!("{DATA}/{name}"), name, size: 0, header: Err(e) },
    }
}

/// Delete a checkpoint: its entry first, so that no entry outlives its
/// data.
pub(super) fn remove(storage: &Storage, listed: &Listed) -> Result<()> {
    // A file of a host before the index is its own data, with no entry.
    if listed.data != listed.name {
        storage.delete(&entry_key(&listed.name))?;
    }
    storage.delete(&listed.data)
}

/// Delete data that was never published, once old enough that no host can
/// still be publishing it.
pub(super) fn remove_unpublished(storage: &Storage, listed: &[Listed]) {
    let published: HashSet<&str> = listed.iter().map(|l| l.data.as_str()).collect();
    let Ok(data) = storage.list(DATA) else { return };
    let now = crate::time::now_ms();
    for object in data {
        if !published.contains(object.key.as_str()) && now - object.modified_ms > UNPUBLISHED_AFTER_MS {
            tracing::info!(data = storage.show(&object.key), "deleting checkpoint data that was never published");
            if let Err(e) = storage.delete(&object.key) {
                tracing::warn!("cannot delete unpublished checkpoint data: {e}");
            }
        }
    }
}

/// Move every checkpoint (entries, data, and files of hosts before the
/// index) under `aside/`.
pub(super) fn move_aside(storage: &Storage, aside: &str) -> Result<()> {
    let legacy = storage.list_root()?.into_iter().filter(|o| o.key.ends_with(".ckpt"));
    // Entries first: a checkpoint half moved is then unpublished, not
    // published without its data.
    let objects = storage.list(INDEX)?.into_iter().chain(storage.list(DATA)?).chain(legacy);
    for object in objects {
        storage.rename(&object.key, &format!("{aside}/{}", object.key))?;
    }
    Ok(())
}
