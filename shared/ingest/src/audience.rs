//! Owner analytics in D1 (`docs/owner-analytics.md`): what each event says about its user,
//! taken at accept time ([`UserFact::of`]), the rows of a batch ([`rows`]) and the three
//! statements of the first transaction that store them ([`bot_users_sql`], [`user_days_sql`],
//! [`user_events_sql`]):
//!
//! - `bot_users`: **one row per distinct (bot, user) of the batch**, written by one upsert whose
//!   merge is idempotent and order-independent (each column is the maximum of a total order:
//!   `first_seen` the minimum, `last_seen` the maximum, the source of the earliest `/start`
//!   with one, language and Premium of the latest `update` that said, the status of the latest
//!   block or unblock, ties broken by the value). The batch is merged in Rust with the same
//!   rules ([`UserRow::merge`]), so a redelivered, split or reordered batch leaves the same
//!   row, and an upsert that changes nothing writes nothing (its `WHERE`).
//! - `user_days`: one row per distinct (bot, day, user) the user was **active** ([`is_active`]),
//!   `INSERT OR IGNORE`.
//! - `user_events`: blocks, unblocks, payments and refunds, by event id, `INSERT OR IGNORE`,
//!   only of the winning attempt of their request (a retried update must not count a payment
//!   twice).
//!
//! Every insert skips a user `forget` erased (`forgotten_users`), as error rows do.
//! `bot_users` and `user_days` take the events of every attempt of a request: a duplicate
//! attempt is the same user at (almost) the same moment, and both merges are idempotent.

use std::collections::BTreeMap;

use analytics_core::audience;
use analytics_core::event::{Event, EventKind, PropValue};
use serde_json::{json, Value};

use crate::keys::RequestAttempt;

/// Milliseconds in a day: `user_days.day` is `occurred_at` divided by it (UTC days).
pub const DAY_MS: i64 = 86_400_000;

/// Most bytes of a `/start` source kept in `bot_users.source` (Analytics Engine's `blob16`
/// keeps as many).
pub const MAX_SOURCE_BYTES: usize = 256;

/// Most bytes of a currency code kept in `user_events.currency` (as `blob19`).
pub const MAX_CURRENCY_BYTES: usize = 8;

/// `bot_users.status` of a user who blocked the bot.
pub const BLOCKED: &str = "blocked";
/// `bot_users.status` of every other user.
pub const ACTIVE: &str = "active";

/// Language and Premium as an `update` event told them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Profile {
    /// Two lowercase ASCII letters, or `None` when the event had none (or not a valid one).
    pub lang: Option<String>,
    /// 1 when the event said Premium, else 0 (the producer leaves `premium` out when false).
    pub premium: u8,
}

/// A row of `user_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactEvent {
    /// The event id (primary key).
    pub event_id: String,
    /// `user_blocked`, `user_unblocked`, `payment` or `refund`.
    pub name: &'static str,
    /// The `currency` property of a payment or refund.
    pub currency: Option<String>,
    /// The `amount` property (smallest units), when it is a number.
    pub amount: Option<f64>,
}

/// What one event says about its user, for the user tables. Events without a user say nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFact {
    /// The stored id (pseudonym) the event carries as its user.
    pub user_id: i64,
    /// Corrected event time, ms since the epoch.
    pub at_ms: i64,
    /// Whether the user was active ([`is_active`]): a `user_days` row.
    pub active: bool,
    /// The source of a `/start` command that carries one.
    pub source: Option<String>,
    /// Language and Premium, for `update` events that carry either.
    pub profile: Option<Profile>,
    /// [`BLOCKED`] or [`ACTIVE`], for `user_blocked` / `user_unblocked`.
    pub status: Option<&'static str>,
    /// The `user_events` row, for blocks, unblocks, payments and refunds.
    pub exact: Option<ExactEvent>,
}

/// Whether an event means its user was active that day: **the user sent the bot something**.
/// Every event with a user counts except the `user` kind's `user_blocked` / `user_unblocked`
/// and the `my_chat_member` update that carries them (a membership change, or a failed send to
/// someone who blocked the bot), the `payment` kind's `refund` (the bot or Telegram refunded;
/// the user sent nothing) and the `performance` and `error` kinds (the bot's own work; the
/// update that caused it counts).
pub fn is_active(kind: EventKind, name: &str) -> bool {
    match kind {
        EventKind::Performance | EventKind::Error => false,
        EventKind::User => name != audience::USER_BLOCKED && name != audience::USER_UNBLOCKED,
        EventKind::UpdateReceived => name != "my_chat_member",
        EventKind::Payment => name != audience::REFUND,
        _ => true,
    }
}

