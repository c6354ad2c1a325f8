//! The tracker: what a bot (or any workers-rs app) calls to record events during one unit of
//! work. Recording is cheap (no encoding); the events are handed to the isolate's outbox
//! ([`crate::delivery`]) after the response. No I/O happens here.

use std::cell::RefCell;
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::delivery::{self, Message};
use crate::event::{
    bound_properties, bounded, ErrorDetails, Event, EventKind, PropValue, MAX_ERROR_FIELD_BYTES,
    MAX_ERROR_MESSAGE_BYTES, MAX_NAME_BYTES,
};
use crate::ids::EventIds;
use crate::wire::{DropCounts, Source};

/// Most events one tracker buffers; further events are counted as `buffer_full`.
pub const MAX_BUFFERED_EVENTS: usize = 1_000;

/// A source of time in milliseconds since the Unix epoch (fractions allowed).
///
/// The Worker passes `Date.now()`; tests pass a fake they move by hand.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> f64;
}

impl<F: Fn() -> f64> Clock for F {
    fn now_ms(&self) -> f64 {
        self()
    }
}

/// Everything one event may carry besides its id and timestamp, for [`Tracker::record`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewEvent {
    /// What kind of event this is; `None` means [`EventKind::Custom`].
    pub kind: Option<EventKind>,
    /// The event name.
    pub name: String,
    /// The Telegram user, if any.
    pub user_id: Option<i64>,
    /// The Telegram chat, if any.
    pub chat_id: Option<i64>,
    /// A duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// Error details.
    pub error: Option<ErrorDetails>,
    /// Properties (bounded when recorded).
    pub properties: Vec<(String, PropValue)>,
}

#[derive(Debug)]
struct State {
    ids: EventIds,
    events: Vec<Event>,
    dropped: DropCounts,
    user_id: Option<i64>,
    chat_id: Option<i64>,
}

/// Records events for one request (or any unit of work) and flushes them as queue messages.
///
/// All methods take `&self`, so handlers and middleware can share one tracker (for example
/// behind an `Rc`) and record while a timed future runs.
pub struct Tracker<C: Clock> {
    source: Source,
    clock: C,
    state: RefCell<State>,
}

impl<C: Clock> Tracker<C> {
    /// A tracker for events from `source`, timed by `clock`, with ids seeded by `seed`.
    pub fn new(source: Source, clock: C, seed: [u8; 16]) -> Self {
        Tracker {
            source,
            clock,
            state: RefCell::new(State {
                ids: EventIds::random(seed),
                events: Vec::new(),
                dropped: DropCounts::default(),
                user_id: None,
                chat_id: None,
            }),
        }
    }

    /// The tracker's clock, in milliseconds since the epoch.
    pub fn now_ms(&self) -> f64 {
        self.clock.now_ms()
    }

    /// Sets the user and chat that later events default to (the update's sender and chat).
    pub fn set_context(&self, user_id: Option<i64>, chat_id: Option<i64>) {
        let mut state = self.state.borrow_mut();
        state.user_id = user_id;
        state.chat_id = chat_id;
    }

    /// Makes later events belong to the unit of work `request_key` (for a Telegram update:
    /// [`crate::ids::update_request_key`]), so a redelivery of it is recognised downstream.
    pub fn set_request_key(&self, request_key: u64) {
        self.state.borrow_mut().ids.set_request_key(request_key);
    }

    /// Adds drops that happened elsewhere (e.g. a failed earlier send) so they ride along.
    pub fn carry_dropped(&self, dropped: DropCounts) {
        self.state.borrow_mut().dropped.add(dropped);
    }

    /// How many events are buffered.
    pub fn len(&self) -> usize {
        self.state.borrow().events.len()
    }

