//! The consumer's SQL against a real SQLite with the project's migrations: what D1 does with
//! the statements `ingest_policy` builds, run the way the consumer Worker runs them (one
//! transaction per `batch()`), including failures before and after a commit.

use rusqlite::types::{Value as Sql, ValueRef};
use std::collections::HashMap;

use analytics_core::ids::update_request_key;
use analytics_core::{encode, samples, Tracker};
use ingest_policy::deferred;
use ingest_policy::retention::{Retention, RetentionConfig};
use ingest_policy::store::CLAIM_TIMEOUT_MS;
use ingest_policy::*;
use rusqlite::Connection;
use serde_json::{json, Map, Value};

const NOW: i64 = 1_764_000_001_000;
const DATASET: &str = "telegram_bot_events";

struct Db(Connection);

impl Db {
    fn migrated() -> Db {
        let conn = Connection::open_in_memory().unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        for f in files {
            conn.execute_batch(&std::fs::read_to_string(f).unwrap())
                .unwrap();
        }
        Db(conn)
    }

    /// Runs statements in one transaction (D1's `batch()`): all rows of each, or an error and
    /// nothing changed.
    fn batch(&self, statements: &[Statement]) -> rusqlite::Result<Vec<Vec<Value>>> {
        let tx = self.0.unchecked_transaction()?;
        let mut out = Vec::new();
        for s in statements {
            let params: Vec<Sql> = s
                .params
                .iter()
                .map(|p| match p {
                    SqlValue::Text(t) => Sql::Text(t.clone()),
                    SqlValue::Integer(n) => Sql::Integer(*n),
                    SqlValue::Real(x) => Sql::Real(*x),
                    SqlValue::Blob(b) => Sql::Blob(b.clone()),
                    SqlValue::Null => Sql::Null,
                })
                .collect();
            let mut stmt = tx.prepare(&s.sql)?;
            let names: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
            let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
            let mut result = Vec::new();
            while let Some(row) = rows.next()? {
                let mut object = Map::new();
                for (i, name) in names.iter().enumerate() {
                    let value = match row.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(n) => json!(n),
                        ValueRef::Real(x) => json!(x),
                        ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                        ValueRef::Blob(b) => json!(b),
                    };
                    object.insert(name.clone(), value);
                }
                result.push(Value::Object(object));
            }
            out.push(result);
        }
        tx.commit()?;
        Ok(out)
    }

    fn count(&self, sql: &str) -> i64 {
        self.0.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

fn message(id: &str, attempts: u32, body: Vec<u8>) -> IncomingMessage {
    IncomingMessage {
        id: id.into(),
        attempts,
        body: Ok(body),
    }
}

fn ctx(now_ms: i64) -> BatchContext<'static> {
    BatchContext {
        queue: "telegram-analytics",
        now_ms,
        point_budget: 250,
    }
}

/// How a D1 call goes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum D1 {
    Up,
    Down,
    /// Commits, then reports a failure (a lost answer).
    LostAnswer,
    /// Fails every transaction that binds this text (a record that can never commit).
    Refuses(&'static str),
}

/// One consumer invocation, carried out like the Worker does it.
#[derive(Debug, Default)]
struct Invocation {
    /// Event ids (blob7) of the points written to Analytics Engine.
    points: Vec<String>,
    actions: Vec<MessageAction>,
    /// Deferred messages sent to the queue, with their delay.
    sent: Vec<(Vec<u8>, u32)>,
    /// D1 statements run (both transactions).
    statements: usize,
}

fn run_d1(db: &Db, statements: &[Statement], d1: D1) -> Option<Vec<Vec<Value>>> {
    match d1 {
        D1::Up => Some(db.batch(statements).unwrap()),
        D1::Down => None,
        D1::LostAnswer => {
            db.batch(statements).unwrap();
            None
        }
        D1::Refuses(text) => {
            let binds = statements.iter().flat_map(|s| &s.params).any(|p| match p {
                SqlValue::Text(t) => t.contains(text),
                _ => false,
            });
            (!binds).then(|| db.batch(statements).unwrap())
        }
    }
}

fn event_id(point: &analytics_core::datapoint::DataPoint) -> String {
    point.blobs[6].clone()
}

fn apply_fallback(inv: &mut Invocation, plan: &BatchPlan, fallback: Fallback, send_ok: bool) {
    let sent = vec![send_ok; fallback.outgoing.len()];
    let (actions, points) = fallback.resolve(plan, &sent);
    if send_ok {
        inv.sent.extend(
            fallback
                .outgoing
                .iter()
                .map(|o| (o.bytes.clone(), o.delay_seconds)),
        );
    }
    inv.points.extend(points.iter().map(|p| event_id(p)));
    inv.actions = actions;
}

/// `commit` and `finish` say how the two D1 transactions go; `analytics` whether the binding
/// exists.
fn invoke(
    db: &Db,
    batch: &[IncomingMessage],
    now: i64,
    commit: D1,
    finish: D1,
    analytics: bool,
) -> Invocation {
    invoke_sending(db, batch, now, commit, finish, analytics, true)
}

/// The same, with the queue refusing (`send_ok = false`) the deferred messages.
fn invoke_sending(
    db: &Db,
    batch: &[IncomingMessage],
    now: i64,
    commit: D1,
    finish: D1,
    analytics: bool,
    send_ok: bool,
) -> Invocation {
    invoke_full(
        db, MAIN_QUEUE, batch, now, commit, finish, analytics, send_ok,
    )
}

/// The same, for a batch of the queue named `queue`.
#[allow(clippy::too_many_arguments)]
fn invoke_full(
    db: &Db,
    queue: &'static str,
    batch: &[IncomingMessage],
    now: i64,
    commit: D1,
    finish: D1,
    analytics: bool,
    send_ok: bool,
) -> Invocation {
    let ctx = BatchContext { queue, ..ctx(now) };
    let plan = plan_batch(batch, &ctx);
    let mut inv = Invocation::default();
    if !analytics {
        let fallback = cannot_store(&plan, batch, &ctx, Unavailable::Analytics, true);
        apply_fallback(&mut inv, &plan, fallback, send_ok);
        return inv;
    }
    let statements = commit_statements(&plan, &ctx);
    inv.statements = statements.len();
    let Some(rows) = run_d1(db, &statements, commit) else {
        let fallback = cannot_store(&plan, batch, &ctx, Unavailable::D1, true);
        apply_fallback(&mut inv, &plan, fallback, send_ok);
        return inv;
    };
    let result = CommitResult::read(&statements, &rows).unwrap();
    // Every invocation of every test stays within the plan's bound (the development-only
    // mirror aside).
    let marks = after_commit(&plan, batch, &result, &ctx, None).finish.len();
    assert!(
        statements.len() + marks <= MAX_D1_STATEMENTS_PER_INVOCATION,
        "{} + {marks} statements",
        statements.len()
    );
    let after = after_commit(&plan, batch, &result, &ctx, Some(DATASET));
    inv.points.extend(after.points.iter().map(|p| event_id(p)));
    inv.statements += after.finish.len();
    let finished = after.finish.is_empty() || run_d1(db, &after.finish, finish).is_some();
    let fallback = settle(&plan, &after, &ctx, finished);
    apply_fallback(&mut inv, &plan, fallback, send_ok);
    inv
}

fn typical() -> Vec<u8> {
    encode(&samples::typical_envelope()).unwrap()
}

fn errors() -> Vec<u8> {
    encode(&samples::error_envelope()).unwrap()
}

/// Rows of the local mirror: what Analytics Engine received.
fn mirrored(db: &Db) -> i64 {
    db.count("SELECT count(*) FROM analytics_points_local")
}

