//! The demo bot: a small, real example of handlers you replace with your own. Each handler is
//! async, gets the update, the `Env` and the tracker, and may await its own I/O before it
//! answers. The reply rides in the webhook response (no round trip before it); follow-up calls
//! run after the response.

use bot_analytics::telegram::{ApiError, BotApi, HandlerResult, Reply, Update};
use bot_analytics::Tracker;
use serde_json::{json, Value};
use worker::Env;

/// The commands this bot has; any other command is tracked as `unknown`.
pub const COMMANDS: &[&str] = &["start", "help", "ping", "menu", "members"];

/// The `/help` text.
pub const HELP: &str = "I am an example bot with analytics.\n\
/start - welcome\n/help - this help\n/ping - check that I am alive\n/menu - a menu with buttons\n\
/members - how many members this chat has";

fn menu_keyboard() -> Value {
    json!({"inline_keyboard": [[
        {"text": "📊 Stats", "callback_data": "menu:stats"},
        {"text": "ℹ️ About", "callback_data": "menu:about"}
    ]]})
}

/// The bot's handler.
pub async fn handle(update: Update, env: Env, tracker: Tracker) -> HandlerResult {
    match update.kind() {
        "callback_query" => return Ok(button(&update)),
        "pre_checkout_query" => return Ok(pre_checkout(&update)),
        _ => {}
    }
    let (Some(chat), Some(command)) = (update.chat_id(), update.command()) else {
        return Ok(Reply::none());
    };
    if dev_commands_enabled(&env) {
        match command.name {
            "dev_panic" => panic!("dev_panic: a handler panic on purpose (DEV_TEST_COMMANDS)"),
            "dev_follow_ups" => return Ok(dev_follow_ups(chat)),
            _ => {}
        }
    }
    Ok(match command.name {
        "members" => members(chat, &BotApi::from_env(&env), &tracker).await,
        name => command_reply(chat, name),
    })
}

/// Whether the dev-only test commands (`/dev_panic`, `/dev_follow_ups`) are on:
/// `DEV_TEST_COMMANDS=1`, set only by the end-to-end tests; never in `wrangler.producer.toml`, so
/// in production they are unknown commands like any other.
fn dev_commands_enabled(env: &Env) -> bool {
    env.var("DEV_TEST_COMMANDS")
        .map(|v| v.to_string() == "1")
        .unwrap_or(false)
}

/// Dev only: a reply with three follow-up calls, to test their shared deadline.
fn dev_follow_ups(chat: i64) -> Reply {
    (1..=3).fold(Reply::text(chat, "three follow-ups"), |reply, n| {
        reply.then(
            "sendMessage",
            json!({"chat_id": chat, "text": format!("follow-up {n}")}),
        )
    })
}

/// Replies of the commands that need no I/O (`/start`, `/help`, `/ping`, `/menu`, unknown).
pub fn command_reply(chat: i64, name: &str) -> Reply {
    match name {
        "start" => Reply::text(chat, "Welcome! Try /menu."),
        "ping" => Reply::text(chat, "pong"),
        "menu" => Reply::text(chat, "Choose:").with("reply_markup", menu_keyboard()),
        _ => Reply::text(chat, HELP),
    }
}

/// `/members` awaits the Bot API (`getChatMemberCount`) before it answers, and records the
/// count as a custom event with a numeric property.
async fn members(chat: i64, api: &BotApi, tracker: &Tracker) -> Reply {
    let text = match api
        .call("getChatMemberCount", &json!({"chat_id": chat}), tracker)
        .await
    {
        Ok(count) => {
            let members = count.as_i64().unwrap_or(0);
            tracker.track("chat_size", [("members", members)]);
            format!("This chat has {members} members.")
        }
        Err(ApiError::NoToken(_)) => "I need a bot token to count members.".to_string(),
        // The failed call is tracked as an error event by the client already.
        Err(_) => "Telegram did not tell me; try again later.".to_string(),
    };
    Reply::text(chat, text)
}

/// A pre-checkout query: approved at once in the response body (`answerPreCheckoutQuery`,
/// `ok: true`); Telegram needs the answer within 10 seconds. A real shop checks the order
/// first.
pub fn pre_checkout(update: &Update) -> Reply {
    let id = update
        .json::<Value>()
        .ok()
        .and_then(|body| body["pre_checkout_query"]["id"].as_str().map(String::from));
    match id {
        Some(id) => Reply::call(
            "answerPreCheckoutQuery",
            json!({"pre_checkout_query_id": id, "ok": true}),
        ),
        None => Reply::none(),
    }
}

/// A button press: answered in the response body (the spinner stops at once), and the menu
/// message is edited after the response.
pub fn button(update: &Update) -> Reply {
    let Some(id) = update.callback_query_id() else {
        return Reply::none();
    };
    let reply = Reply::answer_callback(id);
    let (Some(chat), Some(message_id)) = (update.chat_id(), update.message_id()) else {
        return reply;
    };
    let text = match update.callback_data().unwrap_or_default() {
        "menu:stats" => "Stats: every update of this bot is counted in Analytics Engine.",
        "menu:about" => "About: a Rust Telegram bot on Cloudflare Workers.",
        _ => "That button is not known any more.",
    };
    reply.then(
        "editMessageText",
        json!({
            "chat_id": chat,
            "message_id": message_id,
            "text": text,
            "reply_markup": menu_keyboard(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_reply_in_the_response() {
        let body: Value = serde_json::from_str(&command_reply(42, "start").body()).unwrap();
        assert_eq!(body["method"], "sendMessage");
        assert_eq!(body["chat_id"], 42);
        let menu: Value = serde_json::from_str(&command_reply(42, "menu").body()).unwrap();
        assert_eq!(
            menu["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            "menu:stats"
        );
        let unknown: Value = serde_json::from_str(&command_reply(42, "unknown").body()).unwrap();
        assert_eq!(unknown["text"], HELP);
    }
}
