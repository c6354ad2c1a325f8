//! Every SQL text of the dashboard, in one place.
//!
//! **Analytics Engine queries** are rendered in one of two dialects: [`Dialect::AnalyticsEngine`]
//! for the SQL API (production) and [`Dialect::Sqlite`] for the local mirror in D1 (`make dev`).
//! Both read the columns named in [`crate::columns`] and return the same result columns. The SQL
//! API has no bind parameters, so the only values interpolated are times this crate formats
//! itself from a fixed range ([`crate::timefmt::sql_datetime`]: digits, `-`, `:` and a space)
//! and constants; nothing from a request ever reaches this text.
//!
//! Counts are weighted by `_sample_interval` and percentiles use
//! `quantileExactWeighted(q)(value, _sample_interval)`. SQLite has no weighted quantile, so the
//! local rendering computes the same thing with window functions (cumulative weight ordered by
//! value; the first value whose cumulative weight reaches `q × total`, which is ClickHouse's
//! rule too).
//!
//! **D1 queries** are static text with numbered parameters (`?1`, `?2`), always bound.

use crate::columns::{
    BOT, COMMAND, DATASET, DURATION_MS, EVENT_TIME_MS, HAS_TELEGRAM_LAG, KIND, KIND_CALLBACK,
    KIND_COMMAND, KIND_PERFORMANCE, KIND_UPDATE, KIND_USER, NAME, NAME_HANDLER, NAME_MESSAGE,
    NAME_NOT_UNDERSTOOD, SOURCE, TELEGRAM_LAG_MS, USER,
};
use crate::funnel::{Funnel, Step};
use crate::range::Window;
use crate::timefmt::sql_datetime;

/// Which SQL dialect an Analytics Engine query is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The Analytics Engine SQL API (ClickHouse-like).
    AnalyticsEngine,
    /// SQLite, for the local mirror in D1 (`analytics_points_local` and its view).
    Sqlite,
}

/// Rows to show in the commands and callbacks table.
pub const TOP_NAMES: usize = 20;

fn since(dialect: Dialect, start_ms: i64) -> String {
    let at = sql_datetime(start_ms);
    match dialect {
        Dialect::AnalyticsEngine => format!("timestamp >= toDateTime('{at}')"),
        Dialect::Sqlite => format!("timestamp >= '{at}'"),
    }
}

/// `AND blob1 = '<bot>'` for one bot's points, nothing for every bot's. The name was validated by
/// the route (`route::parse_bot`); anything but a name's characters is dropped here as well, so
/// no text can leave the literal.
fn bot_filter(bot: Option<&str>) -> String {
    match bot {
        Some(bot) => {
            let name: String = bot
                .chars()
                .filter(|c| analytics_core::text::is_bot_name_char(*c))
                .collect();
            format!(" AND {BOT} = '{name}'")
        }
        None => String::new(),
    }
}

fn start_of_hour(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::AnalyticsEngine => "toStartOfHour(timestamp)",
        Dialect::Sqlite => "strftime('%Y-%m-%d %H:00:00', timestamp)",
    }
}

fn start_of_day(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::AnalyticsEngine => "toStartOfDay(timestamp)",
        Dialect::Sqlite => "strftime('%Y-%m-%d 00:00:00', timestamp)",
    }
}

/// Delivery lag in ms: when the point was written (`timestamp`, whole seconds) minus when the
/// event happened.
fn lag_ms(dialect: Dialect) -> String {
    match dialect {
        Dialect::AnalyticsEngine => format!("toUnixTimestamp(timestamp) * 1000 - {EVENT_TIME_MS}"),
        Dialect::Sqlite => {
            format!("(CAST(strftime('%s', timestamp) AS INTEGER) * 1000 - {EVENT_TIME_MS})")
        }
    }
}

/// Which rows the delivery lag queries read: those written in the window that carry an event
/// time.
fn lag_filter(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    format!(
        "{} AND {EVENT_TIME_MS} > 0{}",
        since(dialect, window.start_ms),
        bot_filter(bot)
    )
}

/// SQLite: aggregates and weighted quantiles of `v` (weight `w`) per `group` over the rows of
/// `inner`, which must select the group columns, `v`, `w` and whatever `aggregates` use.
fn sqlite_weighted(
    inner: &str,
    group: &[&str],
    aggregates: &[(&str, &str)],
    quantiles: &[(f64, &str)],
    tail: &str,
) -> String {
    let partition = if group.is_empty() {
        String::new()
    } else {
        format!("PARTITION BY {} ", group.join(", "))
    };
    let mut columns: Vec<String> = group.iter().map(|g| g.to_string()).collect();
    columns.extend(
        aggregates
            .iter()
            .map(|(e, alias)| format!("{e} AS {alias}")),
    );
    columns.extend(quantiles.iter().map(|(q, alias)| {
        format!("MIN(CASE WHEN w > 0 AND cum >= {q} * total THEN v END) AS {alias}")
    }));
    let group_by = if group.is_empty() {
        String::new()
    } else {
        format!("\nGROUP BY {}", group.join(", "))
    };
    format!(
        "SELECT {}\nFROM (SELECT *, SUM(w) OVER ({partition}ORDER BY v ROWS UNBOUNDED PRECEDING) AS cum,\n             SUM(w) OVER ({}) AS total\n      FROM ({inner}))\
         {group_by}{tail}",
        columns.join(",\n       "),
        partition.trim_end(),
    )
}

