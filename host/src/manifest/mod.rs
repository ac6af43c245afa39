//! Pipeline manifests: the YAML a user writes, field by field.
//!
//! The structs here are the manifest reference: every field's doc comment
//! is its documentation (`sluice reference` prints it as Markdown, and the
//! README's reference section is that output). Loading reports every
//! problem it can find with its line, column and a hint.

mod locate;
mod lower;
pub mod reference;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use locate::Locator;
pub use sluice_sink_api::duration::{self, Duration};

use crate::checkpoint::CheckpointConfig;
use crate::decode::{FieldType, Format, KeyFormat, KeyType};
use crate::sinks::{OutputsConfig, SinkConfig};
use crate::source::SourceConfig;
use crate::state::{StateBackendKind, StateConfig};
use crate::time::TimestampFormat;
use sluice_sink_api::{Access, NamedPath, Output};

/// A Sluice pipeline: where events come from, what they look like, how
/// they are windowed, which transform computes features, and where the
/// results go.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Name of the pipeline, used in logs and metrics.
    pub name: String,
    /// Where events come from.
    pub source: SourceConfig,
    /// What an event looks like: key, timestamp, and the fields the
    /// transform receives. Other fields of the payload are ignored.
    pub events: EventsConfig,
    /// Event time and watermarks.
    #[serde(default)]
    pub time: TimeConfig,
    /// How events are grouped into windows per key, and when windows fire.
    pub window: WindowConfig,
    /// The WebAssembly transform that turns a window into features.
    pub transform: TransformConfig,
    /// Where feature rows, dead letters and late events go.
    pub outputs: OutputsConfig,
    /// Worker threads. Each owns a share of the keys, with its own window
    /// state and module instance. Default: the number of cores.
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// Checkpoints of the window state and source positions, so that a
    /// restart (or a partition moved to another host) resumes where the
    /// last checkpoint was taken instead of reading its windows again.
    /// Absent: no checkpoints; a restart reads again every record whose
    /// window was still open.
    #[serde(default)]
    pub checkpoint: Option<CheckpointConfig>,
    /// Where the window state is kept while the pipeline runs.
    #[serde(default)]
    pub state: StateConfig,
}

/// The event schema.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// How each record's payload is encoded: `json`, a JSON object per
    /// Kafka record or line of a file; or `avro`, an Avro record per Kafka
    /// record, in Confluent's wire format with `registry`, or bare datums
    /// of `writer_schema`, or the datums of an Avro object container file
    /// (a file source; its header holds the schema). Avro records are read with their writer's
    /// schema resolved against the declared fields as Avro resolves a
    /// reader schema: fields by name, a field the writer lacks is null
    /// (a required one makes the writer schema unreadable: its records
    /// are dead letters), `int`/`long`/`float`/`double` promote to
    /// `float`, `bytes` read as `string`, `["null", T]` unions are
    /// optional values, an enum reads as its symbol, and a
    /// `timestamp-millis`/`-micros`/`-nanos` timestamp field is the event
    /// time whatever `timestamp.format` says.
    #[serde(default)]
    pub format: Format,
    /// With `format: avro`: the schema registry the records' writer
    /// schemas are fetched from, by the id each record carries (one fetch
    /// per id for the life of the pipeline). A registry that does not
    /// answer holds the pipeline where it is (retried with back-off,
    /// counted in `sluice_decode_waits_total`, said in the status); an id
    /// it does not have makes its records dead letters.
    #[serde(default)]
    pub registry: Option<crate::schema_registry::RegistryConfig>,
    /// With `format: avro` and no `registry`: the Avro schema (JSON text)
    /// every record was written with, each record a bare datum.
    #[serde(default)]
    pub writer_schema: Option<String>,
    /// As `writer_schema`, from a file.
    #[serde(default)]
    pub writer_schema_file: Option<PathBuf>,
    /// Where the entity key comes from: the name of a payload field (a
    /// string or an integer), or `{from: kafka_key}`, the Kafka record's
    /// key read as UTF-8 text (what a producer's string serializer
    /// writes). Windows and features are per key.
    pub key: KeyConfig,
    /// How keys are typed, which is how the sinks write them: `string`
    /// (an integer key is written as its decimal text) or `int` (a 64-bit
    /// integer: a number in JSON rows, a `long` column in Iceberg; an
    /// event whose key is not an integer, or a Kafka key that is not one
    /// in decimal text, is a dead letter).
    #[serde(default)]
    pub key_type: KeyType,
    /// Where event time comes from.
    pub timestamp: TimestampConfig,
    /// Fields the transform receives, in this order.
    #[serde(default)]
    pub fields: Vec<FieldConfig>,
    /// Events whose time is further than this ahead of the host's clock are
    /// rejected as out of range (dead-letter output). `off` disables the
    /// check.
    #[serde(default = "default_future_skew", deserialize_with = "duration::optional")]
    pub max_future_skew: Option<Duration>,
    /// Events before this time (RFC 3339) are rejected as out of range.
    #[serde(default)]
    pub min_timestamp: Option<String>,
    /// Longest event in bytes (a line of a file, the value of a Kafka
    /// record). A longer one goes to the dead-letter output with its first
    /// 256 KiB and its size; the source reads past it without holding it
    /// whole.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
}

fn default_max_bytes() -> usize {
    1 << 20
}

