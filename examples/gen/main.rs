//! `sluice-gen`: write generated events as JSON lines.

use std::io::BufWriter;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use sluice_examples::{Config, Shape, generate};

#[derive(Clone, Copy, ValueEnum)]
enum ShapeArg {
    Clicks,
    Transactions,
    /// Seed 001's user activity: `user_id`, `action`, `value`, `timestamp`.
    Activity,
}

/// Generate deterministic click, transaction (seed 000) or activity (seed 001) events.
#[derive(Parser)]
#[command(name = "sluice-gen", version)]
struct Args {
    /// Event shape.
    #[arg(value_enum, default_value = "clicks")]
    shape: ShapeArg,
    /// Number of lines.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    #[arg(long, default_value_t = 1_000)]
    users: u64,
    #[arg(long, default_value_t = 5_000)]
    items: u64,
    #[arg(long, default_value_t = 20)]
    categories: u64,
    #[arg(long, default_value_t = 200)]
    merchants: u64,
    /// Events per second of event time.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Largest out-of-orderness of ordinary events, seconds.
    #[arg(long, default_value_t = 20.0)]
    max_delay: f64,
    /// Fraction of events delayed far behind the others.
    #[arg(long, default_value_t = 0.0)]
    late: f64,
    /// Longest delay of late events, seconds (log-uniform from 1/50 of it).
    #[arg(long, default_value_t = 3_600.0)]
    late_delay: f64,
    /// Fraction of malformed lines.
    #[arg(long, default_value_t = 0.0)]
    malformed: f64,
    /// Skewed users: the exponent of a Zipf (discrete Pareto) law over
    /// them, 1 for a few users with most events; 0 for evenly.
    #[arg(long, default_value_t = 0.0)]
    skew: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Event time of the first event: an RFC 3339 time, or `ago:DURATION`
    /// for that long before now (`ago:40m`: the stream ends near now, for a
    /// watermark lag that means something). Default 2026-01-01T00:00:00Z.
    #[arg(long, value_parser = start_seconds)]
    start: Option<f64>,
    /// Output file (default: standard output).
    #[arg(long, conflicts_with = "kafka")]
    out: Option<PathBuf>,
    /// Produce to Kafka instead (bootstrap servers), keyed by `user_id`.
    #[arg(long, requires = "topic")]
    kafka: Option<String>,
    /// Topic to produce to; created if missing.
    #[arg(long)]
    topic: Option<String>,
    /// Partitions of a topic created here.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// With --kafka: print the number of records in --topic and exit.
    #[arg(long, requires = "kafka")]
    count: bool,
}

/// `--start`: seconds since the epoch.
fn start_seconds(text: &str) -> Result<f64, String> {
    if let Some(ago) = text.strip_prefix("ago:") {
        let ago = humantime::parse_duration(ago).map_err(|e| format!("`{ago}`: {e}"))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
        return Ok(now.saturating_sub(ago).as_secs_f64());
    }
    let at = humantime::parse_rfc3339_weak(text).map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))?;
    Ok(at.duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let config = Config {
        shape: match a.shape {
            ShapeArg::Clicks => Shape::Clicks,
            ShapeArg::Transactions => Shape::Transactions,
            ShapeArg::Activity => Shape::Activity,
        },
        events: a.events,
        users: a.users,
        items: a.items,
        categories: a.categories,
        merchants: a.merchants,
        rate: a.rate,
        max_delay: a.max_delay,
        late: a.late,
        late_delay: a.late_delay,
        malformed: a.malformed,
        skew: a.skew,
        seed: a.seed,
        start: a.start.unwrap_or(sluice_examples::BASE_SECONDS),
    };
    if let (Some(brokers), Some(topic), true) = (&a.kafka, &a.topic, a.count) {
        println!("{}", sluice_examples::kafka::read_all(brokers, topic)?.len());
        return Ok(());
    }
    if let (Some(brokers), Some(topic)) = (&a.kafka, &a.topic) {
        sluice_examples::kafka::create_topic(brokers, topic, a.partitions)?;
        let mut text = Vec::new();
        generate(&config, &mut text)?;
        let n = sluice_examples::kafka::produce_lines(brokers, topic, &text)?;
        eprintln!("produced {n} records to {topic}");
        return Ok(());
    }
    match a.out {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            generate(&config, &mut BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?))?;
        }
        None => generate(&config, &mut BufWriter::new(std::io::stdout().lock()))?,
    }
    Ok(())
}
