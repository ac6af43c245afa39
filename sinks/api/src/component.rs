//! What a component (a sink here; the host's sources the same) says of
//! itself: which outputs it serves, what is wrong with its config, which
//! files and folders it names, what it checks of the world before a run,
//! and how it builds. The host keeps one registration list of sinks
//! (`host/src/sinks.rs`) and asks these questions through it; everything
//! else about a sink lives in its own crate, as a Vector sink's config
//! validates and builds its sink.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{Context, FeatureSchema, KeyType, Result, Sink};

/// One of a pipeline's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Feature rows.
    Features,
    /// Events and windows that could not be processed.
    DeadLetters,
    /// Events that came after their windows' allowed lateness.
    LateEvents,
}

impl Output {
    pub const ALL: [Output; 3] = [Output::Features, Output::DeadLetters, Output::LateEvents];

    /// Its field under a manifest's `outputs`.
    pub fn field(self) -> &'static str {
        match self {
            Output::Features => "features",
            Output::DeadLetters => "dead_letters",
            Output::LateEvents => "late_events",
        }
    }

    /// What it carries, in words.
    pub fn records(self) -> &'static str {
        match self {
            Output::Features => "feature rows",
            Output::DeadLetters => "dead letters",
            Output::LateEvents => "late events",
        }
    }
}

/// A problem with a component's config, or with the world it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field it is at, relative to the component's entry (`url`,
    /// `properties.ssl.ca.location`); empty for the entry as a whole.
    pub field: String,
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Problem {
        Problem { field: field.into(), message: message.into(), hint: hint.into() }
    }
}

/// How a component uses a file or folder it names: the host checks, before
/// a run, that it can (and that no two components write one file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A file it reads.
    ReadFile,
    /// A file it writes.
    WriteFile,
    /// A folder it writes files in (made when missing).
    WriteFolder,
}

impl Access {
    /// What to do when the check fails.
    pub fn hint(self) -> &'static str {
        match self {
            Access::ReadFile => "give the path of a file you can read",
            Access::WriteFile => "give a path in a folder you can write",
            Access::WriteFolder => "give a folder you can write",
        }
    }
}

/// A file or folder a component's config names.
#[derive(Debug)]
pub struct NamedPath<'a> {
    /// Its field, relative to the component's entry.
    pub field: &'static str,
    /// The path, which a host may rewrite (`sluice serve` resolves it in
    /// its data directory).
    pub path: &'a mut PathBuf,
    pub access: Access,
}

/// What a preflight is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Preflight<'a> {
    /// Also reach servers over the network.
    pub online: bool,
    /// Fields (relative to the component's entry) to leave alone: refused
    /// already (a file outside a host's files directory), or client
    /// properties a check must not hand to a client (one that loads code).
    pub skip: &'a [String],
}

impl Preflight<'_> {
    /// Whether `field` may be looked at.
    pub fn looks_at(&self, field: &str) -> bool {
        !self.skip.iter().any(|s| s == field)
    }
}

/// What every component (a source or a sink) says of its config: a
/// manifest entry's checks, files, client properties and preflight.
pub trait Component {
    /// Problems in the config alone.
    fn check(&self) -> Vec<Problem> {
        Vec::new()
    }

    /// The files and folders it names.
    fn paths(&mut self) -> Vec<NamedPath<'_>> {
        Vec::new()
    }

    /// The librdkafka properties it hands to a client as they are, if it
    /// takes any: the host refuses those that load code and confines the
    /// files they name.
    fn client_properties(&self) -> Option<&BTreeMap<String, String>> {
        None
    }

    /// [`Component::client_properties`], to rewrite.
    fn client_properties_mut(&mut self) -> Option<&mut BTreeMap<String, String>> {
        None
    }

    /// The environment variables it reads secrets from, each with its
    /// field: a host that takes manifests over HTTP refuses them (its
    /// environment is its own), as it confines the files of
    /// [`Component::paths`].
    fn environment(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Checks of the world before a run: that servers answer, topics
    /// exist. It may block (on the network, when `checks.online`). The
    /// files of [`Component::paths`] are the host's to check.
    fn preflight(&self, _checks: &Preflight<'_>) -> Vec<Problem> {
        Vec::new()
    }
}

/// A kind of sink: its config, as a manifest holds it under its `type`,
/// and all the host asks of it. The config's doc comment documents it
/// (for `sluice reference` and `GET /plugins`), its fields' doc comments
/// its fields.
#[async_trait::async_trait]
pub trait SinkComponent: Component + Send + Sync {
    /// The outputs it may be given.
    const SERVES: &'static [Output];

    /// Problems of its config as a sink of `output` (one of
    /// [`SinkComponent::SERVES`]): a setting only some outputs' records use.
    fn check_output(&self, _output: Output) -> Vec<Problem> {
        Vec::new()
    }

    /// Problems of its config with the features a module declares and the
    /// pipeline's key type (a typed destination that cannot hold them):
    /// `validate` asks it once it has the module, the sink's `build` too.
    fn check_features(&self, _features: &FeatureSchema, _key_type: KeyType) -> Vec<Problem> {
        Vec::new()
    }

    /// Where it stores what it is given, as settings a person knows it by
    /// (`topic`, `table`, `key`): what the feature registry lists. No
    /// secrets.
    fn location(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The running sink; `name` names it in errors.
    async fn build(&self, name: &str, context: &Context) -> Result<Box<dyn Sink>>;
}
