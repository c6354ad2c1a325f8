//! The time ranges a user can pick, and the hour-aligned windows they cover. A range comes from
//! a fixed set, so what reaches SQL is always one of a few known values.

use crate::timefmt::{floor_day, floor_hour, HOUR_MS};

/// A range the user can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
}

impl Range {
    /// Every range, in the order the picker shows them.
    pub const ALL: [Range; 3] = [Range::Day, Range::Week, Range::Month];

    /// Parses the `range` query parameter (`24h`, `7d` or `30d`).
    pub fn parse(text: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.as_param() == text)
    }

    /// The query parameter value.
    pub fn as_param(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    /// How the pages name it.
    pub fn label(self) -> &'static str {
        match self {
            Range::Day => "last 24 hours",
            Range::Week => "last 7 days",
            Range::Month => "last 30 days",
        }
    }

    /// Its length in hours (also the number of hourly buckets of its window).
    pub fn hours(self) -> i64 {
        match self {
            Range::Day => 24,
            Range::Week => 7 * 24,
            Range::Month => 30 * 24,
        }
    }

    /// The window this range covers at `now_ms`.
    pub fn window(self, now_ms: i64) -> Window {
        let end = floor_hour(now_ms) + HOUR_MS;
        Window {
            start_ms: end - self.hours() * HOUR_MS,
            end_ms: end,
        }
    }
}

/// A time window of whole hours, `[start_ms, end_ms)`: the last bucket is the current hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant included (an hour boundary), ms since the epoch.
    pub start_ms: i64,
    /// First instant after the window (the end of the current hour).
    pub end_ms: i64,
}

impl Window {
    /// The start of each hourly bucket, oldest first.
    pub fn hours(&self) -> Vec<i64> {
        (self.start_ms..self.end_ms)
            .step_by(HOUR_MS as usize)
            .collect()
    }

    /// The index of the hourly bucket (as in [`Window::hours`]) that holds `at_ms`; `None` when
    /// `at_ms` is outside `[start_ms, end_ms)`.
    pub fn bucket(&self, at_ms: i64) -> Option<usize> {
        if at_ms < self.start_ms || at_ms >= self.end_ms {
            return None;
        }
        usize::try_from((at_ms - self.start_ms) / HOUR_MS).ok()
    }

    /// The start of each UTC day the window touches, oldest first.
    pub fn days(&self) -> Vec<i64> {
        let first = floor_day(self.start_ms);
        (first..self.end_ms)
            .step_by(crate::timefmt::DAY_MS as usize)
            .collect()
    }

    /// The start of the first UTC day the window touches (daily counts start here, so every
    /// day shown is counted whole).
    pub fn first_day_ms(&self) -> i64 {
        floor_day(self.start_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_fixed_set() {
        for r in Range::ALL {
            assert_eq!(Range::parse(r.as_param()), Some(r));
        }
        for bad in [
            "",
            "24H",
            "1d",
            "7d ",
            "'; DROP TABLE error_groups; --",
            "<script>",
        ] {
            assert_eq!(Range::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn windows_are_whole_hours_ending_with_the_current_one() {
        let now = 1_764_000_000_123 + 25 * 60_000; // 16:25 UTC
        for r in Range::ALL {
            let w = r.window(now);
            assert_eq!(w.start_ms % HOUR_MS, 0);
            assert_eq!(w.end_ms, 1_764_000_000_000 + HOUR_MS);
            assert!(w.start_ms <= now && now < w.end_ms);
            assert_eq!(w.hours().len() as i64, r.hours());
        }
        let day = Range::Day.window(now);
        assert_eq!(day.days().len(), 2, "24 hours touch two UTC days");
        assert_eq!(Range::Month.window(now).days().len(), 31);
        assert_eq!(day.first_day_ms() % crate::timefmt::DAY_MS, 0);
    }

    #[test]
    fn buckets_cover_exactly_the_window() {
        let now = 1_764_000_000_123 + 25 * 60_000;
        for r in Range::ALL {
            let w = r.window(now);
            let hours = w.hours();
            for (i, start) in hours.iter().enumerate() {
                assert_eq!(w.bucket(*start), Some(i));
                assert_eq!(w.bucket(start + HOUR_MS - 1), Some(i));
            }
            assert_eq!(w.bucket(w.start_ms - 1), None);
            assert_eq!(w.bucket(w.end_ms), None);
            assert_eq!(w.bucket(i64::MIN), None);
            assert_eq!(w.bucket(i64::MAX), None);
        }
    }
}
