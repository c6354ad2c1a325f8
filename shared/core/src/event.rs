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
    /// The user's relation to the bot changed or said something: `user_blocked`,
    /// `user_unblocked`, `not_understood` (names in [`crate::audience`]).
    User,
    /// Money: `pre_checkout`, `payment`, `refund`, with `amount` and `currency` (see
    /// [`crate::audience`]).
    Payment,
}

impl EventKind {
    /// Every kind, in wire order.
    pub const ALL: [EventKind; 8] = [
        EventKind::UpdateReceived,
        EventKind::Command,
        EventKind::Callback,
        EventKind::Performance,
        EventKind::Error,
        EventKind::Custom,
        EventKind::User,
        EventKind::Payment,
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
            EventKind::User => "user",
            EventKind::Payment => "payment",
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
            EventKind::User => 6,
            EventKind::Payment => 7,
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
    /// Where it happened, e.g. `handler:src/bot.rs:42` or `bot_api:editMessageText`.
    pub location: Option<String>,
    /// A grouping key chosen by the sender, like Sentry's custom fingerprint: errors with the
    /// same kind and key form one group whatever their messages. `None` groups by kind,
    /// normalised message and location (see [`crate::fingerprint::of_error`]). Version 2 on.
    #[serde(default)]
    pub group_key: Option<String>,
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
    /// A small bounded bag of typed properties, in insertion order.
    pub properties: Vec<(String, PropValue)>,
    /// How many fields or properties were cut to respect the bounds.
    pub truncated: u32,
}

/// A property value: text, an integer, a floating-point number or a boolean.
///
/// On the wire each is MessagePack's own type (str, int, float 64, bool), so a version 1
/// envelope, whose values are all strings, reads as version 2 unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum PropValue {
    /// Text (bounded to [`MAX_PROPERTY_VALUE_BYTES`]).
    Str(String),
    /// A whole number.
    Int(i64),
    /// A finite floating-point number.
    Float(f64),
    /// A flag.
    Bool(bool),
}

impl PropValue {
    /// The text form: strings as they are, numbers and booleans as Rust prints them.
    pub fn to_text(&self) -> String {
        match self {
            PropValue::Str(s) => s.clone(),
            PropValue::Int(n) => n.to_string(),
            PropValue::Float(x) => x.to_string(),
            PropValue::Bool(b) => b.to_string(),
        }
    }

