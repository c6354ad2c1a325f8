//! Steps 2 to 4: the D1 transactions that store a plan, what their answers mean, and what
//! happens to every message when they cannot run.
//!
//! **First transaction** ([`commit_statements`]), all or nothing:
//! 1. claim request attempts: one row per request key, the first attempt stored wins
//!    (`request_attempts`, `ON CONFLICT DO NOTHING`);
//! 2. read the winning attempt of every request key of the batch;
//! 3. insert the error rows of winning attempts (and of events that carry no request), none
//!    of an id `forget` erased (`forgotten_users`: a record in flight cannot bring it back);
//!    then the owner analytics rows of the batch (`bot_users`, `user_days`, `user_events`,
//!    [`crate::audience`]), under the same guards;
//! 4. insert or claim the envelopes (with their events per kind, `kind_counts`): one statement
//!    inserts new envelopes (claimed by the insert) and claims existing ones whose points are
//!    not written and whose claim is free, expired, or held by the same writer, and returns
//!    the claimed keys;
//! 5. read every envelope's state; 6. insert rejected messages.
//!
//! Then the points of the claimed envelopes' kept events are written to Analytics Engine, and
//! the **second transaction** ([`AfterCommit::finish`]) marks them written, with the envelope's
//! duplicate counts (and the local mirror's rows in development).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::audience;
use crate::local_ae;
use crate::retry::Backoff;
use analytics_core::datapoint::DataPoint;

use crate::deferred::{self, Outgoing, PointsState, Record};
use crate::plan::{Accepted, BatchPlan, Content, Item};
use crate::{
    chunked_insert, json_chunks, BatchContext, IncomingMessage, IngestError, MessageAction,
    SqlValue, Statement, StatementRole,
};

/// How long a claim on an envelope's points holds, in milliseconds. Between its claim and its
/// mark, an invocation runs at most two D1 queries (each under D1's 30 s query limit) and a
/// synchronous Analytics Engine write; two minutes leave room. A claim older than this belongs
/// to an invocation that died: the next delivery takes it over and writes the points.
pub const CLAIM_TIMEOUT_MS: i64 = 120_000;

/// Deliveries retried in place before a message is deferred: a short D1 hiccup costs only
/// queue retries (2 s, then 4 s), with no points written ahead of D1. Must stay below
/// `max_retries` of both queue consumers (10 in `wrangler.consumer.toml`).
pub const RETRIES_BEFORE_DEFERRAL: u32 = 2;

fn json_each(
    sql_head: &str,
    rows: Vec<Value>,
    tail: &str,
    extra: &[SqlValue],
    role: StatementRole,
) -> Vec<Statement> {
    json_chunks(rows)
        .into_iter()
        .map(|chunk| {
            let mut params = vec![SqlValue::Text(chunk)];
            params.extend_from_slice(extra);
            Statement {
                sql: format!("{sql_head}{tail}"),
                params,
                role,
            }
        })
        .collect()
}

