use std::sync::Arc;

use schemars::JsonSchema;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

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

/// The strings of one call into a transform, each also kept as its JSON
/// text (quoted and escaped once): the string lists of the call's rows
/// refer to them by index, so a list is neither copied nor escaped again
/// item by item.
#[derive(Debug, Default, PartialEq)]
pub struct StrTable {
    /// The strings back to back; string `i` ends at `ends[i]`.
    text: String,
    ends: Vec<u32>,
    /// Each string as a JSON string literal, back to back.
    json: Vec<u8>,
    json_ends: Vec<u32>,
}

impl StrTable {
    /// The table of `strings`, in order: string `i` has code `i`.
    pub fn new<'a>(strings: impl IntoIterator<Item = &'a str>) -> Self {
        let mut t = StrTable::default();
        for s in strings {
            t.text.push_str(s);
            t.ends.push(t.text.len() as u32);
            json::string(&mut t.json, s);
            t.json_ends.push(t.json.len() as u32);
        }
        t
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn span(ends: &[u32], code: u32) -> Option<(usize, usize)> {
        let end = *ends.get(code as usize)? as usize;
        let start = match code {
            0 => 0,
            c => *ends.get(c as usize - 1)? as usize,
        };
        Some((start, end))
    }

    /// String `code`.
    pub fn get(&self, code: u32) -> Option<&str> {
        let (start, end) = Self::span(&self.ends, code)?;
        self.text.get(start..end)
    }

    /// String `code` as JSON text.
    fn json(&self, code: u32) -> Option<&[u8]> {
        let (start, end) = Self::span(&self.json_ends, code)?;
        self.json.get(start..end)
    }
}

/// A feature value as a transform returned it.
#[derive(Debug, Clone)]
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
    /// Strings as indices into their call's shared table.
    Coded {
        table: Arc<StrTable>,
        codes: Vec<u32>,
    },
    Mixed(Vec<Scalar>),
}

/// String lists are equal when their items are, however they are stored.
impl PartialEq for FeatureValue {
    fn eq(&self, other: &Self) -> bool {
        use FeatureValue as V;
        match (self, other) {
            (V::Null, V::Null) => true,
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::Int(a), V::Int(b)) => a == b,
            (V::Float(a), V::Float(b)) => a == b,
            (V::Str(a), V::Str(b)) => a == b,
            (V::Bools(a), V::Bools(b)) => a == b,
            (V::Ints(a), V::Ints(b)) => a == b,
            (V::Floats(a), V::Floats(b)) => a == b,
            (V::Mixed(a), V::Mixed(b)) => a == b,
            (V::Strs { .. } | V::Coded { .. }, V::Strs { .. } | V::Coded { .. }) => {
                matches!((self.str_items(), other.str_items()), (Some(a), Some(b)) if a == b)
            }
            _ => false,
        }
    }
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

    /// A string list of `table`'s strings; `None` when a code is past it.
    pub fn coded(table: Arc<StrTable>, codes: Vec<u32>) -> Option<Self> {
        let len = table.len();
        codes.iter().all(|&c| (c as usize) < len).then_some(FeatureValue::Coded { table, codes })
    }

    /// The items of a string list; `None` for other kinds, or when the
    /// list does not fit its buffer or table.
    pub fn str_items(&self) -> Option<Vec<&str>> {
        match self {
            FeatureValue::Strs { data, ends } => {
                let mut start = 0usize;
                let mut items = Vec::with_capacity(ends.len());
                for &end in ends {
                    items.push(data.get(start..end as usize)?);
                    start = end as usize;
                }
                Some(items)
            }
            FeatureValue::Coded { table, codes } => codes.iter().map(|&c| table.get(c)).collect(),
            _ => None,
        }
    }

    /// Append the value as JSON (`null` for a malformed string list).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        json::value(out, self);
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
            FeatureValue::Strs { .. } | FeatureValue::Coded { .. } => {
                let items = self.str_items().ok_or_else(|| serde::ser::Error::custom("malformed string list"))?;
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

/// How a pipeline's entity keys are typed (`events.key_type`): what the
/// sinks write them as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// Text (an integer key is its decimal text).
    #[default]
    String,
    /// A 64-bit integer.
    Int,
}

