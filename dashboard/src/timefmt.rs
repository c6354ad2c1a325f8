//! Times as Analytics Engine and the local mirror write them (`YYYY-MM-DD HH:MM:SS`, UTC), and
//! as the pages show them.

/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Latest time handled (year 9999); later values format as the epoch.
const MAX_MS: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day, hour, minute, second) of `ms` UTC; values outside years 0–9999 give
/// the epoch.
fn parts(ms: i64) -> (i64, i64, i64, i64, i64, i64) {
    let ms = if (-62_167_219_200_000..=MAX_MS).contains(&ms) {
        ms
    } else {
        0
    };
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `ms` since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC). Out-of-range values clamp to the epoch.
/// The result holds only digits, `-`, `:` and a space, so it can stand in a SQL string literal.
pub fn sql_datetime(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

fn number(text: &str, digits: usize) -> Option<i64> {
    if text.len() != digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses a datetime as the SQL API or SQLite return it: `YYYY-MM-DD HH:MM:SS`, also with a
/// `T` separator, fractional seconds or a trailing `Z`, or a bare `YYYY-MM-DD`. Returns ms since
/// the epoch.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = match text.len() {
        10 => (text, "00:00:00"),
        n if n >= 19 => (text.get(..10)?, text.get(11..19)?),
        _ => return None,
    };
    if text.len() > 10 {
        let sep = text.as_bytes()[10];
        let fraction = &text[19..];
        let fraction_ok = fraction.is_empty()
            || (fraction.starts_with('.') && fraction[1..].bytes().all(|b| b.is_ascii_digit()));
        if !(sep == b' ' || sep == b'T') || !fraction_ok {
            return None;
        }
    }
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    let (&[y, mo, da], &[h, mi, s]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    let (y, mo, da) = (number(y, 4)?, number(mo, 2)?, number(da, 2)?);
    let (h, mi, s) = (number(h, 2)?, number(mi, 2)?, number(s, 2)?);
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if da < 1 || da > days_in_month || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some((days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + s) * 1000)
}

/// `ms` rounded down to the hour.
pub fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// `ms` rounded down to the UTC day.
pub fn floor_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// A time for tables: `YYYY-MM-DD HH:MM` UTC; empty for 0, negative or unrepresentable values.
pub fn display(ms: i64) -> String {
    if ms <= 0 || ms > MAX_MS {
        return String::new();
    }
    let (y, mo, d, h, mi, _) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
}

/// A compact axis label: `HH:00` when `hourly`, else `MM-DD`.
pub fn axis_label(ms: i64, hourly: bool) -> String {
    let (_, mo, d, h, _, _) = parts(ms);
    if hourly {
        format!("{h:02}:00")
    } else {
        format!("{mo:02}-{d:02}")
    }
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
        assert_eq!(sql_datetime(i64::MIN), "1970-01-01 00:00:00");
        assert_eq!(sql_datetime(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(parse_datetime("2000-02-29 00:00:00"), Some(951_782_400_000));
        for bad in [
            "2025-02-29 00:00:00",
            "2025-13-01 00:00:00",
            "2025-11-24 24:00:00",
            "2025-11-24x16:00:00",
            "2025-11-24 16:00:00.x",
            "+025-11-24",
            "2025-11-2",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert_eq!(floor_hour(ms), 1_764_000_000_000);
        assert_eq!(floor_day(ms), 1_763_942_400_000);
        assert_eq!(display(0), "");
        assert_eq!(display(ms), "2025-11-24 16:00");
        assert_eq!(axis_label(ms, true), "16:00");
        assert_eq!(axis_label(ms, false), "11-24");
    }

    proptest::proptest! {
        #[test]
        fn formatting_and_parsing_round_trip(secs in -62_167_219_200i64..253_402_300_799) {
            let ms = secs * 1000;
            proptest::prop_assert_eq!(parse_datetime(&sql_datetime(ms)), Some(ms));
        }

        #[test]
        fn parsing_never_panics(text in ".{0,40}") {
            let _ = parse_datetime(&text);
        }
    }
}
