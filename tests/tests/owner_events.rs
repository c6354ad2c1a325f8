//! Owner analytics, producer side, in real local workerd: the demo bot's automatic events for
//! blocking and unblocking, payments, a text nobody answered, the user's language and Premium,
//! and a follow-up that the Bot API answers 403 "bot was blocked by the user"; each checked as
//! the point the consumer stored (`analytics_points_local`, the local mirror of Analytics
//! Engine).

use std::time::Duration;

use e2e_tests::stack::{pseudonym, TEST_SECRET};
use e2e_tests::{fixture, wait_for, FakeBotApi, Stack, StackOptions};
use serde_json::{json, Value};

const ADA: i64 = 5_123_456_789;
const JOAO: i64 = 6_234_567_890;
/// The user of the follow-ups that Telegram answers "blocked".
const BLOCKER: i64 = 7_345_678_901;

fn owner(name: &str) -> String {
    fixture(&format!("updates/owner/{name}.json"))
}

/// The stored points of kind `kind`, ordered by name and user.
fn points(stack: &Stack, kind: &str) -> Vec<Value> {
    stack.d1(&format!(
        "SELECT blob4 AS name, blob5 AS user, index1, blob17 AS other, blob18 AS number_key, \
         double8 AS number, blob19 AS currency FROM analytics_points_local \
         WHERE blob3 = '{kind}' ORDER BY blob4, blob5, double8"
    ))
}

#[test]
fn owner_events_are_stored_with_their_user_amount_currency_and_facts() {
    let api = FakeBotApi::start();
    let stack = Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        extra_vars: vec![("DEV_TEST_COMMANDS".into(), "1".into())],
        ..StackOptions::default()
    });
    for name in [
        "user_pt_br_premium",
        "text_private",
        "my_chat_member_kicked",
        "my_chat_member_member",
        "successful_payment_xtr",
        "successful_payment_usd",
        "refunded_payment",
    ] {
        let (status, body) = stack.post_update(&owner(name), Some(TEST_SECRET));
        assert_eq!(status, 200, "{name}: {body}");
    }
    // The demo bot approves a pre-checkout query in the response body.
    let (status, body) = stack.post_update(&owner("pre_checkout_query"), Some(TEST_SECRET));
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("a method in the body");
    assert_eq!(
        answer,
        json!({"method": "answerPreCheckoutQuery", "pre_checkout_query_id": "4382938475617283", "ok": true})
    );
    // A user who blocked the bot: the follow-ups of /dev_follow_ups all get Telegram's 403.
    api.respond_blocked("sendMessage");
    let follow_ups = json!({"update_id": 300_009, "message": {"message_id": 9,
        "from": {"id": BLOCKER, "is_bot": false, "first_name": "Bo"},
        "chat": {"id": BLOCKER, "type": "private", "first_name": "Bo"},
        "date": 1_764_000_800, "text": "/dev_follow_ups"}});
    let (status, body) = stack.post_update(&follow_ups.to_string(), Some(TEST_SECRET));
    assert_eq!(status, 200, "{body}");

    // Everything the follow-ups yield arrives with their timing: wait for it, then for all.
    stack.wait_count(
        "the follow-ups' timing",
        "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'follow_up'",
        1,
    );
    stack.wait_count(
        "eight user and payment events",
        "SELECT count(*) FROM analytics_points_local WHERE blob3 IN ('user', 'payment')",
        8,
    );
    let sent_403 = api
        .calls()
        .iter()
        .filter(|c| c.method == "sendMessage")
        .count();
    assert_eq!(sent_403, 3, "all three follow-ups were made and refused");
    assert_eq!(
        stack.d1_count(
            "SELECT count(*) FROM analytics_points_local WHERE blob4 = 'bot_api' AND blob15 = 'http_403'"
        ),
        3
    );

    let user = |raw: i64| pseudonym(raw).to_string();
    // Blocked twice (by the update, and by the 403s: once for three refused calls), unblocked
    // once, and one text nobody answered; each for its user, with no properties.
    let mut users: Vec<(String, String)> = points(&stack, "user")
        .iter()
        .map(|p| {
            assert_eq!(p["other"], "{}", "{p}");
            assert_eq!(p["index1"], p["user"], "sampled by the user: {p}");
            (
                p["name"].as_str().unwrap().to_string(),
                p["user"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    users.sort();
    let mut want = vec![
        ("not_understood".to_string(), user(ADA)),
        ("user_blocked".to_string(), user(ADA)),
        ("user_blocked".to_string(), user(BLOCKER)),
        ("user_unblocked".to_string(), user(ADA)),
    ];
    want.sort();
    assert_eq!(users, want);

    // Payments: the amount in double8 (key in blob18), the currency in blob19, nothing else.
    let mut payments: Vec<(String, f64, String)> = points(&stack, "payment")
        .iter()
        .map(|p| {
            assert_eq!(p["user"], user(ADA), "{p}");
            assert_eq!(p["number_key"], "amount", "{p}");
            // blob17 repeats the first numeric property (as every point does), and nothing else:
            // no payload, no charge id.
            let other: Value = serde_json::from_str(p["other"].as_str().unwrap()).unwrap();
            assert_eq!(
                other,
                json!({"amount": p["number"].as_f64().unwrap() as i64}),
                "{p}"
            );
            (
                p["name"].as_str().unwrap().to_string(),
                p["number"].as_f64().unwrap(),
                p["currency"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    payments.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        payments,
        vec![
            ("payment".to_string(), 50.0, "XTR".to_string()),
            ("payment".to_string(), 1999.0, "USD".to_string()),
            ("pre_checkout".to_string(), 50.0, "XTR".to_string()),
            ("refund".to_string(), 50.0, "XTR".to_string()),
        ]
    );

    // The user's language and Premium ride on the update event, in blob17.
    let facts = |raw: i64, update_id: i64| -> Value {
        let rows = stack.d1(&format!(
            "SELECT blob17 AS other FROM analytics_points_local WHERE blob3 = 'update' \
             AND blob5 = '{}' AND double8 = {update_id}",
            user(raw)
        ));
        assert_eq!(rows.len(), 1, "{rows:?}");
        let mut other: Value = serde_json::from_str(rows[0]["other"].as_str().unwrap()).unwrap();
        // blob17 repeats the first numeric property, update_id.
        assert_eq!(other["update_id"], update_id, "{other}");
        other.as_object_mut().unwrap().remove("update_id");
        other
    };
    assert_eq!(facts(JOAO, 300_008), json!({"lang": "pt", "premium": true}));
    assert_eq!(facts(ADA, 300_007), json!({"lang": "en"}));
    assert_eq!(facts(BLOCKER, 300_009), json!({}));

    // Nothing a user typed, paid with or was charged under is stored anywhere.
    let everything = stack
        .d1("SELECT * FROM analytics_points_local")
        .iter()
        .map(Value::to_string)
        .collect::<String>();
    for secret in [
        "weather",
        "call me",
        "order-7f3a",
        "secret-note",
        "stxQ2k",
        "ch_3Pq",
        "plan-pro",
        "Lovelace",
        "example.com",
    ] {
        assert!(!everything.contains(secret), "{secret} was stored");
    }
    // Only the update that was not answered is "not understood": /help and the commands were.
    let understood = wait_for("the handler timings", Duration::from_secs(30), || {
        let n =
            stack.d1_count("SELECT count(*) FROM analytics_points_local WHERE blob4 = 'handler'");
        (n >= 9).then_some(n)
    });
    assert_eq!(understood, 9);
}