    /// Whether no event is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a fully described event; applies every bound. Returns the event id, or `None`
    /// when the buffer was full (the drop is counted).
    pub fn record(&self, new: NewEvent) -> Option<uuid::Uuid> {
        let now = self.clock.now_ms();
        let mut state = self.state.borrow_mut();
        if state.events.len() >= MAX_BUFFERED_EVENTS {
            state.dropped.buffer_full = state.dropped.buffer_full.saturating_add(1);
            return None;
        }
        let mut truncated = 0;
        let name = bounded(new.name, MAX_NAME_BYTES, &mut truncated);
        let error = new.error.map(|e| ErrorDetails {
            kind: bounded(e.kind, MAX_ERROR_FIELD_BYTES, &mut truncated),
            message: bounded(e.message, MAX_ERROR_MESSAGE_BYTES, &mut truncated),
            location: e
                .location
                .map(|l| bounded(l, MAX_ERROR_FIELD_BYTES, &mut truncated)),
            group_key: e
                .group_key
                .map(|k| bounded(k, MAX_ERROR_FIELD_BYTES, &mut truncated)),
        });
        let properties = bound_properties(new.properties, &mut truncated);
        let ms = now.floor() as i64;
        let id = state.ids.next_id();
        let event = Event {
            id,
            timestamp: DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default(),
            kind: new.kind.unwrap_or(EventKind::Custom),
            name,
            user_id: new.user_id.or(state.user_id),
            chat_id: new.chat_id.or(state.chat_id),
            duration_ms: new.duration_ms.filter(|d| d.is_finite()),
            error,
            properties,
            truncated,
        };
        state.events.push(event);
        Some(id)
    }

    /// Tracks a custom event with properties.
    pub fn track<K, V>(&self, name: &str, properties: impl IntoIterator<Item = (K, V)>)
    where
        K: Into<String>,
        V: Into<PropValue>,
    {
        self.record(NewEvent {
            name: name.into(),
            properties: into_pairs(properties),
            ..NewEvent::default()
        });
    }

    /// Tracks a custom event on behalf of one user.
    pub fn track_user<K, V>(
        &self,
        user_id: i64,
        name: &str,
        properties: impl IntoIterator<Item = (K, V)>,
    ) where
        K: Into<String>,
        V: Into<PropValue>,
    {
        self.record(NewEvent {
            name: name.into(),
            user_id: Some(user_id),
            properties: into_pairs(properties),
            ..NewEvent::default()
        });
    }

    /// Tracks an error from any `std::error::Error`: the kind is the error's type name, the
    /// message joins the error and its sources with `": "`.
    pub fn track_error<E: std::error::Error + ?Sized>(&self, error: &E, location: &str) {
        self.track_error_message(
            short_type_name::<E>(),
            &error_chain_message(error),
            location,
        );
    }

    /// Tracks an error described by a kind and a message.
    pub fn track_error_message(&self, kind: &str, message: &str, location: &str) {
        self.record(NewEvent {
            kind: Some(EventKind::Error),
            name: kind.into(),
            error: Some(ErrorDetails {
                kind: kind.into(),
                message: message.into(),
                location: Some(location.into()),
                group_key: None,
            }),
            ..NewEvent::default()
        });
    }

    /// Tracks a measured duration.
    pub fn track_performance<K, V>(
        &self,
        name: &str,
        duration_ms: f64,
        properties: impl IntoIterator<Item = (K, V)>,
    ) where
        K: Into<String>,
        V: Into<PropValue>,
    {
        self.record(NewEvent {
            kind: Some(EventKind::Performance),
            name: name.into(),
            duration_ms: Some(duration_ms),
            properties: into_pairs(properties),
            ..NewEvent::default()
        });
    }

    /// Runs `future` and tracks how long it took as a performance event named `name`.
    pub async fn time<F: Future>(&self, name: &str, future: F) -> F::Output {
        let start = self.clock.now_ms();
        let output = future.await;
        let elapsed = (self.clock.now_ms() - start).max(0.0);
        self.track_performance(name, elapsed, std::iter::empty::<(String, PropValue)>());
        output
    }

