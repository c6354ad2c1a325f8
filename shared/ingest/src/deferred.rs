//! Deferred messages: what the consumer puts back on its own queue when D1 (or Analytics
//! Engine) cannot take a message for longer than a few retries.
//!
//! A deferred message holds one or more [`Record`]s, each the original message's body with
//! where it came from and whether its Analytics Engine points were already written. It is a
//! fresh queue message (sent with a delay), so unlike a retry it starts a new retention period
//! and a new retry count: deferral after deferral, a message survives an outage of any length.
//! When a batch holds several deferred messages, their records are packed into as few new
//! messages as fit, and delays are aligned to their period's boundary, so deferred messages
//! become visible together and merge: the queue operations an outage costs shrink over time.
//!
//! Layout (MessagePack, compact like the envelope; `docs/reliability.md`):
//!
//! ```text
//! Deferred = [ "tga-deferred", version: uint (= 1), [ Record, … ] ]
//! Record   = [ queue: str, message_id: str, received_at: int (ms), writer: str,
//!              deferrals: uint, points: uint (0 pending, 1 all written, 2 kept written),
//!              points_at: int (ms), payload: bin | nil, not_bytes: str | nil ]
//! ```
//!
//! Only the project's own Workers can write to the queue; a deferred record is trusted like an
//! envelope.

use serde::{Deserialize, Serialize};

/// The first element of every deferred message (an envelope starts with its version number).
pub const MARKER: &str = "tga-deferred";

/// The version of the deferred layout this crate writes and reads.
pub const VERSION: u32 = 1;

/// Largest deferred message: the Queues limit (128,000 bytes with metadata) less 500 bytes for
/// the metadata (documented as about 100). A record of the largest envelope the bot sends
/// (127,000 bytes) plus its ~200 bytes of bookkeeping fits.
pub const MAX_DEFERRED_BYTES: usize = analytics_core::wire::QUEUES_MESSAGE_LIMIT_BYTES - 500;

/// Points still to write that one deferred message holds at most: one message's share of an
/// invocation's budget (250 points for a batch of up to [`crate::MAX_BATCH_SIZE`] messages),
/// so a batch of deferred messages always fits whole (a single record with more travels
/// alone). Deferred messages that each took the whole budget left the others of their batch
/// over budget, retried until the dead letter queue dropped them.
pub const PENDING_POINTS_PER_MESSAGE: usize =
    analytics_core::datapoint::MAX_POINTS_PER_INVOCATION / crate::MAX_BATCH_SIZE;

/// Delay of a record sent again because its invocation had no budget left for it: it is ready
/// at once.
pub const RESEND_DELAY_SECONDS: u32 = 1;

/// Deferrals after which a record is kept aside instead (in `rejected_messages`, reason
/// `deferred_too_often`, with its payload): a record D1 never takes (or a binding that never
/// comes back) is not deferred forever. 48 deferrals take about 41 hours (9 doubling steps
/// over 85 minutes, then hourly), well past the 32 of a day-long outage.
pub const MAX_DEFERRALS: u32 = 48;

/// Delay of the first deferral, in seconds.
pub const DEFER_BASE_SECONDS: u32 = 10;

/// Longest delay between deferrals, in seconds: during a long outage each record costs one
/// send, one read and one delete per hour.
pub const DEFER_MAX_SECONDS: u32 = 3_600;

/// Where a message came from; kept through every deferral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The queue it was first received from.
    pub queue: String,
    /// Its queue message id there.
    pub message_id: String,
    /// When the consumer first handled it, ms since the epoch (the consumer's clock).
    pub received_at_ms: i64,
}

/// Whether a message's Analytics Engine points were already written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointsState {
    /// Not written yet: the consumer claims and writes them.
    Pending,
    /// All its events' points were written while D1 was down, before knowing which events
    /// are duplicates of another attempt.
    WrittenAll {
        /// When they were written, ms since the epoch.
        at_ms: i64,
    },
    /// The points of the events kept after deduplication were written, but the transaction
    /// marking them failed.
    WrittenKept {
        /// When they were written, ms since the epoch.
        at_ms: i64,
    },
}

/// One deferred message's worth of bookkeeping for one original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the message came from.
    pub origin: Origin,
    /// The identity that claims (or claimed) its envelope's points in D1.
    pub writer: String,
    /// How many times it was deferred.
    pub deferrals: u32,
    /// Whether its points were written.
    pub points: PointsState,
    /// The original body, or why it was not bytes.
    pub body: Result<Vec<u8>, String>,
}

