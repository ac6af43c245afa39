//! Decode and validate events: a record in, the manifest's declared
//! fields out.
//!
//! Decoding is a seam, as Vector's codecs are: a [`Decoder`] for each
//! `events.format` (JSON, Avro) finds the key, the timestamp and the
//! declared fields in a record's payload as [`Found`] scalars, and what
//! follows is the same for every format: the key and the time may come
//! from the record's Kafka metadata instead ([`KeySource`],
//! [`TimeSource`]), and the scalars are checked against the declared
//! types. Every way an event can be wrong is a [`DecodeError`] with a
//! stable class name, which the pipeline routes to the dead-letter output.
//! What a decoder needs from outside the host (Avro's writer schemas, from
//! a registry) it fetches before a chunk is decoded
//! ([`Decoder::prepare`]): a registry that does not answer holds the
//! chunk, never a record's fate.

pub mod avro;
mod json;

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use avro::AvroDecoder;
pub use json::JsonDecoder;

pub use sluice_sink_api::KeyType;

use crate::chunk::{Chunk, Record};
use crate::time::TimestampFormat;

/// Type of a declared event field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A JSON string.
    String,
    /// A JSON integer (64-bit).
    Int,
    /// A JSON number; integers are widened.
    Float,
    /// `true` or `false`.
    Bool,
}

/// How events are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A JSON object per record (per line of a file).
    #[default]
    Json,
    /// An Avro record per Kafka record: in Confluent's wire format with
    /// `events.registry`, or bare datums of `events.writer_schema`; or a
    /// datum of an Avro object container file per record (a file source).
    Avro,
}

impl Format {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Avro => "Avro",
        }
    }
}

/// Where an event's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A field of the payload (a string or an integer).
    Field(String),
    /// The Kafka record's key, encoded so.
    KafkaKey(KeyFormat),
}

/// How a Kafka record's key is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyFormat {
    /// UTF-8 text.
    #[default]
    String,
    /// Avro in Confluent's wire format: the decoder of the Avro format
    /// reads it (see [`Found::key`]).
    Avro,
}

impl KeySource {
    /// What it is called in messages and checkpoints' layouts.
    pub fn name(&self) -> &str {
        match self {
            KeySource::Field(name) => name,
            KeySource::KafkaKey(_) => "(the Kafka key)",
        }
    }
}

/// Where an event's time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// A field of the payload, in a format.
    Field { name: String, format: TimestampFormat },
    /// The Kafka record's timestamp (CreateTime or LogAppendTime).
    KafkaTimestamp,
}

impl TimeSource {
    /// What it is called in messages.
    pub fn name(&self) -> &str {
        match self {
            TimeSource::Field { name, .. } => name,
            TimeSource::KafkaTimestamp => "(the Kafka timestamp)",
        }
    }
}

/// What an event must look like.
#[derive(Debug, Clone)]
pub struct Schema {
    pub format: Format,
    pub key: KeySource,
    /// What the key must be, and what the sinks write it as.
    pub key_type: KeyType,
    pub timestamp: TimeSource,
    pub fields: Vec<Field>,
    /// Events newer than now plus this are rejected.
    pub max_future_skew_ms: Option<i64>,
    /// Events older than this (milliseconds since the epoch) are rejected.
    pub min_timestamp_ms: Option<i64>,
    /// With the Avro format: where the writer schemas come from.
    pub avro: Option<avro::Writers>,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
}

/// A decoded field value, borrowing strings from the input when it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
}

/// A valid event: key, event time (milliseconds) and the declared fields in
/// declaration order.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub key: Cow<'a, str>,
    pub time: i64,
    pub values: Vec<Value<'a>>,
}

/// A value as a format found it, before type checks.
#[derive(Debug)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// A time in milliseconds, as the format's own type said (an Avro
    /// `timestamp-millis`): taken as the event time whatever
    /// `events.timestamp.format` is.
    Millis(i64),
    Array,
    Object,
}

impl Scalar<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) => "an integer",
            // JSON reads an integer literal past 64 bits as a float.
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() >= 2f64.powi(63) => {
                "a number too large for a 64-bit integer (send it as a string)"
            }
            Scalar::Float(_) => "a fractional number",
            Scalar::Str(_) => "a string",
            Scalar::Millis(_) => "a timestamp",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }
}

