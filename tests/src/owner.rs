//! A known population for the owner-analytics pages (Users, Retention, Funnels, Sources): five
//! users and what each did, as actions in time, so a test can check exact figures. [`seed`]
//! writes what the consumer would store for them straight into the local D1 (`bot_users`,
//! `user_days`, `user_events`, `daily_rollup`) and the local mirror (Analytics Engine points);
//! [`update_json`] makes the same actions Telegram updates for the example bot
//! (`producer-worker`), which `tests/tests/owner_pipeline.rs` sends through the real pipeline;
//! [`check_pages`] checks the exact figures both ways must show.
//!
//! Every action is one the example bot really tracks: it answers commands and buttons, answers
//! no plain text (so every text is `not_understood`), and `/members` records the custom event
//! `chat_size`. Telegram omits `is_premium` unless the user has Premium, so a user with a
//! language is "not premium" when not premium (never unknown).
//!
//! Today is day `T` (UTC). Users (raw Telegram ids; stored as [`crate::stack::pseudonym`]):
//! - A 5001 (en, premium): T−14 /start from `ads`, menu button, /members (`chat_size`), /help;
//!   T−7 /help; T /ping.
//! - B 5002 (ru, not premium): T−14 /start from `ads`; blocked the bot on T−12, unblocked it on
//!   T−10; T−7 /help.
//! - C 5003 (en, not premium): T−14 /start; T−13 checkout and paid 500 XTR, refunded 200 XTR
//!   later that day.
//! - D 5004 (de, not premium): T−3 /start from `promo`, menu button; T a text (not understood).
//! - E 5005 (en, premium): T /start, then /ping.

use std::path::Path;
use std::time::Duration;

