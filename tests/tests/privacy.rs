//! Privacy by default, in real local workerd: no raw user or chat id and no free text reaches
//! Analytics Engine (the local mirror) or D1, daily active users still count right, and
//! `make errors ARGS="forget <id>"` erases one user while group counts stay consistent.

use e2e_tests::stack::{pseudonym, TEST_ID_KEY, TEST_SECRET, TEST_TOKEN};
use e2e_tests::{FakeBotApi, Stack, StackOptions};
use serde_json::{json, Value};

const USERS: [i64; 3] = [5_123_456_789, 7_000_000_001, 42];
const GROUP: i64 = -1_001_234_567_890;

fn message(update_id: i64, user: i64, chat: i64, text: &str) -> String {
    let kind = if chat < 0 { "supergroup" } else { "private" };
    json!({"update_id": update_id, "message": {"message_id": update_id, "from": {"id": user, "is_bot": false},
        "chat": {"id": chat, "type": kind}, "date": 1764000000, "text": text}})
    .to_string()
}

fn button(update_id: i64, user: i64) -> String {
    json!({"update_id": update_id, "callback_query": {"id": format!("cb{update_id}"), "from": {"id": user},
        "message": {"message_id": 9, "chat": {"id": user, "type": "private"}}, "data": "menu:stats"}})
    .to_string()
}

/// Every text and number column of every row, as one string per row.
fn all_columns(stack: &Stack, table: &str) -> Vec<String> {
    stack
        .d1(&format!("SELECT * FROM {table}"))
        .iter()
        .map(|row| row.to_string())
        .collect()
}

fn raw_ids_in(rows: &[String]) -> Vec<String> {
    let needles: Vec<String> = USERS
        .iter()
        .chain(&[GROUP])
        .map(|id| id.to_string())
        .filter(|id| id.len() > 3)
        .collect();
    rows.iter()
        .filter(|row| needles.iter().any(|n| row.contains(n.as_str())))
        .cloned()
        .collect()
}

#[test]
fn ids_are_pseudonyms_free_text_is_never_stored_and_forget_erases_one_user() {
    let api = FakeBotApi::start();
    // Every menu edit fails, so each button press leaves an error event of its user.
    api.respond_error(
        "editMessageText",
        400,
        "Bad Request: message to edit not found",
    );
    let stack = Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        ..StackOptions::default()
    });
    let mut id = 900_000;
    let post = |body: String| {
        let (status, reply) = stack.post_update(&body, Some(TEST_SECRET));
        assert_eq!(status, 200, "{reply}");
    };
    for user in USERS {
        id += 1;
        post(message(
            id,
            user,
            user,
            "/start my number is +44 7700 900123",
        ));
        id += 1;
        post(button(id, user));
        id += 1;
        post(message(id, user, GROUP, "/help"));
    }
    id += 1;
    post(button(id, USERS[0])); // a second error of the first user
    let events = 3 * (3 + 5 + 3) + 5 + 4; // per user: /start 3, button 5 (+1 error), /help 3
    stack.wait_count(
        "every event",
        "SELECT count(*) FROM analytics_points_local",
        events,
    );
    stack.wait_count("every error", "SELECT count(*) FROM error_events", 4);

    // No raw id anywhere: not in Analytics Engine's columns, not in D1's error log.
    let points = all_columns(&stack, "analytics_points_local");
    assert_eq!(raw_ids_in(&points), Vec::<String>::new());
    assert_eq!(
        raw_ids_in(&all_columns(&stack, "error_events")),
        Vec::<String>::new()
    );
    // No part of the free text either. (The phone number whole or in its parts of 4+ digits with
    // what surrounds them: "7700" alone also turns up in random event ids.)
    for row in points.iter().chain(&all_columns(&stack, "error_events")) {
        for text in ["7700 900123", "+44 7700", "7700900123", "my number"] {
            assert!(!row.contains(text), "{text:?} in {row}");
        }
    }
    let sources: Vec<Value> = stack
        .d1("SELECT DISTINCT blob16 AS s FROM analytics_points_local WHERE blob3 = 'command' AND blob4 = 'start'")
        .iter()
        .map(|r| r["s"].clone())
        .collect();
    assert_eq!(sources, vec![json!("other")]);

    // Daily active users still count right, by pseudonym.
    assert_eq!(
        stack.d1_count(
            "SELECT count(DISTINCT index1) FROM analytics_points_local WHERE blob3 = 'update'"
        ),
        USERS.len() as i64
    );
    let expected: Vec<String> = USERS.iter().map(|u| pseudonym(*u).to_string()).collect();
    for row in stack.d1("SELECT DISTINCT index1 FROM analytics_points_local WHERE blob3 = 'update'")
    {
        assert!(
            expected.contains(&row["index1"].as_str().unwrap().to_string()),
            "{row}"
        );
    }
    // The secret and the token are in no log line.
    let log = stack.log();
    assert!(
        !log.contains(TEST_SECRET) && !log.contains(TEST_TOKEN),
        "a secret reached the logs"
    );

    // Forget the first user, as an operator would (the key comes from the environment).
    let forget = |raw: i64| {
        let options = report::parse_args(&[
            "--config".to_string(),
            stack
                .dir()
                .join("wrangler.consumer.toml")
                .display()
                .to_string(),
            "--persist-to".to_string(),
            stack.dir().join("state").display().to_string(),
            "forget".to_string(),
            raw.to_string(),
        ])
        .unwrap();
        report::query(&options, 0, Some(TEST_ID_KEY.to_string())).expect("forget runs")
    };
    let before = stack.d1("SELECT fingerprint, count FROM error_groups");
    assert_eq!(before.len(), 1, "one group: the failing edit");
    assert_eq!(before[0]["count"], 4);
    let left = forget(USERS[0]);
    // One row per key tried: nothing of the user left, and what the key found before.
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        (&left[0]["error_events_left"], &left[0]["local_points_left"]),
        (&json!(0), &json!(0)),
        "{left:?}"
    );
    assert_eq!(left[0]["key"], "ANALYTICS_ID_KEY");
    assert!(left[0]["rows_before"].as_i64().unwrap() > 0, "{left:?}");
    let me = pseudonym(USERS[0]);
    assert_eq!(
        stack.d1_count(&format!(
            "SELECT count(*) FROM error_events WHERE user_id = {me}"
        )),
        0
    );
    // Counts stay consistent: each group counts exactly the events left in it.
    let groups = stack.d1(
        "SELECT g.count AS count, (SELECT count(*) FROM error_events e WHERE e.fingerprint = g.fingerprint) AS events, \
         g.sample_event_id IN (SELECT event_id FROM error_events) AS sample_kept FROM error_groups g",
    );
    assert_eq!(
        groups,
        vec![json!({"count": 2, "events": 2, "sample_kept": 1})]
    );
    // The other users are untouched.
    for user in &USERS[1..] {
        let p = pseudonym(*user);
        assert!(
            stack.d1_count(&format!(
                "SELECT count(*) FROM analytics_points_local WHERE index1 = '{p}'"
            )) > 0
        );
    }
    // Forgetting everyone removes the group with its last event.
    forget(USERS[1]);
    forget(USERS[2]);
    assert_eq!(stack.d1_count("SELECT count(*) FROM error_groups"), 0);
}

