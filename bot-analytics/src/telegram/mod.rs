//! The Telegram webhook layer: checks the request, parses the update, runs your async handler
//! with the update, the `Env` and a [`Tracker`], answers Telegram with the handler's reply in
//! the response body, and after the response — inside `wait_until` — records the automatic
//! events, hands every event to the outbox, and makes the reply's follow-up calls.
//!
//! ```no_run
//! use bot_analytics::telegram::{Bot, HandlerResult, Reply, Update};
//! use bot_analytics::Tracker;
//! use worker::{event, Context, Env, Request, Response};
//!
//! async fn handle(update: Update, _env: Env, tracker: Tracker) -> HandlerResult {
//!     let Some(chat) = update.chat_id() else { return Ok(Reply::none()) };
//!     match update.command().map(|c| c.name) {
//!         Some("start") => {
//!             tracker.track("greeted", [("returning", false)]);
//!             Ok(Reply::text(chat, "Welcome!"))
//!         }
//!         _ => Ok(Reply::none()),
//!     }
//! }
//!
//! # fn main() {}
//! #[event(fetch)]
//! async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
//!     Bot::new().commands(&["start"]).serve(req, env, ctx, handle).await
//! }
//! ```
//!
//! A handler that returns an error gets it tracked (grouped by the error's type and the
//! location of its `?`), and Telegram gets an empty 200: a non-2xx answer would make Telegram
//! deliver the same update again and again.

mod api;
mod error;
mod settings;
mod update;

use std::cell::RefCell;
use std::future::Future;

use futures_util::future::join;
use futures_util::StreamExt;
use shared::auto::{self, BotProfile, RejectionCounts};
use shared::ids::update_request_key;
use shared::webhook::{self, Rejection, MAX_BODY_BYTES, SECRET_HEADER};
use worker::{console_error, Context, Env, Method, Request, Response};

pub use api::{ApiError, BotApi, DEFAULT_TIMEOUT_MS};
pub use error::BotError;
pub use settings::{ReplyDelivery, TelegramSettings};
pub use shared::reply::{ApiCall, Reply};
pub use shared::telegram::Command;
pub use update::Update;

use crate::analytics::Analytics;
use crate::runtime::now_ms;
use crate::settings::Mode;
use crate::Tracker;

/// What a handler returns: the reply, or an error (tracked; Telegram gets an empty 200).
pub type HandlerResult = Result<Reply, BotError>;

thread_local! {
    /// Webhook requests refused since the last accepted update, by reason.
    static REJECTED: RefCell<RejectionCounts> = RefCell::new(RejectionCounts::default());
}

/// A Telegram bot served from a webhook. See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bot {
    commands: &'static [&'static str],
}

impl Bot {
    /// A bot that tracks every command by its name.
    pub fn new() -> Bot {
        Bot::default()
    }