/// An entity key, typed as its pipeline declares: written as a JSON
/// string or number, an Iceberg `string` or `long` column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntityKey {
    Str(String),
    Int(i64),
}

impl EntityKey {
    /// The key a window's key (its text) makes under `key_type`: an
    /// integer key's text is the decimal the decoder wrote, so it parses.
    pub fn typed(text: &str, key_type: KeyType) -> EntityKey {
        match key_type {
            KeyType::Int => text.parse().map_or_else(|_| EntityKey::Str(text.to_string()), EntityKey::Int),
            KeyType::String => EntityKey::Str(text.to_string()),
        }
    }

    /// The key as text: a Redis key's `{key}`, a Kafka record's key.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            EntityKey::Str(s) => std::borrow::Cow::Borrowed(s),
            EntityKey::Int(i) => std::borrow::Cow::Owned(i.to_string()),
        }
    }
}

impl From<&str> for EntityKey {
    fn from(text: &str) -> EntityKey {
        EntityKey::Str(text.to_string())
    }
}

impl From<String> for EntityKey {
    fn from(text: String) -> EntityKey {
        EntityKey::Str(text)
    }
}

impl From<i64> for EntityKey {
    fn from(key: i64) -> EntityKey {
        EntityKey::Int(key)
    }
}

impl std::fmt::Display for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntityKey::Str(s) => f.write_str(s),
            EntityKey::Int(i) => write!(f, "{i}"),
        }
    }
}

impl Serialize for EntityKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EntityKey::Str(text) => s.serialize_str(text),
            EntityKey::Int(i) => s.serialize_i64(*i),
        }
    }
}

/// One feature row: what every sink writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureRow {
    /// The entity key, typed as the pipeline declares it.
    pub key: EntityKey,
    /// Window start, milliseconds since the Unix epoch (inclusive).
    pub window_start: i64,
    /// Window end, milliseconds (exclusive).
    pub window_end: i64,
    /// The latest event time in the window, milliseconds: how current the
    /// features are (for the per-event trigger, the triggering event's time
    /// when events arrive in order).
    pub event_time: i64,
    pub trigger: Trigger,
    pub features: Features,
    /// Wall-clock time the row was computed, milliseconds.
    pub computed_at: i64,
}

impl FeatureRow {
    /// Append the row as JSON (the same text as serde would give), faster:
    /// most strings need no escaping and are copied as they are.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"key\":");
        match &self.key {
            EntityKey::Str(text) => json::string(out, text),
            EntityKey::Int(i) => json::int(out, *i),
        }
        out.extend_from_slice(b",\"window_start\":");
        json::int(out, self.window_start);
        out.extend_from_slice(b",\"window_end\":");
        json::int(out, self.window_end);
        out.extend_from_slice(b",\"event_time\":");
        json::int(out, self.event_time);
        out.extend_from_slice(b",\"trigger\":\"");
        out.extend_from_slice(match self.trigger {
            Trigger::Close => b"close",
            Trigger::Event => b"event",
            Trigger::Late => b"late",
        });
        out.extend_from_slice(b"\",\"features\":{");
        for (i, (name, value)) in self.features.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::string(out, name);
            out.push(b':');
            json::value(out, value);
        }
        out.extend_from_slice(b"},\"computed_at\":");
        json::int(out, self.computed_at);
        out.push(b'}');
    }
}

/// JSON text for feature rows.
mod json {
    use super::{FeatureValue, Scalar, StrTable};

