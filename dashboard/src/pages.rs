//! The dashboard's pages, from one registry: every kind of page, the URL of each page, the
//! parameter values the tests must cover, and the dispatch from a page and its query results to
//! its model and HTML. The Worker only runs the page's [`crate::plan::plan`] and calls
//! [`render`].
//!
//! Adding a page: a variant of [`Page`] (its route in [`crate::route::route`]), a kind in the
//! `page_kinds!` list below. The compiler then asks for everything else, because every
//! dispatch is an exhaustive `match`: its kind ([`Page::kind`]), URL ([`Page::url`]), examples
//! ([`PageKind::examples`]), plan ([`crate::plan::plan`]) and renderer ([`render`]). The plan
//! tests, the SQL tests (native SQLite and the Analytics Engine fake), the escaping test and the
//! browser test enumerate [`PageKind::ALL`], so no page skips their checks: a page whose plan is
//! empty, whose URL does not route back to it, or whose HTML escapes nothing fails them.

use crate::audience;
use crate::html::{self, Footer};
use crate::model;
use crate::plan::{Results, Settings};
use crate::queries::ErrorSort;
use crate::range::Range;
use crate::route::{encode, Page};
use crate::table::{Cell, Table};

/// Declares [`PageKind`] and [`PageKind::ALL`] from one list, so no kind can be left out of it.
macro_rules! page_kinds {
    ($($(#[$doc:meta])* $kind:ident),+ $(,)?) => {
        /// A kind of dashboard page (a [`Page`] without its parameters).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum PageKind {
            $($(#[$doc])* $kind,)+
        }

        impl PageKind {
            /// Every kind, in the order of the navigation.
            pub const ALL: &'static [PageKind] = &[$(PageKind::$kind,)+];
        }
    };
}

page_kinds! {
    /// `/`: charts and tables over a range.
    Overview,
    /// `/errors`: the error groups.
    Errors,
    /// `/errors/<fingerprint>`: one error group.
    ErrorGroup,
    /// `/pipeline`: the pipeline's health.
    Pipeline,
    /// `/users`: new, returning, active and blocked users, languages, twelve months.
    Users,
    /// `/retention`: weekly cohorts.
    Retention,
    /// `/funnels`: the configured funnels.
    Funnels,
    /// `/sources`: users by deep-link source.
    Sources,
}

/// A release name that tries everything: SQL, markup and URL syntax.
pub const HOSTILE_RELEASE: &str = "'; DROP TABLE error_groups; --<script>&\"";

/// The bot filters every kind of page is tested with: every bot, and one.
pub const EXAMPLE_BOTS: [Option<&str>; 2] = [None, Some("minimal-bot")];

impl PageKind {
    /// Pages of this kind with every parameter value the tests must cover: each range, each
    /// sort, no release, a plain one and a hostile one, and each of [`EXAMPLE_BOTS`].
    pub fn examples(self) -> Vec<Page> {
        let fingerprint = || "0123456789abcdef".to_string();
        let mut pages = Vec::new();
        for bot in EXAMPLE_BOTS.map(|b| b.map(str::to_string)) {
            match self {
                PageKind::Overview => pages.extend(Range::ALL.map(|range| Page::Overview {
                    range,
                    bot: bot.clone(),
                })),
                PageKind::Pipeline => pages.extend(Range::ALL.map(|range| Page::Pipeline {
                    range,
                    bot: bot.clone(),
                })),
                PageKind::Users => pages.extend(Range::ALL.map(|range| Page::Users {
                    range,
                    bot: bot.clone(),
                })),
                PageKind::Retention => pages.extend(Range::ALL.map(|range| Page::Retention {
                    range,
                    bot: bot.clone(),
                })),
                PageKind::Funnels => pages.extend(Range::ALL.map(|range| Page::Funnels {
                    range,
                    bot: bot.clone(),
                })),
                PageKind::Sources => pages.extend(Range::ALL.map(|range| Page::Sources {
                    range,
                    bot: bot.clone(),
                })),
                PageKind::ErrorGroup => pages.extend(Range::ALL.map(|range| Page::ErrorGroup {
                    fingerprint: fingerprint(),
                    range,
                    bot: bot.clone(),
                })),
                PageKind::Errors => {
                    let releases = [None, Some("0.1.0"), Some(HOSTILE_RELEASE)];
                    for sort in [ErrorSort::LastSeen, ErrorSort::Count] {
                        pages.extend(releases.map(|release| Page::Errors {
                            sort,
                            release: release.map(str::to_string),
                            bot: bot.clone(),
                        }));
                    }
                }
            }
        }
        pages
    }

    /// Its name, for test reports and screenshots.
    pub fn name(self) -> &'static str {
        match self {
            PageKind::Overview => "overview",
            PageKind::Errors => "errors",
            PageKind::ErrorGroup => "group",
            PageKind::Pipeline => "pipeline",
            PageKind::Users => "users",
            PageKind::Retention => "retention",
            PageKind::Funnels => "funnels",
            PageKind::Sources => "sources",
        }
    }

    /// The tables a page of this kind exports as CSV (`format=csv&table=<name>`).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            PageKind::Overview => &["events", "commands", "daily_users", "recent_errors"],
            PageKind::Errors => &["groups", "releases"],
            PageKind::ErrorGroup => &["events", "per_hour"],
            PageKind::Pipeline => &[
                "messages",
                "dropped",
                "rejected",
                "recent_rejected",
                "lag_per_hour",
                "telegram_lag",
            ],
            PageKind::Users => &["daily", "not_understood", "languages", "months"],
            PageKind::Retention => &["retention"],
            PageKind::Funnels => &["funnels"],
            PageKind::Sources => &["sources", "revenue"],
        }
    }
}

