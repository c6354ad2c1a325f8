//! The dashboard Worker next to a running [`Stack`]: its own `wrangler dev` (as `make dev` runs
//! it) with the stack's `--persist-to` state, so it reads the same local D1. It lives in a
//! subdirectory of the stack's directory with a `.dev.vars` of its own.

use std::fs;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use base64::Engine;

use serde_json::Value;

use crate::fake_ae_sql::{FakeAeSqlApi, FAKE_ACCOUNT_ID, FAKE_API_TOKEN};
use crate::process::{log_tail, spawn_wrangler_dev, stop_process_group, wait_until_serving};
use crate::stack::{local_config, TEST_SECRET};
use crate::{fixture, free_port, http_agent, FakeBotApi, Stack};

/// The password the test dashboards use.
pub const TEST_PASSWORD: &str = "test-dashboard-password";

/// Where the dashboard reads Analytics Engine data.
#[derive(Debug, Clone)]
pub enum AeData {
    /// The SQL API at this base URL (the fake), with the fake's account and token.
    SqlApi(String),
    /// The local mirror in D1 (`AE_LOCAL_MIRROR=1`, as under `make dev`).
    LocalMirror,
}

/// How to start the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// `DASHBOARD_PASSWORD` (`None`: unset, the dashboard must refuse everyone).
    pub password: Option<String>,
    /// Where Analytics Engine data comes from.
    pub data: AeData,
    /// `FUNNELS` (`None`: as wrangler.dashboard.toml has it).
    pub funnels: Option<String>,
}

impl DashboardOptions {
    /// The production path: the password and the fake SQL API.
    pub fn with_sql_api(api: &FakeAeSqlApi) -> DashboardOptions {
        DashboardOptions {
            password: Some(TEST_PASSWORD.into()),
            data: AeData::SqlApi(api.base_url()),
            funnels: None,
        }
    }

    /// The `make dev` path: the password and the local mirror in D1.
    pub fn local_mirror() -> DashboardOptions {
        DashboardOptions {
            password: Some(TEST_PASSWORD.into()),
            data: AeData::LocalMirror,
            funnels: None,
        }
    }

    /// The same options with `FUNNELS` set to `funnels`.
    pub fn with_funnels(mut self, funnels: &str) -> DashboardOptions {
        self.funnels = Some(funnels.to_string());
        self
    }
}