fn property<'e>(event: &'e Event, key: &str) -> Option<&'e PropValue> {
    event
        .properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn text_property(event: &Event, key: &str, max_bytes: usize) -> Option<String> {
    let mut text = property(event, key)?.as_str()?.to_string();
    analytics_core::text::truncate(&mut text, max_bytes);
    (!text.is_empty()).then_some(text)
}

impl UserFact {
    /// What `event` (its time corrected to `at_ms`) says about its user; `None` without one,
    /// and for the bot's own timings and errors (`performance`, `error`: the update that
    /// caused them speaks for the user).
    pub fn of(event: &Event, at_ms: i64) -> Option<UserFact> {
        let user_id = event.user_id?;
        if matches!(event.kind, EventKind::Performance | EventKind::Error) {
            return None;
        }
        let source = (event.kind == EventKind::Command && event.name == "start")
            .then(|| text_property(event, audience::SOURCE, MAX_SOURCE_BYTES))
            .flatten();
        let profile = if event.kind == EventKind::UpdateReceived {
            let lang = property(event, audience::LANGUAGE)
                .and_then(PropValue::as_str)
                .filter(|l| l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase()));
            let premium = property(event, audience::PREMIUM);
            (lang.is_some() || premium.is_some()).then(|| Profile {
                lang: lang.map(str::to_string),
                premium: u8::from(matches!(premium, Some(PropValue::Bool(true)))),
            })
        } else {
            None
        };
        let exact_name = match (event.kind, event.name.as_str()) {
            (EventKind::User, audience::USER_BLOCKED) => Some(audience::USER_BLOCKED),
            (EventKind::User, audience::USER_UNBLOCKED) => Some(audience::USER_UNBLOCKED),
            (EventKind::Payment, audience::PAYMENT) => Some(audience::PAYMENT),
            (EventKind::Payment, audience::REFUND) => Some(audience::REFUND),
            _ => None,
        };
        let status = match exact_name {
            Some(audience::USER_BLOCKED) => Some(BLOCKED),
            Some(audience::USER_UNBLOCKED) => Some(ACTIVE),
            _ => None,
        };
        let exact = exact_name.map(|name| {
            let money = event.kind == EventKind::Payment;
            ExactEvent {
                event_id: event.id.to_string(),
                name,
                currency: money
                    .then(|| text_property(event, audience::CURRENCY, MAX_CURRENCY_BYTES))
                    .flatten(),
                amount: money
                    .then(|| property(event, audience::AMOUNT).and_then(PropValue::as_f64))
                    .flatten()
                    .filter(|a| a.is_finite()),
            }
        });
        Some(UserFact {
            user_id,
            at_ms,
            active: is_active(event.kind, &event.name),
            source,
            profile,
            status,
            exact,
        })
    }
}

/// One `bot_users` row as a batch (or the table) knows it. Each optional part is a value with
/// its time; [`UserRow::merge`] keeps, for each, the maximum of a total order, exactly as the
/// upsert's `ON CONFLICT` does.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    /// Sending bot.
    pub bot: String,
    /// Stored id (pseudonym).
    pub user_id: i64,
    /// Earliest event time.
    pub first_seen: i64,
    /// Latest event time.
    pub last_seen: i64,
    /// The earliest `/start` source: (time, source).
    pub source: Option<(i64, String)>,
    /// The latest profile: (time, profile).
    pub profile: Option<(i64, Profile)>,
    /// The latest status: (time, status).
    pub status: Option<(i64, &'static str)>,
}

impl UserRow {
    /// The row one fact makes.
    pub fn of(bot: &str, fact: &UserFact) -> UserRow {
        UserRow {
            bot: bot.to_string(),
            user_id: fact.user_id,
            first_seen: fact.at_ms,
            last_seen: fact.at_ms,
            source: fact.source.clone().map(|s| (fact.at_ms, s)),
            profile: fact.profile.clone().map(|p| (fact.at_ms, p)),
            status: fact.status.map(|s| (fact.at_ms, s)),
        }
    }

