//! `make economy`: what a day of traffic costs on Cloudflare, computed by running the real
//! policy code on a virtual clock — the bot's outbox (coalescing, full messages, splitting)
//! from `analytics_core::delivery`, the consumer's batching (`max_batch_size`, `max_batch_timeout`) and
//! its D1 statements from `ingest_policy` — for one bot isolate or several, with a routing model
//! that says which isolate serves each request (see `docs/economy.md`).

pub mod d1_cost;
pub mod scale;
pub mod sqlite;
pub mod traffic;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use analytics_core::delivery::{Message, Outbox, Role, SendOutcome};
use analytics_core::{samples, DropCounts, NewEvent, Tracker};
use ingest_policy::store::CommitResult;
use ingest_policy::{BatchContext, IncomingMessage};

use sqlite::D1;
use traffic::Update;

/// How the platform spreads a Worker's requests over its isolates. Each isolate has its own
/// outbox and coalesces only the requests it serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Routing {
    /// Every request lands on one of the isolates, uniformly at random.
    Random,
    /// A share of the requests (0 to 1) lands on one warm isolate; the rest are spread
    /// uniformly over the others.
    Sticky {
        /// The warm isolate's share of the requests.
        share: f64,
    },
}

impl Routing {
    /// The sticky model's default share: 80 % of the requests on the warm isolate.
    pub const DEFAULT_STICKY_SHARE: f64 = 0.8;

    /// Parses `random`, `sticky` (the default share) or `sticky:SHARE` (0 to 1).
    pub fn parse(text: &str) -> Result<Routing, RoutingError> {
        match text.split_once(':') {
            None if text == "random" => Ok(Routing::Random),
            None if text == "sticky" => Ok(Routing::Sticky {
                share: Routing::DEFAULT_STICKY_SHARE,
            }),
            Some(("sticky", share)) => share
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=1.0).contains(s))
                .map(|share| Routing::Sticky { share })
                .ok_or_else(|| {
                    RoutingError(format!(
                        "sticky share {share:?} is not a number from 0 to 1"
                    ))
                }),
            _ => Err(RoutingError(format!(
                "routing {text:?} is not random, sticky or sticky:SHARE"
            ))),
        }
    }

    /// The isolate (0 to `isolates` − 1) that serves the next request. Draws nothing when
    /// there is one isolate, so one isolate is the same day whatever the model.
    pub fn pick(&self, isolates: usize, rng: &mut traffic::Rng) -> usize {
        if isolates <= 1 {
            return 0;
        }
        match *self {
            Routing::Random => ((rng.next_f64() * isolates as f64) as usize).min(isolates - 1),
            Routing::Sticky { share } => {
                if rng.next_f64() < share {
                    0
                } else {
                    let others = isolates - 1;
                    1 + ((rng.next_f64() * others as f64) as usize).min(others - 1)
                }
            }
        }
    }

    /// A short name for tables: `random`, or `sticky 80 %`.
    pub fn label(&self) -> String {
        match self {
            Routing::Random => "random".into(),
            Routing::Sticky { share } => format!("sticky {:.0} %", share * 100.0),
        }
    }
}

/// A routing model that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingError(pub String);

impl std::fmt::Display for RoutingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RoutingError {}

/// The seed of the routing draws (apart from the traffic's, so routing never changes the
/// updates of a day).
const ROUTING_SEED: u64 = 0x150_1a7e;

/// The knobs the simulation turns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The bot's coalescing window, ms.
    pub window_ms: f64,
    /// The consumer's `max_batch_size`.
    pub max_batch_size: usize,
    /// The consumer's `max_batch_timeout`, ms.
    pub max_batch_timeout_ms: f64,
    /// Bot isolates serving the day's requests (at least 1).
    pub isolates: usize,
    /// Which isolate serves each request.
    pub routing: Routing,
}

impl Config {
    /// The shipped settings: the library's default window and `wrangler.consumer.toml`'s
    /// batching.
    pub fn shipped() -> Config {
        Config {
            window_ms: analytics_core::delivery::DEFAULT_WINDOW_MS,
            max_batch_size: 10,
            max_batch_timeout_ms: 5_000.0,
            isolates: 1,
            routing: Routing::Random,
        }
    }
}

