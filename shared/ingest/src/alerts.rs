//! Telegram alerts (`docs/alerts.md`): which alerts fire, their text, their keys, the hourly
//! throttle and the digest. No I/O: the consumer runs the statements built here and sends the
//! texts with the Bot API's `sendMessage`.
//!
//! **Error groups.** The `error_events` trigger marks a group's pending alert (`alert`: `new`
//! on its first event, `regressed` when a resolved group is seen in another release). After its
//! ingest transaction the consumer runs [`claim_group_statements`] for the batch's fingerprints:
//! one transaction that takes the hourly slot of each pending group ([`ALERT_STATE_UPSERT`])
//! and clears the pending marks, returning the groups. Only one invocation can clear a mark, so
//! a redelivered batch (whose events are ignored, so the trigger marks nothing) sends nothing.
//!
//! **Conditions** (the 5-minute cron): the webhook ([`webhook_alerts`]), the error rate
//! ([`spike_alert`]) and the pipeline ([`pipeline_alerts`]) give candidate [`Alert`]s; the
//! consumer claims their keys with [`throttle_statement`] and sends only those it claimed.
//!
//! Every text is built from the kind, the error message as stored (scrubbed again, numbers
//! masked, cut short), releases, times, counts, bot names and the dashboard URL: never a user
//! or chat id, a name or a message's text, which the pipeline does not give to this module.

use analytics_core::scrub::{mask_numbers, scrub};
use analytics_core::text::ellipsize;
use chrono::{TimeZone, Utc};
use serde_json::Value;

use crate::{SqlValue, Statement, StatementRole};

/// At most one message per alert key in this window, ms (an hour).
pub const THROTTLE_MS: i64 = 3_600_000;
/// More alerts than this at once become one digest message.
pub const DIGEST_OVER: usize = 3;
/// Longest error message quoted in an alert, bytes.
pub const MAX_QUOTED_BYTES: usize = 160;
/// Default `WEBHOOK_PENDING_ALERT`: pending updates above this alert.
pub const DEFAULT_WEBHOOK_PENDING: u64 = 100;
/// A `last_error_date` this recent (ms) alerts.
pub const WEBHOOK_ERROR_RECENT_MS: i64 = 15 * 60_000;
/// The spike and pipeline window, ms (15 minutes).
pub const WINDOW_MS: i64 = 15 * 60_000;
/// Default `ALERT_SPIKE_RATIO`: errors per update this many times the rate a day before.
pub const DEFAULT_SPIKE_RATIO: f64 = 3.0;
/// Default `ALERT_SPIKE_MIN_ERRORS`: fewer errors in the window never make a spike.
pub const DEFAULT_SPIKE_MIN_ERRORS: u64 = 10;

/// The alert settings, from the consumer's variables.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// Alerts are sent (`ALERTS` is not `off`, and a chat and a token are set).
    pub enabled: bool,
    /// `ALERT_CHAT_ID`.
    pub chat_id: String,
    /// `DASHBOARD_URL` without a trailing slash, for links.
    pub dashboard_url: Option<String>,
    /// `WEBHOOK_PENDING_ALERT`.
    pub webhook_pending: u64,
    /// `ALERT_SPIKE_RATIO`.
    pub spike_ratio: f64,
    /// `ALERT_SPIKE_MIN_ERRORS`.
    pub spike_min_errors: u64,
}

/// The variables [`AlertConfig::from_vars`] reads (each `None` when unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertVars<'a> {
    /// `ALERTS`: `off` (or `0`, `false`) turns alerts off.
    pub alerts: Option<&'a str>,
    /// `ALERT_CHAT_ID`.
    pub chat_id: Option<&'a str>,
    /// Whether a token to send with is known (`ALERT_BOT_TOKEN` or the bot's own).
    pub has_token: bool,
    /// `DASHBOARD_URL`.
    pub dashboard_url: Option<&'a str>,
    /// `WEBHOOK_PENDING_ALERT`.
    pub webhook_pending: Option<&'a str>,
    /// `ALERT_SPIKE_RATIO`.
    pub spike_ratio: Option<&'a str>,
    /// `ALERT_SPIKE_MIN_ERRORS`.
    pub spike_min_errors: Option<&'a str>,
}

