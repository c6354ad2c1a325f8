//! Event ids, without I/O: the caller supplies the random seed.
//!
//! An event id is a UUIDv8 (RFC 9562, custom layout) in three parts:
//!
//! | bytes | holds |
//! | --- | --- |
//! | 0–7 | the **request key**: the unit of work the event belongs to (60 bits; the UUID version nibble sits in byte 6) |
//! | 8–13 | the **attempt**: which handling of that unit of work (46 random bits; the UUID variant sits in byte 8) |
//! | 14–15 | the event's sequence number within the attempt |
//!
//! For a Telegram update the request key is derived from the bot and the `update_id`
//! ([`update_request_key`]), so when Telegram delivers the same update again, its events carry
//! the same request key and a new attempt: the consumer stores the events of one attempt per
//! request key and drops the rest as duplicates. The key's top bit says which kind it is: set
//! for keys derived from something that can be delivered again ([`is_redeliverable`]); clear for
//! the random keys of other units of work, which the consumer need not claim (a claim costs a D1
//! row written, and nothing can repeat a random key).

use uuid::Uuid;

use crate::fingerprint::Fnv1a;

const REQUEST_MASK: u64 = 0x0FFF_FFFF_FFFF_FFFF; // 60 bits
/// The request key bit that marks a key derived from a redeliverable unit of work.
const REDELIVERABLE: u64 = 1 << 59;
const ATTEMPT_MASK: u64 = 0x3FFF_FFFF_FFFF; // 46 bits

/// Generates the ids of one unit of work's events.
#[derive(Debug, Clone)]
pub struct EventIds {
    request: u64,
    attempt: u64,
    seq: u16,
}

/// SplitMix64: a small, well-mixed generator for the seed-derived parts (and the isolate's
/// seed stream in the library).
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix(*state)
}

/// SplitMix64's finaliser: every input bit moves about half the output bits.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_state(seed: [u8; 16]) -> u64 {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&seed[..8]);
    lo.copy_from_slice(&seed[8..]);
    u64::from_le_bytes(hi) ^ u64::from_le_bytes(lo).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl EventIds {
    /// Ids for a unit of work with no natural key: request key and attempt both random.
    pub fn random(seed: [u8; 16]) -> Self {
        let mut state = seed_state(seed);
        let request = splitmix(&mut state);
        EventIds {
            request: request & REQUEST_MASK & !REDELIVERABLE,
            attempt: splitmix(&mut state) & ATTEMPT_MASK,
            seq: 0,
        }
    }

    /// Moves to another unit of work (for example once the update is known), keeping the
    /// attempt and the sequence.
    pub fn set_request_key(&mut self, request_key: u64) {
        self.request = request_key & REQUEST_MASK;
    }

    /// The next event id.
    pub fn next_id(&mut self) -> Uuid {
        let r = self.request;
        let a = self.attempt;
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut b = [0u8; 16];
        // Request key: 48 bits, then the version nibble 8 with 4 bits, then 8 bits.
        b[..6].copy_from_slice(&(r >> 12).to_be_bytes()[2..]);
        b[6] = 0x80 | ((r >> 8) & 0x0F) as u8;
        b[7] = (r & 0xFF) as u8;
        // Attempt: the variant bits 10 with 6 bits, then 40 bits.
        b[8] = 0x80 | ((a >> 40) & 0x3F) as u8;
        b[9..14].copy_from_slice(&a.to_be_bytes()[3..]);
        b[14..].copy_from_slice(&s.to_be_bytes());
        Uuid::from_bytes(b)
    }
}

/// The request key of a Telegram update: the same for every delivery of the update to the same
/// bot. `bot` names the bot (the Worker's name and the token's bot id).
pub fn update_request_key(bot: &str, update_id: i64) -> u64 {
    let mut hash = Fnv1a::new();
    hash.write(b"telegram-update\0");
    hash.write(bot.as_bytes());
    hash.write(&[0]);
    hash.write(&update_id.to_le_bytes());
    (hash.finish() & REQUEST_MASK) | REDELIVERABLE
}

/// Whether a request key read from an event id ([`request_key_of`]) belongs to a unit of work
/// that can be delivered again (a Telegram update), rather than a random one.
pub fn is_redeliverable(request_key: u64) -> bool {
    request_key >> 63 == 1
}

/// The request key an event id carries (bytes 0–7, as read by the consumer).
pub fn request_key_of(id: &Uuid) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_be_bytes(b)
}

/// The attempt an event id carries (bytes 8–13, as read by the consumer).
pub fn attempt_of(id: &Uuid) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&id.as_bytes()[8..14]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::ids_for_request;
    use std::collections::HashSet;

    #[test]
    fn ids_are_v8_unique_and_share_request_and_attempt() {
        let mut ids = EventIds::random([7; 16]);
        let a = ids.next_id();
        let b = ids.next_id();
        assert_eq!(a.get_version_num(), 8);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
        assert_eq!(request_key_of(&a), request_key_of(&b));
        assert_eq!(attempt_of(&a), attempt_of(&b));
        let many: HashSet<Uuid> = (0..10_000).map(|_| ids.next_id()).collect();
        assert_eq!(many.len(), 10_000);
    }

    #[test]
    fn a_redelivered_update_has_the_same_request_key_and_a_new_attempt() {
        let key = update_request_key("telegram-bot:123", 42);
        let first = ids_for_request(key, [1; 16]).next_id();
        let again = ids_for_request(key, [2; 16]).next_id();
        assert_eq!(request_key_of(&first), request_key_of(&again));
        assert_ne!(attempt_of(&first), attempt_of(&again));
        assert_ne!(
            request_key_of(&first),
            request_key_of(
                &ids_for_request(update_request_key("telegram-bot:123", 43), [1; 16]).next_id()
            )
        );
        assert_ne!(
            update_request_key("telegram-bot:123", 42),
            update_request_key("other-bot:9", 42),
            "another bot's update 42 is another request"
        );
    }

    #[test]
    fn update_keys_are_marked_redeliverable_and_random_ones_are_not() {
        let update = ids_for_request(update_request_key("bot", 1), [1; 16]).next_id();
        assert!(is_redeliverable(request_key_of(&update)));
        for seed in 0..50u8 {
            let random = EventIds::random([seed; 16]).next_id();
            assert!(!is_redeliverable(request_key_of(&random)));
            assert_eq!(random.get_version_num(), 8);
        }
    }

    #[test]
    fn different_seeds_give_different_requests() {
        let a = EventIds::random([1; 16]).next_id();
        let b = EventIds::random([2; 16]).next_id();
        assert_ne!(request_key_of(&a), request_key_of(&b));
    }
}