/// `&bot=<name>` for a bot filter, nothing for every bot.
pub fn bot_param(bot: Option<&str>) -> String {
    bot.map(|b| format!("&bot={}", encode(b)))
        .unwrap_or_default()
}

impl Page {
    /// Its kind.
    pub fn kind(&self) -> PageKind {
        match self {
            Page::Overview { .. } => PageKind::Overview,
            Page::Errors { .. } => PageKind::Errors,
            Page::ErrorGroup { .. } => PageKind::ErrorGroup,
            Page::Pipeline { .. } => PageKind::Pipeline,
            Page::Users { .. } => PageKind::Users,
            Page::Retention { .. } => PageKind::Retention,
            Page::Funnels { .. } => PageKind::Funnels,
            Page::Sources { .. } => PageKind::Sources,
        }
    }

    /// Its bot filter.
    pub fn bot(&self) -> Option<&str> {
        match self {
            Page::Overview { bot, .. }
            | Page::Errors { bot, .. }
            | Page::ErrorGroup { bot, .. }
            | Page::Pipeline { bot, .. }
            | Page::Users { bot, .. }
            | Page::Retention { bot, .. }
            | Page::Funnels { bot, .. }
            | Page::Sources { bot, .. } => bot.as_deref(),
        }
    }

    /// Its URL (path and query), which routes back to this very page.
    pub fn url(&self) -> String {
        let bot = bot_param(self.bot());
        match self {
            Page::Overview { range, .. } => format!("/?range={}{bot}", range.as_param()),
            Page::Pipeline { range, .. } => format!("/pipeline?range={}{bot}", range.as_param()),
            Page::Users { range, .. } => format!("/users?range={}{bot}", range.as_param()),
            Page::Retention { range, .. } => format!("/retention?range={}{bot}", range.as_param()),
            Page::Funnels { range, .. } => format!("/funnels?range={}{bot}", range.as_param()),
            Page::Sources { range, .. } => format!("/sources?range={}{bot}", range.as_param()),
            Page::ErrorGroup {
                fingerprint, range, ..
            } => {
                format!("/errors/{fingerprint}?range={}{bot}", range.as_param())
            }
            Page::Errors { sort, release, .. } => {
                let release = release
                    .as_deref()
                    .map(|r| format!("&release={}", encode(r)))
                    .unwrap_or_default();
                format!("/errors?sort={}{release}{bot}", sort.as_param())
            }
        }
    }
}

