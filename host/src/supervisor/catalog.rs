//! The feature registry's answers (`GET /features`): each pipeline's
//! view, read from its definition (the manifest as submitted and what its
//! module declared), the online store's values for keys, and the Feast
//! repository of its Feast views.

use sluice_sink_api::{EntityKey, KeyType, Output};

use sluice_sink_redis::RedisSinkConfig;

use super::{Definition, Error, Prepared, Result, Supervisor, blocking};
use crate::catalog::{self, ModuleInfo, Online, OnlineRow, View};
use crate::manifest::{Document, Finding, Manifest};
use crate::registry::Feature;
use crate::sinks::SinkConfig;

/// A definition's manifest (as it was checked when applied).
fn manifest(definition: &Definition) -> Option<Manifest> {
    let file = format!("pipelines/{}", definition.name);
    Document::read(&file, &definition.config, &[]).ok().map(|d| d.manifest)
}

/// The module a definition runs and the features it declares: its
/// history's last entry (or, for a definition saved before histories were
/// kept, its registry version's).
fn produced(definition: &Definition) -> (ModuleInfo, Vec<Feature>) {
    if let Some(last) = definition.produced.last() {
        return (last.module.clone(), last.features.clone());
    }
    match &definition.module {
        Some(v) => (
            ModuleInfo { name: v.name.clone(), version: Some(v.version), sha256: v.sha256.clone() },
            v.features.clone(),
        ),
        None => (ModuleInfo { name: String::new(), version: None, sha256: String::new() }, Vec::new()),
    }
}

/// The view of a definition.
fn described(definition: &Definition) -> Option<(View, Manifest)> {
    let manifest = manifest(definition)?;
    let (module, features) = produced(definition);
    Some((catalog::view(&manifest, module, features), manifest))
}

/// The module of a prepared definition, as the registry names it, and the
/// features it declares (a file's digest read from it).
pub(super) async fn module_of(prepared: &Prepared) -> Result<(ModuleInfo, Vec<Feature>)> {
    let features = Feature::all_of(prepared.module.schema());
    let info = match &prepared.version {
        Some(v) => ModuleInfo { name: v.name.clone(), version: Some(v.version), sha256: v.sha256.clone() },
        None => {
            let path = prepared.manifest.transform.module.clone();
            let io = |e: std::io::Error| Error::Io { dir: path.display().to_string(), message: e.to_string() };
            let read = path.clone();
            let bytes = blocking(move || std::fs::read(read)).await?.map_err(io)?;
            use sha2::Digest;
            let sha256 = format!("{:x}", sha2::Sha256::digest(&bytes));
            ModuleInfo { name: path.display().to_string(), version: None, sha256 }
        }
    };
    Ok((info, features))
}

/// What two pipelines' Redis sinks must not share: the server, and the
/// Feast view, or the plain key and `metadata_prefix`.
fn destination(config: &RedisSinkConfig) -> (String, Option<String>, Option<String>, Option<String>) {
    match config.feast_view() {
        Some(view) => (config.server(), Some(view.project.into()), Some(view.feature_view.into()), None),
        None => (config.server(), None, config.key.clone(), config.metadata_prefix.clone()),
    }
}

impl Supervisor {
    /// A manifest's Redis sinks that write where another pipeline's do:
    /// the same Feast view, or the same plain hashes with the same
    /// `metadata_prefix`. Each pipeline would replace the other's rows, or
    /// times and newest-window guard.
    pub(super) async fn shared_destinations(&self, manifest: &Manifest) -> Vec<Finding> {
        let others: Vec<(String, Manifest)> = self
            .definitions()
            .await
            .iter()
            .filter(|d| d.name != manifest.name)
            .filter_map(|d| Some((d.name.clone(), self::manifest(d)?)))
            .collect();
        let mut findings = Vec::new();
        for (entry, output, sink) in manifest.outputs.entries() {
            let (SinkConfig::Redis(config), Output::Features) = (sink, output) else { continue };
            let mine = destination(config);
            let shared = others.iter().find(|(_, theirs)| {
                theirs.outputs.features.iter().any(|s| matches!(s, SinkConfig::Redis(c) if destination(c) == mine))
            });
            let Some((other, _)) = shared else { continue };
            findings.push(match config.feast_view() {
                Some(view) => (
                    format!("{entry}.feature_view"),
                    format!(
                        "the pipeline `{other}` writes the Feast view `{}` of project `{}` on this Redis too: \
                         each would replace the other's rows",
                        view.feature_view, view.project
                    ),
                    Some("give each pipeline its own feature_view (views of one entity share its hashes)".into()),
                ),
                None => (
                    format!("{entry}.key"),
                    format!(
                        "the pipeline `{other}` writes these hashes on this Redis with the same metadata_prefix: \
                         each would replace the other's window times"
                    ),
                    Some("give each pipeline writing these hashes its own metadata_prefix".into()),
                ),
            });
        }
        findings
    }

