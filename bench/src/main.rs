//! `make bench`: the project's performance claims, measured in one run, variants side by side.
//!
//! 1. **The seed's experiment, with modelled network latency.** The fake Bot API answers after
//!    30 ms and every queue send waits 40 ms (the seed's analytics cost). Three variants of the
//!    Rust bot: *seed-before* (awaits the analytics, then the answer by fetch, then responds),
//!    *seed-after* (awaits the answer by fetch, analytics in `wait_until`), *ours* (the answer
//!    rides in the response body, analytics coalesced in `wait_until`). For each: response time
//!    and time to acknowledge (when Telegram holds the answer: the response time for an answer
//!    in the body, the fake API's receive time for a fetched one).
//! 2. **Analytics overhead and Rust against JavaScript**, no modelled latency: a. analytics on,
//!    b. `ANALYTICS=off`, b′. a second instance of b (the A/A control: the ratio b′/b is this
//!    machine's noise floor, against which the goals' 1–2 % must be read), e. analytics on
//!    with sends that resolve at once without reaching the local queue broker
//!    (`DEV_QUEUE_SEND_NOOP`), d. a hand-written JavaScript Worker doing the same job. At
//!    concurrency 1 (perceived latency) and at saturation (throughput and CPU).
//! 3. **Cold start**: the first request after the Worker loads, over several restarts, Rust
//!    against JavaScript.
//! 4. Sizes, the analytics path's instruction count (callgrind), MessagePack vs JSON, consumer
//!    throughput, the native micro-benchmarks.
//!
//! `--idle-race [--bursts N]` shows why a benchmark request may get wrangler's "Your worker
//! restarted mid-request" 503 (issue 21 item 14): bursts of 20 concurrent updates to one bot
//! (`ANALYTICS=off`), after pauses of 3 s and of 4.97 s, no request sent again; it prints how
//! many the local dev proxy lost after each pause (`bench::DEV_PROXY_LOST`).
//!
//! `--consumer-only [--consumer-events N]` measures only the consumer's throughput (events a
//! second at the local consumer concurrency, which is 1: `docs/scale.md` uses it) and prints it.
//!
//! Variants run in their own local `wrangler dev`, interleaved in shuffled order for several
//! rounds. `--smoke` runs a few requests of everything, to keep the harness from rotting; it
//! asserts that every request was answered 200 and nothing about speed.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics_core::{encode, samples, NewEvent, Tracker};
use bench::{
    agent, arg, arg_str, describe_failures, flag, percentile, post_one, post_updates,
    post_updates_retrying, replace_block,
};
use e2e_tests::process::{spawn_wrangler_dev, stop_process_group, wait_until_serving};
use e2e_tests::stack::{local_config, TEST_ID_KEY, TEST_SECRET, TEST_TOKEN};
use e2e_tests::{fixture, free_port, repo_root, wait_for, FakeBotApi, Stack, StackOptions};
use serde_json::json;

struct Settings {
    smoke: bool,
    requests: usize,
    concurrency: usize,
    rounds: usize,
    seed_requests: usize,
    cold_starts: usize,
    consumer_events: usize,
    write_doc: bool,
}

fn settings() -> Settings {
    let smoke = flag("--smoke");
    Settings {
        smoke,
        requests: arg("--requests", if smoke { 30 } else { 1_000 }),
        concurrency: arg("--concurrency", if smoke { 4 } else { 20 }),
        rounds: arg("--rounds", if smoke { 1 } else { 6 }),
        seed_requests: arg("--seed-requests", if smoke { 5 } else { 100 }),
        cold_starts: arg("--cold-starts", if smoke { 1 } else { 5 }),
        consumer_events: arg("--consumer-events", if smoke { 500 } else { 20_000 }),
        write_doc: flag("--write-doc"),
    }
}

/// One bot under test in its own `wrangler dev`.
struct Variant {
    key: &'static str,
    label: &'static str,
    port: u16,
    child: Child,
    latencies_ms: Vec<f64>,
    ack_ms: Vec<f64>,
    busy: Duration,
    cpu_ticks: u64,
    /// The same, of its `workerd` processes only (the Worker, wrangler's proxy Worker and the
    /// local queue broker; not wrangler's Node.js process, which logs every request).
    workerd_ticks: u64,
    requests: usize,
    failures: usize,
    /// Attempts wrangler's local dev proxy lost on their way to the Worker, sent again
    /// (`bench::DEV_PROXY_LOST`).
    dev_proxy_retries: u32,
    /// Its `wrangler dev` output, where a failed request's cause shows.
    log: std::path::PathBuf,
}

