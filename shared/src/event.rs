//! The event model: what one analytics event holds, and the bounds that keep it small.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most properties one event may carry; further keys are cut and counted.
pub const MAX_PROPERTIES: usize = 16;
/// Longest property key in bytes; longer keys are truncated and counted.
pub const MAX_PROPERTY_KEY_BYTES: usize = 64;
/// Longest property value in bytes; longer values are truncated and counted.
pub const MAX_PROPERTY_VALUE_BYTES: usize = 256;
/// Longest event name in bytes; longer names are truncated and counted.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest error message in bytes; longer messages are truncated and counted.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;
/// Longest error kind or location in bytes; longer ones are truncated and counted.
pub const MAX_ERROR_FIELD_BYTES: usize = 128;

/// The timestamp type of events and envelopes.
pub type Timestamp = DateTime<Utc>;

/// A timestamp from fractional milliseconds since the epoch (floored; out of range → epoch).
pub fn timestamp_from_ms(ms: f64) -> Timestamp {
    DateTime::from_timestamp_millis(ms.floor() as i64).unwrap_or_default()
}

/// What an event records. Encoded on the wire as one byte (see `docs/wire-format.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum EventKind {
    /// One Telegram update reached the bot.
    UpdateReceived,
    /// A bot command such as `/start` was handled.
    Command,
    /// An inline keyboard button was pressed.
    Callback,
    /// A measured duration (handler time, Bot API call time, …).
    Performance,
    /// Something failed; the event carries [`ErrorDetails`].
    Error,
    /// Anything the application tracks itself.
    Custom,
}

impl EventKind {
    /// Every kind, in wire order.
    pub const ALL: [EventKind; 6] = [
        EventKind::UpdateReceived,
        EventKind::Command,
        EventKind::Callback,
        EventKind::Performance,
        EventKind::Error,
        EventKind::Custom,
    ];

    /// The stable lowercase name used in Analytics Engine and D1.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UpdateReceived => "update",
            EventKind::Command => "command",
            EventKind::Callback => "callback",
            EventKind::Performance => "performance",
            EventKind::Error => "error",
            EventKind::Custom => "custom",
        }
    }
}

impl From<EventKind> for u8 {
    fn from(kind: EventKind) -> u8 {
        match kind {
            EventKind::UpdateReceived => 0,
            EventKind::Command => 1,
            EventKind::Callback => 2,
            EventKind::Performance => 3,
            EventKind::Error => 4,
            EventKind::Custom => 5,
        }
    }
}

/// A wire byte that names no known [`EventKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0}")]
pub struct UnknownEventKind(pub u8);

impl TryFrom<u8> for EventKind {
    type Error = UnknownEventKind;
    fn try_from(byte: u8) -> Result<Self, UnknownEventKind> {
        EventKind::ALL
            .get(byte as usize)
            .copied()
            .ok_or(UnknownEventKind(byte))
    }
}

/// What went wrong, for events of kind [`EventKind::Error`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// The error's type or class, e.g. `TelegramApiError` or `http_429`.
    pub kind: String,
    /// The human-readable message (bounded to [`MAX_ERROR_MESSAGE_BYTES`]).
    pub message: String,
    /// Where it happened, e.g. `handler:/menu` or `bot_api:editMessageText`.
    pub location: Option<String>,
}

/// One analytics event. Construct it through [`crate::Tracker`], which applies every bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUIDv7: time-ordered, unique; the idempotency key downstream.
    pub id: Uuid,
    /// When it happened, millisecond precision, UTC.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub timestamp: DateTime<Utc>,
    /// What kind of event this is.
    pub kind: EventKind,
    /// A short name: the update kind, the command, the metric, …
    pub name: String,
    /// Telegram user id, when the event concerns one user.
    pub user_id: Option<i64>,
    /// Telegram chat id, when the event happened in a chat.
    pub chat_id: Option<i64>,
    /// A measured duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// Error details, for [`EventKind::Error`].
    pub error: Option<ErrorDetails>,
    /// A small bounded bag of string properties, in insertion order.
    pub properties: Vec<(String, String)>,
    /// How many fields or properties were cut to respect the bounds.
    pub truncated: u32,
}

/// Cuts `text` to at most `max` bytes on a character boundary; counts a cut in `truncated`.
pub(crate) fn bounded(mut text: String, max: usize, truncated: &mut u32) -> String {
    if crate::text::truncate(&mut text, max) {
        *truncated += 1;
    }
    text
}

/// Applies the property bounds: at most [`MAX_PROPERTIES`] keys, bounded key and value lengths.
/// Returns the kept properties; every cut adds one to `truncated`.
pub(crate) fn bound_properties<K, V>(
    props: impl IntoIterator<Item = (K, V)>,
    truncated: &mut u32,
) -> Vec<(String, String)>
where
    K: Into<String>,
    V: Into<String>,
{
    let mut kept = Vec::new();
    for (key, value) in props {
        if kept.len() == MAX_PROPERTIES {
            *truncated += 1;
            continue;
        }
        let key = bounded(key.into(), MAX_PROPERTY_KEY_BYTES, truncated);
        let value = bounded(value.into(), MAX_PROPERTY_VALUE_BYTES, truncated);
        kept.push((key, value));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_bytes_round_trip_and_unknown_is_an_error() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::try_from(u8::from(kind)), Ok(kind));
        }
        assert_eq!(EventKind::try_from(6), Err(UnknownEventKind(6)));
    }

    #[test]
    fn bounded_cuts_on_char_boundary_and_counts() {
        let mut cut = 0;
        assert_eq!(bounded("héllo".into(), 2, &mut cut), "h");
        assert_eq!(cut, 1);
        assert_eq!(bounded("ok".into(), 2, &mut cut), "ok");
        assert_eq!(cut, 1);
    }

    #[test]
    fn property_bag_is_bounded_and_cuts_are_counted() {
        let mut cut = 0;
        let many = (0..MAX_PROPERTIES + 3).map(|i| (format!("k{i}"), "v".to_string()));
        let kept = bound_properties(many, &mut cut);
        assert_eq!(kept.len(), MAX_PROPERTIES);
        assert_eq!(cut, 3);

        let mut cut = 0;
        let long = [("k".repeat(100), "v".repeat(1000))];
        let kept = bound_properties(long, &mut cut);
        assert_eq!(kept[0].0.len(), MAX_PROPERTY_KEY_BYTES);
        assert_eq!(kept[0].1.len(), MAX_PROPERTY_VALUE_BYTES);
        assert_eq!(cut, 2);
    }
}
