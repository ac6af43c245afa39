//! The feature registry's routes: every feature the host's pipelines
//! produce (`GET /features`), one view with its history
//! (`GET /features/{view}`), the online store's values for keys
//! (`GET /features/{view}/online?key=…`), and a pipeline's Feast
//! repository (`GET /pipelines/{name}/feast`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Api, Error, ErrorBody, Reply, Shared};
use crate::catalog::{Online, View};
use crate::feast::Existing;

/// Most keys one online read takes.
const MAX_KEYS: usize = 1_000;

pub fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new()
        .routes(routes!(list_features))
        .routes(routes!(get_view))
        .routes(routes!(online))
        .routes(routes!(feast_repository))
}

/// Every view of the host.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Views {
    views: Vec<View>,
}

/// Every feature the host's pipelines produce, by view (one per
/// pipeline): its type and description, the entity key, the window, the
/// trigger, the module and where the rows are stored.
#[utoipa::path(get, path = "/features", tag = "features",
    responses((status = 200, body = Views)))]
async fn list_features(State(api): Shared) -> Reply {
    Ok(Json(Views { views: api.supervisor.views().await }).into_response())
}

/// One view (a pipeline's name, or a Feast view only one pipeline
/// writes), with its history: which module produced which features since
/// when.
#[utoipa::path(get, path = "/features/{view}", tag = "features", params(("view" = String, Path)),
    responses((status = 200, body = View), (status = 404, body = ErrorBody)))]
async fn get_view(State(api): Shared, Path(view): Path<String>) -> Reply {
    Ok(Json(api.supervisor.view(&view).await?).into_response())
}

#[derive(Debug, IntoParams)]
#[allow(dead_code)] // Documents the query, which `online` reads raw (`key` repeats).
struct OnlineQuery {
    /// A key to look up; repeat it for several (`?key=u1&key=u2`, at most
    /// 1,000).
    key: Vec<String>,
}

/// What the view's online store (its first Redis sink, in either layout)
/// holds for each key: the features, when they held and how long ago.
#[utoipa::path(get, path = "/features/{view}/online", tag = "features",
    params(("view" = String, Path), OnlineQuery),
    responses((status = 200, body = Online),
        (status = 400, body = ErrorBody, description = "No keys, too many, or one the view's key type does not take"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The view has no Redis sink"),
        (status = 503, body = ErrorBody, description = "Redis does not answer")))]
async fn online(State(api): Shared, Path(view): Path<String>, RawQuery(query): RawQuery) -> Reply {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| Error::bad_request(format!("the query does not parse: {e}")))?;
    let keys: Vec<String> = pairs.into_iter().filter(|(name, _)| name == "key").map(|(_, key)| key).collect();
    if keys.is_empty() {
        return Err(Error::bad_request("name the keys to look up: ?key=u1&key=u2"));
    }
    if keys.len() > MAX_KEYS {
        return Err(Error::bad_request(format!("{} keys asked; one read takes at most {MAX_KEYS}", keys.len())));
    }
    Ok(Json(api.supervisor.online(&view, &keys, crate::time::now_ms()).await?).into_response())
}

/// A Feast repository, as `sluice feast generate` writes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct FeastRepository {
    project: String,
    files: Vec<FeastFile>,
}

/// One file of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct FeastFile {
    name: String,
    text: String,
    /// What to do with a file of that name already in the repository:
    /// `keep` it (the project's settings), `replace` it (a view), or it
    /// must be the `same` (an entity other views import).
    existing: &'static str,
}

/// The Feast repository of a pipeline's `layout: feast` Redis sinks:
/// `feature_store.yaml`, the entity and the view, as `sluice feast
/// generate` writes them.
#[utoipa::path(get, path = "/pipelines/{name}/feast", tag = "pipelines", params(("name" = String, Path)),
    responses((status = 200, body = FeastRepository), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The pipeline writes no Feast view")))]
async fn feast_repository(State(api): Shared, Path(name): Path<String>) -> Reply {
    let repository = api.supervisor.feast_repository(&name).await?;
    let files = repository
        .files
        .into_iter()
        .map(|f| FeastFile {
            name: f.name,
            text: f.text,
            existing: match f.existing {
                Existing::Keep => "keep",
                Existing::Replace => "replace",
                Existing::Same => "same",
            },
        })
        .collect();
    Ok(Json(FeastRepository { project: repository.project, files }).into_response())
}
