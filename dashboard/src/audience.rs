//! The owner-analytics pages' models (Users, Retention, Funnels, Sources) from their query
//! results, and their tables. Which store each number comes from, and why, is in
//! docs/owner-analytics.md ("Dashboard pages").

use crate::funnel::Funnel;
use crate::model::Section;
use crate::plan::{QueryId, Results, Settings};
use crate::range::{Range, Window};
use crate::rows::{count, millis, num, text, Row};
use crate::table::{Cell, Table};
use crate::timefmt::{parse_datetime, DAY_MS};

fn section<T>(results: &Results, id: QueryId, build: impl FnOnce(&[Row]) -> T) -> Section<T> {
    results.get(id).map(build).map_err(|e| e.to_string())
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// (year, month 1–12, day 1–31) of a day counted from the epoch (proleptic Gregorian, UTC).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day (from the epoch) of a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The first instant (ms) of the month eleven months before the one holding `now_ms`: the
/// twelve-month view covers it and the eleven after it.
pub fn twelve_months_start(now_ms: i64) -> i64 {
    let (year, month, _) = civil(now_ms.div_euclid(DAY_MS));
    let index = year * 12 + i64::from(month) - 1 - 11;
    days_from_civil(index.div_euclid(12), (index.rem_euclid(12) + 1) as u32, 1) * DAY_MS
}

/// How many weekly cohorts the Retention page shows for `range`.
pub fn cohort_count(range: Range) -> i64 {
    match range {
        Range::Day => 2,
        Range::Week => 4,
        Range::Month => 13,
    }
}

/// The Monday (day from the epoch) of the week holding `day`.
pub fn monday(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

/// The first instant (ms) of the oldest cohort the Retention page shows.
pub fn cohorts_start(range: Range, now_ms: i64) -> i64 {
    (monday(now_ms.div_euclid(DAY_MS)) - 7 * (cohort_count(range) - 1)) * DAY_MS
}

// ---- Users ----

/// One UTC day of the Users page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserDay {
    /// The day's start, ms.
    pub day: i64,
    /// First seen that day.
    pub new: u64,
    /// Active that day and first seen before.
    pub returning: u64,
    /// Active that day.
    pub active: u64,
    /// Blocked the bot that day.
    pub blocked: u64,
    /// Unblocked it that day.
    pub unblocked: u64,
}

/// The audience figures of the Users page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Audience {
    /// Users active today (UTC).
    pub dau: u64,
    /// Users active in the 7 days ending today.
    pub wau: u64,
    /// Users active in the 30 days ending today.
    pub mau: u64,
    /// Users whose status is blocked now.
    pub blocked_now: u64,
    /// Users seen in the range, by language (empty: unknown), most first.
    pub languages: Vec<(String, u64)>,
    /// Users seen in the range who have Telegram Premium.
    pub premium: u64,
    /// Users seen in the range whose premium flag is known.
    pub premium_known: u64,
}

impl Audience {
    /// DAU / MAU; `None` without monthly users.
    pub fn stickiness(&self) -> Option<f64> {
        ratio(self.dau, self.mau)
    }

    /// Users seen in the range (the sum over languages).
    pub fn seen(&self) -> u64 {
        self.languages.iter().map(|(_, n)| n).sum()
    }
}

/// One month of the twelve-month view (from the daily rollups).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Month {
    /// `YYYY-MM`.
    pub month: String,
    /// Days with a rollup.
    pub days: u64,
    /// New users.
    pub new_users: u64,
    /// Active users summed over the days (divided by `days`: mean daily active users).
    pub active_user_days: u64,
    /// Blocks.
    pub blocked: u64,
    /// Unblocks.
    pub unblocked: u64,
    /// Revenue by currency (smallest units).
    pub revenue: Vec<(String, f64)>,
    /// Events.
    pub events: u64,
    /// Errors.
    pub errors: u64,
}

/// Not-understood messages on one day.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotUnderstoodDay {
    /// The day's start, ms.
    pub day: i64,
    /// Messages the bot did not understand (weighted).
    pub not_understood: u64,
    /// Messages received (weighted).
    pub messages: u64,
}

