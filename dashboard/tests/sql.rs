//! The dashboard's D1 queries and the local-mirror renderings of its Analytics Engine queries,
//! run natively in SQLite against the real migrations: plan → SQL → rows → model → HTML.

use dashboard_core::plan::{plan, QueryId, Results, Settings, Store};
use dashboard_core::queries::{Dialect, ErrorSort};
use dashboard_core::range::Range;
use dashboard_core::route::Page;
use dashboard_core::rows::Row;
use dashboard_core::sqlapi::QueryError;
use dashboard_core::{html, model};
use ingest_policy::SqlValue;
use rusqlite::{types::ValueRef, Connection};
use serde_json::{Map, Value};

/// 2025-11-24 16:30 UTC.
const NOW: i64 = 1_764_000_000_000 + 30 * 60_000;

fn migrated() -> Connection {
    let db = Connection::open_in_memory().unwrap();
    // D1 builds SQLite with few terms per compound SELECT (local workerd fewer than 4): hold
    // the queries to the dashboard's own bound, so one over it fails here as it would there.
    db.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_COMPOUND_SELECT,
        dashboard_core::queries::D1_COMPOUND_TERMS as i32,
    )
    .unwrap();
    // Every migration, in order: the schema the deployed database has.
    let dir = format!("{}/../migrations", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    for path in files {
        db.execute_batch(&std::fs::read_to_string(path).unwrap())
            .unwrap();
    }
    db
}

/// One point: (timestamp, sample interval, kind, name, user, command property, duration ms,
/// event time ms).
type Point = (
    &'static str,
    i64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
);

fn insert_points(db: &Connection, points: &[Point]) {
    for (ts, interval, kind, name, user, command, ms, at) in points {
        db.execute(
            "INSERT INTO analytics_points_local (dataset, timestamp, _sample_interval, index1, \
             blob1, blob2, blob3, blob4, blob5, blob13, double1, double2, double3) \
             VALUES ('telegram_bot_events', ?1, ?2, ?3, 'bot', '0.1.0', ?4, ?5, ?3, ?6, 1, ?7, ?8)",
            rusqlite::params![ts, interval, user, kind, name, command, ms, at],
        )
        .unwrap();
    }
}

fn json_of(value: ValueRef) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(x) => Value::from(x),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).to_string()),
        ValueRef::Blob(b) => Value::from(b.len()),
    }
}

