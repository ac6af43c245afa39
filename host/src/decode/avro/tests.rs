//! The Avro decoder against records the `apache-avro` crate writes, and
//! against what the crate's own resolution reads from them.

use std::borrow::Cow;
use std::collections::HashMap;

use apache_avro::types::Value as Avro;

use super::*;
use crate::chunk::Metadata;
use crate::decode::{Event, Field, FieldType, KeyFormat, KeySource, TimeSource, Value};
use crate::schema_registry::RegistryConfig;
use crate::time::TimestampFormat;

const NOW: i64 = 1_718_000_000_000;

/// Seed 000's click event, as the manifest declares it: the key, the time
/// in milliseconds, and three fields (one optional, one nested).
fn declared() -> Schema {
    Schema {
        format: Format::Avro,
        key: KeySource::Field("user_id".into()),
        key_type: sluice_sink_api::KeyType::String,
        timestamp: TimeSource::Field { name: "ts".into(), format: TimestampFormat::Millis },
        fields: vec![
            Field { name: "item_id".into(), ty: FieldType::String, required: true },
            Field { name: "price".into(), ty: FieldType::Float, required: true },
            Field { name: "device_type".into(), ty: FieldType::String, required: false },
        ],
        max_future_skew_ms: None,
        min_timestamp_ms: None,
        avro: None,
    }
}

const V1: &str = r#"{"type": "record", "name": "Click", "namespace": "shop", "fields": [
    {"name": "user_id", "type": "string"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "item_id", "type": "string"},
    {"name": "attrs", "type": {"type": "map", "values": ["null", "double"]}},
    {"name": "price", "type": "int"},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["VIEW", "BUY"]}},
    {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}}
]}"#;

/// v1 with `device_type` added (with a default), `tags` removed, `price`
/// promoted to double and `item_id` written as bytes.
const V2: &str = r#"{"type": "record", "name": "Click", "namespace": "shop", "fields": [
    {"name": "user_id", "type": "string"},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "item_id", "type": "bytes"},
    {"name": "price", "type": "double"},
    {"name": "device_type", "type": ["null", "string"], "default": null},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["VIEW", "BUY"]}}
]}"#;

fn parse(text: &str) -> apache_avro::Schema {
    apache_avro::Schema::parse_str(text).expect("a test schema parses")
}

fn v1_click(user: &str, ts: i64, item: &str, price: i32) -> Avro {
    let attrs = HashMap::from([("a".to_string(), Avro::Union(1, Box::new(Avro::Double(0.5))))]);
    Avro::Record(vec![
        ("user_id".into(), Avro::String(user.into())),
        ("tags".into(), Avro::Array(vec![Avro::String("x".into()), Avro::String("yz".into())])),
        ("ts".into(), Avro::TimestampMillis(ts)),
        ("item_id".into(), Avro::String(item.into())),
        ("attrs".into(), Avro::Map(attrs)),
        ("price".into(), Avro::Int(price)),
        ("kind".into(), Avro::Enum(1, "BUY".into())),
        ("hash".into(), Avro::Fixed(4, vec![1, 2, 3, 4])),
    ])
}

fn v2_click(user: &str, ts: i64, item: &str, price: f64, device: Option<&str>) -> Avro {
    let device = match device {
        Some(d) => Avro::Union(1, Box::new(Avro::String(d.into()))),
        None => Avro::Union(0, Box::new(Avro::Null)),
    };
    Avro::Record(vec![
        ("user_id".into(), Avro::String(user.into())),
        ("ts".into(), Avro::TimestampMillis(ts)),
        ("item_id".into(), Avro::Bytes(item.as_bytes().to_vec())),
        ("price".into(), Avro::Double(price)),
        ("device_type".into(), device),
        ("kind".into(), Avro::Enum(0, "VIEW".into())),
    ])
}

/// `value` in the wire format, under schema id `id`.
fn framed(id: u32, schema: &str, value: Avro) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend(id.to_be_bytes());
    bytes.extend(apache_avro::to_avro_datum(&parse(schema), value).expect("the test value fits its schema"));
    bytes
}

fn record(bytes: &[u8]) -> Record<'_> {
    Record { slot: 0, offset: 0, bytes, metadata: Metadata::default() }
}

