//! The REST admin API of `sluice serve`, in Kafka Connect's conventions:
//! `/pipelines` as its `/connectors` (create, config, status, pause,
//! resume, stop, restart, offsets, validate), `/modules` as a registry of
//! transform components, `/features` as the feature registry,
//! `/training-sets` as jobs over `/files`, `/plugins`,
//! `/health`. Errors are
//! `{"error_code": <HTTP status>, "message": …}`, with `problems` (each
//! located by field, line and column) when a manifest is at fault.
//!
//! [`router`] builds it over a [`Supervisor`]; tests call it without a
//! socket.

mod error;
mod features;
mod schema_registry;
mod server;
mod training_sets;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{Error, ErrorBody};
pub use server::Server;

use crate::manifest::MAX_MANIFEST_BYTES;
use crate::registry::{self, MAX_MODULE_BYTES, Version};
use crate::supervisor::{Activity, Offset, Status};
use crate::supervisor::{Supervisor, Target};
use crate::wasm::Kind;

/// What every route shares.
#[derive(Debug)]
pub struct Api {
    pub supervisor: Arc<Supervisor>,
    /// The bearer token every route but `/health` requires, if any.
    pub token: Option<String>,
}

type Shared = State<Arc<Api>>;
type Reply = Result<Response, Error>;

/// The admin API's routes, with the OpenAPI document generated from the
/// same handlers at `/openapi.json`.
pub fn router(api: Arc<Api>) -> Router {
    let (router, mut openapi) = routes().split_for_parts();
    unauthorized_everywhere(&mut openapi);
    let openapi = Arc::new(openapi);
    let guarded = router
        .merge(schema_registry::routes())
        .route("/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .fallback(|| async {
            Error::new(StatusCode::NOT_FOUND, "no such resource; see the API reference in the README")
        })
        .layer(middleware::from_fn_with_state(api.clone(), authorize));
    // The page holds no data (its script asks the guarded routes, with
    // the token the user gives it), so it needs no token itself.
    Router::new()
        .route("/", get(page))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(guarded)
        .layer(middleware::from_fn_with_state(api.clone(), errors))
        .with_state(api)
}

/// Every error answer as JSON, without the host's own paths.
async fn errors(State(api): Shared, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    error::as_json(&method, response, |text| api.supervisor.shown(text)).await
}

/// The status page: a static page whose script charts what
/// `/pipelines?expand=status` and `/pipelines/{name}/activity` answer.
async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        // Everything it shows is built as text nodes; this keeps any other
        // script (say, one smuggled in a dead letter) from running.
        (header::CONTENT_SECURITY_POLICY, "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"),
    ];
    (headers, include_str!("page.html")).into_response()
}

/// The documented routes (all but `/`, `/health` and `/openapi.json`).
pub fn routes() -> OpenApiRouter<Arc<Api>> {
    let modules = OpenApiRouter::new()
        .routes(routes!(list_modules))
        .routes(routes!(push_module, get_module, delete_module))
        // Streamed to a file, counted as it comes (push_module).
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(MAX_MODULE_BYTES, declared_length));
    let pipelines = OpenApiRouter::new()
        .routes(routes!(list_pipelines, create_pipeline))
        .routes(routes!(validate))
        .routes(routes!(get_pipeline, delete_pipeline))
        .routes(routes!(get_config, put_config))
        .routes(routes!(status))
        .routes(routes!(activity))
        .routes(routes!(offsets))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(stop))
        .routes(routes!(restart))
        .routes(routes!(plugins))
        .routes(routes!(metrics))
        .layer(DefaultBodyLimit::max(MAX_MANIFEST_BYTES as usize + 1))
        .layer(middleware::from_fn_with_state(MAX_MANIFEST_BYTES + 1, declared_length));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(modules)
        .merge(pipelines)
        .merge(features::routes())
        .merge(training_sets::routes())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sluice admin API", description = "Modules and pipelines of a `sluice serve` host, in Kafka Connect's conventions."),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    tags((name = "modules", description = "The module registry"), (name = "pipelines", description = "Pipelines, as Kafka Connect's connectors"), (name = "features", description = "The feature registry: what the pipelines produce, and the online store's values"), (name = "training-sets", description = "Training sets built as jobs: labels joined with the pipelines' views"), (name = "host", description = "The host"))
)]
struct ApiDoc;