    pub(super) fn int(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// Floats are few per row: serde_json formats them (its exponent style
    /// and `null` for NaN and infinities). Writing to a Vec cannot fail.
    fn float(out: &mut Vec<u8>, v: f64) {
        let _ = serde_json::to_writer(&mut *out, &v);
    }

    pub(super) fn string(out: &mut Vec<u8>, s: &str) {
        if plain(s) {
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        } else {
            // Rare: let serde_json do the escaping. Writing to a Vec
            // cannot fail.
            let _ = serde_json::to_writer(&mut *out, s);
        }
    }

    fn plain(s: &str) -> bool {
        s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
    }

    /// A packed string list: one check over all its bytes, then each item
    /// copied as it is (the usual case).
    fn strs(out: &mut Vec<u8>, data: &str, ends: &[u32]) {
        let fits = ends.windows(2).all(|w| w[0] <= w[1]) && ends.last().is_none_or(|&e| e as usize <= data.len());
        if !fits || !plain(data) || !ends.iter().all(|&e| data.is_char_boundary(e as usize)) {
            let value = FeatureValue::Strs { data: data.to_string(), ends: ends.to_vec() };
            match value.str_items() {
                Some(items) => return list(out, items, string),
                None => return out.extend_from_slice(b"null"),
            }
        }
        out.reserve(data.len() + 3 * ends.len() + 2);
        out.push(b'[');
        let mut start = 0usize;
        for (i, &end) in ends.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(&data.as_bytes()[start..end as usize]);
            out.push(b'"');
            start = end as usize;
        }
        out.push(b']');
    }

    /// A list of table strings: each item's JSON text was made once, with
    /// the table.
    fn coded(out: &mut Vec<u8>, table: &StrTable, codes: &[u32]) {
        let mark = out.len();
        out.push(b'[');
        for (i, &c) in codes.iter().enumerate() {
            let Some(text) = table.json(c) else {
                out.truncate(mark);
                return out.extend_from_slice(b"null");
            };
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(text);
        }
        out.push(b']');
    }

    fn list<T>(out: &mut Vec<u8>, items: impl IntoIterator<Item = T>, mut each: impl FnMut(&mut Vec<u8>, T)) {
        out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            each(out, item);
        }
        out.push(b']');
    }

    fn scalar(out: &mut Vec<u8>, v: &Scalar) {
        match v {
            Scalar::Null => out.extend_from_slice(b"null"),
            Scalar::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Scalar::Int(i) => int(out, *i),
            Scalar::Float(f) => float(out, *f),
            Scalar::Str(s) => string(out, s),
        }
    }

    pub(super) fn value(out: &mut Vec<u8>, v: &FeatureValue) {
        match v {
            FeatureValue::Null => out.extend_from_slice(b"null"),
            FeatureValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            FeatureValue::Int(i) => int(out, *i),
            FeatureValue::Float(f) => float(out, *f),
            FeatureValue::Str(s) => string(out, s),
            FeatureValue::Bools(v) => list(out, v, |o, b| o.extend_from_slice(if *b { b"true" } else { b"false" })),
            FeatureValue::Ints(v) => list(out, v, |o, i| int(o, *i)),
            FeatureValue::Floats(v) => list(out, v, |o, f| float(o, *f)),
            FeatureValue::Strs { data, ends } => strs(out, data, ends),
            FeatureValue::Coded { table, codes } => coded(out, table, codes),
            FeatureValue::Mixed(v) => list(out, v, scalar),
        }
    }
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
    /// A sink refused the record for good (too large, say).
    Sink,
}

/// Most bytes of input a dead letter carries: an event, a window's input
/// or a row a sink refused is cut to this, so that a dead letter always
/// fits a Kafka record (1 MB by default) and no single one floods the
/// dead-letter output.
pub const MAX_RAW_BYTES: usize = 256 * 1024;