/// `json_extract(value, '$[0]'), …` for `n` columns.
fn columns(n: usize) -> String {
    (0..n)
        .map(|i| format!("json_extract(value, '$[{i}]')"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn accepted_items(plan: &BatchPlan) -> impl Iterator<Item = (&Item, &Accepted)> {
    plan.items
        .iter()
        .filter_map(|item| item.accepted().map(|a| (item, a)))
}

/// The first transaction: claims, error rows, envelopes, rejected messages (see the module
/// documentation). Run them with D1's `batch()` and read the answer with
/// [`CommitResult::read`].
pub fn commit_statements(plan: &BatchPlan, ctx: &BatchContext) -> Vec<Statement> {
    let mut statements = Vec::new();

    // 1–2. Request attempts: first stored wins; then read the winners.
    let mut claims = Vec::new();
    let mut seen = HashSet::new();
    let mut request_keys = Vec::new();
    for (item, accepted) in accepted_items(plan) {
        for request in accepted.events.iter().filter_map(|e| e.request.as_ref()) {
            if seen.insert(request) {
                if !request_keys.contains(&request.key) {
                    request_keys.push(request.key.clone());
                }
                claims.push(json!([
                    request.key,
                    request.attempt,
                    item.origin.received_at_ms
                ]));
            }
        }
    }
    statements.extend(json_each(
        &format!(
            "INSERT INTO request_attempts (request_key, attempt, received_at) SELECT {} FROM json_each(?1) WHERE true",
            columns(3)
        ),
        claims,
        " ON CONFLICT (request_key) DO NOTHING",
        &[],
        StatementRole::Write,
    ));
    statements.extend(json_each(
        "SELECT request_key, attempt FROM request_attempts WHERE request_key IN (SELECT value FROM json_each(?1))",
        request_keys.into_iter().map(Value::String).collect(),
        "",
        &[],
        StatementRole::Winners,
    ));

    // 3. Error rows of winning attempts, and of events with no request (version 1).
    let errors: Vec<Value> = accepted_items(plan)
        .flat_map(|(item, a)| a.events.iter().map(move |e| (item, e)))
        .filter_map(|(item, e)| {
            let row = e.error.as_ref()?;
            Some(json!([
                row.event_id,
                row.fingerprint,
                row.occurred_at_ms,
                item.origin.received_at_ms,
                row.kind,
                row.message,
                row.location,
                row.user_id,
                row.chat_id,
                row.bot,
                row.release,
                e.request.as_ref().map(|r| r.key.clone()),
                e.request.as_ref().map(|r| r.attempt),
            ]))
        })
        .collect();
    statements.extend(json_each(
        &format!(
            "INSERT OR IGNORE INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, location, user_id, chat_id, bot, release) \
             SELECT {} FROM json_each(?1) \
             WHERE (json_extract(value, '$[11]') IS NULL OR EXISTS (SELECT 1 FROM request_attempts r \
             WHERE r.request_key = json_extract(value, '$[11]') AND r.attempt = json_extract(value, '$[12]'))) \
             AND NOT EXISTS (SELECT 1 FROM forgotten_users f \
             WHERE f.user_id IN (json_extract(value, '$[7]'), json_extract(value, '$[8]')))",
            columns(11)
        ),
        errors,
        "",
        &[],
        StatementRole::Write,
    ));

    // 3b. Owner analytics: users, active days, exact user events (`crate::audience`), after
    // the claims (user events keep only winning attempts).
    let facts = accepted_items(plan).flat_map(|(_, a)| {
        a.events.iter().filter_map(move |e| {
            Some(audience::BatchFact {
                bot: &a.bot,
                fact: e.user.as_ref()?,
                request: e.request.as_ref(),
            })
        })
    });
    let (users, days, exact) = audience::json_rows(&audience::rows(facts));
    for (sql, rows) in [
        (audience::bot_users_sql(), users),
        (audience::user_days_sql(), days),
        (audience::user_events_sql(), exact),
    ] {
        statements.extend(json_each(&sql, rows, "", &[], StatementRole::Write));
    }

    // 4–5. Envelopes: insert or claim in one statement, then read their state.
    let mut envelopes = Vec::new();
    let mut keys = Vec::new();
    for (item, a) in accepted_items(plan) {
        let d = a.dropped;
        envelopes.push(json!([
            a.key,
            item.origin.message_id,
            a.bot,
            a.events.len(),
            d.send_failed,
            d.oversize,
            d.buffer_full,
            d.cancelled,
            item.origin.received_at_ms,
            item.deferrals,
            item.writer,
            audience::kind_counts(a.events.iter().map(|e| e.point.blobs[2].as_str())),
        ]));
        if !keys.contains(&a.key) {
            keys.push(a.key.clone());
        }
    }
    statements.extend(json_each(
        &format!(
            "INSERT INTO processed_envelopes (key, queue_message_id, bot, event_count, dropped_send_failed, dropped_oversize, \
             dropped_buffer_full, dropped_cancelled, received_at, deferrals, points_claimed_by, kind_counts, points_claimed_at) \
             SELECT {}, ?2 FROM json_each(?1) WHERE true",
            columns(12)
        ),
        envelopes,
        " ON CONFLICT (key) DO UPDATE SET points_claimed_by = excluded.points_claimed_by, points_claimed_at = excluded.points_claimed_at \
         WHERE processed_envelopes.points_written = 0 AND (processed_envelopes.points_claimed_at IS NULL \
         OR processed_envelopes.points_claimed_at < ?3 \
         OR processed_envelopes.points_claimed_by IN (excluded.points_claimed_by, excluded.queue_message_id)) \
         RETURNING key, points_claimed_by AS writer",
        &[
            SqlValue::Integer(ctx.now_ms),
            SqlValue::Integer(ctx.now_ms.saturating_sub(CLAIM_TIMEOUT_MS)),
        ],
        StatementRole::Claimed,
    ));
    statements.extend(json_each(
        "SELECT key, points_written, points_claimed_by, points_claimed_at FROM processed_envelopes \
         WHERE key IN (SELECT value FROM json_each(?1))",
        keys.into_iter().map(Value::String).collect(),
        "",
        &[],
        StatementRole::Envelopes,
    ));

    // 6. Rejected messages, with their payload.
    let rejected: Vec<Vec<SqlValue>> = plan
        .items
        .iter()
        .filter_map(|item| match &item.content {
            Content::Rejected(r) => Some(vec![
                SqlValue::Text(item.origin.queue.clone()),
                SqlValue::Text(item.origin.message_id.clone()),
                SqlValue::Text(r.reason.clone()),
                SqlValue::Text(r.detail.clone()),
                SqlValue::Blob(item.body.clone().unwrap_or_default()),
                SqlValue::Integer(if r.reason == crate::plan::DEFERRED_TOO_OFTEN {
                    ctx.now_ms
                } else {
                    item.origin.received_at_ms
                }),
            ]),
            Content::Envelope(_) => None,
        })
        .collect();
    statements.extend(chunked_insert(
        "INSERT OR IGNORE INTO rejected_messages (queue, message_id, reason, detail, payload, received_at)",
        6,
        rejected,
    ));
    statements
}

/// An envelope's bookkeeping after the first transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeState {
    /// Its points are marked written.
    pub written: bool,
    /// Who holds (or held) the claim on its points.
    pub claimed_by: Option<String>,
    /// When that claim was taken, ms since the epoch.
    pub claimed_at_ms: Option<i64>,
}

/// What the first transaction answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitResult {
    /// The winning attempt of each request key of the batch.
    pub winners: HashMap<String, u64>,
    /// Envelope keys the transaction claimed, with the writer that holds the claim.
    pub claimed: HashMap<String, String>,
    /// The state of every envelope of the batch.
    pub envelopes: HashMap<String, EnvelopeState>,
}

fn text(row: &Value, column: &str) -> Option<String> {
    row.get(column)?.as_str().map(str::to_string)
}

/// An integer column; D1 hands numbers to JavaScript as doubles, so accept integral floats.
fn integer(row: &Value, column: &str) -> Option<i64> {
    let v = row.get(column)?;
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|x| x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15)
            .map(|x| x as i64)
    })
}

