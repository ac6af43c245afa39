//! What the benches share: where they keep their inputs, and the
//! generated event files (made once, reused by every bench and run).

use std::path::{Path, PathBuf};

use sluice_examples::{Config, Shape};

/// The repository.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the benches keep their inputs and outputs.
pub fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    target.join("sluice-bench")
}

/// Users of the throughput runs.
pub const USERS: u64 = 10_000;

/// The JSON-lines file of `events` events of `shape` from `users` users
/// (1,000 a second of event time, up to 20 s out of order), made once.
pub fn input(shape: Shape, events: u64, users: u64, skew: f64) -> anyhow::Result<PathBuf> {
    let name = match shape {
        Shape::Clicks => "clicks",
        Shape::Transactions => "transactions",
        Shape::Activity => "activity",
    };
    let mut suffix = if skew > 0.0 { format!("-zipf{skew}") } else { String::new() };
    if users != USERS {
        suffix.push_str(&format!("-users{users}"));
    }
    let path = data_dir().join(format!("{name}-{events}{suffix}.jsonl"));
    if !path.exists() {
        std::fs::create_dir_all(data_dir())?;
        let config = Config { shape, events, users, rate: 1_000.0, max_delay: 20.0, skew, ..Config::default() };
        let tmp = path.with_extension("tmp");
        sluice_examples::generate(&config, &mut std::io::BufWriter::new(std::fs::File::create(&tmp)?))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}
