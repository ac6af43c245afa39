//! Where checkpoints are kept: an object store (the `object_store` crate),
//! a local directory by default or an S3-compatible bucket by
//! configuration. Only whole objects are written and read, and nothing
//! relies on renaming: a checkpoint is published by an object written
//! after its data (see [`super::index`]).
//!
//! The store's API is asynchronous; checkpoints are written from the
//! blocking pool and restored from the reading thread, so each call runs
//! on the process's I/O runtime ([`crate::io_runtime`]) and is waited for.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path as FsPath;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{CheckpointConfig, Error, Result};

/// An object: its key under the checkpoints' root, its size and when it
/// was last written.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub modified_ms: i64,
}

/// The checkpoints' root in an object store.
#[derive(Clone)]
pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    root: Path,
    /// The root as people name it: the directory, or the URL.
    shown: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("at", &self.shown).finish_non_exhaustive()
    }
}

/// The URL schemes `checkpoint.url` takes.
pub const SCHEMES: [&str; 2] = ["s3", "s3a"];

/// Whether `key` is an option of the S3 store (`aws_endpoint`, …).
pub fn s3_option(key: &str) -> bool {
    key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>().is_ok()
}

impl Storage {
    /// The store `config` names: its directory (which must exist) or its
    /// URL with its options (and the `AWS_*` environment variables).
    pub fn open(config: &CheckpointConfig) -> Result<Storage> {
        match (&config.dir, &config.url) {
            (Some(dir), _) => Self::local(dir),
            (None, Some(url)) => Self::s3(url, &config.options),
            (None, None) => Err(Error::Dir { dir: String::new(), message: "no `dir` or `url` is given".into() }),
        }
    }

    /// [`Storage::open`], a directory created first if needed.
    pub fn create(config: &CheckpointConfig) -> Result<Storage> {
        if let Some(dir) = &config.dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Dir { dir: dir.display().to_string(), message: e.to_string() })?;
        }
        Self::open(config)
    }

    /// Checkpoints in a local directory; each object is synced to disk as
    /// it is written.
    pub fn local(dir: &FsPath) -> Result<Storage> {
        let shown = dir.display().to_string();
        let dir_err = |message: String| Error::Dir { dir: shown.clone(), message };
        let local = LocalFileSystem::new_with_prefix(dir).map_err(|e| dir_err(e.to_string()))?;
        Ok(Storage { objects: Arc::new(local.with_fsync(true)), root: Path::default(), shown })
    }

    /// Checkpoints under `s3://bucket/prefix`.
    fn s3(url: &str, options: &BTreeMap<String, String>) -> Result<Storage> {
        let storage_err = |message: String| Error::Dir { dir: url.to_string(), message };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| storage_err("not a URL".into()))?;
        if !SCHEMES.contains(&scheme) {
            return Err(storage_err(format!("scheme `{scheme}` is not supported (use s3://bucket/prefix)")));
        }
        let prefix = rest.split_once('/').map_or("", |(_, p)| p);
        let mut builder = AmazonS3Builder::from_env().with_url(url);
        for (key, value) in options {
            let parsed = key
                .to_ascii_lowercase()
                .parse::<AmazonS3ConfigKey>()
                .map_err(|_| storage_err(format!("`{key}` is not an option of the S3 store")))?;
            builder = builder.with_config(parsed, value);
        }
        let s3 = builder.build().map_err(|e| storage_err(e.to_string()))?;
        let root = Path::parse(prefix).map_err(|e| storage_err(e.to_string()))?;
        Ok(Storage { objects: Arc::new(s3), root, shown: url.trim_end_matches('/').to_string() })
    }

    /// The root as people name it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// An object's key as people name it.
    pub fn show(&self, key: &str) -> String {
        format!("{}/{key}", self.shown)
    }

    fn path(&self, key: &str) -> Path {
        key.split('/').fold(self.root.clone(), |p, part| p.join(part))
    }

    fn err(&self, key: &str, source: object_store::Error) -> Error {
        Error::Storage { at: self.show(key), source: Box::new(source) }
    }

    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let (objects, path) = (self.objects.clone(), self.path(key));
        run(async move { objects.put(&path, PutPayload::from(bytes)).await })?.map_err(|e| self.err(key, e))?;
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let (objects, path) = (self.objects.clone(), self.path(key));
        let bytes = run(async move { objects.get(&path).await?.bytes().await })?.map_err(|e| self.err(key, e))?;
        Ok(bytes.to_vec())
    }

    /// Delete an object; one already gone is no error.
    pub fn delete(&self, key: &str) -> Result<()> {
        let (objects, path) = (self.objects.clone(), self.path(key));
        match run(async move { objects.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Move an object (on S3: a copy, then a delete).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (objects, source, target) = (self.objects.clone(), self.path(from), self.path(to));
        run(async move { objects.rename(&source, &target).await })?.map_err(|e| self.err(from, e))
    }

    /// Every object under `folder`, at any depth.
    pub fn list(&self, folder: &str) -> Result<Vec<Object>> {
        self.listing(folder, true)
    }

    /// The objects directly in the root, not in its folders.
    pub fn list_root(&self) -> Result<Vec<Object>> {
        self.listing("", false)
    }

    /// The objects under `folder` (`""`: the root), only those directly in
    /// it unless `deep`; keys relative to the root.
    fn listing(&self, folder: &str, deep: bool) -> Result<Vec<Object>> {
        let objects = self.objects.clone();
        let at = if folder.is_empty() { self.root.clone() } else { self.path(folder) };
        let prefix = (!self.root.as_ref().is_empty()).then(|| self.root.clone());
        let listed = run(async move {
            // The store's root is named by no path at all.
            let at = Some(at).filter(|p| !p.as_ref().is_empty());
            if deep {
                objects.list(at.as_ref()).try_collect::<Vec<_>>().await
            } else {
                objects.list_with_delimiter(at.as_ref()).await.map(|l| l.objects)
            }
        })?;
        let listed = match listed {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.err(folder, e)),
        };
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let key = match &prefix {
                    Some(p) => meta.location.prefix_match(p)?.map(|part| part.as_ref().to_string()).collect(),
                    None => meta.location.parts().map(|part| part.as_ref().to_string()).collect::<Vec<_>>(),
                };
                Some(Object { key: key.join("/"), size: meta.size, modified_ms: meta.last_modified.timestamp_millis() })
            })
            .collect())
    }
}

/// Run `call` on the process's I/O runtime and wait for it.
fn run<T: Send + 'static>(call: impl Future<Output = T> + Send + 'static) -> Result<T> {
    crate::io_runtime::run(call).map_err(Error::Runtime)
}
