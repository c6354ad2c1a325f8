//! The update a handler receives.

use std::rc::Rc;

use serde::de::DeserializeOwned;
use telegram_policy::update::Command;

/// One Telegram update, as the handler sees it: the fields most bots need, and the whole body
/// for the rest ([`Update::json`] into any type, e.g. a full Bot API model).
#[derive(Debug, Clone)]
pub struct Update {
    parsed: Rc<telegram_policy::update::Update>,
    body: Rc<[u8]>,
    username: Rc<str>,
}

impl Update {
    pub(crate) fn new(
        parsed: telegram_policy::update::Update,
        body: Vec<u8>,
        username: &str,
    ) -> Update {
        Update {
            parsed: Rc::new(parsed),
            body: body.into(),
            username: username.into(),
        }
    }

    /// The `update_id`.
    pub fn id(&self) -> i64 {
        self.parsed.update_id
    }

    /// The update kind: `message`, `callback_query`, … (or the unknown field's name).
    pub fn kind(&self) -> &str {
        &self.parsed.kind
    }

    /// The message text, for messages.
    pub fn text(&self) -> Option<&str> {
        self.parsed.payload.text.as_deref()
    }

    /// The command the message's text starts with, when it is meant for this bot
    /// (`BOT_USERNAME`): `/start@MyBot campaign` → name `start`, payload `campaign`.
    pub fn command(&self) -> Option<Command<'_>> {
        self.text()
            .and_then(Command::parse)
            .filter(|c| c.is_for(&self.username))
    }

    /// The chat the update happened in (for button presses: the message's chat).
    pub fn chat_id(&self) -> Option<i64> {
        self.parsed.chat().map(|c| c.id)
    }

    /// The user the update came from.
    pub fn user_id(&self) -> Option<i64> {
        self.parsed.user_id()
    }

    /// The message id: of the message itself, or, for a button press, of the message the
    /// button is on.
    pub fn message_id(&self) -> Option<i64> {
        let p = &self.parsed.payload;
        p.message_id
            .or_else(|| p.message.as_ref().and_then(|m| m.message_id))
    }

    /// A pressed button's callback data.
    pub fn callback_data(&self) -> Option<&str> {
        self.parsed.payload.data.as_deref()
    }

    /// A pressed button's query id (to answer it).
    pub fn callback_query_id(&self) -> Option<String> {
        (self.parsed.kind == "callback_query")
            .then(|| self.parsed.payload.id.as_ref().map(ToString::to_string))
            .flatten()
    }

    /// The parsed shape the automatic tracking uses.
    pub(crate) fn parsed(&self) -> &telegram_policy::update::Update {
        &self.parsed
    }

    /// The whole update deserialized into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}
