//! The local stack: both Workers in one `wrangler dev`, with temporary configs, secrets and
//! state, so tests never touch the developer's `.dev.vars` or `.wrangler/state`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::process::{
    log_tail, spawn_wrangler_dev, stop_process_group, wait_until_serving, wrangler,
};
use crate::{free_port, http_agent, poll_until, repo_root};

/// The webhook secret the test stack uses.
pub const TEST_SECRET: &str = "test-secret";
/// The bot token the test stack uses (the fake Bot API sees it).
pub const TEST_TOKEN: &str = "123456:TEST-TOKEN";
/// The pseudonym key the test stack's bot uses (`ANALYTICS_ID_KEY`).
pub const TEST_ID_KEY: &str = "test-pseudonym-key-0123456789abcdef";

/// The id a raw Telegram user or chat id is stored under by the test stack's bot.
pub fn pseudonym(raw: i64) -> i64 {
    analytics_core::privacy::pseudonym(TEST_ID_KEY.as_bytes(), raw)
}

/// How to start the stack.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// `TELEGRAM_API_BASE` (the fake Bot API); `None` leaves the token unset (calls skipped).
    pub api_base: Option<String>,
    /// More `.dev.vars` lines (`NAME=value`) for both Workers.
    pub extra_vars: Vec<(String, String)>,
    /// Override the main queue consumer's `max_retries` (to reach the dead letter queue
    /// quickly; the dead letter queue's consumer keeps its own).
    pub max_retries: Option<u32>,
    /// Put the consumer first (it then gets the HTTP port) and enable `/__scheduled`, to run
    /// its cron handler on demand.
    pub consumer_scheduled: bool,
    /// The bot's wrangler config, relative to the repository root (default
    /// `wrangler.producer.toml`; `examples/minimal-bot/wrangler.toml` runs the minimal bot).
    pub bot_config: Option<String>,
    /// Override the dead letter queue consumer's `max_retries` (to see what happens after a
    /// message exhausted both queues).
    pub dlq_max_retries: Option<u32>,
    /// Start the consumer without its Analytics Engine binding (a misconfigured deploy).
    pub consumer_without_analytics: bool,
    /// A second bot on the same consumer (several bots, one consumer): reachable under
    /// `/second/…` through a small router Worker that gets the HTTP port (in a multi-config
    /// `wrangler dev` only the first config has one; the others are reached through bindings).
    pub second_bot: Option<SecondBot>,
}

/// A second bot beside the first, sending to the same consumer.
#[derive(Debug, Clone)]
pub struct SecondBot {
    /// Its wrangler config, relative to the repository root.
    pub config: String,
    /// Its Worker name and `BOT_NAME` (replacing the config's, so the same build can run twice).
    pub name: String,
    /// Its own `.dev.vars` lines on top of the stack's (its own `ANALYTICS_ID_KEY`, say).
    pub vars: Vec<(String, String)>,
}

/// The router in front of two bots: `/second/…` to the second, everything else to the first.
const ROUTER_JS: &str = r#"export default {
  fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/second/")) {
      url.pathname = url.pathname.slice("/second".length);
      return env.SECOND.fetch(new Request(url, request));
    }
    return env.FIRST.fetch(request);
  },
};
"#;

/// The flags that point a `wrangler d1` command at the stack's local database.
const LOCAL_DB: [&str; 5] = [
    "--local",
    "--persist-to",
    "state",
    "-c",
    "wrangler.consumer.toml",
];

