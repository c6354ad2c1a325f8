//! Telegram updates: parse a webhook body into what the bot and the analytics need, classify
//! its kind, and split bot commands. Tolerant of fields it does not know; strict about shape.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// Every update field of the Bot API (up to 10.3, August 2026) this build knows, in the order of
/// the Bot API docs. A field not listed is still accepted and tracked as `unknown`.
pub const KNOWN_UPDATE_KINDS: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    // Bot API 9.6 (April 2026): a managed bot was created or changed (`user`, `bot`).
    "managed_bot",
    // Bot API 10.0 (May 2026): a message to the bot as a guest in another chat (a Message).
    "guest_message",
    // Bot API 10.2 (July 2026): a user's bot subscription changed (`user`, `state`).
    "subscription",
    // Bot API 10.3 (August 2026): a user asked to stop a message generation (`chat`).
    "stopped_message_generation",
];

/// A Telegram user, as much as the bot needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct User {
    /// The user id (can exceed 32 bits).
    pub id: i64,
    /// Whether the user is a bot.
    #[serde(default)]
    pub is_bot: bool,
    /// The IETF language tag of the user's app (`en`, `pt-br`), when Telegram sends it.
    #[serde(default)]
    pub language_code: Option<String>,
    /// Whether the user has Telegram Premium (Telegram sends `true` or nothing).
    #[serde(default)]
    pub is_premium: bool,
}

impl User {
    /// The user's language as tracked: the first two letters of `language_code`, lowercased,
    /// when both are ASCII letters (`pt-br` → `pt`); `None` otherwise.
    pub fn language(&self) -> Option<String> {
        let two = self.language_code.as_deref()?.get(..2)?;
        two.bytes()
            .all(|b| b.is_ascii_alphabetic())
            .then(|| two.to_ascii_lowercase())
    }
}

/// A price as Telegram states it in payments: what `pre_checkout_query`, `successful_payment`
/// and `refunded_payment` share. Nothing else of a payment is read (never its invoice payload
/// or charge ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Price {
    /// The three-letter ISO 4217 code, or `XTR` for Telegram Stars.
    pub currency: Option<String>,
    /// The amount in the currency's smallest units (Stars for `XTR`, cents for `USD`).
    pub total_amount: Option<i64>,
}

/// A chat member's state in a `my_chat_member`/`chat_member` update: only its status.
///
/// Tolerant by design: a message's legacy `new_chat_member` field (a User, without `status`)
/// parses too, with no status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ChatMember {
    /// `creator`, `administrator`, `member`, `restricted`, `left` or `kicked`.
    pub status: Option<String>,
}

/// A Telegram chat, as much as the bot needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Chat {
    /// The chat id (supergroups look like -100XXXXXXXXXX).
    pub id: i64,
    /// private, group, supergroup or channel.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A `String` or an integer id, as Telegram uses both for `id` fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AnyId {
    /// A string id (callback queries, inline queries, …).
    Text(String),
    /// A numeric id.
    Number(i64),
}

impl fmt::Display for AnyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyId::Text(t) => f.write_str(t),
            AnyId::Number(n) => write!(f, "{n}"),
        }
    }
}

/// The fields shared by the payloads of all update kinds; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Payload {
    /// `id` of a callback query, inline query, shipping or pre-checkout query, poll.
    pub id: Option<AnyId>,
    /// `message_id` of a message.
    pub message_id: Option<i64>,
    /// The sender.
    pub from: Option<User>,
    /// The user of reactions, poll answers and business connections.
    pub user: Option<User>,
    /// The chat.
    pub chat: Option<Chat>,
    /// The message a callback query came from.
    pub message: Option<Box<Payload>>,
    /// Message text.
    pub text: Option<String>,
    /// Callback data.
    pub data: Option<String>,
    /// A `pre_checkout_query`'s currency.
    pub currency: Option<String>,
    /// A `pre_checkout_query`'s amount, in the currency's smallest units.
    pub total_amount: Option<i64>,
    /// A message's `successful_payment` (its price only).
    pub successful_payment: Option<Price>,
    /// A message's `refunded_payment` (its price only).
    pub refunded_payment: Option<Price>,
    /// A `my_chat_member`/`chat_member` update's member before the change.
    pub old_chat_member: Option<ChatMember>,
    /// A `my_chat_member`/`chat_member` update's member after the change.
    pub new_chat_member: Option<ChatMember>,
    /// `date` (Unix seconds): when a message was sent, or when a membership change, join
    /// request or reaction change happened. Anything but an integer reads as absent.
    #[serde(deserialize_with = "lenient_i64")]
    pub date: Option<i64>,
    /// `edit_date` (Unix seconds): when an edited message was last edited. Anything but an
    /// integer reads as absent.
    #[serde(deserialize_with = "lenient_i64")]
    pub edit_date: Option<i64>,
}

