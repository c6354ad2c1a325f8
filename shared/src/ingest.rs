//! The consumer's policy for one queue batch, with no I/O: decode each message, decide what is
//! stored, rejected or deferred, build the D1 statements, and turn the D1 result into one
//! action per message. The consumer Worker only carries these decisions out.

use crate::datapoint::{to_data_point, DataPoint, PointInput, MAX_POINTS_PER_INVOCATION};
use crate::event::EventKind;
use crate::fingerprint::fingerprint;
use crate::retry::Backoff;
use crate::skew::correct_timestamp;
use crate::wire::{decode, Envelope, WireError};

/// Most bound parameters one D1 statement may have.
pub const D1_MAX_PARAMS: usize = 100;

/// One queue message as the consumer received it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    /// The queue's message id.
    pub id: String,
    /// Milliseconds since the message was first sent (drives the retry backoff).
    pub age_ms: i64,
    /// The body bytes, or why they could not be read (not bytes at all).
    pub body: Result<Vec<u8>, String>,
}

/// One error event, as a row of `error_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRow {
    /// Event id (primary key).
    pub event_id: String,
    /// Group fingerprint.
    pub fingerprint: String,
    /// Corrected event time, ms since the epoch.
    pub occurred_at_ms: i64,
    /// Error kind.
    pub kind: String,
    /// Error message.
    pub message: String,
    /// Error location.
    pub location: Option<String>,
    /// Telegram user.
    pub user_id: Option<i64>,
    /// Telegram chat.
    pub chat_id: Option<i64>,
    /// Sending bot.
    pub bot: String,
    /// Sending release.
    pub release: String,
}

/// A decoded message that will be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Position of the message in the batch.
    pub index: usize,
    /// Idempotency key of the envelope (its first event id, or a hash of its bytes).
    pub key: String,
    /// The envelope.
    pub envelope: Envelope,
    /// Its Analytics Engine data points, written only if the key is new.
    pub points: Vec<DataPoint>,
    /// Its error rows.
    pub errors: Vec<ErrorRow>,
}

/// A message that cannot be decoded: stored in `rejected_messages` and acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Position of the message in the batch.
    pub index: usize,
    /// Short reason code ([`WireError::code`] or `not_bytes`).
    pub reason: String,
    /// The full reason.
    pub detail: String,
    /// The raw payload (empty when it was not bytes).
    pub payload: Vec<u8>,
}

/// What to do with each message of a batch, before touching D1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchPlan {
    /// Messages to store.
    pub accepted: Vec<Accepted>,
    /// Messages to reject (store and ack).
    pub rejected: Vec<Rejected>,
    /// Messages beyond this invocation's Analytics Engine budget: retried, never dropped.
    pub deferred: Vec<usize>,
}

/// The idempotency key of an envelope.
pub fn envelope_key(envelope: &Envelope, bytes: &[u8]) -> String {
    match envelope.events.first() {
        Some(event) => event.id.to_string(),
        None => format!(
            "empty:{}",
            fingerprint("envelope", &String::from_utf8_lossy(bytes), None)
        ),
    }
}

/// Decides the fate of every message of a batch. `received_at_ms` is the consumer's clock;
/// `point_budget` is how many data points this invocation may still write.
pub fn plan_batch(
    messages: &[IncomingMessage],
    received_at_ms: i64,
    point_budget: usize,
) -> BatchPlan {
    let mut plan = BatchPlan::default();
    let mut budget = point_budget.min(MAX_POINTS_PER_INVOCATION);
    for (index, message) in messages.iter().enumerate() {
        let bytes = match &message.body {
            Ok(bytes) => bytes,
            Err(what) => {
                plan.rejected.push(Rejected {
                    index,
                    reason: "not_bytes".into(),
                    detail: what.clone(),
                    payload: Vec::new(),
                });
                continue;
            }
        };
        let envelope = match decode(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                plan.rejected.push(reject(index, &error, bytes));
                continue;
            }
        };
        if envelope.events.len() > MAX_POINTS_PER_INVOCATION {
            // Could never be written in one invocation: keep it aside instead of retrying forever.
            plan.rejected.push(Rejected {
                index,
                reason: "too_many_events".into(),
                detail: format!(
                    "{} events, more than the {MAX_POINTS_PER_INVOCATION} data points one invocation may write",
                    envelope.events.len()
                ),
                payload: bytes.clone(),
            });
            continue;
        }
        if envelope.events.len() > budget {
            plan.deferred.push(index);
            continue;
        }
        budget -= envelope.events.len();
        plan.accepted
            .push(accept(index, envelope, bytes, received_at_ms));
    }
    plan
}