/// Events per hour by kind, weighted. Columns: `hour`, `kind`, `events`.
pub fn events_per_hour(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    format!(
        "SELECT {hour} AS hour, {KIND} AS kind, SUM(_sample_interval) AS events\n\
         FROM {DATASET}\n\
         WHERE {since}{bot}\n\
         GROUP BY hour, kind\n\
         ORDER BY hour, kind",
        hour = start_of_hour(dialect),
        since = since(dialect, window.start_ms),
        bot = bot_filter(bot),
    )
}

/// Which rows the commands table reads: command and callback events, and the handler timings
/// that name a command.
fn names_filter(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    format!(
        "{since}{bot} AND ({KIND} IN ('{KIND_COMMAND}', '{KIND_CALLBACK}') OR ({KIND} = '{KIND_PERFORMANCE}' AND {NAME} = '{NAME_HANDLER}' AND {COMMAND} != ''))",
        since = since(dialect, window.start_ms),
        bot = bot_filter(bot),
    )
}

/// Top commands and callbacks with their uses and the p50/p95 handler duration (from the
/// handler timings, which name the command; `timed` is how many there were, so callbacks,
/// whose timings carry no callback name, show none), per bot: two bots' `/start` are two rows.
/// Columns: `bot`, `kind`, `name`, `uses`, `timed`, `p50_ms`, `p95_ms`.
pub fn commands_and_callbacks(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    let filter = names_filter(dialect, window, bot);
    match dialect {
        Dialect::AnalyticsEngine => format!(
            "SELECT {BOT} AS bot,\n\
             \x20      if({KIND} = '{KIND_CALLBACK}', '{KIND_CALLBACK}', '{KIND_COMMAND}') AS kind,\n\
             \x20      if({KIND} = '{KIND_PERFORMANCE}', {COMMAND}, {NAME}) AS name,\n\
             \x20      SUM(_sample_interval * ({KIND} != '{KIND_PERFORMANCE}')) AS uses,\n\
             \x20      SUM(_sample_interval * ({KIND} = '{KIND_PERFORMANCE}')) AS timed,\n\
             \x20      quantileExactWeighted(0.5)({DURATION_MS}, _sample_interval * ({KIND} = '{KIND_PERFORMANCE}')) AS p50_ms,\n\
             \x20      quantileExactWeighted(0.95)({DURATION_MS}, _sample_interval * ({KIND} = '{KIND_PERFORMANCE}')) AS p95_ms\n\
             FROM {DATASET}\n\
             WHERE {filter}\n\
             GROUP BY bot, kind, name\n\
             ORDER BY uses DESC, name, bot\n\
             LIMIT {TOP_NAMES}"
        ),
        Dialect::Sqlite => sqlite_weighted(
            &format!(
                "SELECT {BOT} AS bot, CASE WHEN {KIND} = '{KIND_CALLBACK}' THEN '{KIND_CALLBACK}' ELSE '{KIND_COMMAND}' END AS kind, \
                 CASE WHEN {KIND} = '{KIND_PERFORMANCE}' THEN {COMMAND} ELSE {NAME} END AS name, \
                 _sample_interval * ({KIND} != '{KIND_PERFORMANCE}') AS u, \
                 _sample_interval * ({KIND} = '{KIND_PERFORMANCE}') AS w, \
                 {DURATION_MS} AS v \
                 FROM {DATASET} WHERE {filter}"
            ),
            &["bot", "kind", "name"],
            &[("SUM(u)", "uses"), ("SUM(w)", "timed")],
            &[(0.5, "p50_ms"), (0.95, "p95_ms")],
            &format!("\nORDER BY uses DESC, name, bot\nLIMIT {TOP_NAMES}"),
        ),
    }
}

/// Distinct users per UTC day, from the first whole day the window touches. Columns: `day`,
/// `users`.
pub fn daily_active_users(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    format!(
        "SELECT {day} AS day, count(DISTINCT {USER}) AS users\n\
         FROM {DATASET}\n\
         WHERE {since} AND {USER} != ''{bot}\n\
         GROUP BY day\n\
         ORDER BY day",
        day = start_of_day(dialect),
        since = since(dialect, window.first_day_ms()),
        bot = bot_filter(bot),
    )
}

