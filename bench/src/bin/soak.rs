//! `make soak`: N webhook updates at concurrency C against the local stack, mixing every update
//! kind, commands, callbacks and updates whose handling fails (the fake Bot API refuses every
//! message edit). Then it waits (bounded) for the consumer to drain and checks that nothing was
//! lost or counted twice. What the producer emitted is read from its dev-only log line
//! (`DEV_LOG_SENDS=1`: `analytics: sent N events …` for every successful queue send), not from
//! a second code path.
//!
//! `--coalesce-ms W` sets the bot's coalescing window (0 = one message per request).
//! Exit code 1 when a check fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{arg, percentile, post_updates};
use e2e_tests::{fixture, wait_for, FakeBotApi, Stack, StackOptions};
use shared::telegram::KNOWN_UPDATE_KINDS;

/// Sum of `analytics: sent N events` over the log.
fn events_sent(log: &str) -> (u64, u64) {
    let mut events = 0;
    let mut messages = 0;
    for line in log.lines() {
        if let Some(rest) = line.split("analytics: sent ").nth(1) {
            if let Some(n) = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
            {
                events += n;
                messages += 1;
            }
        }
    }
    (events, messages)
}

fn main() {
    let updates = arg("--updates", 10_000);
    let concurrency = arg("--concurrency", 50);
    let coalesce_ms = arg("--coalesce-ms", 0);

    let api = FakeBotApi::start();
    api.respond_error(
        "editMessageText",
        400,
        "Bad Request: message to edit not found",
    );
    let stack = Stack::start(StackOptions {
        api_base: Some(api.base_url()),
        extra_vars: vec![
            ("ANALYTICS_COALESCE_MS".into(), coalesce_ms.to_string()),
            ("DEV_LOG_SENDS".into(), "1".into()),
        ],
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

    println!(
        "soak: {updates} updates at concurrency {concurrency}, coalescing window {coalesce_ms} ms"
    );
    let (results, load_time) = post_updates(&stack.url("/telegram"), &bodies, updates, concurrency);
    let load_seconds = load_time.as_secs_f64();
    let non_2xx = results
        .iter()
        .filter(|(s, _)| !(200..300).contains(s))
        .count();
    let mut latencies: Vec<f64> = results.iter().map(|(_, ms)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| percentile(&latencies, q);

    // Drain: wait until the consumer stored what the producer reports as sent, and the sent
    // total has stopped growing (the last wait_until sends are done).
    let drain_started = Instant::now();
    let mut last_sent = 0;
    let (emitted, messages) = wait_for("the consumer to drain", Duration::from_secs(600), || {
        let (sent, messages) = events_sent(&stack.log());
        let stored = stack.d1_count("SELECT count(*) FROM analytics_points_local") as u64;
        let settled = sent == last_sent && sent > 0 && stored >= sent;
        last_sent = sent;
        settled.then_some((sent, messages))
    });
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3)); // let a late duplicate show itself

    let stored = stack.d1_count("SELECT count(*) FROM analytics_points_local");
    let distinct = stack.d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local");
    let error_points = stack
        .d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local WHERE blob3 = 'error'");
    let error_rows = stack.d1_count("SELECT count(*) FROM error_events");
    let group_sum = stack.d1_count("SELECT COALESCE(SUM(count), 0) FROM error_groups");
    let envelopes = stack.d1(
        "SELECT count(*) AS n, COALESCE(SUM(event_count), 0) AS events, COALESCE(SUM(dropped_send_failed), 0) AS send_failed, \
         COALESCE(SUM(dropped_oversize), 0) AS oversize, COALESCE(SUM(dropped_buffer_full), 0) AS buffer_full FROM processed_envelopes",
    );
    let e = &envelopes[0];
    let (envelope_count, envelope_events) =
        (e["n"].as_i64().unwrap(), e["events"].as_i64().unwrap());
    let dropped = format!(
        "send_failed {}, oversize {}, buffer_full {}",
        e["send_failed"], e["oversize"], e["buffer_full"]
    );
    let dropped_total = ["send_failed", "oversize", "buffer_full"]
        .iter()
        .map(|k| e[*k].as_i64().unwrap())
        .sum::<i64>();
    let per_message = envelope_events as f64 / envelope_count.max(1) as f64;

    let checks = [
        ("every request answered 2xx", non_2xx == 0),
        ("stored = emitted", stored as u64 == emitted),
        ("no duplicates", distinct == stored),
        (
            "every error event in error_events once",
            error_rows == error_points,
        ),
        ("group counts = error events", group_sum == error_rows),
        ("nothing dropped", dropped_total == 0),
        (
            "queue messages seen by the consumer = sends logged",
            envelope_count as u64 == messages,
        ),
        // Without a window the bot sends exactly one message per request.
        (
            "window 0: one message per request",
            coalesce_ms > 0 || envelope_count as usize == results.len(),
        ),
    ];
    println!("\n| soak (coalescing window {coalesce_ms} ms) | value |\n| --- | --- |");
    println!(
        "| requests | {} in {:.1} s ({:.0}/s), concurrency {concurrency} |",
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
    println!("| events emitted (producer log) | {emitted} |");
    println!("| events stored (local AE table) | {stored} |");
    println!("| duplicates | {} |", stored - distinct);
    println!("| error events (AE / error_events) | {error_points} / {error_rows} |");
    println!("| error group count sum | {group_sum} |");
    println!("| dropped and why | {dropped} |");
    println!("| queue messages | {envelope_count} ({per_message:.1} events per message, {:.3} queue operations per event at ~3 per message) |", 3.0 * envelope_count as f64 / envelope_events.max(1) as f64);
    println!("| drain time after the load | {drain_seconds:.1} s |");
    let mut failed = false;
    for (name, ok) in checks {
        println!("soak check: {name}: {}", if ok { "ok" } else { "FAILED" });
        failed |= !ok;
    }
    drop(stack);
    drop(api);
    if failed {
        std::process::exit(1);
    }
}