/// A response: status, headers (lowercase names) and body.
#[derive(Debug, Clone)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Page {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running dashboard. Dropping it stops its `wrangler dev`.
pub struct Dashboard {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// An HTTP Basic `Authorization` value.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Dashboard {
    /// Starts the dashboard beside `stack` and waits (bounded) until it answers `/health`.
    /// `name` keeps several dashboards of one stack apart.
    pub fn start(stack: &Stack, name: &str, options: DashboardOptions) -> Dashboard {
        let dir = stack.dir().join(name);
        fs::create_dir_all(&dir).expect("dashboard dir");
        let mut config = local_config("wrangler.dashboard.toml");
        if let Some(funnels) = &options.funnels {
            let vars = config
                .entry("vars")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(vars) = vars.as_table_mut() {
                vars.insert("FUNNELS".into(), funnels.clone().into());
            }
        }
        fs::write(
            dir.join("wrangler.dashboard.toml"),
            toml::to_string(&config).expect("serialize config"),
        )
        .expect("write dashboard config");
        let mut vars = Vec::new();
        if let Some(password) = &options.password {
            vars.push(("DASHBOARD_PASSWORD", password.clone()));
        }
        match &options.data {
            AeData::SqlApi(base) => {
                vars.push(("CF_API_BASE", base.clone()));
                vars.push(("CF_ACCOUNT_ID", FAKE_ACCOUNT_ID.into()));
                vars.push(("CF_API_TOKEN", FAKE_API_TOKEN.into()));
            }
            AeData::LocalMirror => vars.push(("AE_LOCAL_MIRROR", "1".into())),
        }
        let dev_vars: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        fs::write(dir.join(".dev.vars"), dev_vars).expect("write .dev.vars");
        let port = free_port();
        let child = spawn_wrangler_dev(
            &dir,
            &["-c", "wrangler.dashboard.toml"],
            "../state",
            port,
            &dir.join("wrangler-dev.log"),
        );
        println!(
            "e2e: started the dashboard (pid {}) on 127.0.0.1:{port}",
            child.id()
        );
        let mut dashboard = Dashboard {
            dir,
            port,
            child: None,
        };
        let (url, log) = (dashboard.url("/health"), dashboard.log_path());
        let child = dashboard.child.insert(child);
        let started = Instant::now();
        wait_until_serving("dashboard wrangler dev", child, &log, || {
            get_page(&url, None).ok().filter(|p| p.status == 200)
        });
        println!("e2e: dashboard ready after {:.1?}", started.elapsed());
        dashboard
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// GET `path` with the given `Authorization` value (or none).
    pub fn get(&self, path: &str, authorization: Option<&str>) -> Result<Page, ureq::Error> {
        get_page(&self.url(path), authorization)
    }

    /// GET `path` with the test password; panics when the request fails.
    pub fn get_ok(&self, path: &str) -> Page {
        self.get(path, Some(&basic_auth("tester", TEST_PASSWORD)))
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("wrangler-dev.log")
    }

    /// The dashboard's wrangler output.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Dashboard {
    /// POSTs a form (`application/x-www-form-urlencoded`) to `path` with the given
    /// `Authorization` value (or none), following no redirect: status, `Location`, body.
    pub fn post_form(
        &self,
        path: &str,
        authorization: Option<&str>,
        form: &str,
    ) -> (u16, Option<String>, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut request = agent
            .post(&self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request
            .send(form.as_bytes())
            .expect("POST to the dashboard");
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (
            response.status().as_u16(),
            location,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }
}

/// GET `url` with the given `Authorization` value (or none), 60 s timeout.
fn get_page(url: &str, authorization: Option<&str>) -> Result<Page, ureq::Error> {
    let mut request = http_agent(Duration::from_secs(60)).get(url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let mut response = request.call()?;
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    Ok(Page {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().read_to_string().unwrap_or_default(),
    })
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- dashboard wrangler dev output (last lines) ----\n{}",
                log_tail(&self.log_path(), 40)
            );
        }
        if let Some(mut child) = self.child.take() {
            stop_process_group(&mut child);
        }
    }
}

// ---- traffic for the dashboard tests ----

/// A message update from `user` with `text` (a command when it starts with `/`).
pub fn message(update_id: i64, user: i64, text: &str) -> String {
    let mut update: Value = serde_json::from_str(&fixture("updates/message_start.json")).unwrap();
    update["update_id"] = update_id.into();
    // Sent (by Telegram's date, whole seconds) `MESSAGE_AGE_S` ago: the Telegram → bot delivery
    // lag the pipeline page shows is at least that.
    update["message"]["date"] = (crate::now_ms() / 1000 - MESSAGE_AGE_S).into();
    update["message"]["from"]["id"] = user.into();
    update["message"]["chat"]["id"] = user.into();
    update["message"]["text"] = text.into();
    update["message"]["entities"][0]["length"] =
        (text.split(' ').next().unwrap_or_default().chars().count() as i64).into();
    update.to_string()
}

/// How long before it is posted [`message`] dates a message, in seconds.
pub const MESSAGE_AGE_S: i64 = 30;

/// A button press with `data` (its callback name is the part before the first `:`).
pub fn button(update_id: i64, user: i64, data: &str) -> String {
    let mut update: Value = serde_json::from_str(&fixture("updates/callback_query.json")).unwrap();
    update["update_id"] = update_id.into();
    update["callback_query"]["id"] = format!("cb{update_id}").into();
    update["callback_query"]["from"]["id"] = user.into();
    update["callback_query"]["data"] = data.into();
    update.to_string()
}

/// A callback name that is markup.
pub const HOSTILE_CALLBACK: &str = "<script>alert('cb')</script>";
/// A Bot API error message that is markup.
pub const HOSTILE_ERROR: &str = "Bad Request: <script>alert(\"err\")</script>";

/// Posts a small day of traffic: four commands by three users (each dated [`MESSAGE_AGE_S`]
/// before it is posted), button presses (undated: no delivery lag; one with a
/// hostile name) whose follow-up edits fail at the Bot API, and one queue message that is not an
/// envelope (the consumer rejects it); waits until the pipeline stored it all. The stack must
/// come from [`dashboard_stack`].
pub fn post_traffic(stack: &Stack) {
    let updates = [
        message(200_001, 1_001, "/start campaign_a"),
        message(200_002, 1_002, "/start"),
        message(200_003, 1_002, "/help"),
        message(200_004, 1_003, "/ping"),
        button(200_005, 1_001, "menu:stats"),
        button(200_006, 1_003, "menu:about"),
        button(200_007, 1_003, &format!("{HOSTILE_CALLBACK}:x")),
    ];
    for update in &updates {
        let (status, body) = stack.post_update(update, Some(TEST_SECRET));
        assert_eq!(status, 200, "{body}");
    }
    stack.wait_count(
        "the updates in the local mirror",
        "SELECT count(*) FROM analytics_points_local WHERE blob3 = 'update'",
        updates.len() as i64,
    );
    stack.wait_count(
        "the failed edits in the error log",
        "SELECT count(*) FROM error_events",
        3,
    );
    let (status, body) = stack.post("/__dev/enqueue", &[], b"<script>not an envelope</script>");
    assert_eq!(status, 200, "{body}");
    stack.wait_count(
        "the rejected message",
        "SELECT count(*) FROM rejected_messages",
        1,
    );
}

/// The stack the dashboard tests run beside: the bot talks to `bot_api`, and the dev-only raw
/// enqueue route is on (to send a message the consumer must reject).
pub fn dashboard_stack(bot_api: &FakeBotApi) -> Stack {
    Stack::start(crate::StackOptions {
        api_base: Some(bot_api.base_url()),
        extra_vars: vec![("DEV_ENQUEUE".into(), "1".into())],
        ..crate::StackOptions::default()
    })
}

/// A Bot API that refuses every follow-up edit with a hostile message.
pub fn refusing_bot_api() -> FakeBotApi {
    let api = FakeBotApi::start();
    api.respond_error("editMessageText", 400, HOSTILE_ERROR);
    api
}

/// Writes `n` synthetic points into the local mirror of the D1 file `d1_file` (as the consumer
/// writes them), spread over the 30 days before `now_ms`, for the dashboard benchmark: per
/// update an `update` event, a command or a button press, and a handler timing; every 20th
/// update also an error. 1,000 users, deterministic.
pub fn fill_local_mirror(d1_file: &std::path::Path, n: usize, now_ms: i64) -> rusqlite::Result<()> {
    let mut db = rusqlite::Connection::open(d1_file)?;
    db.busy_timeout(Duration::from_secs(30))?;
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO analytics_points_local (dataset, timestamp, _sample_interval, index1, \
             blob1, blob2, blob3, blob4, blob5, blob6, blob7, blob8, blob9, blob10, blob11, blob12, \
             blob13, blob14, blob15, blob16, blob17, blob18, double1, double2, double3, double4, \
             double5, double6, double7, double8) VALUES ('telegram_bot_events', ?1, 1, ?2, \
             'telegram-bot', '0.1.0', ?3, ?4, ?2, ?2, ?5, ?6, ?7, ?8, ?9, 'private', ?10, '', ?11, \
             '', '{}', '', 1, ?12, ?13, ?14, ?14, 0, 0, 0)",
        )?;
        let commands = ["start", "help", "menu", "ping", "stats", "settings"];
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        let mut written = 0;
        let mut update = 0u64;
        while written < n {
            update += 1;
            let at = now_ms - (next(30 * 24 * 3600) as i64) * 1000;
            let timestamp = dashboard_core::timefmt::sql_datetime(at + 800);
            let user = 1_000_000 + next(1000) as i64;
            let command = commands[next(commands.len() as u64) as usize];
            let button = next(3) == 0;
            let mut events: Vec<(&str, String, &str, f64, &str)> = vec![
                (
                    "update",
                    if button {
                        "callback_query".into()
                    } else {
                        "message".into()
                    },
                    "",
                    0.0,
                    "",
                ),
                if button {
                    ("callback", "menu".into(), "", 0.0, "")
                } else {
                    ("command", command.into(), "", 0.0, "")
                },
                (
                    "performance",
                    "handler".into(),
                    if button { "" } else { command },
                    (next(40) + 1) as f64,
                    "ok",
                ),
            ];
            if update.is_multiple_of(20) {
                events.push(("error", "telegram_api".into(), "", 0.0, "error"));
            }
            for (i, (kind, name, prop, ms, outcome)) in events.into_iter().enumerate() {
                if written == n {
                    break;
                }
                let error = kind == "error";
                insert.execute(rusqlite::params![
                    timestamp,
                    user.to_string(),
                    kind,
                    name,
                    format!("00000000-0000-0000-0000-{update:08}{i:04}"),
                    if error { "telegram_api" } else { "" },
                    if error {
                        "Bad Request: message to edit not found"
                    } else {
                        ""
                    },
                    if error { "bot_api:editMessageText" } else { "" },
                    if error { "0123456789abcdef" } else { "" },
                    prop,
                    outcome,
                    ms,
                    at as f64,
                    user as f64,
                ])?;
                written += 1;
            }
        }
    }
    tx.commit()
}