/// An integer field read leniently: a value of another type (or out of range) is `None`, never
/// a reason to refuse the whole update.
fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(serde_json::Value::deserialize(deserializer)?.as_i64())
}

/// The update kinds whose payload's `date` is when the update's event happened (Bot API:
/// `Message.date`, `ChatMemberUpdated.date`, `ChatJoinRequest.date`,
/// `MessageReactionUpdated.date`, `MessageReactionCountUpdated.date`).
const DATED_KINDS: &[&str] = &[
    "message",
    "channel_post",
    "business_message",
    "guest_message",
    "message_reaction",
    "message_reaction_count",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
];

/// The update kinds whose payload is an edited message: its `date` is when the message was
/// first sent, so the update's own time is `edit_date`.
const EDITED_KINDS: &[&str] = &[
    "edited_message",
    "edited_channel_post",
    "edited_business_message",
];

/// What a webhook body is, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The update id.
    pub update_id: i64,
    /// The update kind: one of [`KNOWN_UPDATE_KINDS`], or the unknown field's name.
    pub kind: String,
    /// Whether the kind is one this build knows.
    pub known: bool,
    /// The kind's payload (for unknown kinds, empty).
    pub payload: Payload,
}

/// Why a body is not a Telegram update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// Not JSON, or JSON of the wrong shape (the message says where).
    #[error("not a Telegram update: {0}")]
    Invalid(String),
    /// A JSON object without `update_id`.
    #[error("not a Telegram update: missing update_id")]
    MissingUpdateId,
}

impl Update {
    /// Parses a webhook body.
    pub fn parse(body: &[u8]) -> Result<Update, UpdateError> {
        // JSON is UTF-8; serde_json does not check strings it skips, so check it all first.
        let text = std::str::from_utf8(body)
            .map_err(|e| UpdateError::Invalid(format!("body is not UTF-8: {e}")))?;
        if nesting_depth(body) > MAX_NESTING {
            return Err(UpdateError::Invalid(format!(
                "JSON nested deeper than {MAX_NESTING} levels"
            )));
        }
        serde_json::from_str(text).map_err(|e| UpdateError::Invalid(e.to_string()))
    }

    /// The user the update came from, where it has one.
    pub fn user_id(&self) -> Option<i64> {
        self.user().map(|u| u.id)
    }

    /// The user the update came from (`from`, else `user`), where it has one.
    pub fn user(&self) -> Option<&User> {
        let p = &self.payload;
        p.from.as_ref().or(p.user.as_ref())
    }

    /// When the update's event happened, in Unix seconds, as Telegram dates it: the payload's
    /// `date` for messages, channel and business posts, guest messages, membership changes,
    /// join requests and reaction changes; `edit_date` for edited messages and posts. `None`
    /// for every other kind (callback and inline queries, polls, payments, boosts,
    /// business connections, unknown kinds, …: they carry no date of their own; a callback
    /// query's message is dated when that message was sent, not when the button was pressed),
    /// and for a date that is missing or not positive.
    pub fn date(&self) -> Option<i64> {
        let kind = self.kind.as_str();
        let date = if DATED_KINDS.contains(&kind) {
            self.payload.date
        } else if EDITED_KINDS.contains(&kind) {
            self.payload.edit_date
        } else {
            None
        };
        date.filter(|d| *d > 0)
    }

