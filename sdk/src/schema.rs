//! Declaring a module's features: each named with the Rust type of its
//! values, from which the contract's type and nullability are derived, and
//! described by its doc comment. See [`crate::window_transform!`].

use crate::bindings::sluice::transform::types::{FeatureSpec, FeatureType};

/// A Rust type that stands for a feature type in a declaration: `bool`,
/// `i64`, `f64`, `String`, a `Vec` of one of them (a list), or an
/// `Option` of any of these (nullable: a row may hold null or leave the
/// feature out).
pub trait FeatureKind {
    #[doc(hidden)]
    const TYPE: FeatureType;
    #[doc(hidden)]
    const NULLABLE: bool = false;
}

macro_rules! kinds {
    ($($rust:ty => $wit:ident),* $(,)?) => {
        $(impl FeatureKind for $rust {
            const TYPE: FeatureType = FeatureType::$wit;
        })*
    };
}

kinds! {
    bool => Boolean,
    i64 => Int,
    f64 => Float,
    String => Str,
    Vec<bool> => Bools,
    Vec<i64> => Ints,
    Vec<f64> => Floats,
    Vec<String> => Strs,
}

impl<T: FeatureKind> FeatureKind for Option<T> {
    const TYPE: FeatureType = T::TYPE;
    const NULLABLE: bool = true;
}

/// One declared feature; `doc` is its doc comment's lines, each ending in
/// a line break.
#[doc(hidden)]
pub fn spec<T: FeatureKind>(name: &str, doc: &str) -> FeatureSpec {
    let description = doc.lines().map(str::trim).collect::<Vec<_>>().join(" ").trim().to_string();
    FeatureSpec { name: name.to_string(), type_: T::TYPE, nullable: T::NULLABLE, description }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_nullability_come_from_the_rust_type_and_the_description_from_the_doc() {
        let s = spec::<Option<Vec<String>>>("items", " The items,\n oldest first.\n");
        assert_eq!((s.name.as_str(), s.nullable, s.description.as_str()), ("items", true, "The items, oldest first."));
        assert!(matches!(s.type_, FeatureType::Strs));
        let s = spec::<i64>("n", "");
        assert!(matches!(s.type_, FeatureType::Int) && !s.nullable && s.description.is_empty());
    }
}
