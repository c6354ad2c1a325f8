//! # producer-worker — the demo Telegram bot, built on `bot-analytics`
//!
//! `POST /telegram` is served by [`bot_analytics::telegram::Bot`] with the handlers in
//! [`bot`]: the reply rides in the response body, and the analytics, follow-up Bot API calls
//! included, happen after the response inside `ctx.wait_until`.

use bot_analytics::queue::send_bytes;
use bot_analytics::{Faults, DEFAULT_QUEUE_BINDING};
use worker::{event, Context, Env, Method, Request, Response, Result};

pub mod bot;

/// Compiles the request path while the isolate starts, not while the first user waits.
#[event(start)]
fn start() {
    bot_analytics::warm_up();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => Response::ok("ok"),
        (_, "/telegram") => {
            bot_analytics::telegram::Bot::new()
                .commands(bot::COMMANDS)
                .serve(req, env, ctx, bot::handle)
                .await
        }
        (Method::Post, "/__dev/enqueue") if dev_enqueue_enabled(&env) => {
            dev_enqueue(req, env).await
        }
        (Method::Get, "/__dev/outbox") if dev_enqueue_enabled(&env) => dev_outbox(),
        // Dev only: the chaos soak kills the isolate inside its coalescing window. Answers 409
        // when it refuses (see `dev_kill_isolate`); otherwise the request fails with the isolate.
        (Method::Post, "/__dev/kill") if dev_enqueue_enabled(&env) => {
            match bot_analytics::dev_kill_isolate() {
                Ok(never) => match never {},
                Err(refused) => Response::error(format!("not killed: {refused}"), 409),
            }
        }
        _ => Response::error("not found", 404),
    }
}

/// Whether the dev-only routes (`/__dev/enqueue`, `/__dev/outbox`, `/__dev/kill`) are on
/// (`DEV_ENQUEUE=1`, set only in the tests' `.dev.vars`; never in `wrangler.producer.toml`, and
/// refused by `scripts/deploy.sh`, so production answers 404).
fn dev_enqueue_enabled(env: &Env) -> bool {
    env.var("DEV_ENQUEUE")
        .map(|v| v.to_string() == "1")
        .unwrap_or(false)
}

/// Dev only: what waits in this isolate's outbox, as JSON (`waiting` events, `carried` drop
/// counts not yet reported, sends `in_flight`), so the soak can tell when everything is out.
fn dev_outbox() -> Result<Response> {
    let (waiting, carried, in_flight) =
        bot_analytics::outbox_state().unwrap_or((0, Default::default(), 0));
    Response::from_json(&serde_json::json!({
        "waiting": waiting,
        "carried": carried.total(),
        "in_flight": in_flight,
    }))
}

/// Dev only: puts the request body on the analytics queue as one raw `bytes` message, so tests
/// can deliver duplicates and garbage to the consumer.
async fn dev_enqueue(mut req: Request, env: Env) -> Result<Response> {
    let body = req.bytes().await?;
    let queue = env.queue(DEFAULT_QUEUE_BINDING)?;
    match send_bytes(&queue, &body, &Faults::default()).await {
        Ok(()) => Response::ok("enqueued"),
        Err(e) => Response::error(format!("send failed: {e}"), 502),
    }
}
