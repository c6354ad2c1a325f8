//! The consumer Worker in real local workerd: duplicates, poison messages, D1 outages and
//! batches beyond the Analytics Engine budget. Raw bytes reach the queue through the producer's
//! dev-only `/__dev/enqueue` route (`DEV_ENQUEUE=1`, never set in production).

use std::time::{Duration, Instant};

use analytics_core::{encode, samples, NewEvent, Tracker};
use e2e_tests::{now_ms, wait_for, Stack, StackOptions};
use ingest_policy::store::RETRIES_BEFORE_DEFERRAL;
use ingest_policy::{deferred, faults};
use serde_json::json;

fn consumer_stack() -> Stack {
    Stack::start(StackOptions {
        api_base: None,
        extra_vars: vec![("DEV_ENQUEUE".into(), "1".into())],
        ..StackOptions::default()
    })
}

fn enqueue(stack: &Stack, bytes: &[u8]) {
    let (status, body) = stack.post("/__dev/enqueue", &[], bytes);
    assert_eq!(status, 200, "{body}");
}

/// An envelope of `n` custom events with fresh ids (`seed` keeps envelopes distinct).
fn envelope_of(n: usize, seed: u8) -> Vec<u8> {
    let tracker = Tracker::new(samples::source(), || 1_764_000_000_000.0, [seed; 16]);
    for i in 0..n {
        tracker.record(NewEvent {
            name: format!("load_{i}"),
            user_id: Some(1_000 + i as i64),
            ..NewEvent::default()
        });
    }
    // Bypass the tracker's 25-event split: other senders may send up to 250 per message.
    let (events, _) = tracker.take_events();
    let mut envelope = samples::typical_envelope();
    envelope.events = events;
    encode(&envelope).unwrap()
}

/// Asserts the store holds exactly `points` data points, each once, and the one error event of
/// `samples::error_envelope` once, in one group counted once.
fn assert_stored_once(stack: &Stack, points: i64) {
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local"),
        points
    );
    assert_eq!(
        stack.d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local"),
        points
    );
    assert_eq!(stack.d1_count("SELECT count(*) FROM error_events"), 1);
    assert_eq!(
        stack.d1("SELECT count FROM error_groups"),
        vec![json!({"count": 1})]
    );
}

#[test]
fn the_dev_enqueue_route_is_off_unless_enabled() {
    let stack = Stack::start(StackOptions::default());
    let (status, _) = stack.post("/__dev/enqueue", &[], b"x");
    assert_eq!(status, 404);
}

#[test]
fn duplicates_are_stored_once_and_poison_is_kept_aside() {
    let stack = consumer_stack();
    let error_envelope = encode(&samples::error_envelope()).unwrap();
    let typical = encode(&samples::typical_envelope()).unwrap();
    enqueue(&stack, &error_envelope);
    let poison = b"\x93\x01garbage that is not an envelope";
    enqueue(&stack, poison);
    enqueue(&stack, &error_envelope); // the same envelope again
    enqueue(&stack, &typical);

    stack.wait_count(
        "the poison message",
        "SELECT count(*) FROM rejected_messages",
        1,
    );
    stack.wait_count(
        "both envelopes",
        "SELECT count(*) FROM processed_envelopes",
        2,
    );
    // Give a late duplicate the chance to be (wrongly) counted.
    std::thread::sleep(Duration::from_secs(3));

    let rejected =
        stack.d1("SELECT queue, reason, length(payload) AS bytes FROM rejected_messages");
    assert_eq!(
        rejected,
        vec![json!({"queue": "telegram-analytics", "reason": "malformed", "bytes": poison.len()})]
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM processed_envelopes"),
        2
    );
    // 1 error event + 5 typical events, each exactly once.
    assert_stored_once(&stack, 6);
    // The carried drop counts of the error envelope are visible.
    assert_eq!(
        stack.d1_count("SELECT SUM(dropped_send_failed) FROM processed_envelopes"),
        3
    );
}

#[test]
fn a_d1_outage_loses_nothing() {
    let stack = consumer_stack();
    stack.d1("ALTER TABLE error_events RENAME TO error_events_offline");
    enqueue(&stack, &encode(&samples::error_envelope()).unwrap());
    // The batch fails and is retried with backoff.
    wait_for(
        "a failed D1 batch in the log",
        Duration::from_secs(60),
        || stack.log().contains("retrying them").then_some(()),
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM processed_envelopes"),
        0,
        "all or nothing"
    );
    stack.d1("ALTER TABLE error_events_offline RENAME TO error_events");
    stack.wait_count(
        "the error after D1 is back",
        "SELECT count(*) FROM error_events",
        1,
    );
    assert_stored_once(&stack, 1);
}

