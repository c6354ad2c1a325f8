//! `make soak` and `make soak-chaos`: N webhook updates at concurrency C against the local stack,
//! mixing every update kind, commands, button presses and updates whose handling fails (the fake
//! Bot API refuses every message edit). Then it waits (bounded) until everything is out of the
//! bot's outbox and stored, and accounts for every event:
//!
//! - **emitted**: events the bot handed to its outbox (its dev-only log line
//!   `analytics: handed over N events`, `DEV_LOG_SENDS=1`), not a second code path;
//! - **stored**: distinct event ids in the local Analytics Engine table;
//! - **duplicated**: rows of the table beyond one per event id;
//! - **dropped (counted)**: the drop counts the consumer stored with the envelopes;
//! - **lost with a killed isolate**: what the bot's isolate held when the soak killed it (its
//!   dev-only log line `analytics: dev kill: N waiting events and C drop counts lost`): the
//!   pipeline cannot count these (docs/coalescing.md), the soak can;
//! - **unaccounted**: emitted − stored − dropped − lost with a killed isolate.
//!
//! `--chaos` injects faults *during* the load: about 5 % of queue sends fail, about 5 % of D1
//! calls fail (half of them after their commit, the answer lost), the consumer crashes once
//! between its commit and the points and once between the points and their marks, a handler
//! panics (`/dev_panic`), the bot's isolate is killed inside its coalescing window
//! (`/__dev/kill`), Analytics Engine is removed for `--ae-outage-s` seconds (default 10;
//! `DEV_FAULT_AE_SWITCH`), and the Bot API answers slowly. Updates not answered 2xx are
//! delivered again, as Telegram does. It prints a table of the faults, how often each fired and
//! what it cost. The last line is
//! `soak: E emitted, S stored, X duplicated, D dropped (counted), K lost with a killed isolate, U unaccounted`.
//!
//! Besides the stored rows it counts the points the consumer wrote to Analytics Engine (its log
//! lines): points written more than once that the consumer did not count
//! (`points_written_twice`) are the crash between points and marks, the one window
//! docs/reliability.md says stays uncounted; the soak checks there are no others.
//!
//! `--coalesce-ms W` sets the bot's coalescing window (0 = one message per request; unset = the
//! library's default). Exit code 1 when a check fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{
    agent, arg, arg_str, describe_failures, flag, percentile, post_one, post_updates_counting,
    update_body, with_update_id,
};
use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{fixture, wait_for, FakeBotApi, Stack, StackOptions};
use serde_json::Value;
use telegram_policy::update::KNOWN_UPDATE_KINDS;

/// Sum of the `N` in log lines that contain `marker` followed by `N`, and how many there are.
fn log_sum(log: &str, marker: &str) -> (u64, u64) {
    let mut total = 0;
    let mut lines = 0;
    for line in log.lines() {
        if let Some(rest) = line.split(marker).nth(1) {
            if let Some(n) = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
            {
                total += n;
                lines += 1;
            }
        }
    }
    (total, lines)
}

/// What waits in the bot's outbox (dev-only `/__dev/outbox`): waiting events, unreported
/// drop counts and unfinished sends.
fn outbox(stack: &Stack) -> Option<(u64, u64, u64)> {
    let (status, body) = stack.get("/__dev/outbox").ok()?;
    let json: Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
    Some((
        json["waiting"].as_u64()?,
        json["carried"].as_u64()?,
        json["in_flight"].as_u64()?,
    ))
}

