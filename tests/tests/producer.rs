//! The bot Worker in real local workerd: every update kind, the callback answer in the response
//! body, refused requests, Bot API failures, and queue sends that fail or are slow.

use std::time::{Duration, Instant};

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{fixture, wait_for, FakeBotApi, Stack, StackOptions};
use serde_json::{json, Value};
use telegram_policy::update::KNOWN_UPDATE_KINDS;

fn stack_with_api(api: &FakeBotApi, extra: &[(&str, &str)]) -> Stack {
    Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        extra_vars: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..StackOptions::default()
    })
}

#[test]
fn every_update_kind_is_answered_and_tracked() {
    let api = FakeBotApi::start();
    let stack = stack_with_api(&api, &[]);
    for kind in KNOWN_UPDATE_KINDS {
        let body = fixture(&format!("updates/kinds/{kind}.json"));
        let (status, reply) = stack.post_update(&body, Some(TEST_SECRET));
        assert_eq!(status, 200, "{kind}: {reply}");
    }
    let (status, _) = stack.post_update(&fixture("updates/unknown_kind.json"), Some(TEST_SECRET));
    assert_eq!(status, 200, "an unknown kind is still accepted");

    let expected = KNOWN_UPDATE_KINDS.len() as i64 + 1;
    let n = stack.wait_count(
        "one update event per kind",
        "SELECT count(*) FROM analytics_points_local WHERE blob3 = 'update'",
        expected,
    );
    assert_eq!(n, expected);
    let names: Vec<String> = stack
        .d1("SELECT blob4 AS name FROM analytics_points_local WHERE blob3 = 'update' ORDER BY blob4")
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = KNOWN_UPDATE_KINDS.iter().map(|k| k.to_string()).collect();
    want.push("unknown".into());
    want.sort();
    assert_eq!(names, want);

    // User and chat ids are extracted where the kind has them.
    let row = &stack.d1(
        "SELECT index1, blob5, blob6, blob12 FROM analytics_points_local \
         WHERE blob3 = 'update' AND blob4 = 'chat_join_request'",
    )[0];
    assert_eq!(
        row["blob5"],
        e2e_tests::stack::pseudonym(5_123_456_789).to_string()
    );
    assert_eq!(
        row["blob6"],
        e2e_tests::stack::pseudonym(-1_001_234_567_890).to_string()
    );
    assert_eq!(row["blob12"], "supergroup");
    // The business message /help was handled as a command, the callback as a callback.
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local WHERE blob3 = 'command' AND blob4 = 'help'"),
        1
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local WHERE blob3 = 'callback'"),
        1
    );
    // The callback's follow-up edit reached the Bot API.
    assert!(api.calls().iter().any(|c| c.method == "editMessageText"));
}

