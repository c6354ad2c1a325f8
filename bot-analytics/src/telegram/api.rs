//! A small Telegram Bot API client. Every call is timed and its outcome tracked; failures
//! (429 with `retry_after` included) become error events. Every call has a timeout, so a Bot API
//! that hangs cannot eat the request's `wait_until` budget. Without a token (local dev) calls
//! are logged and skipped.

use analytics_core::served::{self, FollowUps};
use serde::Deserialize;
use serde_json::Value;
use telegram_policy::auto;
use worker::{console_log, AbortController, Env, Fetch, Headers, Method, Request, RequestInit};

use crate::runtime;
use crate::telegram::settings::TelegramSettings;
use crate::telegram::ApiCall;
use crate::Tracker;

/// How long one Bot API call may take, in ms, unless `TELEGRAM_API_TIMEOUT_MS` says otherwise
/// (the setting is bounded by `analytics_core::served::MAX_CALL_TIMEOUT_MS`, 20,000 ms).
pub const DEFAULT_TIMEOUT_MS: f64 = 10_000.0;

/// Where and as whom to call the Bot API. Its `Debug` never shows the token (only the bot id
/// before its `:`).
#[derive(Clone)]
pub struct BotApi {
    base: String,
    token: Option<String>,
    timeout_ms: f64,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("base", &self.base)
            .field("token", &self.bot_id().map(|id| format!("{id}:<redacted>")))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// How a Bot API call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// No `TELEGRAM_BOT_TOKEN` configured: the call was skipped.
    #[error("no TELEGRAM_BOT_TOKEN: {0} skipped")]
    NoToken(String),
    /// Telegram answered `ok: false`.
    #[error("{description} ({code})")]
    Telegram {
        /// HTTP status / `error_code`.
        code: u16,
        /// Telegram's description, e.g. "Bad Request: message to edit not found".
        description: String,
        /// Seconds to wait, for 429.
        retry_after: Option<u64>,
    },
    /// The request did not complete.
    #[error("network: {0}")]
    Network(String),
    /// No answer within the timeout.
    #[error("no answer within {0} ms")]
    Timeout(u64),
}

impl ApiError {
    /// The outcome as tracked on the `bot_api` timing: `http_429`, `network`, `timeout`, …
    pub fn outcome(&self) -> String {
        match self {
            ApiError::NoToken(_) => "skipped".into(),
            ApiError::Telegram { code, .. } => format!("http_{code}"),
            ApiError::Network(_) => "network".into(),
            ApiError::Timeout(_) => "timeout".into(),
        }
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

impl BotApi {
    /// The client configured by `TELEGRAM_API_BASE`, `TELEGRAM_BOT_TOKEN` and
    /// `TELEGRAM_API_TIMEOUT_MS` (read once per isolate).
    pub fn from_env(env: &Env) -> BotApi {
        TelegramSettings::get(env).api.clone()
    }

    pub(crate) fn new(base: String, token: Option<String>, timeout_ms: f64) -> BotApi {
        BotApi {
            base,
            token,
            timeout_ms,
        }
    }

    /// `text` with the bot's own token (`TELEGRAM_BOT_TOKEN`) replaced by `<token>`, whatever
    /// its shape: applied to handler errors before they are tracked or logged.
    pub(crate) fn redact(&self, text: &str) -> String {
        match self.token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => text.replace(token, "<token>"),
            None => text.to_string(),
        }
    }

    /// The token's bot id (the digits before `:`), which names the bot.
    pub fn bot_id(&self) -> Option<&str> {
        self.token.as_deref().and_then(|t| t.split(':').next())
    }

    /// Calls `method` with `params` and returns Telegram's `result`; tracks the call's duration
    /// (`bot_api`, with `method` and `outcome`) and its failure, if any, in `tracker`.
    pub async fn call(
        &self,
        method: &str,
        params: &Value,
        tracker: &Tracker,
    ) -> Result<Value, ApiError> {
        self.call_within(method, params, tracker, self.timeout_ms)
            .await
    }

    /// [`BotApi::call`] with a timeout of `timeout_ms`.
    async fn call_within(
        &self,
        method: &str,
        params: &Value,
        tracker: &Tracker,
        timeout_ms: f64,
    ) -> Result<Value, ApiError> {
        tracker.note_bot_api_call();
        let Some(token) = &self.token else {
            console_log!("bot api: no TELEGRAM_BOT_TOKEN, skipped {method} (local dev)");
            return Err(ApiError::NoToken(method.to_string()));
        };
        let start = runtime::now_ms();
        let result = self.send(token, method, params, timeout_ms).await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(error) => error.outcome(),
        };
        tracker.track_performance(
            "bot_api",
            runtime::now_ms() - start,
            [("method", method.to_string()), ("outcome", outcome)],
        );
        if let Err(error) = &result {
            let location = format!("bot_api:{method}");
            let (kind, message) = match error {
                ApiError::Telegram {
                    code,
                    description,
                    retry_after,
                } => {
                    if auto::is_blocked_by_user(*code, description) {
                        if let Some(blocked) = block_to_report(tracker, params) {
                            tracker.record(blocked);
                        }
                    }
                    let mut message = description.clone();
                    if let Some(seconds) = retry_after {
                        if !message.contains("retry after") {
                            message.push_str(&format!(" (retry after {seconds})"));
                        }
                    }
                    let kind = if *code == 429 {
                        "telegram_rate_limited"
                    } else {
                        "telegram_api"
                    };
                    (kind, message)
                }
                ApiError::Network(detail) => ("network", detail.clone()),
                ApiError::Timeout(_) => ("timeout", error.to_string()),
                ApiError::NoToken(_) => ("skipped", error.to_string()),
            };
            let message = analytics_core::scrub::scrub(&self.redact(&message));
            tracker.track_error_message(kind, &message, &location);
        }
        result
    }

