//! The schema registry `sluice serve` hosts: subjects, their versions,
//! global schema ids, compatibility levels and modes, with the semantics
//! of Confluent's Schema Registry, persisted in the data directory.
//!
//! Every change is written to one JSON file (a new file, then renamed
//! over the old one), before it is answered: a restarted host serves the
//! same ids. Registries hold few, small schemas; the whole state is kept
//! in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::{Deserialize, Serialize};

use super::compatibility::Level;

/// The file, in the registry's directory.
const FILE: &str = "registry.json";

/// A schema as a client sends it to be registered or looked up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    pub schema: String,
    #[serde(default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<Reference>,
    /// The id to register it under: only in `IMPORT` mode.
    #[serde(default)]
    pub id: Option<u32>,
}

/// A named reference to another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema the registry holds, under its global id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    /// As first registered.
    schema: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    references: Vec<Reference>,
    /// What makes two registrations the same schema: the schema's JSON
    /// without insignificant whitespace, and its references.
    identity: String,
}

/// One version of a subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Version {
    version: i32,
    id: u32,
    #[serde(default)]
    deleted: bool,
}

/// A registry's modes (Confluent's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    #[default]
    Readwrite,
    Readonly,
    ReadonlyOverride,
    Import,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, RegistryError> {
        serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase()))
            .map_err(|_| RegistryError::InvalidMode(text.to_string()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::ReadonlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The id the next new schema gets.
    next_id: u32,
    schemas: BTreeMap<u32, Stored>,
    subjects: BTreeMap<String, Vec<Version>>,
    #[serde(default)]
    compatibility: Option<Level>,
    #[serde(default)]
    subject_compatibility: BTreeMap<String, Level>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    subject_mode: BTreeMap<String, Mode>,
}

/// A version, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: u32,
    pub schema: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// A schema by id, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaById {
    pub schema: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// A version of a subject, as a route names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(i32),
}

impl VersionRef {
    /// `latest`, `-1`, or a version from 1 to 2^31-1.
    pub fn parse(text: &str) -> Result<VersionRef, RegistryError> {
        match text {
            "latest" | "-1" => Ok(VersionRef::Latest),
            _ => match text.parse::<i32>() {
                Ok(n) if n >= 1 => Ok(VersionRef::Number(n)),
                _ => Err(RegistryError::InvalidVersion(text.to_string())),
            },
        }
    }
}

/// Confluent's errors, each with its code and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotConfigured(String),
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {details}"
    )]
    Incompatible { subject: String, details: String },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the \
         string \"latest\""
    )]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level {0}. Valid values are none, backward, forward, full, backward_transitive, \
         forward_transitive, and full_transitive"
    )]
    InvalidCompatibility(String),
    #[error("Invalid mode {0}. Valid values are READWRITE, READONLY, READONLY_OVERRIDE, and IMPORT")]
    InvalidMode(String),
    #[error("{0}")]
    NotPermitted(String),
    #[error("One or more references exist to the schema {{subject={0}, version={1}}}")]
    ReferenceExists(String, i32),
    #[error("Error in the backing data store: {0}")]
    Store(String),
}

impl RegistryError {
    /// Confluent's `error_code`.
    pub fn code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted(..) => 40406,
            RegistryError::VersionNotSoftDeleted(..) => 40407,
            RegistryError::SubjectCompatibilityNotConfigured(_) => 40408,
            RegistryError::SubjectModeNotConfigured(_) => 40409,
            RegistryError::Incompatible { .. } => 40901,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibility(_) => 42203,
            RegistryError::InvalidMode(_) => 42204,
            RegistryError::NotPermitted(_) => 42205,
            RegistryError::ReferenceExists(..) => 42206,
            RegistryError::Store(_) => 50001,
        }
    }

    /// The HTTP status that goes with it: the code's first three digits.
    pub fn status(&self) -> u16 {
        (self.code() / 100) as u16
    }
}

