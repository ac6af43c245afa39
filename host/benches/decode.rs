//! Decoding alone, JSON against Avro: the same clicks as JSON lines and as
//! Avro records in Confluent's wire format (one schema), each prepared and
//! decoded by the pipeline's own decoder for session-features' declared
//! fields (the key, the time, `item_id`, `category`; the Avro decoder's
//! prepare looks each record's schema id up), in rounds that alternate the two
//! formats so both see the same machine. For reference, the same Avro
//! records read by `apache_avro::from_avro_datum` (the crate's generic
//! reader, which builds every value), which the Avro decoder does not use.
//!
//! `cargo bench -p sluice-host --bench decode`: 1,000,000 clicks
//! (`SLUICE_BENCH_EVENTS`), 7 rounds (`SLUICE_BENCH_ROUNDS`); reports the
//! events/s of each round and the medians.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use apache_avro::types::Value as Avro;
use sluice_examples::{Config, Shape};
use sluice_host::decode::avro::Writers;
use sluice_host::decode::{AvroDecoder, Decoder, Format, JsonDecoder};
use sluice_host::manifest::Manifest;
use sluice_host::schema_registry::RegistryConfig;
use sluice_host::source::{Chunk, Metadata};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCHEMA: &str = r#"{"type": "record", "name": "click", "fields": [
    {"name": "user_id", "type": "string"},
    {"name": "item_id", "type": "string"},
    {"name": "category", "type": "string"},
    {"name": "timestamp", "type": "double"}]}"#;

const SCHEMA_ID: u32 = 1;

/// `chunk` through `decoder`, prepared as the pipeline prepares it: how
/// many records decoded.
fn decode_all(decoder: &mut dyn Decoder, chunk: &Chunk, now_ms: i64) -> anyhow::Result<usize> {
    decoder.prepare(chunk)?;
    Ok(chunk.records().filter(|r| black_box(decoder.decode(r, now_ms)).is_ok()).count())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let number = |name: &str, full: u64, small: u64| -> anyhow::Result<u64> {
        match std::env::var(name) {
            Ok(n) => Ok(n.parse()?),
            Err(_) if quick => Ok(small),
            Err(_) => Ok(full),
        }
    };
    let events = number("SLUICE_BENCH_EVENTS", 1_000_000, 20_000)?;
    let rounds = number("SLUICE_BENCH_ROUNDS", 7, 1)?;

    let config = Config { shape: Shape::Clicks, events, users: 10_000, ..Config::default() };
    let mut lines = Vec::new();
    sluice_examples::generate(&config, &mut lines)?;
    let writer = apache_avro::Schema::parse_str(SCHEMA)?;
    let (mut json, mut avro) = (Chunk::default(), Chunk::default());
    for (offset, line) in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let event: serde_json::Value = serde_json::from_slice(line)?;
        let text = |name: &str| Avro::String(event[name].as_str().unwrap_or_default().to_string());
        let record = Avro::Record(vec![
            ("user_id".into(), text("user_id")),
            ("item_id".into(), text("item_id")),
            ("category".into(), text("category")),
            ("timestamp".into(), Avro::Double(event["timestamp"].as_f64().unwrap_or_default())),
        ]);
        let mut framed = vec![0];
        framed.extend(SCHEMA_ID.to_be_bytes());
        framed.extend(apache_avro::to_avro_datum(&writer, record)?);
        json.push(0, offset as i64, line, Metadata::default(), usize::MAX);
        avro.push(0, offset as i64, &framed, Metadata::default(), usize::MAX);
    }
    let manifest =
        Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/session-features.yaml"), &[])?;
    let schema = manifest.lower().schema;
    let mut json_decoder = JsonDecoder::new(schema.clone());
    // Its registry is never asked: the one schema is known.
    let registry = RegistryConfig::new("http://127.0.0.1:9");
    let avro_schema =
        sluice_host::decode::Schema { format: Format::Avro, avro: Some(Writers::Registry(registry)), ..schema };
    let mut avro_decoder = AvroDecoder::with_schemas(avro_schema, &[(SCHEMA_ID, SCHEMA)])?;
    println!(
        "{} clicks: {:.1} MiB as JSON lines, {:.1} MiB as Avro in the wire format",
        json.len(),
        json.data().len() as f64 / 1048576.0,
        avro.data().len() as f64 / 1048576.0
    );

    let now_ms = sluice_host::time::now_ms();
    let (mut json_rates, mut avro_rates, mut crate_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let started = Instant::now();
        let decoded = decode_all(&mut json_decoder, &json, now_ms)?;
        let json_rate = decoded as f64 / started.elapsed().as_secs_f64();
        anyhow::ensure!(decoded == json.len(), "JSON: {decoded} of {} decoded", json.len());

        let started = Instant::now();
        let decoded = decode_all(&mut avro_decoder, &avro, now_ms)?;
        let avro_rate = decoded as f64 / started.elapsed().as_secs_f64();
        anyhow::ensure!(decoded == avro.len(), "Avro: {decoded} of {} decoded", avro.len());

        let started = Instant::now();
        let mut read = 0usize;
        for record in avro.records() {
            let mut datum = record.bytes.get(5..).unwrap_or_default();
            read += black_box(apache_avro::from_avro_datum(&writer, &mut datum, None)).is_ok() as usize;
        }
        let crate_rate = read as f64 / started.elapsed().as_secs_f64();
        println!(
            "round {round}: JSON {json_rate:.0} events/s, Avro {avro_rate:.0} events/s ({:.2}x), \
             apache-avro's reader {crate_rate:.0} events/s",
            avro_rate / json_rate
        );
        json_rates.push(json_rate);
        avro_rates.push(avro_rate);
        crate_rates.push(crate_rate);
    }
    let (json_rate, avro_rate) = (median(json_rates), median(avro_rates));
    println!(
        "median of {rounds}: JSON {json_rate:.0} events/s, Avro {avro_rate:.0} events/s ({:.2}x JSON), \
         apache-avro's reader {:.0} events/s",
        avro_rate / json_rate,
        median(crate_rates)
    );
    Ok(())
}
