//! Automatic tracking: the events every update yields without code in the handlers — the update
//! itself (kind, chat type), its command or callback, the handler's duration, refused webhook
//! requests, and the follow-up work. Bot API calls track themselves (see `bot_api`).

use std::cell::RefCell;

use shared::telegram::Update;
use shared::{EventKind, NewEvent};

use crate::analytics::BotTracker;
use crate::bot::Plan;

thread_local! {
    /// Webhook requests refused since the last accepted update, by reason.
    static REJECTED: RefCell<Vec<(String, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Counts a refused webhook request; reported with the next accepted update, so a flood of bad
/// requests costs no queue messages of its own.
pub fn count_rejection(reason: &str) {
    REJECTED.with(|r| {
        let mut r = r.borrow_mut();
        match r.iter_mut().find(|(k, _)| k == reason) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => r.push((reason.to_string(), 1)),
        }
    });
}

/// The automatic events of one accepted update. `received_at` is when the request arrived.
pub fn track_update(tracker: &BotTracker, update: &Update, plan: &Plan, received_at: f64) {
    let chat = update.chat();
    tracker.set_context(update.user_id(), chat.map(|c| c.id));
    let mut properties = vec![("update_id".to_string(), update.update_id.into())];
    if let Some(chat) = chat {
        properties.push(("chat_type".into(), chat.kind.clone().into()));
    }
    if !update.known {
        properties.push(("unknown_kind".into(), update.kind.clone().into()));
    }
    tracker.record(NewEvent {
        kind: Some(EventKind::UpdateReceived),
        name: if update.known {
            update.kind.clone()
        } else {
            "unknown".into()
        },
        properties,
        ..NewEvent::default()
    });
    if let Some(command) = &plan.command {
        tracker.record(NewEvent {
            kind: Some(EventKind::Command),
            name: command.clone(),
            properties: plan
                .command_properties
                .iter()
                .map(|(k, v)| (k.clone(), v.into()))
                .collect(),
            ..NewEvent::default()
        });
    }
    if let Some(data) = &plan.callback {
        tracker.record(NewEvent {
            kind: Some(EventKind::Callback),
            name: data.split(':').next().unwrap_or_default().to_string(),
            properties: vec![("data".into(), data.into())],
            ..NewEvent::default()
        });
    }
    let rejected = REJECTED.with(|r| std::mem::take(&mut *r.borrow_mut()));
    tracker.track_rejected_webhooks(&rejected);
    let mut handler = vec![("update_kind", update.kind.clone())];
    if let Some(command) = &plan.command {
        handler.push(("command", command.clone()));
    }
    tracker.track_performance("handler", tracker.now_ms() - received_at, handler);
}

/// The duration of the follow-up work after the response, when there was any.
pub fn track_follow_ups(tracker: &BotTracker, calls: usize, started_at: f64) {
    if calls > 0 {
        tracker.track_performance(
            "follow_up",
            tracker.now_ms() - started_at,
            [("calls", calls.to_string())],
        );
    }
}