/// What a format found in a payload: the key and timestamp fields (when
/// they come from the payload; the key also when it comes from a Kafka key
/// the format decodes itself) and each declared field, `None` where
/// absent.
#[derive(Debug)]
pub struct Found<'a> {
    pub key: Option<Scalar<'a>>,
    pub timestamp: Option<Scalar<'a>>,
    pub fields: Vec<Option<Scalar<'a>>>,
}

/// Decodes the records of one format into events.
pub trait Decoder: Send + Sync {
    /// Fetch what decoding `chunk` needs from outside the host, before
    /// [`Decoder::decode`] sees its records. An error leaves the chunk
    /// undecoded, to be prepared again later.
    fn prepare(&mut self, _chunk: &Chunk) -> Result<(), Unavailable> {
        Ok(())
    }

    /// The event `record` holds; `now_ms` is the wall clock, for the
    /// future-skew check.
    fn decode<'a>(&self, record: &Record<'a>, now_ms: i64) -> Result<Event<'a>, DecodeError>;
}

/// What a decoder needs did not answer (a schema registry): the chunk is
/// held and tried again, not dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl Schema {
    /// The decoder of the schema's format.
    pub fn decoder(&self) -> Result<Box<dyn Decoder>, avro::BuildError> {
        Ok(match self.format {
            Format::Json => Box::new(JsonDecoder::new(self.clone())),
            Format::Avro => Box::new(AvroDecoder::new(self.clone())?),
        })
    }

    /// The payload field the key is read from, if it is read from one.
    pub fn key_field(&self) -> Option<&str> {
        match &self.key {
            KeySource::Field(name) => Some(name),
            KeySource::KafkaKey(_) => None,
        }
    }

    /// The payload field the time is read from, if it is read from one.
    pub fn timestamp_field(&self) -> Option<&str> {
        match &self.timestamp {
            TimeSource::Field { name, .. } => Some(name),
            TimeSource::KafkaTimestamp => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a datum of its format: `class` names how
    /// (`invalid_json`, `not_an_object`), `detail` is the format's own
    /// account of it.
    #[error("{detail}")]
    Malformed { format: Format, class: &'static str, detail: String },
    #[error("field `{0}` is missing")]
    MissingField(String),
    /// The record has no Kafka key or timestamp to take the event's from.
    #[error("the record has no {0}")]
    MissingMetadata(&'static str),
    #[error("field `{field}` is null")]
    NullField { field: String },
    #[error("field `{field}` should be {expected}, found {found}")]
    WrongType { field: String, expected: &'static str, found: &'static str },
    #[error("timestamp `{field}`: {reason}")]
    BadTimestamp { field: String, reason: String },
    #[error(
        "timestamp `{field}` = {value} is outside the supported range, 0001-01-01 to 9999-12-31 \
         ({min} to {max} ms since 1970)",
        min = crate::time::MIN_EVENT_TIME,
        max = crate::time::MAX_EVENT_TIME
    )]
    UnsupportedTimestamp { field: String, value: String },
    #[error("timestamp {time_ms} ms is {ahead_ms} ms ahead of the clock (max_future_skew allows {limit_ms} ms)")]
    FutureTimestamp { time_ms: i64, ahead_ms: i64, limit_ms: i64 },
    #[error("timestamp {time_ms} ms is before min_timestamp ({limit_ms} ms)")]
    AncientTimestamp { time_ms: i64, limit_ms: i64 },
}

impl DecodeError {
    /// A stable name for dashboards and dead-letter headers.
    pub fn class(&self) -> &'static str {
        match self {
            DecodeError::Malformed { class, .. } => class,
            DecodeError::MissingField(_) | DecodeError::MissingMetadata(_) => "missing_field",
            DecodeError::NullField { .. } => "null_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::BadTimestamp { .. } => "bad_timestamp",
            DecodeError::UnsupportedTimestamp { .. }
            | DecodeError::FutureTimestamp { .. }
            | DecodeError::AncientTimestamp { .. } => "timestamp_out_of_range",
        }
    }

    /// Decoding (not a datum of the format) or validation (a datum, but
    /// not a valid event).
    pub fn stage(&self) -> sluice_sink_api::Stage {
        match self {
            DecodeError::Malformed { .. } => sluice_sink_api::Stage::Decode,
            _ => sluice_sink_api::Stage::Validate,
        }
    }
}