#[test]
fn two_batches_holding_the_same_envelope_write_its_points_once() {
    let db = Db::migrated();
    let a = vec![message("a", 1, typical())];
    let b = vec![message("b", 1, typical())];
    // Both invocations commit their first transaction before either marks the points.
    let ctx = ctx(NOW);
    let plan_a = plan_batch(&a, &ctx);
    let plan_b = plan_batch(&b, &ctx);
    let s_a = commit_statements(&plan_a, &ctx);
    let s_b = commit_statements(&plan_b, &ctx);
    let r_a = CommitResult::read(&s_a, &db.batch(&s_a).unwrap()).unwrap();
    let r_b = CommitResult::read(&s_b, &db.batch(&s_b).unwrap()).unwrap();
    let after_a = after_commit(&plan_a, &a, &r_a, &ctx, Some(DATASET));
    let after_b = after_commit(&plan_b, &b, &r_b, &ctx, Some(DATASET));
    db.batch(&after_a.finish).unwrap();
    db.batch(&after_b.finish).unwrap();
    assert_eq!(
        after_a.points.len() + after_b.points.len(),
        5,
        "the envelope's 5 points are written by one invocation only"
    );
    // The loser comes back when the winner's claim would have expired, and finds it written.
    let MessageAction::Retry { delay_seconds } = after_b.actions[0] else {
        panic!("{:?}", after_b.actions)
    };
    assert!(u64::from(delay_seconds) * 1000 >= CLAIM_TIMEOUT_MS as u64);
    let again = invoke(
        &db,
        &b,
        NOW + 1000 * i64::from(delay_seconds),
        D1::Up,
        D1::Up,
        true,
    );
    assert!(again.points.is_empty());
    assert_eq!(again.actions, vec![MessageAction::Ack]);
    assert_eq!(mirrored(&db), 5);
}

/// The claim statement of the first transaction, alone, for `writer`.
fn claim(db: &Db, bytes: &[u8], writer: &str, now: i64) -> Vec<String> {
    let batch = vec![message(writer, 1, bytes.to_vec())];
    let statements = commit_statements(&plan_batch(&batch, &ctx(now)), &ctx(now));
    let rows = db.batch(&statements).unwrap();
    let result = CommitResult::read(&statements, &rows).unwrap();
    result.claimed.into_keys().collect()
}

#[test]
fn of_two_claims_on_one_envelope_one_wins_and_an_expired_claim_is_taken_over() {
    let db = Db::migrated();
    let bytes = typical();
    assert_eq!(claim(&db, &bytes, "first", NOW).len(), 1);
    assert!(claim(&db, &bytes, "second", NOW + 1_000).is_empty(), "held");
    assert_eq!(
        claim(&db, &bytes, "first", NOW + 2_000).len(),
        1,
        "its own claim"
    );
    assert!(claim(&db, &bytes, "second", NOW + 2_000 + CLAIM_TIMEOUT_MS - 1).is_empty());
    assert_eq!(
        claim(&db, &bytes, "second", NOW + 2_000 + CLAIM_TIMEOUT_MS + 1).len(),
        1,
        "a claim older than the timeout belongs to a dead invocation"
    );
    db.0.execute("UPDATE processed_envelopes SET points_written = 1", [])
        .unwrap();
    assert!(
        claim(&db, &bytes, "third", NOW + 10 * CLAIM_TIMEOUT_MS).is_empty(),
        "written"
    );
}

fn update_events(tracker: &Tracker<fn() -> f64>) {
    tracker.track("message", [("chat_type", "private")]);
    tracker.track_error_message(
        "telegram_api",
        "Bad Request: chat not found",
        "bot_api:sendMessage",
    );
}

fn flush(tracker: &Tracker<fn() -> f64>) -> Vec<u8> {
    tracker.flush()[0].bytes.clone()
}

#[test]
fn a_redelivered_update_stores_the_events_of_one_attempt() {
    let db = Db::migrated();
    let key = update_request_key("telegram-bot:123", 42);
    let first = samples::attempt_tracker(key, 1);
    update_events(&first);
    let second = samples::attempt_tracker(key, 2);
    update_events(&second);
    let a = invoke(
        &db,
        &[message("a", 1, flush(&first))],
        NOW,
        D1::Up,
        D1::Up,
        true,
    );
    let b = invoke(
        &db,
        &[message("b", 1, flush(&second))],
        NOW + 5,
        D1::Up,
        D1::Up,
        true,
    );
    assert_eq!(
        a.points.len() + b.points.len(),
        2,
        "one attempt's two events"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM error_events"),
        1,
        "one error row"
    );
    assert_eq!(db.count("SELECT SUM(count) FROM error_groups"), 1);
    assert_eq!(
        db.count("SELECT SUM(duplicate_events) FROM processed_envelopes"),
        2,
        "the second attempt's events are counted as duplicates"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM request_attempts"),
        1,
        "one row per request"
    );
}

#[test]
fn a_request_split_over_several_messages_keeps_every_part() {
    let db = Db::migrated();
    let key = update_request_key("telegram-bot:123", 43);
    let first = samples::attempt_tracker(key, 1);
    update_events(&first);
    let one = flush(&first);
    update_events(&first);
    let two = flush(&first);
    let again = samples::attempt_tracker(key, 2);
    update_events(&again);
    update_events(&again);
    let redelivery = flush(&again);
    // The redelivery's message arrives between the two parts, in the same batch.
    let inv = invoke(
        &db,
        &[
            message("1", 1, one),
            message("r", 1, redelivery),
            message("2", 1, two),
        ],
        NOW,
        D1::Up,
        D1::Up,
        true,
    );
    assert_eq!(inv.points.len(), 4);
    assert_eq!(mirrored(&db), 4);
    assert_eq!(db.count("SELECT count(*) FROM error_events"), 2);
    assert_eq!(
        db.count("SELECT duplicate_events FROM processed_envelopes WHERE queue_message_id = 'r'"),
        4
    );
    // Version 1 envelopes (random UUIDv7 ids) are keyed by their whole event id: no claim row.
    let mut v1 = samples::typical_envelope();
    v1.version = 1;
    invoke(
        &db,
        &[message("v1", 1, encode(&v1).unwrap())],
        NOW,
        D1::Up,
        D1::Up,
        true,
    );
    assert_eq!(mirrored(&db), 9);
    assert_eq!(db.count("SELECT count(*) FROM request_attempts"), 1);
}

#[test]
fn two_different_drop_only_envelopes_both_get_their_drop_counts_stored() {
    let db = Db::migrated();
    let batch = [
        message("a", 1, encode(&samples::drop_only_envelope(200)).unwrap()),
        message("b", 1, encode(&samples::drop_only_envelope(201)).unwrap()),
    ];
    invoke(&db, &batch, NOW, D1::Up, D1::Up, true);
    assert_eq!(
        db.count("SELECT sum(dropped_buffer_full) FROM processed_envelopes"),
        401
    );
    assert_eq!(
        db.count("SELECT sum(dropped_cancelled) FROM processed_envelopes"),
        2
    );
}

#[test]
fn an_event_dated_1970_does_not_move_first_seen() {
    let db = Db::migrated();
    let mut envelope = samples::error_envelope();
    envelope.events[0].timestamp = chrono::DateTime::UNIX_EPOCH;
    invoke(
        &db,
        &[message("e", 1, encode(&envelope).unwrap())],
        NOW,
        D1::Up,
        D1::Up,
        true,
    );
    let first_seen = db.count("SELECT first_seen FROM error_groups");
    assert_eq!(
        first_seen,
        envelope.sent_at.timestamp_millis() - analytics_core::skew::MAX_EVENT_LEAD_MS
    );
}

/// The main queue and its dead letter queue, as `wrangler.consumer.toml` names them.
const MAIN_QUEUE: &str = "telegram-analytics";
const DEAD_LETTER_QUEUE: &str = "telegram-analytics-dlq";

/// `max_retries` of both queue consumers in `wrangler.consumer.toml`.
const MAX_RETRIES: u32 = 10;

/// One message on the simulated queue.
struct Queued {
    id: String,
    bytes: Vec<u8>,
    visible_at: i64,
    /// Deliveries so far (the runtime's `attempts` counts this one and the earlier ones).
    attempts: u32,
    /// On the dead letter queue.
    dead: bool,
    seq: u64,
}

/// A local queue with its dead letter queue, enforcing `max_retries` like Cloudflare Queues:
/// a message retried after its `max_retries + 1`-th delivery moves to the dead letter queue
/// (delivered again from attempt 1); one that exhausts the dead letter queue's retries too is
/// deleted: lost, and listed in `lost`.
struct Queue {
    messages: Vec<Queued>,
    next_id: u32,
    seq: u64,
    max_retries: u32,
    /// Ids of messages deleted after their last retry on the dead letter queue.
    lost: Vec<String>,
    /// Best-effort order: when set, the visible messages come in a random order.
    shuffle: Option<Rng>,
    /// The queue the last batch came from.
    last_queue: &'static str,
    /// Messages moved to the dead letter queue so far.
    dead_lettered: usize,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            messages: Vec::new(),
            next_id: 0,
            seq: 0,
            max_retries: MAX_RETRIES,
            lost: Vec::new(),
            shuffle: None,
            last_queue: MAIN_QUEUE,
            dead_lettered: 0,
        }
    }
}

