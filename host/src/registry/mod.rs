//! The module registry of `sluice serve`: uploaded transform components,
//! content-addressed (sha256) and versioned by name, as Redpanda's
//! `rpk transform deploy` keeps them.
//!
//! On disk, under the host's data directory: `modules/blobs/{sha256}.wasm`
//! (written once, never changed) and `modules/index.json` (every name's
//! versions, replaced whole and atomically). A manifest names a module as
//! `name` (its newest version), `name@3` or `sha256:…` ([`Reference`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_sink_api::{FeatureSchema, FeatureSpec, FeatureType};

use crate::wasm::{Kind, Limits, LoadError, Module};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{0}` is not a module name: use 1 to 64 lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit"
    )]
    Name(String),
    #[error("the module is {size} bytes, more than the {limit} bytes a module may have")]
    TooLarge { size: u64, limit: u64 },
    #[error("the upload is not a usable Sluice transform: {0}")]
    Invalid(LoadError),
    #[error("no module {0}")]
    NotFound(String),
    #[error("module {name} is used by pipeline(s) {}: delete or change them first", pipelines.join(", "))]
    InUse { name: String, pipelines: Vec<String> },
    #[error("the module registry in {dir}: {message}")]
    Io { dir: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Largest module accepted. Transforms built with the SDK are a few
/// hundred kilobytes.
pub const MAX_MODULE_BYTES: u64 = crate::wasm::MAX_MODULE_BYTES;

/// The limits an upload is checked under: starting it and asking what it
/// declares must be quick.
pub const CHECK_LIMITS: Limits = Limits { timeout: std::time::Duration::from_secs(2), memory_bytes: 256 << 20 };

/// One uploaded version of a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub name: String,
    /// 1 for the first upload of a name, then one more for each upload of
    /// different bytes.
    pub version: u32,
    /// Hex sha256 of the component's bytes.
    pub sha256: String,
    pub size: u64,
    /// When it was uploaded (RFC 3339).
    pub uploaded: String,
    /// `window` or `aggregate`.
    pub kind: String,
    /// The features the module declares.
    pub features: Vec<Feature>,
}

impl Version {
    /// `name@version`, as a manifest may name it.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A declared feature, as the registry reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
    pub description: String,
}

impl Feature {
    /// The registry's form of a module's declared features.
    pub fn all_of(schema: &FeatureSchema) -> Vec<Feature> {
        schema
            .specs()
            .iter()
            .map(|s| Feature {
                name: s.name.to_string(),
                ty: s.ty.name().to_string(),
                nullable: s.nullable,
                description: s.description.clone(),
            })
            .collect()
    }

    /// The schema `features` (the registry's form) declare; a type it
    /// does not name is left out.
    pub fn schema_of(features: &[Feature]) -> FeatureSchema {
        let specs = features
            .iter()
            .filter_map(|f| {
                Some(FeatureSpec {
                    name: f.name.as_str().into(),
                    ty: FeatureType::from_name(&f.ty)?,
                    nullable: f.nullable,
                    description: f.description.clone(),
                })
            })
            .collect();
        FeatureSchema::new(specs).unwrap_or_default()
    }
}

/// How a manifest names a registered module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// The newest version of a name.
    Latest(String),
    Version(String, u32),
    /// A version by its content, whatever its name.
    Sha256(String),
}

impl Reference {
    /// `name`, `name@3` or `sha256:<64 hex digits>`; `None` for anything
    /// else (a path to a `.wasm` file).
    pub fn parse(text: &str) -> Option<Reference> {
        if let Some(hex) = text.strip_prefix("sha256:") {
            let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            return ok.then(|| Reference::Sha256(hex.to_ascii_lowercase()));
        }
        let (name, version) = match text.split_once('@') {
            Some((name, v)) => (name, Some(v.parse::<u32>().ok()?)),
            None => (text, None),
        };
        // `session.wasm` is a file; a registered name has no extension.
        if !valid_name(name) || name.ends_with(".wasm") {
            return None;
        }
        Some(match version {
            Some(v) => Reference::Version(name.to_string(), v),
            None => Reference::Latest(name.to_string()),
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Latest(name) => write!(f, "{name}"),
            Reference::Version(name, v) => write!(f, "{name}@{v}"),
            Reference::Sha256(hex) => write!(f, "sha256:{hex}"),
        }
    }
}

/// Whether `name` may name a module.
pub fn check_name(name: &str) -> Result<()> {
    if !valid_name(name) || name.ends_with(".wasm") {
        return Err(Error::Name(name.to_string()));
    }
    Ok(())
}

/// What can be told of an upload before compiling it: its name and size.
pub fn check_upload(name: &str, bytes: &[u8]) -> Result<()> {
    check_name(name)?;
    if bytes.len() as u64 > MAX_MODULE_BYTES {
        return Err(Error::TooLarge { size: bytes.len() as u64, limit: MAX_MODULE_BYTES });
    }
    Ok(())
}

/// A name of a module or a pipeline: it names files too.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    modules: BTreeMap<String, Vec<Version>>,
}

/// The registry. Not synchronised: its owner (the supervisor) serialises
/// changes.
#[derive(Debug)]
pub struct Modules {
    dir: PathBuf,
    index: Index,
}

impl Modules {
    /// Open (or create) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<Modules> {
        let io = |e: std::io::Error| Error::Io { dir: dir.display().to_string(), message: e.to_string() };
        std::fs::create_dir_all(dir.join("blobs")).map_err(io)?;
        let index = match std::fs::read(dir.join("index.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Io {
                dir: dir.display().to_string(),
                message: format!("index.json is damaged ({e}); restore it from a backup or remove it to start empty"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(io(e)),
        };
        Ok(Modules { dir: dir.to_path_buf(), index })
    }

    /// Keep `bytes`, checked into `module` ([`Module::inspect`] under
    /// [`CHECK_LIMITS`], after [`check_upload`]), as the next version of
    /// `name`; `kind`, when given, is the kind the uploader expects. Bytes
    /// equal to the newest version's are that version again:
    /// `Ok((version, false))`.
    pub fn record(&mut self, name: &str, bytes: &[u8], module: &Module, kind: Option<Kind>) -> Result<(Version, bool)> {
        check_upload(name, bytes)?;
        if let Some(kind) = kind
            && module.kind() != kind
        {
            return Err(Error::Invalid(LoadError::WrongKind {
                path: name.to_string(),
                expected: kind,
                found: module.kind(),
            }));
        }
        let sha256 = format!("{:x}", Sha256::digest(bytes));
        if let Some(newest) = self.index.modules.get(name).and_then(|v| v.last())
            && newest.sha256 == sha256
        {
            return Ok((newest.clone(), false));
        }
        let blob = self.blob(&sha256);
        if !blob.exists() {
            crate::files::write_atomic(&blob, bytes).map_err(|e| self.io(e))?;
        }
        let versions = self.index.modules.entry(name.to_string()).or_default();
        let version = Version {
            name: name.to_string(),
            version: versions.last().map_or(1, |v| v.version + 1),
            sha256,
            size: bytes.len() as u64,
            uploaded: crate::time::format_ms(crate::time::now_ms()),
            kind: module.kind().name().to_string(),
            features: Feature::all_of(module.schema()),
        };
        versions.push(version.clone());
        if let Err(e) = self.save() {
            // Not kept: the index on disk does not have it either.
            if let Some(v) = self.index.modules.get_mut(name) {
                v.pop();
                if v.is_empty() {
                    self.index.modules.remove(name);
                }
            }
            return Err(e);
        }
        tracing::info!(module = name, version = version.version, sha256 = %version.sha256, "module uploaded");
        Ok((version, true))
    }

    /// Every name and its versions, oldest first.
    pub fn list(&self) -> &BTreeMap<String, Vec<Version>> {
        &self.index.modules
    }

    /// The versions of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Result<&[Version]> {
        self.index.modules.get(name).map(Vec::as_slice).ok_or_else(|| Error::NotFound(name.to_string()))
    }

    /// The version `reference` names and the path of its bytes.
    pub fn resolve(&self, reference: &Reference) -> Result<(Version, PathBuf)> {
        let found = match reference {
            Reference::Latest(name) => self.index.modules.get(name).and_then(|v| v.last()),
            Reference::Version(name, n) => {
                self.index.modules.get(name).and_then(|v| v.iter().find(|v| v.version == *n))
            }
            Reference::Sha256(hex) => self.index.modules.values().flatten().find(|v| v.sha256 == *hex),
        };
        let version = found.ok_or_else(|| Error::NotFound(reference.to_string()))?;
        Ok((version.clone(), self.blob(&version.sha256)))
    }

    /// Remove `name` and every version of it. `users` names the pipelines
    /// that use a version: if any does, nothing is removed.
    pub fn delete(&mut self, name: &str, users: impl Fn(&Version) -> Vec<String>) -> Result<Vec<Version>> {
        let versions = self.versions(name)?;
        let mut pipelines: Vec<String> = versions.iter().flat_map(&users).collect();
        if !pipelines.is_empty() {
            pipelines.sort();
            pipelines.dedup();
            return Err(Error::InUse { name: name.to_string(), pipelines });
        }
        let removed = self.index.modules.remove(name).unwrap_or_default();
        if let Err(e) = self.save() {
            self.index.modules.insert(name.to_string(), removed);
            return Err(e);
        }
        // A blob another name still has stays.
        for v in &removed {
            if !self.index.modules.values().flatten().any(|o| o.sha256 == v.sha256) {
                let _ = std::fs::remove_file(self.blob(&v.sha256));
            }
        }
        tracing::info!(module = name, versions = removed.len(), "module deleted");
        Ok(removed)
    }

    fn blob(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{sha256}.wasm"))
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.index).map_err(|e| self.io(std::io::Error::other(e)))?;
        crate::files::write_atomic(&self.dir.join("index.json"), &json).map_err(|e| self.io(e))
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io { dir: self.dir.display().to_string(), message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_go_to_the_registry_s_form_and_back() {
        let declared = FeatureSchema::new(vec![FeatureSpec {
            name: "items".into(),
            ty: FeatureType::Strs,
            nullable: true,
            description: "The items.".into(),
        }])
        .unwrap_or_default();
        let listed = Feature::all_of(&declared);
        assert_eq!(listed[0].ty, "list<string>");
        assert_eq!(Feature::schema_of(&listed), declared);
    }

    #[test]
    fn references_are_names_versions_or_digests_and_anything_else_is_a_path() {
        let hex = "ab".repeat(32);
        assert_eq!(Reference::parse("session-features"), Some(Reference::Latest("session-features".into())));
        assert_eq!(Reference::parse("tx_velocity@12"), Some(Reference::Version("tx_velocity".into(), 12)));
        assert_eq!(Reference::parse(&format!("sha256:{}", hex.to_uppercase())), Some(Reference::Sha256(hex)));
        for path in ["modules/a.wasm", "a.wasm", "./a", "/abs/a", "A", "a@", "a@x", "sha256:abc", "", "a b"] {
            assert_eq!(Reference::parse(path), None, "{path}");
        }
        assert_eq!(Reference::parse(&"a".repeat(65)), None);
    }
}