#[test]
fn batches_beyond_the_analytics_engine_budget_arrive_whole_and_once() {
    let stack = consumer_stack();
    // 6 hand-made envelopes of 100 events (the bot itself puts at most 25 in one): a batch of
    // them holds 600 events, more than twice the 250-point budget of one invocation.
    for seed in 0..6u8 {
        enqueue(&stack, &envelope_of(100, seed));
    }
    let sql = "SELECT count(*) FROM analytics_points_local";
    let total = stack.wait_count("all 600 events", sql, 600);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stack.d1_count(sql), 600, "{total}");
    assert_eq!(
        stack.d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local"),
        600
    );
    assert!(
        stack
            .log()
            .lines()
            .any(|l| l.contains("over budget") && !l.contains(" 0 over budget")),
        "some messages were deferred beyond the budget"
    );
}

/// An envelope of error events, one per `(message, user)` pair.
fn errors_envelope(seed: u8, errors: &[(&str, i64)]) -> Vec<u8> {
    let tracker = Tracker::new(samples::source(), || 1_764_000_000_000.0, [seed; 16]);
    for (message, user) in errors {
        tracker.set_context(Some(*user), Some(*user));
        tracker.track_error_message("telegram_api", message, "bot_api:sendMessage");
    }
    tracker.flush()[0].bytes.clone()
}

