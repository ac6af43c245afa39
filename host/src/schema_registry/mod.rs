//! Confluent-compatible schema registries: the client the Avro decoder
//! fetches writer schemas with ([`Client`], shared with the Kafka sink,
//! which registers its rows' schema), configured by `events.registry`
//! ([`RegistryConfig`]), and the registry `sluice serve` hosts
//! ([`Registry`], served by [`crate::api`]).

pub mod compatibility;
mod store;

pub use compatibility::Level;
pub use sluice_schema_registry::{Client, ClientError, Fetched, RegistryConfig};
pub use store::{
    Compatibility, Mode, Reference, Registry, RegistryError, SchemaById, SchemaRequest, SubjectVersion, VersionRef,
};

/// [`Client::schema`], from a thread that is not async (the pipeline's
/// reading thread, a preflight): run on the process's I/O runtime.
pub fn schema_blocking(client: &Client, id: u32) -> Result<Fetched, ClientError> {
    let call = client.clone();
    blocking(client, &format!("schema id {id}"), async move { call.schema(id).await })
}

/// [`Client::subject`], from a thread that is not async.
pub fn subject_blocking(client: &Client, subject: &str) -> Result<(), ClientError> {
    let (call, name) = (client.clone(), subject.to_string());
    blocking(client, &format!("subject {subject}"), async move { call.subject(&name).await })
}

fn blocking<T: Send + 'static>(
    client: &Client,
    what: &str,
    call: impl std::future::Future<Output = Result<T, ClientError>> + Send + 'static,
) -> Result<T, ClientError> {
    crate::io_runtime::run(call).unwrap_or_else(|e| {
        Err(ClientError::Unavailable { url: client.url().to_string(), what: what.to_string(), detail: e.to_string() })
    })
}