/// What one day of traffic used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Updates the bot answered.
    pub updates: u64,
    /// Events tracked.
    pub events: u64,
    /// Queue messages sent.
    pub queue_messages: u64,
    /// Queue operations: write, read and delete, each per 64 KB of a message.
    pub queue_operations: u64,
    /// Analytics Engine data points written.
    pub ae_points: u64,
    /// D1 rows written, counting index and trigger writes as D1 bills them, with the
    /// retention deletes of the day's rows (what a steady state deletes every day).
    pub d1_rows_written: u64,
    /// Consumer invocations (queue batches).
    pub consumer_invocations: u64,
    /// Events dropped and counted by the outbox (none expected: sends succeed here).
    pub dropped: u64,
}

impl Usage {
    /// Events per queue message.
    pub fn events_per_message(&self) -> f64 {
        self.events as f64 / self.queue_messages.max(1) as f64
    }
}

const QUEUE_OPERATION_BYTES: usize = 64 * 1024;

/// The consumer side: batches as Queues forms them, and their D1 statements run against a
/// SQLite stand-in for D1.
struct Consumer {
    config: Config,
    d1: D1,
    probe: Probe,
    batch: Vec<IncomingMessage>,
    batch_started_ms: f64,
    next_id: u64,
    usage: Usage,
}

impl Consumer {
    fn receive(&mut self, at_ms: f64, message: &Message) {
        if !self.batch.is_empty()
            && at_ms >= self.batch_started_ms + self.config.max_batch_timeout_ms
        {
            let due = self.batch_started_ms + self.config.max_batch_timeout_ms;
            self.deliver(due);
        }
        if self.batch.is_empty() {
            self.batch_started_ms = at_ms;
        }
        let units = message.bytes.len().div_ceil(QUEUE_OPERATION_BYTES).max(1) as u64;
        self.usage.queue_messages += 1;
        self.usage.queue_operations += 3 * units; // write, read, delete
        self.next_id += 1;
        self.batch.push(IncomingMessage {
            id: format!("m{}", self.next_id),
            attempts: 1,
            body: Ok(message.bytes.clone()),
        });
        if self.batch.len() >= self.config.max_batch_size {
            self.deliver(at_ms);
        }
    }

    /// One consumer invocation, as the consumer Worker runs it: the plan, the first D1
    /// transaction (claims, error rows, envelopes), what it answered, the points, and the second
    /// transaction (marks). Nothing fails in a simulated day.
    fn deliver(&mut self, at_ms: f64) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.usage.consumer_invocations += 1;
        let ctx = BatchContext {
            queue: "telegram-analytics",
            now_ms: at_ms as i64,
            point_budget: analytics_core::datapoint::MAX_POINTS_PER_INVOCATION,
        };
        let plan = ingest_policy::plan_batch(&batch, &ctx);
        let statements = ingest_policy::commit_statements(&plan, &ctx);
        let started = std::time::Instant::now();
        let answer = self
            .d1
            .batch(&statements)
            .expect("the consumer's statements run");
        self.probe.d1_seconds += started.elapsed().as_secs_f64();
        self.probe.d1_transactions += 1;
        self.probe.d1_statements += statements.len() as u64;
        let result = CommitResult::read(&statements, &answer).expect("D1's answer reads");
        let after = ingest_policy::after_commit(&plan, &batch, &result, &ctx, None);
        self.usage.ae_points += after.points.len() as u64;
        let started = std::time::Instant::now();
        self.d1.batch(&after.finish).expect("the marks run");
        self.probe.d1_seconds += started.elapsed().as_secs_f64();
        self.probe.d1_transactions += 1;
        self.probe.d1_statements += after.finish.len() as u64;
        self.usage.d1_rows_written = self.d1.rows_written;
    }
}