impl NotUnderstoodDay {
    /// Not understood per message received; `None` without messages.
    pub fn rate(&self) -> Option<f64> {
        ratio(self.not_understood, self.messages)
    }
}

/// The Users page.
#[derive(Debug, Clone, PartialEq)]
pub struct UsersPage {
    /// The range of the daily tables.
    pub range: Range,
    /// The bot filter.
    pub bot: Option<String>,
    /// New, returning, active, blocked per day (D1).
    pub days: Section<Vec<UserDay>>,
    /// DAU, WAU, MAU, languages, premium (D1).
    pub audience: Section<Audience>,
    /// Twelve months of rollups (D1 `daily_rollup`), oldest first.
    pub months: Section<Vec<Month>>,
    /// The not-understood rate per day (Analytics Engine).
    pub not_understood: Section<Vec<NotUnderstoodDay>>,
}

fn window_days(window: &Window) -> Vec<i64> {
    window.days()
}

/// Builds the Users page.
pub fn users(range: Range, bot: Option<String>, now_ms: i64, results: &Results) -> UsersPage {
    let window = range.window(now_ms);
    let days = section(results, QueryId::UsersPerDay, |rows| {
        let mut out: Vec<UserDay> = window_days(&window)
            .into_iter()
            .map(|day| UserDay {
                day,
                ..UserDay::default()
            })
            .collect();
        for row in rows {
            let day = millis(row, "day").saturating_mul(DAY_MS);
            let Some(entry) = out.iter_mut().find(|d| d.day == day) else {
                continue;
            };
            let n = count(row, "n");
            match text(row, "metric").as_str() {
                "new" => entry.new += n,
                "active" => entry.active += n,
                "returning" => entry.returning += n,
                "user_blocked" => entry.blocked += n,
                "user_unblocked" => entry.unblocked += n,
                _ => {}
            }
        }
        out
    });
    let audience = section(results, QueryId::Audience, |rows| {
        let mut a = Audience::default();
        for row in rows {
            let (key, n) = (text(row, "key"), count(row, "n"));
            match text(row, "metric").as_str() {
                "dau" => a.dau += n,
                "wau" => a.wau += n,
                "mau" => a.mau += n,
                "blocked" => a.blocked_now += n,
                "lang" => a.languages.push((key, n)),
                "premium" => {
                    if key == "1" {
                        a.premium += n;
                    }
                    if !key.is_empty() {
                        a.premium_known += n;
                    }
                }
                _ => {}
            }
        }
        a.languages
            .sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        a
    });
    let months = section(results, QueryId::RollupDays, |rows| {
        let start = twelve_months_start(now_ms).div_euclid(DAY_MS);
        let mut months: Vec<Month> = Vec::new();
        let (mut year, mut month, _) = civil(start);
        for _ in 0..12 {
            months.push(Month {
                month: format!("{year:04}-{month:02}"),
                ..Month::default()
            });
            (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
        }
        let mut days_seen: Vec<(usize, i64)> = Vec::new();
        for row in rows {
            let day = millis(row, "day");
            let (y, m, _) = civil(day);
            let key = format!("{y:04}-{m:02}");
            let Some(i) = months.iter().position(|x| x.month == key) else {
                continue;
            };
            if !days_seen.contains(&(i, day)) {
                days_seen.push((i, day));
                months[i].days += 1;
            }
            let entry = &mut months[i];
            entry.new_users += count(row, "new_users");
            entry.active_user_days += count(row, "active_users");
            entry.blocked += count(row, "blocked");
            entry.unblocked += count(row, "unblocked");
            entry.events += count(row, "events");
            entry.errors += count(row, "errors");
            let revenue: serde_json::Value =
                serde_json::from_str(&text(row, "revenue")).unwrap_or_default();
            if let Some(object) = revenue.as_object() {
                for (currency, amount) in object {
                    let amount = amount.as_f64().unwrap_or(0.0);
                    match entry.revenue.iter_mut().find(|(c, _)| c == currency) {
                        Some((_, total)) => *total += amount,
                        None => entry.revenue.push((currency.clone(), amount)),
                    }
                }
            }
        }
        for m in &mut months {
            m.revenue.sort_by(|a, b| a.0.cmp(&b.0));
        }
        months
    });
    let not_understood = section(results, QueryId::NotUnderstood, |rows| {
        window_days(&window)
            .into_iter()
            .map(|day| {
                let mut d = NotUnderstoodDay {
                    day,
                    ..NotUnderstoodDay::default()
                };
                for row in rows {
                    if parse_datetime(&text(row, "day")) == Some(day) {
                        d.not_understood += count(row, "not_understood");
                        d.messages += count(row, "messages");
                    }
                }
                d
            })
            .collect()
    });
    UsersPage {
        range,
        bot,
        days,
        audience,
        months,
        not_understood,
    }
}

/// `1,500 XTR · 300 USD` (smallest units).
pub fn money(amounts: &[(String, f64)]) -> String {
    amounts
        .iter()
        .map(|(currency, amount)| format!("{} {currency}", crate::html::decimal(Some(*amount))))
        .collect::<Vec<_>>()
        .join(" · ")
}

impl UsersPage {
    /// Its tables: `daily`, `not_understood`, `languages`, `months`.
    pub fn tables(&self) -> Vec<Table> {
        vec![
            Table::new(
                "daily",
                &["day", "new", "returning", "active", "blocked", "unblocked"],
                self.days.clone().map(|days| {
                    days.iter()
                        .map(|d| {
                            vec![
                                Cell::Day(d.day),
                                Cell::Count(d.new),
                                Cell::Count(d.returning),
                                Cell::Count(d.active),
                                Cell::Count(d.blocked),
                                Cell::Count(d.unblocked),
                            ]
                        })
                        .collect()
                }),
            ),
            Table::new(
                "not_understood",
                &["day", "not understood", "messages", "rate"],
                self.not_understood.clone().map(|days| {
                    days.iter()
                        .map(|d| {
                            vec![
                                Cell::Day(d.day),
                                Cell::Count(d.not_understood),
                                Cell::Count(d.messages),
                                Cell::Ratio(d.rate()),
                            ]
                        })
                        .collect()
                }),
            ),
            Table::new(
                "languages",
                &["language", "users", "share"],
                self.audience.clone().map(|a| {
                    let seen = a.seen();
                    a.languages
                        .iter()
                        .map(|(lang, n)| {
                            let lang = if lang.is_empty() { "unknown" } else { lang };
                            vec![
                                Cell::Text(lang.to_string()),
                                Cell::Count(*n),
                                Cell::Ratio(ratio(*n, seen)),
                            ]
                        })
                        .collect()
                }),
            ),
            Table::new(
                "months",
                &[
                    "month",
                    "new users",
                    "mean daily active",
                    "blocked",
                    "unblocked",
                    "revenue",
                    "events",
                    "errors",
                ],
                self.months.clone().map(|months| {
                    months
                        .iter()
                        .map(|m| {
                            let mean =
                                (m.days > 0).then(|| m.active_user_days as f64 / m.days as f64);
                            vec![
                                Cell::Text(m.month.clone()),
                                Cell::Count(m.new_users),
                                Cell::Number(mean),
                                Cell::Count(m.blocked),
                                Cell::Count(m.unblocked),
                                Cell::Text(money(&m.revenue)),
                                Cell::Count(m.events),
                                Cell::Count(m.errors),
                            ]
                        })
                        .collect()
                }),
            ),
        ]
    }
}

// ---- Retention ----

/// Weeks after the first one a cohort row shows (weeks 0 to 12).
pub const RETENTION_WEEKS: usize = 13;

/// One weekly cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    /// Its Monday, ms.
    pub monday: i64,
    /// Users first seen that week.
    pub size: u64,
    /// Per week 0–12: users active that week (`None`: the week has not begun yet for anyone).
    pub active: Vec<Option<u64>>,
}

