//! The owner-analytics pages (Users, Retention, Funnels, Sources) end to end through the REAL
//! pipeline (issue #24): the known population (`e2e_tests::owner`) is sent as Telegram updates
//! to the example bot's webhook in real local workerd, each dated with `X-Dev-Simulated-Time`
//! (`LOCAL_DEV=1`), so its events land on their days; the consumer stores them (D1 and the
//! local mirror), its cron writes `daily_rollup`; the dashboard then runs on the same state
//! (local mirror mode) and every page shows the exact figures the population implies, over
//! HTTP and in headless Chromium's rendered DOM.

use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_tests::dashboard::{Dashboard, DashboardOptions, TEST_PASSWORD};
use e2e_tests::fake_ae_sql::local_d1_file;
use e2e_tests::owner::{
    check_pages, known_population, mirror_backdate_sql, points_of, rollup_history, update_json,
    What, FUNNELS, KEY_CARDS,
};
use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{now_ms, repo_root, wait_for, FakeBotApi, Stack, StackOptions};
use serde_json::Value;

/// The kinds of the population's points (the bot's timings and errors aside).
const KINDS: &str = "('update','command','callback','user','payment','custom')";

/// Runs the consumer's cron once more and waits until its rollup logged that it finished.
fn run_cron(stack: &Stack) {
    let runs = stack.log().matches("rollup: done").count();
    let (status, body) = stack.get("/__scheduled?cron=17+3+*+*+*").unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for("the cron's rollup", Duration::from_secs(120), || {
        (stack.log().matches("rollup: done").count() > runs).then_some(())
    });
}

/// Loads `pages` ([name, path]) in headless Chromium; returns the driver's JSON report.
fn browse(dashboard: &Dashboard, pages: &[(&str, &str)]) -> Value {
    let pages: Vec<Value> = pages
        .iter()
        .map(|(name, url)| serde_json::json!({"name": name, "url": url}))
        .collect();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's chromium (`make chromium`)"
    );
    let output = Command::new("node")
        .arg(repo_root().join("tests/browser/owner_pages.mjs"))
        .current_dir(repo_root())
        .env("DASHBOARD_URL", dashboard.url(""))
        .env("DASHBOARD_PASSWORD", TEST_PASSWORD)
        .env("CHROMIUM", chromium)
        .env("OWNER_PAGES", Value::Array(pages).to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run the browser driver");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser driver failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("report is not JSON ({e}): {stdout}"))
}

