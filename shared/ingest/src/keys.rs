//! Idempotency keys: of an envelope (its raw bytes) and of the request an event belongs to.

use analytics_core::event::Event;
use analytics_core::ids::{attempt_of, is_redeliverable, mix, request_key_of};

/// The idempotency key of a queue message's content: 32 hex digits hashing the raw bytes.
///
/// Two copies of one message (a Queues redelivery, or a producer send repeated after an error
/// that happened once the message was already enqueued) carry the same bytes and get the same
/// key; two different envelopes get different keys, including envelopes with no events that
/// only carry drop counts. The hash is two 64-bit FNV-1a lanes with different bases and the
/// length mixed in: not cryptographic (only the project's own Workers write to the queue), but
/// an accidental collision needs about 2^64 envelopes, and it costs one multiplication per byte
/// per lane, so a 127 KB message hashes in well under a millisecond of Worker CPU.
pub fn envelope_key(bytes: &[u8]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &byte in bytes {
        a = (a ^ u64::from(byte)).wrapping_mul(PRIME);
        b = (b ^ u64::from(byte)).wrapping_mul(PRIME);
    }
    // Finish each lane with the length and a final avalanche, so short inputs spread too.
    let len = bytes.len() as u64;
    format!("{:016x}{:016x}", mix(a ^ len), mix(b ^ len.rotate_left(32)))
}

/// One handling (attempt) of a unit of work (request), as carried in an event id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestAttempt {
    /// The request key, 16 hex digits (bytes 0–7 of the event id).
    pub key: String,
    /// The attempt (bytes 8–13 of the event id; below 2^48, so exact as a JS number).
    pub attempt: u64,
}

/// The request and attempt an event belongs to, when its id carries them: a UUIDv8 id in a
/// version 2 (or later) envelope. Version 1 envelopes have random UUIDv7 ids: such an event is
/// its own request with its one attempt, keyed by its whole id, so it needs no request claim
/// (`None`): it is always kept, and the error row's primary key and the envelope's points claim
/// deduplicate it. Events of a unit of work with a random request key (not a Telegram update:
/// nothing can deliver it again) need no claim either.
pub fn request_of(event: &Event, envelope_version: u32) -> Option<RequestAttempt> {
    if envelope_version < 2 || event.id.get_version_num() != 8 {
        return None;
    }
    let key = request_key_of(&event.id);
    if !is_redeliverable(key) {
        return None;
    }
    Some(RequestAttempt {
        key: format!("{key:016x}"),
        attempt: attempt_of(&event.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::ids::update_request_key;
    use analytics_core::samples;
    use analytics_core::samples::ids_for_request;
    use analytics_core::wire::encode;

    #[test]
    fn two_different_drop_only_envelopes_get_different_keys() {
        // 200 and 201 differ only in a byte above 0x7f: a lossy text hash saw them as equal.
        let drop_only = |buffer_full| encode(&samples::drop_only_envelope(buffer_full)).unwrap();
        let (a, b) = (drop_only(200), drop_only(201));
        assert_ne!(a, b);
        assert_ne!(envelope_key(&a), envelope_key(&b));
        assert_eq!(
            envelope_key(&a),
            envelope_key(&a.clone()),
            "same bytes, same key"
        );
        assert_eq!(envelope_key(&a).len(), 32);
    }

    #[test]
    fn keys_spread_over_short_and_long_inputs() {
        let mut keys: Vec<String> = (0..=255u8).map(|b| envelope_key(&[b])).collect();
        keys.push(envelope_key(&[]));
        keys.push(envelope_key(&[0, 0]));
        keys.push(envelope_key(&vec![7; 127_000]));
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }

    #[test]
    fn v2_events_carry_request_and_attempt_v1_events_do_not() {
        let key = update_request_key("telegram-bot:1", 42);
        let mut first = ids_for_request(key, [1; 16]);
        let mut again = ids_for_request(key, [2; 16]);
        let mut event = samples::typical_events().remove(0);
        event.id = first.next_id();
        let a = request_of(&event, 2).unwrap();
        event.id = first.next_id();
        assert_eq!(
            request_of(&event, 2).unwrap(),
            a,
            "same attempt, next sequence"
        );
        event.id = again.next_id();
        let b = request_of(&event, 2).unwrap();
        assert_eq!(a.key, b.key);
        assert_ne!(a.attempt, b.attempt);
        assert!(a.attempt < 1 << 48);
        assert_eq!(request_of(&event, 1), None, "a version 1 envelope");
        // The samples' ids are UUIDv7: keyed by their whole id.
        assert_eq!(request_of(&samples::typical_events()[0], 2), None);
    }
}