impl CommitResult {
    /// Reads the rows D1 returned for `statements` (one list of rows per statement, as JSON
    /// objects keyed by column name).
    pub fn read(
        statements: &[Statement],
        rows: &[Vec<Value>],
    ) -> Result<CommitResult, IngestError> {
        if statements.len() != rows.len() {
            return Err(IngestError::ResultCount {
                sent: statements.len(),
                got: rows.len(),
            });
        }
        let mut result = CommitResult::default();
        for (statement, rows) in statements.iter().zip(rows) {
            for row in rows {
                let bad = || IngestError::BadRow {
                    role: statement.role,
                    row: row.to_string(),
                };
                match statement.role {
                    StatementRole::Write | StatementRole::Deleted | StatementRole::Alerts => {}
                    StatementRole::Winners => {
                        let key = text(row, "request_key").ok_or_else(bad)?;
                        let attempt = integer(row, "attempt")
                            .and_then(|a| u64::try_from(a).ok())
                            .ok_or_else(bad)?;
                        result.winners.insert(key, attempt);
                    }
                    StatementRole::Claimed => {
                        let key = text(row, "key").ok_or_else(bad)?;
                        let writer = text(row, "writer").ok_or_else(bad)?;
                        result.claimed.insert(key, writer);
                    }
                    StatementRole::Envelopes => {
                        let key = text(row, "key").ok_or_else(bad)?;
                        let state = EnvelopeState {
                            written: integer(row, "points_written").ok_or_else(bad)? != 0,
                            claimed_by: text(row, "points_claimed_by"),
                            claimed_at_ms: integer(row, "points_claimed_at"),
                        };
                        result.envelopes.insert(key, state);
                    }
                }
            }
        }
        Ok(result)
    }
}

