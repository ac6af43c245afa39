//! The Sluice host runtime: decode, event time, windows, state, the WASM
//! engine, sinks and the pipeline that wires them.

pub mod alloc;
pub mod api;
pub mod backfill;
pub mod catalog;
pub mod checkpoint;
pub mod chunk;
pub mod client;
pub mod decode;
pub mod feast;
pub mod files;
pub mod io_runtime;
pub mod librdkafka;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod position;
pub mod preflight;
pub mod python_transform;
pub mod registry;
pub mod runtime;
pub mod schema_registry;
pub mod sinks;
pub mod source;
pub mod state;
pub mod supervisor;
pub mod time;
pub mod training;
pub mod wasm;
pub mod window;
