//! Fixed sample data shared by the tests, the golden fixtures and the benchmarks.
//!
//! Changing these values changes the golden fixtures' expected content: don't.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{ErrorDetails, Event, EventKind, PropValue};
use crate::tracker::Tracker;
use crate::wire::{DropCounts, Envelope, Source, SCHEMA_VERSION};

const BASE_MS: i64 = 1_764_000_000_000;

fn at(offset_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(BASE_MS + offset_ms).expect("valid sample time")
}

fn id(n: u8) -> Uuid {
    Uuid::from_bytes([
        0x01, 0x9a, 0xb5, 0x3c, 0x00, n, 0x70, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, n,
    ])
}

fn event(n: u8, kind: EventKind, name: &str) -> Event {
    Event {
        id: id(n),
        timestamp: at(i64::from(n)),
        kind,
        name: name.to_string(),
        user_id: Some(5_123_456_789),
        chat_id: Some(5_123_456_789),
        duration_ms: None,
        error: None,
        properties: Vec::new(),
        truncated: 0,
    }
}

/// The source every sample envelope names.
pub fn source() -> Source {
    Source {
        worker: "telegram-bot".into(),
        release: "1.0.0".into(),
    }
}

/// The five events one `/start` update typically yields (string properties only, as in
/// version 1 of the wire format).
pub fn typical_events() -> Vec<Event> {
    let mut update = event(1, EventKind::UpdateReceived, "message");
    update.properties = vec![("chat_type".into(), "private".into())];
    let mut command = event(2, EventKind::Command, "start");
    command.properties = vec![("source".into(), "ad_campaign_42".into())];
    let mut handler = event(3, EventKind::Performance, "handler");
    handler.duration_ms = Some(1.5);
    handler.properties = vec![("command".into(), "start".into())];
    let mut api = event(4, EventKind::Performance, "bot_api");
    api.duration_ms = Some(48.0);
    api.properties = vec![
        ("method".into(), "sendMessage".into()),
        ("outcome".into(), "ok".into()),
    ];
    let mut custom = event(5, EventKind::Custom, "signup");
    custom.properties = vec![("plan".into(), "free".into())];
    vec![update, command, handler, api, custom]
}

/// An envelope holding [`typical_events`].
pub fn typical_envelope() -> Envelope {
    Envelope {
        version: SCHEMA_VERSION,
        source: source(),
        sent_at: at(10),
        events: typical_events(),
        dropped: DropCounts::default(),
    }
}

/// An envelope with no events that only carries drop counts: `buffer_full` of them, and one
/// `cancelled`.
pub fn drop_only_envelope(buffer_full: u32) -> Envelope {
    Envelope {
        events: Vec::new(),
        dropped: DropCounts {
            buffer_full,
            cancelled: 1,
            ..DropCounts::default()
        },
        ..typical_envelope()
    }
}

/// A tracker on the samples' clock stamping the events of request `request_key`, its attempt
/// seeded by `seed` (two seeds: two handlings of one request).
pub fn attempt_tracker(request_key: u64, seed: u8) -> Tracker<fn() -> f64> {
    fn clock() -> f64 {
        BASE_MS as f64
    }
    let tracker = Tracker::new(source(), clock as fn() -> f64, [seed; 16]);
    tracker.set_request_key(request_key);
    tracker
}

/// A Bot API failure as the bot tracks it.
pub fn error_event() -> Event {
    let mut error = event(9, EventKind::Error, "bot_api_error");
    error.error = Some(ErrorDetails {
        kind: "telegram_api".into(),
        message: "Too Many Requests: retry after 35".into(),
        location: Some("bot_api:editMessageText".into()),
        group_key: None,
    });
    error
}

/// An envelope holding one error event and carried drop counts.
pub fn error_envelope() -> Envelope {
    Envelope {
        version: SCHEMA_VERSION,
        source: source(),
        sent_at: at(20),
        events: vec![error_event()],
        dropped: DropCounts {
            send_failed: 3,
            oversize: 1,
            buffer_full: 0,
            cancelled: 0,
        },
    }
}

/// A custom event with one property of each type, a handler error grouped by its code
/// location, and a cancelled-flush drop count: what version 2 of the wire format added.
pub fn typed_envelope() -> Envelope {
    let mut order = event(11, EventKind::Custom, "order_paid");
    order.properties = vec![
        ("currency".into(), PropValue::from("EUR")),
        ("amount_cents".into(), PropValue::Int(1_999)),
        ("discount".into(), PropValue::Float(0.15)),
        ("first_order".into(), PropValue::Bool(true)),
    ];
    let mut failed = event(12, EventKind::Error, "Error");
    failed.error = Some(ErrorDetails {
        kind: "Error".into(),
        message: "D1_ERROR: no such table: quiz".into(),
        location: Some("handler:src/bot.rs:42".into()),
        group_key: Some("handler:src/bot.rs:42".into()),
    });
    Envelope {
        version: SCHEMA_VERSION,
        source: source(),
        sent_at: at(30),
        events: vec![order, failed],
        dropped: DropCounts {
            cancelled: 2,
            ..DropCounts::default()
        },
    }
}

/// Ids for the unit of work `request_key`, made the way the library makes them: random, then
/// moved to the request once the update is known.
pub fn ids_for_request(request_key: u64, seed: [u8; 16]) -> crate::ids::EventIds {
    let mut ids = crate::ids::EventIds::random(seed);
    ids.set_request_key(request_key);
    ids
}