#[test]
fn refused_requests_get_4xx_and_are_counted_without_queue_traffic() {
    let api = FakeBotApi::start();
    let stack = stack_with_api(&api, &[]);
    let good = fixture("updates/message_start.json");
    let json_ct = [("Content-Type", "application/json")];
    let with_secret = [
        ("Content-Type", "application/json"),
        ("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET),
    ];
    let cases: Vec<(&str, u16, (u16, String))> = vec![
        (
            "no secret",
            401,
            stack.post("/telegram", &json_ct, good.as_bytes()),
        ),
        ("wrong secret", 401, stack.post_update(&good, Some("nope"))),
        (
            "empty body",
            400,
            stack.post("/telegram", &with_secret, b""),
        ),
        (
            "not JSON",
            400,
            stack.post("/telegram", &with_secret, b"hello"),
        ),
        (
            "array",
            400,
            stack.post("/telegram", &with_secret, b"[1,2,3]"),
        ),
        (
            "no update_id",
            400,
            stack.post("/telegram", &with_secret, br#"{"message":{}}"#),
        ),
        (
            "truncated",
            400,
            stack.post("/telegram", &with_secret, &good.as_bytes()[..40]),
        ),
        (
            "invalid UTF-8",
            400,
            stack.post(
                "/telegram",
                &with_secret,
                b"{\"update_id\":1,\"x\":\"\xff\xfe\"}",
            ),
        ),
        (
            "too large",
            413,
            stack.post(
                "/telegram",
                &with_secret,
                format!("{{\"update_id\":1,\"x\":\"{}\"}}", "a".repeat(300_000)).as_bytes(),
            ),
        ),
        (
            "wrong content type",
            415,
            stack.post(
                "/telegram",
                &[
                    ("Content-Type", "text/plain"),
                    ("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET),
                ],
                good.as_bytes(),
            ),
        ),
        (
            "unknown path",
            404,
            stack.post("/nope", &with_secret, good.as_bytes()),
        ),
        ("wrong method", 405, stack.get("/telegram").expect("GET")),
    ];
    for (name, want, (status, body)) in &cases {
        assert_eq!(status, want, "{name}: {body}");
        assert!(!body.is_empty(), "{name}: a short reason is given");
    }
    assert_eq!(stack.get("/health").unwrap().0, 200);

    // Nothing was enqueued for any of them: no envelope arrives…
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM processed_envelopes"),
        0
    );

    // …until a good update, which carries the counts by reason.
    let (status, _) = stack.post_update(&good, Some(TEST_SECRET));
    assert_eq!(status, 200);
    stack.wait_count(
        "webhook_rejected events",
        "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'webhook_rejected'",
        1,
    );
    let rows = stack.d1(
        "SELECT index1, blob5, blob6, blob17 AS props FROM analytics_points_local WHERE blob4 = 'webhook_rejected'",
    );
    let mut counts: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            let p: Value = serde_json::from_str(r["props"].as_str().unwrap()).unwrap();
            (
                p["reason"].as_str().unwrap().to_string(),
                p["count"].as_i64().unwrap(),
            )
        })
        .collect();
    counts.sort();
    let expected = [
        ("bad_request", 6),
        ("method_not_allowed", 1),
        ("too_large", 1),
        ("unauthorized", 2),
        ("unsupported_media_type", 1),
    ];
    let expected: Vec<(String, i64)> = expected.iter().map(|(a, b)| (a.to_string(), *b)).collect();
    assert_eq!(counts, expected);
    // A flood of bad requests is pinned on nobody: not on the next accepted update's user.
    for row in &rows {
        assert_eq!(
            (row["index1"].as_str(), row["blob5"].as_str()),
            (Some("-"), Some("")),
            "{row}"
        );
    }
}

#[test]
fn bot_api_failures_become_error_events() {
    let api = FakeBotApi::start();
    api.respond(
        "editMessageText",
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 35", "parameters": {"retry_after": 35}}),
    );
    let stack = stack_with_api(&api, &[]);
    let (status, body) =
        stack.post_update(&fixture("updates/callback_query.json"), Some(TEST_SECRET));
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["method"],
        "answerCallbackQuery"
    );
    let rows = wait_for("the 429 in error_events", Duration::from_secs(60), || {
        let rows = stack.d1("SELECT kind, message, location FROM error_events");
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(
        rows,
        vec![
            json!({"kind": "telegram_rate_limited", "message": "Too Many Requests: retry after 35", "location": "bot_api:editMessageText"})
        ]
    );
    let outcome = stack.d1(
        "SELECT blob14 AS method, blob15 AS outcome FROM analytics_points_local WHERE blob4 = 'bot_api'",
    );
    assert_eq!(
        outcome,
        vec![json!({"method": "editMessageText", "outcome": "http_429"})]
    );
}

#[test]
fn failing_and_slow_queue_sends_never_delay_the_answer_and_drops_are_counted() {
    let api = FakeBotApi::start();
    // The first two send attempts of the isolate fail (the first update's send and its retry);
    // every send waits 3 s first.
    let stack = stack_with_api(
        &api,
        &[
            ("DEV_FAULT_QUEUE_SEND_FAILURES", "2"),
            ("DEV_FAULT_QUEUE_SEND_DELAY_MS", "3000"),
        ],
    );
    let started = Instant::now();
    let (status, _) = stack.post_update(&fixture("updates/message_start.json"), Some(TEST_SECRET));
    let first_answer = started.elapsed();
    assert_eq!(status, 200);
    // Not a speed assertion: the 3 s delay sits in front of the send, so an answer that waited
    // for the send could not arrive before it.
    assert!(
        first_answer < Duration::from_secs(3),
        "answered after {first_answer:?}"
    );

    // Let the first update's two attempts fail (2 × 3 s), then send a second update.
    std::thread::sleep(Duration::from_secs(7));
    let (status, _) = stack.post_update(&fixture("updates/kinds/message.json"), Some(TEST_SECRET));
    assert_eq!(status, 200);

    let dropped = wait_for(
        "the drop count in processed_envelopes",
        Duration::from_secs(60),
        || {
            let rows = stack
                .d1("SELECT SUM(dropped_send_failed) AS d, count(*) AS n FROM processed_envelopes");
            (rows[0]["n"].as_i64() == Some(1)).then(|| rows[0]["d"].as_i64().unwrap())
        },
    );
    // The first update yields update + command + handler events: all three counted as dropped.
    assert_eq!(dropped, 3);
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local WHERE blob4 = 'start'"),
        0,
        "the failed update's events are not stored"
    );
    assert!(
        stack.log().contains("queue send failed twice"),
        "the drop is logged"
    );
}

