//! What the export macros expand to. Not part of the public API.

use crate::bindings::exports::sluice::transform::{aggregate_transform, window_transform};
use crate::{Aggregate, Error, Event, Events, Features, Window, WindowInfo, features};

pub use crate::bindings::exports::sluice::transform::aggregate_transform::{
    AddGroup, FinishWindow, Guest as AggregateGuest,
};
pub use crate::bindings::exports::sluice::transform::guest::Guest as GuestKind;
pub use crate::bindings::exports::sluice::transform::window_transform::{Guest as WindowGuest, Window as RawWindow};
pub use crate::bindings::sluice::transform::types::{Events as RawEvents, FeatureSpec, Kind};
pub use crate::schema::spec;

pub use crate::bindings::sluice::transform::types::FeatureRows as RawFeatureRows;
type AccResult = Result<Vec<u8>, String>;

/// Flatten one call's results into the contract's rows.
fn feature_rows(results: impl Iterator<Item = Result<Features, Error>>) -> RawFeatureRows {
    let mut features = Vec::new();
    let rows = results
        .map(|r| match r {
            Ok(mut row) => {
                let n = row.0.len() as u32;
                features.append(&mut row.0);
                Ok(n)
            }
            Err(e) => Err(e.0),
        })
        .collect();
    RawFeatureRows { names: features::take_names(), features, rows }
}

pub fn process_windows(
    events: &RawEvents,
    windows: &[RawWindow],
    f: impl Fn(&Window<'_>) -> Result<Features, Error>,
) -> RawFeatureRows {
    let events = Events::new(events);
    feature_rows(windows.iter().map(|w| f(&Window::new(w, &events))))
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

pub fn finish<A: Aggregate>(windows: Vec<FinishWindow>) -> RawFeatureRows {
    feature_rows(windows.iter().map(|w| {
        let acc = A::decode(&w.acc)?;
        let info = WindowInfo { key: &w.key, start: w.start, end: w.end, trigger: w.trigger };
        A::finish(&acc, &info)
    }))
}

fn wrong_kind<T>(n: usize, kind: &str) -> Vec<Result<T, String>> {
    (0..n).map(|_| Err(format!("this module is not an {kind} transform"))).collect()
}

fn wrong_kind_rows(n: usize, kind: &str) -> RawFeatureRows {
    RawFeatureRows { names: Vec::new(), features: Vec::new(), rows: wrong_kind(n, kind) }
}

pub fn no_window_impl(windows: &[window_transform::Window]) -> RawFeatureRows {
    wrong_kind_rows(windows.len(), "window")
}

pub fn no_aggregate_add(groups: &[aggregate_transform::AddGroup]) -> Vec<AccResult> {
    wrong_kind(groups.len(), "aggregate")
}

pub fn no_aggregate_merge(groups: &[Vec<Vec<u8>>]) -> Vec<AccResult> {
    wrong_kind(groups.len(), "aggregate")
}

pub fn no_aggregate_finish(windows: &[FinishWindow]) -> RawFeatureRows {
    wrong_kind_rows(windows.len(), "aggregate")
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
            fn finish(windows: ::std::vec::Vec<$crate::glue::FinishWindow>) -> $crate::glue::RawFeatureRows {
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
            ) -> $crate::glue::RawFeatureRows {
                $crate::glue::no_window_impl(&windows)
            }
        }
    };
}

pub use crate::__no_aggregate as no_aggregate;
pub use crate::__no_window as no_window;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::sluice::transform::types::FeatureValue;

    /// Each row's features as (name, int value), read back the way the host
    /// reads the flattened rows.
    fn unflatten(out: &RawFeatureRows) -> Vec<Result<Vec<(&str, i64)>, &str>> {
        let mut next = out.features.iter();
        out.rows
            .iter()
            .map(|r| match r {
                Ok(n) => Ok(next
                    .by_ref()
                    .take(*n as usize)
                    .map(|f| {
                        let value = match f.value {
                            FeatureValue::Int(i) => i,
                            _ => i64::MIN,
                        };
                        (out.names[f.name as usize].as_str(), value)
                    })
                    .collect()),
                Err(e) => Err(e.as_str()),
            })
            .collect()
    }

    #[test]
    fn names_cross_once_per_call_and_rows_keep_their_features() {
        let row = |pairs: &[(&str, i64)]| {
            let mut f = Features::new();
            for &(name, value) in pairs {
                f.int(name, value);
            }
            Ok(f)
        };
        let results = vec![
            row(&[("a", 1), ("b", 2)]),
            Err(Error::from("bad window")),
            row(&[("b", 3), ("a", 4), ("c", 5)]),
            row(&[]),
            row(&[("a", 6), ("b", 7)]),
        ];
        let out = feature_rows(results.into_iter());
        assert_eq!(out.names, ["a", "b", "c"]);
        assert_eq!(out.features.len(), 7);
        assert_eq!(
            unflatten(&out),
            vec![
                Ok(vec![("a", 1), ("b", 2)]),
                Err("bad window"),
                Ok(vec![("b", 3), ("a", 4), ("c", 5)]),
                Ok(vec![]),
                Ok(vec![("a", 6), ("b", 7)]),
            ]
        );
        // The next call numbers its names afresh.
        let out = feature_rows(std::iter::once(row(&[("c", 8)])));
        assert_eq!(out.names, ["c"]);
        assert_eq!(unflatten(&out), vec![Ok(vec![("c", 8)])]);
    }
}
