//! Automatic tracking of a Telegram bot: the events every update yields without code in the
//! handler, and their names. The Worker layer records them with the update's tracker, after
//! the response.
//!
//! | kind | name | when | properties |
//! | --- | --- | --- | --- |
//! | update | the update kind (`message`, `callback_query`, …) or `unknown` | every accepted update | `update_id`, `chat_type`, `unknown_kind` |
//! | command | the command (`start`, …) or `unknown` | a message whose text is a command for this bot | `source` (`/start` deep link, numbers masked), `referrer` (the id a referral link ends in, pseudonymised by the library), `attempted` (an unknown command's name) |
//! | callback | the callback data up to the first `:` (numbers masked) | a button press | `data` (numbers of 5+ digits as `<n>`) |
//! | performance | `handler` | every accepted update | `update_kind`, `command`, `outcome` (`ok`/`error`); duration = the handler's own time, awaited I/O included |
//! | error | the error's type | the handler returned an error | kind, message, `handler:<file>:<line>` location, grouped by type and location |
//! | performance | `follow_up` | after follow-up calls | `calls` made, `not_run` (only when the follow-up deadline left calls out), or `interrupted: panic` (a panic cut them off); duration = all follow-ups |
//! | custom | `webhook_rejected` | refused requests since the last report, one event per reason | `reason`, `count`; no user, no chat |

use crate::update::{Command, Update};
use analytics_core::event::{ErrorDetails, EventKind, PropValue};
use analytics_core::tracker::NewEvent;

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

/// The events an accepted update yields before its handler runs — the update, and its command
/// (`command`, from [`command_of`]) or button press.
pub fn update_events(update: &Update, command: Option<&TrackedCommand>) -> Vec<NewEvent> {
    let mut events = Vec::with_capacity(2);
    let mut properties = Vec::with_capacity(3);
    properties.push(("update_id".to_string(), PropValue::Int(update.update_id)));
    if let Some(chat) = update.chat() {
        properties.push(("chat_type".into(), chat.kind.as_str().into()));
    }
    if !update.known {
        properties.push((
            "unknown_kind".into(),
            bot_token(&update.kind).as_ref().into(),
        ));
    }
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
    events
}

/// Every automatic event of one handled update, in order: [`update_events`] for its command
/// (by [`command_of`] under `bot`) or button press, then [`handler_events`] named after that
/// command.
pub fn request_events(
    update: &Update,
    bot: &BotProfile,
    handler_ms: f64,
    failure: Option<&HandlerFailure>,
) -> impl Iterator<Item = NewEvent> {
    let command = command_of(update, bot);
    let name = command.as_ref().map(|c| c.name.as_str());
    let handler = handler_events(update, name, handler_ms, failure);
    update_events(update, command.as_ref())
        .into_iter()
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

    const BOT: BotProfile = BotProfile {
        username: "MyBot",
        commands: &["start", "help"],
    };

    fn events_of(update: &Update, bot: &BotProfile) -> Vec<NewEvent> {
        update_events(update, command_of(update, bot).as_ref())
    }

    fn names(events: &[NewEvent]) -> Vec<(Option<EventKind>, String)> {
        events.iter().map(|e| (e.kind, e.name.clone())).collect()
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
        let events: Vec<NewEvent> = request_events(&update, &BOT, 3.0, None).collect();
        let command = command_of(&update, &BOT);
        let mut expected = names(&update_events(&update, command.as_ref()));
        expected.extend(names(&handler_events(&update, Some("start"), 3.0, None)));
        assert_eq!(names(&events), expected);
        let handler = events.last().unwrap();
        assert_eq!(handler.name, "handler");
        assert!(handler
            .properties
            .contains(&("command".into(), "start".into())));
    }
}
