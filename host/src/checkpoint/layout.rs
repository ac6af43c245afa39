//! What a checkpoint's state depends on, and the one rule for whether a
//! pipeline can restore a checkpoint: the key, the window's shape, the
//! declared fields and the kind of transform must be the same. Anything
//! else (sinks, limits, lateness, the module's version) may change
//! between runs.
//!
//! A checkpoint's header carries its [`Layout`]. Headers written before
//! layouts were versioned carry only a fingerprint, the layout's text
//! ([`Layout`]'s `Display`); they are compared by that text.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decode::FieldType;

/// The version of what [`Layout`] compares. Bump it when a change of the
/// state's encoding makes an older layout's state unreadable although its
/// fields are equal; a checkpoint of a newer version than this host's is
/// never restored.
pub const LAYOUT_VERSION: u32 = 1;

/// The shape of the state a pipeline keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub version: u32,
    /// Where the key comes from: the event field holding it, or `(the
    /// Kafka key)`.
    pub key: String,
    pub window: Shape,
    /// The declared fields, in order, with their types.
    pub fields: Vec<(String, FieldType)>,
    pub transform: TransformKind,
}

/// A window's shape, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Shape {
    Tumbling { size_ms: i64 },
    Sliding { size_ms: i64, slide_ms: i64 },
    Session { gap_ms: i64 },
}

impl From<crate::window::Kind> for Shape {
    fn from(kind: crate::window::Kind) -> Shape {
        match kind {
            crate::window::Kind::Tumbling { size } => Shape::Tumbling { size_ms: size },
            crate::window::Kind::Sliding { size, slide } => Shape::Sliding { size_ms: size, slide_ms: slide },
            crate::window::Kind::Session { gap } => Shape::Session { gap_ms: gap },
        }
    }
}

/// The kind of transform: window transforms keep events, aggregates keep
/// accumulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransformKind {
    Window,
    Aggregate,
}

impl From<crate::wasm::Kind> for TransformKind {
    fn from(kind: crate::wasm::Kind) -> TransformKind {
        match kind {
            crate::wasm::Kind::Window => TransformKind::Window,
            crate::wasm::Kind::Aggregate => TransformKind::Aggregate,
        }
    }
}

/// Why a checkpoint cannot be restored: what it has, and what the
/// pipeline has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub found: String,
    pub expected: String,
}

impl Layout {
    pub fn new(
        key: &str,
        window: crate::window::Kind,
        fields: Vec<(String, FieldType)>,
        transform: crate::wasm::Kind,
    ) -> Layout {
        Layout {
            version: LAYOUT_VERSION,
            key: key.to_string(),
            window: window.into(),
            fields,
            transform: transform.into(),
        }
    }

    /// Whether state written under `found` (a checkpoint header's layout,
    /// or the fingerprint of an older header) can be restored under this
    /// layout: the one rule, for restores, `validate` and `inspect`.
    pub fn admits(&self, found: Option<&Layout>, fingerprint: &str) -> Result<(), Mismatch> {
        let mismatch = |found: String| Err(Mismatch { found, expected: self.to_string() });
        match found {
            Some(layout) if layout.version > LAYOUT_VERSION => mismatch(format!(
                "{layout} (layout version {}; this host reads up to {LAYOUT_VERSION})",
                layout.version
            )),
            Some(layout) if !self.same_state(layout) => mismatch(layout.to_string()),
            Some(_) => Ok(()),
            None if fingerprint != self.to_string() => mismatch(fingerprint.to_string()),
            None => Ok(()),
        }
    }

    /// Everything but the version: layouts of older versions whose fields
    /// are equal hold the same state.
    fn same_state(&self, other: &Layout) -> bool {
        (&self.key, self.window, &self.fields, self.transform)
            == (&other.key, other.window, &other.fields, other.transform)
    }
}

/// The fingerprint: `key user_id, sliding window size 30m slide 1m, fields
/// [item_id: string], window transform`. Headers before versioned
/// layouts hold only this text, so it must not change.
impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span = |ms: i64| sluice_sink_api::Duration::from_millis(ms.max(0) as u64);
        let (kind, shape) = match self.window {
            Shape::Tumbling { size_ms } => ("tumbling", format!(" size {}", span(size_ms))),
            Shape::Sliding { size_ms, slide_ms } => {
                ("sliding", format!(" size {} slide {}", span(size_ms), span(slide_ms)))
            }
            Shape::Session { gap_ms } => ("session", format!(" gap {}", span(gap_ms))),
        };
        let type_name = |t: &FieldType| format!("{t:?}").to_lowercase();
        let fields: Vec<String> = self.fields.iter().map(|(name, ty)| format!("{name}: {}", type_name(ty))).collect();
        let transform = match self.transform {
            TransformKind::Window => "window",
            TransformKind::Aggregate => "aggregate",
        };
        write!(f, "key {}, {kind} window{shape}, fields [{}], {transform} transform", self.key, fields.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Kind;

    fn sliding(size: i64) -> Layout {
        let fields = vec![("item_id".to_string(), FieldType::String), ("amount".to_string(), FieldType::Float)];
        Layout::new("user_id", Kind::Sliding { size, slide: 60_000 }, fields, crate::wasm::Kind::Window)
    }

    /// The text older headers hold, written out by hand: a layout must
    /// read as exactly that to restore their checkpoints.
    #[test]
    fn the_fingerprint_reads_as_older_headers_wrote_it() {
        let want = "key user_id, sliding window size 30m slide 1m, fields [item_id: string, amount: float], window \
                    transform";
        assert_eq!(sliding(1_800_000).to_string(), want);
        assert_eq!(sliding(1_800_000).admits(None, want), Ok(()));
        let session = Layout::new("u", Kind::Session { gap: 5_400_000 }, Vec::new(), crate::wasm::Kind::Aggregate);
        assert_eq!(session.to_string(), "key u, session window gap 1h 30m, fields [], aggregate transform");
    }

    #[test]
    fn another_key_window_field_or_kind_is_refused_and_said_how() {
        let ours = sliding(1_800_000);
        assert_eq!(ours.admits(Some(&ours.clone()), ""), Ok(()));
        let wider = sliding(2_700_000);
        let refused = ours.admits(Some(&wider), "");
        assert_eq!(
            refused.map_err(|m| (m.found.contains("size 45m"), m.expected.contains("size 30m"))),
            Err((true, true))
        );
        let mut renamed = ours.clone();
        renamed.key = "account".into();
        assert!(ours.admits(Some(&renamed), "").is_err());
        let mut typed = ours.clone();
        typed.fields[1].1 = FieldType::Int;
        assert!(ours.admits(Some(&typed), "").is_err());
        let mut folded = ours.clone();
        folded.transform = TransformKind::Aggregate;
        assert!(ours.admits(Some(&folded), "").is_err());
        // An older header: its fingerprint decides.
        assert!(ours.admits(None, &wider.to_string()).is_err());
    }

    #[test]
    fn an_older_version_of_the_same_state_restores_and_a_newer_one_does_not() {
        let ours = sliding(1_800_000);
        let older = Layout { version: 0, ..ours.clone() };
        assert_eq!(ours.admits(Some(&older), ""), Ok(()));
        let newer = Layout { version: LAYOUT_VERSION + 1, ..ours.clone() };
        let refused = ours.admits(Some(&newer), "").err().map(|m| m.found).unwrap_or_default();
        assert!(refused.contains("this host reads up to"), "{refused}");
    }
}
