//! Local dev only: keeping old event times. `make demo` sends 90 days of synthetic updates
//! through the real pipeline, each dated by the bot's dev-only simulated clock
//! (`bot-analytics`'s `X-Dev-Simulated-Time`, honoured only with `LOCAL_DEV=1`). The consumer's
//! normal correction ([`analytics_core::skew::correct_timestamp`]) would pull those times up to
//! at most an hour before their envelope was sent; under the same switch the consumer calls
//! [`trust_event_times`] after [`crate::plan_batch`], which keeps each event's own time,
//! bounded to [`MAX_BACKDATE_MS`] before the batch and never after it.
//!
//! The consumer calls it only when its env has `LOCAL_DEV=1` (set only in `.dev.vars`;
//! `scripts/deploy.sh` refuses to deploy a config or secret that sets it).

use analytics_core::wire::decode;

use crate::plan::{accept_timed, BatchPlan, Content};

/// How far before the batch an event time is kept (366 days); an earlier one is raised to it.
pub const MAX_BACKDATE_MS: i64 = 366 * 24 * 60 * 60 * 1000;

/// The time an event keeps under the dev switch: its own, within
/// `[now_ms − MAX_BACKDATE_MS, now_ms]`.
pub fn trusted_time(event_ms: i64, now_ms: i64) -> i64 {
    event_ms
        .max(now_ms.saturating_sub(MAX_BACKDATE_MS))
        .min(now_ms)
}

/// Rebuilds every accepted envelope of `plan` (items and waiting items) with its events' own
/// times ([`trusted_time`]) instead of the skew-corrected ones. Everything else about an item
/// stays as [`crate::plan_batch`] decided it.
pub fn trust_event_times(plan: &mut BatchPlan, now_ms: i64) {
    for item in plan.items.iter_mut().chain(plan.waiting.iter_mut()) {
        let (Content::Envelope(accepted), Ok(bytes)) = (&mut item.content, &item.body) else {
            continue;
        };
        if let Ok(envelope) = decode(bytes) {
            **accepted = accept_timed(&envelope, bytes, |event_ms| trusted_time(event_ms, now_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{plan_batch, BatchContext, IncomingMessage};
    use analytics_core::datapoint::MAX_POINTS_PER_INVOCATION;
    use analytics_core::delivery::pack;
    use analytics_core::samples;

    const NOW: i64 = 1_764_000_000_000;
    const DAY: i64 = 86_400_000;

    /// The event time column (`double3`) of each point of the plan.
    fn times(plan: &BatchPlan) -> Vec<i64> {
        plan.items
            .iter()
            .filter_map(|i| i.accepted())
            .flat_map(|a| a.events.iter().map(|e| e.point.doubles[2] as i64))
            .collect()
    }

    #[test]
    fn old_event_times_are_kept_only_when_trusted() {
        let mut events = samples::typical_events();
        let old = NOW - 60 * DAY;
        for event in &mut events {
            event.timestamp = chrono::DateTime::from_timestamp_millis(old).unwrap();
        }
        // Sent now (a coalesced envelope of old updates), received a second later.
        let bytes = pack(
            &samples::source(),
            (NOW - 1_000) as f64,
            events.clone(),
            Default::default(),
        )
        .into_iter()
        .next()
        .expect("one message")
        .bytes;
        let messages = [IncomingMessage {
            id: "m1".into(),
            attempts: 1,
            body: Ok(bytes),
        }];
        let ctx = BatchContext {
            queue: "telegram-analytics",
            now_ms: NOW,
            point_budget: MAX_POINTS_PER_INVOCATION,
        };
        let mut plan = plan_batch(&messages, &ctx);
        let corrected = times(&plan);
        assert_eq!(corrected.len(), events.len());
        // The normal path clamps them to an hour before the send.
        assert!(
            corrected.iter().all(|t| *t >= NOW - 2 * 3_600_000),
            "{corrected:?}"
        );
        let key = plan.items[0].accepted().unwrap().key.clone();

        trust_event_times(&mut plan, NOW);
        let trusted = times(&plan);
        assert!(trusted.iter().all(|t| *t == old), "{trusted:?}");
        assert_eq!(plan.items[0].accepted().unwrap().key, key, "same envelope");
    }

    #[test]
    fn trusted_times_stay_within_a_year_and_never_in_the_future() {
        assert_eq!(trusted_time(NOW - 90 * DAY, NOW), NOW - 90 * DAY);
        assert_eq!(trusted_time(0, NOW), NOW - MAX_BACKDATE_MS);
        assert_eq!(trusted_time(NOW + DAY, NOW), NOW);
        assert_eq!(trusted_time(i64::MIN, i64::MIN), i64::MIN);
    }
}
