//! Event time: reading timestamps from payloads, and watermarks.

mod watermark;

pub use watermark::Watermarks;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The earliest event time Sluice accepts: 0001-01-01T00:00:00Z, in
/// milliseconds. With the latest, the range RFC 3339 can write; window
/// arithmetic on times in it, with durations up to [`MAX_DURATION_MS`],
/// cannot overflow.
pub const MIN_EVENT_TIME: i64 = -62_135_596_800_000;
/// The latest event time Sluice accepts: 9999-12-31T23:59:59.999Z.
pub const MAX_EVENT_TIME: i64 = 253_402_300_799_999;
/// The longest window, slide, gap, lateness, out-of-orderness or state
/// TTL: 100 years (36,500 days), in milliseconds.
pub const MAX_DURATION_MS: i64 = 36_500 * 86_400_000;

/// Whether `ms` is in the supported event-time range.
pub fn in_range(ms: i64) -> bool {
    (MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&ms)
}

/// How the timestamp field encodes event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimestampFormat {
    /// Seconds since the Unix epoch, integer or fractional (`1718000000.25`).
    #[default]
    Seconds,
    /// Milliseconds since the Unix epoch.
    Millis,
    /// Microseconds since the Unix epoch.
    Micros,
    /// An RFC 3339 string (`2024-06-10T06:13:20.250Z`).
    Rfc3339,
}

impl TimestampFormat {
    /// As written in a manifest.
    pub fn name(self) -> &'static str {
        match self {
            TimestampFormat::Seconds => "seconds",
            TimestampFormat::Millis => "millis",
            TimestampFormat::Micros => "micros",
            TimestampFormat::Rfc3339 => "rfc3339",
        }
    }

    /// Milliseconds from a JSON number in this format.
    pub fn from_number(self, n: f64) -> Result<i64, String> {
        if !n.is_finite() {
            return Err(format!("{n} is not a finite number"));
        }
        let ms = match self {
            TimestampFormat::Seconds => n * 1000.0,
            TimestampFormat::Millis => n,
            TimestampFormat::Micros => n / 1000.0,
            TimestampFormat::Rfc3339 => {
                return Err("expected an RFC 3339 string, found a number".into());
            }
        };
        // Round rather than truncate: 1.001 s is 1000.9999… ms in binary.
        // Far out of range saturates (`as` does), for [`in_range`] to refuse.
        Ok(ms.round() as i64)
    }

    /// Milliseconds from an integer in this format (exact within the
    /// supported range).
    pub fn from_int(self, n: i64) -> Result<i64, String> {
        match self {
            // Saturates far out of range, for [`in_range`] to refuse.
            TimestampFormat::Seconds => Ok(n.saturating_mul(1000)),
            TimestampFormat::Millis => Ok(n),
            TimestampFormat::Micros => Ok(n.div_euclid(1000)),
            TimestampFormat::Rfc3339 => Err("expected an RFC 3339 string, found a number".into()),
        }
    }

    /// Milliseconds from a string: RFC 3339, or a number in the other
    /// formats (producers that quote their numbers).
    pub fn from_str(self, s: &str) -> Result<i64, String> {
        match self {
            TimestampFormat::Rfc3339 => {
                let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))?;
                Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
            }
            _ => match s.trim().parse::<i64>() {
                Ok(n) => self.from_int(n),
                Err(_) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("`{s}` is not a number"))
                    .and_then(|n| self.from_number(n)),
            },
        }
    }
}

/// `ms` since the Unix epoch as RFC 3339 (UTC), for people: the sinks'
/// form too.
pub use sluice_sink_api::time::format_ms;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::TimestampFormat::*;

    #[test]
    fn formats_convert_to_millis() {
        assert_eq!(Seconds.from_number(1_718_000_000.25), Ok(1_718_000_000_250));
        assert_eq!(Seconds.from_number(1.001), Ok(1001));
        assert_eq!(Seconds.from_int(2), Ok(2000));
        assert_eq!(Millis.from_int(1_718_000_000_250), Ok(1_718_000_000_250));
        assert_eq!(Micros.from_int(1_718_000_000_250_999), Ok(1_718_000_000_250));
        assert_eq!(Rfc3339.from_str("2024-06-10T06:13:20.250Z"), Ok(1_718_000_000_250));
        assert_eq!(Rfc3339.from_str("2024-06-10T08:13:20.250+02:00"), Ok(1_718_000_000_250));
        assert_eq!(Seconds.from_str("1718000000.25"), Ok(1_718_000_000_250));
    }

    #[test]
    fn bad_timestamps_are_errors() {
        assert!(Rfc3339.from_number(1.0).is_err());
        assert!(Rfc3339.from_str("yesterday").is_err());
        assert!(Seconds.from_number(f64::NAN).is_err());
        // Far out of range saturates, and the range check refuses it.
        assert!(Seconds.from_number(1e20).is_ok_and(|ms| !super::in_range(ms)));
        assert!(Seconds.from_int(i64::MAX).is_ok_and(|ms| !super::in_range(ms)));
        assert!(Seconds.from_int(-9_223_372_036_854_775).is_ok_and(|ms| !super::in_range(ms)));
        assert!(super::in_range(Rfc3339.from_str("0001-01-01T00:00:00Z").unwrap_or(i64::MIN)));
        assert!(super::in_range(Rfc3339.from_str("9999-12-31T23:59:59.999Z").unwrap_or(i64::MIN)));
        assert!(!super::in_range(super::MAX_EVENT_TIME + 1));
    }
}