impl Cohort {
    /// The share of the cohort active in week `w` (`None`: not begun, or an empty cohort).
    pub fn share(&self, w: usize) -> Option<f64> {
        self.active
            .get(w)
            .copied()
            .flatten()
            .and_then(|n| ratio(n, self.size))
    }
}

/// The cohort triangle from rows (`cohort`, `week`, `users`; week −1: the size) for the
/// `cohorts` weekly cohorts ending with the week of `today` (days from the epoch): week w of a
/// cohort shows once its Monday plus 7w days is today or earlier.
pub fn triangle(rows: &[Row], cohorts: i64, today: i64) -> Vec<Cohort> {
    let last = (today + 3).div_euclid(7);
    (last - cohorts + 1..=last)
        .map(|c| {
            let monday = 7 * c - 3;
            let find = |w: i64| {
                rows.iter()
                    .filter(|r| {
                        num(r, "cohort") == Some(c as f64) && num(r, "week") == Some(w as f64)
                    })
                    .map(|r| count(r, "users"))
                    .sum::<u64>()
            };
            Cohort {
                monday: monday * DAY_MS,
                size: find(-1),
                active: (0..RETENTION_WEEKS as i64)
                    .map(|w| (monday + 7 * w <= today).then(|| find(w)))
                    .collect(),
            }
        })
        .collect()
}

