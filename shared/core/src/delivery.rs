//! How events leave a Worker isolate, as pure state: the isolate's **outbox**.
//!
//! Every request hands its events to the outbox inside its own `ctx.wait_until`, after the
//! response. The outbox decides, with no I/O and no clock of its own (the caller passes the
//! time):
//!
//! - **Full messages go at once.** When the waiting events fill a queue message (25 events, or
//!   the byte budget), the request that filled it sends it from its own `wait_until`.
//! - **The rest waits for a flusher.** The first request that finds no flush pending becomes
//!   the **flusher**: it waits the coalescing window (cut so that the window plus the time a
//!   send and its retry need fit in the 30 s `wait_until` limit), then takes and sends what is
//!   waiting. Requests that find a flush pending only add their events.
//! - **Retry once, then count.** A failed send is retried once; then its events are counted as
//!   `send_failed` and ride, as counts, in the next envelope (with the counts it carried).
//! - **Nothing waits on a dead flusher.** A flusher that never resumes (its `wait_until` was
//!   cancelled) loses its lease at its deadline, and the next request becomes the flusher: the
//!   waiting events are sent, not stranded. A send that never finished by its deadline is
//!   counted as `cancelled` (its events were in the cancelled request's memory only).
//! - **Bounded.** At most [`MAX_WAITING_EVENTS`] wait; beyond that events are counted as
//!   `buffer_full`. An event too large for a message even alone is counted as `oversize`.
//!
//! Only plain data crosses requests; every send runs in the context of the request that sends,
//! as the Workers runtime requires, and that request's `wait_until` keeps the isolate alive
//! until the send finished. See `docs/coalescing.md`.

use crate::event::Event;
use crate::wire::{self, DropCounts, EnvelopeWriter, Source, MAX_MESSAGE_BYTES};

/// Most events in one queue message. The consumer writes one Analytics Engine data point per
/// event and at most 250 per invocation; with `max_batch_size = 10` in
/// `wrangler.consumer.toml`, 10 × 25 = 250, so a batch of these messages always fits whole.
pub const MAX_EVENTS_PER_MESSAGE: usize = 25;

/// Most events waiting in one isolate's outbox; further events are counted as `buffer_full`.
pub const MAX_WAITING_EVENTS: usize = 10_000;

/// How long `wait_until` work may run after the response, in ms (Workers limit: 30 s).
pub const WAIT_UNTIL_LIMIT_MS: f64 = 30_000.0;

/// How long one queue send may take before it is given up as failed, in ms.
pub const SEND_TIMEOUT_MS: f64 = 4_000.0;

/// Time kept free at the end of `wait_until` for a send, its one retry and some slack, in ms.
pub const SEND_RESERVE_MS: f64 = 2.0 * SEND_TIMEOUT_MS + 1_000.0;

/// The longest coalescing window that always fits: the `wait_until` limit minus the send
/// reserve.
pub const MAX_WINDOW_MS: f64 = WAIT_UNTIL_LIMIT_MS - SEND_RESERVE_MS;

/// The default coalescing window, in ms: the one place it is defined (`ANALYTICS_COALESCE_MS`
/// overrides it). Chosen from the traffic simulator's figures (`make economy`,
/// `docs/coalescing.md` and `docs/economy.md` say why).
pub const DEFAULT_WINDOW_MS: f64 = 20_000.0;

/// Reads a configured window: unset or unreadable means [`DEFAULT_WINDOW_MS`]; the value is
/// kept within `0..=`[`MAX_WINDOW_MS`]; 0 means one message per request, sent at once.
pub fn window_from_setting(setting: Option<&str>) -> f64 {
    setting
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .unwrap_or(DEFAULT_WINDOW_MS)
        .clamp(0.0, MAX_WINDOW_MS)
}

