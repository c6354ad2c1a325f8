//! # bot-analytics — analytics and error tracking that never slow your Worker down
//!
//! Events are recorded in memory while your handler runs, and leave **after the response**:
//! as the response is returned they are encoded as compact MessagePack into the isolate's
//! outbox (Rust only, no I/O), and inside `ctx.wait_until` their envelopes are sent to a
//! Cloudflare Queue (content type `bytes`), where the project's consumer Worker turns them
//! into Workers Analytics Engine points and a D1 error log grouped like Sentry issues. Events
//! of concurrent and nearby requests share queue messages (see `docs/coalescing.md`); a failed
//! send is retried once, and whatever is lost is counted and reported in the next message.
//!
//! ## Any Worker: three calls
//!
//! ```no_run
//! use bot_analytics::Analytics;
//! use worker::{event, Context, Env, Request, Response};
//!
//! # fn main() {}
//! #[event(fetch)]
//! async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
//!     let analytics = Analytics::from_env(&env);          // 1. once per request (cheap)
//!     let tracker = analytics.tracker();
//!     tracker.track("page_view", [("path", req.path())]);  // 2. anywhere in your code
//!     let response = Response::ok("hello")?;
//!     analytics.send_after(&ctx, &tracker);               // 3. sent after the response
//!     Ok(response)
//! }
//! ```
//!
//! ## A Telegram bot: an async handler with the tracker in hand
//!
//! [`telegram::Bot`] checks the webhook's secret, parses the update, calls your handler with
//! the update, the `Env` and a [`Tracker`], puts the reply in the response body (zero extra
//! round trips), and tracks every update, command, button press, handler duration and handler
//! error automatically. See the [`telegram`] module.
//!
//! ```no_run
//! use bot_analytics::telegram::{Bot, HandlerResult, Reply, Update};
//! use bot_analytics::Tracker;
//! use worker::{event, Context, Env, Request, Response};
//!
//! async fn handle(update: Update, _env: Env, tracker: Tracker) -> HandlerResult {
//!     let Some(chat) = update.chat_id() else { return Ok(Reply::none()) };
//!     tracker.track("seen", [("chars", update.text().map_or(0, str::len))]);
//!     Ok(Reply::text(chat, "Hi!"))
//! }
//!
//! # fn main() {}
//! #[event(fetch)]
//! async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
//!     Bot::new().serve(req, env, ctx, handle).await
//! }
//! ```
//!
//! ## Configuration (`wrangler.toml` vars and secrets)
//!
//! | name | meaning |
//! | --- | --- |
//! | `ANALYTICS_QUEUE` | the queue producer binding events go to (required; [`Analytics::with_queue`] names another) |
//! | `ANALYTICS` | `on` (default), `off` (every tracker is a no-op), `await` (send before answering; benchmarks only) |
//! | `ANALYTICS_COALESCE_MS` | coalescing window in ms (default 20,000, the core's `DEFAULT_WINDOW_MS`; 0 = one message per request) |
//! | `BOT_NAME`, `RELEASE` | who sends the events (default `telegram-bot` and the crate version) |
//! | `ANALYTICS_ID_KEY` | secret: the key of the user and chat id pseudonyms (HMAC-SHA-256, 52 bits), at least 32 characters; without it ids are left out and a warning is logged once per isolate; a shorter key, or the published dev key of `.dev.vars.example` without `LOCAL_DEV=1`, is refused (ids left out, an error logged once per isolate) |
//! | `LOCAL_DEV` | `.dev.vars` only (never deployed): `1` lets the published dev key through, and lets a webhook request's `X-Dev-Simulated-Time` (ms since the epoch) date that update's events (`make demo`, docs/demo.md); without it the header is not read |
//! | `ANALYTICS_RAW_IDS` | `1` keeps raw Telegram ids instead of pseudonyms: an explicit opt-in |
//! | `TELEGRAM_WEBHOOK_SECRET` | secret: the `secret_token` given to `setWebhook` (Telegram layer; unset = every request is refused) |
//! | `TELEGRAM_BOT_TOKEN` | secret: the bot token, for follow-up calls and [`telegram::BotApi`] |
//! | `BOT_USERNAME` | the bot's @name, so `/cmd@OtherBot` in groups is ignored |
//! | `TELEGRAM_API_BASE`, `TELEGRAM_API_TIMEOUT_MS` | Bot API base URL and per-call timeout (at most 20,000 ms) |
//! | `TELEGRAM_REPLY` | `body` (default: the answer rides in the webhook's response) or `fetch` (a Bot API call before responding; benchmarks only) |
//!
//! Property values are typed: text, integers, floats and booleans ([`PropValue`]). Durations
//! mean something in production only when they include I/O: deployed Workers advance the clock
//! only across I/O, so [`Tracker::time`] a future that awaits something.
#![warn(missing_docs)]

mod analytics;
mod devclock;
mod outbox;
mod panic;
pub mod queue;
mod runtime;
mod settings;
pub mod telegram;
mod tracker;
mod warm;
mod webhook;

pub use analytics::Analytics;
pub use analytics_core::privacy::IdPolicy;
pub use analytics_core::{DropCounts, NewEvent, PropValue, Source};
pub use outbox::state as outbox_state;
pub use panic::{dev_kill_isolate, KillRefused};
pub use settings::{Faults, Mode, Settings, DEFAULT_QUEUE_BINDING};
pub use tracker::Tracker;
pub use warm::warm_up;

/// The README's Rust examples, compiled as doctests so the README stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
