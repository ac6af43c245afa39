//! The sinks this host has: one registration line each. Everything else
//! about a sink (its config and docs, the outputs it serves, its checks,
//! the files it names, how it builds) is in its crate, behind
//! [`SinkComponent`]; the line makes it a manifest `type`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{
    Component, Context, FeatureSchema, KeyType, NamedPath, Output, Preflight, Problem, Result, Sink, SinkComponent,
};

/// The registration list: `"type" => Variant(config type)`.
macro_rules! sinks {
    ($($tag:literal => $kind:ident($config:ty)),+ $(,)?) => {
        /// A sink, chosen by `type`.
        #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
        #[serde(tag = "type")]
        pub enum SinkConfig {
            $(#[serde(rename = $tag)] $kind($config),)+
        }

        impl SinkConfig {
            /// Each kind of sink: its `type` and the outputs it serves.
            pub const KINDS: &'static [(&'static str, &'static [Output])] =
                &[$(($tag, <$config as SinkComponent>::SERVES)),+];

            /// Its `type`.
            pub fn kind(&self) -> &'static str {
                match self { $(SinkConfig::$kind(_) => $tag,)+ }
            }

            /// The outputs it serves.
            pub fn serves(&self) -> &'static [Output] {
                match self { $(SinkConfig::$kind(_) => <$config as SinkComponent>::SERVES,)+ }
            }

            /// Problems in its config alone.
            pub fn check(&self) -> Vec<Problem> {
                match self { $(SinkConfig::$kind(c) => c.check(),)+ }
            }

            /// Problems of its config as a sink of `output`.
            pub fn check_output(&self, output: Output) -> Vec<Problem> {
                match self { $(SinkConfig::$kind(c) => c.check_output(output),)+ }
            }

            /// Problems of its config with a module's declared features.
            pub fn check_features(&self, features: &FeatureSchema, key_type: KeyType) -> Vec<Problem> {
                match self { $(SinkConfig::$kind(c) => c.check_features(features, key_type),)+ }
            }

            /// Where it stores what it is given.
            pub fn location(&self) -> Vec<(&'static str, String)> {
                match self { $(SinkConfig::$kind(c) => c.location(),)+ }
            }

            /// The files and folders it names.
            pub fn paths(&mut self) -> Vec<NamedPath<'_>> {
                match self { $(SinkConfig::$kind(c) => c.paths(),)+ }
            }

            /// The environment variables it reads secrets from, with their fields.
            pub fn environment(&self) -> Vec<(String, String)> {
                match self { $(SinkConfig::$kind(c) => c.environment(),)+ }
            }

            /// The librdkafka properties it passes through, if any.
            pub fn client_properties(&self) -> Option<&BTreeMap<String, String>> {
                match self { $(SinkConfig::$kind(c) => c.client_properties(),)+ }
            }

            /// [`SinkConfig::client_properties`], to rewrite.
            pub fn client_properties_mut(&mut self) -> Option<&mut BTreeMap<String, String>> {
                match self { $(SinkConfig::$kind(c) => c.client_properties_mut(),)+ }
            }

            /// Its checks of the world before a run (blocking).
            pub fn preflight(&self, checks: &Preflight<'_>) -> Vec<Problem> {
                match self { $(SinkConfig::$kind(c) => c.preflight(checks),)+ }
            }

            /// The running sink; `name` names it in errors.
            pub async fn build(&self, name: &str, context: &Context) -> Result<Box<dyn Sink>> {
                match self { $(SinkConfig::$kind(c) => c.build(name, context).await,)+ }
            }
        }
    };
}

sinks! {
    "file" => File(sluice_sink_file::FileSinkConfig),
    "redis" => Redis(sluice_sink_redis::RedisSinkConfig),
    "kafka" => Kafka(sluice_sink_kafka::KafkaSinkConfig),
    "iceberg" => Iceberg(sluice_sink_iceberg::IcebergSinkConfig),
    "blackhole" => Blackhole(sluice_sink_blackhole::BlackholeSinkConfig),
}

impl SinkConfig {
    /// The kinds of sink that serve `output`.
    pub fn serving(output: Output) -> impl Iterator<Item = &'static str> {
        SinkConfig::KINDS.iter().filter(move |(_, serves)| serves.contains(&output)).map(|(kind, _)| *kind)
    }

    /// The schema of an output's list: [`SinkConfig`]'s, with only the
    /// kinds that serve it (what `sluice reference` lists under it).
    fn schema_serving(generator: &mut schemars::SchemaGenerator, output: Output) -> schemars::Schema {
        use serde_json::Value;
        let mut sink = SinkConfig::json_schema(generator);
        let serving: Vec<&str> = SinkConfig::serving(output).collect();
        let definitions = generator.definitions().clone();
        if let Some(Value::Array(variants)) = sink.get_mut("oneOf") {
            variants.retain(|variant| {
                let reference = variant.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next());
                let variant = reference.and_then(|name| definitions.get(name)).unwrap_or(variant);
                let tag = variant.pointer("/properties/type/const").and_then(Value::as_str);
                tag.is_none_or(|tag| serving.contains(&tag))
            });
        }
        schemars::json_schema!({ "type": "array", "items": sink })
    }
}

/// Where results go. Each output takes any number of sinks; all of them
/// receive every record (dual write).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputsConfig {
    /// Feature rows.
    #[schemars(schema_with = "features_schema")]
    pub features: Vec<SinkConfig>,
    /// Events and windows that could not be processed, with the reason.
    #[schemars(schema_with = "dead_letters_schema")]
    pub dead_letters: Vec<SinkConfig>,
    /// Events that arrived after their windows' allowed lateness.
    #[schemars(schema_with = "late_events_schema")]
    pub late_events: Vec<SinkConfig>,
}

fn features_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    SinkConfig::schema_serving(generator, Output::Features)
}

fn dead_letters_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    SinkConfig::schema_serving(generator, Output::DeadLetters)
}

fn late_events_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    SinkConfig::schema_serving(generator, Output::LateEvents)
}

impl OutputsConfig {
    /// Each output with its sinks.
    pub fn all(&self) -> [(Output, &[SinkConfig]); 3] {
        [
            (Output::Features, &self.features),
            (Output::DeadLetters, &self.dead_letters),
            (Output::LateEvents, &self.late_events),
        ]
    }

    pub(crate) fn all_mut(&mut self) -> [(Output, &mut [SinkConfig]); 3] {
        [
            (Output::Features, &mut self.features),
            (Output::DeadLetters, &mut self.dead_letters),
            (Output::LateEvents, &mut self.late_events),
        ]
    }

    /// Every sink with its place in the manifest (`outputs.features[1]`).
    pub fn entries(&self) -> impl Iterator<Item = (String, Output, &SinkConfig)> {
        self.all().into_iter().flat_map(|(output, sinks)| {
            sinks.iter().enumerate().map(move |(i, sink)| (format!("outputs.{}[{i}]", output.field()), output, sink))
        })
    }

    /// [`OutputsConfig::entries`], to rewrite.
    pub fn entries_mut(&mut self) -> impl Iterator<Item = (String, &mut SinkConfig)> {
        self.all_mut().into_iter().flat_map(|(output, sinks)| {
            sinks.iter_mut().enumerate().map(move |(i, sink)| (format!("outputs.{}[{i}]", output.field()), sink))
        })
    }
}
