//! The consumer's policy, with no I/O: what each queue message becomes, which SQL stores it,
//! which Analytics Engine points are written, and what happens to every message when D1 or
//! Analytics Engine cannot take it. The consumer Worker only carries these decisions out.
//!
//! One invocation goes like this (`docs/reliability.md` explains why):
//!
//! 1. [`plan::plan_batch`] decodes every message (envelopes, and the consumer's own
//!    [`deferred`] messages) into [`plan::Item`]s within the invocation's point budget.
//! 2. [`store::commit_statements`]: one D1 transaction claims request attempts and envelope
//!    points, stores error rows of winning attempts, drop counts and rejected messages.
//! 3. [`store::after_commit`] reads what the transaction returned ([`store::CommitResult`]):
//!    which points to write, the statements that mark them written (the second transaction),
//!    and one [`MessageAction`] per message.
//! 4. When D1 (or Analytics Engine) cannot take the batch, [`store::cannot_store`] retries
//!    the messages a few times, then writes their points anyway and defers their D1 part as a
//!    fresh queue message ([`deferred`]), so an outage of a day loses nothing; when only the
//!    second transaction failed, [`store::settle`] defers what it would have written.
//!
//! The daily cron writes the [`rollup`] of the last days, then runs [`retention`], the chunked
//! clean-up; [`alerts`] decides the Telegram alerts; [`audience`] builds the owner analytics rows of step 2; [`faults`] the dev-only fault switches;
//! [`retry`] the backoff of retried messages; [`local_ae`] the local mirror of Analytics Engine.
//!
//! # ingest-policy — the consumer's policy
//!
//! This crate depends on the analytics core (`analytics-core`) and on nothing of the Telegram
//! policy: the consumer stores what any source sends.
#![warn(missing_docs)]

pub mod alerts;
pub mod audience;
pub mod backdate;
pub mod deferred;
pub mod faults;
pub mod keys;
pub mod local_ae;
pub mod plan;
pub mod retention;
pub mod retry;
pub mod rollup;
pub mod store;

pub use plan::{plan_batch, BatchPlan, Item};
pub use store::{
    after_commit, cannot_store, commit_statements, settle, AfterCommit, CommitResult, Fallback,
    Unavailable,
};

/// Most bound parameters one D1 statement may have.
pub const D1_MAX_PARAMS: usize = 100;

/// Messages in one batch at most: `max_batch_size` of both queue consumers in
/// `wrangler.consumer.toml` (a test holds them equal). One invocation writes at most 250
/// Analytics Engine points, so a message's share of that budget is 25
/// ([`deferred::PENDING_POINTS_PER_MESSAGE`]).
pub const MAX_BATCH_SIZE: usize = 10;

/// D1 queries one Worker invocation may run on the free plan (1,000 on the paid plan).
pub const D1_QUERIES_PER_INVOCATION: usize = 50;

/// D1 statements one invocation's two ingest transactions may hold together
/// ([`plan::plan_batch`] admits items up to it; the rest wait for another invocation). It
/// leaves room under [`D1_QUERIES_PER_INVOCATION`] for the development-only fault probes and
/// local mirror.
pub const MAX_D1_STATEMENTS_PER_INVOCATION: usize = 40;

/// Most bytes of JSON bound to one statement. D1 accepts strings up to 2,000,000 bytes; a
/// quarter of that keeps every statement far from the limit and from D1's 30 s query limit.
pub const MAX_JSON_PARAM_BYTES: usize = 500_000;

/// One queue message as the consumer received it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    /// The queue's message id.
    pub id: String,
    /// Which delivery of the message this is, counting from 1 (the runtime's
    /// `message.attempts`).
    pub attempts: u32,
    /// The body bytes, or why they could not be read (not bytes at all).
    pub body: Result<Vec<u8>, String>,
}

/// What the invocation knows about itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchContext<'a> {
    /// The queue the batch came from.
    pub queue: &'a str,
    /// The consumer's clock at the start of the invocation, ms since the epoch.
    pub now_ms: i64,
    /// How many Analytics Engine points the invocation may write.
    pub point_budget: usize,
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