#[test]
fn the_report_command_prints_grouped_errors() {
    let stack = consumer_stack();
    enqueue(
        &stack,
        &errors_envelope(
            1,
            &[
                ("Too Many Requests: retry after 35", 11),
                ("Too Many Requests: retry after 7", 12),
                ("Too Many Requests: retry after 2", 11),
                ("Forbidden: bot was blocked by the user", 13),
            ],
        ),
    );
    stack.wait_count("four error events", "SELECT count(*) FROM error_events", 4);

    let options = |args: &[&str]| stack.report_options(args);
    let now = 1_764_000_100_000;

    let top = report::query(&options(&["top"]), now, None).unwrap();
    let summary: Vec<(String, i64)> = top
        .iter()
        .map(|r| {
            (
                r["last_message"].as_str().unwrap().to_string(),
                r["events"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary.len(), 2, "{top:?}");
    assert_eq!(
        summary[0].1, 3,
        "the three 429s form one group: {summary:?}"
    );
    assert!(summary[0].0.starts_with("Too Many Requests: retry after"));
    assert_eq!(
        summary[1],
        ("Forbidden: bot was blocked by the user".to_string(), 1)
    );
    let table = report::render_table(&top);
    println!("{table}");
    assert!(table.lines().next().unwrap().starts_with("fingerprint"));

    let fingerprint = top[0]["fingerprint"].as_str().unwrap();
    let events = report::query(&options(&["group", fingerprint]), now, None).unwrap();
    assert_eq!(events.len(), 3);

    let releases = report::query(&options(&["releases"]), now, None).unwrap();
    assert_eq!(releases[0]["release"], "1.0.0");
    assert_eq!(releases[0]["events"], 4);
    assert_eq!(releases[0]["groups"], 2);

    let user = report::query(&options(&["--raw-ids", "user", "11"]), now, None).unwrap();
    assert_eq!(user.len(), 2);

    // A database without the migrations gets a clear message.
    stack.d1("DROP TABLE error_events");
    let failure = report::query(&options(&["top"]), now, None).unwrap_err();
    assert!(
        matches!(failure, report::ReportError::NotMigrated),
        "{failure}"
    );
    let missing = report::parse_args(&[
        "--persist-to".into(),
        "/nonexistent/state".into(),
        "top".into(),
    ])
    .unwrap();
    assert!(matches!(
        report::query(&missing, now, None),
        Err(report::ReportError::NoLocalDatabase(_))
    ));
}

#[test]
fn retention_deletes_old_events_and_keeps_group_counts() {
    let stack = Stack::start(StackOptions {
        consumer_scheduled: true,
        ..StackOptions::default()
    });
    let day = 86_400_000_i64;
    let now = now_ms();
    let old = now - 40 * day;
    let recent = now - day;
    stack.d1(&format!(
        "INSERT INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, bot, release) VALUES \
         ('old', 'fp', {old}, {old}, 'k', 'm', 'b', 'r'), ('recent', 'fp', {recent}, {recent}, 'k', 'm', 'b', 'r')"
    ));
    stack.d1(
        "INSERT INTO analytics_points_local (dataset, timestamp, index1, blob7) VALUES \
         ('d', datetime('now', '-40 days'), '-', 'old'), ('d', datetime('now', '-1 day'), '-', 'recent')",
    );
    assert_eq!(
        stack.d1("SELECT count FROM error_groups"),
        vec![json!({"count": 2})]
    );

    run_retention(&stack);
    assert_eq!(
        stack.d1("SELECT event_id FROM error_events"),
        vec![json!({"event_id": "recent"})]
    );
    assert_eq!(
        stack.d1("SELECT blob7 FROM analytics_points_local"),
        vec![json!({"blob7": "recent"})]
    );
    assert_eq!(
        stack.d1("SELECT count FROM error_groups"),
        vec![json!({"count": 2})],
        "groups keep their counts"
    );
}

/// A consumer that crashes in the middle of a batch (dev-only switch, fires once): the batch is
/// redelivered, and the envelope's data points are written exactly once in the end.
fn crash_test(point: &str) {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![
            ("DEV_ENQUEUE".into(), "1".into()),
            ("DEV_FAULT_CONSUMER_CRASH".into(), point.into()),
        ],
        ..StackOptions::default()
    });
    enqueue(&stack, &encode(&samples::error_envelope()).unwrap());
    enqueue(&stack, &encode(&samples::typical_envelope()).unwrap());
    stack.wait_count(
        "both envelopes' points",
        "SELECT count(*) FROM analytics_points_local",
        6,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(stack.log().contains("injected crash"), "the fault fired");
    assert_stored_once(&stack, 6);
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM processed_envelopes WHERE points_written = 1"),
        2
    );
}

#[test]
fn a_crash_after_the_commit_loses_no_points() {
    crash_test("after_commit");
}

#[test]
fn a_crash_after_writing_points_does_not_double_the_mirror() {
    crash_test("after_points");
}

#[test]
fn what_exhausts_its_retries_is_stored_from_the_dead_letter_queue() {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![("DEV_ENQUEUE".into(), "1".into())],
        max_retries: Some(1),
        ..StackOptions::default()
    });
    stack.d1("ALTER TABLE error_events RENAME TO error_events_offline");
    enqueue(&stack, &encode(&samples::error_envelope()).unwrap());
    // Two failed deliveries on the main queue, then the message moves to the dead letter queue,
    // whose consumer fails too while D1 is down.
    wait_for(
        "the message on the dead letter queue",
        Duration::from_secs(90),
        || {
            stack
                .log()
                .lines()
                .any(|l| l.contains("QUEUE telegram-analytics-dlq"))
                .then_some(())
        },
    );
    stack.d1("ALTER TABLE error_events_offline RENAME TO error_events");
    stack.wait_count(
        "the error stored from the DLQ",
        "SELECT count(*) FROM error_events",
        1,
    );
    assert_stored_once(&stack, 1);
}

/// Makes every ingest transaction of the consumer fail the way a D1 outage (or a used-up daily
/// write quota) does: D1 answers each one with an error. The tables every transaction writes
/// are renamed away; [`d1_up`] brings them back.
fn d1_down(stack: &Stack) {
    stack.d1("ALTER TABLE processed_envelopes RENAME TO processed_envelopes_offline");
    stack.d1("ALTER TABLE error_events RENAME TO error_events_offline");
}

fn d1_up(stack: &Stack) {
    stack.d1("ALTER TABLE processed_envelopes_offline RENAME TO processed_envelopes");
    stack.d1("ALTER TABLE error_events_offline RENAME TO error_events");
}

