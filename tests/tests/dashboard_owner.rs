//! The owner-analytics pages (Users, Retention, Funnels, Sources) in real local workerd, over a
//! known population (`e2e_tests::owner`) written straight into the local D1 and the local mirror:
//! every page shows the exact figures the population implies, from the SQL API (the fake, on
//! ClickHouse) and from the local mirror alike; every table exports as CSV with the right
//! headers; an unknown table is a 400 with a reason; a bad funnel configuration is shown on the
//! page.

use e2e_tests::dashboard::{Dashboard, DashboardOptions};
use e2e_tests::fake_ae_sql::{local_d1_file, FakeAeSqlApi};
use e2e_tests::owner::{known_population, seed};
use e2e_tests::{now_ms, Stack, StackOptions};

const FUNNELS: &str =
    "Onboarding: /start > callback menu > order_paid within 7d; Help: /start > /help within 1h";

/// The text of the card `id` (its value).
fn card(html: &str, id: &str) -> String {
    html.split(&format!("id=\"{id}\"><div class=\"value\">"))
        .nth(1)
        .and_then(|s| s.split("</div>").next())
        .unwrap_or_else(|| panic!("no card {id}"))
        .to_string()
}

/// The CSV of `table` on `path`: checks the response and returns its records.
fn csv(dashboard: &Dashboard, path: &str, table: &str) -> Vec<Vec<String>> {
    let join = if path.contains('?') { '&' } else { '?' };
    let url = format!("{path}{join}format=csv&table={table}");
    let page = dashboard.get_ok(&url);
    assert_eq!(page.status, 200, "{url}: {}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/csv; charset=utf-8"),
        "{url}"
    );
    let disposition = page.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename=\"") && disposition.ends_with(".csv\""),
        "{url}: {disposition}"
    );
    assert!(page.body.ends_with("\r\n"), "{url}: records end in CRLF");
    page.body
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The record whose first fields are `key`.
fn row<'a>(records: &'a [Vec<String>], key: &[&str]) -> &'a [String] {
    records
        .iter()
        .find(|r| r.iter().zip(key).all(|(a, b)| a == b))
        .unwrap_or_else(|| panic!("no row {key:?} in {records:?}"))
}

