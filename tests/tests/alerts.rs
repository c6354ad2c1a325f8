//! Telegram alerts in real local workerd, sent to the fake Bot API (`docs/alerts.md`): a new
//! error group alerts once, the same error again and a redelivered batch do not, a group
//! resolved in release 1 and seen in release 2 alerts as a regression, a `getWebhookInfo`
//! answer with a recent error alerts (once, however often the cron runs), `ALERTS=off` sends
//! nothing, and no alert text carries a user's id, name or text.

use std::time::Duration;

use analytics_core::{samples, Source, Tracker};
use e2e_tests::stack::{pseudonym, TEST_SECRET};
use e2e_tests::{now_ms, poll_until, ApiCall, FakeBotApi, Stack, StackOptions};
use serde_json::json;

/// The token alerts are sent with (`ALERT_BOT_TOKEN`), apart from the bot's own.
const ALERT_TOKEN: &str = "999999:ALERT-TOKEN";
const CHAT: &str = "-100777";

fn alert_vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("DEV_ENQUEUE", "1"),
        ("ALERT_CHAT_ID", CHAT),
        ("ALERT_BOT_TOKEN", ALERT_TOKEN),
        ("DASHBOARD_URL", "https://dash.example.com"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    }
    vars
}

fn stack(api: &FakeBotApi, extra: &[(&str, &str)]) -> Stack {
    Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        extra_vars: alert_vars(extra),
        ..StackOptions::default()
    })
}

/// The alert messages the fake Bot API received.
fn alerts(api: &FakeBotApi) -> Vec<ApiCall> {
    api.calls()
        .into_iter()
        .filter(|c| c.token == ALERT_TOKEN && c.method == "sendMessage")
        .collect()
}

