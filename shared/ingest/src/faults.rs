//! Dev-only fault switches of the consumer's D1 calls (never set in production; tests and the
//! chaos soak set them in `.dev.vars`):
//!
//! - `DEV_FAULT_D1_SWITCH=1`: before each D1 call the consumer looks for a table named
//!   [`SWITCH_TABLE`]; while it exists, every call fails as if D1 were unreachable. A test
//!   turns D1 "off" with `CREATE TABLE dev_fault_d1_down (x)` and back on with `DROP TABLE`,
//!   while the stack runs. While a table named [`CALM_TABLE`] exists, the failure rate below
//!   is suspended, so a test can end its chaos and wait for a recovery it can bound.
//! - `DEV_FAULT_D1_FAIL_RATE=0.05`: each D1 call fails with that probability; half of those
//!   failures happen before the call runs, half after it committed (a lost answer), the two
//!   ways a real D1 call fails.
//! - `DEV_FAULT_AE_SWITCH=1`: before each batch the consumer looks for a table named
//!   [`AE_SWITCH_TABLE`]; while it exists, the batch is handled as if the `ANALYTICS` binding
//!   were missing (the chaos soak removes Analytics Engine for a while this way).
//! - `DEV_FAULT_CONSUMER_CRASH=after_commit,after_points`: the first batch of an isolate to reach
//!   each named point behaves like an invocation that died there ([`crash_point_named`]).

/// The table whose existence turns D1 off when `DEV_FAULT_D1_SWITCH` is set.
pub const SWITCH_TABLE: &str = "dev_fault_d1_down";

/// The table whose existence suspends `DEV_FAULT_D1_FAIL_RATE` when `DEV_FAULT_D1_SWITCH` is
/// set.
pub const CALM_TABLE: &str = "dev_fault_d1_calm";

/// The query that looks for [`SWITCH_TABLE`] and [`CALM_TABLE`] (returns the names of those
/// that exist).
pub const SWITCH_PROBE_SQL: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
     AND name IN ('dev_fault_d1_down', 'dev_fault_d1_calm')";

/// The table whose existence makes the consumer handle a batch as if its `ANALYTICS` binding
/// were missing, when `DEV_FAULT_AE_SWITCH` is set.
pub const AE_SWITCH_TABLE: &str = "dev_fault_ae_down";

/// The query that counts [`AE_SWITCH_TABLE`] (one row, `n` = 0 or 1).
pub const AE_SWITCH_PROBE_SQL: &str =
    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'dev_fault_ae_down'";

/// Whether a dev-only switch variable is on: `1`, `true` or `on`.
pub fn switch_on(value: Option<&str>) -> bool {
    matches!(value.map(str::trim), Some("1" | "true" | "on"))
}

/// Whether `DEV_FAULT_CONSUMER_CRASH` (a comma-separated list, e.g. `after_commit,after_points`)
/// names `point`.
pub fn crash_point_named(value: Option<&str>, point: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|p| p.trim() == point))
}

/// Which switch tables exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    /// [`SWITCH_TABLE`] exists: D1 is "off".
    pub down: bool,
    /// [`CALM_TABLE`] exists: the failure rate is suspended.
    pub calm: bool,
}

impl Switches {
    /// From the table names [`SWITCH_PROBE_SQL`] returned.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Switches {
        names
            .into_iter()
            .fold(Switches::default(), |switches, name| Switches {
                down: switches.down || name == SWITCH_TABLE,
                calm: switches.calm || name == CALM_TABLE,
            })
    }
}

/// What an injected fault does to one D1 call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum D1Fault {
    /// No fault: run it.
    None,
    /// Fail without running it: D1 is switched off ([`SWITCH_TABLE`]).
    SwitchedOff,
    /// Fail without running it.
    FailBefore,
    /// Run it (it commits), then report a failure.
    FailAfterCommit,
}

/// The dev-only D1 fault settings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct D1Faults {
    /// `DEV_FAULT_D1_SWITCH=1`.
    pub switch: bool,
    /// `DEV_FAULT_D1_FAIL_RATE`, within 0..=1.
    pub fail_rate: f64,
}

impl D1Faults {
    /// From the Worker's variables: the switch is on for `1`, `true` or `on`; the rate is a
    /// number within 0..=1 (anything else means 0).
    pub fn from_vars(switch: Option<&str>, fail_rate: Option<&str>) -> D1Faults {
        D1Faults {
            switch: switch_on(switch),
            fail_rate: fail_rate
                .and_then(|r| r.trim().parse::<f64>().ok())
                .filter(|r| r.is_finite())
                .map(|r| r.clamp(0.0, 1.0))
                .unwrap_or(0.0),
        }
    }

