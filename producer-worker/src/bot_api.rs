//! A small Telegram Bot API client. Every call is timed and its outcome tracked; failures
//! (including 429 with `retry_after`) become error events. Without a token (local dev) calls are
//! logged and skipped.

use serde::Deserialize;
use serde_json::Value;
use worker::{console_log, Fetch, Headers, Method, Request, RequestInit};

use crate::analytics::BotTracker;
use crate::bot::ApiCall;

/// Where and as whom to call the Bot API.
#[derive(Debug, Clone)]
pub struct BotApi {
    /// Base URL, `https://api.telegram.org` unless `TELEGRAM_API_BASE` says otherwise.
    pub base: String,
    /// The bot token; `None` in local dev.
    pub token: Option<String>,
}

/// How a Bot API call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// No token configured: the call was skipped.
    Skipped,
    /// Telegram answered `ok: false`.
    Telegram {
        /// HTTP status / `error_code`.
        code: u16,
        /// Telegram's description, e.g. "Bad Request: message to edit not found".
        description: String,
        /// Seconds to wait, for 429.
        retry_after: Option<u64>,
    },
    /// The request did not complete.
    Network(String),
}

#[derive(Deserialize)]
struct ApiResponse {
    ok: bool,
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
    /// Calls `call.method`, tracking its duration and outcome in `tracker`.
    pub async fn call(&self, call: &ApiCall, tracker: &BotTracker) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            console_log!(
                "bot api: no TELEGRAM_BOT_TOKEN, skipped {} (local dev)",
                call.method
            );
            return Err(ApiError::Skipped);
        };
        let start = tracker.now_ms();
        let result = self.send(token, call).await;
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(ApiError::Telegram { code, .. }) => format!("http_{code}"),
            Err(ApiError::Network(_)) => "network".into(),
            Err(ApiError::Skipped) => "skipped".into(),
        };
        tracker.track_performance(
            "bot_api",
            tracker.now_ms() - start,
            [("method", call.method.to_string()), ("outcome", outcome)],
        );
        let location = format!("bot_api:{}", call.method);
        match &result {
            Err(ApiError::Telegram {
                code,
                description,
                retry_after,
            }) => {
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
                tracker.track_error_message(kind, &message, &location);
            }
            Err(ApiError::Network(detail)) => {
                tracker.track_error_message("network", &detail.replace(token, "<token>"), &location)
            }
            _ => {}
        }
        result
    }

    async fn send(&self, token: &str, call: &ApiCall) -> Result<(), ApiError> {
        let url = format!(
            "{}/bot{}/{}",
            self.base.trim_end_matches('/'),
            token,
            call.method
        );
        let headers = Headers::new();
        headers
            .set("Content-Type", "application/json")
            .map_err(|e| ApiError::Network(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(call.params.to_string().into()));
        let request =
            Request::new_with_init(&url, &init).map_err(|e| ApiError::Network(e.to_string()))?;
        let mut response = Fetch::Request(request)
            .send()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))?;
        let status = response.status_code();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let parsed: Option<ApiResponse> = serde_json::from_value(body).ok();
        match parsed {
            Some(r) if r.ok && (200..300).contains(&status) => Ok(()),
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