/// Every documented route answers 401 without the host's token (the
/// middleware says so for all of them at once).
fn unauthorized_everywhere(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let response = ResponseBuilder::new()
        .description("No token, or not this host's")
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build();
    for item in openapi.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
            operation.responses.responses.insert("401".into(), RefOr::T(response.clone()));
        }
    }
}

/// Every route needs the bearer token when the host has one.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A body whose declared length is over `limit` bytes is refused before
/// any of it is read, and the connection is not held while it comes. (A
/// body without a declared length is counted as it is read.)
async fn declared_length(State(limit): State<u64>, request: Request, next: Next) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {length} bytes, more than the {limit} bytes this route takes"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// The token an `Authorization` header gives: `Bearer <token>`, or HTTP
/// basic authentication with the token as the password (any user name),
/// which is how a schema registry client such as `confluent-kafka`'s
/// sends credentials. The scheme's case does not matter (RFC 9110, 11.1).
fn given_token(value: &str) -> Option<String> {
    use base64::Engine as _;
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim_start();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).ok()?;
        let (_user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

/// Every route but `/health` needs the host's token when it has one
/// (see [`given_token`]).
async fn authorize(State(api): Shared, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(given_token);
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            let mut response =
                Error::new(StatusCode::UNAUTHORIZED, "this host needs `Authorization: Bearer <token>`").into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

/// Equal, in a time that does not tell how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Write a request's body to a new file in `dir` as it comes, refusing
/// it once it is over `limit` bytes: an upload is never held in memory
/// whole.
async fn receive(body: axum::body::Body, limit: u64, dir: &std::path::Path) -> Result<tempfile::NamedTempFile, Error> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    let internal = |e: std::io::Error| {
        tracing::error!(dir = %dir.display(), "cannot keep an upload: {e}");
        Error::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot keep the upload: {e}"))
    };
    let upload = tempfile::NamedTempFile::new_in(dir).map_err(internal)?;
    let mut file = tokio::fs::File::from_std(upload.reopen().map_err(internal)?);
    let (mut body, mut size) = (body, 0u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::bad_request(format!("the body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        size += data.len() as u64;
        if size > limit {
            return Err(Error::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is more than the {limit} bytes this route takes"),
            ));
        }
        file.write_all(&data).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(upload)
}

fn body(bytes: Result<Bytes, BytesRejection>) -> Result<Bytes, Error> {
    bytes.map_err(|r| Error::new(r.status(), r.body_text()))
}

fn text(bytes: Result<Bytes, BytesRejection>) -> Result<String, Error> {
    String::from_utf8(body(bytes)?.to_vec()).map_err(|e| {
        Error::bad_request(format!("the body is not UTF-8 text (byte {} is not)", e.utf8_error().valid_up_to()))
    })
}

// ---- what the routes answer, for the OpenAPI document ----

/// A module and its versions, oldest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ModuleVersions {
    pub name: String,
    pub versions: Vec<Version>,
}

/// A pipeline: its name, manifest and status.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PipelineInfo {
    pub name: String,
    /// The manifest as submitted, as JSON.
    #[schema(value_type = Object)]
    pub config: Value,
    pub status: Status,
}

/// The source positions of a pipeline's newest checkpoint.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Offsets {
    pub offsets: Vec<Offset>,
}

/// A manifest's problems (none: it is fine).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Validation {
    pub error_count: usize,
    pub problems: Vec<error::ProblemBody>,
}

