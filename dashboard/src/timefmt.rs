//! Times as Analytics Engine and the local mirror write them (`YYYY-MM-DD HH:MM:SS`, UTC), and
//! as the pages show them.

use chrono::{DateTime, NaiveDateTime};

/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// `ms` since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC). Out-of-range values clamp to the epoch.
/// The result holds only digits, `-`, `:` and a space, so it can stand in a SQL string literal.
pub fn sql_datetime(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Parses a datetime as the SQL API or SQLite return it: `YYYY-MM-DD HH:MM:SS`, also with a
/// `T` separator, fractional seconds or a trailing `Z`. Returns ms since the epoch.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let trimmed = text.trim().trim_end_matches('Z');
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Some(t.and_utc().timestamp_millis());
        }
        if format == "%Y-%m-%d" {
            if let Ok(d) = chrono::NaiveDate::parse_from_str(trimmed, format) {
                return d
                    .and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc().timestamp_millis());
            }
        }
    }
    None
}

/// `ms` rounded down to the hour.
pub fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// `ms` rounded down to the UTC day.
pub fn floor_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// A time for tables: `YYYY-MM-DD HH:MM` UTC; empty for 0 or unrepresentable values.
pub fn display(ms: i64) -> String {
    if ms <= 0 {
        return String::new();
    }
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A compact axis label: `HH:00` when `hourly`, else `MM-DD`.
pub fn axis_label(ms: i64, hourly: bool) -> String {
    let format = if hourly { "%H:00" } else { "%m-%d" };
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_formats() {
        let ms = 1_764_000_000_123;
        let text = sql_datetime(ms);
        assert_eq!(text, "2025-11-24 16:00:00");
        assert_eq!(parse_datetime(&text), Some(1_764_000_000_000));
        assert_eq!(
            parse_datetime("2025-11-24T16:00:00Z"),
            Some(1_764_000_000_000)
        );
        assert_eq!(
            parse_datetime("2025-11-24 16:00:00.000"),
            Some(1_764_000_000_000)
        );
        assert_eq!(parse_datetime("2025-11-24"), Some(1_763_942_400_000));
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_datetime(""), None);
        assert_eq!(sql_datetime(i64::MAX), "1970-01-01 00:00:00");
        assert_eq!(floor_hour(ms), 1_764_000_000_000);
        assert_eq!(floor_day(ms), 1_763_942_400_000);
        assert_eq!(display(0), "");
        assert_eq!(display(ms), "2025-11-24 16:00");
        assert_eq!(axis_label(ms, true), "16:00");
        assert_eq!(axis_label(ms, false), "11-24");
    }
}
