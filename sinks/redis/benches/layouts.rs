//! The Redis sink's two layouts against the local Redis (127.0.0.1:6379):
//! session-features rows (a 30-minute window's items, counts and top
//! category) of 10,000 users, fired on close, written in batches of 1,000
//! as the host hands them, `layout: plain` (`HSET` and `EXPIRE` per row)
//! against `layout: feast` (Feast's keys, hashed fields and `Value`
//! protos, every row through the newer-timestamp script), in rounds that
//! alternate the two so both see the same machine.
//!
//! `cargo bench -p sluice-sink-redis --bench layouts`: 200,000 rows
//! (`SLUICE_BENCH_ROWS`), 5 rounds (`SLUICE_BENCH_ROUNDS`); reports the
//! rows/s of each round, the medians and the Feast layout's share of the
//! plain one's. Its keys are deleted after.

use std::sync::Arc;
use std::time::Instant;

use sluice_sink_api::{
    Batch, Context, Duration, FeatureRow, FeatureSchema, FeatureSpec, FeatureType, FeatureValue, Features, Sink,
    Trigger,
};
use sluice_sink_redis::{FeastView, RedisSink, RedisSinkConfig};

const URL: &str = "redis://127.0.0.1:6379/0";
const BATCH: usize = 1_000;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// Rows/s writing `rows` through `config`.
async fn write(config: &RedisSinkConfig, context: &Context, rows: &[FeatureRow]) -> anyhow::Result<f64> {
    let mut sink = RedisSink::open("features", config, context).await?;
    let start = Instant::now();
    for batch in rows.chunks(BATCH) {
        sink.write(Batch::Features(batch)).await?;
    }
    sink.flush().await?;
    let rate = rows.len() as f64 / start.elapsed().as_secs_f64();
    anyhow::ensure!(sink.take_rejected().is_empty(), "rows were refused");
    Ok(rate)
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
    let (count, rounds) = (number("SLUICE_BENCH_ROWS", 200_000, 2_000)?, number("SLUICE_BENCH_ROUNDS", 5, 1)?);
    let spec = |name: &str, ty, nullable| FeatureSpec { name: name.into(), ty, nullable, description: String::new() };
    let schema = FeatureSchema::new(vec![
        spec("items_clicked_30m", FeatureType::Strs, false),
        spec("item_count_30m", FeatureType::Int, false),
        spec("distinct_items_30m", FeatureType::Int, false),
        spec("distinct_categories_30m", FeatureType::Int, false),
        spec("top_category_30m", FeatureType::Str, true),
    ])
    .map_err(anyhow::Error::msg)?;
    let context = Context { schema: Arc::new(schema), ..Context::default() };
    let rows: Vec<FeatureRow> = (0..count as i64)
        .map(|i| {
            let items: Vec<String> = (0..1 + i % 12).map(|j| format!("i{}", (i * 7 + j) % 5_000)).collect();
            FeatureRow {
                key: format!("u{}", i % 10_000).into(),
                window_start: 1_767_223_860_000 + (i / 10_000) * 60_000,
                window_end: 1_767_225_660_000 + (i / 10_000) * 60_000,
                event_time: 1_767_225_659_000 + (i / 10_000) * 60_000,
                trigger: Trigger::Close,
                features: Features(vec![
                    ("items_clicked_30m".into(), FeatureValue::strs(items.iter().map(String::as_str))),
                    ("item_count_30m".into(), FeatureValue::Int(items.len() as i64)),
                    ("distinct_items_30m".into(), FeatureValue::Int(items.len() as i64)),
                    ("distinct_categories_30m".into(), FeatureValue::Int(1 + i % 5)),
                    ("top_category_30m".into(), FeatureValue::Str(format!("c{}", i % 20))),
                ]),
                computed_at: 1_767_225_700_000,
            }
        })
        .collect();

    let run = format!("sluice-bench-{}", std::process::id());
    let ttl = Some(Duration::from_millis(600_000));
    let plain = RedisSinkConfig::plain(URL, &format!("{run}:{{key}}"), ttl);
    let project = run.replace('-', "_");
    let view = FeastView { project: &project, feature_view: "session_features", join_key: "user_id" };
    let feast = RedisSinkConfig::feast(URL, &view, ttl);

    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut plain_rates, mut feast_rates) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let plain_rate = tokio.block_on(write(&plain, &context, &rows))?;
        let feast_rate = tokio.block_on(write(&feast, &context, &rows))?;
        println!(
            "round {round}: plain {plain_rate:.0} rows/s, feast {feast_rate:.0} rows/s ({:.2} of plain)",
            feast_rate / plain_rate
        );
        plain_rates.push(plain_rate);
        feast_rates.push(feast_rate);
    }
    let ratios: Vec<f64> = feast_rates.iter().zip(&plain_rates).map(|(f, p)| f / p).collect();
    println!(
        "redis layouts, {count} session-features rows in batches of {BATCH}: plain {:.0} rows/s, feast {:.0} rows/s \
         (medians); feast/plain {:.2} (median of the rounds' ratios)",
        median(plain_rates),
        median(feast_rates),
        median(ratios)
    );

    let mut redis = redis::Client::open(URL)?.get_connection()?;
    for pattern in [format!("{run}:*"), format!("*{project}")] {
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(pattern).query(&mut redis)?;
        for chunk in keys.chunks(1_000) {
            redis::cmd("UNLINK").arg(chunk).query::<()>(&mut redis)?;
        }
    }
    Ok(())
}
