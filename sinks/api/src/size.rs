//! Sizes in connector and manifest configs: `64MiB`, `1 GB`, `4096`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written with a unit (`256MiB`, `1GB`) or as a number
/// of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(bytesize::ByteSize);

impl Size {
    pub const fn mib(n: u64) -> Self {
        Size(bytesize::ByteSize::mib(n))
    }

    pub fn bytes(self) -> u64 {
        self.0.as_u64()
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display().iec())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Number(u64),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Number(n) => Ok(Size(bytesize::ByteSize::b(n))),
            Text::Text(t) => t
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(Size)
                .map_err(|e| serde::de::Error::custom(format!("`{t}` is not a size such as 256MiB ({e})"))),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for Size {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "integer"],
            "format": "size",
            "description": "A size with a unit (256MiB, 1GB) or a number of bytes.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_units_or_as_numbers() {
        let read = |yaml: &str| serde_json::from_str::<Size>(yaml).map(Size::bytes).map_err(|e| e.to_string());
        assert_eq!(read(r#""256MiB""#), Ok(256 << 20));
        assert_eq!(read(r#""1 GB""#), Ok(1_000_000_000));
        assert_eq!(read("4096"), Ok(4096));
        assert!(read(r#""lots""#).is_err_and(|e| e.contains("`lots` is not a size")));
        assert_eq!(Size::mib(64).to_string(), "64.0 MiB");
    }
}