fn run(db: &Connection, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, QueryError> {
    let mut statement = db.prepare(sql).map_err(|e| QueryError::D1(e.to_string()))?;
    let names: Vec<String> = statement.column_names().map(|s| s.to_string()).collect();
    let bound: Vec<rusqlite::types::Value> = params
        .iter()
        .map(|p| match p {
            SqlValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
            SqlValue::Integer(i) => rusqlite::types::Value::Integer(*i),
            SqlValue::Real(x) => rusqlite::types::Value::Real(*x),
            SqlValue::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
            SqlValue::Null => rusqlite::types::Value::Null,
        })
        .collect();
    let mut rows = statement
        .query(rusqlite::params_from_iter(bound))
        .map_err(|e| QueryError::D1(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| QueryError::D1(e.to_string()))? {
        let mut map = Map::new();
        for (i, name) in names.iter().enumerate() {
            map.insert(name.clone(), json_of(row.get_ref(i).unwrap()));
        }
        out.push(map);
    }
    Ok(out)
}

/// Runs a whole page plan the way the Worker does under `make dev` (everything in D1).
fn results_of(db: &Connection, page: &Page) -> Results {
    let plan = plan(page, NOW, Dialect::Sqlite, &Settings::example());
    assert!(
        plan.count(Store::D1) <= dashboard_core::plan::MAX_D1_QUERIES
            && plan.count(Store::AnalyticsEngine) <= 3
    );
    let mut results = Results::default();
    for q in &plan.queries {
        results.insert(q.id, run(db, &q.sql, &q.params));
    }
    results
}

fn typical() -> Connection {
    let db = migrated();
    let at = (NOW - 60_000) as f64;
    insert_points(
        &db,
        &[
            (
                "2025-11-24 16:05:00",
                1,
                "update",
                "message",
                "1",
                "",
                0.0,
                at,
            ),
            (
                "2025-11-24 16:05:00",
                1,
                "command",
                "start",
                "1",
                "",
                0.0,
                at,
            ),
            (
                "2025-11-24 16:05:00",
                1,
                "performance",
                "handler",
                "1",
                "start",
                4.0,
                at,
            ),
            (
                "2025-11-24 16:06:00",
                1,
                "update",
                "message",
                "2",
                "",
                0.0,
                at,
            ),
            (
                "2025-11-24 16:06:00",
                1,
                "command",
                "start",
                "2",
                "",
                0.0,
                at,
            ),
            (
                "2025-11-24 16:06:00",
                1,
                "performance",
                "handler",
                "2",
                "start",
                10.0,
                at,
            ),
            (
                "2025-11-24 15:59:00",
                3,
                "update",
                "message",
                "3",
                "",
                0.0,
                at,
            ),
            (
                "2025-11-24 15:59:00",
                3,
                "command",
                "help",
                "3",
                "",
                0.0,
                at,
            ),
            (
                "2025-11-24 15:59:00",
                3,
                "performance",
                "handler",
                "3",
                "help",
                2.0,
                at,
            ),
            (
                "2025-11-24 16:07:00",
                1,
                "update",
                "callback_query",
                "1",
                "",
                0.0,
                at,
            ),
            (
                "2025-11-24 16:07:00",
                1,
                "callback",
                "menu",
                "1",
                "",
                0.0,
                at,
            ),
            (
                "2025-11-24 16:07:00",
                1,
                "performance",
                "handler",
                "1",
                "",
                1.0,
                at,
            ),
            (
                "2025-11-24 16:07:00",
                1,
                "error",
                "bot_api",
                "1",
                "",
                0.0,
                at,
            ),
            // Outside the 24-hour window; inside the 7-day one.
            ("2025-11-20 10:00:00", 1, "command", "old", "9", "", 0.0, at),
        ],
    );
    for (id, fp, release, user, occurred) in [
        ("e1", "00000000000000aa", "0.1.0", 1, NOW - 3_600_000),
        ("e2", "00000000000000aa", "0.2.0", 2, NOW - 60_000),
        ("e3", "00000000000000bb", "0.1.0", 1, NOW - 120_000),
        ("e4", "00000000000000bb", "0.1.0", 1, NOW - 180_000),
        ("e5", "00000000000000bb", "0.1.0", 1, NOW - 240_000),
    ] {
        db.execute(
            "INSERT INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, \
             location, user_id, chat_id, bot, release) VALUES (?1, ?2, ?3, ?3 + 900, 'bot_api', \
             'Bad Request: <b>' || ?2, 'bot_api:editMessageText', ?4, ?4, 'bot', ?5)",
            rusqlite::params![id, fp, occurred, user, release],
        )
        .unwrap();
    }
    db.execute_batch(
        "INSERT INTO processed_envelopes (key, queue_message_id, bot, event_count, dropped_send_failed,
             dropped_oversize, dropped_buffer_full, dropped_cancelled, received_at, points_written)
             VALUES ('k1', 'm1', 'bot', 3, 0, 1, 0, 3, 1764000000000, 1),
                    ('k2', 'm2', 'bot', 5, 2, 0, 0, 0, 1764000001000, 1),
                    ('k3', 'm3', 'bot', 5, 0, 0, 0, 7, 1700000000000, 1);
         INSERT INTO rejected_messages (queue, message_id, reason, detail, payload, received_at)
             VALUES ('telegram-analytics-dlq', 'q1', 'version', '<script>x</script>', x'00ff', 1764000002000);",
    )
    .unwrap();
    db
}

#[test]
fn the_overview_reads_the_local_mirror() {
    let db = typical();
    let results = results_of(
        &db,
        &Page::Overview {
            range: Range::Day,
            bot: None,
        },
    );
    for id in [
        QueryId::EventsPerHour,
        QueryId::CommandsAndCallbacks,
        QueryId::DailyActiveUsers,
        QueryId::RecentGroups,
    ] {
        assert!(results.get(id).is_ok(), "{id:?}: {:?}", results.get(id));
    }
    let o = model::overview(Range::Day, None, NOW, &results);
    // Weighted: the 15:59 rows stand for three events each.
    assert_eq!(o.total("update"), 6);
    assert_eq!(o.total("command"), 5);
    assert_eq!(o.total("error"), 1);
    assert_eq!(o.error_rate(), Some(1.0 / 6.0));
    let series = o.series.as_ref().unwrap();
    let updates = &series.iter().find(|s| s.kind == "update").unwrap().values;
    assert_eq!((updates[22], updates[23]), (3.0, 3.0));

    let names = o.names.as_ref().unwrap();
    let row = |name: &str| names.iter().find(|n| n.name == name).unwrap().clone();
    let (start, help, menu) = (row("start"), row("help"), row("menu"));
    assert_eq!(
        (start.uses, start.timed, start.p50_ms, start.p95_ms),
        (2, 2, Some(4.0), Some(10.0))
    );
    assert_eq!((help.uses, help.timed, help.p50_ms), (3, 3, Some(2.0)));
    assert_eq!(
        (menu.kind.as_str(), menu.uses, menu.timed, menu.p50_ms),
        ("callback", 1, 0, None)
    );
    assert_eq!(names[0].name, "help", "most used first");
    assert!(names.iter().all(|n| n.name != "old"), "outside the range");

    // Users 1, 2 and 3 today; the window's first day had none.
    assert_eq!(
        o.daily_users.as_ref().unwrap(),
        &vec![(1_763_856_000_000, 0), (1_763_942_400_000, 3)]
    );
    assert_eq!(o.recent_groups.as_ref().unwrap().len(), 2);

    let html = html::overview(
        &o,
        &html::Footer {
            source: "local".into(),
            d1_queries: 1,
            ae_queries: 3,
        },
    );
    assert!(html.contains("/start") && html.contains("/help") && html.contains("menu"));
    assert!(html.contains("<polyline"));
    assert!(html.contains("Bad Request: &lt;b&gt;"));
}

#[test]
fn wider_ranges_include_older_points() {
    let db = typical();
    let o = model::overview(
        Range::Week,
        None,
        NOW,
        &results_of(
            &db,
            &Page::Overview {
                range: Range::Week,
                bot: None,
            },
        ),
    );
    assert!(o.names.unwrap().iter().any(|n| n.name == "old"));
}

#[test]
fn error_pages_sort_filter_and_bind() {
    let db = typical();
    let page = |sort, release: Option<&str>| {
        let results = results_of(
            &db,
            &Page::Errors {
                sort,
                release: release.map(str::to_string),
                bot: None,
            },
        );
        model::errors(sort, release.map(str::to_string), None, &results)
    };
    let by_last = page(ErrorSort::LastSeen, None).groups.unwrap();
    assert_eq!(
        by_last
            .iter()
            .map(|g| g.fingerprint.as_str())
            .collect::<Vec<_>>(),
        ["00000000000000aa", "00000000000000bb"]
    );
    let by_count = page(ErrorSort::Count, None).groups.unwrap();
    assert_eq!(by_count[0].fingerprint, "00000000000000bb");
    assert_eq!((by_count[0].count, by_count[0].users), (3, 1));
    assert_eq!((by_count[1].count, by_count[1].users), (2, 2));
    // Each group names its bot (migration 0006: the trigger copies it from the event).
    assert!(by_count.iter().all(|g| g.bot == "bot"), "{by_count:?}");
    let only = page(ErrorSort::LastSeen, Some("0.2.0")).groups.unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].fingerprint, "00000000000000aa");
    let releases = page(ErrorSort::LastSeen, None).releases.unwrap();
    assert_eq!(
        releases,
        vec![("0.2.0".to_string(), 1), ("0.1.0".to_string(), 4)]
    );

    // A hostile release is a value to look for, nothing more: no rows, tables intact.
    let hostile = "'; DROP TABLE error_groups; --";
    let none = page(ErrorSort::Count, Some(hostile));
    assert_eq!(none.groups.as_ref().unwrap().len(), 0);
    let count: i64 = db
        .query_row("SELECT count(*) FROM error_groups", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2);
    let html = html::errors(
        &none,
        &html::Footer {
            source: String::new(),
            d1_queries: 2,
            ae_queries: 0,
        },
    );
    assert!(html.contains("&#39;; DROP TABLE error_groups; --"));
}