/// A kind of source, sink or transform this host has.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Plugin {
    /// What a manifest names it by: `file`, `kafka`, `redis`, `iceberg`,
    /// `window`, `aggregate`.
    pub class: String,
    /// `source`, `sink` or `transform`.
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub version: &'static str,
    /// What it is, from the manifest reference.
    pub description: String,
    /// A sink's outputs: which of `features`, `dead_letters` and
    /// `late_events` it may be given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<&'static str>,
}

// ---- modules ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PushQuery {
    /// `window` or `aggregate`: refuse a module of the other kind.
    kind: Option<String>,
}

#[utoipa::path(post, path = "/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "The module's name"), PushQuery),
    request_body(content = String, content_type = "application/wasm", description = "The component's bytes"),
    responses(
        (status = 201, body = Version, description = "A new version"),
        (status = 200, body = Version, description = "The same bytes as the newest version"),
        (status = 400, body = ErrorBody, description = "Not a Sluice transform, of another kind, or a bad name"),
        (status = 413, body = ErrorBody, description = "Larger than a module may be")))]
async fn push_module(
    State(api): Shared,
    Path(name): Path<String>,
    Query(q): Query<PushQuery>,
    body: axum::body::Body,
) -> Reply {
    let kind = match q.kind.as_deref() {
        None => None,
        Some("window") => Some(Kind::Window),
        Some("aggregate") => Some(Kind::Aggregate),
        Some(other) => return Err(Error::bad_request(format!("kind `{other}`: use `window` or `aggregate`"))),
    };
    registry::check_name(&name)?;
    let upload = receive(body, MAX_MODULE_BYTES, &api.supervisor.uploads()).await?;
    if upload.as_file().metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(Error::bad_request("the body is empty: send the module's bytes (curl --data-binary @module.wasm)"));
    }
    let (version, created) = api.supervisor.push_module_file(&name, upload, kind).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(version)).into_response())
}

#[utoipa::path(get, path = "/modules", tag = "modules",
    responses((status = 200, body = [ModuleVersions], description = "Every module and its versions")))]
async fn list_modules(State(api): Shared) -> Reply {
    let modules: Vec<ModuleVersions> =
        api.supervisor.modules().await.into_iter().map(|(name, versions)| ModuleVersions { name, versions }).collect();
    Ok(Json(modules).into_response())
}

#[utoipa::path(get, path = "/modules/{name}", tag = "modules", params(("name" = String, Path)),
    responses((status = 200, body = ModuleVersions), (status = 404, body = ErrorBody)))]
async fn get_module(State(api): Shared, Path(name): Path<String>) -> Reply {
    let versions = api.supervisor.module(&name).await?;
    Ok(Json(ModuleVersions { name, versions }).into_response())
}

#[utoipa::path(delete, path = "/modules/{name}", tag = "modules", params(("name" = String, Path)),
    responses((status = 204, description = "Every version deleted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "A pipeline uses it")))]
async fn delete_module(State(api): Shared, Path(name): Path<String>) -> Reply {
    api.supervisor.delete_module(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- pipelines ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    /// Move the pipeline's checkpoints aside and start over.
    #[serde(default)]
    fresh: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `status`: each pipeline's status, by name.
    expand: Option<String>,
}

#[utoipa::path(get, path = "/pipelines", tag = "pipelines", params(ListQuery),
    responses((status = 200, body = Object, description = "Names, or with `expand=status` each one's status by name")))]
async fn list_pipelines(State(api): Shared, Query(q): Query<ListQuery>) -> Reply {
    let names = api.supervisor.names().await;
    match q.expand.as_deref() {
        None => Ok(Json(names).into_response()),
        Some("status") => {
            let mut out = BTreeMap::new();
            for name in names {
                if let Ok(s) = api.supervisor.status(&name).await {
                    out.insert(name, json!({"status": s}));
                }
            }
            Ok(Json(out).into_response())
        }
        Some(other) => Err(Error::bad_request(format!("expand `{other}`: use `status`"))),
    }
}

#[utoipa::path(post, path = "/pipelines", tag = "pipelines", params(ApplyQuery), request_body(content = String, content_type = "application/yaml", description = "A pipeline manifest, YAML or JSON"),
    responses((status = 201, body = PipelineInfo), (status = 400, body = ErrorBody, description = "The manifest's problems, located"),
        (status = 409, body = ErrorBody, description = "The name exists"), (status = 413, body = ErrorBody)))]
