//! `events.format: avro`: Avro binary datums, each read with its writer's
//! schema resolved against the declared fields ([`plan`]).
//!
//! With `events.registry`, records are in Confluent's wire format (byte 0,
//! a 4-byte big-endian schema id, the datum) and writer schemas are
//! fetched by id, once per id for the life of the decoder: before a chunk
//! is decoded, [`Decoder::prepare`] fetches the ids it has not seen, and a
//! registry that does not answer holds the chunk (the pipeline retries
//! it, keeping its position). Without a registry, every record is a bare
//! datum of the one writer schema the manifest gives, or (from an Avro
//! object container file) of the schema its chunk carries, from the
//! file's header. With `key: {from:
//! kafka_key, format: avro}` the Kafka key is in the wire format too, and
//! its schema (a primitive) is resolved as the key.
//!
//! A record that cannot be read is a dead letter whose message names the
//! schema id: a payload without the header (`avro_framing`), an id the
//! registry does not have (`unknown_schema_id`), a datum that does not
//! match its schema (`invalid_avro`), a schema that is not Avro or cannot
//! be read as the declared fields (`schema_mismatch`).

mod datum;
mod plan;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DecodeError, Decoder, Event, Format, Found, KeyFormat, KeySource, Schema, Unavailable};
use crate::chunk::{Chunk, Record};
use crate::schema_registry::{Client, ClientError, RegistryConfig};
use plan::{Expect, Plan, ReadError, Slot, Wanted};

/// Where the writer schemas of Avro records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writers {
    /// The Confluent wire format: schemas by the id each record carries.
    Registry(RegistryConfig),
    /// Bare datums, all written with this schema (its JSON text).
    Given(String),
    /// Bare datums, all written with the schema in this file.
    File(PathBuf),
    /// Bare datums of the schema each chunk carries: an Avro object
    /// container file's, from its header.
    Container,
}

/// Where each of a run of bare datums of one writer schema ends: how an
/// Avro object container file's blocks are cut into records (the same
/// stepping over values as decoding, wanting none of them).
#[derive(Debug)]
pub struct Splitter(Plan);

impl Splitter {
    /// The splitter of datums of `writer_schema` (its JSON text); an
    /// error says why the schema cannot be read.
    pub fn new(writer_schema: &str) -> Result<Splitter, String> {
        let schema = apache_avro::Schema::parse_str(writer_schema).map_err(|e| e.to_string())?;
        Plan::new(&schema, &[], &Wanted::default(), 0, "").map(Splitter).map_err(|e| e.to_string())
    }

    /// The length of the datum `bytes` starts with; an error says why it
    /// is not one.
    pub fn datum_len(&self, bytes: &[u8]) -> Result<usize, String> {
        self.0.prefix(bytes).map_err(|e| match e {
            ReadError::Broken(b) => b.to_string(),
            ReadError::Trailing(n) => format!("{n} bytes left over"),
            ReadError::NotText(_) => "a string that is not UTF-8".to_string(),
        })
    }
}

/// How long an id the registry did not have stays refused before it is
/// asked for again (it may have been registered since).
const FORGET_MISSING: Duration = Duration::from_secs(60);

/// The wire format's header: the magic byte and the schema id.
const HEADER: usize = 5;

/// A writer schema as the decoder knows it.
#[derive(Debug, Clone)]
enum Known {
    Plan(Arc<Plan>),
    /// Records of this schema are dead letters: why, with their class;
    /// `until`, for an id the registry did not have, when to ask again.
    Refused {
        class: &'static str,
        reason: String,
        until: Option<Instant>,
    },
}

#[derive(Debug)]
enum Framing {
    /// The wire format: writer schemas by id, of the values and (with an
    /// Avro key) of the keys, each resolved against what is wanted of it.
    Registry {
        client: Client,
        known: HashMap<u32, Known>,
        keys: Option<HashMap<u32, Known>>,
    },
    Bare(Known),
    /// Bare datums of the schema the chunk being decoded carries, and
    /// that schema's text (`None` before the first chunk, and for a chunk
    /// that carries none).
    Container(Option<(Arc<str>, Known)>),
}

