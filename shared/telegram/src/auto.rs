//! Automatic tracking of a Telegram bot: the events every update yields without code in the
//! handler, and their names. The Worker layer records them with the update's tracker, after
//! the response.
//!
//! | kind | name | when | properties |
//! | --- | --- | --- | --- |
//! | update | the update kind (`message`, `callback_query`, …) or `unknown` | every accepted update | `update_id`, `chat_type`, `unknown_kind`; the user's `lang` (two lowercase letters of `language_code`) and `premium` (`true` for Telegram Premium), each only when known; `delivery_lag_ms` (Telegram → bot, see [`delivery_lag_ms`]) when the update is dated |
//! | command | the command (`start`, …) or `unknown` | a message whose text is a command for this bot | `source` (`/start` deep link, numbers masked), `referrer` (the id a referral link ends in, pseudonymised by the library), `attempted` (an unknown command's name) |
//! | callback | the callback data up to the first `:` (numbers masked) | a button press | `data` (numbers of 5+ digits as `<n>`) |
//! | user | `user_blocked` | a private chat's `my_chat_member` to `kicked`, or a Bot API call through the library answered 403 "Forbidden: bot was blocked by the user" (once per update and user) | none |
//! | user | `user_unblocked` | a private chat's `my_chat_member` from `kicked` back to `member` | none |
//! | user | `not_understood` | a text message in a private chat, not a command, that the handler (without failing) answered with nothing: no reply in the body, no follow-up, no Bot API call | none (the text is never stored) |
//! | payment | `pre_checkout`, `payment`, `refund` | a `pre_checkout_query`; a message with `successful_payment`; with `refunded_payment` | `amount` (`total_amount`, smallest units), `currency` (three uppercase letters, else `other`); never the invoice payload or charge ids |
//! | performance | `handler` | every accepted update | `update_kind`, `command`, `outcome` (`ok`/`error`); duration = the handler's own time, awaited I/O included |
//! | error | the error's type | the handler returned an error | kind, message, `handler:<file>:<line>` location, grouped by type and location |
//! | performance | `follow_up` | after follow-up calls | `calls` made, `not_run` (only when the follow-up deadline left calls out), or `interrupted: panic` (a panic cut them off); duration = all follow-ups |
//! | custom | `webhook_rejected` | refused requests since the last report, one event per reason | `reason`, `count`; no user, no chat |

use crate::reply::Reply;
use crate::update::{Command, Price, Update};
use analytics_core::audience;
use analytics_core::datapoint::DELIVERY_LAG_PROPERTY;
use analytics_core::event::{ErrorDetails, EventKind, PropValue};
use analytics_core::tracker::NewEvent;
use serde_json::Value;

/// Longest command name tracked as itself (Telegram allows 32 characters).
pub const MAX_COMMAND_NAME: usize = 32;

/// What the automatic tracking needs to know about the bot.
#[derive(Debug, Clone, Copy, Default)]
pub struct BotProfile<'a> {
    /// The bot's @username (with or without `@`), so `/cmd@OtherBot` in groups is ignored.
    pub username: &'a str,
    /// The bot's commands; any other command is tracked as `unknown`. Empty: every command is
    /// tracked by its name.
    pub commands: &'a [&'a str],
}

/// Largest Telegram user id: ids have up to 52 significant bits.
pub const MAX_USER_ID: i64 = (1 << 52) - 1;

/// A `/start` payload as tracked: the acquisition source, and the referrer's id when the
/// payload ends in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepLink {
    /// The payload when it is a valid deep-link parameter (1–64 characters of
    /// `A-Z a-z 0-9 _ -`), with every digit run that could be an id or a phone number masked
    /// (`ref_5123456789` → `ref_<n>`, see `analytics_core::scrub::mask_numbers`); `other` when it
    /// is anything else a user typed (free text is never stored).
    pub source: String,
    /// The id a valid payload ends in (`ref_5123456789`, `5123456789`: at least 5 digits, no
    /// leading zero, a possible user id, not the end of a `-`-joined number): the usual
    /// referral link. Raw here; tracked as the `referrer` property, which the library turns
    /// into that user's pseudonym with the other ids (`analytics_core::privacy::ID_PROPERTIES`).
    pub referrer: Option<i64>,
}

/// A `/start` payload as tracked (see [`DeepLink`]); `None` when there is none.
pub fn deep_link(payload: &str) -> Option<DeepLink> {
    if payload.is_empty() {
        return None;
    }
    let valid = payload.len() <= 64
        && payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Some(DeepLink {
            source: "other".into(),
            referrer: None,
        });
    }
    let prefix = payload.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &payload[prefix.len()..];
    let joined = prefix
        .strip_suffix('-')
        .is_some_and(|p| p.ends_with(|c: char| c.is_ascii_digit()));
    let referrer = (digits.len() >= analytics_core::scrub::MIN_ID_DIGITS
        && !digits.starts_with('0')
        && !joined)
        .then(|| digits.parse::<i64>().ok())
        .flatten()
        .filter(|id| (1..=MAX_USER_ID).contains(id));
    Some(DeepLink {
        source: analytics_core::scrub::mask_numbers(payload).into_owned(),
        referrer,
    })
}

/// A token the bot defined (callback data, an update kind): kept when it is at most 64 bytes of
/// `A-Z a-z 0-9 _ - : .`, `other` otherwise, and its digit runs that could be an id or a phone
/// number masked (`ban:5123456789` → `ban:<n>`). Anything else could be text a user typed (a
/// modified client can send any callback data), and free text is never stored.
pub fn bot_token(value: &str) -> std::borrow::Cow<'_, str> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'));
    if valid {
        analytics_core::scrub::mask_numbers(value)
    } else {
        std::borrow::Cow::Borrowed("other")
    }
}