/// The Retention page.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPage {
    /// The range (how many cohorts).
    pub range: Range,
    /// The bot filter.
    pub bot: Option<String>,
    /// The cohorts, oldest first.
    pub cohorts: Section<Vec<Cohort>>,
}

/// Builds the Retention page.
pub fn retention(
    range: Range,
    bot: Option<String>,
    now_ms: i64,
    results: &Results,
) -> RetentionPage {
    let today = now_ms.div_euclid(DAY_MS);
    RetentionPage {
        range,
        bot,
        cohorts: section(results, QueryId::Retention, |rows| {
            triangle(rows, cohort_count(range), today)
        }),
    }
}

impl RetentionPage {
    /// Its table: `retention` (cohort, users, weeks 0–12 as shares).
    pub fn tables(&self) -> Vec<Table> {
        let mut columns = vec!["cohort (week of)".to_string(), "users".to_string()];
        columns.extend((0..RETENTION_WEEKS).map(|w| format!("week {w}")));
        vec![Table {
            name: "retention",
            columns,
            rows: self.cohorts.clone().map(|cohorts| {
                cohorts
                    .iter()
                    .map(|c| {
                        let mut row = vec![Cell::Day(c.monday), Cell::Count(c.size)];
                        // An empty cohort has no shares: a dash, not 0 %.
                        row.extend((0..RETENTION_WEEKS).map(|w| match c.active[w] {
                            Some(_) if c.size == 0 => Cell::Ratio(None),
                            begun => Cell::Heat(begun.map(|_| c.share(w).unwrap_or(0.0))),
                        }));
                        row
                    })
                    .collect()
            }),
        }]
    }
}

// ---- Funnels ----

/// One funnel's results.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelResult {
    /// The funnel.
    pub funnel: Funnel,
    /// Users at each step, every source.
    pub overall: Vec<u64>,
    /// Users at each step, per source (empty: none), most users at step 1 first.
    pub by_source: Vec<(String, Vec<u64>)>,
}

/// The Funnels page.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelsPage {
    /// The range.
    pub range: Range,
    /// The bot filter.
    pub bot: Option<String>,
    /// The configuration's error, to show instead of funnels.
    pub config_error: Option<String>,
    /// The funnels (empty: none configured).
    pub funnels: Section<Vec<FunnelResult>>,
}

