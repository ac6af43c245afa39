//! Feast definitions of what a pipeline writes with `layout: feast`: a
//! Feast repository `feast apply` takes as it is (`sluice feast
//! generate`), so that model servers' `get_online_features` finds the
//! features and the Feast registry lists them.
//!
//! A repository is `feature_store.yaml` (written only when absent: a team
//! keeps its own registry and offline store settings), one Python file per
//! entity, `sluice_entity_{join_key}.py`, which every view of that entity
//! imports (Feast refuses two entities of one name, and seed 002 writes
//! one entity from several pipelines), and one per feature view,
//! `sluice_view_{view}.py`. The view's schema is the module's declared
//! features, with their descriptions; its ttl the sink's; it has no batch
//! source (`source=None`): Sluice writes the online store itself, and the
//! offline rows are in the pipeline's Iceberg table.

use std::path::{Path, PathBuf};

use sluice_sink_api::{FeatureSchema, KeyType};
use sluice_sink_redis::feast::feast_type;
use sluice_sink_redis::{FeastView, RedisSinkConfig};

use crate::pipeline::Spec;
use crate::sinks::SinkConfig;

/// Why a pipeline's Feast definitions cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum FeastError {
    #[error(
        "the pipeline `{pipeline}` writes no Feast view: none of its feature sinks is a redis sink with `layout: feast`"
    )]
    NoView { pipeline: String },
    #[error("its Feast views are in two projects, `{first}` and `{second}`, and a Feast repository is one project")]
    Projects { first: String, second: String },
    #[error(
        "its Feast views are in two Redis servers, `{first}` and `{second}`, and a Feast project has one online store"
    )]
    Stores { first: String, second: String },
    /// Not the URL itself: it may hold a password, and the API answers
    /// with this.
    #[error("the Feast sink's `url` is not one Feast's Redis online store can take: {why}")]
    Url { why: String },
    #[error(
        "{} defines this entity otherwise (another pipeline keys it by another type): give this \
         pipeline's Feast sink another `join_key`, or write the repository elsewhere",
        .path.display()
    )]
    Entity { path: PathBuf },
    #[error("cannot write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One file of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Its name in the repository.
    pub name: String,
    pub text: String,
    /// What becomes of a file of that name already there.
    pub existing: Existing,
}

/// What [`write`] does with a file already in the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Keep it (the project's settings are the team's).
    Keep,
    /// Replace it (a view is generated again as its features change).
    Replace,
    /// It must say the same (an entity other pipelines' views import).
    Same,
}

/// A pipeline's Feast repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub project: String,
    pub files: Vec<RepoFile>,
}

/// What the Python text of a view needs of its sink.
struct View<'a> {
    view: FeastView<'a>,
    config: &'a RedisSinkConfig,
}

