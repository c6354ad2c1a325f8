//! The Analytics Engine column map: one pure function from an event to a data point that obeys
//! every Analytics Engine limit. The tables below are the single source of truth: the mapping
//! runs from them and `docs/analytics-engine.md` is generated from them (a test keeps the two
//! in step).

use crate::event::{Event, PropValue};
use crate::wire::Source;

/// Most bytes the one index may hold.
pub const MAX_INDEX_BYTES: usize = 96;
/// Most blobs per data point.
pub const MAX_BLOBS: usize = 20;
/// Most bytes all blobs of a data point may hold together.
pub const MAX_BLOB_TOTAL_BYTES: usize = 16 * 1024;
/// Most doubles per data point.
pub const MAX_DOUBLES: usize = 20;
/// Most data points one Worker invocation may write.
pub const MAX_POINTS_PER_INVOCATION: usize = 250;

/// Property keys that get a column of their own (so SQL can group or aggregate by them).
pub const PROMOTED_PROPERTIES: [&str; 7] = [
    "chat_type",
    "command",
    "method",
    "outcome",
    "source",
    "currency",
    DELIVERY_LAG_PROPERTY,
];

/// The property of an update event with its Telegram → bot delivery lag in ms (the time the
/// bot received the update minus the update's `date`): `double9`, with `double10` = 1 saying
/// it is there.
pub const DELIVERY_LAG_PROPERTY: &str = "delivery_lag_ms";

/// The delivery lag property's value, when it is a number (negative reads as 0).
fn delivery_lag(p: &PointInput) -> Option<f64> {
    p.event
        .properties
        .iter()
        .find(|(k, _)| k == DELIVERY_LAG_PROPERTY)
        .and_then(|(_, v)| v.as_f64())
        .filter(|x| x.is_finite())
        .map(|x| x.max(0.0))
}

/// What a data point is built from: the event, who sent it, and its corrected time.
#[derive(Debug, Clone, Copy)]
pub struct PointInput<'a> {
    /// The sender.
    pub source: &'a Source,
    /// The event.
    pub event: &'a Event,
    /// The event time after clock-skew correction, ms since the epoch.
    pub timestamp_ms: i64,
    /// How far the timestamp was moved by the correction, in ms.
    pub skew_ms: i64,
}

/// One Analytics Engine data point, ready for `writeDataPoint`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    /// `index1`: the sampling key.
    pub index: String,
    /// `blob1`…: strings, in column order.
    pub blobs: Vec<String>,
    /// `double1`…: numbers, in column order.
    pub doubles: Vec<f64>,
}

/// A string column: `blob{position}`.
pub struct BlobColumn {
    /// What it holds, in one line.
    pub holds: &'static str,
    /// Most bytes it may hold; longer values are cut on a character boundary.
    pub max_bytes: usize,
    /// Computes the value.
    pub value: fn(&PointInput) -> String,
}

/// A numeric column: `double{position}`.
pub struct DoubleColumn {
    /// What it holds, in one line.
    pub holds: &'static str,
    /// Computes the value.
    pub value: fn(&PointInput) -> f64,
}

/// What `index1` holds, in one line (the value comes from [`index_value`]).
pub const INDEX_HOLDS: &str =
    "sampling key: the user (its pseudonym, see docs/privacy.md); `c<chat>` when there is no user; `-` when neither";

fn opt_id(id: Option<i64>) -> String {
    id.map(|v| v.to_string()).unwrap_or_default()
}

fn prop(p: &PointInput, key: &str) -> String {
    p.event
        .properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_text())
        .unwrap_or_default()
}

/// The first integer or float property, with its key: the event's measured value.
fn first_number<'a>(p: &PointInput<'a>) -> Option<(&'a str, f64)> {
    p.event
        .properties
        .iter()
        .find_map(|(k, v)| v.as_f64().map(|x| (k.as_str(), x)))
}

fn json_value(value: &PropValue) -> serde_json::Value {
    match value {
        PropValue::Str(s) => serde_json::Value::String(s.clone()),
        PropValue::Int(n) => serde_json::Value::from(*n),
        PropValue::Float(x) => serde_json::Number::from_f64(*x)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        PropValue::Bool(b) => serde_json::Value::Bool(*b),
    }
}

fn other_properties(p: &PointInput) -> String {
    let mut out = String::from("{");
    for (k, v) in &p.event.properties {
        if PROMOTED_PROPERTIES.contains(&k.as_str()) {
            continue;
        }
        let entry = format!(
            "{}{}:{}",
            if out.len() > 1 { "," } else { "" },
            serde_json::Value::String(k.clone()),
            json_value(v)
        );
        if out.len() + entry.len() + 1 > OTHER_PROPERTIES_MAX_BYTES {
            break;
        }
        out.push_str(&entry);
    }
    out.push('}');
    out
}