/// The command of an update's message, as tracked: its name (or `unknown`), for unknown ones
/// the attempted name, and for `/start` the deep-link source. `None` when the update carries no
/// command for this bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedCommand {
    /// The command's name, or `unknown`.
    pub name: String,
    /// The name an unknown command was called by.
    pub attempted: Option<String>,
    /// `/start`'s deep-link parameter (see [`DeepLink::source`]).
    pub source: Option<String>,
    /// `/start`'s referrer id, raw (see [`DeepLink::referrer`]).
    pub referrer: Option<i64>,
}

/// The command of `update` as tracked (see [`TrackedCommand`]).
pub fn command_of(update: &Update, bot: &BotProfile) -> Option<TrackedCommand> {
    let text = update.payload.text.as_deref()?;
    let command = Command::parse(text)?;
    if !command.is_for(bot.username) {
        return None;
    }
    let known = if bot.commands.is_empty() {
        command.name.len() <= MAX_COMMAND_NAME
    } else {
        bot.commands.contains(&command.name)
    };
    let link = (command.name == "start")
        .then(|| deep_link(command.payload))
        .flatten();
    let (source, referrer) = match link {
        Some(link) => (Some(link.source), link.referrer),
        None => (None, None),
    };
    Some(if known {
        TrackedCommand {
            // A bot without a command list tracks any name: mask ids and numbers a user typed.
            name: analytics_core::scrub::mask_numbers(command.name).into_owned(),
            attempted: None,
            source,
            referrer,
        }
    } else {
        let attempted = analytics_core::scrub::scrub(analytics_core::text::cut_at(
            command.name,
            MAX_COMMAND_NAME,
        ));
        TrackedCommand {
            name: "unknown".to_string(),
            attempted: Some(analytics_core::scrub::mask_numbers(&attempted).into_owned()),
            source: None,
            referrer: None,
        }
    })
}

/// How long Telegram took to deliver `update`, in ms: `received_ms` (when the bot got the
/// request, by the tracker's clock, ms since the epoch) minus the update's own date
/// ([`Update::date`], seconds). `None` when the update has no date (or the clock is not a
/// number).
///
/// Telegram dates in whole seconds, so the lag is only good to a second: an update received
/// 300 ms after it was sent reads 300–1,299 ms. A negative lag (the bot's clock behind
/// Telegram's) counts as 0.
pub fn delivery_lag_ms(update: &Update, received_ms: f64) -> Option<i64> {
    let date = update.date()?;
    let lag = received_ms - date as f64 * 1000.0;
    // `as` saturates; a finite lag is far inside i64 anyway.
    lag.is_finite().then(|| lag.round().max(0.0) as i64)
}

/// The events an accepted update yields before its handler runs — the update, and its command
/// (`command`, from [`command_of`]) or button press. `received_ms` is when the request came in,
/// by the tracker's clock (for the update's [`delivery_lag_ms`]).
pub fn update_events(
    update: &Update,
    command: Option<&TrackedCommand>,
    received_ms: f64,
) -> Vec<NewEvent> {
    let mut events = Vec::with_capacity(2);
    let mut properties = Vec::with_capacity(4);
    properties.push(("update_id".to_string(), PropValue::Int(update.update_id)));
    if let Some(lag) = delivery_lag_ms(update, received_ms) {
        properties.push((DELIVERY_LAG_PROPERTY.to_string(), PropValue::Int(lag)));
    }
    if let Some(chat) = update.chat() {
        properties.push(("chat_type".into(), chat.kind.as_str().into()));
    }
    if !update.known {
        properties.push((
            "unknown_kind".into(),
            bot_token(&update.kind).as_ref().into(),
        ));
    }
    properties.extend(user_facts(update));
    events.push(NewEvent {
        kind: Some(EventKind::UpdateReceived),
        name: if update.known {
            update.kind.clone()
        } else {
            "unknown".into()
        },
        properties,
        ..NewEvent::default()
    });
    if let Some(command) = command {
        let mut properties = Vec::new();
        if let Some(source) = &command.source {
            properties.push(("source".to_string(), source.as_str().into()));
        }
        if let Some(referrer) = command.referrer {
            properties.push(("referrer".to_string(), PropValue::Int(referrer)));
        }
        if let Some(attempted) = &command.attempted {
            properties.push(("attempted".to_string(), attempted.as_str().into()));
        }
        events.push(NewEvent {
            kind: Some(EventKind::Command),
            name: command.name.clone(),
            properties,
            ..NewEvent::default()
        });
    }
    if update.kind == "callback_query" {
        let data = bot_token(update.payload.data.as_deref().unwrap_or_default());
        events.push(NewEvent {
            kind: Some(EventKind::Callback),
            name: data.split(':').next().unwrap_or_default().to_string(),
            properties: vec![("data".into(), data.as_ref().into())],
            ..NewEvent::default()
        });
    }
    events.extend(membership_event(update));
    events.extend(payment_event(update));
    events
}

/// The per-user facts an update's user carries, as properties of the `update` event:
/// [`audience::LANGUAGE`] (see [`crate::update::User::language`]) and [`audience::PREMIUM`]
/// (`true`, only for Telegram Premium users). Each is absent when unknown.
pub fn user_facts(update: &Update) -> Vec<(String, PropValue)> {
    let Some(user) = update.user() else {
        return Vec::new();
    };
    let mut facts = Vec::with_capacity(2);
    if let Some(lang) = user.language() {
        facts.push((audience::LANGUAGE.to_string(), PropValue::Str(lang)));
    }
    if user.is_premium {
        facts.push((audience::PREMIUM.to_string(), PropValue::Bool(true)));
    }
    facts
}

