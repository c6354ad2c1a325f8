//! Query results turned into what the pages show. Each section is a `Result`: a failed query
//! shows its error in place and leaves the other sections intact.

use crate::columns::{KINDS, KIND_CALLBACK, KIND_ERROR, KIND_UPDATE};
use crate::plan::{QueryId, Results};
use crate::queries::ErrorSort;
use crate::range::Range;
use crate::rows::{count, millis, num, text, Row};
use crate::stats::{weighted_mean, weighted_quantile};
use crate::timefmt::{parse_datetime, HOUR_MS};

/// A section of a page: its data, or the error to show instead.
pub type Section<T> = Result<T, String>;

fn section<T>(results: &Results, id: QueryId, build: impl FnOnce(&[Row]) -> T) -> Section<T> {
    results.get(id).map(build).map_err(|e| e.to_string())
}

/// Events of one kind per hourly bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct KindSeries {
    /// The event kind.
    pub kind: String,
    /// One weighted count per bucket of the window.
    pub values: Vec<f64>,
    /// Their sum.
    pub total: u64,
}

/// A command or callback with its uses and handler durations.
#[derive(Debug, Clone, PartialEq)]
pub struct NameRow {
    /// The bot it belongs to (two bots' `/start` are two rows).
    pub bot: String,
    /// `command` or `callback`.
    pub kind: String,
    /// The command or callback name.
    pub name: String,
    /// Weighted uses.
    pub uses: u64,
    /// Weighted handler timings behind the percentiles (0: none).
    pub timed: u64,
    /// Median handler duration, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile handler duration, ms.
    pub p95_ms: Option<f64>,
}

/// An error group as the lists show it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// Fingerprint (links only when it is a valid one).
    pub fingerprint: String,
    /// Error kind.
    pub kind: String,
    /// Where it happened.
    pub location: String,
    /// The latest message.
    pub message: String,
    /// Events, all time.
    pub count: u64,
    /// Distinct users among the events still kept.
    pub users: u64,
    /// First seen, ms.
    pub first_seen: i64,
    /// Last seen, ms.
    pub last_seen: i64,
    /// Release of the latest event.
    pub release: String,
    /// The bot the group belongs to (its Worker's name; empty for groups stored before
    /// migration 0006 whose events are gone).
    pub bot: String,
    /// `unresolved`, `resolved`, `muted` or `regressed` (empty where the query did not read it).
    pub status: String,
    /// The release it was resolved in (empty: none).
    pub resolved_in_release: String,
}

fn group_row(row: &Row) -> GroupRow {
    GroupRow {
        fingerprint: text(row, "fingerprint"),
        kind: text(row, "kind"),
        location: text(row, "location"),
        message: text(row, "last_message"),
        count: count(row, "count"),
        users: count(row, "users"),
        first_seen: millis(row, "first_seen"),
        last_seen: millis(row, "last_seen"),
        release: text(row, "release"),
        bot: text(row, "bot"),
        status: text(row, "status"),
        resolved_in_release: text(row, "resolved_in_release"),
    }
}

/// The overview page.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// The range shown.
    pub range: Range,
    /// The bot filter (`None`: every bot).
    pub bot: Option<String>,
    /// Start of each hourly bucket, ms.
    pub hours: Vec<i64>,
    /// Events per hour by kind (kinds with events only, in the pipeline's kind order).
    pub series: Section<Vec<KindSeries>>,
    /// Commands and callbacks, most used first.
    pub names: Section<Vec<NameRow>>,
    /// Distinct users per UTC day: (day start ms, users).
    pub daily_users: Section<Vec<(i64, u64)>>,
    /// Error groups seen in the range, most recent first.
    pub recent_groups: Section<Vec<GroupRow>>,
}

impl Overview {
    /// Total weighted events of `kind` in the range (0 when the series failed).
    pub fn total(&self, kind: &str) -> u64 {
        self.series
            .as_ref()
            .ok()
            .and_then(|s| s.iter().find(|k| k.kind == kind))
            .map(|k| k.total)
            .unwrap_or(0)
    }

    /// All events in the range.
    pub fn events(&self) -> u64 {
        self.series
            .as_ref()
            .map(|s| s.iter().map(|k| k.total).sum())
            .unwrap_or(0)
    }

