use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// Why a feature row was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The watermark passed the window's end.
    Close,
    /// An event arrived (continuous features).
    Event,
    /// A late event within the allowed lateness corrected the window.
    Late,
}

/// An element of a mixed list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A feature value as a transform returned it.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bools(Vec<bool>),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    /// Strings packed in one buffer: item `i` ends at `ends[i]`.
    Strs {
        data: String,
        ends: Vec<u32>,
    },
    Mixed(Vec<Scalar>),
}

impl FeatureValue {
    /// A string list from its items (tests and non-guest producers).
    pub fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Self {
        let mut data = String::new();
        let mut ends = Vec::new();
        for item in items {
            data.push_str(item);
            ends.push(data.len() as u32);
        }
        FeatureValue::Strs { data, ends }
    }

    /// The items of a packed string list; `None` for other kinds or when
    /// `ends` does not fit `data`.
    pub fn str_items(&self) -> Option<Vec<&str>> {
        let FeatureValue::Strs { data, ends } = self else {
            return None;
        };
        let mut start = 0usize;
        let mut items = Vec::with_capacity(ends.len());
        for &end in ends {
            items.push(data.get(start..end as usize)?);
            start = end as usize;
        }
        Some(items)
    }
}

impl Serialize for FeatureValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FeatureValue::Null => s.serialize_unit(),
            FeatureValue::Bool(v) => s.serialize_bool(*v),
            FeatureValue::Int(v) => s.serialize_i64(*v),
            FeatureValue::Float(v) => s.serialize_f64(*v),
            FeatureValue::Str(v) => s.serialize_str(v),
            FeatureValue::Bools(v) => v.serialize(s),
            FeatureValue::Ints(v) => v.serialize(s),
            FeatureValue::Floats(v) => v.serialize(s),
            FeatureValue::Strs { .. } => {
                let items =
                    self.str_items().ok_or_else(|| serde::ser::Error::custom("malformed packed string list"))?;
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            FeatureValue::Mixed(v) => v.serialize(s),
        }
    }
}

/// A map of feature values in the order the transform produced them.
/// Names are shared (`Arc`): every row of a pipeline has the same few.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features(pub Vec<(Arc<str>, FeatureValue)>);

impl Serialize for Features {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(&**k, v)?;
        }
        map.end()
    }
}

impl Features {
    pub fn get(&self, name: &str) -> Option<&FeatureValue> {
        self.0.iter().find(|(k, _)| &**k == name).map(|(_, v)| v)
    }
}

/// One feature row: what every sink writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureRow {
    /// The entity key (the manifest's key field).
    pub key: String,
    /// Window start, milliseconds since the Unix epoch (inclusive).
    pub window_start: i64,
    /// Window end, milliseconds (exclusive).
    pub window_end: i64,
    pub trigger: Trigger,
    pub features: Features,
    /// Wall-clock time the row was computed, milliseconds.
    pub computed_at: i64,
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Source name: a file path or a Kafka topic.
    pub source: String,
    /// Kafka partition; 0 for a file.
    pub partition: i32,
    /// Kafka offset, or the line number (1-based) in a file.
    pub offset: i64,
}

/// The pipeline stage that rejected a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Not JSON, or not an object.
    Decode,
    /// A declared field missing, of the wrong type, or out of range.
    Validate,
    /// The transform trapped, ran out of time or memory, or returned an error.
    Transform,
}

/// A record the pipeline could not process, with why and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The raw input: the event bytes, or for a transform failure the
    /// window's input as JSON.
    #[serde(serialize_with = "raw_bytes")]
    pub raw: Vec<u8>,
    /// Where the record came from; for a transform failure, the first
    /// event of the window.
    pub position: Option<Position>,
    pub stage: Stage,
    /// A stable name for the kind of error (`invalid_json`, `missing_field`,
    /// `trap`, `timeout`, …): what a dashboard groups by.
    pub error_class: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Wall-clock time, milliseconds.
    pub at: i64,
}

/// An event that arrived after its windows' allowed lateness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LateEvent {
    #[serde(serialize_with = "raw_bytes")]
    pub raw: Vec<u8>,
    pub position: Position,
    /// The event's time, milliseconds.
    pub event_time: i64,
    /// The watermark when it arrived, milliseconds.
    pub watermark: i64,
    pub key: String,
}

/// Raw bytes as a string when they are UTF-8 (the usual case: JSON), and as
/// an array of byte values otherwise, so nothing is lost.
fn raw_bytes<S: Serializer>(raw: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(raw) {
        Ok(text) => s.serialize_str(text),
        Err(_) => raw.serialize(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_strings_serialize_as_an_array() {
        let v = FeatureValue::strs(["a", "", "bc"]);
        assert_eq!(serde_json::to_string(&v).ok().as_deref(), Some(r#"["a","","bc"]"#));
    }

    #[test]
    fn malformed_packed_strings_fail_to_serialize() {
        let v = FeatureValue::Strs { data: "ab".into(), ends: vec![5] };
        assert!(serde_json::to_string(&v).is_err());
    }

    #[test]
    fn row_has_the_documented_shape() {
        let row = FeatureRow {
            key: "u1".into(),
            window_start: 0,
            window_end: 60_000,
            trigger: Trigger::Late,
            features: Features(vec![("n".into(), FeatureValue::Int(3)), ("m".into(), FeatureValue::Null)]),
            computed_at: 7,
        };
        let json = serde_json::to_string(&row).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"key":"u1","window_start":0,"window_end":60000,"trigger":"late","features":{"n":3,"m":null},"computed_at":7}"#
        );
    }

    #[test]
    fn non_utf8_raw_bytes_are_kept_as_numbers() {
        let d = LateEvent {
            raw: vec![0xff, b'a'],
            position: Position { source: "f".into(), partition: 0, offset: 1 },
            event_time: 1,
            watermark: 2,
            key: "k".into(),
        };
        let json = serde_json::to_string(&d).unwrap_or_default();
        assert!(json.starts_with(r#"{"raw":[255,97],"#), "{json}");
    }
}
