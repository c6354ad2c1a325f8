//! `make economy`: the bill for a day of traffic, from the real policy code on a virtual clock.
//!
//! ```text
//! economy                       built-in model at 1k … 10M events a day, the window choice,
//!                               and the free plan's ceiling (markdown tables)
//! economy --write-doc           the same, written into docs/economy.md
//! economy --trace FILE --json [--window-ms N] [--isolates N] [--routing random|sticky[:SHARE]]
//!                               one trace (CSV: offset_ms,events,error_events[,user]) → one JSON
//!                               object, its requests spread over N bot isolates (default 1)
//! economy --scale [--events N] [--write-doc]
//!                               `make scale`: one D1 database's speed and a day's storage,
//!                               measured with the consumer's statements, and the documented
//!                               limits in events a day (written into docs/scale.md)
//! ```
//! Exit code 2 on bad arguments or an unreadable trace, with the reason on stderr.

use std::process::ExitCode;

use bench::economy::d1_cost::repository_schema;
use bench::economy::traffic::{parse_trace, sessions};
use bench::economy::{free_plan, paid_plan, simulate, Config, Routing, Usage};
use bench::replace_block;

const SEED: u64 = 20_261_127;

struct Args {
    trace: Option<String>,
    json: bool,
    write_doc: bool,
    window_ms: Option<f64>,
    isolates: Option<usize>,
    routing: Option<Routing>,
    scale: bool,
    events: Option<u64>,
}

