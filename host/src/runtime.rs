//! What every pipeline of a host shares: one wasmtime engine (one code
//! cache, one epoch ticker for guest deadlines) and the tokio runtime that
//! runs the sinks. A host makes one and starts any number of pipelines on
//! it (`Pipeline::start`).

use tokio::runtime::Handle as Tokio;

use crate::wasm::{Engine, LoadError};

#[derive(Debug, Clone)]
pub struct Runtime {
    engine: Engine,
    tokio: Tokio,
}

impl Runtime {
    /// A runtime whose sinks run on `tokio`; modules are compiled each
    /// time they are loaded.
    pub fn new(tokio: Tokio) -> Result<Runtime, LoadError> {
        Ok(Runtime { engine: Engine::new()?, tokio })
    }

    /// A runtime on `engine` (one with a code cache: [`Engine::cached`]).
    pub fn with_engine(engine: Engine, tokio: Tokio) -> Runtime {
        Runtime { engine, tokio }
    }

    /// A runtime on the tokio runtime this is called from.
    pub fn current() -> Result<Runtime, LoadError> {
        let tokio = Tokio::try_current().map_err(|e| LoadError::Engine(e.to_string()))?;
        Self::new(tokio)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn tokio(&self) -> &Tokio {
        &self.tokio
    }
}
