//! The events that serving any request yields, whatever the messenger: refused requests
//! counted in the isolate and reported later, and the duration of follow-up calls made after
//! the response. The Telegram policy (`telegram-policy`'s `auto`) adds the events of an update.

use crate::delivery::{SEND_RESERVE_MS, WAIT_UNTIL_LIMIT_MS};
use crate::event::EventKind;
use crate::tracker::NewEvent;

/// How long after the response all follow-up calls together may run, in ms: the `wait_until`
/// limit minus the send reserve, so the events they yield (timings, errors, the `follow_up`
/// event) can still be sent, and retried once, before the limit.
pub const FOLLOW_UP_BUDGET_MS: f64 = WAIT_UNTIL_LIMIT_MS - SEND_RESERVE_MS;

/// The least time left for a follow-up call to be started; with less it is not made (and
/// counted as `not_run`).
pub const MIN_FOLLOW_UP_CALL_MS: f64 = 500.0;

/// The largest per-call timeout a setting may ask for, in ms: below the follow-up budget, so
/// one hung call cannot take it all.
pub const MAX_CALL_TIMEOUT_MS: f64 = 20_000.0;

/// Reads a per-call timeout setting: unset, unreadable, not finite or not positive means
/// `default_ms`; the value is cut to [`MAX_CALL_TIMEOUT_MS`].
pub fn call_timeout_from_setting(setting: Option<&str>, default_ms: f64) -> f64 {
    setting
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(default_ms)
        .min(MAX_CALL_TIMEOUT_MS)
}

/// When the follow-up calls of a response ready at `response_at_ms` must all be done: one
/// deadline for all of them.
pub fn follow_up_deadline(response_at_ms: f64) -> f64 {
    response_at_ms + FOLLOW_UP_BUDGET_MS
}

/// The timeout of the next follow-up call at `now_ms`: its own timeout, cut to what is left
/// before `deadline_ms`; `None` (not made) with less than [`MIN_FOLLOW_UP_CALL_MS`] left.
pub fn follow_up_timeout(call_timeout_ms: f64, deadline_ms: f64, now_ms: f64) -> Option<f64> {
    let left = deadline_ms - now_ms;
    (left >= MIN_FOLLOW_UP_CALL_MS).then(|| call_timeout_ms.min(left))
}

/// What became of a reply's follow-up calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowUps {
    /// Calls made (each tracked with its outcome, a timeout included).
    pub made: usize,
    /// Calls not made: the follow-up deadline had passed.
    pub not_run: usize,
}

/// The follow-up work's duration, when there was any: `calls` made, and `not_run` when the
/// deadline left calls out.
pub fn follow_up_event(follow_ups: FollowUps, duration_ms: f64) -> Option<NewEvent> {
    let FollowUps { made, not_run } = follow_ups;
    let mut properties = vec![("calls".into(), made.into())];
    if not_run > 0 {
        properties.push(("not_run".into(), not_run.into()));
    }
    (made + not_run > 0).then(|| NewEvent {
        kind: Some(EventKind::Performance),
        name: "follow_up".into(),
        duration_ms: Some(duration_ms.max(0.0)),
        properties,
        ..NewEvent::default()
    })
}

/// The follow-up work of a request that a panic cut off after `duration_ms`: the call under
/// way and those not yet made are lost, and this event says so (`interrupted`: `panic`).
pub fn interrupted_follow_up_event(duration_ms: f64) -> NewEvent {
    NewEvent {
        kind: Some(EventKind::Performance),
        name: "follow_up".into(),
        duration_ms: Some(duration_ms.max(0.0)),
        properties: vec![("interrupted".into(), "panic".into())],
        ..NewEvent::default()
    }
}