fn reject(index: usize, error: &WireError, bytes: &[u8]) -> Rejected {
    Rejected {
        index,
        reason: error.code().into(),
        detail: error.to_string(),
        payload: bytes.to_vec(),
    }
}

fn accept(index: usize, envelope: Envelope, bytes: &[u8], received_at_ms: i64) -> Accepted {
    let key = envelope_key(&envelope, bytes);
    let sent_at_ms = envelope.sent_at.timestamp_millis();
    let mut points = Vec::with_capacity(envelope.events.len());
    let mut errors = Vec::new();
    for event in &envelope.events {
        let original = event.timestamp.timestamp_millis();
        let corrected = correct_timestamp(original, sent_at_ms, received_at_ms);
        points.push(to_data_point(&PointInput {
            source: &envelope.source,
            event,
            timestamp_ms: corrected,
            skew_ms: corrected - original,
        }));
        if event.kind == EventKind::Error {
            let details = event.error.clone().unwrap_or_else(|| crate::ErrorDetails {
                kind: event.name.clone(),
                message: String::new(),
                location: None,
                group_key: None,
            });
            errors.push(ErrorRow {
                event_id: event.id.to_string(),
                fingerprint: crate::fingerprint::of_error(&details),
                occurred_at_ms: corrected,
                kind: details.kind,
                message: details.message,
                location: details.location,
                user_id: event.user_id,
                chat_id: event.chat_id,
                bot: envelope.source.worker.clone(),
                release: envelope.source.release.clone(),
            });
        }
    }
    Accepted {
        index,
        key,
        envelope,
        points,
        errors,
    }
}

/// A value bound to a D1 statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// TEXT.
    Text(String),
    /// INTEGER (bound as a JS number: exact up to 2^53).
    Integer(i64),
    /// REAL.
    Real(f64),
    /// BLOB.
    Blob(Vec<u8>),
    /// NULL.
    Null,
}

impl From<Option<i64>> for SqlValue {
    fn from(v: Option<i64>) -> Self {
        v.map(SqlValue::Integer).unwrap_or(SqlValue::Null)
    }
}

impl From<Option<String>> for SqlValue {
    fn from(v: Option<String>) -> Self {
        v.map(SqlValue::Text).unwrap_or(SqlValue::Null)
    }
}

/// What a statement's result rows mean to the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementRole {
    /// Returns the keys of envelopes whose data points are still to be written.
    PendingPointKeys,
    /// Nothing to read back.
    Write,
}

/// One D1 statement with its parameters (never more than [`D1_MAX_PARAMS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text.
    pub sql: String,
    /// Bound parameters.
    pub params: Vec<SqlValue>,
    /// How to read its result.
    pub role: StatementRole,
}

/// Builds multi-row `INSERT` statements of `columns` for `rows`, chunked so each statement
/// binds at most [`D1_MAX_PARAMS`] parameters.
fn chunked_insert(
    head: &str,
    columns: usize,
    tail: &str,
    rows: Vec<Vec<SqlValue>>,
    role: StatementRole,
) -> Vec<Statement> {
    let per_statement = (D1_MAX_PARAMS / columns).max(1);
    let row_placeholder = format!("({})", vec!["?"; columns].join(","));
    rows.chunks(per_statement)
        .map(|chunk| Statement {
            sql: format!(
                "{head} VALUES {}{tail}",
                vec![row_placeholder.as_str(); chunk.len()].join(",")
            ),
            params: chunk.iter().flatten().cloned().collect(),
            role,
        })
        .collect()
}