impl Drop for Variant {
    fn drop(&mut self) {
        stop_process_group(&mut self.child);
    }
}

impl Variant {
    fn reset(&mut self) {
        self.latencies_ms.clear();
        self.ack_ms.clear();
        (self.busy, self.cpu_ticks, self.requests, self.failures) = (Duration::ZERO, 0, 0, 0);
        (self.workerd_ticks, self.dev_proxy_retries) = (0, 0);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/telegram", self.port)
    }
}

fn start_variant(
    dir: &Path,
    key: &'static str,
    label: &'static str,
    config: toml::Table,
) -> Variant {
    let config_path = dir.join(format!("wrangler.{key}.toml"));
    fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let port = free_port();
    let log = dir.join(format!("{key}.log"));
    let child = spawn_wrangler_dev(
        dir,
        // Info: the runtime's reloads ("Reloading local server") show in the log, beside
        // every request's status line, for describe_failures.
        &["-c", config_path.to_str().unwrap(), "--log-level=info"],
        &format!("state-{key}"),
        port,
        &log,
    );
    let mut variant = Variant {
        key,
        label,
        port,
        child,
        latencies_ms: Vec::new(),
        ack_ms: Vec::new(),
        busy: Duration::ZERO,
        cpu_ticks: 0,
        workerd_ticks: 0,
        requests: 0,
        failures: 0,
        dev_proxy_retries: 0,
        log: log.clone(),
    };
    wait_until_serving(&format!("variant {key}"), &mut variant.child, &log, || {
        ureq::get(&format!("http://127.0.0.1:{port}/health"))
            .call()
            .ok()
            .map(|_| ())
    });
    variant
}

/// CPU ticks (user + system) of every process in the variant's process group, and of its
/// `workerd` processes alone.
fn group_cpu_ticks(pgid: u32) -> (u64, u64) {
    let (mut total, mut workerd) = (0, 0);
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        // After "pid (comm) ": state ppid pgrp … utime(11) stime(12)
        if fields.get(2).and_then(|p| p.parse::<u32>().ok()) == Some(pgid) {
            let ticks: u64 = [11, 12]
                .iter()
                .map(|&i| {
                    fields
                        .get(i)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                })
                .sum();
            total += ticks;
            if stat.contains("(workerd)") {
                workerd += ticks;
            }
        }
    }
    (total, workerd)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Sends `requests` updates at `concurrency` to one variant; records latencies and CPU.
fn drive(variant: &mut Variant, bodies: &Arc<Vec<String>>, requests: usize, concurrency: usize) {
    let (cpu_before, workerd_before) = group_cpu_ticks(variant.child.id());
    let (outcomes, wall) = post_updates_retrying(&variant.url(), bodies, requests, concurrency);
    variant.busy += wall;
    let (cpu_after, workerd_after) = group_cpu_ticks(variant.child.id());
    variant.cpu_ticks += cpu_after.saturating_sub(cpu_before);
    variant.workerd_ticks += workerd_after.saturating_sub(workerd_before);
    for outcome in &outcomes {
        variant.latencies_ms.push(outcome.ms);
        variant.requests += 1;
        variant.failures += usize::from(!outcome.ok());
        variant.dev_proxy_retries += outcome.dev_proxy_retries;
    }
    let log = fs::read_to_string(&variant.log).unwrap_or_default();
    let failures = describe_failures(&outcomes, &log);
    if !failures.is_empty() {
        eprintln!(
            "bench: variant {} ({}), {requests} requests at concurrency {concurrency}: {failures}",
            variant.key, variant.label
        );
    }
}

fn shuffle(order: &mut [usize], rng: &mut u64) {
    for i in (1..order.len()).rev() {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        order.swap(i, (*rng % (i as u64 + 1)) as usize);
    }
}