    /// Error events per received update; `None` without updates.
    pub fn error_rate(&self) -> Option<f64> {
        let updates = self.total(KIND_UPDATE);
        (updates > 0).then(|| self.total(KIND_ERROR) as f64 / updates as f64)
    }
}

/// Builds the overview from its results.
pub fn overview(range: Range, bot: Option<String>, now_ms: i64, results: &Results) -> Overview {
    let window = range.window(now_ms);
    let hours = window.hours();
    let series = section(results, QueryId::EventsPerHour, |rows| {
        let mut by_kind: Vec<KindSeries> = Vec::new();
        for row in rows {
            let Some(bucket) = parse_datetime(&text(row, "hour")).and_then(|at| window.bucket(at))
            else {
                continue;
            };
            let kind = text(row, "kind");
            let events = count(row, "events");
            let entry = match by_kind.iter_mut().position(|k| k.kind == kind) {
                Some(i) => &mut by_kind[i],
                None => {
                    by_kind.push(KindSeries {
                        kind,
                        values: vec![0.0; hours.len()],
                        total: 0,
                    });
                    let last = by_kind.len() - 1;
                    &mut by_kind[last]
                }
            };
            if let Some(slot) = entry.values.get_mut(bucket) {
                *slot += events as f64;
            }
            entry.total += events;
        }
        let rank = |k: &str| KINDS.iter().position(|x| *x == k).unwrap_or(KINDS.len());
        by_kind.sort_by(|a, b| rank(&a.kind).cmp(&rank(&b.kind)).then(a.kind.cmp(&b.kind)));
        by_kind
    });
    let names = section(results, QueryId::CommandsAndCallbacks, |rows| {
        rows.iter()
            .map(|row| {
                let timed = count(row, "timed");
                let percentile = |c: &str| if timed > 0 { num(row, c) } else { None };
                NameRow {
                    bot: text(row, "bot"),
                    kind: text(row, "kind"),
                    name: text(row, "name"),
                    uses: count(row, "uses"),
                    timed,
                    p50_ms: percentile("p50_ms"),
                    p95_ms: percentile("p95_ms"),
                }
            })
            .filter(|r| r.uses > 0 || r.kind != KIND_CALLBACK)
            .collect()
    });
    let daily_users = section(results, QueryId::DailyActiveUsers, |rows| {
        let parsed: Vec<(Option<i64>, u64)> = rows
            .iter()
            .map(|r| (parse_datetime(&text(r, "day")), count(r, "users")))
            .collect();
        window
            .days()
            .into_iter()
            .map(|day| {
                let users = parsed
                    .iter()
                    .filter(|(at, _)| *at == Some(day))
                    .map(|(_, users)| users)
                    .sum();
                (day, users)
            })
            .collect()
    });
    let recent_groups = section(results, QueryId::RecentGroups, |rows| {
        rows.iter().map(group_row).collect()
    });
    Overview {
        range,
        bot,
        hours,
        series,
        names,
        daily_users,
        recent_groups,
    }
}

/// The errors page.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorsPage {
    /// Sort order.
    pub sort: ErrorSort,
    /// Release filter.
    pub release: Option<String>,
    /// The bot filter (`None`: every bot).
    pub bot: Option<String>,
    /// The groups.
    pub groups: Section<Vec<GroupRow>>,
    /// Releases with errors: (release, events).
    pub releases: Section<Vec<(String, u64)>>,
}

/// Builds the errors page from its results.
pub fn errors(
    sort: ErrorSort,
    release: Option<String>,
    bot: Option<String>,
    results: &Results,
) -> ErrorsPage {
    ErrorsPage {
        sort,
        release,
        bot,
        groups: section(results, QueryId::ErrorGroups, |rows| {
            rows.iter().map(group_row).collect()
        }),
        releases: section(results, QueryId::Releases, |rows| {
            rows.iter()
                .map(|r| (text(r, "release"), count(r, "events")))
                .collect()
        }),
    }
}

/// One error event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Event id.
    pub event_id: String,
    /// When it happened, ms.
    pub occurred_at: i64,
    /// When the consumer stored it, ms.
    pub received_at: i64,
    /// Message.
    pub message: String,
    /// Location.
    pub location: String,
    /// User (shown as stored: an id or a pseudonym).
    pub user: String,
    /// Chat (as stored).
    pub chat: String,
    /// Bot.
    pub bot: String,
    /// Release.
    pub release: String,
}