/// Builds the events of one update (sizes like the bot's own: the sample events in turn, and
/// the sample error event for errors).
fn events_of(update: &Update, seed: u64) -> (Vec<analytics_core::Event>, DropCounts) {
    let at = update.at_ms;
    let mut id_seed = [0u8; 16];
    id_seed[..8].copy_from_slice(&seed.to_le_bytes());
    let tracker = Tracker::new(samples::source(), move || at, id_seed);
    // A Telegram update: its request key can be redelivered, so the consumer claims it.
    tracker.set_request_key(analytics_core::ids::update_request_key(
        "economy-bot",
        seed as i64,
    ));
    let typical = samples::typical_events();
    let user = Some(update.user as i64);
    for i in 0..update.events - update.error_events {
        let e = &typical[i as usize % typical.len()];
        tracker.record(NewEvent {
            kind: Some(e.kind),
            name: e.name.clone(),
            user_id: user,
            chat_id: user,
            duration_ms: e.duration_ms,
            error: None,
            properties: e.properties.clone(),
        });
    }
    let error = samples::error_event();
    for _ in 0..update.error_events {
        tracker.record(NewEvent {
            kind: Some(error.kind),
            name: error.name.clone(),
            error: error.error.clone(),
            ..NewEvent::default()
        });
    }
    tracker.take_events()
}

/// Runs one day of `updates` (sorted by time) through the bot's isolates and the consumer.
/// Each request is served by the isolate [`Routing::pick`] draws (a seeded generator: the same
/// day gives the same figures); each isolate has its own outbox and its own flushers, and all
/// send to the one queue.
pub fn simulate(updates: &[Update], config: Config) -> Usage {
    simulate_probed(updates, config, D1::new().expect("the migrations apply")).0
}

/// What [`simulate_probed`] measured besides the bill: the time the consumer's D1
/// transactions took on the stand-in, and what the day's rows occupy before retention.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    /// Wall time spent in the consumer's D1 transactions (both of every invocation), s.
    pub d1_seconds: f64,
    /// Those transactions.
    pub d1_transactions: u64,
    /// The statements they ran.
    pub d1_statements: u64,
    /// Bytes each table (with its indexes) gained over the day, before the retention deletes:
    /// SQLite's `dbstat` pages in use at the end less those of the empty table; tables that
    /// gained nothing are left out.
    pub table_bytes: Vec<(String, u64)>,
}

/// [`simulate`] on a given stand-in database (in memory, or a file for
/// [`scale`]'s measurements), returning what it measured too.
pub fn simulate_probed(updates: &[Update], config: Config, d1: D1) -> (Usage, Probe) {
    let isolates = config.isolates.max(1);
    let mut outboxes: Vec<Outbox> = (0..isolates)
        .map(|_| Outbox::new(&samples::source(), config.window_ms))
        .collect();
    let mut routes = traffic::Rng::new(ROUTING_SEED);
    let empty_tables = d1.table_bytes().expect("dbstat reads");
    let mut consumer = Consumer {
        config,
        d1,
        probe: Probe::default(),
        batch: Vec::new(),
        batch_started_ms: 0.0,
        next_id: 0,
        usage: Usage::default(),
    };
    // Flushers waiting, by the time they take their outbox: (time in µs, isolate, lease).
    let mut flushes: BinaryHeap<Reverse<(u64, usize, u64)>> = BinaryHeap::new();
    let send = |outbox: &mut Outbox, consumer: &mut Consumer, at: f64, messages: Vec<Message>| {
        for message in messages {
            outbox.sent(message.ticket, SendOutcome::Sent);
            consumer.receive(at, &message);
        }
    };
    let run_flushes_until =
        |t: f64,
         outboxes: &mut [Outbox],
         consumer: &mut Consumer,
         flushes: &mut BinaryHeap<Reverse<(u64, usize, u64)>>| {
            while let Some(Reverse((at_us, isolate, lease))) = flushes.peek().copied() {
                let at = at_us as f64 / 1000.0;
                if at > t {
                    break;
                }
                flushes.pop();
                let outbox = &mut outboxes[isolate];
                let messages = outbox.take(lease, at);
                send(outbox, consumer, at, messages);
            }
        };
    for (i, update) in updates.iter().enumerate() {
        let t = update.at_ms;
        run_flushes_until(t, &mut outboxes, &mut consumer, &mut flushes);
        let (events, dropped) = events_of(update, i as u64 + 1);
        consumer.usage.updates += 1;
        consumer.usage.events += events.len() as u64;
        let isolate = config.routing.pick(isolates, &mut routes);
        let outbox = &mut outboxes[isolate];
        let handover = outbox.add(t, t, events, dropped);
        send(outbox, &mut consumer, t, handover.ready);
        if let Role::Flusher { lease, wait_ms } = handover.role {
            flushes.push(Reverse((((t + wait_ms) * 1000.0) as u64, isolate, lease)));
        }
    }
    run_flushes_until(f64::INFINITY, &mut outboxes, &mut consumer, &mut flushes);
    let end = consumer.batch_started_ms + config.max_batch_timeout_ms;
    consumer.deliver(end);
    // The daily cron's rollup (three days of one bot), as it runs at the end of the day.
    consumer
        .d1
        .batch(&[ingest_policy::rollup::statement(end as i64)])
        .expect("the rollup runs");
    // What the day added: each table's pages now, less what the empty table held.
    let now = consumer.d1.table_bytes().expect("dbstat reads");
    consumer.probe.table_bytes = now
        .into_iter()
        .map(|(table, bytes)| {
            let empty = empty_tables
                .iter()
                .find(|(t, _)| *t == table)
                .map_or(0, |(_, b)| *b);
            (table, bytes.saturating_sub(empty))
        })
        .filter(|(_, bytes)| *bytes > 0)
        .collect();
    // In a steady state every day's rows are deleted again by retention (requests after a week,
    // envelopes and error events after 30 days, active days after 100, user events after 400,
    // rollups after two years; groups keep their counts, users their row): bill those deletes
    // to the day too.
    let deletes: Vec<ingest_policy::Statement> = [
        "request_attempts",
        "processed_envelopes",
        "error_events",
        "rejected_messages",
        "user_days",
        "user_events",
        "daily_rollup",
    ]
    .iter()
    .map(|table| ingest_policy::Statement::write(format!("DELETE FROM {table}"), Vec::new()))
    .collect();
    consumer.d1.batch(&deletes).expect("retention deletes run");
    consumer.usage.d1_rows_written = consumer.d1.rows_written;
    consumer.usage.dropped = outboxes.iter().map(|o| o.carried().total()).sum();
    (consumer.usage, consumer.probe)
}

