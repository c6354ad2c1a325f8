//! The smallest complete Telegram bot with analytics, using only `bot-analytics`' public API.
//! It answers /start, records one custom event with a numeric property, and fails on /fail:
//! that error is tracked (grouped by its type and the line of its `?`), and Telegram still gets
//! a 200. Every update, command and handler duration is tracked without code here.

use bot_analytics::telegram::{Bot, HandlerResult, Reply, Update};
use bot_analytics::Tracker;
use worker::{event, Context, Env, Request, Response};

async fn handle(update: Update, _env: Env, tracker: Tracker) -> HandlerResult {
    let Some(chat) = update.chat_id() else {
        return Ok(Reply::none());
    };
    match update.command().map(|c| (c.name, c.payload)) {
        Some(("start", payload)) => {
            tracker.track("greeted", [("payload_chars", payload.chars().count())]);
            Ok(Reply::text(chat, "Hello from the minimal bot!"))
        }
        Some(("fail", payload)) => {
            let n: u32 = payload.parse()?; // "/fail" alone: ParseIntError, tracked
            Ok(Reply::text(chat, format!("{n} is a number")))
        }
        _ => Ok(Reply::none()),
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    if req.path() == "/health" {
        return Response::ok("ok");
    }
    Bot::new()
        .commands(&["start", "fail"])
        .serve(req, env, ctx, handle)
        .await
}