impl Queue {
    /// A queue whose batches take visible messages in a random (seeded) order.
    fn shuffled(seed: u64) -> Queue {
        Queue {
            shuffle: Some(Rng(seed)),
            ..Queue::default()
        }
    }

    fn send(&mut self, bytes: Vec<u8>, visible_at: i64) {
        self.next_id += 1;
        self.seq += 1;
        self.messages.push(Queued {
            id: format!("q{}", self.next_id),
            bytes,
            visible_at,
            attempts: 0,
            dead: false,
            seq: self.seq,
        });
    }

    /// Up to 10 visible messages of one queue (the main queue first), oldest visible first,
    /// or in a random order.
    fn batch(&mut self, now: i64) -> Vec<IncomingMessage> {
        let dead = !self.messages.iter().any(|m| !m.dead && m.visible_at <= now);
        self.last_queue = if dead { DEAD_LETTER_QUEUE } else { MAIN_QUEUE };
        let mut visible: Vec<usize> = (0..self.messages.len())
            .filter(|&i| self.messages[i].dead == dead && self.messages[i].visible_at <= now)
            .collect();
        visible.sort_by_key(|&i| (self.messages[i].visible_at, self.messages[i].seq));
        if let Some(rng) = &mut self.shuffle {
            for i in (1..visible.len()).rev() {
                let j = ((rng.next() * (i + 1) as f64) as usize).min(i);
                visible.swap(i, j);
            }
        }
        visible
            .into_iter()
            .take(10)
            .map(|i| {
                let m = &mut self.messages[i];
                m.attempts += 1;
                message(&m.id, m.attempts, m.bytes.clone())
            })
            .collect()
    }

    /// Carries out an invocation's actions and sends.
    fn settle(&mut self, batch: &[IncomingMessage], inv: &Invocation, now: i64) {
        for (m, action) in batch.iter().zip(&inv.actions) {
            match action {
                MessageAction::Ack => self.messages.retain(|q| q.id != m.id),
                MessageAction::Retry { delay_seconds } => {
                    let Some(at) = self.messages.iter().position(|q| q.id == m.id) else {
                        continue;
                    };
                    let q = &mut self.messages[at];
                    if q.attempts <= self.max_retries {
                        q.visible_at = now + 1000 * i64::from(*delay_seconds);
                    } else if !q.dead {
                        q.dead = true;
                        q.attempts = 0;
                        self.dead_lettered += 1;
                        q.visible_at = now;
                    } else {
                        let gone = self.messages.remove(at);
                        self.lost.push(gone.id);
                    }
                }
            }
        }
        for (bytes, delay) in &inv.sent {
            self.send(bytes.clone(), now + 1000 * i64::from(*delay));
        }
    }

    /// Delivers one batch (if any is visible) to the consumer; returns the invocation.
    fn deliver(
        &mut self,
        db: &Db,
        now: i64,
        commit: D1,
        finish: D1,
        analytics: bool,
    ) -> Option<Invocation> {
        let batch = self.batch(now);
        if batch.is_empty() {
            return None;
        }
        let inv = invoke_full(
            db,
            self.last_queue,
            &batch,
            now,
            commit,
            finish,
            analytics,
            true,
        );
        self.settle(&batch, &inv, now);
        Some(inv)
    }
}

#[test]
fn the_test_queue_dead_letters_after_max_retries_and_then_loses_the_message() {
    let mut queue = Queue::default();
    queue.send(b"x".to_vec(), NOW);
    let retry = Invocation {
        actions: vec![MessageAction::Retry { delay_seconds: 1 }],
        ..Invocation::default()
    };
    let mut now = NOW;
    let mut deliveries = Vec::new();
    while queue.lost.is_empty() {
        let batch = queue.batch(now);
        assert_eq!(batch.len(), 1);
        deliveries.push((queue.last_queue, batch[0].attempts));
        queue.settle(&batch, &retry, now);
        now += 1_000;
    }
    assert_eq!(deliveries.len() as u32, 2 * (MAX_RETRIES + 1));
    assert_eq!(deliveries[10], (MAIN_QUEUE, 11));
    assert_eq!(deliveries[11], (DEAD_LETTER_QUEUE, 1));
    assert!(queue.messages.is_empty());
}

/// Analytics Engine is missing for eight hours while the bot keeps sending; deferred messages
/// pile up and merge. When the binding is back (the bot still sending), every message is
/// stored and every event reaches Analytics Engine once: no deferred message exhausts its
/// retries on the queue and on the dead letter queue because the point budget of an invocation
/// is taken by others.
#[test]
fn after_an_analytics_engine_outage_no_deferred_message_is_lost() {
    for seed in 1..=3 {
        let db = Db::migrated();
        let mut queue = Queue::shuffled(seed);
        let (envelopes, events, _) = chaos_envelopes(1_600);
        let mut envelopes = envelopes.into_iter();
        // Hourly deferred messages become visible together on the hour (NOW is 1 s past one): the
        // binding comes back a few seconds before.
        let outage_ends = NOW + 8 * 3_600_000 - 5_000;
        let mut now = NOW;
        let mut ae: Vec<String> = Vec::new();
        let mut sent = 0;
        while !queue.messages.is_empty() || sent == 0 {
            assert!(now < NOW + 86_400_000, "seed {seed}: not drained in a day");
            // One message every 10 s during the outage, then four a second.
            let (every, burst) = if now < outage_ends {
                (10_000, 1)
            } else {
                (1_000, 4)
            };
            if (now - NOW) % every == 0 {
                for bytes in envelopes.by_ref().take(burst) {
                    queue.send(bytes, now);
                    sent += 1;
                }
            }
            let analytics = now >= outage_ends;
            if let Some(inv) = queue.deliver(&db, now, D1::Up, D1::Up, analytics) {
                ae.extend(inv.points);
            }
            now += 1_000;
        }
        assert_eq!(sent, 3_200, "seed {seed}");
        println!(
            "seed {seed}: drained after {} s, {} dead-lettered, {} lost",
            (now - NOW) / 1000,
            queue.dead_lettered,
            queue.lost.len()
        );
        assert!(
            queue.lost.is_empty(),
            "seed {seed}: {} messages lost after the dead letter queue's last retry",
            queue.lost.len()
        );
        let mut unique = ae.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            events,
            "seed {seed}: every event reached Analytics Engine"
        );
        assert_eq!(ae.len(), events, "seed {seed}: none twice");
        assert_eq!(db.count("SELECT count(*) FROM processed_envelopes"), 3_200);
        assert_eq!(
            db.count("SELECT count(*) FROM processed_envelopes WHERE points_written = 0"),
            0
        );
    }
}

#[test]
fn an_outage_longer_than_the_retries_writes_points_early_and_stores_the_rest_later() {
    let db = Db::migrated();
    let mut queue = Queue::default();
    queue.send(errors(), NOW);
    queue.send(typical(), NOW);
    let mut now = NOW;
    let mut ae: Vec<String> = Vec::new();
    let mut deliveries = 0;
    // D1 is down for a day: retries in place, then deferrals, each a fresh message.
    while now < NOW + 86_400_000 {
        let batch = queue.batch(now);
        if !batch.is_empty() {
            deliveries += 1;
            let inv = invoke(&db, &batch, now, D1::Down, D1::Down, true);
            ae.extend(inv.points.clone());
            queue.settle(&batch, &inv, now);
        }
        now += 5_000;
    }
    assert_eq!(
        ae.len(),
        6,
        "the points reached Analytics Engine during the outage, once"
    );
    assert!(deliveries < 60, "{deliveries} deliveries in a day");
    assert_eq!(
        queue.messages.len(),
        1,
        "the two deferred records travel together"
    );
    assert_eq!(mirrored(&db), 0);
    // D1 is back.
    while !queue.messages.is_empty() {
        let batch = queue.batch(now);
        if !batch.is_empty() {
            let inv = invoke(&db, &batch, now, D1::Up, D1::Up, true);
            ae.extend(inv.points.clone());
            queue.settle(&batch, &inv, now);
        }
        now += 5_000;
    }
    assert_eq!(ae.len(), 6, "no point written again");
    assert_eq!(mirrored(&db), 6);
    assert_eq!(
        db.count("SELECT count(DISTINCT blob7) FROM analytics_points_local"),
        6
    );
    assert_eq!(db.count("SELECT count(*) FROM error_events"), 1);
    assert_eq!(db.count("SELECT SUM(count) FROM error_groups"), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM processed_envelopes WHERE points_written = 1"),
        2
    );
    assert_eq!(
        db.count("SELECT SUM(points_written_twice) FROM processed_envelopes"),
        0
    );
    assert!(db.count("SELECT MIN(deferrals) FROM processed_envelopes") > 20);
    assert_eq!(
        db.count("SELECT SUM(dropped_send_failed) FROM processed_envelopes"),
        3,
        "drop counts arrive with the deferred record"
    );
}