/// The outcome of a compatibility test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatibility {
    pub is_compatible: bool,
    /// Why not, one line per earlier version it fails against.
    pub messages: Vec<String>,
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    state: Mutex<State>,
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl Registry {
    /// The registry kept in `dir` (made if needed), as it was last
    /// written.
    pub fn open(dir: &Path) -> Result<Registry> {
        let store = |e: String| RegistryError::Store(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(|e| store(e.to_string()))?;
        let path = dir.join(FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| store(format!("{FILE} is not readable: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State { next_id: 1, ..State::default() },
            Err(e) => return Err(store(e.to_string())),
        };
        Ok(Registry { path, state: Mutex::new(state) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write `state` out; the change is kept only if this succeeds.
    fn save(&self, state: &State) -> Result<()> {
        let store = |e: String| RegistryError::Store(e);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| store(e.to_string()))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| store(e.to_string()))?;
        std::io::Write::write_all(&mut file, &bytes).map_err(|e| store(e.to_string()))?;
        file.as_file().sync_all().map_err(|e| store(e.to_string()))?;
        file.persist(&self.path).map_err(|e| store(e.to_string()))?;
        Ok(())
    }

    /// Apply `change` to a copy of the state, write it, and keep it.
    fn change<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.state();
        let before = serde_json::to_value(&*state).map_err(|e| RegistryError::Store(e.to_string()))?;
        let answer = change(&mut state)?;
        if serde_json::to_value(&*state).ok().as_ref() != Some(&before)
            && let Err(e) = self.save(&state)
        {
            // Not written: not changed.
            *state = serde_json::from_value(before).map_err(|e| RegistryError::Store(e.to_string()))?;
            return Err(e);
        }
        Ok(answer)
    }

    /// Register `request` under `subject`: its id, existing if the subject
    /// or the registry has the same schema already.
    pub fn register(&self, subject: &str, request: &SchemaRequest) -> Result<u32> {
        self.change(|state| {
            let mode = state.subject_mode.get(subject).copied().unwrap_or(state.mode);
            match (mode, request.id) {
                (Mode::Readonly | Mode::ReadonlyOverride, _) => {
                    return Err(RegistryError::NotPermitted(format!("Subject {subject} is in read-only mode")));
                }
                (Mode::Readwrite, Some(_)) => {
                    return Err(RegistryError::NotPermitted(format!(
                        "Subject {subject} is not in import mode: a schema id cannot be given"
                    )));
                }
                _ => {}
            }
            let identity = identity(request)?;
            let candidate = parse(state, &request.schema, &request.references)?;
            let versions = state.subjects.get(subject).map(Vec::as_slice).unwrap_or_default();
            if let Some(v) = versions.iter().find(|v| !v.deleted && state.schemas[&v.id].identity == identity) {
                return Ok(v.id);
            }
            let level = level(state, subject);
            let earlier = live_schemas(state, subject)?;
            let failures = level.check(&candidate, &earlier, compatible);
            if !failures.is_empty() {
                return Err(RegistryError::Incompatible { subject: subject.to_string(), details: failures.join("; ") });
            }
            let existing = state.schemas.iter().find(|(_, s)| s.identity == identity).map(|(id, _)| *id);
            let id = match (request.id, existing) {
                (Some(wanted), Some(id)) if wanted != id => {
                    return Err(RegistryError::NotPermitted(format!(
                        "the schema is registered already with id {id}, not {wanted}"
                    )));
                }
                (Some(wanted), None) if state.schemas.contains_key(&wanted) => {
                    return Err(RegistryError::NotPermitted(format!("id {wanted} is another schema's")));
                }
                (Some(wanted), _) => wanted,
                (None, Some(id)) => id,
                (None, None) => state.next_id,
            };
            state.schemas.entry(id).or_insert_with(|| Stored {
                schema: request.schema.clone(),
                references: request.references.clone(),
                identity,
            });
            state.next_id = state.next_id.max(id + 1);
            let versions = state.subjects.entry(subject.to_string()).or_default();
            let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
            versions.push(Version { version, id, deleted: false });
            tracing::info!(subject, version, id, "schema registered");
            Ok(id)
        })
    }

    /// The version of `subject` holding the same schema as `request`.
    pub fn lookup(&self, subject: &str, request: &SchemaRequest, deleted: bool) -> Result<SubjectVersion> {
        let state = self.state();
        let identity = identity(request)?;
        let versions = subject_versions(&state, subject, deleted)?;
        let found = versions.iter().rev().find(|v| state.schemas[&v.id].identity == identity);
        let v = found.ok_or_else(|| RegistryError::SchemaNotFound(format!("of subject '{subject}'")))?;
        Ok(answer(&state, subject, v))
    }

    /// Every subject (with soft-deleted ones if `deleted`), in order.
    pub fn subjects(&self, deleted: bool, prefix: Option<&str>) -> Vec<String> {
        let state = self.state();
        state
            .subjects
            .iter()
            .filter(|(name, versions)| {
                prefix.is_none_or(|p| name.starts_with(p)) && versions.iter().any(|v| deleted || !v.deleted)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>> {
        let state = self.state();
        Ok(subject_versions(&state, subject, deleted)?.iter().map(|v| v.version).collect())
    }

    pub fn version(&self, subject: &str, version: VersionRef, deleted: bool) -> Result<SubjectVersion> {
        let state = self.state();
        let v = find_version(&state, subject, version, deleted)?;
        Ok(answer(&state, subject, &v))
    }

    pub fn schema(&self, id: u32) -> Result<SchemaById> {
        let state = self.state();
        let stored = state.schemas.get(&id).ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))?;
        Ok(SchemaById { schema: stored.schema.clone(), references: stored.references.clone() })
    }

    /// The subjects and versions that hold schema `id`.
    pub fn id_versions(&self, id: u32, deleted: bool) -> Result<Vec<(String, i32)>> {
        let state = self.state();
        if !state.schemas.contains_key(&id) {
            return Err(RegistryError::SchemaNotFound(id.to_string()));
        }
        let mut out = Vec::new();
        for (subject, versions) in &state.subjects {
            for v in versions.iter().filter(|v| v.id == id && (deleted || !v.deleted)) {
                out.push((subject.clone(), v.version));
            }
        }
        Ok(out)
    }

    /// Soft-delete every version of `subject`, or (`permanent`) remove
    /// the versions soft-deleted before: the versions deleted.
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>> {
        self.change(|state| {
            let versions =
                state.subjects.get_mut(subject).ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
            let live: Vec<i32> = versions.iter().filter(|v| !v.deleted).map(|v| v.version).collect();
            if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
                }
                let gone: Vec<i32> = versions.iter().map(|v| v.version).collect();
                referenced(state, subject, None)?;
                state.subjects.remove(subject);
                state.subject_compatibility.remove(subject);
                state.subject_mode.remove(subject);
                return Ok(gone);
            }
            if live.is_empty() {
                return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
            }
            versions.iter_mut().for_each(|v| v.deleted = true);
            Ok(live)
        })
    }

    /// Soft-delete one version, or (`permanent`) remove one soft-deleted
    /// before.
    pub fn delete_version(&self, subject: &str, version: VersionRef, permanent: bool) -> Result<i32> {
        self.change(|state| {
            // A version by number may be soft-deleted already (which is
            // said); `latest` is the latest live one unless permanent.
            let with_deleted = permanent || matches!(version, VersionRef::Number(_));
            let v = find_version(state, subject, version, with_deleted)?;
            if permanent && !v.deleted {
                return Err(RegistryError::VersionNotSoftDeleted(subject.to_string(), v.version));
            }
            if !permanent && v.deleted {
                return Err(RegistryError::VersionSoftDeleted(subject.to_string(), v.version));
            }
            if permanent {
                referenced(state, subject, Some(v.version))?;
            }
            let versions =
                state.subjects.get_mut(subject).ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
            if permanent {
                versions.retain(|x| x.version != v.version);
                if versions.is_empty() {
                    state.subjects.remove(subject);
                }
            } else if let Some(x) = versions.iter_mut().find(|x| x.version == v.version) {
                x.deleted = true;
            }
            Ok(v.version)
        })
    }

    /// Whether `request` could be registered under `subject` as its level
    /// asks, against `version` (the latest, or one), or against every
    /// live version (`None`).
    pub fn test(&self, subject: &str, version: Option<VersionRef>, request: &SchemaRequest) -> Result<Compatibility> {
        let state = self.state();
        let candidate = parse(&state, &request.schema, &request.references)?;
        let level = level(&state, subject);
        let earlier = match version {
            None => live_schemas(&state, subject)?,
            Some(version) => {
                if !state.subjects.contains_key(subject) && version == VersionRef::Latest {
                    return Ok(Compatibility { is_compatible: true, messages: Vec::new() });
                }
                let v = find_version(&state, subject, version, false)?;
                let stored = &state.schemas[&v.id];
                vec![(v.version, parse(&state, &stored.schema, &stored.references)?)]
            }
        };
        // Against one version, the level's direction without its
        // transitivity; against all, the level as registering applies it.
        let level = if version.is_some() { level.non_transitive() } else { level };
        let messages = level.check(&candidate, &earlier, compatible);
        Ok(Compatibility { is_compatible: messages.is_empty(), messages })
    }

    /// The compatibility level of `subject` (`None`: the global one); a
    /// subject without its own is 40408 unless `or_global`.
    pub fn compatibility(&self, subject: Option<&str>, or_global: bool) -> Result<Level> {
        let state = self.state();
        match subject {
            None => Ok(state.compatibility.unwrap_or_default()),
            Some(s) => match state.subject_compatibility.get(s) {
                Some(level) => Ok(*level),
                None if or_global => Ok(state.compatibility.unwrap_or_default()),
                None => Err(RegistryError::SubjectCompatibilityNotConfigured(s.to_string())),
            },
        }
    }

    pub fn set_compatibility(&self, subject: Option<&str>, level: Level) -> Result<Level> {
        self.change(|state| {
            match subject {
                None => state.compatibility = Some(level),
                Some(s) => {
                    state.subject_compatibility.insert(s.to_string(), level);
                }
            }
            Ok(level)
        })
    }

    /// Remove the level of `subject` (or the global one, which is then
    /// the default): the level it had.
    pub fn delete_compatibility(&self, subject: Option<&str>) -> Result<Level> {
        self.change(|state| match subject {
            None => Ok(state.compatibility.take().unwrap_or_default()),
            Some(s) => state
                .subject_compatibility
                .remove(s)
                .ok_or_else(|| RegistryError::SubjectCompatibilityNotConfigured(s.to_string())),
        })
    }

    pub fn mode(&self, subject: Option<&str>, or_global: bool) -> Result<Mode> {
        let state = self.state();
        match subject {
            None => Ok(state.mode),
            Some(s) => match state.subject_mode.get(s) {
                Some(mode) => Ok(*mode),
                None if or_global => Ok(state.mode),
                None => Err(RegistryError::SubjectModeNotConfigured(s.to_string())),
            },
        }
    }

    pub fn set_mode(&self, subject: Option<&str>, mode: Mode) -> Result<Mode> {
        self.change(|state| {
            match subject {
                None => state.mode = mode,
                Some(s) => {
                    state.subject_mode.insert(s.to_string(), mode);
                }
            }
            Ok(mode)
        })
    }

    pub fn delete_mode(&self, subject: &str) -> Result<Mode> {
        self.change(|state| {
            state.subject_mode.remove(subject).ok_or_else(|| RegistryError::SubjectModeNotConfigured(subject.into()))
        })
    }
}

/// What makes two schemas the same: their JSON without insignificant
/// whitespace (object keys in order), their type and their references.
fn identity(request: &SchemaRequest) -> Result<String> {
    let schema_type = request.schema_type.as_deref().unwrap_or("AVRO");
    if !schema_type.eq_ignore_ascii_case("AVRO") {
        return Err(RegistryError::InvalidSchema(format!("this registry holds Avro schemas only, not {schema_type}")));
    }
    let json: serde_json::Value =
        serde_json::from_str(&request.schema).map_err(|e| RegistryError::InvalidSchema(format!("not JSON: {e}")))?;
    let references = serde_json::to_string(&request.references).unwrap_or_default();
    Ok(format!("{json}{references}"))
}

/// `schema` parsed, with the schemas its references name.
fn parse(state: &State, schema: &str, references: &[Reference]) -> Result<apache_avro::Schema> {
    let mut texts = Vec::new();
    collect_references(state, references, &mut texts, 0)?;
    let (parsed, _) = apache_avro::Schema::parse_str_with_list(schema, &texts)
        .map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok(parsed)
}

fn collect_references(state: &State, references: &[Reference], into: &mut Vec<String>, depth: usize) -> Result<()> {
    if depth > 32 {
        return Err(RegistryError::InvalidSchema("references nest deeper than 32".into()));
    }
    for r in references {
        let v = find_version(state, &r.subject, VersionRef::Number(r.version), false).map_err(|_| {
            RegistryError::InvalidSchema(format!(
                "reference {}: no version {} of subject {}",
                r.name, r.version, r.subject
            ))
        })?;
        let stored = &state.schemas[&v.id];
        collect_references(state, &stored.references, into, depth + 1)?;
        into.push(stored.schema.clone());
    }
    Ok(())
}

/// Whether data written with `writer` can be read with `reader`, by the
/// crate's check.
fn compatible(writer: &apache_avro::Schema, reader: &apache_avro::Schema) -> Result<(), String> {
    SchemaCompatibility::can_read(writer, reader).map_err(|e| e.to_string())
}

fn level(state: &State, subject: &str) -> Level {
    state.subject_compatibility.get(subject).copied().or(state.compatibility).unwrap_or_default()
}

/// The live versions of `subject`, parsed, oldest first.
fn live_schemas(state: &State, subject: &str) -> Result<Vec<(i32, apache_avro::Schema)>> {
    let versions = state.subjects.get(subject).map(Vec::as_slice).unwrap_or_default();
    versions
        .iter()
        .filter(|v| !v.deleted)
        .map(|v| {
            let stored = &state.schemas[&v.id];
            Ok((v.version, parse(state, &stored.schema, &stored.references)?))
        })
        .collect()
}

fn subject_versions(state: &State, subject: &str, deleted: bool) -> Result<Vec<Version>> {
    let versions: Vec<Version> = state
        .subjects
        .get(subject)
        .map(|vs| vs.iter().filter(|v| deleted || !v.deleted).cloned().collect())
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(RegistryError::SubjectNotFound(subject.to_string()));
    }
    Ok(versions)
}

fn find_version(state: &State, subject: &str, version: VersionRef, deleted: bool) -> Result<Version> {
    let versions = subject_versions(state, subject, deleted)?;
    let found = match version {
        VersionRef::Latest => versions.last(),
        VersionRef::Number(n) => versions.iter().find(|v| v.version == n),
    };
    let number = match version {
        VersionRef::Latest => "latest".to_string(),
        VersionRef::Number(n) => n.to_string(),
    };
    found.cloned().ok_or(RegistryError::VersionNotFound(number))
}

/// Refuse to remove a version (all of `subject`'s, with `None`) another
/// schema references.
fn referenced(state: &State, subject: &str, version: Option<i32>) -> Result<()> {
    for v in state.subjects.values().flatten() {
        let refs = &state.schemas[&v.id].references;
        if let Some(r) = refs.iter().find(|r| r.subject == subject && version.is_none_or(|n| n == r.version)) {
            return Err(RegistryError::ReferenceExists(subject.to_string(), r.version));
        }
    }
    Ok(())
}

fn answer(state: &State, subject: &str, v: &Version) -> SubjectVersion {
    let stored = &state.schemas[&v.id];
    SubjectVersion {
        subject: subject.to_string(),
        version: v.version,
        id: v.id,
        schema: stored.schema.clone(),
        references: stored.references.clone(),
    }
}
