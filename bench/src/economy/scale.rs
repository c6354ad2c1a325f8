//! `make scale`: what this machine can measure of the pipeline's scale limits, and the
//! arithmetic that turns Cloudflare's documented limits into events a day (`docs/scale.md`).
//!
//! Measured here, with the consumer's real statements ([`super::simulate_probed`]): how long
//! one D1 database (SQLite, in memory and in a WAL file) takes to run a day's consumer
//! transactions, and what a day's rows occupy, table by table, before retention. Everything else
//! is a documented limit divided by what the simulator says one event costs.

use super::sqlite::D1;
use super::traffic::sessions;
use super::{simulate_probed, Config, Probe, Usage};

/// Tables whose size does not follow the events: `daily_rollup` (one row per bot and day, two
/// years: about 1.5 MB per bot) and `analytics_points_local` (local development only).
pub const NOT_PER_EVENT: [&str; 2] = ["daily_rollup", "analytics_points_local"];

/// How long each table keeps a day's rows, in days (`ingest_policy::retention`); `None`: kept
/// for good (`bot_users`, `error_groups`: one row per user, per distinct error).
pub fn retention_days(table: &str) -> Option<f64> {
    use ingest_policy::retention as r;
    match table {
        "request_attempts" => Some(r::REQUEST_RETENTION_DAYS as f64),
        "processed_envelopes" | "error_events" => Some(r::DEFAULT_RETENTION_DAYS as f64),
        "user_days" => Some(r::USER_DAYS_RETENTION_DAYS as f64),
        "user_events" => Some(r::USER_EVENTS_RETENTION_DAYS as f64),
        "daily_rollup" => Some(r::ROLLUP_RETENTION_DAYS as f64),
        "rejected_messages" => Some(r::DEFAULT_PAYLOAD_DAYS as f64),
        _ => None,
    }
}

/// One measured day.
#[derive(Debug, Clone)]
pub struct Day {
    /// The bill of the day.
    pub usage: Usage,
    /// What was measured on the way.
    pub probe: Probe,
}

impl Day {
    /// Events a second one D1 database ran the consumer's transactions at (this machine,
    /// one writer, nothing else running on it).
    pub fn d1_events_per_second(&self) -> f64 {
        self.usage.events as f64 / self.probe.d1_seconds.max(1e-9)
    }

    /// Statements a second, as [`Day::d1_events_per_second`].
    pub fn d1_statements_per_second(&self) -> f64 {
        self.probe.d1_statements as f64 / self.probe.d1_seconds.max(1e-9)
    }

    /// Rows written a second (as D1 bills them), as [`Day::d1_events_per_second`].
    pub fn d1_rows_written_per_second(&self) -> f64 {
        self.usage.d1_rows_written as f64 / self.probe.d1_seconds.max(1e-9)
    }

    /// Bytes the database holds in the steady state, per event a day: each table's bytes of
    /// the day times the days it keeps them. Tables kept for good are left out (see
    /// [`Day::kept_bytes_per_event`]).
    pub fn steady_bytes_per_event(&self) -> f64 {
        let total: f64 = self
            .probe
            .table_bytes
            .iter()
            .filter(|(t, _)| !NOT_PER_EVENT.contains(&t.as_str()))
            .filter_map(|(t, b)| retention_days(t).map(|d| *b as f64 * d))
            .sum();
        total / self.usage.events.max(1) as f64
    }

    /// Bytes of the tables kept for good (`bot_users`, `error_groups`) after the day, per
    /// event: they grow with the distinct users and errors, not with the days.
    pub fn kept_bytes_per_event(&self) -> f64 {
        let total: u64 = self
            .probe
            .table_bytes
            .iter()
            .filter(|(t, _)| retention_days(t).is_none() && !NOT_PER_EVENT.contains(&t.as_str()))
            .map(|(_, b)| *b)
            .sum();
        total as f64 / self.usage.events.max(1) as f64
    }
}

/// Runs the built-in model's day of `events` through the consumer on `d1`.
pub fn measure(events: u64, seed: u64, config: Config, d1: D1) -> Day {
    let (usage, probe) = simulate_probed(&sessions(events, seed), config, d1);
    Day { usage, probe }
}