impl Schema {
    /// The event of what a format found in `record`: the key and time from
    /// the payload or the record's metadata, each value checked against
    /// its declared type. The same for every format.
    pub fn event<'a>(&self, found: Found<'a>, record: &Record<'a>, now_ms: i64) -> Result<Event<'a>, DecodeError> {
        let key = match &self.key {
            KeySource::Field(name) => key_of(name, found.key, self.key_type)?,
            // Decoded by the format (an Avro key).
            KeySource::KafkaKey(_) if found.key.is_some() => key_of(self.key.name(), found.key, self.key_type)?,
            KeySource::KafkaKey(_) => {
                let key = record.metadata.key.ok_or(DecodeError::MissingMetadata("Kafka key"))?;
                let wrong = |expected, found| DecodeError::WrongType { field: self.key.name().into(), expected, found };
                let key = std::str::from_utf8(key).map_err(|_| wrong("UTF-8 text", "bytes that are not UTF-8"))?;
                match self.key_type {
                    KeyType::String => Cow::Borrowed(key),
                    // One spelling per key: `007` and `7` are one entity.
                    KeyType::Int => match key.parse::<i64>() {
                        Ok(i) => Cow::Owned(i.to_string()),
                        Err(_) => return Err(wrong("an integer in decimal", "other text")),
                    },
                }
            }
        };
        let time = match &self.timestamp {
            TimeSource::Field { name, format } => event_time(name, *format, found.timestamp)?,
            TimeSource::KafkaTimestamp => {
                let ms = record.metadata.timestamp.ok_or(DecodeError::MissingMetadata("Kafka timestamp"))?;
                if !crate::time::in_range(ms) {
                    let field = self.timestamp.name().to_string();
                    return Err(DecodeError::UnsupportedTimestamp { field, value: format!("{ms} (millis)") });
                }
                ms
            }
        };
        if let Some(limit_ms) = self.max_future_skew_ms {
            let ahead_ms = time.saturating_sub(now_ms);
            if ahead_ms > limit_ms {
                return Err(DecodeError::FutureTimestamp { time_ms: time, ahead_ms, limit_ms });
            }
        }
        if let Some(limit_ms) = self.min_timestamp_ms.filter(|&m| time < m) {
            return Err(DecodeError::AncientTimestamp { time_ms: time, limit_ms });
        }
        let mut values = Vec::with_capacity(self.fields.len());
        for (field, slot) in self.fields.iter().zip(found.fields) {
            values.push(check(field, slot)?);
        }
        Ok(Event { key, time, values })
    }
}

/// The key a payload field holds, as text: a string, or an integer in
/// decimal; only an integer when the keys are typed `int`.
fn key_of<'a>(name: &str, found: Option<Scalar<'a>>, key_type: KeyType) -> Result<Cow<'a, str>, DecodeError> {
    match (found, key_type) {
        (Some(Scalar::Str(s)), KeyType::String) => Ok(s),
        (Some(Scalar::Int(i)), _) => Ok(Cow::Owned(i.to_string())),
        (Some(Scalar::Null), _) => Err(DecodeError::NullField { field: name.to_string() }),
        (Some(other), _) => Err(DecodeError::WrongType {
            field: name.to_string(),
            expected: match key_type {
                KeyType::String => "a string or an integer",
                KeyType::Int => "an integer",
            },
            found: other.kind(),
        }),
        (None, _) => Err(DecodeError::MissingField(name.to_string())),
    }
}

/// The time a payload field holds, in milliseconds.
fn event_time(name: &str, format: TimestampFormat, found: Option<Scalar<'_>>) -> Result<i64, DecodeError> {
    let bad = |reason: String| DecodeError::BadTimestamp { field: name.to_string(), reason };
    let ms = match &found {
        None => return Err(DecodeError::MissingField(name.to_string())),
        Some(Scalar::Int(i)) => format.from_int(*i).map_err(bad)?,
        Some(Scalar::Float(f)) => format.from_number(*f).map_err(bad)?,
        Some(Scalar::Str(s)) => format.from_str(s).map_err(bad)?,
        Some(Scalar::Millis(ms)) => *ms,
        Some(other) => return Err(bad(format!("expected a number or a string, found {}", other.kind()))),
    };
    if crate::time::in_range(ms) {
        return Ok(ms);
    }
    // Only now, off the hot path: the value as it was written.
    let value = match found {
        Some(Scalar::Int(i)) => format!("{i} ({})", format.name()),
        Some(Scalar::Float(f)) => format!("{f} ({})", format.name()),
        Some(Scalar::Str(s)) => format!("{s:?} ({})", format.name()),
        Some(Scalar::Millis(ms)) => format!("{ms} (a timestamp in millis)"),
        _ => String::new(),
    };
    Err(DecodeError::UnsupportedTimestamp { field: name.to_string(), value })
}