#[test]
fn a_group_page_has_its_events_and_hours() {
    let db = typical();
    let fp = "00000000000000bb";
    let page = Page::ErrorGroup {
        fingerprint: fp.into(),
        range: Range::Day,
        bot: None,
    };
    let g = model::group(fp, Range::Day, None, NOW, &results_of(&db, &page));
    let group = g.group.unwrap().unwrap();
    assert_eq!(
        (group.count, group.users, group.release.as_str()),
        (3, 1, "0.1.0")
    );
    let events = g.events.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
        ["e3", "e4", "e5"]
    );
    assert_eq!(events[0].user, "1");
    let per_hour = g.per_hour.unwrap();
    assert_eq!(per_hour.iter().sum::<f64>(), 3.0);
    assert_eq!(per_hour[23], 3.0);
    let missing = Page::ErrorGroup {
        fingerprint: "0123456789abcdef".into(),
        range: Range::Day,
        bot: None,
    };
    assert_eq!(
        model::group(
            "0123456789abcdef",
            Range::Day,
            None,
            NOW,
            &results_of(&db, &missing)
        )
        .group,
        Ok(None)
    );
}

#[test]
fn the_pipeline_page_reads_envelopes_rejections_and_lag() {
    let db = typical();
    // One bot's webhook health, written by the consumer cron's own statement.
    let info = ingest_policy::alerts::WebhookInfo::parse(
        &serde_json::json!({"ok": true, "result": {"url": "https://bot.example/telegram",
            "pending_update_count": 12, "last_error_date": (NOW - 120_000) / 1000,
            "last_error_message": "Wrong response from the webhook: 502 Bad Gateway"}})
        .to_string(),
    )
    .unwrap();
    let stored =
        ingest_policy::alerts::webhook_health_statement("quiz-bot", NOW - 60_000, &Ok(info));
    run(&db, &stored.sql, &stored.params).unwrap();
    let p = model::pipeline(
        Range::Day,
        None,
        NOW,
        &results_of(
            &db,
            &Page::Pipeline {
                range: Range::Day,
                bot: None,
            },
        ),
    );
    let e = p.envelopes.clone().unwrap();
    assert_eq!(
        (e.messages, e.events),
        (2, 8),
        "the old envelope is outside the range"
    );
    assert_eq!(
        e.dropped,
        vec![
            ("send_failed", 2),
            ("oversize", 1),
            ("buffer_full", 0),
            ("cancelled", 3)
        ],
        "every drop reason the producers report, `cancelled` included"
    );
    let html = html::pipeline(
        &p,
        &html::Footer {
            source: "local".into(),
            d1_queries: 4,
            ae_queries: 0,
        },
    );
    assert!(html.contains("<tr><td>cancelled</td><td class=\"num\">3</td></tr>"));
    let webhooks = p.webhooks.clone().unwrap();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(
        (
            webhooks[0].bot.as_str(),
            webhooks[0].ok,
            webhooks[0].pending
        ),
        ("quiz-bot", true, 12)
    );
    assert_eq!(
        webhooks[0].last_error_at,
        Some((NOW - 120_000) / 1000 * 1000)
    );
    assert!(html.contains("502 Bad Gateway"));
    assert!(!html.contains("bot.example"), "no webhook URL is stored");
    let rejected = p.rejected.unwrap();
    assert_eq!(
        (
            rejected[0].reason.as_str(),
            rejected[0].messages,
            rejected[0].dead_letter
        ),
        ("version", 1, true)
    );
    assert_eq!(p.recent_rejected.unwrap()[0].payload_bytes, 2);
    let lag = p.lag.unwrap();
    // Written at 16:05–16:07 and 15:59 (weight 3), occurred at 16:29: negative lags (the test
    // data is artificial) still sort and weigh correctly.
    // Weights: 9 rows' worth at 15:59 (-30 min), then 3, 3 and 4 at 16:05, 16:06, 16:07.
    assert_eq!(lag.events, 19);
    assert_eq!(lag.p50_ms, Some(-1_440_000.0));
    assert_eq!(lag.p95_ms, Some(-1_320_000.0));
    assert_eq!(lag.max_ms, Some(-1_320_000.0));
    let (events, _, _) = p.lag_per_hour.unwrap();
    assert_eq!((events[22], events[23]), (9.0, 10.0));
}