/// The page's HTML from the results of its plan, as of `now_ms`, with the dashboard's
/// `settings`.
pub fn render(
    page: &Page,
    now_ms: i64,
    results: &Results,
    settings: &Settings,
    footer: &Footer,
) -> String {
    let bot = page.bot().map(str::to_string);
    let url = page.url();
    match page {
        Page::Overview { range, .. } => {
            html::overview(&model::overview(*range, bot, now_ms, results), footer)
        }
        Page::Errors { sort, release, .. } => {
            html::errors(&model::errors(*sort, release.clone(), bot, results), footer)
        }
        Page::ErrorGroup {
            fingerprint, range, ..
        } => {
            let mut model = model::group(fingerprint, *range, bot, now_ms, results);
            model.csrf = settings.csrf.as_ref().map(|key| key.token(fingerprint));
            html::group(&model, footer)
        }
        Page::Pipeline { range, .. } => {
            html::pipeline(&model::pipeline(*range, bot, now_ms, results), footer)
        }
        Page::Users { range, .. } => {
            html::users(&audience::users(*range, bot, now_ms, results), &url, footer)
        }
        Page::Retention { range, .. } => html::retention(
            &audience::retention(*range, bot, now_ms, results),
            &url,
            footer,
        ),
        Page::Funnels { range, .. } => html::funnels(
            &audience::funnels(*range, bot, settings, results),
            &url,
            footer,
        ),
        Page::Sources { range, .. } => {
            html::sources(&audience::sources(*range, bot, results), &url, footer)
        }
    }
}

/// The URL of a page's table as CSV.
pub fn csv_url(page_url: &str, table: &str) -> String {
    let join = if page_url.contains('?') { '&' } else { '?' };
    format!("{page_url}{join}format=csv&table={}", encode(table))
}

/// Why a table could not be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// The page has no table of that name (a 404 or 400 to the client).
    #[error("this page has no table {0:?}")]
    UnknownTable(String),
    /// The table's query failed (a 503: try again).
    #[error("the data of table {table:?} could not be loaded: {message}")]
    QueryFailed {
        /// The table.
        table: String,
        /// Why.
        message: String,
    },
}

/// The table `name` of `page` as CSV, from the results of its plan.
pub fn csv(
    page: &Page,
    name: &str,
    now_ms: i64,
    results: &Results,
    settings: &Settings,
) -> Result<String, CsvError> {
    let table = tables(page, now_ms, results, settings)
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| CsvError::UnknownTable(name.to_string()))?;
    table.csv().map_err(|message| CsvError::QueryFailed {
        table: name.to_string(),
        message,
    })
}

/// `name-of-page-table.csv` for `Content-Disposition` (only `a-z 0-9 _ -`).
pub fn csv_filename(page: &Page, table: &str) -> String {
    let name: String = format!("{}-{table}", page.kind().name())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}.csv")
}

fn group_rows(groups: &[model::GroupRow]) -> Vec<Vec<Cell>> {
    groups
        .iter()
        .map(|g| {
            vec![
                Cell::Text(g.fingerprint.clone()),
                Cell::Text(g.bot.clone()),
                Cell::Text(g.kind.clone()),
                Cell::Text(g.location.clone()),
                Cell::Text(g.message.clone()),
                Cell::Count(g.count),
                Cell::Count(g.users),
                Cell::Time(g.first_seen),
                Cell::Time(g.last_seen),
                Cell::Text(g.release.clone()),
            ]
        })
        .collect()
}

const GROUP_COLUMNS: [&str; 10] = [
    "fingerprint",
    "bot",
    "kind",
    "location",
    "message",
    "events",
    "users",
    "first seen",
    "last seen",
    "release",
];