impl AlertConfig {
    /// The settings; unparsable numbers mean the defaults.
    pub fn from_vars(vars: AlertVars<'_>) -> AlertConfig {
        let off = matches!(
            vars.alerts
                .map(|a| a.trim().to_ascii_lowercase())
                .as_deref(),
            Some("off" | "0" | "false" | "no")
        );
        let chat_id = vars.chat_id.unwrap_or("").trim().to_string();
        AlertConfig {
            enabled: !off && !chat_id.is_empty() && vars.has_token,
            chat_id,
            dashboard_url: vars
                .dashboard_url
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            webhook_pending: vars
                .webhook_pending
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_WEBHOOK_PENDING),
            spike_ratio: vars
                .spike_ratio
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|r| r.is_finite() && *r >= 1.0)
                .unwrap_or(DEFAULT_SPIKE_RATIO),
            spike_min_errors: vars
                .spike_min_errors
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_SPIKE_MIN_ERRORS),
        }
    }
}

/// An error group as an alert may show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts {
    /// Fingerprint (for the key and the link).
    pub fingerprint: String,
    /// Error kind.
    pub kind: String,
    /// Latest message as stored (scrubbed by the sender).
    pub message: String,
    /// Release of the latest event.
    pub release: String,
    /// Release it was resolved in (regressions).
    pub resolved_in_release: Option<String>,
    /// First seen, ms.
    pub first_seen_ms: i64,
    /// Events, all time.
    pub count: u64,
    /// The bot.
    pub bot: String,
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Alert {
    /// A group's first event.
    NewGroup(GroupFacts),
    /// A resolved group seen in another release.
    Regression(GroupFacts),
    /// Errors per update well above the same window a day before.
    Spike {
        /// Errors in the last window.
        errors: u64,
        /// Updates in the last window.
        updates: u64,
        /// Errors in the window a day before.
        errors_before: u64,
        /// Updates in the window a day before.
        updates_before: u64,
    },
    /// Events the bots gave up (drop counts of stored envelopes) in the last window.
    Dropped {
        /// Events dropped.
        events: u64,
    },
    /// Messages that reached the dead letter queue in the last window.
    DeadLettered {
        /// Messages.
        messages: u64,
    },
    /// Messages the consumer deferred (D1 or Analytics Engine unavailable) in the last window.
    Deferring {
        /// Messages stored after at least one deferral.
        messages: u64,
    },
    /// A bot's webhook has many pending updates.
    WebhookPending {
        /// The bot.
        bot: String,
        /// Pending updates.
        pending: u64,
        /// The threshold.
        threshold: u64,
    },
    /// Telegram reports a recent failed delivery to a bot's webhook.
    WebhookError {
        /// The bot.
        bot: String,
        /// `last_error_date`, ms.
        at_ms: i64,
        /// Telegram's `last_error_message`.
        message: String,
        /// Pending updates.
        pending: u64,
    },
}

/// Text quoted from stored data: scrubbed again, numbers masked, one line, cut short.
pub fn quote(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    ellipsize(&mask_numbers(&scrub(&one_line)), MAX_QUOTED_BYTES)
}

fn name(text: &str) -> String {
    ellipsize(&quote(text), 60)
}

/// A time as `2026-12-02 15:40 UTC`.
pub fn utc(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "unknown time".into())
}

impl Alert {
    /// Its throttle key: one message per key per hour.
    pub fn key(&self) -> String {
        match self {
            Alert::NewGroup(g) | Alert::Regression(g) => group_key(&g.fingerprint),
            Alert::Spike { .. } => "spike".into(),
            Alert::Dropped { .. } => "pipeline:dropped".into(),
            Alert::DeadLettered { .. } => "pipeline:dead_letter".into(),
            Alert::Deferring { .. } => "pipeline:deferring".into(),
            Alert::WebhookPending { bot, .. } => format!("webhook:{bot}:pending"),
            Alert::WebhookError { bot, .. } => format!("webhook:{bot}:error"),
        }
    }

    fn link(&self, dashboard: Option<&str>) -> Option<String> {
        let base = dashboard?;
        Some(match self {
            Alert::NewGroup(g) | Alert::Regression(g) => format!("{base}/errors/{}", g.fingerprint),
            Alert::Spike { .. } => format!("{base}/errors"),
            _ => format!("{base}/pipeline"),
        })
    }