    /// Merges `other` into `self` (same bot and user): the minimum first seen, the maximum
    /// last seen, the earliest source (ties: the smaller text), the latest profile (ties: the
    /// larger language, then Premium), the latest status (ties: blocked).
    pub fn merge(&mut self, other: &UserRow) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        if let Some(theirs) = &other.source {
            if self.source.as_ref().is_none_or(|ours| theirs < ours) {
                self.source = Some(theirs.clone());
            }
        }
        // Latest wins; a missing language sorts as '' in SQL as here (None < Some).
        if let Some(theirs) = &other.profile {
            if self.profile.as_ref().is_none_or(|ours| theirs > ours) {
                self.profile = Some(theirs.clone());
            }
        }
        if let Some(theirs) = other.status {
            if self.status.is_none_or(|ours| theirs > ours) {
                self.status = Some(theirs);
            }
        }
    }

    fn json(&self) -> Value {
        json!([
            self.bot,
            self.user_id,
            self.first_seen,
            self.last_seen,
            self.source.as_ref().map(|(_, s)| s),
            self.source.as_ref().map(|(at, _)| at),
            self.profile.as_ref().and_then(|(_, p)| p.lang.as_ref()),
            self.profile.as_ref().map(|(_, p)| p.premium),
            self.profile.as_ref().map(|(at, _)| at),
            self.status.map(|(_, s)| s),
            self.status.map(|(at, _)| at),
        ])
    }
}

/// One event of the batch for the user tables: its sending bot, its fact, and its request.
#[derive(Debug, Clone, Copy)]
pub struct BatchFact<'a> {
    /// Sending bot.
    pub bot: &'a str,
    /// What the event says.
    pub fact: &'a UserFact,
    /// Its request and attempt, when its id carries one.
    pub request: Option<&'a RequestAttempt>,
}

/// The rows of the three tables for a batch's facts. `first_seen` and `last_seen` of a user
/// come from every event with a fact: what the user sent, and blocks and unblocks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudienceRows {
    /// `bot_users`: one per distinct (bot, user), merged.
    pub users: Vec<UserRow>,
    /// `user_days`: distinct (bot, day, user) of active events.
    pub days: Vec<(String, i64, i64)>,
    /// `user_events`: (bot, user, time, row, request).
    pub exact: Vec<Value>,
}

/// Builds the rows of a batch (any order of facts gives the same rows, sorted).
pub fn rows<'a>(facts: impl IntoIterator<Item = BatchFact<'a>>) -> AudienceRows {
    let mut users: BTreeMap<(&str, i64), UserRow> = BTreeMap::new();
    let mut days: BTreeMap<(&str, i64, i64), ()> = BTreeMap::new();
    let mut exact: BTreeMap<&str, Value> = BTreeMap::new();
    for BatchFact { bot, fact, request } in facts {
        let row = UserRow::of(bot, fact);
        users
            .entry((bot, fact.user_id))
            .and_modify(|r| r.merge(&row))
            .or_insert(row);
        if fact.active {
            days.insert((bot, fact.at_ms.div_euclid(DAY_MS), fact.user_id), ());
        }
        if let Some(e) = &fact.exact {
            exact.entry(e.event_id.as_str()).or_insert_with(|| {
                json!([
                    e.event_id,
                    bot,
                    fact.user_id,
                    fact.at_ms,
                    e.name,
                    e.currency,
                    e.amount,
                    request.map(|r| r.key.clone()),
                    request.map(|r| r.attempt),
                ])
            });
        }
    }
    AudienceRows {
        users: users.into_values().collect(),
        days: days
            .into_keys()
            .map(|(bot, day, user)| (bot.to_string(), day, user))
            .collect(),
        exact: exact.into_values().collect(),
    }
}

/// `json_extract(value, '$[i]')`.
fn col(i: usize) -> String {
    format!("json_extract(value, '$[{i}]')")
}

/// The tombstone guard: no row of a user `forget` erased (the user id at JSON position `i`).
fn not_forgotten(i: usize) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM forgotten_users f WHERE f.user_id = {})",
        col(i)
    )
}