/// The Cloudflare plans' numbers the report uses (checked 2026-11-27 in Cloudflare's docs).
pub mod plans {
    /// Free plan: queue operations a day.
    pub const FREE_QUEUE_OPERATIONS: u64 = 10_000;
    /// Free plan: Analytics Engine data points a day.
    pub const FREE_AE_POINTS: u64 = 100_000;
    /// Free plan: D1 rows written a day.
    pub const FREE_D1_ROWS_WRITTEN: u64 = 100_000;
    /// Free plan: Workers requests a day (bot updates + consumer invocations).
    pub const FREE_REQUESTS: u64 = 100_000;
    /// Paid plan: the monthly base price, USD.
    pub const PAID_BASE: f64 = 5.0;
    /// Paid plan: included, and price per million beyond, for each line (USD).
    pub const PAID_QUEUE: (f64, f64) = (1e6, 0.40);
    /// Analytics Engine data points.
    pub const PAID_AE: (f64, f64) = (10e6, 0.25);
    /// D1 rows written.
    pub const PAID_D1_WRITES: (f64, f64) = (50e6, 1.00);
    /// Workers requests.
    pub const PAID_REQUESTS: (f64, f64) = (10e6, 0.30);
    /// Days in the billed month.
    pub const DAYS: f64 = 30.0;
}

/// Whether a day's usage fits every daily limit of the free plan, and which line is tightest
/// (its share of the limit).
pub fn free_plan(usage: &Usage) -> (bool, &'static str, f64) {
    let lines = [
        (
            "queue operations",
            usage.queue_operations,
            plans::FREE_QUEUE_OPERATIONS,
        ),
        ("AE points", usage.ae_points, plans::FREE_AE_POINTS),
        (
            "D1 rows written",
            usage.d1_rows_written,
            plans::FREE_D1_ROWS_WRITTEN,
        ),
        (
            "Workers requests",
            usage.updates + usage.consumer_invocations,
            plans::FREE_REQUESTS,
        ),
    ];
    let (name, share) = lines
        .iter()
        .map(|(n, used, limit)| (*n, *used as f64 / *limit as f64))
        .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    (share <= 1.0, name, share)
}