/// A running local stack. Dropping it stops every process it started.
pub struct Stack {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

/// Loads a wrangler config of the repository for use from another directory: absolute paths,
/// no build step (the Makefile built the Workers), and a 1 s batch timeout so tests wait less.
pub fn local_config(name: &str) -> toml::Table {
    let config = dev_stack::local_config(&repo_root().join(name)).unwrap_or_else(|e| panic!("{e}"));
    let built = PathBuf::from(config["main"].as_str().expect("main"));
    assert!(
        built.exists(),
        "{} is missing: run `make build` (make test does) before the end-to-end tests",
        built.display()
    );
    config
}

fn test_config(name: &str) -> String {
    toml::to_string(&local_config(name)).expect("serialize config")
}

/// Writes the second bot's config and `.dev.vars` (in `second/`, so it reads its own) and the
/// router in front of both bots.
fn write_second_bot(dir: &Path, second: &SecondBot, dev_vars: &str, options: &StackOptions) {
    let first = local_config(
        options
            .bot_config
            .as_deref()
            .unwrap_or("wrangler.producer.toml"),
    );
    let mut config = local_config(&second.config);
    config.insert("name".into(), second.name.clone().into());
    if let Some(vars) = config.get_mut("vars").and_then(|v| v.as_table_mut()) {
        vars.insert("BOT_NAME".into(), second.name.clone().into());
    }
    let second_dir = dir.join("second");
    fs::create_dir_all(&second_dir).unwrap();
    fs::write(
        second_dir.join("wrangler.toml"),
        toml::to_string(&config).expect("serialize config"),
    )
    .unwrap();
    // The stack's lines, less those the second bot sets itself, then its own.
    let own = |line: &str| {
        second
            .vars
            .iter()
            .any(|(k, _)| line.starts_with(&format!("{k}=")))
    };
    let mut lines: String = dev_vars
        .lines()
        .filter(|l| !own(l))
        .map(|l| format!("{l}\n"))
        .collect();
    for (k, v) in &second.vars {
        lines.push_str(&format!("{k}={v}\n"));
    }
    fs::write(second_dir.join(".dev.vars"), lines).unwrap();
    fs::write(dir.join("router.js"), ROUTER_JS).unwrap();
    let router = format!(
        "name = \"e2e-router\"\nmain = \"{}\"\ncompatibility_date = \"2026-04-01\"\n\n\
         [[services]]\nbinding = \"FIRST\"\nservice = \"{}\"\n\n\
         [[services]]\nbinding = \"SECOND\"\nservice = \"{}\"\n",
        dir.join("router.js").display(),
        first["name"].as_str().expect("the first bot's name"),
        second.name
    );
    fs::write(dir.join("router.toml"), router).unwrap();
}

impl Stack {
    /// Starts the stack and waits (bounded) until it answers `/health`.
    pub fn start(options: StackOptions) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("tg-analytics-e2e-")
            .tempdir()
            .expect("temp dir");
        fs::write(
            dir.path().join("wrangler.producer.toml"),
            test_config(
                options
                    .bot_config
                    .as_deref()
                    .unwrap_or("wrangler.producer.toml"),
            ),
        )
        .unwrap();
        let mut vars = vec![
            (
                "TELEGRAM_WEBHOOK_SECRET".to_string(),
                TEST_SECRET.to_string(),
            ),
            ("AE_LOCAL_MIRROR".into(), "1".into()),
            ("ANALYTICS_ID_KEY".into(), TEST_ID_KEY.into()),
        ];
        if let Some(base) = &options.api_base {
            vars.push(("TELEGRAM_API_BASE".into(), base.clone()));
            vars.push(("TELEGRAM_BOT_TOKEN".into(), TEST_TOKEN.into()));
        }
        // A short coalescing window, so tests need not wait the default one; tests of the
        // window itself set their own.
        if !options
            .extra_vars
            .iter()
            .any(|(k, _)| k == "ANALYTICS_COALESCE_MS")
        {
            vars.push(("ANALYTICS_COALESCE_MS".into(), "200".into()));
        }
        vars.extend(options.extra_vars.iter().cloned());
        let dev_vars: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        fs::write(dir.path().join(".dev.vars"), &dev_vars).unwrap();
        if let Some(second) = &options.second_bot {
            write_second_bot(dir.path(), second, &dev_vars, &options);
        }

        let mut consumer = local_config("wrangler.consumer.toml");
        if let Some(list) = consumer
            .get_mut("queues")
            .and_then(|q| q.get_mut("consumers"))
            .and_then(|c| c.as_array_mut())
        {
            for c in list.iter_mut().filter_map(|c| c.as_table_mut()) {
                let retries = if c.get("dead_letter_queue").is_some() {
                    options.max_retries
                } else {
                    options.dlq_max_retries
                };
                if let Some(retries) = retries {
                    c.insert("max_retries".into(), i64::from(retries).into());
                }
            }
        }
        if options.consumer_without_analytics {
            consumer.remove("analytics_engine_datasets");
        }
        fs::write(
            dir.path().join("wrangler.consumer.toml"),
            toml::to_string(&consumer).expect("serialize config"),
        )
        .unwrap();
        let mut stack = Stack {
            dir,
            port: free_port(),
            child: None,
        };
        stack.wrangler_ok(&[&["d1", "migrations", "apply", "DB"][..], &LOCAL_DB].concat());
        let (configs, ready_path) = if options.consumer_scheduled {
            (
                ["wrangler.consumer.toml", "wrangler.producer.toml"],
                "/__scheduled",
            )
        } else {
            (
                ["wrangler.producer.toml", "wrangler.consumer.toml"],
                "/health",
            )
        };
        let mut args = vec!["-c", configs[0], "-c", configs[1]];
        if options.second_bot.is_some() {
            args = vec![
                "-c",
                "router.toml",
                "-c",
                "wrangler.producer.toml",
                "-c",
                "second/wrangler.toml",
                "-c",
                "wrangler.consumer.toml",
            ];
        }
        if options.consumer_scheduled {
            args.push("--test-scheduled");
        }
        let child = spawn_wrangler_dev(
            stack.dir.path(),
            &args,
            "state",
            stack.port,
            &stack.log_path(),
        );
        println!(
            "e2e: started wrangler dev (pid {}) on 127.0.0.1:{} in {}",
            child.id(),
            stack.port,
            stack.dir.path().display()
        );
        let (url, log) = (stack.url(ready_path), stack.log_path());
        let child = stack.child.insert(child);
        let started = Instant::now();
        wait_until_serving("wrangler dev", child, &log, || {
            Stack::get_url(&url).ok().filter(|(s, _)| *s == 200)
        });
        println!("e2e: local workerd ready after {:.1?}", started.elapsed());
        stack
    }