/// How long a flusher waits before taking the outbox, in ms: the configured window, cut so
/// that the window plus [`SEND_RESERVE_MS`] fits in what is left of the `wait_until` limit
/// (`elapsed_ms` is the time since the response). Never negative.
pub fn window_ms(configured_ms: f64, elapsed_ms: f64) -> f64 {
    let left = WAIT_UNTIL_LIMIT_MS - SEND_RESERVE_MS - elapsed_ms.max(0.0);
    configured_ms.min(left).max(0.0)
}

/// One event, encoded once when it enters the outbox.
#[derive(Debug, Clone)]
struct Waiting {
    bytes: Vec<u8>,
}

/// One queue message to send, with what the outbox needs to account for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The envelope's MessagePack bytes (content type `bytes`).
    pub bytes: Vec<u8>,
    /// Events in it.
    pub events: u32,
    /// Drop counts it carries.
    pub carried: DropCounts,
    /// Identifies the send to [`Outbox::sent`].
    pub ticket: u64,
}

/// What a request does after handing its events over.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// Wait `wait_ms`, then call [`Outbox::take`] with this lease and send what it returns.
    Flusher {
        /// The lease to present to [`Outbox::take`].
        lease: u64,
        /// How long to wait first, in ms.
        wait_ms: f64,
    },
    /// Nothing to wait for: a flush is pending, or nothing is waiting.
    Joined,
}

/// The outcome of [`Outbox::add`].
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    /// Full messages for this request to send now, from its own `wait_until`.
    pub ready: Vec<Message>,
    /// Whether this request also flushes later.
    pub role: Role,
}

impl Handover {
    /// Whether nothing falls to this request after the hand-over: no full message to send and
    /// no flush to wait for (another request already holds it). Then the request needs no
    /// `wait_until` and no timer of its own: the events wait in the outbox for the pending
    /// flush, which the flusher's `wait_until` keeps alive.
    pub fn leaves_nothing_to_do(&self) -> bool {
        self.ready.is_empty() && self.role == Role::Joined
    }
}

/// The result of one send attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// The queue accepted the message.
    Sent,
    /// The send failed or timed out.
    Failed,
}

/// What to do after a send attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Done: sent.
    Done,
    /// Try once more.
    Retry,
    /// Given up: its events were counted as `send_failed` (the count rides in a later envelope).
    Dropped,
}

#[derive(Debug, Clone)]
struct InFlight {
    ticket: u64,
    /// The message, kept until its send finished, so a panic can keep it (see [`Held`]).
    bytes: Vec<u8>,
    events: u32,
    carried: DropCounts,
    deadline_ms: f64,
    attempts: u8,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    id: u64,
    deadline_ms: f64,
}

/// The isolate's outbox. See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    writer: EnvelopeWriter,
    window_ms: f64,
    budget: usize,
    waiting: Vec<Waiting>,
    waiting_bytes: usize,
    carried: DropCounts,
    lease: Option<Lease>,
    in_flight: Vec<InFlight>,
    next_id: u64,
}

impl Outbox {
    /// An empty outbox for envelopes from `source`, coalescing for `window_ms` (see
    /// [`window_from_setting`]).
    pub fn new(source: &Source, window_ms: f64) -> Outbox {
        let writer = EnvelopeWriter::new(source);
        let budget = MAX_MESSAGE_BYTES.saturating_sub(writer.max_overhead());
        Outbox {
            writer,
            window_ms: window_ms.clamp(0.0, MAX_WINDOW_MS),
            budget,
            waiting: Vec::new(),
            waiting_bytes: 0,
            carried: DropCounts::default(),
            lease: None,
            in_flight: Vec::new(),
            next_id: 1,
        }
    }

    /// The coalescing window, in ms.
    pub fn window(&self) -> f64 {
        self.window_ms
    }

    /// Events waiting for a flush.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Drop counts waiting to ride in the next envelope.
    pub fn carried(&self) -> DropCounts {
        self.carried
    }