#[test]
fn a_duplicate_written_during_an_outage_is_counted() {
    let db = Db::migrated();
    // Two copies of one envelope, both on their third delivery while D1 is down.
    let batch = [message("a", 3, typical()), message("b", 3, typical())];
    let down = invoke(&db, &batch, NOW, D1::Down, D1::Down, true);
    assert_eq!(
        down.points.len(),
        10,
        "no D1, no dedup: both copies' points are written"
    );
    assert_eq!(down.actions, vec![MessageAction::Ack; 2]);
    let sent: Vec<IncomingMessage> = down
        .sent
        .iter()
        .enumerate()
        .map(|(i, (bytes, _))| message(&format!("d{i}"), 1, bytes.clone()))
        .collect();
    let up = invoke(&db, &sent, NOW + 60_000, D1::Up, D1::Up, true);
    assert!(up.points.is_empty());
    assert_eq!(
        mirrored(&db),
        10,
        "the mirror shows what Analytics Engine got"
    );
    assert_eq!(
        db.count("SELECT SUM(points_written_twice) FROM processed_envelopes"),
        5
    );
    assert_eq!(db.count("SELECT count(*) FROM processed_envelopes"), 1);
}

#[test]
fn a_failed_mark_is_deferred_and_lands_later_without_writing_again() {
    for finish in [D1::Down, D1::LostAnswer] {
        let db = Db::migrated();
        let first = invoke(&db, &[message("m", 1, errors())], NOW, D1::Up, finish, true);
        assert_eq!(first.points.len(), 1);
        assert_eq!(
            first.actions,
            vec![MessageAction::Ack],
            "acked: a retry would write twice"
        );
        assert_eq!(first.sent.len(), 1);
        let (bytes, _) = &first.sent[0];
        let later = invoke(
            &db,
            &[message("d", 1, bytes.clone())],
            NOW + 30_000,
            D1::Up,
            D1::Up,
            true,
        );
        assert!(later.points.is_empty());
        assert_eq!(mirrored(&db), 1, "{finish:?}");
        assert_eq!(
            db.count("SELECT points_written FROM processed_envelopes"),
            1
        );
        assert_eq!(
            db.count("SELECT points_written_twice FROM processed_envelopes"),
            0
        );
    }
}

#[test]
fn a_lost_commit_answer_is_retried_and_the_claim_is_taken_over() {
    let db = Db::migrated();
    let first = invoke(
        &db,
        &[message("m", 1, errors())],
        NOW,
        D1::LostAnswer,
        D1::Up,
        true,
    );
    assert!(first.points.is_empty());
    assert_eq!(
        first.actions,
        vec![MessageAction::Retry { delay_seconds: 2 }]
    );
    let again = invoke(
        &db,
        &[message("m", 2, errors())],
        NOW + 2_000,
        D1::Up,
        D1::Up,
        true,
    );
    assert_eq!(
        again.points.len(),
        1,
        "its own claim: no waiting for the timeout"
    );
    // The third delivery's answer is lost too: its points go out early, the record carries the
    // delivery's claim over.
    let db = Db::migrated();
    let early = invoke(
        &db,
        &[message("m", 3, errors())],
        NOW,
        D1::LostAnswer,
        D1::Up,
        true,
    );
    assert_eq!(early.points.len(), 1);
    assert_eq!(early.actions, vec![MessageAction::Ack]);
    let (bytes, _) = &early.sent[0];
    invoke(
        &db,
        &[message("d", 1, bytes.clone())],
        NOW + 20_000,
        D1::Up,
        D1::Up,
        true,
    );
    assert_eq!(mirrored(&db), 1);
    assert_eq!(
        db.count("SELECT points_written FROM processed_envelopes"),
        1
    );
    assert_eq!(
        db.count("SELECT points_written_twice FROM processed_envelopes"),
        0
    );
}

#[test]
fn without_analytics_engine_nothing_is_marked_and_messages_wait() {
    let db = Db::migrated();
    let batch = [message("m", 1, typical())];
    let inv = invoke(&db, &batch, NOW, D1::Up, D1::Up, false);
    assert!(inv.points.is_empty());
    assert_eq!(inv.actions, vec![MessageAction::Retry { delay_seconds: 2 }]);
    assert_eq!(db.count("SELECT count(*) FROM processed_envelopes"), 0);
    // Still missing on the third delivery: deferred with its points pending.
    let inv = invoke(
        &db,
        &[message("m", 3, typical())],
        NOW,
        D1::Up,
        D1::Up,
        false,
    );
    assert_eq!(inv.actions, vec![MessageAction::Ack]);
    let (bytes, _) = &inv.sent[0];
    let records = deferred::decode(bytes).unwrap();
    assert_eq!(records[0].points, deferred::PointsState::Pending);
    // The binding is back: the deferred record is stored and its points written.
    let inv = invoke(
        &db,
        &[message("d", 1, bytes.clone())],
        NOW + 20_000,
        D1::Up,
        D1::Up,
        true,
    );
    assert_eq!(inv.points.len(), 5);
    assert_eq!(mirrored(&db), 5);
}

/// A small deterministic generator (SplitMix64) for the chaos run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        (analytics_core::ids::splitmix(&mut self.0) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn d1(&mut self, rate: f64) -> D1 {
        let faults = faults::D1Faults {
            switch: false,
            fail_rate: rate,
        };
        match faults.draw(self.next(), self.next()) {
            faults::D1Fault::None => D1::Up,
            faults::D1Fault::FailBefore | faults::D1Fault::SwitchedOff => D1::Down,
            faults::D1Fault::FailAfterCommit => D1::LostAnswer,
        }
    }
}

/// Delivers the queue's batches, a second apart, until it is empty, each against a D1 that
/// fails at `rate` (drawn from `rng`). Returns the event ids Analytics Engine got, in order,
/// and how many deferred messages the consumer sent.
fn drain_flaky(
    db: &Db,
    queue: &mut Queue,
    rng: &mut Rng,
    rate: f64,
    seed: u64,
) -> (Vec<String>, usize) {
    let mut now = NOW;
    let mut ae = Vec::new();
    let mut deferred_messages = 0;
    while !queue.messages.is_empty() {
        assert!(
            now < NOW + 3 * 86_400_000,
            "seed {seed}: not drained in three days"
        );
        let batch = queue.batch(now);
        if !batch.is_empty() {
            let (commit, finish) = (rng.d1(rate), rng.d1(rate));
            let inv = invoke_full(
                db,
                queue.last_queue,
                &batch,
                now,
                commit,
                finish,
                true,
                true,
            );
            deferred_messages += inv.sent.len();
            ae.extend(inv.points.clone());
            queue.settle(&batch, &inv, now);
        }
        now += 1_000;
    }
    assert!(queue.lost.is_empty(), "seed {seed}: {:?} lost", queue.lost);
    (ae, deferred_messages)
}

/// Distinct envelopes of 1 to 12 events, some errors, every request split over two messages.
fn chaos_envelopes(n: u64) -> (Vec<Vec<u8>>, usize, usize) {
    chaos_attempt(n, 0)
}

/// The same requests handled again (`seed` picks the attempt).
fn chaos_attempt(n: u64, seed: u8) -> (Vec<Vec<u8>>, usize, usize) {
    let (mut out, mut events, mut errors) = (Vec::new(), 0, 0);
    for i in 0..n {
        let tracker = samples::attempt_tracker(
            update_request_key("telegram-bot:9", i as i64),
            ((i % 120) as u8).wrapping_mul(2).wrapping_add(seed),
        );
        for part in 0..2 {
            for j in 0..(1 + (i * 7 + part) % 12) {
                if j % 5 == 4 {
                    tracker.track_error_message("telegram_api", &format!("error {i}"), "x");
                    errors += 1;
                } else {
                    tracker.track("e", [("j", j as i64)]);
                }
                events += 1;
            }
            out.push(flush(&tracker));
        }
    }
    (out, events, errors)
}

