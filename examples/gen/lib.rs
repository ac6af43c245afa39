//! Deterministic event generator for the example pipelines: click and
//! transaction events in seed 000's shape, out of order, with optional late
//! and malformed lines. The same seed gives the same bytes.

use std::io::Write;

pub mod kafka;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 2026-01-01T00:00:00Z: generated event time starts here.
pub const BASE_SECONDS: f64 = 1_767_225_600.0;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `user_id`, `item_id`, `category`, `timestamp` (seconds, float).
    Clicks,
    /// `user_id`, `merchant_id`, `amount`, `timestamp`.
    Transactions,
    /// Seed 001's events: `user_id`, `action` (one of [`ACTIONS`]),
    /// `value`, `timestamp`.
    Activity,
}

/// The actions of [`Shape::Activity`] events, the first the most common.
pub const ACTIONS: [&str; 5] = ["view", "click", "search", "add_to_cart", "purchase"];

#[derive(Debug, Clone)]
pub struct Config {
    pub shape: Shape,
    pub events: u64,
    pub users: u64,
    pub items: u64,
    pub categories: u64,
    pub merchants: u64,
    /// Events per second of event time.
    pub rate: f64,
    /// Largest out-of-orderness of ordinary events, seconds.
    pub max_delay: f64,
    /// Fraction of events delayed far behind the others.
    pub late: f64,
    /// Longest delay of late events, seconds. Delays are log-uniform
    /// between a fiftieth of this and this, so some late events still fall
    /// within a window's allowed lateness and some are past it.
    pub late_delay: f64,
    /// Fraction of lines that are malformed.
    pub malformed: f64,
    /// How users share the events: 0 for evenly, otherwise the exponent
    /// `s` of a Zipf law (the discrete Pareto law), the `k`-th user getting
    /// a share proportional to `1/k^s`: at 1, of 10,000 users the first
    /// makes about a tenth of the events and the last hundred together
    /// about a thousandth.
    pub skew: f64,
    pub seed: u64,
    /// Event time of the first nominal event, seconds since the epoch
    /// (default [`BASE_SECONDS`]).
    pub start: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shape: Shape::Clicks,
            events: 100_000,
            users: 1_000,
            items: 5_000,
            categories: 20,
            merchants: 200,
            rate: 1_000.0,
            max_delay: 20.0,
            late: 0.0,
            late_delay: 3_600.0,
            malformed: 0.0,
            skew: 0.0,
            seed: 42,
            start: BASE_SECONDS,
        }
    }
}

/// Malformed lines of every kind the host must route to dead letters.
const MALFORMED: [&str; 6] = [
    r#"{"user_id": "u1", "item_id": "#,
    r#"not json at all"#,
    r#"{"item_id": "i1", "category": "c1", "timestamp": 1767225600.0, "amount": 1.0, "merchant_id": "m1"}"#,
    r#"{"user_id": "u1", "item_id": 7, "category": "c1", "timestamp": 1767225600.0, "amount": "1", "merchant_id": 7}"#,
    r#"{"user_id": "u1", "item_id": "i1", "category": "c1", "timestamp": "yesterday", "amount": 1.0, "merchant_id": "m1"}"#,
    r#"{"user_id": "u1", "item_id": "i1", "category": "c1", "timestamp": 4102444800.0, "amount": 1.0, "merchant_id": "m1"}"#,
];