    /// Makes `calls` one after the other (a reply's follow-ups), each tracked as [`BotApi::call`]
    /// tracks it, all by `deadline_ms` (ms since the epoch): each call's timeout is cut to what
    /// is left, and a call with too little left is not made. Returns how many were made and how
    /// many were not.
    pub(crate) async fn call_all(
        &self,
        calls: &[ApiCall],
        tracker: &Tracker,
        deadline_ms: f64,
    ) -> FollowUps {
        let mut made = 0;
        for call in calls {
            let now = runtime::now_ms();
            let Some(timeout) = served::follow_up_timeout(self.timeout_ms, deadline_ms, now) else {
                break;
            };
            let _ = self
                .call_within(&call.method, &call.params, tracker, timeout)
                .await;
            made += 1;
        }
        FollowUps {
            made,
            not_run: calls.len() - made,
        }
    }

    async fn send(
        &self,
        token: &str,
        method: &str,
        params: &Value,
        timeout_ms: f64,
    ) -> Result<Value, ApiError> {
        let url = format!(
            "{}/bot{}/{}",
            self.base.trim_end_matches('/'),
            token,
            method
        );
        let network = |e: worker::Error| ApiError::Network(e.to_string().replace(token, "<token>"));
        let headers = Headers::new();
        headers
            .set("Content-Type", "application/json")
            .map_err(network)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(params.to_string().into()));
        let request = Request::new_with_init(&url, &init).map_err(network)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut response = Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(network)?;
            let status = response.status_code();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Ok::<_, ApiError>((status, body))
        };
        let Some(exchanged) = runtime::timeout(timeout_ms, exchange).await else {
            controller.abort();
            return Err(ApiError::Timeout(timeout_ms as u64));
        };
        let (status, body) = exchanged?;
        match serde_json::from_value::<ApiResponse>(body).ok() {
            Some(r) if r.ok && (200..300).contains(&status) => Ok(r.result),
            Some(r) => Err(ApiError::Telegram {
                code: r.error_code.unwrap_or(status),
                description: r.description.unwrap_or_else(|| format!("HTTP {status}")),
                retry_after: r.parameters.and_then(|p| p.retry_after),
            }),
            None => Err(ApiError::Telegram {
                code: status,
                description: format!("HTTP {status} with a body that is not a Bot API response"),
                retry_after: None,
            }),
        }
    }
}

/// The `user_blocked` event of a call with `params` that Telegram answered "bot was blocked by
/// the user": for the user the call went to ([`auto::blocked_user`]), once per request and user
/// (`None` after that).
fn block_to_report(tracker: &Tracker, params: &Value) -> Option<analytics_core::NewEvent> {
    let user = auto::blocked_user(params, tracker.user_id())?;
    tracker
        .first_time(analytics_core::audience::USER_BLOCKED, user)
        .then(|| auto::blocked_event(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    #[test]
    fn debug_never_prints_the_token() {
        let api = BotApi::new(
            "https://api.telegram.org".into(),
            Some(TOKEN.into()),
            10_000.0,
        );
        let printed = format!("{api:?} {api:#?}");
        assert!(
            !printed.contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
            "{printed}"
        );
        assert!(printed.contains("https://api.telegram.org"), "{printed}");
        let none = BotApi::new("https://api.telegram.org".into(), None, 10_000.0);
        assert!(format!("{none:?}").contains("token: None"), "{none:?}");
    }

    #[test]
    fn a_block_is_reported_once_per_request_and_user() {
        let tracker = Tracker::noop();
        tracker.set_context(Some(42), Some(42));
        let to_42 = serde_json::json!({"chat_id": 42, "text": "hi"});
        let first = block_to_report(&tracker, &to_42).expect("the first 403 is reported");
        assert_eq!(first.user_id, Some(42));
        assert_eq!(first.name, analytics_core::audience::USER_BLOCKED);
        assert!(
            block_to_report(&tracker, &to_42).is_none(),
            "twice for one user"
        );
        // A call without chat_id is about the update's user: already reported.
        let answer = serde_json::json!({"callback_query_id": "7"});
        assert!(block_to_report(&tracker, &answer).is_none());
        // Another user the handler wrote to (a broadcast) is reported for that user.
        let other = block_to_report(&tracker, &serde_json::json!({"chat_id": 77}));
        assert_eq!(other.and_then(|e| e.user_id), Some(77));
        // A new request starts afresh; a group chat is never "blocked".
        let next = Tracker::noop();
        assert!(block_to_report(&next, &to_42).is_some());
        assert!(block_to_report(&next, &serde_json::json!({"chat_id": -100})).is_none());
    }
}