#[test]
fn a_d1_outage_longer_than_the_queue_retries_loses_nothing() {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![("DEV_ENQUEUE".into(), "1".into())],
        max_retries: Some(2),
        dlq_max_retries: Some(1),
        ..StackOptions::default()
    });
    d1_down(&stack);
    enqueue(&stack, &encode(&samples::error_envelope()).unwrap());
    enqueue(&stack, &encode(&samples::typical_envelope()).unwrap());
    // Outlast what the queues alone can hold a failing message for: 3 deliveries on the main
    // queue and 2 on the dead letter queue, about 20 s with their backoff.
    std::thread::sleep(Duration::from_secs(40));
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local"),
        0,
        "the local mirror lives in D1: nothing lands there while D1 is down"
    );
    d1_up(&stack);
    stack.wait_count(
        "every point once D1 is back",
        "SELECT count(*) FROM analytics_points_local",
        6,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_stored_once(&stack, 6);
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM processed_envelopes"),
        2
    );
    assert_eq!(
        stack.d1("SELECT MIN(deferrals) > 0 AS deferred, SUM(points_written_twice) AS twice FROM processed_envelopes"),
        vec![json!({"deferred": 1, "twice": 0})],
        "both waited out the outage as deferred messages, no point written twice"
    );
    let log = stack.log();
    assert!(
        !log.contains("Dropped message"),
        "no message exhausted its retries"
    );
    assert_eq!(
        written_ahead_of_d1(&log),
        6,
        "the points reached Analytics Engine during the outage"
    );
    // The saved query shows it.
    let health = stack.d1_file("queries/d1/pipeline_health.sql");
    assert_eq!(health.len(), 1, "{health:?}");
    assert_eq!(health[0]["envelopes"], 2);
    assert_eq!(health[0]["deferred_envelopes"], 2);
    assert_eq!(health[0]["points_written_twice"], 0);
    assert_eq!(health[0]["points_pending"], 0);
    assert_eq!(health[0]["dropped_send_failed"], 3);
}

/// The points the consumer logged as written to Analytics Engine while D1 was down.
fn written_ahead_of_d1(log: &str) -> usize {
    log.lines()
        .filter_map(|l| {
            l.split(" written ahead of D1")
                .next()
                .filter(|_| l.contains(" written ahead of D1"))
        })
        .filter_map(|head| head.rsplit(' ').next()?.parse::<usize>().ok())
        .sum()
}

/// Lines of the form `QUEUE telegram-analytics 1/1 (3ms)`: one per batch delivered on the main
/// queue.
fn main_queue_deliveries(stack: &Stack) -> usize {
    stack
        .log()
        .lines()
        .filter(|l| l.contains("QUEUE telegram-analytics "))
        .count()
}

