//! Owner analytics in real local workerd (docs/owner-analytics.md): hand-built envelopes with
//! events of kinds update, command, user and payment go through the real queue to the consumer;
//! D1 then holds exactly the expected `bot_users`, `user_days` and `user_events` rows, a copy of
//! a message adds nothing, the consumer's cron writes the same `daily_rollup` rows twice, and
//! `forget` erases the user's rows.

use std::time::Duration;

use analytics_core::event::{Event, EventKind, PropValue};
use analytics_core::wire::Envelope;
use analytics_core::{encode, samples};
use e2e_tests::stack::{pseudonym, TEST_ID_KEY};
use e2e_tests::{now_ms, wait_for, Stack, StackOptions};
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;
const RAW_A: i64 = 5_000_000_001;
const RAW_B: i64 = 5_000_000_002;

fn event(
    n: u128,
    kind: EventKind,
    name: &str,
    user: i64,
    at_ms: i64,
    properties: Vec<(&str, PropValue)>,
) -> Event {
    Event {
        id: uuid::Uuid::from_u128(0x019a_b53c_0000_7000_8000_0000_0000_0000 | n),
        timestamp: chrono::DateTime::from_timestamp_millis(at_ms).unwrap(),
        kind,
        name: name.into(),
        user_id: Some(user),
        chat_id: Some(user),
        duration_ms: None,
        error: None,
        properties: properties
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        truncated: 0,
    }
}

/// An envelope of `events`, sent a second after the last of them.
fn envelope(events: Vec<Event>) -> Vec<u8> {
    let sent = events.iter().map(|e| e.timestamp).max().unwrap() + chrono::Duration::seconds(1);
    encode(&Envelope {
        sent_at: sent,
        events,
        ..samples::typical_envelope()
    })
    .unwrap()
}

fn enqueue(stack: &Stack, bytes: &[u8]) {
    let (status, body) = stack.post("/__dev/enqueue", &[], bytes);
    assert_eq!(status, 200, "{body}");
}

fn rows(stack: &Stack) -> Vec<Value> {
    [
        "SELECT * FROM bot_users ORDER BY user_id",
        "SELECT * FROM user_days ORDER BY day, user_id",
        "SELECT * FROM user_events ORDER BY event_id",
    ]
    .iter()
    .flat_map(|sql| stack.d1(sql))
    .collect()
}

/// Runs the consumer's cron once more and waits until its rollup logged that it finished.
fn run_cron(stack: &Stack) {
    let runs = stack.log().matches("rollup: done").count();
    let (status, body) = stack.get("/__scheduled?cron=17+3+*+*+*").unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for("the cron's rollup", Duration::from_secs(120), || {
        (stack.log().matches("rollup: done").count() > runs).then_some(())
    });
    wait_for("the cron's retention", Duration::from_secs(120), || {
        (stack.log().matches("retention: done").count() > runs).then_some(())
    });
}