/// The first `max` bytes of `raw`, cut back to a UTF-8 boundary when
/// `raw` is text, and the full size when it was cut.
pub fn truncate_raw(mut raw: Vec<u8>, max: usize) -> (Vec<u8>, Option<u64>) {
    if raw.len() <= max {
        return (raw, None);
    }
    let size = raw.len() as u64;
    // Text stays text: a character cut in two at the end is left out. (A
    // first error elsewhere means the bytes are not text anyway.)
    let keep = match std::str::from_utf8(&raw[..max]) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => max,
    };
    raw.truncate(keep);
    (raw, Some(size))
}

/// A record the pipeline could not process, with why and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The raw input: the event bytes, or for a transform failure the
    /// window's input as JSON; at most [`MAX_RAW_BYTES`].
    #[serde(serialize_with = "raw_bytes")]
    pub raw: Vec<u8>,
    /// When `raw` was cut to [`MAX_RAW_BYTES`]: the full size, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u64>,
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

impl DeadLetter {
    /// A dead letter of `raw`, cut to [`MAX_RAW_BYTES`] (see
    /// [`DeadLetter::truncated`]); `at` is now.
    pub fn new(raw: Vec<u8>, position: Option<Position>, stage: Stage, error_class: &str, message: String) -> Self {
        let (raw, truncated) = truncate_raw(raw, MAX_RAW_BYTES);
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        DeadLetter { raw, truncated, position, stage, error_class: error_class.to_string(), message, at }
    }
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
            event_time: 59_000,
            trigger: Trigger::Late,
            features: Features(vec![("n".into(), FeatureValue::Int(3)), ("m".into(), FeatureValue::Null)]),
            computed_at: 7,
        };
        let json = serde_json::to_string(&row).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"key":"u1","window_start":0,"window_end":60000,"event_time":59000,"trigger":"late","features":{"n":3,"m":null},"computed_at":7}"#
        );
    }

    /// The fast writer gives exactly what serde gives, escapes included.
    #[test]
    fn write_json_matches_serde() {
        let row = FeatureRow {
            key: "u\"1\\".into(),
            window_start: -5,
            window_end: 60_000,
            event_time: 1,
            trigger: Trigger::Event,
            features: Features(vec![
                ("items".into(), FeatureValue::strs(["a", "q\"uote", "tab\there", "é"])),
                ("plain".into(), FeatureValue::strs(["i1", "", "ié2"])),
                ("n".into(), FeatureValue::Int(i64::MIN)),
                ("x".into(), FeatureValue::Float(0.1)),
                ("big".into(), FeatureValue::Float(1e300)),
                ("nan".into(), FeatureValue::Float(f64::NAN)),
                ("b".into(), FeatureValue::Bools(vec![true, false])),
                ("fs".into(), FeatureValue::Floats(vec![1.5, -0.0])),
                ("is".into(), FeatureValue::Ints(vec![])),
                ("m".into(), FeatureValue::Mixed(vec![Scalar::Null, Scalar::Str("s".into()), Scalar::Int(2)])),
                ("s".into(), FeatureValue::Str("ctl\u{1}".into())),
                ("none".into(), FeatureValue::Null),
            ]),
            computed_at: 7,
        };
        let mut fast = Vec::new();
        row.write_json(&mut fast);
        let serde = serde_json::to_vec(&row).unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
    }

    /// An integer key is a JSON number, in both writers; a key of an
    /// `int` pipeline that is not an integer stays text.
    #[test]
    fn an_integer_key_is_written_as_a_number() {
        let row = |key: EntityKey| FeatureRow {
            key,
            window_start: 0,
            window_end: 1,
            event_time: 0,
            trigger: Trigger::Close,
            features: Features(vec![]),
            computed_at: 0,
        };
        for (key, json) in [
            (EntityKey::typed("42", KeyType::Int), "42"),
            (EntityKey::typed("-9223372036854775808", KeyType::Int), "-9223372036854775808"),
            (EntityKey::typed("42", KeyType::String), "\"42\""),
            (EntityKey::typed("u1", KeyType::Int), "\"u1\""),
        ] {
            let row = row(key);
            let mut fast = Vec::new();
            row.write_json(&mut fast);
            let want = format!(r#"{{"key":{json},"window_start":0"#);
            assert!(String::from_utf8_lossy(&fast).starts_with(&want), "{}", String::from_utf8_lossy(&fast));
            assert_eq!(serde_json::to_vec(&row).ok(), Some(fast));
        }
        assert_eq!(EntityKey::Int(-3).text(), "-3");
    }

    #[test]
    fn write_json_writes_null_for_a_malformed_packed_list() {
        let row = FeatureRow {
            key: "k".into(),
            window_start: 0,
            window_end: 1,
            event_time: 0,
            trigger: Trigger::Close,
            features: Features(vec![("bad".into(), FeatureValue::Strs { data: "ab".into(), ends: vec![5] })]),
            computed_at: 0,
        };
        let mut out = Vec::new();
        row.write_json(&mut out);
        assert!(String::from_utf8_lossy(&out).contains(r#""features":{"bad":null}"#));
    }

    /// A coded list reads and writes as the packed list of its items, and
    /// equals it; an index past the table writes `null`.
    #[test]
    fn coded_lists_are_their_table_strings() {
        let table = Arc::new(StrTable::new(["i1", "q\"uote", "é", ""]));
        let coded = FeatureValue::coded(table.clone(), vec![2, 0, 0, 1, 3]);
        let packed = FeatureValue::strs(["é", "i1", "i1", "q\"uote", ""]);
        assert_eq!(coded.as_ref().and_then(FeatureValue::str_items), packed.str_items());
        assert_eq!(coded.as_ref(), Some(&packed));
        let (mut fast, mut expected) = (Vec::new(), Vec::new());
        if let Some(v) = &coded {
            v.write_json(&mut fast);
        }
        packed.write_json(&mut expected);
        assert_eq!(String::from_utf8_lossy(&fast), r#"["é","i1","i1","q\"uote",""]"#);
        assert_eq!(fast, expected);
        assert_eq!(coded.as_ref().map(|v| serde_json::to_vec(v).ok()), Some(serde_json::to_vec(&packed).ok()));
        assert!(FeatureValue::coded(table.clone(), vec![0, 4]).is_none());
        let bad = FeatureValue::Coded { table, codes: vec![1, 9] };
        let mut out = b"x".to_vec();
        bad.write_json(&mut out);
        assert_eq!(out, b"xnull");
        assert!(serde_json::to_string(&bad).is_err());
        assert_ne!(bad, packed);
    }

    #[test]
    fn dead_letters_are_cut_to_a_bound_with_their_full_size() {
        let small = DeadLetter::new(b"{}".to_vec(), None, Stage::Decode, "invalid_json", "m".into());
        assert_eq!((small.raw.as_slice(), small.truncated), (&b"{}"[..], None));
        let json = serde_json::to_value(&small).unwrap_or_default();
        assert!(json.get("truncated").is_none(), "{json}");
        // A multi-byte character across the bound is left out whole.
        let mut text = "a".repeat(MAX_RAW_BYTES - 1).into_bytes();
        text.extend("é and more".as_bytes());
        let size = text.len() as u64;
        let big = DeadLetter::new(text, None, Stage::Decode, "record_too_large", "m".into());
        assert_eq!(big.raw.len(), MAX_RAW_BYTES - 1);
        assert_eq!(big.truncated, Some(size));
        let json = serde_json::to_value(&big).unwrap_or_default();
        assert_eq!(json["truncated"], size);
        assert!(json["raw"].is_string());
        // Bytes that are not text are cut exactly.
        let (bytes, cut) = truncate_raw(vec![0xff; 10], 4);
        assert_eq!((bytes.len(), cut), (4, Some(10)));
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