    /// One line for a digest.
    pub fn headline(&self) -> String {
        match self {
            Alert::NewGroup(g) => format!(
                "New error in {}: {} in release {}",
                name(&g.bot),
                name(&g.kind),
                name(&g.release)
            ),
            Alert::Regression(g) => format!(
                "Regression in {}: {} again in release {}",
                name(&g.bot),
                name(&g.kind),
                name(&g.release)
            ),
            Alert::Spike {
                errors, updates, ..
            } => format!("Error spike: {errors} errors for {updates} updates in 15 minutes"),
            Alert::Dropped { events } => {
                format!("Pipeline: {events} events dropped by the bots in 15 minutes")
            }
            Alert::DeadLettered { messages } => {
                format!("Pipeline: {messages} messages reached the dead letter queue (retries used up)")
            }
            Alert::Deferring { messages } => format!(
                "Pipeline: the consumer is deferring through an outage ({messages} messages in 15 minutes)"
            ),
            Alert::WebhookPending {
                bot,
                pending,
                threshold,
            } => format!(
                "Webhook of {}: {pending} updates pending (alert above {threshold})",
                name(bot)
            ),
            Alert::WebhookError { bot, at_ms, .. } => format!(
                "Webhook of {}: Telegram's last delivery failed at {}",
                name(bot),
                utc(*at_ms)
            ),
        }
    }

    /// The whole message.
    pub fn text(&self, dashboard: Option<&str>) -> String {
        let mut lines = vec![format!("⚠️ {}", self.headline())];
        match self {
            Alert::NewGroup(g) => {
                lines.push(quote(&g.message));
                lines.push(format!(
                    "First seen {} · {} events",
                    utc(g.first_seen_ms),
                    g.count
                ));
            }
            Alert::Regression(g) => {
                lines.push(quote(&g.message));
                lines.push(format!(
                    "Resolved in release {}; {} events in all",
                    name(g.resolved_in_release.as_deref().unwrap_or("?")),
                    g.count
                ));
            }
            Alert::Spike {
                errors,
                updates,
                errors_before,
                updates_before,
            } => lines.push(format!(
                "{} errors per 100 updates now, {} in the same 15 minutes a day before ({errors_before} errors, {updates_before} updates)",
                per_hundred(*errors, *updates),
                per_hundred(*errors_before, *updates_before)
            )),
            Alert::WebhookError {
                message, pending, ..
            } => lines.push(format!("{} · {pending} updates pending", quote(message))),
            Alert::Dropped { .. }
            | Alert::DeadLettered { .. }
            | Alert::Deferring { .. }
            | Alert::WebhookPending { .. } => {}
        }
        if let Some(link) = self.link(dashboard) {
            lines.push(link);
        }
        lines.join("\n")
    }
}

fn per_hundred(errors: u64, updates: u64) -> String {
    if updates == 0 {
        return "n/a".into();
    }
    format!("{:.1}", errors as f64 * 100.0 / updates as f64)
}

/// The throttle key of a group.
pub fn group_key(fingerprint: &str) -> String {
    format!("group:{fingerprint}")
}

/// The messages to send for `alerts`: one each, or one digest when more than
/// [`DIGEST_OVER`] fire at once.
pub fn messages(alerts: &[Alert], dashboard: Option<&str>) -> Vec<String> {
    if alerts.len() <= DIGEST_OVER {
        return alerts.iter().map(|a| a.text(dashboard)).collect();
    }
    let mut lines = vec![format!("⚠️ {} alerts at once:", alerts.len())];
    lines.extend(alerts.iter().map(|a| format!("• {}", a.headline())));
    if let Some(base) = dashboard {
        lines.push(format!("{base}/errors"));
    }
    vec![lines.join("\n")]
}

/// Takes the hourly slot of the keys `?1` (a JSON array) at `?2` (now, ms) unless one was taken
/// after `?3` (now − an hour); returns the keys taken (`key`).
pub const ALERT_STATE_UPSERT: &str = "INSERT INTO alert_state (key, last_sent_at) \
     SELECT value, ?2 FROM json_each(?1) WHERE true \
     ON CONFLICT (key) DO UPDATE SET last_sent_at = excluded.last_sent_at \
     WHERE alert_state.last_sent_at <= ?3 RETURNING key";

/// The throttle claim of `keys` at `now_ms` (role [`StatementRole::Alerts`]; read with
/// [`claimed_keys`]).
pub fn throttle_statement(keys: &[String], now_ms: i64) -> Statement {
    Statement {
        sql: ALERT_STATE_UPSERT.into(),
        params: vec![
            SqlValue::Text(Value::from(keys.to_vec()).to_string()),
            SqlValue::Integer(now_ms),
            SqlValue::Integer(now_ms.saturating_sub(THROTTLE_MS)),
        ],
        role: StatementRole::Alerts,
    }
}

