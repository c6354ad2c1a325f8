//! A page's data plan: the queries it runs, and where. Each page runs at most
//! [`MAX_D1_QUERIES`] D1 queries (sent as one `batch()`) and at most [`MAX_SQL_API_CALLS`] SQL
//! API calls (sent concurrently); the tests below check every page with every parameter, and the
//! Worker runs exactly what the plan lists.

use ingest_policy::SqlValue;

use crate::funnel::{parse_config, Funnel, FunnelConfigError};
use crate::queries::{self, Dialect};
use crate::route::Page;
use crate::rows::Row;
use crate::sqlapi::{sql_api_url, ConfigError, QueryError, DEFAULT_API_BASE};
use crate::timefmt::DAY_MS;

/// Most D1 queries one page may run.
pub const MAX_D1_QUERIES: usize = 4;
/// Most Analytics Engine SQL API calls one page may make.
pub const MAX_SQL_API_CALLS: usize = 3;

/// Where a query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The D1 database (error log and pipeline tables).
    D1,
    /// Analytics Engine: the SQL API in production, the local mirror in D1 under `make dev`.
    AnalyticsEngine,
}

/// Names a query of a plan, so page models find their results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryId {
    /// [`queries::events_per_hour`].
    EventsPerHour,
    /// [`queries::commands_and_callbacks`].
    CommandsAndCallbacks,
    /// [`queries::daily_active_users`].
    DailyActiveUsers,
    /// [`queries::delivery_lag`].
    DeliveryLag,
    /// [`queries::delivery_lag_per_hour`].
    DeliveryLagPerHour,
    /// [`queries::telegram_lag_per_hour`].
    TelegramLagPerHour,
    /// [`queries::RECENT_GROUPS`].
    RecentGroups,
    /// [`queries::error_groups`].
    ErrorGroups,
    /// [`queries::RELEASES`].
    Releases,
    /// [`queries::GROUP`].
    Group,
    /// [`queries::GROUP_EVENTS`].
    GroupEvents,
    /// [`queries::GROUP_PER_HOUR`].
    GroupPerHour,
    /// [`queries::ENVELOPES`].
    Envelopes,
    /// [`queries::REJECTED_SUMMARY`].
    RejectedSummary,
    /// [`queries::REJECTED_RECENT`].
    RejectedRecent,
    /// [`queries::WEBHOOK_HEALTH`].
    WebhookHealth,
    /// [`queries::users_per_day`].
    UsersPerDay,
    /// [`queries::audience`].
    Audience,
    /// [`queries::ROLLUP_DAYS`].
    RollupDays,
    /// [`queries::not_understood_per_day`].
    NotUnderstood,
    /// [`queries::RETENTION`].
    Retention,
    /// [`queries::funnels`].
    Funnels,
    /// [`queries::SOURCES`].
    Sources,
    /// [`queries::SOURCE_REVENUE`].
    SourceRevenue,
}

/// The dashboard's own configuration that changes what a page queries (from its variables).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The funnels of `FUNNELS`, or why they were refused (shown on the Funnels page).
    pub funnels: Result<Vec<Funnel>, FunnelConfigError>,
    /// The key of the group status form's CSRF tokens (`None`: pages show no form).
    pub csrf: Option<crate::lifecycle::CsrfKey>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            funnels: Ok(Vec::new()),
            csrf: None,
        }
    }
}

impl Settings {
    /// The settings from the `FUNNELS` variable (absent: no funnels).
    pub fn from_vars(funnels: Option<&str>) -> Settings {
        Settings {
            funnels: parse_config(funnels.unwrap_or("")),
            csrf: None,
        }
    }

    /// With the CSRF key of `password` (the status forms need it).
    pub fn with_password(mut self, password: &str) -> Settings {
        self.csrf = Some(crate::lifecycle::CsrfKey::from_password(password));
        self
    }

    /// The settings the tests and examples use: [`crate::funnel::EXAMPLE`].
    pub fn example() -> Settings {
        Settings::from_vars(Some(crate::funnel::EXAMPLE))
    }
}

/// One query of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Which one.
    pub id: QueryId,
    /// Where it runs.
    pub store: Store,
    /// The SQL text (Analytics Engine queries already rendered in the plan's dialect).
    pub sql: String,
    /// Bound parameters (D1 only; Analytics Engine queries have none).
    pub params: Vec<SqlValue>,
}

/// The queries of one page view.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataPlan {
    /// In the order the Worker sends them.
    pub queries: Vec<Query>,
}