/// A decoder of the wire format whose registry already gave these
/// schemas (the registry itself is tested against the server); its URL
/// has nothing listening.
fn with_schemas(schema: Schema, schemas: &[(u32, &str)]) -> AvroDecoder {
    let registry = RegistryConfig::new("http://127.0.0.1:9");
    let schema = Schema { avro: Some(Writers::Registry(registry)), ..schema };
    let decoder = AvroDecoder::with_schemas(schema, schemas).map_err(|e| e.to_string());
    decoder.unwrap_or_else(|e| panic!("{e}"))
}

fn event(key: &str, time: i64, values: Vec<Value<'static>>) -> Result<Event<'static>, String> {
    Ok(Event { key: Cow::Owned(key.into()), time, values })
}

/// Seed 000's schema change mid-stream: records of v1 and of v2 read as
/// the declared fields, each through its own writer schema.
#[test]
fn records_of_two_schema_versions_read_as_the_declared_fields() {
    let decoder = with_schemas(declared(), &[(1, V1), (2, V2)]);
    let decode = |bytes: &[u8]| {
        decoder.decode(&record(bytes), NOW).map_err(|e| e.to_string()).map(|e| Event {
            key: Cow::Owned(e.key.into_owned()),
            time: e.time,
            values: e
                .values
                .into_iter()
                .map(|v| match v {
                    Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
                    Value::Null => Value::Null,
                    Value::Bool(b) => Value::Bool(b),
                    Value::Int(i) => Value::Int(i),
                    Value::Float(f) => Value::Float(f),
                })
                .collect(),
        })
    };
    assert_eq!(
        decode(&framed(1, V1, v1_click("u1", NOW - 5, "i-9", 3))),
        event("u1", NOW - 5, vec![Value::Str("i-9".into()), Value::Float(3.0), Value::Null])
    );
    assert_eq!(
        decode(&framed(2, V2, v2_click("u2", NOW - 4, "i-8", 2.5, Some("ios")))),
        event("u2", NOW - 4, vec![Value::Str("i-8".into()), Value::Float(2.5), Value::Str("ios".into())])
    );
    assert_eq!(
        decode(&framed(2, V2, v2_click("u3", NOW - 3, "i-7", 1.0, None))),
        event("u3", NOW - 3, vec![Value::Str("i-7".into()), Value::Float(1.0), Value::Null])
    );
}

/// Strings are read in place: the decoded key and fields point into the
/// record, as the JSON decoder's do.
#[test]
fn strings_are_borrowed_from_the_record() {
    let decoder = with_schemas(declared(), &[(1, V1)]);
    let bytes = framed(1, V1, v1_click("user-1", NOW, "item-1", 1));
    let event = decoder.decode(&record(&bytes), NOW).map_err(|e| e.to_string());
    assert!(matches!(event.as_ref().map(|e| &e.key), Ok(Cow::Borrowed("user-1"))), "{event:?}");
    assert!(matches!(event.as_ref().map(|e| &e.values[0]), Ok(Value::Str(Cow::Borrowed("item-1")))), "{event:?}");
}

/// Every way a record can be wrong is a dead letter whose class says how
/// and whose message names the schema id.
#[test]
fn what_cannot_be_read_is_a_dead_letter_with_the_schema_id() {
    // v0 lacks the required `item_id`; v9 has a record where a string is
    // declared.
    let v0 = r#"{"type": "record", "name": "Click", "fields": [
        {"name": "user_id", "type": "string"}, {"name": "ts", "type": "long"}, {"name": "price", "type": "float"}]}"#;
    let v9 = r#"{"type": "record", "name": "Click", "fields": [
        {"name": "user_id", "type": "string"}, {"name": "ts", "type": "long"}, {"name": "price", "type": "float"},
        {"name": "item_id", "type": {"type": "record", "name": "Item", "fields": [{"name": "id", "type": "int"}]}}]}"#;
    let decoder = with_schemas(declared(), &[(1, V1), (3, v0), (9, v9), (4, "{not json")]);
    let failure = |bytes: &[u8]| decoder.decode(&record(bytes), NOW).err().map(|e| (e.class(), e.to_string()));
    let good = framed(1, V1, v1_click("u1", NOW, "i", 1));
    assert_eq!(failure(&good), None);

    let (class, message) = failure(&good[..3]).unwrap_or_default();
    assert_eq!(
        (class, message.as_str()),
        ("avro_framing", "the record is 3 bytes, shorter than the wire format's 5-byte header")
    );
    assert_eq!(failure(br#"{"user_id":"u1"}"#).map(|f| f.0), Some("avro_framing"));

    let (class, message) = failure(&good[..good.len() - 1]).unwrap_or_default();
    assert_eq!(class, "invalid_avro");
    assert!(message.starts_with("schema id 1: the datum does not match its writer schema"), "{message}");
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        failure(&longer),
        Some(("invalid_avro", "schema id 1: 1 bytes follow the datum its writer schema describes".into()))
    );

    let mut unknown = good.clone();
    unknown[1..5].copy_from_slice(&77u32.to_be_bytes());
    assert_eq!(failure(&unknown), Some(("unknown_schema_id", "schema id 77: the schema was not fetched".into())));

    let zero = framed(
        3,
        v0,
        Avro::Record(vec![
            ("user_id".into(), Avro::String("u".into())),
            ("ts".into(), Avro::Long(1)),
            ("price".into(), Avro::Float(1.0)),
        ]),
    );
    let (class, message) = failure(&zero).unwrap_or_default();
    assert_eq!(class, "schema_mismatch");
    assert!(message.contains("schema id 3") && message.contains("no field `item_id`, which is required"), "{message}");

    let mut nine = zero.clone();
    nine[1..5].copy_from_slice(&9u32.to_be_bytes());
    let (class, message) = failure(&nine).unwrap_or_default();
    assert_eq!(class, "schema_mismatch");
    assert!(
        message.contains("`item_id` is the record `Item` in the writer schema, which cannot be read as a string"),
        "{message}"
    );

    let mut four = zero.clone();
    four[1..5].copy_from_slice(&4u32.to_be_bytes());
    let (class, message) = failure(&four).unwrap_or_default();
    assert_eq!(class, "schema_mismatch");
    assert!(message.starts_with("schema id 4: the writer schema is not a valid Avro schema"), "{message}");
}

