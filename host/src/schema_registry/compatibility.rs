//! Compatibility levels, as Confluent names them, and what each checks:
//! which earlier versions a new schema is tested against and in which
//! direction. Whether one schema can read another's data is the
//! `apache-avro` crate's check, given to [`Level::check`].

use serde::{Deserialize, Serialize};

/// A subject's (or the registry's) compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// The new schema reads data written with the latest version.
    #[default]
    Backward,
    /// ... with every earlier version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// Every earlier version reads it.
    ForwardTransitive,
    /// Backward and forward, with the latest version.
    Full,
    /// Backward and forward, with every earlier version.
    FullTransitive,
    None,
}

impl Level {
    /// A level by name, in any case.
    pub fn parse(text: &str) -> Result<Level, super::RegistryError> {
        serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase()))
            .map_err(|_| super::RegistryError::InvalidCompatibility(text.to_string()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
            Level::None => "NONE",
        }
    }

    /// The level's direction, against one version only.
    pub fn non_transitive(self) -> Level {
        match self {
            Level::BackwardTransitive => Level::Backward,
            Level::ForwardTransitive => Level::Forward,
            Level::FullTransitive => Level::Full,
            other => other,
        }
    }

    /// Why `candidate` may not follow `earlier` (a subject's versions,
    /// oldest first) at this level: nothing if it may. `can_read(writer,
    /// reader)` says whether data of the writer schema reads with the
    /// reader schema.
    pub fn check<S>(
        self,
        candidate: &S,
        earlier: &[(i32, S)],
        can_read: impl Fn(&S, &S) -> Result<(), String>,
    ) -> Vec<String> {
        let (backward, forward, transitive) = match self {
            Level::None => return Vec::new(),
            Level::Backward => (true, false, false),
            Level::BackwardTransitive => (true, false, true),
            Level::Forward => (false, true, false),
            Level::ForwardTransitive => (false, true, true),
            Level::Full => (true, true, false),
            Level::FullTransitive => (true, true, true),
        };
        let against = match transitive {
            true => earlier,
            false => earlier.len().checked_sub(1).map_or(&earlier[..0], |last| &earlier[last..]),
        };
        let mut messages = Vec::new();
        for (version, old) in against {
            if backward && let Err(e) = can_read(old, candidate) {
                messages.push(format!(
                    "{}: the new schema cannot read data written with version {version}: {e}",
                    self.name()
                ));
            }
            if forward && let Err(e) = can_read(candidate, old) {
                messages.push(format!(
                    "{}: version {version} cannot read data written with the new schema: {e}",
                    self.name()
                ));
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schemas as sets of field names, where a reader reads a writer's
    /// data when it needs no field the writer lacks: enough to see each
    /// level's direction and reach.
    fn can_read(writer: &Vec<&str>, reader: &Vec<&str>) -> Result<(), String> {
        match reader.iter().find(|f| !writer.contains(f)) {
            Some(f) => Err(format!("no {f}")),
            None => Ok(()),
        }
    }

    #[test]
    fn each_level_checks_its_direction_against_its_versions() {
        // v1 {a}, v2 {a, b}; the candidate drops a and keeps b.
        let earlier = vec![(1, vec!["a"]), (2, vec!["a", "b"])];
        let drops_a = vec!["b"];
        let needs_c = vec!["a", "b", "c"];
        let fails = |level: Level, candidate: &Vec<&str>| level.check(candidate, &earlier, can_read).len();
        // Reading old data: dropping a field is fine, needing a new one is not.
        assert_eq!(fails(Level::Backward, &drops_a), 0);
        assert_eq!(fails(Level::Backward, &needs_c), 1);
        // Old readers of new data: v2 needs a, which the candidate dropped.
        assert_eq!(fails(Level::Forward, &drops_a), 1);
        assert_eq!(fails(Level::Forward, &needs_c), 0);
        // Transitive levels reach v1 too: v1 lacks b, which a reader of
        // {b} needs.
        assert_eq!(fails(Level::BackwardTransitive, &drops_a), 1);
        assert_eq!(fails(Level::ForwardTransitive, &drops_a), 2);
        assert_eq!(fails(Level::Full, &drops_a), 1);
        assert_eq!(fails(Level::FullTransitive, &drops_a), 3);
        assert_eq!(fails(Level::None, &needs_c), 0);
        assert_eq!(Level::Full.check(&needs_c, &[], can_read), Vec::<String>::new());
    }

    #[test]
    fn levels_by_name_in_any_case() {
        assert_eq!(Level::parse("full_transitive").ok(), Some(Level::FullTransitive));
        assert_eq!(Level::parse("BACKWARD").ok(), Some(Level::Backward));
        assert_eq!(Level::parse("sideways").map_err(|e| e.code()), Err(42203));
    }
}
