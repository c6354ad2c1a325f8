//! The Telegram layer's settings, read once per isolate.

use std::cell::OnceCell;
use std::rc::Rc;

use analytics_core::served;
use worker::Env;

use crate::analytics::Analytics;
use crate::settings::{text, Mode};
use crate::telegram::api::{BotApi, DEFAULT_TIMEOUT_MS};
use crate::telegram::{ApiCall, Reply};
use crate::Tracker;

/// What the webhook layer reads from the environment. Its `Debug` shows neither the webhook
/// secret nor the bot token.
#[derive(Clone)]
pub struct TelegramSettings {
    /// `TELEGRAM_WEBHOOK_SECRET`: requests without it get 401 (unset: every request does).
    pub secret: String,
    /// `BOT_USERNAME`: the bot's @name, so `/cmd@OtherBot` in groups is ignored.
    pub username: String,
    /// `TELEGRAM_API_BASE`, `TELEGRAM_BOT_TOKEN`, `TELEGRAM_API_TIMEOUT_MS` (at most
    /// 20,000 ms: `analytics_core::served::MAX_CALL_TIMEOUT_MS`).
    pub api: BotApi,
    /// `TELEGRAM_REPLY`: `body` (default) or `fetch`.
    pub reply: ReplyDelivery,
}

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = if self.secret.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        };
        f.debug_struct("TelegramSettings")
            .field("secret", &secret)
            .field("username", &self.username)
            .field("api", &self.api)
            .field("reply", &self.reply)
            .finish()
    }
}

/// How the handler's answer reaches Telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyDelivery {
    /// In the webhook response body: no round trip before it, but no result comes back.
    Body,
    /// By a Bot API call made before the response (`TELEGRAM_REPLY=fetch`): one round trip
    /// before Telegram hears back. Kept to measure what answering in the body saves (the
    /// benchmark's seed variants), and for bots that need the call's result.
    Fetch,
}

thread_local! {
    static TELEGRAM: OnceCell<Rc<TelegramSettings>> = const { OnceCell::new() };
}

impl TelegramSettings {
    /// Who sends the events, as the request keys see it: the worker's name and the bot's id
    /// (from its token), so two bots on one worker name do not share keys.
    pub(crate) fn bot_key(&self, analytics: &Analytics) -> String {
        let worker = &analytics.settings().source.worker;
        match self.api.bot_id() {
            Some(id) => format!("{worker}:{id}"),
            None => worker.clone(),
        }
    }

    /// With `TELEGRAM_REPLY=fetch`, the reply's method, made as a Bot API call before the
    /// response (in `await` mode the caller makes it after the analytics, as the seed's "before"
    /// did, and gets it back here); `None` otherwise.
    pub(crate) async fn fetched(
        &self,
        reply: &Reply,
        mode: Mode,
        tracker: &Tracker,
    ) -> Option<ApiCall> {
        let call = reply
            .respond
            .clone()
            .filter(|_| self.reply == ReplyDelivery::Fetch)?;
        if mode != Mode::Await {
            let _ = self.api.call(&call.method, &call.params, tracker).await;
        }
        Some(call)
    }

    /// In `await` mode, the reply's call that [`TelegramSettings::fetched`] held back, made after
    /// the analytics; its timing is not sent (benchmarks only).
    pub(crate) async fn fetch_late(&self, fetched: Option<ApiCall>) {
        if let Some(call) = fetched {
            let _ = self
                .api
                .call(&call.method, &call.params, &Tracker::noop())
                .await;
        }
    }

    /// The isolate's settings.
    pub fn get(env: &Env) -> Rc<TelegramSettings> {
        TELEGRAM.with(|s| {
            s.get_or_init(|| {
                Rc::new(TelegramSettings {
                    secret: text(env, "TELEGRAM_WEBHOOK_SECRET").unwrap_or_default(),
                    username: text(env, "BOT_USERNAME").unwrap_or_default(),
                    api: BotApi::new(
                        text(env, "TELEGRAM_API_BASE")
                            .unwrap_or_else(|| "https://api.telegram.org".into()),
                        text(env, "TELEGRAM_BOT_TOKEN"),
                        served::call_timeout_from_setting(
                            text(env, "TELEGRAM_API_TIMEOUT_MS").as_deref(),
                            DEFAULT_TIMEOUT_MS,
                        ),
                    ),
                    reply: match text(env, "TELEGRAM_REPLY").as_deref() {
                        Some("fetch") => ReplyDelivery::Fetch,
                        _ => ReplyDelivery::Body,
                    },
                })
            })
            .clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_webhook_secret_or_the_token() {
        let settings = TelegramSettings {
            secret: "webhook-secret-Zq9xY2".into(),
            username: "MyBot".into(),
            api: BotApi::new(
                "https://api.telegram.org".into(),
                Some("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw".into()),
                10_000.0,
            ),
            reply: ReplyDelivery::Body,
        };
        let printed = format!("{settings:?} {settings:#?}");
        assert!(!printed.contains("webhook-secret-Zq9xY2"), "{printed}");
        assert!(
            !printed.contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
            "{printed}"
        );
        assert!(printed.contains("MyBot"), "{printed}");
    }
}
