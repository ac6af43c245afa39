//! The features a module declares it returns: what typed sinks (Iceberg
//! columns, later Feast and Avro) are built from before the first row,
//! and what every row is checked against.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::{FeatureValue, Features, Scalar};

/// A declared feature's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureType {
    Bool,
    Int,
    Float,
    Str,
    /// Lists; their items may be null.
    Bools,
    Ints,
    Floats,
    Strs,
}

impl FeatureType {
    /// As documentation and error messages spell it.
    pub fn name(self) -> &'static str {
        match self {
            FeatureType::Bool => "bool",
            FeatureType::Int => "int",
            FeatureType::Float => "float",
            FeatureType::Str => "string",
            FeatureType::Bools => "list<bool>",
            FeatureType::Ints => "list<int>",
            FeatureType::Floats => "list<float>",
            FeatureType::Strs => "list<string>",
        }
    }

    /// The type [`FeatureType::name`] spells `name`.
    pub fn from_name(name: &str) -> Option<FeatureType> {
        use FeatureType as T;
        [T::Bool, T::Int, T::Float, T::Str, T::Bools, T::Ints, T::Floats, T::Strs]
            .into_iter()
            .find(|t| t.name() == name)
    }

    /// Whether `value` (not null) is of this type. A mixed list is when
    /// every item is null or of the list's item type.
    fn admits(self, value: &FeatureValue) -> bool {
        use FeatureType as T;
        use FeatureValue as V;
        let items = |ok: fn(&Scalar) -> bool| match value {
            V::Mixed(items) => items.iter().all(|s| matches!(s, Scalar::Null) || ok(s)),
            _ => false,
        };
        match (self, value) {
            (T::Bool, V::Bool(_)) | (T::Int, V::Int(_)) | (T::Float, V::Float(_)) | (T::Str, V::Str(_)) => true,
            (T::Bools, V::Bools(_)) | (T::Ints, V::Ints(_)) | (T::Floats, V::Floats(_)) => true,
            (T::Strs, V::Strs { .. } | V::Coded { .. }) => true,
            (T::Bools, _) => items(|s| matches!(s, Scalar::Bool(_))),
            (T::Ints, _) => items(|s| matches!(s, Scalar::Int(_))),
            (T::Floats, _) => items(|s| matches!(s, Scalar::Float(_))),
            (T::Strs, _) => items(|s| matches!(s, Scalar::Str(_))),
            _ => false,
        }
    }
}

/// What a value is, for an error message.
fn kind(value: &FeatureValue) -> &'static str {
    match value {
        FeatureValue::Null => "null",
        FeatureValue::Bool(_) => "bool",
        FeatureValue::Int(_) => "int",
        FeatureValue::Float(_) => "float",
        FeatureValue::Str(_) => "string",
        FeatureValue::Bools(_) => "list<bool>",
        FeatureValue::Ints(_) => "list<int>",
        FeatureValue::Floats(_) => "list<float>",
        FeatureValue::Strs { .. } | FeatureValue::Coded { .. } => "list<string>",
        FeatureValue::Mixed(_) => "mixed list",
    }
}

/// One declared feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureSpec {
    pub name: Arc<str>,
    #[serde(rename = "type")]
    pub ty: FeatureType,
    /// Whether a row may hold null for it, or leave it out.
    pub nullable: bool,
    pub description: String,
}

/// A module's declared features, in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureSchema {
    specs: Vec<FeatureSpec>,
    by_name: HashMap<Arc<str>, usize>,
    /// How many are not nullable: a row must hold each of them.
    required: usize,
}

impl FeatureSchema {
    /// The schema of `specs`; an error names a feature declared twice or
    /// without a name.
    pub fn new(specs: Vec<FeatureSpec>) -> Result<FeatureSchema, String> {
        let mut by_name = HashMap::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if spec.name.is_empty() {
                return Err(format!("feature #{} has no name", i + 1));
            }
            if by_name.insert(spec.name.clone(), i).is_some() {
                return Err(format!("feature `{}` is declared twice", spec.name));
            }
        }
        let required = specs.iter().filter(|s| !s.nullable).count();
        Ok(FeatureSchema { specs, by_name, required })
    }

    pub fn specs(&self) -> &[FeatureSpec] {
        &self.specs
    }

    pub fn get(&self, name: &str) -> Option<&FeatureSpec> {
        self.index(name).map(|i| &self.specs[i])
    }

    /// The position of feature `name` in the declaration.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Whether `row` keeps to the schema: every feature declared, of its
    /// type, null only where nullable, and every feature that is not
    /// nullable present. The error names the first feature that does not.
    pub fn check(&self, row: &Features) -> Result<(), String> {
        self.check_with(row, |name| self.index(name))
    }

    /// [`FeatureSchema::check`] with the declaration's positions of names
    /// from `index`: rows of one call share their names, so a caller can
    /// look each up once per call instead of once per row.
    pub fn check_with(&self, row: &Features, mut index: impl FnMut(&Arc<str>) -> Option<usize>) -> Result<(), String> {
        let mut seen = Seen::new(self.specs.len());
        let mut required = 0usize;
        for (name, value) in &row.0 {
            let Some(i) = index(name).filter(|&i| i < self.specs.len()) else {
                return Err(format!("feature `{name}` is not among the module's declared features"));
            };
            if !seen.insert(i) {
                return Err(format!("feature `{name}` appears twice in the row"));
            }
            let spec = &self.specs[i];
            match value {
                FeatureValue::Null if spec.nullable => {}
                FeatureValue::Null => return Err(format!("feature `{name}` is null but not declared nullable")),
                v if spec.ty.admits(v) => required += usize::from(!spec.nullable),
                v => {
                    return Err(format!(
                        "feature `{name}` is declared {} but the row holds a {}",
                        spec.ty.name(),
                        kind(v)
                    ));
                }
            }
        }
        if required < self.required {
            // The slow path, for the error only.
            let missing = self.specs.iter().find(|s| !s.nullable && row.get(&s.name).is_none());
            let name = missing.map_or("?", |s| &*s.name);
            return Err(format!("feature `{name}` is missing (it is not declared nullable)"));
        }
        Ok(())
    }
}

