//! The schema registry's routes, at the host's root: Confluent Schema
//! Registry's REST API, as `confluent-kafka`'s `SchemaRegistryClient` and
//! the Java clients call it (`SchemaRegistryClient({"url": HOST})`).
//! Answers are `application/vnd.schemaregistry.v1+json`; errors are
//! `{"error_code", "message"}` with Confluent's codes. Bodies are read as
//! JSON whatever their content type says, as Confluent's registry does.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::Api;
use crate::schema_registry::{Level, Mode, Registry, RegistryError, SchemaRequest, VersionRef};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Shared = State<Arc<Api>>;
type Answer = Result<Response, RegistryError>;

/// A registry error, answered as Confluent answers it.
impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error_code": self.code(), "message": self.to_string()});
        (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
    }
}

fn ok(value: Value) -> Answer {
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], value.to_string()).into_response())
}

/// The registry's routes.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(version_schema))
        .route("/schemas/types", get(|| async { ok(json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/compatibility/subjects/{subject}/versions", post(test_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(test_one))
        .route("/config", get(get_config).put(put_config).delete(delete_config))
        .route("/config/{subject}", get(get_config).put(put_config).delete(delete_config))
        .route("/mode", get(get_mode).put(put_mode))
        .route("/mode/{subject}", get(get_mode).put(put_mode).delete(delete_mode))
}

fn registry(api: &Api) -> &Registry {
    api.supervisor.schemas()
}

/// A boolean query parameter in either spelling (`true`, `False`), as
/// Python's client writes them.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let text = String::deserialize(d)?;
    match text.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(serde::de::Error::custom(format!("`{text}` is not true or false"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flags {
    #[serde(default, deserialize_with = "lenient_bool")]
    deleted: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    permanent: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    verbose: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    default_to_global: bool,
    #[serde(default)]
    subject_prefix: Option<String>,
}

/// A request's JSON body.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::InvalidSchema(format!("the body: {e}")))
}

async fn subjects(State(api): Shared, Query(flags): Query<Flags>) -> Answer {
    ok(json!(registry(&api).subjects(flags.deleted, flags.subject_prefix.as_deref())))
}

async fn register(State(api): Shared, Path(subject): Path<String>, bytes: Bytes) -> Answer {
    let request: SchemaRequest = body(&bytes)?;
    let id = registry(&api).register(&subject, &request)?;
    ok(json!({"id": id}))
}

async fn lookup(State(api): Shared, Path(subject): Path<String>, Query(flags): Query<Flags>, bytes: Bytes) -> Answer {
    let request: SchemaRequest = body(&bytes)?;
    ok(json!(registry(&api).lookup(&subject, &request, flags.deleted)?))
}

async fn versions(State(api): Shared, Path(subject): Path<String>, Query(flags): Query<Flags>) -> Answer {
    ok(json!(registry(&api).versions(&subject, flags.deleted)?))
}

async fn version(State(api): Shared, Path((subject, v)): Path<(String, String)>, Query(flags): Query<Flags>) -> Answer {
    ok(json!(registry(&api).version(&subject, VersionRef::parse(&v)?, flags.deleted)?))
}

/// The schema alone, as its JSON.
async fn version_schema(
    State(api): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Answer {
    let found = registry(&api).version(&subject, VersionRef::parse(&v)?, flags.deleted)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], found.schema).into_response())
}

fn schema_id(text: &str) -> Result<u32, RegistryError> {
    text.parse().map_err(|_| RegistryError::SchemaNotFound(text.to_string()))
}

async fn schema_by_id(State(api): Shared, Path(id): Path<String>) -> Answer {
    ok(json!(registry(&api).schema(schema_id(&id)?)?))
}

async fn raw_schema_by_id(State(api): Shared, Path(id): Path<String>) -> Answer {
    let found = registry(&api).schema(schema_id(&id)?)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], found.schema).into_response())
}