fn default_future_skew() -> Option<Duration> {
    Some(Duration::from_millis(60_000))
}

/// Where the entity key comes from.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged, expecting = "a field's name, or {from: kafka_key}")]
pub enum KeyConfig {
    /// A field of the payload.
    Field(String),
    /// The record's metadata.
    From {
        /// `kafka_key`: the Kafka record's key.
        from: KeyFrom,
        /// How the key is encoded: `string` (UTF-8 text, what a string
        /// serializer writes; the default) or `avro` (Confluent's wire
        /// format, its schema from `events.registry`: a `string`, `bytes`,
        /// `int`, `long` or enum key, as an `AvroSerializer` for keys
        /// writes it).
        #[serde(default)]
        format: KeyFormat,
    },
}

/// Metadata of a record that can be its key.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyFrom {
    /// The Kafka record's key, as UTF-8 text.
    KafkaKey,
}

/// Where event time comes from: a field of the payload, or the Kafka
/// record's timestamp.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    /// Name of the payload field (unless `from`).
    #[serde(default)]
    pub field: Option<String>,
    /// How the field is encoded: `seconds` (integer or fractional),
    /// `millis`, `micros` or `rfc3339`.
    #[serde(default)]
    pub format: TimestampFormat,
    /// `kafka_timestamp`: the Kafka record's timestamp (its producer's
    /// CreateTime, or the broker's LogAppendTime where the topic says so)
    /// instead of a field.
    #[serde(default)]
    pub from: Option<TimestampFrom>,
}

/// Metadata of a record that can be its event time.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFrom {
    /// The Kafka record's timestamp, in milliseconds.
    KafkaTimestamp,
}

/// One field the transform receives.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// Name of the field in the payload. With Avro, a dotted name is a
    /// path into nested records (`device.os`); in JSON it is a key of the
    /// top-level object.
    pub name: String,
    /// `string`, `int`, `float` or `bool`.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// A required field that is missing or null sends the event to the
    /// dead-letter output; an optional one reaches the transform as null.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// Event time and watermarks.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// How far out of order events may arrive. The watermark of a partition
    /// is the largest event time it delivered minus this; a window fires
    /// when the watermark passes its end.
    #[serde(default = "zero")]
    pub out_of_orderness: Duration,
    /// A partition that delivers nothing for this long no longer holds the
    /// watermark back. `off` waits forever.
    #[serde(default = "default_idle", deserialize_with = "duration::optional")]
    pub idle_timeout: Option<Duration>,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig { out_of_orderness: zero(), idle_timeout: default_idle() }
    }
}

fn zero() -> Duration {
    Duration::from_millis(0)
}

fn default_idle() -> Option<Duration> {
    Some(Duration::from_millis(60_000))
}

/// Kind of window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowType {
    /// Fixed, disjoint windows of `size`.
    Tumbling,
    /// Windows of `size` starting every `slide`.
    Sliding,
    /// Activity separated by more than `gap` of inactivity.
    Session,
}

/// When results are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TriggerConfig {
    /// Once, when the watermark passes the window's end.
    #[default]
    Close,
    /// At every event: the key's window holding the event that closes next
    /// (for a sliding window, the last `size` of activity up to the event,
    /// at slide granularity). For features that must be fresh.
    Event,
}

/// Windows, per key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// `tumbling`, `sliding` or `session`.
    #[serde(rename = "type")]
    pub kind: WindowType,
    /// Window length (tumbling and sliding).
    #[serde(default, deserialize_with = "duration::optional")]
    pub size: Option<Duration>,
    /// How often a sliding window starts; must not exceed `size`.
    #[serde(default, deserialize_with = "duration::optional")]
    pub slide: Option<Duration>,
    /// Inactivity that closes a session.
    #[serde(default, deserialize_with = "duration::optional")]
    pub gap: Option<Duration>,
    /// `close` (default) or `event`.
    #[serde(default)]
    pub trigger: TriggerConfig,
    /// How long after its close a window still accepts events. Each such
    /// event re-fires the window with the corrected result, marked `late`;
    /// later events go to the late-events output.
    #[serde(default = "zero")]
    pub allowed_lateness: Duration,
    /// Keys with no event for this long (in event time) are dropped. At
    /// least the window length plus the allowed lateness; defaults to that
    /// plus one hour.
    #[serde(default, deserialize_with = "duration::optional")]
    pub state_ttl: Option<Duration>,
}

/// Which contract the module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransformKind {
    /// Receives all events of each window.
    #[default]
    Window,
    /// Folds events into accumulators (create / add / merge / finish).
    Aggregate,
}

/// The transform module and the limits it runs under.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Path of the WebAssembly component (built from `transforms/`).
    pub module: PathBuf,
    /// `window` (default) or `aggregate`; must match the module.
    #[serde(default)]
    pub kind: TransformKind,
    /// Longest a call into the module may run. A call past it is stopped;
    /// its windows go to the dead-letter output.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Most linear memory a module instance may use, in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    /// Most windows per call into the module.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
    /// Most event rows per call, an event counted once for every window of
    /// the call that holds it: what the transform works through, and most
    /// of its memory. A window with more goes alone.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Most bytes of events per call: their timestamps, fields and strings
    /// (and the accumulators of an aggregate). A window with more goes
    /// alone.
    #[serde(default = "default_max_bytes_per_call")]
    pub max_bytes: usize,
    /// Longest a fired window may wait to be sent to the module together
    /// with others. Batching across watermark steps lets a key's
    /// consecutive windows share one copy of their events, which speeds up
    /// catching up on a backlog; it delays results by at most this much.
    #[serde(default = "default_max_delay")]
    pub max_delay: Duration,
}

