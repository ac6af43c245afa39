//! A small tokio runtime for the whole process, for threads that are not
//! async (the pipeline's reading thread, the blocking pool) and must call
//! an async client: the checkpoint store's object storage, the schema
//! registry's HTTP client. Their connections live as long as the process,
//! so one runtime keeps them; each call is spawned on it and waited for,
//! which also works (blocking the caller's thread) from async code.

use std::future::Future;
use std::sync::OnceLock;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("cannot start the I/O runtime: {0}")]
    Start(String),
    /// The runtime shut down under the call (the process is ending).
    #[error("an I/O call was dropped before it finished")]
    Dropped,
}

fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static IO: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Start(e.clone()))
}

/// Run `call` on the I/O runtime and wait for it.
pub fn run<T: Send + 'static>(call: impl Future<Output = T> + Send + 'static) -> Result<T, Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(call.await);
    });
    rx.recv().map_err(|_| Error::Dropped)
}
