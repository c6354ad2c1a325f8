//! The owner-analytics pages (Users, Retention, Funnels, Sources) in real local workerd, over a
//! known population (`e2e_tests::owner`) written straight into the local D1 and the local mirror:
//! every page shows the exact figures the population implies, from the SQL API (the fake, on
//! ClickHouse) and from the local mirror alike; every table exports as CSV with the right
//! headers; an unknown table is a 400 with a reason; a bad funnel configuration is shown on the
//! page.

use e2e_tests::dashboard::{Dashboard, DashboardOptions};
use e2e_tests::fake_ae_sql::{local_d1_file, FakeAeSqlApi};
use e2e_tests::owner::{check_pages, csv, known_population, seed, Population, FUNNELS};
use e2e_tests::{now_ms, Stack, StackOptions};

/// The shared figures ([`check_pages`]), then what only this test checks: the overview's CSV
/// header and the refusals of a bad export.
fn check_all(dashboard: &Dashboard, population: &Population) {
    check_pages(dashboard, population);
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
    check_all(&api, &population);
    drop(api);

    let local = Dashboard::start(
        &stack,
        "local",
        DashboardOptions::local_mirror().with_funnels(FUNNELS),
    );
    sql_api.clear_calls();
    check_all(&local, &population);
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