/// What a statement's result rows mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementRole {
    /// Nothing to read back.
    Write,
    /// `request_key, attempt`: the winning attempt of each request key of the batch.
    Winners,
    /// `key, writer`: the envelopes whose points this statement claimed, and for whom.
    Claimed,
    /// `key, points_written, points_claimed_by, points_claimed_at`: each envelope's state
    /// after the claim.
    Envelopes,
    /// `k`: the keys a retention chunk deleted.
    Deleted,
    /// Alert claims ([`alerts`]): the keys or groups a claim took.
    Alerts,
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

impl Statement {
    /// A statement whose result is not read.
    pub fn write(sql: impl Into<String>, params: Vec<SqlValue>) -> Statement {
        Statement {
            sql: sql.into(),
            params,
            role: StatementRole::Write,
        }
    }
}

/// What to do with one queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    /// Acknowledge: stored, rejected and recorded, a duplicate, or deferred as a new message.
    Ack,
    /// Deliver again after this many seconds.
    Retry {
        /// Delay before redelivery.
        delay_seconds: u32,
    },
}

/// Why a D1 answer could not be read as the statements promised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// D1 returned a different number of results than statements were sent.
    #[error("D1 returned {got} results for {sent} statements")]
    ResultCount {
        /// Statements sent.
        sent: usize,
        /// Results received.
        got: usize,
    },
    /// A row lacked a column, or held a value of the wrong type.
    #[error("unexpected {role:?} row from D1: {row}")]
    BadRow {
        /// What the statement was for.
        role: StatementRole,
        /// The row, as JSON.
        row: String,
    },
}

/// `INSERT` of `columns` over `rows`, chunked so each statement binds at most
/// [`D1_MAX_PARAMS`] parameters.
pub(crate) fn chunked_insert(
    head: &str,
    columns: usize,
    rows: Vec<Vec<SqlValue>>,
) -> Vec<Statement> {
    let per_statement = (D1_MAX_PARAMS / columns.max(1)).max(1);
    let row_placeholder = format!("({})", vec!["?"; columns].join(","));
    rows.chunks(per_statement)
        .map(|chunk| {
            Statement::write(
                format!(
                    "{head} VALUES {}",
                    vec![row_placeholder.as_str(); chunk.len()].join(",")
                ),
                chunk.iter().flatten().cloned().collect(),
            )
        })
        .collect()
}

/// Splits JSON rows into arrays of at most [`MAX_JSON_PARAM_BYTES`] each (a row larger than
/// that travels alone), so each becomes one bound parameter.
pub(crate) fn json_chunks(rows: Vec<serde_json::Value>) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 2;
    for row in rows {
        let text = row.to_string();
        if !current.is_empty() && size + text.len() + 1 > MAX_JSON_PARAM_BYTES {
            chunks.push(format!("[{}]", current.join(",")));
            current.clear();
            size = 2;
        }
        size += text.len() + 1;
        current.push(text);
    }
    if !current.is_empty() {
        chunks.push(format!("[{}]", current.join(",")));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_never_bind_more_than_100_parameters() {
        let rows = vec![vec![SqlValue::Null; 11]; 25];
        let statements = chunked_insert("INSERT INTO t (a)", 11, rows);
        assert_eq!(statements.len(), 3);
        for s in &statements {
            assert!(s.params.len() <= D1_MAX_PARAMS);
            assert_eq!(s.sql.matches('?').count(), s.params.len());
        }
    }

    #[test]
    fn the_batch_size_is_the_consumers_max_batch_size() {
        let toml = include_str!("../../../wrangler.consumer.toml");
        let sizes: Vec<usize> = toml
            .lines()
            .filter_map(|l| l.trim().strip_prefix("max_batch_size"))
            .filter_map(|v| v.trim().trim_start_matches('=').trim().parse().ok())
            .collect();
        assert_eq!(sizes, vec![MAX_BATCH_SIZE; 2], "both queue consumers");
        const { assert!(MAX_D1_STATEMENTS_PER_INVOCATION < D1_QUERIES_PER_INVOCATION) };
    }

    #[test]
    fn json_rows_are_split_below_the_parameter_size() {
        let row = serde_json::json!(["x".repeat(100_000)]);
        let chunks = json_chunks(vec![row; 12]);
        assert_eq!(chunks.len(), 3);
        for c in &chunks {
            assert!(c.len() <= MAX_JSON_PARAM_BYTES);
            assert!(serde_json::from_str::<serde_json::Value>(c)
                .unwrap()
                .is_array());
        }
        assert!(json_chunks(Vec::new()).is_empty());
    }
}
