//! Feature rows as Avro in Confluent's wire format (`format: avro`): the
//! row schema made from the module's declared features, registered under
//! the topic's subject (`{topic}-value`, the serializers'
//! TopicNameStrategy) as a Confluent serializer with
//! `auto.register.schemas` does, and each row written by the crate's
//! schema-aware serializer (straight to the output, checked against the
//! schema as it goes), after the magic byte and the schema id.
//!
//! The row schema mirrors the JSON row, so a consumer's
//! `AvroDeserializer` reads what a JSON consumer reads:
//!
//! ```text
//! record sluice.FeatureRow {
//!   key: string | long                        (events.key_type)
//!   window_start, window_end, event_time: long (timestamp-millis)
//!   trigger: string                           (close, event, late)
//!   features: record sluice.Features { one field per declared feature }
//!   computed_at: long (timestamp-millis)
//! }
//! ```
//!
//! A feature is `boolean`, `long`, `double` or `string`, a list an `array`
//! of `["null", item]`; a nullable feature is `["null", type]` with
//! default `null` (so adding one keeps the subject backward compatible),
//! one that is not has no default (so adding one is refused under
//! BACKWARD, as its old rows do not have it). Its description is the
//! field's `doc`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use apache_avro::Schema;
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};
use serde_json::json;
use sluice_schema_registry::{Client, ClientError, RegistryConfig};
use sluice_sink_api::{EntityKey, FeatureRow, FeatureSchema, FeatureType, FeatureValue, KeyType, Scalar, Trigger};

/// Confluent's wire format: this byte, then the schema id (4 bytes, big
/// endian), then the datum.
const MAGIC: u8 = 0;

/// The row schema of `features` under `key_type`, as the JSON text to
/// register. An error names a feature whose name Avro does not take.
pub fn row_schema(features: &FeatureSchema, key_type: KeyType) -> Result<String, String> {
    let timestamp = json!({"type": "long", "logicalType": "timestamp-millis"});
    let mut fields = Vec::with_capacity(features.specs().len());
    for spec in features.specs() {
        if !avro_name(&spec.name) {
            return Err(format!(
                "feature `{}` cannot be an Avro field name (letters, digits and `_`, not starting with a digit)",
                spec.name
            ));
        }
        let ty = feature_type(spec.ty);
        let mut field = if spec.nullable {
            json!({"name": &*spec.name, "type": ["null", ty], "default": null})
        } else {
            json!({"name": &*spec.name, "type": ty})
        };
        if !spec.description.is_empty() {
            field["doc"] = json!(spec.description);
        }
        fields.push(field);
    }
    let key = match key_type {
        KeyType::String => "string",
        KeyType::Int => "long",
    };
    let schema = json!({
        "type": "record",
        "name": "FeatureRow",
        "namespace": "sluice",
        "fields": [
            {"name": "key", "type": key},
            {"name": "window_start", "type": timestamp},
            {"name": "window_end", "type": timestamp},
            {"name": "event_time", "type": timestamp},
            {"name": "trigger", "type": "string"},
            {"name": "features", "type": {"type": "record", "name": "Features", "fields": fields}},
            {"name": "computed_at", "type": timestamp},
        ],
    });
    Ok(schema.to_string())
}

fn feature_type(ty: FeatureType) -> serde_json::Value {
    let list = |item: &str| json!({"type": "array", "items": ["null", item]});
    match ty {
        FeatureType::Bool => json!("boolean"),
        FeatureType::Int => json!("long"),
        FeatureType::Float => json!("double"),
        FeatureType::Str => json!("string"),
        FeatureType::Bools => list("boolean"),
        FeatureType::Ints => list("long"),
        FeatureType::Floats => list("double"),
        FeatureType::Strs => list("string"),
    }
}