fn alert_texts(api: &FakeBotApi) -> Vec<String> {
    alerts(api)
        .iter()
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until `n` alerts arrived.
fn wait_alerts(api: &FakeBotApi, n: usize) -> Vec<String> {
    poll_until(Duration::from_secs(30), || {
        let texts = alert_texts(api);
        (texts.len() >= n).then_some(texts)
    })
    .unwrap_or_else(|| panic!("{n} alerts expected, got {:?}", alert_texts(api)))
}

/// An envelope of one error event of `release` (a fresh event id per `seed`), dated now.
fn error_envelope(seed: u8, release: &str) -> Vec<u8> {
    let source = Source {
        release: release.into(),
        ..samples::source()
    };
    let tracker = Tracker::new(source, || now_ms() as f64, [seed; 16]);
    tracker.set_context(Some(4242), Some(4242));
    tracker.track_error_message(
        "telegram_api",
        "Bad Request: chat not found",
        "bot_api:sendMessage",
    );
    tracker.flush()[0].bytes.clone()
}

fn enqueue(stack: &Stack, bytes: &[u8]) {
    let (status, body) = stack.post("/__dev/enqueue", &[], bytes);
    assert_eq!(status, 200, "{body}");
}

/// Enqueues `bytes` and waits until the store holds `events` error events.
fn store(stack: &Stack, bytes: &[u8], events: i64) {
    enqueue(stack, bytes);
    stack.wait_count("error events", "SELECT count(*) FROM error_events", events);
}

/// Queue messages the consumer logged as handled (`consumer: telegram-analytics: N messages`).
fn messages_handled(stack: &Stack) -> usize {
    stack
        .log()
        .lines()
        .filter_map(|l| l.split("consumer: telegram-analytics: ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum()
}

/// Waits until the consumer handled `n` queue messages, so "no alert" is checked after the
/// consumer decided (the alert claim and its send follow the batch's log line).
fn wait_messages(stack: &Stack, n: usize) {
    poll_until(Duration::from_secs(30), || {
        (messages_handled(stack) >= n).then_some(())
    })
    .unwrap_or_else(|| panic!("{n} messages expected\n{}", stack.log_tail()));
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn alert_on_a_new_error_once_not_for_the_same_error_again_nor_a_redelivered_batch() {
    let api = FakeBotApi::start();
    let stack = stack(&api, &[]);
    let first = error_envelope(1, "1.0.0");
    store(&stack, &first, 1);
    let texts = wait_alerts(&api, 1);
    assert!(
        texts[0].contains("New error in ") && texts[0].contains("telegram_api"),
        "{texts:?}"
    );
    assert!(
        texts[0].contains("Bad Request: chat not found"),
        "{texts:?}"
    );
    assert!(texts[0].contains("release 1.0.0"), "{texts:?}");
    let fingerprint = stack.d1("SELECT fingerprint FROM error_groups")[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        texts[0].contains(&format!("https://dash.example.com/errors/{fingerprint}")),
        "{texts:?}"
    );
    let call = &alerts(&api)[0];
    assert_eq!(call.body["chat_id"], json!(-100777));

    // The same envelope again: a redelivered batch (its event is a duplicate).
    enqueue(&stack, &first);
    // The same error again, a new event of the same group.
    store(&stack, &error_envelope(2, "1.0.0"), 2);
    wait_messages(&stack, 3);
    assert_eq!(
        alert_texts(&api).len(),
        1,
        "one alert only: {:?}",
        alert_texts(&api)
    );
    assert_eq!(
        stack.d1_count("SELECT count FROM error_groups"),
        2,
        "the redelivered event was not counted"
    );
}

#[test]
fn alert_on_a_regression_resolved_in_release_1_and_seen_in_release_2() {
    let api = FakeBotApi::start();
    let stack = stack(&api, &[]);
    store(&stack, &error_envelope(1, "1.0.0"), 1);
    wait_alerts(&api, 1);
    // Resolved as the dashboard resolves (its POST is tested in dashboard_browser and
    // dashboard): in the group's latest release.
    stack.d1(
        "UPDATE error_groups SET status = 'resolved', resolved_in_release = release, alert = NULL",
    );
    // Seen again in release 1: still resolved, no alert.
    store(&stack, &error_envelope(2, "1.0.0"), 2);
    wait_messages(&stack, 2);
    assert_eq!(alert_texts(&api).len(), 1, "{:?}", alert_texts(&api));
    // An hour later (the group's hourly slot is free again), seen in release 2.
    stack.d1("UPDATE alert_state SET last_sent_at = last_sent_at - 3600000");
    store(&stack, &error_envelope(3, "2.0.0"), 3);
    let texts = wait_alerts(&api, 2);
    assert!(texts[1].contains("Regression in "), "{texts:?}");
    assert!(texts[1].contains("again in release 2.0.0"), "{texts:?}");
    assert!(texts[1].contains("Resolved in release 1.0.0"), "{texts:?}");
    assert_eq!(
        stack.d1("SELECT status FROM error_groups"),
        vec![json!({"status": "regressed"})]
    );
}

#[test]
fn alerts_off_sends_no_alert() {
    let api = FakeBotApi::start();
    let stack = stack(&api, &[("ALERTS", "off")]);
    store(&stack, &error_envelope(1, "1.0.0"), 1);
    wait_messages(&stack, 1);
    assert!(alert_texts(&api).is_empty(), "{:?}", alert_texts(&api));
    assert!(
        api.calls().iter().all(|c| c.method != "sendMessage"),
        "nothing sent with any token"
    );
}

const NAME: &str = "Zebediah";
const USER: i64 = 5_123_456_789;

#[test]
fn no_alert_text_carries_an_id_a_name_or_message_text() {
    let api = FakeBotApi::start();
    // The bot's menu edit fails: the button press leaves an error event of its user.
    api.respond_error(
        "editMessageText",
        400,
        "Bad Request: message to edit not found",
    );
    let stack = stack(&api, &[]);
    let text = "/start my number is +44 7700 900123";
    for (id, update) in [
        json!({"update_id": 1, "message": {"message_id": 1, "from": {"id": USER, "is_bot": false, "first_name": NAME, "username": "zeb_the_user"},
            "chat": {"id": USER, "type": "private", "first_name": NAME}, "date": now_ms() / 1000, "text": text}}),
        json!({"update_id": 2, "callback_query": {"id": "cb2", "from": {"id": USER, "first_name": NAME},
            "message": {"message_id": 9, "chat": {"id": USER, "type": "private"}}, "data": "menu:stats"}}),
    ]
    .iter()
    .enumerate()
    {
        let (status, reply) = stack.post_update(&update.to_string(), Some(TEST_SECRET));
        assert_eq!(status, 200, "update {id}: {reply}");
    }
    let texts = wait_alerts(&api, 1);
    assert!(texts[0].contains("message to edit not found"), "{texts:?}");
    let forbidden = [
        USER.to_string(),
        pseudonym(USER).to_string(),
        NAME.to_string(),
        "zeb_the_user".to_string(),
        text.to_string(),
        "7700".to_string(),
        "900123".to_string(),
        "menu:stats".to_string(),
    ];
    for t in &texts {
        for needle in &forbidden {
            assert!(
                !t.contains(needle.as_str()),
                "{needle:?} in the alert {t:?}"
            );
        }
    }
}

#[test]
fn alert_on_a_webhook_with_a_recent_error_once_however_often_the_cron_runs() {
    let api = FakeBotApi::start();
    api.respond(
        "getWebhookInfo",
        200,
        json!({"ok": true, "result": {"url": "https://bot.example/telegram", "has_custom_certificate": false,
            "pending_update_count": 3, "last_error_date": now_ms() / 1000 - 60,
            "last_error_message": "Wrong response from the webhook: 502 Bad Gateway", "max_connections": 40}}),
    );
    let stack = Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        extra_vars: alert_vars(&[]),
        consumer_scheduled: true,
        ..StackOptions::default()
    });
    for _ in 0..2 {
        let (status, body) = stack.get("/__scheduled?cron=*/5+*+*+*+*").unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let texts = wait_alerts(&api, 1);
    assert!(texts[0].contains("Webhook of bot"), "{texts:?}");
    assert!(texts[0].contains("502 Bad Gateway"), "{texts:?}");
    assert!(texts[0].contains("3 updates pending"), "{texts:?}");
    let health =
        stack.d1("SELECT bot, ok, pending_update_count, last_error_message FROM webhook_health");
    assert_eq!(
        health,
        vec![json!({"bot": "bot", "ok": 1, "pending_update_count": 3,
            "last_error_message": "Wrong response from the webhook: 502 Bad Gateway"})]
    );
    assert!(
        !stack.d1("SELECT * FROM webhook_health")[0]
            .to_string()
            .contains("bot.example"),
        "no URL stored"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(alert_texts(&api).len(), 1, "two cron runs, one alert");
    let webhook_calls = api
        .calls()
        .iter()
        .filter(|c| c.method == "getWebhookInfo")
        .count();
    assert_eq!(webhook_calls, 2, "one getWebhookInfo per bot per run");
}

#[test]
fn alert_on_a_message_dead_lettered_and_its_new_error_in_one_go() {
    let api = FakeBotApi::start();
    let stack = Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        extra_vars: alert_vars(&[]),
        max_retries: Some(1),
        ..StackOptions::default()
    });
    // D1 refuses the error rows: the message fails twice on the main queue and moves to the
    // dead letter queue, whose consumer stores it once D1 is back.
    stack.d1("ALTER TABLE error_events RENAME TO error_events_offline");
    enqueue(&stack, &error_envelope(1, "1.0.0"));
    poll_until(Duration::from_secs(90), || {
        stack
            .log()
            .lines()
            .any(|l| l.contains("QUEUE telegram-analytics-dlq"))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no dead letter delivery\n{}", stack.log_tail()));
    assert!(alert_texts(&api).is_empty(), "{:?}", alert_texts(&api));
    stack.d1("ALTER TABLE error_events_offline RENAME TO error_events");
    stack.wait_count("the error stored", "SELECT count(*) FROM error_events", 1);
    let texts = wait_alerts(&api, 2);
    assert!(
        texts.iter().any(|t| t.contains("New error in ")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Pipeline: 1 messages reached the dead letter queue")),
        "{texts:?}"
    );
}