async fn create_pipeline(
    State(api): Shared,
    Query(q): Query<ApplyQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Reply {
    let text = text(bytes)?;
    // Kafka Connect's POST creates only: a name in use is a conflict.
    let name = api.supervisor.create(&text, q.fresh).await?;
    Ok((StatusCode::CREATED, Json(info(&api, &name).await?)).into_response())
}

#[utoipa::path(put, path = "/pipelines/{name}/config", tag = "pipelines", params(("name" = String, Path), ApplyQuery), request_body(content = String, content_type = "application/yaml", description = "A pipeline manifest, YAML or JSON"),
    responses((status = 201, body = PipelineInfo, description = "Created"), (status = 200, body = PipelineInfo, description = "Updated"),
        (status = 400, body = ErrorBody, description = "The manifest's problems, located"), (status = 409, body = ErrorBody, description = "Being changed by another request"),
        (status = 413, body = ErrorBody)))]
async fn put_config(
    State(api): Shared,
    Path(name): Path<String>,
    Query(q): Query<ApplyQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Reply {
    let text = text(bytes)?;
    let given = crate::manifest::Manifest::parse(&format!("pipelines/{name}"), &text, &[]).map_err(Error::from)?.name;
    if given != name {
        return Err(Error::bad_request(format!(
            "the manifest's name is {given} but the path names pipeline {name}: they must agree"
        )));
    }
    let (name, created) = api.supervisor.apply(Some(&name), &text, q.fresh).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(info(&api, &name).await?)).into_response())
}

async fn info(api: &Api, name: &str) -> Result<PipelineInfo, Error> {
    Ok(PipelineInfo {
        name: name.to_string(),
        config: config_json(&api.supervisor.config(name).await?),
        status: api.supervisor.status(name).await?,
    })
}

/// The manifest as submitted, as JSON.
fn config_json(text: &str) -> Value {
    serde_yaml::from_str::<Value>(text).unwrap_or(Value::Null)
}

#[utoipa::path(get, path = "/pipelines/{name}", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 200, body = PipelineInfo), (status = 404, body = ErrorBody)))]
async fn get_pipeline(State(api): Shared, Path(name): Path<String>) -> Reply {
    Ok(Json(info(&api, &name).await?).into_response())
}

#[utoipa::path(get, path = "/pipelines/{name}/config", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 200, body = Object, description = "The manifest as submitted, as JSON"), (status = 404, body = ErrorBody)))]
async fn get_config(State(api): Shared, Path(name): Path<String>) -> Reply {
    Ok(Json(config_json(&api.supervisor.config(&name).await?)).into_response())
}

#[utoipa::path(get, path = "/pipelines/{name}/status", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 200, body = Status), (status = 404, body = ErrorBody)))]
async fn status(State(api): Shared, Path(name): Path<String>) -> Reply {
    Ok(Json(api.supervisor.status(&name).await?).into_response())
}

/// What the status page charts: samples of its throughput and lags, and
/// its last dead letters.
#[utoipa::path(get, path = "/pipelines/{name}/activity", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 200, body = Activity), (status = 404, body = ErrorBody)))]
async fn activity(State(api): Shared, Path(name): Path<String>) -> Reply {
    Ok(Json(api.supervisor.activity(&name).await?).into_response())
}

#[utoipa::path(get, path = "/pipelines/{name}/offsets", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 200, body = Offsets), (status = 404, body = ErrorBody)))]
async fn offsets(State(api): Shared, Path(name): Path<String>) -> Reply {
    Ok(Json(Offsets { offsets: api.supervisor.offsets(&name).await? }).into_response())
}

