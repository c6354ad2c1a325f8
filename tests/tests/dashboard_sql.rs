//! The fake Analytics Engine SQL API, natively (no Workers): it accepts the dashboard's
//! Analytics Engine SQL, refuses what Analytics Engine would not run, weights by
//! `_sample_interval`, and gives the same answers as the local-mirror (SQLite) renderings of the
//! same queries, over the same points.

use dashboard_core::plan::{plan, Store};
use dashboard_core::queries::Dialect;
use dashboard_core::rows::{num, text, Row};
use dashboard_core::sqlapi::parse_response;
use e2e_tests::fake_ae_sql::{translate, AeSqlEngine};
use rusqlite::types::ValueRef;
use serde_json::{json, Value};

/// 2025-11-24 16:30 UTC.
const NOW: i64 = 1_764_000_000_000 + 30 * 60_000;

/// The Analytics Engine queries of every page of the registry, with every parameter value its
/// examples cover.
fn every_page_ae_sql(dialect: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    for page in dashboard_core::pages::every_example() {
        out.extend(
            plan(&page, NOW, dialect)
                .in_store(Store::AnalyticsEngine)
                .map(|q| q.sql.clone()),
        );
    }
    out.dedup();
    out
}

#[test]
fn every_dashboard_query_is_accepted() {
    for sql in every_page_ae_sql(Dialect::AnalyticsEngine) {
        translate(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }
    // The local-mirror renderings are SQLite, not Analytics Engine SQL: refused.
    for sql in every_page_ae_sql(Dialect::Sqlite) {
        assert!(translate(&sql).is_err(), "accepted SQLite-only SQL:\n{sql}");
    }
}

#[test]
fn what_analytics_engine_would_not_run_is_refused() {
    for bad in [
        "SELECT * FROM other_table",
        "SELECT blob21 FROM telegram_bot_events",
        "SELECT strftime('%H', timestamp) FROM telegram_bot_events",
        "SELECT CASE WHEN blob3 = 'a' THEN 1 END FROM telegram_bot_events",
        "SELECT SUM(double1) OVER () FROM telegram_bot_events",
        "SELECT 1 FROM telegram_bot_events; DROP TABLE x",
        "SELECT 1 FROM telegram_bot_events JOIN x",
        "DELETE FROM telegram_bot_events",
        "SELECT quantileExactWeighted(double2, _sample_interval) FROM telegram_bot_events",
        "SELECT tostartofhour(timestamp) FROM telegram_bot_events",
        "SELECT 'a\\'b' FROM telegram_bot_events",
        "SELECT 1 FROM telegram_bot_events FORMAT TabSeparated",
    ] {
        assert!(translate(bad).is_err(), "accepted: {bad}");
    }
    let ok = translate(
        "SELECT toStartOfHour(timestamp) AS hour, if(blob3 = 'x', 'a', 'b') AS k, count() AS n, \
         quantileExactWeighted(0.5)(double2, _sample_interval) AS p FROM telegram_bot_events \
         WHERE timestamp >= toDateTime('2025-11-24 00:00:00') GROUP BY hour, k ORDER BY n DESC LIMIT 5 FORMAT JSON",
    )
    .unwrap();
    assert!(ok.contains("strftime('%Y-%m-%d %H:00:00',"), "{ok}");
    assert!(ok.contains("iif(") && ok.contains("COUNT(*)"), "{ok}");
    assert!(ok.contains("quantile_exact_weighted(0.5,"), "{ok}");
    assert!(!ok.contains("FORMAT"), "{ok}");
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
             quantileExactWeighted(0.5)(double2, _sample_interval) AS p50 \
             FROM telegram_bot_events GROUP BY kind ORDER BY kind LIMIT 10",
        )
        .unwrap();
    assert_eq!(answer["rows"], 2);
    assert_eq!(answer["rows_before_limit_at_least"], 2);
    assert_eq!(
        answer["meta"],
        json!([{"name": "kind", "type": "String"}, {"name": "events", "type": "UInt64"}, {"name": "p50", "type": "Float64"}])
    );
    // 64-bit integers quoted, as ClickHouse does; weights count.
    assert_eq!(
        answer["data"][0],
        json!({"kind": "performance", "events": "4", "p50": 50.0})
    );
    assert_eq!(answer["data"][1]["events"], "11");
    // The dashboard's parser reads it.
    let rows = parse_response(200, &answer.to_string()).unwrap();
    assert_eq!(num(&rows[1], "events"), Some(11.0));
    assert!(engine
        .query("SELECT nope FROM telegram_bot_events")
        .is_err());
}

