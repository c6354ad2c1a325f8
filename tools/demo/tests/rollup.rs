//! The rollup the demo runs over its past days (`e2e_tests::owner::rollup_history`, the
//! consumer's statement run back in steps of its three days), on SQLite built from the
//! migrations: every day of the history gets its daily_rollup row, not only the cron's last
//! three.

use rusqlite::Connection;

const DAY_MS: i64 = 86_400_000;

fn database(file: &std::path::Path) -> Connection {
    let db = Connection::open(file).unwrap();
    let dir = e2e_tests::repo_root().join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        db.execute_batch(&std::fs::read_to_string(file).unwrap())
            .unwrap();
    }
    db
}

#[test]
fn every_day_of_the_demo_gets_its_rollup_row() {
    let now = 20_000 * DAY_MS + 5_000;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d1.sqlite");
    let db = database(&file);
    // Users first seen 40 and 89 days ago, active those days; one processed envelope today
    // (the demo's envelopes are all received during the run).
    for (user, back) in [(1, 40), (2, 89)] {
        let at = now - back * DAY_MS;
        db.execute(
            "INSERT INTO bot_users (bot, user_id, first_seen, last_seen) VALUES ('demo', ?1, ?2, ?2)",
            (user, at),
        )
        .unwrap();
        db.execute(
            "INSERT INTO user_days (bot, day, user_id) VALUES ('demo', ?1, ?2)",
            (at / DAY_MS, user),
        )
        .unwrap();
    }
    db.execute(
        "INSERT INTO processed_envelopes (key, queue_message_id, bot, event_count, dropped_send_failed, \
         dropped_oversize, dropped_buffer_full, received_at, kind_counts) \
         VALUES ('k', 'm', 'demo', 4, 0, 0, 0, ?1, '{\"update\":4}')",
        [now],
    )
    .unwrap();

    e2e_tests::owner::rollup_history(&file, now, 90).unwrap();

    let row = |back: i64| -> (i64, i64) {
        db.query_row(
            "SELECT new_users, active_users FROM daily_rollup WHERE bot = 'demo' AND day = ?1",
            [(now - back * DAY_MS) / DAY_MS],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(row(40), (1, 1));
    assert_eq!(row(89), (1, 1));
    assert_eq!(row(10), (0, 0));
    let days: i64 = db
        .query_row(
            "SELECT count(*) FROM daily_rollup WHERE bot = 'demo'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(days >= 91, "a row for each of the 91 days, got {days}");
    let events: i64 = db
        .query_row(
            "SELECT events FROM daily_rollup WHERE bot = 'demo' AND day = ?1",
            [now / DAY_MS],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 4);
}
