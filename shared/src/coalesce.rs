//! Coalescing events across the concurrent requests of one isolate, as pure state.
//!
//! The first request whose events arrive when no flush is pending becomes the **flusher**: it
//! waits a short window inside its own `wait_until`, then takes everything buffered by then —
//! its own events and those of requests that arrived meanwhile — and sends it from its own
//! context. Requests that find a flush pending only add their events and return. Only plain
//! data (events, counts) crosses requests; every send happens in the flusher's own context, and
//! the flusher's `wait_until` is what keeps the isolate alive until the events are sent.

use crate::event::Event;
use crate::wire::DropCounts;

/// Most events the isolate buffer holds; further events are counted as `buffer_full`.
pub const MAX_BUFFERED_EVENTS: usize = 10_000;

/// How long `wait_until` work may run after the response, in ms (Workers limit: 30 s).
pub const WAIT_UNTIL_LIMIT_MS: f64 = 30_000.0;

/// Time kept free at the end of `wait_until` for the send itself and its one retry, in ms.
pub const SEND_RESERVE_MS: f64 = 10_000.0;

/// What a request does after adding its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Wait the window, then take and send the buffer.
    Flusher,
    /// A flush is pending: the events will ride with it; nothing more to do.
    Joined,
}

/// The isolate-wide buffer.
#[derive(Debug, Default)]
pub struct IsolateBuffer {
    events: Vec<Event>,
    dropped: DropCounts,
    flush_pending: bool,
}

impl IsolateBuffer {
    /// Adds one request's events (and drop counts to carry); says whether the caller flushes.
    pub fn add(&mut self, events: Vec<Event>, dropped: DropCounts) -> Role {
        let room = MAX_BUFFERED_EVENTS.saturating_sub(self.events.len());
        let overflow = events.len().saturating_sub(room);
        self.events.extend(events.into_iter().take(room));
        self.dropped.add(dropped);
        self.dropped.buffer_full = self.dropped.buffer_full.saturating_add(overflow as u32);
        if self.flush_pending {
            Role::Joined
        } else {
            self.flush_pending = true;
            Role::Flusher
        }
    }

    /// The flusher takes everything buffered; the next request to add becomes a new flusher.
    pub fn take(&mut self) -> (Vec<Event>, DropCounts) {
        self.flush_pending = false;
        (
            std::mem::take(&mut self.events),
            std::mem::take(&mut self.dropped),
        )
    }

    /// Drops to carry into the next envelope (for example after a failed send).
    pub fn carry(&mut self, dropped: DropCounts) {
        self.dropped.add(dropped);
    }

    /// Events buffered now.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// How long the flusher waits before taking the buffer, in ms: the configured window, cut so
/// that the window plus [`SEND_RESERVE_MS`] fits in what is left of the `wait_until` limit
/// (`elapsed_ms` is the time since the response). Never negative.
pub fn window_ms(configured_ms: f64, elapsed_ms: f64) -> f64 {
    let left = WAIT_UNTIL_LIMIT_MS - SEND_RESERVE_MS - elapsed_ms.max(0.0);
    configured_ms.min(left).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    fn events(n: usize) -> Vec<Event> {
        (0..n).map(|_| samples::error_event()).collect()
    }

    #[test]
    fn first_request_flushes_later_ones_join_until_taken() {
        let mut buffer = IsolateBuffer::default();
        assert_eq!(buffer.add(events(3), DropCounts::default()), Role::Flusher);
        assert_eq!(buffer.add(events(2), DropCounts::default()), Role::Joined);
        assert_eq!(buffer.add(events(4), DropCounts::default()), Role::Joined);
        let (taken, _) = buffer.take();
        assert_eq!(taken.len(), 9, "the flusher sends everyone's events");
        // Events arriving after the take get a flusher of their own: nothing is stranded.
        assert_eq!(buffer.add(events(1), DropCounts::default()), Role::Flusher);
        assert_eq!(buffer.take().0.len(), 1);
        assert!(buffer.is_empty());
    }

    #[test]
    fn overflow_and_carried_drops_are_counted() {
        let mut buffer = IsolateBuffer::default();
        buffer.add(events(MAX_BUFFERED_EVENTS - 1), DropCounts::default());
        buffer.add(
            events(3),
            DropCounts {
                send_failed: 5,
                ..DropCounts::default()
            },
        );
        buffer.carry(DropCounts {
            oversize: 1,
            ..DropCounts::default()
        });
        let (taken, dropped) = buffer.take();
        assert_eq!(taken.len(), MAX_BUFFERED_EVENTS);
        assert_eq!(
            dropped,
            DropCounts {
                send_failed: 5,
                oversize: 1,
                buffer_full: 2,
                cancelled: 0,
            }
        );
        assert_eq!(buffer.take().1, DropCounts::default(), "taken once");
    }

    #[test]
    fn window_never_outlives_the_wait_until_limit() {
        assert_eq!(window_ms(100.0, 0.0), 100.0);
        assert_eq!(window_ms(100.0, 19_950.0), 50.0);
        assert_eq!(window_ms(100.0, 25_000.0), 0.0);
        assert_eq!(window_ms(0.0, 0.0), 0.0);
        assert_eq!(window_ms(100.0, -5.0), 100.0);
    }
}
