//! Every Analytics Engine query of the project runs on a real ClickHouse engine (chDB, behind the
//! fake SQL API), held to what Analytics Engine's SQL reference documents, and gives the same
//! answer as its SQLite twin (the local mirror's rendering, or `queries/ae/local/`).
//!
//! The twins run over the population the points stand for: a point with `_sample_interval` n is n
//! rows in the SQLite mirror (which is never sampled), so an Analytics Engine query that counts
//! rows instead of summing `_sample_interval`, or takes unweighted quantiles, fails its
//! comparison.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dashboard_core::plan::{plan, Settings, Store};
use dashboard_core::queries::Dialect;
use dashboard_core::range::Range;
use dashboard_core::route::Page;
use dashboard_core::rows::{num, text, Row};
use dashboard_core::sqlapi::parse_response;
use dashboard_core::timefmt::sql_datetime;
use e2e_tests::fake_ae_sql::{check, AeSqlEngine};
use e2e_tests::{now_ms, repo_root};
use rusqlite::types::ValueRef;
use serde_json::{json, Value};

/// 2025-11-24 16:30 UTC.
const NOW: i64 = 1_764_000_000_000 + 30 * 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Every page of the dashboard-core registry, with every parameter value its examples cover (a
/// new page is in it, or the registry's own tests fail).
fn every_page() -> Vec<Page> {
    dashboard_core::pages::every_example().collect()
}

/// The Analytics Engine queries of every page in `dialect`, deduplicated, in plan order.
fn page_queries(dialect: Dialect) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for page in every_page() {
        for query in
            plan(&page, NOW, dialect, &Settings::example()).in_store(Store::AnalyticsEngine)
        {
            if seen.insert(query.sql.clone()) {
                out.push(query.sql.clone());
            }
        }
    }
    out
}