#[test]
fn without_the_analytics_binding_points_are_retried_not_marked_written() {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![("DEV_ENQUEUE".into(), "1".into())],
        consumer_without_analytics: true,
        ..StackOptions::default()
    });
    enqueue(&stack, &encode(&samples::typical_envelope()).unwrap());
    wait_for("a first delivery", Duration::from_secs(60), || {
        (main_queue_deliveries(&stack) >= 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM processed_envelopes WHERE points_written = 1"),
        0,
        "no envelope is marked written while its points cannot be written"
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local"),
        0
    );
    wait_for("a second delivery", Duration::from_secs(60), || {
        (main_queue_deliveries(&stack) >= 2).then_some(())
    });
    assert_eq!(
        stack.log().matches("no ANALYTICS binding").count(),
        1,
        "the missing binding is logged once per isolate"
    );
}

fn update_events(tracker: &Tracker<fn() -> f64>, part: &str) {
    tracker.track("message", [("part", part)]);
    tracker.track_error_message("telegram_api", "Bad Request: chat not found", part);
}

#[test]
fn a_redelivered_update_is_stored_once() {
    let stack = consumer_stack();
    let key = analytics_core::ids::update_request_key("telegram-bot:123", 42);
    // The first handling sends its events in two messages, the redelivery in one.
    let first = samples::attempt_tracker(key, 1);
    update_events(&first, "one");
    let first_one = first.flush()[0].bytes.clone();
    update_events(&first, "two");
    let first_two = first.flush()[0].bytes.clone();
    let again = samples::attempt_tracker(key, 2);
    update_events(&again, "one");
    update_events(&again, "two");
    let again = again.flush()[0].bytes.clone();
    enqueue(&stack, &first_one);
    enqueue(&stack, &again);
    enqueue(&stack, &first_two);
    stack.wait_count(
        "three envelopes",
        "SELECT count(*) FROM processed_envelopes",
        3,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local"),
        4,
        "the four events of one attempt"
    );
    assert_eq!(
        stack.d1_count("SELECT count(DISTINCT substr(blob7, 20, 13)) FROM analytics_points_local"),
        1,
        "all of one attempt"
    );
    assert_eq!(stack.d1_count("SELECT count(*) FROM error_events"), 2);
    assert_eq!(stack.d1_count("SELECT SUM(count) FROM error_groups"), 2);
    assert_eq!(
        stack.d1_count("SELECT SUM(duplicate_events) FROM processed_envelopes"),
        4,
        "the other attempt's four events are counted as duplicates"
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM request_attempts"),
        1,
        "one row per request"
    );
}

#[test]
fn two_drop_only_envelopes_both_count() {
    let stack = consumer_stack();
    enqueue(&stack, &encode(&samples::drop_only_envelope(200)).unwrap());
    enqueue(&stack, &encode(&samples::drop_only_envelope(201)).unwrap());
    stack.wait_count(
        "a drop-only envelope",
        "SELECT count(*) FROM processed_envelopes",
        1,
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        stack.d1("SELECT count(*) AS n, SUM(dropped_buffer_full) AS d FROM processed_envelopes"),
        vec![json!({"n": 2, "d": 401})]
    );
}

#[test]
fn an_event_dated_1970_does_not_move_first_seen() {
    let stack = consumer_stack();
    let mut envelope = samples::error_envelope();
    envelope.events[0].timestamp = analytics_core::event::timestamp_from_ms(0.0);
    let sent_at = envelope.sent_at.timestamp_millis();
    enqueue(&stack, &encode(&envelope).unwrap());
    stack.wait_count("the error", "SELECT count(*) FROM error_events", 1);
    let first_seen = stack.d1_count("SELECT first_seen FROM error_groups");
    assert!(
        first_seen >= sent_at - 3_600_000,
        "first_seen {first_seen} is more than an hour before the envelope was sent ({sent_at})"
    );
}

/// Runs the consumer's cron once and waits until it logged that it finished.
fn run_retention(stack: &Stack) {
    let runs = stack.log().matches("retention: done").count();
    let (status, body) = stack.get("/__scheduled?cron=17+3+*+*+*").unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for("retention to run", Duration::from_secs(120), || {
        (stack.log().matches("retention: done").count() > runs).then_some(())
    });
}

#[test]
fn retention_deletes_a_large_backlog_in_bounded_runs() {
    let stack = Stack::start(StackOptions {
        consumer_scheduled: true,
        ..StackOptions::default()
    });
    let day = 86_400_000_i64;
    let now = now_ms();
    let old = now - 40 * day;
    let recent = now - day;
    // 100,000 old error events in 10 groups, and old rows in every other table.
    stack.d1(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) \
         INSERT INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, bot, release) \
         SELECT 'old-' || i, 'fp' || (i % 10), {old} + i, {old} + i, 'k', 'm', 'b', 'r' FROM n"
    ));
    stack.d1(&format!(
        "INSERT INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, bot, release) \
         VALUES ('recent', 'fp1', {recent}, {recent}, 'k', 'm', 'b', 'r')"
    ));
    stack.d1(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20001) \
         INSERT INTO processed_envelopes (key, queue_message_id, bot, event_count, dropped_send_failed, dropped_oversize, dropped_buffer_full, received_at) \
         SELECT 'k' || i, 'm' || i, 'b', 1, 0, 0, 0, CASE WHEN i = 20001 THEN {recent} ELSE {old} + i END FROM n"
    ));
    stack.d1(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20001) \
         INSERT INTO analytics_points_local (dataset, timestamp, index1, blob7) \
         SELECT 'd', CASE WHEN i = 20001 THEN datetime('now', '-1 day') ELSE datetime('now', '-40 days') END, '-', 'p' || i FROM n",
    );
    stack.d1(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 101) \
         INSERT INTO rejected_messages (queue, message_id, reason, detail, payload, received_at) \
         SELECT 'q', 'm' || i, 'r', 'd', x'00', CASE WHEN i = 101 THEN {recent} ELSE {old} END FROM n"
    ));
    // Request attempts are kept a week.
    stack.d1(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20001) \
         INSERT INTO request_attempts (request_key, attempt, received_at) \
         SELECT printf('%016x', i * 104729), i, CASE WHEN i = 20001 THEN {recent} ELSE {now} - 8 * {day} END FROM n"
    ));
    let old_rows = "SELECT (SELECT count(*) FROM error_events WHERE event_id <> 'recent') \
         + (SELECT count(*) FROM processed_envelopes WHERE received_at < {cutoff}) \
         + (SELECT count(*) FROM analytics_points_local WHERE timestamp < datetime('now', '-30 days')) \
         + (SELECT count(*) FROM rejected_messages WHERE received_at < {cutoff}) \
         + (SELECT count(*) FROM request_attempts WHERE received_at < {week})"
        .replace("{cutoff}", &(now - 30 * day).to_string())
        .replace("{week}", &(now - 7 * day).to_string());
    let total_old = stack.d1_count(&old_rows);
    assert_eq!(total_old, 160_100);

    run_retention(&stack);
    let left = stack.d1_count(&old_rows);
    assert!(
        left > 0,
        "one run deleted all {total_old} old rows at once: a run must stop at its cap"
    );
    assert!(
        stack.log().contains("cap reached, the next run continues"),
        "the run says why it stopped"
    );
    let mut runs = 1;
    while stack.d1_count(&old_rows) > 0 {
        assert!(runs < 40, "retention makes no progress");
        run_retention(&stack);
        runs += 1;
    }
    println!("retention: {total_old} old rows deleted in {runs} runs");
    assert_eq!(
        stack.d1("SELECT event_id FROM error_events"),
        vec![json!({"event_id": "recent"})]
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM processed_envelopes"),
        1
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local"),
        1
    );
    assert_eq!(stack.d1_count("SELECT count(*) FROM rejected_messages"), 1);
    assert_eq!(stack.d1_count("SELECT count(*) FROM request_attempts"), 1);
    assert_eq!(
        stack.d1_count("SELECT SUM(count) FROM error_groups"),
        100_001,
        "groups keep their counts"
    );
    let log = stack.log();
    let last = log
        .lines()
        .rfind(|l| l.contains("retention: done"))
        .unwrap_or_default();
    assert!(
        !last.contains("cap reached"),
        "the last run finished: {last}"
    );
}

