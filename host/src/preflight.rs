//! A manifest checked against the world before it runs: the files it reads
//! and writes, the librdkafka properties it passes through, the brokers,
//! topics and Redis servers it talks to. `sluice validate` reports what
//! `sluice run` would stop on, in the same words and at the same line.
//!
//! The checks that need a network (reaching a broker or Redis, a topic
//! existing) run when `online`; the rest look only at the manifest and the
//! local filesystem, and change nothing in either.

use std::collections::BTreeMap;
use std::path::Path;

use sluice_sink_api::{Access, Preflight, Problem};

use crate::files::{Identity, identity};
use crate::manifest::{Finding, Manifest, ManifestPath, field_at};

/// What a check is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Also reach the brokers and Redis servers.
    pub online: bool,
    /// The run starts over, so checkpoints of another pipeline are no
    /// problem.
    pub fresh: bool,
    /// Also ask the schema registry an Avro manifest reads from (`validate`
    /// does; a run starts without it, and waits for it to answer).
    pub registry: bool,
    /// Fields refused already (a path outside a host's files directory, a
    /// module not registered): what they name is not looked at.
    pub refused: Vec<String>,
}

impl Checks {
    fn looks_at(&self, at: &str) -> bool {
        !self.refused.iter().any(|r| r == at)
    }
}

/// [`check`], and the manifest's module compiled on `engine` (`None` when
/// it cannot be: a finding at `transform.module` says why, unless that
/// field was refused already).
pub fn check_with_module(
    manifest: &Manifest,
    engine: &crate::wasm::Engine,
    checks: &Checks,
) -> (Option<crate::wasm::Module>, Vec<Finding>) {
    let mut findings = check(manifest, checks);
    if !checks.looks_at("transform.module") {
        return (None, findings);
    }
    let module = match crate::pipeline::load_module(&manifest.lower().transform, engine) {
        Ok(module) => {
            let key_type = manifest.events.key_type;
            for (entry, _, sink) in manifest.outputs.entries().filter(|(entry, ..)| checks.looks_at(entry)) {
                findings.extend(located(&entry, sink.check_features(module.schema(), key_type)));
            }
            Some(module)
        }
        Err(e) => {
            let hint = match &e {
                crate::pipeline::Error::Module(m) => m.hint(),
                _ => "see the message above",
            };
            findings.push(("transform.module".into(), e.to_string(), Some(hint.into())));
            None
        }
    };
    (module, findings)
}

/// Every problem found; none means the pipeline can start. In the
/// manifest's order: the source, each sink, the state, the checkpoints;
/// for each, the files it names and then its own checks of the world.
pub fn check(manifest: &Manifest, checks: &Checks) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut files = Files::default();
    let mut manifest_paths = manifest.clone();
    let mut paths = manifest_paths.named_paths().into_iter().peekable();
    // Each component's paths come before the next's.
    let mut check_paths_under = |entry: &str, found: &mut Vec<Finding>| {
        while let Some(named) = paths.next_if(|p| p.field == entry || p.field.starts_with(&format!("{entry}."))) {
            if checks.looks_at(&named.field) {
                found.extend(files.check(&named));
            }
        }
    };
    check_paths_under("source", &mut found);
    if checks.looks_at("source.path") {
        found.extend(file_format(manifest));
    }
    let source = manifest.source.component();
    let skip = skipped("source", source.client_properties(), checks);
    found.extend(located("source", source.preflight(&Preflight { online: checks.online, skip: &skip })));
    check_paths_under("events", &mut found);
    if checks.registry && checks.looks_at("events.registry") {
        found.extend(registry(manifest));
    }
    for (entry, _, sink) in manifest.outputs.entries() {
        check_paths_under(&entry, &mut found);
        let skip = skipped(&entry, sink.client_properties(), checks);
        found.extend(located(&entry, sink.preflight(&Preflight { online: checks.online, skip: &skip })));
    }
    check_paths_under("state", &mut found);
    check_paths_under("checkpoint", &mut found);
    if let Some(c) = &manifest.checkpoint
        && checks.looks_at(&format!("checkpoint.{}", c.field()))
    {
        let field = format!("checkpoint.{}", c.field());
        // An object store is looked at online only.
        let listed = (c.dir.is_some() || checks.online).then(|| crate::checkpoint::existing(c));
        match listed {
            // A directory's own problems are the path checks' to say.
            Some(Err(e)) if c.dir.is_none() => found.push((
                field,
                e.to_string(),
                Some(
                    "check the bucket in `checkpoint.url` and `checkpoint.options` (endpoint, region, credentials)"
                        .into(),
                ),
            )),
            Some(Ok(Some((storage, listed)))) if !checks.fresh => {
                let layout = manifest.lower().layout();
                if let Some((l, mismatch)) = crate::checkpoint::refused(&listed, &manifest.name, &layout).next() {
                    found.push((
                        field,
                        format!(
                            "{} was written by an incompatible pipeline: it has {}, the manifest has {}",
                            storage.show(&l.data),
                            mismatch.found,
                            mismatch.expected
                        ),
                        Some("run with --fresh to start over (the old checkpoints are moved aside)".into()),
                    ));
                }
            }
            _ => {}
        }
    }
    found
}