/// The most isolates the trace mode takes (a bound, so a typo cannot ask for a billion
/// outboxes).
const MAX_ISOLATES: usize = 10_000;

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        trace: None,
        json: false,
        write_doc: false,
        window_ms: None,
        isolates: None,
        routing: None,
        scale: false,
        events: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--trace" => args.trace = Some(it.next().ok_or("--trace needs a file")?),
            "--json" => args.json = true,
            "--write-doc" => args.write_doc = true,
            "--window-ms" => {
                let v = it.next().ok_or("--window-ms needs a number")?;
                let ms: f64 = v
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("--window-ms {v:?} is not a number ≥ 0"))?;
                args.window_ms = Some(ms.min(analytics_core::delivery::MAX_WINDOW_MS));
            }
            "--isolates" => {
                let v = it.next().ok_or("--isolates needs a number")?;
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_ISOLATES).contains(n))
                    .ok_or_else(|| {
                        format!("--isolates {v:?} is not a whole number from 1 to {MAX_ISOLATES}")
                    })?;
                args.isolates = Some(n);
            }
            "--scale" => args.scale = true,
            "--events" => {
                let v = it.next().ok_or("--events needs a number")?;
                let n: u64 = v
                    .parse()
                    .ok()
                    .filter(|n| (1_000..=100_000_000).contains(n))
                    .ok_or_else(|| {
                        format!("--events {v:?} is not a whole number from 1000 to 100000000")
                    })?;
                args.events = Some(n);
            }
            "--routing" => {
                let v = it
                    .next()
                    .ok_or("--routing needs random, sticky or sticky:SHARE")?;
                args.routing = Some(Routing::parse(&v).map_err(|e| format!("--routing: {e}"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.events.is_some() && !args.scale {
        return Err("--events goes with --scale".into());
    }
    if args.json && args.trace.is_none() {
        return Err("--json goes with --trace FILE".into());
    }
    Ok(args)
}

fn json(usage: &Usage) -> String {
    serde_json::json!({
        "events": usage.events,
        "queue_messages": usage.queue_messages,
        "queue_operations": usage.queue_operations,
        "ae_points": usage.ae_points,
        "d1_rows_written": usage.d1_rows_written,
        "consumer_invocations": usage.consumer_invocations,
    })
    .to_string()
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn scale_table(config: Config) -> String {
    let mut out = String::from(
        "| events/day | updates | queue messages | events/message | queue operations | AE points | D1 rows written | consumer invocations | free plan | tightest free-plan line | paid plan, month | largest paid line |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for events in [1_000u64, 10_000, 100_000, 1_000_000, 10_000_000] {
        let usage = simulate(&sessions(events, SEED), config);
        let (fits, line, share) = free_plan(&usage);
        let (total, lines) = paid_plan(&usage);
        let largest = if lines[0].1 > 0.0 {
            format!("{} (${:.2})", lines[0].0, lines[0].1)
        } else {
            "none beyond the included".into()
        };
        out += &format!(
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {line} ({:.0} %) | ${total:.2} | {largest} |\n",
            thousands(usage.events),
            thousands(usage.updates),
            thousands(usage.queue_messages),
            usage.events_per_message(),
            thousands(usage.queue_operations),
            thousands(usage.ae_points),
            thousands(usage.d1_rows_written),
            thousands(usage.consumer_invocations),
            if fits { "holds" } else { "exceeded" },
            share * 100.0
        );
    }
    out
}

fn window_table() -> String {
    let updates = sessions(10_000, SEED);
    let mut out = String::from(
        "| window | queue messages | events/message | queue operations (free plan: 10,000) |\n| --- | --- | --- | --- |\n",
    );
    for window in [
        0.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 15_000.0, 20_000.0, 21_000.0,
    ] {
        let usage = simulate(
            &updates,
            Config {
                window_ms: window,
                ..Config::shipped()
            },
        );
        out += &format!(
            "| {} | {} | {:.1} | {} |\n",
            if window >= 1_000.0 {
                format!("{} s", window / 1_000.0)
            } else {
                format!("{window} ms")
            },
            thousands(usage.queue_messages),
            usage.events_per_message(),
            thousands(usage.queue_operations)
        );
    }
    out
}

/// The many-isolate table: events per message and queue operations at 10,000 and 100,000
/// events a day, and the free plan's ceiling, for 1 to 16 isolates and both routing models.
/// `one_ceiling` is the one-isolate ceiling (more isolates never coalesce better, so it bounds
/// the search).
fn isolates_table(config: Config, one_ceiling: u64) -> String {
    let ten = sessions(10_000, SEED);
    let hundred = sessions(100_000, SEED);
    let mut out = String::from(
        "| isolates | routing | events/message at 10,000 a day | queue operations at 10,000 | events/message at 100,000 a day | queue operations at 100,000 | free plan ceiling, events a day |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut rows = vec![(1, Routing::Random)];
    for n in [2, 4, 8, 16] {
        rows.push((n, Routing::Random));
        rows.push((
            n,
            Routing::Sticky {
                share: Routing::DEFAULT_STICKY_SHARE,
            },
        ));
    }
    for (isolates, routing) in rows {
        let c = Config {
            isolates,
            routing,
            ..config
        };
        let a = simulate(&ten, c);
        let b = simulate(&hundred, c);
        let ceiling = if isolates == 1 {
            one_ceiling
        } else {
            free_ceiling(c, one_ceiling + one_ceiling / 50).0
        };
        out += &format!(
            "| {isolates} | {} | {:.1} | {} | {:.1} | {} | {} |\n",
            if isolates == 1 {
                "any".into()
            } else {
                routing.label()
            },
            a.events_per_message(),
            thousands(a.queue_operations),
            b.events_per_message(),
            thousands(b.queue_operations),
            thousands(ceiling)
        );
    }
    out
}

/// The largest events/day of the built-in model that fits every free-plan line (to 1 %),
/// searched below `high`.
fn free_ceiling(config: Config, high: u64) -> (u64, &'static str) {
    let (mut low, mut high) = (1_000u64, high);
    let mut binding = "";
    while high - low > low / 100 {
        let mid = (low + high) / 2;
        let usage = simulate(&sessions(mid, SEED), config);
        let (fits, line, _) = free_plan(&usage);
        if fits {
            low = mid;
        } else {
            high = mid;
            binding = line;
        }
    }
    (low, binding)
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let schema = repository_schema();
    let mut config = Config::shipped();
    if let Some(window) = args.window_ms {
        config.window_ms = window;
    }
    if let Some(isolates) = args.isolates {
        config.isolates = isolates;
    }
    if let Some(routing) = args.routing {
        config.routing = routing;
    }
    if args.scale {
        let report = bench::economy::scale::report(args.events.unwrap_or(1_000_000), config)?;
        println!("{report}");
        if args.write_doc {
            write_block("docs/scale.md", "scale", &report)?;
        }
        return Ok(());
    }
    if let Some(path) = &args.trace {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let updates = parse_trace(&text).map_err(|e| format!("{path}: {e}"))?;
        let usage = simulate(&updates, config);
        if args.json {
            println!("{}", json(&usage));
        } else {
            println!("{usage:?}");
        }
        return Ok(());
    }
    let scales = scale_table(config);
    let windows = window_table();
    let (ceiling, binding) = free_ceiling(config, 1_000_000);
    let isolates = isolates_table(config, ceiling);
    let error_row = schema.insert_cost("error_events");
    let report = format!(
        "Built-in model, one bot isolate, window {} s, consumer `max_batch_size` {} and `max_batch_timeout` {} s:\n\n{scales}\n\
         The window at 10,000 events a day:\n\n{windows}\n\
         Free plan ceiling: **{} events a day** (then {binding} runs out first).\n\n\
         Many isolates (each coalesces only the requests it serves; `random`: every request on \
         one of them at random, `sticky 80 %`: 80 % on one warm isolate, the rest at random on the \
         others):\n\n{isolates}\n\
         One error event costs **{error_row} D1 rows written** (its row, the indexes of `error_events`, the trigger's upsert into `error_groups` and its indexes).\n",
        config.window_ms / 1_000.0,
        config.max_batch_size,
        config.max_batch_timeout_ms / 1_000.0,
        thousands(ceiling)
    );
    println!("{report}");
    if args.write_doc {
        write_block("docs/economy.md", "economy", &report)?;
    }
    Ok(())
}

/// Rewrites the `name` block of the repository's document `doc`.
fn write_block(doc: &str, name: &str, report: &str) -> Result<(), String> {
    let path = e2e_tests::repo_root().join(doc);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{doc}: {e}"))?;
    let updated = replace_block(&text, name, report).map_err(|e| format!("{doc} {e}"))?;
    std::fs::write(&path, updated).map_err(|e| format!("{doc}: {e}"))?;
    println!("economy: written to {doc}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("economy: {reason}");
            ExitCode::from(2)
        }
    }
}