/// Delivery lag over the window: weighted events and lag percentiles. Columns: `events`,
/// `p50_ms`, `p95_ms`, `p99_ms`, `max_ms`.
pub fn delivery_lag(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    let lag = lag_ms(dialect);
    let filter = lag_filter(dialect, window, bot);
    match dialect {
        Dialect::AnalyticsEngine => format!(
            "SELECT SUM(_sample_interval) AS events,\n\
             \x20      quantileExactWeighted(0.5)({lag}, _sample_interval) AS p50_ms,\n\
             \x20      quantileExactWeighted(0.95)({lag}, _sample_interval) AS p95_ms,\n\
             \x20      quantileExactWeighted(0.99)({lag}, _sample_interval) AS p99_ms,\n\
             \x20      max({lag}) AS max_ms\n\
             FROM {DATASET}\n\
             WHERE {filter}"
        ),
        Dialect::Sqlite => sqlite_weighted(
            &format!("SELECT {lag} AS v, _sample_interval AS w FROM {DATASET} WHERE {filter}"),
            &[],
            &[("SUM(w)", "events"), ("MAX(v)", "max_ms")],
            &[(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")],
            "",
        ),
    }
}

/// Events stored per hour with their delivery lag percentiles. Columns: `hour`, `events`,
/// `p50_ms`, `p95_ms`.
pub fn delivery_lag_per_hour(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    let filter = lag_filter(dialect, window, bot);
    lag_per_hour(dialect, &lag_ms(dialect), &filter, "events")
}

/// Points matching `filter` per hour (`hour`, their weighted count as `count`) and the weighted
/// p50/p95 of `lag` (`p50_ms`, `p95_ms`), in either dialect.
fn lag_per_hour(dialect: Dialect, lag: &str, filter: &str, count: &str) -> String {
    let hour = start_of_hour(dialect);
    match dialect {
        Dialect::AnalyticsEngine => format!(
            "SELECT {hour} AS hour, SUM(_sample_interval) AS {count},\n\
             \x20      quantileExactWeighted(0.5)({lag}, _sample_interval) AS p50_ms,\n\
             \x20      quantileExactWeighted(0.95)({lag}, _sample_interval) AS p95_ms\n\
             FROM {DATASET}\n\
             WHERE {filter}\n\
             GROUP BY hour\n\
             ORDER BY hour"
        ),
        Dialect::Sqlite => sqlite_weighted(
            &format!(
                "SELECT {hour} AS hour, {lag} AS v, _sample_interval AS w FROM {DATASET} WHERE {filter}"
            ),
            &["hour"],
            &[("SUM(w)", count)],
            &[(0.5, "p50_ms"), (0.95, "p95_ms")],
            "\nORDER BY hour",
        ),
    }
}

/// Telegram → bot delivery per hour (the hour the point was written): dated updates
/// received, weighted, and the percentiles of their lag (the bot's receipt minus the update's
/// `date`, good to a second). Columns: `hour`, `updates`, `p50_ms`, `p95_ms`.
pub fn telegram_lag_per_hour(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    let filter = format!(
        "{} AND {KIND} = '{KIND_UPDATE}' AND {HAS_TELEGRAM_LAG} = 1{}",
        since(dialect, window.start_ms),
        bot_filter(bot)
    );
    lag_per_hour(dialect, TELEGRAM_LAG_MS, &filter, "updates")
}

/// Messages the bot did not understand per UTC day, and messages received, weighted, from the
/// first whole day the window touches (the Users page's "not understood" rate is their ratio).
/// Columns: `day`, `not_understood`, `messages`.
pub fn not_understood_per_day(dialect: Dialect, window: &Window, bot: Option<&str>) -> String {
    let not_understood = format!("({KIND} = '{KIND_USER}' AND {NAME} = '{NAME_NOT_UNDERSTOOD}')");
    let message = format!("({KIND} = '{KIND_UPDATE}' AND {NAME} = '{NAME_MESSAGE}')");
    format!(
        "SELECT {day} AS day,\n\
         \x20      SUM(_sample_interval * {not_understood}) AS not_understood,\n\
         \x20      SUM(_sample_interval * {message}) AS messages\n\
         FROM {DATASET}\n\
         WHERE {since}{bot} AND ({not_understood} OR {message})\n\
         GROUP BY day\n\
         ORDER BY day",
        day = start_of_day(dialect),
        since = since(dialect, window.first_day_ms()),
        bot = bot_filter(bot),
    )
}

/// A time no event has: the first time of a step a user never did.
pub const NEVER_MS: &str = "1000000000000000000.0";

fn step_condition(step: &Step) -> String {
    // Kinds come from a fixed list and names were validated by `funnel::parse_config` (only
    // `A-Z a-z 0-9 _ - .`); anything else is dropped here as well.
    let name: String = step
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    let kind = crate::funnel::STEP_KINDS
        .iter()
        .find(|k| **k == step.kind)
        .copied()
        .unwrap_or("custom");
    format!("({KIND} = '{kind}' AND {NAME} = '{name}')")
}

/// The distinct steps of `funnels`, in first-use order: `t<i>` in [`funnels`] is the first time
/// of step `i`.
pub fn distinct_steps(funnels: &[Funnel]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for step in funnels.iter().flat_map(|f| &f.steps) {
        if !steps.contains(step) {
            steps.push(step.clone());
        }
    }
    steps
}

/// Per user (and bot) in the window: their source (the largest non-empty `source` of their
/// events in the window, usually their only one) and the first time of each of the funnels'
/// distinct steps ([`distinct_steps`]; [`NEVER_MS`] when never). Columns: `bot`, `u`, `src`,
/// `t0`, `t1`, ….
pub fn funnel_first_times(
    dialect: Dialect,
    window: &Window,
    bot: Option<&str>,
    funnels: &[Funnel],
) -> String {
    let steps = distinct_steps(funnels);
    let firsts: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let condition = step_condition(step);
            match dialect {
                Dialect::AnalyticsEngine => {
                    format!("min(if({condition}, {EVENT_TIME_MS}, {NEVER_MS})) AS t{i}")
                }
                Dialect::Sqlite => format!(
                    "MIN(CASE WHEN {condition} THEN {EVENT_TIME_MS} ELSE {NEVER_MS} END) AS t{i}"
                ),
            }
        })
        .collect();
    let any: Vec<String> = steps.iter().map(step_condition).collect();
    format!(
        "SELECT {BOT} AS bot, {USER} AS u, max({SOURCE}) AS src, {firsts}\n\
         FROM {DATASET}\n\
         WHERE {since}{bot} AND {USER} != '' AND ({any} OR {SOURCE} != '')\n\
         GROUP BY bot, u",
        firsts = firsts.join(", "),
        since = since(dialect, window.start_ms),
        bot = bot_filter(bot),
        any = any.join(" OR "),
    )
}