    /// The chat the update happened in (for callback queries: the message's chat).
    pub fn chat(&self) -> Option<&Chat> {
        let p = &self.payload;
        p.chat
            .as_ref()
            .or_else(|| p.message.as_ref().and_then(|m| m.chat.as_ref()))
    }
}

/// Deepest JSON nesting accepted. Real updates nest about ten levels (a reply's keyboard);
/// anything deeper is hostile and refused before parsing.
pub const MAX_NESTING: usize = 64;

/// The deepest nesting of `[`/`{` outside strings (a linear scan, no allocation).
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

impl<'de> Deserialize<'de> for Update {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UpdateVisitor)
    }
}

struct UpdateVisitor;

impl<'de> Visitor<'de> for UpdateVisitor {
    type Value = Update;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Telegram Update object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Update, A::Error> {
        let mut update_id = None;
        let mut found: Option<(String, bool, Payload)> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "update_id" {
                if update_id.is_some() {
                    return Err(de::Error::duplicate_field("update_id"));
                }
                update_id = Some(map.next_value::<i64>()?);
            } else if KNOWN_UPDATE_KINDS.contains(&key.as_str()) && found.is_none() {
                let payload = map.next_value::<ObjectPayload>()?.0;
                found = Some((key, true, payload));
            } else {
                map.next_value::<IgnoredAny>()?;
                if found.is_none() {
                    found = Some((key, false, Payload::default()));
                }
            }
        }
        let update_id = update_id.ok_or_else(|| de::Error::custom(UpdateError::MissingUpdateId))?;
        let (kind, known, payload) =
            found.unwrap_or_else(|| ("empty".into(), false, Payload::default()));
        Ok(Update {
            update_id,
            kind,
            known,
            payload,
        })
    }
}

/// A [`Payload`] that must be a JSON object (serde's derived structs also accept arrays).
struct ObjectPayload(Payload);

