//! Property tests of the core: round trips, hostile bytes, Analytics Engine limits, flush.

use analytics_core::datapoint::{to_data_point, PointInput};
use analytics_core::tracker::MAX_BUFFERED_EVENTS;
use analytics_core::wire::{decode, encode, MAX_MESSAGE_BYTES};
use analytics_core::{samples, ErrorDetails, Event, EventKind, NewEvent, PropValue, Tracker};
use chrono::DateTime;
use proptest::prelude::*;
use uuid::Uuid;

fn any_kind() -> impl Strategy<Value = EventKind> {
    (0u8..6).prop_map(|b| EventKind::try_from(b).unwrap())
}

fn any_error() -> impl Strategy<Value = Option<ErrorDetails>> {
    proptest::option::of(
        (
            ".{0,300}",
            ".{0,3000}",
            proptest::option::of(".{0,300}"),
            proptest::option::of(".{0,300}"),
        )
            .prop_map(|(kind, message, location, group_key)| ErrorDetails {
                kind,
                message,
                location,
                group_key,
            }),
    )
}

fn any_value() -> impl Strategy<Value = PropValue> {
    prop_oneof![
        ".{0,400}".prop_map(PropValue::Str),
        any::<i64>().prop_map(PropValue::Int),
        any::<f64>().prop_map(PropValue::Float),
        any::<bool>().prop_map(PropValue::Bool),
    ]
}