/// Users at each step of each funnel, per source (empty: none), by the rule of
/// [`crate::funnel::reached`] applied to [`funnel_first_times`]. Columns: `source`, then
/// `f<i>_<k>` (funnel i, step k, from 0) for every step of every funnel.
pub fn funnels(dialect: Dialect, window: &Window, bot: Option<&str>, funnels: &[Funnel]) -> String {
    let steps = distinct_steps(funnels);
    let index = |step: &Step| steps.iter().position(|s| s == step).unwrap_or(0);
    let mut columns = Vec::new();
    for (f, funnel) in funnels.iter().enumerate() {
        let t: Vec<usize> = funnel.steps.iter().map(index).collect();
        for k in 0..t.len() {
            let mut conditions = vec![format!("t{} < {NEVER_MS}", t[0])];
            for j in 1..=k {
                conditions.push(format!("t{} >= t{}", t[j], t[j - 1]));
            }
            if k > 0 {
                conditions.push(format!("t{} <= t{} + {}", t[k], t[0], funnel.limit_ms));
            }
            columns.push(format!("sum({}) AS f{f}_{k}", conditions.join(" AND ")));
        }
    }
    format!(
        "SELECT src AS source, {}\nFROM ({})\nGROUP BY source\nORDER BY source",
        columns.join(",\n       "),
        funnel_first_times(dialect, window, bot, funnels)
    )
}

// ---- D1 (always bound parameters) ----

/// Error groups seen since `?1` (ms), of bot `?2` (NULL: every bot), most recent first (the
/// overview's short list).
pub const RECENT_GROUPS: &str = "SELECT fingerprint, kind, last_message, count, last_seen, bot \
     FROM error_groups WHERE last_seen >= ?1 AND (?2 IS NULL OR bot = ?2) \
     ORDER BY last_seen DESC, fingerprint LIMIT 5";

/// How the error groups are sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSort {
    /// Most recently seen first.
    LastSeen,
    /// Most events first.
    Count,
}

impl ErrorSort {
    /// Parses the `sort` query parameter.
    pub fn parse(text: &str) -> Option<ErrorSort> {
        match text {
            "last_seen" => Some(ErrorSort::LastSeen),
            "count" => Some(ErrorSort::Count),
            _ => None,
        }
    }

    /// The query parameter value.
    pub fn as_param(self) -> &'static str {
        match self {
            ErrorSort::LastSeen => "last_seen",
            ErrorSort::Count => "count",
        }
    }
}

/// Most error groups the errors page lists.
pub const MAX_GROUPS: usize = 100;