/// Every page of the registry, with every parameter value its examples cover: each query of its
/// plan runs in SQLite (its D1 queries and the local-mirror renderings of its Analytics Engine
/// queries), and the page renders from the results without a query error.
#[test]
fn every_registered_page_runs_its_plan_and_renders() {
    let db = typical();
    let mut kinds = std::collections::HashSet::new();
    for page in dashboard_core::pages::every_example() {
        kinds.insert(page.kind());
        let results = results_of(&db, &page);
        assert!(
            results.errors().is_empty(),
            "{page:?}: {:?}",
            results.errors()
        );
        let footer = html::Footer {
            source: "test".into(),
            d1_queries: 0,
            ae_queries: 0,
        };
        let html =
            dashboard_core::pages::render(&page, NOW, &results, &Settings::example(), &footer);
        assert!(html.contains("<main>"), "{page:?}");
    }
    assert_eq!(kinds.len(), dashboard_core::pages::PageKind::ALL.len());
}

/// Two bots on one consumer: the overview's commands are per bot, and a bot filter keeps one
/// bot's points, groups and envelopes.
#[test]
fn a_bot_filter_keeps_one_bots_rows_and_rows_name_their_bot() {
    let db = typical();
    db.execute_batch(
        "INSERT INTO analytics_points_local (dataset, timestamp, _sample_interval, index1, \
         blob1, blob2, blob3, blob4, blob5, blob13, double1, double2, double3) VALUES \
         ('telegram_bot_events', '2025-11-24 16:10:00', 1, '9', 'other-bot', '0.1.0', 'command', \
          'start', '9', 'start', 1, 0, 1764000000000);
         INSERT INTO processed_envelopes (key, queue_message_id, bot, event_count, \
          dropped_send_failed, dropped_oversize, dropped_buffer_full, received_at, points_written) \
          VALUES ('k9', 'm9', 'other-bot', 7, 0, 0, 0, 1764000000500, 1);",
    )
    .unwrap();
    let overview = |bot: Option<&str>| {
        let page = Page::Overview {
            range: Range::Day,
            bot: bot.map(str::to_string),
        };
        model::overview(
            Range::Day,
            page.bot().map(str::to_string),
            NOW,
            &results_of(&db, &page),
        )
    };
    let all = overview(None).names.unwrap();
    let starts: Vec<&str> = all
        .iter()
        .filter(|n| n.name == "start")
        .map(|n| n.bot.as_str())
        .collect();
    assert_eq!(starts.len(), 2, "two bots' /start are two rows: {all:?}");
    assert!(starts.contains(&"bot") && starts.contains(&"other-bot"));
    let other = overview(Some("other-bot"));
    assert_eq!(other.total("command"), 1);
    assert!(other.names.unwrap().iter().all(|n| n.bot == "other-bot"));
    assert!(other.recent_groups.unwrap().is_empty(), "its groups only");
    let mine = overview(Some("bot")).recent_groups.unwrap();
    assert!(!mine.is_empty() && mine.iter().all(|g| g.bot == "bot"));

    let pipeline = |bot: Option<&str>| {
        let page = Page::Pipeline {
            range: Range::Day,
            bot: bot.map(str::to_string),
        };
        model::pipeline(Range::Day, None, NOW, &results_of(&db, &page))
            .envelopes
            .unwrap()
            .messages
    };
    assert_eq!((pipeline(None), pipeline(Some("other-bot"))), (3, 1));
}