    /// Sends started and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Hands over one request's events (and drop counts to carry). `now_ms` is the clock,
    /// `response_at_ms` when the request's response was ready (to keep its `wait_until` within
    /// the limit). Returns the full messages to send now and whether the caller flushes later.
    pub fn add(
        &mut self,
        now_ms: f64,
        response_at_ms: f64,
        events: Vec<Event>,
        dropped: DropCounts,
    ) -> Handover {
        self.reap(now_ms);
        self.carried.add(dropped);
        for event in events {
            if self.waiting.len() >= MAX_WAITING_EVENTS {
                self.carried.buffer_full = self.carried.buffer_full.saturating_add(1);
                continue;
            }
            match wire::encode_event(&event) {
                Ok(bytes) if bytes.len() <= self.budget => {
                    self.waiting_bytes += bytes.len();
                    self.waiting.push(Waiting { bytes });
                }
                _ => self.carried.oversize = self.carried.oversize.saturating_add(1),
            }
        }
        let mut ready = Vec::new();
        let elapsed = now_ms - response_at_ms;
        if self.window_ms <= 0.0 {
            // No coalescing: everything goes now, from this request.
            ready = self.pack_all(now_ms);
            return Handover {
                ready,
                role: Role::Joined,
            };
        }
        while self.full_message_waiting() {
            ready.push(self.pack_one(now_ms));
        }
        let something_waits = !self.waiting.is_empty() || self.carried.total() > 0;
        let role = if self.lease.is_some() || !something_waits {
            Role::Joined
        } else {
            let wait_ms = window_ms(self.window_ms, elapsed);
            let id = self.next_ticket();
            self.lease = Some(Lease {
                id,
                deadline_ms: now_ms + wait_ms + SEND_RESERVE_MS,
            });
            Role::Flusher { lease: id, wait_ms }
        };
        Handover { ready, role }
    }

    /// The flusher, after its wait, takes everything waiting as messages to send. A lease that
    /// was already given up (its deadline passed) takes nothing: the next flusher has it.
    pub fn take(&mut self, lease: u64, now_ms: f64) -> Vec<Message> {
        match self.lease {
            Some(l) if l.id == lease => self.lease = None,
            _ => return Vec::new(),
        }
        self.reap(now_ms);
        self.pack_all(now_ms)
    }

    /// Records the outcome of attempt number `attempt` (1 or 2) of sending the message with
    /// `ticket`, and says what to do next.
    pub fn sent(&mut self, ticket: u64, outcome: SendOutcome) -> NextStep {
        let Some(i) = self.in_flight.iter().position(|f| f.ticket == ticket) else {
            // Already reaped as cancelled: its events are counted; nothing more to do.
            return NextStep::Done;
        };
        if outcome == SendOutcome::Sent {
            self.in_flight.swap_remove(i);
            return NextStep::Done;
        }
        self.in_flight[i].attempts += 1;
        if self.in_flight[i].attempts < 2 {
            return NextStep::Retry;
        }
        let lost = self.in_flight.swap_remove(i);
        self.carried.add(lost.carried);
        self.carried.send_failed = self.carried.send_failed.saturating_add(lost.events);
        NextStep::Dropped
    }

    /// Gives up leases and sends whose deadline passed: their `wait_until` was cancelled.
    fn reap(&mut self, now_ms: f64) {
        if self.lease.is_some_and(|l| now_ms > l.deadline_ms) {
            self.lease = None; // the waiting events stay; the next request flushes them
        }
        let mut i = 0;
        while i < self.in_flight.len() {
            if now_ms > self.in_flight[i].deadline_ms {
                let lost = self.in_flight.swap_remove(i);
                self.carried.add(lost.carried);
                self.carried.cancelled = self.carried.cancelled.saturating_add(lost.events);
            } else {
                i += 1;
            }
        }
    }

