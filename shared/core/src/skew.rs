//! Clock-skew correction for event timestamps, bounded so a broken clock cannot move events
//! into the future or arbitrarily far, and a wrong event time cannot move them into the past.

/// Largest correction applied, in milliseconds (1 hour). A sender clock further ahead than this
/// is treated as broken: its events are clamped to the receive time instead.
pub const MAX_CORRECTION_MS: i64 = 60 * 60 * 1000;

/// How long before its envelope was sent an event may have been recorded, in milliseconds
/// (1 hour). A tracker buffers the events of one unit of work and flushes them when it ends:
/// a webhook's `wait_until` work ends at most 30 s after the response (coalescing stays inside
/// that), and no Workers invocation runs longer than 15 minutes (cron and queue handlers), so
/// an hour is four times the longest real gap. An earlier event time is wrong (a clock that
/// jumped, a sender that set it by hand, 1970) and is clamped to this bound, so it cannot move
/// an error group's `first_seen` into the past for good; the data point's skew column keeps
/// how far it was moved.
pub const MAX_EVENT_LEAD_MS: i64 = 60 * 60 * 1000;

/// The longest an envelope can have waited between its send and the consumer first receiving
/// it, in milliseconds (14 days: the longest message retention Cloudflare Queues allow; the
/// free plan keeps messages 24 hours). An earlier `sent_at` cannot be a real queue delay (a
/// sender clock in 1970, or a forged envelope) and is clamped to this bound, so its events
/// cannot move an error group's `first_seen` further into the past than that.
pub const MAX_QUEUE_STAY_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// Corrects an event timestamp from the sender's clock to the receiver's.
///
/// `received_at − sent_at` mixes clock skew with queue delay (batching, retries: up to hours),
/// and the two cannot be told apart when it is positive, so only a negative difference — the
/// sender's clock is ahead of the receiver's — is corrected, by at most
/// [`MAX_CORRECTION_MS`]. A `sent_at_ms` more than [`MAX_QUEUE_STAY_MS`] before
/// `received_at_ms` is first raised to that bound. Whatever the input, the result is never later
/// than `received_at_ms`, never more than [`MAX_EVENT_LEAD_MS`] before the (corrected)
/// `sent_at_ms`, and so never more than `MAX_QUEUE_STAY_MS + MAX_EVENT_LEAD_MS` before
/// `received_at_ms`.
pub fn correct_timestamp(event_ms: i64, sent_at_ms: i64, received_at_ms: i64) -> i64 {
    let sent_at_ms = sent_at_ms.max(received_at_ms.saturating_sub(MAX_QUEUE_STAY_MS));
    let offset = received_at_ms.saturating_sub(sent_at_ms);
    let correction = if offset < 0 {
        offset.max(-MAX_CORRECTION_MS)
    } else {
        0
    };
    let sent = sent_at_ms.saturating_add(correction).min(received_at_ms);
    let earliest = sent.saturating_sub(MAX_EVENT_LEAD_MS);
    // `earliest <= sent <= received_at_ms`, so the bounds never cross.
    event_ms
        .saturating_add(correction)
        .max(earliest)
        .min(received_at_ms)
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
    fn an_event_dated_1970_is_clamped_to_shortly_before_its_envelope() {
        let received = 1_764_000_001_000;
        let sent_at = received - 1_000;
        assert_eq!(
            correct_timestamp(0, sent_at, received),
            sent_at - MAX_EVENT_LEAD_MS
        );
        // Recorded 20 minutes before the send (a long cron job): kept as it is.
        assert_eq!(
            correct_timestamp(sent_at - 1_200_000, sent_at, received),
            sent_at - 1_200_000
        );
        // A sender 5 s ahead: the bound moves with the correction.
        assert_eq!(
            correct_timestamp(0, received + 5_000, received),
            received - MAX_EVENT_LEAD_MS
        );
    }

    #[test]
    fn a_sender_clock_in_1970_cannot_move_events_before_the_longest_queue_stay() {
        let received = 1_764_000_001_000;
        // The envelope says it was sent in 1970 (a broken clock, or forged): its events are
        // no earlier than the longest a message can wait in a queue, plus the lead.
        let earliest = received - MAX_QUEUE_STAY_MS - MAX_EVENT_LEAD_MS;
        assert_eq!(correct_timestamp(0, 0, received), earliest);
        assert_eq!(correct_timestamp(5, 10, received), earliest);
        // A real queue stay (a day) is left alone.
        let sent = received - 24 * 3_600_000;
        assert_eq!(correct_timestamp(sent - 10, sent, received), sent - 10);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        assert_eq!(correct_timestamp(i64::MAX, i64::MIN, 0), 0);
        assert!(correct_timestamp(i64::MIN, i64::MAX, 0) <= 0);
        assert_eq!(correct_timestamp(i64::MIN, i64::MIN, i64::MIN), i64::MIN);
        assert_eq!(correct_timestamp(i64::MAX, i64::MAX, i64::MAX), i64::MAX);
        assert_eq!(correct_timestamp(0, i64::MAX, i64::MIN), i64::MIN);
    }
}