    /// The bot's commands: any other command is tracked as `unknown` (with the attempted
    /// name as a property), so typos do not become event names.
    pub fn commands(mut self, commands: &'static [&'static str]) -> Bot {
        self.commands = commands;
        self
    }

    /// Serves one webhook request with `handler`. Refused requests get a 4xx with a short
    /// reason (and are counted); accepted ones a 200 with the handler's reply in the body.
    pub async fn serve<H, F>(
        &self,
        mut req: Request,
        env: Env,
        ctx: Context,
        handler: H,
    ) -> worker::Result<Response>
    where
        H: FnOnce(Update, Env, Tracker) -> F,
        F: Future<Output = HandlerResult>,
    {
        let analytics = Analytics::from_env(&env);
        let telegram = TelegramSettings::get(&env);
        let accepted = match req.method() {
            Method::Post => accept(&mut req, &telegram.secret).await,
            _ => Err(Rejection::MethodNotAllowed),
        };
        let (parsed, body) = match accepted {
            Ok(accepted) => accepted,
            Err(rejection) => {
                if analytics.mode() != Mode::Off {
                    REJECTED.with(|r| r.borrow_mut().count(rejection.code()));
                }
                return Response::error(rejection.reason(), rejection.status());
            }
        };

        let tracker = analytics.tracker();
        if tracker.is_enabled() {
            let bot = match telegram.api.bot_id() {
                Some(id) => format!("{}:{id}", analytics.settings().source.worker),
                None => analytics.settings().source.worker.clone(),
            };
            tracker.set_request_key(update_request_key(&bot, parsed.update_id));
            tracker.set_context(parsed.user_id(), parsed.chat().map(|c| c.id));
        }
        let update = Update::new(parsed, body, &telegram.username);
        let started = now_ms();
        let result = handler(update.clone(), env, tracker.clone()).await;
        let handler_ms = now_ms() - started;

        let (reply, failure) = match result {
            Ok(reply) => (reply, None),
            Err(error) => {
                let scrubbed = shared::scrub::scrub(&format!("{error:?}"));
                console_error!("bot handler failed (answered 200, tracked): {scrubbed}");
                (Reply::none(), Some(error.failure()))
            }
        };
        // TELEGRAM_REPLY=fetch: the answer as a Bot API call before the response (in `await`
        // mode after the analytics, as the seed's "before" did).
        let fetched = (telegram.reply == ReplyDelivery::Fetch)
            .then(|| reply.respond.clone())
            .flatten();
        if let (Some(call), false) = (&fetched, analytics.mode() == Mode::Await) {
            let _ = telegram
                .api
                .call(&call.method, &call.params, &tracker)
                .await;
        }
        let in_body = telegram.reply == ReplyDelivery::Body;
        let response = match reply.respond.as_ref().filter(|_| in_body) {
            Some(call) => {
                let mut response = Response::ok(call.to_webhook_body())?;
                response
                    .headers_mut()
                    .set("Content-Type", "application/json")?;
                response
            }
            None => Response::ok("")?,
        };

        let profile_commands = self.commands;
        let telegram_for_fetch = telegram.clone();
        let mode = analytics.mode();
        // With analytics off and nothing to follow up, there is nothing to do after the response.
        let work_after = mode != Mode::Off || !reply.follow_ups.is_empty();
        let response_at = now_ms();
        let after = async move {
            // Nothing of this runs in the response's turn: the runtime sends the response first.
            crate::runtime::yield_now().await;
            if tracker.is_enabled() {
                let profile = BotProfile {
                    username: &telegram.username,
                    commands: profile_commands,
                };
                let parsed = update.parsed();
                for event in auto::request_events(parsed, &profile, handler_ms, failure.as_ref()) {
                    tracker.record(event);
                }
            }
            let rejected = REJECTED.with(|r| r.borrow_mut().take());
            // The events are handed over first (taken now, sent by the futures below): a
            // follow-up that hangs cannot cost them.
            let handed = analytics.handover(&tracker, response_at);
            let handed_rejections = (!rejected.is_empty()).then(|| {
                let rejections = analytics.tracker();
                for event in auto::rejection_events(&rejected) {
                    rejections.record(event);
                }
                analytics.handover(&rejections, response_at)
            });
            let first = async move {
                match handed_rejections {
                    Some(rejections) => {
                        join(handed, rejections).await;
                    }
                    None => handed.await,
                }
            };
            let follow_ups = async {
                if reply.follow_ups.is_empty() {
                    return;
                }
                let start = now_ms();
                for call in &reply.follow_ups {
                    let _ = telegram
                        .api
                        .call(&call.method, &call.params, &tracker)
                        .await;
                }
                if let Some(event) = auto::follow_up_event(reply.follow_ups.len(), now_ms() - start)
                {
                    tracker.record(event);
                }
                analytics.handover(&tracker, response_at).await;
            };
            join(first, follow_ups).await;
        };
        if mode == Mode::Await {
            // Only to measure what sending after the response saves.
            after.await;
            if let Some(call) = fetched {
                // Its timing is recorded after the hand-over and not sent: benchmarks only.
                let _ = telegram_for_fetch
                    .api
                    .call(&call.method, &call.params, &Tracker::noop())
                    .await;
            }
        } else if work_after {
            ctx.wait_until(after);
        }
        Ok(response)
    }
}

/// Checks a webhook request and parses its update, or says why it is refused.
async fn accept(
    req: &mut Request,
    secret: &str,
) -> Result<(shared::telegram::Update, Vec<u8>), Rejection> {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    webhook::check_headers(
        header(SECRET_HEADER).as_deref(),
        secret,
        header("Content-Type").as_deref(),
        header("Content-Length").as_deref(),
    )?;
    let declared = header("Content-Length").is_some();
    let body = read_body(req, declared).await?;
    let update = webhook::parse_update(&body)?;
    Ok((update, body))
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] without buffering it all. With a
/// declared length (already checked against the cap; Telegram always sends one) the body is
/// read in one piece; without one it is streamed and cut off at the cap.
async fn read_body(req: &mut Request, declared_length: bool) -> Result<Vec<u8>, Rejection> {
    if declared_length {
        let body = req
            .bytes()
            .await
            .map_err(|_| Rejection::BadRequest("body could not be read".into()))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(Rejection::TooLarge);
        }
        return Ok(body);
    }
    let mut body = Vec::new();
    let Ok(mut stream) = req.stream() else {
        return Ok(body); // no body at all
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Rejection::BadRequest("body could not be read".into()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Rejection::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
