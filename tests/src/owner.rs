//! A known population for the owner-analytics pages (Users, Retention, Funnels, Sources): five
//! users and what each did, as actions in time, so a test can check exact figures. [`seed`]
//! writes what the consumer would store for them straight into the local D1 (`bot_users`,
//! `user_days`, `user_events`, `daily_rollup`) and the local mirror (Analytics Engine points);
//! a pipeline test can instead send the same actions as Telegram updates and expect the same
//! pages.
//!
//! Today is day `T` (UTC). Users (raw Telegram ids; stored as [`crate::stack::pseudonym`]):
//! - A 5001 (en, premium): T−14 /start from `ads`, menu button, `order_paid`, /help; T−7 /help;
//!   T a text the bot understood.
//! - B 5002 (ru, not premium): T−14 /start from `ads`; blocked the bot on T−12, unblocked it on
//!   T−10; T−7 /help.
//! - C 5003 (en, premium unknown): T−14 /start; T−13 paid 500 XTR; refunded 200 XTR on T−12.
//! - D 5004 (de, not premium): T−3 /start from `promo`, menu button; T a text not understood.
//! - E 5005 (en, premium): T /start, then a text the bot understood.

use std::path::Path;
use std::time::Duration;

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
    /// A text message; `false`: the bot did not understand it (a `user/not_understood` event).
    Text {
        /// Whether the bot understood it.
        understood: bool,
    },
    /// A custom event the bot tracks (`order_paid`).
    Custom(&'static str),
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
            what: What::Custom("order_paid"),
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
            at: at(12, 9, 0),
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
            what: What::Text { understood: true },
        },
        Action {
            user: d,
            at: at(0, 0, 2),
            what: What::Text { understood: false },
        },
        Action {
            user: e,
            at: at(0, 0, 3),
            what: What::Start(None),
        },
        Action {
            user: e,
            at: at(0, 0, 4),
            what: What::Text { understood: true },
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
                premium: None,
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

/// The Analytics Engine points (kind, name, source) one action makes, as the bot tracks them:
/// an `update` for what the user sent, then the event itself.
fn points_of(what: &What) -> Vec<(&'static str, String, &'static str)> {
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
        What::Text { understood } => {
            let mut points = vec![("update", "message".into(), "")];
            if !understood {
                points.push(("user", "not_understood".into(), ""));
            }
            points
        }
        What::Custom(name) => vec![("custom", name.to_string(), "")],
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
        What::Refund(..) => vec![("payment", "refund".into(), "")],
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
                What::Payment(c, a) | What::Refund(c, a) if kind == "payment" => (*c, *a),
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
    // The consumer's daily rollup of each day before today.
    let days: std::collections::BTreeSet<i64> = population
        .actions
        .iter()
        .map(|x| x.at.div_euclid(DAY_MS))
        .filter(|d| *d < population.today)
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
        let paid: f64 = today
            .iter()
            .map(|x| match x.what {
                What::Payment(_, amount) => amount,
                _ => 0.0,
            })
            .sum();
        let payers = count(|w| matches!(w, What::Payment(..)));
        let revenue = if paid > 0.0 {
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