/// The points the consumer wrote to Analytics Engine, from its log: each invocation's report
/// (`… N deferred, P points, …`, the points written ahead of D1 included) and each injected
/// crash (`injected crash after writing P points`). Also the points of the crashes alone.
fn points_written(log: &str) -> (u64, u64) {
    let number_after = |line: &str, marker: &str| {
        line.split(marker)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let mut total = 0;
    let mut crashed = 0;
    for line in log.lines().filter(|l| l.contains("consumer: ")) {
        if let Some(n) = number_after(line, "injected crash after writing ") {
            total += n;
            crashed += n;
        } else if line.contains(" points, ") {
            total += number_after(line, " deferred, ").unwrap_or(0);
        }
    }
    (total, crashed)
}

/// The sum of a field of the consumer's invocation reports (`… N retried, M deferred, …`).
fn report_sum(log: &str, field: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("consumer: ") && l.contains(" written ahead of D1"))
        .flat_map(|l| l.split(", "))
        .filter_map(|part| {
            part.strip_suffix(field)?
                .trim()
                .rsplit(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// A `/dev_panic` command update (the demo bot panics on it with `DEV_TEST_COMMANDS=1`).
fn panic_update(update_id: u64) -> String {
    serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": 1_764_000_000, "text": "/dev_panic",
            "from": {"id": 5_123_456_789_i64, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": 5_123_456_789_i64, "type": "private", "first_name": "Ada"},
            "entities": [{"offset": 0, "length": 10, "type": "bot_command"}],
        }
    })
    .to_string()
}

/// What the chaos thread did.
#[derive(Default)]
struct Injected {
    /// The panicking update's first status and how many deliveries it took to get a 200.
    panic: Option<(u16, usize)>,
    /// Kill attempts until one killed (the others were refused: nothing waiting, a send under
    /// way), and whether one did.
    kill: (usize, bool),
    /// How long Analytics Engine was switched off.
    ae_outage: Option<Duration>,
}

/// Waits until `done` reaches `share` of `total`.
fn wait_for_share(done: &AtomicUsize, total: usize, share: f64) {
    while (done.load(Ordering::Relaxed) as f64) < total as f64 * share {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Switches Analytics Engine off for `outage` (and until a batch met it, at most a minute more)
/// once the load reached a tenth of its requests (the table takes a few seconds to create
/// through wrangler: it lands while the load runs); returns how long the switch table existed
/// (as seen from here).
fn switch_analytics_off(
    stack: &Stack,
    done: &AtomicUsize,
    total: usize,
    outage: Duration,
) -> Option<Duration> {
    if outage.is_zero() {
        return None;
    }
    wait_for_share(done, total, 0.1);
    stack.d1(&format!(
        "CREATE TABLE {} (x)",
        ingest_policy::faults::AE_SWITCH_TABLE
    ));
    let off = Instant::now();
    std::thread::sleep(outage);
    // On a slow machine a short outage can fall between two batches: it lasts until one met it
    // (bounded), so the fault is exercised every run.
    let _ = e2e_tests::poll_until(Duration::from_secs(60), || {
        stack.log().contains("DEV_FAULT_AE_SWITCH: ").then_some(())
    });
    stack.d1(&format!(
        "DROP TABLE {}",
        ingest_policy::faults::AE_SWITCH_TABLE
    ));
    Some(off.elapsed())
}

/// The faults the harness injects in the bot during the load, in turn, as the load reaches a
/// fifth and two fifths of its requests: a handler panic (delivered again until answered 200,
/// as Telegram does), then the bot's isolate killed inside its coalescing window.
fn inject(stack: &Stack, done: &AtomicUsize, total: usize) -> Injected {
    let mut injected = Injected::default();
    let wait_until = |share: f64| wait_for_share(done, total, share);
    let client = agent();
    let url = stack.url("/telegram");
    wait_until(0.2);
    let body = panic_update(3_000_000);
    let (first, _) = post_one(&client, &url, &body, 0);
    let mut deliveries = 1;
    let mut last = first.status;
    while last != 200 && deliveries < 20 {
        std::thread::sleep(Duration::from_millis(500));
        last = post_one(&client, &url, &body, 0).0.status;
        deliveries += 1;
    }
    injected.panic = Some((first.status, deliveries));

    wait_until(0.4);
    let kill_url = stack.url("/__dev/kill");
    let started = Instant::now();
    while !injected.kill.1 && started.elapsed() < Duration::from_secs(30) {
        injected.kill.0 += 1;
        let status = client
            .post(&kill_url)
            .send(&b""[..])
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 409 {
            std::thread::sleep(Duration::from_millis(3));
        } else {
            injected.kill.1 = true;
        }
    }

    injected
}

fn main() {
    let updates = arg("--updates", 10_000);
    let concurrency = arg("--concurrency", 50);
    let chaos = flag("--chaos");
    let window = arg_str("--coalesce-ms");
    let outage = Duration::from_secs(arg("--ae-outage-s", 10) as u64);

    let api = if chaos {
        FakeBotApi::start_with_delay(Duration::from_millis(1_500))
    } else {
        FakeBotApi::start()
    };
    api.respond_error(
        "editMessageText",
        400,
        "Bad Request: message to edit not found",
    );
    let mut extra = vec![
        ("DEV_LOG_SENDS".to_string(), "1".to_string()),
        // Turns on `/__dev/outbox` (with `/__dev/enqueue`), which the drain below polls.
        ("DEV_ENQUEUE".into(), "1".into()),
        // An empty value means unset: the library's default window.
        (
            "ANALYTICS_COALESCE_MS".into(),
            window.clone().unwrap_or_default(),
        ),
    ];
    if chaos {
        extra.extend([
            ("DEV_FAULT_QUEUE_SEND_FAIL_RATE".into(), "0.05".into()),
            ("DEV_FAULT_D1_FAIL_RATE".into(), "0.05".into()),
            (
                "DEV_FAULT_CONSUMER_CRASH".into(),
                "after_commit,after_points".into(),
            ),
            ("DEV_FAULT_AE_SWITCH".into(), "1".into()),
            // `/dev_panic` panics in the handler.
            ("DEV_TEST_COMMANDS".into(), "1".into()),
        ]);
    }
    let stack = Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        extra_vars: extra,
        ..StackOptions::default()
    });

    let mut bodies: Vec<String> = KNOWN_UPDATE_KINDS
        .iter()
        .map(|k| fixture(&format!("updates/kinds/{k}.json")))
        .collect();
    bodies.push(fixture("updates/unknown_kind.json"));
    bodies.push(fixture("updates/message_start.json"));
    bodies.push(fixture("updates/callback_query.json"));
    let bodies = Arc::new(bodies);

    let window_text = window
        .clone()
        .map_or("the default".to_string(), |w| format!("{w} ms"));
    println!(
        "soak: {updates} updates at concurrency {concurrency}, coalescing window {window_text}{}",
        if chaos {
            "; faults: 5 % of queue sends, 5 % of D1 calls, consumer crashes after a commit and after the points, \
             a handler panic, a bot isolate killed, Analytics Engine removed for a while, a slow Bot API"
        } else {
            ""
        }
    );
    let done = Arc::new(AtomicUsize::new(0));
    let (results, load_time, injected) = std::thread::scope(|scope| {
        let chaos_thread = chaos.then(|| scope.spawn(|| inject(&stack, &done, updates)));
        let outage_thread =
            chaos.then(|| scope.spawn(|| switch_analytics_off(&stack, &done, updates, outage)));
        let (results, load_time) = post_updates_counting(
            &stack.url("/telegram"),
            &bodies,
            updates,
            concurrency,
            &done,
        );
        let mut injected = chaos_thread
            .map(|t| t.join().expect("the chaos thread"))
            .unwrap_or_default();
        injected.ae_outage = outage_thread.and_then(|t| t.join().expect("the outage thread"));
        (results, load_time, injected)
    });
    let load_seconds = load_time.as_secs_f64();
    let failed_first: Vec<usize> = results
        .iter()
        .filter(|o| !(200..300).contains(&o.status))
        .filter_map(|o| o.failure.as_ref().map(|f| f.request))
        .collect();
    if !failed_first.is_empty() && !chaos {
        eprintln!("soak: {}", describe_failures(&results, &stack.log()));
    }
    // Telegram delivers an update again until it gets a 2xx: so does the soak (an update whose
    // request died with the Wasm instance of a panic or a kill).
    let client = agent();
    let mut redeliveries = 0;
    let mut non_2xx = 0;
    for request in &failed_first {
        let body = update_body(&bodies, *request);
        let answered = (0..10).any(|_| {
            redeliveries += 1;
            let (outcome, _) = post_one(&client, &stack.url("/telegram"), &body, *request);
            (200..300).contains(&outcome.status) || {
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        });
        non_2xx += usize::from(!answered);
    }
    let mut latencies: Vec<f64> = results.iter().map(|o| o.ms).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| percentile(&latencies, q);

    // Drain: until the outbox is empty (events, unreported drop counts, sends) and the consumer
    // stored what was sent. Drop counts left in the outbox ride with the next update, so post
    // one now and then (their events count as emitted like any other).
    let drain_started = Instant::now();
    let flush_update = fixture("updates/kinds/message.json");
    let mut flushes = 0;
    wait_for("the pipeline to drain", Duration::from_secs(900), || {
        let (waiting, carried, in_flight) = outbox(&stack)?;
        if carried > 0 && waiting == 0 && in_flight == 0 {
            flushes += 1;
            let body = with_update_id(&flush_update, 2_000_000 + flushes);
            let _ = stack.post_update(&body, Some(TEST_SECRET));
            return None;
        }
        if waiting + carried + in_flight > 0 {
            return None;
        }
        let (sent, _) = log_sum(&stack.log(), "analytics: sent ");
        let stored =
            stack.d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local") as u64;
        (stored >= sent).then_some(())
    });
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5)); // let a late duplicate show itself

    let log = stack.log();
    let (emitted, handovers) = log_sum(&log, "analytics: handed over ");
    let (sent_events, sends) = log_sum(&log, "analytics: sent ");
    let rows = stack.d1_count("SELECT count(*) FROM analytics_points_local");
    let stored = stack.d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local");
    let error_points = stack
        .d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local WHERE blob3 = 'error'");
    let error_rows = stack.d1_count("SELECT count(*) FROM error_events");
    let group_sum = stack.d1_count("SELECT COALESCE(SUM(count), 0) FROM error_groups");
    let envelopes = stack.d1(
        "SELECT count(*) AS n, COALESCE(SUM(event_count), 0) AS events, COALESCE(SUM(dropped_send_failed), 0) AS send_failed, \
         COALESCE(SUM(dropped_oversize), 0) AS oversize, COALESCE(SUM(dropped_buffer_full), 0) AS buffer_full, \
         COALESCE(SUM(dropped_cancelled), 0) AS cancelled FROM processed_envelopes",
    );
    let e = &envelopes[0];
    let (envelope_count, envelope_events) =
        (e["n"].as_i64().unwrap(), e["events"].as_i64().unwrap());
    let reasons = ["send_failed", "oversize", "buffer_full", "cancelled"];
    let dropped: i64 = reasons.iter().map(|k| e[*k].as_i64().unwrap()).sum();
    let dropped_text = reasons
        .iter()
        .map(|k| format!("{k} {}", e[*k]))
        .collect::<Vec<_>>()
        .join(", ");
    let duplicated = rows - stored;
    let fired = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    let (killed_events, kills) = log_sum(&log, "analytics: dev kill: ");
    let (killed_counts, _) = log_sum(&log, "waiting events and ");
    let killed = (killed_events + killed_counts) as i64;
    // Requests answered before the kill whose follow-up calls were running: what they tracked
    // after their hand-over was never handed over (not emitted, so outside the count above).
    let cut_off: u64 = log
        .lines()
        .filter(|l| l.contains("analytics: dev kill: "))
        .filter_map(|l| {
            l.split("; ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let unaccounted = emitted as i64 - stored - dropped - killed;
    let (ae_points, crash_points) = points_written(&log);
    let twice_counted =
        stack.d1_count("SELECT COALESCE(SUM(points_written_twice), 0) FROM processed_envelopes");
    // Points Analytics Engine got more than once that nobody counted: the mirror holds one row
    // per point written, plus one per counted extra writer.
    let twice_uncounted = ae_points as i64 - rows;
    let panics_stored = stack.d1_count("SELECT count(*) FROM error_events WHERE kind = 'panic'");
    let panics_injected = i64::from(injected.panic.is_some());
    let (ae_messages, ae_batches) = log_sum(&log, "DEV_FAULT_AE_SWITCH: ");
    // Messages given up after their retry: with the sent ones, every message the bot made.
    let given_up = fired("analytics: queue send failed twice") as u64;
    let window_zero = window.as_deref().map(str::trim) == Some("0");
    let per_message = envelope_events as f64 / envelope_count.max(1) as f64;

    let checks = [
        (
            "every request answered 2xx",
            if chaos {
                non_2xx == 0
            } else {
                failed_first.is_empty()
            },
        ),
        ("no event stored twice", duplicated == 0),
        (
            "every event stored once, counted as dropped, or lost with a killed isolate",
            unaccounted == 0,
        ),
        (
            "every point written twice to Analytics Engine is counted, or the crash between points and marks",
            twice_uncounted == crash_points as i64,
        ),
        ("every handler panic stored as an error event", panics_stored == panics_injected),
        (
            "every fault fired (the rates aside)",
            !chaos
                || [
                    // (The 5 % rates may by chance not fire in a short run.)
                    fired("DEV_FAULT_CONSUMER_CRASH=after_commit: injected crash"),
                    fired("DEV_FAULT_CONSUMER_CRASH=after_points: injected crash"),
                    kills as usize,
                    panics_injected as usize,
                    // Analytics Engine off met a batch, unless the soak was told not to.
                    ae_batches as usize + usize::from(outage.is_zero()),
                ]
                .iter()
                .all(|n| *n > 0),
        ),
        ("every isolate kill logged what it lost", kills == u64::from(injected.kill.1)),
        ("stored = sent", stored as u64 == sent_events),
        (
            "every error event in error_events once",
            error_rows == error_points,
        ),
        ("group counts = error events", group_sum == error_rows),
        (
            "queue messages stored = sends logged",
            envelope_count as u64 == sends,
        ),
        ("nothing dropped without faults", chaos || dropped == 0),
        // Without a window nothing is coalesced: each hand-over (a request's events; its
        // follow-ups' timing is a second one) leaves as its own message, sent or given up.
        (
            "window 0: one message per hand-over",
            !window_zero || sends + given_up == handovers,
        ),
    ];
    println!(
        "\n| soak{} | value |\n| --- | --- |",
        if chaos { " (faults injected)" } else { "" }
    );
    println!(
        "| requests | {} in {:.1} s ({:.0}/s), concurrency {concurrency}, window {window_text} |",
        results.len(),
        load_seconds,
        results.len() as f64 / load_seconds
    );
    println!(
        "| response p50 / p99 | {:.2} ms / {:.2} ms |",
        pct(0.5),
        pct(0.99)
    );
    println!(
        "| non-2xx | {} first answers ({redeliveries} deliveries again), {non_2xx} in the end |",
        failed_first.len()
    );
    println!("| events emitted (handed to the outbox, {handovers} hand-overs) | {emitted} |");
    println!("| events stored (distinct, local AE table) | {stored} |");
    println!("| duplicates | {duplicated} |");
    println!("| dropped and counted | {dropped} ({dropped_text}) |");
    println!("| lost with a killed isolate (not counted by the pipeline) | {killed} ({killed_events} events, {killed_counts} drop counts) |");
    println!("| unaccounted | {unaccounted} |");
    println!("| points written to Analytics Engine | {ae_points} ({twice_counted} twice and counted, {twice_uncounted} twice and not counted) |");
    println!("| error events (AE / error_events) | {error_points} / {error_rows} |");
    println!("| error group count sum | {group_sum} |");
    println!("| queue messages | {envelope_count} ({per_message:.1} events per message, {:.3} queue operations per event at ~3 per message) |", 3.0 * envelope_count as f64 / envelope_events.max(1) as f64);
    println!("| drain after the load | {drain_seconds:.1} s ({flushes} flush updates to carry the last drop counts) |");
    if chaos {
        let report = |field: &str| report_sum(&log, field);
        let outage_s = injected.ae_outage.map_or(0.0, |d| d.as_secs_f64());
        let (panic_first, panic_deliveries) = injected.panic.unwrap_or((0, 0));
        let rows = [
            (
                "queue sends fail (5 %)".to_string(),
                "`DEV_FAULT_QUEUE_SEND_FAIL_RATE=0.05` (bot)".to_string(),
                format!("{} attempts", fired("analytics: send attempt failed")),
                format!(
                    "{} retried sends; {given_up} messages failed twice: their {} events dropped and counted (`send_failed`)",
                    fired("analytics: send attempt failed") as u64 - given_up,
                    e["send_failed"]
                ),
            ),
            (
                "D1 calls fail (5 %, half after the commit)".into(),
                "`DEV_FAULT_D1_FAIL_RATE=0.05` (consumer)".into(),
                format!("{} calls", fired("injected by DEV_FAULT_D1_FAIL_RATE")),
                format!(
                    "batches retried in place or deferred ({} retried, {} deferred records over the run, all faults); nothing lost or doubled",
                    report("retried"),
                    report("deferred")
                ),
            ),
            (
                "consumer crash after the commit, before the points".into(),
                "`DEV_FAULT_CONSUMER_CRASH=after_commit`".into(),
                format!("{}", fired("DEV_FAULT_CONSUMER_CRASH=after_commit: injected crash")),
                "its batch delivered again; its claims taken over; nothing lost or doubled".into(),
            ),
            (
                "consumer crash after the points, before their marks".into(),
                "`DEV_FAULT_CONSUMER_CRASH=after_points`".into(),
                format!("{}", fired("DEV_FAULT_CONSUMER_CRASH=after_points: injected crash")),
                format!(
                    "its batch delivered again; nothing lost, the mirror stores each point once, but Analytics Engine got its {crash_points} points twice, not counted"
                ),
            ),
            (
                "Analytics Engine binding removed".into(),
                format!(
                    "`DEV_FAULT_AE_SWITCH=1` and table `dev_fault_ae_down` for {} s or until a batch met it (with wrangler's calls: {outage_s:.1} s)",
                    outage.as_secs()
                ),
                format!("{ae_batches} batches ({ae_messages} messages)"),
                format!("those messages retried in place, then deferred until it was back (most of the retries and deferrals above); nothing lost or doubled, stored later: the drain after the load took {drain_seconds:.1} s"),
            ),
            (
                "bot isolate killed inside its coalescing window".into(),
                "`POST /__dev/kill` (`dev_kill_isolate`: the Wasm instance reset, nothing kept)".into(),
                format!("{kills} ({} tries refused while a send was under way or nothing waited)", injected.kill.0 - usize::from(injected.kill.1)),
                format!("{killed_events} waiting events and {killed_counts} drop counts lost, not counted by the pipeline (counted here from the kill's log line); requests running in it failed and were delivered again; {cut_off} answered requests' follow-up calls cut off (their follow-up timing and call errors never handed over, so outside this accounting)"),
            ),
            (
                "handler panic".into(),
                "`/dev_panic` update (`DEV_TEST_COMMANDS=1`)".into(),
                format!("{panics_injected}"),
                format!("first answer {panic_first}, 200 after {panic_deliveries} deliveries; the panic stored as {panics_stored} error event; no reply; requests running in the instance failed and were delivered again"),
            ),
            (
                "slow Bot API".into(),
                "fake Bot API answers in 1.5 s".into(),
                "every call".into(),
                "none on the responses (follow-up calls run after them)".into(),
            ),
        ];
        println!("\n| fault | injected by | times | what it cost |\n| --- | --- | --- | --- |");
        for (fault, how, times, cost) in rows {
            println!("| {fault} | {how} | {times} | {cost} |");
        }
        println!(
            "| all | | | {} first answers not 2xx, delivered again; drain after the load {drain_seconds:.1} s |",
            failed_first.len()
        );
    }
    let mut failed = false;
    for (name, ok) in checks {
        println!("soak check: {name}: {}", if ok { "ok" } else { "FAILED" });
        failed |= !ok;
    }
    println!(
        "soak: {emitted} emitted, {stored} stored, {duplicated} duplicated, {dropped} dropped (counted), {killed} lost with a killed isolate, {unaccounted} unaccounted"
    );
    // `SOAK_LOG=path` keeps the Workers' log (the stack's directory goes with it).
    if let Ok(path) = std::env::var("SOAK_LOG") {
        let _ = std::fs::write(path, &log);
    }
    drop(stack);
    drop(api);
    if failed {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[consumer] consumer: telegram-analytics: 10 messages, 10 items: 10 stored, 0 duplicates, 0 duplicate events, 0 rejected, 0 over budget, 2 retried, 0 deferred, 250 points, 0 written ahead of D1, 0 counted twice, D1 rows written [Some(46)]
ERROR consumer: DEV_FAULT_CONSUMER_CRASH=after_points: injected crash after writing 225 points, batch retried
ERROR consumer: DEV_FAULT_CONSUMER_CRASH=after_commit: injected crash after writing 0 points, batch retried
[consumer] consumer: telegram-analytics: 4 messages, 4 items: 0 stored, 0 duplicates, 0 duplicate events, 0 rejected, 0 over budget, 1 retried, 4 deferred, 7 points, 7 written ahead of D1, 0 counted twice, D1 rows written []
[bot] analytics: dev kill: 21 waiting events and 3 drop counts lost with the isolate; 4 requests' follow-up calls cut off
";

    #[test]
    fn the_points_written_include_those_of_a_crash() {
        assert_eq!(points_written(LOG), (250 + 225 + 7, 225));
    }

    #[test]
    fn report_fields_are_summed_over_invocations() {
        assert_eq!(report_sum(LOG, "retried"), 3);
        assert_eq!(report_sum(LOG, "deferred"), 4);
        assert_eq!(report_sum(LOG, "stored"), 10);
    }

    #[test]
    fn a_kill_line_gives_its_events_and_drop_counts() {
        assert_eq!(log_sum(LOG, "analytics: dev kill: "), (21, 1));
        assert_eq!(log_sum(LOG, "waiting events and "), (3, 1));
    }
}
