//! Traffic for the simulator: the built-in model of users' sessions, and traces.

use std::fmt;

/// One update as the simulator sees it: when it arrives, who sent it, and how many events it
/// yields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Update {
    /// Milliseconds since the start of the day.
    pub at_ms: f64,
    /// Events it yields (error events included).
    pub events: u32,
    /// Of those, error events.
    pub error_events: u32,
    /// The user who sent it (the stored pseudonym; the owner analytics tables count users).
    pub user: u64,
}

/// A line of a trace that is not `offset_ms,events,error_events[,user]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for TraceError {}

/// Parses a trace: CSV, one update per line, `offset_ms,events,error_events[,user]`; lines
/// starting with `#` and blank lines are skipped. Offsets need not be sorted. Without the
/// optional `user` (a whole number), each line is a user of its own: the most D1 writes the
/// owner analytics tables can cost for that trace.
pub fn parse_trace(text: &str) -> Result<Vec<Update>, TraceError> {
    let mut updates = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: String| TraceError {
            line: i + 1,
            reason,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (offset, events, errors, user) = match fields.as_slice() {
            [o, e, r] => (o, e, r, None),
            [o, e, r, u] => (o, e, r, Some(u)),
            _ => {
                return Err(error(format!(
                    "expected 3 or 4 fields (offset_ms,events,error_events[,user]), found {}",
                    fields.len()
                )))
            }
        };
        let user: u64 = match user {
            None => (i + 1) as u64,
            Some(u) => u
                .parse()
                .map_err(|_| error(format!("user {u:?} is not a whole number")))?,
        };
        let at_ms: f64 = offset
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| error(format!("offset_ms {offset:?} is not a number ≥ 0")))?;
        let events: u32 = events
            .parse()
            .map_err(|_| error(format!("events {events:?} is not a whole number")))?;
        let error_events: u32 = errors
            .parse()
            .map_err(|_| error(format!("error_events {errors:?} is not a whole number")))?;
        if error_events > events {
            return Err(error(format!(
                "error_events {error_events} is more than events {events}"
            )));
        }
        updates.push(Update {
            at_ms,
            events,
            error_events,
            user,
        });
    }
    updates.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    Ok(updates)
}

/// Sessions per user of the day's pool in the built-in model ([`sessions`]).
pub const SESSIONS_PER_USER: f64 = 2.0;

/// A small deterministic generator (xorshift64*), so a model run is reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.next_f64()).ln()
    }
}

/// The built-in model: users' sessions arrive at random (a Poisson process over the day); a
/// session is 1 + Geometric(mean 3) updates, 2–8 s apart (someone tapping through a menu). An
/// update is a command (30 %: update, command, handler = 3 events), a button press (20 %:
/// update, callback, handler, Bot API call, follow-up = 5) or anything else (50 %: update,
/// handler = 2); 2 % of updates add an error event. Sessions are generated until the day holds
/// `events_per_day` events.
///
/// Users come back: each session belongs to a user drawn at random from a pool of
/// [`SESSIONS_PER_USER`]-times fewer users than sessions (so a user active that day has about
/// 2.3 sessions, and about 86 % of the pool is active), from a generator of its own, so the
/// users do not change the timing of the updates.
pub fn sessions(events_per_day: u64, seed: u64) -> Vec<Update> {
    const DAY_MS: f64 = 86_400_000.0;
    const MEAN_UPDATES: f64 = 4.0;
    const MEAN_EVENTS_PER_UPDATE: f64 = 0.3 * 3.0 + 0.2 * 5.0 + 0.5 * 2.0 + 0.02;
    let mut rng = Rng::new(seed);
    let sessions_per_day = events_per_day as f64 / (MEAN_UPDATES * MEAN_EVENTS_PER_UPDATE);
    let mut users = Rng::new(seed ^ 0x5eed_05e5);
    let pool = (sessions_per_day / SESSIONS_PER_USER).ceil().max(1.0);
    let mean_gap_ms = DAY_MS / sessions_per_day.max(1e-9);
    let mut updates = Vec::new();
    let mut total = 0u64;
    let mut start = 0.0;
    while total < events_per_day {
        start += rng.exponential(mean_gap_ms);
        let start = start % DAY_MS;
        let mut at = start;
        let mut first = true;
        let user = 1 + (users.next_f64() * pool) as u64;
        while first || rng.next_f64() < 0.75 {
            first = false;
            let kind = rng.next_f64();
            let mut events = if kind < 0.3 {
                3
            } else if kind < 0.5 {
                5
            } else {
                2
            };
            let error_events = u32::from(rng.next_f64() < 0.02);
            events += error_events;
            updates.push(Update {
                at_ms: at,
                events,
                error_events,
                user,
            });
            total += u64::from(events);
            at += 2_000.0 + 6_000.0 * rng.next_f64();
            if total >= events_per_day || updates.len() % 30 == 29 {
                break;
            }
        }
    }
    updates.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    updates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_parse_and_bad_lines_are_clear_errors() {
        let trace = "# offset_ms,events,error_events\n2000,3,0\n\n0,5,1\n9,1,0,42\n";
        let updates = parse_trace(trace).unwrap();
        assert_eq!(updates.len(), 3);
        assert_eq!(updates[0].at_ms, 0.0, "sorted by time");
        assert_eq!(updates[0].error_events, 1);
        assert_eq!(
            updates.iter().map(|u| u.user).collect::<Vec<_>>(),
            vec![4, 42, 2],
            "a user per line unless given"
        );
        for (bad, why) in [
            ("1,2", "expected 3 or 4 fields"),
            ("x,2,0", "offset_ms"),
            ("1,2.5,0", "events"),
            ("1,2,3", "more than events"),
            ("-5,1,0", "offset_ms"),
            ("1,2,ч", "error_events"),
            ("1,2,0,x", "user"),
            ("1,2,0,3,4", "expected 3 or 4 fields"),
        ] {
            let error = parse_trace(bad).unwrap_err();
            assert_eq!(error.line, 1);
            assert!(error.reason.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn the_model_yields_the_asked_events_over_one_day() {
        let updates = sessions(10_000, 7);
        let events: u64 = updates.iter().map(|u| u64::from(u.events)).sum();
        assert!((10_000..10_010).contains(&events), "{events}");
        assert!(updates
            .iter()
            .all(|u| (0.0..86_400_000.0 + 300_000.0).contains(&u.at_ms)));
        assert_eq!(sessions(10_000, 7), updates, "reproducible");
        // Users come back: fewer distinct users than sessions, more than one.
        let distinct: std::collections::HashSet<u64> = updates.iter().map(|u| u.user).collect();
        assert!(
            distinct.len() > 100 && distinct.len() < 800,
            "{}",
            distinct.len()
        );
        // Bursty: most updates follow another within 10 s.
        let close = updates
            .windows(2)
            .filter(|w| w[1].at_ms - w[0].at_ms < 10_000.0)
            .count();
        assert!(close * 2 > updates.len(), "{close} of {}", updates.len());
    }
}
