//! The retention cron: deletes old rows in chunks, a bounded amount per run.
//!
//! One unbounded `DELETE` per table could run into D1's 30 s query limit or use up the daily
//! rows-written allowance (every deleted row is a row written, and so is every index entry it
//! had), then fail the same way every night while the backlog grows. Instead each statement
//! deletes at most [`CHUNK_ROWS`] rows, oldest first, tables take turns, and a run stops after
//! [`MAX_STATEMENTS_PER_RUN`] statements or once it has written its cap of rows
//! (`RETENTION_MAX_ROWS_WRITTEN`, default [`DEFAULT_MAX_ROWS_WRITTEN`]). What is left waits
//! for the next run, which starts again from the oldest rows: nothing is skipped, a backlog
//! only takes several runs.
//!
//! Two fields expire before their rows, with durations of their own: a group's last message
//! (`error_groups.last_message`, blanked once the group has been quiet for
//! `GROUP_MESSAGE_DAYS`, default [`DEFAULT_MESSAGE_DAYS`]; the group keeps its counts) and a
//! rejected message's raw payload and the decoder's error about it (`rejected_messages.payload`
//! and `.detail`, which can quote strings of the payload: dropped and blanked after
//! `REJECTED_PAYLOAD_DAYS`, default [`DEFAULT_PAYLOAD_DAYS`]; the row keeps its reason code
//! until `RETENTION_DAYS`). `forget`'s tombstones (`forgotten_users`) go after
//! [`FORGOTTEN_RETENTION_DAYS`]. The owner analytics tables have durations of their own:
//! `user_days` [`USER_DAYS_RETENTION_DAYS`], `user_events` [`USER_EVENTS_RETENTION_DAYS`],
//! `daily_rollup` [`ROLLUP_RETENTION_DAYS`]; `bot_users` is kept (one row per user and bot,
//! erased by `forget`).
//!
//! Tables with an index on their time column are cut through it. `processed_envelopes` and
//! `request_attempts` have no such index (it would cost a row written per insert and per
//! delete): their chunks walk the primary key from where the previous chunk stopped, so a run
//! reads each of their rows at most once.

use serde_json::Value;

use crate::{SqlValue, Statement, StatementRole};

/// Rows one retention statement deletes at most.
pub const CHUNK_ROWS: u32 = 1_000;

/// Statements one run issues at most: the free plan allows 50 D1 queries per invocation.
pub const MAX_STATEMENTS_PER_RUN: u32 = 40;

/// Rows written (deleted rows and their index entries) after which a run stops, unless
/// `RETENTION_MAX_ROWS_WRITTEN` says otherwise: half the free plan's 100,000 a day, so the
/// clean-up cannot starve the ingest of its quota.
pub const DEFAULT_MAX_ROWS_WRITTEN: u64 = 50_000;

/// Default retention of error events, envelope keys, rejected messages and local points.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// Fewest days `RETENTION_DAYS` may keep: the daily rollup recomputes the last
/// [`crate::rollup::ROLLUP_DAYS`] days from `processed_envelopes` and `error_events`, so they
/// must outlive them (a smaller setting is raised to this).
pub const MIN_RETENTION_DAYS: i64 = crate::rollup::ROLLUP_DAYS + 1;

/// How long `user_days` rows are kept: daily active users and weekly retention cohorts of
/// weeks 0 to 12 need 13 weeks and a few days; the rollup keeps the daily counts for longer.
pub const USER_DAYS_RETENTION_DAYS: i64 = 100;

/// How long `user_events` rows (blocks, unblocks, payments, refunds) are kept: a year and a
/// month, so a year-over-year comparison of revenue and blocks still has its exact rows; the
/// rollup keeps the daily sums two years.
pub const USER_EVENTS_RETENTION_DAYS: i64 = 400;

/// How long `daily_rollup` rows are kept: two years.
pub const ROLLUP_RETENTION_DAYS: i64 = 730;

/// How long a quiet group keeps its last message, unless `GROUP_MESSAGE_DAYS` says otherwise.
pub const DEFAULT_MESSAGE_DAYS: i64 = 14;

/// How long a rejected message keeps its raw payload, unless `REJECTED_PAYLOAD_DAYS` says
/// otherwise (long enough to look into it; the payload may hold pseudonymous ids).
pub const DEFAULT_PAYLOAD_DAYS: i64 = 7;