/// Builds the Funnels page.
pub fn funnels(
    range: Range,
    bot: Option<String>,
    settings: &Settings,
    results: &Results,
) -> FunnelsPage {
    let (config_error, configured) = match &settings.funnels {
        Ok(funnels) => (None, funnels.clone()),
        Err(e) => (Some(e.to_string()), Vec::new()),
    };
    let funnels = if configured.is_empty() {
        Ok(Vec::new())
    } else {
        section(results, QueryId::Funnels, |rows| {
            configured
                .iter()
                .enumerate()
                .map(|(f, funnel)| {
                    let steps = funnel.steps.len();
                    let mut by_source: Vec<(String, Vec<u64>)> = rows
                        .iter()
                        .map(|r| {
                            let counts =
                                (0..steps).map(|k| count(r, &format!("f{f}_{k}"))).collect();
                            (text(r, "source"), counts)
                        })
                        .filter(|(_, counts): &(String, Vec<u64>)| counts[0] > 0)
                        .collect();
                    by_source.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then_with(|| a.0.cmp(&b.0)));
                    let overall = (0..steps)
                        .map(|k| by_source.iter().map(|(_, c)| c[k]).sum())
                        .collect();
                    FunnelResult {
                        funnel: funnel.clone(),
                        overall,
                        by_source,
                    }
                })
                .collect()
        })
    };
    FunnelsPage {
        range,
        bot,
        config_error,
        funnels,
    }
}

impl FunnelsPage {
    /// Its table: `funnels`, in long form (funnel, source — `all` for every source —, step,
    /// users, share of step 1, share of the step before).
    pub fn tables(&self) -> Vec<Table> {
        vec![Table::new(
            "funnels",
            &[
                "funnel",
                "source",
                "step",
                "event",
                "users",
                "of step 1",
                "of previous step",
            ],
            self.funnels.clone().map(|funnels| {
                let mut rows = Vec::new();
                for f in &funnels {
                    let all = ("all".to_string(), f.overall.clone());
                    for (source, counts) in std::iter::once(&all).chain(&f.by_source) {
                        let source = if source.is_empty() { "(none)" } else { source };
                        for (k, step) in f.funnel.steps.iter().enumerate() {
                            let previous = if k == 0 { counts[0] } else { counts[k - 1] };
                            rows.push(vec![
                                Cell::Text(f.funnel.name.clone()),
                                Cell::Text(source.to_string()),
                                Cell::Count(k as u64 + 1),
                                Cell::Text(step.label()),
                                Cell::Count(counts[k]),
                                Cell::Ratio(ratio(counts[k], counts[0])),
                                Cell::Ratio(ratio(counts[k], previous)),
                            ]);
                        }
                    }
                }
                rows
            }),
        )]
    }
}

// ---- Sources ----

/// One source's users.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceRow {
    /// The source (empty: none).
    pub source: String,
    /// Users first seen in the range.
    pub users: u64,
    /// Active in their week 1.
    pub retained_w1: u64,
    /// Blocked the bot at least once.
    pub blocked_ever: u64,
    /// Blocked now.
    pub blocked_now: u64,
    /// Paid at least once.
    pub payers: u64,
}

/// One source's revenue in one currency.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RevenueRow {
    /// The source (empty: none).
    pub source: String,
    /// The currency.
    pub currency: String,
    /// Paid, smallest units.
    pub paid: f64,
    /// Refunded, smallest units.
    pub refunded: f64,
}

/// The Sources page.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcesPage {
    /// The range (users first seen in it).
    pub range: Range,
    /// The bot filter.
    pub bot: Option<String>,
    /// Users per source.
    pub sources: Section<Vec<SourceRow>>,
    /// Revenue per source and currency.
    pub revenue: Section<Vec<RevenueRow>>,
}

/// Builds the Sources page.
pub fn sources(range: Range, bot: Option<String>, results: &Results) -> SourcesPage {
    SourcesPage {
        range,
        bot,
        sources: section(results, QueryId::Sources, |rows| {
            rows.iter()
                .map(|r| SourceRow {
                    source: text(r, "source"),
                    users: count(r, "users"),
                    retained_w1: count(r, "retained_w1"),
                    blocked_ever: count(r, "blocked_ever"),
                    blocked_now: count(r, "blocked_now"),
                    payers: count(r, "payers"),
                })
                .collect()
        }),
        revenue: section(results, QueryId::SourceRevenue, |rows| {
            rows.iter()
                .map(|r| RevenueRow {
                    source: text(r, "source"),
                    currency: text(r, "currency"),
                    paid: num(r, "paid").unwrap_or(0.0),
                    refunded: num(r, "refunded").unwrap_or(0.0),
                })
                .collect()
        }),
    }
}

