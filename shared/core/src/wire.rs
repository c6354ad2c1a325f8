//! The versioned MessagePack wire format: one queue message holds one [`Envelope`].
//!
//! Layout and evolution rules are in `docs/wire-format.md`. In short: the envelope is a
//! MessagePack array whose first element is the schema version; every struct is encoded
//! as an array of its fields in declaration order (rmp-serde's compact form).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// The schema version this crate writes.
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest schema version this crate still reads. Version 1 is version 2 with string-only
/// property values, three drop reasons and random UUIDv7 event ids; it decodes as it is.
pub const MIN_SCHEMA_VERSION: u32 = 1;

/// Cloudflare Queues' limit for one message: 128 KB in decimal, 128,000 bytes, metadata
/// included (miniflare enforces the same `128 * 1000` on the body).
pub const QUEUES_MESSAGE_LIMIT_BYTES: usize = 128_000;

/// Bytes kept free for the queue's own metadata, which counts toward its limit (Cloudflare
/// documents about 100 bytes; ten times that is kept).
pub const QUEUES_METADATA_RESERVE_BYTES: usize = 1_000;

/// Largest envelope this crate puts in one queue message.
pub const MAX_MESSAGE_BYTES: usize = QUEUES_MESSAGE_LIMIT_BYTES - QUEUES_METADATA_RESERVE_BYTES;

/// Who sent an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The Worker's name, e.g. `telegram-bot`.
    pub worker: String,
    /// The deployed release, e.g. a version or git sha.
    pub release: String,
}

/// Events the sender had to give up, by reason, since its last successful send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    /// Events whose queue send failed twice.
    pub send_failed: u32,
    /// Events too large to fit in one queue message even alone.
    pub oversize: u32,
    /// Events cut because one request's buffer was full.
    pub buffer_full: u32,
    /// Events lost because the flush carrying them was cancelled before its send finished
    /// (counted by the next flush of the same isolate). Version 2 on.
    #[serde(default)]
    pub cancelled: u32,
}

impl DropCounts {
    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, n)| u64::from(*n)).sum()
    }

    /// Adds `other` to `self`, saturating.
    pub fn add(&mut self, other: DropCounts) {
        self.send_failed = self.send_failed.saturating_add(other.send_failed);
        self.oversize = self.oversize.saturating_add(other.oversize);
        self.buffer_full = self.buffer_full.saturating_add(other.buffer_full);
        self.cancelled = self.cancelled.saturating_add(other.cancelled);
    }

    /// `(reason, count)` pairs, for logs and reports.
    pub fn by_reason(&self) -> [(&'static str, u32); 4] {
        [
            ("send_failed", self.send_failed),
            ("oversize", self.oversize),
            ("buffer_full", self.buffer_full),
            ("cancelled", self.cancelled),
        ]
    }
}

/// One queue message: a batch of events from one sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`SCHEMA_VERSION`] when written by this crate; [`MIN_SCHEMA_VERSION`] or later when read.
    pub version: u32,
    /// Who sent it.
    pub source: Source,
    /// When the sender encoded it (the sender's clock).
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub sent_at: DateTime<Utc>,
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// Events the sender dropped since its last successful send.
    pub dropped: DropCounts,
}

/// Why bytes could not be turned into an [`Envelope`] (or an envelope into bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message was empty.
    #[error("empty message")]
    Empty,
    /// The bytes do not start with a MessagePack array holding a version number.
    #[error("not an envelope: {0}")]
    NotAnEnvelope(String),
    /// A version this build does not know (newer sender, or garbage).
    #[error("unsupported schema version {found} (this build reads versions 1 to {supported})")]
    UnsupportedVersion {
        /// The version found in the message.
        found: u64,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The version is known but the body does not match its schema.
    #[error("malformed version {version} envelope: {reason}")]
    Malformed {
        /// The version the message claimed.
        version: u32,
        /// What the decoder reported.
        reason: String,
    },
    /// Encoding failed (should not happen for values built by this crate).
    #[error("encoding failed: {0}")]
    Encode(String),
}