/// `DEV_FAULT_D1_FAIL_RATE` on the consumer's logic: with a quarter, a half, three quarters of
/// all D1 calls failing, half of those after committing, every event is stored once.
#[test]
fn a_flaky_d1_neither_loses_nor_doubles() {
    for seed in 1..=9 {
        let rate = [0.25, 0.5, 0.75][seed as usize % 3];
        let db = Db::migrated();
        let mut rng = Rng(seed);
        let mut queue = Queue::default();
        let (envelopes, events, errors) = chaos_envelopes(60);
        for bytes in envelopes {
            queue.send(bytes, NOW);
        }
        let (ae, deferred_messages) = drain_flaky(&db, &mut queue, &mut rng, rate, seed);
        let mut unique = ae.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            events,
            "seed {seed}: every event reached Analytics Engine"
        );
        assert_eq!(ae.len(), events, "seed {seed}: none twice");
        assert_eq!(mirrored(&db), events as i64, "seed {seed}");
        assert_eq!(
            db.count("SELECT count(DISTINCT blob7) FROM analytics_points_local"),
            events as i64
        );
        assert_eq!(db.count("SELECT count(*) FROM error_events"), errors as i64);
        assert_eq!(
            db.count("SELECT SUM(count) FROM error_groups"),
            errors as i64
        );
        assert_eq!(db.count("SELECT count(*) FROM processed_envelopes"), 120);
        assert_eq!(
            db.count("SELECT count(*) FROM processed_envelopes WHERE points_written = 0"),
            0
        );
        assert_eq!(
            db.count("SELECT SUM(points_written_twice) FROM processed_envelopes"),
            0
        );
        let deferred = db.count("SELECT count(*) FROM processed_envelopes WHERE deferrals > 0");
        println!(
            "seed {seed}, fail rate {rate}: {events} events, {deferred_messages} deferred messages sent, \
             {deferred} envelopes first stored from one"
        );
        assert!(
            deferred_messages > 0,
            "the failures reached the deferral path"
        );
    }
}

/// Runs the cron once against the database; returns its report.
fn retention_run(db: &Db, now: i64) -> retention::RetentionReport {
    let mut run = Retention::new(now, RetentionConfig::from_vars(None, None));
    while let Some(step) = run.next_step() {
        let rows = db.batch(std::slice::from_ref(&step.statement)).unwrap();
        run.record(step.table, &rows[0], None);
    }
    run.report()
}

#[test]
fn retention_deletes_a_large_backlog_in_bounded_runs_and_keeps_recent_rows() {
    let db = Db::migrated();
    let day = 86_400_000_i64;
    let (old, recent) = (NOW - 40 * day, NOW - day);
    db.0.execute_batch(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, bot, release)
         SELECT 'old-' || i, 'fp' || (i % 10), {old} + i, {old}, 'k', 'm', 'b', 'r' FROM n;
         INSERT INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, bot, release)
         VALUES ('recent', 'fp1', {recent}, {recent}, 'k', 'm', 'b', 'r');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO processed_envelopes (key, queue_message_id, bot, event_count, dropped_send_failed, dropped_oversize, dropped_buffer_full, received_at)
         SELECT printf('%032x', i * 7919), 'm', 'b', 1, 0, 0, 0, CASE WHEN i % 1000 = 0 THEN {recent} ELSE {old} END FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO request_attempts (request_key, attempt, received_at)
         SELECT printf('%016x', i * 104729), i, CASE WHEN i % 1000 = 0 THEN {recent} ELSE {old} END FROM n;"
    ))
    .unwrap();
    let left = |db: &Db| {
        db.count("SELECT count(*) FROM error_events")
            + db.count("SELECT count(*) FROM processed_envelopes")
            + db.count("SELECT count(*) FROM request_attempts")
    };
    let first = retention_run(&db, NOW);
    assert!(!first.finished);
    assert!(left(&db) > 100_000, "one run stops at its cap");
    let mut runs = 1;
    while !retention_run(&db, NOW).finished {
        runs += 1;
        assert!(runs < 30);
    }
    // 100,000 error events at 4 rows written each (row and three indexes), 40,000 other rows, at
    // 50,000 rows written a run.
    assert!(runs >= 8, "{runs}");
    assert_eq!(db.count("SELECT count(*) FROM error_events"), 1);
    // Quiet groups lost their last message (14 days), the one with a recent event kept it.
    assert_eq!(
        db.count("SELECT count(*) FROM error_groups WHERE last_message != ''"),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM processed_envelopes"),
        20,
        "every 1000th is recent"
    );
    assert_eq!(db.count("SELECT count(*) FROM request_attempts"), 20);
    assert_eq!(
        db.count("SELECT SUM(count) FROM error_groups"),
        100_001,
        "groups keep their counts"
    );
}

/// The same with every message delivered twice (a producer send repeated after an error, or a
/// Queues redelivery), the copy up to five minutes later: every event is stored, and every
/// point Analytics Engine got more than once is counted in `points_written_twice` (only points
/// written during an outage can double).
#[test]
fn a_flaky_d1_with_duplicate_messages_loses_nothing_and_counts_every_double() {
    for seed in 1..=6 {
        let rate = [0.25, 0.5, 0.75][seed as usize % 3];
        let db = Db::migrated();
        let mut rng = Rng(seed + 100);
        let mut queue = Queue::default();
        let (envelopes, events, errors) = chaos_envelopes(40);
        for bytes in envelopes {
            queue.send(bytes.clone(), NOW);
            let later = NOW + (rng.next() * 300_000.0) as i64;
            queue.send(bytes, later);
        }
        let (ae, _) = drain_flaky(&db, &mut queue, &mut rng, rate, seed);
        let mut unique = ae.clone();
        unique.sort();
        unique.dedup();
        let twice = db.count("SELECT SUM(points_written_twice) FROM processed_envelopes");
        println!(
            "seed {seed}, fail rate {rate}: {events} events, {} points written, {twice} counted twice",
            ae.len()
        );
        assert_eq!(unique.len(), events, "seed {seed}: nothing lost");
        assert_eq!(
            ae.len() as i64 - events as i64,
            twice,
            "seed {seed}: every double counted"
        );
        assert_eq!(
            mirrored(&db),
            ae.len() as i64,
            "seed {seed}: the mirror shows what AE got"
        );
        assert_eq!(db.count("SELECT count(*) FROM error_events"), errors as i64);
        assert_eq!(
            db.count("SELECT SUM(count) FROM error_groups"),
            errors as i64
        );
        assert_eq!(
            db.count("SELECT count(*) FROM processed_envelopes WHERE points_written = 0"),
            0
        );
    }
}

/// And with every update handled twice (Telegram redelivered it): one attempt per request is
/// stored; points of the other attempt that reached Analytics Engine during an outage are
/// counted too.
#[test]
fn a_flaky_d1_with_redelivered_updates_stores_one_attempt_and_counts_every_extra_point() {
    for seed in 1..=6 {
        let rate = [0.25, 0.5, 0.75][seed as usize % 3];
        let db = Db::migrated();
        let mut rng = Rng(seed + 200);
        let mut queue = Queue::default();
        let (first, events, errors) = chaos_attempt(40, 0);
        let (again, ..) = chaos_attempt(40, 1);
        for bytes in first.into_iter().chain(again) {
            let at = NOW + (rng.next() * 120_000.0) as i64;
            queue.send(bytes, at);
        }
        let (ae, _) = drain_flaky(&db, &mut queue, &mut rng, rate, seed);
        let stored = db.count("SELECT count(DISTINCT blob7) FROM analytics_points_local");
        let winners: HashMap<String, i64> =
            db.0.prepare("SELECT request_key, attempt FROM request_attempts")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
        let mut kept: Vec<String> = ae
            .iter()
            .filter(|id| {
                let id = uuid::Uuid::parse_str(id).unwrap();
                let key = format!("{:016x}", analytics_core::ids::request_key_of(&id));
                winners.get(&key) == Some(&(analytics_core::ids::attempt_of(&id) as i64))
            })
            .cloned()
            .collect();
        kept.sort();
        kept.dedup();
        let kept = kept.len();
        let twice = db.count("SELECT SUM(points_written_twice) FROM processed_envelopes");
        println!(
            "seed {seed}, fail rate {rate}: {events} events per attempt, {} points written, \
             {stored} distinct ({kept} of winning attempts), {twice} counted twice",
            ae.len()
        );
        assert_eq!(db.count("SELECT count(*) FROM request_attempts"), 40);
        assert_eq!(
            kept, events,
            "seed {seed}: every event of the winning attempts"
        );
        assert_eq!(
            db.count("SELECT count(*) FROM error_events"),
            errors as i64,
            "seed {seed}"
        );
        assert_eq!(
            mirrored(&db),
            ae.len() as i64,
            "seed {seed}: the mirror shows what AE got"
        );
        assert_eq!(
            ae.len() as i64 - events as i64,
            twice,
            "seed {seed}: every extra counted"
        );
        assert_eq!(
            db.count("SELECT SUM(duplicate_events) FROM processed_envelopes"),
            events as i64,
            "seed {seed}: the other attempt's events, counted where they arrived"
        );
    }
}