    /// Stops `wrangler dev` and starts it again on the same local state (D1, queues) with the
    /// consumer first and `/__scheduled` enabled: a test that fed the queue through the bot's
    /// routes can then run the consumer's cron (in a multi-config `wrangler dev` only the first
    /// Worker has an HTTP port). The log starts again empty.
    pub fn restart_for_cron(&mut self) {
        self.stop();
        self.port = free_port();
        let child = spawn_wrangler_dev(
            self.dir.path(),
            &[
                "-c",
                "wrangler.consumer.toml",
                "-c",
                "wrangler.producer.toml",
                "--test-scheduled",
            ],
            "state",
            self.port,
            &self.log_path(),
        );
        let (url, log) = (self.url("/__scheduled"), self.log_path());
        let child = self.child.insert(child);
        wait_until_serving("wrangler dev", child, &log, || {
            Stack::get_url(&url).ok().filter(|(s, _)| *s == 200)
        });
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("wrangler-dev.log")
    }

    /// The last lines of wrangler's output (for failure messages).
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 60)
    }

    /// The whole wrangler output so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `make errors` options for this stack's local D1 (its consumer config and state, every
    /// event ever stored), then `args`.
    pub fn report_options(&self, args: &[&str]) -> report::Options {
        let mut all: Vec<String> = vec![
            "--config".into(),
            self.dir()
                .join("wrangler.consumer.toml")
                .display()
                .to_string(),
            "--persist-to".into(),
            self.dir().join("state").display().to_string(),
            "--since".into(),
            "3650d".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        report::parse_args(&all).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The stack's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn agent() -> ureq::Agent {
        http_agent(Duration::from_secs(30))
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        Self::get_url(&self.url(path))
    }

    fn get_url(url: &str) -> Result<(u16, String), ureq::Error> {
        let mut response = Self::agent().get(url).call()?;
        let status = response.status().as_u16();
        Ok((
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        ))
    }

    /// POSTs raw bytes to `path` with the given headers: status and body.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let mut request = Self::agent().post(&self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body).expect("POST to local stack");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// POSTs an update to `/telegram` with `secret` (or none): status and body.
    pub fn post_update(&self, body: &str, secret: Option<&str>) -> (u16, String) {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(secret) = secret {
            headers.push(("X-Telegram-Bot-Api-Secret-Token", secret));
        }
        self.post("/telegram", &headers, body.as_bytes())
    }

    fn wrangler_ok(&self, args: &[&str]) -> String {
        self.wrangler_retrying(args, 1)
    }

    /// Runs wrangler, retrying up to `attempts` times: reading local D1 from a second process
    /// while workerd writes to it sometimes fails with a transient "internal error".
    fn wrangler_retrying(&self, args: &[&str], attempts: u32) -> String {
        for _ in 1..attempts {
            if let Ok(out) = self.wrangler_once(args) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.wrangler_once(args)
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    fn wrangler_once(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(wrangler())
            .current_dir(self.dir.path())
            .args(args)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .output()
            .expect("run wrangler");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "wrangler {args:?} failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Runs SQL against the local D1 database (as a user would: `wrangler d1 execute --local`)
    /// and returns the result rows.
    pub fn d1(&self, sql: &str) -> Vec<Value> {
        let args = [
            &["d1", "execute", "DB"][..],
            &LOCAL_DB,
            &["--json", "--command", sql],
        ]
        .concat();
        let out = self.wrangler_retrying(&args, 5);
        let parsed: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("d1 output is not JSON ({e}):\n{out}"));
        parsed[0]["results"].as_array().cloned().unwrap_or_default()
    }

    /// Runs a saved query file (relative to the repository root) against the local D1.
    pub fn d1_file(&self, path: &str) -> Vec<Value> {
        let text = fs::read_to_string(repo_root().join(path)).expect("read query file");
        let sql: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        self.d1(&sql.join("\n"))
    }

    /// Waits (bounded, 90 s) until the count `sql` returns reaches `n`; returns the count.
    pub fn wait_count(&self, what: &str, sql: &str, n: i64) -> i64 {
        self.wait_count_within(what, sql, n, Duration::from_secs(90))
    }

    /// Waits at most `timeout` until the count `sql` returns reaches `n`; returns the count.
    /// On a timeout the panic names the last count seen.
    pub fn wait_count_within(&self, what: &str, sql: &str, n: i64, timeout: Duration) -> i64 {
        let mut count = 0;
        poll_until(timeout, || {
            count = self.d1_count(sql);
            (count >= n).then_some(count)
        })
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}: {count} of {n}"))
    }

    /// The single number a `SELECT count(*) AS n …` returns.
    pub fn d1_count(&self, sql: &str) -> i64 {
        self.d1(sql)
            .first()
            .and_then(|row| row.as_object())
            .and_then(|o| o.values().next().cloned())
            .and_then(|v| v.as_i64())
            .unwrap_or_else(|| panic!("no count from {sql}"))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_process_group(&mut child);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- wrangler dev output (last lines) ----\n{}",
                self.log_tail()
            );
        }
        self.stop();
    }
}
