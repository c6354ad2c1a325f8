//! The dev-only simulated time of `make demo` (`X-Dev-Simulated-Time`): honoured only when
//! the Workers' env has `LOCAL_DEV=1`. Without it, an update sent with a time 30 days back is
//! stored at the real time, in real local workerd; with it, at the simulated time.

use std::time::Duration;

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{fixture, now_ms, Stack, StackOptions};

const DAY_MS: i64 = 86_400_000;

/// How long before the simulated time the posted update is dated, in seconds.
const DATE_LEAD_S: i64 = 5;

/// The stored Telegram → bot delivery lag of the posted update (`double9`, with `double10`).
fn telegram_lag(stack: &Stack) -> (f64, f64) {
    let rows =
        stack.d1("SELECT double9, double10 FROM analytics_points_local WHERE blob3 = 'update'");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let get = |c: &str| {
        rows[0][c]
            .as_f64()
            .unwrap_or_else(|| panic!("{c}: {rows:?}"))
    };
    (get("double9"), get("double10"))
}

/// Posts the `/start` fixture as update `update_id` dated (Telegram's `date`) `DATE_LEAD_S`
/// before the simulated time `at_ms`, waits for its events and returns their event times
/// (`double3`).
fn event_times(stack: &Stack, update_id: i64, at_ms: i64) -> Vec<i64> {
    let body = fixture("updates/message_start.json")
        .replace("100001", &update_id.to_string())
        .replace(
            "\"date\": 1764000000",
            &format!("\"date\": {}", at_ms / 1000 - DATE_LEAD_S),
        );
    assert!(body.contains(&format!("{}", at_ms / 1000 - DATE_LEAD_S)));
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
    // The update's delivery lag is by the real clock too: its date is 30 days back.
    let (lag, measured) = telegram_lag(&stack);
    assert_eq!(measured, 1.0);
    assert!(lag >= (30 * DAY_MS) as f64, "lag {lag} ms");
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
    // The delivery lag is the simulated receipt minus the update's date (5 s before it, in
    // whole seconds): not the 30 days the real clock would make of it.
    let (lag, measured) = telegram_lag(&stack);
    assert_eq!(measured, 1.0);
    let lead = (DATE_LEAD_S * 1000) as f64;
    assert!(lag >= lead && lag < lead + 60_000.0, "lag {lag} ms");
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