/// How long request attempts are kept, whatever `RETENTION_DAYS` says: Telegram redelivers an
/// update for at most 24 hours, and a deferred message may wait out an outage; a week covers
/// both. The rows hold no user data (a hash and a random number).
pub const REQUEST_RETENTION_DAYS: i64 = 7;

/// How long `forget`'s tombstones (`forgotten_users`) are kept: longer than a record of the
/// erased user can stay in flight (4 days on a queue by default, 4 more on its dead letter
/// queue, about 41 hours of deferrals, [`crate::deferred::MAX_DEFERRALS`]). A tombstone holds
/// the erased pseudonym and a time.
pub const FORGOTTEN_RETENTION_DAYS: i64 = 14;

const DAY_MS: i64 = 86_400_000;

/// A table the cron cleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `error_events`, by `occurred_at` (indexed).
    ErrorEvents,
    /// `processed_envelopes`, by `received_at`, walking the key.
    ProcessedEnvelopes,
    /// `request_attempts`, by `received_at`, walking the key.
    RequestAttempts,
    /// `rejected_messages`, by `received_at`, walking the row id (ids grow with time).
    RejectedMessages,
    /// `analytics_points_local` (development), by `timestamp` (indexed).
    LocalPoints,
    /// `error_groups.last_message` of quiet groups (blanked, the row stays).
    GroupMessages,
    /// `rejected_messages.payload` and `.detail` (dropped and blanked, the row stays).
    RejectedPayloads,
    /// `forgotten_users`, by `forgotten_at` (no index: a small table, scanned).
    ForgottenUsers,
    /// `user_days`, by `day` (its key starts with the bot: scanned in key order, where each
    /// bot's oldest days come first).
    UserDays,
    /// `user_events`, by `occurred_at` (a small table of rare events, scanned).
    UserEvents,
    /// `daily_rollup`, by `day` (one row per bot and day, scanned).
    DailyRollup,
}

impl Table {
    /// Every table, in the order they take turns.
    pub const ALL: [Table; 11] = [
        Table::ErrorEvents,
        Table::ProcessedEnvelopes,
        Table::RequestAttempts,
        Table::RejectedMessages,
        Table::LocalPoints,
        Table::GroupMessages,
        Table::RejectedPayloads,
        Table::ForgottenUsers,
        Table::UserDays,
        Table::UserEvents,
        Table::DailyRollup,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::ErrorEvents => "error_events",
            Table::ProcessedEnvelopes => "processed_envelopes",
            Table::RequestAttempts => "request_attempts",
            Table::RejectedMessages => "rejected_messages",
            Table::LocalPoints => "analytics_points_local",
            Table::GroupMessages => "error_groups.last_message",
            Table::RejectedPayloads => "rejected_messages.payload",
            Table::ForgottenUsers => "forgotten_users",
            Table::UserDays => "user_days",
            Table::UserEvents => "user_events",
            Table::DailyRollup => "daily_rollup",
        }
    }

    /// Rows written per deleted row (the row and its index entries), used when D1 does not
    /// report `rows_written`.
    pub fn write_cost(self) -> u64 {
        match self {
            Table::ErrorEvents => 4,
            Table::ProcessedEnvelopes | Table::RequestAttempts => 1,
            Table::RejectedMessages => 2,
            Table::LocalPoints => 3,
            Table::UserEvents => 2,
            Table::GroupMessages
            | Table::RejectedPayloads
            | Table::ForgottenUsers
            | Table::UserDays
            | Table::DailyRollup => 1,
        }
    }

    fn walks_key(self) -> bool {
        matches!(self, Table::ProcessedEnvelopes | Table::RequestAttempts)
    }
}

/// Settings of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `RETENTION_DAYS`.
    pub days: i64,
    /// `RETENTION_MAX_ROWS_WRITTEN`.
    pub max_rows_written: u64,
    /// `GROUP_MESSAGE_DAYS`.
    pub message_days: i64,
    /// `REJECTED_PAYLOAD_DAYS`.
    pub payload_days: i64,
}

/// A positive setting: missing, unparsable, zero or negative values mean `default`.
fn positive<T: std::str::FromStr + PartialOrd + Default>(value: Option<&str>, default: T) -> T {
    value
        .and_then(|v| v.trim().parse::<T>().ok())
        .filter(|v| *v > T::default())
        .unwrap_or(default)
}