/// Counts for the invocation's log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Envelopes whose points this invocation wrote or marked.
    pub stored: usize,
    /// Envelopes already stored by another delivery.
    pub duplicates: usize,
    /// Events dropped as duplicates of another attempt of their request.
    pub duplicate_events: usize,
    /// Messages kept aside in `rejected_messages`.
    pub rejected: usize,
    /// Data points written now.
    pub points: usize,
    /// Data points that reached Analytics Engine twice (written during an outage, then found
    /// to be duplicates).
    pub points_twice: usize,
}

/// What to do once the first transaction committed.
#[derive(Debug, Clone, PartialEq)]
pub struct AfterCommit<'p> {
    /// Analytics Engine points to write now (claimed envelopes, kept events).
    pub points: Vec<&'p DataPoint>,
    /// The second transaction: marks, duplicate counts, local mirror rows.
    pub finish: Vec<Statement>,
    /// Items with work in `finish` (deferred if it fails).
    pub finishing: Vec<usize>,
    /// Items whose points are in `points`.
    pub wrote: Vec<usize>,
    /// Items to put back on the queue: their envelope is claimed by another invocation.
    pub redefer: Vec<usize>,
    /// Items beyond the invocation's budget to send again as a fresh message, as
    /// [`BatchPlan::item`] numbers them (past `plan.items`): a retry in place would use up the
    /// message's `max_retries`.
    pub resend: Vec<usize>,
    /// One action per message, once `finish` committed.
    pub actions: Vec<MessageAction>,
    /// Counts for the log.
    pub summary: Summary,
}

/// Work for one envelope in the second transaction.
struct Finish<'p> {
    key: String,
    writer: String,
    mark: bool,
    duplicate_events: usize,
    twice: usize,
    mirror: Vec<&'p DataPoint>,
    mirror_at_ms: i64,
}