/// Every table of `page` (as [`PageKind::tables`] names them), from the results of its plan.
pub fn tables(page: &Page, now_ms: i64, results: &Results, settings: &Settings) -> Vec<Table> {
    let bot = page.bot().map(str::to_string);
    match page {
        Page::Overview { range, .. } => {
            let o = model::overview(*range, bot, now_ms, results);
            let hours = o.hours.clone();
            vec![
                Table::new(
                    "events",
                    &["hour", "kind", "events"],
                    o.series.clone().map(|series| {
                        let mut rows = Vec::new();
                        for s in &series {
                            for (at, v) in hours.iter().zip(&s.values) {
                                rows.push(vec![
                                    Cell::Time(*at),
                                    Cell::Text(s.kind.clone()),
                                    Cell::Number(Some(*v)),
                                ]);
                            }
                        }
                        rows
                    }),
                ),
                Table::new(
                    "commands",
                    &[
                        "bot",
                        "kind",
                        "name",
                        "uses",
                        "handler p50 ms",
                        "handler p95 ms",
                    ],
                    o.names.clone().map(|names| {
                        names
                            .iter()
                            .map(|n| {
                                vec![
                                    Cell::Text(n.bot.clone()),
                                    Cell::Text(n.kind.clone()),
                                    Cell::Text(n.name.clone()),
                                    Cell::Count(n.uses),
                                    Cell::Ms(n.p50_ms),
                                    Cell::Ms(n.p95_ms),
                                ]
                            })
                            .collect()
                    }),
                ),
                Table::new(
                    "daily_users",
                    &["day", "users"],
                    o.daily_users.clone().map(|days| {
                        days.iter()
                            .map(|(d, n)| vec![Cell::Day(*d), Cell::Count(*n)])
                            .collect()
                    }),
                ),
                Table::new(
                    "recent_errors",
                    &GROUP_COLUMNS,
                    o.recent_groups.clone().map(|g| group_rows(&g)),
                ),
            ]
        }
        Page::Errors { sort, release, .. } => {
            let e = model::errors(*sort, release.clone(), bot, results);
            vec![
                Table::new(
                    "groups",
                    &GROUP_COLUMNS,
                    e.groups.clone().map(|g| group_rows(&g)),
                ),
                Table::new(
                    "releases",
                    &["release", "events"],
                    e.releases.clone().map(|r| {
                        r.iter()
                            .map(|(name, n)| vec![Cell::Text(name.clone()), Cell::Count(*n)])
                            .collect()
                    }),
                ),
            ]
        }
        Page::ErrorGroup {
            fingerprint, range, ..
        } => {
            let g = model::group(fingerprint, *range, bot, now_ms, results);
            let hours = g.hours.clone();
            vec![
                Table::new(
                    "events",
                    &[
                        "event id",
                        "occurred at",
                        "received at",
                        "message",
                        "location",
                        "user",
                        "chat",
                        "bot",
                        "release",
                    ],
                    g.events.clone().map(|events| {
                        events
                            .iter()
                            .map(|e| {
                                vec![
                                    Cell::Text(e.event_id.clone()),
                                    Cell::Time(e.occurred_at),
                                    Cell::Time(e.received_at),
                                    Cell::Text(e.message.clone()),
                                    Cell::Text(e.location.clone()),
                                    Cell::Text(e.user.clone()),
                                    Cell::Text(e.chat.clone()),
                                    Cell::Text(e.bot.clone()),
                                    Cell::Text(e.release.clone()),
                                ]
                            })
                            .collect()
                    }),
                ),
                Table::new(
                    "per_hour",
                    &["hour", "events"],
                    g.per_hour.clone().map(|values| {
                        hours
                            .iter()
                            .zip(&values)
                            .map(|(at, v)| vec![Cell::Time(*at), Cell::Number(Some(*v))])
                            .collect()
                    }),
                ),
            ]
        }
        Page::Pipeline { range, .. } => {
            let p = model::pipeline(*range, bot, now_ms, results);
            let hours = p.hours.clone();
            vec![
                Table::new(
                    "messages",
                    &["events in a message", "messages"],
                    p.envelopes.clone().map(|e| {
                        e.histogram
                            .iter()
                            .map(|(events, n)| vec![Cell::Count(*events), Cell::Count(*n)])
                            .collect()
                    }),
                ),
                Table::new(
                    "dropped",
                    &["reason", "events"],
                    p.envelopes.clone().map(|e| {
                        e.dropped
                            .iter()
                            .map(|(reason, n)| {
                                vec![Cell::Text(reason.to_string()), Cell::Count(*n)]
                            })
                            .collect()
                    }),
                ),
                Table::new(
                    "rejected",
                    &["queue", "dead letter", "reason", "messages", "last seen"],
                    p.rejected.clone().map(|rows| {
                        rows.iter()
                            .map(|r| {
                                vec![
                                    Cell::Text(r.queue.clone()),
                                    Cell::Text(if r.dead_letter { "yes" } else { "no" }.into()),
                                    Cell::Text(r.reason.clone()),
                                    Cell::Count(r.messages),
                                    Cell::Time(r.last_seen),
                                ]
                            })
                            .collect()
                    }),
                ),
                Table::new(
                    "recent_rejected",
                    &[
                        "queue",
                        "message id",
                        "reason",
                        "detail",
                        "payload bytes",
                        "received at",
                    ],
                    p.recent_rejected.clone().map(|rows| {
                        rows.iter()
                            .map(|r| {
                                vec![
                                    Cell::Text(r.queue.clone()),
                                    Cell::Text(r.message_id.clone()),
                                    Cell::Text(r.reason.clone()),
                                    Cell::Text(r.detail.clone()),
                                    Cell::Count(r.payload_bytes),
                                    Cell::Time(r.received_at),
                                ]
                            })
                            .collect()
                    }),
                ),
                Table::new(
                    "lag_per_hour",
                    &["hour", "events", "lag p50 ms", "lag p95 ms"],
                    p.lag_per_hour.clone().map(|(events, p50, p95)| {
                        (0..hours.len())
                            .map(|i| {
                                vec![
                                    Cell::Time(hours[i]),
                                    Cell::Number(events.get(i).copied()),
                                    Cell::Ms(p50.get(i).copied().filter(|v| *v > 0.0)),
                                    Cell::Ms(p95.get(i).copied().filter(|v| *v > 0.0)),
                                ]
                            })
                            .collect()
                    }),
                ),
                Table::new(
                    "telegram_lag",
                    &["hour", "updates", "lag p50 ms", "lag p95 ms"],
                    p.telegram_lag.clone().map(|hours| {
                        hours
                            .iter()
                            .map(|h| {
                                vec![
                                    Cell::Time(h.hour),
                                    Cell::Count(h.updates),
                                    Cell::Ms(h.p50_ms),
                                    Cell::Ms(h.p95_ms),
                                ]
                            })
                            .collect()
                    }),
                ),
            ]
        }
        Page::Users { range, .. } => audience::users(*range, bot, now_ms, results).tables(),
        Page::Retention { range, .. } => audience::retention(*range, bot, now_ms, results).tables(),
        Page::Funnels { range, .. } => audience::funnels(*range, bot, settings, results).tables(),
        Page::Sources { range, .. } => audience::sources(*range, bot, results).tables(),
    }
}