/// The `bot_users` upsert over a JSON array of [`UserRow`]s (bound as `?1`).
pub fn bot_users_sql() -> String {
    let source_earlier = "excluded.source_at IS NOT NULL AND (bot_users.source_at IS NULL \
         OR excluded.source_at < bot_users.source_at \
         OR (excluded.source_at = bot_users.source_at AND excluded.source < bot_users.source))";
    let profile_later = "excluded.seen_at IS NOT NULL AND (bot_users.seen_at IS NULL \
         OR excluded.seen_at > bot_users.seen_at \
         OR (excluded.seen_at = bot_users.seen_at AND (coalesce(excluded.lang, ''), excluded.premium) \
         > (coalesce(bot_users.lang, ''), bot_users.premium)))";
    let status_later = "excluded.status_at IS NOT NULL AND (bot_users.status_at IS NULL \
         OR excluded.status_at > bot_users.status_at \
         OR (excluded.status_at = bot_users.status_at AND excluded.status > bot_users.status))";
    let values: Vec<String> = (0..9).map(col).collect();
    format!(
        "INSERT INTO bot_users (bot, user_id, first_seen, last_seen, source, source_at, lang, premium, seen_at, status, status_at) \
         SELECT {}, coalesce({}, '{ACTIVE}'), {} FROM json_each(?1) WHERE {} \
         ON CONFLICT (bot, user_id) DO UPDATE SET \
         first_seen = min(bot_users.first_seen, excluded.first_seen), \
         last_seen = max(bot_users.last_seen, excluded.last_seen), \
         source = CASE WHEN {source_earlier} THEN excluded.source ELSE bot_users.source END, \
         source_at = CASE WHEN {source_earlier} THEN excluded.source_at ELSE bot_users.source_at END, \
         lang = CASE WHEN {profile_later} THEN excluded.lang ELSE bot_users.lang END, \
         premium = CASE WHEN {profile_later} THEN excluded.premium ELSE bot_users.premium END, \
         seen_at = CASE WHEN {profile_later} THEN excluded.seen_at ELSE bot_users.seen_at END, \
         status = CASE WHEN {status_later} THEN excluded.status ELSE bot_users.status END, \
         status_at = CASE WHEN {status_later} THEN excluded.status_at ELSE bot_users.status_at END \
         WHERE excluded.first_seen < bot_users.first_seen OR excluded.last_seen > bot_users.last_seen \
         OR ({source_earlier}) OR ({profile_later}) OR ({status_later})",
        values.join(", "),
        col(9),
        col(10),
        not_forgotten(1),
    )
}

/// The `user_days` insert over a JSON array of `[bot, day, user]` (bound as `?1`).
pub fn user_days_sql() -> String {
    format!(
        "INSERT OR IGNORE INTO user_days (bot, day, user_id) SELECT {}, {}, {} FROM json_each(?1) WHERE {}",
        col(0),
        col(1),
        col(2),
        not_forgotten(2)
    )
}

/// The `user_events` insert over a JSON array of `[event_id, bot, user, time, name, currency,
/// amount, request_key, attempt]` (bound as `?1`): only events of the winning attempt of
/// their request (or of none).
pub fn user_events_sql() -> String {
    let values: Vec<String> = (0..7).map(col).collect();
    format!(
        "INSERT OR IGNORE INTO user_events (event_id, bot, user_id, occurred_at, name, currency, amount) \
         SELECT {} FROM json_each(?1) \
         WHERE ({} IS NULL OR EXISTS (SELECT 1 FROM request_attempts r \
         WHERE r.request_key = {} AND r.attempt = {})) AND {}",
        values.join(", "),
        col(7),
        col(7),
        col(8),
        not_forgotten(2)
    )
}

/// JSON rows of each statement, for [`crate::store::commit_statements`].
pub fn json_rows(rows: &AudienceRows) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    (
        rows.users.iter().map(UserRow::json).collect(),
        rows.days
            .iter()
            .map(|(bot, day, user)| json!([bot, day, user]))
            .collect(),
        rows.exact.clone(),
    )
}

