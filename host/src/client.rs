//! A client of the admin API, for the `sluice modules …` and
//! `sluice pipelines …` commands.

use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The host answered with an error body.
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The admin API of one host.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// `base` is the host's URL (`http://127.0.0.1:8083`).
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client { base: base.trim_end_matches('/').to_string(), token, http: reqwest::Client::new() }
    }

    /// `method path` with `body`; the answer's status and JSON (`null`
    /// for none). An error body becomes [`Error::Refused`].
    pub async fn call(&self, method: Method, path: &str, body: Option<(Vec<u8>, &str)>) -> Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((bytes, content_type)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let unreachable = |e: reqwest::Error| Error::Unreachable { url: url.clone(), message: e.to_string() };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let value: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_client_error() || status.is_server_error() {
            let mut message = match value.get("message").and_then(Value::as_str) {
                Some(m) => m.to_string(),
                None => format!("{status}: {}", String::from_utf8_lossy(&bytes)),
            };
            // The problems are in the message already, located.
            if message.is_empty() {
                message = status.to_string();
            }
            return Err(Error::Refused { status, message });
        }
        Ok((status, value))
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.call(Method::GET, path, None).await?.1)
    }

    /// Upload a module; its registry entry.
    pub async fn push_module(&self, name: &str, bytes: Vec<u8>) -> Result<Value> {
        Ok(self.call(Method::POST, &format!("/modules/{name}"), Some((bytes, "application/wasm"))).await?.1)
    }

    /// Create or update the pipeline `manifest` defines (its `name`).
    pub async fn apply(&self, name: &str, manifest: &str, fresh: bool) -> Result<(StatusCode, Value)> {
        let query = if fresh { "?fresh=true" } else { "" };
        let body = Some((manifest.as_bytes().to_vec(), "application/yaml"));
        self.call(Method::PUT, &format!("/pipelines/{name}/config{query}"), body).await
    }
}
