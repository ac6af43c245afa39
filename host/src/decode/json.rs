//! JSON: one pass over a JSON object that keeps the fields a [`Schema`]
//! names and skips the rest unparsed.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{DecodeError, Decoder, Event, Format, Found, Scalar, Schema};
use crate::chunk::Record;

/// `events.format: json`: a JSON object per record.
#[derive(Debug)]
pub struct JsonDecoder {
    schema: Schema,
}

impl JsonDecoder {
    pub fn new(schema: Schema) -> JsonDecoder {
        JsonDecoder { schema }
    }
}

impl Decoder for JsonDecoder {
    fn decode<'a>(&self, record: &Record<'a>, now_ms: i64) -> Result<Event<'a>, DecodeError> {
        let found = parse(&self.schema, record.bytes)?;
        self.schema.event(found, record, now_ms)
    }
}

fn malformed(class: &'static str, detail: String) -> DecodeError {
    DecodeError::Malformed { format: Format::Json, class, detail }
}

fn parse<'a>(schema: &Schema, input: &'a [u8]) -> Result<Found<'a>, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(input);
    let found = de.deserialize_any(EventVisitor { schema }).map_err(|e| {
        if e.is_data() {
            malformed("not_an_object", "expected a JSON object".into())
        } else {
            malformed("invalid_json", format!("not valid JSON: {e}"))
        }
    })?;
    de.end().map_err(|e| malformed("invalid_json", format!("not valid JSON: {e}")))?;
    Ok(found)
}

struct EventVisitor<'s> {
    schema: &'s Schema,
}

impl<'de> Visitor<'de> for EventVisitor<'_> {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        let schema = self.schema;
        let (key, timestamp) = (schema.key_field(), schema.timestamp_field());
        let mut found = Found { key: None, timestamp: None, fields: (0..schema.fields.len()).map(|_| None).collect() };
        while let Some(name) = map.next_key_seed(Str)? {
            let slot = if Some(&*name) == key {
                &mut found.key
            } else if Some(&*name) == timestamp {
                &mut found.timestamp
            } else if let Some(i) = schema.fields.iter().position(|f| *f.name == *name) {
                &mut found.fields[i]
            } else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            *slot = Some(map.next_value_seed(AnyScalar)?);
        }
        Ok(found)
    }
}

/// A map key, borrowed from the input unless it has escapes.
struct Str;

impl<'de> DeserializeSeed<'de> for Str {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Str {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

struct AnyScalar;

impl<'de> DeserializeSeed<'de> for AnyScalar {
    type Value = Scalar<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyScalar {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}
