//! A client of schema registries that speak Confluent's REST API
//! (Confluent Schema Registry, the registry `sluice serve` hosts,
//! Apicurio's `ccompat` API, Redpanda): its settings
//! ([`RegistryConfig`], a manifest's `events.registry` and a Kafka sink's
//! `registry`) and the calls Sluice makes ([`Client`]): writer schemas by
//! id, as a deserializer fetches them, and registering a schema under a
//! subject, as a serializer does.

mod client;

pub use client::{Client, ClientError, Fetched};

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A schema registry that speaks Confluent's REST API, with its
/// credentials.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry's base URL, as `SchemaRegistryClient` takes it (for
    /// example `http://localhost:8081`).
    pub url: String,
    /// HTTP basic authentication: the user name (Confluent Cloud: the API
    /// key), with `password_env` or `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the basic-auth password (not for
    /// a pipeline applied to `sluice serve`, which may not read the host's
    /// environment: use `password_file`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the basic-auth password (surrounding whitespace is
    /// ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The environment variable holding a bearer token, sent as
    /// `Authorization: Bearer` (not under `sluice serve`: use
    /// `token_file`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding a bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl RegistryConfig {
    /// The registry at `url`, without credentials.
    pub fn new(url: &str) -> RegistryConfig {
        RegistryConfig {
            url: url.to_string(),
            username: None,
            password_env: None,
            password_file: None,
            token_env: None,
            token_file: None,
        }
    }

    /// The environment variables it reads, each with its field
    /// (`password_env`, `token_env`).
    pub fn environment(&self) -> Vec<(&'static str, &str)> {
        [("password_env", &self.password_env), ("token_env", &self.token_env)]
            .into_iter()
            .filter_map(|(field, name)| name.as_deref().map(|name| (field, name)))
            .collect()
    }

    /// What is wrong with it, each with the field it concerns (relative to
    /// the registry's entry), for the manifest's checks.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(url) => out.push(("url", format!("`{}` is not an http:// or https:// URL", url.scheme()))),
            Err(e) => out.push(("url", format!("`{}` is not a URL: {e}", self.url))),
        }
        let password = self.password_env.is_some() as u8 + self.password_file.is_some() as u8;
        let token = self.token_env.is_some() as u8 + self.token_file.is_some() as u8;
        if password > 1 {
            out.push(("password_env", "give `password_env` or `password_file`, not both".into()));
        }
        if token > 1 {
            out.push(("token_env", "give `token_env` or `token_file`, not both".into()));
        }
        if self.username.is_some() && password == 0 {
            out.push(("username", "basic authentication needs `password_env` or `password_file`".into()));
        }
        if self.username.is_none() && password > 0 {
            out.push(("username", "a password without `username`".into()));
        }
        if (self.username.is_some() || password > 0) && token > 0 {
            out.push(("token_env", "use basic authentication or a bearer token, not both".into()));
        }
        out
    }
}