/// Decides, from what the first transaction answered, which points to write, what the second
/// transaction stores, and each message's action. `mirror` names the Analytics Engine
/// dataset when points are mirrored into D1 (`AE_LOCAL_MIRROR`, development only).
pub fn after_commit<'p>(
    plan: &'p BatchPlan,
    messages: &[IncomingMessage],
    result: &CommitResult,
    ctx: &BatchContext,
    mirror: Option<&str>,
) -> AfterCommit<'p> {
    let mut after = AfterCommit {
        points: Vec::new(),
        finish: Vec::new(),
        finishing: Vec::new(),
        wrote: Vec::new(),
        redefer: Vec::new(),
        resend: Vec::new(),
        actions: vec![MessageAction::Ack; messages.len()],
        summary: Summary::default(),
    };
    let mut finishes: Vec<Finish> = Vec::new();
    // Envelopes this batch marks written, and by which writer.
    let mut marked_here: HashMap<&str, &str> = HashMap::new();
    // (envelope, writer) pairs met so far: the same record twice in a batch counts once.
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for &i in &plan.over_budget {
        if resends(plan, messages, i) {
            let first = plan.items.len();
            after.resend.extend(
                plan.waiting
                    .iter()
                    .enumerate()
                    .filter(|(_, item)| item.message == i)
                    .map(|(w, _)| first + w),
            );
        } else {
            // Beyond the budget is not a failure: come back soon, without growing delays.
            after.actions[i] = MessageAction::Retry { delay_seconds: 1 };
        }
    }
    for (n, item) in plan.items.iter().enumerate() {
        let accepted = match &item.content {
            Content::Rejected(_) => {
                after.summary.rejected += 1;
                continue;
            }
            Content::Envelope(a) => a,
        };
        let key = accepted.key.as_str();
        let kept: Vec<bool> = accepted
            .events
            .iter()
            .map(|e| match &e.request {
                None => true,
                Some(r) => result.winners.get(&r.key).is_none_or(|w| *w == r.attempt),
            })
            .collect();
        let kept_points: Vec<&DataPoint> = accepted
            .events
            .iter()
            .zip(&kept)
            .filter(|(_, k)| **k)
            .map(|(e, _)| &e.point)
            .collect();
        let all_points: Vec<&DataPoint> = accepted.events.iter().map(|e| &e.point).collect();
        let duplicate_events = kept.iter().filter(|k| !**k).count();
        if !seen.insert((key, item.writer.as_str())) {
            after.summary.duplicates += 1;
            continue;
        }
        let state = result.envelopes.get(key);
        // The claim went to this writer, and no earlier item of the batch took it.
        let claimed =
            result.claimed.get(key) == Some(&item.writer) && !marked_here.contains_key(key);
        // An earlier delivery of this very writer already marked it (its answer was lost).
        let done_by_us =
            state.is_some_and(|s| s.written && s.claimed_by.as_ref() == Some(&item.writer));
        let written_elsewhere = state.is_some_and(|s| s.written) || marked_here.contains_key(key);
        let mut finish = |mark: bool, twice: usize, mirror: Vec<&'p DataPoint>, at: i64| {
            finishes.push(Finish {
                key: key.to_string(),
                writer: item.writer.clone(),
                mark,
                duplicate_events,
                twice,
                mirror,
                mirror_at_ms: at,
            });
            after.finishing.push(n);
        };
        if claimed {
            marked_here.insert(key, item.writer.as_str());
        }
        match item.points {
            PointsState::Pending if claimed => {
                after.summary.stored += 1;
                after.summary.duplicate_events += duplicate_events;
                after.summary.points += kept_points.len();
                after.points.extend(kept_points.iter().copied());
                after.wrote.push(n);
                finish(true, 0, kept_points, ctx.now_ms);
            }
            PointsState::Pending if written_elsewhere || done_by_us => {
                after.summary.duplicates += 1
            }
            PointsState::Pending => {
                // Another invocation holds a fresh claim: it writes the points, or dies and
                // its claim expires. Come back when it would have.
                let claimed_at = state.and_then(|s| s.claimed_at_ms).unwrap_or(ctx.now_ms);
                let wait_ms = claimed_at
                    .saturating_add(CLAIM_TIMEOUT_MS)
                    .saturating_sub(ctx.now_ms);
                let delay_seconds = (wait_ms.clamp(0, CLAIM_TIMEOUT_MS) / 1000 + 1) as u32;
                if item.deferrals == 0 {
                    after.actions[item.message] = MessageAction::Retry { delay_seconds };
                } else {
                    after.redefer.push(n);
                }
            }
            PointsState::WrittenAll { .. } | PointsState::WrittenKept { .. } if done_by_us => {
                after.summary.duplicates += 1;
            }
            PointsState::WrittenAll { at_ms } | PointsState::WrittenKept { at_ms } => {
                let written = if matches!(item.points, PointsState::WrittenAll { .. }) {
                    all_points
                } else {
                    kept_points
                };
                if claimed {
                    // Ours to mark. Written during an outage, the points of events that turn
                    // out to be another attempt's duplicates reached Analytics Engine anyway.
                    let twice = written.len()
                        - (accepted.events.len() - duplicate_events).min(written.len());
                    after.summary.stored += 1;
                    after.summary.duplicate_events += duplicate_events;
                    after.summary.points_twice += twice;
                    finish(true, twice, written, at_ms);
                } else {
                    // Another delivery wrote (or is writing) them too: count the extra ones.
                    after.summary.duplicates += 1;
                    after.summary.points_twice += written.len();
                    let twice = written.len();
                    finish(false, twice, written, at_ms);
                }
            }
        }
    }
    after.finish = finish_statements(&finishes, mirror);
    after
}

