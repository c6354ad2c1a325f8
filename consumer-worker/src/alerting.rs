//! Carries out `ingest_policy::alerts`: claims the pending alerts of the groups a batch
//! touched, runs the 5-minute cron's checks (webhooks, error spike, pipeline), and sends the
//! claimed alerts with the Bot API's `sendMessage`, each call bounded by [`SEND_TIMEOUT_MS`].
//!
//! A claim is committed before its message is sent: a send that fails is logged and not
//! retried (at most once; `docs/alerts.md` says why).

use ingest_policy::alerts::{self, Alert, AlertConfig, AlertVars, Observations, WebhookInfo};
use worker::{console_error, console_log, Env, Fetch, Headers, Method, Request, RequestInit};

use crate::d1::Db;

/// Longest wait for one Bot API call, ms.
pub const SEND_TIMEOUT_MS: u64 = 5_000;
/// The Bot API when `TELEGRAM_API_BASE` is unset.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// A setting: a secret, else a variable; empty counts as unset.
pub fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// What sending needs: the decisions' settings, the Bot API base and the token.
pub struct Sender {
    /// The alert settings.
    pub config: AlertConfig,
    api_base: String,
    token: Option<String>,
}

impl Sender {
    /// From the Worker's settings (`docs/alerts.md`).
    pub fn from_env(env: &Env) -> Sender {
        let token = setting(env, "ALERT_BOT_TOKEN").or_else(|| setting(env, "TELEGRAM_BOT_TOKEN"));
        let (alerts, chat, dashboard, pending, ratio, min) = (
            setting(env, "ALERTS"),
            setting(env, "ALERT_CHAT_ID"),
            setting(env, "DASHBOARD_URL"),
            setting(env, "WEBHOOK_PENDING_ALERT"),
            setting(env, "ALERT_SPIKE_RATIO"),
            setting(env, "ALERT_SPIKE_MIN_ERRORS"),
        );
        let config = AlertConfig::from_vars(AlertVars {
            alerts: alerts.as_deref(),
            chat_id: chat.as_deref(),
            has_token: token.is_some(),
            dashboard_url: dashboard.as_deref(),
            webhook_pending: pending.as_deref(),
            spike_ratio: ratio.as_deref(),
            spike_min_errors: min.as_deref(),
        });
        Sender {
            config,
            api_base: setting(env, "TELEGRAM_API_BASE")
                .unwrap_or_else(|| DEFAULT_API_BASE.into())
                .trim_end_matches('/')
                .to_string(),
            token,
        }
    }

    /// Sends the messages of `alerts` (a digest when many), logging each failure.
    pub async fn send(&self, alerts: &[Alert]) {
        let Some(token) = self.token.as_deref().filter(|_| self.config.enabled) else {
            return;
        };
        for text in alerts::messages(alerts, self.config.dashboard_url.as_deref()) {
            let body = alerts::send_message_body(&self.config.chat_id, &text);
            match call(&self.api_base, token, "sendMessage", &body).await {
                Ok((200, _)) => {}
                Ok((status, answer)) => console_error!(
                    "alerts: sendMessage answered {status}: {}",
                    alerts::quote(&answer)
                ),
                Err(error) => console_error!("alerts: sendMessage failed: {error}"),
            }
        }
        if !alerts.is_empty() {
            console_log!("alerts: {} alerts sent", alerts.len());
        }
    }
}

/// One Bot API call with a JSON body, aborted after [`SEND_TIMEOUT_MS`]: its status and body.
async fn call(base: &str, token: &str, method: &str, body: &str) -> Result<(u16, String), String> {
    use futures_util::future::{select, Either};
    let headers = Headers::new();
    headers
        .set("Content-Type", "application/json")
        .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(wasm_bindgen::JsValue::from_str(body)));
    let request = Request::new_with_init(&format!("{base}/bot{token}/{method}"), &init)
        // The URL holds the token: never put it in an error.
        .map_err(|_| format!("{method}: bad request URL"))?;
    let controller = worker::AbortController::default();
    let signal = controller.signal();
    let exchange = std::pin::pin!(async {
        let mut response = Fetch::Request(request)
            .send_with_signal(&signal)
            .await
            .map_err(|_| format!("{method}: the request failed"))?;
        let status = response.status_code();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, text))
    });
    let timer = std::pin::pin!(worker::Delay::from(std::time::Duration::from_millis(
        SEND_TIMEOUT_MS
    )));
    match select(exchange, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => {
            controller.abort();
            Err(format!("{method}: no answer within {SEND_TIMEOUT_MS} ms"))
        }
    }
}

