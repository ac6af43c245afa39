//! A manifest checked against the world before it runs: the files it reads
//! and writes, the librdkafka properties it passes through, the brokers,
//! topics and Redis servers it talks to. `sluice validate` reports what
//! `sluice run` would stop on, in the same words and at the same line.
//!
//! The checks that need a network (reaching a broker or Redis, a topic
//! existing) run when `online`; the rest look only at the manifest and the
//! local filesystem, and change nothing in either.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, Producer};

use crate::files::{Identity, identity};
use crate::manifest::{Finding, Manifest};
use crate::sinks::SinkConfig;
use crate::source::SourceConfig;

/// How long a broker or Redis server may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What a check is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Also reach the brokers and Redis servers.
    pub online: bool,
    /// The run starts over, so checkpoints of another pipeline are no
    /// problem.
    pub fresh: bool,
    /// Fields refused already (a path outside a host's files directory, a
    /// module not registered): what they name is not looked at.
    pub refused: Vec<String>,
}

impl Checks {
    fn looks_at(&self, at: &str) -> bool {
        !self.refused.iter().any(|r| r == at)
    }
}

/// [`check`], and the manifest's module compiled on `engine` (`None` when
/// it cannot be: a finding at `transform.module` says why, unless that
/// field was refused already).
pub fn check_with_module(
    manifest: &Manifest,
    engine: &crate::wasm::Engine,
    checks: &Checks,
) -> (Option<crate::wasm::Module>, Vec<Finding>) {
    let mut findings = check(manifest, checks);
    if !checks.looks_at("transform.module") {
        return (None, findings);
    }
    let module = match crate::pipeline::load_module(&manifest.lower().transform, engine) {
        Ok(module) => Some(module),
        Err(e) => {
            let hint = match &e {
                crate::pipeline::Error::Module(m) => m.hint(),
                _ => "see the message above",
            };
            findings.push(("transform.module".into(), e.to_string(), Some(hint.into())));
            None
        }
    };
    (module, findings)
}

