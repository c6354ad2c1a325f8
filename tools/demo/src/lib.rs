//! # demo — `make demo`
//!
//! Fills a local stack (the state `make dev` uses) with `days` days of synthetic traffic from a
//! believable population ([`population`]), sent through the real pipeline: each update is
//! POSTed to the bot's webhook in local workerd, whose events go through the local queue to the
//! consumer, into the local Analytics Engine mirror and D1. Each request carries the time its
//! update belongs to (`X-Dev-Simulated-Time`), which the bot and the consumer honour only
//! because `.dev.vars` has `LOCAL_DEV=1` (see `docs/demo.md`).
//!
//! [`run`] applies the migrations, starts the bot and the consumer in one `wrangler dev` (its
//! own process group, stopped on every way out: success, error, Ctrl-C), sends the traffic at
//! a concurrency, prints a progress line, waits until the consumer stored every event the bot
//! sent, and dates the local mirror's rows of the run at their events' times.

pub mod population;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::process::{log_tail, spawn_wrangler_dev, stop_process_group, wrangler};
use population::{Config, Population, DAY_MS};

/// The request header the bot reads the simulated time from (with `LOCAL_DEV=1` only); the
/// same name as `bot-analytics`'s `devclock::SIMULATED_TIME_HEADER`.
pub const SIMULATED_TIME_HEADER: &str = "X-Dev-Simulated-Time";

/// Set by SIGINT/SIGTERM: every loop of [`run`] stops, and the stack is stopped.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes Ctrl-C (and SIGTERM) stop the run cleanly instead of leaving `wrangler dev` running
/// (it runs in a process group of its own, so the terminal's signal does not reach it).
pub fn handle_interrupts() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The dev vars lack a setting the run needs.
    #[error("{0}")]
    Setup(String),
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A wrangler command failed.
    #[error("wrangler {args} failed:\n{output}")]
    Wrangler {
        /// Its arguments.
        args: String,
        /// Its output.
        output: String,
    },
    /// `wrangler dev` did not come up, or exited.
    #[error("wrangler dev did not serve: {0}")]
    NotServing(String),
    /// Requests were refused.
    #[error("{failed} of {sent} updates were not answered 2xx (first: {first})")]
    Refused {
        /// How many failed.
        failed: usize,
        /// How many were sent.
        sent: usize,
        /// The first failure.
        first: String,
    },
    /// The consumer did not store everything in time.
    #[error("timed out: {stored} of {sent} events stored after {waited:?}")]
    Drain {
        /// Events stored.
        stored: i64,
        /// Events the bot sent.
        sent: i64,
        /// How long it waited.
        waited: Duration,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |error| DemoError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The directory with `bot.toml`, `consumer.toml` and `.dev.vars` (what `tools/dev-stack`
    /// writes for `make dev`).
    pub configs: PathBuf,
    /// The local state (`--persist-to`), shared with `make dev`.
    pub state: PathBuf,
    /// Where the run writes its own copy of the configs and its log.
    pub work: PathBuf,
    /// The port of its `wrangler dev`.
    pub port: u16,
    /// The population.
    pub population: Config,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Print the progress line.
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Users in the population.
    pub users: usize,
    /// Updates sent.
    pub updates: usize,
    /// Events the consumer stored (processed envelopes of the run).
    pub events_stored: i64,
    /// Days with updates.
    pub days: usize,
    /// Users who paid at least once.
    pub payers: usize,
    /// Users who blocked the bot at least once.
    pub blockers: usize,
    /// The bot's name (`BOT_NAME`), as its events carry it.
    pub bot: String,
    /// How long sending took.
    pub send_seconds: f64,
    /// How long the whole run took.
    pub total_seconds: f64,
}

/// The wrangler dev of a run: stopped when dropped (also on an error or a panic).
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            stop_process_group(&mut child);
        }
    }
}