fn source_name(source: &str) -> String {
    if source.is_empty() {
        "(none)".into()
    } else {
        source.to_string()
    }
}

impl SourcesPage {
    /// Its tables: `sources` and `revenue`.
    pub fn tables(&self) -> Vec<Table> {
        vec![
            Table::new(
                "sources",
                &[
                    "source",
                    "new users",
                    "retained week 1",
                    "retention week 1",
                    "blocked (ever)",
                    "blocked now",
                    "payers",
                ],
                self.sources.clone().map(|rows| {
                    rows.iter()
                        .map(|s| {
                            vec![
                                Cell::Text(source_name(&s.source)),
                                Cell::Count(s.users),
                                Cell::Count(s.retained_w1),
                                Cell::Ratio(ratio(s.retained_w1, s.users)),
                                Cell::Count(s.blocked_ever),
                                Cell::Count(s.blocked_now),
                                Cell::Count(s.payers),
                            ]
                        })
                        .collect()
                }),
            ),
            Table::new(
                "revenue",
                &["source", "currency", "paid", "refunded", "net"],
                self.revenue.clone().map(|rows| {
                    rows.iter()
                        .map(|r| {
                            vec![
                                Cell::Text(source_name(&r.source)),
                                Cell::Text(r.currency.clone()),
                                Cell::Number(Some(r.paid)),
                                Cell::Number(Some(r.refunded)),
                                Cell::Number(Some(r.paid - r.refunded)),
                            ]
                        })
                        .collect()
                }),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::rows_from_json as rows;
    use serde_json::json;

    #[test]
    fn calendar_arithmetic() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_416), (2025, 11, 24));
        assert_eq!(days_from_civil(2025, 11, 24), 20_416);
        assert_eq!(
            days_from_civil(2024, 2, 29) + 1,
            days_from_civil(2024, 3, 1)
        );
        // 2025-11-24 16:00 UTC: the view starts on 2024-12-01.
        let start = twelve_months_start(1_764_000_000_000);
        assert_eq!(civil(start / DAY_MS), (2024, 12, 1));
        assert_eq!(
            civil(twelve_months_start(days_from_civil(2025, 12, 31) * DAY_MS) / DAY_MS),
            (2025, 1, 1)
        );
        // 2025-11-24 is a Monday; 1970-01-05 was one too.
        assert_eq!(monday(20_416), 20_416);
        assert_eq!(monday(20_422), 20_416);
        assert_eq!(monday(4), 4);
        assert_eq!(monday(3), -3);
    }

