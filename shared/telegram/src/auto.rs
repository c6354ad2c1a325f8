//! Automatic tracking of a Telegram bot: the events every update yields without code in the
//! handler, and their names. The Worker layer records them with the update's tracker, after
//! the response.
//!
//! | kind | name | when | properties |
//! | --- | --- | --- | --- |
//! | update | the update kind (`message`, `callback_query`, …) or `unknown` | every accepted update | `update_id`, `chat_type`, `unknown_kind` |
//! | command | the command (`start`, …) or `unknown` | a message whose text is a command for this bot | `source` (`/start` deep link), `attempted` (an unknown command's name) |
//! | callback | the callback data up to the first `:` | a button press | `data` |
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

/// A `/start` payload as an acquisition source: kept when it is a valid deep-link parameter
/// (1–64 characters of `A-Z a-z 0-9 _ -`), `other` when it is anything else a user typed
/// (free text is never stored), `None` when there is none.
pub fn deep_link_source(payload: &str) -> Option<&str> {
    if payload.is_empty() {
        return None;
    }
    let valid = payload.len() <= 64
        && payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    Some(if valid { payload } else { "other" })
}

/// A token the bot defined (callback data, an update kind): kept when it is at most 64 bytes of
/// `A-Z a-z 0-9 _ - : .`, `other` otherwise. Anything else could be text a user typed (a
/// modified client can send any callback data), and free text is never stored.
pub fn bot_token(value: &str) -> &str {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'));
    if valid {
        value
    } else {
        "other"
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
    /// `/start`'s deep-link parameter (see [`deep_link_source`]).
    pub source: Option<String>,
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
    let source = (command.name == "start")
        .then(|| deep_link_source(command.payload).map(str::to_string))
        .flatten();
    Some(if known {
        TrackedCommand {
            name: command.name.to_string(),
            attempted: None,
            source,
        }
    } else {
        TrackedCommand {
            name: "unknown".to_string(),
            attempted: Some(analytics_core::scrub::scrub(analytics_core::text::cut_at(
                command.name,
                MAX_COMMAND_NAME,
            ))),
            source: None,
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
        properties.push(("unknown_kind".into(), bot_token(&update.kind).into()));
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
            properties: vec![("data".into(), data.into())],
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
        assert_eq!(deep_link_source(&"a".repeat(65)), Some("other"));
        assert_eq!(deep_link_source("ok-_9"), Some("ok-_9"));
        assert_eq!(deep_link_source(""), None);
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
