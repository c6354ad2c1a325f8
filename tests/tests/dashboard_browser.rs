//! The dashboard in real headless Chromium (Debian's `chromium`, driven by playwright-core from
//! npm; `make test` installs Chromium when it is missing): after real traffic through the stack,
//! including Bot API failures, the overview shows the commands and a chart with points, the
//! errors page lists the group and its page opens, the release filter works, a wrong password
//! gets 401, and no page logs a console error (a CSP violation would). Screenshots of every page
//! go to `SCREENSHOT_DIR` (default `target/dashboard-screenshots`; `make screenshots` writes
//! them to `docs/`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::dashboard::{
    basic_auth, dashboard_stack, post_traffic, refusing_bot_api, Dashboard, DashboardOptions,
    HOSTILE_CALLBACK, TEST_PASSWORD,
};
use e2e_tests::fake_ae_sql::{local_d1_file, FakeAeSqlApi};
use e2e_tests::process::stop_process_group;
use e2e_tests::repo_root;
use serde_json::Value;

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium (`make test` does: apt-get install -y chromium)",
        path.display()
    );
    path
}

/// Every page of the dashboard-core registry, as the driver's `DASHBOARD_PAGES`: one entry per
/// example (each range, sort and release filter), named after its kind.
fn registry_pages() -> String {
    let pages: Vec<Value> = dashboard_core::pages::every_example()
        .enumerate()
        .map(|(i, page)| serde_json::json!({"name": format!("{}-{i}", page.kind().name()), "url": page.url()}))
        .collect();
    Value::Array(pages).to_string()
}