    #[test]
    fn the_triangle_hides_weeks_not_begun_and_divides_by_the_cohort() {
        // Today: Wednesday 2025-11-26 (day 20,418); this week's cohort is (20,416 + 3) / 7.
        let today = 20_418;
        let c = (20_416 + 3) / 7;
        let data = rows(json!([
            {"cohort": c - 1, "week": -1, "users": 4},
            {"cohort": c - 1, "week": 0, "users": 4},
            {"cohort": c - 1, "week": 1, "users": 1},
            {"cohort": c, "week": -1, "users": 2},
            {"cohort": c, "week": 0, "users": 2},
        ]));
        let t = triangle(&data, 3, today);
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].monday, 20_416 * DAY_MS);
        assert_eq!(t[0].size, 0);
        assert_eq!(t[0].active[..3], [Some(0), Some(0), Some(0)]);
        assert_eq!(t[0].active[3], None);
        assert_eq!(t[0].share(0), None, "an empty cohort has no shares");
        assert_eq!(t[1].active[..3], [Some(4), Some(1), None]);
        assert_eq!(t[1].share(1), Some(0.25));
        assert_eq!(t[2].active[..2], [Some(2), None]);
        assert_eq!(t[2].share(0), Some(1.0));
        let page = RetentionPage {
            range: Range::Month,
            bot: None,
            cohorts: Ok(t),
        };
        let csv = page.tables()[0].csv().unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("cohort (week of),users,week 0,week 1,week 2,"));
        assert!(
            lines[2].starts_with("2025-11-17,4,1.0000,0.2500,,"),
            "{csv}"
        );
    }

    #[test]
    fn users_per_day_land_on_their_days() {
        let now = 1_764_000_000_000; // 2025-11-24 16:00
        let mut results = Results::default();
        results.insert(
            QueryId::UsersPerDay,
            Ok(rows(json!([
                {"day": 20_416, "metric": "new", "n": 3},
                {"day": 20_416, "metric": "active", "n": 5},
                {"day": 20_416, "metric": "returning", "n": 2},
                {"day": 20_415, "metric": "user_blocked", "n": 1},
                {"day": 1, "metric": "new", "n": 9}
            ]))),
        );
        results.insert(
            QueryId::Audience,
            Ok(rows(json!([
                {"metric": "dau", "key": "", "n": 5}, {"metric": "mau", "key": "", "n": 20},
                {"metric": "lang", "key": "en", "n": 3}, {"metric": "lang", "key": "", "n": 1},
                {"metric": "lang", "key": "ru", "n": 6},
                {"metric": "premium", "key": "1", "n": 2}, {"metric": "premium", "key": "0", "n": 6},
                {"metric": "premium", "key": "", "n": 2}
            ]))),
        );
        results.insert(
            QueryId::RollupDays,
            Ok(rows(json!([
                {"day": 20_400, "new_users": 2, "active_users": 4, "revenue": "{\"XTR\": 100}", "events": 9},
                {"day": 20_401, "new_users": 1, "active_users": 2, "revenue": "{\"XTR\": 50, \"USD\": 3}"},
                {"day": 20_000, "new_users": 7}
            ]))),
        );
        let page = users(Range::Day, None, now, &results);
        let days = page.days.as_ref().unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!((days[1].new, days[1].active, days[1].returning), (3, 5, 2));
        assert_eq!(days[0].blocked, 1);
        let a = page.audience.as_ref().unwrap();
        assert_eq!(a.stickiness(), Some(0.25));
        assert_eq!(a.languages[0], ("ru".to_string(), 6));
        assert_eq!((a.premium, a.premium_known, a.seen()), (2, 8, 10));
        let months = page.months.as_ref().unwrap();
        assert_eq!(months.len(), 12);
        assert_eq!(months[11].month, "2025-11");
        assert_eq!(
            (
                months[11].new_users,
                months[11].days,
                months[11].active_user_days
            ),
            (3, 2, 6)
        );
        assert_eq!(money(&months[11].revenue), "3 USD · 150 XTR");
        assert_eq!(months[0].new_users, 0, "a day before the view is left out");
        assert!(page.not_understood.is_err(), "a missing query is an error");
    }

    #[test]
    fn funnel_results_sum_sources() {
        let settings = Settings::example();
        let mut results = Results::default();
        results.insert(
            QueryId::Funnels,
            Ok(rows(json!([
                {"source": "", "f0_0": 2, "f0_1": 1, "f0_2": 0, "f1_0": 2, "f1_1": 2},
                {"source": "ads", "f0_0": "3", "f0_1": "2", "f0_2": "1", "f1_0": 0, "f1_1": 0}
            ]))),
        );
        let page = funnels(Range::Week, None, &settings, &results);
        let f = page.funnels.as_ref().unwrap();
        assert_eq!(f[0].overall, vec![5, 3, 1]);
        assert_eq!(f[0].by_source[0].0, "ads");
        assert_eq!(
            f[1].by_source.len(),
            1,
            "sources without step 1 are left out"
        );
        let csv = page.tables()[0].csv().unwrap();
        assert!(
            csv.contains("Onboarding,all,2,callback menu,3,0.6000,0.6000\r\n"),
            "{csv}"
        );
        assert!(
            csv.contains("Onboarding,ads,3,order_paid,1,0.3333,0.5000\r\n"),
            "{csv}"
        );
        let bad = funnels(
            Range::Week,
            None,
            &Settings::from_vars(Some("oops")),
            &Results::default(),
        );
        assert!(bad.config_error.unwrap().contains("funnel 1"));
        assert_eq!(bad.funnels, Ok(vec![]));
    }
}