/// A statement with its parameters written into it, for `wrangler d1 execute` (which binds
/// none).
fn inline(statement: &ingest_policy::Statement) -> String {
    let mut sql = statement.sql.clone();
    for (i, value) in statement.params.iter().enumerate().rev() {
        let literal = match value {
            ingest_policy::SqlValue::Text(t) => format!("'{}'", t.replace('\'', "''")),
            ingest_policy::SqlValue::Integer(n) => n.to_string(),
            other => panic!("not needed here: {other:?}"),
        };
        sql = sql.replace(&format!("?{}", i + 1), &literal);
    }
    sql
}

/// The consumer's claim statement for `bytes`, as the consumer would run it for `writer`.
fn claim_statement(bytes: &[u8], writer: &str, now_ms: i64) -> String {
    use ingest_policy::{
        commit_statements, plan_batch, BatchContext, IncomingMessage, StatementRole,
    };
    let messages = [IncomingMessage {
        id: writer.into(),
        attempts: 1,
        body: Ok(bytes.to_vec()),
    }];
    let ctx = BatchContext {
        queue: "telegram-analytics",
        now_ms,
        point_budget: 250,
    };
    let plan = plan_batch(&messages, &ctx);
    let statements = commit_statements(&plan, &ctx);
    let claim = statements
        .iter()
        .find(|s| s.role == StatementRole::Claimed)
        .expect("a claim statement");
    inline(claim)
}

#[test]
fn of_two_claims_on_one_envelope_in_local_d1_one_wins() {
    let stack = consumer_stack();
    let bytes = encode(&samples::typical_envelope()).unwrap();
    let now = 1_764_000_000_000;
    let first = stack.d1(&claim_statement(&bytes, "first", now));
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["writer"], "first");
    assert!(
        stack
            .d1(&claim_statement(&bytes, "second", now + 1_000))
            .is_empty(),
        "the second claimant gets nothing while the first holds the claim"
    );
    let expired = now + ingest_policy::store::CLAIM_TIMEOUT_MS + 1;
    assert_eq!(
        stack.d1(&claim_statement(&bytes, "second", expired)),
        vec![json!({"key": first[0]["key"], "writer": "second"})],
        "an expired claim is taken over"
    );
    stack.d1("UPDATE processed_envelopes SET points_written = 1");
    assert!(stack
        .d1(&claim_statement(&bytes, "third", expired * 2))
        .is_empty());
}

/// Turns D1 off for the consumer (dev-only `DEV_FAULT_D1_SWITCH`).
fn d1_off(stack: &Stack) {
    stack.d1(&format!(
        "CREATE TABLE IF NOT EXISTS {} (x)",
        faults::SWITCH_TABLE
    ));
}

/// Ends every injected D1 fault: D1 back on and its failure rate suspended, in one statement.
fn d1_calm(stack: &Stack) {
    stack.d1(&format!(
        "DROP TABLE IF EXISTS {}; CREATE TABLE IF NOT EXISTS {} (x)",
        faults::SWITCH_TABLE,
        faults::CALM_TABLE
    ));
}

