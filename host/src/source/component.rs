//! What a source says of itself, as a sink does through
//! [`sluice_sink_api::SinkComponent`]: through [`Component`], what is
//! wrong with its config, the files it names, the librdkafka properties
//! it passes through, what it checks of the world before a run; here,
//! whether it ends and how it opens. A new source is
//! its module, an impl of this trait and one variant of
//! [`super::SourceConfig`].

use std::sync::Arc;

pub use sluice_sink_api::Component;
use sluice_sink_api::Problem;

use super::{Result, Source};
use crate::checkpoint::Store;

/// Most records or lines one step holds: a step is held in memory at once.
pub const MAX_STEP: usize = 1 << 20;

/// A kind of source: [`Component`]'s questions, and these.
pub trait SourceComponent: Component {
    /// Whether a run ends by itself (a file, topics read to their end).
    fn bounded(&self) -> bool;

    /// How often read positions are committed; `None` for a source
    /// without offsets to commit.
    fn commit_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// The running source; `max_event_bytes` is the largest record it
    /// hands out whole, `checkpoints` where it finds its positions.
    fn open(&self, max_event_bytes: usize, checkpoints: Option<Arc<Store>>) -> Result<Box<dyn Source>>;
}

/// The problems of a step (records or lines per step) of `step`.
pub fn check_step(step: usize) -> Option<Problem> {
    if step == 0 {
        Some(Problem::new("step", "step must be at least 1", ""))
    } else if step > MAX_STEP {
        Some(Problem::new("step", format!("step must be at most {MAX_STEP}"), "a step is held in memory at once"))
    } else {
        None
    }
}