/// The keys a [`throttle_statement`] returned.
pub fn claimed_keys(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| r.get("key")?.as_str().map(str::to_string))
        .collect()
}

/// The claim of the pending alerts of the groups `fingerprints`, one transaction of two
/// statements: the first takes each pending group's hourly slot (`key`), the second clears
/// the pending marks and returns the groups (`last_alert` says which alert). Read with
/// [`claimed_groups`]. Empty when there is no fingerprint.
pub fn claim_group_statements(fingerprints: &[String], now_ms: i64) -> Vec<Statement> {
    if fingerprints.is_empty() {
        return Vec::new();
    }
    let list = SqlValue::Text(Value::from(fingerprints.to_vec()).to_string());
    vec![
        Statement {
            sql: "INSERT INTO alert_state (key, last_sent_at) \
                  SELECT 'group:' || fingerprint, ?2 FROM error_groups \
                  WHERE fingerprint IN (SELECT value FROM json_each(?1)) AND alert IS NOT NULL \
                  ON CONFLICT (key) DO UPDATE SET last_sent_at = excluded.last_sent_at \
                  WHERE alert_state.last_sent_at <= ?3 RETURNING key"
                .into(),
            params: vec![
                list.clone(),
                SqlValue::Integer(now_ms),
                SqlValue::Integer(now_ms.saturating_sub(THROTTLE_MS)),
            ],
            role: StatementRole::Alerts,
        },
        Statement {
            sql: "UPDATE error_groups SET last_alert = alert, alert = NULL \
                  WHERE fingerprint IN (SELECT value FROM json_each(?1)) AND alert IS NOT NULL \
                  RETURNING fingerprint, kind, last_message, release, resolved_in_release, \
                  first_seen, count, bot, last_alert"
                .into(),
            params: vec![list],
            role: StatementRole::Alerts,
        },
    ]
}

fn text(row: &Value, column: &str) -> String {
    row.get(column)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn number(row: &Value, column: &str) -> i64 {
    row.get(column)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|x| x as i64)))
        .unwrap_or(0)
}

/// The alerts to send from the answer of [`claim_group_statements`] (`rows[0]`: keys taken,
/// `rows[1]`: groups cleared): a group whose hourly slot was taken by an earlier alert is
/// cleared and not sent.
pub fn claimed_groups(keys: &[Value], groups: &[Value]) -> Vec<Alert> {
    let keys = claimed_keys(keys);
    let mut alerts: Vec<Alert> = groups
        .iter()
        .filter_map(|row| {
            let facts = GroupFacts {
                fingerprint: text(row, "fingerprint"),
                kind: text(row, "kind"),
                message: text(row, "last_message"),
                release: text(row, "release"),
                resolved_in_release: row
                    .get("resolved_in_release")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                first_seen_ms: number(row, "first_seen"),
                count: number(row, "count").max(0) as u64,
                bot: text(row, "bot"),
            };
            if !keys.contains(&group_key(&facts.fingerprint)) {
                return None;
            }
            match text(row, "last_alert").as_str() {
                "new" => Some(Alert::NewGroup(facts)),
                "regressed" => Some(Alert::Regression(facts)),
                _ => None,
            }
        })
        .collect();
    alerts.sort_by_key(|a| a.key());
    alerts
}

/// What `getWebhookInfo` answered for one bot, as stored in `webhook_health`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookInfo {
    /// Pending updates.
    pub pending_update_count: u64,
    /// `last_error_date`, ms (None: no error reported).
    pub last_error_ms: Option<i64>,
    /// `last_error_message`, scrubbed.
    pub last_error_message: Option<String>,
    /// `max_connections`.
    pub max_connections: Option<u64>,
}

/// Why a `getWebhookInfo` answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookInfoError {
    /// The body is not JSON.
    #[error("the answer is not JSON")]
    NotJson,
    /// Telegram answered `ok: false`.
    #[error("Telegram refused: {0}")]
    Refused(String),
    /// `result` is missing or not an object.
    #[error("no result object in the answer")]
    NoResult,
}

