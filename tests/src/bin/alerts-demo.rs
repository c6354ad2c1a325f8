//! `make alerts-demo`: what an alert looks like. Starts the local stack (bot and consumer in
//! `wrangler dev`, temporary state) with the fake Bot API and `ALERT_CHAT_ID` set, posts one
//! update whose reply fails (the fake Bot API refuses `editMessageText`), and prints the
//! `sendMessage` the consumer sent as an alert. Nothing leaves this machine.

use std::time::Duration;

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{poll_until, FakeBotApi, Stack, StackOptions};
use serde_json::json;

const ALERT_TOKEN: &str = "999999:DEMO-ALERT-TOKEN";

fn main() {
    let api = FakeBotApi::start();
    api.respond_error(
        "editMessageText",
        400,
        "Bad Request: message to edit not found",
    );
    println!("alerts-demo: fake Bot API on {}", api.base_url());
    let stack = Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        extra_vars: [
            ("ALERT_CHAT_ID", "-1001234"),
            ("ALERT_BOT_TOKEN", ALERT_TOKEN),
            ("DASHBOARD_URL", "http://127.0.0.1:8788"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..StackOptions::default()
    });
    let update = json!({"update_id": 1, "callback_query": {"id": "cb1", "from": {"id": 42, "first_name": "Demo"},
        "message": {"message_id": 9, "chat": {"id": 42, "type": "private"}}, "data": "menu:stats"}});
    let (status, _) = stack.post_update(&update.to_string(), Some(TEST_SECRET));
    println!("alerts-demo: posted a button press (HTTP {status}); the bot's menu edit fails");
    let alert = poll_until(Duration::from_secs(30), || {
        api.calls()
            .into_iter()
            .find(|c| c.token == ALERT_TOKEN && c.method == "sendMessage")
    });
    match alert {
        Some(call) => {
            println!(
                "alerts-demo: the fake Bot API received sendMessage to chat {}:\n",
                call.body["chat_id"]
            );
            for line in call.body["text"].as_str().unwrap_or_default().lines() {
                println!("    {line}");
            }
            println!("\nSee docs/alerts.md for every alert and its setting.");
        }
        None => {
            eprintln!(
                "alerts-demo: no alert arrived within 30 s\n{}",
                stack.log_tail()
            );
            std::process::exit(1);
        }
    }
}