    fn next_ticket(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn full_message_waiting(&self) -> bool {
        self.waiting.len() >= MAX_EVENTS_PER_MESSAGE || self.waiting_bytes >= self.budget
    }

    /// Everything waiting (and the carried counts, even with no events) as messages.
    fn pack_all(&mut self, now_ms: f64) -> Vec<Message> {
        let mut messages = Vec::new();
        while !self.waiting.is_empty() || self.carried.total() > 0 {
            messages.push(self.pack_one(now_ms));
        }
        messages
    }

    /// The next message from the front of the waiting events (at most 25 events and the byte
    /// budget), carrying the drop counts so far.
    fn pack_one(&mut self, now_ms: f64) -> Message {
        let mut count = 0;
        let mut bytes = 0;
        for w in &self.waiting {
            if count == MAX_EVENTS_PER_MESSAGE || bytes + w.bytes.len() > self.budget {
                break;
            }
            count += 1;
            bytes += w.bytes.len();
        }
        let taken: Vec<Waiting> = self.waiting.drain(..count).collect();
        self.waiting_bytes -= bytes;
        let carried = std::mem::take(&mut self.carried);
        let sent_at_ms = now_ms.floor() as i64;
        let bytes = self.writer.write(
            sent_at_ms,
            taken.iter().map(|w| w.bytes.as_slice()),
            &carried,
        );
        let ticket = self.next_ticket();
        self.in_flight.push(InFlight {
            ticket,
            bytes: bytes.clone(),
            events: count as u32,
            carried,
            deadline_ms: now_ms + SEND_RESERVE_MS,
            attempts: 0,
        });
        Message {
            bytes,
            events: count as u32,
            carried,
            ticket,
        }
    }
}

/// Everything an outbox holds, as plain bytes and counts: what a Wasm panic would otherwise
/// wipe. Kept outside Wasm memory by the caller, and given to a fresh outbox with
/// [`Outbox::restore`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Encoded events waiting for a flush (each as [`wire::encode_event`] wrote it).
    pub events: Vec<Vec<u8>>,
    /// Drop counts not yet reported.
    pub carried: DropCounts,
    /// Messages whose send had not finished: (envelope bytes, events in it, counts it
    /// carries). Sent again: a copy the queue already has is stored once (the consumer keys
    /// an envelope by its bytes).
    pub in_flight: Vec<(Vec<u8>, u32, DropCounts)>,
}

impl Held {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.carried.total() == 0 && self.in_flight.is_empty()
    }

    /// Adds what `other` holds.
    pub fn extend(&mut self, other: Held) {
        self.events.extend(other.events);
        self.carried.add(other.carried);
        self.in_flight.extend(other.in_flight);
    }
}

impl Outbox {
    /// A copy of everything the outbox holds (waiting events, counts, unfinished sends).
    pub fn hold(&self) -> Held {
        Held {
            events: self.waiting.iter().map(|w| w.bytes.clone()).collect(),
            carried: self.carried,
            in_flight: self
                .in_flight
                .iter()
                .map(|f| (f.bytes.clone(), f.events, f.carried))
                .collect(),
        }
    }

    /// Takes back what an earlier outbox held: its waiting events wait here (counted as
    /// `buffer_full` beyond [`MAX_WAITING_EVENTS`]), its counts are carried, and its unfinished
    /// sends are returned as messages to send now (accounted like any other send).
    pub fn restore(&mut self, now_ms: f64, held: Held) -> Vec<Message> {
        self.carried.add(held.carried);
        for bytes in held.events {
            if self.waiting.len() >= MAX_WAITING_EVENTS || bytes.len() > self.budget {
                self.carried.buffer_full = self.carried.buffer_full.saturating_add(1);
                continue;
            }
            self.waiting_bytes += bytes.len();
            self.waiting.push(Waiting { bytes });
        }
        held.in_flight
            .into_iter()
            .map(|(bytes, events, carried)| {
                let ticket = self.next_ticket();
                self.in_flight.push(InFlight {
                    ticket,
                    bytes: bytes.clone(),
                    events,
                    carried,
                    deadline_ms: now_ms + SEND_RESERVE_MS,
                    attempts: 0,
                });
                Message {
                    bytes,
                    events,
                    carried,
                    ticket,
                }
            })
            .collect()
    }
}

