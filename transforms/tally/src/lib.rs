//! A second version of the counting module `misbehave` is when it behaves:
//! the same feature (`count: i64`), a different value (the window's
//! events times 1,000), so that a test swapping one module for the other
//! in a running pipeline can tell, row by row, which one computed it.

use sluice_sdk::{Error, Features, Window};

fn tally(window: &Window<'_>) -> Result<Features, Error> {
    let mut features = Features::new();
    features.int("count", window.len() as i64 * 1_000);
    Ok(features)
}

sluice_sdk::window_transform!(
    tally,
    features {
        /// Events in the window, times 1,000.
        count: i64,
    }
);