/// Writes `users` synthetic users of bot `telegram-bot` into the owner-analytics tables of the D1
/// file `d1_file`, for the dashboard benchmark: first seen over the 90 days before `now_ms`, each
/// active on their first day and on up to 8 more days, one in 4 with a deep-link source (of 5),
/// one in 20 blocked, one in 50 paying (one in 5 of those refunded); and a year of daily rollups.
/// Deterministic.
pub fn fill_owner_tables(
    d1_file: &std::path::Path,
    users: usize,
    now_ms: i64,
) -> rusqlite::Result<()> {
    const DAY: i64 = 86_400_000;
    let mut db = rusqlite::Connection::open(d1_file)?;
    db.busy_timeout(Duration::from_secs(30))?;
    let tx = db.transaction()?;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let today = now_ms.div_euclid(DAY);
    let langs = ["en", "ru", "de", "es", "pt", "uk"];
    let sources = ["ads", "promo", "partner", "channel", "qr"];
    for i in 0..users as i64 {
        let user = 1_000_000 + i;
        let first = now_ms - (next(90 * 86_400) as i64) * 1000;
        let first_day = first.div_euclid(DAY);
        let mut days = vec![first_day];
        for _ in 0..next(9) {
            let day = first_day + next(60) as i64;
            if day <= today && !days.contains(&day) {
                days.push(day);
            }
        }
        let last_day = *days.iter().max().unwrap_or(&first_day);
        let last = (last_day * DAY).max(first);
        let source = (next(4) == 0).then(|| sources[next(5) as usize]);
        let blocked = next(20) == 0;
        tx.execute(
            "INSERT INTO bot_users (bot, user_id, first_seen, last_seen, source, source_at, lang, premium, seen_at, status, status_at) \
             VALUES ('telegram-bot', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?3, ?8, ?9)",
            rusqlite::params![
                user,
                first,
                last,
                source,
                source.map(|_| first),
                langs[next(6) as usize],
                next(3) as i64 % 2,
                if blocked { "blocked" } else { "active" },
                blocked.then_some(last),
            ],
        )?;
        for day in &days {
            tx.execute(
                "INSERT OR IGNORE INTO user_days (bot, day, user_id) VALUES ('telegram-bot', ?1, ?2)",
                rusqlite::params![day, user],
            )?;
        }
        if blocked {
            tx.execute(
                "INSERT INTO user_events (event_id, bot, user_id, occurred_at, name) VALUES (?1, 'telegram-bot', ?2, ?3, 'user_blocked')",
                rusqlite::params![format!("b{user}"), user, last],
            )?;
        }
        if next(50) == 0 {
            tx.execute(
                "INSERT INTO user_events (event_id, bot, user_id, occurred_at, name, currency, amount) VALUES (?1, 'telegram-bot', ?2, ?3, 'payment', 'XTR', ?4)",
                rusqlite::params![format!("p{user}"), user, last, (next(10) + 1) as f64 * 100.0],
            )?;
            if next(5) == 0 {
                tx.execute(
                    "INSERT INTO user_events (event_id, bot, user_id, occurred_at, name, currency, amount) VALUES (?1, 'telegram-bot', ?2, ?3, 'refund', 'XTR', 100)",
                    rusqlite::params![format!("r{user}"), user, last],
                )?;
            }
        }
    }
    for day in today - 365..today {
        tx.execute(
            "INSERT OR REPLACE INTO daily_rollup (bot, day, new_users, active_users, blocked, unblocked, payers, revenue, events, events_by_kind, errors, computed_at) \
             VALUES ('telegram-bot', ?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, '{}', ?8, ?9)",
            rusqlite::params![
                day,
                next(200) as i64,
                next(1000) as i64,
                next(10) as i64,
                next(5) as i64,
                format!("{{\"XTR\":{}}}", next(5000)),
                next(100_000) as i64,
                next(500) as i64,
                (day + 1) * DAY,
            ],
        )?;
    }
    tx.commit()
}