/// A `my_chat_member` update of a private chat is the user blocking the bot (the bot's new
/// status `kicked`: [`audience::USER_BLOCKED`]) or unblocking it (back to `member` from
/// `kicked`: [`audience::USER_UNBLOCKED`]). Telegram sends this update for private chats only
/// then; groups and channels yield nothing here.
pub fn membership_event(update: &Update) -> Option<NewEvent> {
    if update.kind != "my_chat_member" || update.chat()?.kind != "private" {
        return None;
    }
    let p = &update.payload;
    let status = |m: &Option<crate::update::ChatMember>| {
        m.as_ref()
            .and_then(|m| m.status.clone())
            .unwrap_or_default()
    };
    let name = match (
        status(&p.old_chat_member).as_str(),
        status(&p.new_chat_member).as_str(),
    ) {
        (_, "kicked") => audience::USER_BLOCKED,
        ("kicked", "member") => audience::USER_UNBLOCKED,
        _ => return None,
    };
    Some(user_event(name, None))
}

/// An event of kind [`EventKind::User`] named `name`, for `user` (`None`: the update's user).
fn user_event(name: &str, user: Option<i64>) -> NewEvent {
    NewEvent {
        kind: Some(EventKind::User),
        name: name.to_string(),
        user_id: user,
        ..NewEvent::default()
    }
}

/// A currency code as tracked: three uppercase ASCII letters (`XTR` for Telegram Stars, `USD`,
/// …), `other` for anything else.
pub fn currency_code(currency: Option<&str>) -> &str {
    match currency {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => c,
        _ => "other",
    }
}

/// The payment event of an update: a `pre_checkout_query` ([`audience::PRE_CHECKOUT`]), a
/// message with `successful_payment` ([`audience::PAYMENT`]) or `refunded_payment`
/// ([`audience::REFUND`]), of kind [`EventKind::Payment`], with [`audience::AMOUNT`] (Telegram's
/// `total_amount`, the first numeric property, so it lands in `double8`) and
/// [`audience::CURRENCY`] (see [`currency_code`]). Nothing else of a payment is kept: no invoice
/// payload, no charge id.
pub fn payment_event(update: &Update) -> Option<NewEvent> {
    let p = &update.payload;
    let (name, price) = match update.kind.as_str() {
        "pre_checkout_query" => (
            audience::PRE_CHECKOUT,
            Price {
                currency: p.currency.clone(),
                total_amount: p.total_amount,
            },
        ),
        "message" => match (&p.successful_payment, &p.refunded_payment) {
            (Some(paid), _) => (audience::PAYMENT, paid.clone()),
            (None, Some(refunded)) => (audience::REFUND, refunded.clone()),
            (None, None) => return None,
        },
        _ => return None,
    };
    let mut properties = Vec::with_capacity(2);
    if let Some(amount) = price.total_amount {
        properties.push((audience::AMOUNT.to_string(), PropValue::Int(amount)));
    }
    properties.push((
        audience::CURRENCY.to_string(),
        currency_code(price.currency.as_deref()).into(),
    ));
    Some(NewEvent {
        kind: Some(EventKind::Payment),
        name: name.to_string(),
        properties,
        ..NewEvent::default()
    })
}

/// What the handler answered an update with, as far as the library can see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answered {
    /// The reply has a method for the webhook response body.
    pub in_body: bool,
    /// The reply's follow-up calls.
    pub follow_ups: usize,
    /// Bot API calls the handler made itself, through the library's client with the request's
    /// tracker.
    pub calls: u32,
}

impl Answered {
    /// What `reply` answers, with the `calls` the handler made itself.
    pub fn of(reply: &Reply, calls: u32) -> Answered {
        Answered {
            in_body: reply.respond.is_some(),
            follow_ups: reply.follow_ups.len(),
            calls,
        }
    }

    /// Whether the handler sent anything at all.
    pub fn anything(&self) -> bool {
        self.in_body || self.follow_ups > 0 || self.calls > 0
    }
}

/// A text message from a user in a private chat that is not a command, and that the handler
/// (which did not fail) answered with nothing at all: [`audience::NOT_UNDERSTOOD`], of kind
/// [`EventKind::User`]. Its text is never stored.
pub fn not_understood_event(update: &Update, answered: Answered, failed: bool) -> Option<NewEvent> {
    let text = update.payload.text.as_deref()?;
    let from_a_user = update.user().is_some_and(|u| !u.is_bot);
    let understood = failed
        || answered.anything()
        || update.kind != "message"
        || update.chat()?.kind != "private"
        || !from_a_user
        || text.trim().is_empty()
        || Command::parse(text).is_some();
    (!understood).then(|| user_event(audience::NOT_UNDERSTOOD, None))
}

/// Whether a Bot API error is Telegram's 403 "Forbidden: bot was blocked by the user".
pub fn is_blocked_by_user(code: u16, description: &str) -> bool {
    code == 403 && description.contains("bot was blocked by the user")
}

/// Who blocked the bot, when a Bot API call with `params` got the 403 of
/// [`is_blocked_by_user`]: the call's `chat_id` when it is a private chat's (a positive id, a
/// number or its digits; it is the user's id), else, for a call without `chat_id`, the update's
/// user. `None` for a call to a group or channel (Telegram says "kicked" there, not "blocked").
pub fn blocked_user(params: &Value, update_user: Option<i64>) -> Option<i64> {
    match params.get("chat_id") {
        None | Some(Value::Null) => update_user,
        Some(Value::Number(n)) => n.as_i64().filter(|id| *id > 0),
        Some(Value::String(s)) => s.parse::<i64>().ok().filter(|id| *id > 0),
        Some(_) => None,
    }
}