/// One error group's page.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPage {
    /// The fingerprint asked for.
    pub fingerprint: String,
    /// The chart's range.
    pub range: Range,
    /// The bot filter the user came with (kept in links).
    pub bot: Option<String>,
    /// The group (`None`: no such group).
    pub group: Section<Option<GroupRow>>,
    /// Its most recent events.
    pub events: Section<Vec<EventRow>>,
    /// Start of each hourly bucket, ms.
    pub hours: Vec<i64>,
    /// Events per hourly bucket.
    pub per_hour: Section<Vec<f64>>,
    /// The CSRF token of its status form (`None`: no form, e.g. in examples).
    pub csrf: Option<String>,
}

/// Builds a group's page from its results.
pub fn group(
    fingerprint: &str,
    range: Range,
    bot: Option<String>,
    now_ms: i64,
    results: &Results,
) -> GroupPage {
    let window = range.window(now_ms);
    let hours = window.hours();
    GroupPage {
        fingerprint: fingerprint.to_string(),
        range,
        bot,
        group: section(results, QueryId::Group, |rows| rows.first().map(group_row)),
        events: section(results, QueryId::GroupEvents, |rows| {
            rows.iter()
                .map(|r| EventRow {
                    event_id: text(r, "event_id"),
                    occurred_at: millis(r, "occurred_at"),
                    received_at: millis(r, "received_at"),
                    message: text(r, "message"),
                    location: text(r, "location"),
                    user: text(r, "user_id"),
                    chat: text(r, "chat_id"),
                    bot: text(r, "bot"),
                    release: text(r, "release"),
                })
                .collect()
        }),
        per_hour: section(results, QueryId::GroupPerHour, |rows| {
            let mut values = vec![0.0; hours.len()];
            for row in rows {
                // `hour` counts hours since the epoch ([`crate::queries::GROUP_PER_HOUR`]).
                let at = millis(row, "hour").checked_mul(HOUR_MS);
                if let Some(slot) = at
                    .and_then(|at| window.bucket(at))
                    .and_then(|i| values.get_mut(i))
                {
                    *slot += count(row, "events") as f64;
                }
            }
            values
        }),
        hours,
        csrf: None,
    }
}

/// Stored queue messages over the range.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeStats {
    /// Messages stored.
    pub messages: u64,
    /// Events in them.
    pub events: u64,
    /// Events per message: mean.
    pub mean: Option<f64>,
    /// Events per message: median.
    pub p50: Option<f64>,
    /// Events per message: 95th percentile.
    pub p95: Option<f64>,
    /// Events per message: most.
    pub max: Option<f64>,
    /// Events the producers dropped, by reason.
    pub dropped: Vec<(&'static str, u64)>,
    /// (events in a message, messages) for the histogram.
    pub histogram: Vec<(u64, u64)>,
}

/// A rejected-messages summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedSummary {
    /// The queue it came from.
    pub queue: String,
    /// Whether that is a dead letter queue.
    pub dead_letter: bool,
    /// Why it was rejected.
    pub reason: String,
    /// How many.
    pub messages: u64,
    /// Latest, ms.
    pub last_seen: i64,
}

/// One rejected message.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    /// The queue it came from.
    pub queue: String,
    /// Queue message id.
    pub message_id: String,
    /// Reason code.
    pub reason: String,
    /// Details (cut).
    pub detail: String,
    /// Payload size.
    pub payload_bytes: u64,
    /// When it was stored, ms.
    pub received_at: i64,
}

/// Delivery lag over the range.
#[derive(Debug, Clone, PartialEq)]
pub struct LagStats {
    /// Weighted events.
    pub events: u64,
    /// Median, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Largest, ms.
    pub max_ms: Option<f64>,
}

