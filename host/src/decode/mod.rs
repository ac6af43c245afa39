//! Decode and validate events: JSON in, the manifest's declared fields out.
//!
//! The decoder walks the JSON object once and keeps only the declared
//! fields, the key and the timestamp; other fields are skipped unparsed.
//! Every way an event can be wrong is a [`DecodeError`] with a stable class
//! name, which the pipeline routes to the dead-letter output.

mod json;

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// What an event must look like.
#[derive(Debug, Clone)]
pub struct Schema {
    pub key: String,
    pub timestamp: String,
    pub timestamp_format: TimestampFormat,
    pub fields: Vec<Field>,
    /// Events newer than now plus this are rejected.
    pub max_future_skew_ms: Option<i64>,
    /// Events older than this (milliseconds since the epoch) are rejected.
    pub min_timestamp_ms: Option<i64>,
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

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("field `{0}` is missing")]
    MissingField(String),
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
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::NullField { .. } => "null_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::BadTimestamp { .. } => "bad_timestamp",
            DecodeError::UnsupportedTimestamp { .. }
            | DecodeError::FutureTimestamp { .. }
            | DecodeError::AncientTimestamp { .. } => "timestamp_out_of_range",
        }
    }

    /// Decoding (not JSON) or validation (JSON, but not a valid event).
    pub fn stage(&self) -> sluice_sink_api::Stage {
        match self {
            DecodeError::InvalidJson(_) | DecodeError::NotAnObject => sluice_sink_api::Stage::Decode,
            _ => sluice_sink_api::Stage::Validate,
        }
    }
}

impl Schema {
    /// Decode one event. `now_ms` is the wall clock, for the future-skew
    /// check.
    pub fn decode<'a>(&self, input: &'a [u8], now_ms: i64) -> Result<Event<'a>, DecodeError> {
        let raw = json::parse(self, input)?;
        let key = match raw.key {
            Some(json::Scalar::Str(s)) => s,
            Some(json::Scalar::Int(i)) => Cow::Owned(i.to_string()),
            Some(json::Scalar::Null) => {
                return Err(DecodeError::NullField { field: self.key.clone() });
            }
            Some(other) => {
                return Err(DecodeError::WrongType {
                    field: self.key.clone(),
                    expected: "a string or an integer",
                    found: other.kind(),
                });
            }
            None => return Err(DecodeError::MissingField(self.key.clone())),
        };
        let time = self.event_time(raw.timestamp)?;
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
        for (field, slot) in self.fields.iter().zip(raw.fields) {
            values.push(check(field, slot)?);
        }
        Ok(Event { key, time, values })
    }

    fn event_time(&self, raw: Option<json::Scalar<'_>>) -> Result<i64, DecodeError> {
        let bad = |reason: String| DecodeError::BadTimestamp { field: self.timestamp.clone(), reason };
        let format = self.timestamp_format;
        let ms = match &raw {
            None => return Err(DecodeError::MissingField(self.timestamp.clone())),
            Some(json::Scalar::Int(i)) => format.from_int(*i).map_err(bad)?,
            Some(json::Scalar::Float(f)) => format.from_number(*f).map_err(bad)?,
            Some(json::Scalar::Str(s)) => format.from_str(s).map_err(bad)?,
            Some(other) => return Err(bad(format!("expected a number or a string, found {}", other.kind()))),
        };
        if crate::time::in_range(ms) {
            return Ok(ms);
        }
        // Only now, off the hot path: the value as it was written.
        let value = match raw {
            Some(json::Scalar::Int(i)) => i.to_string(),
            Some(json::Scalar::Float(f)) => f.to_string(),
            Some(json::Scalar::Str(s)) => format!("{s:?}"),
            _ => String::new(),
        };
        let value = format!("{value} ({})", format.name());
        Err(DecodeError::UnsupportedTimestamp { field: self.timestamp.clone(), value })
    }
}

fn check<'a>(field: &Field, slot: Option<json::Scalar<'a>>) -> Result<Value<'a>, DecodeError> {
    use json::Scalar as S;
    let wrong =
        |expected, found: &S<'_>| DecodeError::WrongType { field: field.name.clone(), expected, found: found.kind() };
    match (field.ty, slot) {
        (_, None) if field.required => Err(DecodeError::MissingField(field.name.clone())),
        (_, Some(S::Null)) if field.required => Err(DecodeError::NullField { field: field.name.clone() }),
        (_, None | Some(S::Null)) => Ok(Value::Null),
        (FieldType::String, Some(S::Str(s))) => Ok(Value::Str(s)),
        (FieldType::Int, Some(S::Int(i))) => Ok(Value::Int(i)),
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

    fn schema() -> Schema {
        Schema {
            key: "user_id".into(),
            timestamp: "timestamp".into(),
            timestamp_format: TimestampFormat::Seconds,
            fields: vec![
                Field { name: "item_id".into(), ty: FieldType::String, required: true },
                Field { name: "amount".into(), ty: FieldType::Float, required: false },
                Field { name: "n".into(), ty: FieldType::Int, required: false },
            ],
            max_future_skew_ms: Some(60_000),
            min_timestamp_ms: Some(0),
        }
    }

    const NOW: i64 = 1_718_000_000_000;

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
}