const OTHER_PROPERTIES_MAX_BYTES: usize = 4096;

/// The string columns, `blob1` first.
pub const BLOBS: &[BlobColumn] = &[
    BlobColumn {
        holds: "bot: the sending Worker's name",
        max_bytes: 128,
        value: |p| p.source.worker.clone(),
    },
    BlobColumn {
        holds: "release of the sending Worker",
        max_bytes: 128,
        value: |p| p.source.release.clone(),
    },
    BlobColumn {
        holds: "event kind: update, command, callback, performance, error, custom, user, payment",
        max_bytes: 16,
        value: |p| p.event.kind.as_str().to_string(),
    },
    BlobColumn {
        holds: "event name (update kind, command, metric, error kind, …)",
        max_bytes: 128,
        value: |p| p.event.name.clone(),
    },
    BlobColumn {
        holds: "user pseudonym as text (keyed hash of the Telegram id), empty when none",
        max_bytes: 24,
        value: |p| opt_id(p.event.user_id),
    },
    BlobColumn {
        holds: "chat pseudonym as text (keyed hash of the Telegram id), empty when none",
        max_bytes: 24,
        value: |p| opt_id(p.event.chat_id),
    },
    BlobColumn {
        holds: "event id (UUIDv8: request key, attempt, sequence; see docs/wire-format.md)",
        max_bytes: 36,
        value: |p| p.event.id.to_string(),
    },
    BlobColumn {
        holds: "error kind, empty unless kind = error",
        max_bytes: 128,
        value: |p| {
            p.event
                .error
                .as_ref()
                .map(|e| e.kind.clone())
                .unwrap_or_default()
        },
    },
    BlobColumn {
        holds: "error message, empty unless kind = error",
        max_bytes: 1024,
        value: |p| {
            p.event
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default()
        },
    },
    BlobColumn {
        holds: "error location, empty unless kind = error",
        max_bytes: 128,
        value: |p| {
            p.event
                .error
                .as_ref()
                .and_then(|e| e.location.clone())
                .unwrap_or_default()
        },
    },
    BlobColumn {
        holds: "error fingerprint (groups like D1 `error_groups`), empty unless kind = error",
        max_bytes: 16,
        value: |p| {
            p.event
                .error
                .as_ref()
                .map(|e| crate::fingerprint::of_error(&p.source.worker, e))
                .unwrap_or_default()
        },
    },
    BlobColumn {
        holds: "property `chat_type` (private, group, supergroup, channel)",
        max_bytes: 256,
        value: |p| prop(p, "chat_type"),
    },
    BlobColumn {
        holds: "property `command` (e.g. start; on handler timings too)",
        max_bytes: 256,
        value: |p| prop(p, "command"),
    },
    BlobColumn {
        holds: "property `method` (Bot API method of a bot_api timing)",
        max_bytes: 256,
        value: |p| prop(p, "method"),
    },
    BlobColumn {
        holds: "property `outcome` (ok, error, http_429, …)",
        max_bytes: 256,
        value: |p| prop(p, "outcome"),
    },
    BlobColumn {
        holds:
            "property `source` (a valid /start deep-link parameter with id-like numbers as `<n>`, or `other`: acquisition source)",
        max_bytes: 256,
        value: |p| prop(p, "source"),
    },
    BlobColumn {
        holds: "other properties as a JSON object, values typed (whole entries only, bounded)",
        max_bytes: OTHER_PROPERTIES_MAX_BYTES,
        value: other_properties,
    },
    BlobColumn {
        holds: "key of the first numeric property (its value is `double8`), empty when none",
        max_bytes: 64,
        value: |p| {
            first_number(p)
                .map(|(k, _)| k.to_string())
                .unwrap_or_default()
        },
    },
    BlobColumn {
        holds: "property `currency` (three-letter code of a payment event, `XTR` for Telegram Stars)",
        max_bytes: 8,
        value: |p| prop(p, "currency"),
    },
];