/// Runs the playwright-core driver against `base`; returns its JSON report.
fn drive_browser(base: &str, screenshots: &PathBuf) -> Value {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("node")
        .arg(repo_root().join("tests/browser/dashboard.mjs"))
        .current_dir(repo_root())
        .env("DASHBOARD_URL", base)
        .env("DASHBOARD_PASSWORD", TEST_PASSWORD)
        .env("CHROMIUM", chromium())
        .env("SCREENSHOT_DIR", screenshots)
        .env("DASHBOARD_PAGES", registry_pages())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start node");
    // The report outgrows a pipe's buffer: read both streams while the driver runs, or it
    // blocks writing them.
    let drain = |stream: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            stop_process_group(&mut child);
            panic!("the browser run took longer than 3 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = child.wait().expect("browser status");
    let output = std::process::Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
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

/// The group's status form clicked through in Chromium (resolve, reopen, mute, unmute, each
/// stored in D1 and shown after the redirect), then refused over HTTP without the password or
/// without the right CSRF token.
fn group_status_form(report: &Value, dashboard: &Dashboard, stack: &e2e_tests::Stack, url: &str) {
    let status = &report["groupStatus"];
    assert_eq!(status["before"], "unresolved", "{status}");
    assert!(
        status["resolved"]
            .as_str()
            .unwrap()
            .starts_with("resolved in "),
        "{status}"
    );
    assert_eq!(status["reopened"], "unresolved", "{status}");
    assert_eq!(status["muted"], "muted", "{status}");
    assert_eq!(status["unmuted"], "unresolved", "{status}");
    let path = url
        .split_once("/errors/")
        .map(|(_, fp)| format!("/errors/{}", &fp[..16]))
        .unwrap();
    for state in ["resolved", "reopened", "muted", "unmuted"] {
        assert!(
            status[format!("{state}Url")]
                .as_str()
                .unwrap()
                .ends_with(&path),
            "{status}"
        );
    }
    let fingerprint = &path["/errors/".len()..];
    let group_status = || {
        stack.d1(&format!(
            "SELECT status FROM error_groups WHERE fingerprint = '{fingerprint}'"
        ))[0]["status"]
            .clone()
    };
    assert_eq!(group_status(), "unresolved");
    assert_eq!(
        stack.d1_count(&format!(
            "SELECT count(*) FROM error_groups WHERE fingerprint = '{fingerprint}' AND status_changed_at IS NOT NULL"
        )),
        1,
        "the browser's changes reached D1"
    );

    let html = dashboard.get_ok(&path).body;
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's CSRF token")
        .to_string();
    let auth = basic_auth("tester", TEST_PASSWORD);
    let action = format!("{path}/status");
    let refusals = [
        (None, format!("action=resolve&csrf={token}"), 401),
        (
            Some(basic_auth("tester", "wrong password!")),
            format!("action=resolve&csrf={token}"),
            401,
        ),
        (Some(auth.clone()), "action=resolve".to_string(), 403),
        (
            Some(auth.clone()),
            format!("action=resolve&csrf={}", "0".repeat(64)),
            403,
        ),
        (
            Some(auth.clone()),
            format!("action=resolve&csrf={}", &token[..32]),
            403,
        ),
        (
            Some(auth.clone()),
            format!("action=delete&csrf={token}"),
            400,
        ),
    ];
    for (authorization, form, expected) in refusals {
        let (code, _, body) = dashboard.post_form(&action, authorization.as_deref(), &form);
        assert_eq!(code, expected, "{form}: {body}");
        assert_eq!(group_status(), "unresolved", "{form} changed nothing");
    }
    // The token of another group does not work for this one.
    let (code, _, _) = dashboard.post_form(
        "/errors/0123456789abcdef/status",
        Some(&auth),
        &format!("action=resolve&csrf={token}"),
    );
    assert_eq!(code, 403);
    // GET on the form's URL is no way around it.
    assert_eq!(
        dashboard
            .get(
                &format!("{action}?action=resolve&csrf={token}"),
                Some(&auth)
            )
            .unwrap()
            .status,
        404
    );
    // With the password and the token: a redirect to the group, and the change in D1.
    let (code, location, _) = dashboard.post_form(
        &action,
        Some(&auth),
        &format!("action=resolve&csrf={token}"),
    );
    assert_eq!((code, location.as_deref()), (303, Some(path.as_str())));
    assert_eq!(group_status(), "resolved");
}

#[test]
fn the_dashboard_works_in_chromium() {
    let bot_api = refusing_bot_api();
    let stack = dashboard_stack(&bot_api);
    let sql_api =
        FakeAeSqlApi::start(local_d1_file(&stack.dir().join("state")).expect("local D1 file"));
    post_traffic(&stack);
    // The owner-analytics pages' known population, beside the traffic.
    let d1 = local_d1_file(&stack.dir().join("state")).expect("local D1 file");
    let population = e2e_tests::owner::known_population("known-bot", e2e_tests::now_ms());
    e2e_tests::owner::seed(&d1, &population).expect("seed the known population");
    let dashboard = Dashboard::start(
        &stack,
        "dashboard",
        DashboardOptions::with_sql_api(&sql_api).with_funnels(dashboard_core::funnel::EXAMPLE),
    );
    let screenshots = std::env::var_os("SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/dashboard-screenshots"));

    let report = drive_browser(&dashboard.url(""), &screenshots);
    println!("e2e: browser report: {report:#}");

    // Refused without the password, and nothing shown.
    for who in ["none", "wrong"] {
        let statuses = report["refused"][who]["statuses"].as_array().unwrap();
        assert!(!statuses.is_empty(), "{who}: no response");
        assert!(statuses.iter().all(|s| s == 401), "{who}: {statuses:?}");
        assert_eq!(report["refused"][who]["showsData"], false, "{who}");
    }
    // Every page of the registry: served, no script, nothing loaded from elsewhere, no failed
    // query, and every kind visited.
    let registry = report["registry"].as_array().expect("registry pages");
    for kind in dashboard_core::pages::PageKind::ALL {
        assert!(
            registry
                .iter()
                .any(|p| p["name"].as_str().unwrap().starts_with(kind.name())),
            "{kind:?} not visited"
        );
    }
    for p in registry {
        assert_eq!(p["status"], 200, "{}", p["name"]);
        assert_eq!(p["scripts"], 0, "{}", p["name"]);
        assert_eq!(p["hasScriptTag"], false, "{}", p["name"]);
        assert!(
            p["h1"].as_str().is_some_and(|h| !h.is_empty()),
            "{}",
            p["name"]
        );
        assert!(
            !p["text"].as_str().unwrap().contains("Could not load"),
            "{}: {}",
            p["name"],
            p["text"]
        );
        for resource in p["resources"].as_array().unwrap() {
            assert!(resource.as_str().unwrap().starts_with('/'), "{}", p["name"]);
        }
    }
    let pages = report["pages"].as_array().expect("pages");
    let page = |name: &str| {
        pages
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} page in the report"))
    };
    let text = |name: &str| page(name)["text"].as_str().unwrap_or_default().to_string();
    for p in pages {
        assert_eq!(p["status"], 200, "{}", p["name"]);
        assert_eq!(p["scripts"], 0, "{}: pages run no script", p["name"]);
        assert_eq!(p["hasScriptTag"], false, "{}", p["name"]);
        assert!(
            !p["text"].as_str().unwrap().contains("Could not load"),
            "{}",
            p["name"]
        );
        assert!(
            std::path::Path::new(p["screenshot"].as_str().unwrap()).exists(),
            "{} screenshot",
            p["name"]
        );
        for resource in p["resources"].as_array().unwrap() {
            assert!(
                resource.as_str().unwrap().starts_with('/'),
                "{}: loaded {resource} from elsewhere",
                p["name"]
            );
        }
    }

    // The overview: the posted commands and a chart with data points. The forged button's markup
    // never reached storage (privacy: only bot-defined callback data is kept), so it shows as
    // `other`.
    let overview = text("overview");
    for command in ["/start", "/help", "/ping", "menu"] {
        assert!(overview.contains(command), "{command} missing:\n{overview}");
    }
    assert!(
        !overview.contains(HOSTILE_CALLBACK) && overview.contains("other"),
        "the forged callback data shows as `other`"
    );
    assert!(page("overview")["chartPoints"].as_u64().unwrap() > 0);
    assert!(page("overview")["chartLines"].as_u64().unwrap() > 0);
    assert!(page("overview-7d")["chartLines"].as_u64().unwrap() > 0);
    assert!(page("overview-7d")["url"]
        .as_str()
        .unwrap()
        .ends_with("/?range=7d"));

    // The errors page lists the group; the filter keeps it; its page opens with a chart.
    assert!(text("errors").contains("Bad Request: <script>alert(\"err\")</script>"));
    assert!(page("errors-filtered")["url"]
        .as_str()
        .unwrap()
        .contains("release="));
    assert!(text("errors-filtered").contains("Bad Request"));
    assert!(page("group")["url"].as_str().unwrap().contains("/errors/"));
    assert!(page("group")["h1"]
        .as_str()
        .unwrap()
        .contains("Bad Request"));
    assert!(text("group").contains("bot_api:editMessageText"));
    assert!(page("group")["chartLines"].as_u64().unwrap() > 0);
    group_status_form(
        &report,
        &dashboard,
        &stack,
        page("group")["url"].as_str().unwrap(),
    );
    assert!(text("pipeline").contains("Events dropped, by reason"));
    assert!(text("pipeline").contains("Latest rejected messages"));
    assert!(
        text("pipeline").contains("Telegram → bot delivery"),
        "{}",
        text("pipeline")
    );
    assert!(
        !text("pipeline").contains("None in this range"),
        "the rejected message is listed"
    );

    // The owner-analytics pages: the known population's figures, a shaded triangle, a funnel.
    assert!(text("users").contains("DAU"), "{}", text("users"));
    assert!(
        text("retention").contains("100.0 %"),
        "{}",
        text("retention")
    );
    assert!(
        text("funnels").contains("Onboarding"),
        "{}",
        text("funnels")
    );
    assert!(text("sources").contains("ads") && text("sources").contains("300 XTR"));

    // Nothing went wrong in the browser: no console error or warning (CSP violations are
    // reported there), no failed request, no error status.
    assert_eq!(
        report["consoleErrors"],
        serde_json::json!([]),
        "console errors"
    );
    assert_eq!(
        report["failedRequests"],
        serde_json::json!([]),
        "failed requests"
    );
    assert_eq!(
        report["badResponses"],
        serde_json::json!([]),
        "error responses"
    );

    for p in pages {
        println!(
            "e2e: page {:<16} {:>6} B HTML, {:>6} B transferred in all",
            p["name"].as_str().unwrap(),
            p["htmlBytes"],
            p["totalBytes"]
        );
    }
}