/// Why a deferred message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeferredError {
    /// Not the layout above.
    #[error("malformed deferred message: {0}")]
    Malformed(String),
    /// A version this build does not read.
    #[error("deferred message version {0}, this build reads version {VERSION}")]
    UnsupportedVersion(u32),
    /// Encoding failed (should not happen).
    #[error("encoding a deferred message failed: {0}")]
    Encode(String),
}

/// Bytes MessagePack writes as `bin`, not as an array of integers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bin(Vec<u8>);

impl Serialize for Bin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bin;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bin, E> {
                Ok(Bin(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bin, E> {
                Ok(Bin(v))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[derive(Serialize, Deserialize)]
struct WireRecord {
    queue: String,
    message_id: String,
    received_at_ms: i64,
    writer: String,
    deferrals: u32,
    points: u8,
    points_at_ms: i64,
    payload: Option<Bin>,
    not_bytes: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireMessage(String, u32, Vec<WireRecord>);

impl WireRecord {
    fn from_record(r: &Record) -> WireRecord {
        let (points, points_at_ms) = match r.points {
            PointsState::Pending => (0, 0),
            PointsState::WrittenAll { at_ms } => (1, at_ms),
            PointsState::WrittenKept { at_ms } => (2, at_ms),
        };
        let (payload, not_bytes) = match &r.body {
            Ok(bytes) => (Some(Bin(bytes.clone())), None),
            Err(what) => (None, Some(what.clone())),
        };
        WireRecord {
            queue: r.origin.queue.clone(),
            message_id: r.origin.message_id.clone(),
            received_at_ms: r.origin.received_at_ms,
            writer: r.writer.clone(),
            deferrals: r.deferrals,
            points,
            points_at_ms,
            payload,
            not_bytes,
        }
    }

    fn into_record(self) -> Result<Record, DeferredError> {
        let points = match self.points {
            0 => PointsState::Pending,
            1 => PointsState::WrittenAll {
                at_ms: self.points_at_ms,
            },
            2 => PointsState::WrittenKept {
                at_ms: self.points_at_ms,
            },
            other => {
                return Err(DeferredError::Malformed(format!(
                    "unknown points state {other}"
                )))
            }
        };
        let body = match (self.payload, self.not_bytes) {
            (Some(Bin(bytes)), None) => Ok(bytes),
            (None, Some(what)) => Err(what),
            _ => {
                return Err(DeferredError::Malformed(
                    "a record holds exactly one of payload and not_bytes".into(),
                ))
            }
        };
        Ok(Record {
            origin: Origin {
                queue: self.queue,
                message_id: self.message_id,
                received_at_ms: self.received_at_ms,
            },
            writer: self.writer,
            deferrals: self.deferrals,
            points,
            body,
        })
    }
}

/// The prefix of every deferred message: a 3-element array, then the marker as a `fixstr`.
fn prefix() -> Vec<u8> {
    let mut p = vec![0x93, 0xa0 | MARKER.len() as u8];
    p.extend_from_slice(MARKER.as_bytes());
    p
}

/// Whether `bytes` is a deferred message (and not an envelope).
pub fn is_deferred(bytes: &[u8]) -> bool {
    bytes.starts_with(&prefix())
}

/// Encodes records as one deferred message.
pub fn encode(records: &[Record]) -> Result<Vec<u8>, DeferredError> {
    let wire = WireMessage(
        MARKER.to_string(),
        VERSION,
        records.iter().map(WireRecord::from_record).collect(),
    );
    rmp_serde::to_vec(&wire).map_err(|e| DeferredError::Encode(e.to_string()))
}

/// Decodes a deferred message. Never panics.
pub fn decode(bytes: &[u8]) -> Result<Vec<Record>, DeferredError> {
    let WireMessage(marker, version, records) =
        rmp_serde::from_slice(bytes).map_err(|e| DeferredError::Malformed(e.to_string()))?;
    if marker != MARKER {
        return Err(DeferredError::Malformed(format!("marker {marker:?}")));
    }
    if version != VERSION {
        return Err(DeferredError::UnsupportedVersion(version));
    }
    records.into_iter().map(WireRecord::into_record).collect()
}

/// One message to send to the consumer's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The deferred message.
    pub bytes: Vec<u8>,
    /// Its delivery delay.
    pub delay_seconds: u32,
    /// Positions (in the slice given to [`pack`]) of the records it holds.
    pub members: Vec<usize>,
}

/// The delay of a message whose records were deferred `deferrals` times (counting this one):
/// [`DEFER_BASE_SECONDS`] doubled per deferral up to [`DEFER_MAX_SECONDS`], aligned to the
/// next multiple of that period (at least half a period away), so deferred messages of one
/// period become visible together and are packed into fewer on their next deferral.
pub fn delay_seconds(deferrals: u32, now_ms: i64) -> u32 {
    let exponent = deferrals.saturating_sub(1).min(31);
    let period = (u64::from(DEFER_BASE_SECONDS) << exponent).min(u64::from(DEFER_MAX_SECONDS));
    let now_s = (now_ms.max(0) / 1000) as u64;
    let mut delay = period - now_s % period;
    if delay < period.div_ceil(2) {
        delay += period;
    }
    delay as u32
}

/// Packs records into as few deferred messages as fit [`MAX_DEFERRED_BYTES`] and hold at most
/// `max_pending_points` points still to write ([`PENDING_POINTS_PER_MESSAGE`]; a record with
/// more travels alone). Each record comes with its number of pending points. Returns the
/// messages and the positions of records too large to travel even alone.
pub fn pack(
    records: &[(Record, usize)],
    max_pending_points: usize,
    now_ms: i64,
) -> (Vec<Outgoing>, Vec<usize>) {
    let overhead = encode(&[]).map(|b| b.len()).unwrap_or(32) + 4;
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut too_large = Vec::new();
    let (mut bytes, mut points) = (overhead, 0);
    for (i, (record, pending)) in records.iter().enumerate() {
        let size = encode(std::slice::from_ref(record))
            .map(|b| b.len().saturating_sub(overhead - 4))
            .unwrap_or(usize::MAX);
        if size.saturating_add(overhead) > MAX_DEFERRED_BYTES {
            too_large.push(i);
            continue;
        }
        let fits = bytes + size <= MAX_DEFERRED_BYTES && points + pending <= max_pending_points;
        let alone = *pending > max_pending_points;
        if groups.is_empty() || !fits {
            groups.push(Vec::new());
            bytes = overhead;
            points = 0;
        }
        bytes += size;
        points += pending;
        if let Some(group) = groups.last_mut() {
            group.push(i);
        }
        if alone {
            // Nothing joins a record over the share.
            groups.push(Vec::new());
            bytes = overhead;
            points = 0;
        }
    }
    groups.retain(|g| !g.is_empty());
    let mut out = Vec::with_capacity(groups.len());
    for group in groups {
        let members: Vec<Record> = group.iter().map(|&i| records[i].0.clone()).collect();
        let deferrals = members.iter().map(|r| r.deferrals).max().unwrap_or(1);
        match encode(&members) {
            Ok(bytes) if bytes.len() <= MAX_DEFERRED_BYTES => out.push(Outgoing {
                bytes,
                delay_seconds: delay_seconds(deferrals, now_ms),
                members: group,
            }),
            _ => too_large.extend(group),
        }
    }
    too_large.sort_unstable();
    (out, too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize, body: Result<Vec<u8>, String>) -> Record {
        Record {
            origin: Origin {
                queue: "telegram-analytics".into(),
                message_id: format!("m{n}"),
                received_at_ms: 1_764_000_000_000,
            },
            writer: format!("m{n}@1764000000000"),
            deferrals: 1,
            points: PointsState::WrittenAll {
                at_ms: 1_764_000_000_500,
            },
            body,
        }
    }

    #[test]
    fn records_round_trip_and_are_told_apart_from_envelopes() {
        let mut kept = record(2, Err("a text message".into()));
        kept.points = PointsState::WrittenKept { at_ms: 5 };
        let mut pending = record(3, Ok(vec![0xff; 3]));
        pending.points = PointsState::Pending;
        let records = vec![record(1, Ok(vec![1, 2, 0x95])), kept, pending];
        let bytes = encode(&records).unwrap();
        assert!(is_deferred(&bytes));
        assert_eq!(decode(&bytes).unwrap(), records);
        let envelope =
            analytics_core::wire::encode(&analytics_core::samples::typical_envelope()).unwrap();
        assert!(!is_deferred(&envelope));
        assert!(decode(&envelope).is_err());
        // Bytes travel as `bin`, not as arrays of integers (2 bytes each above 0x7f).
        let large = encode(&[record(4, Ok(vec![0xff; 1_000]))]).unwrap();
        let small = encode(&[record(4, Ok(Vec::new()))]).unwrap();
        // bin 16 (3-byte header) against an empty bin 8 (2 bytes).
        assert_eq!(large.len() - small.len(), 1_000 + 1);
    }

    #[test]
    fn garbage_with_the_marker_is_an_error_not_a_panic() {
        let mut bytes = encode(&[record(1, Ok(vec![1]))]).unwrap();
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
        }
        bytes[prefix().len()] = 0xc1; // the version: a byte MessagePack never uses
        assert!(decode(&bytes).is_err());
        let other = WireMessage(MARKER.into(), 9, Vec::new());
        assert_eq!(
            decode(&rmp_serde::to_vec(&other).unwrap()),
            Err(DeferredError::UnsupportedVersion(9))
        );
    }

    #[test]
    fn delays_double_cap_and_align() {
        let now = 1_764_000_003_000; // 3 s past a 10 s boundary
        assert_eq!(delay_seconds(1, now), 7);
        assert_eq!(
            delay_seconds(1, 1_764_000_008_000),
            12,
            "at least half a period"
        );
        assert_eq!(delay_seconds(2, now), 17);
        assert_eq!(
            delay_seconds(40, now),
            3_597,
            "capped at an hour, aligned to the hour"
        );
        for d in 1..20 {
            let delay = delay_seconds(d, now);
            assert!(delay <= DEFER_MAX_SECONDS * 3 / 2, "{d}: {delay}");
            assert!(delay >= 5);
        }
        // Two messages deferred a second apart become visible at the same instant.
        let a = 1_764_000_001_000 / 1000 + i64::from(delay_seconds(3, 1_764_000_001_000));
        let b = 1_764_000_002_000 / 1000 + i64::from(delay_seconds(3, 1_764_000_002_000));
        assert_eq!(a, b);
    }

    #[test]
    fn packing_respects_size_and_points_and_sets_aside_what_cannot_travel() {
        let big = vec![7u8; 60_000];
        let records: Vec<(Record, usize)> = vec![
            (record(0, Ok(big.clone())), 0),
            (record(1, Ok(big.clone())), 0),
            (record(2, Ok(big.clone())), 0),
            (record(3, Ok(vec![0; MAX_DEFERRED_BYTES])), 0),
            (record(4, Ok(vec![1])), 200),
            (record(5, Ok(vec![1])), 100),
        ];
        let (out, too_large) = pack(&records, 250, 0);
        assert_eq!(too_large, vec![3]);
        let members: Vec<Vec<usize>> = out.iter().map(|o| o.members.clone()).collect();
        assert_eq!(
            members,
            vec![vec![0, 1], vec![2, 4], vec![5]],
            "60 KB twice fits, 200 + 100 points do not"
        );
        for o in &out {
            assert!(o.bytes.len() <= MAX_DEFERRED_BYTES);
            assert!(is_deferred(&o.bytes));
        }
        let all: Vec<String> = out
            .iter()
            .flat_map(|o| decode(&o.bytes).unwrap())
            .map(|r| r.origin.message_id)
            .collect();
        assert_eq!(all, ["m0", "m1", "m2", "m4", "m5"]);
        // At one message's share of a batch's budget, a record over the share travels alone.
        let (out, too_large) = pack(&records, PENDING_POINTS_PER_MESSAGE, 0);
        assert!(too_large == vec![3]);
        let members: Vec<Vec<usize>> = out.iter().map(|o| o.members.clone()).collect();
        assert_eq!(members, vec![vec![0, 1], vec![2], vec![4], vec![5]]);
        assert_eq!(PENDING_POINTS_PER_MESSAGE * crate::MAX_BATCH_SIZE, 250);
        // The largest envelope the bot sends still travels alone.
        let largest = vec![(
            record(9, Ok(vec![0xab; analytics_core::wire::MAX_MESSAGE_BYTES])),
            0,
        )];
        assert!(pack(&largest, 250, 0).1.is_empty());
    }
}