#[test]
fn users_days_payments_and_the_rollup_are_exact_and_forget_erases_them() {
    let mut stack = Stack::start(StackOptions {
        api_base: None,
        extra_vars: vec![("DEV_ENQUEUE".into(), "1".into())],
        ..StackOptions::default()
    });
    let (a, b) = (pseudonym(RAW_A), pseudonym(RAW_B));
    let now = now_ms();
    let today = now.div_euclid(DAY);
    // Yesterday 23:00, and today a little before now (never before midnight).
    let y = today * DAY - 3_600_000;
    let t = (now - 120_000).max(today * DAY);
    use EventKind::*;
    let yesterday = envelope(vec![
        event(
            1,
            UpdateReceived,
            "message",
            a,
            y,
            vec![("lang", "de".into())],
        ),
        event(
            2,
            Command,
            "start",
            a,
            y + 1,
            vec![("source", "ads".into())],
        ),
        event(
            3,
            Payment,
            "payment",
            a,
            y + 2,
            vec![("amount", 250i64.into()), ("currency", "XTR".into())],
        ),
        event(4, UpdateReceived, "message", b, y + 3, vec![]),
    ]);
    let today_envelope = envelope(vec![
        event(
            5,
            UpdateReceived,
            "message",
            a,
            t,
            vec![("lang", "fr".into()), ("premium", true.into())],
        ),
        event(
            6,
            Command,
            "start",
            a,
            t + 1,
            vec![("source", "later".into())],
        ),
        event(
            7,
            Payment,
            "refund",
            a,
            t + 2,
            vec![("amount", 50i64.into()), ("currency", "XTR".into())],
        ),
        event(8, User, "user_blocked", b, t + 3, vec![]),
    ]);
    enqueue(&stack, &yesterday);
    enqueue(&stack, &today_envelope);
    stack.wait_count(
        "both envelopes",
        "SELECT count(*) FROM processed_envelopes",
        2,
    );

    assert_eq!(
        stack.d1(&format!("SELECT * FROM bot_users WHERE user_id = {a}")),
        vec![
            json!({"bot": "telegram-bot", "user_id": a, "first_seen": y, "last_seen": t + 2,
                    "source": "ads", "source_at": y + 1, "lang": "fr", "premium": 1,
                    "seen_at": t, "status": "active", "status_at": null})
        ]
    );
    assert_eq!(
        stack.d1(&format!("SELECT * FROM bot_users WHERE user_id = {b}")),
        vec![
            json!({"bot": "telegram-bot", "user_id": b, "first_seen": y + 3, "last_seen": t + 3,
                    "source": null, "source_at": null, "lang": null, "premium": null,
                    "seen_at": null, "status": "blocked", "status_at": t + 3})
        ]
    );
    // A was active yesterday and today; B only yesterday (the block is not activity).
    let mut days = vec![
        json!({"bot": "telegram-bot", "day": today - 1, "user_id": a}),
        json!({"bot": "telegram-bot", "day": today - 1, "user_id": b}),
        json!({"bot": "telegram-bot", "day": today, "user_id": a}),
    ];
    days.sort_by_key(|r| (r["day"].as_i64(), r["user_id"].as_i64()));
    assert_eq!(
        stack.d1("SELECT * FROM user_days ORDER BY day, user_id"),
        days
    );
    assert_eq!(
        stack.d1("SELECT user_id, occurred_at, name, currency, amount FROM user_events ORDER BY occurred_at"),
        vec![
            json!({"user_id": a, "occurred_at": y + 2, "name": "payment", "currency": "XTR", "amount": 250}),
            json!({"user_id": a, "occurred_at": t + 2, "name": "refund", "currency": "XTR", "amount": 50}),
            json!({"user_id": b, "occurred_at": t + 3, "name": "user_blocked", "currency": null, "amount": null}),
        ]
    );
    assert_eq!(
        stack.d1("SELECT kind_counts FROM processed_envelopes ORDER BY kind_counts"),
        vec![
            json!({"kind_counts": r#"{"command":1,"payment":1,"update":1,"user":1}"#}),
            json!({"kind_counts": r#"{"command":1,"payment":1,"update":2}"#}),
        ]
    );

    // A copy of a message (a new queue message, the same bytes): stored once, nothing added.
    let before = rows(&stack);
    enqueue(&stack, &yesterday);
    wait_for("the copy", Duration::from_secs(60), || {
        stack.log().contains(", 1 duplicates,").then_some(())
    });
    assert_eq!(rows(&stack), before);

    // The cron (its first run answered the restart's readiness probe), twice more: the same
    // rows, computed_at included, with exact figures.
    stack.restart_for_cron();
    run_cron(&stack);
    let rollup = |stack: &Stack| stack.d1("SELECT * FROM daily_rollup ORDER BY day");
    let first = rollup(&stack);
    run_cron(&stack);
    assert_eq!(rollup(&stack), first, "a second run changed the rollup");
    let day = |d: i64| first.iter().find(|r| r["day"] == d).cloned().unwrap();
    let figures = |r: &Value| {
        let mut r = r.clone();
        r.as_object_mut().unwrap().remove("computed_at");
        r
    };
    assert_eq!(
        figures(&day(today - 1)),
        json!({"bot": "telegram-bot", "day": today - 1, "new_users": 2, "active_users": 2,
               "blocked": 0, "unblocked": 0, "payers": 1, "revenue": r#"{"XTR":250}"#,
               "events": 0, "events_by_kind": "{}", "errors": 0}),
        "events count by the day the consumer received them: both envelopes came today"
    );
    assert_eq!(
        figures(&day(today)),
        json!({"bot": "telegram-bot", "day": today, "new_users": 0, "active_users": 1,
               "blocked": 1, "unblocked": 0, "payers": 0, "revenue": r#"{"XTR":-50}"#,
               "events": 8, "events_by_kind": r#"{"command":2,"payment":2,"update":3,"user":1}"#,
               "errors": 0})
    );
    assert_eq!(first.len(), 3, "today and the two days before: {first:?}");

    // forget, as an operator runs it (the raw id and the key): every row of A goes.
    let options = stack.report_options(&["forget", &RAW_A.to_string()]);
    let result = report::query(&options, 0, Some(TEST_ID_KEY.to_string())).expect("forget runs");
    assert_eq!(result.len(), 1, "{result:?}");
    let r = &result[0];
    assert_eq!(
        (
            &r["bot_users_before"],
            &r["user_days_before"],
            &r["user_events_before"]
        ),
        (&json!(1), &json!(2), &json!(2)),
        "{r}"
    );
    for left in ["bot_users_left", "user_days_left", "user_events_left"] {
        assert_eq!(r[left], 0, "{r}");
    }
    for table in ["bot_users", "user_days", "user_events"] {
        assert_eq!(
            stack.d1_count(&format!("SELECT count(*) FROM {table} WHERE user_id = {a}")),
            0,
            "{table}"
        );
    }
    assert_eq!(
        stack.d1_count(&format!(
            "SELECT count(*) FROM bot_users WHERE user_id = {b}"
        )),
        1,
        "the other user stays"
    );
}