    /// Every definition, copied (parsing is done outside the lock).
    pub(super) async fn definitions(&self) -> Vec<Definition> {
        self.pipelines.lock().await.values().map(|e| e.definition.clone()).collect()
    }

    /// The definition of the view `name`: a pipeline's name, or the name
    /// of a Feast view only one pipeline writes.
    async fn definition_of(&self, name: &str) -> Result<(Definition, View, Manifest)> {
        let mut found = Vec::new();
        for definition in self.definitions().await {
            let Some((view, manifest)) = described(&definition) else { continue };
            if definition.name == name {
                return Ok((definition, view, manifest));
            }
            let feast = manifest.outputs.features.iter().any(|sink| match sink {
                SinkConfig::Redis(r) => r.feast_view().is_some_and(|v| v.feature_view == name),
                _ => false,
            });
            if feast {
                found.push((definition, view, manifest));
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            _ => Err(Error::NotFound(name.to_string())),
        }
    }

    /// Every pipeline's view, by pipeline name (no histories).
    pub async fn views(&self) -> Vec<View> {
        self.definitions().await.iter().filter_map(described).map(|(view, _)| view).collect()
    }

    /// One view, with its history.
    pub async fn view(&self, name: &str) -> Result<View> {
        let (definition, mut view, _) = self.definition_of(name).await?;
        view.history = Some(definition.produced.clone());
        Ok(view)
    }

    /// What the view's online store (its first Redis sink) holds for
    /// `keys`, as of `now_ms`.
    pub async fn online(&self, name: &str, keys: &[String], now_ms: i64) -> Result<Online> {
        let (_, view, manifest) = self.definition_of(name).await?;
        let found = manifest.outputs.entries().find_map(|(entry, output, sink)| match sink {
            SinkConfig::Redis(config) if output == Output::Features => Some((entry, config.clone(), sink.location())),
            _ => None,
        });
        let Some((sink, config, location)) = found else {
            return Err(Error::NoOnlineStore(view.view));
        };
        let key_type = manifest.events.key_type;
        let entities = keys
            .iter()
            .map(|key| match (key_type, key.parse::<i64>()) {
                (KeyType::Int, Err(_)) => Err(Error::BadKey { view: view.view.clone(), key: key.clone() }),
                _ => Ok(EntityKey::typed(key, key_type)),
            })
            .collect::<Result<Vec<_>>>()?;
        let schema = Feature::schema_of(&view.features);
        let stored = config.lookup(&schema, &entities).await.map_err(|e| Error::Online {
            view: view.view.clone(),
            message: e.message,
            retriable: e.retriable,
        })?;
        let rows = entities
            .iter()
            .zip(stored)
            .map(|(entity, stored)| {
                let key = match entity {
                    EntityKey::Str(s) => serde_json::Value::String(s.clone()),
                    EntityKey::Int(i) => serde_json::Value::from(*i),
                };
                match stored {
                    Some(s) => OnlineRow {
                        key,
                        found: true,
                        time: s.time,
                        age_ms: s.time.map(|t| now_ms - t),
                        features: Some(s.features),
                    },
                    None => OnlineRow { key, found: false, time: None, age_ms: None, features: None },
                }
            })
            .collect();
        let location = location.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Ok(Online { view: view.view, sink, location, rows })
    }

    /// The Feast repository of the Feast views a pipeline writes.
    pub async fn feast_repository(&self, name: &str) -> Result<crate::feast::Repository> {
        let (_, view, manifest) = self.definition_of(name).await?;
        let schema = Feature::schema_of(&view.features);
        crate::feast::repository(&manifest.lower(), &schema, &view.module.name).map_err(Error::Feast)
    }
}