/// Whether `name` is an Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
fn avro_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A Kafka sink's Avro rows: the schema, and its id once registered.
pub struct AvroRows {
    client: Client,
    /// `{topic}-value`.
    subject: String,
    /// The schema's JSON text, as registered.
    text: String,
    /// The same, parsed, for the serializer.
    schema: Schema,
    features: Arc<FeatureSchema>,
    /// The features' names, as the serializer takes them.
    names: Vec<&'static str>,
    id: Option<u32>,
}

/// Why rows cannot be written as Avro.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("registry: {0}")]
    Config(String),
    #[error("the feature rows cannot be Avro: {0}")]
    Schema(String),
}

impl AvroRows {
    /// The rows of `features` for `topic`, registered with the registry
    /// `config` names (not yet: see [`AvroRows::register`]).
    pub fn new(
        config: &RegistryConfig,
        topic: &str,
        features: Arc<FeatureSchema>,
        key_type: KeyType,
    ) -> Result<AvroRows, AvroError> {
        let client = Client::new(config).map_err(|e| AvroError::Config(e.to_string()))?;
        let text = row_schema(&features, key_type).map_err(AvroError::Schema)?;
        let schema = Schema::parse_str(&text).map_err(|e| AvroError::Schema(e.to_string()))?;
        let names = features.specs().iter().map(|spec| interned(&spec.name)).collect();
        Ok(AvroRows { client, subject: format!("{topic}-value"), text, schema, features, names, id: None })
    }

    /// The subject the schema is registered under.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The schema's id, registering it first if it is not yet: the same
    /// id when the subject has it already, a new version when the
    /// module's features changed compatibly, and
    /// [`ClientError::Refused`] with the registry's message when they did
    /// not.
    pub async fn register(&mut self) -> Result<u32, ClientError> {
        if let Some(id) = self.id {
            return Ok(id);
        }
        let id = self.client.register(&self.subject, &self.text).await?;
        tracing::info!(subject = %self.subject, schema_id = id, registry = self.client.url(), "registered the feature rows' Avro schema");
        self.id = Some(id);
        Ok(id)
    }

    /// Append `row` in the wire format with schema `id`. An error (a row
    /// that does not keep to the declared features, which the host checks
    /// before) says why.
    pub fn encode(&self, id: u32, row: &FeatureRow, out: &mut Vec<u8>) -> Result<(), String> {
        let mark = out.len();
        out.push(MAGIC);
        out.extend_from_slice(&id.to_be_bytes());
        let datum = Datum { row, specs: self.features.specs(), names: &self.names };
        apache_avro::write_avro_datum_ref(&self.schema, &datum, out).map(|_| ()).map_err(|e| {
            out.truncate(mark);
            e.to_string()
        })
    }
}

/// `name` for the whole process: the crate's serializer takes a record's
/// field names as `&'static str`, and a feature's is known only when the
/// module is. Each distinct name is kept once.
fn interned(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match names.get(name) {
        Some(kept) => kept,
        None => {
            let kept: &'static str = Box::leak(name.into());
            names.insert(kept);
            kept
        }
    }
}

/// A row as the crate's schema-aware serializer writes it: straight into
/// the output, fields in the schema's order, no `Value`s built.
struct Datum<'a> {
    row: &'a FeatureRow,
    specs: &'a [sluice_sink_api::FeatureSpec],
    /// The features' names, as the serializer takes them.
    names: &'a [&'static str],
}

impl Serialize for Datum<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let row = self.row;
        let mut record = s.serialize_struct("FeatureRow", 7)?;
        match &row.key {
            EntityKey::Str(text) => record.serialize_field("key", text)?,
            EntityKey::Int(i) => record.serialize_field("key", i)?,
        }
        record.serialize_field("window_start", &row.window_start)?;
        record.serialize_field("window_end", &row.window_end)?;
        record.serialize_field("event_time", &row.event_time)?;
        let trigger = match row.trigger {
            Trigger::Close => "close",
            Trigger::Event => "event",
            Trigger::Late => "late",
        };
        record.serialize_field("trigger", trigger)?;
        record.serialize_field("features", &FeaturesDatum { row, specs: self.specs, names: self.names })?;
        record.serialize_field("computed_at", &row.computed_at)?;
        record.end()
    }
}