    /// Takes the buffered events and the drop counts carried so far, without encoding them
    /// (the isolate's outbox encodes them, see [`crate::delivery`]).
    pub fn take_events(&self) -> (Vec<Event>, DropCounts) {
        let mut state = self.state.borrow_mut();
        (
            std::mem::take(&mut state.events),
            std::mem::take(&mut state.dropped),
        )
    }

    /// The source events are sent as.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Takes every buffered event and packs it into queue messages at once (no coalescing),
    /// each within the queue's limits; the drop counts carried so far ride in the first one.
    /// An event too large even alone is counted as `oversize`.
    pub fn flush(&self) -> Vec<Message> {
        let (events, carried) = self.take_events();
        delivery::pack(&self.source, self.clock.now_ms(), events, carried)
    }
}

fn into_pairs<K: Into<String>, V: Into<PropValue>>(
    properties: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, PropValue)> {
    properties
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// An error's message followed by the messages of its sources, joined with `": "`: the
/// message an error event stores.
pub fn error_chain_message<E: std::error::Error + ?Sized>(error: &E) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The last path segment of a type name, generics kept: `my::Error` → `Error`.
pub fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    let start = base.rfind("::").map(|i| i + 2).unwrap_or(0);
    &full[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::MAX_EVENTS_PER_MESSAGE;
    use crate::wire::{self, MAX_MESSAGE_BYTES};
    use std::cell::Cell;
    use std::rc::Rc;

    fn tracker() -> (Tracker<impl Clock>, Rc<Cell<f64>>) {
        let time = Rc::new(Cell::new(1_764_000_000_000.0));
        let clock_time = time.clone();
        let tracker = Tracker::new(crate::samples::source(), move || clock_time.get(), [3; 16]);
        (tracker, time)
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn track_helpers_fill_the_event() {
        let (t, _) = tracker();
        t.set_context(Some(42), Some(-100_123));
        t.track("signup", [("plan", "free")]);
        t.track_user(7, "paid", [("plan", "pro")]);
        t.track_performance("handler", 3.5, [("command", "start")]);
        t.track_error(&Outer(std::io::Error::other("disk gone")), "handler:/start");
        let flush = t.flush();
        let envelope = wire::decode(&flush[0].bytes).unwrap();
        let e = &envelope.events;
        assert_eq!(e.len(), 4);
        assert_eq!((e[0].user_id, e[0].chat_id), (Some(42), Some(-100_123)));
        assert_eq!(e[1].user_id, Some(7));
        assert_eq!(e[2].kind, EventKind::Performance);
        assert_eq!(e[2].duration_ms, Some(3.5));
        let error = e[3].error.as_ref().unwrap();
        assert_eq!(error.kind, "Outer");
        assert_eq!(error.message, "outer failed: disk gone");
        assert_eq!(error.location.as_deref(), Some("handler:/start"));
        assert!(t.is_empty(), "flush empties the buffer");
    }

    #[test]
    fn time_measures_the_future_with_the_clock() {
        let (t, time) = tracker();
        let out = futures_lite_block_on(t.time("work", async {
            time.set(time.get() + 25.0);
            7
        }));
        assert_eq!(out, 7);
        let envelope = wire::decode(&t.flush()[0].bytes).unwrap();
        assert_eq!(envelope.events[0].duration_ms, Some(25.0));
        assert_eq!(envelope.events[0].name, "work");
    }

    #[test]
    fn flush_splits_large_sets_within_the_message_limit() {
        let (t, _) = tracker();
        let value = "x".repeat(200);
        for i in 0..2_000 {
            if i >= MAX_BUFFERED_EVENTS {
                break;
            }
            let props: Vec<(String, PropValue)> = (0..16)
                .map(|k| (format!("key{k}"), value.clone().into()))
                .collect();
            t.track("big", props);
        }
        let flush = t.flush();
        assert!(flush.len() > 1, "{} messages", flush.len());
        let mut total = 0;
        for m in &flush {
            assert!(m.bytes.len() <= MAX_MESSAGE_BYTES, "{}", m.bytes.len());
            assert!(m.events as usize <= MAX_EVENTS_PER_MESSAGE);
            total += wire::decode(&m.bytes).unwrap().events.len();
        }
        assert_eq!(total, MAX_BUFFERED_EVENTS);
    }

    #[test]
    fn messages_fit_the_queues_limit_of_128000_bytes() {
        // Cloudflare Queues and miniflare both refuse a message over 128,000 bytes (128 KB in
        // decimal), metadata included; 131,072 (128 KiB) is too much.
        const QUEUES_LIMIT: usize = 128_000;
        let (t, _) = tracker();
        for _ in 0..MAX_EVENTS_PER_MESSAGE {
            // About 5.2 KB each: 25 of them make about 130,000 bytes.
            let props: Vec<(String, PropValue)> = (0..16)
                .map(|k| (format!("{k:0>64}"), "v".repeat(250).into()))
                .collect();
            t.track("big", props);
        }
        let flush = t.flush();
        let sizes: Vec<usize> = flush.iter().map(|m| m.bytes.len()).collect();
        for size in &sizes {
            assert!(*size < QUEUES_LIMIT, "message sizes {sizes:?}");
        }
        let events: u32 = flush.iter().map(|m| m.events).sum();
        assert_eq!(events as usize, MAX_EVENTS_PER_MESSAGE);
    }

    #[test]
    fn full_buffer_counts_drops_and_they_ride_in_the_next_message() {
        let (t, _) = tracker();
        for _ in 0..MAX_BUFFERED_EVENTS + 5 {
            t.track("e", std::iter::empty::<(String, PropValue)>());
        }
        let flush = t.flush();
        let first = wire::decode(&flush[0].bytes).unwrap();
        assert_eq!(first.dropped.buffer_full, 5);
        let events: u32 = flush.iter().map(|m| m.events).sum();
        assert_eq!(events as usize, MAX_BUFFERED_EVENTS);
    }

    #[test]
    fn an_event_too_large_alone_is_dropped_and_counted() {
        let (t, _) = tracker();
        t.record(NewEvent {
            error: Some(ErrorDetails {
                kind: "k".into(),
                message: "m".into(),
                location: None,
                group_key: None,
            }),
            properties: (0..16)
                .map(|k| (format!("{k}"), PropValue::from("v".repeat(256))))
                .collect(),
            ..NewEvent::default()
        });
        // Every field is bounded, so no single recorded event can exceed a message…
        let flush = t.flush();
        assert_eq!(wire::decode(&flush[0].bytes).unwrap().dropped.oversize, 0);
        // …but an event built by hand can, and is counted rather than sent.
        let mut huge = crate::samples::error_event();
        huge.name = "n".repeat(MAX_MESSAGE_BYTES);
        let messages = crate::delivery::pack(
            &crate::samples::source(),
            0.0,
            vec![huge, crate::samples::error_event()],
            DropCounts::default(),
        );
        let envelope = wire::decode(&messages[0].bytes).unwrap();
        assert_eq!(envelope.dropped.oversize, 1);
        assert_eq!(envelope.events.len(), 1);
    }

    #[test]
    fn carried_drops_are_sent_even_without_events() {
        let (t, _) = tracker();
        t.carry_dropped(DropCounts {
            send_failed: 4,
            ..DropCounts::default()
        });
        let flush = t.flush();
        assert_eq!(flush.len(), 1);
        assert_eq!(flush[0].events, 0);
        assert_eq!(flush[0].carried.send_failed, 4);
    }

    #[test]
    fn empty_tracker_flushes_nothing() {
        let (t, _) = tracker();
        assert!(t.flush().is_empty());
    }

    #[test]
    fn short_type_name_keeps_generics() {
        assert_eq!(short_type_name::<std::io::Error>(), "Error");
        assert_eq!(short_type_name::<Vec<u8>>(), "Vec<u8>");
    }

    /// Polls a future that never waits (all futures in these tests are ready at once).
    fn futures_lite_block_on<F: Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("test future was not ready"),
        }
    }
}