/// Cloudflare's documented limits that bound this pipeline (checked 2026-12-02).
pub mod limits {
    /// Queues: messages a second per queue.
    pub const QUEUE_MESSAGES_PER_SECOND: f64 = 5_000.0;
    /// Queues: concurrent consumer invocations (push consumers).
    pub const CONSUMER_CONCURRENCY: f64 = 250.0;
    /// Analytics Engine: data points per Worker invocation.
    pub const AE_POINTS_PER_INVOCATION: f64 = 250.0;
    /// D1: the largest database, bytes (Workers Paid; "cannot be further increased").
    pub const D1_DATABASE_BYTES: f64 = 10e9;
    /// D1: storage per account, bytes (Workers Paid; can be raised on request).
    pub const D1_ACCOUNT_BYTES: f64 = 1e12;
    /// D1: queries per Worker invocation (Workers Paid).
    pub const D1_QUERIES_PER_INVOCATION: f64 = 1_000.0;
    /// Seconds in a day.
    pub const DAY: f64 = 86_400.0;
}

/// Consumer events a second at consumer concurrency 1 in local workerd, measured by
/// `bench --consumer-only` on 2026-12-02 (20,000 events through the local queue into local D1;
/// 1,164 and 1,276 in two runs on a 2-core machine at a load average of 7.6). Locally every
/// event also writes the development mirror of Analytics Engine (`analytics_points_local`),
/// which production does not. Local queues deliver one batch at a time whatever
/// `max_concurrency` says, so this is the only concurrency measured there.
pub const LOCAL_CONSUMER_EVENTS_PER_SECOND: f64 = 1_276.0;

/// The consumer's `max_concurrency` in `wrangler.consumer.toml`.
pub const SHIPPED_MAX_CONCURRENCY: f64 = 10.0;

/// Assumed: the busiest minutes of a day carry this many times the day's average rate. Rate
/// limits are divided by it; storage is not.
pub const PEAK_FACTOR: f64 = 3.0;

/// Traffic levels the report looks at, events a day.
pub const LEVELS: [f64; 3] = [10e6, 100e6, 1e9];

fn grouped(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Events a day in words: `23 M`, `1.2 B`.
pub fn per_day(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.1} B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0} M", n / 1e6)
    } else {
        grouped(n)
    }
}

/// A component of the pipeline, its documented limit, and the events a day it allows.
#[derive(Debug, Clone)]
pub struct Bound {
    /// What it is.
    pub component: &'static str,
    /// The limit, as documented or measured.
    pub limit: String,
    /// Events a day it allows (flat traffic for storage; at the assumed peak for rates).
    pub events_per_day: f64,
}

/// The bounds of the shipped design from a measured day.
pub fn bounds(day: &Day, file: &Day) -> Vec<Bound> {
    use limits::*;
    let epm = day.usage.events_per_message();
    let steady = day.steady_bytes_per_event();
    vec![
        Bound {
            component: "queue messages a second",
            limit: format!("5,000 messages/s per queue; {epm:.1} events/message"),
            events_per_day: QUEUE_MESSAGES_PER_SECOND * epm * DAY / PEAK_FACTOR,
        },
        Bound {
            component: "consumer concurrency",
            limit: format!(
                "250 invocations at once, each of 250 events at {} events/s (local workerd, concurrency 1)",
                grouped(LOCAL_CONSUMER_EVENTS_PER_SECOND)
            ),
            events_per_day: CONSUMER_CONCURRENCY * LOCAL_CONSUMER_EVENTS_PER_SECOND * DAY
                / PEAK_FACTOR,
        },
        Bound {
            component: "consumer at the shipped max_concurrency 10",
            limit: format!(
                "10 invocations at once (`wrangler.consumer.toml`), each at {} events/s",
                grouped(LOCAL_CONSUMER_EVENTS_PER_SECOND)
            ),
            events_per_day: SHIPPED_MAX_CONCURRENCY * LOCAL_CONSUMER_EVENTS_PER_SECOND * DAY
                / PEAK_FACTOR,
        },
        Bound {
            component: "one D1 database: one writer",
            limit: format!(
                "one query at a time; the consumer's transactions ran at {} events/s on SQLite in a WAL file (here)",
                grouped(file.d1_events_per_second())
            ),
            events_per_day: file.d1_events_per_second() * DAY / PEAK_FACTOR,
        },
        Bound {
            component: "one D1 database: 10 GB",
            limit: format!(
                "10 GB, not raisable; {steady:.0} bytes held per event a day (steady state, retention applied)"
            ),
            events_per_day: D1_DATABASE_BYTES / steady,
        },
        Bound {
            component: "D1 storage per account",
            limit: "1 TB (Workers Paid; raisable on request)".into(),
            events_per_day: D1_ACCOUNT_BYTES / steady,
        },
    ]
}

