//! Local dev only: a webhook request may carry the time its update belongs to, so `make demo`
//! can fill the local stack with history (`docs/demo.md`). Honoured only when the Worker's env
//! has `LOCAL_DEV=1` (set only in `.dev.vars`; `scripts/deploy.sh` refuses a deploy whose
//! config or secrets set it): without it the header is never even read, and events carry the
//! real time as always.
//!
//! With the switch and the header, the request's tracker runs on a clock shifted by
//! `simulated − now`, so every event of that update (automatic ones included) is dated at the
//! simulated time while durations stay real. The consumer, under the same switch, keeps such
//! old event times (`ingest_policy::backdate`).

use std::cell::OnceCell;

use worker::{Env, Request};

/// The request header with the simulated time: milliseconds since the Unix epoch.
pub const SIMULATED_TIME_HEADER: &str = "X-Dev-Simulated-Time";

/// How far back a simulated time may go (366 days).
pub const MAX_SIMULATED_AGE_MS: f64 = 366.0 * 24.0 * 3_600_000.0;

/// How far ahead of the clock a simulated time may be (a minute of clock difference between
/// the sender and the Worker).
pub const MAX_SIMULATED_LEAD_MS: f64 = 60_000.0;

thread_local! {
    /// `LOCAL_DEV=1`, read once per isolate (vars do not change while it lives).
    static LOCAL_DEV: OnceCell<bool> = const { OnceCell::new() };
}

/// A header value that is not a simulated time the switch accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{SIMULATED_TIME_HEADER} must be milliseconds since the epoch, at most 366 days in the past and not in the future (got {0:?})")]
pub struct BadSimulatedTime(pub String);

/// The clock offset (simulated − now, in ms) a header value asks for, or `None` without the
/// switch or the header. Pure: `local_dev` is the switch, `now_ms` the Worker's clock.
pub fn offset_from(
    local_dev: bool,
    header: Option<&str>,
    now_ms: f64,
) -> Result<Option<f64>, BadSimulatedTime> {
    let (true, Some(value)) = (local_dev, header) else {
        return Ok(None);
    };
    let simulated = value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite())
        .filter(|t| *t >= now_ms - MAX_SIMULATED_AGE_MS && *t <= now_ms + MAX_SIMULATED_LEAD_MS)
        .ok_or_else(|| BadSimulatedTime(value.chars().take(40).collect()))?;
    Ok(Some(simulated - now_ms))
}

/// The clock offset the request asks for: `None` unless the env has `LOCAL_DEV=1` (the header
/// is not read otherwise) and the request carries [`SIMULATED_TIME_HEADER`].
pub(crate) fn offset(req: &Request, env: &Env) -> Result<Option<f64>, BadSimulatedTime> {
    let local_dev = LOCAL_DEV.with(|l| {
        *l.get_or_init(|| crate::settings::text(env, "LOCAL_DEV").as_deref() == Some("1"))
    });
    if !local_dev {
        return Ok(None);
    }
    let header = req.headers().get(SIMULATED_TIME_HEADER).ok().flatten();
    offset_from(local_dev, header.as_deref(), crate::runtime::now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_764_000_000_000.0;
    const DAY: f64 = 86_400_000.0;

    #[test]
    fn without_the_switch_the_header_is_ignored() {
        let thirty_days_ago = (NOW - 30.0 * DAY).to_string();
        assert_eq!(offset_from(false, Some(&thirty_days_ago), NOW), Ok(None));
        assert_eq!(offset_from(false, Some("garbage"), NOW), Ok(None));
        assert_eq!(offset_from(true, None, NOW), Ok(None));
    }

    #[test]
    fn with_the_switch_the_header_shifts_the_clock() {
        let at = NOW - 30.0 * DAY;
        assert_eq!(
            offset_from(true, Some(&at.to_string()), NOW),
            Ok(Some(-30.0 * DAY))
        );
        assert_eq!(
            offset_from(true, Some(" 1764000000000 "), NOW),
            Ok(Some(0.0))
        );
    }

    #[test]
    fn a_bad_value_is_a_clear_error() {
        for bad in [
            "yesterday",
            "",
            "NaN",
            "inf",
            &(NOW - 400.0 * DAY).to_string(),
            &(NOW + DAY).to_string(),
        ] {
            let error = offset_from(true, Some(bad), NOW).unwrap_err();
            assert!(error.to_string().contains(SIMULATED_TIME_HEADER), "{error}");
        }
    }
}