/// Issue 21, item 4: the usual referral link (`/start ref_<id>`), a phone number as a deep-link
/// payload, and a button whose data carries a user id. No raw id or number is stored; the
/// referrer is stored as the referrer's own pseudonym, so "who brought whom" still works.
#[test]
fn a_referral_link_stores_the_referrers_pseudonym_and_no_raw_number() {
    let stack = Stack::start(StackOptions::default());
    let (referrer, newcomer) = (USERS[0], USERS[1]);
    let post = |body: String| {
        let (status, reply) = stack.post_update(&body, Some(TEST_SECRET));
        assert_eq!(status, 200, "{reply}");
    };
    post(message(1, referrer, referrer, "/help"));
    post(message(
        2,
        newcomer,
        newcomer,
        &format!("/start ref_{referrer}"),
    ));
    post(message(3, newcomer, newcomer, "/start 447700900123"));
    post(
        json!({"update_id": 4, "callback_query": {"id": "cb4", "from": {"id": newcomer},
            "message": {"message_id": 9, "chat": {"id": newcomer, "type": "private"}},
            "data": format!("ban:{referrer}")}})
        .to_string(),
    );
    stack.wait_count(
        "every update's handler timing",
        "SELECT count(*) FROM analytics_points_local WHERE blob3 = 'performance' AND blob4 = 'handler'",
        4,
    );
    let points = all_columns(&stack, "analytics_points_local");
    for row in &points {
        for raw in [
            referrer.to_string(),
            newcomer.to_string(),
            "447700900123".into(),
        ] {
            assert!(!row.contains(&raw), "raw {raw} stored: {row}");
        }
    }
    let starts = stack.d1(
        "SELECT blob16 AS source, blob17 AS other, blob18 AS key, double8 AS value, index1 \
         FROM analytics_points_local WHERE blob3 = 'command' AND blob4 = 'start' ORDER BY double3",
    );
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0]["source"], json!("ref_<n>"), "{starts:?}");
    assert_eq!(starts[0]["key"], json!("referrer"), "{starts:?}");
    assert_eq!(
        starts[0]["value"].as_f64(),
        Some(pseudonym(referrer) as f64),
        "{starts:?}"
    );
    assert_eq!(starts[1]["source"], json!("<n>"), "{starts:?}");
    // The referrer's pseudonym is the one his own events carry.
    let own: Vec<Value> = stack
        .d1("SELECT DISTINCT index1 FROM analytics_points_local WHERE blob4 = 'help'")
        .iter()
        .map(|r| r["index1"].clone())
        .collect();
    assert_eq!(own, vec![json!(pseudonym(referrer).to_string())]);
    let buttons = stack.d1(
        "SELECT blob4 AS name, blob17 AS other FROM analytics_points_local WHERE blob3 = 'callback'",
    );
    assert_eq!(buttons.len(), 1, "{buttons:?}");
    assert_eq!(buttons[0]["name"], json!("ban"));
    assert!(
        buttons[0]["other"].as_str().unwrap().contains("ban:<n>"),
        "{buttons:?}"
    );
}

/// Issue 21, item 10: the published dev key outside local dev (no `LOCAL_DEV=1`) is refused:
/// ids are left out, and the bot says why in its log.
#[test]
fn the_published_dev_key_is_refused_outside_local_dev() {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![(
            "ANALYTICS_ID_KEY".into(),
            analytics_core::privacy::PUBLISHED_DEV_KEY.into(),
        )],
        ..StackOptions::default()
    });
    let (status, reply) =
        stack.post_update(&message(1, USERS[0], USERS[0], "/help"), Some(TEST_SECRET));
    assert_eq!(status, 200, "{reply}");
    stack.wait_count(
        "the handler timing",
        "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'handler'",
        1,
    );
    for row in stack.d1("SELECT index1, blob5, blob6 FROM analytics_points_local") {
        assert_eq!(row["index1"], json!("-"), "{row}");
        assert_eq!(row["blob5"], json!(""), "{row}");
    }
    let log = stack.log();
    assert!(
        log.contains("ANALYTICS_ID_KEY is the published dev key"),
        "{}",
        stack.log_tail()
    );
}