/// The D1 statements that store a plan, in one transaction: envelope keys (returning the new
/// ones), error events (idempotent: `INSERT OR IGNORE`; groups follow by trigger), and
/// rejected messages. `queue` is the queue the batch came from.
pub fn d1_statements(
    plan: &BatchPlan,
    messages: &[IncomingMessage],
    queue: &str,
    received_at_ms: i64,
) -> Vec<Statement> {
    let mut statements = Vec::new();
    let envelopes: Vec<Vec<SqlValue>> = plan
        .accepted
        .iter()
        .map(|a| {
            let d = a.envelope.dropped;
            vec![
                SqlValue::Text(a.key.clone()),
                SqlValue::Text(messages[a.index].id.clone()),
                SqlValue::Text(a.envelope.source.worker.clone()),
                SqlValue::Integer(a.envelope.events.len() as i64),
                SqlValue::Integer(i64::from(d.send_failed)),
                SqlValue::Integer(i64::from(d.oversize)),
                SqlValue::Integer(i64::from(d.buffer_full)),
                SqlValue::Integer(received_at_ms),
            ]
        })
        .collect();
    statements.extend(chunked_insert(
        "INSERT OR IGNORE INTO processed_envelopes (key, queue_message_id, bot, event_count, dropped_send_failed, dropped_oversize, dropped_buffer_full, received_at)",
        8,
        "",
        envelopes,
        StatementRole::Write,
    ));
    let errors: Vec<Vec<SqlValue>> = plan
        .accepted
        .iter()
        .flat_map(|a| a.errors.iter())
        .map(|e| {
            vec![
                SqlValue::Text(e.event_id.clone()),
                SqlValue::Text(e.fingerprint.clone()),
                SqlValue::Integer(e.occurred_at_ms),
                SqlValue::Integer(received_at_ms),
                SqlValue::Text(e.kind.clone()),
                SqlValue::Text(e.message.clone()),
                e.location.clone().into(),
                e.user_id.into(),
                e.chat_id.into(),
                SqlValue::Text(e.bot.clone()),
                SqlValue::Text(e.release.clone()),
            ]
        })
        .collect();
    statements.extend(chunked_insert(
        "INSERT OR IGNORE INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, location, user_id, chat_id, bot, release)",
        11,
        "",
        errors,
        StatementRole::Write,
    ));
    let rejected: Vec<Vec<SqlValue>> = plan
        .rejected
        .iter()
        .map(|r| {
            vec![
                SqlValue::Text(queue.to_string()),
                SqlValue::Text(messages[r.index].id.clone()),
                SqlValue::Text(r.reason.clone()),
                SqlValue::Text(r.detail.clone()),
                SqlValue::Blob(r.payload.clone()),
                SqlValue::Integer(received_at_ms),
            ]
        })
        .collect();
    statements.extend(chunked_insert(
        "INSERT OR IGNORE INTO rejected_messages (queue, message_id, reason, detail, payload, received_at)",
        6,
        "",
        rejected,
        StatementRole::Write,
    ));
    // Last, inside the same transaction: which of this batch's envelopes still need their data
    // points — new ones, and ones whose earlier delivery committed but crashed before the
    // points were marked written.
    let mut keys: Vec<&str> = plan.accepted.iter().map(|a| a.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    statements.extend(keyed_statements(
        "SELECT key FROM processed_envelopes WHERE points_written = 0 AND key IN",
        &keys,
        StatementRole::PendingPointKeys,
    ));
    statements
}

/// The statements that mark envelopes' data points as written (run after writing them).
pub fn mark_points_written(keys: &[&str]) -> Vec<Statement> {
    keyed_statements(
        "UPDATE processed_envelopes SET points_written = 1 WHERE key IN",
        keys,
        StatementRole::Write,
    )
}

/// `{sql_head} (?, …)` over `keys`, chunked so each statement binds at most
/// [`D1_MAX_PARAMS`] keys.
fn keyed_statements(sql_head: &str, keys: &[&str], role: StatementRole) -> Vec<Statement> {
    keys.chunks(D1_MAX_PARAMS)
        .map(|chunk| Statement {
            sql: format!("{sql_head} ({})", vec!["?"; chunk.len()].join(",")),
            params: chunk
                .iter()
                .map(|k| SqlValue::Text(k.to_string()))
                .collect(),
            role,
        })
        .collect()
}

/// Default retention of error events and local points, in days.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// The retention statements the daily cron runs: error events, envelope keys, rejected
/// messages and local Analytics Engine points older than `days` (a missing or non-positive
/// setting means [`DEFAULT_RETENTION_DAYS`]). `error_groups` is left alone, so group counts
/// keep their history.
pub fn retention_statements(now_ms: i64, days: Option<i64>) -> Vec<Statement> {
    let days = days.filter(|d| *d > 0).unwrap_or(DEFAULT_RETENTION_DAYS);
    let cutoff_ms = now_ms.saturating_sub(days.saturating_mul(86_400_000));
    let cutoff_text = chrono::DateTime::from_timestamp_millis(cutoff_ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let delete = |sql: &str, value: SqlValue| Statement {
        sql: sql.to_string(),
        params: vec![value],
        role: StatementRole::Write,
    };
    vec![
        delete(
            "DELETE FROM error_events WHERE occurred_at < ?1",
            SqlValue::Integer(cutoff_ms),
        ),
        delete(
            "DELETE FROM processed_envelopes WHERE received_at < ?1",
            SqlValue::Integer(cutoff_ms),
        ),
        delete(
            "DELETE FROM rejected_messages WHERE received_at < ?1",
            SqlValue::Integer(cutoff_ms),
        ),
        delete(
            "DELETE FROM analytics_points_local WHERE timestamp < ?1",
            SqlValue::Text(cutoff_text),
        ),
    ]
}

/// What to do with one queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    /// Acknowledge: stored (or rejected and recorded, or a duplicate).
    Ack,
    /// Deliver again after this many seconds.
    Retry {
        /// Delay before redelivery.
        delay_seconds: u32,
    },
}

/// One action per message after the D1 transaction: `new_keys` is `Ok(keys whose points are
/// still to be written)` when it committed, or `Err` when it failed. Returns the actions (in batch
/// order) and the indexes of the accepted messages whose data points must be written.
pub fn decide(
    plan: &BatchPlan,
    messages: &[IncomingMessage],
    new_keys: Result<&[String], ()>,
    backoff: &Backoff,
) -> (Vec<MessageAction>, Vec<usize>) {
    let mut actions = vec![MessageAction::Ack; messages.len()];
    let mut write_points = Vec::new();
    let retry = |i: usize| MessageAction::Retry {
        delay_seconds: backoff.delay_seconds_for_age(messages[i].age_ms),
    };
    match new_keys {
        Ok(keys) => {
            let mut written: Vec<&str> = Vec::new();
            for (n, accepted) in plan.accepted.iter().enumerate() {
                // New to D1, and not already written by an earlier copy in this batch.
                if keys.contains(&accepted.key) && !written.contains(&accepted.key.as_str()) {
                    written.push(&accepted.key);
                    write_points.push(n);
                }
            }
        }
        Err(()) => {
            for a in &plan.accepted {
                actions[a.index] = retry(a.index);
            }
            for r in &plan.rejected {
                actions[r.index] = retry(r.index);
            }
        }
    }
    for &i in &plan.deferred {
        // Beyond the budget is not a failure: come back soon, without growing delays.
        actions[i] = MessageAction::Retry { delay_seconds: 1 };
    }
    (actions, write_points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;
    use crate::wire::encode;

    fn message(id: &str, body: Vec<u8>) -> IncomingMessage {
        IncomingMessage {
            id: id.into(),
            age_ms: 100,
            body: Ok(body),
        }
    }

    fn good(id: &str) -> IncomingMessage {
        message(id, encode(&samples::typical_envelope()).unwrap())
    }

    fn with_error(id: &str) -> IncomingMessage {
        message(id, encode(&samples::error_envelope()).unwrap())
    }

    #[test]
    fn a_poison_message_is_rejected_and_the_rest_accepted() {
        let batch = vec![
            good("a"),
            message("b", b"garbage".to_vec()),
            with_error("c"),
        ];
        let plan = plan_batch(&batch, 1_764_000_001_000, 250);
        assert_eq!(plan.accepted.len(), 2);
        assert_eq!(plan.rejected.len(), 1);
        assert_eq!(plan.rejected[0].index, 1);
        assert_eq!(plan.rejected[0].reason, "not_an_envelope");
        assert_eq!(plan.accepted[1].errors.len(), 1);
        assert_eq!(plan.accepted[0].points.len(), 5);
    }

    #[test]
    fn messages_beyond_the_point_budget_are_deferred_not_dropped() {
        let batch: Vec<_> = (0..60).map(|i| good(&i.to_string())).collect();
        let plan = plan_batch(&batch, 0, 250);
        let points: usize = plan.accepted.iter().map(|a| a.points.len()).sum();
        assert_eq!(points, 250);
        assert_eq!(plan.deferred.len(), 10);
        let (actions, _) = decide(&plan, &batch, Ok(&[]), &Backoff::default());
        let retried = actions
            .iter()
            .filter(|a| matches!(a, MessageAction::Retry { .. }))
            .count();
        assert_eq!(retried, 10);
    }

    #[test]
    fn an_envelope_larger_than_the_budget_is_kept_aside_not_retried_forever() {
        let mut envelope = samples::typical_envelope();
        let event = envelope.events[0].clone();
        envelope.events = vec![event; MAX_POINTS_PER_INVOCATION + 1];
        let batch = vec![message("big", encode(&envelope).unwrap()), good("ok")];
        let plan = plan_batch(&batch, 0, 250);
        assert_eq!(plan.rejected.len(), 1);
        assert_eq!(plan.rejected[0].reason, "too_many_events");
        assert_eq!(plan.accepted.len(), 1);
        assert!(plan.deferred.is_empty());
    }

    #[test]
    fn statements_never_bind_more_than_100_parameters() {
        let batch: Vec<_> = (0..100).map(|i| with_error(&i.to_string())).collect();
        let plan = plan_batch(&batch, 0, 250);
        let statements = d1_statements(&plan, &batch, "analytics", 0);
        assert!(statements.len() > 2);
        for s in &statements {
            assert!(s.params.len() <= D1_MAX_PARAMS, "{}", s.params.len());
            assert_eq!(s.sql.matches('?').count(), s.params.len());
        }
        let error_params: usize = statements
            .iter()
            .filter(|s| s.sql.contains("error_events"))
            .map(|s| s.params.len())
            .sum();
        assert_eq!(error_params, 100 * 11);
    }

    #[test]
    fn duplicate_envelopes_write_points_once() {
        let batch = vec![good("a"), good("b")];
        let plan = plan_batch(&batch, 0, 250);
        assert_eq!(plan.accepted[0].key, plan.accepted[1].key);
        // D1 reports the key as new once (the second INSERT OR IGNORE is ignored)…
        let key = plan.accepted[0].key.clone();
        let (actions, points) = decide(&plan, &batch, Ok(&[key]), &Backoff::default());
        assert_eq!(actions, vec![MessageAction::Ack, MessageAction::Ack]);
        // …and both plan entries share the key: only the first writes its points.
        assert_eq!(points, vec![0]);
    }

    #[test]
    fn the_transaction_ends_by_asking_which_points_are_still_to_write() {
        let batch = vec![good("a"), good("b"), with_error("c")];
        let plan = plan_batch(&batch, 0, 250);
        let statements = d1_statements(&plan, &batch, "q", 0);
        let last = statements.last().unwrap();
        assert_eq!(last.role, StatementRole::PendingPointKeys);
        assert_eq!(last.params.len(), 2, "duplicate keys asked once");
        let marks = mark_points_written(&["k1", "k2"]);
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0].params.len(), 2);
        assert!(marks[0]
            .sql
            .starts_with("UPDATE processed_envelopes SET points_written = 1"));
    }

    #[test]
    fn d1_failure_retries_with_growing_delay() {
        let mut batch = vec![good("a"), message("b", b"x".to_vec())];
        batch[0].age_ms = 8_500; // retried twice already: 0.5 s + 2 s + 2 s + 4 s
        let plan = plan_batch(&batch, 0, 250);
        let (actions, points) = decide(&plan, &batch, Err(()), &Backoff::default());
        assert_eq!(
            actions,
            vec![
                MessageAction::Retry { delay_seconds: 8 },
                MessageAction::Retry { delay_seconds: 2 }
            ]
        );
        assert!(points.is_empty());
    }

    #[test]
    fn retention_keeps_groups_and_cuts_at_the_configured_age() {
        let now = 1_764_000_000_000;
        let statements = retention_statements(now, Some(7));
        assert!(statements.iter().all(|s| !s.sql.contains("error_groups")));
        assert_eq!(
            statements[0].params,
            vec![SqlValue::Integer(now - 7 * 86_400_000)]
        );
        assert_eq!(
            statements[3].params,
            vec![SqlValue::Text("2025-11-17 16:00:00".into())]
        );
        let default = retention_statements(now, Some(0));
        assert_eq!(
            default[0].params,
            vec![SqlValue::Integer(now - 30 * 86_400_000)]
        );
    }

    #[test]
    fn error_rows_carry_fingerprint_and_source() {
        let batch = vec![with_error("e")];
        let plan = plan_batch(&batch, 1_764_000_001_000, 250);
        let row = &plan.accepted[0].errors[0];
        assert_eq!(row.bot, "telegram-bot");
        assert_eq!(row.fingerprint.len(), 16);
        assert_eq!(row.location.as_deref(), Some("bot_api:editMessageText"));
    }
}
