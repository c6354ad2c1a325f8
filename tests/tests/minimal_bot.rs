//! The second, minimal bot (`examples/minimal-bot/`, only the library's public API) in real
//! local workerd beside the consumer: its automatic and custom events reach the local Analytics
//! Engine table, and its handler error reaches `error_events`.

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{Stack, StackOptions};
use serde_json::{json, Value};

fn update(update_id: i64, text: &str) -> String {
    json!({"update_id": update_id, "message": {"message_id": 1, "from": {"id": 777, "is_bot": false},
        "chat": {"id": 777, "type": "private"}, "date": 1764000000, "text": text}})
    .to_string()
}

#[test]
fn minimal_bot_events_and_handler_errors_reach_the_store() {
    let stack = Stack::start(StackOptions {
        bot_config: Some("examples/minimal-bot/wrangler.toml".into()),
        ..StackOptions::default()
    });
    let (status, body) = stack.post_update(&update(1, "/start hello"), Some(TEST_SECRET));
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).expect("the reply rides in the body");
    assert_eq!(reply["method"], "sendMessage");
    assert_eq!(reply["chat_id"], 777);

    // The handler fails on /fail: Telegram still gets a 200 with no reply.
    let (status, body) = stack.post_update(&update(2, "/fail"), Some(TEST_SECRET));
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, _) = stack.post_update(&update(3, "/start"), Some("wrong secret"));
    assert_eq!(status, 401);

    stack.wait_count(
        "the handler error in error_events",
        "SELECT count(*) FROM error_events",
        1,
    );
    let errors = stack.d1("SELECT kind, message, location, bot FROM error_events");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["kind"], "ParseIntError");
    assert_eq!(errors[0]["bot"], "minimal-bot");
    let location = errors[0]["location"].as_str().unwrap();
    assert!(
        location.starts_with("handler:examples/minimal-bot/src/lib.rs:"),
        "the error is located at its `?`: {location}"
    );

    stack.wait_count(
        "the custom event",
        "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'greeted'",
        1,
    );
    let custom = stack.d1(
        "SELECT blob1, blob3, blob18 AS key, double8 AS value FROM analytics_points_local WHERE blob4 = 'greeted'",
    );
    assert_eq!(
        custom,
        vec![
            json!({"blob1": "minimal-bot", "blob3": "custom", "key": "payload_chars", "value": 5})
        ]
    );
    let automatic: Vec<String> = stack
        .d1("SELECT blob3 || ':' || blob4 AS e FROM analytics_points_local WHERE blob3 != 'custom' ORDER BY 1")
        .iter()
        .map(|r| r["e"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "command:start",
        "command:fail",
        "update:message",
        "performance:handler",
        "error:ParseIntError",
    ] {
        assert!(
            automatic.iter().any(|e| e == want),
            "{want} missing from {automatic:?}"
        );
    }
}