/// The saved Analytics Engine queries (`queries/ae/*.sql`) with their SQLite twins:
/// `queries/ae/local/<name>` when there is one, else the file itself (a portable query).
fn saved_queries() -> Vec<(String, String, String)> {
    let dir = repo_root().join("queries/ae");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "queries/ae/ holds {files:?}");
    files
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let local = dir.join("local").join(&name);
            let twin = if local.exists() { local } else { path.clone() };
            (
                name,
                std::fs::read_to_string(path).unwrap(),
                std::fs::read_to_string(twin).unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_analytics_engine_query_uses_only_documented_sql() {
    let mut all = page_queries(Dialect::AnalyticsEngine);
    let saved = saved_queries();
    all.extend(saved.iter().map(|(_, sql, _)| sql.clone()));
    let (results, pages) = check(&all);
    let mut used = BTreeSet::new();
    for (sql, result) in all.iter().zip(&results) {
        match &result.features {
            Ok(features) => used.extend(features.iter().cloned()),
            Err(e) => panic!("refused: {e}\n{sql}"),
        }
    }
    println!(
        "the Analytics Engine SQL of {} queries uses, with the page of Cloudflare's SQL reference documenting each:",
        all.len()
    );
    for feature in &used {
        let page = pages
            .iter()
            .find(|(f, _)| f == feature)
            .map(|(_, p)| p.as_str())
            .unwrap_or("?");
        println!("  {feature:<28} {page}");
    }
    // The local-mirror renderings are SQLite (CASE, window functions, strftime): refused.
    let local = page_queries(Dialect::Sqlite);
    let (results, _) = check(&local);
    for (sql, result) in local.iter().zip(&results) {
        if sql.contains("strftime") || sql.contains("OVER") || sql.contains("CASE") {
            assert!(result.features.is_err(), "accepted SQLite-only SQL:\n{sql}");
        }
    }
}

/// Queries ClickHouse runs but Analytics Engine's SQL reference does not document: refused by
/// the fake's dialect check (`422: refused: …`), never run.
#[test]
fn what_only_clickhouse_accepts_is_refused() {
    let engine = AeSqlEngine::new(None);
    engine.insert(
        "2025-11-24 16:01:00",
        1,
        &[("blob3", json!("update")), ("blob7", json!("e1"))],
    );
    // ClickHouse alone runs each of these; Analytics Engine's reference documents none.
    let clickhouse_only = [
        "SELECT uniqExact(blob5) AS users FROM telegram_bot_events",
        "SELECT uniq(blob5) AS users FROM telegram_bot_events",
        "SELECT arrayJoin(splitByChar(',', blob17)) AS part FROM telegram_bot_events",
        "SELECT sum(_sample_interval) OVER (PARTITION BY blob3) AS n FROM telegram_bot_events",
        "SELECT quantile(0.5)(double2) AS p50 FROM telegram_bot_events",
        "SELECT median(double2) AS p50 FROM telegram_bot_events",
        "SELECT groupArray(blob3) AS kinds FROM telegram_bot_events",
        "SELECT CASE WHEN blob3 = 'update' THEN 1 ELSE 0 END AS u FROM telegram_bot_events",
        "SELECT CAST(double2 AS String) AS s FROM telegram_bot_events",
        "SELECT double2::String AS s FROM telegram_bot_events",
        "SELECT blob1 || blob2 AS s FROM telegram_bot_events",
        "SELECT DISTINCT blob3 FROM telegram_bot_events",
        "WITH 1 AS one SELECT one FROM telegram_bot_events",
        "SELECT blob3 FROM telegram_bot_events WHERE blob5 IN (SELECT blob5 FROM telegram_bot_events)",
        "SELECT blob3 FROM telegram_bot_events UNION ALL SELECT blob4 FROM telegram_bot_events",
        "SELECT a.blob3 FROM telegram_bot_events AS a JOIN telegram_bot_events AS b ON a.blob7 = b.blob7",
        "SELECT blob3 FROM telegram_bot_events LIMIT 1 BY blob3",
        "SELECT name FROM system.tables",
        "SELECT number FROM numbers(10)",
        "SELECT 1 FROM telegram_bot_events SETTINGS max_threads = 1",
        "SELECT 1 FROM telegram_bot_events FORMAT Pretty",
    ];
    for sql in clickhouse_only {
        if let Err(e) = engine.query_on_clickhouse_alone(sql) {
            panic!("ClickHouse alone refuses {sql}: {e}");
        }
    }
    // Nor would the fake run these (and nobody should).
    let never = [
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT 1 FROM telegram_bot_events; DROP TABLE telegram_bot_events",
        "SELECT 'a\\'b' AS s FROM telegram_bot_events",
        "INSERT INTO telegram_bot_events (blob1) VALUES ('x')",
    ];
    for sql in clickhouse_only.iter().chain(&never) {
        match engine.query(sql) {
            Err(e) => assert!(e.0.starts_with("422: refused: "), "{sql}: {e}"),
            Ok(answer) => panic!("accepted: {sql}\n{answer}"),
        }
    }
    let refused = engine
        .query("SELECT uniqExact(blob5) AS users FROM telegram_bot_events")
        .unwrap_err();
    println!("an undocumented ClickHouse function: {refused}");

    // Documented names, misused: ClickHouse itself refuses them (wrong case, type, column).
    for sql in [
        "SELECT tostartofhour(timestamp) AS h FROM telegram_bot_events",
        "SELECT toStartOfHour(blob3) AS h FROM telegram_bot_events",
        "SELECT blob3 AS kind, SUM(_sample_interval) AS n FROM telegram_bot_events",
        "SELECT blob21 FROM telegram_bot_events",
        "SELECT blob3 FROM other_dataset",
    ] {
        match engine.query(sql) {
            Err(e) => assert!(
                e.0.starts_with("422: ClickHouse: ") || e.0.starts_with("422: refused: "),
                "{sql}: {e}"
            ),
            Ok(answer) => panic!("accepted: {sql}\n{answer}"),
        }
    }
    let misused = engine
        .query("SELECT toStartOfHour(blob3) AS h FROM telegram_bot_events")
        .unwrap_err();
    println!("a documented function, misused: {misused}");

    // Documented names ClickHouse spells differently run as the reference says they are.
    let renamed = engine
        .query("SELECT length('h\u{e9}llo') AS n, toUpper('\u{e9}t\u{e9}') AS u, count() AS c FROM telegram_bot_events")
        .unwrap();
    assert_eq!(
        renamed["data"][0],
        json!({"n": "5", "u": "\u{c9}T\u{c9}", "c": "1"})
    );
}

/// Every feature the reference lists, used as Cloudflare's examples use it: the fake accepts it
/// and ClickHouse runs it (so the list holds nothing the fake would wrongly refuse).
const DOCUMENTED: &[&str] = &[
    "SELECT blob1 AS b, count() AS n FROM telegram_bot_events WHERE double1 >= 0 GROUP BY b HAVING n > 0 ORDER BY n DESC, b ASC LIMIT 10 OFFSET 0 FORMAT JSON",
    "SELECT blob1 FROM telegram_bot_events LIMIT ALL FORMAT JSONEachRow",
    "SELECT blob1, double1 FROM telegram_bot_events FORMAT TabSeparated",
    "SELECT * FROM telegram_bot_events",
    "SELECT n FROM (SELECT blob1 AS probe, count() AS n FROM telegram_bot_events GROUP BY probe)",
    "SELECT double1 * 1.8 + 32 - 1 AS f, double1 / 2 AS h, 7 % 3 AS m, -42 AS neg, -double1 AS nd FROM telegram_bot_events",
    "SELECT blob1 FROM telegram_bot_events WHERE blob1 = 'a' OR blob1 <> 'b' AND blob1 != 'c' AND double1 < 5 AND double1 > -1 AND double1 <= 5 AND NOT double1 >= 9",
    "SELECT blob1 FROM telegram_bot_events WHERE blob1 IN ('a', 'b') OR blob1 NOT IN ('c') OR double1 BETWEEN 0 AND 3 OR double1 NOT BETWEEN 5 AND 9",
    "SELECT blob1 FROM telegram_bot_events WHERE blob1 LIKE 'err%' OR blob1 NOT LIKE 'x_' OR blob1 ILIKE '%.JPG' OR blob1 NOT ILIKE '%debug%'",
    "SELECT true AS t, false AS f, now() - INTERVAL '1' YEAR AS y, now() - INTERVAL '1' MONTH AS mo, now() - INTERVAL '42' DAY AS d, now() - INTERVAL '1' HOUR AS h, now() - INTERVAL '1' MINUTE AS mi, now() - INTERVAL '1' SECOND AS s",
    "SELECT count(DISTINCT blob1) AS a, sum(double1) AS b, sum(DISTINCT double1) AS c, avg(double1) AS d, avg(DISTINCT double1) AS e, min(double1) AS f, max(double1) AS g FROM telegram_bot_events",
    "SELECT quantileExactWeighted(0.5)(double1, _sample_interval) AS q, argMax(blob1, double1) AS am, argMin(blob1, _sample_interval) AS an, first_value(blob1) AS fv, last_value(blob1) AS lv FROM telegram_bot_events",
    "SELECT topK(double1) AS t1, topK(15)(blob1) AS t2, topKWeighted(double1, _sample_interval) AS t3, topKWeighted(15)(blob1, _sample_interval) AS t4 FROM telegram_bot_events",
    "SELECT countIf(double1 > 5) AS a, sumIf(double1, double2 > 0) AS b, avgIf(double1, double2 > 0) AS c FROM telegram_bot_events",
    "SELECT bitAnd(1, 3) AS a, bitAnd(toUInt8(double1), 1) AS b, bitCount(toUInt32(double1)) AS c, bitHammingDistance(3, 0) AS d, bitNot(1) AS e, bitOr(1, 2) AS f, bitRotateLeft(1, 1) AS g, bitRotateRight(12, 2) AS h, bitShiftLeft(1, 1) AS i, bitShiftRight(12, 2) AS j, bitTest(3, 1) AS k, bitXor(3, 3) AS l FROM telegram_bot_events",
    "SELECT if(double1 <= 0, 'FREEZING', 'NOT FREEZING') AS description FROM telegram_bot_events",
    "SELECT formatDateTime(now(), '%Y-%m-%d') AS a, formatDateTime(toDateTime('2022-12-01 16:17:00', 'America/New_York'), '%Y-%m-%d', 'Etc/UTC') AS b, today() AS c, toDateTime(double3 / 1000) AS d, toDateTime('1981-04-12 12:00:04') AS e FROM telegram_bot_events",
    "SELECT toYear(timestamp) AS a, toMonth(timestamp) AS b, toDayOfWeek(timestamp) AS c, toDayOfMonth(timestamp) AS d, toHour(timestamp) AS e, toMinute(timestamp) AS f, toSecond(timestamp) AS g, toUnixTimestamp(now()) AS h, toYYYYMM(timestamp) AS i FROM telegram_bot_events",
    "SELECT toStartOfInterval(timestamp, INTERVAL '15' MINUTE) AS a, toStartOfYear(timestamp) AS b, toStartOfMonth(timestamp) AS c, toStartOfWeek(timestamp) AS d, toStartOfDay(timestamp) AS e, toStartOfHour(timestamp) AS f, toStartOfFifteenMinutes(timestamp) AS g, toStartOfTenMinutes(timestamp) AS h, toStartOfFiveMinutes(timestamp) AS i, toStartOfMinute(timestamp) AS j FROM telegram_bot_events",
    "SELECT bin(1) AS a, bin('abc') AS b, hex(1) AS c, hex('abc') AS d",
    "SELECT intDiv(7, 2) AS a, log(double1 + 1) AS b, ln(2) AS c, pow(double1, 2) AS d, round(5.5) AS e, round(3.14, 1) AS f, floor(5.5) AS g, floor(3.14, 1) AS h, ceil(5.5) AS i, ceil(3.14, 1) AS j FROM telegram_bot_events",
    "SELECT length(blob1) AS a, empty(blob1) AS b, lower(blob1) AS c, lowerUTF8(blob1) AS d, toLower(blob1) AS e, upper(blob1) AS f, upperUTF8(blob1) AS g, toUpper(blob1) AS h, startsWith(blob1, 'pre') AS i, endsWith(blob1, 'suf') AS j FROM telegram_bot_events",
    "SELECT position(':' IN 'hello: world') AS p, substring('hello world', 6) AS a, substring('hello: world', 1, position(':' IN 'hello: world') - 1) AS b, format('blob1: {}', blob1) AS c, extract(SECOND FROM toDateTime('2022-06-06 11:30:15')) AS d FROM telegram_bot_events",
    "SELECT toUInt8(double1) AS a, toUInt32('42') AS b FROM telegram_bot_events",
    "SHOW TABLES",
];

#[test]
fn every_documented_feature_runs_on_the_fake() {
    let engine = AeSqlEngine::new(None);
    engine.insert(
        "2025-11-24 16:01:00",
        2,
        &[
            ("blob1", json!("pre:x")),
            ("double1", json!(3)),
            ("double2", json!(1)),
            ("double3", json!(1_764_000_060_000_i64)),
        ],
    );
    for sql in DOCUMENTED {
        if let Err(e) = engine.query_text(sql) {
            panic!("{sql}: {e}");
        }
    }
    let queries: Vec<String> = DOCUMENTED.iter().map(|q| q.to_string()).collect();
    let (results, pages) = check(&queries);
    let used: BTreeSet<String> = results
        .into_iter()
        .flat_map(|r| r.features.unwrap())
        .collect();
    // quantileWeighted(q, v, w) is documented "for backwards compatibility" but has no
    // ClickHouse twin (see the reference file): the fake cannot run it.
    let unused: Vec<&String> = pages
        .iter()
        .map(|(feature, _)| feature)
        .filter(|f| !used.contains(*f) && f.as_str() != "quantileWeighted()")
        .collect();
    assert!(unused.is_empty(), "listed but never exercised: {unused:?}");
    println!("{} documented features run on the fake", used.len());
}

#[test]
fn answers_in_the_documented_format_and_weights_by_sample_interval() {
    let engine = AeSqlEngine::new(None);
    for (ts, interval, kind, ms) in [
        ("2025-11-24 16:01:00", 1, "update", 0.0),
        ("2025-11-24 16:02:00", 10, "update", 0.0),
        ("2025-11-24 16:02:00", 1, "performance", 5.0),
        ("2025-11-24 16:02:00", 3, "performance", 50.0),
    ] {
        engine.insert(
            ts,
            interval,
            &[("blob3", json!(kind)), ("double2", json!(ms))],
        );
    }
    let answer = engine
        .query(
            "SELECT blob3 AS kind, SUM(_sample_interval) AS events, \
             quantileExactWeighted(0.5)(double2, _sample_interval) AS p50, \
             toStartOfHour(timestamp) AS hour \
             FROM telegram_bot_events GROUP BY kind, hour ORDER BY kind LIMIT 10",
        )
        .unwrap();
    assert_eq!(answer["rows"], 2);
    assert_eq!(answer["rows_before_limit_at_least"], 2);
    assert_eq!(
        answer["meta"],
        json!([
            {"name": "kind", "type": "String"},
            {"name": "events", "type": "UInt64"},
            {"name": "p50", "type": "Float64"},
            {"name": "hour", "type": "DateTime"}
        ])
    );
    // 64-bit integers quoted, as the SQL API does; weights count; times in UTC.
    assert_eq!(
        answer["data"][0],
        json!({"kind": "performance", "events": "4", "p50": 50, "hour": "2025-11-24 16:00:00"})
    );
    assert_eq!(answer["data"][1]["events"], "11");
    assert!(answer.get("statistics").is_none());
    // The dashboard's parser reads it.
    let rows = parse_response(200, &answer.to_string()).unwrap();
    assert_eq!(num(&rows[1], "events"), Some(11.0));
    // Without a LIMIT there is no rows_before_limit_at_least.
    let all = engine
        .query("SELECT count() AS n FROM telegram_bot_events")
        .unwrap();
    assert!(all.get("rows_before_limit_at_least").is_none(), "{all}");
    assert_eq!(all["data"][0]["n"], "4");
    // SHOW TABLES lists the dataset.
    let tables = engine.query("SHOW TABLES").unwrap();
    assert_eq!(tables["data"], json!([{"name": "telegram_bot_events"}]));
}

/// A point: timestamp, sample interval, column values.
type Point = (String, i64, Vec<(&'static str, Value)>);

/// Deterministic points over the ten days before `now`: every kind, two bots, several users and
/// commands, sample intervals 1–4. None lies within 15 minutes of one or thirty days before
/// `now`, where the saved queries' `NOW() - INTERVAL` windows end (the two engines read the
/// clock a moment apart).
fn points(now: i64, days: i64) -> Vec<Point> {
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let kinds = [
        "update",
        "command",
        "callback",
        "performance",
        "error",
        "custom",
        "user",
    ];
    let commands = ["start", "help", "menu", "ping"];
    let mut out = Vec::new();
    while out.len() < 600 {
        let age = (next(days as u64 * 24) as i64) * HOUR + (next(3600) as i64) * 1000;
        let near = |edge: i64| (age - edge).abs() < 15 * 60_000;
        // Every bot has updates, so error rates are defined.
        let kind = if out.len() < 2 {
            "update"
        } else {
            // Every third custom event is a user event instead (no extra draw from the
            // generator, so the other points stay as they were).
            match kinds[next(6) as usize] {
                "custom" if out.len() % 3 == 0 => "user",
                kind => kind,
            }
        };
        // Two bots, one of them the registry's example bot filter, so filtered pages have rows.
        let example_bot = dashboard_core::pages::EXAMPLE_BOTS[1].unwrap_or("bot_b");
        let (bot, command, interval) = (
            ["bot_a", example_bot][out.len() % 2],
            commands[next(4) as usize],
            1 + next(4) as i64,
        );
        let (name, prop) = match kind {
            "performance" => ("handler", if next(3) > 0 { command } else { "" }),
            "command" => (command, ""),
            "callback" => ("menu", ""),
            "update" => (["message", "callback_query"][out.len() % 2], ""),
            "custom" => (["order_paid", "x"][out.len() % 2], ""),
            "user" => ("not_understood", ""),
            _ => ("x", ""),
        };
        // /start carries a deep-link source now and then (the funnels' per-source rows).
        let source = if name == "start" {
            ["", "ads", "promo"][out.len() % 3]
        } else {
            ""
        };
        let user = if next(5) == 0 {
            String::new()
        } else {
            (1000 + next(20)).to_string()
        };
        let (ms, skew) = (next(200) as f64, next(5000) as i64);
        if near(DAY) || near(30 * DAY) {
            continue;
        }
        let written = now - age;
        // Most updates carry a Telegram → bot delivery lag (`double10` = 1 says so), derived
        // from draws already made so the other points stay as they were.
        let (telegram_lag, has_lag) = if kind == "update" && ms as i64 % 4 != 0 {
            (ms * 150.0 + (skew % 1000) as f64, 1.0)
        } else {
            (0.0, 0.0)
        };
        let values = vec![
            ("blob1", json!(bot)),
            ("blob3", json!(kind)),
            ("blob4", json!(name)),
            ("blob5", json!(user)),
            ("blob13", json!(prop)),
            ("blob16", json!(source)),
            ("double2", json!(ms)),
            ("double3", json!((written - skew) as f64)),
            ("double9", json!(telegram_lag)),
            ("double10", json!(has_lag)),
        ];
        out.push((sql_datetime(written), interval, values));
    }
    out
}

fn engine_with(points: &[Point]) -> AeSqlEngine {
    let engine = AeSqlEngine::new(None);
    for (ts, interval, values) in points {
        engine.insert(ts, *interval, values);
    }
    engine
}

/// The local mirror in SQLite (the project's migration), holding the population the points
/// stand for: a point with `_sample_interval` n is n unsampled rows, as the local mirror (which
/// is never sampled) would hold them.
fn sqlite_mirror(points: &[Point]) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    let migration = std::fs::read_to_string(
        e2e_tests::repo_root().join("migrations/0002_analytics_points_local.sql"),
    )
    .unwrap();
    db.execute_batch(&migration).unwrap();
    for (ts, interval, values) in points {
        let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
        let marks: Vec<String> = (3..3 + names.len()).map(|i| format!("?{i}")).collect();
        let mut params: Vec<rusqlite::types::Value> =
            vec!["telegram_bot_events".to_string().into(), ts.clone().into()];
        params.extend(values.iter().map(|(_, v)| match v {
            Value::String(s) => rusqlite::types::Value::from(s.clone()),
            other => rusqlite::types::Value::from(other.as_f64().unwrap()),
        }));
        let sql = format!(
            "INSERT INTO analytics_points_local (dataset, timestamp, _sample_interval, index1, {}) VALUES (?1, ?2, 1, '', {})",
            names.join(", "),
            marks.join(", ")
        );
        for _ in 0..*interval {
            db.execute(&sql, rusqlite::params_from_iter(params.clone()))
                .unwrap();
        }
    }
    db
}

fn sqlite_rows(db: &rusqlite::Connection, sql: &str) -> Vec<Row> {
    let mut statement = db.prepare(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let names: Vec<String> = statement.column_names().map(str::to_string).collect();
    let mut rows = statement.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let mut map = Row::new();
        for (i, name) in names.iter().enumerate() {
            let v = match row.get_ref(i).unwrap() {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => json!(n),
                ValueRef::Real(x) => json!(x),
                ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                ValueRef::Blob(_) => Value::Null,
            };
            map.insert(name.clone(), v);
        }
        out.push(map);
    }
    out
}

/// A row as sorted (column, text) pairs: numbers as numbers (`3`, `"3"` and `3.0` agree, to 12
/// significant digits), a day `YYYY-MM-DD` as `YYYY-MM-DD 00:00:00`. Percentiles over no timed
/// rows are left out: ClickHouse answers 0 there, the SQLite rendering NULL, and the dashboard
/// shows neither (it checks `timed`).
fn normalized(row: &Row) -> Vec<(String, String)> {
    let untimed = num(row, "timed") == Some(0.0);
    let mut out: Vec<(String, String)> = row
        .keys()
        .filter(|k| !(untimed && k.starts_with('p') && k.ends_with("_ms")))
        .map(|k| {
            let textual = matches!(row[k], Value::String(ref s) if s.contains('-') && s.len() > 8);
            let v = match num(row, k) {
                Some(x) if !textual => format!("{x:.11e}"),
                _ => {
                    let t = text(row, k);
                    if t.len() == 10 && t.as_bytes()[4] == b'-' {
                        format!("{t} 00:00:00")
                    } else {
                        t
                    }
                }
            };
            (k.clone(), v)
        })
        .collect();
    out.sort();
    out
}

/// Runs `ae_sql` on ClickHouse and `local_sql` on the SQLite mirror and compares the answers
/// as sets of rows (ties may come in any order). Ok(rows compared), or what differs.
fn compare(
    engine: &AeSqlEngine,
    mirror: &rusqlite::Connection,
    ae_sql: &str,
    local_sql: &str,
) -> Result<usize, String> {
    let answer = engine.query(ae_sql).map_err(|e| e.0)?;
    let from_api = parse_response(200, &answer.to_string()).map_err(|e| e.to_string())?;
    let from_mirror = sqlite_rows(mirror, local_sql);
    let mut a: Vec<_> = from_api.iter().map(normalized).collect();
    let mut b: Vec<_> = from_mirror.iter().map(normalized).collect();
    a.sort();
    b.sort();
    if a.is_empty() {
        return Err("no rows".into());
    }
    if a != b {
        let only_ae: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(3).collect();
        let only_local: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(3).collect();
        return Err(format!(
            "{} rows on ClickHouse, {} in the SQLite twin; e.g. only on ClickHouse: {only_ae:?}; only in the twin: {only_local:?}",
            a.len(),
            b.len()
        ));
    }
    Ok(a.len())
}

#[test]
fn every_page_query_agrees_with_its_sqlite_twin() {
    let points = points(NOW, 10);
    let engine = engine_with(&points);
    let mirror = sqlite_mirror(&points);
    let mut compared = 0;
    let mut queries = 0;
    for page in every_page() {
        let ae = plan(&page, NOW, Dialect::AnalyticsEngine, &Settings::example());
        let local = plan(&page, NOW, Dialect::Sqlite, &Settings::example());
        let ae: Vec<_> = ae.in_store(Store::AnalyticsEngine).collect();
        let local: Vec<_> = local.in_store(Store::AnalyticsEngine).collect();
        assert_eq!(ae.len(), local.len());
        for (a, l) in ae.iter().zip(&local) {
            assert_eq!(a.id, l.id);
            compared += compare(&engine, &mirror, &a.sql, &l.sql)
                .unwrap_or_else(|e| panic!("{page:?} {:?}: {e}\n{}\n---\n{}", a.id, a.sql, l.sql));
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");
    println!(
        "every page: {queries} Analytics Engine queries on {}, {compared} rows equal to their SQLite twins'",
        engine.engine()
    );
}

#[test]
fn every_saved_query_runs_and_agrees_with_its_sqlite_twin() {
    // The saved queries read NOW(): the points lie before the real clock, over 40 days so the
    // 30-day window cuts some off.
    let points = points(now_ms(), 40);
    let engine = engine_with(&points);
    let mirror = sqlite_mirror(&points);
    for (name, ae_sql, local_sql) in saved_queries() {
        let rows = compare(&engine, &mirror, &ae_sql, &local_sql)
            .unwrap_or_else(|e| panic!("queries/ae/{name}: {e}"));
        println!("queries/ae/{name}: {rows} rows on ClickHouse equal to its SQLite twin's");
    }
}

/// The comparison catches a query that counts rows where it must sum `_sample_interval`, and a
/// quantile that ignores the weights.
#[test]
fn a_query_ignoring_the_sample_interval_fails_its_comparison() {
    assert!(points(NOW, 10).iter().any(|(_, interval, _)| *interval > 1));
    let points = points(NOW, 10);
    let engine = engine_with(&points);
    let mirror = sqlite_mirror(&points);
    let window = Range::Week.window(NOW);
    let right = dashboard_core::queries::events_per_hour(Dialect::AnalyticsEngine, &window, None);
    let local = dashboard_core::queries::events_per_hour(Dialect::Sqlite, &window, None);
    compare(&engine, &mirror, &right, &local).expect("the weighted query agrees");
    let counting = right.replace("SUM(_sample_interval)", "count()");
    assert_ne!(counting, right);
    let failure = compare(&engine, &mirror, &counting, &local)
        .expect_err("a row-counting query passed its comparison");
    println!("a row-counting query: {failure}");

    let latency = |q: &str| {
        format!(
            "SELECT blob13 AS command, {q} AS p95_ms, SUM(_sample_interval) AS updates \
             FROM telegram_bot_events WHERE blob3 = 'performance' AND blob4 = 'handler' \
             AND blob13 != '' GROUP BY command ORDER BY updates DESC"
        )
    };
    let local = std::fs::read_to_string(
        repo_root().join("queries/ae/local/handler_latency_by_command.sql"),
    )
    .unwrap()
    .replace("MIN(CASE WHEN rn >= 0.50 * n THEN ms END) AS p50_ms,", "");
    compare(
        &engine,
        &mirror,
        &latency("quantileExactWeighted(0.95)(double2, _sample_interval)"),
        &local,
    )
    .expect("the weighted quantile agrees");
    let unweighted = compare(
        &engine,
        &mirror,
        &latency("quantileExactWeighted(0.95)(double2, 1)"),
        &local,
    )
    .expect_err("an unweighted quantile passed its comparison");
    println!("an unweighted quantile: {unweighted}");
}

/// The funnel SQL follows the funnel rule: on ClickHouse, the per-user first times
/// (`queries::funnel_first_times`) run through `funnel::reached` give, per source, exactly the
/// counts the aggregated query (`queries::funnels`) answers.
#[test]
fn the_funnel_sql_follows_the_funnel_rule() {
    use dashboard_core::funnel::{parse_config, reached, step_counts};
    use dashboard_core::queries::{distinct_steps, funnel_first_times, funnels};
    let points = points(NOW, 10);
    let engine = engine_with(&points);
    let configured = parse_config(
        "A: /start > callback menu > order_paid within 3d; B: callback menu > /help within 2h; C: /ping > not_understood",
    )
    .unwrap();
    let window = Range::Week.window(NOW);
    let steps = distinct_steps(&configured);
    let per_user = engine
        .query(&funnel_first_times(
            Dialect::AnalyticsEngine,
            &window,
            None,
            &configured,
        ))
        .unwrap();
    let per_user = parse_response(200, &per_user.to_string()).unwrap();
    assert!(per_user.len() > 10, "{} users", per_user.len());
    let aggregated = engine
        .query(&funnels(
            Dialect::AnalyticsEngine,
            &window,
            None,
            &configured,
        ))
        .unwrap();
    let aggregated = parse_response(200, &aggregated.to_string()).unwrap();
    let mut compared = 0;
    for row in &aggregated {
        let source = text(row, "source");
        let users: Vec<&Row> = per_user
            .iter()
            .filter(|u| text(u, "src") == source)
            .collect();
        for (f, funnel) in configured.iter().enumerate() {
            let expected = step_counts(
                users.iter().map(|u| {
                    let times: Vec<Option<f64>> = funnel
                        .steps
                        .iter()
                        .map(|s| {
                            let i = steps.iter().position(|x| x == s).unwrap();
                            num(u, &format!("t{i}")).filter(|t| *t < 1e18)
                        })
                        .collect();
                    reached(&times, funnel.limit_ms)
                }),
                funnel.steps.len(),
            );
            let got: Vec<u64> = (0..funnel.steps.len())
                .map(|k| num(row, &format!("f{f}_{k}")).unwrap() as u64)
                .collect();
            assert_eq!(got, expected, "funnel {} source {source:?}", funnel.name);
            compared += got.iter().filter(|n| **n > 0).count();
        }
    }
    assert!(
        compared > 5,
        "too few non-zero steps to compare: {compared}"
    );
    println!("funnels: {compared} non-zero step counts equal the funnel rule's");
}