impl WireError {
    /// A short stable code for storing and grouping rejections.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::Empty => "empty",
            WireError::NotAnEnvelope(_) => "not_an_envelope",
            WireError::UnsupportedVersion { .. } => "unsupported_version",
            WireError::Malformed { .. } => "malformed",
            WireError::Encode(_) => "encode",
        }
    }
}

/// Encodes an envelope as compact MessagePack.
pub fn encode(envelope: &Envelope) -> Result<Vec<u8>, WireError> {
    rmp_serde::to_vec(envelope).map_err(|e| WireError::Encode(e.to_string()))
}

/// Encodes one event alone; its length is what the event adds to an envelope.
///
/// Written by hand for the hot path (every event is encoded once, in the Worker): the bytes are
/// exactly what rmp-serde writes for the same event in its compact form (a property test
/// checks it), with no per-byte writer calls and one allocation.
pub fn encode_event(event: &Event) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(96 + event.name.len() + 24 * event.properties.len());
    msgpack::event(&mut out, event);
    Ok(out)
}

/// The MessagePack primitives [`encode_event`] needs, with rmp's choice of the smallest
/// representation.
mod msgpack {
    use super::{DropCounts, Source};
    use crate::event::{ErrorDetails, Event, PropValue};

    pub(super) fn uint(out: &mut Vec<u8>, v: u64) {
        if v < 128 {
            out.push(v as u8);
        } else if v < 256 {
            out.extend_from_slice(&[0xcc, v as u8]);
        } else if v < 65_536 {
            out.push(0xcd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v < 4_294_967_296 {
            out.push(0xce);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    pub(super) fn sint(out: &mut Vec<u8>, v: i64) {
        if v >= 0 {
            return uint(out, v as u64);
        }
        if v >= -32 {
            out.push(v as i8 as u8);
        } else if v >= -128 {
            out.extend_from_slice(&[0xd0, v as i8 as u8]);
        } else if v >= -32_768 {
            out.push(0xd1);
            out.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= -2_147_483_648 {
            out.push(0xd2);
            out.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            out.push(0xd3);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Who sent an envelope, as rmp-serde's compact form writes [`Source`].
    pub(super) fn source(out: &mut Vec<u8>, source: &Source) {
        array(out, 2);
        str(out, &source.worker);
        str(out, &source.release);
    }

    /// The drop counts, as rmp-serde's compact form writes [`DropCounts`] (field order).
    pub(super) fn drop_counts(out: &mut Vec<u8>, dropped: &DropCounts) {
        let counts = dropped.by_reason();
        array(out, counts.len());
        for (_, count) in counts {
            uint(out, u64::from(count));
        }
    }

    /// An array header; `len` is below 2^32 (MessagePack's limit).
    pub(super) fn array(out: &mut Vec<u8>, len: usize) {
        if len < 16 {
            out.push(0x90 | len as u8);
        } else if len < 65_536 {
            out.push(0xdc);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0xdd);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }

    fn str(out: &mut Vec<u8>, s: &str) {
        let len = s.len();
        if len < 32 {
            out.push(0xa0 | len as u8);
        } else if len < 256 {
            out.extend_from_slice(&[0xd9, len as u8]);
        } else if len < 65_536 {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0xdb);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        out.extend_from_slice(s.as_bytes());
    }

    fn f64(out: &mut Vec<u8>, v: f64) {
        out.push(0xcb);
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    const NIL: u8 = 0xc0;

    fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => str(out, s),
            None => out.push(NIL),
        }
    }

    fn error(out: &mut Vec<u8>, e: &ErrorDetails) {
        array(out, 4);
        str(out, &e.kind);
        str(out, &e.message);
        opt_str(out, e.location.as_deref());
        opt_str(out, e.group_key.as_deref());
    }

    fn value(out: &mut Vec<u8>, v: &PropValue) {
        match v {
            PropValue::Str(s) => str(out, s),
            PropValue::Int(n) => sint(out, *n),
            PropValue::Float(x) => f64(out, *x),
            PropValue::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        }
    }

    /// One event, as rmp-serde's compact form writes it (see `docs/wire-format.md`).
    pub(super) fn event(out: &mut Vec<u8>, e: &Event) {
        array(out, 10);
        out.extend_from_slice(&[0xc4, 16]);
        out.extend_from_slice(e.id.as_bytes());
        sint(out, e.timestamp.timestamp_millis());
        uint(out, u64::from(u8::from(e.kind)));
        str(out, &e.name);
        match e.user_id {
            Some(id) => sint(out, id),
            None => out.push(NIL),
        }
        match e.chat_id {
            Some(id) => sint(out, id),
            None => out.push(NIL),
        }
        match e.duration_ms {
            Some(ms) => f64(out, ms),
            None => out.push(NIL),
        }
        match &e.error {
            Some(details) => error(out, details),
            None => out.push(NIL),
        }
        array(out, e.properties.len());
        for (k, v) in &e.properties {
            array(out, 2);
            str(out, k);
            value(out, v);
        }
        uint(out, u64::from(e.truncated));
    }
}

/// Writes envelopes of the current version from events encoded once each ([`encode_event`]),
/// without encoding the events again: the source is encoded once, and the bytes around the
/// events are written directly. The result is byte for byte what [`encode`] writes for the
/// same envelope (a property test checks it).
#[derive(Debug, Clone)]
pub struct EnvelopeWriter {
    /// `[` array of 5, version, source.
    prefix: Vec<u8>,
}

/// Most bytes a timestamp takes (marker + 8).
const MAX_TIMESTAMP_BYTES: usize = 9;
/// Most bytes an array length prefix takes (marker + 4).
const MAX_ARRAY_LEN_BYTES: usize = 5;
/// Most bytes the drop counts take: array marker + 4 × (marker + 4).
const MAX_DROP_COUNTS_BYTES: usize = 1 + 4 * 5;

impl EnvelopeWriter {
    /// A writer for envelopes from `source`.
    pub fn new(source: &Source) -> Self {
        let mut prefix = Vec::with_capacity(16 + source.worker.len() + source.release.len());
        msgpack::array(&mut prefix, 5);
        msgpack::uint(&mut prefix, u64::from(SCHEMA_VERSION));
        msgpack::source(&mut prefix, source);
        EnvelopeWriter { prefix }
    }

    /// The most bytes an envelope adds around its events.
    pub fn max_overhead(&self) -> usize {
        self.prefix.len() + MAX_TIMESTAMP_BYTES + MAX_ARRAY_LEN_BYTES + MAX_DROP_COUNTS_BYTES
    }

    /// The envelope holding `events` (each encoded by [`encode_event`]), sent at `sent_at_ms`,
    /// carrying `dropped`.
    pub fn write<'a>(
        &self,
        sent_at_ms: i64,
        events: impl ExactSizeIterator<Item = &'a [u8]>,
        dropped: &DropCounts,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.max_overhead() + 128 * events.len());
        out.extend_from_slice(&self.prefix);
        msgpack::sint(&mut out, sent_at_ms);
        msgpack::array(&mut out, events.len());
        for event in events {
            out.extend_from_slice(event);
        }
        msgpack::drop_counts(&mut out, dropped);
        out
    }
}

/// Reads the schema version without decoding the rest.
pub fn peek_version(bytes: &[u8]) -> Result<u64, WireError> {
    if bytes.is_empty() {
        return Err(WireError::Empty);
    }
    let mut cursor = bytes;
    let len = rmp::decode::read_array_len(&mut cursor)
        .map_err(|e| WireError::NotAnEnvelope(format!("expected an array: {e}")))?;
    if len == 0 {
        return Err(WireError::NotAnEnvelope("empty array".into()));
    }
    rmp::decode::read_int::<u64, _>(&mut cursor)
        .map_err(|e| WireError::NotAnEnvelope(format!("expected a version number: {e}")))
}

/// Decodes bytes into an envelope. Never panics; every failure is a [`WireError`].
pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
    let version = peek_version(bytes)?;
    if !(u64::from(MIN_SCHEMA_VERSION)..=u64::from(SCHEMA_VERSION)).contains(&version) {
        return Err(WireError::UnsupportedVersion {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    rmp_serde::from_slice(bytes).map_err(|e| WireError::Malformed {
        version: version as u32,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn envelope_round_trips() {
        let envelope = samples::typical_envelope();
        let bytes = encode(&envelope).unwrap();
        assert_eq!(decode(&bytes).unwrap(), envelope);
    }

    #[test]
    fn newer_version_is_a_clear_error() {
        let mut envelope = samples::typical_envelope();
        envelope.version = 3;
        let bytes = encode(&envelope).unwrap();
        assert_eq!(
            decode(&bytes),
            Err(WireError::UnsupportedVersion {
                found: 3,
                supported: 2
            })
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert_eq!(decode(&[]), Err(WireError::Empty));
        assert!(matches!(
            decode(b"{\"json\":1}"),
            Err(WireError::NotAnEnvelope(_))
        ));
        let bytes = encode(&samples::typical_envelope()).unwrap();
        assert!(matches!(
            decode(&bytes[..bytes.len() / 2]),
            Err(WireError::Malformed { version: 2, .. })
        ));
    }

    #[test]
    fn trailing_fields_are_rejected_not_ignored() {
        // A v1 envelope with a sixth element is not v1: evolution bumps the version.
        let mut bytes = encode(&samples::typical_envelope()).unwrap();
        assert_eq!(bytes[0], 0x95, "fixarray of 5");
        bytes[0] = 0x96;
        bytes.push(0xc0);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn golden_fixtures_of_version_1_still_decode() {
        // Written once by the version 1 code; never regenerate them to make this test pass: a
        // failure means the format drifted.
        let typical = include_bytes!("../fixtures/v1_typical.msgpack");
        let decoded = decode(typical).expect("golden v1 fixture decodes");
        let mut expected = samples::typical_envelope();
        expected.version = 1;
        assert_eq!(decoded, expected);

        let error = include_bytes!("../fixtures/v1_error.msgpack");
        let decoded = decode(error).expect("golden v1 error fixture decodes");
        let mut expected = samples::error_envelope();
        expected.version = 1;
        assert_eq!(decoded, expected);
    }

    #[test]
    fn golden_fixture_of_version_2_still_decodes() {
        // Written once by `cargo run -p analytics-core --example write_fixtures` when version 2 was
        // introduced; the same rule applies.
        let typed = include_bytes!("../fixtures/v2_typed.msgpack");
        let decoded = decode(typed).expect("golden v2 fixture decodes");
        assert_eq!(decoded, samples::typed_envelope());
        assert_eq!(
            encode(&decoded).unwrap(),
            typed.to_vec(),
            "encoding is stable"
        );
    }

    #[test]
    fn the_hand_written_event_encoder_writes_what_rmp_serde_writes() {
        let mut events = samples::typical_events();
        events.extend(samples::typed_envelope().events);
        events.push(samples::error_event());
        for event in &events {
            assert_eq!(
                encode_event(event).unwrap(),
                rmp_serde::to_vec(event).unwrap()
            );
        }
    }

    #[test]
    fn the_envelope_writer_writes_what_encode_writes() {
        for envelope in [
            samples::typical_envelope(),
            samples::error_envelope(),
            samples::typed_envelope(),
        ] {
            let writer = EnvelopeWriter::new(&envelope.source);
            let events: Vec<Vec<u8>> = envelope
                .events
                .iter()
                .map(|e| encode_event(e).unwrap())
                .collect();
            let bytes = writer.write(
                envelope.sent_at.timestamp_millis(),
                events.iter().map(Vec::as_slice),
                &envelope.dropped,
            );
            assert_eq!(bytes, encode(&envelope).unwrap());
            let around = bytes.len() - events.iter().map(Vec::len).sum::<usize>();
            assert!(around <= writer.max_overhead());
        }
    }

    #[test]
    fn messagepack_is_at_most_40_percent_of_json() {
        let envelope = samples::typical_envelope();
        assert_eq!(envelope.events.len(), 5);
        let msgpack = encode(&envelope).unwrap().len();
        let json = serde_json::to_vec(&envelope).unwrap().len();
        let ratio = msgpack as f64 / json as f64;
        assert!(
            ratio <= 0.40,
            "MessagePack {msgpack} B / JSON {json} B = {ratio:.3} > 0.40"
        );
    }
}
