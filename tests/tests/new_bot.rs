//! A new user's bot, from nothing to stored events, as the README says: `make new-bot` writes a
//! bot crate in a temporary directory outside the repository, `make dev BOT=…` builds it with
//! the pinned tools and runs it beside the consumer (in local workerd, on its own ports and
//! state), and the bot's updates, custom event and handler error are stored.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e_tests::process::{log_tail, stop_process_group, wrangler};
use e2e_tests::{free_port, http_agent, poll_until, repo_root, wait_for};
use serde_json::{json, Value};

/// `make dev BOT=…`, stopped (with its workerd children) when dropped, also on failure.
struct MakeDev(Child);

impl Drop for MakeDev {
    fn drop(&mut self) {
        stop_process_group(&mut self.0);
    }
}

fn make(args: &[&str], log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let log = fs::File::create(log).expect("log file");
    Command::new("make")
        .arg("--no-print-directory")
        .args(args)
        .current_dir(repo_root())
        // The bot's own .cargo/config.toml (from the template) points its builds at the
        // repository's target directory: nothing here sets one.
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start make")
}

fn d1(state: &Path, sql: &str) -> Vec<Value> {
    let output = Command::new(wrangler())
        .current_dir(repo_root())
        .args(["d1", "execute", "DB", "--local", "--persist-to"])
        .arg(state)
        .args(["-c", "wrangler.consumer.toml", "--json", "--command", sql])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .stdin(Stdio::null())
        .output()
        .expect("run wrangler");
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    parsed[0]["results"].as_array().cloned().unwrap_or_default()
}

fn update(update_id: i64, text: &str) -> String {
    json!({"update_id": update_id, "message": {"message_id": update_id, "from": {"id": 4242, "is_bot": false},
        "chat": {"id": 4242, "type": "private"}, "date": 1764000000, "text": text}})
    .to_string()
}

#[test]
fn a_new_bot_from_the_template_runs_with_make_dev_and_its_events_are_stored() {
    let tmp = tempfile::Builder::new()
        .prefix("tg-analytics-new-bot-")
        .tempdir()
        .expect("temp dir");
    assert!(
        !tmp.path().starts_with(repo_root()),
        "outside the repository"
    );
    let bot = tmp.path().join("e2ebot");

    // Step 2 of the README: a new bot in one command.
    let log = tmp.path().join("new-bot.log");
    let status = make(
        &["new-bot", "NAME=e2ebot", &format!("DIR={}", bot.display())],
        &log,
    )
    .wait()
    .expect("make new-bot");
    assert!(
        status.success(),
        "make new-bot failed:\n{}",
        log_tail(&log, 20)
    );
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "src/lib.rs",
        "wrangler.toml",
        ".dev.vars.example",
        "README.md",
    ] {
        assert!(bot.join(file).exists(), "{file} missing");
    }
    fs::copy(bot.join(".dev.vars.example"), bot.join(".dev.vars")).unwrap();
    let project_vars = tmp.path().join("project.dev.vars");
    fs::copy(repo_root().join(".dev.vars.example"), &project_vars).unwrap();

    // Step 1: make dev BOT=…, on ports and state of its own.
    let (port, dashboard_port, inspector) = (free_port(), free_port(), free_port());
    let state = tmp.path().join(".wrangler/state");
    let log = tmp.path().join("make-dev.log");
    let mut dev = MakeDev(make(
        &[
            "dev",
            &format!("BOT={}", bot.join("wrangler.toml").display()),
            &format!("STATE_DIR={}", state.display()),
            &format!("DEV_VARS={}", project_vars.display()),
            &format!("DEV_PORT={port}"),
            &format!("DASHBOARD_PORT={dashboard_port}"),
            &format!("DASHBOARD_INSPECTOR_PORT={inspector}"),
        ],
        &log,
    ));
    let agent = http_agent(Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{port}");
    // The bot reuses the repository's compiled dependencies, but the stack builds first.
    wait_for(
        "make dev to serve the new bot",
        Duration::from_secs(600),
        || {
            if let Ok(Some(status)) = dev.0.try_wait() {
                panic!("make dev exited ({status}):\n{}", log_tail(&log, 60));
            }
            agent
                .get(&format!("{base}/health"))
                .call()
                .ok()
                .filter(|r| r.status() == 200)
        },
    );

    let post = |id: i64, text: &str| {
        let mut response = agent
            .post(&format!("{base}/telegram"))
            .header("Content-Type", "application/json")
            .header("X-Telegram-Bot-Api-Secret-Token", "e2ebot-dev-secret")
            .send(update(id, text))
            .expect("post update");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let (status, body) = post(1, "/start");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Welcome"),
        "the reply rides in the body: {body}"
    );
    assert_eq!(post(2, "/roll 6").0, 200);
    let (status, body) = post(3, "/roll fail");
    assert_eq!(
        (status, body.as_str()),
        (200, ""),
        "a handler error answers an empty 200"
    );

    // Its events and its error, stored by the consumer.
    let stored = poll_until(Duration::from_secs(90), || {
        let events = d1(
            &state,
            "SELECT blob3 || ':' || blob4 AS e FROM analytics_points_local WHERE blob1 = 'e2ebot'",
        );
        let names: Vec<String> = events
            .iter()
            .filter_map(|r| r["e"].as_str().map(str::to_string))
            .collect();
        let want = [
            "command:start",
            "command:roll",
            "custom:answered",
            "error:ParseIntError",
        ];
        want.iter()
            .all(|w| names.iter().any(|n| n == w))
            .then_some(names)
    });
    let names = stored.unwrap_or_else(|| {
        panic!(
            "the new bot's events were not stored:\n{}",
            log_tail(&log, 60)
        )
    });
    println!("e2e: the new bot's events: {names:?}");
    let groups = poll_until(Duration::from_secs(60), || {
        let rows = d1(&state, "SELECT kind, location, count FROM error_groups");
        (!rows.is_empty()).then_some(rows)
    })
    .expect("the new bot's error group");
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["kind"], "ParseIntError");
    assert!(
        groups[0]["location"]
            .as_str()
            .unwrap()
            .starts_with("handler:src/lib.rs:"),
        "grouped at the line of its `?`: {groups:?}"
    );
}