/// What a record's schema id is the schema of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Value,
    Key,
}

/// Why an Avro decoder cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("events.format is avro but neither events.registry nor a writer schema is given")]
    NoWriters,
    #[error("events.registry: {0}")]
    Registry(#[from] ClientError),
    #[error("cannot read the writer schema {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub struct AvroDecoder {
    schema: Schema,
    wanted: Wanted,
    /// What is wanted of an Avro Kafka key: all of it, as the key.
    wanted_key: Wanted,
    framing: Framing,
}

/// How messages name the Kafka key.
const KEY: &str = "the Kafka key";

impl AvroDecoder {
    pub fn new(schema: Schema) -> Result<AvroDecoder, BuildError> {
        let wanted = wanted(&schema);
        let avro_keys = schema.key == KeySource::KafkaKey(KeyFormat::Avro);
        let framing = match &schema.avro {
            None => return Err(BuildError::NoWriters),
            Some(Writers::Registry(config)) => Framing::Registry {
                client: Client::new(config)?,
                known: HashMap::new(),
                keys: avro_keys.then(HashMap::new),
            },
            Some(Writers::Given(text)) => Framing::Bare(known(&wanted, schema.fields.len(), text, &[], "")),
            Some(Writers::File(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| BuildError::File { path: path.display().to_string(), source })?;
                Framing::Bare(known(&wanted, schema.fields.len(), &text, &[], ""))
            }
            Some(Writers::Container) => Framing::Container(None),
        };
        let wanted_key = Wanted::whole(Slot::Key, Expect::Key);
        Ok(AvroDecoder { schema, wanted, wanted_key, framing })
    }

    /// A decoder of the wire format that knows these writer schemas (id,
    /// JSON text) already and asks its registry only for others: to decode
    /// without a registry at hand (the decode benchmark, tests).
    pub fn with_schemas(schema: Schema, schemas: &[(u32, &str)]) -> Result<AvroDecoder, BuildError> {
        let mut decoder = AvroDecoder::new(schema)?;
        let fields = decoder.schema.fields.len();
        if let Framing::Registry { known: values, keys, .. } = &mut decoder.framing {
            for (id, text) in schemas {
                values.insert(*id, known(&decoder.wanted, fields, text, &[], ""));
                if let Some(keys) = keys {
                    keys.insert(*id, known(&decoder.wanted_key, fields, text, &[], KEY));
                }
            }
        }
        Ok(decoder)
    }

    fn refused(&self, id: Option<u32>, class: &'static str, reason: &str) -> DecodeError {
        let detail = match id {
            Some(id) => format!("schema id {id}: {reason}"),
            None => reason.to_string(),
        };
        DecodeError::Malformed { format: Format::Avro, class, detail }
    }

    /// The name a slot is declared under, for messages.
    fn slot_name(&self, slot: Slot) -> &str {
        match slot {
            Slot::Key => self.schema.key.name(),
            Slot::Timestamp => self.schema.timestamp.name(),
            Slot::Field(i) => self.schema.fields.get(i).map_or("", |f| &f.name),
        }
    }
}

/// Why the writer schema `text` cannot be read as `schema`'s declared
/// fields, if it cannot: the manifest's check of a given writer schema.
pub fn refusal(schema: &Schema, text: &str) -> Option<String> {
    match known(&wanted(schema), schema.fields.len(), text, &[], "") {
        Known::Plan(_) => None,
        Known::Refused { reason, .. } => Some(reason),
    }
}

