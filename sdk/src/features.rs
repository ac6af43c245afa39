use std::cell::RefCell;

use crate::StrColumn;
use crate::bindings::sluice::transform::types::{Feature, FeatureValue, PackedStrings, Scalar};

/// A feature map under construction: names and values in insertion order.
///
/// A map belongs to the call that made it: names are numbered per call
/// (they cross to the host once per call, not once per row).
#[derive(Default)]
pub struct Features(pub(crate) Vec<Feature>);

thread_local! {
    /// The names of the current call's features, by number.
    static NAMES: RefCell<Vec<Box<str>>> = const { RefCell::new(Vec::new()) };
}

/// The number of `name` in the current call, numbering it when new.
fn name_id(name: &str, position: usize) -> u32 {
    NAMES.with_borrow_mut(|names| {
        // Rows usually name their features in the same order.
        if names.get(position).is_some_and(|n| **n == *name) {
            return position as u32;
        }
        match names.iter().position(|n| **n == *name) {
            Some(i) => i as u32,
            None => {
                names.push(name.into());
                (names.len() - 1) as u32
            }
        }
    })
}

/// The names numbered since the last call, for the host (and a fresh
/// numbering for the next call).
pub(crate) fn take_names() -> Vec<String> {
    NAMES.with_borrow_mut(|names| names.drain(..).map(String::from).collect())
}

impl Features {
    pub fn new() -> Self {
        Features(Vec::with_capacity(8))
    }

    fn push(&mut self, name: &str, value: FeatureValue) -> &mut Self {
        let name = name_id(name, self.0.len());
        self.0.push(Feature { name, value });
        self
    }

    pub fn null(&mut self, name: &str) -> &mut Self {
        self.push(name, FeatureValue::Null)
    }

    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.push(name, FeatureValue::Boolean(value))
    }

    pub fn int(&mut self, name: &str, value: i64) -> &mut Self {
        self.push(name, FeatureValue::Int(value))
    }

    pub fn float(&mut self, name: &str, value: f64) -> &mut Self {
        self.push(name, FeatureValue::Float(value))
    }

    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.push(name, FeatureValue::Str(value.to_string()))
    }

    /// A string value, or null when `None`.
    pub fn opt_str(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(name, v),
            None => self.null(name),
        }
    }

    pub fn int_list(&mut self, name: &str, values: impl IntoIterator<Item = i64>) -> &mut Self {
        self.push(name, FeatureValue::Ints(values.into_iter().collect()))
    }

    pub fn float_list(&mut self, name: &str, values: impl IntoIterator<Item = f64>) -> &mut Self {
        self.push(name, FeatureValue::Floats(values.into_iter().collect()))
    }

    pub fn bool_list(&mut self, name: &str, values: impl IntoIterator<Item = bool>) -> &mut Self {
        self.push(name, FeatureValue::Bools(values.into_iter().collect()))
    }

    /// A list of strings, packed into one buffer on the way to the host.
    pub fn str_list<'s>(&mut self, name: &str, values: impl IntoIterator<Item = &'s str>) -> &mut Self {
        let mut packed = PackedStrings { data: String::new(), ends: Vec::new() };
        for v in values {
            packed.data.push_str(v);
            packed.ends.push(packed.data.len() as u32);
        }
        self.push(name, FeatureValue::Strs(packed))
    }

    /// A string field's values over `rows` (nulls left out), in row order:
    /// the fastest way to return a window's strings, as the host already
    /// has them.
    pub fn str_list_of(&mut self, name: &str, column: &StrColumn<'_>, rows: &[u32]) -> &mut Self {
        let mut codes = Vec::with_capacity(rows.len());
        codes.extend(rows.iter().filter_map(|&r| column.code(r)));
        self.push(name, FeatureValue::CallStrs(codes))
    }

    /// [`Features::str_list_of`] capped: only the most recent `max` values
    /// (those of the last rows, `rows` being in event-time order), still in
    /// row order. However busy a key, the list stays a usable model input.
    pub fn str_list_last_of(&mut self, name: &str, column: &StrColumn<'_>, rows: &[u32], max: usize) -> &mut Self {
        let mut codes: Vec<u32> = rows.iter().rev().filter_map(|&r| column.code(r)).take(max).collect();
        codes.reverse();
        self.push(name, FeatureValue::CallStrs(codes))
    }

    /// A list that mixes kinds or holds nulls.
    pub fn mixed_list(&mut self, name: &str, values: Vec<Scalar>) -> &mut Self {
        self.push(name, FeatureValue::Mixed(values))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