fn check_pages(dashboard: &Dashboard, today: i64) {
    let day = |days_ago: i64| {
        dashboard_core::timefmt::sql_datetime((today - days_ago) * 86_400_000)[..10].to_string()
    };

    // Users.
    let users = dashboard.get_ok("/users?range=30d");
    assert_eq!(users.status, 200);
    assert!(!users.body.contains("Could not load"), "{}", users.body);
    for (id, value) in [
        ("card-dau", "3"),
        ("card-wau", "3"),
        ("card-mau", "5"),
        ("card-stickiness", "60.0 %"),
        ("card-blocked", "0"),
        ("card-premium", "50.0 %"),
        // One of the twelve messages of the range (today: one of four).
        ("card-not-understood", "8.3 %"),
    ] {
        assert_eq!(card(&users.body, id), value, "{id}");
    }
    let daily = csv(dashboard, "/users?range=30d", "daily");
    assert_eq!(
        daily[0],
        ["day", "new", "returning", "active", "blocked", "unblocked"]
    );
    assert_eq!(&row(&daily, &[&day(14)])[1..], ["3", "0", "3", "0", "0"]);
    assert_eq!(&row(&daily, &[&day(13)])[1..], ["0", "1", "1", "0", "0"]);
    assert_eq!(&row(&daily, &[&day(12)])[1..], ["0", "0", "0", "1", "0"]);
    assert_eq!(&row(&daily, &[&day(10)])[1..], ["0", "0", "0", "0", "1"]);
    assert_eq!(&row(&daily, &[&day(7)])[1..], ["0", "2", "2", "0", "0"]);
    assert_eq!(&row(&daily, &[&day(3)])[1..], ["1", "0", "1", "0", "0"]);
    assert_eq!(&row(&daily, &[&day(0)])[1..], ["1", "2", "3", "0", "0"]);
    let nu = csv(dashboard, "/users?range=30d", "not_understood");
    assert_eq!(&row(&nu, &[&day(0)])[1..], ["1", "4", "0.2500"]);
    assert_eq!(&row(&nu, &[&day(14)])[1..], ["0", "4", "0.0000"]);
    let languages = csv(dashboard, "/users?range=30d", "languages");
    assert_eq!(languages[1], ["en", "3", "0.6000"]);
    assert_eq!(&row(&languages, &["ru"])[1..], ["1", "0.2000"]);
    let months = csv(dashboard, "/users", "months");
    assert_eq!(months.len(), 13, "a header and twelve months");
    let total = |i: usize| {
        months[1..]
            .iter()
            .map(|r| r[i].parse::<u64>().unwrap())
            .sum::<u64>()
    };
    // The rollups cover the days before today: E, first seen today, is not in them yet.
    assert_eq!((total(1), total(3), total(4)), (4, 1, 1));

    // Retention: A, B and C share a cohort; week 1: A and B; week 2: A.
    let retention = dashboard.get_ok("/retention");
    assert!(
        !retention.body.contains("Could not load"),
        "{}",
        retention.body
    );
    assert!(retention.body.contains("class=\"num heat h10\">100.0 %"));
    let cohorts = csv(dashboard, "/retention", "retention");
    assert_eq!(cohorts.len(), 14, "a header and 13 cohorts");
    let monday = |d: i64| d - (d + 3).rem_euclid(7);
    let first =
        dashboard_core::timefmt::sql_datetime(monday(today - 14) * 86_400_000)[..10].to_string();
    let abc = row(&cohorts, &[&first]);
    assert_eq!(
        &abc[1..5],
        ["3", "1.0000", "0.6667", "0.3333"],
        "{cohorts:?}"
    );
    let sizes: u64 = cohorts[1..]
        .iter()
        .map(|r| r[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(sizes, 5);

    // Sources.
    let sources = dashboard.get_ok("/sources");
    assert!(!sources.body.contains("Could not load"), "{}", sources.body);
    assert_eq!(card(&sources.body, "card-revenue"), "300 XTR");
    let table = csv(dashboard, "/sources", "sources");
    assert_eq!(
        &row(&table, &["ads"])[1..],
        ["2", "2", "1.0000", "1", "0", "0"]
    );
    assert_eq!(
        &row(&table, &["(none)"])[1..],
        ["2", "0", "0.0000", "0", "0", "1"]
    );
    assert_eq!(
        &row(&table, &["promo"])[1..],
        ["1", "0", "0.0000", "0", "0", "0"]
    );
    let revenue = csv(dashboard, "/sources", "revenue");
    assert_eq!(revenue[1], ["(none)", "XTR", "500", "200", "300"]);
    assert_eq!(revenue.len(), 2);

    // Funnels.
    let funnels = dashboard.get_ok("/funnels?range=30d");
    assert!(!funnels.body.contains("Could not load"), "{}", funnels.body);
    assert!(funnels.body.contains("/start → callback menu → order_paid"));
    let table = csv(dashboard, "/funnels?range=30d", "funnels");
    let users_at = |funnel: &str, source: &str| -> Vec<String> {
        table
            .iter()
            .filter(|r| r[0] == funnel && r[1] == source)
            .map(|r| r[4].clone())
            .collect()
    };
    assert_eq!(users_at("Onboarding", "all"), ["5", "2", "1"]);
    assert_eq!(users_at("Onboarding", "ads"), ["2", "1", "1"]);
    assert_eq!(users_at("Onboarding", "promo"), ["1", "1", "0"]);
    assert_eq!(users_at("Onboarding", "(none)"), ["2", "0", "0"]);
    // B's /help came a week after /start: beyond the hour.
    assert_eq!(users_at("Help", "all"), ["5", "1"]);
    assert_eq!(
        &row(&table, &["Onboarding", "all", "2"])[5..],
        ["0.4000", "0.4000"]
    );

    // A bot filter: the population's bot, and another.
    let other = csv(dashboard, "/sources?bot=someone-else", "sources");
    assert_eq!(other.len(), 1, "only the header: {other:?}");

    // CSV of an existing page, and refusals.
    let commands = csv(dashboard, "/?range=30d", "commands");
    assert_eq!(
        commands[0],
        [
            "bot",
            "kind",
            "name",
            "uses",
            "handler p50 ms",
            "handler p95 ms"
        ]
    );
    assert_eq!(&row(&commands, &["known-bot", "command", "start"])[3], "5");
    for (url, needle) in [
        ("/users?format=csv&table=nope", "unknown table"),
        ("/users?format=csv", "unknown table"),
        ("/users?format=pdf&table=daily", "unknown format"),
    ] {
        let page = dashboard.get_ok(url);
        assert_eq!(page.status, 400, "{url}");
        assert!(page.body.contains(needle), "{url}: {}", page.body);
    }
}

#[test]
fn the_owner_pages_show_a_known_population_exactly() {
    let stack = Stack::start(StackOptions::default());
    let d1 = local_d1_file(&stack.dir().join("state")).expect("the stack's local D1 file");
    let now = now_ms();
    let population = known_population("known-bot", now);
    seed(&d1, &population).expect("seed the known population");
    let sql_api = FakeAeSqlApi::start(d1.clone());

    let api = Dashboard::start(
        &stack,
        "api",
        DashboardOptions::with_sql_api(&sql_api).with_funnels(FUNNELS),
    );
    check_pages(&api, population.today);
    drop(api);

    let local = Dashboard::start(
        &stack,
        "local",
        DashboardOptions::local_mirror().with_funnels(FUNNELS),
    );
    sql_api.clear_calls();
    check_pages(&local, population.today);
    assert!(
        sql_api.calls().is_empty(),
        "the local dashboard used the SQL API"
    );
    drop(local);

    // A bad configuration: the page says what and where, and runs no query.
    let bad = Dashboard::start(
        &stack,
        "bad",
        DashboardOptions::with_sql_api(&sql_api)
            .with_funnels("Fine: /start > /help\nBroken /start > /help"),
    );
    sql_api.clear_calls();
    let page = bad.get_ok("/funnels");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("The funnel configuration is invalid"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("FUNNELS, funnel 2: a funnel is"),
        "{}",
        page.body
    );
    assert!(sql_api.calls().is_empty());
    println!("e2e: owner pages verified (SQL API and local mirror)");
}
