//! `make demo` in small: the demo's run against a stack of its own (free port, temporary state
//! and configs, as `tools/dev-stack` writes them), then the stored events' days are spread over
//! the past days, not all today. Needs `make build` first (the bot and the consumer).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use demo::population::{Config, DAY_MS};
use demo::{run, Options};
use e2e_tests::process::wrangler;
use e2e_tests::stack::local_config;
use e2e_tests::{free_port, now_ms};

fn d1(dir: &Path, sql: &str) -> Vec<serde_json::Value> {
    let output = Command::new(wrangler())
        .current_dir(dir.join("work"))
        .args(["d1", "execute", "DB", "--local", "--persist-to"])
        .arg(dir.join("state"))
        .args(["-c", "consumer.toml", "--json", "--command", sql])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .stdin(Stdio::null())
        .output()
        .expect("run wrangler");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    json[0]["results"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_small_demo_stores_events_spread_over_the_past_days() {
    let dir = tempfile::Builder::new()
        .prefix("tg-analytics-demo-")
        .tempdir()
        .unwrap();
    let configs = dir.path().join("dev");
    std::fs::create_dir_all(&configs).unwrap();
    for (from, to) in [
        ("wrangler.producer.toml", "bot.toml"),
        ("wrangler.consumer.toml", "consumer.toml"),
    ] {
        std::fs::write(
            configs.join(to),
            toml::to_string(&local_config(from)).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(
        configs.join(".dev.vars"),
        "TELEGRAM_WEBHOOK_SECRET=demo-test-secret\nAE_LOCAL_MIRROR=1\n\
         ANALYTICS_ID_KEY=demo-test-pseudonym-key-0123456789abcdef\nLOCAL_DEV=1\nANALYTICS_COALESCE_MS=500\n",
    )
    .unwrap();
    let now = now_ms();
    let options = Options {
        configs,
        state: dir.path().join("state"),
        work: dir.path().join("work"),
        port: free_port(),
        population: Config {
            users: 10,
            days: 3,
            seed: 11,
            now_ms: now,
        },
        concurrency: 4,
        progress: false,
    };
    let summary = run(&options).unwrap_or_else(|e| panic!("demo failed: {e}"));
    println!("{}", demo::describe(&summary));
    assert_eq!(summary.users, 10);
    assert!(summary.updates > 10, "{summary:?}");
    assert!(
        summary.events_stored >= summary.updates as i64,
        "{summary:?}"
    );

    // The events' own times (double3) and the mirror's timestamp: on the population's days,
    // several of them, none in the future, none before the period.
    let rows = d1(
        dir.path(),
        &format!(
            "SELECT CAST(double3 / {DAY_MS} AS INTEGER) AS day, date(timestamp) AS written, \
             count(*) AS n FROM analytics_points_local WHERE blob1 = '{}' GROUP BY 1, 2",
            summary.bot
        ),
    );
    let days: BTreeSet<i64> = rows.iter().map(|r| r["day"].as_i64().unwrap()).collect();
    let today = now / DAY_MS;
    assert!(days.len() >= 2, "events on {days:?} only");
    assert!(
        days.iter().all(|d| (today - 3..=today).contains(d)),
        "{days:?} (today {today})"
    );
    assert!(
        days.iter().any(|d| *d < today),
        "nothing before today: {days:?}"
    );
    let stored: i64 = rows.iter().map(|r| r["n"].as_i64().unwrap()).sum();
    assert_eq!(stored, summary.events_stored, "mirror rows = events stored");
    // The mirror's write time follows the event's day (the dashboard buckets by it).
    let written: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["written"].as_str().unwrap())
        .collect();
    assert!(
        written.len() >= 2,
        "mirror rows written on {written:?} only"
    );
    // The consumer's D1 tables see the same past: processed envelopes hold every event.
    let envelopes = d1(
        dir.path(),
        "SELECT COALESCE(SUM(event_count), 0) AS n FROM processed_envelopes",
    );
    assert_eq!(envelopes[0]["n"].as_i64(), Some(summary.events_stored));
}