/// The numeric columns, `double1` first.
pub const DOUBLES: &[DoubleColumn] = &[
    DoubleColumn {
        holds: "1 (one event; weight counts by `_sample_interval`)",
        value: |_| 1.0,
    },
    DoubleColumn {
        holds: "duration in ms, 0 when none",
        value: |p| p.event.duration_ms.unwrap_or(0.0),
    },
    DoubleColumn {
        holds: "event time (after clock-skew correction), ms since the epoch",
        value: |p| p.timestamp_ms as f64,
    },
    DoubleColumn {
        holds: "user pseudonym, 0 when none",
        value: |p| p.event.user_id.unwrap_or(0) as f64,
    },
    DoubleColumn {
        holds: "chat pseudonym, 0 when none",
        value: |p| p.event.chat_id.unwrap_or(0) as f64,
    },
    DoubleColumn {
        holds: "fields or properties cut by the producer's bounds",
        value: |p| f64::from(p.event.truncated),
    },
    DoubleColumn {
        holds: "clock-skew correction applied, ms",
        value: |p| p.skew_ms as f64,
    },
    DoubleColumn {
        holds: "value of the first numeric property (key in `blob18`), 0 when none",
        value: |p| first_number(p).map(|(_, x)| x).unwrap_or(0.0),
    },
    DoubleColumn {
        holds: "property `delivery_lag_ms` (on update events: Telegram → bot delivery lag, ms: receipt by the bot's clock − the update's `date`, at least 0), 0 when none (`double10` tells)",
        value: |p| delivery_lag(p).unwrap_or(0.0),
    },
    DoubleColumn {
        holds: "1 when `double9` holds a delivery lag (an update Telegram dated), 0 otherwise",
        value: |p| f64::from(u8::from(delivery_lag(p).is_some())),
    },
];

/// The index value (see [`INDEX_HOLDS`]).
///
/// Analytics Engine samples by index, giving each index value a fair share, so the index is
/// the Telegram user: a heavy user is sampled before a light one, and a distinct-users count
/// (daily active users) keeps every user that had any event. A per-bot index would let one
/// bot's volume sample away whole users.
pub fn index_value(p: &PointInput) -> String {
    let raw = match (p.event.user_id, p.event.chat_id) {
        (Some(user), _) => user.to_string(),
        (None, Some(chat)) => format!("c{chat}"),
        (None, None) => "-".to_string(),
    };
    cut(raw, MAX_INDEX_BYTES)
}

fn cut(mut text: String, max: usize) -> String {
    crate::text::truncate(&mut text, max);
    text
}

/// Builds the data point of one event. Every value is bounded, so the result always obeys the
/// Analytics Engine limits (checked by property tests).
pub fn to_data_point(input: &PointInput) -> DataPoint {
    DataPoint {
        index: index_value(input),
        blobs: BLOBS
            .iter()
            .map(|c| cut((c.value)(input), c.max_bytes))
            .collect(),
        doubles: DOUBLES
            .iter()
            .map(|c| {
                let v = (c.value)(input);
                if v.is_finite() {
                    v
                } else {
                    0.0
                }
            })
            .collect(),
    }
}

impl DataPoint {
    /// Checks every Analytics Engine limit; `Err` names the first one broken.
    pub fn check_limits(&self) -> Result<(), String> {
        if self.index.len() > MAX_INDEX_BYTES {
            return Err(format!("index is {} bytes", self.index.len()));
        }
        if self.blobs.len() > MAX_BLOBS {
            return Err(format!("{} blobs", self.blobs.len()));
        }
        let total: usize = self.blobs.iter().map(String::len).sum();
        if total > MAX_BLOB_TOTAL_BYTES {
            return Err(format!("blobs total {total} bytes"));
        }
        if self.doubles.len() > MAX_DOUBLES {
            return Err(format!("{} doubles", self.doubles.len()));
        }
        if self.doubles.iter().any(|d| !d.is_finite()) {
            return Err("a double is not finite".into());
        }
        Ok(())
    }
}

