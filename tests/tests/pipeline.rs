//! The spine, end to end in real local workerd: a Telegram update goes through the bot Worker,
//! the queue and the consumer Worker into the local Analytics Engine mirror and the D1 error log.

use std::time::Duration;

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{fixture, wait_for, FakeBotApi, Stack, StackOptions};
use serde_json::{json, Value};

#[test]
fn one_update_is_followed_end_to_end() {
    let api = FakeBotApi::start();
    api.respond(
        "editMessageText",
        400,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: message to edit not found"}),
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
    assert_eq!(rows[0]["index1"], "5123456789");
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
    assert_eq!(errors[0]["user_id"], 5_123_456_789_i64);
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

    // Exactly two updates were tracked: the rejected requests left no trace.
    let updates = wait_for("both update events", Duration::from_secs(30), || {
        let n = stack
            .d1_count("SELECT count(*) AS n FROM analytics_points_local WHERE blob3 = 'update'");
        (n >= 2).then_some(n)
    });
    assert_eq!(updates, 2);
    println!("e2e: pipeline verified against local workerd");
}
