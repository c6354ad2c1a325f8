//! UUIDv7 event ids without I/O: the caller supplies the time and a random seed.

use uuid::{Builder, Uuid};

/// Generates UUIDv7 ids from a millisecond timestamp and a seeded generator.
///
/// The random part comes from SplitMix64 seeded by the caller (the Worker seeds it
/// from `crypto.getRandomValues`), so this crate needs no entropy source of its own
/// and tests are deterministic.
#[derive(Debug, Clone)]
pub struct EventIdGenerator {
    state: u64,
}

impl EventIdGenerator {
    /// A generator seeded with 128 random bits (folded into the 64-bit state).
    pub fn new(seed: [u8; 16]) -> Self {
        let (hi, lo) = seed.split_at(8);
        let hi = u64::from_le_bytes(hi.try_into().expect("8 bytes"));
        let lo = u64::from_le_bytes(lo.try_into().expect("8 bytes"));
        EventIdGenerator {
            state: hi ^ lo.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A new UUIDv7 for an event that happened at `unix_ms` (milliseconds since the epoch).
    pub fn next_id(&mut self, unix_ms: i64) -> Uuid {
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        random[8..].copy_from_slice(&self.next_u64().to_le_bytes()[..2]);
        Builder::from_unix_timestamp_millis(unix_ms.max(0) as u64, &random).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_v7_unique_and_time_ordered() {
        let mut ids = EventIdGenerator::new([7; 16]);
        let a = ids.next_id(1_700_000_000_000);
        let b = ids.next_id(1_700_000_000_001);
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b, "a later millisecond sorts later");
        let many: HashSet<Uuid> = (0..10_000).map(|_| ids.next_id(1)).collect();
        assert_eq!(many.len(), 10_000);
    }

    #[test]
    fn different_seeds_give_different_ids() {
        let a = EventIdGenerator::new([1; 16]).next_id(5);
        let b = EventIdGenerator::new([2; 16]).next_id(5);
        assert_ne!(a, b);
    }
}