/// The column table of `docs/analytics-engine.md`, generated from [`BLOBS`] and [`DOUBLES`].
pub fn column_table_markdown() -> String {
    let mut out = String::from("| column | holds | max bytes |\n| --- | --- | --- |\n");
    out.push_str(&format!(
        "| `index1` | {INDEX_HOLDS} | {MAX_INDEX_BYTES} |\n"
    ));
    for (i, c) in BLOBS.iter().enumerate() {
        out.push_str(&format!(
            "| `blob{}` | {} | {} |\n",
            i + 1,
            c.holds,
            c.max_bytes
        ));
    }
    for (i, c) in DOUBLES.iter().enumerate() {
        out.push_str(&format!("| `double{}` | {} | 8 |\n", i + 1, c.holds));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    fn point(event: &Event) -> DataPoint {
        let source = samples::source();
        to_data_point(&PointInput {
            source: &source,
            event,
            timestamp_ms: 1_764_000_000_123,
            skew_ms: -5,
        })
    }

    #[test]
    fn the_static_budget_fits_the_limits() {
        assert!(BLOBS.len() <= MAX_BLOBS);
        assert!(DOUBLES.len() <= MAX_DOUBLES);
        let worst: usize = BLOBS.iter().map(|c| c.max_bytes).sum();
        assert!(worst <= MAX_BLOB_TOTAL_BYTES, "worst case {worst} bytes");
    }

    #[test]
    fn a_command_event_maps_to_the_documented_columns() {
        let events = samples::typical_events();
        let p = point(&events[1]);
        assert_eq!(p.index, "5123456789");
        assert_eq!(p.blobs[0], "telegram-bot");
        assert_eq!(p.blobs[2], "command");
        assert_eq!(p.blobs[3], "start");
        assert_eq!(p.blobs[6], events[1].id.to_string());
        assert_eq!(p.blobs[15], "ad_campaign_42");
        assert_eq!(p.blobs[16], "{}");
        assert_eq!(p.doubles[0], 1.0);
        assert_eq!(p.doubles[2], 1_764_000_000_123.0);
        assert_eq!(p.doubles[6], -5.0);
        p.check_limits().unwrap();
    }

    #[test]
    fn error_events_carry_their_fingerprint() {
        let event = samples::error_event();
        let p = point(&event);
        assert_eq!(p.blobs[2], "error");
        assert_eq!(p.blobs[8], "Too Many Requests: retry after 35");
        assert_eq!(p.blobs[10].len(), 16);
    }

    #[test]
    fn other_properties_are_json_and_exclude_promoted_ones() {
        let mut event = samples::typical_events()[4].clone();
        event.properties.push(("command".into(), "x".into()));
        event.properties.push(("quote\"d".into(), "v".into()));
        event.properties.push(("seats".into(), 3i64.into()));
        event.properties.push(("paid".into(), true.into()));
        let p = point(&event);
        let parsed: serde_json::Value = serde_json::from_str(&p.blobs[16]).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"plan": "free", "quote\"d": "v", "seats": 3, "paid": true})
        );
    }

    #[test]
    fn the_first_numeric_property_is_a_double_of_its_own() {
        let event = &samples::typed_envelope().events[0];
        let p = point(event);
        assert_eq!(p.blobs[17], "amount_cents");
        assert_eq!(p.doubles[7], 1999.0);
        let none = point(&samples::typical_events()[0]);
        assert_eq!((none.blobs[17].as_str(), none.doubles[7]), ("", 0.0));
    }

    #[test]
    fn the_delivery_lag_has_its_own_double_and_a_flag() {
        let mut update = samples::typical_events()[0].clone();
        assert_eq!(update.kind, crate::EventKind::UpdateReceived);
        let before = point(&update);
        assert_eq!((before.doubles[8], before.doubles[9]), (0.0, 0.0));
        update
            .properties
            .push((DELIVERY_LAG_PROPERTY.into(), PropValue::Int(30_250)));
        let p = point(&update);
        assert_eq!((p.doubles[8], p.doubles[9]), (30_250.0, 1.0));
        assert!(
            !p.blobs[16].contains(DELIVERY_LAG_PROPERTY),
            "{}",
            p.blobs[16]
        );
        // A measured 0 is a lag (flagged), a negative one reads as 0, text is not a lag.
        update.properties.last_mut().unwrap().1 = PropValue::Int(0);
        assert_eq!(point(&update).doubles[8..10], [0.0, 1.0]);
        update.properties.last_mut().unwrap().1 = PropValue::Float(-4.0);
        assert_eq!(point(&update).doubles[8..10], [0.0, 1.0]);
        update.properties.last_mut().unwrap().1 = PropValue::Str("late".into());
        assert_eq!(point(&update).doubles[8..10], [0.0, 0.0]);
        p.check_limits().unwrap();
    }

    #[test]
    fn index_falls_back_to_chat_then_dash() {
        let mut event = samples::typical_events()[0].clone();
        event.user_id = None;
        assert_eq!(point(&event).index, "c5123456789");
        event.chat_id = None;
        assert_eq!(point(&event).index, "-");
    }

    #[test]
    fn docs_table_matches_the_code() {
        let doc = include_str!("../../../docs/analytics-engine.md");
        let start = doc
            .find(TABLE_START)
            .expect("start marker in docs/analytics-engine.md");
        let end = doc
            .find(TABLE_END)
            .expect("end marker in docs/analytics-engine.md");
        let in_doc = doc[start + TABLE_START.len()..end].trim();
        assert_eq!(
            in_doc,
            column_table_markdown().trim(),
            "docs/analytics-engine.md is out of date: run `make docs`"
        );
    }

    const TABLE_START: &str = "<!-- columns:start (generated by `make docs`) -->";
    const TABLE_END: &str = "<!-- columns:end -->";
}