/// The bounds with the bots' rows spread over `shards` D1 databases by bot (each bot's rows in
/// one database, bots balanced over them): what is per database is multiplied, and the
/// consumer's `max_concurrency` (capped at 10 to protect the one database) is raised to the
/// platform's 250; the rest stays. One bot alone still has the single-database bounds.
pub fn sharded(bounds: &[Bound], shards: usize) -> Vec<Bound> {
    bounds
        .iter()
        .map(|b| {
            if b.component.starts_with("one D1 database") {
                Bound {
                    component: b.component,
                    limit: format!("{} — × {shards} databases", b.limit),
                    events_per_day: b.events_per_day * shards as f64,
                }
            } else if b.component.contains("max_concurrency") {
                Bound {
                    component: b.component,
                    limit: format!("{} — raised to 250", b.limit),
                    events_per_day: b.events_per_day * limits::CONSUMER_CONCURRENCY
                        / SHIPPED_MAX_CONCURRENCY,
                }
            } else {
                b.clone()
            }
        })
        .collect()
}

/// The `first to bind` table of `bounds` at [`LEVELS`].
fn levels_table(bounds: &[Bound]) -> String {
    let mut sorted = bounds.to_vec();
    sorted.sort_by(|a, b| a.events_per_day.total_cmp(&b.events_per_day));
    let mut out = String::from("| events a day |");
    for b in bounds {
        out += &format!(" {} |", b.component);
    }
    out += " first to bind |\n| --- |";
    for _ in bounds {
        out += " --- |";
    }
    out += " --- |\n";
    for level in LEVELS {
        out += &format!("| {} |", per_day(level));
        for b in bounds {
            out += &format!(" {:.0} % |", 100.0 * level / b.events_per_day);
        }
        out += &match sorted.iter().find(|b| b.events_per_day < level) {
            Some(b) => format!(" {} (from {}) |\n", b.component, per_day(b.events_per_day)),
            None => format!(
                " none (next: {} at {}) |\n",
                sorted[0].component,
                per_day(sorted[0].events_per_day)
            ),
        };
    }
    out
}

/// Databases the sharded design of `docs/scale.md` is costed with.
pub const SHARDS: usize = 64;