impl DataPlan {
    /// The queries that run in `store`.
    pub fn in_store(&self, store: Store) -> impl Iterator<Item = &Query> {
        self.queries.iter().filter(move |q| q.store == store)
    }

    /// How many queries run in `store`.
    pub fn count(&self, store: Store) -> usize {
        self.in_store(store).count()
    }

    fn d1(&mut self, id: QueryId, sql: &str, params: Vec<SqlValue>) {
        self.queries.push(Query {
            id,
            store: Store::D1,
            sql: sql.to_string(),
            params,
        });
    }

    fn ae(&mut self, id: QueryId, sql: String) {
        self.queries.push(Query {
            id,
            store: Store::AnalyticsEngine,
            sql,
            params: Vec::new(),
        });
    }
}

/// The data plan of `page` at `now_ms`, its Analytics Engine queries in `dialect`, with the
/// dashboard's `settings` (the funnels).
pub fn plan(page: &Page, now_ms: i64, dialect: Dialect, settings: &Settings) -> DataPlan {
    let mut plan = DataPlan::default();
    // The bot filter: a literal in Analytics Engine SQL (validated), a bound parameter in D1.
    let bot_param =
        |bot: &Option<String>| bot.clone().map(SqlValue::Text).unwrap_or(SqlValue::Null);
    match page {
        Page::Overview { range, bot } => {
            let window = range.window(now_ms);
            let b = bot.as_deref();
            plan.ae(
                QueryId::EventsPerHour,
                queries::events_per_hour(dialect, &window, b),
            );
            plan.ae(
                QueryId::CommandsAndCallbacks,
                queries::commands_and_callbacks(dialect, &window, b),
            );
            plan.ae(
                QueryId::DailyActiveUsers,
                queries::daily_active_users(dialect, &window, b),
            );
            plan.d1(
                QueryId::RecentGroups,
                queries::RECENT_GROUPS,
                vec![SqlValue::Integer(window.start_ms), bot_param(bot)],
            );
        }
        Page::Errors { sort, release, bot } => {
            let filter = release
                .clone()
                .map(SqlValue::Text)
                .unwrap_or(SqlValue::Null);
            plan.d1(
                QueryId::ErrorGroups,
                &queries::error_groups(*sort),
                vec![filter, bot_param(bot)],
            );
            plan.d1(QueryId::Releases, queries::RELEASES, vec![bot_param(bot)]);
        }
        Page::ErrorGroup {
            fingerprint, range, ..
        } => {
            let window = range.window(now_ms);
            let fp = SqlValue::Text(fingerprint.clone());
            plan.d1(QueryId::Group, queries::GROUP, vec![fp.clone()]);
            plan.d1(
                QueryId::GroupEvents,
                queries::GROUP_EVENTS,
                vec![fp.clone()],
            );
            plan.d1(
                QueryId::GroupPerHour,
                queries::GROUP_PER_HOUR,
                vec![fp, SqlValue::Integer(window.start_ms)],
            );
        }
        Page::Pipeline { range, bot } => {
            let window = range.window(now_ms);
            let since = SqlValue::Integer(window.start_ms);
            plan.d1(
                QueryId::Envelopes,
                queries::ENVELOPES,
                vec![since.clone(), bot_param(bot)],
            );
            plan.d1(
                QueryId::RejectedSummary,
                queries::REJECTED_SUMMARY,
                vec![since.clone()],
            );
            plan.d1(
                QueryId::RejectedRecent,
                queries::REJECTED_RECENT,
                vec![since],
            );
            plan.d1(
                QueryId::WebhookHealth,
                queries::WEBHOOK_HEALTH,
                vec![bot_param(bot)],
            );
            plan.ae(
                QueryId::DeliveryLag,
                queries::delivery_lag(dialect, &window, bot.as_deref()),
            );
            plan.ae(
                QueryId::DeliveryLagPerHour,
                queries::delivery_lag_per_hour(dialect, &window, bot.as_deref()),
            );
            plan.ae(
                QueryId::TelegramLagPerHour,
                queries::telegram_lag_per_hour(dialect, &window, bot.as_deref()),
            );
        }
        Page::Users { range, bot } => {
            let window = range.window(now_ms);
            let first_day = window.first_day_ms().div_euclid(DAY_MS);
            let today = now_ms.div_euclid(DAY_MS);
            plan.d1(
                QueryId::UsersPerDay,
                &queries::users_per_day(),
                vec![SqlValue::Integer(first_day), bot_param(bot)],
            );
            plan.d1(
                QueryId::Audience,
                &queries::audience(),
                vec![
                    SqlValue::Integer(today),
                    bot_param(bot),
                    SqlValue::Integer(window.start_ms),
                ],
            );
            plan.d1(
                QueryId::RollupDays,
                queries::ROLLUP_DAYS,
                vec![
                    SqlValue::Integer(crate::audience::twelve_months_start(now_ms) / DAY_MS),
                    bot_param(bot),
                ],
            );
            plan.ae(
                QueryId::NotUnderstood,
                queries::not_understood_per_day(dialect, &window, bot.as_deref()),
            );
        }
        Page::Retention { range, bot } => {
            let since = crate::audience::cohorts_start(*range, now_ms);
            plan.d1(
                QueryId::Retention,
                queries::RETENTION,
                vec![SqlValue::Integer(since), bot_param(bot)],
            );
        }
        Page::Funnels { range, bot } => {
            // A bad or empty configuration runs nothing: the page says why.
            if let Ok(funnels) = &settings.funnels {
                if !funnels.is_empty() {
                    let window = range.window(now_ms);
                    plan.ae(
                        QueryId::Funnels,
                        queries::funnels(dialect, &window, bot.as_deref(), funnels),
                    );
                }
            }
        }
        Page::Sources { range, bot } => {
            let since = SqlValue::Integer(range.window(now_ms).start_ms);
            plan.d1(
                QueryId::Sources,
                queries::SOURCES,
                vec![since.clone(), bot_param(bot)],
            );
            plan.d1(
                QueryId::SourceRevenue,
                queries::SOURCE_REVENUE,
                vec![since, bot_param(bot)],
            );
        }
    }
    plan
}