/// Error groups with the users they affected (over the events still kept), optionally only
/// those seen in release `?1` and of bot `?2` (NULL: all). The order comes from a fixed set.
pub fn error_groups(sort: ErrorSort) -> String {
    let order = match sort {
        ErrorSort::LastSeen => "g.last_seen DESC, g.fingerprint",
        ErrorSort::Count => "g.count DESC, g.last_seen DESC, g.fingerprint",
    };
    format!(
        "SELECT g.fingerprint, g.kind, g.location, g.last_message, g.count, g.first_seen, \
         g.last_seen, g.release, g.bot, g.status, g.resolved_in_release, \
         (SELECT COUNT(DISTINCT e.user_id) FROM error_events e WHERE e.fingerprint = g.fingerprint) AS users \
         FROM error_groups g \
         WHERE (?1 IS NULL OR g.fingerprint IN (SELECT fingerprint FROM error_events WHERE release = ?1)) \
         AND (?2 IS NULL OR g.bot = ?2) \
         ORDER BY {order} LIMIT {MAX_GROUPS}"
    )
}

/// Releases with errors (for the release filter) of bot `?1` (NULL: every bot), most recent
/// first.
pub const RELEASES: &str = "SELECT release, COUNT(*) AS events, MAX(occurred_at) AS last_seen \
     FROM error_events WHERE ?1 IS NULL OR bot = ?1 \
     GROUP BY release ORDER BY last_seen DESC, release LIMIT 50";

/// One error group (`?1` = fingerprint) with the users it affected.
pub const GROUP: &str = "SELECT fingerprint, kind, location, first_seen, last_seen, count, \
     last_message, sample_event_id, release, bot, status, resolved_in_release, \
     (SELECT COUNT(DISTINCT user_id) FROM error_events WHERE fingerprint = ?1) AS users \
     FROM error_groups WHERE fingerprint = ?1";

/// Most events the group page lists.
pub const MAX_GROUP_EVENTS: usize = 50;

/// The most recent events of a group (`?1` = fingerprint).
pub const GROUP_EVENTS: &str = "SELECT event_id, occurred_at, received_at, message, location, \
     user_id, chat_id, bot, release \
     FROM error_events WHERE fingerprint = ?1 ORDER BY occurred_at DESC, event_id LIMIT 50";

/// A group's events per hour (`?1` = fingerprint, `?2` = since, ms). Columns: `hour` (hours since
/// the epoch), `events`.
pub const GROUP_PER_HOUR: &str = "SELECT occurred_at / 3600000 AS hour, COUNT(*) AS events \
     FROM error_events WHERE fingerprint = ?1 AND occurred_at >= ?2 GROUP BY hour ORDER BY hour";

/// What `getWebhookInfo` last answered for each bot (the consumer's 5-minute cron), of bot `?1`
/// (NULL: every bot).
pub const WEBHOOK_HEALTH: &str = "SELECT bot, checked_at, ok, pending_update_count, \
     last_error_date, last_error_message, problem FROM webhook_health \
     WHERE ?1 IS NULL OR bot = ?1 ORDER BY bot LIMIT 50";

/// Stored queue messages since `?1` (ms) of bot `?2` (NULL: every bot) by their number of
/// events, with the producers' drop counts. Columns: `event_count`, `messages`, `send_failed`,
/// `oversize`, `buffer_full`, `cancelled`.
pub const ENVELOPES: &str = "SELECT event_count, COUNT(*) AS messages, \
     SUM(dropped_send_failed) AS send_failed, SUM(dropped_oversize) AS oversize, \
     SUM(dropped_buffer_full) AS buffer_full, SUM(dropped_cancelled) AS cancelled \
     FROM processed_envelopes WHERE received_at >= ?1 AND (?2 IS NULL OR bot = ?2) \
     GROUP BY event_count ORDER BY event_count";

/// Rejected messages since `?1` (ms) by queue and reason.
pub const REJECTED_SUMMARY: &str = "SELECT queue, reason, COUNT(*) AS messages, \
     MAX(received_at) AS last_seen \
     FROM rejected_messages WHERE received_at >= ?1 GROUP BY queue, reason \
     ORDER BY messages DESC, queue, reason LIMIT 50";

/// The most recent rejected messages since `?1` (ms), details cut to 300 characters.
pub const REJECTED_RECENT: &str = "SELECT id, queue, message_id, reason, \
     substr(detail, 1, 300) AS detail, length(payload) AS payload_bytes, received_at \
     FROM rejected_messages WHERE received_at >= ?1 ORDER BY received_at DESC, id DESC LIMIT 20";

// ---- D1: owner analytics (docs/owner-analytics.md) ----

/// Most terms D1 accepts in one compound SELECT, counted per nesting level (D1 builds SQLite
/// with a low `SQLITE_MAX_COMPOUND_SELECT`, and local workerd lower still): [`union_all`] never
/// puts more than this side by side.
pub const D1_COMPOUND_TERMS: usize = 2;

