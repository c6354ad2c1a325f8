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
//!
//! A handler that panics cannot be answered (release builds abort on a panic, and the runtime
//! answers the request with an error), but the panic is tracked as an error of kind `panic`
//! with its message and `file:line`, what the isolate's outbox held is sent by the next
//! request, and a redelivery of that update to the same isolate gets an empty 200 without the
//! handler running again (counted as `webhook_rejected`, reason `redelivered_after_panic`).
//! docs/security.md says what a panic still costs.

mod api;
mod error;
mod settings;
mod update;

use std::future::Future;

use analytics_core::ids::update_request_key;
use futures_util::StreamExt;
use telegram_policy::auto::{self, Answered, BotProfile, HandlerFailure};
use telegram_policy::webhook::{self as checks, Rejection, MAX_BODY_BYTES, SECRET_HEADER};
use worker::{console_error, Context, Env, Method, Request, Response};

pub use api::{ApiError, BotApi, DEFAULT_TIMEOUT_MS};
pub use error::BotError;
pub use settings::{ReplyDelivery, TelegramSettings};
pub use telegram_policy::reply::{ApiCall, Reply};
pub use telegram_policy::update::Command;
pub use update::Update;

use crate::analytics::Analytics;
use crate::panic;
use crate::settings::Mode;
use crate::webhook::{self, AfterResponse};
use crate::Tracker;

/// What a handler returns: the reply, or an error (tracked; Telegram gets an empty 200).
pub type HandlerResult = Result<Reply, BotError>;

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
    ///
    /// Only what is Telegram's is here (the secret header, update parsing, reply routing);
    /// the work around the handler that any messenger needs is in the crate's `webhook`
    /// module.
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
        // Local dev only (`LOCAL_DEV=1`): the time the update belongs to (`make demo`).
        let clock_offset = match crate::devclock::offset(&req, &env) {
            Ok(offset) => offset.unwrap_or(0.0),
            Err(bad) => return Response::error(bad.to_string(), 400),
        };
        let accepted = match req.method() {
            Method::Post => accept(&mut req, &telegram.secret).await,
            _ => Err(Rejection::MethodNotAllowed),
        };
        let (parsed, body) = match accepted {
            Ok(accepted) => accepted,
            Err(r) => return webhook::refuse(&analytics, r.code(), &r.reason(), r.status()),
        };
        let key = update_request_key(&telegram.bot_key(&analytics), parsed.update_id);
        if panic::panicked_before(key) {
            return webhook::skip_redelivery(&analytics, &ctx).await;
        }
        let tracker = tracker_for(&analytics, key, &parsed, clock_offset);
        // When the update came in, by the tracker's clock (simulated in `make demo`): its
        // delivery lag is this minus the update's `date`.
        let received_ms = tracker.now_ms();
        let update = Update::new(parsed, body, &telegram.username);
        let handled = handler(update.clone(), env, tracker.clone());
        let watched = panic::watch(key, &analytics, &tracker, handled);
        let (result, handler_ms) = webhook::timed(watched).await;
        let (reply, failure) = reply_or_failure(result, &telegram.api);
        let answered = Answered::of(&reply, tracker.bot_api_calls());
        let fetched = telegram.fetched(&reply, analytics.mode(), &tracker).await;
        let response = respond(&reply, telegram.reply)?;
        let commands = self.commands;
        let settings = telegram.clone();
        let follow_ups = (!reply.follow_ups.is_empty()).then(|| {
            let (telegram, tracker) = (telegram.clone(), tracker.clone());
            move |by| async move { telegram.api.call_all(&reply.follow_ups, &tracker, by).await }
        });
        let automatic = move || {
            let profile = BotProfile {
                username: &settings.username,
                commands,
            };
            let failure = failure.as_ref();
            auto::request_events(
                update.parsed(),
                &profile,
                received_ms,
                handler_ms,
                failure,
                answered,
            )
        };
        let mode = analytics.mode();
        let after = AfterResponse {
            analytics,
            tracker,
            automatic,
            follow_ups,
        };
        after.schedule(&ctx).await;
        if mode == Mode::Await {
            telegram.fetch_late(fetched).await;
        }
        Ok(response)
    }
}