/// Write `config.events` lines of JSON to `out`.
pub fn generate(config: &Config, out: &mut impl Write) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let users = config.users.max(1);
    let zipf = if config.skew > 0.0 {
        Some(rand_distr::Zipf::new(users as f64, config.skew).map_err(std::io::Error::other)?)
    } else {
        None
    };
    let mut line = String::with_capacity(160);
    for i in 0..config.events {
        line.clear();
        if config.malformed > 0.0 && rng.random::<f64>() < config.malformed {
            line.push_str(MALFORMED[rng.random_range(0..MALFORMED.len())]);
        } else {
            let nominal = i as f64 / config.rate;
            let delay = if config.late > 0.0 && rng.random::<f64>() < config.late {
                config.late_delay * (50f64).powf(-rng.random::<f64>())
            } else {
                rng.random::<f64>() * config.max_delay
            };
            // Millisecond precision, as clients send it.
            let t = ((config.start + nominal - delay) * 1000.0).round() / 1000.0;
            let user = match &zipf {
                // Zipf gives 1..=users, the first the most frequent.
                Some(z) => (rng.sample(z) as u64).clamp(1, users) - 1,
                None => rng.random_range(0..users),
            };
            match config.shape {
                Shape::Clicks => {
                    // Popular items are clicked more: a squared uniform.
                    let u: f64 = rng.random();
                    let item = ((u * u) * config.items.max(1) as f64) as u64;
                    let category = item % config.categories.max(1);
                    line.push_str(&format!(
                        r#"{{"user_id":"u{user}","item_id":"i{item}","category":"c{category}","timestamp":{t:.3}}}"#
                    ));
                }
                Shape::Transactions => {
                    let merchant = rng.random_range(0..config.merchants.max(1));
                    let cents: u64 = rng.random_range(100..50_000);
                    line.push_str(&format!(
                        r#"{{"user_id":"u{user}","merchant_id":"m{merchant}","amount":{}.{:02},"timestamp":{t:.3}}}"#,
                        cents / 100,
                        cents % 100
                    ));
                }
                Shape::Activity => {
                    // Views are common and purchases rare: a squared uniform.
                    let u: f64 = rng.random();
                    let action = ACTIONS[((u * u) * ACTIONS.len() as f64) as usize];
                    let cents: u64 = rng.random_range(0..10_000);
                    line.push_str(&format!(
                        r#"{{"user_id":"u{user}","action":"{action}","value":{}.{:02},"timestamp":{t:.3}}}"#,
                        cents / 100,
                        cents % 100
                    ));
                }
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(config: &Config) -> Vec<String> {
        let mut buf = Vec::new();
        let written = generate(config, &mut buf);
        assert!(written.is_ok());
        String::from_utf8_lossy(&buf).lines().map(str::to_string).collect()
    }

    #[test]
    fn same_seed_same_bytes_and_shape() {
        let config = Config { events: 500, malformed: 0.1, ..Config::default() };
        let a = lines(&config);
        assert_eq!(a, lines(&config));
        assert_ne!(a, lines(&Config { seed: 7, ..config.clone() }));
        assert_eq!(a.len(), 500);
        let good: Vec<serde_json::Value> = a.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let valid = good
            .iter()
            .filter(|v| v["user_id"].is_string() && v["item_id"].is_string() && v["timestamp"].is_f64())
            .count();
        // About 10% malformed, every other line a valid click.
        assert!((400..=480).contains(&valid), "{valid}");
        let t0 = BASE_SECONDS;
        assert!(
            good.iter()
                .filter_map(|v| v["timestamp"].as_f64())
                .filter(|t| *t < 4e9)
                .all(|t| t >= t0 - 20.0 && t < t0 + 1.0)
        );
    }

    #[test]
    fn skewed_users_follow_zipf() {
        let config = Config { events: 20_000, users: 1_000, skew: 1.0, ..Config::default() };
        let mut counts = std::collections::HashMap::new();
        for l in lines(&config) {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap_or_default();
            *counts.entry(v["user_id"].as_str().unwrap_or_default().to_string()).or_insert(0u64) += 1;
        }
        // Zipf(1) over 1,000: the first user's share is 1/H(1000) = 13.4%,
        // the second's half that.
        let share = |u: &str| counts.get(u).copied().unwrap_or(0) as f64 / 20_000.0;
        assert!((0.12..0.15).contains(&share("u0")), "{}", share("u0"));
        assert!((0.055..0.08).contains(&share("u1")), "{}", share("u1"));
        assert!(
            counts.keys().all(|u| u.strip_prefix('u').and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n < 1_000))
        );
    }

    #[test]
    fn transactions_carry_amount_and_merchant() {
        let config = Config { shape: Shape::Transactions, events: 50, ..Config::default() };
        for l in lines(&config) {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap_or_default();
            assert!(v["amount"].is_number() && v["merchant_id"].is_string(), "{l}");
        }
    }
}