/// The values the manifest declares, by path.
fn wanted(schema: &Schema) -> Wanted {
    let mut wanted = Wanted::default();
    if let Some(key) = schema.key_field() {
        wanted.add(key, Slot::Key, Expect::Key);
    }
    if let Some(time) = schema.timestamp_field() {
        wanted.add(time, Slot::Timestamp, Expect::Timestamp);
    }
    for (i, f) in schema.fields.iter().enumerate() {
        wanted.add(&f.name, Slot::Field(i), Expect::Field { ty: f.ty, required: f.required });
    }
    wanted
}

/// A writer schema's text parsed and resolved against `wanted` (`root`
/// names the whole value in messages).
fn known(wanted: &Wanted, fields: usize, text: &str, references: &[String], root: &str) -> Known {
    let refuse = |reason: String| Known::Refused { class: "schema_mismatch", reason, until: None };
    let (writer, named) = match apache_avro::Schema::parse_str_with_list(text, references) {
        Ok(parsed) => parsed,
        Err(e) => return refuse(format!("the writer schema is not a valid Avro schema: {e}")),
    };
    match Plan::new(&writer, &named, wanted, fields, root) {
        Ok(plan) => Known::Plan(Arc::new(plan)),
        Err(e) => refuse(format!("the writer schema cannot be read as the declared fields: {e}")),
    }
}

/// The schema id of a wire-format record, or why it has none.
fn header(bytes: &[u8]) -> Result<u32, String> {
    match bytes {
        [0, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        [magic, ..] if *magic != 0 => Err(format!(
            "the record starts with byte {magic:#04x}, not the wire format's magic byte 0 (is it Avro from a \
             Confluent serializer?)"
        )),
        _ => Err(format!("the record is {} bytes, shorter than the wire format's {HEADER}-byte header", bytes.len())),
    }
}

impl AvroDecoder {
    /// Fetch the writer schema `id` of `part` unless it is known (or
    /// refused for good): an error when the registry does not answer.
    fn learn(&mut self, id: u32, part: Part, now: Instant) -> Result<(), Unavailable> {
        let fields = self.schema.fields.len();
        let Framing::Registry { client, known: values, keys } = &mut self.framing else { return Ok(()) };
        let (cache, wanted, root) = match (part, keys) {
            (Part::Value, _) => (values, &self.wanted, ""),
            (Part::Key, Some(keys)) => (keys, &self.wanted_key, KEY),
            (Part::Key, None) => return Ok(()),
        };
        match cache.get(&id) {
            Some(Known::Refused { until: Some(until), .. }) if *until <= now => {}
            Some(_) => return Ok(()),
            None => {}
        }
        let entry = match crate::schema_registry::schema_blocking(client, id) {
            Ok(fetched) if !fetched.schema_type.eq_ignore_ascii_case("AVRO") => Known::Refused {
                class: "schema_mismatch",
                reason: format!("a {} schema, not Avro", fetched.schema_type),
                until: None,
            },
            Ok(fetched) => known(wanted, fields, &fetched.schema, &fetched.references, root),
            Err(e @ ClientError::NotFound { .. }) => {
                Known::Refused { class: "unknown_schema_id", reason: e.to_string(), until: Some(now + FORGET_MISSING) }
            }
            Err(e) => return Err(Unavailable(e.to_string())),
        };
        let usable = matches!(entry, Known::Plan(_));
        tracing::info!(
            schema_id = id,
            key = part == Part::Key,
            registry = client.url(),
            usable,
            "fetched a writer schema"
        );
        cache.insert(id, entry);
        Ok(())
    }

    /// The writer schema of a wire-format record (or key), and its datum.
    fn framed<'a>(&self, bytes: &'a [u8], part: Part) -> Result<(u32, &Known, &'a [u8]), DecodeError> {
        let what = |reason: String| match part {
            Part::Value => reason,
            Part::Key => format!("{KEY}: {reason}"),
        };
        let id = header(bytes).map_err(|reason| self.refused(None, "avro_framing", &what(reason)))?;
        let cache = match (&self.framing, part) {
            (Framing::Registry { known, .. }, Part::Value) => Some(known),
            (Framing::Registry { keys, .. }, Part::Key) => keys.as_ref(),
            (Framing::Bare(_) | Framing::Container(_), _) => None,
        };
        // Not fetched: the chunk was not prepared (a bug), never lost.
        let known = cache
            .and_then(|c| c.get(&id))
            .ok_or_else(|| self.refused(Some(id), "unknown_schema_id", &what("the schema was not fetched".into())))?;
        Ok((id, known, &bytes[HEADER..]))
    }

    /// The wanted values of `datum` by `known`'s plan.
    fn read<'a>(&self, id: Option<u32>, known: &Known, datum: &'a [u8], part: Part) -> Result<Found<'a>, DecodeError> {
        let what = |reason: &str| match part {
            Part::Value => reason.to_string(),
            Part::Key => format!("{KEY}: {reason}"),
        };
        let plan = match known {
            Known::Plan(plan) => plan,
            Known::Refused { class, reason, .. } => return Err(self.refused(id, class, &what(reason))),
        };
        plan.read(datum).map_err(|e| match e {
            ReadError::Broken(broken) => self.refused(
                id,
                "invalid_avro",
                &what(&format!("the datum does not match its writer schema: {broken}")),
            ),
            ReadError::Trailing(n) => self.refused(
                id,
                "invalid_avro",
                &what(&format!("{n} bytes follow the datum its writer schema describes")),
            ),
            ReadError::NotText(slot) => DecodeError::WrongType {
                field: self.slot_name(slot).to_string(),
                expected: "UTF-8 text",
                found: "bytes that are not UTF-8",
            },
        })
    }
}