/// The longest a message can still wait for its next delivery once D1 faults end, `elapsed`
/// after it was first sent, by the consumer's policy: a retry in place waits at most its
/// backoff; a message deferred `d` times waits at most the longest `deferred::delay_seconds(d)`,
/// and its `d`-th deferral comes no sooner than its retries in place plus the shortest delays
/// of its earlier deferrals.
fn longest_wait_once_calm(elapsed: Duration) -> Duration {
    let backoff = ingest_policy::retry::Backoff::default();
    let delays = |d: u32| {
        (0..deferred::DEFER_MAX_SECONDS)
            .map(move |s| deferred::delay_seconds(d, i64::from(s) * 1000))
    };
    let mut longest = backoff.delay_seconds(RETRIES_BEFORE_DEFERRAL);
    let mut earliest: u32 = (1..=RETRIES_BEFORE_DEFERRAL)
        .map(|attempt| backoff.delay_seconds(attempt))
        .sum();
    let mut deferrals = 1;
    while u64::from(earliest) <= elapsed.as_secs() {
        longest = longest.max(delays(deferrals).max().unwrap_or(0));
        earliest += delays(deferrals).min().unwrap_or(0);
        deferrals += 1;
    }
    Duration::from_secs(longest.into())
}

#[test]
fn a_flaky_then_absent_d1_stores_everything_exactly_once() {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![
            ("DEV_ENQUEUE".into(), "1".into()),
            ("DEV_FAULT_D1_SWITCH".into(), "1".into()),
            ("DEV_FAULT_D1_FAIL_RATE".into(), "0.3".into()),
        ],
        ..StackOptions::default()
    });
    let mut points = 0;
    let mut errors = 0;
    let started = Instant::now();
    for seed in 0..12u8 {
        let list: Vec<(String, i64)> = (0..=seed % 3)
            .map(|i| (format!("Bad Request: error {seed}/{i}"), i64::from(seed)))
            .collect();
        let refs: Vec<(&str, i64)> = list.iter().map(|(m, u)| (m.as_str(), *u)).collect();
        enqueue(&stack, &errors_envelope(seed + 1, &refs));
        enqueue(&stack, &envelope_of(5, seed + 100));
        points += refs.len() + 5;
        errors += refs.len();
        if seed == 5 {
            d1_off(&stack);
        }
    }
    // D1 is off for 20 s, with a 30 % failure rate around it; then every fault ends, so the
    // recovery is bounded by the policy (with the rate on, each failed delivery of a deferred
    // message doubles its next delay: a run once needed more than 90 s).
    std::thread::sleep(Duration::from_secs(20));
    d1_calm(&stack);
    let wait = longest_wait_once_calm(started.elapsed()) + Duration::from_secs(30);
    println!(
        "e2e: faults ended after {:?}; waiting at most {wait:?}",
        started.elapsed()
    );
    let sql = "SELECT count(*) FROM analytics_points_local";
    stack.wait_count_within("every point", sql, points as i64, wait);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(stack.d1_count(sql), points as i64);
    assert_eq!(
        stack.d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local"),
        points as i64
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM error_events"),
        errors as i64
    );
    assert_eq!(
        stack.d1_count("SELECT SUM(count) FROM error_groups"),
        errors as i64
    );
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM processed_envelopes WHERE points_written = 1"),
        24
    );
    let log = stack.log();
    // The 30 % rate fires on a few calls only, so it may miss a whole run (seen once); the
    // switch below always fires, and the native chaos runs exercise the rate at length.
    println!(
        "e2e: the D1 failure rate fired: {}",
        log.contains("injected by DEV_FAULT_D1_FAIL_RATE")
    );
    assert!(
        log.contains("injected by DEV_FAULT_D1_SWITCH"),
        "the switch fired"
    );
}