/// `terms` joined by `UNION ALL`, nested so that no level holds more than
/// [`D1_COMPOUND_TERMS`] terms (a subquery in FROM starts a new count).
pub fn union_all(terms: &[String]) -> String {
    if terms.len() <= D1_COMPOUND_TERMS {
        return terms.join(" UNION ALL ");
    }
    let half = terms.len().div_ceil(2);
    let wrap = |part: &[String]| {
        if part.len() == 1 {
            part[0].clone()
        } else {
            format!("SELECT * FROM ({})", union_all(part))
        }
    };
    format!(
        "{} UNION ALL {}",
        wrap(&terms[..half]),
        wrap(&terms[half..])
    )
}

/// Users per UTC day since day `?1` (days since the epoch) of bot `?2` (NULL: every bot), in
/// long form: `metric` is `new` (first seen that day), `active` (a `user_days` row), `returning`
/// (active, first seen before that day), `user_blocked` or `user_unblocked` (events that day).
/// Columns: `day` (days since the epoch), `metric`, `n`. A user of two bots counts for each.
pub fn users_per_day() -> String {
    let terms = [
        "SELECT first_seen / 86400000 AS day, 'new' AS metric, COUNT(*) AS n FROM bot_users \
         WHERE first_seen >= ?1 * 86400000 AND (?2 IS NULL OR bot = ?2) GROUP BY 1",
        "SELECT day, 'active' AS metric, COUNT(*) AS n FROM user_days \
         WHERE day >= ?1 AND (?2 IS NULL OR bot = ?2) GROUP BY 1",
        "SELECT d.day AS day, 'returning' AS metric, COUNT(*) AS n FROM user_days d \
         JOIN bot_users u ON u.bot = d.bot AND u.user_id = d.user_id \
         WHERE d.day >= ?1 AND (?2 IS NULL OR d.bot = ?2) AND u.first_seen < d.day * 86400000 GROUP BY 1",
        "SELECT occurred_at / 86400000 AS day, name AS metric, COUNT(*) AS n FROM user_events \
         WHERE occurred_at >= ?1 * 86400000 AND (?2 IS NULL OR bot = ?2) \
         AND name IN ('user_blocked', 'user_unblocked') GROUP BY 1, 2",
    ];
    format!(
        "SELECT * FROM ({}) ORDER BY day, metric",
        union_all(&terms.map(str::to_string))
    )
}

/// The audience of bot `?2` (NULL: every bot), in long form (`metric`, `key`, `n`): `dau`,
/// `wau`, `mau` (distinct users active on day `?1` — today, days since the epoch — and in the 7
/// and 30 days ending with it), `blocked` (users whose status is blocked now), and among users
/// seen since `?3` (ms) `lang` by language (`key`, empty: unknown) and `premium` (`key` 1, 0, or
/// empty: unknown).
pub fn audience() -> String {
    let terms = [
        "SELECT 'dau' AS metric, '' AS key, COUNT(*) AS n FROM user_days \
         WHERE day = ?1 AND (?2 IS NULL OR bot = ?2)",
        "SELECT 'wau' AS metric, '' AS key, COUNT(*) AS n FROM (SELECT DISTINCT bot, user_id FROM user_days \
         WHERE day > ?1 - 7 AND day <= ?1 AND (?2 IS NULL OR bot = ?2))",
        "SELECT 'mau' AS metric, '' AS key, COUNT(*) AS n FROM (SELECT DISTINCT bot, user_id FROM user_days \
         WHERE day > ?1 - 30 AND day <= ?1 AND (?2 IS NULL OR bot = ?2))",
        "SELECT 'blocked' AS metric, '' AS key, COUNT(*) AS n FROM bot_users \
         WHERE status = 'blocked' AND (?2 IS NULL OR bot = ?2)",
        "SELECT 'lang' AS metric, COALESCE(lang, '') AS key, COUNT(*) AS n FROM bot_users \
         WHERE last_seen >= ?3 AND (?2 IS NULL OR bot = ?2) GROUP BY 2",
        "SELECT 'premium' AS metric, COALESCE(CAST(premium AS TEXT), '') AS key, COUNT(*) AS n \
         FROM bot_users WHERE last_seen >= ?3 AND (?2 IS NULL OR bot = ?2) GROUP BY 2",
    ];
    union_all(&terms.map(str::to_string))
}

/// The daily rollups of bot `?2` (NULL: every bot, one row per bot and day) since day `?1`
/// (days since the epoch); the Users page sums them per month.
pub const ROLLUP_DAYS: &str = "SELECT day, new_users, active_users, blocked, unblocked, payers, \
     revenue, events, errors FROM daily_rollup WHERE day >= ?1 AND (?2 IS NULL OR bot = ?2) \
     ORDER BY day";

