//! Instants as the host and the sinks show them to people.

/// `ms` since the Unix epoch as RFC 3339 (UTC), for messages; a time
/// outside RFC 3339's range as its milliseconds.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc_3339_and_those_outside_it_as_milliseconds() {
        assert_eq!(format_ms(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(format_ms(1_767_225_600_500), "2026-01-01T00:00:00.5Z");
        assert_eq!(format_ms(i64::MAX), format!("{} ms", i64::MAX));
    }
}
