//! Clock-skew correction for event timestamps, bounded so a broken clock cannot move events
//! into the future or arbitrarily far.

/// Largest correction applied, in milliseconds (1 hour). A sender clock further ahead than this
/// is treated as broken: its events are clamped to the receive time instead.
pub const MAX_CORRECTION_MS: i64 = 60 * 60 * 1000;

/// Corrects an event timestamp from the sender's clock to the receiver's.
///
/// `received_at − sent_at` mixes clock skew with queue delay (batching, retries: up to hours),
/// and the two cannot be told apart when it is positive, so only a negative difference — the
/// sender's clock is ahead of the receiver's — is corrected, by at most
/// [`MAX_CORRECTION_MS`]. Whatever the input, the result is never later than `received_at_ms`.
pub fn correct_timestamp(event_ms: i64, sent_at_ms: i64, received_at_ms: i64) -> i64 {
    let offset = received_at_ms.saturating_sub(sent_at_ms);
    let correction = if offset < 0 {
        offset.max(-MAX_CORRECTION_MS)
    } else {
        0
    };
    event_ms.saturating_add(correction).min(received_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_ahead_is_shifted_back() {
        // Sender clock 5 s ahead: sent_at is 5 s after the receive time.
        assert_eq!(correct_timestamp(10_000, 10_500, 5_500), 5_000);
    }

    #[test]
    fn queue_delay_is_not_mistaken_for_skew() {
        // Received an hour after sending (a retry): the event keeps its time.
        assert_eq!(correct_timestamp(1_000, 1_100, 3_601_100), 1_000);
    }

    #[test]
    fn a_broken_clock_cannot_move_events_into_the_future() {
        let received = 1_000_000;
        // Sender a year ahead: correction is capped, then clamped to the receive time.
        let sent = received + 365 * 24 * 3_600_000;
        assert_eq!(correct_timestamp(sent - 10, sent, received), received);
        // An event stamped after its own envelope is clamped too.
        assert_eq!(
            correct_timestamp(received + 50, received, received),
            received
        );
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        assert_eq!(correct_timestamp(i64::MAX, i64::MIN, 0), 0);
        assert!(correct_timestamp(i64::MIN, i64::MAX, 0) <= 0);
    }
}