impl WebhookInfo {
    /// Reads a `getWebhookInfo` answer (Telegram's dates are seconds). Keeps no URL, no IP.
    pub fn parse(body: &str) -> Result<WebhookInfo, WebhookInfoError> {
        let json: Value = serde_json::from_str(body).map_err(|_| WebhookInfoError::NotJson)?;
        if json.get("ok").and_then(Value::as_bool) != Some(true) {
            let description = json
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("no description");
            return Err(WebhookInfoError::Refused(quote(description)));
        }
        let result = json
            .get("result")
            .filter(|r| r.is_object())
            .ok_or(WebhookInfoError::NoResult)?;
        Ok(WebhookInfo {
            pending_update_count: result
                .get("pending_update_count")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            last_error_ms: result
                .get("last_error_date")
                .and_then(Value::as_i64)
                .filter(|s| *s > 0)
                .map(|s| s.saturating_mul(1000)),
            last_error_message: result
                .get("last_error_message")
                .and_then(Value::as_str)
                .map(quote),
            max_connections: result.get("max_connections").and_then(Value::as_u64),
        })
    }
}

/// Stores one bot's `getWebhookInfo` outcome in `webhook_health`.
pub fn webhook_health_statement(
    bot: &str,
    now_ms: i64,
    info: &Result<WebhookInfo, String>,
) -> Statement {
    let (ok, pending, error_ms, error_message, max, problem) = match info {
        Ok(i) => (
            1,
            SqlValue::Integer(i.pending_update_count as i64),
            i.last_error_ms.map_or(SqlValue::Null, SqlValue::Integer),
            i.last_error_message
                .clone()
                .map_or(SqlValue::Null, SqlValue::Text),
            i.max_connections
                .map_or(SqlValue::Null, |m| SqlValue::Integer(m as i64)),
            SqlValue::Null,
        ),
        Err(problem) => (
            0,
            SqlValue::Null,
            SqlValue::Null,
            SqlValue::Null,
            SqlValue::Null,
            SqlValue::Text(quote(problem)),
        ),
    };
    Statement::write(
        "INSERT INTO webhook_health (bot, checked_at, ok, pending_update_count, last_error_date, \
         last_error_message, max_connections, problem) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (bot) DO UPDATE SET checked_at = excluded.checked_at, ok = excluded.ok, \
         pending_update_count = excluded.pending_update_count, last_error_date = excluded.last_error_date, \
         last_error_message = excluded.last_error_message, max_connections = excluded.max_connections, \
         problem = excluded.problem",
        vec![
            SqlValue::Text(bot.to_string()),
            SqlValue::Integer(now_ms),
            SqlValue::Integer(ok),
            pending,
            error_ms,
            error_message,
            max,
            problem,
        ],
    )
}

/// The webhook alerts of one bot's answer.
pub fn webhook_alerts(
    bot: &str,
    info: &WebhookInfo,
    now_ms: i64,
    config: &AlertConfig,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if let Some(at_ms) = info
        .last_error_ms
        .filter(|at| *at >= now_ms.saturating_sub(WEBHOOK_ERROR_RECENT_MS))
    {
        alerts.push(Alert::WebhookError {
            bot: bot.to_string(),
            at_ms,
            message: info.last_error_message.clone().unwrap_or_default(),
            pending: info.pending_update_count,
        });
    }
    if info.pending_update_count > config.webhook_pending {
        alerts.push(Alert::WebhookPending {
            bot: bot.to_string(),
            pending: info.pending_update_count,
            threshold: config.webhook_pending,
        });
    }
    alerts
}

/// The cron's read of the last window and the same window a day before: columns `errors`,
/// `updates`, `errors_before`, `updates_before`, `dropped`, `dead_lettered`, `deferring`.
/// `?1` = now, ms. Reads the time indexes of `error_events`, `processed_envelopes` and
/// `rejected_messages`.
pub const OBSERVATIONS_SQL: &str = "SELECT \
     (SELECT count(*) FROM error_events WHERE occurred_at >= ?1 - 900000 AND occurred_at < ?1 + 1) AS errors, \
     (SELECT coalesce(sum(coalesce(json_extract(kind_counts, '$.update'), 0)), 0) FROM processed_envelopes \
      WHERE received_at >= ?1 - 900000) AS updates, \
     (SELECT count(*) FROM error_events WHERE occurred_at >= ?1 - 87300000 AND occurred_at < ?1 - 86400000) AS errors_before, \
     (SELECT coalesce(sum(coalesce(json_extract(kind_counts, '$.update'), 0)), 0) FROM processed_envelopes \
      WHERE received_at >= ?1 - 87300000 AND received_at < ?1 - 86400000) AS updates_before, \
     (SELECT coalesce(sum(dropped_send_failed + dropped_oversize + dropped_buffer_full + dropped_cancelled), 0) \
      FROM processed_envelopes WHERE received_at >= ?1 - 900000) AS dropped, \
     (SELECT count(*) FROM rejected_messages WHERE received_at >= ?1 - 900000 AND queue LIKE '%dlq%') AS dead_lettered, \
     (SELECT count(*) FROM processed_envelopes WHERE received_at >= ?1 - 900000 AND deferrals > 0) AS deferring";