/// Packs `events` into messages within the queue's limits, in order, as a fresh outbox would
/// with no window; `carried` rides in the first one. For callers that send at once.
pub fn pack(
    source: &Source,
    sent_at_ms: f64,
    events: Vec<Event>,
    carried: DropCounts,
) -> Vec<Message> {
    Outbox::new(source, 0.0)
        .add(sent_at_ms, sent_at_ms, events, carried)
        .ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PropValue;
    use crate::samples;
    use crate::wire::decode;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|_| samples::typical_events()[1].clone())
            .collect()
    }

    fn outbox(window: f64) -> Outbox {
        Outbox::new(&samples::source(), window)
    }

    fn decoded_events(messages: &[Message]) -> usize {
        messages
            .iter()
            .map(|m| decode(&m.bytes).unwrap().events.len())
            .sum()
    }

    #[test]
    fn only_the_flusher_and_a_filler_have_work_after_the_hand_over() {
        // The bot skips `wait_until` and its timer for a hand-over that leaves nothing to do
        // (issue 27): that must be every request that joins a pending flush without filling a
        // message, and no other.
        let mut o = outbox(20_000.0);
        let first = o.add(0.0, 0.0, events(3), DropCounts::default());
        assert!(matches!(first.role, Role::Flusher { .. }));
        assert!(!first.leaves_nothing_to_do(), "the first one flushes later");
        let joined = o.add(1.0, 1.0, events(3), DropCounts::default());
        assert!(
            joined.leaves_nothing_to_do(),
            "a flush is pending: {joined:?}"
        );
        let filler = o.add(2.0, 2.0, events(20), DropCounts::default());
        assert_eq!(filler.ready.len(), 1, "26 waiting: one full message");
        assert!(!filler.leaves_nothing_to_do(), "the filler sends it");
        // With a window of 0 every hand-over sends its own message.
        let mut now = outbox(0.0);
        assert!(!now
            .add(0.0, 0.0, events(1), DropCounts::default())
            .leaves_nothing_to_do());
    }

    #[test]
    fn what_an_outbox_holds_survives_into_a_fresh_one() {
        // Reported by a review: a handler panic resets the Wasm instance, and the outbox's
        // waiting events (already answered for) were lost uncounted.
        let mut before = outbox(20_000.0);
        let h = before.add(0.0, 0.0, events(30), DropCounts::default());
        assert_eq!(h.ready.len(), 1, "25 go at once, 5 wait");
        let dropped = DropCounts {
            send_failed: 2,
            ..DropCounts::default()
        };
        before.add(1.0, 1.0, events(1), dropped);
        let held = before.hold();
        assert_eq!(
            (held.events.len(), held.carried, held.in_flight.len()),
            (6, dropped, 1)
        );
        assert_eq!(
            held.in_flight[0].0, h.ready[0].bytes,
            "the unfinished send, byte for byte"
        );
        // The fresh outbox sends the unfinished message again and the waiting events with its
        // next flush: every event and count arrives.
        let mut after = outbox(20_000.0);
        let again = after.restore(100.0, held);
        assert_eq!(again[0].bytes, h.ready[0].bytes);
        assert_eq!(
            after.sent(again[0].ticket, SendOutcome::Sent),
            NextStep::Done
        );
        let Role::Flusher { lease, .. } = after
            .add(100.0, 100.0, events(1), DropCounts::default())
            .role
        else {
            panic!("the next request flushes what was kept")
        };
        let flushed = after.take(lease, 20_100.0);
        assert_eq!(decoded_events(&flushed), 7);
        assert_eq!(decode(&flushed[0].bytes).unwrap().dropped.send_failed, 2);
        assert!(Held::default().is_empty());
    }

    #[test]
    fn first_request_flushes_later_ones_join_until_taken() {
        let mut o = outbox(20_000.0);
        let h = o.add(0.0, 0.0, events(3), DropCounts::default());
        assert!(h.ready.is_empty(), "nothing full yet");
        let Role::Flusher { lease, wait_ms } = h.role else {
            panic!("first request flushes")
        };
        assert_eq!(wait_ms, 20_000.0);
        assert_eq!(
            o.add(5.0, 5.0, events(2), DropCounts::default()).role,
            Role::Joined
        );
        let taken = o.take(lease, 20_000.0);
        assert_eq!(
            decoded_events(&taken),
            5,
            "the flusher sends everyone's events"
        );
        // Events arriving after the take get a flusher of their own: nothing is stranded.
        assert!(matches!(
            o.add(20_001.0, 20_001.0, events(1), DropCounts::default())
                .role,
            Role::Flusher { .. }
        ));
    }

    #[test]
    fn a_full_message_goes_at_once_from_the_request_that_filled_it() {
        let mut o = outbox(20_000.0);
        let first = o.add(0.0, 0.0, events(20), DropCounts::default());
        assert!(first.ready.is_empty());
        let second = o.add(10.0, 10.0, events(12), DropCounts::default());
        assert_eq!(second.ready.len(), 1);
        assert_eq!(second.ready[0].events, MAX_EVENTS_PER_MESSAGE as u32);
        assert_eq!(
            second.role,
            Role::Joined,
            "the first request still flushes the rest"
        );
        assert_eq!(o.waiting(), 7);
    }

    #[test]
    fn a_full_byte_budget_goes_at_once_too() {
        let mut o = outbox(20_000.0);
        // As large as the tracker's bounds allow: about 6.5 KB each.
        let mut big = samples::error_event();
        big.name = "n".repeat(128);
        if let Some(error) = big.error.as_mut() {
            error.message = "m".repeat(1024);
        }
        big.properties = (0..16)
            .map(|k| (format!("{k:0>64}"), PropValue::from("v".repeat(256))))
            .collect();
        let h = o.add(0.0, 0.0, vec![big; 24], DropCounts::default());
        assert_eq!(h.ready.len(), 1, "24 events of 6.5 KB exceed one message");
        assert!(h.ready[0].bytes.len() <= MAX_MESSAGE_BYTES);
        assert!(h.ready[0].events < 24);
    }

    #[test]
    fn window_zero_sends_each_request_at_once() {
        let mut o = outbox(0.0);
        let h = o.add(0.0, 0.0, events(3), DropCounts::default());
        assert_eq!(h.role, Role::Joined);
        assert_eq!(h.ready.len(), 1);
        assert_eq!(decoded_events(&h.ready), 3);
    }

    #[test]
    fn a_failed_send_is_retried_once_then_counted_and_carried() {
        let mut o = outbox(0.0);
        let carried_in = DropCounts {
            oversize: 2,
            ..DropCounts::default()
        };
        let m = o.add(0.0, 0.0, events(3), carried_in).ready.remove(0);
        assert_eq!(m.carried.oversize, 2);
        assert_eq!(o.sent(m.ticket, SendOutcome::Failed), NextStep::Retry);
        assert_eq!(o.sent(m.ticket, SendOutcome::Failed), NextStep::Dropped);
        assert_eq!(
            o.carried(),
            DropCounts {
                send_failed: 3,
                oversize: 2,
                ..DropCounts::default()
            },
            "the lost events are counted, and the counts the message carried are restored"
        );
        // The counts ride in the next envelope, even one with no events.
        let next = o.add(1.0, 1.0, Vec::new(), DropCounts::default()).ready;
        assert_eq!(next.len(), 1);
        assert_eq!(decode(&next[0].bytes).unwrap().dropped.send_failed, 3);
    }

    #[test]
    fn a_retry_that_succeeds_counts_nothing() {
        let mut o = outbox(0.0);
        let m = o
            .add(0.0, 0.0, events(1), DropCounts::default())
            .ready
            .remove(0);
        assert_eq!(o.sent(m.ticket, SendOutcome::Failed), NextStep::Retry);
        assert_eq!(o.sent(m.ticket, SendOutcome::Sent), NextStep::Done);
        assert_eq!(o.carried(), DropCounts::default());
        assert_eq!(o.in_flight(), 0);
    }

    #[test]
    fn a_stalled_flusher_does_not_strand_later_events() {
        let mut o = outbox(20_000.0);
        let Role::Flusher { lease, wait_ms } =
            o.add(0.0, 0.0, events(1), DropCounts::default()).role
        else {
            panic!("flusher")
        };
        // The flusher's wait_until is cancelled: it never takes. Before its deadline, others join.
        assert_eq!(
            o.add(1_000.0, 1_000.0, events(1), DropCounts::default())
                .role,
            Role::Joined
        );
        // After it, the next request becomes the flusher and sends everything, stalled or not.
        let after = wait_ms + SEND_RESERVE_MS + 1.0;
        let Role::Flusher { lease: next, .. } =
            o.add(after, after, events(1), DropCounts::default()).role
        else {
            panic!("a new flusher after the stalled one's deadline")
        };
        assert!(
            o.take(lease, after + 1.0).is_empty(),
            "the stale lease takes nothing"
        );
        assert_eq!(decoded_events(&o.take(next, after + 20_000.0)), 3);
    }

    #[test]
    fn a_send_cancelled_mid_flight_is_counted_as_cancelled() {
        let mut o = outbox(0.0);
        let m = o
            .add(0.0, 0.0, events(4), DropCounts::default())
            .ready
            .remove(0);
        // The sender never reports back; a later request, after the deadline, reaps it.
        let later = SEND_RESERVE_MS + 1.0;
        let next = o.add(later, later, Vec::new(), DropCounts::default()).ready;
        assert_eq!(decode(&next[0].bytes).unwrap().dropped.cancelled, 4);
        // A late report of the reaped send changes nothing.
        assert_eq!(o.sent(m.ticket, SendOutcome::Sent), NextStep::Done);
    }

    #[test]
    fn overflow_and_oversize_are_counted() {
        let mut o = outbox(20_000.0);
        let mut huge = samples::error_event();
        huge.name = "n".repeat(MAX_MESSAGE_BYTES);
        o.add(0.0, 0.0, vec![huge], DropCounts::default());
        assert_eq!(o.carried().oversize, 1);
        let mut all = Vec::new();
        let mut now = 1.0;
        for _ in 0..(MAX_WAITING_EVENTS / 100 + 1) {
            let h = o.add(now, now, events(100), DropCounts::default());
            all.extend(h.ready);
            now += 1.0;
        }
        // Full messages leave at once, so nothing overflows while sends keep up.
        assert_eq!(o.carried().buffer_full, 0);
        assert!(o.waiting() < MAX_EVENTS_PER_MESSAGE);
        assert_eq!(
            decoded_events(&all) + o.waiting(),
            (MAX_WAITING_EVENTS / 100 + 1) * 100
        );
    }

    #[test]
    fn window_never_outlives_the_wait_until_limit() {
        assert_eq!(window_ms(100.0, 0.0), 100.0);
        assert_eq!(window_ms(20_000.0, 5_000.0), MAX_WINDOW_MS - 5_000.0);
        assert_eq!(window_ms(100.0, 25_000.0), 0.0);
        assert_eq!(window_ms(0.0, 0.0), 0.0);
        assert_eq!(window_ms(100.0, -5.0), 100.0);
        const { assert!(MAX_WINDOW_MS + SEND_RESERVE_MS <= WAIT_UNTIL_LIMIT_MS) };
    }

    #[test]
    fn the_window_setting_has_one_default_and_bounds() {
        assert_eq!(window_from_setting(None), DEFAULT_WINDOW_MS);
        assert_eq!(window_from_setting(Some("nope")), DEFAULT_WINDOW_MS);
        assert_eq!(window_from_setting(Some("0")), 0.0);
        assert_eq!(window_from_setting(Some(" 250 ")), 250.0);
        assert_eq!(window_from_setting(Some("99999999")), MAX_WINDOW_MS);
        assert_eq!(window_from_setting(Some("-3")), 0.0);
        assert_eq!(window_from_setting(Some("NaN")), DEFAULT_WINDOW_MS);
    }
}