/// `processed_envelopes.kind_counts`: a JSON object kind → count, keys sorted.
pub fn kind_counts<'a>(kinds: impl IntoIterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for kind in kinds {
        *counts.entry(kind).or_default() += 1;
    }
    serde_json::to_string(&counts).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::samples;

    fn fact(event: &Event, at: i64) -> UserFact {
        UserFact::of(event, at).unwrap()
    }

    fn with(kind: EventKind, name: &str, props: Vec<(&str, PropValue)>) -> Event {
        let mut e = samples::typical_events()[0].clone();
        e.kind = kind;
        e.name = name.into();
        e.properties = props.into_iter().map(|(k, v)| (k.into(), v)).collect();
        e
    }

    #[test]
    fn active_means_the_user_sent_something() {
        assert!(is_active(EventKind::UpdateReceived, "message"));
        assert!(is_active(EventKind::Command, "start"));
        assert!(is_active(EventKind::Payment, "payment"));
        assert!(is_active(EventKind::User, audience::NOT_UNDERSTOOD));
        assert!(!is_active(EventKind::User, audience::USER_BLOCKED));
        assert!(!is_active(EventKind::User, audience::USER_UNBLOCKED));
        // The update of a block or an unblock, and a refund: the user sent nothing.
        assert!(!is_active(EventKind::UpdateReceived, "my_chat_member"));
        assert!(!is_active(EventKind::Payment, audience::REFUND));
        assert!(is_active(EventKind::Payment, audience::PRE_CHECKOUT));
        assert!(!is_active(EventKind::Performance, "handler"));
        assert!(!is_active(EventKind::Error, "x"));
        let timing = &samples::typical_events()[2];
        assert_eq!(timing.kind, EventKind::Performance);
        assert!(timing.user_id.is_some());
        assert_eq!(
            UserFact::of(timing, 1),
            None,
            "the bot's own work says nothing"
        );
    }

    #[test]
    fn facts_take_source_profile_status_and_money() {
        let events = samples::typical_events();
        let start = fact(&events[1], 5);
        assert_eq!(start.source.as_deref(), Some("ad_campaign_42"));
        assert!(start.profile.is_none() && start.exact.is_none());
        let update = with(
            EventKind::UpdateReceived,
            "message",
            vec![("lang", "de".into()), ("premium", true.into())],
        );
        assert_eq!(
            fact(&update, 1).profile,
            Some(Profile {
                lang: Some("de".into()),
                premium: 1
            })
        );
        let not_a_lang = with(
            EventKind::UpdateReceived,
            "message",
            vec![("lang", "DEU".into())],
        );
        assert_eq!(fact(&not_a_lang, 1).profile, None);
        let only_lang = with(
            EventKind::UpdateReceived,
            "message",
            vec![("lang", "en".into())],
        );
        assert_eq!(fact(&only_lang, 1).profile.unwrap().premium, 0);
        let paid = with(
            EventKind::Payment,
            "payment",
            vec![("amount", 250i64.into()), ("currency", "XTR".into())],
        );
        let paid = fact(&paid, 7).exact.unwrap();
        assert_eq!(
            (paid.name, paid.currency.as_deref(), paid.amount),
            ("payment", Some("XTR"), Some(250.0))
        );
        let blocked = fact(&with(EventKind::User, "user_blocked", vec![]), 9);
        assert_eq!(blocked.status, Some(BLOCKED));
        assert!(!blocked.active);
        assert_eq!(blocked.exact.unwrap().currency, None);
        let mut anonymous = events[0].clone();
        anonymous.user_id = None;
        assert_eq!(UserFact::of(&anonymous, 1), None);
        // A pre-checkout is activity, not a user_events row.
        let pre = fact(&with(EventKind::Payment, "pre_checkout", vec![]), 3);
        assert!(pre.active && pre.exact.is_none());
    }

    #[test]
    fn rows_are_the_same_in_any_order() {
        let events = [
            with(EventKind::Command, "start", vec![("source", "b".into())]),
            with(EventKind::Command, "start", vec![("source", "a".into())]),
            with(EventKind::UpdateReceived, "m", vec![("lang", "de".into())]),
            with(EventKind::UpdateReceived, "m", vec![("lang", "fr".into())]),
            with(EventKind::User, "user_blocked", vec![]),
            with(EventKind::User, "user_unblocked", vec![]),
        ];
        let facts: Vec<UserFact> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut e = e.clone();
                e.id = uuid::Uuid::from_u128(i as u128 + 1);
                fact(&e, 1_000 + (i as i64 % 3) * DAY_MS)
            })
            .collect();
        let batch = |order: &mut dyn Iterator<Item = &UserFact>| {
            rows(order.map(|fact| BatchFact {
                bot: "b",
                fact,
                request: None,
            }))
        };
        let forward = batch(&mut facts.iter());
        let backward = batch(&mut facts.iter().rev());
        assert_eq!(forward, backward);
        let user = &forward.users[0];
        assert_eq!(forward.users.len(), 1);
        assert_eq!(
            (user.first_seen, user.last_seen),
            (1_000, 1_000 + 2 * DAY_MS)
        );
        // Sources at 1,000 ("b") and 1,000 + DAY ("a"): the earliest wins.
        assert_eq!(user.source, Some((1_000, "b".into())));
        // Profiles at +2 days ("de") and 1,000 ("fr"): the latest wins.
        assert_eq!(user.profile.as_ref().unwrap().1.lang.as_deref(), Some("de"));
        // Blocked at +1 day, unblocked at +2 days.
        assert_eq!(user.status, Some((1_000 + 2 * DAY_MS, ACTIVE)));
        // Active on days 0, 1, 2 (blocks and unblocks are not activity).
        assert_eq!(forward.days.len(), 3);
        assert_eq!(forward.exact.len(), 2);
    }

    #[test]
    fn kind_counts_are_a_sorted_object() {
        assert_eq!(
            kind_counts(["update", "command", "update"]),
            r#"{"command":1,"update":2}"#
        );
        assert_eq!(kind_counts([]), "{}");
    }
}
