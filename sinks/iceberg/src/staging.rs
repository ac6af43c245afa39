//! Staging files: the data files of a barrier, listed once they are
//! closed and before the checkpoint is written, so that a run that dies
//! before its commit can have them published by the next.
//!
//! One JSON file per run and barrier, `{run}-{barrier}.json`, under
//! `{table}/sluice-staging/{pipeline}/`, written under a temporary name,
//! synced and renamed: a file with its final name is whole.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use iceberg::spec::{DataFile, deserialize_data_file_from_json, serialize_data_file_to_json};
use iceberg::table::Table;
use serde::{Deserialize, Serialize};

/// A staging file older than this, of a barrier its run never
/// checkpointed, is deleted: the run is surely gone.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

/// A staging file found in the directory.
#[derive(Debug)]
pub struct Entry {
    pub run: String,
    pub barrier: u64,
    pub path: PathBuf,
    pub age: Duration,
}

#[derive(Serialize, Deserialize)]
struct Staged {
    run: String,
    barrier: u64,
    /// Each data file as Iceberg's JSON form of a manifest entry.
    files: Vec<String>,
}

impl Staging {
    /// The staging directory of `pipeline` in the table at `location`
    /// (a local path or `file://` URL).
    pub fn open(location: &str, pipeline: &str) -> Result<Staging, String> {
        let root = location.strip_prefix("file://").or_else(|| location.strip_prefix("file:")).unwrap_or(location);
        let dir = Path::new(root).join("sluice-staging").join(pipeline);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Staging { dir })
    }

    fn path(&self, run: &str, barrier: u64) -> PathBuf {
        self.dir.join(format!("{run}-{barrier:08}.json"))
    }

    /// List `files` as staged by `run` at `barrier`, durably.
    pub fn write(&self, run: &str, barrier: u64, files: &[DataFile], table: &Table) -> Result<(), String> {
        let metadata = table.metadata();
        let files = files
            .iter()
            .map(|f| {
                serialize_data_file_to_json(f.clone(), metadata.default_partition_type(), metadata.format_version())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let text = serde_json::to_vec(&Staged { run: run.to_string(), barrier, files }).map_err(|e| e.to_string())?;
        let path = self.path(run, barrier);
        let tmp = path.with_extension("tmp");
        let io = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }

    /// Every whole staging file.
    pub fn list(&self) -> Result<Vec<Entry>, String> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut out = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Some((run, barrier)) = stem.rsplit_once('-') else { continue };
            let Ok(barrier) = barrier.parse::<u64>() else { continue };
            let age = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
            out.push(Entry { run: run.to_string(), barrier, path, age: age.unwrap_or_default() });
        }
        Ok(out)
    }

    /// The data files of a staging file, bound to `table`'s schema.
    pub fn read(&self, entry: &Entry, table: &Table) -> Result<Vec<DataFile>, String> {
        let shown = entry.path.display();
        let text = std::fs::read(&entry.path).map_err(|e| format!("{shown}: {e}"))?;
        let staged: Staged = serde_json::from_slice(&text).map_err(|e| format!("{shown}: {e}"))?;
        let metadata = table.metadata();
        staged
            .files
            .iter()
            .map(|f| {
                deserialize_data_file_from_json(
                    f,
                    metadata.default_partition_spec_id(),
                    metadata.default_partition_type(),
                    metadata.current_schema(),
                )
                .map_err(|e| format!("{shown}: {e}"))
            })
            .collect()
    }

    pub fn remove(&self, entry: &Entry) {
        remove(&entry.path);
    }

    pub fn remove_barrier(&self, run: &str, barrier: u64) {
        remove(&self.path(run, barrier));
    }
}

/// A staging file that stays behind is published or dropped again later:
/// a failure to delete is only logged.
fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "cannot delete a staging file: {e}");
        }
        _ => {}
    }
}