/// Where the Analytics Engine data of a page comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AeSource {
    /// The SQL API (production).
    SqlApi {
        /// The full endpoint URL.
        url: String,
        /// The API token (sent as a bearer token, never shown).
        token: String,
    },
    /// The local mirror in D1 (`make dev`, `AE_LOCAL_MIRROR=1`).
    LocalMirror,
    /// Neither: the pages show what D1 has and say what is missing.
    NotConfigured,
}

impl AeSource {
    /// Chooses the source: SQL API credentials win; else the local mirror when
    /// `AE_LOCAL_MIRROR` is on; else none. Credentials that are set but unusable are an error.
    pub fn from_config(
        account_id: Option<&str>,
        token: Option<&str>,
        base: Option<&str>,
        local_mirror: bool,
    ) -> Result<AeSource, ConfigError> {
        let account_id = account_id.filter(|s| !s.is_empty());
        let token = token.filter(|s| !s.is_empty());
        match (account_id, token) {
            (Some(account), Some(token)) => {
                if !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::Token);
                }
                let base = base.filter(|s| !s.is_empty()).unwrap_or(DEFAULT_API_BASE);
                Ok(AeSource::SqlApi {
                    url: sql_api_url(base, account)?,
                    token: token.to_string(),
                })
            }
            _ if local_mirror => Ok(AeSource::LocalMirror),
            _ => Ok(AeSource::NotConfigured),
        }
    }

    /// The dialect its queries are rendered in.
    pub fn dialect(&self) -> Dialect {
        match self {
            AeSource::LocalMirror => Dialect::Sqlite,
            _ => Dialect::AnalyticsEngine,
        }
    }

    /// How the pages name it.
    pub fn label(&self) -> &'static str {
        match self {
            AeSource::SqlApi { .. } => "Analytics Engine SQL API",
            AeSource::LocalMirror => "local mirror (D1 analytics_points_local)",
            AeSource::NotConfigured => "not configured",
        }
    }
}

/// The results of a plan, by query.
#[derive(Debug, Clone, Default)]
pub struct Results {
    entries: Vec<(QueryId, Result<Vec<Row>, QueryError>)>,
}

impl Results {
    /// Records the result of query `id`.
    pub fn insert(&mut self, id: QueryId, result: Result<Vec<Row>, QueryError>) {
        self.entries.push((id, result));
    }

    /// The rows of query `id`, or why there are none (a query that never ran counts as not
    /// configured).
    pub fn get(&self, id: QueryId) -> Result<&[Row], QueryError> {
        match self.entries.iter().find(|(i, _)| *i == id) {
            Some((_, Ok(rows))) => Ok(rows),
            Some((_, Err(e))) => Err(e.clone()),
            None => Err(QueryError::NotConfigured),
        }
    }