prop_compose! {
    fn any_event()(
        id in any::<[u8; 16]>(),
        ms in -8_000_000_000_000i64..8_000_000_000_000,
        kind in any_kind(),
        name in ".{0,400}",
        user_id in any::<Option<i64>>(),
        chat_id in any::<Option<i64>>(),
        duration_ms in proptest::option::of(-1e12f64..1e12),
        error in any_error(),
        properties in proptest::collection::vec((".{0,80}", any_value()), 0..24),
        truncated in any::<u32>(),
    ) -> Event {
        Event {
            id: Uuid::from_bytes(id),
            timestamp: DateTime::from_timestamp_millis(ms).unwrap(),
            kind,
            name,
            user_id,
            chat_id,
            duration_ms,
            error,
            properties,
            truncated,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_envelope_round_trips(events in proptest::collection::vec(any_event(), 0..8)) {
        let mut envelope = samples::typical_envelope();
        envelope.events = events;
        let bytes = encode(&envelope).unwrap();
        // The hand-written event encoder writes what rmp-serde writes.
        for event in &envelope.events {
            prop_assert_eq!(analytics_core::wire::encode_event(event).unwrap(), rmp_serde::to_vec(event).unwrap());
        }
        // The outbox writes envelopes from events encoded once: the same bytes.
        let writer = analytics_core::wire::EnvelopeWriter::new(&envelope.source);
        let events: Vec<Vec<u8>> = envelope.events.iter().map(|e| analytics_core::wire::encode_event(e).unwrap()).collect();
        let written = writer.write(envelope.sent_at.timestamp_millis(), events.iter().map(Vec::as_slice), &envelope.dropped);
        prop_assert_eq!(&written, &bytes);
        prop_assert_eq!(decode(&bytes).unwrap(), envelope);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decoding_mutated_envelopes_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&samples::typical_envelope()).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let end = cut.index(bytes.len() + 1);
        let _ = decode(&bytes[..end]);
    }

    #[test]
    fn the_outbox_accounts_for_every_event_exactly(
        requests in proptest::collection::vec((0usize..40, 0u64..30_000, 0u8..3), 1..60),
        window in prop_oneof![Just(0.0), 1.0f64..20_000.0],
    ) {
        // Requests arrive, hand their events over, and their sends fail at random (none, the
        // first attempt only, or both). Whatever happens, every event is sent once or counted.
        use analytics_core::delivery::{NextStep, Outbox, Role, SendOutcome};
        let mut outbox = Outbox::new(&samples::source(), window);
        let mut now = 0.0;
        let mut sent = 0u64;
        let mut counted = analytics_core::DropCounts::default();
        let mut total = 0u64;
        let mut leases = Vec::new();
        let deliver = |outbox: &mut Outbox, messages: Vec<analytics_core::delivery::Message>, failures: u8, sent: &mut u64, counted: &mut analytics_core::DropCounts| {
            for m in messages {
                let carried = decode(&m.bytes).unwrap().dropped;
                let outcome = |attempt: u8| if attempt < failures { SendOutcome::Failed } else { SendOutcome::Sent };
                let first = outcome(0);
                let delivered = match outbox.sent(m.ticket, first) {
                    NextStep::Done => true,
                    NextStep::Retry => outbox.sent(m.ticket, outcome(1)) == NextStep::Done,
                    NextStep::Dropped => false,
                };
                // Only what reached the queue counts: a lost message's counts are restored.
                if delivered {
                    *sent += u64::from(m.events);
                    counted.add(carried);
                }
            }
        };
        for (n, gap, fail) in requests {
            now += gap as f64;
            total += n as u64;
            let events: Vec<Event> = (0..n).map(|_| samples::typical_events()[1].clone()).collect();
            let handover = outbox.add(now, now, events, analytics_core::DropCounts::default());
            deliver(&mut outbox, handover.ready, fail, &mut sent, &mut counted);
            if let Role::Flusher { lease, wait_ms } = handover.role {
                leases.push((lease, now + wait_ms));
            }
            let due: Vec<u64> = leases.iter().filter(|(_, at)| *at <= now).map(|(l, _)| *l).collect();
            leases.retain(|(_, at)| *at > now);
            for lease in due {
                let messages = outbox.take(lease, now);
                deliver(&mut outbox, messages, 0, &mut sent, &mut counted);
            }
        }
        // Drain: remaining flushers take, then one more request carries the last counts.
        for (lease, at) in leases {
            let messages = outbox.take(lease, at);
            deliver(&mut outbox, messages, 0, &mut sent, &mut counted);
        }
        let last = outbox.add(now + 1e6, now + 1e6, Vec::new(), analytics_core::DropCounts::default());
        deliver(&mut outbox, last.ready, 0, &mut sent, &mut counted);
        if let Role::Flusher { lease, .. } = last.role {
            let messages = outbox.take(lease, now + 2e6);
            deliver(&mut outbox, messages, 0, &mut sent, &mut counted);
        }
        prop_assert_eq!(outbox.waiting(), 0);
        prop_assert_eq!(sent + counted.total(), total);
    }

    #[test]
    fn every_data_point_obeys_the_analytics_engine_limits(
        event in any_event(),
        worker in ".{0,300}",
        release in ".{0,300}",
        timestamp_ms in any::<i64>(),
        skew_ms in any::<i64>(),
    ) {
        let source = analytics_core::Source { worker, release };
        let point = to_data_point(&PointInput { source: &source, event: &event, timestamp_ms, skew_ms });
        prop_assert!(point.check_limits().is_ok(), "{:?}", point.check_limits());
    }

    #[test]
    fn flush_never_exceeds_the_message_limit_nor_loses_an_event_uncounted(
        sizes in proptest::collection::vec(0usize..40_000, 0..1_200),
        huge_every in 0usize..50,
    ) {
        let tracker = Tracker::new(samples::source(), || 1_764_000_000_000.0, [9; 16]);
        let recorded = sizes.len();
        for (i, size) in sizes.into_iter().enumerate() {
            // Some events are made too large to fit in any message on purpose.
            let error = (huge_every > 0 && i % huge_every == 0).then(|| ErrorDetails {
                kind: "k".repeat(120),
                message: "m".repeat(1_000),
                location: None,
                group_key: None,
            });
            let properties = (0..(size / 300).min(16))
                .map(|k| (format!("k{k}"), PropValue::from("v".repeat(256))))
                .collect();
            tracker.record(NewEvent { name: "e".repeat(size % 200), error, properties, ..NewEvent::default() });
        }
        let flush = tracker.flush();
        let mut sent = 0u64;
        let mut carried = analytics_core::DropCounts::default();
        for message in &flush {
            prop_assert!(message.bytes.len() <= MAX_MESSAGE_BYTES);
            let envelope = decode(&message.bytes).unwrap();
            sent += envelope.events.len() as u64;
            carried.add(envelope.dropped);
        }
        let expected_full = recorded.saturating_sub(MAX_BUFFERED_EVENTS) as u64;
        prop_assert_eq!(u64::from(carried.buffer_full), expected_full);
        prop_assert_eq!(sent + carried.total(), recorded as u64);
    }
}
