//! `make bench`: the fire-and-forget claim measured in one run, variants side by side.
//!
//! Variants, each its own local `wrangler dev` (so CPU can be attributed), run interleaved in
//! shuffled order, several rounds each:
//!   a. the Rust bot with analytics on (fire and forget)
//!   b. the Rust bot with `ANALYTICS=off` (the floor)
//!   c. the Rust bot awaiting the queue send before answering (the "before")
//!   d. a hand-written JavaScript Worker doing the same job (`bench/js-bot/worker.js`)
//! Then sizes, MessagePack vs JSON, consumer throughput and the native micro-benchmarks.
//! `--smoke` runs a few hundred requests only, to keep the harness from rotting; it asserts
//! that every request was answered 200 and nothing about speed.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{arg, flag, percentile, post_updates};
use e2e_tests::process::{spawn_wrangler_dev, stop_process_group};
use e2e_tests::stack::{local_config, TEST_SECRET};
use e2e_tests::{fixture, free_port, repo_root, wait_for, Stack, StackOptions};
use shared::{encode, samples, NewEvent, Tracker};

struct Settings {
    smoke: bool,
    requests: usize,
    concurrency: usize,
    rounds: usize,
    consumer_events: usize,
    write_doc: bool,
}

fn settings() -> Settings {
    let smoke = flag("--smoke");
    Settings {
        smoke,
        requests: arg("--requests", if smoke { 50 } else { 1_000 }),
        concurrency: arg("--concurrency", if smoke { 4 } else { 20 }),
        rounds: arg("--rounds", if smoke { 1 } else { 5 }),
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
    busy: Duration,
    cpu_ticks: u64,
    requests: usize,
    failures: usize,
}

impl Drop for Variant {
    fn drop(&mut self) {
        stop_process_group(&mut self.child);
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
    let child = spawn_wrangler_dev(
        dir,
        &["-c", config_path.to_str().unwrap(), "--log-level=warn"],
        &format!("state-{key}"),
        port,
        &dir.join(format!("{key}.log")),
    );
    let variant = Variant {
        key,
        label,
        port,
        child,
        latencies_ms: Vec::new(),
        busy: Duration::ZERO,
        cpu_ticks: 0,
        requests: 0,
        failures: 0,
    };
    wait_for(
        &format!("variant {key} to start"),
        Duration::from_secs(90),
        || {
            ureq::get(&format!("http://127.0.0.1:{port}/health"))
                .call()
                .ok()
                .map(|_| ())
        },
    );
    variant
}

/// CPU ticks (user + system) of every process in the variant's process group.
fn group_cpu_ticks(pgid: u32) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        // After "pid (comm) ": state ppid pgrp … utime(11) stime(12)
        if fields.get(2).and_then(|p| p.parse::<u32>().ok()) == Some(pgid) {
            total += fields
                .get(11)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            total += fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
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
    let url = format!("http://127.0.0.1:{}/telegram", variant.port);
    let cpu_before = group_cpu_ticks(variant.child.id());
    let (outcomes, wall) = post_updates(&url, bodies, requests, concurrency);
    variant.busy += wall;
    variant.cpu_ticks += group_cpu_ticks(variant.child.id()).saturating_sub(cpu_before);
    for (status, ms) in outcomes {
        variant.latencies_ms.push(ms);
        variant.requests += 1;
        variant.failures += usize::from(status != 200);
    }
}

struct Row {
    key: &'static str,
    label: &'static str,
    p50: f64,
    p99: f64,
    rps: f64,
    cpu_ms: f64,
    requests: usize,
    failures: usize,
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
    let per_envelope = shared::delivery::MAX_EVENTS_PER_MESSAGE;
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

    let producer = |name: &str, analytics: &str| {
        let mut config = local_config("wrangler.producer.toml");
        config.insert("name".into(), name.into());
        if let Some(vars) = config.get_mut("vars").and_then(|v| v.as_table_mut()) {
            vars.insert("ANALYTICS".into(), analytics.into());
        }
        config
    };
    let mut js = producer("bench-js-bot", "on");
    js.insert(
        "main".into(),
        root.join("bench/js-bot/worker.js")
            .display()
            .to_string()
            .into(),
    );

    println!(
        "bench: starting 4 variants ({} rounds × {} requests at concurrency {})",
        s.rounds, s.requests, s.concurrency
    );
    let mut variants = vec![
        start_variant(
            dir.path(),
            "a",
            "Rust bot, analytics on (fire and forget)",
            producer("bench-a", "on"),
        ),
        start_variant(
            dir.path(),
            "b",
            "Rust bot, ANALYTICS=off (floor)",
            producer("bench-b", "off"),
        ),
        start_variant(
            dir.path(),
            "c",
            "Rust bot, awaits the queue send",
            producer("bench-c", "await"),
        ),
        start_variant(dir.path(), "d", "JavaScript Worker, analytics on", js),
    ];
    let bodies = Arc::new(vec![
        fixture("updates/message_start.json"),
        fixture("updates/kinds/message.json"),
        fixture("updates/kinds/business_message.json"),
        fixture("updates/kinds/edited_message.json"),
    ]);
    // Warm-up, not measured.
    for v in variants.iter_mut() {
        drive(v, &bodies, 50.min(s.requests), s.concurrency.min(4));
        v.latencies_ms.clear();
        (v.busy, v.cpu_ticks, v.requests, v.failures) = (Duration::ZERO, 0, 0, 0);
    }
    let mut order: Vec<usize> = (0..variants.len()).collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..s.rounds {
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            drive(&mut variants[i], &bodies, s.requests, s.concurrency);
        }
        println!(
            "bench: round {} of {} done (order {:?})",
            round + 1,
            s.rounds,
            order.iter().map(|&i| variants[i].key).collect::<Vec<_>>()
        );
    }
    let ticks = clock_ticks_per_second();
    let rows: Vec<Row> = variants
        .iter_mut()
        .map(|v| {
            v.latencies_ms.sort_by(f64::total_cmp);
            Row {
                key: v.key,
                label: v.label,
                p50: percentile(&v.latencies_ms, 0.50),
                p99: percentile(&v.latencies_ms, 0.99),
                rps: v.requests as f64 / v.busy.as_secs_f64(),
                cpu_ms: v.cpu_ticks as f64 / ticks * 1000.0 / v.requests.max(1) as f64,
                requests: v.requests,
                failures: v.failures,
            }
        })
        .collect();
    drop(variants);
    let failures: usize = rows.iter().map(|r| r.failures).sum();

    let mut table = String::new();
    table += "| variant | requests | non-200 | p50 ms | p99 ms | req/s | CPU ms/request (whole wrangler dev group) |\n";
    table += "| --- | --- | --- | --- | --- | --- | --- |\n";
    for r in &rows {
        table += &format!(
            "| {}. {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.2} |\n",
            r.key, r.label, r.requests, r.failures, r.p50, r.p99, r.rps, r.cpu_ms
        );
    }
    let [a, b, c, d] = [&rows[0], &rows[1], &rows[2], &rows[3]];
    let ratios = format!(
        "\n| ratio | p50 | p99 | goal |\n| --- | --- | --- | --- |\n\
         | a/b (analytics overhead) | {:.3} | {:.3} | ≤ 1.02 |\n\
         | c/a (awaiting the send vs fire and forget) | {:.3} | {:.3} | (> 1: what fire and forget saves) |\n\
         | a/d (Rust vs JavaScript) | {:.3} | {:.3} | ≤ 1.0 at p50 |\n\
         | CPU a − b (analytics CPU per update, ms) | {:.3} | | |\n",
        a.p50 / b.p50, a.p99 / b.p99, c.p50 / a.p50, c.p99 / a.p99, a.p50 / d.p50, a.p99 / d.p99,
        a.cpu_ms - b.cpu_ms
    );

    let wasm = |w: &str| {
        fs::read(root.join(format!("{w}-worker/build/index_bg.wasm"))).unwrap_or_default()
    };
    let (pw, cw) = (wasm("producer"), wasm("consumer"));
    let envelope = samples::typical_envelope();
    let mp = encode(&envelope).unwrap().len();
    let json = serde_json::to_vec(&envelope).unwrap().len();
    let n = envelope.events.len();
    let mut sizes = String::new();
    sizes += "\n| size | value | goal |\n| --- | --- | --- |\n";
    sizes += &format!(
        "| producer wasm | {} B raw, {} B gzip | ≤ 250 KB gzip |\n",
        pw.len(),
        gzip_len(&pw)
    );
    sizes += &format!(
        "| consumer wasm | {} B raw, {} B gzip | |\n",
        cw.len(),
        gzip_len(&cw)
    );
    sizes += &format!(
        "| envelope of {n} events | {mp} B MessagePack, {json} B JSON: {:.1} % | ≤ 40 % |\n",
        100.0 * mp as f64 / json as f64
    );
    sizes += &format!(
        "| per event | {:.1} B MessagePack, {:.1} B JSON | |\n",
        mp as f64 / n as f64,
        json as f64 / n as f64
    );

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
    let report = format!("{table}{ratios}{sizes}{more}");
    println!("\n{report}");
    assert_eq!(failures, 0, "every bench request must be answered 200");
    if s.write_doc && !s.smoke {
        let path = root.join("docs/benchmarks.md");
        let doc = fs::read_to_string(&path).expect("docs/benchmarks.md");
        let (start, end) = ("<!-- results:start -->", "<!-- results:end -->");
        let (i, j) = (
            doc.find(start).expect("start marker"),
            doc.find(end).expect("end marker"),
        );
        let stamp = format!(
            "Run with `make bench` ({} rounds × {} requests per variant at concurrency {}).\n\n",
            s.rounds, s.requests, s.concurrency
        );
        let updated = format!("{}{start}\n{stamp}{report}{}", &doc[..i], &doc[j..]);
        fs::write(&path, updated).unwrap();
        println!("bench: results written to docs/benchmarks.md");
    }
}