/// The whole `make scale` report (markdown), from a day of `events` on SQLite in memory and
/// in a WAL file.
pub fn report(events: u64, config: Config) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let memory = measure(
        events,
        20_261_127,
        config,
        D1::new().map_err(|e| e.to_string())?,
    );
    let file = measure(
        events,
        20_261_127,
        config,
        D1::open_file(&dir.path().join("scale.sqlite")).map_err(|e| e.to_string())?,
    );
    let mut out = format!(
        "Measured on this machine (a shared 2-core VM): the built-in model's day of {} events ({} queue messages, {:.1} events/message, {} consumer invocations), its consumer transactions run on one SQLite database:\n\n\
         | D1 stand-in | transactions | statements | time in D1 | events/s | statements/s | rows written/s |\n| --- | --- | --- | --- | --- | --- | --- |\n",
        grouped(memory.usage.events as f64),
        grouped(memory.usage.queue_messages as f64),
        memory.usage.events_per_message(),
        grouped(memory.usage.consumer_invocations as f64),
    );
    for (name, day) in [("SQLite in memory", &memory), ("SQLite file, WAL", &file)] {
        out += &format!(
            "| {name} | {} | {} | {:.1} s | {} | {} | {} |\n",
            grouped(day.probe.d1_transactions as f64),
            grouped(day.probe.d1_statements as f64),
            day.probe.d1_seconds,
            grouped(day.d1_events_per_second()),
            grouped(day.d1_statements_per_second()),
            grouped(day.d1_rows_written_per_second()),
        );
    }
    out += "\nWhat the day's rows occupy before retention (SQLite pages in use, indexes included), and what a database holds in the steady state, per event a day:\n\n\
            | table | bytes of the day | bytes/event | kept | held per event a day |\n| --- | --- | --- | --- | --- |\n";
    let n = memory.usage.events.max(1) as f64;
    for (table, bytes) in &memory.probe.table_bytes {
        if NOT_PER_EVENT.contains(&table.as_str()) {
            continue;
        }
        let kept = retention_days(table);
        out += &format!(
            "| `{table}` | {} | {:.1} | {} | {} |\n",
            grouped(*bytes as f64),
            *bytes as f64 / n,
            kept.map_or("for good".into(), |d| format!("{d:.0} days")),
            kept.map_or("grows with users and errors".into(), |d| format!(
                "{:.0}",
                *bytes as f64 / n * d
            )),
        );
    }
    out += &format!(
        "| **total** | | | | **{:.0} bytes**, plus {:.1} per event for good |\n\n",
        memory.steady_bytes_per_event(),
        memory.kept_bytes_per_event()
    );
    let bounds = bounds(&memory, &file);
    out += &format!(
        "What each limit allows (rates at an assumed peak of {PEAK_FACTOR}× the day's average; storage at the steady state):\n\n\
         | component | limit | events a day it allows |\n| --- | --- | --- |\n"
    );
    let mut sorted = bounds.clone();
    sorted.sort_by(|a, b| a.events_per_day.total_cmp(&b.events_per_day));
    for b in &sorted {
        out += &format!(
            "| {} | {} | {} |\n",
            b.component,
            b.limit,
            per_day(b.events_per_day)
        );
    }
    out += "\n**Before** (the shipped design: one D1 database), share of each limit used:\n\n";
    out += &levels_table(&bounds);
    out += &format!(
        "\n**After** (bots' rows sharded by bot over {SHARDS} D1 databases, and the consumer's `max_concurrency` raised from 10 to 250; one bot alone keeps the single-database figures):\n\n"
    );
    out += &levels_table(&sharded(&bounds, SHARDS));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_day_accounts_for_its_rows_and_time() {
        let day = measure(
            5_000,
            7,
            Config::shipped(),
            D1::new().expect("the migrations apply"),
        );
        assert_eq!(day.usage.events, day.usage.ae_points);
        assert!(day.probe.d1_transactions >= 2 * day.usage.consumer_invocations);
        assert!(day.probe.d1_statements > day.probe.d1_transactions);
        let tables: Vec<&str> = day
            .probe
            .table_bytes
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        for table in ["request_attempts", "processed_envelopes", "bot_users"] {
            assert!(tables.contains(&table), "{table} in {tables:?}");
        }
        // A claim row per update, kept a week: the request table is not empty.
        let requests = day
            .probe
            .table_bytes
            .iter()
            .find(|(t, _)| t == "request_attempts")
            .map(|(_, b)| *b)
            .unwrap();
        assert!(requests >= 4_096, "{requests}");
        assert!(
            !tables.contains(&"forgotten_users"),
            "a table the day left empty gained nothing: {tables:?}"
        );
        assert!(day.steady_bytes_per_event() > 0.0);
        assert!(day.kept_bytes_per_event() > 0.0);
    }

    #[test]
    fn sharding_multiplies_only_what_is_per_database() {
        let bound = |component, events_per_day| Bound {
            component,
            limit: String::new(),
            events_per_day,
        };
        let before = vec![
            bound("one D1 database: 10 GB", 20e6),
            bound("queue messages a second", 1.6e9),
            bound("consumer at the shipped max_concurrency 10", 300e6),
        ];
        let after = sharded(&before, 16);
        assert_eq!(after[0].events_per_day, 320e6);
        assert_eq!(after[1].events_per_day, 1.6e9);
        assert_eq!(after[2].events_per_day, 7.5e9);
        let table = levels_table(&before);
        assert!(table.contains("| 10 M |"), "{table}");
        assert!(
            table.contains("one D1 database: 10 GB (from 20 M)"),
            "{table}"
        );
        let table = levels_table(&after);
        assert!(
            table.contains("none (next: one D1 database: 10 GB at 320 M)"),
            "{table}"
        );
        assert!(
            table.contains("one D1 database: 10 GB (from 320 M)"),
            "{table}"
        );
    }

    #[test]
    fn every_table_that_retention_empties_has_its_days() {
        for table in [
            "request_attempts",
            "processed_envelopes",
            "error_events",
            "user_days",
            "user_events",
            "daily_rollup",
        ] {
            assert!(retention_days(table).is_some(), "{table}");
        }
        assert_eq!(retention_days("bot_users"), None);
    }
}