#[utoipa::path(put, path = "/pipelines/{name}/pause", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 202, description = "Checkpoint and stop until resumed"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Being changed by another request")))]
async fn pause(State(api): Shared, Path(name): Path<String>) -> Reply {
    api.supervisor.pause(&name, Target::Paused).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(put, path = "/pipelines/{name}/stop", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 202, description = "Checkpoint and stop until resumed"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Being changed by another request")))]
async fn stop(State(api): Shared, Path(name): Path<String>) -> Reply {
    api.supervisor.pause(&name, Target::Stopped).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(put, path = "/pipelines/{name}/resume", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 202, description = "Start from the last checkpoint"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Being changed by another request")))]
async fn resume(State(api): Shared, Path(name): Path<String>) -> Reply {
    api.supervisor.resume(&name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(post, path = "/pipelines/{name}/restart", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 202, description = "Stop with a checkpoint and start again from it"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Being changed by another request")))]
async fn restart(State(api): Shared, Path(name): Path<String>) -> Reply {
    api.supervisor.resume(&name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(delete, path = "/pipelines/{name}", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 204, description = "Stopped and forgotten; its checkpoints stay"), (status = 404, body = ErrorBody)))]
async fn delete_pipeline(State(api): Shared, Path(name): Path<String>) -> Reply {
    api.supervisor.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ValidateQuery {
    /// Skip the checks that reach brokers and Redis servers.
    #[serde(default)]
    offline: bool,
}

/// Every problem of a manifest, nothing started: 200 with `error_count`
/// and `problems`, as Kafka Connect's validate answers.
#[utoipa::path(put, path = "/pipelines/validate", tag = "pipelines", params(ValidateQuery), request_body(content = String, content_type = "application/yaml", description = "A pipeline manifest, YAML or JSON"),
    responses((status = 200, body = Validation), (status = 413, body = ErrorBody)))]
async fn validate(State(api): Shared, Query(q): Query<ValidateQuery>, bytes: Result<Bytes, BytesRejection>) -> Reply {
    let text = text(bytes)?;
    let problems = match api.supervisor.validate(&text, !q.offline).await {
        Ok(()) => Vec::new(),
        Err(crate::supervisor::Error::Manifest(e)) => e.problems.iter().map(error::problem).collect(),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(Validation { error_count: problems.len(), problems }).into_response())
}

/// Every pipeline's metrics, for Prometheus.
#[utoipa::path(get, path = "/metrics", tag = "host",
    responses((status = 200, content_type = "application/openmetrics-text", body = String, description = "Every pipeline's metrics, for Prometheus")))]
async fn metrics(State(api): Shared) -> Reply {
    let text = crate::metrics::exposition(api.supervisor.metrics().await);
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// The kinds of sources, sinks and transforms this host has.
#[utoipa::path(get, path = "/plugins", tag = "host",
    responses((status = 200, body = [Plugin])))]
async fn plugins() -> Reply {
    use crate::manifest::reference::tags;
    use crate::sinks::SinkConfig;
    use crate::source::SourceConfig;
    let plugin = |ty, (class, description)| Plugin {
        class,
        ty,
        version: env!("CARGO_PKG_VERSION"),
        description,
        outputs: Vec::new(),
    };
    // From the manifest's own types, so a new source or sink shows here.
    let sources = tags::<SourceConfig>().into_iter().map(|t| plugin("source", t));
    let sinks = tags::<SinkConfig>().into_iter().map(|t| {
        let serves = SinkConfig::KINDS.iter().find(|(kind, _)| *kind == t.0).map_or(&[][..], |(_, serves)| serves);
        Plugin { outputs: serves.iter().map(|o| o.field()).collect(), ..plugin("sink", t) }
    });
    let transforms = Kind::ALL.into_iter().map(|k| plugin("transform", (k.name().to_string(), k.about().to_string())));
    Ok(Json(sources.chain(sinks).chain(transforms).collect::<Vec<_>>()).into_response())
}

impl From<registry::Error> for Error {
    fn from(e: registry::Error) -> Error {
        crate::supervisor::Error::Module(e).into()
    }
}