/// The monthly bill on the paid plan for 30 days like this one: the total and each line
/// beyond what is included (USD), largest first.
pub fn paid_plan(usage: &Usage) -> (f64, Vec<(&'static str, f64)>) {
    let month = |daily: u64| daily as f64 * plans::DAYS;
    let over = |used: f64, (included, per_million): (f64, f64)| {
        ((used - included).max(0.0) / 1e6) * per_million
    };
    let mut lines = vec![
        (
            "queue operations",
            over(month(usage.queue_operations), plans::PAID_QUEUE),
        ),
        ("AE points", over(month(usage.ae_points), plans::PAID_AE)),
        (
            "D1 rows written",
            over(month(usage.d1_rows_written), plans::PAID_D1_WRITES),
        ),
        (
            "Workers requests",
            over(
                month(usage.updates + usage.consumer_invocations),
                plans::PAID_REQUESTS,
            ),
        ),
    ];
    lines.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = plans::PAID_BASE + lines.iter().map(|l| l.1).sum::<f64>();
    (total, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> d1_cost::Schema {
        d1_cost::repository_schema()
    }

    #[test]
    fn a_longer_window_packs_more_events_per_message() {
        let updates = traffic::sessions(10_000, 3);
        let short = simulate(
            &updates,
            Config {
                window_ms: 100.0,
                ..Config::shipped()
            },
        );
        let long = simulate(
            &updates,
            Config {
                window_ms: 20_000.0,
                ..Config::shipped()
            },
        );
        assert_eq!(short.events, long.events);
        assert_eq!(long.ae_points, long.events, "every event becomes one point");
        assert_eq!(long.dropped, 0);
        assert!(
            long.queue_messages * 2 < short.queue_messages,
            "{long:?} vs {short:?}"
        );
    }

    #[test]
    fn full_messages_leave_at_once_and_batches_cap_at_ten() {
        // 100 updates of 5 events in one second: 20 full messages, whatever the window.
        let updates: Vec<Update> = (0..100)
            .map(|i| Update {
                at_ms: f64::from(i) * 10.0,
                events: 5,
                error_events: 0,
                user: 1,
            })
            .collect();
        let usage = simulate(&updates, Config::shipped());
        assert_eq!(usage.queue_messages, 20);
        assert_eq!(usage.queue_operations, 60);
        assert_eq!(usage.consumer_invocations, 2);
    }

    #[test]
    fn error_events_cost_d1_rows() {
        let plain = [Update {
            at_ms: 0.0,
            events: 3,
            error_events: 0,
            user: 1,
        }];
        let failing = [Update {
            at_ms: 0.0,
            events: 3,
            error_events: 1,
            user: 1,
        }];
        let a = simulate(&plain, Config::shipped());
        let b = simulate(&failing, Config::shipped());
        assert!(b.d1_rows_written > a.d1_rows_written);
        // Its row, indexes and group upsert, and its retention delete (row and indexes).
        let s = schema();
        assert_eq!(
            b.d1_rows_written - a.d1_rows_written,
            s.insert_cost("error_events") + 1 + s.indexes_on("error_events")
        );
    }

    #[test]
    fn returning_users_cost_fewer_rows_than_new_ones() {
        // Ten updates a minute apart, each its own batch: by one user, or by ten.
        let day = |user: fn(u64) -> u64| -> Vec<Update> {
            (0..10)
                .map(|i| Update {
                    at_ms: i as f64 * 60_000.0,
                    events: 2,
                    error_events: 0,
                    user: user(i),
                })
                .collect()
        };
        let one = simulate(&day(|_| 7), Config::shipped());
        let ten = simulate(&day(|i| i + 1), Config::shipped());
        assert_eq!(one.queue_messages, ten.queue_messages);
        // Ten users: nine more user_days rows and their retention deletes. The one user's
        // later upserts move last_seen, writing the row and its first_seen index as D1 counts
        // them (measured in local D1), as much as a new user's insert.
        assert_eq!(
            ten.d1_rows_written - one.d1_rows_written,
            9 * 2,
            "{one:?} {ten:?}"
        );
    }

    /// The built-in model's day at 10,000 events, as `make economy` draws it.
    fn ten_thousand() -> Vec<Update> {
        traffic::sessions(10_000, 20_261_127)
    }

    fn with(isolates: usize, routing: Routing) -> Config {
        Config {
            isolates,
            routing,
            ..Config::shipped()
        }
    }

    #[test]
    fn one_isolate_is_the_single_isolate_day_whatever_the_routing() {
        let updates = ten_thousand();
        let random = simulate(&updates, with(1, Routing::Random));
        // The figures docs/economy.md printed for one isolate before isolates existed.
        assert_eq!(
            (
                random.queue_messages,
                random.queue_operations,
                random.d1_rows_written,
                random.consumer_invocations
            ),
            (1_045, 3_135, 14_073, 1_036),
            "{random:?}"
        );
        let sticky = simulate(&updates, with(1, Routing::Sticky { share: 0.3 }));
        assert_eq!(random, sticky);
        // All requests on the warm isolate: the same day as one isolate.
        let all_warm = simulate(&updates, with(8, Routing::Sticky { share: 1.0 }));
        assert_eq!(random, all_warm);
    }

    #[test]
    fn more_isolates_never_pack_more_events_per_message() {
        let updates = ten_thousand();
        let days: Vec<Usage> = [1, 2, 4, 8, 16]
            .iter()
            .map(|&n| simulate(&updates, with(n, Routing::Random)))
            .collect();
        for pair in days.windows(2) {
            let (fewer, more) = (&pair[0], &pair[1]);
            assert_eq!(fewer.events, more.events);
            assert_eq!(more.ae_points, more.events);
            assert_eq!(more.dropped, 0);
            assert!(
                more.events_per_message() <= fewer.events_per_message(),
                "{fewer:?} then {more:?}"
            );
            assert!(more.queue_operations >= fewer.queue_operations);
        }
        // 16 isolates at random split a session's taps: far fewer events share a message.
        assert!(
            days[4].queue_messages > days[0].queue_messages * 2,
            "{days:?}"
        );
    }

    #[test]
    fn a_warm_isolate_keeps_most_of_the_coalescing() {
        let updates = ten_thousand();
        let one = simulate(&updates, with(1, Routing::Random));
        let random = simulate(&updates, with(8, Routing::Random));
        let sticky = simulate(&updates, with(8, Routing::Sticky { share: 0.8 }));
        assert!(
            one.events_per_message() > sticky.events_per_message()
                && sticky.events_per_message() > random.events_per_message(),
            "{one:?} {sticky:?} {random:?}"
        );
        assert_eq!(sticky.events, random.events);
    }

    #[test]
    fn routing_draws_as_its_model_says() {
        let mut rng = traffic::Rng::new(3);
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[Routing::Random.pick(4, &mut rng)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[Routing::Sticky { share: 0.8 }.pick(4, &mut rng)] += 1;
        }
        assert!((31_000..33_000).contains(&counts[0]), "{counts:?}");
        assert!(
            counts[1..].iter().all(|&c| (2_300..3_000).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(Routing::parse("random"), Ok(Routing::Random));
        assert_eq!(
            Routing::parse("sticky"),
            Ok(Routing::Sticky {
                share: Routing::DEFAULT_STICKY_SHARE
            })
        );
        assert_eq!(
            Routing::parse("sticky:0.5"),
            Ok(Routing::Sticky { share: 0.5 })
        );
        for bad in ["", "sticky:2", "sticky:x", "round-robin", "random:1"] {
            assert!(Routing::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bill_counts_only_beyond_what_is_included() {
        let small = Usage {
            updates: 100,
            events: 300,
            queue_messages: 10,
            queue_operations: 30,
            ae_points: 300,
            d1_rows_written: 50,
            consumer_invocations: 5,
            dropped: 0,
        };
        assert_eq!(paid_plan(&small).0, plans::PAID_BASE);
        assert!(free_plan(&small).0);
        let big = Usage {
            queue_operations: 1_000_000,
            ..small
        };
        let (total, lines) = paid_plan(&big);
        assert_eq!(lines[0].0, "queue operations");
        assert!((total - (5.0 + 29.0 * 0.40)).abs() < 1e-9, "{total}");
        assert!(!free_plan(&big).0);
    }
}