/// Every problem found; none means the pipeline can start.
pub fn check(manifest: &Manifest, checks: &Checks) -> Vec<Finding> {
    let (online, fresh) = (checks.online, checks.fresh);
    let mut found = Vec::new();
    let mut files: Vec<(String, Identity)> = Vec::new();
    match &manifest.source {
        SourceConfig::File { .. } if !checks.looks_at("source.path") => {}
        SourceConfig::File { path, .. } => {
            if let Some(problem) = readable(path) {
                found.push(("source.path".into(), problem, Some("give the path of a JSON-lines file".into())));
            }
            files.push(("source.path".into(), identity(path)));
        }
        SourceConfig::Kafka(k) => {
            let config = client_config(&k.brokers, &k.properties, "source.properties", checks);
            found.extend(bad_properties(&config, "source.properties"));
            if online {
                let topics: Vec<(String, &str)> =
                    k.topics.iter().enumerate().map(|(i, t)| (format!("source.topics[{i}]"), t.as_str())).collect();
                found.extend(topics_exist(&config, Client::Consumer, "source.brokers", &k.brokers, &topics));
            }
        }
    }
    for (output, sinks) in manifest.outputs.all() {
        for (i, sink) in sinks.iter().enumerate() {
            let at = format!("outputs.{output}[{i}]");
            match sink {
                SinkConfig::File(_) if !checks.looks_at(&format!("{at}.path")) => {}
                SinkConfig::File(f) => {
                    let path_at = format!("{at}.path");
                    if let Some(problem) = writable(&f.path) {
                        found.push((path_at.clone(), problem, Some("give a path in a folder you can write".into())));
                    }
                    let id = identity(&f.path);
                    if let Some((other, _)) = files.iter().find(|(_, seen)| *seen == id) {
                        let (message, hint) = if other == "source.path" {
                            (
                                format!(
                                    "`{}` is the source file: writing it would destroy the input",
                                    f.path.display()
                                ),
                                "write outputs to other files than the one read",
                            )
                        } else {
                            (
                                format!("`{}` is also written by `{other}`: their lines would mix", f.path.display()),
                                "give each output its own file",
                            )
                        };
                        found.push((path_at.clone(), message, Some(hint.into())));
                    }
                    files.push((path_at, id));
                }
                SinkConfig::Redis(r) => found.extend(redis(&r.url, &format!("{at}.url"), online)),
                SinkConfig::Iceberg(_) if !checks.looks_at(&format!("{at}.warehouse")) => {}
                SinkConfig::Iceberg(i) => {
                    if let Some(problem) = writable_dir(&i.warehouse) {
                        found.push((format!("{at}.warehouse"), problem, Some("give a folder you can write".into())));
                    }
                }
                SinkConfig::Kafka(k) => {
                    let config = client_config(&k.brokers, &k.properties, &format!("{at}.properties"), checks);
                    found.extend(bad_properties(&config, &format!("{at}.properties")));
                    if online {
                        let topic = [(format!("{at}.topic"), k.topic.as_str())];
                        let brokers_at = format!("{at}.brokers");
                        found.extend(topics_exist(&config, Client::Producer, &brokers_at, &k.brokers, &topic));
                    }
                }
            }
        }
    }
    if let Some(path) = &manifest.state.path
        && checks.looks_at("state.path")
        && let Some(problem) = writable_dir(path)
    {
        found.push(("state.path".into(), problem, Some("give a folder on a local disk you can write".into())));
    }
    if let Some(c) = &manifest.checkpoint
        && checks.looks_at("checkpoint.dir")
    {
        if let Some(problem) = writable_dir(&c.dir) {
            found.push(("checkpoint.dir".into(), problem, Some("give a folder you can write".into())));
        }
        let listed = if fresh { Vec::new() } else { crate::checkpoint::list(&c.dir).unwrap_or_default() };
        let layout = manifest.lower().layout();
        if let Some((l, mismatch)) = crate::checkpoint::refused(&listed, &manifest.name, &layout).next() {
            found.push((
                "checkpoint.dir".into(),
                format!(
                    "{} was written by an incompatible pipeline: it has {}, the manifest has {}",
                    l.path.display(),
                    mismatch.found,
                    mismatch.expected
                ),
                Some("run with --fresh to start over (the old checkpoints are moved aside)".into()),
            ));
        }
    }
    found
}

/// Why files could not be written in `dir`, if they could not.
/// Creates nothing: an existing folder gets an unnamed temporary file, a
/// new one's nearest existing parent too.
fn writable_dir(dir: &Path) -> Option<String> {
    let shown = dir.display();
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let folder = absolute.ancestors().find(|a| a.exists())?;
    if !folder.is_dir() {
        return Some(format!("cannot create `{shown}`: `{}` is not a folder", folder.display()));
    }
    tempfile::tempfile_in(folder).err().map(|e| format!("cannot write in `{}`: {e}", folder.display()))
}

/// Why `path` cannot be read as a source, if it cannot.
fn readable(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) => Some(format!("cannot read `{}`: {e}", path.display())),
        Ok(m) if !m.is_file() => Some(format!("`{}` is not a regular file", path.display())),
        Ok(_) => std::fs::File::open(path).err().map(|e| format!("cannot read `{}`: {e}", path.display())),
    }
}

/// Why a file sink could not write `path`, if it could not. Creates
/// nothing: an existing file is opened to append (and left as it is), a
/// new one's nearest existing folder gets an unnamed temporary file.
fn writable(path: &Path) -> Option<String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Some("the path is empty".into());
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            return Some(format!("`{shown}` is a folder"));
        }
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .err()
            .map(|e| format!("cannot write `{shown}`: {e}"));
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let folder = absolute.ancestors().skip(1).find(|a| a.exists())?;
    if !folder.is_dir() {
        return Some(format!("cannot create `{shown}`: `{}` is not a folder", folder.display()));
    }
    tempfile::tempfile_in(folder).err().map(|e| format!("cannot create `{shown}` in `{}`: {e}", folder.display()))
}

