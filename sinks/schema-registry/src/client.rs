//! The registry calls Sluice makes: fetching a schema by id, as a
//! Confluent deserializer does (`GET /schemas/ids/{id}`, and each schema
//! it references by subject and version), checking that a subject exists,
//! and registering a schema under a subject, as a serializer with
//! `auto.register.schemas` does (`POST /subjects/{s}/versions`). The calls
//! are async; the host's reading thread runs them on its I/O runtime, and
//! only for ids it has not seen.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RegistryConfig;

/// How long one request may take before the registry counts as not
/// answering.
const TIMEOUT: Duration = Duration::from_secs(10);

/// References are followed this deep (a cycle would otherwise not end).
const MAX_REFERENCE_DEPTH: usize = 32;

/// A registry, with its credentials.
#[derive(Debug, Clone)]
pub struct Client {
    base: reqwest::Url,
    http: reqwest::Client,
    auth: Option<Auth>,
}

#[derive(Clone)]
enum Auth {
    Basic { username: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username})"),
            Auth::Bearer(_) => f.write_str("Bearer"),
        }
    }
}

/// A schema as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `AVRO`, `PROTOBUF` or `JSON` (a registry leaves it out for Avro).
    pub schema_type: String,
    /// The schema's text.
    pub schema: String,
    /// The texts of the schemas it references, transitively.
    pub references: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The settings cannot be used as written.
    #[error("{0}")]
    Config(String),
    /// The registry answered that it has no such schema: records naming it
    /// cannot be read (until it is registered).
    #[error("the registry has no {what} (error {code}: {message})")]
    NotFound { what: String, code: i64, message: String },
    /// The registry refused to register a schema: incompatible with the
    /// subject's earlier versions under its compatibility level (409), or
    /// not a valid schema (422). Trying again cannot help.
    #[error("the registry refused {what} (error {code}: {message})")]
    Refused { what: String, code: i64, message: String },
    /// The registry did not answer, or answered with an error that may
    /// pass (a 5xx, a refused credential): try again later.
    #[error("the schema registry at {url} did not answer for {what}: {detail}")]
    Unavailable { url: String, what: String, detail: String },
}

/// A registry's answer to `GET /schemas/ids/{id}` or
/// `GET /subjects/{s}/versions/{v}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaAnswer {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

#[derive(Debug, Deserialize)]
struct Reference {
    subject: String,
    version: i64,
}

/// A registry's answer to `POST /subjects/{s}/versions`.
#[derive(Debug, Deserialize)]
struct Registered {
    id: u32,
}

/// The body of `POST /subjects/{s}/versions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Registration<'a> {
    schema: &'a str,
    schema_type: &'a str,
}

/// Confluent's error body.
#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error_code: i64,
    #[serde(default)]
    message: String,
}

