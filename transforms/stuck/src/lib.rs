//! A transform that never finishes starting, for the host's tests: a
//! constructor (run when the module starts, before any call is answered)
//! spins forever. The host must stop it at its deadline and refuse the
//! module, not hang.

// A constructor is a function in `.init_array`, which takes an unsafe
// attribute; nothing else here is unsafe.
#![allow(unsafe_code)]

use sluice_sdk::{Error, Features, Window};

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
extern "C" fn spin() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

// Only in the module: a native build (the workspace's tests list every
// crate) must not spin before main.
#[cfg(target_arch = "wasm32")]
#[used]
#[unsafe(link_section = ".init_array")]
static SPIN_AT_START: extern "C" fn() = spin;

fn count(window: &Window<'_>) -> Result<Features, Error> {
    let mut features = Features::new();
    features.int("count", window.len() as i64);
    Ok(features)
}

sluice_sdk::window_transform!(
    count,
    features {
        /// Events in the window.
        count: i64,
    }
);