impl Decoder for AvroDecoder {
    fn prepare(&mut self, chunk: &Chunk) -> Result<(), Unavailable> {
        match &mut self.framing {
            Framing::Bare(_) => return Ok(()),
            Framing::Container(current) => {
                let carried = chunk.writer_schema();
                if current.as_ref().map(|(text, _)| text) != carried {
                    *current = carried.map(|text| {
                        let plan = known(&self.wanted, self.schema.fields.len(), text, &[], "");
                        tracing::info!(usable = matches!(plan, Known::Plan(_)), "read an Avro file's writer schema");
                        (text.clone(), plan)
                    });
                }
                return Ok(());
            }
            Framing::Registry { .. } => {}
        }
        let now = Instant::now();
        // Records in a row mostly share their schema: one look each run.
        let (mut value, mut key) = (None, None);
        for record in chunk.records() {
            if let Ok(id) = header(record.bytes)
                && value.replace(id) != Some(id)
            {
                self.learn(id, Part::Value, now)?;
            }
            if let Some(Ok(id)) = record.metadata.key.map(header)
                && key.replace(id) != Some(id)
            {
                self.learn(id, Part::Key, now)?;
            }
        }
        Ok(())
    }

    fn decode<'a>(&self, record: &Record<'a>, now_ms: i64) -> Result<Event<'a>, DecodeError> {
        let found = match &self.framing {
            Framing::Bare(known) | Framing::Container(Some((_, known))) => {
                self.read(None, known, record.bytes, Part::Value)?
            }
            Framing::Container(None) => {
                let reason = "the record is not from an Avro object container file, whose header gives the schema";
                return Err(self.refused(None, "avro_framing", reason));
            }
            Framing::Registry { keys, .. } => {
                let (id, known, datum) = self.framed(record.bytes, Part::Value)?;
                let mut found = self.read(Some(id), known, datum, Part::Value)?;
                // A record without a key is the shared check's to say.
                if let (Some(_), Some(key)) = (keys, record.metadata.key) {
                    let (id, known, datum) = self.framed(key, Part::Key)?;
                    found.key = self.read(Some(id), known, datum, Part::Key)?.key;
                }
                found
            }
        };
        self.schema.event(found, record, now_ms)
    }
}

#[cfg(test)]
mod tests;