use crate::dashboard::Dashboard;
use crate::stack::pseudonym;

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// What a user did.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// `/start`, with a deep-link source or none.
    Start(Option<&'static str>),
    /// Another command (`help`).
    Command(&'static str),
    /// A button press with this callback name.
    Button(&'static str),
    /// A plain text message: the example bot answers none (a `user/not_understood` event).
    Text,
    /// `/members`: the bot asks the Bot API and tracks the custom event `chat_size`.
    Members,
    /// A `pre_checkout_query` (currency, amount).
    PreCheckout(&'static str, f64),
    /// Blocked the bot (a membership change: not an active day).
    Blocked,
    /// Unblocked it.
    Unblocked,
    /// A successful payment, in the currency's smallest units.
    Payment(&'static str, f64),
    /// A refund the bot made (no update from the user: not an active day).
    Refund(&'static str, f64),
}

impl What {
    /// Whether it makes its day an active day of the user (`user_days`).
    pub fn active(&self) -> bool {
        !matches!(self, What::Blocked | What::Unblocked | What::Refund(..))
    }
}

/// One action: who, when (ms), what.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The raw Telegram user id.
    pub user: i64,
    /// When, ms since the epoch.
    pub at: i64,
    /// What.
    pub what: What,
}

/// A user of the population.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownUser {
    /// The raw Telegram user id.
    pub id: i64,
    /// `language_code`'s two letters.
    pub lang: &'static str,
    /// `is_premium` (`None`: Telegram did not say).
    pub premium: Option<bool>,
}

/// The population: its bot, users and actions (in time order).
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    /// The bot's name (`BOT_NAME`).
    pub bot: String,
    /// Today (UTC), days since the epoch.
    pub today: i64,
    /// The users.
    pub users: Vec<KnownUser>,
    /// What they did, oldest first.
    pub actions: Vec<Action>,
}

/// The known population of bot `bot`, with today the UTC day holding `now_ms` (the module's
/// documentation says who did what).
pub fn known_population(bot: &str, now_ms: i64) -> Population {
    let today = now_ms.div_euclid(DAY_MS);
    let at = |days_ago: i64, hour: i64, minute: i64| {
        (today - days_ago) * DAY_MS + hour * 3_600_000 + minute * MINUTE_MS
    };
    let (a, b, c, d, e) = (5001, 5002, 5003, 5004, 5005);
    let mut actions = vec![
        Action {
            user: a,
            at: at(14, 10, 0),
            what: What::Start(Some("ads")),
        },
        Action {
            user: a,
            at: at(14, 10, 1),
            what: What::Button("menu"),
        },
        Action {
            user: a,
            at: at(14, 10, 2),
            what: What::Members,
        },
        Action {
            user: a,
            at: at(14, 10, 5),
            what: What::Command("help"),
        },
        Action {
            user: b,
            at: at(14, 11, 0),
            what: What::Start(Some("ads")),
        },
        Action {
            user: c,
            at: at(14, 12, 0),
            what: What::Start(None),
        },
        Action {
            user: c,
            at: at(13, 11, 59),
            what: What::PreCheckout("XTR", 500.0),
        },
        Action {
            user: c,
            at: at(13, 12, 0),
            what: What::Payment("XTR", 500.0),
        },
        Action {
            user: b,
            at: at(12, 8, 0),
            what: What::Blocked,
        },
        Action {
            user: c,
            at: at(13, 18, 0),
            what: What::Refund("XTR", 200.0),
        },
        Action {
            user: b,
            at: at(10, 8, 0),
            what: What::Unblocked,
        },
        Action {
            user: a,
            at: at(7, 10, 0),
            what: What::Command("help"),
        },
        Action {
            user: b,
            at: at(7, 11, 0),
            what: What::Command("help"),
        },
        Action {
            user: d,
            at: at(3, 9, 0),
            what: What::Start(Some("promo")),
        },
        Action {
            user: d,
            at: at(3, 9, 1),
            what: What::Button("menu"),
        },
        Action {
            user: a,
            at: at(0, 0, 1),
            what: What::Command("ping"),
        },
        Action {
            user: d,
            at: at(0, 0, 2),
            what: What::Text,
        },
        Action {
            user: e,
            at: at(0, 0, 3),
            what: What::Start(None),
        },
        Action {
            user: e,
            at: at(0, 0, 4),
            what: What::Command("ping"),
        },
    ];
    actions.sort_by_key(|x| x.at);
    Population {
        bot: bot.to_string(),
        today,
        users: vec![
            KnownUser {
                id: a,
                lang: "en",
                premium: Some(true),
            },
            KnownUser {
                id: b,
                lang: "ru",
                premium: Some(false),
            },
            KnownUser {
                id: c,
                lang: "en",
                premium: Some(false),
            },
            KnownUser {
                id: d,
                lang: "de",
                premium: Some(false),
            },
            KnownUser {
                id: e,
                lang: "en",
                premium: Some(true),
            },
        ],
        actions,
    }
}

/// The Analytics Engine points (kind, name, source) one action makes, as the example bot tracks
/// them: an `update` for what Telegram sent, then the events it yields (the bot's timings and
/// errors aside).
pub fn points_of(what: &What) -> Vec<(&'static str, String, &'static str)> {
    match what {
        What::Start(source) => vec![
            ("update", "message".into(), ""),
            ("command", "start".into(), source.unwrap_or("")),
        ],
        What::Command(name) => vec![
            ("update", "message".into(), ""),
            ("command", name.to_string(), ""),
        ],
        What::Button(name) => vec![
            ("update", "callback_query".into(), ""),
            ("callback", name.to_string(), ""),
        ],
        What::Text => vec![
            ("update", "message".into(), ""),
            ("user", "not_understood".into(), ""),
        ],
        What::Members => vec![
            ("update", "message".into(), ""),
            ("command", "members".into(), ""),
            ("custom", "chat_size".into(), ""),
        ],
        What::PreCheckout(..) => vec![
            ("update", "pre_checkout_query".into(), ""),
            ("payment", "pre_checkout".into(), ""),
        ],
        What::Blocked => vec![
            ("update", "my_chat_member".into(), ""),
            ("user", "user_blocked".into(), ""),
        ],
        What::Unblocked => vec![
            ("update", "my_chat_member".into(), ""),
            ("user", "user_unblocked".into(), ""),
        ],
        What::Payment(..) => vec![
            ("update", "message".into(), ""),
            ("payment", "payment".into(), ""),
        ],
        // Telegram sends a refund as a message with `refunded_payment`.
        What::Refund(..) => vec![
            ("update", "message".into(), ""),
            ("payment", "refund".into(), ""),
        ],
    }
}

/// Writes the population into the local D1 file `d1_file` as the consumer would store it:
/// `bot_users`, `user_days`, `user_events`, `daily_rollup` and the local mirror's points.
pub fn seed(d1_file: &Path, population: &Population) -> rusqlite::Result<()> {
    let mut db = rusqlite::Connection::open(d1_file)?;
    db.busy_timeout(Duration::from_secs(30))?;
    let tx = db.transaction()?;
    let bot = population.bot.as_str();
    for user in &population.users {
        let mine: Vec<&Action> = population
            .actions
            .iter()
            .filter(|x| x.user == user.id)
            .collect();
        let first = mine.iter().map(|x| x.at).min().unwrap_or(0);
        let last = mine.iter().map(|x| x.at).max().unwrap_or(0);
        let source = mine.iter().find_map(|x| match x.what {
            What::Start(Some(source)) => Some((source, x.at)),
            _ => None,
        });
        let status = mine.iter().rev().find_map(|x| match x.what {
            What::Blocked => Some(("blocked", x.at)),
            What::Unblocked => Some(("active", x.at)),
            _ => None,
        });
        tx.execute(
            "INSERT INTO bot_users (bot, user_id, first_seen, last_seen, source, source_at, lang, \
             premium, seen_at, status, status_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?4, ?9, ?10)",
            rusqlite::params![
                bot,
                pseudonym(user.id),
                first,
                last,
                source.map(|s| s.0),
                source.map(|s| s.1),
                user.lang,
                user.premium.map(i64::from),
                status.map(|s| s.0).unwrap_or("active"),
                status.map(|s| s.1),
            ],
        )?;
    }
    for (i, action) in population.actions.iter().enumerate() {
        let user = pseudonym(action.user);
        if action.what.active() {
            tx.execute(
                "INSERT OR IGNORE INTO user_days (bot, day, user_id) VALUES (?1, ?2, ?3)",
                rusqlite::params![bot, action.at.div_euclid(DAY_MS), user],
            )?;
        }
        let event = match &action.what {
            What::Blocked => Some(("user_blocked", None, None)),
            What::Unblocked => Some(("user_unblocked", None, None)),
            What::Payment(currency, amount) => Some(("payment", Some(*currency), Some(*amount))),
            What::Refund(currency, amount) => Some(("refund", Some(*currency), Some(*amount))),
            _ => None,
        };
        if let Some((name, currency, amount)) = event {
            tx.execute(
                "INSERT INTO user_events (event_id, bot, user_id, occurred_at, name, currency, amount) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![format!("known-{i}"), bot, user, action.at, name, currency, amount],
            )?;
        }
        for (j, (kind, name, source)) in points_of(&action.what).into_iter().enumerate() {
            let timestamp = dashboard_core::timefmt::sql_datetime(action.at + 1_000);
            let (currency, amount) = match &action.what {
                What::Payment(c, a) | What::Refund(c, a) | What::PreCheckout(c, a)
                    if kind == "payment" =>
                {
                    (*c, *a)
                }
                _ => ("", 0.0),
            };
            tx.execute(
                "INSERT INTO analytics_points_local (dataset, timestamp, _sample_interval, index1, \
                 blob1, blob2, blob3, blob4, blob5, blob7, blob16, blob19, double1, double3, double4, double8) \
                 VALUES ('telegram_bot_events', ?1, 1, ?2, ?3, '0.1.0', ?4, ?5, ?2, ?6, ?7, ?8, 1, ?9, ?10, ?11)",
                rusqlite::params![
                    timestamp,
                    user.to_string(),
                    bot,
                    kind,
                    name,
                    format!("00000000-0000-0000-0000-{i:08}{j:04}"),
                    source,
                    currency,
                    action.at as f64,
                    user as f64,
                    amount,
                ],
            )?;
        }
    }
    // The consumer's daily rollup of each day, today included (its cron recomputes today too).
    let days: std::collections::BTreeSet<i64> = population
        .actions
        .iter()
        .map(|x| x.at.div_euclid(DAY_MS))
        .filter(|d| *d <= population.today)
        .collect();
    for day in days {
        let on = |x: &&Action| x.at.div_euclid(DAY_MS) == day;
        let today: Vec<&Action> = population.actions.iter().filter(on).collect();
        let new_users = population
            .users
            .iter()
            .filter(|u| {
                population
                    .actions
                    .iter()
                    .filter(|x| x.user == u.id)
                    .map(|x| x.at.div_euclid(DAY_MS))
                    .min()
                    == Some(day)
            })
            .count() as i64;
        let mut active: Vec<i64> = today
            .iter()
            .filter(|x| x.what.active())
            .map(|x| x.user)
            .collect();
        active.sort_unstable();
        active.dedup();
        let count = |f: fn(&What) -> bool| today.iter().filter(|x| f(&x.what)).count() as i64;
        // Revenue: payments minus refunds (docs/owner-analytics.md).
        let paid: f64 = today
            .iter()
            .map(|x| match x.what {
                What::Payment(_, amount) => amount,
                What::Refund(_, amount) => -amount,
                _ => 0.0,
            })
            .sum();
        let payers = count(|w| matches!(w, What::Payment(..)));
        let revenue = if paid != 0.0 {
            format!("{{\"XTR\":{paid}}}")
        } else {
            "{}".to_string()
        };
        let events = today
            .iter()
            .map(|x| points_of(&x.what).len())
            .sum::<usize>() as i64;
        tx.execute(
            "INSERT INTO daily_rollup (bot, day, new_users, active_users, blocked, unblocked, payers, \
             revenue, events, events_by_kind, errors, computed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '{}', 0, ?10)",
            rusqlite::params![
                bot,
                day,
                new_users,
                active.len() as i64,
                count(|w| matches!(w, What::Blocked)),
                count(|w| matches!(w, What::Unblocked)),
                payers,
                revenue,
                events,
                (day + 1) * DAY_MS,
            ],
        )?;
    }
    tx.commit()
}
/// The SQL that dates the local mirror's rows of `bot` written since `since_ms` whose event
/// happened before it (the run's backdated events) a second after their event time.
pub fn mirror_backdate_sql(bot: &str, since_ms: i64) -> String {
    let since = since_ms / 1000;
    let bot = bot.replace('\'', "''");
    format!(
        "UPDATE analytics_points_local SET timestamp = strftime('%Y-%m-%d %H:%M:%S', CAST(double3 / 1000 AS INTEGER) + 1, 'unixepoch') \
         WHERE blob1 = '{bot}' AND timestamp >= strftime('%Y-%m-%d %H:%M:%S', {since}, 'unixepoch') AND double3 < {since} * 1000.0"
    )
}

/// Runs the consumer's rollup statement (`ingest_policy::rollup`) on the local D1 file
/// `d1_file` for every day of the `days` days up to `now_ms`, oldest first: the consumer's cron
/// recomputes only the last [`ingest_policy::rollup::ROLLUP_DAYS`] days, so older history gets
/// its rollups the way `make demo` gives them.
pub fn rollup_history(d1_file: &Path, now_ms: i64, days: i64) -> rusqlite::Result<()> {
    use ingest_policy::rollup::{statement, ROLLUP_DAYS};
    use ingest_policy::SqlValue;
    let db = rusqlite::Connection::open(d1_file)?;
    db.busy_timeout(Duration::from_secs(30))?;
    let mut back = (days / ROLLUP_DAYS + 1) * ROLLUP_DAYS;
    while back >= 0 {
        let statement = statement(now_ms - back * DAY_MS);
        let params: Vec<rusqlite::types::Value> = statement
            .params
            .iter()
            .map(|v| match v {
                SqlValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
                SqlValue::Integer(n) => rusqlite::types::Value::Integer(*n),
                SqlValue::Real(x) => rusqlite::types::Value::Real(*x),
                SqlValue::Null => rusqlite::types::Value::Null,
                SqlValue::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
            })
            .collect();
        db.execute(&statement.sql, rusqlite::params_from_iter(params))?;
        back -= ROLLUP_DAYS;
    }
    Ok(())
}

/// The Bot API update JSON of `action` (numbered `update_id`) as Telegram sends it to the
/// example bot: commands with their entity, button presses on the menu (`<name>:stats`),
/// membership changes in the private chat, checkout, payments and refunds; `from` carries the
/// user's `language_code` and, for Premium users only, `is_premium` (as Telegram does).
pub fn update_json(population: &Population, action: &Action, update_id: i64) -> String {
    use crate::updates::{BotIdentity, Charge, PrivateChat};
    let user = population
        .users
        .iter()
        .find(|u| u.id == action.user)
        .expect("the action's user is in the population");
    let chat = PrivateChat {
        user_id: user.id,
        first_name: "Known",
        lang: Some(user.lang),
        premium: user.premium == Some(true),
        bot: BotIdentity {
            id: 7_000_000_001,
            first_name: "Bot",
            username: "known_test_bot",
        },
    };
    let date = action.at / 1000;
    let message_id = update_id % 100_000;
    let command = |text: &str| chat.command(update_id, message_id, date, text);
    let telegram_id = format!("stxknown{}", user.id);
    let charge = |currency, amount: &f64| Charge {
        currency,
        amount: *amount as i64,
        telegram_id: &telegram_id,
        provider_id: "",
    };
    let value = match &action.what {
        What::Start(Some(source)) => command(&format!("/start {source}")),
        What::Start(None) => command("/start"),
        What::Command(name) => command(&format!("/{name}")),
        What::Members => command("/members"),
        What::Text => chat.message(
            update_id,
            message_id,
            date,
            serde_json::json!({"text": "what can you do?"}),
        ),
        What::Button(name) => chat.button(update_id, message_id, date, &format!("{name}:stats")),
        What::PreCheckout(currency, amount) => chat.pre_checkout(
            update_id,
            &format!("pc{}{}", user.id, message_id),
            currency,
            *amount as i64,
        ),
        What::Payment(currency, amount) => {
            chat.payment(update_id, message_id, date, &charge(currency, amount))
        }
        What::Refund(currency, amount) => {
            chat.refund(update_id, message_id, date, &charge(currency, amount))
        }
        What::Blocked => chat.membership(update_id, date, "member", "kicked"),
        What::Unblocked => chat.membership(update_id, date, "kicked", "member"),
    };
    value.to_string()
}

/// The funnels the owner-page tests configure (`FUNNELS`).
pub const FUNNELS: &str =
    "Onboarding: /start > callback menu > chat_size within 7d; Help: /start > /help within 1h";

/// The text of the card `id` (its value) in the page's HTML.
pub fn card(html: &str, id: &str) -> String {
    html.split(&format!("id=\"{id}\"><div class=\"value\">"))
        .nth(1)
        .and_then(|s| s.split("</div>").next())
        .unwrap_or_else(|| panic!("no card {id}"))
        .to_string()
}

/// The CSV of `table` on `path`: checks the response and returns its records.
pub fn csv(dashboard: &Dashboard, path: &str, table: &str) -> Vec<Vec<String>> {
    let join = if path.contains('?') { '&' } else { '?' };
    let url = format!("{path}{join}format=csv&table={table}");
    let page = dashboard.get_ok(&url);
    assert_eq!(page.status, 200, "{url}: {}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/csv; charset=utf-8"),
        "{url}"
    );
    let disposition = page.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename=\"") && disposition.ends_with(".csv\""),
        "{url}: {disposition}"
    );
    assert!(page.body.ends_with("\r\n"), "{url}: records end in CRLF");
    page.body
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The record whose first fields are `key`.
pub fn row<'a>(records: &'a [Vec<String>], key: &[&str]) -> &'a [String] {
    records
        .iter()
        .find(|r| r.iter().zip(key).all(|(a, b)| a == b))
        .unwrap_or_else(|| panic!("no row {key:?} in {records:?}"))
}