fn wrangler_cmd(work: &Path, args: &[&str]) -> Result<String, DemoError> {
    let output = Command::new(wrangler())
        .current_dir(work)
        .args(args)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DemoError::Setup(format!("cannot run wrangler ({e}): run npm ci")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(DemoError::Wrangler {
            args: args.join(" "),
            output: format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)),
        })
    }
}

/// The local D1 file of the state (the one with `processed_envelopes`), read-only.
fn open_d1(state: &Path) -> Option<rusqlite::Connection> {
    let dir = state.join("v3/d1/miniflare-D1DatabaseObject");
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .collect();
    files.sort();
    files.into_iter().find_map(|path| {
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        db.busy_timeout(Duration::from_secs(2)).ok()?;
        stored_events(&db).map(|_| db)
    })
}

/// Every event the consumer stored: the sum of `processed_envelopes.event_count`.
fn stored_events(db: &rusqlite::Connection) -> Option<i64> {
    db.query_row(
        "SELECT COALESCE(SUM(event_count), 0) FROM processed_envelopes",
        [],
        |row| row.get(0),
    )
    .ok()
}

/// Sum of the `N` of the bot's `analytics: sent N` log lines (`DEV_LOG_SENDS=1`).
fn sent_events(log: &Path) -> i64 {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split("analytics: sent ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<i64>().ok())
        .sum()
}

/// What waits in the bot's outbox (`/__dev/outbox`): events waiting plus sends in flight.
fn outbox_pending(agent: &ureq::Agent, base: &str) -> Option<u64> {
    let mut response = agent.get(format!("{base}/__dev/outbox")).call().ok()?;
    if response.status().as_u16() != 200 {
        return None;
    }
    let json: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
    Some(json["waiting"].as_u64()? + json["in_flight"].as_u64()?)
}

fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Reads `NAME=value` of a `.dev.vars` file.
fn dev_var(vars: &str, name: &str) -> Option<String> {
    dev_stack::parse_dev_vars(vars)
        .into_iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// Runs the demo: see the crate documentation.
pub fn run(options: &Options) -> Result<Summary, DemoError> {
    let started = Instant::now();
    let vars_path = options.configs.join(".dev.vars");
    let vars = fs::read_to_string(&vars_path).map_err(io(&vars_path))?;
    if dev_var(&vars, "LOCAL_DEV").as_deref() != Some("1") {
        return Err(DemoError::Setup(format!(
            "{} has no LOCAL_DEV=1: without it the bot ignores the simulated time and every event would be dated now (make demo adds it to .dev.vars)",
            vars_path.display()
        )));
    }
    let secret = dev_var(&vars, "TELEGRAM_WEBHOOK_SECRET")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            DemoError::Setup(format!(
                "{} has no TELEGRAM_WEBHOOK_SECRET",
                vars_path.display()
            ))
        })?;
    let bot_config_path = options.configs.join("bot.toml");
    let bot_config = fs::read_to_string(&bot_config_path).map_err(io(&bot_config_path))?;
    // The library's default when the config names no bot.
    let bot: String = bot_config
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| Some(t.get("vars")?.get("BOT_NAME")?.as_str()?.to_string()))
        .unwrap_or_else(|| "telegram-bot".into());

    // The run's own copy: the same configs, plus the dev-only switches it reads progress with.
    fs::create_dir_all(&options.work).map_err(io(&options.work))?;
    for name in ["bot.toml", "consumer.toml"] {
        let from = options.configs.join(name);
        fs::copy(&from, options.work.join(name)).map_err(io(&from))?;
    }
    let mut run_vars = vars.clone();
    run_vars.push_str("\n# make demo: the bot logs its sends and shows its outbox\nDEV_LOG_SENDS=1\nDEV_ENQUEUE=1\n");
    let run_vars_path = options.work.join(".dev.vars");
    fs::write(&run_vars_path, run_vars).map_err(io(&run_vars_path))?;
    let state = options.state.display().to_string();
    fs::create_dir_all(&options.state).map_err(io(&options.state))?;
    wrangler_cmd(
        &options.work,
        &[
            "d1",
            "migrations",
            "apply",
            "DB",
            "--local",
            "--persist-to",
            &state,
            "-c",
            "consumer.toml",
        ],
    )?;
    let baseline = open_d1(&options.state)
        .and_then(|db| stored_events(&db))
        .unwrap_or(0);

    let population = Population::generate(&options.population);
    let total = population.updates.len();
    // Unique per run, so a second run is not taken for Telegram redelivering the first one's
    // updates (and deduplicated away).
    let first_update_id = (e2e_tests::now_ms() / 1000) * 1000;
    let bodies: Vec<(String, i64)> = (0..total)
        .map(|i| {
            (
                population.body(i, first_update_id + i as i64),
                population.updates[i].at_ms,
            )
        })
        .collect();

    let log = options.work.join("wrangler-dev.log");
    let child = spawn_wrangler_dev(
        &options.work,
        &["-c", "bot.toml", "-c", "consumer.toml"],
        &state,
        options.port,
        &log,
    );
    let mut running = Running(Some(child));
    let base = format!("http://127.0.0.1:{}", options.port);
    let agent = e2e_tests::http_agent(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if interrupted() {
            return Err(DemoError::Interrupted);
        }
        if let Some(child) = running.0.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(DemoError::NotServing(format!(
                    "exited ({status}):\n{}",
                    log_tail(&log, 40)
                )));
            }
        }
        let health = agent.get(format!("{base}/health")).call();
        if health.is_ok_and(|r| r.status().as_u16() == 200) {
            break;
        }
        if Instant::now() > deadline {
            return Err(DemoError::NotServing(format!(
                "no answer on {base} in 120 s:\n{}",
                log_tail(&log, 40)
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    // Send, in time order, `concurrency` requests at a time.
    let send_started = Instant::now();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let threads: Vec<_> = (0..options.concurrency.max(1))
        .map(|_| {
            let (bodies, next, done, failures) =
                (bodies.clone(), next.clone(), done.clone(), failures.clone());
            let (agent, url, secret) = (agent.clone(), format!("{base}/telegram"), secret.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= bodies.len() || interrupted() {
                    return;
                }
                let (body, at_ms) = &bodies[i];
                let answer = agent
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("X-Telegram-Bot-Api-Secret-Token", &secret)
                    .header(SIMULATED_TIME_HEADER, at_ms.to_string())
                    .send(body.as_bytes());
                let failure = match answer {
                    Ok(r) if r.status().is_success() => None,
                    Ok(mut r) => Some(format!(
                        "HTTP {}: {}",
                        r.status(),
                        r.body_mut().read_to_string().unwrap_or_default()
                    )),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(failure) = failure {
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(failure);
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let d1 = std::cell::RefCell::new(None::<rusqlite::Connection>);
    let stored_now = || -> Option<i64> {
        let mut d1 = d1.borrow_mut();
        if d1.is_none() {
            *d1 = open_d1(&options.state);
        }
        d1.as_ref().and_then(stored_events).map(|n| n - baseline)
    };
    let progress = |sent: usize, phase: &str| {
        if !options.progress {
            return;
        }
        let elapsed = send_started.elapsed().as_secs_f64().max(0.001);
        let rate = sent as f64 / elapsed;
        let eta = if rate > 0.0 {
            (total - sent) as f64 / rate
        } else {
            0.0
        };
        let stored = stored_now().map_or("?".to_string(), |n| n.to_string());
        print!(
            "\rdemo: {sent}/{total} updates sent, {stored} events stored, {rate:.0} updates/s, {phase} {}   ",
            format_duration(if phase == "ETA" { eta } else { elapsed })
        );
        let _ = std::io::stdout().flush();
    };
    while done.load(Ordering::SeqCst) < total && !interrupted() {
        progress(done.load(Ordering::SeqCst), "ETA");
        std::thread::sleep(Duration::from_millis(1_000));
    }
    for thread in threads {
        let _ = thread.join();
    }
    if interrupted() {
        println!();
        return Err(DemoError::Interrupted);
    }
    let send_seconds = send_started.elapsed().as_secs_f64();
    progress(total, "took");
    if options.progress {
        println!();
    }
    let failed = failures.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !failed.is_empty() {
        return Err(DemoError::Refused {
            failed: failed.len(),
            sent: total,
            first: failed[0].clone(),
        });
    }

    // Drain: the outbox empty, and every event the bot sent stored by the consumer.
    let drain_started = Instant::now();
    let limit = Duration::from_secs(120 + total as u64 / 50);
    let (stored, sent) = loop {
        if interrupted() {
            return Err(DemoError::Interrupted);
        }
        let pending = outbox_pending(&agent, &base);
        let sent = sent_events(&log);
        let stored = stored_now().unwrap_or(0);
        if pending == Some(0) && sent > 0 && stored >= sent {
            break (stored, sent);
        }
        if drain_started.elapsed() > limit {
            return Err(DemoError::Drain {
                stored,
                sent,
                waited: drain_started.elapsed(),
            });
        }
        if options.progress {
            print!("\rdemo: waiting for the consumer: {stored} of {sent} events stored   ");
            let _ = std::io::stdout().flush();
        }
        std::thread::sleep(Duration::from_millis(1_000));
    };
    if options.progress {
        println!("\rdemo: the consumer stored all {sent} events the bot sent                ");
    }
    drop(d1);
    drop(running);

    // The local mirror's `timestamp` is Analytics Engine's write time, and the dashboard's
    // charts bucket by it: date the run's backdated rows when their events happened (a second
    // after), as if each had been written then.
    wrangler_cmd(
        &options.work,
        &[
            "d1",
            "execute",
            "DB",
            "--local",
            "--persist-to",
            &state,
            "-c",
            "consumer.toml",
            "--command",
            &mirror_backdate_sql(&bot, started_ms(started)),
        ],
    )?;

    // The consumer's cron writes daily_rollup for the last few days only; the demo's history
    // needs it for every day of the run (the Users page's twelve months read it). wrangler dev
    // is stopped, so the rollup runs on the local D1 file itself.
    let rollup = open_d1(&options.state)
        .and_then(|db| db.path().map(PathBuf::from))
        .ok_or_else(|| DemoError::Setup("no local D1 file with processed_envelopes".into()))
        .and_then(|file| {
            e2e_tests::owner::rollup_history(
                &file,
                e2e_tests::now_ms(),
                options.population.days.into(),
            )
            .map_err(|e| DemoError::Setup(format!("the rollup over the demo's days: {e}")))
        });
    rollup?;

    Ok(Summary {
        users: population.users.len(),
        updates: total,
        events_stored: stored,
        days: population.days_with_updates(),
        payers: population.users_who(|a| matches!(a, population::Action::Paid { .. })),
        blockers: population.users_who(|a| matches!(a, population::Action::Blocked)),
        bot,
        send_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The wall clock (ms since the epoch) at `instant`.
fn started_ms(instant: Instant) -> i64 {
    e2e_tests::now_ms() - instant.elapsed().as_millis() as i64
}

/// The SQL that dates the local mirror's rows by their event time (moved to the e2e-tests
/// crate, which the pipeline test of the owner pages shares).
pub use e2e_tests::owner::mirror_backdate_sql;

/// The summary as `make demo` prints it.
pub fn describe(summary: &Summary) -> String {
    format!(
        "demo: {} users, {} updates over {} days ({} paid, {} blocked the bot), {} events stored for bot {:?}; sending took {}, the whole run {}",
        summary.users,
        summary.updates,
        summary.days,
        summary.payers,
        summary.blockers,
        summary.events_stored,
        summary.bot,
        format_duration(summary.send_seconds),
        format_duration(summary.total_seconds),
    )
}

/// Days covered: `now_ms − days·DAY` to `now_ms`.
pub fn period_start(config: &Config) -> i64 {
    config.now_ms - i64::from(config.days.max(1)) * DAY_MS
}
