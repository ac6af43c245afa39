//! What the export macros expand to. Not part of the public API.

use crate::bindings::exports::sluice::transform::{aggregate_transform, window_transform};
use crate::bindings::sluice::transform::types;
use crate::{Aggregate, Error, Event, Events, Features, Window, WindowInfo};

pub use crate::bindings::exports::sluice::transform::aggregate_transform::{
    AddGroup, FinishWindow, Guest as AggregateGuest,
};
pub use crate::bindings::exports::sluice::transform::guest::Guest as GuestKind;
pub use crate::bindings::exports::sluice::transform::window_transform::{Guest as WindowGuest, Window as RawWindow};
pub use crate::bindings::sluice::transform::types::{Events as RawEvents, Kind};

pub type FeatureResult = Result<Vec<types::Feature>, String>;
type AccResult = Result<Vec<u8>, String>;

pub fn process_windows(
    events: &RawEvents,
    windows: &[RawWindow],
    f: impl Fn(&Window<'_>) -> Result<Features, Error>,
) -> Vec<FeatureResult> {
    let events = Events::new(events);
    windows.iter().map(|w| f(&Window::new(w, &events)).map(|features| features.0).map_err(|e| e.0)).collect()
}

pub fn add<A: Aggregate>(events: &RawEvents, groups: Vec<AddGroup>) -> Vec<AccResult> {
    let events = Events::new(events);
    groups
        .into_iter()
        .map(|group| {
            let mut acc = match &group.acc {
                Some(bytes) => A::decode(bytes)?,
                None => A::Acc::default(),
            };
            for &row in &group.rows {
                A::add(&mut acc, &Event::new(&events, row))?;
            }
            let mut out = Vec::new();
            A::encode(&acc, &mut out);
            Ok(out)
        })
        .map(|r: Result<Vec<u8>, Error>| r.map_err(|e| e.0))
        .collect()
}

pub fn merge<A: Aggregate>(groups: Vec<Vec<Vec<u8>>>) -> Vec<AccResult> {
    groups
        .into_iter()
        .map(|group| {
            let mut acc = A::Acc::default();
            for bytes in &group {
                A::merge(&mut acc, A::decode(bytes)?);
            }
            let mut out = Vec::new();
            A::encode(&acc, &mut out);
            Ok(out)
        })
        .map(|r: Result<Vec<u8>, Error>| r.map_err(|e| e.0))
        .collect()
}

pub fn finish<A: Aggregate>(windows: Vec<FinishWindow>) -> Vec<FeatureResult> {
    windows
        .iter()
        .map(|w| {
            let acc = A::decode(&w.acc)?;
            let info = WindowInfo { key: &w.key, start: w.start, end: w.end, trigger: w.trigger };
            A::finish(&acc, &info).map(|f| f.0)
        })
        .map(|r: Result<Vec<types::Feature>, Error>| r.map_err(|e| e.0))
        .collect()
}

fn wrong_kind<T>(n: usize, kind: &str) -> Vec<Result<T, String>> {
    (0..n).map(|_| Err(format!("this module is not an {kind} transform"))).collect()
}

pub fn no_window_impl(windows: &[window_transform::Window]) -> Vec<FeatureResult> {
    wrong_kind(windows.len(), "window")
}

pub fn no_aggregate_add(groups: &[aggregate_transform::AddGroup]) -> Vec<AccResult> {
    wrong_kind(groups.len(), "aggregate")
}

pub fn no_aggregate_merge(groups: &[Vec<Vec<u8>>]) -> Vec<AccResult> {
    wrong_kind(groups.len(), "aggregate")
}

pub fn no_aggregate_finish(windows: &[FinishWindow]) -> Vec<FeatureResult> {
    wrong_kind(windows.len(), "aggregate")
}

#[doc(hidden)]
#[macro_export]
macro_rules! __no_aggregate {
    ($ty:ident) => {
        impl $crate::glue::AggregateGuest for $ty {
            fn add(
                _events: $crate::glue::RawEvents,
                groups: ::std::vec::Vec<$crate::glue::AddGroup>,
            ) -> ::std::vec::Vec<::std::result::Result<::std::vec::Vec<u8>, ::std::string::String>> {
                $crate::glue::no_aggregate_add(&groups)
            }
            fn merge(
                groups: ::std::vec::Vec<::std::vec::Vec<::std::vec::Vec<u8>>>,
            ) -> ::std::vec::Vec<::std::result::Result<::std::vec::Vec<u8>, ::std::string::String>> {
                $crate::glue::no_aggregate_merge(&groups)
            }
            fn finish(
                windows: ::std::vec::Vec<$crate::glue::FinishWindow>,
            ) -> ::std::vec::Vec<$crate::glue::FeatureResult> {
                $crate::glue::no_aggregate_finish(&windows)
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __no_window {
    ($ty:ident) => {
        impl $crate::glue::WindowGuest for $ty {
            fn process(
                _events: $crate::glue::RawEvents,
                windows: ::std::vec::Vec<$crate::glue::RawWindow>,
            ) -> ::std::vec::Vec<$crate::glue::FeatureResult> {
                $crate::glue::no_window_impl(&windows)
            }
        }
    };
}

pub use crate::__no_aggregate as no_aggregate;
pub use crate::__no_window as no_window;