/// The `features` record: each declared feature in declaration order.
struct FeaturesDatum<'a> {
    row: &'a FeatureRow,
    specs: &'a [sluice_sink_api::FeatureSpec],
    names: &'a [&'static str],
}

impl Serialize for FeaturesDatum<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut record = s.serialize_struct("Features", self.specs.len())?;
        for (spec, &name) in self.specs.iter().zip(self.names) {
            let value = self.row.features.get(&spec.name).filter(|v| !matches!(v, FeatureValue::Null));
            match (value, spec.nullable) {
                (Some(value), true) => record.serialize_field(name, &Some(ValueDatum(value)))?,
                (Some(value), false) => record.serialize_field(name, &ValueDatum(value))?,
                (None, true) => record.serialize_field(name, &None::<()>)?,
                (None, false) => {
                    return Err(serde::ser::Error::custom(format!(
                        "feature `{name}` is missing (it is not declared nullable)"
                    )));
                }
            }
        }
        record.end()
    }
}

/// A feature's value; a list's items each in a `["null", item]` union.
struct ValueDatum<'a>(&'a FeatureValue);

impl Serialize for ValueDatum<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn items<S: Serializer, T: Serialize>(
            s: S,
            items: impl ExactSizeIterator<Item = T>,
        ) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for item in items {
                seq.serialize_element(&Some(item))?;
            }
            seq.end()
        }
        match self.0 {
            FeatureValue::Null => s.serialize_none(),
            FeatureValue::Bool(b) => s.serialize_bool(*b),
            FeatureValue::Int(i) => s.serialize_i64(*i),
            FeatureValue::Float(f) => s.serialize_f64(*f),
            FeatureValue::Str(text) => s.serialize_str(text),
            FeatureValue::Bools(v) => items(s, v.iter()),
            FeatureValue::Ints(v) => items(s, v.iter()),
            FeatureValue::Floats(v) => items(s, v.iter()),
            value @ (FeatureValue::Strs { .. } | FeatureValue::Coded { .. }) => {
                let list = value.str_items().ok_or_else(|| serde::ser::Error::custom("a malformed string list"))?;
                items(s, list.into_iter())
            }
            FeatureValue::Mixed(list) => {
                let mut seq = s.serialize_seq(Some(list.len()))?;
                for item in list {
                    match item {
                        Scalar::Null => seq.serialize_element(&None::<()>)?,
                        Scalar::Bool(b) => seq.serialize_element(&Some(b))?,
                        Scalar::Int(i) => seq.serialize_element(&Some(i))?,
                        Scalar::Float(f) => seq.serialize_element(&Some(f))?,
                        Scalar::Str(text) => seq.serialize_element(&Some(text))?,
                    }
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use apache_avro::Schema;
    use apache_avro::types::Value;
    use sluice_sink_api::{
        FeatureRow, FeatureSchema, FeatureSpec, FeatureType, FeatureValue, Features, KeyType, Scalar, Trigger,
    };

    use super::{AvroRows, row_schema};

    fn spec(name: &str, ty: FeatureType, nullable: bool, description: &str) -> FeatureSpec {
        FeatureSpec { name: name.into(), ty, nullable, description: description.into() }
    }

    fn schema() -> anyhow::Result<Arc<FeatureSchema>> {
        let specs = vec![
            spec("count", FeatureType::Int, false, "clicks in the window"),
            spec("share", FeatureType::Float, true, ""),
            spec("top", FeatureType::Str, true, ""),
            spec("items", FeatureType::Strs, false, ""),
            spec("flags", FeatureType::Bools, true, ""),
        ];
        Ok(Arc::new(FeatureSchema::new(specs).map_err(anyhow::Error::msg)?))
    }

    /// A row encoded in the wire format reads back, through the crate's
    /// reader with the registered schema, as the hand-written value it
    /// should be: every kind of feature, a null and a missing nullable
    /// feature, a list with a null item.
    #[test]
    fn a_row_reads_back_as_the_value_it_was() -> anyhow::Result<()> {
        let features = schema()?;
        let config = sluice_schema_registry::RegistryConfig::new("http://127.0.0.1:1");
        let rows = AvroRows::new(&config, "features", features.clone(), KeyType::Int)?;
        let row = FeatureRow {
            key: 42.into(),
            window_start: 1_000,
            window_end: 301_000,
            event_time: 299_999,
            trigger: Trigger::Late,
            features: Features(vec![
                ("items".into(), FeatureValue::strs(["a", "é"])),
                ("count".into(), FeatureValue::Int(3)),
                ("share".into(), FeatureValue::Null),
                ("flags".into(), FeatureValue::Mixed(vec![Scalar::Bool(true), Scalar::Null])),
            ]),
            computed_at: 305_000,
        };
        let mut out = Vec::new();
        rows.encode(7, &row, &mut out).map_err(anyhow::Error::msg)?;
        assert_eq!(&out[..5], &[0, 0, 0, 0, 7]);
        let written = Schema::parse_str(&row_schema(&features, KeyType::Int).map_err(anyhow::Error::msg)?)?;
        let read = apache_avro::from_avro_datum(&written, &mut &out[5..], None)?;
        let some = |v: Value| Value::Union(1, Box::new(v));
        let null = || Value::Union(0, Box::new(Value::Null));
        let want = Value::Record(vec![
            ("key".into(), Value::Long(42)),
            ("window_start".into(), Value::TimestampMillis(1_000)),
            ("window_end".into(), Value::TimestampMillis(301_000)),
            ("event_time".into(), Value::TimestampMillis(299_999)),
            ("trigger".into(), Value::String("late".into())),
            (
                "features".into(),
                Value::Record(vec![
                    ("count".into(), Value::Long(3)),
                    ("share".into(), null()),
                    ("top".into(), null()),
                    (
                        "items".into(),
                        Value::Array(vec![some(Value::String("a".into())), some(Value::String("é".into()))]),
                    ),
                    ("flags".into(), some(Value::Array(vec![some(Value::Boolean(true)), null()]))),
                ]),
            ),
            ("computed_at".into(), Value::TimestampMillis(305_000)),
        ]);
        assert_eq!(read, want);

        // A row without a required feature is refused, and leaves nothing.
        let mut partial = row.clone();
        partial.features.0.retain(|(name, _)| &**name != "count");
        let mut out = b"kept".to_vec();
        let refused = rows.encode(7, &partial, &mut out).err().unwrap_or_default();
        assert!(refused.contains("feature `count` is missing"), "{refused}");
        assert_eq!(out, b"kept");
        Ok(())
    }

    /// Nullable features have a default (adding one is a compatible
    /// change), required ones do not; descriptions are docs; a name Avro
    /// does not take is refused with the feature's name.
    #[test]
    fn the_row_schema_follows_the_declaration() -> anyhow::Result<()> {
        let text = row_schema(&*schema()?, KeyType::String).map_err(anyhow::Error::msg)?;
        let schema: serde_json::Value = serde_json::from_str(&text)?;
        assert_eq!(schema["fields"][0], serde_json::json!({"name": "key", "type": "string"}));
        let features = &schema["fields"][5]["type"]["fields"];
        assert_eq!(features[0], serde_json::json!({"name": "count", "type": "long", "doc": "clicks in the window"}));
        assert_eq!(features[1], serde_json::json!({"name": "share", "type": ["null", "double"], "default": null}));
        let bad = FeatureSchema::new(vec![spec("p-99", FeatureType::Float, false, "")]).map_err(anyhow::Error::msg)?;
        let refused = row_schema(&bad, KeyType::String).err().unwrap_or_default();
        assert!(refused.contains("feature `p-99` cannot be an Avro field name"), "{refused}");
        Ok(())
    }
}