/// The key figures of the four pages that a browser test checks in the rendered DOM:
/// (page path, card id, value).
pub const KEY_CARDS: &[(&str, &str, &str)] = &[
    ("/users?range=30d", "card-dau", "3"),
    ("/users?range=30d", "card-wau", "3"),
    ("/users?range=30d", "card-mau", "5"),
    ("/users?range=30d", "card-stickiness", "60.0 %"),
    ("/users?range=30d", "card-blocked", "0"),
    ("/users?range=30d", "card-premium", "40.0 %"),
    // One of the fourteen messages of the range (today: one of four).
    ("/users?range=30d", "card-not-understood", "7.1 %"),
    ("/sources", "card-revenue", "300 XTR"),
];

/// Checks the exact figures of the known population (bot `population.bot`, configured with
/// [`FUNNELS`]) on the Users, Retention, Funnels and Sources pages of `dashboard`, through
/// their HTML and CSV exports.
pub fn check_pages(dashboard: &Dashboard, population: &Population) {
    let today = population.today;
    let day = |days_ago: i64| {
        dashboard_core::timefmt::sql_datetime((today - days_ago) * DAY_MS)[..10].to_string()
    };

    // Users.
    let users = dashboard.get_ok("/users?range=30d");
    assert_eq!(users.status, 200);
    assert!(!users.body.contains("Could not load"), "{}", users.body);
    for (_, id, value) in KEY_CARDS.iter().filter(|c| c.0.starts_with("/users")) {
        assert_eq!(card(&users.body, id), *value, "{id}");
    }
    let daily = csv(dashboard, "/users?range=30d", "daily");
    assert_eq!(
        daily[0],
        ["day", "new", "returning", "active", "blocked", "unblocked"]
    );
    assert_eq!(&row(&daily, &[&day(14)])[1..], ["3", "0", "3", "0", "0"]);
    assert_eq!(&row(&daily, &[&day(13)])[1..], ["0", "1", "1", "0", "0"]);
    assert_eq!(&row(&daily, &[&day(12)])[1..], ["0", "0", "0", "1", "0"]);
    assert_eq!(&row(&daily, &[&day(10)])[1..], ["0", "0", "0", "0", "1"]);
    assert_eq!(&row(&daily, &[&day(7)])[1..], ["0", "2", "2", "0", "0"]);
    assert_eq!(&row(&daily, &[&day(3)])[1..], ["1", "0", "1", "0", "0"]);
    assert_eq!(&row(&daily, &[&day(0)])[1..], ["1", "2", "3", "0", "0"]);
    let nu = csv(dashboard, "/users?range=30d", "not_understood");
    assert_eq!(&row(&nu, &[&day(0)])[1..], ["1", "4", "0.2500"]);
    assert_eq!(&row(&nu, &[&day(14)])[1..], ["0", "5", "0.0000"]);
    let languages = csv(dashboard, "/users?range=30d", "languages");
    assert_eq!(languages[1], ["en", "3", "0.6000"]);
    assert_eq!(&row(&languages, &["ru"])[1..], ["1", "0.2000"]);
    let months = csv(dashboard, "/users", "months");
    assert_eq!(months.len(), 13, "a header and twelve months");
    let total = |i: usize| {
        months[1..]
            .iter()
            .map(|r| r[i].parse::<u64>().unwrap())
            .sum::<u64>()
    };
    // New users, blocks, unblocks of the rollups (today's included).
    assert_eq!((total(1), total(3), total(4)), (5, 1, 1), "{months:?}");

    // Retention: A, B and C share a cohort; week 1: A and B; week 2: A.
    let retention = dashboard.get_ok("/retention");
    assert!(
        !retention.body.contains("Could not load"),
        "{}",
        retention.body
    );
    assert!(retention.body.contains("class=\"num heat h10\">100.0 %"));
    let cohorts = csv(dashboard, "/retention", "retention");
    assert_eq!(cohorts.len(), 14, "a header and 13 cohorts");
    let monday = |d: i64| d - (d + 3).rem_euclid(7);
    let first =
        dashboard_core::timefmt::sql_datetime(monday(today - 14) * DAY_MS)[..10].to_string();
    let abc = row(&cohorts, &[&first]);
    assert_eq!(
        &abc[1..5],
        ["3", "1.0000", "0.6667", "0.3333"],
        "{cohorts:?}"
    );
    let sizes: u64 = cohorts[1..]
        .iter()
        .map(|r| r[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(sizes, 5);

    // Sources.
    let sources = dashboard.get_ok("/sources");
    assert!(!sources.body.contains("Could not load"), "{}", sources.body);
    for (_, id, value) in KEY_CARDS.iter().filter(|c| c.0 == "/sources") {
        assert_eq!(card(&sources.body, id), *value, "{id}");
    }
    let table = csv(dashboard, "/sources", "sources");
    assert_eq!(
        &row(&table, &["ads"])[1..],
        ["2", "2", "1.0000", "1", "0", "0"]
    );
    assert_eq!(
        &row(&table, &["(none)"])[1..],
        ["2", "0", "0.0000", "0", "0", "1"]
    );
    assert_eq!(
        &row(&table, &["promo"])[1..],
        ["1", "0", "0.0000", "0", "0", "0"]
    );
    let revenue = csv(dashboard, "/sources", "revenue");
    assert_eq!(revenue[1], ["(none)", "XTR", "500", "200", "300"]);
    assert_eq!(revenue.len(), 2);

    // Funnels.
    let funnels = dashboard.get_ok("/funnels?range=30d");
    assert!(!funnels.body.contains("Could not load"), "{}", funnels.body);
    assert!(funnels.body.contains("/start → callback menu → chat_size"));
    let table = csv(dashboard, "/funnels?range=30d", "funnels");
    let users_at = |funnel: &str, source: &str| -> Vec<String> {
        table
            .iter()
            .filter(|r| r[0] == funnel && r[1] == source)
            .map(|r| r[4].clone())
            .collect()
    };
    assert_eq!(users_at("Onboarding", "all"), ["5", "2", "1"]);
    assert_eq!(users_at("Onboarding", "ads"), ["2", "1", "1"]);
    assert_eq!(users_at("Onboarding", "promo"), ["1", "1", "0"]);
    assert_eq!(users_at("Onboarding", "(none)"), ["2", "0", "0"]);
    // B's /help came a week after /start: beyond the hour.
    assert_eq!(users_at("Help", "all"), ["5", "1"]);
    assert_eq!(
        &row(&table, &["Onboarding", "all", "2"])[5..],
        ["0.4000", "0.4000"]
    );

    // A bot filter: another bot has none of them.
    let other = csv(dashboard, "/sources?bot=someone-else", "sources");
    assert_eq!(other.len(), 1, "only the header: {other:?}");

    // The overview's commands: five /start.
    let commands = csv(dashboard, "/?range=30d", "commands");
    assert_eq!(
        &row(&commands, &[population.bot.as_str(), "command", "start"])[3],
        "5"
    );
}