/// The [`audience::USER_BLOCKED`] event of a Bot API 403 (see [`blocked_user`]), for `user`.
pub fn blocked_event(user: i64) -> NewEvent {
    user_event(audience::USER_BLOCKED, Some(user))
}

/// Every automatic event of one handled update, in order: [`update_events`] for its command
/// (by [`command_of`] under `bot`) or button press, with the update received at `received_ms`
/// (the tracker's clock), then [`not_understood_event`] (by what the handler `answered`), then
/// [`handler_events`] named after that command.
pub fn request_events(
    update: &Update,
    bot: &BotProfile,
    received_ms: f64,
    handler_ms: f64,
    failure: Option<&HandlerFailure>,
    answered: Answered,
) -> impl Iterator<Item = NewEvent> {
    let command = command_of(update, bot);
    let name = command.as_ref().map(|c| c.name.as_str());
    let handler = handler_events(update, name, handler_ms, failure);
    let not_understood = not_understood_event(update, answered, failure.is_some());
    update_events(update, command.as_ref(), received_ms)
        .into_iter()
        .chain(not_understood)
        .chain(handler)
}

/// An error a handler returned: its type, message and where it was raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerFailure {
    /// The error's type name.
    pub kind: String,
    /// The error and its sources, joined with `": "`.
    pub message: String,
    /// `file:line` of the `?` (or constructor) that raised it.
    pub location: String,
}