/// The declared features a row has named so far: bits for the usual few.
enum Seen {
    Few(u128),
    Many(Vec<bool>),
}

impl Seen {
    fn new(n: usize) -> Seen {
        if n <= 128 { Seen::Few(0) } else { Seen::Many(vec![false; n]) }
    }

    /// Whether `i` is new.
    fn insert(&mut self, i: usize) -> bool {
        match self {
            Seen::Few(bits) => {
                let new = *bits & (1 << i) == 0;
                *bits |= 1 << i;
                new
            }
            Seen::Many(v) => !std::mem::replace(&mut v[i], true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, ty: FeatureType, nullable: bool) -> FeatureSpec {
        FeatureSpec { name: name.into(), ty, nullable, description: String::new() }
    }

    fn schema() -> FeatureSchema {
        let specs = vec![
            spec("count", FeatureType::Int, false),
            spec("items", FeatureType::Strs, false),
            spec("top", FeatureType::Str, true),
            spec("amounts", FeatureType::Floats, true),
        ];
        FeatureSchema::new(specs).unwrap_or_default()
    }

    fn row(pairs: Vec<(&str, FeatureValue)>) -> Features {
        Features(pairs.into_iter().map(|(n, v)| (Arc::from(n), v)).collect())
    }

    #[test]
    fn rows_are_checked_against_the_declaration() {
        let s = schema();
        let items = || FeatureValue::strs(["a", "b"]);
        let ok = [
            row(vec![("count", FeatureValue::Int(2)), ("items", items())]),
            row(vec![("items", items()), ("count", FeatureValue::Int(2)), ("top", FeatureValue::Null)]),
            row(vec![
                ("count", FeatureValue::Int(1)),
                ("items", FeatureValue::Mixed(vec![Scalar::Str("x".into()), Scalar::Null])),
                ("amounts", FeatureValue::Floats(vec![1.5])),
            ]),
        ];
        for r in &ok {
            assert_eq!(s.check(r), Ok(()), "{r:?}");
        }
        let bad = [
            (row(vec![("count", FeatureValue::Int(2))]), "feature `items` is missing (it is not declared nullable)"),
            (
                row(vec![("count", FeatureValue::Float(2.0)), ("items", items())]),
                "feature `count` is declared int but the row holds a float",
            ),
            (
                row(vec![("count", FeatureValue::Null), ("items", items())]),
                "feature `count` is null but not declared nullable",
            ),
            (
                row(vec![("count", FeatureValue::Int(2)), ("items", items()), ("extra", FeatureValue::Int(1))]),
                "feature `extra` is not among the module's declared features",
            ),
            (
                row(vec![
                    ("count", FeatureValue::Int(2)),
                    ("items", FeatureValue::Mixed(vec![Scalar::Str("x".into()), Scalar::Int(1)])),
                ]),
                "feature `items` is declared list<string> but the row holds a mixed list",
            ),
            (
                row(vec![("count", FeatureValue::Int(2)), ("count", FeatureValue::Int(3)), ("items", items())]),
                "feature `count` appears twice in the row",
            ),
        ];
        for (r, want) in &bad {
            assert_eq!(s.check(r), Err(want.to_string()), "{r:?}");
        }
    }

    #[test]
    fn a_feature_declared_twice_is_refused() {
        let twice = vec![spec("a", FeatureType::Int, false), spec("a", FeatureType::Str, true)];
        assert_eq!(FeatureSchema::new(twice), Err("feature `a` is declared twice".to_string()));
        assert_eq!(FeatureSchema::new(vec![spec("", FeatureType::Int, false)]), Err("feature #1 has no name".into()));
    }
}