/// The client the checks make (the properties at `at`): the manifest's
/// properties but those that load code or run a command
/// ([`crate::librdkafka::loads_code`]), which librdkafka would act on as
/// the client is created, and those refused already (a file outside a
/// host's files directory). A check loads and runs nothing.
fn client_config(brokers: &str, properties: &BTreeMap<String, String>, at: &str, checks: &Checks) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        if crate::librdkafka::loads_code(k).is_none() && checks.looks_at(&format!("{at}.{k}")) {
            config.set(k, v);
        }
    }
    config
}

/// The librdkafka properties it refuses, each at its own path: unknown
/// names and values it cannot take.
fn bad_properties(config: &ClientConfig, at: &str) -> Vec<Finding> {
    let mut config = config.clone();
    let mut found = Vec::new();
    // librdkafka names the first bad property: leave it out and ask again.
    for _ in 0..64 {
        match config.create_native_config() {
            Err(KafkaError::ClientConfig(_, description, key, _)) => {
                found.push((
                    format!("{at}.{key}"),
                    format!("librdkafka refuses `{key}`: {description}"),
                    Some("see librdkafka's CONFIGURATION.md for the properties and their values".into()),
                ));
                config.remove(&key);
            }
            _ => break,
        }
    }
    found
}

/// Which client asks: the properties are a consumer's or a producer's.
#[derive(Clone, Copy)]
enum Client {
    Consumer,
    Producer,
}

/// Whether the brokers answer and every topic exists. Asks for every
/// topic's metadata rather than the named ones: asking by name can create
/// a topic on a broker that creates topics on first use.
fn topics_exist(
    config: &ClientConfig,
    client: Client,
    brokers_at: &str,
    brokers: &str,
    topics: &[(String, &str)],
) -> Vec<Finding> {
    let metadata = match client {
        Client::Consumer => config.create::<BaseConsumer>().and_then(|c| c.fetch_metadata(None, TIMEOUT)),
        Client::Producer => config.create::<BaseProducer>().and_then(|p| p.client().fetch_metadata(None, TIMEOUT)),
    };
    let metadata: Metadata = match metadata {
        Ok(m) => m,
        Err(e) => {
            return vec![(
                brokers_at.to_string(),
                format!("cannot reach the brokers at `{brokers}`: {e}"),
                Some("check that the brokers run and that the address and security properties are right".into()),
            )];
        }
    };
    topics
        .iter()
        // A pattern subscription (`^clicks-.*`) names no single topic.
        .filter(|(_, topic)| !topic.starts_with('^'))
        .filter(|(_, topic)| !metadata.topics().iter().any(|t| t.name() == *topic && t.error().is_none()))
        .map(|(at, topic)| {
            (
                at.clone(),
                format!("topic `{topic}` does not exist on `{brokers}`"),
                Some("create it first (sluice-gen --kafka creates topics), or check the name".into()),
            )
        })
        .collect()
}

/// A Redis URL that parses, and (online) a server that answers PING.
fn redis(url: &str, at: &str, online: bool) -> Vec<Finding> {
    let hint = |h: &str| Some(h.to_string());
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => {
            return vec![(
                at.to_string(),
                format!("`{url}` is not a Redis URL: {e}"),
                hint("write redis://[user:password@]host[:port][/db], or rediss:// for TLS"),
            )];
        }
    };
    if !online {
        return Vec::new();
    }
    let pong = client.get_connection_with_timeout(TIMEOUT).and_then(|mut c| {
        c.set_read_timeout(Some(TIMEOUT))?;
        redis::cmd("PING").query::<String>(&mut c)
    });
    match pong {
        Ok(_) => Vec::new(),
        Err(e) => vec![(
            at.to_string(),
            format!("Redis at `{url}` does not answer: {e}"),
            hint("check that Redis runs there and that the password and database are right"),
        )],
    }
}