/// Every example page of every kind.
pub fn every_example() -> impl Iterator<Item = Page> {
    PageKind::ALL.iter().flat_map(|kind| kind.examples())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{route, Route};

    #[test]
    fn every_kind_has_examples_of_its_own_kind_whose_urls_route_back() {
        for kind in PageKind::ALL {
            let examples = kind.examples();
            assert!(!examples.is_empty(), "{kind:?} has no examples");
            for page in examples {
                assert_eq!(page.kind(), *kind);
                let url = page.url();
                let (path, query) = url.split_once('?').unwrap_or((&url, ""));
                assert_eq!(
                    route("GET", path, query),
                    Route::Page(page.clone()),
                    "{url}"
                );
            }
        }
    }

    #[test]
    fn every_listed_table_exists_and_exports() {
        let results = Results::default();
        let settings = Settings::example();
        for page in every_example() {
            let names: Vec<&str> = tables(&page, 0, &results, &settings)
                .iter()
                .map(|t| t.name)
                .collect();
            assert_eq!(names, page.kind().tables(), "{page:?}");
            for table in page.kind().tables() {
                // Nothing ran: every table's query reads as failed, never a panic.
                assert!(matches!(
                    csv(&page, table, 0, &results, &settings),
                    Err(CsvError::QueryFailed { .. })
                ));
                let url = csv_url(&page.url(), table);
                let (path, query) = url.split_once('?').unwrap();
                assert_eq!(
                    route("GET", path, query),
                    Route::Csv {
                        page: page.clone(),
                        table
                    }
                );
            }
        }
        let page = Page::Sources {
            range: Range::Week,
            bot: None,
        };
        assert_eq!(
            csv(&page, "nope", 0, &results, &settings),
            Err(CsvError::UnknownTable("nope".into()))
        );
        assert_eq!(csv_filename(&page, "revenue"), "sources-revenue.csv");
    }

    #[test]
    fn kinds_are_listed_once_with_distinct_names() {
        let mut names: Vec<&str> = PageKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PageKind::ALL.len());
    }
}