/// Deterministic points: every kind, several users and commands, sample intervals 1–4, spread
/// over ten days before [`NOW`].
/// A point: timestamp, sample interval, column values.
type Point = (String, i64, Vec<(&'static str, Value)>);

fn points() -> Vec<Point> {
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
    ];
    let commands = ["start", "help", "menu", "ping"];
    (0..600)
        .map(|_| {
            let written = NOW - (next(240) as i64) * 3_600_000 - (next(3600) as i64) * 1000;
            let ts = dashboard_core::timefmt::sql_datetime(written);
            let kind = kinds[next(6) as usize];
            let command = commands[next(4) as usize];
            let (name, prop) = match kind {
                "performance" => ("handler", if next(3) > 0 { command } else { "" }),
                "command" => (command, ""),
                "callback" => ("menu", ""),
                _ => ("x", ""),
            };
            let user = if next(5) == 0 {
                String::new()
            } else {
                (1000 + next(20)).to_string()
            };
            let values = vec![
                ("blob3", json!(kind)),
                ("blob4", json!(name)),
                ("blob5", json!(user)),
                ("blob13", json!(prop)),
                ("double2", json!(next(200) as f64)),
                ("double3", json!((written - next(5000) as i64) as f64)),
            ];
            (ts, 1 + next(4) as i64, values)
        })
        .collect()
}

fn sqlite_mirror(points: &[Point]) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    let migration = std::fs::read_to_string(
        e2e_tests::repo_root().join("migrations/0002_analytics_points_local.sql"),
    )
    .unwrap();
    db.execute_batch(&migration).unwrap();
    for (ts, interval, values) in points {
        let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
        let marks: Vec<String> = (4..4 + names.len()).map(|i| format!("?{i}")).collect();
        let mut params: Vec<rusqlite::types::Value> = vec![
            "telegram_bot_events".to_string().into(),
            ts.clone().into(),
            (*interval).into(),
        ];
        params.extend(values.iter().map(|(_, v)| match v {
            Value::String(s) => rusqlite::types::Value::from(s.clone()),
            other => rusqlite::types::Value::from(other.as_f64().unwrap()),
        }));
        db.execute(
            &format!(
                "INSERT INTO analytics_points_local (dataset, timestamp, _sample_interval, index1, {}) VALUES (?1, ?2, ?3, '', {})",
                names.join(", "),
                marks.join(", ")
            ),
            rusqlite::params_from_iter(params),
        )
        .unwrap();
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

/// A row with every value as text, numbers normalized (`3`, `"3"` and `3.0` agree). Percentiles
/// over no timed rows are left out: ClickHouse answers the smallest value there, the SQLite
/// rendering NULL, and the dashboard shows neither (it checks `timed`).
fn normalized(row: &Row) -> Vec<(String, String)> {
    let untimed = num(row, "timed") == Some(0.0);
    let mut out: Vec<(String, String)> = row
        .keys()
        .filter(|k| !(untimed && k.starts_with('p') && k.ends_with("_ms")))
        .map(|k| {
            let v = match num(row, k) {
                Some(x) if !matches!(row[k], Value::String(ref s) if s.contains('-') && s.len() > 8) => {
                    format!("{x}")
                }
                _ => text(row, k),
            };
            (k.clone(), v)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn both_renderings_agree_over_the_same_points() {
    let points = points();
    let engine = AeSqlEngine::new(None);
    for (ts, interval, values) in &points {
        engine.insert(ts, *interval, values);
    }
    let mirror = sqlite_mirror(&points);
    let ae = every_page_ae_sql(Dialect::AnalyticsEngine);
    let local = every_page_ae_sql(Dialect::Sqlite);
    assert_eq!(ae.len(), local.len());
    let mut compared = 0;
    for (ae_sql, local_sql) in ae.iter().zip(&local) {
        let answer = engine
            .query(ae_sql)
            .unwrap_or_else(|e| panic!("{e}\n{ae_sql}"));
        let from_api = parse_response(200, &answer.to_string()).unwrap();
        let from_mirror = sqlite_rows(&mirror, local_sql);
        assert_eq!(
            from_api.len(),
            from_mirror.len(),
            "row counts differ for\n{ae_sql}"
        );
        assert!(!from_api.is_empty(), "no rows for\n{ae_sql}");
        for (a, b) in from_api.iter().zip(&from_mirror) {
            assert_eq!(normalized(a), normalized(b), "\n{ae_sql}\n---\n{local_sql}");
        }
        compared += from_api.len();
    }
    println!("compared {compared} rows over {} queries", ae.len());
}