/// A small known population in the owner-analytics tables and the local mirror. NOW is Monday
/// 2025-11-24 16:30 UTC (day 20,416). User 1 (source ads, en, premium) came on Monday 10 Nov and
/// again on days 7 and 14; user 2 (ads, ru) came the same day, blocked the bot on the 13th and
/// is blocked; user 3 (no source, en) came today, paid 500 XTR and got 200 back. Today: four
/// messages, one not understood; user 1 went /start → menu → order_paid, user 3 only /start.
fn owner() -> Connection {
    let db = migrated();
    let day = |d: i64, h: i64| (d * 86_400_000 + h * 3_600_000).to_string();
    db.execute_batch(&format!(
        "INSERT INTO bot_users (bot, user_id, first_seen, last_seen, source, source_at, lang, premium, status, status_at) VALUES
           ('bot', 1, {a}, {now}, 'ads', {a}, 'en', 1, 'active', NULL),
           ('bot', 2, {b}, {c}, 'ads', {b}, 'ru', 0, 'blocked', {c}),
           ('bot', 3, {d}, {now}, NULL, NULL, 'en', NULL, 'active', NULL);
         INSERT INTO user_days (bot, day, user_id) VALUES
           ('bot', 20402, 1), ('bot', 20409, 1), ('bot', 20416, 1), ('bot', 20402, 2), ('bot', 20416, 3);
         INSERT INTO user_events (event_id, bot, user_id, occurred_at, name, currency, amount) VALUES
           ('e1', 'bot', 2, {c}, 'user_blocked', NULL, NULL),
           ('e2', 'bot', 3, {d2}, 'payment', 'XTR', 500),
           ('e3', 'bot', 3, {d3}, 'refund', 'XTR', 200);",
        a = day(20402, 10),
        b = day(20402, 12),
        c = day(20405, 8),
        d = day(20416, 9),
        d2 = day(20416, 10),
        d3 = day(20416, 11),
        now = NOW,
    ))
    .unwrap();
    let t = (20_416_i64 * 86_400_000 + 12 * 3_600_000) as f64;
    let points: [(&str, &str, &str, &str, f64); 10] = [
        ("update", "message", "1", "", t),
        ("update", "message", "1", "", t),
        ("update", "message", "3", "", t),
        ("update", "message", "3", "", t),
        ("user", "not_understood", "3", "", t),
        ("command", "start", "1", "ads", t),
        ("callback", "menu", "1", "", t + 60_000.0),
        ("custom", "order_paid", "1", "", t + 120_000.0),
        ("command", "start", "3", "", t),
        ("callback", "menu", "3", "", t - 60_000.0),
    ];
    for (kind, name, user, source, at) in points {
        db.execute(
            "INSERT INTO analytics_points_local (dataset, timestamp, _sample_interval, index1, \
             blob1, blob3, blob4, blob5, blob16, double1, double3) \
             VALUES ('telegram_bot_events', '2025-11-24 12:00:05', 1, ?1, 'bot', ?2, ?3, ?1, ?4, 1, ?5)",
            rusqlite::params![user, kind, name, source, at],
        )
        .unwrap();
    }
    db
}