#[test]
fn a_deferral_that_cannot_be_sent_writes_no_point_and_retries_in_place() {
    let db = Db::migrated();
    let batch = [message("a", 3, typical()), message("b", 5, errors())];
    let inv = invoke_sending(&db, &batch, NOW, D1::Down, D1::Down, true, false);
    assert!(
        inv.points.is_empty(),
        "the records saying so never reached the queue"
    );
    assert_eq!(
        inv.actions,
        vec![
            MessageAction::Retry { delay_seconds: 8 },
            MessageAction::Retry { delay_seconds: 32 }
        ]
    );
    // When the second transaction failed, the points are written: acknowledged all the same.
    let inv = invoke_sending(
        &db,
        &[message("c", 1, errors())],
        NOW,
        D1::Up,
        D1::Down,
        true,
        false,
    );
    assert_eq!(inv.points.len(), 1);
    assert_eq!(inv.actions, vec![MessageAction::Ack]);
}

/// The dev-only switch probe finds exactly the switch tables that exist, in the migrated
/// schema (as the consumer reads its rows: a `name` column).
#[test]
fn the_fault_switch_probe_finds_the_switch_tables() {
    let db = Db::migrated();
    let probe = |db: &Db| {
        let statement = Statement::write(faults::SWITCH_PROBE_SQL, Vec::new());
        let rows = db.batch(&[statement]).unwrap().remove(0);
        let names: Vec<String> = rows
            .iter()
            .filter_map(|row| row["name"].as_str().map(str::to_owned))
            .collect();
        faults::Switches::from_names(names.iter().map(String::as_str))
    };
    assert_eq!(probe(&db), faults::Switches::default());
    db.0.execute_batch(&format!("CREATE TABLE {} (x)", faults::SWITCH_TABLE))
        .unwrap();
    assert_eq!(
        probe(&db),
        faults::Switches {
            down: true,
            calm: false
        }
    );
    db.0.execute_batch(&format!(
        "DROP TABLE {}; CREATE TABLE {} (x)",
        faults::SWITCH_TABLE,
        faults::CALM_TABLE
    ))
    .unwrap();
    assert_eq!(
        probe(&db),
        faults::Switches {
            down: false,
            calm: true
        }
    );
}

/// Records of `bodies`, deferred once with their points pending, as one deferred message.
fn deferred_message(bodies: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<deferred::Record> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| deferred::Record {
            origin: deferred::Origin {
                queue: MAIN_QUEUE.into(),
                message_id: format!("o{i}"),
                received_at_ms: NOW - 60_000,
            },
            writer: format!("o{i}"),
            deferrals: 1,
            points: deferred::PointsState::Pending,
            body: Ok(body.clone()),
        })
        .collect();
    deferred::encode(&records).unwrap()
}

/// A deferred message holding more points than an invocation may write is split: what fits is
/// stored, the rest is sent again as a fresh message (visible at once), not retried in place.
/// An original message over the budget is retried in place twice, then sent again too.
#[test]
fn work_beyond_the_budget_is_sent_again_not_retried_until_the_dead_letter_queue() {
    let db = Db::migrated();
    let (bodies, events, _) = chaos_envelopes(40);
    let big = deferred_message(&bodies);
    let inv = invoke(&db, &[message("d", 1, big)], NOW, D1::Up, D1::Up, true);
    assert_eq!(inv.actions, vec![MessageAction::Ack]);
    assert!(inv.points.len() <= 250);
    assert!(!inv.sent.is_empty());
    assert!(inv.sent.iter().all(|(_, delay)| *delay == 1));
    let mut queue = Queue::default();
    for (bytes, _) in &inv.sent {
        queue.send(bytes.clone(), NOW + 1_000);
    }
    let mut ae = inv.points;
    let mut now = NOW + 1_000;
    while !queue.messages.is_empty() {
        if let Some(inv) = queue.deliver(&db, now, D1::Up, D1::Up, true) {
            ae.extend(inv.points);
        }
        now += 1_000;
    }
    assert_eq!(ae.len(), events, "every event once");
    assert_eq!(db.count("SELECT count(*) FROM processed_envelopes"), 80);
    // An original over the budget: retried in place on its first two deliveries, then sent
    // again as a fresh message with its deferral count unchanged.
    let full = deferred_message(&bodies[..40]);
    for (attempts, resent) in [(1, false), (2, false), (3, true)] {
        let db = Db::migrated();
        let batch = [
            message("d", 1, full.clone()),
            message("o", attempts, typical()),
        ];
        let inv = invoke(&db, &batch, NOW, D1::Up, D1::Up, true);
        let pending: usize = plan_batch(&batch, &ctx(NOW)).waiting.len();
        assert!(pending >= 1);
        if resent {
            assert_eq!(inv.actions[1], MessageAction::Ack);
            let records: Vec<deferred::Record> = inv
                .sent
                .iter()
                .flat_map(|(bytes, _)| deferred::decode(bytes).unwrap())
                .filter(|r| r.origin.message_id == "o")
                .collect();
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].deferrals, 0);
            assert_eq!(records[0].points, deferred::PointsState::Pending);
        } else {
            assert_eq!(inv.actions[1], MessageAction::Retry { delay_seconds: 1 });
        }
    }
}

/// A record D1 refuses every time (here: any transaction binding its envelope's key fails) is
/// deferred a bounded number of times, then kept aside in `rejected_messages`, counted by
/// reason and kept with its payload, instead of being deferred forever.
#[test]
fn a_record_that_can_never_commit_is_kept_aside_after_a_bounded_number_of_deferrals() {
    let db = Db::migrated();
    let poison = errors();
    let key: &'static str = Box::leak(ingest_policy::keys::envelope_key(&poison).into_boxed_str());
    let mut queue = Queue::default();
    queue.send(poison.clone(), NOW);
    let mut now = NOW;
    while !queue.messages.is_empty() && now < NOW + 5 * 86_400_000 {
        queue.deliver(&db, now, D1::Refuses(key), D1::Up, true);
        now += 5_000;
    }
    assert!(queue.lost.is_empty());
    assert!(
        queue.messages.is_empty(),
        "still deferred after five days: {} deferrals",
        deferred::decode(&queue.messages[0].bytes).map_or(0, |r| r[0].deferrals)
    );
    assert_eq!(
        db.count("SELECT count(*) FROM rejected_messages WHERE reason = 'deferred_too_often'"),
        1
    );
    let payload: Vec<u8> =
        db.0.query_row("SELECT payload FROM rejected_messages", [], |r| r.get(0))
            .unwrap();
    assert_eq!(payload, poison, "kept with its payload, to look into");
    let (kept_at, detail): (i64, String) =
        db.0.query_row(
            "SELECT received_at, detail FROM rejected_messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let days = (kept_at - NOW) as f64 / 86_400_000.0;
    assert!((1.0..2.0).contains(&days), "kept aside after {days} days");
    assert!(detail.starts_with("deferred 48 times since"), "{detail}");
    assert_eq!(db.count("SELECT count(*) FROM processed_envelopes"), 0);
}

/// A deferred message of hundreds of small rejected records would need more D1 statements
/// (16 rows per insert) than an invocation may run (50 queries on the free plan): each
/// invocation stays within its bound, the rest is sent again, and every record is kept.
#[test]
fn a_deferred_message_of_many_rejected_records_stays_within_one_invocations_statements() {
    let db = Db::migrated();
    let garbage: Vec<Vec<u8>> = (0..1_000)
        .map(|i| format!("garbage {i}").into_bytes())
        .collect();
    let mut queue = Queue::default();
    queue.send(deferred_message(&garbage), NOW);
    let mut now = NOW;
    let mut most = 0;
    while !queue.messages.is_empty() {
        assert!(now < NOW + 3_600_000, "not drained in an hour");
        if let Some(inv) = queue.deliver(&db, now, D1::Up, D1::Up, true) {
            most = most.max(inv.statements);
        }
        now += 1_000;
    }
    assert!(
        most <= 40,
        "{most} D1 statements in one invocation (the free plan runs 50)"
    );
    assert!(queue.lost.is_empty());
    assert_eq!(
        db.count("SELECT count(*) FROM rejected_messages WHERE reason = 'not_an_envelope'"),
        1_000
    );
}

/// `queries/d1/forget_user.sql` as `make errors ARGS="forget <id>"` runs it, for the stored id.
fn forget(db: &Db, stored_id: i64) {
    let sql = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries/d1/forget_user.sql"),
    )
    .unwrap()
    .replace(":user_id", &stored_id.to_string());
    db.0.execute_batch(&sql).unwrap();
}