impl RetentionConfig {
    /// From the Worker's variables; missing, unparsable or non-positive values mean the
    /// defaults.
    pub fn from_vars(
        retention_days: Option<&str>,
        max_rows_written: Option<&str>,
    ) -> RetentionConfig {
        RetentionConfig {
            days: positive(retention_days, DEFAULT_RETENTION_DAYS).max(MIN_RETENTION_DAYS),
            max_rows_written: positive(max_rows_written, DEFAULT_MAX_ROWS_WRITTEN),
            message_days: DEFAULT_MESSAGE_DAYS,
            payload_days: DEFAULT_PAYLOAD_DAYS,
        }
    }

    /// The expiry of group messages and rejected payloads (`GROUP_MESSAGE_DAYS`,
    /// `REJECTED_PAYLOAD_DAYS`); missing or non-positive values mean the defaults.
    pub fn with_expiry(mut self, message_days: Option<&str>, payload_days: Option<&str>) -> Self {
        self.message_days = positive(message_days, DEFAULT_MESSAGE_DAYS);
        self.payload_days = positive(payload_days, DEFAULT_PAYLOAD_DAYS);
        self
    }
}

#[derive(Debug, Clone)]
struct TableState {
    table: Table,
    done: bool,
    /// The last key deleted (tables that walk their key).
    after: String,
    deleted: u64,
}

/// One statement of the run, for one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The table it cleans.
    pub table: Table,
    /// The statement (role [`StatementRole::Deleted`]: it returns the deleted keys as `k`).
    pub statement: Statement,
}

/// What a run did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Rows deleted, per table.
    pub deleted: Vec<(Table, u64)>,
    /// Rows written (as D1 reports them, or estimated).
    pub rows_written: u64,
    /// Statements issued.
    pub statements: u32,
    /// Whether every table is clean; `false` means the cap stopped the run and the next run
    /// continues.
    pub finished: bool,
}

/// One run of the retention cron: ask for the next statement, run it, report its result.
#[derive(Debug, Clone)]
pub struct Retention {
    cutoff_ms: i64,
    request_cutoff_ms: i64,
    message_cutoff_ms: i64,
    payload_cutoff_ms: i64,
    forgotten_cutoff_ms: i64,
    /// First day kept in `user_days` and `daily_rollup` (days since the epoch).
    user_days_cutoff: i64,
    rollup_cutoff: i64,
    user_events_cutoff_ms: i64,
    cutoff_text: String,
    config: RetentionConfig,
    tables: Vec<TableState>,
    next: usize,
    statements: u32,
    written: u64,
}

impl Retention {
    /// A run at `now_ms`.
    pub fn new(now_ms: i64, config: RetentionConfig) -> Retention {
        let cutoff_ms = now_ms.saturating_sub(config.days.saturating_mul(DAY_MS));
        let cutoff_text = chrono::DateTime::from_timestamp_millis(cutoff_ms)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        Retention {
            cutoff_ms,
            request_cutoff_ms: now_ms.saturating_sub(REQUEST_RETENTION_DAYS * DAY_MS),
            message_cutoff_ms: now_ms.saturating_sub(config.message_days.saturating_mul(DAY_MS)),
            payload_cutoff_ms: now_ms.saturating_sub(config.payload_days.saturating_mul(DAY_MS)),
            forgotten_cutoff_ms: now_ms.saturating_sub(FORGOTTEN_RETENTION_DAYS * DAY_MS),
            user_days_cutoff: now_ms.div_euclid(DAY_MS) - USER_DAYS_RETENTION_DAYS,
            rollup_cutoff: now_ms.div_euclid(DAY_MS) - ROLLUP_RETENTION_DAYS,
            user_events_cutoff_ms: now_ms.saturating_sub(USER_EVENTS_RETENTION_DAYS * DAY_MS),
            cutoff_text,
            config,
            tables: Table::ALL
                .iter()
                .map(|&table| TableState {
                    table,
                    done: false,
                    after: String::new(),
                    deleted: 0,
                })
                .collect(),
            next: 0,
            statements: 0,
            written: 0,
        }
    }

    fn capped(&self) -> bool {
        self.statements >= MAX_STATEMENTS_PER_RUN || self.written >= self.config.max_rows_written
    }

