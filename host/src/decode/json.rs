//! One pass over a JSON object that keeps the fields a [`Schema`] names.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{DecodeError, Schema};

/// A JSON value as found, before type checks.
#[derive(Debug)]
pub(super) enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Scalar<'_> {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) => "an integer",
            // serde_json reads an integer literal past 64 bits as a float.
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() >= 2f64.powi(63) => {
                "a number too large for a 64-bit integer (send it as a string)"
            }
            Scalar::Float(_) => "a fractional number",
            Scalar::Str(_) => "a string",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }
}

pub(super) struct Raw<'a> {
    pub key: Option<Scalar<'a>>,
    pub timestamp: Option<Scalar<'a>>,
    pub fields: Vec<Option<Scalar<'a>>>,
}

pub(super) fn parse<'a>(schema: &Schema, input: &'a [u8]) -> Result<Raw<'a>, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(input);
    let raw = de
        .deserialize_any(EventVisitor { schema })
        .map_err(|e| if e.is_data() { DecodeError::NotAnObject } else { DecodeError::InvalidJson(e.to_string()) })?;
    de.end().map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    Ok(raw)
}

struct EventVisitor<'s> {
    schema: &'s Schema,
}

impl<'de> Visitor<'de> for EventVisitor<'_> {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
        let schema = self.schema;
        let mut raw = Raw { key: None, timestamp: None, fields: (0..schema.fields.len()).map(|_| None).collect() };
        while let Some(name) = map.next_key_seed(Str)? {
            let slot = if *name == *schema.key {
                &mut raw.key
            } else if *name == *schema.timestamp {
                &mut raw.timestamp
            } else if let Some(i) = schema.fields.iter().position(|f| *f.name == *name) {
                &mut raw.fields[i]
            } else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            *slot = Some(map.next_value_seed(AnyScalar)?);
        }
        Ok(raw)
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