/// The request's tracker, keyed by the bot and the update (`key`: a redelivered update gets
/// the same event ids) and set to its user and chat; its clock runs `clock_offset` ms off the
/// Worker's (0 except in local dev, see `crate::devclock`).
fn tracker_for(
    analytics: &Analytics,
    key: u64,
    parsed: &telegram_policy::update::Update,
    clock_offset: f64,
) -> Tracker {
    let tracker = if clock_offset == 0.0 {
        analytics.tracker()
    } else {
        analytics.tracker_shifted(clock_offset)
    };
    if tracker.is_enabled() {
        tracker.set_request_key(key);
        tracker.set_context(parsed.user_id(), parsed.chat().map(|c| c.id));
    }
    tracker
}

/// The handler's reply, or no reply and the failure to track (see [`handler_failure`]).
fn reply_or_failure(result: HandlerResult, api: &BotApi) -> (Reply, Option<HandlerFailure>) {
    match result {
        Ok(reply) => (reply, None),
        Err(error) => {
            let failure = handler_failure(&error, api);
            console_error!(
                "bot handler failed (answered 200, tracked): {}: {} (at {})",
                failure.kind,
                failure.message,
                failure.location
            );
            (Reply::none(), Some(failure))
        }
    }
}

/// A handler's error as it is tracked and logged: the bot's own token replaced wherever it
/// is (even in a shape the scrub cannot recognise), then scrubbed (`analytics_core::scrub`).
/// Anything else the handler put in its error (a user's text, say) stays: see
/// docs/privacy.md.
fn handler_failure(error: &BotError, api: &BotApi) -> HandlerFailure {
    let mut failure = error.failure();
    failure.kind = api.redact(&failure.kind);
    failure.message = analytics_core::scrub::scrub(&api.redact(&failure.message));
    failure
}

/// The webhook's response: the reply's method in the body (`TELEGRAM_REPLY=body`), or empty.
fn respond(reply: &Reply, delivery: ReplyDelivery) -> worker::Result<Response> {
    match reply
        .respond
        .as_ref()
        .filter(|_| delivery == ReplyDelivery::Body)
    {
        Some(call) => {
            let mut response = Response::ok(call.to_webhook_body())?;
            response
                .headers_mut()
                .set("Content-Type", "application/json")?;
            Ok(response)
        }
        None => Response::ok(""),
    }
}

/// Checks a webhook request and parses its update, or says why it is refused.
async fn accept(
    req: &mut Request,
    secret: &str,
) -> Result<(telegram_policy::update::Update, Vec<u8>), Rejection> {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    checks::check_headers(
        header(SECRET_HEADER).as_deref(),
        secret,
        header("Content-Type").as_deref(),
        header("Content-Length").as_deref(),
    )?;
    let declared = header("Content-Length").is_some();
    let body = read_body(req, declared).await?;
    let update = checks::parse_update(&body)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_error_never_stores_or_logs_the_bots_own_token() {
        // A short token the scrub cannot recognise as one (the end-to-end tests use such a one).
        let api = BotApi::new(
            "https://api.telegram.org".into(),
            Some("123456:TEST-TOKEN".into()),
            1e4,
        );
        let error = BotError::new("ConfigError", "token 123456:TEST-TOKEN rejected");
        let failure = handler_failure(&error, &api);
        assert_eq!(failure.message, "token <token> rejected");
        let update = telegram_policy::update::Update::parse(br#"{"update_id":1,"message":{"message_id":1,"chat":{"id":1,"type":"private"},"text":"hi"}}"#).unwrap();
        let events = auto::handler_events(&update, None, 1.0, Some(&failure));
        let stored = &events[1].error.as_ref().unwrap().message;
        assert!(!stored.contains("TEST-TOKEN"), "stored: {stored}");
    }
}