    /// The next statement, or `None` when every table is clean or the run reached its cap.
    pub fn next_step(&mut self) -> Option<Step> {
        if self.capped() {
            return None;
        }
        let n = self.tables.len();
        let position = (0..n)
            .map(|i| (self.next + i) % n)
            .find(|&i| !self.tables[i].done)?;
        self.next = (position + 1) % n;
        self.statements += 1;
        let state = &self.tables[position];
        Some(Step {
            table: state.table,
            statement: self.statement(state),
        })
    }

    fn statement(&self, state: &TableState) -> Statement {
        let limit = CHUNK_ROWS;
        let (sql, params) = match state.table {
            Table::ErrorEvents => (
                format!("DELETE FROM error_events WHERE event_id IN (SELECT event_id FROM error_events WHERE occurred_at < ?1 ORDER BY occurred_at LIMIT {limit}) RETURNING event_id AS k"),
                vec![SqlValue::Integer(self.cutoff_ms)],
            ),
            Table::ProcessedEnvelopes => (
                format!("DELETE FROM processed_envelopes WHERE key IN (SELECT key FROM processed_envelopes WHERE key > ?2 AND received_at < ?1 ORDER BY key LIMIT {limit}) RETURNING key AS k"),
                vec![SqlValue::Integer(self.cutoff_ms), SqlValue::Text(state.after.clone())],
            ),
            Table::RequestAttempts => (
                format!("DELETE FROM request_attempts WHERE request_key IN (SELECT request_key FROM request_attempts WHERE request_key > ?2 AND received_at < ?1 ORDER BY request_key LIMIT {limit}) RETURNING request_key AS k"),
                vec![SqlValue::Integer(self.request_cutoff_ms), SqlValue::Text(state.after.clone())],
            ),
            Table::RejectedMessages => (
                format!("DELETE FROM rejected_messages WHERE id IN (SELECT id FROM rejected_messages WHERE received_at < ?1 ORDER BY id LIMIT {limit}) RETURNING id AS k"),
                vec![SqlValue::Integer(self.cutoff_ms)],
            ),
            Table::LocalPoints => (
                format!("DELETE FROM analytics_points_local WHERE rowid IN (SELECT rowid FROM analytics_points_local WHERE timestamp < ?1 ORDER BY timestamp LIMIT {limit}) RETURNING rowid AS k"),
                vec![SqlValue::Text(self.cutoff_text.clone())],
            ),
            Table::GroupMessages => (
                format!("UPDATE error_groups SET last_message = '' WHERE fingerprint IN (SELECT fingerprint FROM error_groups WHERE last_seen < ?1 AND last_message != '' LIMIT {limit}) RETURNING fingerprint AS k"),
                vec![SqlValue::Integer(self.message_cutoff_ms)],
            ),
            Table::RejectedPayloads => (
                format!("UPDATE rejected_messages SET payload = NULL, detail = '' WHERE id IN (SELECT id FROM rejected_messages WHERE received_at < ?1 AND (payload IS NOT NULL OR detail != '') ORDER BY id LIMIT {limit}) RETURNING id AS k"),
                vec![SqlValue::Integer(self.payload_cutoff_ms)],
            ),
            Table::ForgottenUsers => (
                format!("DELETE FROM forgotten_users WHERE user_id IN (SELECT user_id FROM forgotten_users WHERE forgotten_at < ?1 LIMIT {limit}) RETURNING user_id AS k"),
                vec![SqlValue::Integer(self.forgotten_cutoff_ms)],
            ),
            Table::UserDays => (
                format!("DELETE FROM user_days WHERE (bot, day, user_id) IN (SELECT bot, day, user_id FROM user_days WHERE day < ?1 LIMIT {limit}) RETURNING day AS k"),
                vec![SqlValue::Integer(self.user_days_cutoff)],
            ),
            Table::UserEvents => (
                format!("DELETE FROM user_events WHERE event_id IN (SELECT event_id FROM user_events WHERE occurred_at < ?1 LIMIT {limit}) RETURNING event_id AS k"),
                vec![SqlValue::Integer(self.user_events_cutoff_ms)],
            ),
            Table::DailyRollup => (
                format!("DELETE FROM daily_rollup WHERE (bot, day) IN (SELECT bot, day FROM daily_rollup WHERE day < ?1 LIMIT {limit}) RETURNING day AS k"),
                vec![SqlValue::Integer(self.rollup_cutoff)],
            ),
        };
        Statement {
            sql,
            params,
            role: StatementRole::Deleted,
        }
    }