/// A file source's file in `events.format`: JSON lines for `json`, an Avro
/// object container file for `avro`. (A file that cannot be read is the
/// path checks' to say.)
fn file_format(manifest: &Manifest) -> Vec<Finding> {
    let crate::source::SourceConfig::File(file) = &manifest.source else { return Vec::new() };
    let Ok(container) = crate::source::avro_container_schema(&file.path) else { return Vec::new() };
    let path = file.path.display();
    let (message, hint) = match (manifest.events.format, container) {
        (crate::decode::Format::Json, Some(_)) => {
            (format!("{path} is an Avro object container file, and events.format is json"), "set events.format: avro")
        }
        (crate::decode::Format::Avro, None) => (
            format!("{path} is not an Avro object container file, and events.format is avro"),
            "for JSON lines, set events.format: json",
        ),
        (crate::decode::Format::Avro, Some(Err(why))) => (format!("{path}: {why}"), "see the message"),
        (crate::decode::Format::Avro, Some(Ok(writer))) => {
            match crate::decode::avro::refusal(&manifest.lower().schema, &writer) {
                Some(why) => (
                    format!("{path}: its writer schema cannot be read as the declared fields: {why}"),
                    "declare the fields the file's records have (events.fields)",
                ),
                None => return Vec::new(),
            }
        }
        (crate::decode::Format::Json, None) => return Vec::new(),
    };
    vec![("source.path".into(), message, Some(hint.into()))]
}

/// The schema registry an Avro manifest reads its writer schemas from:
/// reachable with its credentials, and holding the subject of each source
/// topic's values (`{topic}-value`, the serializers' TopicNameStrategy).
fn registry(manifest: &Manifest) -> Vec<Finding> {
    let (Some(config), crate::decode::Format::Avro) = (&manifest.events.registry, manifest.events.format) else {
        return Vec::new();
    };
    let client = match crate::schema_registry::Client::new(config) {
        Ok(client) => client,
        Err(e) => return vec![("events.registry".into(), e.to_string(), None)],
    };
    let topics = match &manifest.source {
        crate::source::SourceConfig::Kafka(kafka) => kafka.topics.clone(),
        crate::source::SourceConfig::File(_) => Vec::new(),
    };
    let mut found = Vec::new();
    for topic in topics {
        let subject = format!("{topic}-value");
        match crate::schema_registry::subject_blocking(&client, &subject) {
            Ok(()) => {}
            Err(e @ crate::schema_registry::ClientError::NotFound { .. }) => found.push((
                "source.topics".into(),
                format!("topic `{topic}`: {e}"),
                Some(format!(
                    "a producer's serializer registers `{subject}` as it first writes; check the topic, or \
                     validate again once it has"
                )),
            )),
            Err(e) => {
                let hint = "a pipeline started without it waits for it, reading nothing";
                found.push(("events.registry.url".into(), e.to_string(), Some(hint.into())));
                break;
            }
        }
    }
    found
}

