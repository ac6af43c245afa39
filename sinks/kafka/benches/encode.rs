//! Feature rows as the Kafka sink makes them, JSON against Avro: per row,
//! the JSON text and its row id (what `format: json` sends), and the same
//! plus the Avro datum in the wire format (what `format: avro` sends), in
//! rounds that alternate the two so both see the same machine. The rows
//! are session-features' (a 30-minute window's items, counts and top
//! category).
//!
//! `cargo bench -p sluice-sink-kafka --bench encode`: 200,000 rows
//! (`SLUICE_BENCH_ROWS`), 7 rounds (`SLUICE_BENCH_ROUNDS`); reports the
//! rows/s of each round and the medians.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use sluice_schema_registry::RegistryConfig;
use sluice_sink_api::{FeatureRow, FeatureSchema, FeatureSpec, FeatureType, FeatureValue, Features, KeyType, Trigger};
use sluice_sink_kafka::avro::AvroRows;
use sluice_sink_kafka::row_id;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let number = |name: &str, full: usize, small: usize| -> anyhow::Result<usize> {
        match std::env::var(name) {
            Ok(n) => Ok(n.parse()?),
            Err(_) if quick => Ok(small),
            Err(_) => Ok(full),
        }
    };
    let (count, rounds) = (number("SLUICE_BENCH_ROWS", 200_000, 2_000)?, number("SLUICE_BENCH_ROUNDS", 7, 1)?);
    let spec = |name: &str, ty, nullable| FeatureSpec { name: name.into(), ty, nullable, description: String::new() };
    let schema = Arc::new(
        FeatureSchema::new(vec![
            spec("items_clicked_30m", FeatureType::Strs, false),
            spec("item_count_30m", FeatureType::Int, false),
            spec("distinct_items_30m", FeatureType::Int, false),
            spec("distinct_categories_30m", FeatureType::Int, false),
            spec("top_category_30m", FeatureType::Str, true),
        ])
        .map_err(anyhow::Error::msg)?,
    );
    let rows: Vec<FeatureRow> = (0..count as i64)
        .map(|i| FeatureRow {
            key: format!("u{}", i % 10_000).into(),
            window_start: 1_767_223_860_000 + i * 60_000,
            window_end: 1_767_225_660_000 + i * 60_000,
            event_time: 1_767_225_600_000 + i * 60_000,
            trigger: Trigger::Close,
            features: Features(vec![
                ("items_clicked_30m".into(), FeatureValue::strs(["i416", "i8", "i1203", "i77", "i5"])),
                ("item_count_30m".into(), FeatureValue::Int(5)),
                ("distinct_items_30m".into(), FeatureValue::Int(5)),
                ("distinct_categories_30m".into(), FeatureValue::Int(3)),
                ("top_category_30m".into(), FeatureValue::Str(format!("c{}", i % 20))),
            ]),
            computed_at: 1_767_225_700_000 + i,
        })
        .collect();
    // The registry is never asked: the id is given.
    let avro = AvroRows::new(&RegistryConfig::new("http://127.0.0.1:9"), "features", schema, KeyType::String)?;
    let (mut json_rates, mut avro_rates) = (Vec::new(), Vec::new());
    let (mut json, mut datum) = (Vec::with_capacity(512), Vec::with_capacity(512));
    for round in 1..=rounds {
        let started = Instant::now();
        for row in &rows {
            json.clear();
            row.write_json(&mut json);
            black_box(row_id(&json));
        }
        let json_rate = rows.len() as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for row in &rows {
            json.clear();
            row.write_json(&mut json);
            black_box(row_id(&json));
            datum.clear();
            avro.encode(1, row, &mut datum).map_err(anyhow::Error::msg)?;
            black_box(&datum);
        }
        let avro_rate = rows.len() as f64 / started.elapsed().as_secs_f64();
        println!(
            "round {round}: JSON {json_rate:.0} rows/s, Avro {avro_rate:.0} rows/s ({:.2}x)",
            avro_rate / json_rate
        );
        json_rates.push(json_rate);
        avro_rates.push(avro_rate);
    }
    let (json_rate, avro_rate) = (median(json_rates), median(avro_rates));
    println!(
        "median of {rounds}: JSON {json_rate:.0} rows/s, Avro {avro_rate:.0} rows/s ({:.2}x JSON); one row: {} \
         bytes as JSON, {} as Avro",
        avro_rate / json_rate,
        json.len(),
        datum.len()
    );
    Ok(())
}