/// After a batch's commit: claims the pending alerts of its groups (`fingerprints`), and the
/// dead-letter alert when the batch came from the dead letter queue (`dead_lettered` messages),
/// and sends them. The group claim runs even when alerts are off, so a group first seen while
/// they were off is not announced as new at its next event once they are on.
pub async fn after_batch(env: &Env, db: &Db, fingerprints: &[String], dead_lettered: usize) {
    let now_ms = js_sys::Date::now() as i64;
    let mut statements = alerts::claim_group_statements(fingerprints, now_ms);
    let groups = statements.len();
    let sender = Sender::from_env(env);
    let dead = (dead_lettered > 0 && sender.config.enabled).then_some(Alert::DeadLettered {
        messages: dead_lettered as u64,
    });
    if let Some(alert) = &dead {
        statements.push(alerts::throttle_statement(&[alert.key()], now_ms));
    }
    if statements.is_empty() {
        return;
    }
    match db.batch(&statements).await {
        Ok(answer) if answer.rows.len() == statements.len() => {
            let mut claimed = if groups == 2 {
                alerts::claimed_groups(&answer.rows[0], &answer.rows[1])
            } else {
                Vec::new()
            };
            if let Some(alert) = dead {
                if !alerts::claimed_keys(&answer.rows[groups]).is_empty() {
                    claimed.push(alert);
                }
            }
            sender.send(&claimed).await;
        }
        Ok(_) => console_error!("alerts: the claim answered oddly"),
        Err(error) => console_error!("alerts: claiming alerts failed: {error}"),
    }
}

/// The bots whose webhooks the cron checks: `WEBHOOK_BOTS` (`name=token` pairs separated by
/// commas, a secret), and the bot's own `TELEGRAM_BOT_TOKEN` as `BOT_NAME` (or `bot`).
fn webhook_bots(env: &Env) -> Vec<(String, String)> {
    let mut bots: Vec<(String, String)> = setting(env, "WEBHOOK_BOTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (name, token) = pair.split_once('=')?;
            let (name, token) = (name.trim(), token.trim());
            (analytics_core::text::is_bot_name(name, 128) && !token.is_empty())
                .then(|| (name.to_string(), token.to_string()))
        })
        .collect();
    if let Some(token) = setting(env, "TELEGRAM_BOT_TOKEN") {
        let name = setting(env, "BOT_NAME").unwrap_or_else(|| "bot".into());
        if !bots.iter().any(|(n, t)| *n == name || *t == token) {
            bots.push((name, token));
        }
    }
    bots
}

/// The 5-minute cron: each bot's `getWebhookInfo` stored in `webhook_health`, then the
/// webhook, spike and pipeline alerts, claimed for the hour and sent.
pub async fn every_five_minutes(env: &Env, db: &Db) {
    let now_ms = js_sys::Date::now() as i64;
    let sender = Sender::from_env(env);
    let api_base = sender.api_base.clone();
    let mut candidates: Vec<Alert> = Vec::new();
    let mut statements = Vec::new();
    for (bot, token) in webhook_bots(env) {
        let info = match call(&api_base, &token, "getWebhookInfo", "{}").await {
            Ok((_, body)) => WebhookInfo::parse(&body).map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        if let Ok(info) = &info {
            candidates.extend(alerts::webhook_alerts(&bot, info, now_ms, &sender.config));
        } else if let Err(problem) = &info {
            console_error!("webhook health: {bot}: {problem}");
        }
        statements.push(alerts::webhook_health_statement(&bot, now_ms, &info));
    }
    statements.push(alerts::observations_statement(now_ms));
    let observations = match db.batch(&statements).await {
        Ok(answer) => answer
            .rows
            .last()
            .and_then(|rows| rows.first())
            .map(Observations::read)
            .unwrap_or_default(),
        Err(error) => {
            return console_error!("alerts: the cron's D1 batch failed: {error}");
        }
    };
    candidates.extend(alerts::spike_alert(&observations, &sender.config));
    candidates.extend(alerts::pipeline_alerts(&observations));
    console_log!(
        "alerts: cron: {} webhook rows, {} candidate alerts, {observations:?}",
        statements.len() - 1,
        candidates.len()
    );
    if candidates.is_empty() || !sender.config.enabled {
        return;
    }
    let keys: Vec<String> = candidates.iter().map(Alert::key).collect();
    match db.batch(&[alerts::throttle_statement(&keys, now_ms)]).await {
        Ok(answer) => {
            let taken = alerts::claimed_keys(answer.rows.first().map(Vec::as_slice).unwrap_or(&[]));
            let claimed: Vec<Alert> = candidates
                .into_iter()
                .filter(|a| taken.contains(&a.key()))
                .collect();
            sender.send(&claimed).await;
        }
        Err(error) => console_error!("alerts: claiming the cron's alerts failed: {error}"),
    }
}
