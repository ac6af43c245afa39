//! Training sets as jobs (`POST /training-sets`, `GET /training-sets`,
//! `GET /training-sets/{id}`) and the files they read and write
//! (`PUT /files/{name}`, `GET /files/{name}`): labels uploaded, results
//! fetched, in the host's `files/` directory.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Api, Error, ErrorBody, Reply, Shared, body, declared_length, receive};
use crate::supervisor::training_sets::{Job, Request};

/// The largest file `PUT /files/{name}` takes: 4 GiB.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

pub fn routes() -> OpenApiRouter<Arc<Api>> {
    let files = OpenApiRouter::new()
        .routes(routes!(put_file, get_file))
        // Streamed to a file, counted as it comes.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(MAX_FILE_BYTES, declared_length));
    OpenApiRouter::new()
        .routes(routes!(list_training_sets, create_training_set))
        .routes(routes!(get_training_set))
        .merge(files)
}

/// Every job the host knows of, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Jobs {
    training_sets: Vec<Job>,
}

/// Start building a training set: the labels (a file under `files/`)
/// joined with views of this host's pipelines, written to `out` under
/// `files/`. Answers at once with the job; follow it at its `Location`.
#[utoipa::path(post, path = "/training-sets", tag = "training-sets", request_body = Request,
    responses((status = 202, body = Job, description = "Started"),
        (status = 400, body = ErrorBody, description = "A path outside `files/`, no labels file, a bad duration"),
        (status = 404, body = ErrorBody, description = "No pipeline of that name")))]
async fn create_training_set(State(api): Shared, bytes: Result<Bytes, BytesRejection>) -> Reply {
    // JSON whatever the content type says (`curl -d` sends a form's).
    let request: Request = serde_json::from_slice(&body(bytes)?)
        .map_err(|e| Error::bad_request(format!("the body is not a training set request (JSON): {e}")))?;
    let job = api.supervisor.build_training_set(request).await?;
    let location = format!("/training-sets/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(job)).into_response())
}

#[utoipa::path(get, path = "/training-sets", tag = "training-sets", responses((status = 200, body = Jobs)))]
async fn list_training_sets(State(api): Shared) -> Reply {
    Ok(Json(Jobs { training_sets: api.supervisor.training_sets() }).into_response())
}

/// A job: `running` (with its stage and the views joined so far),
/// `succeeded` (with its report) or `failed` (with the error).
#[utoipa::path(get, path = "/training-sets/{id}", tag = "training-sets", params(("id" = u64, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
async fn get_training_set(State(api): Shared, Path(id): Path<u64>) -> Reply {
    Ok(Json(api.supervisor.training_set(id)?).into_response())
}

/// Upload a file to the host's `files/` directory (labels, a pipeline's
/// input), replacing one of the same name.
#[utoipa::path(put, path = "/files/{name}", tag = "host", params(("name" = String, Path, description = "A file name (no folders)")),
    request_body(content = String, content_type = "application/octet-stream"),
    responses((status = 204, description = "Stored"), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "Larger than 4 GiB")))]
async fn put_file(State(api): Shared, Path(name): Path<String>, body: Body) -> Reply {
    let path = api.supervisor.file_path(&name)?;
    let upload = receive(body, MAX_FILE_BYTES, &api.supervisor.uploads()).await?;
    upload.persist(&path).map_err(|e| {
        tracing::error!(file = %path.display(), "cannot keep an upload: {}", e.error);
        Error::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot keep the file: {}", e.error))
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Download a file of the host's `files/` directory (a training set).
#[utoipa::path(get, path = "/files/{name}", tag = "host", params(("name" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", description = "The file's bytes"),
        (status = 404, body = ErrorBody)))]
async fn get_file(State(api): Shared, Path(name): Path<String>) -> Reply {
    let path = api.supervisor.file_path(&name)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| Error::new(StatusCode::NOT_FOUND, format!("there is no file {name} in the host's files")))?;
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], Body::from_stream(stream)).into_response())
}
