//! Error bodies, as Kafka Connect's: `{"error_code": <status>, "message":
//! …}`, plus `problems` when a manifest is at fault.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::manifest::{ManifestError, Problem};
use crate::registry;
use crate::supervisor;

/// A failed request.
#[derive(Debug)]
pub struct Error {
    pub status: StatusCode,
    pub message: String,
    /// A manifest's problems, located.
    pub problems: Vec<ProblemBody>,
}

/// What a failed request answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The HTTP status.
    pub error_code: u16,
    pub message: String,
    /// A manifest's problems, each located.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemBody>,
}

/// A problem of a manifest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// The dotted path of the field (`window.slide`); empty for the
    /// document.
    pub field: String,
    /// 1-based.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Error {
        Error { status, message: message.into(), problems: Vec::new() }
    }

    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, message)
    }
}

pub fn problem(p: &Problem) -> ProblemBody {
    ProblemBody {
        field: p.path.clone(),
        line: p.line,
        column: p.column,
        message: p.message.clone(),
        hint: p.hint.clone(),
    }
}

impl From<ManifestError> for Error {
    fn from(e: ManifestError) -> Error {
        let problems: Vec<ProblemBody> = e.problems.iter().map(problem).collect();
        let message = match e.problems.len() {
            1 => e.to_string(),
            n => format!("the manifest has {n} problems:\n{e}"),
        };
        Error { status: StatusCode::BAD_REQUEST, message, problems }
    }
}

impl From<supervisor::Error> for Error {
    fn from(e: supervisor::Error) -> Error {
        use supervisor::Error as S;
        let status = match &e {
            S::NotFound(_) | S::NoJob(_) => StatusCode::NOT_FOUND,
            S::BadRequest(_) => StatusCode::BAD_REQUEST,
            S::Manifest(m) => return m.clone().into(),
            S::Module(registry::Error::Name(_) | registry::Error::Invalid(_)) => StatusCode::BAD_REQUEST,
            S::Module(registry::Error::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            S::Module(registry::Error::NotFound(_)) => StatusCode::NOT_FOUND,
            S::Module(registry::Error::InUse { .. }) | S::Busy(_) | S::Exists(_) => StatusCode::CONFLICT,
            // The manifest was fine: what it names could not be opened (a
            // sink's server, a checkpoint). The old definition still runs.
            S::Start { .. } => StatusCode::BAD_REQUEST,
            S::Module(registry::Error::Io { .. }) | S::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            // The view is there; what was asked of it is not.
            S::NoOnlineStore(_) | S::Feast(crate::feast::FeastError::NoView { .. }) => StatusCode::CONFLICT,
            S::BadKey { .. } | S::Feast(_) => StatusCode::BAD_REQUEST,
            S::Online { retriable: true, .. } => StatusCode::SERVICE_UNAVAILABLE,
            S::Online { .. } => StatusCode::BAD_REQUEST,
        };
        if status.is_server_error() {
            tracing::error!("{e}");
        }
        Error::new(status, e.to_string())
    }
}

/// Every error answer as an [`ErrorBody`], with `shown` applied to its
/// texts (the host's own paths taken out). The answers the handlers build
/// are bodies already, but axum's own (a 405, an extractor's rejection of
/// a query or a path, a body over its limit) are plain text or empty.
pub async fn as_json(method: &axum::http::Method, response: Response, shown: impl Fn(&str) -> String) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // JSON, or a JSON media type of its own (the schema registry's
    // `application/vnd.schemaregistry.v1+json`), which it keeps.
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let is_json = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
    let (parts, body) = response.into_parts();
    // Error texts are short; anything longer is cut.
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let mut value = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(value) if is_json && value.get("message").is_some() => value,
        _ => {
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            let message = match (status, text.is_empty()) {
                // The router adds the Allow header after this.
                (StatusCode::METHOD_NOT_ALLOWED, _) => {
                    format!("this route does not take {method}; its Allow header lists the methods it takes")
                }
                (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
                (_, false) => text,
            };
            serde_json::json!({"error_code": status.as_u16(), "message": message})
        }
    };
    rewrite(&mut value, &shown);
    let mut rebuilt = (status, Json(value)).into_response();
    if let Some(content_type) = content_type.filter(|_| is_json) {
        rebuilt.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    // What else was said (Allow, WWW-Authenticate) still holds.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

/// Every string in `value`, through `shown`.
fn rewrite(value: &mut serde_json::Value, shown: &impl Fn(&str) -> String) {
    match value {
        serde_json::Value::String(s) => *s = shown(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, shown)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| rewrite(v, shown)),
        _ => {}
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = ErrorBody { error_code: self.status.as_u16(), message: self.message, problems: self.problems };
        (self.status, Json(body)).into_response()
    }
}