fn finish_statements(finishes: &[Finish], mirror: Option<&str>) -> Vec<Statement> {
    let mut statements = Vec::new();
    if let Some(dataset) = mirror {
        // The local mirror: what Analytics Engine received, written in the transaction that
        // marks it, so it never doubles where real Analytics Engine would not. Points that
        // another delivery also wrote are mirrored once per writer (the same guard as their
        // count below), and before that count, which the guard reads.
        let mut by_time: Vec<(i64, Vec<&DataPoint>)> = Vec::new();
        for f in finishes.iter().filter(|f| !f.mirror.is_empty()) {
            if !f.mark {
                statements.push(Statement::write(
                    format!(
                        "{} WHERE NOT EXISTS (SELECT 1 FROM processed_envelopes WHERE key = ?2 \
                         AND instr(coalesce(points_twice_by, ''), '|' || ?3 || '|') > 0)",
                        local_ae::insert_sql()
                    ),
                    vec![
                        SqlValue::Text(mirror_rows(dataset, f.mirror_at_ms, &f.mirror)),
                        SqlValue::Text(f.key.clone()),
                        SqlValue::Text(f.writer.clone()),
                    ],
                ));
                continue;
            }
            match by_time.iter_mut().find(|(at, _)| *at == f.mirror_at_ms) {
                Some((_, points)) => points.extend(f.mirror.iter().copied()),
                None => by_time.push((f.mirror_at_ms, f.mirror.clone())),
            }
        }
        for (at_ms, points) in by_time {
            statements.push(Statement::write(
                local_ae::insert_sql(),
                vec![SqlValue::Text(mirror_rows(dataset, at_ms, &points))],
            ));
        }
    }
    // Marks and counts. `UPDATE … FROM` applies one matching row per envelope, so an envelope
    // met twice in the batch (two writers) gets a second statement.
    let mut rounds: Vec<Vec<Value>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for f in finishes {
        let round = seen.entry(f.key.as_str()).or_insert(0);
        if rounds.len() <= *round {
            rounds.push(Vec::new());
        }
        rounds[*round].push(json!([
            f.key,
            u8::from(f.mark),
            f.duplicate_events,
            f.twice,
            f.writer
        ]));
        *round += 1;
    }
    // The extra points of a writer are counted once, even if this transaction's answer is lost
    // and its record is stored again.
    let counted =
        "instr(coalesce(points_twice_by, ''), '|' || json_extract(j.value, '$[4]') || '|') > 0";
    for rows in rounds {
        statements.extend(json_each(
            &format!(
                "UPDATE processed_envelopes SET \
                 points_written = max(points_written, json_extract(j.value, '$[1]')), \
                 duplicate_events = CASE WHEN json_extract(j.value, '$[1]') = 1 THEN json_extract(j.value, '$[2]') ELSE duplicate_events END, \
                 points_written_twice = points_written_twice + CASE WHEN {counted} THEN 0 ELSE json_extract(j.value, '$[3]') END, \
                 points_twice_by = CASE WHEN json_extract(j.value, '$[3]') = 0 OR {counted} THEN points_twice_by \
                 ELSE coalesce(points_twice_by, '|') || json_extract(j.value, '$[4]') || '|' END \
                 FROM json_each(?1) AS j WHERE processed_envelopes.key = json_extract(j.value, '$[0]')"
            ),
            rows,
            "",
            &[],
            StatementRole::Write,
        ));
    }
    statements
}

fn mirror_rows(dataset: &str, at_ms: i64, points: &[&DataPoint]) -> String {
    let written_at = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    local_ae::rows_json(dataset, written_at, points)
}

/// What to do when the batch (or part of it) cannot be stored now: messages to put back on the
/// queue, points to write once they are sent, and each message's action either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback<'p> {
    /// Deferred messages to send to the consumer's own queue.
    pub outgoing: Vec<Outgoing>,
    /// For each of `outgoing`, the items it carries.
    pub carries: Vec<Vec<usize>>,
    /// Points of items whose record says they are written: to write once the message carrying
    /// the item was sent, never before.
    pub early: Vec<(usize, Vec<&'p DataPoint>)>,
    /// One action per message when every message carrying one of its items was sent (or
    /// there is nothing to send).
    pub actions: Vec<MessageAction>,
    /// One action per message when one of them could not be sent.
    pub actions_if_unsent: Vec<MessageAction>,
    /// Records that should have been deferred but are too large for a queue message (their
    /// marks are lost; logged).
    pub unsendable: usize,
}

impl<'p> Fallback<'p> {
    /// Resolves the fallback once the sends are done (`sent[i]` for `outgoing[i]`): each
    /// message's action, and the points now to write (of items in sent messages only).
    pub fn resolve(
        &self,
        plan: &BatchPlan,
        sent: &[bool],
    ) -> (Vec<MessageAction>, Vec<&'p DataPoint>) {
        let mut actions = self.actions.clone();
        let mut unsent_items = HashSet::new();
        for (carried, ok) in self
            .carries
            .iter()
            .zip(sent.iter().chain(std::iter::repeat(&false)))
        {
            if !ok {
                unsent_items.extend(carried.iter().copied());
            }
        }
        let mut unsent_items: Vec<usize> = unsent_items.into_iter().collect();
        unsent_items.sort_unstable();
        for &n in &unsent_items {
            let Some(item) = plan.item(n) else { continue };
            if n < plan.items.len() {
                actions[item.message] = self.actions_if_unsent[item.message].clone();
            } else if actions[item.message] == MessageAction::Ack {
                // A waiting item that was not sent again: its message must come back.
                actions[item.message] = MessageAction::Retry {
                    delay_seconds: deferred::RESEND_DELAY_SECONDS,
                };
            }
        }
        let points = self
            .early
            .iter()
            .filter(|(n, _)| unsent_items.binary_search(n).is_err())
            .flat_map(|(_, points)| points.iter().copied())
            .collect();
        (actions, points)
    }