/// The events of the handler's run: its duration (`handler`), and its error, if any, grouped
/// by type and location.
pub fn handler_events(
    update: &Update,
    command: Option<&str>,
    duration_ms: f64,
    failure: Option<&HandlerFailure>,
) -> Vec<NewEvent> {
    let mut properties = vec![("update_kind".to_string(), update.kind.as_str().into())];
    if let Some(command) = command {
        properties.push(("command".into(), command.into()));
    }
    properties.push((
        "outcome".into(),
        if failure.is_some() { "error" } else { "ok" }.into(),
    ));
    let mut events = vec![NewEvent {
        kind: Some(EventKind::Performance),
        name: "handler".into(),
        duration_ms: Some(duration_ms.max(0.0)),
        properties,
        ..NewEvent::default()
    }];
    if let Some(failure) = failure {
        let location = format!("handler:{}", failure.location);
        events.push(NewEvent {
            kind: Some(EventKind::Error),
            name: failure.kind.clone(),
            error: Some(ErrorDetails {
                kind: failure.kind.clone(),
                message: analytics_core::scrub::scrub(&failure.message),
                location: Some(location.clone()),
                group_key: Some(location),
            }),
            ..NewEvent::default()
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(json: &str) -> Update {
        Update::parse(json.as_bytes()).unwrap()
    }

    fn text_update(text: &str) -> Update {
        update(&format!(
            r#"{{"update_id":7,"message":{{"message_id":2,"from":{{"id":42}},"chat":{{"id":42,"type":"private"}},"text":{}}}}}"#,
            serde_json::to_string(text).unwrap()
        ))
    }

    /// When the tests' updates arrive: 2025-11-24 16:00:01.250 UTC.
    const RECEIVED_MS: f64 = 1_764_000_001_250.0;

    const BOT: BotProfile = BotProfile {
        username: "MyBot",
        commands: &["start", "help"],
    };

    fn events_of(update: &Update, bot: &BotProfile) -> Vec<NewEvent> {
        update_events(update, command_of(update, bot).as_ref(), RECEIVED_MS)
    }

    fn names(events: &[NewEvent]) -> Vec<(Option<EventKind>, String)> {
        events.iter().map(|e| (e.kind, e.name.clone())).collect()
    }

    fn dated(kind: &str, date: &str) -> Update {
        update(&format!(
            r#"{{"update_id":7,"{kind}":{{"message_id":2,"from":{{"id":42}},"chat":{{"id":42,"type":"private"}},"date":{date},"edit_date":{date},"text":"hi"}}}}"#
        ))
    }

    fn lag_property(events: &[NewEvent]) -> Option<PropValue> {
        events[0]
            .properties
            .iter()
            .find(|(k, _)| k == DELIVERY_LAG_PROPERTY)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn the_update_event_carries_the_delivery_lag_from_the_updates_date() {
        // Sent at 16:00:00 (Telegram's whole second), received at 16:00:01.250.
        let message = dated("message", "1764000000");
        assert_eq!(delivery_lag_ms(&message, RECEIVED_MS), Some(1_250));
        let events = events_of(&message, &BOT);
        assert_eq!(events[0].kind, Some(EventKind::UpdateReceived));
        assert_eq!(lag_property(&events), Some(PropValue::Int(1_250)));
        // 30 s late, as an edit too (dated by its edit_date).
        let late = dated("edited_message", "1763999971");
        assert_eq!(
            lag_property(&events_of(&late, &BOT)),
            Some(PropValue::Int(30_250))
        );
    }

    #[test]
    fn a_lag_below_zero_counts_as_zero_and_undated_updates_have_none() {
        // The bot's clock 2 s behind Telegram's.
        let ahead = dated("message", "1764000003");
        assert_eq!(delivery_lag_ms(&ahead, RECEIVED_MS), Some(0));
        assert_eq!(
            lag_property(&events_of(&ahead, &BOT)),
            Some(PropValue::Int(0))
        );
        // No date, a date that is not one, a kind without a date of its own.
        assert_eq!(lag_property(&events_of(&text_update("hi"), &BOT)), None);
        assert_eq!(
            lag_property(&events_of(&dated("message", "\"x\""), &BOT)),
            None
        );
        let press = update(
            r#"{"update_id":8,"callback_query":{"id":"1","from":{"id":42},"message":{"message_id":1,"chat":{"id":42,"type":"private"},"date":1764000000},"data":"go","chat_instance":"1"}}"#,
        );
        assert_eq!(delivery_lag_ms(&press, RECEIVED_MS), None);
        assert_eq!(lag_property(&events_of(&press, &BOT)), None);
        // A clock that is not a number gives no lag rather than a wrong one.
        assert_eq!(delivery_lag_ms(&dated("message", "1"), f64::NAN), None);
    }

    #[test]
    fn a_start_with_a_deep_link_is_an_update_and_a_command() {
        let events = events_of(&text_update("/start campaign_7"), &BOT);
        assert_eq!(
            names(&events),
            vec![
                (Some(EventKind::UpdateReceived), "message".to_string()),
                (Some(EventKind::Command), "start".to_string())
            ]
        );
        assert_eq!(
            events[0].properties[0],
            ("update_id".into(), PropValue::Int(7))
        );
        assert_eq!(
            events[1].properties,
            vec![("source".into(), "campaign_7".into())]
        );
    }

    #[test]
    fn free_text_after_start_is_never_kept() {
        let events = events_of(&text_update("/start my number is +44 7700 900123"), &BOT);
        assert_eq!(
            events[1].properties,
            vec![("source".into(), "other".into())]
        );
        let all = format!("{events:?}");
        assert!(!all.contains("7700"), "{all}");
        let source = |p: &str| deep_link(p).map(|l| l.source);
        assert_eq!(source(&"a".repeat(65)).as_deref(), Some("other"));
        assert_eq!(source("ok-_9").as_deref(), Some("ok-_9"));
        assert_eq!(source(""), None);
    }

    #[test]
    fn ids_and_phone_numbers_in_deep_links_and_buttons_never_reach_a_column() {
        // The usual referral link: the referrer's raw id becomes an id property (pseudonymised
        // with the other ids before the events leave the bot), the source keeps its shape.
        let referral = events_of(&text_update("/start ref_5123456789"), &BOT);
        assert_eq!(
            referral[1].properties,
            vec![
                ("source".into(), "ref_<n>".into()),
                ("referrer".into(), PropValue::Int(5_123_456_789)),
            ]
        );
        // A phone number as the payload, or inside it: never stored.
        for (payload, source) in [
            ("447700900123", "<n>"),
            ("promo_44-7700-900123", "promo_<n>"),
            ("call_447700900123_now", "call_<n>_now"),
            ("ref_0123456789", "ref_<n>"),
            ("campaign_2026", "campaign_2026"),
        ] {
            let events = events_of(&text_update(&format!("/start {payload}")), &BOT);
            assert_eq!(
                events[1].properties[0],
                ("source".into(), source.into()),
                "{payload}"
            );
        }
        // Callback data carrying a user id: the prefix names the button, the id is masked.
        let ban = events_of(
            &update(
                r#"{"update_id":3,"callback_query":{"id":"9","from":{"id":1},"data":"ban:5123456789"}}"#,
            ),
            &BOT,
        );
        assert_eq!(ban[1].name, "ban");
        assert_eq!(ban[1].properties, vec![("data".into(), "ban:<n>".into())]);
        // A command named after a number, for a bot that tracks every command by name.
        let any = BotProfile {
            username: "MyBot",
            commands: &[],
        };
        let named = events_of(&text_update("/x5123456789"), &any);
        for e in referral[1..].iter().chain(&ban).chain(&named) {
            let stored: Vec<_> = e
                .properties
                .iter()
                .filter(|(k, _)| k != "referrer")
                .collect();
            let printed = format!("{:?}", (&e.name, stored));
            for raw in ["5123456789", "7700", "900123"] {
                assert!(!printed.contains(raw), "{printed}");
            }
        }
        // Only an id-shaped end of a valid payload is a referrer.
        let referrer = |p: &str| deep_link(p).and_then(|l| l.referrer);
        assert_eq!(referrer("ref_5123456789"), Some(5_123_456_789));
        assert_eq!(referrer("5123456789"), Some(5_123_456_789));
        assert_eq!(referrer("ref_0123456789"), None);
        assert_eq!(referrer("tel_44-7700900123"), None);
        assert_eq!(referrer("campaign_2026"), None);
        assert_eq!(referrer("ref_99999999999999999999"), None);
        assert_eq!(referrer("ref 5123456789"), None);
        assert_eq!(named[1].name, "x<n>");
    }

    #[test]
    fn no_free_text_reaches_a_property() {
        // A forged button with a phone number, an unknown command carrying one, an odd field.
        let forged = events_of(
            &update(
                r#"{"update_id":3,"callback_query":{"id":"9","from":{"id":1},"data":"call me +44 7700 900123"}}"#,
            ),
            &BOT,
        );
        assert_eq!(forged[1].name, "other");
        assert_eq!(forged[1].properties, vec![("data".into(), "other".into())]);
        let typed = events_of(&text_update("/call_447700900123"), &BOT);
        assert_eq!(
            typed[1].properties,
            vec![("attempted".into(), "call_<phone>".into())]
        );
        let odd = events_of(&update(r#"{"update_id":4,"my number is 7700":{}}"#), &BOT);
        assert!(odd[0]
            .properties
            .contains(&("unknown_kind".into(), "other".into())));
        let failure = HandlerFailure {
            kind: "Error".into(),
            message: "cannot reach jane@example.com".into(),
            location: "src/bot.rs:1".into(),
        };
        let events = handler_events(&text_update("hi"), None, 1.0, Some(&failure));
        assert_eq!(
            events[1].error.as_ref().unwrap().message,
            "cannot reach <email>"
        );
        for e in forged.iter().chain(&typed).chain(&odd) {
            assert!(!format!("{e:?}").contains("7700"), "{e:?}");
        }
    }

    #[test]
    fn a_token_inside_a_url_in_a_handler_error_is_not_stored() {
        let failure = HandlerFailure {
            kind: "FetchError".into(),
            message: "GET https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getChat?chat_id=1: 502".into(),
            location: "src/bot.rs:9".into(),
        };
        let events = handler_events(&text_update("hi"), None, 1.0, Some(&failure));
        let message = &events[1].error.as_ref().unwrap().message;
        assert_eq!(
            message,
            "GET https://api.telegram.org/<token>/getChat?chat_id=1: 502"
        );
    }

    #[test]
    fn unknown_and_foreign_commands() {
        let events = events_of(&text_update("/frobnicate"), &BOT);
        assert_eq!(events[1].name, "unknown");
        assert_eq!(
            events[1].properties,
            vec![("attempted".into(), "frobnicate".into())]
        );
        assert_eq!(events_of(&text_update("/help@OtherBot"), &BOT).len(), 1);
        assert_eq!(events_of(&text_update("/help@mybot"), &BOT)[1].name, "help");
        let any = BotProfile {
            username: "MyBot",
            commands: &[],
        };
        assert_eq!(
            events_of(&text_update("/frobnicate"), &any)[1].name,
            "frobnicate"
        );
        assert_eq!(
            events_of(&text_update(&format!("/{}", "x".repeat(40))), &any)[1].name,
            "unknown"
        );
        assert_eq!(events_of(&text_update("just chatting"), &BOT).len(), 1);
    }

    #[test]
    fn a_button_press_is_a_callback_named_by_its_prefix() {
        let events = events_of(
            &update(
                r#"{"update_id":3,"callback_query":{"id":"99","from":{"id":42},"data":"menu:about"}}"#,
            ),
            &BOT,
        );
        assert_eq!(events[1].kind, Some(EventKind::Callback));
        assert_eq!(events[1].name, "menu");
        assert_eq!(
            events[1].properties,
            vec![("data".into(), "menu:about".into())]
        );
    }

    #[test]
    fn a_handler_error_is_grouped_by_type_and_location() {
        let failure = HandlerFailure {
            kind: "D1Error".into(),
            message: "no such table".into(),
            location: "src/bot.rs:42".into(),
        };
        let events = handler_events(&text_update("/start"), Some("start"), 12.5, Some(&failure));
        assert_eq!(events[0].name, "handler");
        assert_eq!(events[0].duration_ms, Some(12.5));
        assert!(events[0]
            .properties
            .contains(&("outcome".into(), "error".into())));
        let error = events[1].error.as_ref().unwrap();
        assert_eq!(error.location.as_deref(), Some("handler:src/bot.rs:42"));
        assert_eq!(error.group_key.as_deref(), Some("handler:src/bot.rs:42"));
    }

    #[test]
    fn a_request_yields_its_update_events_then_its_handler_named_after_the_command() {
        let update = text_update("/start");
        let events: Vec<NewEvent> =
            request_events(&update, &BOT, RECEIVED_MS, 3.0, None, Answered::default()).collect();
        let command = command_of(&update, &BOT);
        let mut expected = names(&update_events(&update, command.as_ref(), RECEIVED_MS));
        expected.extend(names(&handler_events(&update, Some("start"), 3.0, None)));
        assert_eq!(names(&events), expected);
        let handler = events.last().unwrap();
        assert_eq!(handler.name, "handler");
        assert!(handler
            .properties
            .contains(&("command".into(), "start".into())));
    }

    /// A fixture of `tests/fixtures/updates/owner/`.
    fn owner(name: &str) -> Update {
        let path = format!(
            "{}/../../tests/fixtures/updates/owner/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Update::parse(&body).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn prop<'a>(event: &'a NewEvent, key: &str) -> Option<&'a PropValue> {
        event
            .properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn the_update_event_carries_the_users_language_and_premium() {
        let events = events_of(&owner("user_pt_br_premium"), &BOT);
        assert_eq!(prop(&events[0], "lang"), Some(&PropValue::from("pt")));
        assert_eq!(prop(&events[0], "premium"), Some(&PropValue::Bool(true)));
        // Only the update event carries them.
        assert!(events[1..].iter().all(|e| prop(e, "lang").is_none()));
        // An English non-premium user: lang, no premium at all (not `false`).
        let ada = events_of(&owner("text_private"), &BOT);
        assert_eq!(prop(&ada[0], "lang"), Some(&PropValue::from("en")));
        assert_eq!(prop(&ada[0], "premium"), None);
        // No language_code, no user: neither.
        let bare = events_of(&text_update("hi"), &BOT);
        assert_eq!(
            (prop(&bare[0], "lang"), prop(&bare[0], "premium")),
            (None, None)
        );
        let channel = events_of(
            &update(
                r#"{"update_id":1,"channel_post":{"message_id":1,"chat":{"id":-100,"type":"channel"},"text":"x"}}"#,
            ),
            &BOT,
        );
        assert!(user_facts(&update(
            r#"{"update_id":1,"channel_post":{"message_id":1,"chat":{"id":-100,"type":"channel"}}}"#
        ))
        .is_empty());
        assert_eq!(prop(&channel[0], "lang"), None);
    }

    #[test]
    fn a_language_is_two_ascii_letters_lowercased_or_nothing() {
        let lang = |code: &str| {
            let json = format!(
                r#"{{"update_id":1,"message":{{"message_id":1,"from":{{"id":1,"language_code":{}}},"chat":{{"id":1,"type":"private"}}}}}}"#,
                serde_json::to_string(code).unwrap()
            );
            update(&json).user().unwrap().language()
        };
        assert_eq!(lang("pt-br").as_deref(), Some("pt"));
        assert_eq!(lang("EN").as_deref(), Some("en"));
        assert_eq!(lang("uk").as_deref(), Some("uk"));
        assert_eq!(lang("zh-hans").as_deref(), Some("zh"));
        for bad in ["", "e", "1a", "a1", "-x", "ü", "éa", " en", "日本"] {
            assert_eq!(lang(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn premium_is_only_ever_true() {
        let premium = |value: &str| {
            let json = format!(
                r#"{{"update_id":1,"message":{{"message_id":1,"from":{{"id":1{value}}},"chat":{{"id":1,"type":"private"}},"text":"/start"}}}}"#
            );
            prop(&events_of(&update(&json), &BOT)[0], "premium").cloned()
        };
        assert_eq!(
            premium(r#","is_premium":true"#),
            Some(PropValue::Bool(true))
        );
        assert_eq!(premium(r#","is_premium":false"#), None);
        assert_eq!(premium(""), None);
    }

    #[test]
    fn blocking_and_unblocking_in_a_private_chat_are_user_events() {
        let blocked = events_of(&owner("my_chat_member_kicked"), &BOT);
        assert_eq!(
            names(&blocked),
            vec![
                (
                    Some(EventKind::UpdateReceived),
                    "my_chat_member".to_string()
                ),
                (Some(EventKind::User), audience::USER_BLOCKED.to_string()),
            ]
        );
        // For the update's user (the tracker's context): no other user, no properties.
        assert_eq!(blocked[1].user_id, None);
        assert!(blocked[1].properties.is_empty());
        let unblocked = events_of(&owner("my_chat_member_member"), &BOT);
        assert_eq!(
            names(&unblocked)[1],
            (Some(EventKind::User), audience::USER_UNBLOCKED.to_string())
        );
        // Joining a group (left → member), or being kicked from one, is no block.
        let group = update(
            &std::fs::read_to_string(format!(
                "{}/../../tests/fixtures/updates/kinds/my_chat_member.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        );
        assert_eq!(events_of(&group, &BOT).len(), 1);
        let kicked_from_group = r#"{"update_id":5,"my_chat_member":{"chat":{"id":-100123,"type":"supergroup"},"from":{"id":9},"date":1,"old_chat_member":{"status":"member"},"new_chat_member":{"status":"kicked"}}}"#;
        assert!(membership_event(&update(kicked_from_group)).is_none());
        // A first member status that was not kicked before (left → member) is no unblock.
        let first = r#"{"update_id":6,"my_chat_member":{"chat":{"id":9,"type":"private"},"from":{"id":9},"date":1,"old_chat_member":{"status":"left"},"new_chat_member":{"status":"member"}}}"#;
        assert!(membership_event(&update(first)).is_none());
        // A message's legacy `new_chat_member` (a User, no status) still parses, and is nothing.
        let legacy = r#"{"update_id":7,"message":{"message_id":1,"chat":{"id":-1,"type":"group"},"new_chat_member":{"id":5,"is_bot":false,"first_name":"B"},"new_chat_members":[{"id":5}]}}"#;
        assert_eq!(events_of(&update(legacy), &BOT).len(), 1);
    }

    #[test]
    fn payments_carry_the_amount_first_and_a_checked_currency_only() {
        for (fixture, name, amount, currency) in [
            ("pre_checkout_query", audience::PRE_CHECKOUT, 50, "XTR"),
            ("successful_payment_xtr", audience::PAYMENT, 50, "XTR"),
            ("successful_payment_usd", audience::PAYMENT, 1999, "USD"),
            ("refunded_payment", audience::REFUND, 50, "XTR"),
        ] {
            let events = events_of(&owner(fixture), &BOT);
            assert_eq!(events.len(), 2, "{fixture}");
            let payment = &events[1];
            assert_eq!(payment.kind, Some(EventKind::Payment), "{fixture}");
            assert_eq!(payment.name, name, "{fixture}");
            assert_eq!(
                payment.properties,
                vec![
                    ("amount".to_string(), PropValue::Int(amount)),
                    ("currency".to_string(), PropValue::from(currency)),
                ],
                "{fixture}"
            );
            // The first numeric property of the event is the amount (double8).
            let first_number = payment
                .properties
                .iter()
                .find(|(_, v)| v.as_f64().is_some());
            assert_eq!(first_number.unwrap().0, audience::AMOUNT);
            // Nothing of the invoice, the charge or the order reaches any event.
            let printed = format!("{events:?}");
            for secret in [
                "order-7f3a",
                "secret-note",
                "stxQ2k",
                "ch_3Pq",
                "plan-pro",
                "Lovelace",
                "7700",
                "example.com",
                "express",
            ] {
                assert!(
                    !printed.contains(secret),
                    "{fixture}: {secret} in {printed}"
                );
            }
        }
        for (given, tracked) in [
            (Some("XTR"), "XTR"),
            (Some("EUR"), "EUR"),
            (Some("usd"), "other"),
            (Some("US"), "other"),
            (Some("USDT"), "other"),
            (Some("ÜSD"), "other"),
            (Some("my card 4111"), "other"),
            (None, "other"),
        ] {
            assert_eq!(currency_code(given), tracked, "{given:?}");
        }
        // A payment message in an edited message, or a pre-checkout without a price, is odd but
        // safe: no amount is invented.
        let odd = update(
            r#"{"update_id":8,"pre_checkout_query":{"id":"1","from":{"id":1},"currency":"lol"}}"#,
        );
        assert_eq!(
            payment_event(&odd).unwrap().properties,
            vec![("currency".to_string(), PropValue::from("other"))]
        );
        let edited = update(
            r#"{"update_id":9,"edited_message":{"message_id":1,"chat":{"id":1,"type":"private"},"successful_payment":{"currency":"XTR","total_amount":5}}}"#,
        );
        assert!(payment_event(&edited).is_none());
        // A non-integer amount is a malformed update, refused like any other wrong shape.
        assert!(Update::parse(br#"{"update_id":1,"pre_checkout_query":{"id":"1","currency":"XTR","total_amount":"50"}}"#).is_err());
    }

    #[test]
    fn a_text_nobody_answered_is_not_understood_once_and_without_its_text() {
        let text = owner("text_private");
        let silent = Answered::default();
        let events: Vec<NewEvent> =
            request_events(&text, &BOT, RECEIVED_MS, 1.0, None, silent).collect();
        assert_eq!(
            names(&events),
            vec![
                (Some(EventKind::UpdateReceived), "message".to_string()),
                (Some(EventKind::User), audience::NOT_UNDERSTOOD.to_string()),
                (Some(EventKind::Performance), "handler".to_string()),
            ]
        );
        assert!(events[1].properties.is_empty());
        let printed = format!("{events:?}");
        assert!(
            !printed.contains("weather") && !printed.contains("7700"),
            "{printed}"
        );
        // Any answer at all means it was understood: in the body, a follow-up, a call.
        for answered in [
            Answered::of(&Reply::text(1, "hi"), 0),
            Answered::of(&Reply::none().then("sendMessage", serde_json::json!({})), 0),
            Answered::of(&Reply::none(), 1),
        ] {
            assert!(answered.anything());
            assert!(
                not_understood_event(&text, answered, false).is_none(),
                "{answered:?}"
            );
        }
        // A handler that failed is an error, not a misunderstanding.
        assert!(not_understood_event(&text, silent, true).is_none());
        // Commands (for this bot, unknown ones, for other bots), groups, bots, non-text: never.
        for json in [
            r#"{"update_id":1,"message":{"message_id":1,"from":{"id":4},"chat":{"id":4,"type":"private"},"text":"/frobnicate"}}"#,
            r#"{"update_id":1,"message":{"message_id":1,"from":{"id":4},"chat":{"id":4,"type":"private"},"text":"/help@OtherBot"}}"#,
            r#"{"update_id":1,"message":{"message_id":1,"from":{"id":4},"chat":{"id":-4,"type":"group"},"text":"hello all"}}"#,
            r#"{"update_id":1,"message":{"message_id":1,"from":{"id":4,"is_bot":true},"chat":{"id":4,"type":"private"},"text":"beep"}}"#,
            r#"{"update_id":1,"message":{"message_id":1,"from":{"id":4},"chat":{"id":4,"type":"private"}}}"#,
            r#"{"update_id":1,"edited_message":{"message_id":1,"from":{"id":4},"chat":{"id":4,"type":"private"},"text":"typo fixed"}}"#,
            r#"{"update_id":1,"channel_post":{"message_id":1,"chat":{"id":-5,"type":"channel"},"text":"news"}}"#,
        ] {
            assert!(
                not_understood_event(&update(json), silent, false).is_none(),
                "{json}"
            );
        }
        assert!(not_understood_event(&text_update("hello"), silent, false).is_some());
    }

    #[test]
    fn a_403_blocked_by_the_user_names_the_user_it_was_sent_to() {
        assert!(is_blocked_by_user(
            403,
            "Forbidden: bot was blocked by the user"
        ));
        assert!(!is_blocked_by_user(
            403,
            "Forbidden: bot was kicked from the group chat"
        ));
        assert!(!is_blocked_by_user(403, "Forbidden: user is deactivated"));
        assert!(!is_blocked_by_user(
            400,
            "Forbidden: bot was blocked by the user"
        ));
        use serde_json::json;
        assert_eq!(
            blocked_user(&json!({"chat_id": 5123456789_i64, "text": "x"}), Some(7)),
            Some(5_123_456_789)
        );
        assert_eq!(
            blocked_user(&json!({"chat_id": "5123456789"}), Some(7)),
            Some(5_123_456_789)
        );
        assert_eq!(
            blocked_user(&json!({"callback_query_id": "1"}), Some(7)),
            Some(7)
        );
        assert_eq!(
            blocked_user(&json!({"chat_id": -1001234567890_i64}), Some(7)),
            None
        );
        assert_eq!(blocked_user(&json!({"chat_id": "@channel"}), Some(7)), None);
        assert_eq!(blocked_user(&json!({"chat_id": [1]}), Some(7)), None);
        let event = blocked_event(5_123_456_789);
        assert_eq!(
            (event.kind, event.name.as_str(), event.user_id),
            (
                Some(EventKind::User),
                audience::USER_BLOCKED,
                Some(5_123_456_789)
            )
        );
    }
}