    fn state(&mut self, table: Table) -> Option<&mut TableState> {
        self.tables.iter_mut().find(|t| t.table == table)
    }

    /// Records a statement's result: the rows it returned (`k`, the deleted keys) and the rows
    /// written D1 reports, if it does.
    pub fn record(&mut self, table: Table, rows: &[Value], rows_written: Option<u64>) {
        let deleted = rows.len() as u64;
        self.written += rows_written.unwrap_or(deleted * table.write_cost());
        if let Some(state) = self.state(table) {
            state.deleted += deleted;
            if deleted < u64::from(CHUNK_ROWS) {
                state.done = true;
            }
            if table.walks_key() {
                let last = rows
                    .iter()
                    .filter_map(|r| r.get("k").and_then(Value::as_str))
                    .max();
                match last {
                    Some(key) if key > state.after.as_str() => state.after = key.to_string(),
                    // No progress on the key: stop this table for this run.
                    _ => state.done = true,
                }
            }
        }
    }

    /// Records a failed statement: the table is left for the next run.
    pub fn failed(&mut self, table: Table) {
        if let Some(state) = self.state(table) {
            state.done = true;
        }
    }

    /// What the run did so far.
    pub fn report(&self) -> RetentionReport {
        RetentionReport {
            deleted: self.tables.iter().map(|t| (t.table, t.deleted)).collect(),
            rows_written: self.written,
            statements: self.statements,
            finished: self.tables.iter().all(|t| t.done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_764_000_000_000;

    /// Runs a whole retention run against fake tables holding `old[i]` old rows each; returns
    /// the report and the rows left.
    fn simulate(old: &mut [u64; 11], config: RetentionConfig) -> RetentionReport {
        let mut run = Retention::new(NOW, config);
        let mut next_key = [0u64; 11];
        while let Some(step) = run.next_step() {
            let i = Table::ALL.iter().position(|t| *t == step.table).unwrap();
            assert!(
                step.statement.sql.contains("LIMIT 1000"),
                "{}",
                step.statement.sql
            );
            assert!(step.statement.sql.contains("?1"));
            let n = old[i].min(u64::from(CHUNK_ROWS));
            old[i] -= n;
            let rows: Vec<Value> = (0..n)
                .map(|_| {
                    next_key[i] += 1;
                    json!({"k": format!("{:016x}", next_key[i])})
                })
                .collect();
            run.record(step.table, &rows, None);
        }
        run.report()
    }

    #[test]
    fn retention_deletes_in_bounded_chunks() {
        let mut run = Retention::new(NOW, RetentionConfig::from_vars(None, None));
        let mut tables = Vec::new();
        while let Some(step) = run.next_step() {
            assert!(
                step.statement.sql.contains("LIMIT 1000"),
                "unbounded: {}",
                step.statement.sql
            );
            tables.push(step.table);
            run.record(step.table, &[], None);
        }
        assert_eq!(
            tables,
            Table::ALL,
            "every table once when there is nothing old"
        );
        assert!(run.report().finished);
    }

    #[test]
    fn a_backlog_stops_at_the_cap_and_the_next_run_continues() {
        let config = RetentionConfig::from_vars(Some("30"), None);
        let mut old = [100_000, 20_000, 20_000, 100, 20_000, 3_000, 50, 10, 0, 0, 0];
        let first = simulate(&mut old, config);
        assert!(!first.finished);
        assert!(first.rows_written >= DEFAULT_MAX_ROWS_WRITTEN);
        assert!(
            first.rows_written < DEFAULT_MAX_ROWS_WRITTEN + 5 * u64::from(CHUNK_ROWS),
            "at most one chunk past the cap: {}",
            first.rows_written
        );
        assert!(first.statements <= MAX_STATEMENTS_PER_RUN);
        // Tables take turns: the small ones are cleaned while the large one waits.
        assert_eq!(old[3], 0);
        let mut runs = 1;
        while !simulate(&mut old, config).finished {
            runs += 1;
            assert!(runs < 30, "no progress");
        }
        runs += 1;
        assert_eq!(old, [0; 11]);
        // 400,000 + 20,000 + 20,000 + 200 + 60,000 + 3,000 + 50 rows written at 50,000 a run.
        assert!((10..=14).contains(&runs), "{runs} runs");
    }

    #[test]
    fn the_statement_cap_holds_on_cheap_tables() {
        let config = RetentionConfig::from_vars(None, Some("100000000"));
        let mut old = [0, 200_000, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let report = simulate(&mut old, config);
        assert_eq!(report.statements, MAX_STATEMENTS_PER_RUN);
        // The ten clean tables take one statement each.
        assert_eq!(old[1], 200_000 - 30 * u64::from(CHUNK_ROWS));
        assert!(!report.finished);
    }

    #[test]
    fn key_walking_tables_resume_after_the_last_key_and_stop_without_progress() {
        let mut run = Retention::new(NOW, RetentionConfig::from_vars(None, None));
        let full: Vec<Value> = (0..CHUNK_ROWS)
            .map(|i| json!({"k": format!("{i:016x}")}))
            .collect();
        let step = loop {
            let step = run.next_step().unwrap();
            if step.table == Table::RequestAttempts {
                break step;
            }
            run.record(step.table, &[], None);
        };
        assert_eq!(step.statement.params[1], SqlValue::Text(String::new()));
        run.record(Table::RequestAttempts, &full, Some(1_000));
        let step = loop {
            let step = run.next_step().unwrap();
            if step.table == Table::RequestAttempts {
                break step;
            }
        };
        assert_eq!(
            step.statement.params[1],
            SqlValue::Text(format!("{:016x}", CHUNK_ROWS - 1))
        );
        // The same keys again: no progress, stop.
        run.record(Table::RequestAttempts, &full, None);
        assert!(run
            .report()
            .deleted
            .contains(&(Table::RequestAttempts, 2_000)));
        while let Some(step) = run.next_step() {
            assert_ne!(step.table, Table::RequestAttempts);
            run.failed(step.table);
        }
        assert!(run.report().finished);
    }

    #[test]
    fn group_messages_and_rejected_payloads_expire_on_their_own_schedule() {
        let config = RetentionConfig::from_vars(Some("30"), None).with_expiry(Some("3"), None);
        let mut run = Retention::new(NOW, config);
        let mut seen = Vec::new();
        while let Some(step) = run.next_step() {
            if matches!(step.table, Table::GroupMessages | Table::RejectedPayloads) {
                seen.push((step.table, step.statement.clone()));
            }
            run.record(step.table, &[], Some(0));
        }
        let (_, messages) = &seen[0];
        assert!(messages
            .sql
            .starts_with("UPDATE error_groups SET last_message = ''"));
        assert_eq!(messages.params, vec![SqlValue::Integer(NOW - 3 * DAY_MS)]);
        let (_, payloads) = &seen[1];
        assert!(payloads
            .sql
            .starts_with("UPDATE rejected_messages SET payload = NULL, detail = ''"));
        assert_eq!(
            payloads.params,
            vec![SqlValue::Integer(NOW - DEFAULT_PAYLOAD_DAYS * DAY_MS)]
        );
    }

    #[test]
    fn cutoffs_follow_the_configuration() {
        let mut run = Retention::new(NOW, RetentionConfig::from_vars(Some("7"), Some("x")));
        let first = run.next_step().unwrap();
        assert_eq!(
            first.statement.params,
            vec![SqlValue::Integer(NOW - 7 * DAY_MS)]
        );
        let defaults = RetentionConfig::from_vars(Some("0"), Some("-3"));
        assert_eq!(defaults.days, DEFAULT_RETENTION_DAYS);
        assert_eq!(defaults.max_rows_written, DEFAULT_MAX_ROWS_WRITTEN);
        for _ in 0..3 {
            let step = run.next_step().unwrap();
            if step.table == Table::RequestAttempts {
                assert_eq!(
                    step.statement.params[0],
                    SqlValue::Integer(NOW - 7 * DAY_MS)
                );
            }
        }
        let mut run = Retention::new(NOW, RetentionConfig::from_vars(Some("30"), None));
        let steps: Vec<Step> = std::iter::from_fn(|| run.next_step()).take(5).collect();
        assert_eq!(
            steps[4].statement.params,
            vec![SqlValue::Text("2025-10-25 16:00:00".into())]
        );
        assert_eq!(
            steps[2].statement.params[0],
            SqlValue::Integer(NOW - 7 * DAY_MS),
            "request keys: a week"
        );
        assert!(
            steps
                .iter()
                .all(|s| !s.statement.sql.contains("error_groups")),
            "groups keep their counts"
        );
    }
}