/// Weekly cohorts: users first seen since `?1` (ms, a Monday) of bot `?2` (NULL: every bot), by
/// the UTC week (Monday to Sunday) of their first day — `cohort` is weeks since the epoch's first
/// Monday plus one (`(day + 3) / 7`) — and, for each week after it (`week` = (active day − first
/// day) / 7, 0 to 12), how many of them were active then; `week` −1 is the cohort's size.
/// Columns: `cohort`, `week`, `users`.
pub const RETENTION: &str = "\
SELECT (first_seen / 86400000 + 3) / 7 AS cohort, -1 AS week, COUNT(*) AS users FROM bot_users \
WHERE first_seen >= ?1 AND (?2 IS NULL OR bot = ?2) GROUP BY 1 \
UNION ALL \
SELECT cohort, week, COUNT(*) FROM (SELECT DISTINCT u.bot, u.user_id, \
(u.first_seen / 86400000 + 3) / 7 AS cohort, (d.day - u.first_seen / 86400000) / 7 AS week \
FROM user_days d CROSS JOIN bot_users u ON u.bot = d.bot AND u.user_id = d.user_id \
WHERE d.day >= CAST(?1 / 86400000 AS INTEGER) AND u.first_seen >= ?1 AND (?2 IS NULL OR d.bot = ?2) \
AND d.day >= u.first_seen / 86400000 AND d.day < u.first_seen / 86400000 + 91) \
GROUP BY 1, 2 \
ORDER BY 1, 2";

/// Users first seen since `?1` (ms) of bot `?2` (NULL: every bot) by their first-touch source
/// (empty: none): how many, how many were active in their week 1 (days 7–13 after their first
/// day), blocked the bot at least once, are blocked now, and paid at least once. Columns:
/// `source`, `users`, `retained_w1`, `blocked_ever`, `blocked_now`, `payers`. (The joins are
/// driven by `user_days`' and `user_events`' own filters, so each side is read once.)
pub const SOURCES: &str = "\
SELECT COALESCE(u.source, '') AS source, COUNT(*) AS users, \
SUM(r.user_id IS NOT NULL) AS retained_w1, \
SUM(COALESCE(e.blocked, 0)) AS blocked_ever, \
SUM(u.status = 'blocked') AS blocked_now, \
SUM(COALESCE(e.paid, 0)) AS payers \
FROM bot_users u \
LEFT JOIN (SELECT DISTINCT d.bot, d.user_id FROM user_days d \
CROSS JOIN bot_users w ON w.bot = d.bot AND w.user_id = d.user_id \
WHERE d.day >= CAST(?1 / 86400000 AS INTEGER) + 7 AND w.first_seen >= ?1 AND (?2 IS NULL OR d.bot = ?2) \
AND d.day BETWEEN w.first_seen / 86400000 + 7 AND w.first_seen / 86400000 + 13) r \
ON r.bot = u.bot AND r.user_id = u.user_id \
LEFT JOIN (SELECT bot, user_id, MAX(name = 'user_blocked') AS blocked, MAX(name = 'payment') AS paid \
FROM user_events WHERE name IN ('user_blocked', 'payment') AND (?2 IS NULL OR bot = ?2) \
GROUP BY bot, user_id) e ON e.bot = u.bot AND e.user_id = u.user_id \
WHERE u.first_seen >= ?1 AND (?2 IS NULL OR u.bot = ?2) \
GROUP BY 1 ORDER BY users DESC, source LIMIT 200";

