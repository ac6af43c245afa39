//! Checks of a Kafka client's config and of the cluster before a run, for
//! the Kafka sink and the host's Kafka source alike: the librdkafka
//! properties librdkafka refuses, brokers that do not answer, topics that
//! do not exist. Fields are relative to the component's entry
//! (`properties.linger.ms`, `brokers`, `topic`).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, Producer};
use sluice_sink_api::{Preflight, Problem};

/// How long the brokers may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A Kafka client's whole preflight: the properties librdkafka refuses,
/// and (online) brokers that answer and `topics` (each with its field)
/// that exist.
pub fn check(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    client: Client,
    topics: &[(String, &str)],
    checks: &Preflight<'_>,
) -> Vec<Problem> {
    let config = client_config(brokers, properties, checks);
    let mut found = bad_properties(&config);
    if checks.online {
        found.extend(topics_exist(&config, client, brokers, topics));
    }
    found
}

/// The client a check makes: `brokers` and the properties but those the
/// check is to leave alone (refused already, or loading code: see
/// [`Preflight::skip`]), each at `properties.{key}`.
fn client_config(brokers: &str, properties: &BTreeMap<String, String>, checks: &Preflight<'_>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in properties {
        if checks.looks_at(&format!("properties.{key}")) {
            config.set(key, value);
        }
    }
    config
}

/// The properties librdkafka refuses, each at its own field: unknown
/// names and values it cannot take.
fn bad_properties(config: &ClientConfig) -> Vec<Problem> {
    let mut config = config.clone();
    let mut found = Vec::new();
    // librdkafka names the first bad property: leave it out and ask again.
    for _ in 0..64 {
        match config.create_native_config() {
            Err(KafkaError::ClientConfig(_, description, key, _)) => {
                found.push(Problem::new(
                    format!("properties.{key}"),
                    format!("librdkafka refuses `{key}`: {description}"),
                    "see librdkafka's CONFIGURATION.md for the properties and their values",
                ));
                config.remove(&key);
            }
            _ => break,
        }
    }
    found
}

/// Which client asks: the properties are a consumer's or a producer's.
#[derive(Debug, Clone, Copy)]
pub enum Client {
    Consumer,
    Producer,
}

/// Whether the brokers answer (else a problem at `brokers`) and every
/// topic exists (else a problem at its field). Asks for every topic's
/// metadata rather than the named ones: asking by name can create a topic
/// on a broker that creates topics on first use.
fn topics_exist(config: &ClientConfig, client: Client, brokers: &str, topics: &[(String, &str)]) -> Vec<Problem> {
    let metadata = match client {
        Client::Consumer => config.create::<BaseConsumer>().and_then(|c| c.fetch_metadata(None, TIMEOUT)),
        Client::Producer => config.create::<BaseProducer>().and_then(|p| p.client().fetch_metadata(None, TIMEOUT)),
    };
    let metadata: Metadata = match metadata {
        Ok(m) => m,
        Err(e) => {
            return vec![Problem::new(
                "brokers",
                format!("cannot reach the brokers at `{brokers}`: {e}"),
                "check that the brokers run and that the address and security properties are right",
            )];
        }
    };
    topics
        .iter()
        // A pattern subscription (`^clicks-.*`) names no single topic.
        .filter(|(_, topic)| !topic.starts_with('^'))
        .filter(|(_, topic)| !metadata.topics().iter().any(|t| t.name() == *topic && t.error().is_none()))
        .map(|(field, topic)| {
            Problem::new(
                field.clone(),
                format!("topic `{topic}` does not exist on `{brokers}`"),
                "create it first (sluice-gen --kafka creates topics), or check the name",
            )
        })
        .collect()
}