    /// Records put back on the queue.
    pub fn deferred_records(&self) -> usize {
        self.carries.iter().map(Vec::len).sum()
    }
}

/// Packs items as deferred records; `records[i]` is item `items[i]`'s record with its pending
/// points. Returns the messages, which items each carries, and the positions too large.
fn pack_items(
    items: &[usize],
    records: &[(Record, usize)],
    now_ms: i64,
) -> (Vec<Outgoing>, Vec<Vec<usize>>, Vec<usize>) {
    let (outgoing, too_large) =
        deferred::pack(records, deferred::PENDING_POINTS_PER_MESSAGE, now_ms);
    let carries = outgoing
        .iter()
        .map(|o| o.members.iter().map(|&i| items[i]).collect())
        .collect();
    (outgoing, carries, too_large)
}

/// Whether message `m`'s items beyond the budget are sent again as a fresh message rather than
/// retried in place: always when some of its items are stored now (a deferred message is
/// split), else once it was retried [`RETRIES_BEFORE_DEFERRAL`] times, as a failing message is
/// deferred: a message retried in place whenever the budget is taken by others would use up
/// its `max_retries`, then the dead letter queue's, and be deleted.
fn resends(plan: &BatchPlan, messages: &[IncomingMessage], m: usize) -> bool {
    plan.admits(m) || messages[m].attempts > RETRIES_BEFORE_DEFERRAL
}

/// Packs the records of waiting items (`items`, as [`BatchPlan::item`] numbers them) into
/// fresh messages visible at once, their deferral count unchanged.
fn pack_resent(
    plan: &BatchPlan,
    items: &[usize],
    now_ms: i64,
) -> (Vec<Outgoing>, Vec<Vec<usize>>, Vec<usize>) {
    let records: Vec<(Record, usize)> = items
        .iter()
        .filter_map(|&n| plan.item(n))
        .map(|item| {
            let mut record = item.deferred_record();
            record.deferrals = item.deferrals;
            (record, item.pending_points())
        })
        .collect();
    let (mut outgoing, carries, too_large) = pack_items(items, &records, now_ms);
    for o in &mut outgoing {
        o.delay_seconds = deferred::RESEND_DELAY_SECONDS;
    }
    (outgoing, carries, too_large)
}

/// Why the batch cannot be stored now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The first D1 transaction failed (or there is no D1 binding): Analytics Engine still
    /// takes the points.
    D1,
    /// No Analytics Engine binding: no point can be written, and none may be marked.
    Analytics,
}

/// The backoff of retries in place.
fn retry(backoff: &Backoff, attempts: u32) -> MessageAction {
    MessageAction::Retry {
        delay_seconds: backoff.delay_seconds(attempts),
    }
}

