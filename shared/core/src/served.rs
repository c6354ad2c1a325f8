//! The events that serving any request yields, whatever the messenger: refused requests
//! counted in the isolate and reported later, and the duration of follow-up calls made after
//! the response. The Telegram policy (`telegram-policy`'s `auto`) adds the events of an update.

use crate::event::EventKind;
use crate::tracker::NewEvent;

/// The follow-up work's duration, when there was any.
pub fn follow_up_event(calls: usize, duration_ms: f64) -> Option<NewEvent> {
    (calls > 0).then(|| NewEvent {
        kind: Some(EventKind::Performance),
        name: "follow_up".into(),
        duration_ms: Some(duration_ms.max(0.0)),
        properties: vec![("calls".into(), calls.into())],
        ..NewEvent::default()
    })
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
