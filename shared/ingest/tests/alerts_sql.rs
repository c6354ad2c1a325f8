//! The alert claims against a real SQLite with the project's migrations: a new group is
//! claimed once, a redelivered batch claims nothing, a group resolved in one release and seen
//! in another is claimed as a regression, and the hourly throttle holds.

use ingest_policy::alerts::{self, Alert};
use ingest_policy::{SqlValue, Statement};
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::Connection;
use serde_json::{json, Map, Value};

const NOW: i64 = 1_780_000_000_000;

fn migrated() -> Connection {
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
    conn
}

fn batch(conn: &Connection, statements: &[Statement]) -> Vec<Vec<Value>> {
    let tx = conn.unchecked_transaction().unwrap();
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
        let mut stmt = tx.prepare(&s.sql).unwrap();
        let names: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params)).unwrap();
        let mut result = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            let mut object = Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i).unwrap() {
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
    tx.commit().unwrap();
    out
}

fn event(conn: &Connection, id: &str, fp: &str, release: &str, at: i64) {
    conn.execute(
        "INSERT OR IGNORE INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, bot, release) \
         VALUES (?1, ?2, ?3, ?3, 'telegram_api', 'Bad Request: chat not found', 'bot', ?4)",
        rusqlite::params![id, fp, at, release],
    )
    .unwrap();
}

fn claim(conn: &Connection, fps: &[&str], now: i64) -> Vec<Alert> {
    let fps: Vec<String> = fps.iter().map(|s| s.to_string()).collect();
    let rows = batch(conn, &alerts::claim_group_statements(&fps, now));
    alerts::claimed_groups(&rows[0], &rows[1])
}

#[test]
fn a_new_group_is_claimed_once_and_a_redelivery_claims_nothing() {
    let conn = migrated();
    event(&conn, "e1", "fp1", "1.0.0", NOW);
    event(&conn, "e2", "fp1", "1.0.0", NOW);
    let first = claim(&conn, &["fp1"], NOW);
    assert_eq!(first.len(), 1);
    assert!(matches!(&first[0], Alert::NewGroup(g) if g.count == 2 && g.release == "1.0.0"));
    // The same events again (a redelivered batch): ignored, so nothing is pending.
    event(&conn, "e1", "fp1", "1.0.0", NOW);
    assert!(claim(&conn, &["fp1"], NOW + 1).is_empty());
    // A later event of the same group is no new group either.
    event(&conn, "e3", "fp1", "1.0.0", NOW + 2);
    let pending: Option<String> = conn
        .query_row("SELECT alert FROM error_groups", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, None, "a later event marks nothing");
    assert!(claim(&conn, &["fp1"], NOW + 2 * alerts::THROTTLE_MS).is_empty());
}

fn resolve(conn: &Connection, fp: &str) {
    conn.execute(
        "UPDATE error_groups SET status = 'resolved', resolved_in_release = release, alert = NULL WHERE fingerprint = ?1",
        [fp],
    )
    .unwrap();
}

#[test]
fn a_group_resolved_in_one_release_and_seen_in_another_regresses() {
    let conn = migrated();
    event(&conn, "e1", "fp1", "1.0.0", NOW);
    assert_eq!(claim(&conn, &["fp1"], NOW).len(), 1);
    resolve(&conn, "fp1");
    // Seen again in the release it was resolved in: still resolved, no alert.
    event(&conn, "e2", "fp1", "1.0.0", NOW + 1);
    assert!(claim(&conn, &["fp1"], NOW + 2 * alerts::THROTTLE_MS).is_empty());
    let status: String = conn
        .query_row("SELECT status FROM error_groups", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "resolved");
    // Seen in release 2: regressed.
    event(&conn, "e3", "fp1", "2.0.0", NOW + 2);
    let alerts = claim(&conn, &["fp1"], NOW + 2 * alerts::THROTTLE_MS);
    assert_eq!(alerts.len(), 1);
    assert!(
        matches!(&alerts[0], Alert::Regression(g) if g.resolved_in_release.as_deref() == Some("1.0.0") && g.release == "2.0.0")
    );
    let status: String = conn
        .query_row("SELECT status FROM error_groups", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "regressed");
}

#[test]
fn a_muted_group_never_alerts_and_a_regression_within_the_hour_is_not_sent() {
    let conn = migrated();
    event(&conn, "e1", "fp1", "1.0.0", NOW);
    conn.execute("UPDATE error_groups SET status = 'muted', alert = NULL", [])
        .unwrap();
    event(&conn, "e2", "fp1", "2.0.0", NOW + 1);
    assert!(claim(&conn, &["fp1"], NOW + 1).is_empty());

    event(&conn, "f1", "fp2", "1.0.0", NOW);
    assert_eq!(claim(&conn, &["fp2"], NOW).len(), 1);
    resolve(&conn, "fp2");
    event(&conn, "f2", "fp2", "2.0.0", NOW + 1);
    assert!(
        claim(&conn, &["fp2"], NOW + 60_000).is_empty(),
        "the group's hour is taken"
    );
    let pending: Option<String> = conn
        .query_row(
            "SELECT alert FROM error_groups WHERE fingerprint = 'fp2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, None, "cleared, not left to fire later");
}

#[test]
fn a_condition_is_claimed_once_an_hour_whoever_asks() {
    let conn = migrated();
    let keys = vec!["spike".to_string(), "webhook:bot:error".to_string()];
    let take =
        |now| alerts::claimed_keys(&batch(&conn, &[alerts::throttle_statement(&keys, now)])[0]);
    assert_eq!(take(NOW).len(), 2);
    assert!(take(NOW).is_empty(), "a cron that runs twice");
    assert!(take(NOW + alerts::THROTTLE_MS - 1).is_empty());
    assert_eq!(take(NOW + alerts::THROTTLE_MS).len(), 2);
}

#[test]
fn the_observations_read_the_last_window_and_the_day_before() {
    let conn = migrated();
    let day = 86_400_000;
    for (i, at) in [NOW - 1000, NOW - 2000, NOW - day - 1000]
        .iter()
        .enumerate()
    {
        event(&conn, &format!("e{i}"), "fp", "1", *at);
    }
    conn.execute_batch(&format!(
        "INSERT INTO processed_envelopes (key, queue_message_id, bot, event_count, dropped_send_failed, dropped_oversize, \
         dropped_buffer_full, received_at, deferrals, kind_counts) VALUES \
         ('a', 'm', 'b', 3, 2, 0, 0, {}, 1, '{{\"update\":3}}'), ('b', 'm', 'b', 5, 0, 0, 0, {}, 0, '{{\"update\":5}}')",
        NOW - 1000,
        NOW - day - 1000
    ))
    .unwrap();
    let rows = batch(&conn, &[alerts::observations_statement(NOW)]);
    let o = alerts::Observations::read(&rows[0][0]);
    assert_eq!(
        o,
        alerts::Observations {
            errors: 2,
            updates: 3,
            errors_before: 1,
            updates_before: 5,
            dropped: 2,
            dead_lettered: 0,
            deferring: 1,
        }
    );
}