/// `forget` while one of the user's records waits out a D1 outage as a deferred message: when
/// D1 is back the record is stored, but none of the user's rows come back.
#[test]
fn forget_holds_against_a_deferred_record_that_lands_later() {
    let user = samples::error_event().user_id.unwrap();
    let db = Db::migrated();
    // An error of another user, stored before: its group survives the erasure.
    let mut other = samples::error_envelope();
    other.events[0].user_id = Some(77);
    other.events[0].chat_id = Some(77);
    other.events[0].id = uuid::Uuid::from_u128(0x019a_b53c_0000_7000_8000_0000_0000_0077);
    invoke(
        &db,
        &[message("x", 1, encode(&other).unwrap())],
        NOW,
        D1::Up,
        D1::Up,
        true,
    );
    // The user's error: D1 down on its third delivery, so it is deferred.
    let down = invoke(
        &db,
        &[message("m", 3, errors())],
        NOW,
        D1::Down,
        D1::Down,
        true,
    );
    assert_eq!(down.sent.len(), 1);
    forget(&db, user);
    let (bytes, _) = &down.sent[0];
    invoke(
        &db,
        &[message("d", 1, bytes.clone())],
        NOW + 60_000,
        D1::Up,
        D1::Up,
        true,
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM error_events WHERE user_id = {user} OR chat_id = {user}"
        )),
        0,
        "the erased user's error came back with the deferred record"
    );
    assert_eq!(db.count("SELECT count(*) FROM error_events"), 1);
    assert_eq!(db.count("SELECT SUM(count) FROM error_groups"), 1);
    assert_eq!(
        db.count("SELECT points_written FROM processed_envelopes WHERE queue_message_id = 'm'"),
        1,
        "the record itself is stored"
    );
    // Forgetting again is harmless, and the tombstone expires with its own retention.
    forget(&db, user);
    assert_eq!(db.count("SELECT count(*) FROM forgotten_users"), 1);
    // (`forget` dates it with D1's clock.)
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    retention_run(&db, today + 13 * 86_400_000);
    assert_eq!(db.count("SELECT count(*) FROM forgotten_users"), 1);
    retention_run(&db, today + 15 * 86_400_000);
    assert_eq!(db.count("SELECT count(*) FROM forgotten_users"), 0);
}

/// A rejected message's `detail` (a decoder's error can quote strings of the payload) expires
/// with its payload, not 23 days later with the row.
#[test]
fn a_rejected_messages_detail_expires_with_its_payload() {
    let db = Db::migrated();
    let day = 86_400_000_i64;
    db.0.execute_batch(&format!(
        "INSERT INTO rejected_messages (queue, message_id, reason, detail, payload, received_at) VALUES
         ('q', 'old', 'not_an_envelope', 'invalid type: string \"call me on 447700900123\"', x'00', {}),
         ('q', 'new', 'not_an_envelope', 'invalid type: string \"recent\"', x'00', {})",
        NOW - 8 * day,
        NOW - day
    ))
    .unwrap();
    retention_run(&db, NOW);
    let rows: Vec<(String, String, Option<Vec<u8>>)> =
        db.0.prepare("SELECT message_id, detail, payload FROM rejected_messages ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
    assert_eq!(
        rows[0],
        ("old".into(), String::new(), None),
        "reason kept, detail gone"
    );
    assert_eq!(rows[1].1, "invalid type: string \"recent\"");
}

// ---- Owner analytics (docs/owner-analytics.md) ----

use analytics_core::event::{Event, EventKind, PropValue};
use analytics_core::wire::Envelope;

const DAY: i64 = 86_400_000;
/// The largest pseudonym (52 bits): stored exactly as an INTEGER.
const USER_A: i64 = (1 << 52) - 1;
const USER_B: i64 = 77;

fn owner_event(
    n: u128,
    kind: EventKind,
    name: &str,
    user: i64,
    at_ms: i64,
    properties: Vec<(&str, PropValue)>,
) -> Event {
    Event {
        id: uuid::Uuid::from_u128(0x019a_b53c_0000_7000_8000_0000_0000_0000 | n),
        timestamp: chrono::DateTime::from_timestamp_millis(at_ms).unwrap(),
        kind,
        name: name.into(),
        user_id: Some(user),
        chat_id: Some(user),
        duration_ms: None,
        error: None,
        properties: properties
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        truncated: 0,
    }
}

/// An envelope of `events`, sent just after the last of them.
fn owner_envelope(events: Vec<Event>) -> Vec<u8> {
    let sent = events.iter().map(|e| e.timestamp).max().unwrap() + chrono::Duration::seconds(1);
    encode(&Envelope {
        sent_at: sent,
        events,
        ..samples::typical_envelope()
    })
    .unwrap()
}

/// Yesterday (of NOW) at 10:00 UTC.
fn yesterday() -> i64 {
    (NOW.div_euclid(DAY) - 1) * DAY + 10 * 3_600_000
}

/// Two envelopes about users A and B over yesterday and today: a /start with a source, then a
/// later one with another; updates with language and Premium; a block and an unblock; a
/// payment and a refund; a bot timing (not activity).
fn owner_envelopes() -> (Vec<u8>, Vec<u8>) {
    use EventKind::*;
    let y = yesterday();
    let first = owner_envelope(vec![
        owner_event(
            1,
            UpdateReceived,
            "message",
            USER_A,
            y,
            vec![("lang", "de".into())],
        ),
        owner_event(
            2,
            Command,
            "start",
            USER_A,
            y + 1,
            vec![("source", "ads".into())],
        ),
        owner_event(3, Performance, "handler", USER_A, y + 2, vec![]),
        owner_event(
            4,
            Payment,
            "payment",
            USER_A,
            y + 3,
            vec![("amount", 250i64.into()), ("currency", "XTR".into())],
        ),
        owner_event(5, UpdateReceived, "message", USER_B, y + 4, vec![]),
    ]);
    let t = NOW - 3_600_000;
    let second = owner_envelope(vec![
        owner_event(
            6,
            UpdateReceived,
            "message",
            USER_A,
            t,
            vec![("lang", "fr".into()), ("premium", true.into())],
        ),
        owner_event(
            7,
            Command,
            "start",
            USER_A,
            t + 1,
            vec![("source", "later".into())],
        ),
        owner_event(
            8,
            Payment,
            "refund",
            USER_A,
            t + 2,
            vec![("amount", 50i64.into()), ("currency", "XTR".into())],
        ),
        owner_event(9, User, "user_blocked", USER_B, t + 3, vec![]),
        owner_event(
            10,
            Payment,
            "payment",
            USER_B,
            t + 4,
            vec![("amount", 199i64.into()), ("currency", "USD".into())],
        ),
    ]);
    (first, second)
}

/// Every row of the owner analytics tables, as text.
fn owner_rows(db: &Db) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT * FROM bot_users ORDER BY bot, user_id",
        "SELECT * FROM user_days ORDER BY bot, day, user_id",
        "SELECT * FROM user_events ORDER BY event_id",
    ] {
        for row in db
            .batch(&[Statement::write(sql, vec![])])
            .unwrap()
            .remove(0)
        {
            out.push(row.to_string());
        }
    }
    out
}

fn deliver(db: &Db, id: &str, bytes: &[u8], now: i64) {
    invoke(
        db,
        &[message(id, 1, bytes.to_vec())],
        now,
        D1::Up,
        D1::Up,
        true,
    );
}