impl Client {
    /// A client of the registry `config` names, with its credentials read
    /// from the environment or files now.
    pub fn new(config: &RegistryConfig) -> Result<Client, ClientError> {
        if let Some((field, problem)) = config.problems().into_iter().next() {
            return Err(ClientError::Config(format!("{field}: {problem}")));
        }
        let base = reqwest::Url::parse(&config.url).map_err(|e| ClientError::Config(format!("url: {e}")))?;
        let secret = |env: &Option<String>, file: &Option<std::path::PathBuf>| -> Result<Option<String>, ClientError> {
            if let Some(name) = env {
                let value = std::env::var(name)
                    .map_err(|_| ClientError::Config(format!("the environment variable {name} is not set")))?;
                return Ok(Some(value));
            }
            if let Some(path) = file {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ClientError::Config(format!("cannot read {}: {e}", path.display())))?;
                return Ok(Some(text.trim().to_string()));
            }
            Ok(None)
        };
        let auth = match (&config.username, secret(&config.password_env, &config.password_file)?) {
            (Some(username), Some(password)) => Some(Auth::Basic { username: username.clone(), password }),
            _ => secret(&config.token_env, &config.token_file)?.map(Auth::Bearer),
        };
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| ClientError::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client { base, http, auth })
    }

    /// The registry's URL.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// The schema with global id `id`, and every schema it references.
    pub async fn schema(&self, id: u32) -> Result<Fetched, ClientError> {
        let what = format!("schema id {id}");
        let answer: SchemaAnswer =
            self.call(reqwest::Method::GET, &["schemas", "ids", &id.to_string()], None, &what).await?;
        let mut references = Vec::new();
        let mut seen = HashSet::new();
        self.references(&answer.references, &mut references, &mut seen, 0).await?;
        Ok(Fetched {
            schema_type: answer.schema_type.unwrap_or_else(|| "AVRO".into()),
            schema: answer.schema,
            references,
        })
    }

    /// Whether `subject` has a version: `Ok` when it does.
    pub async fn subject(&self, subject: &str) -> Result<(), ClientError> {
        let path = ["subjects", subject, "versions", "latest"];
        self.call::<SchemaAnswer>(reqwest::Method::GET, &path, None, &format!("subject {subject}")).await.map(|_| ())
    }

    /// Register the Avro schema `schema` (its JSON text) under `subject`:
    /// its global id, the same as before when the subject already has it.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, ClientError> {
        let body = serde_json::to_vec(&Registration { schema, schema_type: "AVRO" })
            .map_err(|e| ClientError::Config(format!("cannot write the registration: {e}")))?;
        let what = format!("a new version of subject {subject}");
        let path = ["subjects", subject, "versions"];
        let answer: Registered = self.call(reqwest::Method::POST, &path, Some(body), &what).await?;
        Ok(answer.id)
    }

    /// The schemas `wanted` references, depth first (each after those it
    /// references), into `into`. Boxed: it calls itself.
    fn references<'a>(
        &'a self,
        wanted: &'a [Reference],
        into: &'a mut Vec<String>,
        seen: &'a mut HashSet<(String, i64)>,
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = Result<(), ClientError>> + Send + 'a>> {
        Box::pin(async move {
            for r in wanted {
                if !seen.insert((r.subject.clone(), r.version)) {
                    continue;
                }
                let what = format!("subject {} version {}", r.subject, r.version);
                if depth >= MAX_REFERENCE_DEPTH {
                    return Err(ClientError::NotFound {
                        what,
                        code: 0,
                        message: format!("references nest deeper than {MAX_REFERENCE_DEPTH}"),
                    });
                }
                let path = ["subjects", &r.subject, "versions", &r.version.to_string()];
                let answer: SchemaAnswer = self.call(reqwest::Method::GET, &path, None, &what).await?;
                self.references(&answer.references, into, seen, depth + 1).await?;
                into.push(answer.schema);
            }
            Ok(())
        })
    }

    /// Call `method` at `path` (segments, escaped here) with `body`, and
    /// read the answer as `T`.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &[&str],
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<T, ClientError> {
        const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        let mut request = self.http.request(method, url).header("Accept", CONTENT_TYPE);
        if let Some(body) = body {
            request = request.header("Content-Type", CONTENT_TYPE).body(body);
        }
        request = match &self.auth {
            Some(Auth::Basic { username, password }) => request.basic_auth(username, Some(password)),
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };
        let unavailable =
            |detail: String| ClientError::Unavailable { url: self.base.to_string(), what: what.to_string(), detail };
        let answer = async {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, body) = answer.await.map_err(|e| unavailable(error_chain(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| unavailable(format!("its answer is not what was asked for ({e})")));
        }
        let error: Option<ErrorAnswer> = serde_json::from_slice(&body).ok();
        match error {
            // 40401 subject, 40402 version, 40403 schema: not there. Other
            // 404s (a wrong base path) are the registry's setup, which an
            // operator can fix: retried.
            Some(ErrorAnswer { error_code: code @ 40401..=40403, message }) => {
                Err(ClientError::NotFound { what: what.to_string(), code, message })
            }
            // Incompatible (409, or Confluent's 40901) or invalid (422xx).
            Some(ErrorAnswer { error_code, message }) if matches!(status.as_u16(), 409 | 422) => {
                Err(ClientError::Refused { what: what.to_string(), code: error_code, message })
            }
            Some(ErrorAnswer { error_code, message }) => Err(unavailable(format!("{status}: {error_code} {message}"))),
            None => Err(unavailable(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body).chars().take(200).collect::<String>()
            ))),
        }
    }
}

/// An error with its causes: reqwest's own message is only the outermost.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