/// What users first seen since `?1` (ms) of bot `?2` (NULL: every bot) paid and were refunded,
/// ever, by first-touch source and currency, in the currency's smallest units. Columns:
/// `source`, `currency`, `paid`, `refunded`.
pub const SOURCE_REVENUE: &str = "\
SELECT COALESCE(u.source, '') AS source, COALESCE(e.currency, '') AS currency, \
SUM(CASE WHEN e.name = 'payment' THEN e.amount ELSE 0 END) AS paid, \
SUM(CASE WHEN e.name = 'refund' THEN e.amount ELSE 0 END) AS refunded \
FROM user_events e JOIN bot_users u ON u.bot = e.bot AND u.user_id = e.user_id \
WHERE u.first_seen >= ?1 AND (?2 IS NULL OR u.bot = ?2) AND e.name IN ('payment', 'refund') \
GROUP BY 1, 2 ORDER BY 1, 2";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::Range;

    const NOW: i64 = 1_764_000_000_000;

    fn all_ae(dialect: Dialect, window: &Window) -> Vec<String> {
        [None, Some("quiz-bot")]
            .into_iter()
            .flat_map(|bot| {
                [
                    events_per_hour(dialect, window, bot),
                    commands_and_callbacks(dialect, window, bot),
                    daily_active_users(dialect, window, bot),
                    delivery_lag(dialect, window, bot),
                    delivery_lag_per_hour(dialect, window, bot),
                    telegram_lag_per_hour(dialect, window, bot),
                    not_understood_per_day(dialect, window, bot),
                    funnels(
                        dialect,
                        window,
                        bot,
                        &crate::funnel::parse_config(crate::funnel::EXAMPLE).unwrap(),
                    ),
                ]
            })
            .collect()
    }

    #[test]
    fn compound_selects_stay_within_d1s_limit() {
        let terms: Vec<String> = (0..7).map(|i| format!("SELECT {i}")).collect();
        let sql = union_all(&terms);
        assert_eq!(
            sql,
            "SELECT * FROM (SELECT * FROM (SELECT 0 UNION ALL SELECT 1) UNION ALL SELECT * FROM (SELECT 2 UNION ALL SELECT 3)) \
             UNION ALL SELECT * FROM (SELECT * FROM (SELECT 4 UNION ALL SELECT 5) UNION ALL SELECT 6)"
        );
        assert_eq!(union_all(&terms[..1]), "SELECT 0");
    }

    #[test]
    fn a_bot_filter_cannot_leave_its_literal() {
        let window = Range::Day.window(NOW);
        let sql = events_per_hour(Dialect::AnalyticsEngine, &window, Some("quiz-bot"));
        assert!(sql.contains("AND blob1 = 'quiz-bot'"), "{sql}");
        let hostile = events_per_hour(Dialect::AnalyticsEngine, &window, Some("x' OR 1=1 --"));
        assert!(hostile.contains("AND blob1 = 'xOR11--'"), "{hostile}");
        assert!(!events_per_hour(Dialect::Sqlite, &window, None).contains("blob1"));
    }

    #[test]
    fn analytics_engine_sql_uses_only_its_dialect() {
        for range in Range::ALL {
            let window = range.window(NOW);
            for sql in all_ae(Dialect::AnalyticsEngine, &window) {
                assert!(sql.contains(&format!("FROM {DATASET}")), "{sql}");
                for sqlite_only in ["strftime", "OVER", "CASE", "?1", ";"] {
                    assert!(!sql.contains(sqlite_only), "{sqlite_only} in {sql}");
                }
                assert!(sql.contains("toDateTime('"), "{sql}");
            }
            for sql in all_ae(Dialect::Sqlite, &window) {
                for ae_only in [
                    "toDateTime",
                    "toStartOf",
                    "quantile",
                    "toUnixTimestamp",
                    "if(",
                ] {
                    assert!(!sql.contains(ae_only), "{ae_only} in {sql}");
                }
            }
        }
    }

    #[test]
    fn counts_are_weighted_by_the_sample_interval() {
        let window = Range::Day.window(NOW);
        for dialect in [Dialect::AnalyticsEngine, Dialect::Sqlite] {
            for sql in all_ae(dialect, &window) {
                assert!(
                    !sql.contains("count()") && !sql.contains("COUNT(*)"),
                    "{sql}"
                );
                let weighted = sql.contains("_sample_interval");
                let distinct_users = sql.contains("count(DISTINCT");
                // Funnels count users: one row per user of an inner GROUP BY.
                let per_user = sql.contains("GROUP BY bot, u");
                assert!(weighted || distinct_users || per_user, "{sql}");
            }
        }
    }

    #[test]
    fn the_only_interpolated_values_are_our_own_times() {
        let window = Range::Week.window(NOW);
        let sql = events_per_hour(Dialect::AnalyticsEngine, &window, None);
        assert!(sql.contains("toDateTime('2025-11-17 17:00:00')"), "{sql}");
        // Every quoted literal is a known constant or a formatted time.
        for dialect in [Dialect::AnalyticsEngine, Dialect::Sqlite] {
            for sql in all_ae(dialect, &window) {
                for (i, literal) in sql.split('\'').enumerate() {
                    if i % 2 == 1 {
                        let ok = literal
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || " -:_%".contains(c));
                        assert!(ok, "unexpected literal {literal:?} in {sql}");
                    }
                }
            }
        }
    }

    #[test]
    fn sort_parses_from_a_fixed_set() {
        assert_eq!(ErrorSort::parse("count"), Some(ErrorSort::Count));
        assert_eq!(ErrorSort::parse("last_seen"), Some(ErrorSort::LastSeen));
        assert_eq!(ErrorSort::parse("count DESC; --"), None);
        assert!(error_groups(ErrorSort::Count).contains("ORDER BY g.count DESC"));
        assert!(error_groups(ErrorSort::LastSeen).contains("ORDER BY g.last_seen DESC"));
        assert!(error_groups(ErrorSort::Count).contains(&format!("LIMIT {MAX_GROUPS}")));
        assert!(GROUP_EVENTS.contains(&format!("LIMIT {MAX_GROUP_EVENTS}")));
    }
}
