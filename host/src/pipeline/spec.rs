//! A pipeline as the runtime runs it: plain settings that a checked
//! manifest is lowered to (in `manifest/lower.rs`). Nothing here is parsed
//! or checked; the runtime takes a [`Spec`] and never sees the manifest.

use std::path::PathBuf;
use std::time::Duration;

use crate::checkpoint::{CheckpointConfig, Layout};
use crate::decode::{self, FieldType};
use crate::sinks::OutputsConfig;
use crate::source::SourceConfig;
use crate::state::StateConfig;
use crate::wasm;
use crate::window::{self, Mode};

/// Everything a pipeline runs by.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub source: SourceConfig,
    /// What an event must look like: key, event time and the declared
    /// fields.
    pub schema: decode::Schema,
    /// Longest event in bytes: a longer one is a dead letter.
    pub max_event_bytes: usize,
    /// How far behind the newest event time a partition's watermark stays,
    /// ms.
    pub out_of_orderness_ms: i64,
    /// A partition silent this long no longer holds the watermark back.
    pub idle_timeout: Option<Duration>,
    pub window: window::Spec,
    pub transform: TransformSpec,
    pub outputs: OutputsConfig,
    /// Worker threads, at least one.
    pub parallelism: usize,
    pub checkpoint: Option<CheckpointConfig>,
    pub state: StateConfig,
}

/// The transform module and what its calls may take.
#[derive(Debug, Clone)]
pub struct TransformSpec {
    pub module: PathBuf,
    pub kind: wasm::Kind,
    pub limits: wasm::Limits,
    /// What one call may carry.
    pub bounds: window::Bounds,
    /// Longest a fired window waits to share a call with others.
    pub max_delay: Duration,
}

impl TransformSpec {
    /// How the window operator keeps state for this kind of transform.
    pub fn mode(&self) -> Mode {
        match self.kind {
            wasm::Kind::Window => Mode::Window,
            wasm::Kind::Aggregate => Mode::Aggregate,
        }
    }
}

impl Spec {
    /// The declared fields, as the window operator and the transform see
    /// them.
    pub fn fields(&self) -> Vec<(String, FieldType)> {
        self.schema.fields.iter().map(|f| (f.name.clone(), f.ty)).collect()
    }

    /// What its checkpoints' state depends on.
    pub fn layout(&self) -> Layout {
        Layout::new(self.schema.key.name(), self.window.kind, self.fields(), self.transform.kind)
    }
}
