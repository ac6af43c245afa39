//! Keyed event-time windows: tumbling, sliding (from slices) and session,
//! with close, per-event and late-update triggers.

pub mod batch;
mod grid;
mod operator;

pub use batch::{Batch, BatchBuilder, Bounds, Column, ColumnData, Fired, Fold, SliceRef};
pub use grid::Grid;
pub use operator::{Mode, Operator, Snapshot, Stats};

/// The window shape, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tumbling { size: i64 },
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

/// When a window's result is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// When the watermark passes the window's end.
    Close,
    /// At every event, for the window holding it that closes next.
    Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    pub trigger: TriggerMode,
    /// How long after close an event may still update a window, ms.
    pub allowed_lateness: i64,
    /// Keys with no event for this long (event time) are dropped, ms.
    pub state_ttl: i64,
}