fn default_max_delay() -> Duration {
    Duration::from_millis(1_000)
}

fn default_timeout() -> Duration {
    Duration::from_millis(5_000)
}

fn default_memory() -> u32 {
    256
}

fn default_batch() -> usize {
    16_384
}

fn default_max_rows() -> usize {
    4 << 20
}

fn default_max_bytes_per_call() -> usize {
    32 << 20
}

/// A problem in a manifest, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field (`window.slide`), empty for the document.
    pub path: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

/// Every problem found in a manifest.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.file, .problems))]
pub struct ManifestError {
    pub file: String,
    pub problems: Vec<Problem>,
}

fn render(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let at = match (p.line, p.column) {
                (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
                _ => file.to_string(),
            };
            let field = if p.path.is_empty() { String::new() } else { format!(" (at `{}`)", p.path) };
            let hint = p.hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default();
            format!("{at}: error: {}{field}{hint}", p.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Largest manifest file read. Manifests are a few kilobytes; the limit
/// refuses a wrong path (a log file, a device) before it is read whole.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// A problem not yet located: (dotted path, message, hint).
pub type Finding = (String, String, Option<String>);

/// The dotted path of a component's `field` (relative to its entry, empty
/// for the entry itself) in the manifest: `outputs.features[0]` and `url`
/// make `outputs.features[0].url`.
pub(crate) fn field_at(entry: &str, field: &str) -> String {
    if field.is_empty() { entry.to_string() } else { format!("{entry}.{field}") }
}

/// A file or folder a manifest names, at the dotted path of its field.
#[derive(Debug)]
pub(crate) struct ManifestPath<'a> {
    pub field: String,
    pub path: &'a mut PathBuf,
    pub access: Access,
}

/// A loaded manifest, with where each field is in its file: problems found
/// later (by [`crate::preflight`]) are reported at their line too.
pub struct Document {
    pub manifest: Manifest,
    file: String,
    locator: Locator,
    overridden: Vec<String>,
    /// What reading it found (unknown fields, the semantic checks): later
    /// stages add theirs, so that one answer lists every problem.
    problems: Vec<Problem>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document").field("file", &self.file).field("manifest", &self.manifest).finish()
    }
}

fn document_problem(message: String, hint: Option<&str>) -> Problem {
    Problem { path: String::new(), line: None, column: None, message, hint: hint.map(str::to_string) }
}

impl Document {
    /// Load a manifest file, apply `--set path=value` overrides, and
    /// validate it. Relative paths stay relative to the working directory.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Document, ManifestError> {
        let document = Self::read_file(path, overrides)?;
        if document.problems.is_empty() { Ok(document) } else { Err(document.error(Vec::new())) }
    }

    /// [`Document::read`] of a manifest file.
    pub fn read_file(path: &Path, overrides: &[String]) -> Result<Document, ManifestError> {
        let file = path.display().to_string();
        let fail = |message: String, hint: &str| ManifestError {
            file: file.clone(),
            problems: vec![document_problem(message, Some(hint))],
        };
        let bytes = crate::files::read_limited(path, MAX_MANIFEST_BYTES, "manifest")
            .map_err(|m| fail(m, "give the path of a YAML manifest, such as examples/session-features.yaml"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            fail(
                format!("the manifest is not UTF-8 text (byte {} is not)", e.utf8_error().valid_up_to()),
                "save it as UTF-8",
            )
        })?;
        Self::read(&file, &text, overrides)
    }

    /// Parse and validate manifest text; `file` names it in errors. Any
    /// problem is an error.
    pub fn parse(file: &str, text: &str, overrides: &[String]) -> Result<Document, ManifestError> {
        let document = Self::read(file, text, overrides)?;
        if document.problems.is_empty() { Ok(document) } else { Err(document.error(Vec::new())) }
    }

    /// Parse manifest text as far as a manifest can be built, keeping the
    /// problems found on the way in the document for later stages to add
    /// to ([`Document::error`]): unknown fields (each is reported, then
    /// left out) and what the semantic checks find. An error when no
    /// manifest can be built: not YAML, or a field of the wrong type or a
    /// missing one (each such field is reported, the rest still read;
    /// the semantic checks are skipped then, as the manifest is not what
    /// was written).
    pub fn read(file: &str, text: &str, overrides: &[String]) -> Result<Document, ManifestError> {
        let fail = |problems| ManifestError { file: file.to_string(), problems };
        // Editors on Windows start UTF-8 files with a byte-order mark, which
        // YAML allows; serde_yaml would read it as a second document.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(fail(vec![document_problem(
                format!("the manifest is larger than {MAX_MANIFEST_BYTES} bytes"),
                None,
            )]));
        }
        // First, in one pass that stops early: a document nested too deep is
        // refused before anything whose work grows with the depth.
        let locator = Locator::new(text).map_err(|(line, column)| {
            fail(vec![Problem {
                path: String::new(),
                line: Some(line),
                column: Some(column),
                message: format!("nested deeper than {} levels", locate::MAX_DEPTH),
                hint: Some("a manifest is a few levels deep; see the manifest reference in the README".into()),
            }])
        })?;
        let mut doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            let loc = e.location();
            fail(vec![Problem {
                path: String::new(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: format!("not valid YAML: {e}"),
                hint: Some("check indentation and quoting around this place".into()),
            }])
        })?;
        let mut problems = Vec::new();
        let mut overridden = Vec::new();
        for o in overrides {
            match apply_override(&mut doc, o) {
                Ok(path) => overridden.push(path),
                Err(message) => problems.push(Problem {
                    path: String::new(),
                    line: None,
                    column: None,
                    message: format!("--set {o}: {message}"),
                    hint: Some("write --set a.b.c=VALUE, e.g. --set source.path=data.jsonl".into()),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        // Each field at fault is reported and taken out, and the document
        // read again: an unknown field changes nothing by its absence; a
        // field of the wrong type may have a default, and the reading goes
        // on to the next problem. Up to 50.
        let mut misread: Vec<String> = Vec::new();
        let manifest = loop {
            match serde_path_to_error::deserialize::<_, Manifest>(doc.clone()) {
                Ok(manifest) => break manifest,
                Err(e) => {
                    let path = e.path().to_string();
                    let path = if path == "." { String::new() } else { path };
                    let message = e.inner().to_string();
                    let unknown = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next());
                    // "missing field `x`" after `x` was taken out for its
                    // type: said already.
                    let missing = message.strip_prefix("missing field `").and_then(|m| m.split('`').next());
                    let joined = |f: &str| if path.is_empty() { f.to_string() } else { format!("{path}.{f}") };
                    if missing.is_some_and(|f| misread.contains(&joined(f))) {
                        return Err(fail(problems));
                    }
                    problems.push(locator.problem(&path, &overridden, message.clone(), hint_for(&message)));
                    // "unknown field `x`, expected …": the path names the
                    // field, or (in tagged enums) the mapping holding it.
                    let removed = match (unknown, missing) {
                        (Some(field), _) => remove_field(&mut doc, &path, field),
                        // Nothing to take out: the reading cannot go on.
                        (None, Some(_)) => false,
                        (None, None) => {
                            let taken = path.rsplit_once('.').map_or(path.as_str(), |(_, last)| last).to_string();
                            let out =
                                !taken.is_empty() && !taken.contains('[') && remove_field(&mut doc, &path, &taken);
                            if out {
                                misread.push(path.clone());
                            }
                            out
                        }
                    };
                    if !removed || problems.len() >= 50 {
                        return Err(fail(problems));
                    }
                }
            }
        };
        if !misread.is_empty() {
            return Err(fail(problems));
        }
        let mut document = Document { manifest, file: file.to_string(), locator, overridden, problems };
        let findings = document.manifest.check();
        let checked = document.error(findings).problems;
        document.problems = checked;
        Ok(document)
    }

    /// The name the manifest's file is reported under.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// What reading the manifest found, and `findings` of later stages,
    /// located in its file.
    pub fn error(&self, findings: Vec<Finding>) -> ManifestError {
        let mut problems = self.problems.clone();
        problems.extend(
            findings
                .into_iter()
                .map(|(path, message, hint)| self.locator.problem(&path, &self.overridden, message, hint)),
        );
        ManifestError { file: self.file.clone(), problems }
    }

    /// Whether reading it found no problem.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Manifest {
    /// [`Document::load`], for callers that need only the manifest.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Manifest, ManifestError> {
        Document::load(path, overrides).map(|d| d.manifest)
    }

    /// [`Document::parse`], for callers that need only the manifest.
    pub fn parse(file: &str, text: &str, overrides: &[String]) -> Result<Manifest, ManifestError> {
        Document::parse(file, text, overrides).map(|d| d.manifest)
    }

    /// Every file the manifest names, with the dotted path of its field:
    /// what `sluice serve` keeps inside its data directory. Client
    /// properties naming files (`ssl.ca.location`, a Kerberos keytab; see
    /// [`crate::librdkafka::names_file`]) are among them.
    pub fn visit_paths(&mut self, f: &mut dyn FnMut(&str, &mut PathBuf)) {
        for (at, props) in self.client_properties_mut() {
            for (key, value) in props.iter_mut() {
                if crate::librdkafka::names_file(key, value) {
                    let mut path = PathBuf::from(&*value);
                    f(&format!("{at}.{key}"), &mut path);
                    *value = path.display().to_string();
                }
            }
        }
        f("transform.module", &mut self.transform.module);
        for named in self.named_paths() {
            f(&named.field, named.path);
        }
    }

    /// The files and folders the source, the events' schema settings, the
    /// sinks, the state and the checkpoints name (the module aside), in
    /// that order, each with how it is used and the dotted path of its
    /// field: what a preflight checks.
    pub(crate) fn named_paths(&mut self) -> Vec<ManifestPath<'_>> {
        fn at<'a>(entry: &str, named: NamedPath<'a>) -> ManifestPath<'a> {
            ManifestPath { field: field_at(entry, named.field), path: named.path, access: named.access }
        }
        let mut out: Vec<ManifestPath<'_>> =
            self.source.component_mut().paths().into_iter().map(|n| at("source", n)).collect();
        if let Some(file) = &mut self.events.writer_schema_file {
            out.push(at("events", NamedPath { field: "writer_schema_file", path: file, access: Access::ReadFile }));
        }
        if let Some(registry) = &mut self.events.registry {
            for (field, file) in
                [("password_file", &mut registry.password_file), ("token_file", &mut registry.token_file)]
            {
                if let Some(path) = file {
                    out.push(at("events.registry", NamedPath { field, path, access: Access::ReadFile }));
                }
            }
        }
        for (entry, sink) in self.outputs.entries_mut() {
            out.extend(sink.paths().into_iter().map(|n| at(&entry, n)));
        }
        if let Some(p) = &mut self.state.path {
            out.push(at("state", NamedPath { field: "path", path: p, access: Access::WriteFolder }));
        }
        if let Some(dir) = self.checkpoint.as_mut().and_then(|c| c.dir.as_mut()) {
            out.push(at("checkpoint", NamedPath { field: "dir", path: dir, access: Access::WriteFolder }));
        }
        out
    }

    /// The librdkafka properties the manifest passes through, each set
    /// with the dotted path of its field (`source.properties`,
    /// `outputs.features[1].properties`).
    pub fn client_properties(&self) -> Vec<(String, &std::collections::BTreeMap<String, String>)> {
        let mut out = Vec::new();
        if let Some(properties) = self.source.component().client_properties() {
            out.push(("source.properties".to_string(), properties));
        }
        for (entry, _, sink) in self.outputs.entries() {
            if let Some(properties) = sink.client_properties() {
                out.push((format!("{entry}.properties"), properties));
            }
        }
        out
    }

    fn client_properties_mut(&mut self) -> Vec<(String, &mut std::collections::BTreeMap<String, String>)> {
        let mut out = Vec::new();
        if let Some(properties) = self.source.component_mut().client_properties_mut() {
            out.push(("source.properties".to_string(), properties));
        }
        for (entry, sink) in self.outputs.entries_mut() {
            if let Some(properties) = sink.client_properties_mut() {
                out.push((format!("{entry}.properties"), properties));
            }
        }
        out
    }

    /// Semantic checks: (path, message, hint) for each problem.
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut problem = |path: &str, message: String, hint: Option<&str>| {
            out.push((path.to_string(), message, hint.map(str::to_string)));
        };
        let w = &self.window;
        let positive = |d: Option<Duration>| d.filter(|d| d.millis() > 0);
        match w.kind {
            WindowType::Tumbling | WindowType::Sliding => {
                if positive(w.size).is_none() {
                    problem(
                        "window.size",
                        format!("a {:?} window needs a positive `size`", w.kind).to_lowercase(),
                        Some("for example size: 5m"),
                    );
                }
                if w.gap.is_some() {
                    problem(
                        "window.gap",
                        "`gap` is for session windows".into(),
                        Some("remove it, or use type: session"),
                    );
                }
            }
            WindowType::Session => {
                if positive(w.gap).is_none() {
                    problem(
                        "window.gap",
                        "a session window needs a positive `gap`".into(),
                        Some("for example gap: 15m"),
                    );
                }
                for (name, set) in [("size", w.size.is_some()), ("slide", w.slide.is_some())] {
                    if set {
                        problem(
                            &format!("window.{name}"),
                            format!("`{name}` is not used by session windows"),
                            Some("remove it, or use type: sliding"),
                        );
                    }
                }
            }
        }
        match (w.kind, w.slide) {
            (WindowType::Sliding, None) => {
                problem("window.slide", "a sliding window needs `slide`".into(), Some("for example slide: 1m"))
            }
            (WindowType::Sliding, Some(slide)) if slide.millis() <= 0 => {
                problem("window.slide", "`slide` must be positive".into(), None)
            }
            (WindowType::Sliding, Some(slide)) if w.size.is_some_and(|size| slide > size) => problem(
                "window.slide",
                format!("`slide` ({slide}) is longer than `size`: some events would fall in no window"),
                Some("use a slide no longer than the size"),
            ),
            (WindowType::Tumbling, Some(_)) => problem(
                "window.slide",
                "`slide` is for sliding windows".into(),
                Some("remove it, or use type: sliding"),
            ),
            _ => {}
        }
        if let (Some(ttl), Some(span)) = (w.state_ttl, self.span()) {
            let needed = span + w.allowed_lateness.millis();
            if ttl.millis() < needed {
                problem(
                    "window.state_ttl",
                    format!(
                        "state_ttl ({ttl}) is shorter than the window plus the allowed lateness ({})",
                        Duration::from_millis(needed.max(0) as u64)
                    ),
                    Some("windows would lose their state before they fire; raise state_ttl or leave it out"),
                );
            }
        }
        let durations = [
            ("window.size", w.size),
            ("window.slide", w.slide),
            ("window.gap", w.gap),
            ("window.allowed_lateness", Some(w.allowed_lateness)),
            ("window.state_ttl", w.state_ttl),
            ("time.out_of_orderness", Some(self.time.out_of_orderness)),
        ];
        for (path, d) in durations {
            if let Some(d) = d.filter(|d| d.millis() > MAX_DURATION_MS) {
                problem(
                    path,
                    format!("{d} is longer than Sluice supports (100 years, 36500d)"),
                    Some("event times are kept within years 1 to 9999; a window longer than a century is a mistake"),
                );
            }
        }
        if let (WindowType::Sliding, Some(size), Some(slide)) = (w.kind, w.size, w.slide)
            && slide.millis() > 0
            && size.millis() <= MAX_DURATION_MS
            && size.millis() / slide.millis() > MAX_WINDOWS_PER_EVENT
        {
            problem(
                "window.slide",
                format!(
                    "a {size} window sliding every {slide} puts each event in {} windows; Sluice allows {}",
                    size.millis() / slide.millis(),
                    MAX_WINDOWS_PER_EVENT
                ),
                Some(
                    "every one of those windows fires and carries the event into the transform: use a longer \
                     slide, or a tumbling window",
                ),
            );
        }
        if let Some(c) = &self.checkpoint {
            if c.interval.millis() < 10 {
                problem("checkpoint.interval", "the interval must be at least 10ms".into(), Some("the default is 10s"));
            }
            if c.retain == 0 {
                problem("checkpoint.retain", "at least one checkpoint must be kept".into(), Some("the default is 3"));
            }
            for (field, message, hint) in c.problems() {
                problem(&format!("checkpoint.{field}"), message, Some(hint));
            }
        }
        let st = &self.state;
        if st.backend == StateBackendKind::Memory {
            for (set, field) in [(st.path.is_some(), "path"), (st.memory.is_some(), "memory")] {
                if set {
                    problem(
                        &format!("state.{field}"),
                        format!("`{field}` is a setting of the rocksdb backend"),
                        Some("add `backend: rocksdb`, or remove it: memory state takes what it needs"),
                    );
                }
            }
        }
        if st.memory.is_some_and(|m| m.bytes() < 4 << 20) {
            problem("state.memory", "the budget must be at least 4MiB".into(), Some("the default is 256MiB"));
        }
        let e = &self.events;
        let from_kafka = matches!(self.source, SourceConfig::Kafka(_));
        let key_field = match &e.key {
            KeyConfig::Field(name) => Some(name.as_str()),
            KeyConfig::From { .. } => None,
        };
        if key_field.is_some_and(|k| k.trim().is_empty()) {
            problem(
                "events.key",
                "the key field is empty".into(),
                Some("name the field holding the entity, e.g. key: user_id"),
            );
        }
        if key_field.is_none() && !from_kafka {
            problem(
                "events.key",
                "a file's lines have no Kafka key".into(),
                Some("name the field holding the entity, e.g. key: user_id"),
            );
        }
        let time_field = match (&e.timestamp.field, e.timestamp.from) {
            (Some(field), None) => Some(field.as_str()),
            (None, Some(TimestampFrom::KafkaTimestamp)) => {
                if !from_kafka {
                    problem(
                        "events.timestamp.from",
                        "a file's lines have no Kafka timestamp".into(),
                        Some("name the field holding the event's time, e.g. field: timestamp"),
                    );
                }
                None
            }
            (Some(_), Some(_)) => {
                problem(
                    "events.timestamp",
                    "both `field` and `from` are given".into(),
                    Some("the time comes from a field or from the Kafka record: keep one"),
                );
                None
            }
            (None, None) => {
                problem(
                    "events.timestamp",
                    "neither `field` nor `from` is given".into(),
                    Some("for example field: timestamp, or from: kafka_timestamp"),
                );
                None
            }
        };
        if time_field.is_some_and(|t| t.trim().is_empty()) {
            problem(
                "events.timestamp.field",
                "the timestamp field is empty".into(),
                Some("for example field: timestamp"),
            );
        } else if let Some(time) = time_field
            && key_field == Some(time)
        {
            problem(
                "events.timestamp.field",
                format!("`{time}` is both the key and the timestamp"),
                Some("the key names the entity and the timestamp the event's time: two different fields"),
            );
        }
        self.check_format(&mut problem);
        if e.max_bytes == 0 {
            problem("events.max_bytes", "max_bytes must be at least 1".into(), Some("the default is 1048576 (1 MiB)"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in e.fields.iter().enumerate() {
            if !seen.insert(&f.name) {
                problem(&format!("events.fields[{i}].name"), format!("field `{}` is declared twice", f.name), None);
            }
            for (what, name) in [("key", key_field), ("timestamp", time_field)] {
                if let Some(name) = name
                    && f.name == name
                {
                    problem(
                        &format!("events.fields[{i}].name"),
                        format!("`{name}` is the {what}, and cannot also be declared as a field"),
                        Some(
                            "remove it from events.fields: the transform gets the key (window.key()) and each \
                             event's time (timestamps) anyway",
                        ),
                    );
                }
            }
        }
        if let Some(min) = &self.events.min_timestamp
            && TimestampFormat::Rfc3339.from_str(min).is_err()
        {
            problem(
                "events.min_timestamp",
                format!("`{min}` is not an RFC 3339 time"),
                Some("for example 2020-01-01T00:00:00Z"),
            );
        }
        let t = &self.transform;
        if t.memory_mib < 2 {
            problem("transform.memory_mib", "a module needs at least 2 MiB".into(), None);
        } else if t.memory_mib > MAX_MEMORY_MIB {
            problem(
                "transform.memory_mib",
                format!("{} MiB is more than a WebAssembly module can address ({MAX_MEMORY_MIB} MiB)", t.memory_mib),
                None,
            );
        }
        if t.timeout.millis() <= 0 {
            problem("transform.timeout", "the timeout must be positive".into(), None);
        }
        for (path, value) in [
            ("transform.max_batch", t.max_batch),
            ("transform.max_rows", t.max_rows),
            ("transform.max_bytes", t.max_bytes),
        ] {
            if value == 0 {
                problem(path, "must be at least 1".into(), Some("leave it out for the default"));
            }
        }
        if self.parallelism == Some(0) {
            problem("parallelism", "parallelism must be at least 1".into(), Some("leave it out to use every core"));
        }
        if let Some(n) = self.parallelism.filter(|&n| n > 0) {
            let cores = cores();
            if n > cores * MAX_WORKERS_PER_CORE {
                problem(
                    "parallelism",
                    format!(
                        "{n} workers on {cores} cores: Sluice allows {} per core ({})",
                        MAX_WORKERS_PER_CORE,
                        cores * MAX_WORKERS_PER_CORE
                    ),
                    Some("workers are busy all the time, so more than one per core gains nothing; leave it out"),
                );
            } else if let Some(total) = physical_memory()
                && (n as u64) * u64::from(t.memory_mib) * (1 << 20) > total
            {
                problem(
                    "parallelism",
                    format!(
                        "{n} workers of {} MiB each (transform.memory_mib) need more memory than this machine has \
                         ({} MiB)",
                        t.memory_mib,
                        total >> 20
                    ),
                    Some("lower parallelism or transform.memory_mib"),
                );
            }
        }
        for found in self.source.component().check() {
            let hint = Some(found.hint.as_str()).filter(|h| !h.is_empty());
            problem(&field_at("source", &found.field), found.message, hint);
        }
        for (output, sinks) in self.outputs.all() {
            if sinks.is_empty() {
                let why = match output {
                    Output::Features => "features would be computed and thrown away",
                    Output::DeadLetters => "bad events would be lost",
                    Output::LateEvents => "late events would be lost",
                };
                problem(
                    &format!("outputs.{}", output.field()),
                    format!("no sink: {why}"),
                    Some("add one, e.g. - {type: file, path: out/records.jsonl}"),
                );
            }
        }
        for (entry, output, sink) in self.outputs.entries() {
            let serves = sink.serves();
            if !serves.contains(&output) {
                let records: Vec<&str> = serves.iter().map(|o| o.records()).collect();
                let kinds: Vec<&str> = SinkConfig::serving(output).collect();
                let hint = format!("send {} to a sink of one of these types: {}", output.records(), kinds.join(", "));
                problem(
                    &entry,
                    format!("the {} sink stores {} only", sink.kind(), records.join(" and ")),
                    Some(hint.as_str()),
                );
            }
            // A sink that does not serve the output was said above.
            let served = if serves.contains(&output) { sink.check_output(output) } else { Vec::new() };
            for found in sink.check().into_iter().chain(served) {
                let hint = Some(found.hint.as_str()).filter(|h| !h.is_empty());
                problem(&field_at(&entry, &found.field), found.message, hint);
            }
        }
        out
    }

    /// The format's settings: Avro's writer schemas given one way, and
    /// only with Avro; a given writer schema readable as the declared
    /// fields.
    fn check_format(&self, problem: &mut impl FnMut(&str, String, Option<&str>)) {
        let e = &self.events;
        let given = [
            ("registry", e.registry.is_some()),
            ("writer_schema", e.writer_schema.is_some()),
            ("writer_schema_file", e.writer_schema_file.is_some()),
        ];
        let named: Vec<&str> = given.iter().filter(|(_, set)| *set).map(|(name, _)| *name).collect();
        match e.format {
            Format::Json => {
                if matches!(e.key, KeyConfig::From { format: KeyFormat::Avro, .. }) {
                    problem(
                        "events.key.format",
                        "an Avro key goes with `events.format: avro`".into(),
                        Some("read the key as format: string, or the events as avro"),
                    );
                }
                for name in &named {
                    problem(
                        &format!("events.{name}"),
                        format!("`{name}` is a setting of the avro format"),
                        Some("set events.format: avro, or remove it"),
                    );
                }
            }
            Format::Avro => {
                if named.len() > 1 {
                    problem(
                        &format!("events.{}", named[1]),
                        format!(
                            "give one of `registry`, `writer_schema` and `writer_schema_file`, not {}",
                            named.join(" and ")
                        ),
                        None,
                    );
                }
                let file = matches!(self.source, SourceConfig::File(_));
                if file && let Some(name) = named.first() {
                    problem(
                        &format!("events.{name}"),
                        "a file source reads Avro object container files, whose header holds the writer schema".into(),
                        Some("remove it (wire-format records come from Kafka)"),
                    );
                }
                if named.is_empty() && !file {
                    problem(
                        "events.format",
                        "Avro records need their writer schemas".into(),
                        Some(
                            "for Confluent's wire format, registry: {url: http://localhost:8081}; for bare datums, \
                             writer_schema (the schema's JSON) or writer_schema_file",
                        ),
                    );
                }
                if matches!(e.key, KeyConfig::From { format: KeyFormat::Avro, .. }) && e.registry.is_none() {
                    problem(
                        "events.key.format",
                        "an Avro key is in the wire format, whose schemas come from `registry`".into(),
                        Some("set events.registry, or read the key as format: string"),
                    );
                }
                if let Some(registry) = &e.registry {
                    for (field, message) in registry.problems() {
                        problem(&format!("events.registry.{field}"), message, None);
                    }
                }
                if let Some(text) = &e.writer_schema
                    && let Some(why) = crate::decode::avro::refusal(&self.schema(), text)
                {
                    problem("events.writer_schema", why, None);
                }
            }
        }
    }

    /// Window length (size, or gap for sessions), ms.
    fn span(&self) -> Option<i64> {
        match self.window.kind {
            WindowType::Session => self.window.gap.map(Duration::millis),
            _ => self.window.size.map(Duration::millis),
        }
    }
}

/// Most windows one event may belong to (a sliding window's size over its
/// slide): each of them fires and carries the event into the transform.
pub const MAX_WINDOWS_PER_EVENT: i64 = 10_000;
/// Most workers per core.
pub const MAX_WORKERS_PER_CORE: usize = 8;
/// Most linear memory of a (32-bit) WebAssembly instance.
pub const MAX_MEMORY_MIB: u32 = 4096;
pub use crate::time::MAX_DURATION_MS;

/// Cores this process may run on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The machine's memory in bytes (Linux), `None` where unknown.
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?.trim();
    kib.parse::<u64>().ok().map(|k| k * 1024)
}