/// Refused webhook requests, one `webhook_rejected` event per reason with its count. They
/// belong to no user and no chat: record them with a tracker of their own.
pub fn rejection_events(counts: &[(&'static str, u32)]) -> Vec<NewEvent> {
    counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(reason, count)| NewEvent {
            name: "webhook_rejected".into(),
            properties: vec![
                ("reason".into(), (*reason).into()),
                ("count".into(), (*count).into()),
            ],
            ..NewEvent::default()
        })
        .collect()
}

/// Refused requests counted in an isolate, reported with a later accepted update so a flood of
/// bad requests costs no queue messages of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectionCounts(Vec<(&'static str, u32)>);

impl RejectionCounts {
    /// Counts one refusal.
    pub fn count(&mut self, reason: &'static str) {
        match self.0.iter_mut().find(|(k, _)| *k == reason) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => self.0.push((reason, 1)),
        }
    }

    /// Takes the counts so far.
    pub fn take(&mut self) -> Vec<(&'static str, u32)> {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PropValue;
    use crate::tracker::Tracker;

    #[test]
    fn follow_ups_share_one_deadline_inside_the_wait_until_limit() {
        // Reported by a review: each follow-up could take its own (unbounded) timeout, so three
        // hung ones overran wait_until's 30 s and their events were lost uncounted.
        let call = call_timeout_from_setting(Some("60000"), 10_000.0);
        assert_eq!(call, MAX_CALL_TIMEOUT_MS, "the setting is bounded");
        let response_at = 1_000.0;
        let deadline = follow_up_deadline(response_at);
        // Three calls that each hang until their timeout.
        let (mut now, mut made) = (response_at + 5.0, 0);
        while let Some(timeout) = follow_up_timeout(call, deadline, now) {
            now += timeout;
            made += 1;
            if made == 3 {
                break;
            }
        }
        assert_eq!(made, 2, "the second call is cut to what is left; no third");
        assert!(now <= deadline);
        // What is left after the deadline is a send and its retry: inside the limit.
        assert!(now - response_at + SEND_RESERVE_MS <= WAIT_UNTIL_LIMIT_MS);
        let event = follow_up_event(FollowUps { made, not_run: 1 }, now - response_at).unwrap();
        assert_eq!(
            event.properties,
            vec![
                ("calls".to_string(), PropValue::Int(2)),
                ("not_run".to_string(), PropValue::Int(1))
            ]
        );
    }

    #[test]
    fn follow_ups_a_panic_cut_off_say_so() {
        let event = interrupted_follow_up_event(-3.0);
        assert_eq!(event.name, "follow_up");
        assert_eq!(event.duration_ms, Some(0.0));
        assert_eq!(
            event.properties,
            vec![("interrupted".to_string(), PropValue::from("panic"))]
        );
    }

    #[test]
    fn call_timeouts_read_from_a_setting() {
        assert_eq!(call_timeout_from_setting(None, 10_000.0), 10_000.0);
        assert_eq!(call_timeout_from_setting(Some("2500"), 10_000.0), 2_500.0);
        for bad in ["", "0", "-5", "NaN", "inf", "soon"] {
            assert_eq!(
                call_timeout_from_setting(Some(bad), 10_000.0),
                10_000.0,
                "{bad}"
            );
        }
        assert_eq!(follow_up_timeout(5_000.0, 10_000.0, 9_600.0), None);
        assert_eq!(follow_up_timeout(5_000.0, 10_000.0, 8_000.0), Some(2_000.0));
        assert_eq!(follow_up_timeout(5_000.0, 10_000.0, 0.0), Some(5_000.0));
        assert!(follow_up_event(FollowUps::default(), 0.0).is_none());
        let plain = follow_up_event(
            FollowUps {
                made: 1,
                not_run: 0,
            },
            3.0,
        )
        .unwrap();
        assert_eq!(plain.properties.len(), 1, "no not_run when all ran");
    }

    #[test]
    fn rejected_requests_carry_no_user() {
        // Reported by a review: rejections took the user and chat of the next accepted update.
        let mut counts = RejectionCounts::default();
        counts.count("unauthorized");
        counts.count("unauthorized");
        let update_tracker = Tracker::new(crate::samples::source(), || 0.0, [1; 16]);
        update_tracker.set_context(Some(42), Some(42));
        // The layer records rejections with a tracker of their own, never the update's.
        let rejections = Tracker::new(crate::samples::source(), || 0.0, [2; 16]);
        for event in rejection_events(&counts.take()) {
            rejections.record(event);
        }
        let (events, _) = rejections.take_events();
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].user_id, events[0].chat_id), (None, None));
        assert_eq!(events[0].properties[1], ("count".into(), PropValue::Int(2)));
        assert!(counts.take().is_empty());
    }

    #[test]
    fn rejected_webhooks_become_one_event_per_reason() {
        let events = rejection_events(&[("unauthorized", 1_000), ("too_large", 0)]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "webhook_rejected");
        assert_eq!(
            events[0].properties,
            vec![
                ("reason".to_string(), PropValue::from("unauthorized")),
                ("count".to_string(), PropValue::Int(1000))
            ]
        );
    }
}