    /// Whether any switch is set.
    pub fn any(&self) -> bool {
        self.switch || self.fail_rate > 0.0
    }

    /// The fault for one call given the switch tables (read only when `switch` is set):
    /// [`D1Fault::SwitchedOff`] while D1 is off, no drawn fault while calm, else [`Self::draw`].
    pub fn for_call(&self, switches: Switches, chance: f64, kind: f64) -> D1Fault {
        if self.switch && switches.down {
            D1Fault::SwitchedOff
        } else if self.switch && switches.calm {
            D1Fault::None
        } else {
            self.draw(chance, kind)
        }
    }

    /// The fault for one call, from two uniform random numbers in `0..1`.
    pub fn draw(&self, chance: f64, kind: f64) -> D1Fault {
        if chance < self.fail_rate {
            if kind < 0.5 {
                D1Fault::FailBefore
            } else {
                D1Fault::FailAfterCommit
            }
        } else {
            D1Fault::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_strictly_and_default_to_off() {
        assert_eq!(D1Faults::from_vars(None, None), D1Faults::default());
        assert!(!D1Faults::default().any());
        let f = D1Faults::from_vars(Some("1"), Some("0.05"));
        assert!(f.switch && f.any());
        assert_eq!(f.fail_rate, 0.05);
        assert_eq!(D1Faults::from_vars(Some("0"), Some("7")).fail_rate, 1.0);
        assert_eq!(D1Faults::from_vars(None, Some("NaN")).fail_rate, 0.0);
        assert_eq!(D1Faults::from_vars(None, Some("-1")).fail_rate, 0.0);
        assert!(!D1Faults::from_vars(Some("yes please"), None).switch);
    }

    #[test]
    fn about_the_rate_fails_half_before_half_after() {
        let f = D1Faults::from_vars(None, Some("0.05"));
        assert_eq!(f.draw(0.04, 0.1), D1Fault::FailBefore);
        assert_eq!(f.draw(0.04, 0.9), D1Fault::FailAfterCommit);
        assert_eq!(f.draw(0.05, 0.1), D1Fault::None);
        let failures = (0..1000)
            .filter(|i| f.draw(f64::from(*i) / 1000.0, 0.0) != D1Fault::None)
            .count();
        assert_eq!(failures, 50);
        assert_eq!(D1Faults::default().draw(0.0, 0.0), D1Fault::None);
    }

    #[test]
    fn the_crash_switch_names_one_or_several_points() {
        assert!(crash_point_named(Some("after_commit"), "after_commit"));
        assert!(!crash_point_named(Some("after_commit"), "after_points"));
        let both = Some("after_commit, after_points");
        assert!(crash_point_named(both, "after_commit"));
        assert!(crash_point_named(both, "after_points"));
        assert!(!crash_point_named(both, "after"));
        assert!(!crash_point_named(None, "after_commit"));
        assert!(switch_on(Some(" on")) && !switch_on(Some("0")) && !switch_on(None));
    }

    #[test]
    fn the_switch_tables_turn_d1_off_or_calm_the_rate() {
        let probe = |names: &[&str]| Switches::from_names(names.iter().copied());
        assert_eq!(probe(&[]), Switches::default());
        assert_eq!(
            probe(&[CALM_TABLE, SWITCH_TABLE]),
            Switches {
                down: true,
                calm: true
            }
        );
        assert_eq!(probe(&["other"]), Switches::default());
        let both = D1Faults::from_vars(Some("1"), Some("1"));
        assert_eq!(
            both.for_call(probe(&[SWITCH_TABLE]), 0.9, 0.9),
            D1Fault::SwitchedOff
        );
        assert_eq!(both.for_call(probe(&[CALM_TABLE]), 0.0, 0.0), D1Fault::None);
        assert_eq!(
            both.for_call(probe(&[CALM_TABLE, SWITCH_TABLE]), 0.0, 0.0),
            D1Fault::SwitchedOff,
            "off wins over calm"
        );
        assert_eq!(both.for_call(probe(&[]), 0.0, 0.0), D1Fault::FailBefore);
        let rate_only = D1Faults::from_vars(None, Some("1"));
        assert_eq!(
            rate_only.for_call(probe(&[SWITCH_TABLE, CALM_TABLE]), 0.0, 0.9),
            D1Fault::FailAfterCommit,
            "the tables mean nothing without DEV_FAULT_D1_SWITCH"
        );
    }
}