/// The D1 rows each transaction of the last stored batch wrote, as local D1 reports them (the
/// consumer logs them; local D1 counts index entries and trigger writes like D1 bills them).
fn rows_written_after(stack: &Stack, bytes: &[u8]) -> String {
    let logged = |stack: &Stack| stack.log().matches("D1 rows written").count();
    let before = logged(stack);
    enqueue(stack, bytes);
    wait_for("the batch's log line", Duration::from_secs(60), || {
        (logged(stack) > before).then_some(())
    });
    let log = stack.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("D1 rows written"))
        .unwrap_or_default();
    line.rsplit("D1 rows written ")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn d1_rows_written_are_what_the_reliability_doc_says() {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![
            ("DEV_ENQUEUE".into(), "1".into()),
            // The mirror is a development aid; measure what production writes.
            ("AE_LOCAL_MIRROR".into(), "0".into()),
        ],
        ..StackOptions::default()
    });
    // One update (one request) of five events, one of them an error.
    let tracker = samples::attempt_tracker(
        analytics_core::ids::update_request_key("telegram-bot:1", 7),
        3,
    );
    for i in 0..4 {
        tracker.track("e", [("i", i64::from(i))]);
    }
    tracker.track_error_message("telegram_api", "Forbidden: bot was blocked", "bot_api:x");
    let update = tracker.flush()[0].bytes.clone();
    // request claim 1 + envelope 1 + error row 1 + its 3 indexes + group upsert 1 (migration 0004
    // dropped the user index and the group's last_seen index: 9 before); then the mark: 1.
    assert_eq!(rows_written_after(&stack, &update), "[Some(7), Some(1)]");
    // The same message again: nothing written, no second transaction.
    assert_eq!(rows_written_after(&stack, &update), "[Some(0)]");
    // Five coalesced requests of five events each, no error: 5 claims + 1 envelope; the mark.
    let mut events = Vec::new();
    for r in 0..5 {
        let t = samples::attempt_tracker(
            analytics_core::ids::update_request_key("telegram-bot:1", 100 + r),
            4,
        );
        for i in 0..5 {
            t.track("e", [("i", i64::from(i))]);
        }
        events.extend(t.take_events().0);
    }
    let mut coalesced = samples::typical_envelope();
    coalesced.events = events;
    assert_eq!(
        rows_written_after(&stack, &encode(&coalesced).unwrap()),
        "[Some(6), Some(1)]"
    );
    // A message kept aside: its row, its unique index, and AUTOINCREMENT's sqlite_sequence.
    assert_eq!(rows_written_after(&stack, b"not an envelope"), "[Some(3)]");

    // Owner analytics (docs/owner-analytics.md): a user's message, as its own envelope (no
    // request claim: a version 7 id).
    let user_message = |n: u128, at_ms: i64| {
        let mut envelope = samples::typical_envelope();
        let mut event = envelope.events[0].clone();
        event.id = uuid::Uuid::from_u128(0x019a_b53c_0000_7000_8000_0000_0000_0000 | n);
        event.timestamp = analytics_core::event::timestamp_from_ms(at_ms as f64);
        envelope.sent_at = event.timestamp;
        envelope.events = vec![event];
        encode(&envelope).unwrap()
    };
    let now = e2e_tests::now_ms();
    // A new user: envelope 1 + bot_users row 1 and its first_seen index 1 + user_days 1; mark 1.
    assert_eq!(
        rows_written_after(&stack, &user_message(1, now - 2_000)),
        "[Some(4), Some(1)]"
    );
    // The same user again that day: envelope 1 + the bot_users row (last_seen) 1 and, as D1
    // counts an upsert that sets the indexed first_seen, its index 1; user_days nothing.
    assert_eq!(
        rows_written_after(&stack, &user_message(2, now - 1_000)),
        "[Some(3), Some(1)]"
    );
}

/// `forget` while the user's error waits out a D1 outage as a deferred message (the envelope
/// table is offline, so the consumer's transaction fails and the error tables stay readable
/// for `forget`): when D1 is back the record is stored, but the erased user's error is not.
#[test]
fn forget_holds_against_a_deferred_record_in_local_d1() {
    let stack = consumer_stack();
    stack.d1("ALTER TABLE processed_envelopes RENAME TO processed_envelopes_offline");
    enqueue(&stack, &encode(&samples::error_envelope()).unwrap());
    wait_for(
        "the message deferred as a fresh one",
        Duration::from_secs(90),
        || stack.log().contains(" 1 deferred,").then_some(()),
    );
    let user = samples::error_event().user_id.unwrap();
    let options = stack.report_options(&["--raw-ids", "forget", &user.to_string()]);
    report::query(&options, now_ms(), None).expect("forget runs");
    assert_eq!(stack.d1_count("SELECT count(*) FROM forgotten_users"), 1);
    stack.d1("ALTER TABLE processed_envelopes_offline RENAME TO processed_envelopes");
    stack.wait_count(
        "the deferred record stored",
        "SELECT count(*) FROM processed_envelopes WHERE points_written = 1",
        1,
    );
    assert_eq!(
        stack.d1_count(&format!(
            "SELECT count(*) FROM error_events WHERE user_id = {user} OR chat_id = {user}"
        )),
        0,
        "the erased user's error did not come back"
    );
    assert_eq!(stack.d1_count("SELECT count(*) FROM error_groups"), 0);
}
