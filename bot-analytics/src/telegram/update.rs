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
    ///
    /// `None` both for text that is not a command and for a command addressed to another bot
    /// (`/start@OtherBot` in a group): a fallback branch must not answer it as plain text. Tell
    /// them apart with [`Update::is_command`].
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

    /// Whether the message's text is a bot command at all (`/name…`), for this bot or another.
    pub fn is_command(&self) -> bool {
        self.text().and_then(Command::parse).is_some()
    }

    /// A pressed button's callback data. The automatic `callback` event is named after it up to
    /// the first `:` (`menu:about` → `menu`), so put the action before a `:` and any argument
    /// after it; data that is not up to 64 bytes of `A-Z a-z 0-9 _ - : .` is tracked as
    /// `other` (a modified client can send any text there).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text_update(text: &str) -> Update {
        let body = serde_json::json!({"update_id": 1, "message": {"message_id": 1,
            "from": {"id": 7}, "chat": {"id": 7, "type": "group"}, "text": text}})
        .to_string()
        .into_bytes();
        let parsed = telegram_policy::update::Update::parse(&body).unwrap();
        Update::new(parsed, body, "MyBot")
    }

    #[test]
    fn another_bots_command_is_no_command_for_this_bot_but_still_a_command() {
        let mine = text_update("/start@MyBot campaign");
        assert_eq!(
            mine.command().map(|c| (c.name, c.payload)),
            Some(("start", "campaign"))
        );
        let theirs = text_update("/start@OtherBot");
        assert!(theirs.command().is_none() && theirs.is_command());
        let plain = text_update("hello");
        assert!(plain.command().is_none() && !plain.is_command());
    }
}