/// Clears the variants' results, then for `rounds` rounds runs `each` on every variant, in an
/// order shuffled again every round.
fn in_shuffled_rounds(
    variants: &mut [Variant],
    rounds: usize,
    rng: &mut u64,
    mut each: impl FnMut(&mut Variant),
) {
    for v in variants.iter_mut() {
        v.reset();
    }
    let mut order: Vec<usize> = (0..variants.len()).collect();
    for _ in 0..rounds {
        shuffle(&mut order, rng);
        for &i in &order {
            each(&mut variants[i]);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Button,
    Message,
}

/// The seed experiment's updates: each one identifiable in the fake API's calls.
fn seed_update(kind: Kind, n: u64) -> String {
    match kind {
        Kind::Button => json!({"update_id": 700_000 + n, "callback_query": {"id": format!("seed-{n}"),
            "from": {"id": 42, "is_bot": false}, "message": {"message_id": 7, "chat": {"id": 42, "type": "private"}},
            "data": "menu:about"}})
        .to_string(),
        Kind::Message => json!({"update_id": 800_000 + n, "message": {"message_id": 1,
            "from": {"id": 42, "is_bot": false}, "chat": {"id": 10_000_000 + n, "type": "private"},
            "date": 1764000000, "text": "/start"}})
        .to_string(),
    }
}

/// When the fake API received the answer to request `n`, if it was fetched.
fn fetched_answer(api: &FakeBotApi, kind: Kind, n: u64) -> Option<Instant> {
    api.calls()
        .into_iter()
        .find(|c| match kind {
            Kind::Button => {
                c.method == "answerCallbackQuery"
                    && c.body["callback_query_id"] == format!("seed-{n}")
            }
            Kind::Message => {
                c.method == "sendMessage" && c.body["chat_id"] == json!(10_000_000 + n)
            }
        })
        .map(|c| c.received)
}

struct Row {
    label: &'static str,
    p50: f64,
    p99: f64,
    ack_p50: f64,
    ack_p99: f64,
    rps: f64,
    cpu_ms: f64,
    /// CPU of the `workerd` processes alone, ms per request.
    workerd_ms: f64,
    requests: usize,
    failures: usize,
    dev_proxy_retries: u32,
}

fn rows(variants: &mut [Variant], ticks: f64) -> Vec<Row> {
    variants
        .iter_mut()
        .map(|v| {
            v.latencies_ms.sort_by(f64::total_cmp);
            v.ack_ms.sort_by(f64::total_cmp);
            Row {
                label: v.label,
                p50: percentile(&v.latencies_ms, 0.50),
                p99: percentile(&v.latencies_ms, 0.99),
                ack_p50: percentile(&v.ack_ms, 0.50),
                ack_p99: percentile(&v.ack_ms, 0.99),
                rps: v.requests as f64 / v.busy.as_secs_f64().max(1e-9),
                cpu_ms: v.cpu_ticks as f64 / ticks * 1000.0 / v.requests.max(1) as f64,
                workerd_ms: v.workerd_ticks as f64 / ticks * 1000.0 / v.requests.max(1) as f64,
                requests: v.requests,
                failures: v.failures,
                dev_proxy_retries: v.dev_proxy_retries,
            }
        })
        .collect()
}

fn producer_config(name: &str, vars: &[(&str, &str)]) -> toml::Table {
    let mut config = local_config("wrangler.producer.toml");
    config.insert("name".into(), name.into());
    if let Some(table) = config.get_mut("vars").and_then(|v| v.as_table_mut()) {
        for (k, v) in vars {
            table.insert((*k).into(), (*v).into());
        }
    }
    config
}

fn js_config(vars: &[(&str, &str)]) -> toml::Table {
    let mut js = producer_config("bench-js-bot", vars);
    js.insert(
        "main".into(),
        repo_root()
            .join("bench/js-bot/worker.js")
            .display()
            .to_string()
            .into(),
    );
    js
}

/// Part 1: the seed's before/after with modelled network latency.
fn seed_experiment(s: &Settings, dir: &Path) -> (String, usize) {
    let api = FakeBotApi::start_with_delay(Duration::from_millis(30));
    let base = api.base_url();
    let common = [
        ("TELEGRAM_API_BASE", base.as_str()),
        ("TELEGRAM_BOT_TOKEN", TEST_TOKEN),
        ("DEV_FAULT_QUEUE_SEND_DELAY_MS", "40"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut vars: Vec<(&str, &str)> = common.to_vec();
        vars.extend_from_slice(extra);
        vars
    };
    println!("bench: seed experiment (Bot API 30 ms, queue send 40 ms)");
    let mut variants = vec![
        start_variant(
            dir,
            "seed-before",
            "seed-before: awaits the analytics, then the answer by fetch, then responds",
            producer_config(
                "bench-seed-before",
                &with(&[("ANALYTICS", "await"), ("TELEGRAM_REPLY", "fetch")]),
            ),
        ),
        start_variant(
            dir,
            "seed-after",
            "seed-after: awaits the answer by fetch; analytics in wait_until",
            producer_config("bench-seed-after", &with(&[("TELEGRAM_REPLY", "fetch")])),
        ),
        start_variant(
            dir,
            "ours",
            "ours: answer in the response body; analytics coalesced in wait_until",
            producer_config("bench-ours", &with(&[])),
        ),
    ];
    let agent = agent();
    let mut n = 0u64;
    let mut failures = 0;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut table = String::from(
        "| variant | update | response p50 ms | response p99 ms | time to acknowledge p50 ms | p99 ms |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    let mut by_kind = Vec::new();
    for kind in [Kind::Button, Kind::Message] {
        in_shuffled_rounds(&mut variants, s.rounds, &mut rng, |v| {
            let url = v.url();
            for _ in 0..s.seed_requests {
                n += 1;
                let (outcome, sent) = post_one(&agent, &url, &seed_update(kind, n), n as usize);
                if !outcome.ok() {
                    failures += 1;
                    let log = fs::read_to_string(&v.log).unwrap_or_default();
                    eprintln!(
                        "bench: seed variant {}: {}",
                        v.key,
                        describe_failures(std::slice::from_ref(&outcome), &log)
                    );
                }
                let ms = outcome.ms;
                v.latencies_ms.push(ms);
                v.requests += 1;
                // Answer in the body: Telegram holds it with the response. Fetched: when the
                // fake API received it.
                let ack = if v.key == "ours" {
                    Some(ms)
                } else {
                    wait_for("the fetched answer", Duration::from_secs(10), || {
                        fetched_answer(&api, kind, n)
                    })
                    .checked_duration_since(sent)
                    .map(|d| d.as_secs_f64() * 1000.0)
                };
                v.ack_ms.extend(ack);
            }
        });
        let rows = rows(&mut variants, 1.0);
        let name = match kind {
            Kind::Button => "button press (answerCallbackQuery)",
            Kind::Message => "/start (sendMessage)",
        };
        for r in &rows {
            table += &format!(
                "| {} | {name} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                r.label, r.p50, r.p99, r.ack_p50, r.ack_p99
            );
        }
        by_kind.push((name, rows));
    }
    table +=
        "\n| ratio (p50) | update | response | time to acknowledge |\n| --- | --- | --- | --- |\n";
    for (name, rows) in &by_kind {
        let [before, after, ours] = [&rows[0], &rows[1], &rows[2]];
        table += &format!(
            "| seed-before / ours | {name} | {:.1} | {:.1} |\n| seed-after / ours | {name} | {:.1} | {:.1} |\n",
            before.p50 / ours.p50,
            before.ack_p50 / ours.ack_p50,
            after.p50 / ours.p50,
            after.ack_p50 / ours.ack_p50
        );
    }
    drop(variants);
    (table, failures)
}

/// Part 2: analytics overhead and Rust against JavaScript, at concurrency 1 and at saturation.
fn overhead(s: &Settings, dir: &Path) -> (String, String, usize) {
    let key = [("ANALYTICS_ID_KEY", TEST_ID_KEY)];
    println!(
        "bench: overhead ({} rounds × {} requests, concurrency 1 and {})",
        s.rounds, s.requests, s.concurrency
    );
    let mut variants = vec![
        start_variant(
            dir,
            "a",
            "a. Rust bot, analytics on",
            producer_config("bench-a", &key),
        ),
        start_variant(
            dir,
            "b",
            "b. Rust bot, ANALYTICS=off",
            producer_config("bench-b", &[("ANALYTICS", "off")]),
        ),
        start_variant(
            dir,
            "b2",
            "b′. the same as b, a second instance (the A/A control)",
            producer_config("bench-b2", &[("ANALYTICS", "off")]),
        ),
        start_variant(
            dir,
            "e",
            "e. Rust bot, analytics on, sends stop short of the local broker",
            producer_config(
                "bench-e",
                &[
                    ("ANALYTICS_ID_KEY", TEST_ID_KEY),
                    ("DEV_QUEUE_SEND_NOOP", "1"),
                ],
            ),
        ),
        start_variant(
            dir,
            "d",
            "d. JavaScript Worker, analytics on",
            js_config(&key),
        ),
    ];
    let bodies = Arc::new(vec![
        fixture("updates/message_start.json"),
        fixture("updates/kinds/message.json"),
        fixture("updates/kinds/business_message.json"),
        fixture("updates/kinds/edited_message.json"),
    ]);
    for v in variants.iter_mut() {
        drive(v, &bodies, 50.min(s.requests), 2); // warm-up, not measured
    }
    let ticks = clock_ticks_per_second();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut tables = Vec::new();
    let mut failures = 0;
    for (concurrency, requests) in [(1, s.requests / 2), (s.concurrency, s.requests)] {
        in_shuffled_rounds(&mut variants, s.rounds, &mut rng, |v| {
            drive(v, &bodies, requests.max(1), concurrency)
        });
        let rows = rows(&mut variants, ticks);
        failures += rows.iter().map(|r| r.failures).sum::<usize>();
        let mut table = format!(
            "Concurrency {concurrency} ({} rounds × {} requests per variant):\n\n| variant | requests | non-200 | sent again (lost by the dev proxy) | p50 ms | p99 ms | req/s | CPU ms/request: workerd | whole wrangler dev group |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
            s.rounds,
            requests.max(1)
        );
        for r in &rows {
            table += &format!(
                "| {} | {} | {} | {} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} |\n",
                r.label,
                r.requests,
                r.failures,
                r.dev_proxy_retries,
                r.p50,
                r.p99,
                r.rps,
                r.workerd_ms,
                r.cpu_ms
            );
        }
        let [a, b, b2, e, d] = [&rows[0], &rows[1], &rows[2], &rows[3], &rows[4]];
        table += &format!(
            "\n| ratio | p50 | p99 |\n| --- | --- | --- |\n\
             | a/b (analytics on / off) | {:.3} | {:.3} |\n\
             | b′/b (the same bot twice: this machine's noise floor) | {:.3} | {:.3} |\n\
             | e/b (analytics without the local broker / off) | {:.3} | {:.3} |\n\
             | a/d (Rust / JavaScript) | {:.3} | {:.3} |\n\
             | throughput a/b | {:.3} | |\n\
             | CPU per update (workerd): a − b (analytics, broker included) | {:.3} ms | |\n\
             | CPU per update (workerd): e − b (the bot's own analytics) | {:.3} ms | |\n\
             | CPU per update (workerd): a − e (the local queue broker) | {:.3} ms | |\n\
             | CPU per update (workerd): b′ − b (the same bot twice: the noise floor) | {:.3} ms | |\n\
             | CPU per update (whole group): e − b | {:.3} ms | |\n",
            a.p50 / b.p50,
            a.p99 / b.p99,
            b2.p50 / b.p50,
            b2.p99 / b.p99,
            e.p50 / b.p50,
            e.p99 / b.p99,
            a.p50 / d.p50,
            a.p99 / d.p99,
            a.rps / b.rps,
            a.workerd_ms - b.workerd_ms,
            e.workerd_ms - b.workerd_ms,
            a.workerd_ms - e.workerd_ms,
            b2.workerd_ms - b.workerd_ms,
            e.cpu_ms - b.cpu_ms
        );
        tables.push(table);
    }
    drop(variants);
    let saturation = tables.pop().unwrap_or_default();
    let single = tables.pop().unwrap_or_default();
    (single, saturation, failures)
}

/// `--idle-race`: bursts of 20 concurrent updates after a pause of 3 s, and of 4.97 s (just
/// under the local runtime's 5 s idle close of a kept-alive connection), to one bot; how many
/// the local dev proxy lost after each pause. Nothing is sent again.
fn idle_race(dir: &Path, bursts: usize) -> String {
    let variant = start_variant(
        dir,
        "idle",
        "the Rust bot, ANALYTICS=off",
        producer_config("bench-idle", &[("ANALYTICS", "off")]),
    );
    let bodies = Arc::new(vec![fixture("updates/message_start.json")]);
    let mut table = format!(
        "{bursts} bursts of 20 concurrent updates per pause, to {}:\n\n| pause before each burst | requests | answered 200 | lost by the dev proxy (503) | other |\n| --- | --- | --- | --- | --- |\n",
        variant.label
    );
    for pause in [3.0, 4.97] {
        let mut outcomes = Vec::new();
        for _ in 0..bursts {
            std::thread::sleep(Duration::from_secs_f64(pause));
            outcomes.extend(post_updates(&variant.url(), &bodies, 20, 20).0);
        }
        let ok = outcomes.iter().filter(|o| o.ok()).count();
        let lost = outcomes
            .iter()
            .filter(|o| o.status == 503 && o.dev_proxy_lost())
            .count();
        table += &format!(
            "| {pause} s | {} | {ok} | {lost} | {} |\n",
            outcomes.len(),
            outcomes.len() - ok - lost
        );
    }
    table
}

/// Part 3: the first request after the Worker loads, Rust against JavaScript, over restarts.
fn cold_starts(s: &Settings, dir: &Path) -> String {
    cold_start_table(
        s,
        dir,
        vec![
            (
                "Rust bot".to_string(),
                producer_config("bench-cold-rust", &[]),
            ),
            ("JavaScript Worker".to_string(), js_config(&[])),
        ],
    )
}

/// `--cold-variants label=DIR,…`: cold starts of other builds of the bot (each DIR holds a
/// worker-build output: `index.js`, `index_bg.wasm`), for `bench/opt-variants.sh`.
fn cold_variants(s: &Settings, dir: &Path, spec: &str) -> String {
    let variants = spec
        .split(',')
        .filter_map(|item| item.split_once('='))
        .map(|(label, build)| {
            let mut config = producer_config("bench-cold-variant", &[]);
            config.insert(
                "main".into(),
                Path::new(build)
                    .join("index.js")
                    .display()
                    .to_string()
                    .into(),
            );
            (label.to_string(), config)
        })
        .collect();
    cold_start_table(s, dir, variants)
}

fn cold_start_table(s: &Settings, dir: &Path, variants: Vec<(String, toml::Table)>) -> String {
    println!("bench: cold starts ({} restarts each)", s.cold_starts);
    let body = fixture("updates/message_start.json");
    let agent = agent();
    let mut table = String::from(
        "| Worker | start → first answer (median) | first request (median) | second request (median) |\n| --- | --- | --- | --- |\n",
    );
    for (n, (label, config)) in variants.into_iter().enumerate() {
        let key = format!("cold-{n}");
        let (mut ready, mut first, mut second) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..s.cold_starts {
            let config_path = dir.join(format!("wrangler.{key}.toml"));
            fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
            let port = free_port();
            let started = Instant::now();
            let mut child = spawn_wrangler_dev(
                dir,
                &["-c", config_path.to_str().unwrap(), "--log-level=warn"],
                &format!("state-{key}-{i}"),
                port,
                &dir.join(format!("{key}-{i}.log")),
            );
            // The first request is the webhook itself: nothing warms the Worker before it.
            let url = format!("http://127.0.0.1:{port}/telegram");
            let (outcome, _) =
                wait_for("the cold Worker to answer", Duration::from_secs(90), || {
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                        std::thread::sleep(Duration::from_millis(20));
                        return None;
                    }
                    Some(post_one(&agent, &url, &body, 0))
                });
            ready.push(started.elapsed().as_secs_f64() * 1000.0);
            first.push(outcome.ms);
            let (warm, _) = post_one(&agent, &url, &body, 1);
            second.push(warm.ms);
            assert!(
                outcome.ok() && warm.ok(),
                "cold start of {label}: {}",
                describe_failures(&[outcome, warm], "")
            );
            stop_process_group(&mut child);
        }
        for v in [&mut ready, &mut first, &mut second] {
            v.sort_by(f64::total_cmp);
        }
        table += &format!(
            "| {label} | {:.0} ms | {:.1} ms | {:.1} ms |\n",
            percentile(&ready, 0.5),
            percentile(&first, 0.5),
            percentile(&second, 0.5)
        );
    }
    table
}

fn gzip_len(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap().len()
}

/// Envelope of `n` events with fresh ids.
fn envelope_of(n: usize, seed: u32) -> Vec<u8> {
    let mut id_seed = [0u8; 16];
    id_seed[..4].copy_from_slice(&seed.to_le_bytes());
    let tracker = Tracker::new(samples::source(), || 1_764_000_000_000.0, id_seed);
    for i in 0..n {
        tracker.record(NewEvent {
            name: format!("bench_{}", i % 10),
            user_id: Some(1_000 + (i % 500) as i64),
            chat_id: Some(1_000 + (i % 500) as i64),
            properties: vec![("command".into(), "start".into())],
            ..NewEvent::default()
        });
    }
    let flush = tracker.flush();
    assert_eq!(flush.len(), 1, "one envelope");
    flush[0].bytes.clone()
}

/// Pushes `events` through queue → consumer → D1 + local AE table; returns events per second.
fn consumer_throughput(events: usize) -> (f64, usize) {
    let stack = Stack::start(StackOptions {
        extra_vars: vec![("DEV_ENQUEUE".into(), "1".into())],
        ..StackOptions::default()
    });
    // As full as the bot makes them.
    let per_envelope = analytics_core::delivery::MAX_EVENTS_PER_MESSAGE;
    let envelopes: Vec<Vec<u8>> = (0..events.div_ceil(per_envelope))
        .map(|i| envelope_of(per_envelope, i as u32))
        .collect();
    let total = envelopes.len() * per_envelope;
    let started = Instant::now();
    // Enqueue from 8 threads, so the harness's client is not what limits the measurement.
    std::thread::scope(|scope| {
        for chunk in envelopes.chunks(envelopes.len().div_ceil(8)) {
            let stack = &stack;
            scope.spawn(move || {
                for bytes in chunk {
                    let (status, body) = stack.post("/__dev/enqueue", &[], bytes);
                    assert_eq!(status, 200, "{body}");
                }
            });
        }
    });
    wait_for(
        "the consumer to store every event",
        Duration::from_secs(300),
        || {
            let n = stack.d1_count("SELECT count(*) FROM analytics_points_local");
            (n as usize >= total).then_some(())
        },
    );
    let seconds = started.elapsed().as_secs_f64();
    let stored =
        stack.d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local") as usize;
    assert_eq!(stored, total, "every event stored exactly once");
    (total as f64 / seconds, total)
}

/// Criterion's mean estimate (ns per iteration) of one native benchmark, if it has run.
fn criterion_ns(group: &str, name: &str) -> Option<f64> {
    let path = repo_root().join(format!(
        "target/criterion/{group}/{name}/new/estimates.json"
    ));
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// The callgrind line of `bench/callgrind.sh`, when valgrind is there.
fn instruction_count() -> Option<String> {
    let out = Command::new(repo_root().join("bench/callgrind.sh"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("instructions per update"))
        .map(str::to_string)
}

fn main() {
    let s = settings();
    let root = repo_root();
    let dir = tempfile::Builder::new()
        .prefix("tg-analytics-bench-")
        .tempdir()
        .unwrap();
    fs::write(
        dir.path().join(".dev.vars"),
        format!("TELEGRAM_WEBHOOK_SECRET={TEST_SECRET}\n"),
    )
    .unwrap();
    if flag("--consumer-only") {
        let (events_per_second, pushed) = consumer_throughput(s.consumer_events);
        println!(
            "consumer: {pushed} events through queue → D1 + local AE table at consumer concurrency 1: {events_per_second:.0} events/s"
        );
        return;
    }
    if flag("--idle-race") {
        println!("{}", idle_race(dir.path(), arg("--bursts", 25)));
        return;
    }
    if let Some(spec) = arg_str("--cold-variants") {
        println!("{}", cold_variants(&s, dir.path(), &spec));
        return;
    }

    let (seed, seed_failures) = seed_experiment(&s, dir.path());
    let (single, saturation, failures) = overhead(&s, dir.path());
    let cold = cold_starts(&s, dir.path());

    let envelope = samples::typical_envelope();
    let mp = encode(&envelope).unwrap().len();
    let json = serde_json::to_vec(&envelope).unwrap().len();
    let n = envelope.events.len();
    let mut sizes = String::from("| size | value | goal |\n| --- | --- | --- |\n");
    // Every Worker's wasm has the same goal (the dashboard's too: it is deployed the same way).
    for (name, path) in [
        ("producer", "producer-worker/build/index_bg.wasm"),
        ("consumer", "consumer-worker/build/index_bg.wasm"),
        ("dashboard", "dashboard-worker/build/index_bg.wasm"),
        ("minimal bot", "examples/minimal-bot/build/index_bg.wasm"),
    ] {
        let wasm = fs::read(root.join(path)).unwrap_or_default();
        sizes += &format!(
            "| {name} wasm | {} B raw, {} B gzip | ≤ 250 KB gzip |\n",
            wasm.len(),
            gzip_len(&wasm)
        );
    }
    sizes += &format!(
        "| envelope of {n} events | {mp} B MessagePack, {json} B JSON: {:.1} % | ≤ 40 % |\n",
        100.0 * mp as f64 / json as f64
    );
    if !s.smoke {
        if let Some(line) = instruction_count() {
            sizes += &format!("| {line} | | halve the 51,050 of the start of this work |\n");
        }
    }

    println!(
        "bench: consumer throughput with {} events",
        s.consumer_events
    );
    let (events_per_second, pushed) = consumer_throughput(s.consumer_events);
    let mut more = format!(
        "\n| consumer | value | goal |\n| --- | --- | --- |\n| {pushed} events through queue → D1 + local AE table | {events_per_second:.0} events/s | ≥ 5,000 events/s |\n"
    );
    let natives = [
        (
            "wire",
            "encode_envelope_5_events",
            5.0,
            "encode (MessagePack)",
        ),
        (
            "wire",
            "decode_envelope_5_events",
            5.0,
            "decode (MessagePack)",
        ),
        (
            "wire",
            "json_encode_envelope_5_events",
            5.0,
            "encode (JSON, for comparison)",
        ),
        (
            "consumer",
            "data_points_5_events",
            5.0,
            "event → data point",
        ),
        ("consumer", "fingerprint", 1.0, "error fingerprint"),
    ];
    if natives
        .iter()
        .any(|(g, b, _, _)| criterion_ns(g, b).is_some())
    {
        more += "\n| native (criterion, one core) | events/s |\n| --- | --- |\n";
        for (group, name, elements, label) in natives {
            if let Some(ns) = criterion_ns(group, name) {
                more += &format!("| {label} | {:.0} |\n", elements / (ns / 1e9));
            }
        }
    }
    let results = format!(
        "### Perceived latency: concurrency 1\n\n{single}\n### Cost: saturation\n\n{saturation}\n### Cold start\n\n{cold}\n### Sizes\n\n{sizes}{more}"
    );
    println!("\n{seed}\n{results}");
    assert_eq!(
        seed_failures + failures,
        0,
        "every bench request must be answered 200"
    );
    if s.write_doc && !s.smoke {
        let path = root.join("docs/benchmarks.md");
        let doc = fs::read_to_string(&path).expect("docs/benchmarks.md");
        let stamp = format!(
            "Run with `make bench` ({} rounds; seed experiment {} requests per variant and update; overhead {} requests per round at concurrency 1 and {} at concurrency {}).\n\n",
            s.rounds,
            s.seed_requests,
            s.requests / 2,
            s.requests,
            s.concurrency
        );
        let block = |doc: &str, name: &str, body: String| {
            replace_block(doc, name, &body).unwrap_or_else(|e| panic!("docs/benchmarks.md {e}"))
        };
        let doc = block(&doc, "seed", format!("{stamp}{seed}"));
        let doc = block(&doc, "results", format!("{stamp}{results}"));
        fs::write(&path, doc).unwrap();
        println!("bench: results written to docs/benchmarks.md");
    }
}