/// A declared field may be a path into nested records, through nullable
/// unions; a null record on the way makes the field null.
#[test]
fn a_dotted_field_is_a_path_into_nested_records() {
    let writer = r#"{"type": "record", "name": "Click", "fields": [
        {"name": "user_id", "type": "long"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "device", "type": ["null", {"type": "record", "name": "Device", "fields": [
            {"name": "model", "type": "string"},
            {"name": "os", "type": {"type": "record", "name": "Os", "fields": [
                {"name": "name", "type": "string"}, {"name": "major", "type": "int"}]}}]}]}
    ]}"#;
    let schema = Schema {
        key_type: sluice_sink_api::KeyType::Int,
        // A timestamp-micros writer field is the event time in any format.
        timestamp: TimeSource::Field { name: "ts".into(), format: TimestampFormat::Seconds },
        fields: vec![
            Field { name: "device.os.name".into(), ty: FieldType::String, required: false },
            Field { name: "device.os.major".into(), ty: FieldType::Int, required: false },
        ],
        ..declared()
    };
    let decoder = with_schemas(schema, &[(5, writer)]);
    let click = |device: Avro| {
        Avro::Record(vec![
            ("user_id".into(), Avro::Long(42)),
            ("ts".into(), Avro::TimestampMicros(1_718_000_000_123_456)),
            ("device".into(), device),
        ])
    };
    let device = Avro::Union(
        1,
        Box::new(Avro::Record(vec![
            ("model".into(), Avro::String("pixel".into())),
            (
                "os".into(),
                Avro::Record(vec![("name".into(), Avro::String("android".into())), ("major".into(), Avro::Int(15))]),
            ),
        ])),
    );
    let bytes = framed(5, writer, click(device));
    let decoded = decoder.decode(&record(&bytes), NOW).map_err(|e| e.to_string());
    assert_eq!(
        decoded,
        Ok(Event {
            key: "42".into(),
            time: 1_718_000_000_123,
            values: vec![Value::Str("android".into()), Value::Int(15)]
        })
    );
    let bytes = framed(5, writer, click(Avro::Union(0, Box::new(Avro::Null))));
    let decoded = decoder.decode(&record(&bytes), NOW).map_err(|e| e.to_string());
    assert_eq!(
        decoded,
        Ok(Event { key: "42".into(), time: 1_718_000_000_123, values: vec![Value::Null, Value::Null] })
    );
}