#[test]
fn owner_rows_are_exact_and_the_same_redelivered_or_reordered() {
    let (first, second) = owner_envelopes();
    let db = Db::migrated();
    deliver(&db, "1", &first, NOW);
    deliver(&db, "2", &second, NOW);
    let rows = owner_rows(&db);
    let y = yesterday();
    let t = NOW - 3_600_000;
    let user_a: Value = db
        .batch(&[Statement::write(
            format!("SELECT * FROM bot_users WHERE user_id = {USER_A}"),
            vec![],
        )])
        .unwrap()[0][0]
        .clone();
    assert_eq!(
        user_a,
        json!({"bot": "telegram-bot", "user_id": USER_A, "first_seen": y, "last_seen": t + 2,
               "source": "ads", "source_at": y + 1, "lang": "fr", "premium": 1, "seen_at": t,
               "status": "active", "status_at": null})
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM bot_users WHERE user_id = {USER_B} AND status = 'blocked' \
             AND status_at = {} AND lang IS NULL AND source IS NULL",
            t + 3
        )),
        1
    );
    // A active yesterday and today, B both days too (the block is not activity, the payment is).
    let today = NOW.div_euclid(DAY);
    assert_eq!(db.count("SELECT count(*) FROM user_days"), 4, "{rows:?}");
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM user_days WHERE day = {today} AND user_id = {USER_B}"
        )),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM user_events WHERE name = 'payment' AND currency = 'XTR' AND amount = 250"),
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM user_events"), 4);
    assert_eq!(
        db.count("SELECT count(*) FROM processed_envelopes WHERE kind_counts = '{\"command\":1,\"payment\":1,\"performance\":1,\"update\":2}'"),
        1
    );

    // A copy of a message (another queue message id, the same bytes) writes nothing at all.
    let before = db.0.total_changes();
    deliver(&db, "1-copy", &first, NOW + 60_000);
    assert_eq!(db.0.total_changes(), before, "a copy wrote rows");
    assert_eq!(owner_rows(&db), rows);

    // The other order, and the first envelope split in two: the same rows.
    let reordered = Db::migrated();
    deliver(&reordered, "2", &second, NOW);
    let envelope = analytics_core::decode(&first).unwrap();
    let (a, b) = envelope.events.split_at(2);
    deliver(&reordered, "1b", &owner_envelope(b.to_vec()), NOW);
    deliver(&reordered, "1a", &owner_envelope(a.to_vec()), NOW);
    assert_eq!(owner_rows(&reordered), rows);
}

#[test]
fn a_forgotten_user_is_erased_and_not_inserted_again() {
    let (first, second) = owner_envelopes();
    let db = Db::migrated();
    deliver(&db, "1", &first, NOW);
    let user_a = |table: &str| {
        db.count(&format!(
            "SELECT count(*) FROM {table} WHERE user_id = {USER_A}"
        ))
    };
    assert_eq!(
        (
            user_a("bot_users"),
            user_a("user_days"),
            user_a("user_events")
        ),
        (1, 1, 1)
    );
    forget(&db, USER_A);
    assert_eq!(
        (
            user_a("bot_users"),
            user_a("user_days"),
            user_a("user_events")
        ),
        (0, 0, 0)
    );
    // forget's last statement counts what is left of the user in every table.
    let sql = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries/d1/forget_user.sql"),
    )
    .unwrap()
    .replace(":user_id", &USER_A.to_string());
    let last = sql.rsplit(';').find(|s| s.contains("SELECT")).unwrap();
    let left = db.batch(&[Statement::write(last, vec![])]).unwrap()[0][0].clone();
    for column in ["bot_users_left", "user_days_left", "user_events_left"] {
        assert_eq!(left[column], 0, "{left}");
    }
    // Late records of the user (a redelivery, and a new envelope) bring nothing back; B's do land.
    deliver(&db, "1-again", &first, NOW + 60_000);
    deliver(&db, "2", &second, NOW + 60_000);
    assert_eq!(
        (
            user_a("bot_users"),
            user_a("user_days"),
            user_a("user_events")
        ),
        (0, 0, 0)
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM bot_users WHERE user_id = {USER_B}"
        )),
        1
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM user_events WHERE user_id = {USER_B}"
        )),
        2
    );
}

fn rollup_rows(db: &Db) -> Vec<Value> {
    db.batch(&[Statement::write(
        "SELECT * FROM daily_rollup ORDER BY bot, day",
        vec![],
    )])
    .unwrap()
    .remove(0)
}

#[test]
fn the_rollup_is_exact_and_a_second_run_writes_the_same_rows() {
    let (first, second) = owner_envelopes();
    let db = Db::migrated();
    // The first envelope is received yesterday, the second today; and an error today.
    deliver(&db, "1", &first, yesterday() + 60_000);
    deliver(&db, "2", &second, NOW);
    deliver(&db, "e", &errors(), NOW);
    let run = |at: i64| {
        db.batch(&[ingest_policy::rollup::statement(at)]).unwrap();
        rollup_rows(&db)
    };
    let rows = run(NOW);
    let today = NOW.div_euclid(DAY);
    assert_eq!(rows.len(), 3, "today and the two days before: {rows:?}");
    let day = |d: i64| rows.iter().find(|r| r["day"] == d).unwrap().clone();
    let y = day(today - 1);
    assert_eq!(
        (
            &y["new_users"],
            &y["active_users"],
            &y["blocked"],
            &y["payers"],
            &y["revenue"],
            &y["events"],
            &y["events_by_kind"],
            &y["errors"]
        ),
        (
            &json!(2),
            &json!(2),
            &json!(0),
            &json!(1),
            &json!("{\"XTR\":250}"),
            &json!(5),
            &json!("{\"command\":1,\"payment\":1,\"performance\":1,\"update\":2}"),
            &json!(0)
        ),
        "{y}"
    );
    let t = day(today);
    assert_eq!(
        (
            &t["new_users"],
            &t["active_users"],
            &t["blocked"],
            &t["unblocked"],
            &t["payers"],
            &t["revenue"],
            &t["events"],
            &t["errors"]
        ),
        (
            &json!(0),
            &json!(2),
            &json!(1),
            &json!(0),
            &json!(1),
            &json!("{\"USD\":199,\"XTR\":-50}"),
            &json!(6),
            &json!(1)
        ),
        "{t}"
    );
    let empty = day(today - 2);
    assert_eq!(
        (&empty["events"], &empty["revenue"]),
        (&json!(0), &json!("{}"))
    );
    // A second run an hour later: the same rows, computed_at included (nothing changed, so
    // nothing is written).
    let before = db.0.total_changes();
    assert_eq!(run(NOW + 3_600_000), rows);
    assert_eq!(db.0.total_changes(), before);
    // Late data changes the figures on the next run.
    let late = owner_envelope(vec![owner_event(
        11,
        EventKind::Command,
        "help",
        5,
        NOW - 60_000,
        vec![],
    )]);
    deliver(&db, "late", &late, NOW);
    let again = run(NOW + 7_200_000);
    let t = again.iter().find(|r| r["day"] == today).unwrap();
    assert_eq!(
        (&t["new_users"], &t["active_users"], &t["events"]),
        (&json!(1), &json!(3), &json!(7))
    );
    assert_eq!(t["computed_at"], NOW + 7_200_000);
}

#[test]
fn owner_tables_keep_their_own_retention() {
    let (first, _) = owner_envelopes();
    let db = Db::migrated();
    deliver(&db, "1", &first, NOW);
    db.batch(&[ingest_policy::rollup::statement(NOW)]).unwrap();
    let count = |table: &str| db.count(&format!("SELECT count(*) FROM {table}"));
    let (days, events, rollups) = (
        count("user_days"),
        count("user_events"),
        count("daily_rollup"),
    );
    retention_run(&db, NOW + 99 * DAY);
    assert_eq!(count("user_days"), days, "kept 100 days");
    retention_run(&db, NOW + 101 * DAY);
    assert_eq!(count("user_days"), 0);
    retention_run(&db, NOW + 398 * DAY);
    assert_eq!((count("user_events"), count("bot_users")), (events, 2));
    retention_run(&db, NOW + 401 * DAY);
    assert_eq!(count("user_events"), 0);
    assert_eq!(count("daily_rollup"), rollups);
    retention_run(&db, NOW + 731 * DAY);
    assert_eq!(count("daily_rollup"), 0);
    assert_eq!(count("bot_users"), 2, "kept until forget");
}
