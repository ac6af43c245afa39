//! # Sluice guest SDK
//!
//! Write a Sluice transform as a plain Rust function over a window of
//! events, export it with one macro, and build the crate for
//! `wasm32-wasip2`. The host handles Kafka, event time, watermarks, window
//! state and sinks; the transform only turns window contents into features.
//!
//! ## A window transform
//!
//! The function gets one window at a time (the host batches many windows
//! into one call into the module) and returns a feature map or an error.
//! An error sends that window's input to the dead-letter output; it never
//! stops the pipeline.
//!
//! ```no_run
//! use sluice_sdk::{Error, Features, Window};
//!
//! fn click_features(window: &Window<'_>) -> Result<Features, Error> {
//!     // Fields are the ones the manifest declares under `fields:`.
//!     let items = window.strs("item_id")?;
//!     let mut features = Features::new();
//!     features.int("item_count", window.len() as i64);
//!     features.int("distinct_items", items.distinct(window.rows()) as i64);
//!     // The window's item ids, in event-time order (returned by reference
//!     // to the call's strings, without copying them).
//!     features.str_list_of("items", &items, window.rows());
//!     // The friendly (slower) way: one event at a time, fields by name.
//!     let spent: f64 = window.events().filter_map(|e| e.f64("amount")).sum();
//!     features.float("spent", spent);
//!     Ok(features)
//! }
//!
//! sluice_sdk::window_transform!(click_features, features {
//!     /// Events in the window.
//!     item_count: i64,
//!     /// Distinct item ids.
//!     distinct_items: i64,
//!     /// The item ids, oldest first.
//!     items: Vec<String>,
//!     spent: f64,
//! });
//! ```
//!
//! ## An aggregate transform
//!
//! An aggregate folds events into an accumulator; the host keeps one per
//! slice of a window and merges them when the window fires, so each event
//! is folded once however many sliding windows overlap it.
//!
//! ```no_run
//! use sluice_sdk::{Aggregate, Error, Event, Features, Reader, WindowInfo};
//!
//! #[derive(Default)]
//! struct Sum { count: u64, total: f64 }
//!
//! struct Spend;
//!
//! impl Aggregate for Spend {
//!     type Acc = Sum;
//!     fn add(acc: &mut Sum, event: &Event<'_>) -> Result<(), Error> {
//!         acc.count += 1;
//!         acc.total += event.f64("amount").ok_or("amount is missing")?;
//!         Ok(())
//!     }
//!     fn merge(into: &mut Sum, other: Sum) {
//!         into.count += other.count;
//!         into.total += other.total;
//!     }
//!     fn finish(acc: &Sum, _window: &WindowInfo<'_>) -> Result<Features, Error> {
//!         let mut f = Features::new();
//!         f.int("count", acc.count as i64).float("total", acc.total);
//!         Ok(f)
//!     }
//!     fn encode(acc: &Sum, out: &mut Vec<u8>) {
//!         sluice_sdk::put_u64(out, acc.count);
//!         sluice_sdk::put_f64(out, acc.total);
//!     }
//!     fn decode(bytes: &[u8]) -> Result<Sum, Error> {
//!         let mut r = Reader::new(bytes);
//!         Ok(Sum { count: r.u64()?, total: r.f64()? })
//!     }
//! }
//!
//! sluice_sdk::aggregate_transform!(Spend, features { count: i64, total: f64 });
//! ```
//!
//! ## Building
//!
//! ```text
//! [lib]
//! crate-type = ["cdylib"]
//! ```
//!
//! `cargo build --release --target wasm32-wasip2` gives a component the
//! host loads. Modules get no filesystem, network or clock; [`log`] is the
//! one thing they can call.

mod codec;
mod event;
mod features;
#[doc(hidden)]
pub mod glue;
mod schema;

pub use codec::{Reader, put_bytes, put_f64, put_i64, put_str, put_u32, put_u64};
pub use event::{ColumnStats, Event, Events, StrColumn, Window, WindowInfo};
pub use features::Features;
pub use schema::FeatureKind;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "transform",
        pub_export_macro: true,
        export_macro_name: "__export_transform",
        default_bindings_module: "sluice_sdk::bindings",
    });
}

pub use bindings::sluice::transform::types::{Level, Trigger};

/// An error from a transform: the window's input goes to the dead-letter
/// output with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(message: impl core::fmt::Display) -> Self {
        Error(message.to_string())
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error(message.to_string())
    }
}

/// Send a line to the host's log (the only effect a module may have).
pub fn log(level: Level, message: &str) {
    bindings::sluice::transform::host::log(level, message);
}