    /// Every error, once each, for the page's notice.
    pub fn errors(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, r) in &self.entries {
            if let Err(e) = r {
                let text = e.to_string();
                if !out.contains(&text) {
                    out.push(text);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::ErrorSort;

    fn every_page() -> Vec<Page> {
        crate::pages::every_example().collect()
    }

    #[test]
    fn every_page_runs_at_most_three_queries_per_store() {
        for page in every_page() {
            for dialect in [Dialect::AnalyticsEngine, Dialect::Sqlite] {
                let plan = plan(&page, 1_764_000_000_000, dialect, &Settings::example());
                assert!(plan.count(Store::D1) <= MAX_D1_QUERIES, "{page:?}");
                assert!(
                    plan.count(Store::AnalyticsEngine) <= MAX_SQL_API_CALLS,
                    "{page:?}"
                );
                assert!(!plan.queries.is_empty());
            }
        }
    }

    /// The highest `?N` placeholder of a statement.
    fn placeholders(sql: &str) -> usize {
        (1..10)
            .filter(|n| sql.contains(&format!("?{n}")))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn request_values_reach_sql_only_as_bound_parameters() {
        let hostile = "'; DROP TABLE error_groups; --<script>";
        let page = Page::Errors {
            sort: ErrorSort::Count,
            release: Some(hostile.into()),
            bot: None,
        };
        let errors = plan(&page, 0, Dialect::AnalyticsEngine, &Settings::example());
        assert_eq!(
            errors.queries[0].params,
            vec![SqlValue::Text(hostile.into()), SqlValue::Null]
        );
        for page in every_page() {
            for dialect in [Dialect::AnalyticsEngine, Dialect::Sqlite] {
                let p = plan(&page, 1_764_000_000_000, dialect, &Settings::example());
                for q in &p.queries {
                    assert!(!q.sql.contains("DROP"), "{}", q.sql);
                    match q.store {
                        Store::AnalyticsEngine => assert!(q.params.is_empty()),
                        Store::D1 => assert_eq!(q.params.len(), placeholders(&q.sql), "{}", q.sql),
                    }
                    if let Page::ErrorGroup { fingerprint, .. } = &page {
                        assert!(!q.sql.contains(fingerprint.as_str()));
                    }
                }
            }
        }
    }

    #[test]
    fn a_funnels_page_without_good_funnels_queries_nothing() {
        let page = Page::Funnels {
            range: crate::range::Range::Week,
            bot: None,
        };
        for settings in [Settings::default(), Settings::from_vars(Some("nonsense"))] {
            assert!(plan(&page, 0, Dialect::Sqlite, &settings)
                .queries
                .is_empty());
        }
        assert!(Settings::from_vars(Some("nonsense")).funnels.is_err());
        assert_eq!(
            plan(&page, 0, Dialect::Sqlite, &Settings::example()).count(Store::AnalyticsEngine),
            1
        );
    }

    #[test]
    fn the_source_follows_the_configuration() {
        let account = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            AeSource::from_config(Some(account), Some("tok"), None, true).unwrap(),
            AeSource::SqlApi {
                url: format!(
                    "https://api.cloudflare.com/client/v4/accounts/{account}/analytics_engine/sql"
                ),
                token: "tok".into()
            }
        );
        assert_eq!(
            AeSource::from_config(None, Some("tok"), None, true).unwrap(),
            AeSource::LocalMirror
        );
        assert_eq!(
            AeSource::from_config(Some(""), Some(""), None, false).unwrap(),
            AeSource::NotConfigured
        );
        assert_eq!(
            AeSource::from_config(Some("nope"), Some("tok"), None, false),
            Err(ConfigError::AccountId)
        );
        assert_eq!(
            AeSource::from_config(Some(account), Some("a\r\nX-Evil: 1"), None, false),
            Err(ConfigError::Token)
        );
        assert_eq!(AeSource::LocalMirror.dialect(), Dialect::Sqlite);
        assert_eq!(AeSource::NotConfigured.dialect(), Dialect::AnalyticsEngine);
    }

    #[test]
    fn missing_results_read_as_not_configured() {
        let mut results = Results::default();
        results.insert(QueryId::Releases, Ok(vec![]));
        results.insert(QueryId::Group, Err(QueryError::D1("boom".into())));
        results.insert(QueryId::GroupEvents, Err(QueryError::D1("boom".into())));
        assert!(results.get(QueryId::Releases).unwrap().is_empty());
        assert_eq!(
            results.get(QueryId::Envelopes),
            Err(QueryError::NotConfigured)
        );
        assert_eq!(results.errors(), vec!["D1 query failed: boom".to_string()]);
    }
}