#[test]
fn the_owner_pages_show_a_known_population_exactly() {
    use dashboard_core::audience;
    let db = owner();
    let bot = Some("bot".to_string());

    let page = Page::Users {
        range: Range::Week,
        bot: bot.clone(),
    };
    let users = audience::users(Range::Week, bot.clone(), NOW, &results_of(&db, &page));
    let days = users.days.unwrap();
    let today = days.last().unwrap();
    assert_eq!((today.new, today.returning, today.active), (1, 1, 2));
    let first = days
        .iter()
        .find(|d| d.day == 20_409_i64 * 86_400_000)
        .unwrap();
    assert_eq!((first.new, first.returning, first.active), (0, 1, 1));
    let a = users.audience.unwrap();
    assert_eq!((a.dau, a.wau, a.mau, a.blocked_now), (2, 2, 3, 1));
    assert_eq!(a.languages, vec![("en".to_string(), 2)]);
    assert_eq!((a.premium, a.premium_known), (1, 1));
    let nu = users.not_understood.unwrap();
    assert_eq!(nu.last().unwrap().rate(), Some(0.25));

    let page = Page::Retention {
        range: Range::Month,
        bot: bot.clone(),
    };
    let retention = audience::retention(Range::Month, bot.clone(), NOW, &results_of(&db, &page));
    let cohorts = retention.cohorts.unwrap();
    assert_eq!(cohorts.len(), 13);
    let nov10 = &cohorts[10];
    assert_eq!(nov10.monday, 20_402_i64 * 86_400_000);
    assert_eq!(nov10.size, 2);
    assert_eq!(nov10.active[..4], [Some(2), Some(1), Some(1), None]);
    assert_eq!((cohorts[12].size, cohorts[12].active[0]), (1, Some(1)));

    let page = Page::Sources {
        range: Range::Month,
        bot: bot.clone(),
    };
    let sources = audience::sources(Range::Month, bot.clone(), &results_of(&db, &page));
    let rows = sources.sources.unwrap();
    let ads = rows.iter().find(|r| r.source == "ads").unwrap();
    assert_eq!(
        (
            ads.users,
            ads.retained_w1,
            ads.blocked_ever,
            ads.blocked_now,
            ads.payers
        ),
        (2, 1, 1, 1, 0)
    );
    let none = rows.iter().find(|r| r.source.is_empty()).unwrap();
    assert_eq!((none.users, none.payers), (1, 1));
    let revenue = sources.revenue.unwrap();
    assert_eq!(revenue.len(), 1);
    assert_eq!((revenue[0].paid, revenue[0].refunded), (500.0, 200.0));

    let page = Page::Funnels {
        range: Range::Day,
        bot: bot.clone(),
    };
    let funnels = audience::funnels(
        Range::Day,
        bot,
        &Settings::example(),
        &results_of(&db, &page),
    );
    let onboarding = &funnels.funnels.unwrap()[0];
    // User 3 pressed the menu button only before /start: not in order.
    assert_eq!(onboarding.overall, vec![2, 1, 1]);
    assert_eq!(onboarding.by_source[0], ("".to_string(), vec![1, 0, 0]));
    assert_eq!(onboarding.by_source[1], ("ads".to_string(), vec![1, 1, 1]));

    // Another bot's filter sees none of it.
    let page = Page::Sources {
        range: Range::Month,
        bot: Some("other".into()),
    };
    let other = audience::sources(Range::Month, Some("other".into()), &results_of(&db, &page));
    assert_eq!(other.sources.unwrap(), vec![]);
}
