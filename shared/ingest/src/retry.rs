//! Retry policy: how long a queue message waits before its next delivery. No I/O, no clock:
//! the delay is a pure function of the delivery attempt (the runtime's `message.attempts`,
//! which the consumer reads from the raw message; workers-rs 0.8.7 has no accessor).

/// Exponential backoff for queue message retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second delivery, in seconds.
    pub base_seconds: u32,
    /// Largest delay, in seconds (Queues accepts at most 12 hours: 43,200 s).
    pub max_seconds: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_seconds: 2,
            max_seconds: 300,
        }
    }
}

/// Most a Queues retry may be delayed, in seconds.
pub const QUEUES_MAX_DELAY_SECONDS: u32 = 43_200;

impl Backoff {
    /// The delay after the `attempts`-th delivery failed (`attempts` counts from 1, as the
    /// runtime's `message.attempts` does): base · 2^(attempts−1), capped.
    pub fn delay_seconds(&self, attempts: u32) -> u32 {
        let exponent = attempts.saturating_sub(1).min(31);
        let delay = u64::from(self.base_seconds) << exponent;
        delay
            .min(u64::from(self.max_seconds))
            .min(u64::from(QUEUES_MAX_DELAY_SECONDS)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_then_caps() {
        let b = Backoff::default();
        let delays: Vec<u32> = (1..=10).map(|a| b.delay_seconds(a)).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.delay_seconds(0), 2, "attempt 0 is treated as the first");
        assert_eq!(b.delay_seconds(u32::MAX), 300);
    }

    #[test]
    fn never_exceeds_the_queues_limit() {
        let b = Backoff {
            base_seconds: u32::MAX,
            max_seconds: u32::MAX,
        };
        assert_eq!(b.delay_seconds(40), QUEUES_MAX_DELAY_SECONDS);
    }
}
