//! Error bodies, as Kafka Connect's: `{"error_code": <status>, "message":
//! …}`, plus `problems` when a manifest is at fault.

use axum::Json;
use axum::http::StatusCode;
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
            S::NotFound(_) => StatusCode::NOT_FOUND,
            S::Manifest(m) => return m.clone().into(),
            S::Module(registry::Error::Name(_) | registry::Error::Invalid(_)) => StatusCode::BAD_REQUEST,
            S::Module(registry::Error::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            S::Module(registry::Error::NotFound(_)) => StatusCode::NOT_FOUND,
            S::Module(registry::Error::InUse { .. }) | S::Busy(_) => StatusCode::CONFLICT,
            // The manifest was fine: what it names could not be opened (a
            // sink's server, a checkpoint). The old definition still runs.
            S::Start { .. } => StatusCode::BAD_REQUEST,
            S::Module(registry::Error::Io { .. }) | S::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!("{e}");
        }
        Error::new(status, e.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = ErrorBody { error_code: self.status.as_u16(), message: self.message, problems: self.problems };
        (self.status, Json(body)).into_response()
    }
}
