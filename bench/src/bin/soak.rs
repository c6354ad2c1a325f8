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
//! - **unaccounted**: emitted − stored − dropped.
//!
//! `--chaos` injects faults *during* the load: about 5 % of queue sends fail, about 5 % of D1
//! calls fail (half of them after their commit, the answer lost), the consumer crashes once
//! between its commit and the points, and the Bot API answers slowly. The last line is
//! `soak: E emitted, S stored, X duplicated, D dropped (counted), U unaccounted`.
//!
//! `--coalesce-ms W` sets the bot's coalescing window (0 = one message per request; unset = the
//! library's default). Exit code 1 when a check fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{arg, arg_str, describe_failures, flag, percentile, post_updates, with_update_id};
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

fn main() {
    let updates = arg("--updates", 10_000);
    let concurrency = arg("--concurrency", 50);
    let chaos = flag("--chaos");
    let window = arg_str("--coalesce-ms");

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
            ("DEV_FAULT_CONSUMER_CRASH".into(), "after_commit".into()),
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
            "; faults: 5 % of queue sends, 5 % of D1 calls, one consumer crash after a commit, a slow Bot API"
        } else {
            ""
        }
    );
    let (results, load_time) = post_updates(&stack.url("/telegram"), &bodies, updates, concurrency);
    let load_seconds = load_time.as_secs_f64();
    let non_2xx = results
        .iter()
        .filter(|o| !(200..300).contains(&o.status))
        .count();
    if non_2xx > 0 {
        eprintln!("soak: {}", describe_failures(&results, &stack.log()));
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
    let faults = format!(
        "{} queue send attempts failed, {} D1 calls failed, {} consumer crash",
        fired("analytics: send attempt failed"),
        fired("injected by DEV_FAULT_D1_FAIL_RATE"),
        fired("DEV_FAULT_CONSUMER_CRASH=after_commit: injected crash")
    );
    let unaccounted = emitted as i64 - stored - dropped;
    // Messages given up after their retry: with the sent ones, every message the bot made.
    let given_up = fired("analytics: queue send failed twice") as u64;
    let window_zero = window.as_deref().map(str::trim) == Some("0");
    let per_message = envelope_events as f64 / envelope_count.max(1) as f64;

    let checks = [
        ("every request answered 2xx", non_2xx == 0),
        ("no event stored twice", duplicated == 0),
        (
            "every event stored once or counted as dropped",
            unaccounted == 0,
        ),
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
    println!("| non-2xx | {non_2xx} |");
    if chaos {
        println!("| faults that fired | {faults} |");
    }
    println!("| events emitted (handed to the outbox, {handovers} hand-overs) | {emitted} |");
    println!("| events stored (distinct, local AE table) | {stored} |");
    println!("| duplicates | {duplicated} |");
    println!("| dropped and counted | {dropped} ({dropped_text}) |");
    println!("| unaccounted | {unaccounted} |");
    println!("| error events (AE / error_events) | {error_points} / {error_rows} |");
    println!("| error group count sum | {group_sum} |");
    println!("| queue messages | {envelope_count} ({per_message:.1} events per message, {:.3} queue operations per event at ~3 per message) |", 3.0 * envelope_count as f64 / envelope_events.max(1) as f64);
    println!("| drain after the load | {drain_seconds:.1} s ({flushes} flush updates to carry the last drop counts) |");
    let mut failed = false;
    for (name, ok) in checks {
        println!("soak check: {name}: {}", if ok { "ok" } else { "FAILED" });
        failed |= !ok;
    }
    println!(
        "soak: {emitted} emitted, {stored} stored, {duplicated} duplicated, {dropped} dropped (counted), {unaccounted} unaccounted"
    );
    drop(stack);
    drop(api);
    if failed {
        std::process::exit(1);
    }
}