/// A transform that folds events into an accumulator.
pub trait Aggregate {
    /// The accumulator; `Default` is the empty one.
    type Acc: Default;
    /// Fold one event in.
    fn add(acc: &mut Self::Acc, event: &Event<'_>) -> Result<(), Error>;
    /// Fold `other` into `into`.
    fn merge(into: &mut Self::Acc, other: Self::Acc);
    /// The features of a window whose accumulator is `acc`.
    fn finish(acc: &Self::Acc, window: &WindowInfo<'_>) -> Result<Features, Error>;
    /// Serialize (the host stores accumulators as bytes, in its state and
    /// in checkpoints).
    fn encode(acc: &Self::Acc, out: &mut Vec<u8>);
    /// The inverse of [`Aggregate::encode`].
    fn decode(bytes: &[u8]) -> Result<Self::Acc, Error>;
}

/// Export `fn(&Window) -> Result<Features, Error>` as this module's
/// transform, with the features its rows hold.
///
/// Each feature is declared as `name: Type`, its doc comment describing
/// it. The type is the Rust type of its values (see [`FeatureKind`]):
/// `bool`, `i64`, `f64`, `String`, a `Vec` of one of them for a list, an
/// `Option` of any of these when a row may hold null or leave it out. The
/// host checks every row against the declaration (a row that breaks it
/// goes to the dead-letter output) and makes typed outputs, such as an
/// Iceberg table's columns, from it.
#[macro_export]
macro_rules! window_transform {
    ($function:path, features { $($features:tt)* }) => {
        struct __SluiceWindowTransform;
        impl $crate::glue::GuestKind for __SluiceWindowTransform {
            fn transform_kind() -> $crate::glue::Kind {
                $crate::glue::Kind::Window
            }
            fn features() -> ::std::vec::Vec<$crate::glue::FeatureSpec> {
                $crate::__features!($($features)*)
            }
        }
        impl $crate::glue::WindowGuest for __SluiceWindowTransform {
            fn process(
                events: $crate::glue::RawEvents,
                windows: ::std::vec::Vec<$crate::glue::RawWindow>,
            ) -> $crate::glue::RawFeatureRows {
                $crate::glue::process_windows(&events, &windows, $function)
            }
        }
        $crate::glue::no_aggregate!(__SluiceWindowTransform);
        $crate::bindings::__export_transform!(__SluiceWindowTransform);
    };
    ($function:path) => {
        ::core::compile_error!(
            "declare the features the transform returns: `window_transform!(f, features { name: i64, ... })`"
        );
    };
}

/// The declared features as the contract's list.
#[doc(hidden)]
#[macro_export]
macro_rules! __features {
    ($($(#[doc = $doc:literal])* $name:ident : $ty:ty),* $(,)?) => {
        ::std::vec![$($crate::glue::spec::<$ty>(::core::stringify!($name), ::core::concat!($($doc, "\n",)*))),*]
    };
}

/// Export a type implementing [`Aggregate`] as this module's transform,
/// with the features its rows hold (declared as for
/// [`window_transform!`]).
#[macro_export]
macro_rules! aggregate_transform {
    ($aggregate:ty, features { $($features:tt)* }) => {
        struct __SluiceAggregateTransform;
        impl $crate::glue::GuestKind for __SluiceAggregateTransform {
            fn transform_kind() -> $crate::glue::Kind {
                $crate::glue::Kind::Aggregate
            }
            fn features() -> ::std::vec::Vec<$crate::glue::FeatureSpec> {
                $crate::__features!($($features)*)
            }
        }
        impl $crate::glue::AggregateGuest for __SluiceAggregateTransform {
            fn add(
                events: $crate::glue::RawEvents,
                groups: ::std::vec::Vec<$crate::glue::AddGroup>,
            ) -> ::std::vec::Vec<::std::result::Result<::std::vec::Vec<u8>, ::std::string::String>> {
                $crate::glue::add::<$aggregate>(&events, groups)
            }
            fn merge(
                groups: ::std::vec::Vec<::std::vec::Vec<::std::vec::Vec<u8>>>,
            ) -> ::std::vec::Vec<::std::result::Result<::std::vec::Vec<u8>, ::std::string::String>> {
                $crate::glue::merge::<$aggregate>(groups)
            }
            fn finish(windows: ::std::vec::Vec<$crate::glue::FinishWindow>) -> $crate::glue::RawFeatureRows {
                $crate::glue::finish::<$aggregate>(windows)
            }
        }
        $crate::glue::no_window!(__SluiceAggregateTransform);
        $crate::bindings::__export_transform!(__SluiceAggregateTransform);
    };
    ($aggregate:ty) => {
        ::core::compile_error!(
            "declare the features the transform returns: `aggregate_transform!(A, features { name: i64, ... })`"
        );
    };
}