/// A component's problems at their fields in the manifest.
fn located(entry: &str, problems: Vec<Problem>) -> Vec<Finding> {
    problems
        .into_iter()
        .map(|p| (field_at(entry, &p.field), p.message, Some(p.hint).filter(|h| !h.is_empty())))
        .collect()
}

/// The fields under `entry` (relative to it) a component's preflight is
/// to leave alone: those refused already, and the client properties that
/// load code or run a command ([`crate::librdkafka::loads_code`]), which
/// librdkafka would act on as the check's client is created. A check
/// loads and runs nothing.
fn skipped(entry: &str, properties: Option<&BTreeMap<String, String>>, checks: &Checks) -> Vec<String> {
    let loading =
        properties.into_iter().flat_map(BTreeMap::keys).filter(|k| crate::librdkafka::loads_code(k).is_some());
    let prefix = format!("{entry}.");
    let refused = checks.refused.iter().filter_map(|r| r.strip_prefix(&prefix)).map(str::to_string);
    loading.map(|k| format!("properties.{k}")).chain(refused).collect()
}

/// The files named so far, to find two components on one file.
#[derive(Default)]
struct Files {
    seen: Vec<(String, Identity, Access)>,
}

impl Files {
    /// Whether the component can use the path as it says, and (a file)
    /// whether another reads or writes it too.
    fn check(&mut self, named: &ManifestPath<'_>) -> Vec<Finding> {
        let path: &Path = named.path;
        let problem = match named.access {
            Access::ReadFile => readable(path),
            Access::WriteFile => writable(path),
            Access::WriteFolder => writable_dir(path),
        };
        let mut found = Vec::new();
        if let Some(problem) = problem {
            found.push((named.field.clone(), problem, Some(named.access.hint().into())));
        }
        if named.access == Access::WriteFolder {
            return found;
        }
        let id = identity(path);
        if named.access == Access::WriteFile
            && let Some((other, _, access)) = self.seen.iter().find(|(_, seen, _)| *seen == id)
        {
            let shown = path.display();
            let (message, hint) = if *access == Access::ReadFile {
                (
                    format!("`{shown}` is the source file: writing it would destroy the input"),
                    "write outputs to other files than the one read",
                )
            } else {
                (
                    format!("`{shown}` is also written by `{other}`: their lines would mix"),
                    "give each output its own file",
                )
            };
            found.push((named.field.clone(), message, Some(hint.into())));
        }
        self.seen.push((named.field.clone(), id, named.access));
        found
    }
}

/// Why files could not be written in `dir`, if they could not.
/// Creates nothing: an existing folder gets an unnamed temporary file, a
/// new one's nearest existing parent too.
fn writable_dir(dir: &Path) -> Option<String> {
    let shown = dir.display();
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let folder = absolute.ancestors().find(|a| a.exists())?;
    if !folder.is_dir() {
        return Some(format!("cannot create `{shown}`: `{}` is not a folder", folder.display()));
    }
    tempfile::tempfile_in(folder).err().map(|e| format!("cannot write in `{}`: {e}", folder.display()))
}

/// Why `path` cannot be read as a source, if it cannot.
fn readable(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) => Some(format!("cannot read `{}`: {e}", path.display())),
        Ok(m) if !m.is_file() => Some(format!("`{}` is not a regular file", path.display())),
        Ok(_) => std::fs::File::open(path).err().map(|e| format!("cannot read `{}`: {e}", path.display())),
    }
}

/// Why a file sink could not write `path`, if it could not. Creates
/// nothing: an existing file is opened to append (and left as it is), a
/// new one's nearest existing folder gets an unnamed temporary file.
fn writable(path: &Path) -> Option<String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Some("the path is empty".into());
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            return Some(format!("`{shown}` is a folder"));
        }
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .err()
            .map(|e| format!("cannot write `{shown}`: {e}"));
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let folder = absolute.ancestors().skip(1).find(|a| a.exists())?;
    if !folder.is_dir() {
        return Some(format!("cannot create `{shown}`: `{}` is not a folder", folder.display()));
    }
    tempfile::tempfile_in(folder).err().map(|e| format!("cannot create `{shown}` in `{}`: {e}", folder.display()))
}