/// An Avro Kafka key (a string or a long under schemas of their own) is
/// the event's key; a key that is not in the wire format is a dead letter
/// that says it is the key's fault.
#[test]
fn an_avro_kafka_key_is_the_event_key() {
    let schema = Schema { key: KeySource::KafkaKey(KeyFormat::Avro), ..declared() };
    let decoder = with_schemas(schema.clone(), &[(1, V1), (7, r#""string""#), (8, r#""long""#)]);
    let value = framed(1, V1, v1_click("not-the-key", NOW, "i", 1));
    let keyed = |key: Option<&[u8]>| {
        let metadata = Metadata { key, timestamp: None, headers: &[] };
        let record = Record { slot: 0, offset: 0, bytes: &value, metadata };
        decoder.decode(&record, NOW).map(|e| e.key.into_owned()).map_err(|e| (e.class(), e.to_string()))
    };
    assert_eq!(keyed(Some(&framed(7, r#""string""#, Avro::String("u-key".into())))), Ok("u-key".into()));
    assert_eq!(keyed(Some(&framed(8, r#""long""#, Avro::Long(-42)))), Ok("-42".into()));
    assert_eq!(keyed(None), Err(("missing_field", "the record has no Kafka key".into())));
    let (class, message) = keyed(Some(b"u-text")).err().unwrap_or_default();
    assert_eq!(class, "avro_framing");
    assert!(message.starts_with("the Kafka key: the record starts with byte 0x75"), "{message}");
    // A record schema as the key's is not a key.
    let (class, message) = keyed(Some(&value)).err().unwrap_or_default();
    assert_eq!(class, "schema_mismatch");
    assert!(message.starts_with("schema id 1: the Kafka key: the writer schema cannot be read"), "{message}");
}

/// Schemas a registry could hand out to do harm: a record that holds
/// itself with no end, arrays claiming more items than there are bytes,
/// or billions of nulls. Each is a dead letter or a quick read, never a
/// crash or a hang.
#[test]
fn hostile_schemas_and_counts_are_refused_quickly() {
    let endless = r#"{"type": "record", "name": "Loop", "fields": [
        {"name": "user_id", "type": "string"}, {"name": "ts", "type": "long"},
        {"name": "item_id", "type": "string"}, {"name": "price", "type": "double"},
        {"name": "next", "type": "Loop"}]}"#;
    let counted = r#"{"type": "record", "name": "Counted", "fields": [
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
        {"name": "longs", "type": {"type": "array", "items": "long"}},
        {"name": "user_id", "type": "string"}, {"name": "ts", "type": "long"},
        {"name": "item_id", "type": "string"}, {"name": "price", "type": "double"}]}"#;
    let decoder = with_schemas(declared(), &[(1, endless), (2, counted)]);
    let decode =
        |bytes: &[u8]| decoder.decode(&record(bytes), NOW).map(|e| e.key.into_owned()).map_err(|e| e.to_string());
    // user "u", ts 2, item "i", price 1.0, then `next` for ever.
    let mut looped = vec![0, 0, 0, 0, 1, 2, b'u', 4, 2, b'i'];
    looped.extend(1.0f64.to_le_bytes());
    looped.extend(std::iter::repeat_n([2, b'u', 4, 2, b'i', 0, 0, 0, 0, 0, 0, 0, 0], 1_000).flatten());
    let refused = decode(&looped);
    assert!(refused.as_ref().is_err_and(|e| e.contains("nested deeper than")), "{refused:?}");
    let zigzag = |n: u64| {
        let (mut v, mut out) = (n << 1, Vec::new());
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    };
    // 2^62 nulls (no bytes each) and no longs, then the declared fields.
    let mut counted_bytes = vec![0, 0, 0, 0, 2];
    counted_bytes.extend(zigzag(1 << 62));
    counted_bytes.extend([0, 0]);
    counted_bytes.extend([2, b'u', 4, 2, b'i']);
    counted_bytes.extend(1.0f64.to_le_bytes());
    assert_eq!(decode(&counted_bytes), Ok("u".into()));
    // 2^40 longs in a few bytes.
    let mut lying = vec![0, 0, 0, 0, 2, 0];
    lying.extend(zigzag(1 << 40));
    lying.extend([2, 4]);
    let refused = decode(&lying);
    assert!(refused.as_ref().is_err_and(|e| e.contains("a block of 1099511627776 items")), "{refused:?}");
}

/// Bare datums of a writer schema the manifest gives, and the manifest's
/// check of that schema.
#[test]
fn bare_datums_of_a_given_writer_schema() {
    let schema = Schema { avro: Some(Writers::Given(V2.into())), ..declared() };
    let decoder = AvroDecoder::new(schema.clone()).map_err(|e| e.to_string());
    let Ok(decoder) = decoder else { panic!("{decoder:?}") };
    let bytes = apache_avro::to_avro_datum(&parse(V2), v2_click("u", NOW, "i", 0.25, Some("web"))).unwrap_or_default();
    let decoded = decoder.decode(&record(&bytes), NOW).map(|e| e.values.len()).map_err(|e| e.to_string());
    assert_eq!(decoded, Ok(3));
    assert_eq!(refusal(&schema, V2), None);
    let why = refusal(&schema, r#"{"type": "record", "name": "R", "fields": [{"name": "user_id", "type": "string"}]}"#);
    assert!(why.is_some_and(|w| w.contains("no field `item_id`")));
}

/// Datums of an Avro container file: each chunk carries its file's
/// writer schema, which the decoder resolves once (v1, then a file of v2);
/// a chunk that carries none (not from a container file) is dead letters.
#[test]
fn datums_of_a_container_file_read_with_the_schema_their_chunk_carries() {
    let mut decoder =
        AvroDecoder::new(Schema { avro: Some(Writers::Container), ..declared() }).unwrap_or_else(|e| panic!("{e}"));
    // Prepared, then decoded: each record's price, or why not.
    let mut price = |chunk: &Chunk| -> Vec<Result<String, String>> {
        assert_eq!(decoder.prepare(chunk), Ok(()));
        chunk
            .records()
            .map(|r| decoder.decode(&r, NOW).map(|e| format!("{:?}", e.values[1])).map_err(|e| e.to_string()))
            .collect()
    };
    let v1 = apache_avro::to_avro_datum(&parse(V1), v1_click("u", NOW, "i", 7)).unwrap_or_default();
    let v2 = apache_avro::to_avro_datum(&parse(V2), v2_click("u", NOW, "i", 0.5, None)).unwrap_or_default();
    let mut first = Chunk::default().with_writer_schema(V1.into());
    first.push(0, 1, &v1, Metadata::default(), usize::MAX);
    assert_eq!(price(&first), [Ok("Float(7.0)".to_string())]);
    let mut second = Chunk::default().with_writer_schema(V2.into());
    second.push(0, 1, &v2, Metadata::default(), usize::MAX);
    assert_eq!(price(&second), [Ok("Float(0.5)".to_string())]);
    let mut bare = Chunk::default();
    bare.push(0, 1, &v2, Metadata::default(), usize::MAX);
    let refused = price(&bare).remove(0);
    assert!(refused.as_ref().is_err_and(|e| e.contains("not from an Avro object container file")), "{refused:?}");
}

/// A registry that does not answer holds the chunk (an error to retry),
/// and no record of it is decoded or lost.
#[test]
fn a_registry_that_does_not_answer_is_retried_not_dead_lettered() {
    let mut decoder = with_schemas(declared(), &[(1, V1)]);
    let mut chunk = Chunk::default();
    chunk.push(0, 0, &framed(1, V1, v1_click("u", NOW, "i", 1)), Metadata::default(), usize::MAX);
    assert_eq!(decoder.prepare(&chunk), Ok(()), "a known id needs no fetch");
    chunk.push(0, 1, &framed(2, V2, v2_click("u", NOW, "i", 1.0, None)), Metadata::default(), usize::MAX);
    let held = decoder.prepare(&chunk).map_err(|e| e.to_string());
    assert!(held.as_ref().is_err_and(|e| e.contains("127.0.0.1:9") && e.contains("schema id 2")), "{held:?}");
}

/// Differential: over random records of a writer schema with every kind
/// of value to skip, the decoder reads what `apache_avro::from_avro_datum`
/// reads with the declared fields as its reader schema.
#[test]
fn reads_what_the_crates_resolution_reads() {
    use rand::{Rng, SeedableRng};
    let writer = parse(V1);
    let reader = parse(
        r#"{"type": "record", "name": "Click", "namespace": "shop", "fields": [
            {"name": "user_id", "type": "string"},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "item_id", "type": "string"},
            {"name": "price", "type": "double"},
            {"name": "device_type", "type": ["null", "string"], "default": null}]}"#,
    );
    let decoder = with_schemas(declared(), &[(1, V1)]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(26);
    let text = |rng: &mut rand_chacha::ChaCha8Rng| -> String {
        let n = rng.random_range(0..40);
        (0..n).map(|_| char::from_u32(rng.random_range(0x20..0x3000)).unwrap_or('?')).collect()
    };
    for _ in 0..2_000 {
        let tags = (0..rng.random_range(0..5)).map(|_| Avro::String(text(&mut rng))).collect();
        let attrs = (0..rng.random_range(0..4))
            .map(|_| {
                let v = if rng.random() {
                    Avro::Union(0, Box::new(Avro::Null))
                } else {
                    Avro::Union(1, Box::new(Avro::Double(rng.random())))
                };
                (text(&mut rng), v)
            })
            .collect();
        let value = Avro::Record(vec![
            ("user_id".into(), Avro::String(text(&mut rng))),
            ("tags".into(), Avro::Array(tags)),
            ("ts".into(), Avro::TimestampMillis(rng.random_range(0..NOW))),
            ("item_id".into(), Avro::String(text(&mut rng))),
            ("attrs".into(), Avro::Map(attrs)),
            ("price".into(), Avro::Int(rng.random())),
            ("kind".into(), if rng.random() { Avro::Enum(0, "VIEW".into()) } else { Avro::Enum(1, "BUY".into()) }),
            ("hash".into(), Avro::Fixed(4, rng.random::<[u8; 4]>().to_vec())),
        ]);
        let datum = apache_avro::to_avro_datum(&writer, value).unwrap_or_default();
        let expected = apache_avro::from_avro_datum(&writer, &mut &datum[..], Some(&reader));
        let Ok(Avro::Record(expected)) = expected else { panic!("the crate cannot read its own datum: {expected:?}") };
        let expected: Vec<Value<'_>> = expected
            .iter()
            .map(|(_, v)| match v {
                Avro::String(s) => Value::Str(Cow::Borrowed(s.as_str())),
                Avro::TimestampMillis(t) => Value::Int(*t),
                Avro::Double(d) => Value::Float(*d),
                Avro::Union(_, inner) if **inner == Avro::Null => Value::Null,
                other => panic!("not in the reader schema: {other:?}"),
            })
            .collect();
        let mut bytes = vec![0, 0, 0, 0, 1];
        bytes.extend(&datum);
        let event = decoder.decode(&record(&bytes), NOW).map_err(|e| e.to_string());
        let Ok(event) = event else { panic!("{event:?}") };
        assert_eq!(Value::Str(event.key.clone()), expected[0]);
        assert_eq!(Value::Int(event.time), expected[1]);
        assert_eq!(event.values, expected[2..]);
    }
}

/// A writer schema that names a type only another schema declares (a
/// registry's schema reference): resolved with the referenced schema, it
/// reads a path into that type.
#[test]
fn a_writer_schema_reads_through_a_type_its_reference_declares() {
    const DEVICE: &str = r#"{"type": "record", "name": "Device", "namespace": "seed",
        "fields": [{"name": "os", "type": "string"}]}"#;
    const CLICK: &str = r#"{"type": "record", "name": "Click", "namespace": "seed", "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "device", "type": "seed.Device"},
        {"name": "item_id", "type": "string"},
        {"name": "price", "type": "double"}]}"#;
    let mut schema = declared();
    schema.fields[2].name = "device.os".into();
    let plan = known(&wanted(&schema), schema.fields.len(), CLICK, &[DEVICE.to_string()], "");
    let Known::Plan(plan) = plan else { panic!("{plan:?}") };
    let (click, schemata) = apache_avro::Schema::parse_str_with_list(CLICK, [DEVICE]).unwrap_or_else(|e| panic!("{e}"));
    let device = Avro::Record(vec![("os".into(), Avro::String("ios".into()))]);
    let record = Avro::Record(vec![
        ("user_id".into(), Avro::String("u".into())),
        ("ts".into(), Avro::TimestampMillis(NOW)),
        ("device".into(), device),
        ("item_id".into(), Avro::String("i".into())),
        ("price".into(), Avro::Double(2.5)),
    ]);
    let bytes = apache_avro::to_avro_datum_schemata(&click, schemata.iter().collect(), record).unwrap_or_default();
    let found = plan.read(&bytes).map(|f| format!("{:?}", f.fields[2])).map_err(|e| format!("{e:?}"));
    assert_eq!(found, Ok("Some(Str(\"ios\"))".to_string()));
}
