//! `make bench`, dashboard part: each page's server time with 100,000 points in the local
//! mirror (`--points N`) and 10,000 users in the owner-analytics tables (`--users N`:
//! `bot_users`, `user_days`, `user_events`, a year of `daily_rollup`), read through D1 by the
//! dashboard Worker in local workerd, as under `make dev`. Reports, per page, the server time the Worker measures (its `Server-Timing`
//! header: queries, model and rendering) and the latency the client sees, over `--requests N`
//! requests after two warm-up requests, and the page's HTML size. Asserts that every page loads
//! whole, never anything about speed. `--smoke` (2,000 points, 3 requests) keeps the harness from
//! rotting in `make test`; `--write-doc` puts the table into `docs/benchmarks.md`.

use std::fs;
use std::time::Instant;

use bench::{arg, flag, percentile, replace_block};
use e2e_tests::dashboard::{
    basic_auth, fill_local_mirror, fill_owner_tables, Dashboard, DashboardOptions, TEST_PASSWORD,
};
use e2e_tests::fake_ae_sql::local_d1_file;
use e2e_tests::{now_ms, repo_root, Stack, StackOptions};

fn server_ms(header: Option<&str>) -> Option<f64> {
    header?
        .split("dur=")
        .nth(1)?
        .split([';', ','])
        .next()?
        .parse()
        .ok()
}

fn main() {
    let smoke = flag("--smoke");
    let points = arg("--points", if smoke { 2_000 } else { 100_000 });
    let requests = arg("--requests", if smoke { 3 } else { 20 }).max(1);
    let users = arg("--users", if smoke { 200 } else { 10_000 });
    let stack = Stack::start(StackOptions::default());
    let d1 = local_d1_file(&stack.dir().join("state")).expect("the stack's local D1 file");
    let started = Instant::now();
    fill_local_mirror(&d1, points, now_ms()).expect("fill the local mirror");
    println!(
        "bench: {points} points written to the local mirror in {:.1?}",
        started.elapsed()
    );
    let started = Instant::now();
    fill_owner_tables(&d1, users, now_ms()).expect("fill the owner-analytics tables");
    println!(
        "bench: {users} users written to the owner-analytics tables in {:.1?}",
        started.elapsed()
    );
    let dashboard = Dashboard::start(
        &stack,
        "dashboard",
        DashboardOptions::local_mirror()
            .with_funnels("Menu: /start > callback menu > /help within 7d; Ping: /ping > /stats"),
    );
    let auth = basic_auth("bench", TEST_PASSWORD);
    let mut table = format!(
        "| page ({points} points in the local mirror, {users} users, {requests} requests) | server p50 ms | server p95 ms | client p50 ms | client p95 ms | HTML bytes |\n\
         | --- | --- | --- | --- | --- | --- |\n"
    );
    for path in [
        "/?range=24h",
        "/?range=7d",
        "/?range=30d",
        "/pipeline?range=30d",
        "/errors",
        "/users?range=30d",
        "/retention",
        "/funnels?range=30d",
        "/sources?range=30d",
        "/sources?range=30d&format=csv&table=sources",
    ] {
        let mut server = Vec::new();
        let mut client = Vec::new();
        let mut bytes = 0;
        for i in 0..requests + 2 {
            let start = Instant::now();
            let page = dashboard
                .get(path, Some(&auth))
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let elapsed = start.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(page.status, 200, "{path}: {}", page.body);
            assert!(
                !page.body.contains("Could not load"),
                "{path} did not load whole:\n{}",
                page.body
            );
            if i >= 2 {
                client.push(elapsed);
                server.extend(server_ms(page.header("server-timing")));
                bytes = page.body.len();
            }
        }
        server.sort_by(f64::total_cmp);
        client.sort_by(f64::total_cmp);
        table += &format!(
            "| `{path}` | {:.1} | {:.1} | {:.1} | {:.1} | {bytes} |\n",
            percentile(&server, 0.5),
            percentile(&server, 0.95),
            percentile(&client, 0.5),
            percentile(&client, 0.95),
        );
    }
    println!("\n{table}");
    drop(dashboard);
    drop(stack);
    if flag("--write-doc") && !smoke {
        let path = repo_root().join("docs/benchmarks.md");
        let doc = fs::read_to_string(&path).expect("docs/benchmarks.md");
        let updated = replace_block(
            &doc,
            "dashboard",
            &format!("Run with `make bench` (the dashboard part: `cargo run --release -p bench --bin dashboard`).\n\n{table}"),
        )
        .unwrap_or_else(|e| panic!("docs/benchmarks.md {e}"));
        fs::write(&path, updated).expect("write docs/benchmarks.md");
        println!("bench: dashboard results written to docs/benchmarks.md");
    }
}
