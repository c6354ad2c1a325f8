//! {{NAME}}: a Telegram bot on Cloudflare Workers. Every update, command, button press, handler
//! duration and handler error is tracked by `bot-analytics` after the response; the handler
//! adds one custom event. Replace `handle` and `answer` with your bot.

use bot_analytics::telegram::{Bot, HandlerResult, Reply, Update};
use bot_analytics::Tracker;
use serde_json::json;
use worker::{event, Context, Env, Request, Response};

/// The commands the bot knows (any other command is tracked as `unknown`).
const COMMANDS: &[&str] = &["start", "help", "roll"];

/// What the bot says to a command, as pure logic (tested natively below).
pub fn answer(command: &str, payload: &str) -> Option<String> {
    match command {
        "start" => Some("Welcome! Try /roll 6 or the button below.".into()),
        "help" => Some("/roll N rolls an N-sided die.".into()),
        "roll" => Some(match payload.trim().parse::<u32>() {
            Ok(sides) if sides > 0 => format!("A {sides}-sided die: roll it yourself, I only count."),
            _ => "Give me a number of sides, e.g. /roll 6.".into(),
        }),
        _ => None,
    }
}

async fn handle(update: Update, _env: Env, tracker: Tracker) -> HandlerResult {
    let Some(chat) = update.chat_id() else {
        return Ok(Reply::none());
    };
    // A button press: its event is named after the callback data before the first `:`.
    if let Some(id) = update.callback_query_id() {
        tracker.track("menu_opened", [("from_button", true)]);
        return Ok(Reply::answer_callback(id).then("sendMessage", json!({"chat_id": chat, "text": "Menu"})));
    }
    let Some(command) = update.command() else {
        return Ok(Reply::none());
    };
    if command.name == "roll" && command.payload.trim() == "fail" {
        // A handler error: tracked with its type and this line, and Telegram still gets a 200.
        let sides: u32 = "fail".parse()?;
        return Ok(Reply::text(chat, format!("{sides}")));
    }
    match answer(command.name, command.payload) {
        Some(text) => {
            tracker.track("answered", [("chars", text.chars().count())]);
            let menu = json!({"inline_keyboard": [[{"text": "Menu", "callback_data": "menu"}]]});
            Ok(Reply::text(chat, text).with("reply_markup", menu))
        }
        None => Ok(Reply::none()),
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    if req.path() == "/health" {
        return Response::ok("ok");
    }
    Bot::new().commands(COMMANDS).serve(req, env, ctx, handle).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bot_answers_its_commands_and_nothing_else() {
        assert!(answer("start", "").unwrap().starts_with("Welcome"));
        assert!(answer("roll", "6").unwrap().contains("6-sided"));
        assert!(answer("roll", "zero").unwrap().contains("number of sides"));
        assert_eq!(answer("weather", ""), None);
        for command in COMMANDS {
            assert!(answer(command, "").is_some(), "/{command} has no answer");
        }
    }
}