impl<'de> Deserialize<'de> for ObjectPayload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = ObjectPayload;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ObjectPayload, A::Error> {
                Payload::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectPayload)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A bot command split from message text: `/start@MyBot payload` → `start`, `payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The command without slash or bot name.
    pub name: &'a str,
    /// The bot name after `@`, when the command was addressed.
    pub addressee: Option<&'a str>,
    /// Everything after the command, trimmed (the deep-link payload of `/start`).
    pub payload: &'a str,
}

impl<'a> Command<'a> {
    /// Splits `text` when it starts with a command; `None` otherwise.
    pub fn parse(text: &'a str) -> Option<Command<'a>> {
        let rest = text.strip_prefix('/')?;
        let (head, payload) = match rest.find(char::is_whitespace) {
            Some(i) => (&rest[..i], rest[i..].trim()),
            None => (rest, ""),
        };
        let (name, addressee) = match head.split_once('@') {
            Some((name, bot)) => (name, Some(bot)),
            None => (head, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        Some(Command {
            name,
            addressee,
            payload,
        })
    }

    /// Whether the command is meant for the bot called `bot_username` (unaddressed commands
    /// are; addressed ones only when the name matches, case-insensitively).
    pub fn is_for(&self, bot_username: &str) -> bool {
        self.addressee
            .is_none_or(|a| a.eq_ignore_ascii_case(bot_username.trim_start_matches('@')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_update_is_parsed() {
        let body = br#"{"update_id":10,"message":{"message_id":5,"from":{"id":5123456789,"is_bot":false,"first_name":"A"},"chat":{"id":-1001234567890,"type":"supergroup"},"date":1,"text":"/start ref"}}"#;
        let u = Update::parse(body).unwrap();
        assert_eq!(u.update_id, 10);
        assert_eq!(u.kind, "message");
        assert!(u.known);
        assert_eq!(u.user_id(), Some(5_123_456_789));
        assert_eq!(u.chat().unwrap().id, -1_001_234_567_890);
        assert_eq!(u.chat().unwrap().kind, "supergroup");
        assert_eq!(u.payload.text.as_deref(), Some("/start ref"));
    }

    #[test]
    fn callback_query_takes_chat_from_its_message() {
        let body = br#"{"update_id":11,"callback_query":{"id":"4382","from":{"id":7},"message":{"message_id":3,"chat":{"id":7,"type":"private"}},"data":"menu:stats","chat_instance":"x"}}"#;
        let u = Update::parse(body).unwrap();
        assert_eq!(u.kind, "callback_query");
        assert_eq!(u.payload.id, Some(AnyId::Text("4382".into())));
        assert_eq!(u.payload.data.as_deref(), Some("menu:stats"));
        assert_eq!(u.chat().unwrap().id, 7);
    }

    #[test]
    fn unknown_kind_is_kept_by_name() {
        let u = Update::parse(br#"{"update_id":1,"future_thing":{"a":[1,2]}}"#).unwrap();
        assert_eq!(u.kind, "future_thing");
        assert!(!u.known);
        let u = Update::parse(br#"{"update_id":1}"#).unwrap();
        assert_eq!(u.kind, "empty");
    }

    #[test]
    fn bad_bodies_are_errors() {
        for body in [
            &b""[..],
            b"not json",
            b"[]",
            b"{\"message\":{}}",
            b"{\"update_id\":\"x\"}",
            b"{\"update_id\":1,\"message\":{\"chat\":{\"id\":\"nan\"}}}",
            b"{\"update_id\":1",
            b"{\"update_id\":1,\"x\":\"\xff\xfe\"}",
            b"{\"update_id\":1,\"message\":[]}",
            b"{\"update_id\":1,\"callback_query\":\"x\"}",
        ] {
            assert!(
                Update::parse(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_a_crash() {
        let open = "[".repeat(100_000);
        let close = "]".repeat(100_000);
        for body in [
            format!("{{\"update_id\":1,\"x\":{open}{close}}}"),
            format!("{{\"update_id\":{open}{close}}}"),
        ] {
            let error = Update::parse(body.as_bytes()).unwrap_err();
            assert!(error.to_string().contains("nested deeper"), "{error}");
        }
        // Brackets inside strings do not count; real nesting up to the limit is fine.
        let in_string = format!("{{\"update_id\":1,\"x\":\"{open}\\\"\"}}");
        assert_eq!(Update::parse(in_string.as_bytes()).unwrap().kind, "x");
        let ok = format!(
            "{{\"update_id\":1,\"x\":{}{}}}",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        assert!(Update::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn the_update_date_is_the_payloads_own_date_where_telegram_sends_one() {
        let date = |body: &str| Update::parse(body.as_bytes()).unwrap().date();
        let chat = r#""chat":{"id":7,"type":"private"}"#;
        for kind in [
            "message",
            "channel_post",
            "business_message",
            "guest_message",
        ] {
            let body = format!(
                r#"{{"update_id":1,"{kind}":{{"message_id":1,{chat},"date":1764000000,"text":"x"}}}}"#
            );
            assert_eq!(date(&body), Some(1_764_000_000), "{kind}");
        }
        for kind in ["my_chat_member", "chat_member"] {
            let body = format!(
                r#"{{"update_id":1,"{kind}":{{{chat},"from":{{"id":7}},"date":1764000001,"old_chat_member":{{"status":"left"}},"new_chat_member":{{"status":"member"}}}}}}"#
            );
            assert_eq!(date(&body), Some(1_764_000_001), "{kind}");
        }
        let join = format!(
            r#"{{"update_id":1,"chat_join_request":{{{chat},"from":{{"id":7}},"user_chat_id":7,"date":1764000002}}}}"#
        );
        assert_eq!(date(&join), Some(1_764_000_002));
        let reaction = format!(
            r#"{{"update_id":1,"message_reaction":{{{chat},"message_id":3,"user":{{"id":7}},"date":1764000003,"old_reaction":[],"new_reaction":[]}}}}"#
        );
        assert_eq!(date(&reaction), Some(1_764_000_003));
        // An edit is dated by `edit_date`: its `date` is when the message was first sent.
        let edited = format!(
            r#"{{"update_id":1,"edited_message":{{"message_id":1,{chat},"date":1700000000,"edit_date":1764000004,"text":"y"}}}}"#
        );
        assert_eq!(date(&edited), Some(1_764_000_004));
        let edited_without_edit_date = format!(
            r#"{{"update_id":1,"edited_channel_post":{{"message_id":1,{chat},"date":1700000000}}}}"#
        );
        assert_eq!(date(&edited_without_edit_date), None);
    }

    #[test]
    fn kinds_without_a_date_of_their_own_have_none() {
        let date = |body: &str| Update::parse(body.as_bytes()).unwrap().date();
        // A button press: the message's date is when the bot's message was sent.
        let callback = r#"{"update_id":1,"callback_query":{"id":"1","from":{"id":7},"message":{"message_id":3,"chat":{"id":7,"type":"private"},"date":1764000000},"data":"x","chat_instance":"1"}}"#;
        assert_eq!(date(callback), None);
        // A business connection's date is when it was established, not this update's.
        let connection = r#"{"update_id":1,"business_connection":{"id":"b","user":{"id":7},"user_chat_id":7,"date":1764000000,"is_enabled":true}}"#;
        assert_eq!(date(connection), None);
        assert_eq!(
            date(
                r#"{"update_id":1,"inline_query":{"id":"1","from":{"id":7},"query":"","offset":""}}"#
            ),
            None
        );
        assert_eq!(
            date(r#"{"update_id":1,"future_kind":{"date":1764000000}}"#),
            None
        );
        assert_eq!(
            date(r#"{"update_id":1,"message":{"message_id":1,"chat":{"id":7,"type":"private"}}}"#),
            None
        );
    }

    #[test]
    fn a_date_of_the_wrong_type_is_ignored_not_refused() {
        for bad in [
            r#""soon""#,
            "-5",
            "0",
            "1.5",
            "null",
            "[1]",
            "99999999999999999999",
        ] {
            let body = format!(
                r#"{{"update_id":1,"message":{{"message_id":1,"chat":{{"id":7,"type":"private"}},"date":{bad},"edit_date":{bad},"text":"hi"}}}}"#
            );
            let u = Update::parse(body.as_bytes()).unwrap();
            assert_eq!(
                (u.date(), u.payload.text.as_deref()),
                (None, Some("hi")),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_duplicate_update_id_is_refused() {
        assert!(Update::parse(br#"{"update_id":1,"update_id":2}"#).is_err());
    }

    #[test]
    fn commands_split_name_addressee_and_payload() {
        let c = Command::parse("/start@MyBot  campaign_42 ").unwrap();
        assert_eq!(
            (c.name, c.addressee, c.payload),
            ("start", Some("MyBot"), "campaign_42")
        );
        assert!(c.is_for("mybot"));
        assert!(!c.is_for("OtherBot"));
        let c = Command::parse("/help").unwrap();
        assert_eq!((c.name, c.addressee, c.payload), ("help", None, ""));
        assert!(c.is_for("anything"));
        assert!(Command::parse("hello /start").is_none());
        assert!(Command::parse("/").is_none());
        assert!(Command::parse("/ space").is_none());
    }

    #[test]
    fn every_fixture_update_parses_with_its_user_facts() {
        let root = format!(
            "{}/../../tests/fixtures/updates",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut dirs = vec![std::path::PathBuf::from(root)];
        let mut parsed = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let update = Update::parse(&std::fs::read(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(update.update_id > 0, "{}", path.display());
                parsed += 1;
            }
        }
        assert!(parsed >= 35, "{parsed} fixtures");
        let pt = Update::parse(include_bytes!(
            "../../../tests/fixtures/updates/owner/user_pt_br_premium.json"
        ))
        .unwrap();
        let user = pt.user().unwrap();
        assert_eq!(user.language_code.as_deref(), Some("pt-br"));
        assert!(user.is_premium);
        let paid = Update::parse(include_bytes!(
            "../../../tests/fixtures/updates/owner/successful_payment_usd.json"
        ))
        .unwrap();
        assert_eq!(
            paid.payload.successful_payment,
            Some(Price {
                currency: Some("USD".into()),
                total_amount: Some(1999)
            })
        );
    }
}