fn hint_for(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the spelling; the manifest reference in the README lists every field".into())
    } else if message.contains("missing field") {
        Some("add the field; the manifest reference in the README says what it takes".into())
    } else if message.contains("duration") {
        Some("write a number with a unit: 250ms, 30s, 5m, 1h".into())
    } else if message.contains("unknown variant") {
        Some("use one of the values listed above".into())
    } else {
        None
    }
}

/// The node at `path` (as serde_path_to_error prints it: `a.b[0].c`).
fn node_at<'d>(doc: &'d mut serde_yaml::Value, path: &str) -> Option<&'d mut serde_yaml::Value> {
    let mut node = doc;
    for segment in path.replace('[', ".[").split('.').filter(|s| !s.is_empty()) {
        node = match (node, segment.strip_prefix('[').and_then(|s| s.strip_suffix(']'))) {
            (serde_yaml::Value::Sequence(items), Some(i)) => items.get_mut(i.parse::<usize>().ok()?)?,
            (serde_yaml::Value::Mapping(map), None) => map.get_mut(segment)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Remove the key `field` from the mapping at `path`, or at its parent
/// when `path` ends with the field; `false` when there is no such key.
fn remove_field(doc: &mut serde_yaml::Value, path: &str, field: &str) -> bool {
    let parent = match path.strip_suffix(field) {
        Some(p) if p.is_empty() || p.ends_with('.') => p.trim_end_matches('.').to_string(),
        _ => path.to_string(),
    };
    match node_at(doc, &parent) {
        Some(serde_yaml::Value::Mapping(map)) => map.remove(field).is_some(),
        _ => false,
    }
}

/// Manifest text with `--set a.b.c=VALUE` overrides applied, as YAML:
/// what the client sends a host (which checks it). Comments are lost.
pub fn with_overrides(text: &str, overrides: &[String]) -> Result<String, String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    for o in overrides {
        apply_override(&mut doc, o).map_err(|e| format!("--set {o}: {e}"))?;
    }
    serde_yaml::to_string(&doc).map_err(|e| e.to_string())
}

/// Set `a.b.c=VALUE` (VALUE parsed as YAML) in `doc`; returns the path.
fn apply_override(doc: &mut serde_yaml::Value, spec: &str) -> Result<String, String> {
    let (path, value) = spec.split_once('=').ok_or("expected PATH=VALUE")?;
    let value: serde_yaml::Value = serde_yaml::from_str(value).map_err(|e| format!("value is not YAML: {e}"))?;
    let mut node = doc;
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!("`{path}` is not a dotted path"));
    }
    for segment in &segments {
        node = match node {
            serde_yaml::Value::Sequence(items) => {
                let i: usize = segment.parse().map_err(|_| format!("`{segment}` should be a list index"))?;
                let len = items.len();
                // One past the end adds an item: `--set outputs.features.1=…`.
                if i == len {
                    items.push(serde_yaml::Value::Null);
                }
                items.get_mut(i).ok_or(format!("index {i} is past the end of a list of {len}"))?
            }
            serde_yaml::Value::Mapping(map) => {
                let key = serde_yaml::Value::String((*segment).to_string());
                if !map.contains_key(&key) {
                    map.insert(key.clone(), serde_yaml::Value::Mapping(Default::default()));
                }
                map.get_mut(&key).ok_or("unreachable")?
            }
            other => {
                *other = serde_yaml::Value::Mapping(Default::default());
                let serde_yaml::Value::Mapping(map) = other else {
                    return Err("unreachable".into());
                };
                let key = serde_yaml::Value::String((*segment).to_string());
                map.insert(key.clone(), serde_yaml::Value::Mapping(Default::default()));
                map.get_mut(&key).ok_or("unreachable")?
            }
        };
    }
    *node = value;
    // In the form serde_path_to_error prints: a.b[0].c
    Ok(segments
        .iter()
        .map(|s| if s.parse::<usize>().is_ok() { format!("[{s}]") } else { format!(".{s}") })
        .collect::<String>()
        .trim_start_matches('.')
        .replace(".[", "["))
}

#[cfg(test)]
mod tests;