/// A Python string literal of `text` (JSON's escapes are Python's).
fn py(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// A Python identifier made of a Feast name (`-` is not one's).
fn identifier(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The `connection_string` of Feast's Redis online store for `url`
/// (`host:port,db=N[,username=…][,password=…][,ssl=true]`).
pub fn connection_string(url: &str) -> Result<String, FeastError> {
    let refused = |why: String| FeastError::Url { why };
    let info = redis::Client::open(url).map_err(|e| refused(e.to_string()))?.get_connection_info().clone();
    let (host, port, tls) = match &info.addr {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port, false),
        redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
        _ => return Err(refused("Feast's Redis online store connects over TCP only".into())),
    };
    let settings = &info.redis;
    let mut text = format!("{host}:{port},db={}", settings.db);
    if let Some(username) = &settings.username {
        text.push_str(&format!(",username={username}"));
    }
    if let Some(password) = &settings.password {
        text.push_str(&format!(",password={password}"));
    }
    if tls {
        text.push_str(",ssl=true");
    }
    Ok(text)
}

/// The Feast repository of `spec`'s Feast views, for rows of `features`
/// (the module's declaration) made by `module`.
pub fn repository(spec: &Spec, features: &FeatureSchema, module: &str) -> Result<Repository, FeastError> {
    let views: Vec<View<'_>> = spec
        .outputs
        .features
        .iter()
        .filter_map(|sink| match sink {
            SinkConfig::Redis(config) => config.feast_view().map(|view| View { view, config }),
            _ => None,
        })
        .collect();
    let Some(first) = views.first() else { return Err(FeastError::NoView { pipeline: spec.name.clone() }) };
    for other in &views[1..] {
        if other.view.project != first.view.project {
            return Err(FeastError::Projects {
                first: first.view.project.to_string(),
                second: other.view.project.to_string(),
            });
        }
        if other.config.url != first.config.url {
            // Shown without credentials: the API answers with this.
            return Err(FeastError::Stores { first: first.config.server(), second: other.config.server() });
        }
    }
    let project = first.view.project.to_string();
    let store = connection_string(&first.config.url)?;
    let mut files = vec![RepoFile {
        name: "feature_store.yaml".into(),
        text: format!(
            "# Made by `sluice feast generate` for the pipeline `{pipeline}`; kept as it is by later runs.\n\
             project: {project}\n\
             provider: local\n\
             registry: data/registry.db\n\
             online_store:\n  type: redis\n  connection_string: {store}\n\
             entity_key_serialization_version: 3\n",
            pipeline = spec.name,
            store = py(&store),
        ),
        existing: Existing::Keep,
    }];
    let key_type = spec.schema.key_type;
    for view in &views {
        let entity = entity_file(view.view.join_key, key_type);
        if !files.iter().any(|f| f.name == entity.name) {
            files.push(entity);
        }
        files.push(view_file(view, features, &spec.name, module));
    }
    Ok(Repository { project, files })
}

/// `sluice_entity_{join_key}.py`.
fn entity_file(join_key: &str, key_type: KeyType) -> RepoFile {
    let value_type = match key_type {
        KeyType::String => "STRING",
        KeyType::Int => "INT64",
    };
    RepoFile {
        name: format!("sluice_entity_{}.py", identifier(join_key)),
        text: format!(
            "# Generated by `sluice feast generate`: the entity of the Feast views Sluice writes,\n\
             # keyed by `{join_key}`. Generated again by every run; edits are lost.\n\
             \n\
             from feast import Entity, ValueType\n\
             \n\
             {var} = Entity(\n    name={name},\n    join_keys=[{name}],\n    value_type=ValueType.{value_type},\n)\n",
            var = identifier(join_key),
            name = py(join_key),
        ),
        existing: Existing::Same,
    }
}

/// `sluice_view_{view}.py`.
fn view_file(view: &View<'_>, features: &FeatureSchema, pipeline: &str, module: &str) -> RepoFile {
    let FeastView { feature_view, join_key, .. } = view.view;
    let ttl = view.config.ttl.map_or(0, |ttl| ttl.millis() / 1000);
    let fields: String = features
        .specs()
        .iter()
        .map(|spec| {
            let description = if spec.description.is_empty() {
                String::new()
            } else {
                format!(", description={}", py(&spec.description))
            };
            format!("        Field(name={}, dtype={}{description}),\n", py(&spec.name), feast_type(spec.ty))
        })
        .collect();
    let description = format!(
        "Written to the online store by the Sluice pipeline `{pipeline}` (module `{module}`). Its event timestamp \
         is the window's end for a row fired on close or a late correction, the event's time for a row fired \
         per event."
    );
    RepoFile {
        name: format!("sluice_view_{}.py", identifier(feature_view)),
        text: format!(
            "# Generated by `sluice feast generate` from the pipeline `{pipeline}`: the Feast view its\n\
             # module's features are written to. Generate it again after the features change; edits are lost.\n\
             \n\
             from datetime import timedelta\n\
             \n\
             from feast import FeatureView, Field\n\
             from feast.types import Array, Bool, Float64, Int64, String  # noqa: F401\n\
             \n\
             from sluice_entity_{entity} import {entity}\n\
             \n\
             {var} = FeatureView(\n    name={name},\n    entities=[{entity}],\n    ttl=timedelta(seconds={ttl}),\n    \
             schema=[\n{fields}    ],\n    online=True,\n    source=None,\n    description={description},\n    \
             tags={{\"sluice.pipeline\": {pipeline_text}, \"sluice.module\": {module_text}}},\n)\n",
            entity = identifier(join_key),
            var = identifier(feature_view),
            name = py(feature_view),
            description = py(&description),
            pipeline_text = py(pipeline),
            module_text = py(module),
        ),
        existing: Existing::Replace,
    }
}

/// Write `repository` in `dir` (made when missing); the files written.
pub fn write(repository: &Repository, dir: &Path) -> Result<Vec<PathBuf>, FeastError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FeastError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let mut written = Vec::new();
    for file in &repository.files {
        let path = dir.join(&file.name);
        match (file.existing, std::fs::read_to_string(&path)) {
            (Existing::Keep, Ok(_)) => continue,
            (Existing::Same, Ok(text)) if text == file.text => continue,
            (Existing::Same, Ok(_)) => return Err(FeastError::Entity { path }),
            _ => {}
        }
        std::fs::write(&path, &file.text).map_err(failed(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_become_feast_connection_strings() {
        let string = |url: &str| connection_string(url).map_err(|e| e.to_string());
        assert_eq!(string("redis://127.0.0.1:6379/0"), Ok("127.0.0.1:6379,db=0".into()));
        assert_eq!(string("redis://localhost/2"), Ok("localhost:6379,db=2".into()));
        assert_eq!(string("rediss://me:pw@cache:6380"), Ok("cache:6380,db=0,username=me,password=pw,ssl=true".into()));
        assert!(string("http://nowhere").is_err());
    }

    #[test]
    fn names_become_python_identifiers() {
        assert_eq!(identifier("session-features"), "session_features");
        assert_eq!(identifier("5m"), "_5m");
        assert_eq!(py("a \"b\"\n"), r#""a \"b\"\n""#);
    }
}
