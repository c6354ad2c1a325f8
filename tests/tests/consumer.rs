//! The consumer Worker in real local workerd: duplicates, poison messages, D1 outages and
//! batches beyond the Analytics Engine budget. Raw bytes reach the queue through the producer's
//! dev-only `/__dev/enqueue` route (`DEV_ENQUEUE=1`, never set in production).

use std::time::Duration;

use e2e_tests::{wait_for, Stack, StackOptions};
use serde_json::json;
use shared::{encode, samples, NewEvent, Tracker};

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
            .any(|l| l.contains("deferred") && !l.contains(" 0 deferred")),
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

    let options = |args: &[&str]| {
        let mut all: Vec<String> = vec![
            "--config".into(),
            stack
                .dir()
                .join("wrangler.consumer.toml")
                .display()
                .to_string(),
            "--persist-to".into(),
            stack.dir().join("state").display().to_string(),
            "--since".into(),
            "3650d".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        report::parse_args(&all).unwrap()
    };
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
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

    let (status, body) = stack.get("/__scheduled?cron=17+3+*+*+*").unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for("retention to run", Duration::from_secs(30), || {
        stack.log().contains("retention: done").then_some(())
    });
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
