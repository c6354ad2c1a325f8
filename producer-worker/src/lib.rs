//! # producer-worker — a Telegram bot that answers first and tracks everything after
//!
//! `POST /telegram` checks the secret, parses the update, lets [`bot`] decide the reply and
//! answers at once (the reply rides in the response body). Everything else — follow-up Bot API
//! calls and the analytics send to the queue — happens inside `ctx.wait_until`.

use std::rc::Rc;

use worker::{event, Context, Env, Method, Request, Response, Result};

pub mod analytics;
pub mod bot;
pub mod bot_api;
pub mod config;
pub mod middleware;
pub mod webhook;

use analytics::{BotTracker, Mode};
use config::Config;

/// The queue binding analytics events go to.
pub const QUEUE_BINDING: &str = "ANALYTICS_QUEUE";

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => Response::ok("ok"),
        (Method::Post, "/telegram") => webhook(req, env, ctx).await,
        (Method::Post, "/__dev/enqueue") if dev_enqueue_enabled(&env) => {
            dev_enqueue(req, env).await
        }
        (_, "/telegram") => Response::error("use POST", 405),
        _ => Response::error("not found", 404),
    }
}

/// `POST /telegram`: answer first, track everything after.
async fn webhook(mut req: Request, env: Env, ctx: Context) -> Result<Response> {
    let received_at = js_sys::Date::now();
    let config = Config::get(&env);
    let update = match webhook::accept(&mut req, &config.secret).await {
        Ok(update) => update,
        Err(rejection) => {
            if config.mode != Mode::Off {
                middleware::count_rejection(rejection.code());
            }
            return rejection.response();
        }
    };

    // 1. The bot decides; its reply rides in the response body (no round trip before it).
    let plan = bot::plan(&update, &config.bot_username);
    let response = match &plan.respond {
        Some(call) => Response::from_json(&call.as_webhook_response())?,
        None => Response::ok("")?,
    };

    // 2. Everything else happens after the response, inside `wait_until`.
    let tracker = Rc::new(analytics::new_tracker(config.source.clone()));
    if config.mode != Mode::Off {
        middleware::track_update(&tracker, &update, &plan, received_at);
    }
    let mode = config.mode;
    let after = after_response(config, plan, tracker, env.queue(QUEUE_BINDING));
    if mode == Mode::Await {
        after.await; // only to measure what fire and forget saves
    } else {
        ctx.wait_until(after);
    }
    Ok(response)
}

/// Follow-up Bot API calls, then the analytics send.
async fn after_response(
    config: Rc<Config>,
    plan: bot::Plan,
    tracker: Rc<BotTracker>,
    queue: Result<worker::Queue>,
) {
    let response_at = js_sys::Date::now();
    for call in &plan.follow_ups {
        let _ = config.api.call(call, &tracker).await;
    }
    if config.mode == Mode::Off {
        return;
    }
    middleware::track_follow_ups(&tracker, plan.follow_ups.len(), response_at);
    match queue {
        Ok(queue) => analytics::deliver(&queue, &tracker, config.delivery, response_at).await,
        Err(e) => worker::console_error!("analytics: no {QUEUE_BINDING} binding: {e}"),
    }
}

/// Whether the dev-only raw enqueue route is on (`DEV_ENQUEUE=1`, set only in the tests'
/// `.dev.vars`; never in `wrangler.producer.toml`, so production answers 404).
fn dev_enqueue_enabled(env: &Env) -> bool {
    env.var("DEV_ENQUEUE")
        .map(|v| v.to_string() == "1")
        .unwrap_or(false)
}

/// Dev only: puts the request body on the analytics queue as one raw `bytes` message, so tests
/// can deliver duplicates and garbage to the consumer.
async fn dev_enqueue(mut req: Request, env: Env) -> Result<Response> {
    let body = req.bytes().await?;
    match analytics::send_raw(&env.queue(QUEUE_BINDING)?, &body).await {
        Ok(()) => Response::ok("enqueued"),
        Err(e) => Response::error(format!("send failed: {e:?}"), 502),
    }
}