/// The cron's read of [`OBSERVATIONS_SQL`] at `now_ms` (one row).
pub fn observations_statement(now_ms: i64) -> Statement {
    Statement {
        sql: OBSERVATIONS_SQL.into(),
        params: vec![SqlValue::Integer(now_ms)],
        role: StatementRole::Alerts,
    }
}

/// The cron's observations (one row of [`OBSERVATIONS_SQL`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observations {
    /// Errors in the last window.
    pub errors: u64,
    /// Updates in the last window.
    pub updates: u64,
    /// Errors in the window a day before.
    pub errors_before: u64,
    /// Updates in the window a day before.
    pub updates_before: u64,
    /// Events the bots dropped (stored envelopes' drop counts) in the last window.
    pub dropped: u64,
    /// Messages from the dead letter queue kept raw in the last window.
    pub dead_lettered: u64,
    /// Envelopes stored after a deferral in the last window.
    pub deferring: u64,
}

impl Observations {
    /// Reads the row of [`OBSERVATIONS_SQL`].
    pub fn read(row: &Value) -> Observations {
        let n = |c: &str| number(row, c).max(0) as u64;
        Observations {
            errors: n("errors"),
            updates: n("updates"),
            errors_before: n("errors_before"),
            updates_before: n("updates_before"),
            dropped: n("dropped"),
            dead_lettered: n("dead_lettered"),
            deferring: n("deferring"),
        }
    }
}

/// A spike: at least `spike_min_errors` errors in the window, and errors per update at least
/// `spike_ratio` times the rate a day before (any errors count as a spike when the day before
/// had none).
pub fn spike_alert(o: &Observations, config: &AlertConfig) -> Option<Alert> {
    if o.errors < config.spike_min_errors.max(1) {
        return None;
    }
    // errors / updates ≥ ratio × errors_before / updates_before, cross-multiplied (exact for
    // counts, where dividing first rounds 0.3 below 3 × 0.1).
    let now = o.errors as f64 * o.updates_before.max(1) as f64;
    let before = o.errors_before as f64 * o.updates.max(1) as f64;
    (o.errors_before == 0 || now >= before * config.spike_ratio).then_some(Alert::Spike {
        errors: o.errors,
        updates: o.updates,
        errors_before: o.errors_before,
        updates_before: o.updates_before,
    })
}

/// The pipeline alerts: any dropped event, dead-lettered message or deferral in the window.
pub fn pipeline_alerts(o: &Observations) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if o.dropped > 0 {
        alerts.push(Alert::Dropped { events: o.dropped });
    }
    if o.dead_lettered > 0 {
        alerts.push(Alert::DeadLettered {
            messages: o.dead_lettered,
        });
    }
    if o.deferring > 0 {
        alerts.push(Alert::Deferring {
            messages: o.deferring,
        });
    }
    alerts
}

