//! The per-request tracker handed to application code.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use analytics_core::{DropCounts, Event, NewEvent, PropValue};

use crate::runtime::{self, now_ms};

/// The tracker's clock: the Worker's, shifted by a fixed offset (0 except in local dev, where
/// a request may carry the time its update belongs to: see `crate::devclock`).
#[derive(Debug, Clone, Copy)]
struct Clock {
    offset_ms: f64,
}

impl analytics_core::tracker::Clock for Clock {
    fn now_ms(&self) -> f64 {
        now_ms() + self.offset_ms
    }
}

/// Records the analytics events of one request (one unit of work).
///
/// Cheap to clone (a reference-counted handle): pass clones to helpers and futures. Recording
/// never blocks and never fails; events leave after the response, when the request's
/// [`crate::Analytics::send_after`] (or the Telegram layer) hands them to the isolate's outbox.
/// With `ANALYTICS=off` every tracker is a no-op that records nothing.
#[derive(Clone)]
pub struct Tracker {
    inner: Option<Rc<analytics_core::Tracker<Clock>>>,
    seen: Rc<Seen>,
}

/// What the library itself noted during the request, beside the events: the request's user,
/// the Bot API calls made through its client, and what was reported once already.
#[derive(Default)]
struct Seen {
    user_id: Cell<Option<i64>>,
    bot_api_calls: Cell<u32>,
    once: RefCell<Vec<(&'static str, i64)>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("enabled", &self.is_enabled())
            .field("events", &self.inner.as_ref().map_or(0, |t| t.len()))
            .finish()
    }
}

impl Tracker {
    /// A tracker that records into a fresh buffer, for events from `source`.
    pub(crate) fn new(source: analytics_core::Source) -> Tracker {
        Tracker::shifted(source, 0.0)
    }

    /// A tracker whose clock runs `offset_ms` off the Worker's (local dev only, see
    /// `crate::devclock`).
    pub(crate) fn shifted(source: analytics_core::Source, offset_ms: f64) -> Tracker {
        Tracker {
            inner: Some(Rc::new(analytics_core::Tracker::new(
                source,
                Clock { offset_ms },
                runtime::seed(),
            ))),
            seen: Rc::default(),
        }
    }

    /// A tracker that records nothing (`ANALYTICS=off`).
    pub fn noop() -> Tracker {
        Tracker {
            inner: None,
            seen: Rc::default(),
        }
    }

    /// Whether this tracker records (false with `ANALYTICS=off`).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Tracks a custom event with typed properties: `tracker.track("order_paid",
    /// [("amount_cents", PropValue::from(1999)), ("currency", "EUR".into())])`.
    ///
    /// Which properties become Analytics Engine columns you can query and aggregate
    /// (`docs/analytics-engine.md` has the whole column map):
    /// - the **first numeric** property (integer or float): its key in `blob18`, its value in
    ///   `double8` — so put the number you want to sum or average first;
    /// - the properties named `chat_type`, `command`, `method`, `outcome` and `source`: their
    ///   own columns (`blob12`–`blob16`); `currency` (`blob19`) and `delivery_lag_ms` (the
    ///   update event's Telegram → bot lag: `double9`, flagged in `double10`) likewise;
    /// - every other property: in one JSON object in `blob17` (bounded; whole entries only),
    ///   readable in SQL but not a column of its own.
    pub fn track<K, V>(&self, name: &str, properties: impl IntoIterator<Item = (K, V)>)
    where
        K: Into<String>,
        V: Into<PropValue>,
    {
        if let Some(t) = &self.inner {
            t.track(name, properties);
        }
    }

    /// Tracks a custom event on behalf of one user (instead of the request's user).
    pub fn track_user<K, V>(
        &self,
        user_id: i64,
        name: &str,
        properties: impl IntoIterator<Item = (K, V)>,
    ) where
        K: Into<String>,
        V: Into<PropValue>,
    {
        if let Some(t) = &self.inner {
            t.track_user(user_id, name, properties);
        }
    }