#[test]
fn a_redelivered_update_is_counted_once() {
    // Telegram delivers an update again when the answer was slow or lost: same update_id.
    let api = FakeBotApi::start();
    let stack = stack_with_api(&api, &[]);
    let update = fixture("updates/message_start.json");
    for _ in 0..3 {
        let (status, _) = stack.post_update(&update, Some(TEST_SECRET));
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Another update, so we know when everything before it has been stored.
    let (status, _) = stack.post_update(&fixture("updates/kinds/message.json"), Some(TEST_SECRET));
    assert_eq!(status, 200);
    stack.wait_count(
        "the later update's event",
        "SELECT count(*) FROM processed_envelopes",
        1,
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        stack.d1_count(
            "SELECT count(*) FROM analytics_points_local WHERE blob3 = 'command' AND blob4 = 'start'"
        ),
        1,
        "three deliveries of one update store its /start once"
    );
}

#[test]
fn a_hung_bot_api_costs_no_events() {
    // editMessageText hangs far longer than the test waits; every other call answers at once.
    let api = FakeBotApi::start_with_delay(Duration::from_secs(90));
    let stack = stack_with_api(&api, &[("TELEGRAM_API_TIMEOUT_MS", "5000")]);
    let (status, body) =
        stack.post_update(&fixture("updates/callback_query.json"), Some(TEST_SECRET));
    assert_eq!(status, 200, "{body}");
    // The update's own events are handed over before the follow-up, so they are stored while
    // the edit still hangs…
    stack.wait_count(
        "the button press's events while the Bot API hangs",
        "SELECT count(*) FROM analytics_points_local WHERE blob3 IN ('update', 'callback', 'performance') AND blob4 != 'bot_api'",
        3,
    );
    assert!(api.calls().iter().any(|c| c.method == "editMessageText"));
    // …and the hung call ends at its timeout, as an error event and a timed-out Bot API timing.
    let rows = wait_for("the timeout error", Duration::from_secs(60), || {
        let rows = stack.d1("SELECT kind, location FROM error_events");
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(
        rows,
        vec![json!({"kind": "timeout", "location": "bot_api:editMessageText"})]
    );
    stack.wait_count(
        "the timed-out call's timing",
        "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'bot_api' AND blob15 = 'timeout'",
        1,
    );
}

/// A command update from the usual test user, in a private chat.
fn command_update(update_id: i64, text: &str) -> String {
    let length = text.split_whitespace().next().unwrap_or_default().len();
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": 1_764_000_000, "text": text,
            "from": {"id": 5_123_456_789_i64, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": 5_123_456_789_i64, "type": "private", "first_name": "Ada"},
            "entities": [{"offset": 0, "length": length, "type": "bot_command"}],
        }
    })
    .to_string()
}

#[test]
fn hung_follow_ups_share_one_deadline_inside_the_wait_until_limit() {
    // Every Bot API call hangs for 90 s, and the per-call timeout asked for (60 s) is above its
    // bound: three follow-ups would take 180 s, far past wait_until's 30 s.
    let api = FakeBotApi::start_with_delay(Duration::from_secs(90));
    let stack = stack_with_api(
        &api,
        &[
            ("TELEGRAM_API_TIMEOUT_MS", "60000"),
            ("DEV_TEST_COMMANDS", "1"),
        ],
    );
    let posted = Instant::now();
    let (status, body) = stack.post_update(
        &command_update(700_001, "/dev_follow_ups"),
        Some(TEST_SECRET),
    );
    assert_eq!(status, 200, "{body}");
    // The follow-ups end by one deadline inside the limit, and their timing arrives, with the
    // calls that did not run counted.
    let row = wait_for(
        "the follow_up timing inside the wait_until limit",
        Duration::from_secs(45),
        || {
            stack
                .d1("SELECT double8 AS calls, blob17 AS other FROM analytics_points_local WHERE blob4 = 'follow_up'")
                .pop()
        },
    );
    let arrived = posted.elapsed();
    let calls = row["calls"].as_f64().unwrap() as u64;
    let other: Value = serde_json::from_str(row["other"].as_str().unwrap()).unwrap();
    let not_run = other["not_run"].as_u64().expect("not_run counted");
    assert_eq!(calls + not_run, 3, "{row}");
    assert!(not_run >= 1, "{row}");
    assert!(
        arrived < Duration::from_secs(40),
        "arrived after {arrived:?}"
    );
    // Each call that ran ended at the deadline or its bounded timeout, tracked as a timeout.
    stack.wait_count_within(
        "the timed-out calls' timings",
        "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'bot_api' AND blob15 = 'timeout'",
        calls as i64,
        Duration::from_secs(10),
    );
    let sent = api
        .calls()
        .iter()
        .filter(|c| c.method == "sendMessage")
        .count();
    assert_eq!(
        sent as u64, calls,
        "the calls not run never reached the Bot API"
    );
}

#[test]
fn a_handler_panic_is_tracked_its_outbox_kept_and_its_redelivery_answered() {
    // A long window: the first update's events still wait in the isolate's outbox when the
    // handler of the third one panics; the second one's follow-up calls (the Bot API answers
    // in 6 s) are still running.
    let api = FakeBotApi::start_with_delay(Duration::from_secs(6));
    let stack = stack_with_api(
        &api,
        &[
            ("DEV_TEST_COMMANDS", "1"),
            ("ANALYTICS_COALESCE_MS", "8000"),
        ],
    );
    let waiting = command_update(710_001, "/start");
    assert_eq!(stack.post_update(&waiting, Some(TEST_SECRET)).0, 200);
    let following_up = command_update(710_000, "/dev_follow_ups");
    assert_eq!(stack.post_update(&following_up, Some(TEST_SECRET)).0, 200);
    std::thread::sleep(Duration::from_millis(500)); // handed over, waiting for the window
    let panicking = command_update(710_002, "/dev_panic");
    let (first, _) = stack.post_update(&panicking, Some(TEST_SECRET));
    assert_ne!(
        first, 200,
        "the panicking request errs (the runtime answers it)"
    );
    // The next request runs on a fresh Wasm instance and sends what the outbox held.
    let after = command_update(710_003, "/ping");
    assert_eq!(stack.post_update(&after, Some(TEST_SECRET)).0, 200);
    // Telegram delivers the panicking update again: 200, no reply, the handler not run again.
    let (again, body) = stack.post_update(&panicking, Some(TEST_SECRET));
    assert_eq!(
        (again, body.as_str()),
        (200, ""),
        "a redelivery of a panicked update"
    );
    // The panic is an error event with its message and location.
    let rows = wait_for("the panic's error event", Duration::from_secs(40), || {
        let rows =
            stack.d1("SELECT kind, message, location FROM error_events WHERE kind = 'panic'");
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0]["message"]
            .as_str()
            .unwrap()
            .contains("dev_panic: a handler panic on purpose"),
        "{rows:?}"
    );
    assert!(
        rows[0]["location"]
            .as_str()
            .unwrap()
            .starts_with("producer-worker/src/bot.rs:"),
        "{rows:?}"
    );
    // The events that waited in the outbox were not lost: /start's command event is stored.
    stack.wait_count_within(
        "the first update's events, kept through the reset",
        "SELECT count(*) FROM analytics_points_local WHERE blob3 = 'command' AND blob4 = 'start'",
        1,
        Duration::from_secs(30),
    );
    // The follow-ups the panic cut off are counted as interrupted.
    stack.wait_count_within(
        "the interrupted follow-ups",
        "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'follow_up' AND blob17 LIKE '%\"interrupted\":\"panic\"%'",
        1,
        Duration::from_secs(30),
    );
    // The redelivery is counted.
    stack.wait_count_within(
        "the redelivery of the panicked update, counted",
        "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'webhook_rejected' AND blob17 LIKE '%redelivered_after_panic%'",
        1,
        Duration::from_secs(30),
    );
    let panics = stack
        .log()
        .matches("dev_panic: a handler panic on purpose")
        .count();
    assert!(panics >= 1, "the panic is logged");
    let handled_twice = stack.log().matches("panicked at producer-worker").count();
    assert_eq!(
        handled_twice,
        1,
        "the handler ran once: {}",
        stack.log_tail()
    );
}
