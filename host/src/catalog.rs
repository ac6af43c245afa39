//! The feature registry of a host: every feature its pipelines produce,
//! with what makes it (the pipeline, its module's name, version and
//! digest, the window, the trigger, the entity key) and where it is stored
//! (`GET /features`, `sluice features list`), and, per view, which module
//! version produced which features since when (seed 000's fourth
//! component: "a schema registration in the feature store registry so the
//! training pipeline knows the feature exists").
//!
//! A pipeline is one view, named after it; its Feast view, Iceberg table,
//! topic and Redis keys are where the view is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_sink_api::{KeyType, Output};

use crate::manifest::{KeyConfig, Manifest, TriggerConfig, WindowType};
use crate::registry::Feature;

/// One pipeline's features and how they are made and kept.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct View {
    /// The view's name: its pipeline's.
    pub view: String,
    pub pipeline: String,
    pub entity: Entity,
    pub window: Window,
    /// When rows are emitted: `close` (a window's end passed) or `event`
    /// (every event); late corrections come on top of either.
    pub trigger: String,
    pub module: ModuleInfo,
    /// The features the module declares, in its order.
    pub features: Vec<Feature>,
    /// Every sink of its feature rows.
    pub stored: Vec<Store>,
    /// (`GET /features/{view}` only) which module produced which features
    /// since when, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Produced>>,
}

/// The entity a view's rows are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Entity {
    /// The event field the key is read from, or `kafka_key`.
    pub key: String,
    /// `string` or `int`.
    #[serde(rename = "type")]
    pub key_type: String,
}

/// A view's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Window {
    /// `tumbling`, `sliding` or `session`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slide_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<i64>,
    pub allowed_lateness_ms: i64,
}

/// The module a view's rows come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModuleInfo {
    /// Its name in the module registry, or the file a manifest names.
    pub name: String,
    /// Its version in the registry (none for a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
}

/// One sink of a view's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Store {
    /// Its entry in the manifest (`outputs.features[1]`).
    pub sink: String,
    /// Its `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it keeps the rows, as its settings say (`topic`, `table`,
    /// `key`, `project` and `feature_view`…).
    pub location: BTreeMap<String, String>,
}

/// What a view's online store holds for some keys (`GET
/// /features/{view}/online`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Online {
    pub view: String,
    /// The sink read: the view's first Redis sink (`outputs.features[0]`).
    pub sink: String,
    pub location: BTreeMap<String, String>,
    /// One per key asked, in order.
    pub rows: Vec<OnlineRow>,
}

/// What the online store holds for one key.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OnlineRow {
    /// The key, typed as the view's keys are (a string or an integer).
    #[schema(value_type = Object)]
    pub key: serde_json::Value,
    /// Whether the store holds anything for it.
    pub found: bool,
    /// When its features held, ms since the epoch: the window's end, or
    /// the event's time for a row fired per event.
    pub time: Option<i64>,
    /// How long before the request that was, ms.
    pub age_ms: Option<i64>,
    /// Every declared feature (null where none is stored).
    #[schema(value_type = Option<Object>)]
    pub features: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What one module produced, from when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Produced {
    pub module: ModuleInfo,
    pub features: Vec<Feature>,
    /// When a pipeline definition first ran it (RFC 3339).
    pub since: String,
}

/// The history of a view after a definition applied with `module`, which
/// declares `features`, at `now` (RFC 3339): `history` as it was, and a
/// new entry when the module's bytes or its features changed.
pub fn record(history: &[Produced], module: ModuleInfo, features: Vec<Feature>, now: String) -> Vec<Produced> {
    let mut history = history.to_vec();
    let same = history.last().is_some_and(|last| last.module.sha256 == module.sha256 && last.features == features);
    if !same {
        history.push(Produced { module, features, since: now });
    }
    history
}

/// The view of the pipeline `manifest` defines, run with `module`
/// declaring `features`.
pub fn view(manifest: &Manifest, module: ModuleInfo, features: Vec<Feature>) -> View {
    let w = &manifest.window;
    let ms = |d: Option<crate::manifest::Duration>| d.map(|d| d.millis());
    let kind = match w.kind {
        WindowType::Tumbling => "tumbling",
        WindowType::Sliding => "sliding",
        WindowType::Session => "session",
    };
    let sliding = w.kind == WindowType::Sliding;
    let window = Window {
        kind: kind.into(),
        size_ms: if w.kind == WindowType::Session { None } else { ms(w.size) },
        slide_ms: if sliding { ms(w.slide).or(ms(w.size)) } else { None },
        gap_ms: if w.kind == WindowType::Session { ms(w.gap) } else { None },
        allowed_lateness_ms: w.allowed_lateness.millis(),
    };
    let key = match &manifest.events.key {
        KeyConfig::Field(name) => name.clone(),
        KeyConfig::From { .. } => "kafka_key".into(),
    };
    let key_type = match manifest.events.key_type {
        KeyType::String => "string",
        KeyType::Int => "int",
    };
    let stored = manifest
        .outputs
        .entries()
        .filter(|(_, output, _)| *output == Output::Features)
        .map(|(sink, _, config)| Store {
            sink,
            kind: config.kind().into(),
            location: config.location().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        })
        .collect();
    View {
        view: manifest.name.clone(),
        pipeline: manifest.name.clone(),
        entity: Entity { key, key_type: key_type.into() },
        window,
        trigger: match w.trigger {
            TriggerConfig::Close => "close",
            TriggerConfig::Event => "event",
        }
        .into(),
        module,
        features,
        stored,
        history: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(sha: &str) -> ModuleInfo {
        ModuleInfo { name: "tally".into(), version: Some(1), sha256: sha.into() }
    }

    fn feature(name: &str) -> Feature {
        Feature { name: name.into(), ty: "int".into(), nullable: false, description: String::new() }
    }

    #[test]
    fn history_grows_when_the_module_or_its_features_change() {
        let one = record(&[], module("a"), vec![feature("count")], "t1".into());
        assert_eq!(one.len(), 1);
        // Applied again unchanged: nothing new.
        assert_eq!(record(&one, module("a"), vec![feature("count")], "t2".into()), one);
        let two = record(&one, module("b"), vec![feature("count"), feature("sum")], "t3".into());
        assert_eq!(two.len(), 2);
        assert_eq!((two[1].since.as_str(), two[1].features.len()), ("t3", 2));
    }
}
