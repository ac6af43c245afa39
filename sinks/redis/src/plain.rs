//! `layout: plain`: one hash per entity key for a model server to read
//! with one `HGETALL` (seed 000's layout: `user:{key}:session_features`).
//!
//! For every row, `HSET` of all its features plus `window_start`,
//! `window_end`, `event_time`, `trigger` and `computed_at` (each after the
//! sink's `metadata_prefix`: pipelines sharing a hash keep their own), then
//! `EXPIRE` with the TTL. Lists are stored as JSON arrays, numbers as decimal text,
//! strings as they are, null as `null` (also for a declared feature a row
//! leaves out, so an older row's value does not stay).
//!
//! A hash keeps the newest window, as an online store should (Feast keeps
//! the newest event timestamp the same way): a late update of an older
//! window, or an on-event row for an out-of-order event, would otherwise
//! replace a newer window's features until the entity's next row, which
//! for an idle entity never comes. Those rows go through a script that
//! writes only when the hash holds no later `window_end` (the pipeline's
//! own, under its prefix). Rows fired on
//! close arrive in window order and are written directly: the script costs
//! Redis about twice a plain `HSET`.

use std::sync::Arc;

use sluice_sink_api::{FeatureRow, FeatureSchema, FeatureValue, Trigger};

/// `KEYS[1]`: the hash; `ARGV`: the row's `window_end`, the TTL in seconds
/// (0: none), the `window_end` field's name, then field, value, field,
/// value… Writes unless the hash holds a later window (an equal one is a
/// correction, and is written).
const WRITE_UNLESS_NEWER: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[3]))
if stored and stored > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[2] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
";

/// The fields a row writes besides its features, named with the sink's
/// `metadata_prefix`.
#[derive(Debug)]
struct Metadata {
    window_start: String,
    window_end: String,
    event_time: String,
    trigger: String,
    computed_at: String,
}

/// Plain hashes under a key template.
#[derive(Debug)]
pub struct PlainLayout {
    template: String,
    metadata: Metadata,
    /// The declared features, each written for every row.
    declared: Vec<Arc<str>>,
    script: redis::Script,
}

/// The text stored for a feature value.
pub fn field_text(value: &FeatureValue) -> String {
    match value {
        FeatureValue::Str(s) => s.clone(),
        other => {
            let mut json = Vec::new();
            other.write_json(&mut json);
            // JSON text from strings and numbers is UTF-8.
            String::from_utf8(json).unwrap_or_default()
        }
    }
}

impl PlainLayout {
    /// Hashes keyed by `template` for rows of `schema`, the fields besides
    /// the features named after `metadata_prefix`.
    pub fn new(template: &str, metadata_prefix: &str, schema: &FeatureSchema) -> PlainLayout {
        let name = |field: &str| format!("{metadata_prefix}{field}");
        PlainLayout {
            template: template.to_string(),
            metadata: Metadata {
                window_start: name("window_start"),
                window_end: name("window_end"),
                event_time: name("event_time"),
                trigger: name("trigger"),
                computed_at: name("computed_at"),
            },
            declared: schema.specs().iter().map(|spec| spec.name.clone()).collect(),
            script: redis::Script::new(WRITE_UNLESS_NEWER),
        }
    }

    /// The field-value pairs of a row's hash.
    pub fn fields(&self, row: &FeatureRow) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            row.features.0.iter().map(|(k, v)| (k.to_string(), field_text(v))).collect();
        for name in &self.declared {
            if row.features.get(name).is_none() {
                out.push((name.to_string(), "null".into()));
            }
        }
        let m = &self.metadata;
        out.push((m.window_start.clone(), row.window_start.to_string()));
        out.push((m.window_end.clone(), row.window_end.to_string()));
        out.push((m.event_time.clone(), row.event_time.to_string()));
        out.push((
            m.trigger.clone(),
            serde_json::to_value(row.trigger).ok().and_then(|t| t.as_str().map(str::to_string)).unwrap_or_default(),
        ));
        out.push((m.computed_at.clone(), row.computed_at.to_string()));
        out
    }

    /// The hash key of an entity (a key without window bounds).
    pub fn entity_key(&self, entity: &sluice_sink_api::EntityKey) -> String {
        self.template.replace("{key}", &entity.text())
    }

    /// The hash key of a row.
    pub fn key(&self, row: &FeatureRow) -> String {
        let template = &self.template;
        // Window bounds first, so an entity key that happens to contain
        // `{window_start}` stays as it is.
        if !template.contains("{window_") {
            return template.replace("{key}", &row.key.text());
        }
        template
            .replace("{window_start}", &row.window_start.to_string())
            .replace("{window_end}", &row.window_end.to_string())
            .replace("{key}", &row.key.text())
    }

    /// Whether each entity has one hash (the key has no window bounds), so
    /// that its newest row can be read.
    pub fn one_hash_per_entity(&self) -> bool {
        !self.template.contains("{window_")
    }

    /// What `hash` (an entity's, as [`PlainLayout::fields`] wrote it) holds:
    /// the declared features, typed (a stored `null` is null, also for a
    /// string feature), and when they held (the window's end, or the
    /// event's time for a row fired per event, as the Feast layout's
    /// `_ts`).
    pub fn read(&self, hash: &std::collections::HashMap<String, String>, schema: &FeatureSchema) -> crate::Stored {
        use serde_json::Value;
        let features = schema
            .specs()
            .iter()
            .map(|spec| {
                let value = match hash.get(&*spec.name).map(String::as_str) {
                    None | Some("null") => Value::Null,
                    Some(text) if spec.ty == sluice_sink_api::FeatureType::Str => Value::String(text.to_string()),
                    Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
                };
                (spec.name.to_string(), value)
            })
            .collect();
        let number = |field: &str| hash.get(field).and_then(|v| v.parse::<i64>().ok());
        let m = &self.metadata;
        let time = match hash.get(&m.trigger).map(String::as_str) {
            Some("event") => number(&m.event_time),
            _ => number(&m.window_end),
        };
        crate::Stored { time, features }
    }

    /// Queue the writes of `rows` on `pipe`.
    pub fn queue(&self, pipe: &mut redis::Pipeline, rows: &[FeatureRow], ttl_seconds: u64) {
        if rows.iter().any(|r| r.trigger != Trigger::Close) {
            // Cheap when loaded already, and Redis forgets scripts when it
            // restarts.
            pipe.load_script(&self.script).ignore();
        }
        for row in rows {
            let key = self.key(row);
            let fields = self.fields(row);
            if row.trigger == Trigger::Close {
                pipe.hset_multiple(&key, &fields).ignore();
                if ttl_seconds > 0 {
                    pipe.expire(&key, ttl_seconds as i64).ignore();
                }
            } else {
                let mut write = self.script.key(&key);
                write.arg(row.window_end).arg(ttl_seconds).arg(&self.metadata.window_end);
                for (field, value) in &fields {
                    write.arg(field).arg(value);
                }
                pipe.invoke_script(&write).ignore();
            }
        }
    }
}