    /// Tracks an error: its kind is the error's type name, its message the error and its
    /// sources joined with `": "` (scrubbed, see [`Tracker::track_error_message`]); `location`
    /// says where (e.g. `checkout:charge`).
    pub fn track_error<E: std::error::Error + ?Sized>(&self, error: &E, location: &str) {
        if let Some(t) = &self.inner {
            let kind = analytics_core::tracker::short_type_name::<E>();
            let message = analytics_core::tracker::error_chain_message(error);
            t.track_error_message(kind, &analytics_core::scrub::scrub(&message), location);
        }
    }

    /// Tracks an error described by a kind and a message. The message is scrubbed
    /// (`analytics_core::scrub`: e-mail addresses, phone numbers, tokens); anything else in it
    /// is stored as it is.
    pub fn track_error_message(&self, kind: &str, message: &str, location: &str) {
        if let Some(t) = &self.inner {
            t.track_error_message(kind, &analytics_core::scrub::scrub(message), location);
        }
    }

    /// Tracks a measured duration in milliseconds.
    pub fn track_performance<K, V>(
        &self,
        name: &str,
        duration_ms: f64,
        properties: impl IntoIterator<Item = (K, V)>,
    ) where
        K: Into<String>,
        V: Into<PropValue>,
    {
        if let Some(t) = &self.inner {
            t.track_performance(name, duration_ms, properties);
        }
    }

    /// Awaits `future` and tracks how long it took as a performance event named `name`. Time
    /// futures that do I/O: deployed Workers advance the clock only across I/O.
    pub async fn time<F: Future>(&self, name: &str, future: F) -> F::Output {
        match &self.inner {
            Some(t) => t.time(name, future).await,
            None => future.await,
        }
    }

    /// Records a fully described event (for layers built on this crate).
    pub fn record(&self, event: NewEvent) {
        if let Some(t) = &self.inner {
            t.record(event);
        }
    }

    /// Sets the user and chat later events default to.
    pub fn set_context(&self, user_id: Option<i64>, chat_id: Option<i64>) {
        self.seen.user_id.set(user_id);
        if let Some(t) = &self.inner {
            t.set_context(user_id, chat_id);
        }
    }

    /// The user later events default to (raw: it never leaves the isolate as it is).
    pub(crate) fn user_id(&self) -> Option<i64> {
        self.seen.user_id.get()
    }

    /// Notes one Bot API call made through the library's client.
    pub(crate) fn note_bot_api_call(&self) {
        let calls = &self.seen.bot_api_calls;
        calls.set(calls.get().saturating_add(1));
    }

    /// How many Bot API calls were made through the library's client so far.
    pub(crate) fn bot_api_calls(&self) -> u32 {
        self.seen.bot_api_calls.get()
    }

    /// `true` the first time `what` about `id` is asked in this request, `false` after: for
    /// events reported at most once per request.
    pub(crate) fn first_time(&self, what: &'static str, id: i64) -> bool {
        let mut once = self.seen.once.borrow_mut();
        if once.contains(&(what, id)) {
            return false;
        }
        once.push((what, id));
        true
    }

    /// Makes later events belong to the unit of work `request_key` (see
    /// `analytics_core::ids::update_request_key`).
    pub fn set_request_key(&self, request_key: u64) {
        if let Some(t) = &self.inner {
            t.set_request_key(request_key);
        }
    }

    /// The clock, in ms since the epoch (the tracker's own: in local dev a request may shift
    /// it to the time its update belongs to).
    pub fn now_ms(&self) -> f64 {
        match &self.inner {
            Some(t) => t.now_ms(),
            None => now_ms(),
        }
    }

    /// Takes the recorded events and drop counts (for delivery).
    pub(crate) fn take(&self) -> (Vec<Event>, DropCounts) {
        match &self.inner {
            Some(t) => t.take_events(),
            None => (Vec::new(), DropCounts::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_what_the_request_noted() {
        let tracker = Tracker::noop();
        let handler = tracker.clone();
        handler.set_context(Some(9), None);
        handler.note_bot_api_call();
        handler.note_bot_api_call();
        assert_eq!((tracker.user_id(), tracker.bot_api_calls()), (Some(9), 2));
        assert!(tracker.first_time("x", 1));
        assert!(!handler.first_time("x", 1));
        assert!(handler.first_time("x", 2) && handler.first_time("y", 1));
        assert_eq!(
            Tracker::noop().bot_api_calls(),
            0,
            "each request counts its own"
        );
    }
}
