//! Several bots on one consumer, in real local workerd: two bots built from the same code (so
//! their errors have the same type and line) with their own names and pseudonym keys send to
//! one consumer. Their error groups stay apart, the dashboard shows which bot each row belongs
//! to and filters by bot on every page, and `make errors` finds and forgets a user with each
//! bot's key, and says so when no key given matches.

use e2e_tests::dashboard::{Dashboard, DashboardOptions};
use e2e_tests::stack::{TEST_ID_KEY, TEST_SECRET};
use e2e_tests::{SecondBot, Stack, StackOptions};
use serde_json::{json, Value};

const FIRST: &str = "minimal-bot";
const SECOND: &str = "second-bot";
const SECOND_KEY: &str = "second-bot-pseudonym-key-not-the-first-bots";
const USER: i64 = 777;

fn update(update_id: i64, text: &str) -> String {
    json!({"update_id": update_id, "message": {"message_id": 1, "from": {"id": USER, "is_bot": false},
        "chat": {"id": USER, "type": "private"}, "date": 1764000000, "text": text}})
    .to_string()
}

fn post(stack: &Stack, path: &str, body: &str) -> (u16, String) {
    stack.post(
        path,
        &[
            ("Content-Type", "application/json"),
            ("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET),
        ],
        body.as_bytes(),
    )
}

#[test]
fn two_bots_on_one_consumer_are_told_apart_everywhere() {
    let stack = Stack::start(StackOptions {
        bot_config: Some("examples/minimal-bot/wrangler.toml".into()),
        second_bot: Some(SecondBot {
            config: "examples/minimal-bot/wrangler.toml".into(),
            name: SECOND.into(),
            vars: vec![("ANALYTICS_ID_KEY".into(), SECOND_KEY.into())],
        }),
        ..StackOptions::default()
    });

    // The same user, the same commands and the same failing line, in both bots.
    for (prefix, first_id) in [("", 1), ("/second", 101)] {
        let (status, body) = post(
            &stack,
            &format!("{prefix}/telegram"),
            &update(first_id, "/start"),
        );
        assert_eq!(status, 200, "{prefix}: {body}");
        assert!(body.contains("sendMessage"), "{prefix}: {body}");
        let (status, body) = post(
            &stack,
            &format!("{prefix}/telegram"),
            &update(first_id + 1, "/fail"),
        );
        assert_eq!((status, body.as_str()), (200, ""), "{prefix}");
    }

    // Two groups, one per bot, at the same type and line.
    stack.wait_count(
        "one error group per bot",
        "SELECT count(*) FROM error_groups",
        2,
    );
    let groups = stack.d1("SELECT bot, kind, location, count FROM error_groups ORDER BY bot");
    let bots: Vec<&str> = groups.iter().map(|g| g["bot"].as_str().unwrap()).collect();
    assert_eq!(bots, [FIRST, SECOND], "{groups:?}");
    assert_eq!(
        groups[0]["location"], groups[1]["location"],
        "same line, two groups"
    );
    assert_eq!(groups[0]["kind"], "ParseIntError");

    // Each bot's events carry its name, and its own key's pseudonym of the same user.
    stack.wait_count(
        "both bots' /start",
        "SELECT count(*) FROM analytics_points_local WHERE blob3 = 'command' AND blob4 = 'start'",
        2,
    );
    let users = stack.d1(
        "SELECT DISTINCT blob1 AS bot, double4 AS user FROM analytics_points_local \
         WHERE blob3 = 'command' ORDER BY blob1",
    );
    let pseudonym = |key: &str| analytics_core::privacy::pseudonym(key.as_bytes(), USER);
    let expected: Vec<Value> = vec![
        json!({"bot": FIRST, "user": pseudonym(TEST_ID_KEY)}),
        json!({"bot": SECOND, "user": pseudonym(SECOND_KEY)}),
    ];
    assert_eq!(users, expected);

    // The dashboard: rows name their bot, and every page filters by bot.
    let dashboard = Dashboard::start(&stack, "dashboard", DashboardOptions::local_mirror());
    let link = |path: &str, bot: &str| format!("href=\"{path}?bot={bot}\"");
    let overview = dashboard.get_ok("/");
    for bot in [FIRST, SECOND] {
        assert!(
            overview.body.contains(&link("/", bot)),
            "{bot} rows on the overview"
        );
    }
    let second_only = dashboard.get_ok(&format!("/?bot={SECOND}"));
    assert!(second_only.body.contains(&link("/", SECOND)));
    assert!(
        !second_only.body.contains(&link("/", FIRST)),
        "the first bot's rows are filtered out"
    );
    let errors = dashboard.get_ok("/errors");
    for bot in [FIRST, SECOND] {
        assert!(errors.body.contains(&link("/errors", bot)), "{bot}'s group");
    }
    let first_errors = dashboard.get_ok(&format!("/errors?bot={FIRST}"));
    assert!(first_errors.body.contains(&link("/errors", FIRST)));
    assert!(!first_errors.body.contains(&link("/errors", SECOND)));
    for path in ["/pipeline", "/errors", "/"] {
        let page = dashboard.get_ok(&format!("{path}?bot={SECOND}"));
        assert_eq!(page.status, 200, "{path}");
        // The navigation keeps the filter.
        assert!(
            page.body
                .contains(&format!("href=\"/pipeline?bot={SECOND}\"")),
            "{path}"
        );
    }
    let refused = dashboard.get_ok("/?bot=x%27%20OR%201%3D1");
    assert_eq!(refused.status, 400);

    // make errors: the user under each bot's key, a clear message when no key matches, and
    // forget with both keys erases both bots' rows.
    let keys = stack.dir().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key_file = |name: &str, key: &str| {
        let path = keys.join(name);
        std::fs::write(&path, format!("ANALYTICS_ID_KEY={key}\n")).unwrap();
        path.display().to_string()
    };
    let (first_key, second_key) = (
        key_file("first", TEST_ID_KEY),
        key_file("second", SECOND_KEY),
    );
    let wrong_key = key_file("wrong", "a-key-no-bot-uses-at-all-0123456789");
    let options = |args: &[&str]| stack.report_options(args);
    let now = e2e_tests::now_ms();
    let user = USER.to_string();
    for (key, bot) in [(&first_key, FIRST), (&second_key, SECOND)] {
        let rows = report::query(&options(&["--key-file", key, "user", &user]), now, None).unwrap();
        assert_eq!(rows.len(), 1, "{bot}: {rows:?}");
        assert_eq!(rows[0]["bot"], bot);
    }
    let by_bot = report::query(&options(&["--bot", SECOND, "top"]), now, None).unwrap();
    assert_eq!(by_bot.len(), 1);
    assert_eq!(by_bot[0]["bot"], SECOND);
    let none = report::query(
        &options(&["--key-file", &wrong_key, "user", &user]),
        now,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(none, report::ReportError::NoMatch { .. })
            && none.to_string().contains("--key-file"),
        "{none}"
    );
    let forgotten = report::query(
        &options(&[
            "--key-file",
            &first_key,
            "--key-file",
            &second_key,
            "forget",
            &user,
        ]),
        now,
        None,
    )
    .unwrap();
    assert!(
        forgotten
            .iter()
            .all(|r| r["error_events_left"] == 0 && r["local_points_left"] == 0),
        "{forgotten:?}"
    );
    assert_eq!(stack.d1_count("SELECT count(*) FROM error_events"), 0);
    // A forget under a key that finds nothing still leaves its tombstone, and says it found
    // nothing.
    let nothing = report::query(
        &options(&["--key-file", &wrong_key, "forget", &user]),
        now,
        None,
    )
    .unwrap();
    assert!(
        !nothing.is_empty() && nothing.iter().all(|r| r["rows_before"] == 0),
        "{nothing:?}"
    );
}