/// The batch's first transaction failed, or Analytics Engine is missing. Original messages are
/// retried in place for their first [`RETRIES_BEFORE_DEFERRAL`] deliveries (a blip costs no
/// early points); after that, and at once for deferred messages, every item is deferred as a
/// fresh message and, when only D1 is out, its points are written once that message is sent
/// (so Analytics Engine is current during the outage). Without `can_defer` (no queue binding)
/// every message is retried in place, as before deferral existed.
pub fn cannot_store<'p>(
    plan: &'p BatchPlan,
    messages: &[IncomingMessage],
    ctx: &BatchContext,
    why: Unavailable,
    can_defer: bool,
) -> Fallback<'p> {
    let backoff = Backoff::default();
    let in_place: Vec<MessageAction> = messages
        .iter()
        .map(|m| retry(&backoff, m.attempts))
        .collect();
    let mut actions = in_place.clone();
    for &i in &plan.over_budget {
        actions[i] = MessageAction::Retry { delay_seconds: 1 };
    }
    let mut defer_messages: Vec<usize> = Vec::new();
    if can_defer {
        for item in plan.items.iter().chain(&plan.waiting) {
            let deferred_kind = item.deferrals > 0;
            let tired = messages[item.message].attempts > RETRIES_BEFORE_DEFERRAL;
            if (deferred_kind || tired) && !defer_messages.contains(&item.message) {
                defer_messages.push(item.message);
            }
        }
    }
    // A message with a record too large to travel (only another sender's message near the
    // Queues limit can be) stays on retries in place, its points unwritten.
    loop {
        let mut items = Vec::new();
        let mut records = Vec::new();
        let mut early = Vec::new();
        // Waiting items (past `plan.items`) go too, their points pending: no budget is left.
        for (n, item) in plan.items.iter().chain(&plan.waiting).enumerate() {
            if !defer_messages.contains(&item.message) {
                continue;
            }
            let mut record = item.deferred_record();
            let mut pending = item.pending_points();
            if why == Unavailable::D1 && pending > 0 && n < plan.items.len() {
                // Written as soon as the record saying so is on the queue.
                record.points = PointsState::WrittenAll { at_ms: ctx.now_ms };
                record.writer = format!("{}@{}", item.origin.message_id, ctx.now_ms);
                if let Some(a) = item.accepted() {
                    early.push((n, a.events.iter().map(|e| &e.point).collect()));
                }
                pending = 0;
            }
            items.push(n);
            records.push((record, pending));
        }
        let (outgoing, carries, too_large) = pack_items(&items, &records, ctx.now_ms);
        if !too_large.is_empty() {
            let stuck: Vec<usize> = too_large
                .iter()
                .filter_map(|&i| plan.item(items[i]).map(|item| item.message))
                .collect();
            defer_messages.retain(|m| !stuck.contains(m));
            continue;
        }
        let actions_if_unsent = actions.clone();
        for &m in &defer_messages {
            actions[m] = MessageAction::Ack;
        }
        return Fallback {
            outgoing,
            carries,
            early,
            actions,
            actions_if_unsent,
            unsendable: 0,
        };
    }
}

/// After the first transaction: settles the batch once the second transaction ran
/// (`finished`) or failed. Items put back on the queue ([`AfterCommit::redefer`]) are sent
/// either way; when the second transaction failed, every item of a message that had work in it
/// is deferred too, saying its points were written, so its marks land later and no delivery
/// writes them again. Those messages are acknowledged even if the send fails: their points are
/// in Analytics Engine and a redelivery would write them twice.
pub fn settle<'p>(
    plan: &'p BatchPlan,
    after: &AfterCommit,
    ctx: &BatchContext,
    finished: bool,
) -> Fallback<'p> {
    let mut actions = after.actions.clone();
    let mut if_unsent = after.actions.clone();
    let mut defer: Vec<usize> = after.redefer.clone();
    for &n in &after.redefer {
        if_unsent[plan.items[n].message] = MessageAction::Retry { delay_seconds: 1 };
    }
    if !finished {
        let messages: HashSet<usize> = after
            .finishing
            .iter()
            .map(|&n| plan.items[n].message)
            .collect();
        for (n, item) in plan.items.iter().enumerate() {
            if messages.contains(&item.message) && !defer.contains(&n) {
                defer.push(n);
            }
        }
        for &m in &messages {
            actions[m] = MessageAction::Ack;
            if_unsent[m] = MessageAction::Ack;
        }
    }
    defer.sort_unstable();
    let records: Vec<(Record, usize)> = defer
        .iter()
        .map(|&n| {
            let item = &plan.items[n];
            let mut record = item.deferred_record();
            if after.wrote.contains(&n) {
                record.points = PointsState::WrittenKept { at_ms: ctx.now_ms };
            }
            let pending = match record.points {
                PointsState::Pending => item.pending_points(),
                _ => 0,
            };
            (record, pending)
        })
        .collect();
    let (mut outgoing, mut carries, too_large) = pack_items(&defer, &records, ctx.now_ms);
    let (resent, resent_carries, stuck) = pack_resent(plan, &after.resend, ctx.now_ms);
    outgoing.extend(resent);
    carries.extend(resent_carries);
    for &i in &stuck {
        // Too large to travel again (only another sender's message near the Queues limit can
        // be): its message is retried in place.
        if let Some(item) = plan.item(after.resend[i]) {
            let retry = MessageAction::Retry {
                delay_seconds: deferred::RESEND_DELAY_SECONDS,
            };
            actions[item.message] = retry.clone();
            if_unsent[item.message] = retry;
        }
    }
    Fallback {
        outgoing,
        carries,
        early: Vec::new(),
        actions,
        actions_if_unsent: if_unsent,
        unsendable: too_large.len(),
    }
}