fn check<'a>(field: &Field, slot: Option<Scalar<'a>>) -> Result<Value<'a>, DecodeError> {
    use Scalar as S;
    let wrong =
        |expected, found: &S<'_>| DecodeError::WrongType { field: field.name.clone(), expected, found: found.kind() };
    match (field.ty, slot) {
        (_, None) if field.required => Err(DecodeError::MissingField(field.name.clone())),
        (_, Some(S::Null)) if field.required => Err(DecodeError::NullField { field: field.name.clone() }),
        (_, None | Some(S::Null)) => Ok(Value::Null),
        (FieldType::String, Some(S::Str(s))) => Ok(Value::Str(s)),
        (FieldType::Int, Some(S::Int(i) | S::Millis(i))) => Ok(Value::Int(i)),
        (FieldType::Float, Some(S::Int(i))) => Ok(Value::Float(i as f64)),
        (FieldType::Float, Some(S::Float(f))) => Ok(Value::Float(f)),
        (FieldType::Bool, Some(S::Bool(b))) => Ok(Value::Bool(b)),
        (FieldType::String, Some(other)) => Err(wrong("a string", &other)),
        (FieldType::Int, Some(other)) => Err(wrong("an integer", &other)),
        (FieldType::Float, Some(other)) => Err(wrong("a number", &other)),
        (FieldType::Bool, Some(other)) => Err(wrong("a boolean", &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{Header, Metadata};

    fn schema() -> Schema {
        Schema {
            format: Format::Json,
            key: KeySource::Field("user_id".into()),
            key_type: KeyType::String,
            timestamp: TimeSource::Field { name: "timestamp".into(), format: TimestampFormat::Seconds },
            fields: vec![
                Field { name: "item_id".into(), ty: FieldType::String, required: true },
                Field { name: "amount".into(), ty: FieldType::Float, required: false },
                Field { name: "n".into(), ty: FieldType::Int, required: false },
            ],
            max_future_skew_ms: Some(60_000),
            min_timestamp_ms: Some(0),
            avro: None,
        }
    }

    const NOW: i64 = 1_718_000_000_000;

    /// A line of a file: a record without metadata.
    fn line(bytes: &[u8]) -> Record<'_> {
        Record { slot: 0, offset: 1, bytes, metadata: Metadata::default() }
    }

    impl Schema {
        fn decode<'a>(&self, input: &'a [u8], now_ms: i64) -> Result<Event<'a>, DecodeError> {
            JsonDecoder::new(self.clone()).decode(&line(input), now_ms)
        }
    }

    #[test]
    fn decodes_declared_fields_in_order_and_skips_the_rest() {
        let e = schema()
            .decode(br#"{"extra":{"deep":[1,2,{"x":null}]},"item_id":"i\"1","user_id":42,"timestamp":1718000000.5,"amount":3}"#, NOW)
            .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Ok(Event {
                key: Cow::Borrowed("42"),
                time: 1_718_000_000_500,
                values: vec![Value::Str("i\"1".into()), Value::Float(3.0), Value::Null],
            })
        );
    }

    #[test]
    fn every_kind_of_bad_event_has_its_class() {
        let s = schema();
        let class = |input: &str| s.decode(input.as_bytes(), NOW).err().map(|e| e.class());
        assert_eq!(class("{not json"), Some("invalid_json"));
        assert_eq!(class(r#"{"user_id":"u"} trailing"#), Some("invalid_json"));
        assert_eq!(class("[1,2]"), Some("not_an_object"));
        assert_eq!(class(r#"{"timestamp":1,"item_id":"i"}"#), Some("missing_field"));
        assert_eq!(class(r#"{"user_id":"u","item_id":"i"}"#), Some("missing_field"));
        assert_eq!(class(r#"{"user_id":"u","timestamp":1}"#), Some("missing_field"));
        assert_eq!(class(r#"{"user_id":"u","timestamp":1,"item_id":null}"#), Some("null_field"));
        assert_eq!(class(r#"{"user_id":"u","timestamp":1,"item_id":7}"#), Some("wrong_type"));
        assert_eq!(class(r#"{"user_id":"u","timestamp":1,"item_id":"i","n":1.5}"#), Some("wrong_type"));
        assert_eq!(class(r#"{"user_id":true,"timestamp":1,"item_id":"i"}"#), Some("wrong_type"));
        assert_eq!(class(r#"{"user_id":"u","timestamp":"soon","item_id":"i"}"#), Some("bad_timestamp"));
        assert_eq!(class(r#"{"user_id":"u","timestamp":1718000061,"item_id":"i"}"#), Some("timestamp_out_of_range"));
        assert_eq!(class(r#"{"user_id":"u","timestamp":-1,"item_id":"i"}"#), Some("timestamp_out_of_range"));
        assert_eq!(class(r#"{"user_id":"u","timestamp":1718000059,"item_id":"i"}"#), None);
        // Far outside any calendar: refused before window arithmetic sees it.
        let unbounded = Schema { max_future_skew_ms: None, min_timestamp_ms: None, ..s.clone() };
        for t in ["-9223372036854775", "9223372036854775807", "-9223372036854000", "1e300", "\"-9223372036854775\""] {
            let line = format!(r#"{{"user_id":"u","timestamp":{t},"item_id":"i"}}"#);
            let e = unbounded.decode(line.as_bytes(), NOW).err();
            assert_eq!(e.as_ref().map(DecodeError::class), Some("timestamp_out_of_range"), "{t}");
            assert!(e.is_some_and(|e| e.to_string().contains("outside the supported range")), "{t}");
        }
    }

    #[test]
    fn an_integer_past_64_bits_is_called_that() {
        for id in ["123456789012345678901234567890", "18446744073709551615"] {
            let line = format!(r#"{{"user_id":{id},"timestamp":1,"item_id":"i"}}"#);
            let e = schema().decode(line.as_bytes(), NOW).err().map(|e| e.to_string());
            assert_eq!(
                e.as_deref(),
                Some(
                    "field `user_id` should be a string or an integer, found a number too large for a 64-bit \
                     integer (send it as a string)"
                ),
                "{id}"
            );
        }
    }

    #[test]
    fn messages_name_the_field() {
        let e = schema().decode(br#"{"user_id":"u","timestamp":1,"item_id":7}"#, NOW).err();
        assert_eq!(e.map(|e| e.to_string()).as_deref(), Some("field `item_id` should be a string, found an integer"));
    }

    /// The key and the time taken from a Kafka record's key and
    /// timestamp: fields of those names in the payload are then plain
    /// fields (or ignored), and a record without them is a dead letter
    /// that says which is missing.
    #[test]
    fn key_and_time_from_the_kafka_record() {
        let s =
            Schema { key: KeySource::KafkaKey(KeyFormat::String), timestamp: TimeSource::KafkaTimestamp, ..schema() };
        let headers = [Header { name: "trace".into(), value: None }];
        let payload = br#"{"item_id":"i1","user_id":"not-the-key","timestamp":"not-the-time"}"#;
        let record = |key: Option<&'static [u8]>, timestamp| Record {
            slot: 0,
            offset: 7,
            bytes: payload,
            metadata: Metadata { key, timestamp, headers: &headers },
        };
        let decoded =
            JsonDecoder::new(s.clone()).decode(&record(Some(b"u-9"), Some(NOW - 5)), NOW).map_err(|e| e.to_string());
        assert_eq!(
            decoded,
            Ok(Event {
                key: Cow::Borrowed("u-9"),
                time: NOW - 5,
                values: vec![Value::Str("i1".into()), Value::Null, Value::Null]
            })
        );
        let error =
            |r: Record<'_>| JsonDecoder::new(s.clone()).decode(&r, NOW).err().map(|e| (e.class(), e.to_string()));
        assert_eq!(error(record(None, Some(NOW))), Some(("missing_field", "the record has no Kafka key".into())));
        assert_eq!(
            error(record(Some(b"u"), None)),
            Some(("missing_field", "the record has no Kafka timestamp".into()))
        );
        assert_eq!(error(record(Some(b"\xff"), Some(NOW))).map(|e| e.0), Some("wrong_type"));
        // The skew and range checks hold for a Kafka timestamp as for a field.
        assert_eq!(error(record(Some(b"u"), Some(NOW + 61_000))).map(|e| e.0), Some("timestamp_out_of_range"));
        // A file's line has no metadata.
        assert_eq!(s.decode(payload, NOW).err().map(|e| e.class()), Some("missing_field"));
    }

    /// Another format plugs in by finding scalars: here a test format of
    /// comma-separated `key,time,item_id`. The key, time and type checks
    /// after it are the shared ones, with the same classes and messages.
    #[test]
    fn a_format_is_a_decoder_that_finds_scalars() {
        struct Csv(Schema);
        impl Decoder for Csv {
            fn decode<'a>(&self, record: &Record<'a>, now_ms: i64) -> Result<Event<'a>, DecodeError> {
                let text = std::str::from_utf8(record.bytes).map_err(|e| DecodeError::Malformed {
                    format: Format::Json,
                    class: "invalid_csv",
                    detail: e.to_string(),
                })?;
                let mut cells = text.split(',').map(|c| match c.parse::<i64>() {
                    Ok(i) => Some(Scalar::Int(i)),
                    Err(_) if c.is_empty() => None,
                    Err(_) => Some(Scalar::Str(Cow::Borrowed(c))),
                });
                let (key, timestamp) = (cells.next().flatten(), cells.next().flatten());
                let fields = vec![cells.next().flatten(), None, None];
                self.0.event(Found { key, timestamp, fields }, record, now_ms)
            }
        }
        let csv = Csv(schema());
        let decode = |text: &'static str| csv.decode(&line(text.as_bytes()), NOW).map_err(|e| e.to_string());
        assert_eq!(
            decode("u1,1718000000,i1"),
            Ok(Event {
                key: "u1".into(),
                time: 1_718_000_000_000,
                values: vec![Value::Str("i1".into()), Value::Null, Value::Null]
            })
        );
        assert_eq!(decode("7,1718000000,i1").map(|e| e.key), Ok("7".into()));
        assert_eq!(decode(",1718000000,i1"), Err("field `user_id` is missing".into()));
        assert_eq!(decode("u1,1718000000,5"), Err("field `item_id` should be a string, found an integer".into()));
        assert_eq!(
            csv.decode(&line(b"u1,1718000999,i1"), NOW).err().map(|e| e.class()),
            Some("timestamp_out_of_range")
        );
    }

    /// Keys typed `int`: an integer field, or a Kafka key of decimal text
    /// (one spelling per key); anything else is a wrong type.
    #[test]
    fn int_keys_are_integers_in_one_spelling() {
        let from_field = Schema { key_type: KeyType::Int, ..schema() };
        let key = |s: &Schema, line: &'static str| s.decode(line.as_bytes(), NOW).map(|e| e.key.into_owned());
        assert_eq!(key(&from_field, r#"{"user_id":42,"timestamp":1,"item_id":"i"}"#), Ok("42".into()));
        assert_eq!(
            key(&from_field, r#"{"user_id":"42","timestamp":1,"item_id":"i"}"#).map_err(|e| e.to_string()),
            Err("field `user_id` should be an integer, found a string".into())
        );
        let from_kafka = Schema { key: KeySource::KafkaKey(KeyFormat::String), ..from_field };
        let record = |key: &'static [u8]| Record {
            slot: 0,
            offset: 0,
            bytes: br#"{"timestamp":1,"item_id":"i"}"#,
            metadata: Metadata { key: Some(key), timestamp: None, headers: &[] },
        };
        let decoded = |key| JsonDecoder::new(from_kafka.clone()).decode(&record(key), NOW).map(|e| e.key.into_owned());
        assert_eq!(decoded(b"007"), Ok("7".into()));
        assert_eq!(decoded(b"-12"), Ok("-12".into()));
        assert_eq!(decoded(b"u1").map_err(|e| e.class()), Err("wrong_type"));
    }
}