/// The pipeline health page.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelinePage {
    /// The range shown.
    pub range: Range,
    /// The bot filter (`None`: every bot; rejected messages are shown for all).
    pub bot: Option<String>,
    /// Stored messages and drops.
    pub envelopes: Section<EnvelopeStats>,
    /// Rejected and dead-lettered messages by queue and reason.
    pub rejected: Section<Vec<RejectedSummary>>,
    /// The latest rejected messages.
    pub recent_rejected: Section<Vec<RejectedRow>>,
    /// Delivery lag percentiles.
    pub lag: Section<LagStats>,
    /// Start of each hourly bucket, ms.
    pub hours: Vec<i64>,
    /// Per hourly bucket: events stored, p50 and p95 lag (ms).
    pub lag_per_hour: Section<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    /// Each bot's webhook as `getWebhookInfo` last answered.
    pub webhooks: Section<Vec<WebhookRow>>,
    /// Telegram → bot delivery per hour with dated updates, oldest first.
    pub telegram_lag: Section<Vec<TelegramLagHour>>,
}

/// One hour of Telegram → bot delivery (`telegram_lag_per_hour`): dated updates received and
/// their lag (the bot's receipt minus the update's `date`).
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramLagHour {
    /// Start of the hour, ms.
    pub hour: i64,
    /// Dated updates received, weighted.
    pub updates: u64,
    /// Median lag, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile lag, ms.
    pub p95_ms: Option<f64>,
}

/// One bot's webhook health (`webhook_health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// The bot.
    pub bot: String,
    /// When the cron asked, ms.
    pub checked_at: i64,
    /// Whether `getWebhookInfo` answered.
    pub ok: bool,
    /// Pending updates.
    pub pending: u64,
    /// Telegram's last failed delivery, ms (`None`: none reported).
    pub last_error_at: Option<i64>,
    /// Telegram's error text (scrubbed).
    pub last_error_message: String,
    /// Why the call failed, when it did.
    pub problem: String,
}