#[test]
fn the_owner_pages_show_real_traffic_exactly() {
    let bot_api = FakeBotApi::start();
    let mut stack = Stack::start(StackOptions {
        api_base: Some(bot_api.base_url()),
        extra_vars: vec![("LOCAL_DEV".into(), "1".into())],
        ..StackOptions::default()
    });
    let started = now_ms();
    let population = known_population("telegram-bot", started);

    // Every action as the update Telegram sends, dated at its time.
    for (i, action) in population.actions.iter().enumerate() {
        let body = update_json(&population, action, 600_001 + i as i64);
        let at = action.at.to_string();
        let (status, answer) = stack.post(
            "/telegram",
            &[
                ("Content-Type", "application/json"),
                ("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET),
                ("X-Dev-Simulated-Time", &at),
            ],
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{:?}: {answer}", action.what);
    }

    // Wait until the consumer stored every point and every active day.
    let points: usize = population
        .actions
        .iter()
        .map(|a| points_of(&a.what).len())
        .sum();
    stack.wait_count_within(
        "every point of the population",
        &format!("SELECT count(*) FROM analytics_points_local WHERE blob3 IN {KINDS}"),
        points as i64,
        Duration::from_secs(60),
    );
    let mut active: Vec<(i64, i64)> = population
        .actions
        .iter()
        .filter(|a| a.what.active())
        .map(|a| (a.at.div_euclid(86_400_000), a.user))
        .collect();
    active.sort_unstable();
    active.dedup();
    stack.wait_count_within(
        "every active day",
        "SELECT count(*) FROM user_days",
        active.len() as i64,
        Duration::from_secs(60),
    );
    let exact = population
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a.what,
                What::Blocked | What::Unblocked | What::Payment(..) | What::Refund(..)
            )
        })
        .count();
    stack.wait_count_within(
        "every exact user event",
        "SELECT count(*) FROM user_events",
        exact as i64,
        Duration::from_secs(60),
    );
    assert_eq!(
        stack.d1_count(&format!(
            "SELECT count(*) FROM analytics_points_local WHERE blob3 IN {KINDS}"
        )),
        points as i64,
        "no point more than the population's"
    );
    assert_eq!(stack.d1_count("SELECT count(*) FROM bot_users"), 5);

    // The mirror's `timestamp` is the consumer's write time: date the points at their events,
    // as `make demo` does.
    let d1 = local_d1_file(&stack.dir().join("state")).expect("the stack's local D1 file");
    {
        let db = rusqlite::Connection::open(&d1).expect("open the local D1");
        db.busy_timeout(Duration::from_secs(30)).unwrap();
        let moved = db
            .execute(&mirror_backdate_sql(&population.bot, started), [])
            .expect("backdate the mirror");
        assert!(moved > 0, "no point was backdated");
    }

    // The consumer's cron (the restart's readiness probe ran it once; once more to be sure it
    // saw everything) writes today's and the two days before; older days as `make demo` does.
    stack.restart_for_cron();
    run_cron(&stack);
    rollup_history(&d1, now_ms(), 20).expect("the older days' rollups");
    assert!(
        stack.d1_count("SELECT count(*) FROM daily_rollup WHERE bot = 'telegram-bot'") >= 7,
        "a rollup row per day with events"
    );

    let dashboard = Dashboard::start(
        &stack,
        "local",
        DashboardOptions::local_mirror().with_funnels(FUNNELS),
    );
    check_pages(&dashboard, &population);

    // The same key figures in headless Chromium's rendered DOM.
    let report = browse(
        &dashboard,
        &[
            ("users", "/users?range=30d"),
            ("retention", "/retention"),
            ("funnels", "/funnels?range=30d"),
            ("sources", "/sources"),
        ],
    );
    let page = |name: &str| -> &Value {
        report["pages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no page {name}: {report}"))
    };
    for name in ["users", "retention", "funnels", "sources"] {
        assert_eq!(page(name)["status"], 200, "{name}");
        let text = page(name)["text"].as_str().unwrap_or_default();
        assert!(!text.contains("Could not load"), "{name}: {text}");
    }
    for (path, id, value) in KEY_CARDS {
        let name = if path.starts_with("/users") {
            "users"
        } else {
            "sources"
        };
        assert_eq!(page(name)["cards"][id], *value, "{name} {id}: {report}");
    }
    let rows = |name: &str| -> Vec<Vec<String>> {
        serde_json::from_value(page(name)["rows"].clone()).expect("rows")
    };
    let has_row = |name: &str, cells: &[&str]| {
        rows(name)
            .iter()
            .any(|r| r.len() >= cells.len() && r.iter().zip(cells).all(|(a, b)| a == b))
    };
    let retention = page("retention")["text"].as_str().unwrap();
    assert!(retention.contains("100.0 %"), "{retention}");
    assert!(
        rows("retention")
            .iter()
            .any(|r| r.get(1).map(String::as_str) == Some("3")
                && r.iter().any(|c| c == "66.7 %")
                && r.iter().any(|c| c == "33.3 %")),
        "the A-B-C cohort: {:?}",
        rows("retention")
    );
    let funnels = page("funnels")["text"].as_str().unwrap();
    assert!(
        funnels.contains("/start → callback menu → chat_size"),
        "{funnels}"
    );
    assert!(
        has_row("sources", &["ads", "2", "2"]),
        "{:?}",
        rows("sources")
    );
    assert!(
        has_row("sources", &["(none)", "XTR", "500", "200", "300"]),
        "{:?}",
        rows("sources")
    );
    assert_eq!(
        report["consoleErrors"],
        serde_json::json!([]),
        "console errors"
    );
    println!("e2e: owner pages verified through the real pipeline, over HTTP and in Chromium");
}
