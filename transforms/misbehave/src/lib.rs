//! A transform that misbehaves on purpose, for the host's failure tests.
//! What it does depends on the window's key:
//!
//! - `loop`: spins forever (the host's deadline must stop it);
//! - `panic`: panics (a trap);
//! - `oom`: allocates without bound (the memory limit must stop it);
//! - `error`: returns an error;
//! - `undeclared`, `wrong-type`: returns a row that breaks the declared
//!   features (a feature not declared; `count` as a string);
//! - anything else: `{"count": <events>}`.

use sluice_sdk::{Error, Features, Level, Window};

fn misbehave(window: &Window<'_>) -> Result<Features, Error> {
    match window.key() {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "panic" => panic!("misbehave: asked to panic"),
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "error" => Err(Error::from("misbehave: asked to fail")),
        "undeclared" => {
            let mut features = Features::new();
            features.int("count", window.len() as i64).int("surprise", 1);
            Ok(features)
        }
        "wrong-type" => {
            let mut features = Features::new();
            features.str("count", "many");
            Ok(features)
        }
        _ => {
            sluice_sdk::log(Level::Debug, "misbehave: behaving");
            let mut features = Features::new();
            features.int("count", window.len() as i64);
            Ok(features)
        }
    }
}

sluice_sdk::window_transform!(
    misbehave,
    features {
        /// Events in the window.
        count: i64,
    }
);
