//! The dashboard Worker in real local workerd, over HTTP: it fails closed, asks for the
//! password, shows what the pipeline stored (Analytics Engine data through a fake SQL API that
//! evaluates the SQL, D1 data from the stack's database), keeps hostile values out of SQL and
//! HTML, sends its security headers, stays within its query budget, and shows the same data from
//! the local mirror (the `make dev` path).

use std::time::Duration;

use e2e_tests::dashboard::{
    basic_auth, dashboard_stack, post_traffic, refusing_bot_api, AeData, Dashboard,
    DashboardOptions, MESSAGE_AGE_S, TEST_PASSWORD,
};
use e2e_tests::fake_ae_sql::{local_d1_file, FakeAeSqlApi};
use e2e_tests::wait_for;

#[test]
fn the_dashboard_shows_the_pipeline_behind_a_password() {
    let bot_api = refusing_bot_api();
    let stack = dashboard_stack(&bot_api);
    let d1_file = local_d1_file(&stack.dir().join("state")).expect("the stack's local D1 file");
    let sql_api = FakeAeSqlApi::start(d1_file);

    // Without a password configured nobody gets in, whatever they send, and no data leaks.
    let closed = Dashboard::start(
        &stack,
        "closed",
        DashboardOptions {
            password: None,
            data: AeData::SqlApi(sql_api.base_url()),
            funnels: None,
        },
    );
    for auth in [
        None,
        Some(basic_auth("admin", "")),
        Some(basic_auth("admin", TEST_PASSWORD)),
    ] {
        for path in ["/", "/errors", "/pipeline", "/assets/dashboard.css"] {
            let page = closed.get(path, auth.as_deref()).unwrap();
            assert_eq!(page.status, 503, "{path}");
            assert!(page.body.contains("DASHBOARD_PASSWORD"));
        }
    }
    assert!(
        sql_api.calls().is_empty(),
        "a closed dashboard queried the SQL API"
    );
    drop(closed);

    post_traffic(&stack);
    let dashboard = Dashboard::start(
        &stack,
        "dashboard",
        DashboardOptions::with_sql_api(&sql_api),
    );

    // Wrong or missing credentials: 401 with a Basic challenge, no data.
    for auth in [
        None,
        Some(basic_auth("admin", "wrong")),
        Some("Bearer x".to_string()),
    ] {
        let page = dashboard.get("/", auth.as_deref()).unwrap();
        assert_eq!(page.status, 401);
        assert!(page
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic realm="));
        assert!(!page.body.contains("/start"));
    }
    assert!(
        sql_api.calls().is_empty(),
        "an unauthenticated request queried the SQL API"
    );
    assert_eq!(dashboard.get("/health", None).unwrap().status, 200);

    // The overview: any user name, the right password.
    let overview = dashboard.get_ok("/");
    assert_eq!(overview.status, 200, "{}", overview.body);
    for (name, value) in [
        ("content-security-policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(overview.header(name), Some(value), "{name}");
    }
    assert!(overview
        .header("server-timing")
        .unwrap()
        .starts_with("total;dur="));
    let body = &overview.body;
    assert!(!body.contains("Could not load"), "{body}");
    for command in ["/start", "/help", "/ping", "menu"] {
        assert!(body.contains(command), "{command} missing");
    }
    assert!(
        body.contains("<polyline") && body.contains("<circle"),
        "a chart with points"
    );
    assert!(body.contains("Analytics Engine SQL API"));
    // The hostile callback data never reached storage (it is not a bot-defined token, so the
    // bot tracked it as `other`); nothing unescaped reaches the page either way. Escaping of
    // stored hostile text is checked on the errors page below.
    assert!(
        !body.contains("<script"),
        "unescaped script in the overview"
    );
    assert!(
        !body.contains("alert(&#39;cb&#39;)"),
        "the forged callback data was stored"
    );
    assert!(
        body.contains("other"),
        "the forged button is counted as `other`"
    );
    // The /start row: two uses, handler durations known.
    let calls = sql_api.calls();
    assert_eq!(calls.len(), 3, "the overview makes three SQL API calls");
    assert!(calls.iter().all(|c| c.status == 200), "{calls:?}");
    assert!(calls
        .iter()
        .all(|c| c.sql.contains("FROM telegram_bot_events")));

    // Every page stays within 3 SQL API calls, and each range works.
    for path in [
        "/?range=7d",
        "/?range=30d",
        "/pipeline",
        "/pipeline?range=30d",
        "/errors",
        "/errors?sort=count",
    ] {
        sql_api.clear_calls();
        let page = dashboard.get_ok(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            !page.body.contains("Could not load"),
            "{path}: {}",
            page.body
        );
        let n = sql_api.calls().len();
        assert!(n <= 3, "{path} made {n} SQL API calls");
        assert!(
            page.body
                .contains(&format!(" D1 and {n} Analytics Engine queries")),
            "{path}: the footer states the calls made"
        );
    }

    // The errors page: the group of failed edits, with count, users and release.
    let errors = dashboard.get_ok("/errors?sort=count");
    assert!(errors
        .body
        .contains("Bad Request: &lt;script&gt;alert(&quot;err&quot;)&lt;/script&gt;"));
    assert!(!errors.body.contains("<script"));
    let fingerprint = stack.d1("SELECT fingerprint, count FROM error_groups")[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(errors
        .body
        .contains(&format!("href=\"/errors/{fingerprint}\"")));
    assert!(errors.body.contains("0.1.0"));
    let filtered = dashboard.get_ok("/errors?release=0.1.0");
    assert!(filtered.body.contains(&fingerprint));
    let other = dashboard.get_ok("/errors?release=9.9.9");
    assert!(!other.body.contains(&format!("/errors/{fingerprint}")));

    // The group page: its events and its occurrence chart.
    let group = dashboard.get_ok(&format!("/errors/{fingerprint}"));
    assert_eq!(group.status, 200);
    assert!(group.body.contains("bot_api:editMessageText"));
    // The affected user is listed, by pseudonym: the raw id never left the bot.
    let user = e2e_tests::stack::pseudonym(1_003).to_string();
    assert!(group.body.contains(&user), "the affected user is listed");
    assert!(
        !group.body.contains(">1003<"),
        "a raw user id reached the page"
    );
    assert!(group.body.contains("<polyline"));
    assert_eq!(dashboard.get_ok("/errors/0123456789abcdef").status, 200);
    assert!(dashboard
        .get_ok("/errors/0123456789abcdef")
        .body
        .contains("No such error group"));

    // The pipeline page: stored messages and delivery lag.
    let pipeline = dashboard.get_ok("/pipeline");
    assert!(pipeline.body.contains("Events dropped, by reason"));
    assert!(pipeline.body.contains("id=\"card-messages\""));
    assert!(
        !pipeline
            .body
            .contains("id=\"card-lag-p50\"><div class=\"value\">—"),
        "lag percentiles are known"
    );
    // Telegram → bot delivery: the four messages, each dated 30 s before it was posted; the
    // button presses carry no date of their own and are not counted.
    // (One row per hour: the traffic may straddle the turn of an hour.)
    let telegram_lag = telegram_lag_rows(&pipeline.body);
    let updates: i64 = telegram_lag.iter().map(|(n, _, _)| n).sum();
    assert_eq!(updates, 4, "{telegram_lag:?}");
    println!("e2e: Telegram → bot delivery (updates, p50 ms, p95 ms) per hour: {telegram_lag:?}");
    let sent_ms = MESSAGE_AGE_S * 1000;
    for (_, p50, p95) in &telegram_lag {
        // At least the 30 s (less Telegram's whole-second rounding), and nowhere near the
        // fixture's original date a year back.
        assert!(
            (sent_ms - 1_000..sent_ms * 60).contains(p50) && p95 >= p50,
            "a lag that is not the date's: p50 {p50} ms, p95 {p95} ms"
        );
    }

    // Hostile values: refused, or bound and escaped; the tables survive.
    let drop_table = "/errors?release=%27%3B%20DROP%20TABLE%20error_groups%3B%20--";
    let page = dashboard.get_ok(drop_table);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No error groups"));
    assert!(page.body.contains("&#39;; DROP TABLE error_groups; --"));
    let page = dashboard.get_ok("/errors?release=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert!(!page.body.contains("<script"));
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    for (path, status) in [
        ("/?range=%3Cscript%3E", 400),
        ("/?range=1d%27%20OR%201%3D1", 400),
        ("/errors?sort=count%20DESC%3B", 400),
        ("/errors/0123456789ABCDEF", 404),
        ("/errors/%3Cscript%3E", 404),
        ("/nope", 404),
    ] {
        let page = dashboard.get_ok(path);
        assert_eq!(page.status, status, "{path}");
        assert!(!page.body.contains("<script"), "{path}");
        assert_eq!(page.header("cache-control"), Some("no-store"));
    }
    assert_eq!(stack.d1_count("SELECT count(*) FROM error_groups"), 1);
    assert!(stack.d1_count("SELECT count(*) FROM analytics_points_local") > 0);

    // The make dev path: the same commands from the local mirror in D1.
    let local = Dashboard::start(&stack, "local", DashboardOptions::local_mirror());
    sql_api.clear_calls();
    let mirrored = wait_for("the local overview", Duration::from_secs(30), || {
        Some(local.get_ok("/")).filter(|p| p.status == 200)
    });
    assert!(mirrored.body.contains("local mirror"));
    assert!(
        !mirrored.body.contains("Could not load"),
        "{}",
        mirrored.body
    );
    for command in ["/start", "/help", "/ping", "menu"] {
        assert!(
            mirrored.body.contains(command),
            "{command} missing from the local overview"
        );
    }
    for id in ["card-updates", "card-events", "card-errors"] {
        let card = |html: &str| {
            html.split(&format!("id=\"{id}\""))
                .nth(1)
                .and_then(|s| s.split("</div>").next())
                .map(str::to_string)
        };
        assert_eq!(
            card(&mirrored.body),
            card(&overview.body),
            "{id}: the sources disagree"
        );
    }
    let local_pipeline = local.get_ok("/pipeline");
    assert!(
        !local_pipeline.body.contains("Could not load"),
        "{}",
        local_pipeline.body
    );
    assert_eq!(
        telegram_lag_rows(&local_pipeline.body),
        telegram_lag,
        "the local mirror's Telegram delivery differs from the SQL API's"
    );
    assert!(
        sql_api.calls().is_empty(),
        "the local dashboard used the SQL API"
    );
    println!("e2e: dashboard verified (SQL API and local mirror)");
}

/// The rows of the pipeline page's Telegram → bot delivery table (one per hour with dated
/// updates): updates, p50 and p95 lag in ms.
fn telegram_lag_rows(html: &str) -> Vec<(i64, i64, i64)> {
    let table = html
        .split("<table class=\"telegram-lag\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no Telegram delivery table: {html}"));
    table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            let cells: Vec<i64> = row
                .split("<td class=\"num\">")
                .skip(1)
                .map(|c| {
                    let n = c.split('<').next().unwrap_or_default().replace(',', "");
                    n.parse()
                        .unwrap_or_else(|_| panic!("not a number: {c:?} in {table}"))
                })
                .collect();
            assert_eq!(cells.len(), 3, "{table}");
            (cells[0], cells[1], cells[2])
        })
        .collect()
}