async fn id_versions(State(api): Shared, Path(id): Path<String>, Query(flags): Query<Flags>) -> Answer {
    let found = registry(&api).id_versions(schema_id(&id)?, flags.deleted)?;
    ok(found.into_iter().map(|(subject, version)| json!({"subject": subject, "version": version})).collect())
}

async fn id_subjects(State(api): Shared, Path(id): Path<String>, Query(flags): Query<Flags>) -> Answer {
    let mut found: Vec<String> =
        registry(&api).id_versions(schema_id(&id)?, flags.deleted)?.into_iter().map(|(s, _)| s).collect();
    found.dedup();
    ok(json!(found))
}

async fn delete_subject(State(api): Shared, Path(subject): Path<String>, Query(flags): Query<Flags>) -> Answer {
    ok(json!(registry(&api).delete_subject(&subject, flags.permanent)?))
}

async fn delete_version(
    State(api): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Answer {
    ok(json!(registry(&api).delete_version(&subject, VersionRef::parse(&v)?, flags.permanent)?))
}

fn compatibility(found: crate::schema_registry::Compatibility, verbose: bool) -> Answer {
    match verbose {
        true => ok(json!({"is_compatible": found.is_compatible, "messages": found.messages})),
        false => ok(json!({"is_compatible": found.is_compatible})),
    }
}

async fn test_one(
    State(api): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(flags): Query<Flags>,
    bytes: Bytes,
) -> Answer {
    let request: SchemaRequest = body(&bytes)?;
    compatibility(registry(&api).test(&subject, Some(VersionRef::parse(&v)?), &request)?, flags.verbose)
}

async fn test_all(State(api): Shared, Path(subject): Path<String>, Query(flags): Query<Flags>, bytes: Bytes) -> Answer {
    let request: SchemaRequest = body(&bytes)?;
    compatibility(registry(&api).test(&subject, None, &request)?, flags.verbose)
}

async fn get_config(State(api): Shared, subject: Option<Path<String>>, Query(flags): Query<Flags>) -> Answer {
    let subject = subject.map(|Path(s)| s);
    let level = registry(&api).compatibility(subject.as_deref(), flags.default_to_global)?;
    ok(json!({"compatibilityLevel": level.name()}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigBody {
    #[serde(default)]
    compatibility: Option<String>,
    /// What some clients send instead.
    #[serde(default)]
    compatibility_level: Option<String>,
}

async fn put_config(State(api): Shared, subject: Option<Path<String>>, bytes: Bytes) -> Answer {
    let config: ConfigBody = body(&bytes)?;
    let text = config.compatibility.or(config.compatibility_level).unwrap_or_default();
    let level = Level::parse(&text)?;
    let subject = subject.map(|Path(s)| s);
    let level = registry(&api).set_compatibility(subject.as_deref(), level)?;
    ok(json!({"compatibility": level.name()}))
}

async fn delete_config(State(api): Shared, subject: Option<Path<String>>) -> Answer {
    let subject = subject.map(|Path(s)| s);
    let level = registry(&api).delete_compatibility(subject.as_deref())?;
    ok(json!({"compatibilityLevel": level.name()}))
}

async fn get_mode(State(api): Shared, subject: Option<Path<String>>, Query(flags): Query<Flags>) -> Answer {
    let subject = subject.map(|Path(s)| s);
    let mode = registry(&api).mode(subject.as_deref(), flags.default_to_global)?;
    ok(json!({"mode": mode.name()}))
}

#[derive(Debug, Deserialize)]
struct ModeBody {
    mode: String,
}

async fn put_mode(State(api): Shared, subject: Option<Path<String>>, bytes: Bytes) -> Answer {
    let wanted: ModeBody = body(&bytes)?;
    let subject = subject.map(|Path(s)| s);
    let mode = registry(&api).set_mode(subject.as_deref(), Mode::parse(&wanted.mode)?)?;
    ok(json!({"mode": mode.name()}))
}

async fn delete_mode(State(api): Shared, Path(subject): Path<String>) -> Answer {
    let mode = registry(&api).delete_mode(&subject)?;
    ok(json!({"mode": mode.name()}))
}