/// Builds the pipeline page from its results.
pub fn pipeline(range: Range, bot: Option<String>, now_ms: i64, results: &Results) -> PipelinePage {
    let window = range.window(now_ms);
    let hours = window.hours();
    let envelopes = section(results, QueryId::Envelopes, |rows| {
        let histogram: Vec<(u64, u64)> = rows
            .iter()
            .map(|r| (count(r, "event_count"), count(r, "messages")))
            .collect();
        let pairs: Vec<(f64, u64)> = histogram.iter().map(|(e, m)| (*e as f64, *m)).collect();
        let sum = |c: &str| rows.iter().map(|r| count(r, c)).sum::<u64>();
        EnvelopeStats {
            messages: histogram.iter().map(|(_, m)| m).sum(),
            events: histogram.iter().map(|(e, m)| e.saturating_mul(*m)).sum(),
            mean: weighted_mean(&pairs),
            p50: weighted_quantile(&pairs, 0.5),
            p95: weighted_quantile(&pairs, 0.95),
            max: histogram
                .iter()
                .filter(|(_, m)| *m > 0)
                .map(|(e, _)| *e as f64)
                .reduce(f64::max),
            dropped: vec![
                ("send_failed", sum("send_failed")),
                ("oversize", sum("oversize")),
                ("buffer_full", sum("buffer_full")),
                ("cancelled", sum("cancelled")),
            ],
            histogram,
        }
    });
    let rejected = section(results, QueryId::RejectedSummary, |rows| {
        rows.iter()
            .map(|r| {
                let queue = text(r, "queue");
                RejectedSummary {
                    dead_letter: queue.ends_with("-dlq"),
                    queue,
                    reason: text(r, "reason"),
                    messages: count(r, "messages"),
                    last_seen: millis(r, "last_seen"),
                }
            })
            .collect()
    });
    let recent_rejected = section(results, QueryId::RejectedRecent, |rows| {
        rows.iter()
            .map(|r| RejectedRow {
                queue: text(r, "queue"),
                message_id: text(r, "message_id"),
                reason: text(r, "reason"),
                detail: text(r, "detail"),
                payload_bytes: count(r, "payload_bytes"),
                received_at: millis(r, "received_at"),
            })
            .collect()
    });
    let lag = section(results, QueryId::DeliveryLag, |rows| {
        let row = rows.first();
        let get = |c: &str| row.and_then(|r| num(r, c));
        let events = row.map(|r| count(r, "events")).unwrap_or(0);
        let when = |v: Option<f64>| if events > 0 { v } else { None };
        LagStats {
            events,
            p50_ms: when(get("p50_ms")),
            p95_ms: when(get("p95_ms")),
            p99_ms: when(get("p99_ms")),
            max_ms: when(get("max_ms")),
        }
    });
    let lag_per_hour = section(results, QueryId::DeliveryLagPerHour, |rows| {
        let n = hours.len();
        let (mut events, mut p50, mut p95) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for row in rows {
            let Some(i) = parse_datetime(&text(row, "hour"))
                .and_then(|at| window.bucket(at))
                .filter(|i| *i < n)
            else {
                continue;
            };
            events[i] = count(row, "events") as f64;
            p50[i] = num(row, "p50_ms").unwrap_or(0.0).max(0.0);
            p95[i] = num(row, "p95_ms").unwrap_or(0.0).max(0.0);
        }
        (events, p50, p95)
    });
    let webhooks = section(results, QueryId::WebhookHealth, |rows| {
        rows.iter()
            .map(|r| WebhookRow {
                bot: text(r, "bot"),
                checked_at: millis(r, "checked_at"),
                ok: count(r, "ok") == 1,
                pending: count(r, "pending_update_count"),
                last_error_at: Some(millis(r, "last_error_date")).filter(|ms| *ms > 0),
                last_error_message: text(r, "last_error_message"),
                problem: text(r, "problem"),
            })
            .collect()
    });
    let telegram_lag = section(results, QueryId::TelegramLagPerHour, |rows| {
        let mut out: Vec<TelegramLagHour> = rows
            .iter()
            .filter_map(|row| {
                let hour = parse_datetime(&text(row, "hour"))?;
                let updates = count(row, "updates");
                let lag = |c: &str| num(row, c).filter(|_| updates > 0).map(|v| v.max(0.0));
                Some(TelegramLagHour {
                    hour,
                    updates,
                    p50_ms: lag("p50_ms"),
                    p95_ms: lag("p95_ms"),
                })
            })
            .filter(|h| h.updates > 0)
            .collect();
        out.sort_by_key(|h| h.hour);
        out
    });
    PipelinePage {
        range,
        bot,
        envelopes,
        rejected,
        recent_rejected,
        lag,
        hours,
        lag_per_hour,
        webhooks,
        telegram_lag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::rows_from_json as rows;
    use crate::sqlapi::QueryError;
    use serde_json::json;

    const NOW: i64 = 1_764_000_000_000 + 30 * 60_000; // 2025-11-24 16:30 UTC

    #[test]
    fn the_overview_fills_buckets_and_computes_the_error_rate() {
        let mut results = Results::default();
        results.insert(
            QueryId::EventsPerHour,
            Ok(rows(json!([
                {"hour": "2025-11-24 15:00:00", "kind": "update", "events": "3"},
                {"hour": "2025-11-24 16:00:00", "kind": "update", "events": 1},
                {"hour": "2025-11-24 16:00:00", "kind": "error", "events": "2"},
                {"hour": "2025-11-24 16:00:00", "kind": "zzz", "events": "1"},
                {"hour": "2020-01-01 00:00:00", "kind": "update", "events": "99"},
                {"hour": "not a time", "kind": "update", "events": "99"},
            ]))),
        );
        results.insert(
            QueryId::CommandsAndCallbacks,
            Ok(rows(json!([
                {"kind": "command", "name": "start", "uses": "2", "timed": "2", "p50_ms": 3.0, "p95_ms": "7"},
                {"kind": "callback", "name": "menu", "uses": "1", "timed": "0", "p50_ms": 0.0, "p95_ms": 0.0},
            ]))),
        );
        results.insert(
            QueryId::DailyActiveUsers,
            Err(QueryError::Status {
                status: 500,
                message: "x".into(),
            }),
        );
        let o = overview(Range::Day, None, NOW, &results);
        assert_eq!(o.hours.len(), 24);
        let series = o.series.as_ref().unwrap();
        assert_eq!(
            series.iter().map(|k| k.kind.as_str()).collect::<Vec<_>>(),
            ["update", "error", "zzz"]
        );
        assert_eq!(series[0].values[22], 3.0);
        assert_eq!(series[0].values[23], 1.0);
        assert_eq!(o.total("update"), 4);
        assert_eq!(o.events(), 7);
        assert_eq!(o.error_rate(), Some(0.5));
        let names = o.names.as_ref().unwrap();
        assert_eq!(names[0].p95_ms, Some(7.0));
        assert_eq!(names[1].p50_ms, None, "callbacks have no timings");
        assert!(o.daily_users.unwrap_err().contains("500"));
        assert_eq!(
            o.recent_groups.unwrap_err(),
            QueryError::NotConfigured.to_string()
        );
    }

    #[test]
    fn pipeline_stats_from_the_histogram() {
        let mut results = Results::default();
        results.insert(
            QueryId::Envelopes,
            Ok(rows(json!([
                {"event_count": 1, "messages": 3, "send_failed": 0, "oversize": 1, "buffer_full": 0, "cancelled": 3},
                {"event_count": 5, "messages": 1, "send_failed": 2, "oversize": 0, "buffer_full": 4, "cancelled": 0},
            ]))),
        );
        results.insert(
            QueryId::RejectedSummary,
            Ok(rows(json!([{"queue": "telegram-analytics-dlq", "reason": "version", "messages": 2, "last_seen": 5}]))),
        );
        results.insert(
            QueryId::DeliveryLag,
            Ok(rows(
                json!([{"events": "0", "p50_ms": 0, "p95_ms": 0, "p99_ms": 0, "max_ms": null}]),
            )),
        );
        results.insert(
            QueryId::DeliveryLagPerHour,
            Ok(rows(json!([{"hour": "2025-11-24 16:00:00", "events": "4", "p50_ms": 900.0, "p95_ms": "1500"}]))),
        );
        let p = pipeline(Range::Day, None, NOW, &results);
        let e = p.envelopes.unwrap();
        assert_eq!((e.messages, e.events), (4, 8));
        assert_eq!((e.p50, e.p95, e.max), (Some(1.0), Some(5.0), Some(5.0)));
        assert_eq!(e.mean, Some(2.0));
        assert_eq!(
            e.dropped,
            vec![
                ("send_failed", 2),
                ("oversize", 1),
                ("buffer_full", 4),
                ("cancelled", 3)
            ]
        );
        assert!(p.rejected.unwrap()[0].dead_letter);
        assert_eq!(p.lag.unwrap().p50_ms, None, "no events, no percentiles");
        let (events, _, p95) = p.lag_per_hour.unwrap();
        assert_eq!((events[23], p95[23]), (4.0, 1500.0));
        assert_eq!(
            p.telegram_lag.unwrap_err(),
            QueryError::NotConfigured.to_string()
        );
    }

    #[test]
    fn telegram_delivery_hours_are_read_in_order_without_empty_ones() {
        let mut results = Results::default();
        results.insert(
            QueryId::TelegramLagPerHour,
            Ok(rows(json!([
                {"hour": "2025-11-24 16:00:00", "updates": "3", "p50_ms": 30250.0, "p95_ms": "31000"},
                {"hour": "2025-11-24 15:00:00", "updates": 1, "p50_ms": -2, "p95_ms": null},
                {"hour": "2025-11-24 14:00:00", "updates": 0, "p50_ms": null, "p95_ms": null},
                {"hour": "not a time", "updates": 9, "p50_ms": 1, "p95_ms": 1},
            ]))),
        );
        let p = pipeline(Range::Day, None, NOW, &results);
        let hours = p.telegram_lag.unwrap();
        assert_eq!(
            hours,
            vec![
                TelegramLagHour {
                    hour: NOW - 90 * 60_000,
                    updates: 1,
                    p50_ms: Some(0.0),
                    p95_ms: None,
                },
                TelegramLagHour {
                    hour: NOW - 30 * 60_000,
                    updates: 3,
                    p50_ms: Some(30_250.0),
                    p95_ms: Some(31_000.0),
                },
            ]
        );
    }

    #[test]
    fn a_group_page_places_hours() {
        let mut results = Results::default();
        let window = Range::Week.window(NOW);
        let last = window.end_ms.div_euclid(HOUR_MS) - 1;
        results.insert(
            QueryId::GroupPerHour,
            Ok(rows(
                json!([{"hour": last, "events": 2}, {"hour": 0, "events": 5}]),
            )),
        );
        results.insert(QueryId::Group, Ok(vec![]));
        let g = group("0123456789abcdef", Range::Week, None, NOW, &results);
        let per_hour = g.per_hour.unwrap();
        assert_eq!(per_hour.len(), 168);
        assert_eq!(per_hour[167], 2.0);
        assert_eq!(per_hour.iter().sum::<f64>(), 2.0);
        assert_eq!(g.group, Ok(None));
    }
}
