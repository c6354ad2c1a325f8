//! The daily rollup (`daily_rollup`, kept two years): one row per bot and day, computed only
//! from D1 by the consumer's daily cron, so the owner's long-range figures outlive Analytics
//! Engine's 90 days and are exact (Analytics Engine samples).
//!
//! Each run recomputes the last [`ROLLUP_DAYS`] days (today, yesterday and the day before,
//! UTC) for every bot that stored an envelope in them, with one statement whose figures are
//! pure functions of the tables, so a second run writes the same rows (and, when nothing
//! changed, writes nothing: the upsert's `WHERE`). Three days cover what can still arrive for
//! a day after it ended: the cron runs at 03:17 UTC, so today's row is partial and is redone
//! the next two nights, and a record deferred through a D1 outage lands within about 41 hours
//! ([`crate::deferred::MAX_DEFERRALS`]). The sources live longer than that: `processed_envelopes` and
//! `error_events` at least [`crate::retention::MIN_RETENTION_DAYS`], `user_days` 100 days,
//! `user_events` 400, `bot_users` until `forget`.
//!
//! | column | from |
//! | --- | --- |
//! | `new_users` | `bot_users` whose `first_seen` falls on the day |
//! | `active_users` | `user_days` of the day |
//! | `blocked`, `unblocked` | `user_events` named `user_blocked` / `user_unblocked` that day |
//! | `payers` | distinct users with a `payment` in `user_events` that day |
//! | `revenue` | JSON currency → payments minus refunds that day (smallest units) |
//! | `events`, `events_by_kind` | `processed_envelopes.event_count` and `.kind_counts` of envelopes received that day |
//! | `errors` | `error_events` that occurred that day |

use crate::audience::DAY_MS;
use crate::{SqlValue, Statement};

/// Days each run recomputes, today included.
pub const ROLLUP_DAYS: i64 = 3;

/// The days (since the epoch, UTC) a run at `now_ms` recomputes, oldest first.
pub fn days(now_ms: i64) -> Vec<i64> {
    let today = now_ms.div_euclid(DAY_MS);
    (today - ROLLUP_DAYS + 1..=today).collect()
}

/// The one statement of a run at `now_ms`: `?1` the days (JSON array), `?2` the start of the
/// oldest, `?3` the time written as `computed_at`.
pub fn statement(now_ms: i64) -> Statement {
    let days = days(now_ms);
    let start = days[0] * DAY_MS;
    let in_day = |column: &str| {
        format!("{column} >= d.value * {DAY_MS} AND {column} < (d.value + 1) * {DAY_MS}")
    };
    let user_events = |name: &str| {
        format!(
            "(SELECT count(*) FROM user_events e WHERE e.bot = b.bot AND {} AND e.name = '{name}')",
            in_day("e.occurred_at")
        )
    };
    let figures = [
        "new_users",
        "active_users",
        "blocked",
        "unblocked",
        "payers",
        "revenue",
        "events",
        "events_by_kind",
        "errors",
    ];
    let changed: Vec<String> = figures
        .iter()
        .map(|f| format!("daily_rollup.{f} IS NOT excluded.{f}"))
        .collect();
    let sql = format!(
        "INSERT INTO daily_rollup (bot, day, {figures}, computed_at) \
         WITH envelopes AS MATERIALIZED (SELECT bot, received_at / {DAY_MS} AS day, \
         sum(event_count) AS events FROM processed_envelopes WHERE received_at >= ?2 GROUP BY 1, 2), \
         kinds AS MATERIALIZED (SELECT p.bot AS bot, p.received_at / {DAY_MS} AS day, k.key AS kind, \
         sum(k.value) AS n FROM processed_envelopes p, json_each(coalesce(p.kind_counts, '{{}}')) k \
         WHERE p.received_at >= ?2 GROUP BY 1, 2, 3) \
         SELECT b.bot, d.value, \
         (SELECT count(*) FROM bot_users u WHERE u.bot = b.bot AND {first_seen}), \
         (SELECT count(*) FROM user_days a WHERE a.bot = b.bot AND a.day = d.value), \
         {blocked}, {unblocked}, \
         (SELECT count(DISTINCT e.user_id) FROM user_events e WHERE e.bot = b.bot AND {occurred} \
         AND e.name = 'payment'), \
         (SELECT json_group_object(currency, total) FROM (SELECT e.currency AS currency, \
         CAST(round(sum(CASE e.name WHEN 'refund' THEN -e.amount ELSE e.amount END)) AS INTEGER) AS total FROM user_events e \
         WHERE e.bot = b.bot AND {occurred} AND e.name IN ('payment', 'refund') \
         AND e.currency IS NOT NULL AND e.amount IS NOT NULL GROUP BY e.currency ORDER BY e.currency)), \
         coalesce((SELECT sum(v.events) FROM envelopes v WHERE v.bot = b.bot AND v.day = d.value), 0), \
         (SELECT json_group_object(kind, n) FROM (SELECT k.kind AS kind, k.n AS n FROM kinds k \
         WHERE k.bot = b.bot AND k.day = d.value ORDER BY k.kind)), \
         (SELECT count(*) FROM error_events x WHERE x.bot = b.bot AND {errors}), \
         ?3 \
         FROM (SELECT DISTINCT bot FROM envelopes) b, json_each(?1) d WHERE true \
         ON CONFLICT (bot, day) DO UPDATE SET {set}, computed_at = excluded.computed_at \
         WHERE {changed}",
        figures = figures.join(", "),
        first_seen = in_day("u.first_seen"),
        blocked = user_events(analytics_core::audience::USER_BLOCKED),
        unblocked = user_events(analytics_core::audience::USER_UNBLOCKED),
        occurred = in_day("e.occurred_at"),
        errors = in_day("x.occurred_at"),
        set = figures
            .iter()
            .map(|f| format!("{f} = excluded.{f}"))
            .collect::<Vec<_>>()
            .join(", "),
        changed = changed.join(" OR "),
    );
    Statement::write(
        sql,
        vec![
            SqlValue::Text(serde_json::to_string(&days).unwrap_or_else(|_| "[]".into())),
            SqlValue::Integer(start),
            SqlValue::Integer(now_ms),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_recomputes_today_and_the_two_days_before() {
        let now = 20_000 * DAY_MS + 3 * 3_600_000;
        assert_eq!(days(now), vec![19_998, 19_999, 20_000]);
        let s = statement(now);
        assert_eq!(s.params[0], SqlValue::Text("[19998,19999,20000]".into()));
        assert_eq!(s.params[1], SqlValue::Integer(19_998 * DAY_MS));
        assert_eq!(s.params[2], SqlValue::Integer(now));
        assert!(s.sql.starts_with("INSERT INTO daily_rollup"));
        assert!(s.params.len() <= crate::D1_MAX_PARAMS);
    }
}
