//! The dev-only simulated time of `make demo` (`X-Dev-Simulated-Time`): honoured only when
//! the Workers' env has `LOCAL_DEV=1`. Without it, an update sent with a time 30 days back is
//! stored at the real time, in real local workerd; with it, at the simulated time.

use std::time::Duration;

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{fixture, now_ms, Stack, StackOptions};

const DAY_MS: i64 = 86_400_000;

/// Posts the `/start` fixture as update `update_id` with the simulated time `at_ms`, waits for
/// its events and returns their event times (`double3`).
fn event_times(stack: &Stack, update_id: i64, at_ms: i64) -> Vec<i64> {
    let body = fixture("updates/message_start.json").replace("100001", &update_id.to_string());
    let at = at_ms.to_string();
    let (status, answer) = stack.post(
        "/telegram",
        &[
            ("Content-Type", "application/json"),
            ("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET),
            ("X-Dev-Simulated-Time", &at),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    stack.wait_count_within(
        "the update's events",
        "SELECT count(*) FROM analytics_points_local WHERE blob3 = 'update'",
        1,
        Duration::from_secs(60),
    );
    stack
        .d1("SELECT double3 FROM analytics_points_local")
        .iter()
        .map(|r| r["double3"].as_f64().expect("double3") as i64)
        .collect()
}

#[test]
fn without_local_dev_the_simulated_time_is_ignored() {
    let stack = Stack::start(StackOptions::default());
    let before = now_ms();
    let times = event_times(&stack, 300_001, before - 30 * DAY_MS);
    assert!(!times.is_empty());
    // Dated now: not 30 days back, and not the hour back the consumer's clamp would allow.
    for t in &times {
        assert!(
            *t >= before - 60_000 && *t <= now_ms(),
            "event at {t}, sent at {before}"
        );
    }
    // A malformed value is not even read without the switch.
    let body = fixture("updates/message_start.json").replace("100001", "300002");
    let (status, _) = stack.post(
        "/telegram",
        &[
            ("Content-Type", "application/json"),
            ("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET),
            ("X-Dev-Simulated-Time", "yesterday"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 200);
}

#[test]
fn with_local_dev_events_are_dated_at_the_simulated_time() {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![("LOCAL_DEV".into(), "1".into())],
        ..StackOptions::default()
    });
    let at = now_ms() - 30 * DAY_MS;
    let times = event_times(&stack, 300_003, at);
    assert!(!times.is_empty());
    // The tracker's clock is shifted, so the events sit at the simulated time (plus the
    // handler's few milliseconds), and the consumer keeps them there.
    for t in &times {
        assert!(*t >= at && *t < at + 60_000, "event at {t}, simulated {at}");
    }
    // A malformed value is a clear 400 under the switch.
    let body = fixture("updates/message_start.json").replace("100001", "300004");
    let (status, answer) = stack.post(
        "/telegram",
        &[
            ("Content-Type", "application/json"),
            ("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET),
            ("X-Dev-Simulated-Time", "yesterday"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("X-Dev-Simulated-Time"), "{answer}");
}