/// The `sendMessage` body of one alert: plain text (no parse mode, nothing to escape), no link
/// preview.
pub fn send_message_body(chat_id: &str, text: &str) -> String {
    let chat: Value = chat_id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(chat_id));
    serde_json::json!({"chat_id": chat, "text": text, "disable_web_page_preview": true}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_780_000_000_000;

    fn config() -> AlertConfig {
        AlertConfig::from_vars(AlertVars {
            chat_id: Some("-100123"),
            has_token: true,
            dashboard_url: Some("https://dash.example.com/"),
            ..AlertVars::default()
        })
    }

    fn facts(fp: &str) -> GroupFacts {
        GroupFacts {
            fingerprint: fp.into(),
            kind: "telegram_api".into(),
            message: "Bad Request: chat not found".into(),
            release: "2.0.0".into(),
            resolved_in_release: Some("1.0.0".into()),
            first_seen_ms: NOW - 60_000,
            count: 3,
            bot: "quiz-bot".into(),
        }
    }

    #[test]
    fn settings_are_off_without_a_chat_or_a_token_or_with_alerts_off() {
        assert!(config().enabled);
        assert_eq!(
            config().dashboard_url.as_deref(),
            Some("https://dash.example.com")
        );
        let base = AlertVars {
            chat_id: Some("1"),
            has_token: true,
            ..AlertVars::default()
        };
        assert!(AlertConfig::from_vars(base).enabled);
        for alerts in ["off", "OFF", "0", "false"] {
            let vars = AlertVars {
                alerts: Some(alerts),
                ..base
            };
            assert!(!AlertConfig::from_vars(vars).enabled, "{alerts}");
        }
        assert!(
            !AlertConfig::from_vars(AlertVars {
                chat_id: None,
                ..base
            })
            .enabled
        );
        assert!(
            !AlertConfig::from_vars(AlertVars {
                has_token: false,
                ..base
            })
            .enabled
        );
        let c = AlertConfig::from_vars(AlertVars {
            webhook_pending: Some("5"),
            spike_ratio: Some("0.5"),
            spike_min_errors: Some("x"),
            dashboard_url: Some("javascript:alert(1)"),
            ..base
        });
        assert_eq!(c.webhook_pending, 5);
        assert_eq!(c.spike_ratio, DEFAULT_SPIKE_RATIO);
        assert_eq!(c.spike_min_errors, DEFAULT_SPIKE_MIN_ERRORS);
        assert_eq!(c.dashboard_url, None);
    }

    #[test]
    fn a_new_group_alert_names_kind_message_release_first_seen_and_link() {
        let text = Alert::NewGroup(facts("00112233aabbccdd")).text(Some("https://d.example"));
        assert!(text.contains("New error in quiz-bot: telegram_api in release 2.0.0"));
        assert!(text.contains("Bad Request: chat not found"));
        assert!(text.contains(&utc(NOW - 60_000)));
        assert!(text.contains("https://d.example/errors/00112233aabbccdd"));
        let regression = Alert::Regression(facts("00112233aabbccdd")).text(None);
        assert!(regression.contains("Regression in quiz-bot"));
        assert!(regression.contains("Resolved in release 1.0.0"));
        assert!(!regression.contains("http"));
    }

    #[test]
    fn no_alert_text_carries_user_data() {
        // A message that slipped a phone number, an id, an e-mail and a token past the sender.
        let mut g = facts("00112233aabbccdd");
        g.message =
            "user 987654321 (+44 7700 900123, jo@example.com) token 123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
                .into();
        g.kind = "panic 5551234567".into();
        let alerts = vec![
            Alert::NewGroup(g.clone()),
            Alert::Regression(g.clone()),
            Alert::WebhookError {
                bot: "b".into(),
                at_ms: NOW,
                message: "Wrong response from chat 987654321".into(),
                pending: 1,
            },
        ];
        let mut texts: Vec<String> = alerts.iter().map(|a| a.text(None)).collect();
        texts.extend(messages(
            &[alerts.clone(), alerts.clone()].concat(),
            Some("https://d.example"),
        ));
        for text in &texts {
            for secret in [
                "987654321",
                "7700",
                "900123",
                "jo@example.com",
                "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
                "5551234567",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }

    #[test]
    fn quoted_text_is_one_short_line() {
        let q = quote(&format!("a\nb\r{}", "x".repeat(1000)));
        assert!(!q.contains('\n') && !q.contains('\r'));
        assert!(q.len() <= MAX_QUOTED_BYTES);
    }

    #[test]
    fn many_alerts_at_once_make_one_digest() {
        let alerts: Vec<Alert> = (0..5)
            .map(|i| Alert::NewGroup(facts(&format!("{i:016x}"))))
            .collect();
        assert_eq!(messages(&alerts[..3], None).len(), 3);
        let digest = messages(&alerts, Some("https://d.example"));
        assert_eq!(digest.len(), 1);
        assert!(digest[0].starts_with("⚠️ 5 alerts at once:"));
        assert_eq!(digest[0].matches("• New error in quiz-bot").count(), 5);
        assert!(messages(&[], None).is_empty());
    }

    #[test]
    fn keys_are_per_group_and_per_condition() {
        assert_eq!(
            Alert::NewGroup(facts("a")).key(),
            Alert::Regression(facts("a")).key()
        );
        assert_ne!(
            Alert::NewGroup(facts("a")).key(),
            Alert::NewGroup(facts("b")).key()
        );
        let pending = |bot: &str| Alert::WebhookPending {
            bot: bot.into(),
            pending: 1,
            threshold: 0,
        };
        assert_ne!(pending("a").key(), pending("b").key());
        assert_eq!(Alert::Dropped { events: 1 }.key(), "pipeline:dropped");
    }

    #[test]
    fn claimed_groups_keep_only_those_whose_hour_was_taken() {
        let row = |fp: &str, alert: &str| {
            json!({"fingerprint": fp, "kind": "k", "last_message": "m", "release": "2",
                   "resolved_in_release": "1", "first_seen": NOW as f64, "count": 2.0,
                   "bot": "b", "last_alert": alert})
        };
        let keys = vec![json!({"key": "group:a"}), json!({"key": "group:b"})];
        let groups = vec![row("a", "new"), row("b", "regressed"), row("c", "new")];
        let alerts = claimed_groups(&keys, &groups);
        assert_eq!(alerts.len(), 2, "c's hour was taken by an earlier alert");
        assert!(matches!(&alerts[0], Alert::NewGroup(g) if g.fingerprint == "a" && g.count == 2));
        assert!(matches!(&alerts[1], Alert::Regression(g) if g.fingerprint == "b"));
        assert!(claim_group_statements(&[], NOW).is_empty());
    }

    #[test]
    fn webhook_answers_parse_and_alert_on_recent_errors_and_backlogs() {
        let body = json!({"ok": true, "result": {"url": "https://bot.example/telegram?secret=x",
            "pending_update_count": 7, "last_error_date": (NOW / 1000) - 60,
            "last_error_message": "Wrong response from the webhook: 500 Internal Server Error",
            "max_connections": 40, "ip_address": "1.2.3.4"}})
        .to_string();
        let info = WebhookInfo::parse(&body).unwrap();
        assert_eq!(info.pending_update_count, 7);
        assert_eq!(info.last_error_ms, Some(NOW - 60_000));
        let mut c = config();
        let alerts = webhook_alerts("bot", &info, NOW, &c);
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].text(None).contains("500 Internal Server Error"));
        c.webhook_pending = 5;
        assert_eq!(webhook_alerts("bot", &info, NOW, &c).len(), 2);
        let old = WebhookInfo {
            last_error_ms: Some(NOW - WEBHOOK_ERROR_RECENT_MS - 1),
            ..info.clone()
        };
        assert_eq!(webhook_alerts("bot", &old, NOW, &config()).len(), 0);
        let stored = webhook_health_statement("bot", NOW, &Ok(info));
        assert!(!format!("{:?}", stored.params).contains("secret"));
        assert!(!format!("{:?}", stored.params).contains("1.2.3.4"));
        assert_eq!(
            WebhookInfo::parse(r#"{"ok":false,"description":"Unauthorized"}"#),
            Err(WebhookInfoError::Refused("Unauthorized".into()))
        );
        assert_eq!(WebhookInfo::parse("<html>"), Err(WebhookInfoError::NotJson));
        assert_eq!(
            WebhookInfo::parse(r#"{"ok":true}"#),
            Err(WebhookInfoError::NoResult)
        );
    }

    #[test]
    fn spikes_need_enough_errors_and_a_rate_well_above_yesterdays() {
        let c = config();
        let o = |errors, updates, errors_before, updates_before| Observations {
            errors,
            updates,
            errors_before,
            updates_before,
            ..Observations::default()
        };
        assert!(spike_alert(&o(9, 100, 0, 100), &c).is_none(), "too few");
        assert!(
            spike_alert(&o(10, 100, 0, 100), &c).is_some(),
            "none before"
        );
        assert!(spike_alert(&o(30, 100, 10, 100), &c).is_some(), "3×");
        assert!(spike_alert(&o(29, 100, 10, 100), &c).is_none(), "below 3×");
        assert!(
            spike_alert(&o(30, 300, 10, 100), &c).is_none(),
            "more traffic"
        );
    }

    #[test]
    fn pipeline_conditions_fire_on_any_loss_or_deferral() {
        assert!(pipeline_alerts(&Observations::default()).is_empty());
        let o = Observations {
            dropped: 2,
            dead_lettered: 1,
            deferring: 3,
            ..Observations::default()
        };
        let keys: Vec<String> = pipeline_alerts(&o).iter().map(Alert::key).collect();
        assert_eq!(
            keys,
            [
                "pipeline:dropped",
                "pipeline:dead_letter",
                "pipeline:deferring"
            ]
        );
    }

    #[test]
    fn send_message_bodies_are_plain_text() {
        let body: Value = serde_json::from_str(&send_message_body("-100123", "hi \"x\"")).unwrap();
        assert_eq!(body["chat_id"], json!(-100123));
        assert_eq!(body["text"], "hi \"x\"");
        assert!(body.get("parse_mode").is_none());
        let named: Value = serde_json::from_str(&send_message_body("@alerts", "t")).unwrap();
        assert_eq!(named["chat_id"], "@alerts");
    }
}
