//! The spine, end to end in real local workerd: a Telegram update goes through the bot Worker,
//! the queue and the consumer Worker into the local Analytics Engine mirror and the D1 error log.

use std::time::Duration;

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{fixture, wait_for, FakeBotApi, Stack, StackOptions};
use serde_json::{json, Value};

#[test]
fn one_update_is_followed_end_to_end() {
    let api = FakeBotApi::start();
    api.respond_error(
        "editMessageText",
        400,
        "Bad Request: message to edit not found",
    );
    let stack = Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        ..StackOptions::default()
    });

    // A /start with a deep-link payload: answered in the response body itself.
    let (status, body) =
        stack.post_update(&fixture("updates/message_start.json"), Some(TEST_SECRET));
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).expect("reply is JSON");
    assert_eq!(reply["method"], "sendMessage");
    assert_eq!(reply["chat_id"], 5_123_456_789_i64);

    // Without the secret: 401, and nothing is tracked.
    let (status, _) = stack.post_update(&fixture("updates/message_start.json"), None);
    assert_eq!(status, 401);
    let (status, _) = stack.post_update(&fixture("updates/message_start.json"), Some("wrong"));
    assert_eq!(status, 401);

    // A button press: answered in the response, the follow-up edit fails at the Bot API.
    let (status, body) =
        stack.post_update(&fixture("updates/callback_query.json"), Some(TEST_SECRET));
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["method"], "answerCallbackQuery");
    assert_eq!(reply["callback_query_id"], "4382bfdwdsb323b2d9");

    // The command event reaches the local Analytics Engine mirror…
    let rows = wait_for(
        "the /start command in analytics_points_local",
        Duration::from_secs(60),
        || {
            let rows = stack.d1(
                "SELECT index1, blob1, blob3, blob4, blob16, double1 FROM analytics_points_local \
             WHERE blob3 = 'command' AND blob4 = 'start'",
            );
            (!rows.is_empty()).then_some(rows)
        },
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    // The user is a pseudonym: the raw id never leaves the bot.
    let user = e2e_tests::stack::pseudonym(5_123_456_789);
    assert_eq!(rows[0]["index1"], user.to_string());
    assert_eq!(rows[0]["blob1"], "telegram-bot");
    assert_eq!(rows[0]["blob16"], "from_readme");

    // …and the failed Bot API call becomes an error event and a group in D1.
    let errors = wait_for(
        "the Bot API error in error_events",
        Duration::from_secs(60),
        || {
            let rows =
                stack.d1("SELECT kind, message, location, user_id, fingerprint FROM error_events");
            (!rows.is_empty()).then_some(rows)
        },
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0]["message"],
        "Bad Request: message to edit not found"
    );
    assert_eq!(errors[0]["location"], "bot_api:editMessageText");
    assert_eq!(errors[0]["user_id"], user);
    let groups = stack.d1("SELECT fingerprint, count FROM error_groups");
    assert_eq!(
        groups,
        vec![json!({"fingerprint": errors[0]["fingerprint"], "count": 1})]
    );

    // The fake Bot API saw the follow-up with the token, after the response.
    let calls = api.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "editMessageText");
    assert_eq!(calls[0].token, e2e_tests::stack::TEST_TOKEN);
    assert_eq!(calls[0].body["message_id"], 77);

    // The token went to the Bot API only: no event, error row or log line carries it.
    let token = e2e_tests::stack::TEST_TOKEN;
    let blobs: Vec<String> = (1..=20)
        .map(|i| format!("instr(ifnull(blob{i}, ''), '{token}') > 0"))
        .collect();
    let leaks = stack.d1_count(&format!(
        "SELECT count(*) FROM analytics_points_local WHERE {}",
        blobs.join(" OR ")
    ));
    assert_eq!(
        leaks, 0,
        "the bot token leaked into Analytics Engine points"
    );
    assert_eq!(
        stack.d1_count(&format!(
            "SELECT count(*) FROM error_events WHERE instr(message, '{token}') > 0"
        )),
        0
    );
    assert!(
        !stack.log().contains(token),
        "the bot token appears in the Worker's logs"
    );

    // Exactly two updates were tracked: the rejected requests left no trace.
    let updates = wait_for("both update events", Duration::from_secs(30), || {
        let n = stack
            .d1_count("SELECT count(*) AS n FROM analytics_points_local WHERE blob3 = 'update'");
        (n >= 2).then_some(n)
    });
    assert_eq!(updates, 2);
    println!("e2e: pipeline verified against local workerd");

    saved_queries_run_locally(&stack);
}

/// The saved Analytics Engine SQL runs against the local mirror: the portable files unchanged,
/// the others through their `local/` versions.
fn saved_queries_run_locally(stack: &Stack) {
    let top = stack.d1_file("queries/ae/top_commands.sql");
    assert_eq!(top, vec![json!({"command": "start", "uses": 1})]);

    let rate = stack.d1_file("queries/ae/error_rate.sql");
    assert_eq!(rate.len(), 1, "{rate:?}");
    assert_eq!(
        (rate[0]["errors"].as_i64(), rate[0]["updates"].as_i64()),
        (Some(1), Some(2))
    );

    let hourly = stack.d1_file("queries/ae/local/events_per_hour_by_name.sql");
    assert!(
        hourly
            .iter()
            .any(|r| r["kind"] == "command" && r["name"] == "start" && r["events"] == 1),
        "{hourly:?}"
    );

    let latency = stack.d1_file("queries/ae/local/handler_latency_by_command.sql");
    assert_eq!(latency.len(), 1, "{latency:?}");
    assert_eq!(latency[0]["command"], "start");
    assert!(latency[0]["p95_ms"].as_f64().unwrap() >= latency[0]["p50_ms"].as_f64().unwrap());

    let dau = stack.d1_file("queries/ae/local/daily_active_users.sql");
    assert_eq!(dau.len(), 1, "{dau:?}");
    assert_eq!(dau[0]["users"], 1);
    println!("e2e: saved Analytics Engine queries ran against the local mirror");
}