    /// The value as a number, for integers and floats.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PropValue::Int(n) => Some(*n as f64),
            PropValue::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// The value as a string slice, for strings.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PropValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<String> for PropValue {
    fn from(v: String) -> Self {
        PropValue::Str(v)
    }
}
impl From<&str> for PropValue {
    fn from(v: &str) -> Self {
        PropValue::Str(v.to_string())
    }
}
impl From<&String> for PropValue {
    fn from(v: &String) -> Self {
        PropValue::Str(v.clone())
    }
}
impl From<i64> for PropValue {
    fn from(v: i64) -> Self {
        PropValue::Int(v)
    }
}
impl From<i32> for PropValue {
    fn from(v: i32) -> Self {
        PropValue::Int(i64::from(v))
    }
}
impl From<u32> for PropValue {
    fn from(v: u32) -> Self {
        PropValue::Int(i64::from(v))
    }
}
impl From<usize> for PropValue {
    fn from(v: usize) -> Self {
        PropValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<u64> for PropValue {
    fn from(v: u64) -> Self {
        PropValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for PropValue {
    fn from(v: f64) -> Self {
        PropValue::Float(v)
    }
}
impl From<f32> for PropValue {
    fn from(v: f32) -> Self {
        PropValue::Float(f64::from(v))
    }
}
impl From<bool> for PropValue {
    fn from(v: bool) -> Self {
        PropValue::Bool(v)
    }
}

impl Serialize for PropValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PropValue::Str(s) => serializer.serialize_str(s),
            PropValue::Int(n) => serializer.serialize_i64(*n),
            PropValue::Float(x) => serializer.serialize_f64(*x),
            PropValue::Bool(b) => serializer.serialize_bool(*b),
        }
    }
}

impl<'de> Deserialize<'de> for PropValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PropValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, integer, float or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<PropValue, E> {
                Ok(PropValue::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<PropValue, E> {
                Ok(PropValue::Str(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<PropValue, E> {
                Ok(PropValue::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PropValue, E> {
                i64::try_from(v)
                    .map(PropValue::Int)
                    .map_err(|_| E::custom("integer property larger than i64"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<PropValue, E> {
                Ok(PropValue::Float(v))
            }
            fn visit_f32<E>(self, v: f32) -> Result<PropValue, E> {
                Ok(PropValue::Float(f64::from(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<PropValue, E> {
                Ok(PropValue::Bool(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary; counts a cut in `truncated`.
pub(crate) fn bounded(mut text: String, max: usize, truncated: &mut u32) -> String {
    if crate::text::truncate(&mut text, max) {
        *truncated += 1;
    }
    text
}

/// Applies the property bounds: at most [`MAX_PROPERTIES`] keys, bounded key and string
/// lengths, finite floats (a non-finite float is kept as its text). Returns the kept
/// properties; every cut or change adds one to `truncated`.
pub(crate) fn bound_properties(
    props: Vec<(String, PropValue)>,
    truncated: &mut u32,
) -> Vec<(String, PropValue)> {
    let mut kept = Vec::with_capacity(props.len().min(MAX_PROPERTIES));
    for (key, value) in props {
        if kept.len() == MAX_PROPERTIES {
            *truncated += 1;
            continue;
        }
        let key = bounded(key, MAX_PROPERTY_KEY_BYTES, truncated);
        let value = match value {
            PropValue::Str(s) => PropValue::Str(bounded(s, MAX_PROPERTY_VALUE_BYTES, truncated)),
            PropValue::Float(x) if !x.is_finite() => {
                *truncated += 1;
                PropValue::Str(x.to_string())
            }
            other => other,
        };
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
        assert_eq!(EventKind::try_from(8), Err(UnknownEventKind(8)));
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
        let many = (0..MAX_PROPERTIES + 3)
            .map(|i| (format!("k{i}"), PropValue::from("v")))
            .collect();
        let kept = bound_properties(many, &mut cut);
        assert_eq!(kept.len(), MAX_PROPERTIES);
        assert_eq!(cut, 3);

        let mut cut = 0;
        let long = vec![("k".repeat(100), PropValue::from("v".repeat(1000)))];
        let kept = bound_properties(long, &mut cut);
        assert_eq!(kept[0].0.len(), MAX_PROPERTY_KEY_BYTES);
        assert_eq!(
            kept[0].1.as_str().map(str::len),
            Some(MAX_PROPERTY_VALUE_BYTES)
        );
        assert_eq!(cut, 2);
    }

    #[test]
    fn typed_values_keep_their_type_and_non_finite_floats_become_text() {
        let mut cut = 0;
        let kept = bound_properties(
            vec![
                ("n".into(), 3i64.into()),
                ("x".into(), 2.5.into()),
                ("b".into(), true.into()),
                ("nan".into(), f64::NAN.into()),
            ],
            &mut cut,
        );
        assert_eq!(kept[0].1, PropValue::Int(3));
        assert_eq!(kept[1].1, PropValue::Float(2.5));
        assert_eq!(kept[2].1, PropValue::Bool(true));
        assert_eq!(kept[3].1, PropValue::Str("NaN".into()));
        assert_eq!(cut, 1);
    }

    #[test]
    fn typed_values_round_trip_through_messagepack() {
        for value in [
            PropValue::from("text"),
            PropValue::Int(-5_123_456_789),
            PropValue::Int(i64::MAX),
            PropValue::Float(0.25),
            PropValue::Bool(false),
        ] {
            let bytes = rmp_serde::to_vec(&value).unwrap();
            assert_eq!(rmp_serde::from_slice::<PropValue>(&bytes).unwrap(), value);
        }
    }
}
