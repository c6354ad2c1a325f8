//! # producer-worker — a Telegram bot that answers first and tracks everything after
//!
//! `POST /telegram` checks the secret, parses the update, lets [`bot`] decide the reply and
//! answers at once (the reply rides in the response body). Everything else — follow-up Bot API
//! calls and the analytics send to the queue — happens inside `ctx.wait_until`.

use std::rc::Rc;

use shared::telegram::Update;
use shared::{EventKind, NewEvent, Source};
use worker::{event, Context, Env, Method, Request, Response, Result};

pub mod analytics;
pub mod bot;
pub mod bot_api;
pub mod webhook;

use analytics::{BotTracker, Mode};
use webhook::Rejection;

/// The queue binding analytics events go to.
pub const QUEUE_BINDING: &str = "ANALYTICS_QUEUE";

struct Config {
    secret: String,
    bot_username: String,
    mode: Mode,
    source: Source,
    api: bot_api::BotApi,
    faults: analytics::Faults,
}

impl Config {
    fn from_env(env: &Env) -> Config {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let secret = |name: &str| {
            env.secret(name)
                .ok()
                .map(|v| v.to_string())
                .filter(|v| !v.is_empty())
        };
        Config {
            secret: secret("TELEGRAM_WEBHOOK_SECRET").unwrap_or_default(),
            bot_username: var("BOT_USERNAME").unwrap_or_default(),
            mode: Mode::parse(var("ANALYTICS").as_deref()),
            source: Source {
                worker: var("BOT_NAME").unwrap_or_else(|| "telegram-bot".into()),
                release: var("RELEASE").unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
            },
            api: bot_api::BotApi {
                base: var("TELEGRAM_API_BASE").unwrap_or_else(|| "https://api.telegram.org".into()),
                token: secret("TELEGRAM_BOT_TOKEN"),
            },
            faults: analytics::Faults {
                send_failures: var("DEV_FAULT_QUEUE_SEND_FAILURES").and_then(|v| v.parse().ok()),
                send_delay_ms: var("DEV_FAULT_QUEUE_SEND_DELAY_MS").and_then(|v| v.parse().ok()),
            },
        }
    }
}

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

async fn webhook(mut req: Request, env: Env, ctx: Context) -> Result<Response> {
    let received_at = js_sys::Date::now();
    let config = Config::from_env(&env);
    let update = match accept(&mut req, &config).await {
        Ok(update) => update,
        Err(rejection) => {
            if config.mode != Mode::Off {
                analytics::count_rejection(rejection.code());
            }
            return rejection.response();
        }
    };

    let plan = bot::plan(&update, &config.bot_username);
    let response = match &plan.respond {
        Some(call) => Response::from_json(&call.as_webhook_response())?,
        None => Response::ok("")?,
    };
    if config.mode == Mode::Off {
        let api = config.api.clone();
        let follow_ups = plan.follow_ups;
        let tracker = analytics::new_tracker(config.source.clone());
        ctx.wait_until(async move {
            for call in &follow_ups {
                let _ = api.call(call, &tracker).await;
            }
        });
        return Ok(response);
    }

    let tracker = Rc::new(analytics::new_tracker(config.source.clone()));
    track_update(&tracker, &update, &plan);
    let mut handler_properties = vec![("update_kind", update.kind.clone())];
    if let Some(command) = &plan.command {
        handler_properties.push(("command", command.clone()));
    }
    tracker.track_rejected_webhooks(&analytics::take_rejections());
    tracker.track_performance(
        "handler",
        tracker.now_ms() - received_at,
        handler_properties,
    );
    let queue = env.queue(QUEUE_BINDING);
    let work = {
        let tracker = tracker.clone();
        let api = config.api.clone();
        async move {
            let started = tracker.now_ms();
            for call in &plan.follow_ups {
                let _ = api.call(call, &tracker).await;
            }
            if !plan.follow_ups.is_empty() {
                tracker.track_performance(
                    "follow_up",
                    tracker.now_ms() - started,
                    [("calls", plan.follow_ups.len().to_string())],
                );
            }
            match queue {
                Ok(queue) => analytics::deliver(&queue, &tracker, config.faults).await,
                Err(e) => worker::console_error!("analytics: no {QUEUE_BINDING} binding: {e}"),
            }
        }
    };
    if config.mode == Mode::Await {
        work.await;
    } else {
        ctx.wait_until(work);
    }
    Ok(response)
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

/// Checks a webhook request and parses its update, or says why it is refused.
async fn accept(req: &mut Request, config: &Config) -> std::result::Result<Update, Rejection> {
    let given = req.headers().get(webhook::SECRET_HEADER).ok().flatten();
    if !webhook::secret_matches(given.as_deref(), &config.secret) {
        return Err(Rejection::Unauthorized);
    }
    let content_type = req.headers().get("Content-Type").ok().flatten();
    if !webhook::content_type_ok(content_type.as_deref()) {
        return Err(Rejection::UnsupportedMediaType);
    }
    let body = webhook::read_body(req).await?;
    webhook::parse_update(&body)
}

/// The automatic events of one update: the update itself, its command or callback.
fn track_update(tracker: &BotTracker, update: &Update, plan: &bot::Plan) {
    let chat = update.chat();
    tracker.set_context(update.user_id(), chat.map(|c| c.id));
    let mut properties = vec![("update_id".to_string(), update.update_id.to_string())];
    if let Some(chat) = chat {
        properties.push(("chat_type".into(), chat.kind.clone()));
    }
    if !update.known {
        properties.push(("unknown_kind".into(), "true".into()));
    }
    tracker.record(NewEvent {
        kind: Some(EventKind::UpdateReceived),
        name: if update.known {
            update.kind.clone()
        } else {
            "unknown".into()
        },
        properties,
        ..NewEvent::default()
    });
    if let Some(command) = &plan.command {
        tracker.record(NewEvent {
            kind: Some(EventKind::Command),
            name: command.clone(),
            properties: plan.command_properties.clone(),
            ..NewEvent::default()
        });
    }
    if let Some(data) = &plan.callback {
        tracker.record(NewEvent {
            kind: Some(EventKind::Callback),
            name: data.split(':').next().unwrap_or_default().to_string(),
            properties: vec![("data".into(), data.clone())],
            ..NewEvent::default()
        });
    }
}
