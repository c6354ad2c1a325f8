//! Telegram Bot API updates of one user in a private chat with a bot, as Telegram sends them to a
//! webhook: messages, commands with their entity, button presses, membership changes, checkout,
//! payments and refunds. The owner-pages pipeline test and `make demo` build their traffic here.

use serde_json::{json, Value};

/// The bot the user talks to (the `user` of membership changes, the author of its messages).
#[derive(Debug, Clone, Copy)]
pub struct BotIdentity<'a> {
    /// The bot's user id.
    pub id: i64,
    /// Its display name.
    pub first_name: &'a str,
    /// Its `@username`, without the `@`.
    pub username: &'a str,
}

/// One user's private chat with a bot: who the user is, as `from` shows it.
#[derive(Debug, Clone, Copy)]
pub struct PrivateChat<'a> {
    /// The user's id (also the private chat's id).
    pub user_id: i64,
    /// The user's first name.
    pub first_name: &'a str,
    /// `language_code`, when the client sends one.
    pub lang: Option<&'a str>,
    /// Telegram Premium: `is_premium` is sent only when true, as Telegram does.
    pub premium: bool,
    /// The bot.
    pub bot: BotIdentity<'a>,
}

/// A successful payment or a refund: what `successful_payment` / `refunded_payment` carry.
#[derive(Debug, Clone, Copy)]
pub struct Charge<'a> {
    /// Three-letter currency code (`XTR` for Telegram Stars).
    pub currency: &'a str,
    /// Total in the currency's smallest units.
    pub amount: i64,
    /// `telegram_payment_charge_id`.
    pub telegram_id: &'a str,
    /// `provider_payment_charge_id` (empty for Stars).
    pub provider_id: &'a str,
}

impl PrivateChat<'_> {
    fn from(&self) -> Value {
        let mut from = json!({"id": self.user_id, "is_bot": false, "first_name": self.first_name});
        if let Some(lang) = self.lang {
            from["language_code"] = json!(lang);
        }
        if self.premium {
            from["is_premium"] = json!(true);
        }
        from
    }

    fn chat(&self) -> Value {
        json!({"id": self.user_id, "type": "private", "first_name": self.first_name})
    }

    fn bot(&self) -> Value {
        json!({"id": self.bot.id, "is_bot": true, "first_name": self.bot.first_name,
               "username": self.bot.username})
    }

    /// A message from the user at `date` (seconds) with `fields` (e.g. `{"text": …}`) added.
    pub fn message(&self, update_id: i64, message_id: i64, date: i64, fields: Value) -> Value {
        let mut message = json!({"message_id": message_id, "from": self.from(),
                                 "chat": self.chat(), "date": date});
        if let (Value::Object(message), Value::Object(extra)) = (&mut message, fields) {
            message.extend(extra);
        }
        json!({"update_id": update_id, "message": message})
    }

    /// A command message (`/start ref`, `/help`): the text with its `bot_command` entity, whose
    /// length counts UTF-16 code units as Telegram's do.
    pub fn command(&self, update_id: i64, message_id: i64, date: i64, text: &str) -> Value {
        let length = text
            .split(' ')
            .next()
            .unwrap_or_default()
            .encode_utf16()
            .count();
        self.message(
            update_id,
            message_id,
            date,
            json!({"text": text,
                   "entities": [{"offset": 0, "length": length, "type": "bot_command"}]}),
        )
    }

    /// A press on a button of the bot's message `message_id - 1` with callback `data`.
    pub fn button(&self, update_id: i64, message_id: i64, date: i64, data: &str) -> Value {
        json!({"update_id": update_id, "callback_query": {
            "id": format!("{}{}", self.user_id, message_id),
            "from": self.from(),
            "message": {"message_id": message_id - 1, "from": self.bot(), "chat": self.chat(),
                        "date": date - 5, "text": "Choose:"},
            "chat_instance": format!("-{}", 8_420_000_000_000_000_000u64 + self.user_id.unsigned_abs()),
            "data": data,
        }})
    }

    /// The bot's membership in the chat changed from `old` to `new` (`member` → `kicked`: the
    /// user blocked the bot; back: unblocked).
    pub fn membership(&self, update_id: i64, date: i64, old: &str, new: &str) -> Value {
        let mut new_member = json!({"status": new, "user": self.bot()});
        if new == "kicked" {
            new_member["until_date"] = json!(0);
        }
        json!({"update_id": update_id, "my_chat_member": {
            "chat": self.chat(), "from": self.from(), "date": date,
            "old_chat_member": {"status": old, "user": self.bot()},
            "new_chat_member": new_member,
        }})
    }

    /// A pre-checkout query (`id`) for `amount` in `currency`.
    pub fn pre_checkout(&self, update_id: i64, id: &str, currency: &str, amount: i64) -> Value {
        json!({"update_id": update_id, "pre_checkout_query": {
            "id": id,
            "from": self.from(),
            "currency": currency,
            "total_amount": amount,
            "invoice_payload": "premium_month",
        }})
    }

    /// A message carrying a successful payment.
    pub fn payment(&self, update_id: i64, message_id: i64, date: i64, charge: &Charge) -> Value {
        self.message(
            update_id,
            message_id,
            date,
            json!({"successful_payment": {
                "currency": charge.currency,
                "total_amount": charge.amount,
                "invoice_payload": "premium_month",
                "telegram_payment_charge_id": charge.telegram_id,
                "provider_payment_charge_id": charge.provider_id,
            }}),
        )
    }

    /// A message carrying a refund of an earlier payment.
    pub fn refund(&self, update_id: i64, message_id: i64, date: i64, charge: &Charge) -> Value {
        self.message(
            update_id,
            message_id,
            date,
            json!({"refunded_payment": {
                "currency": charge.currency,
                "total_amount": charge.amount,
                "invoice_payload": "premium_month",
                "telegram_payment_charge_id": charge.telegram_id,
            }}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: BotIdentity = BotIdentity {
        id: 7_000_000_001,
        first_name: "Bot",
        username: "test_bot",
    };

    #[test]
    fn from_carries_language_and_premium_only_when_set() {
        let plain = PrivateChat {
            user_id: 5,
            first_name: "A",
            lang: None,
            premium: false,
            bot: BOT,
        };
        let update = plain.message(1, 2, 3, json!({"text": "hi"}));
        let from = &update["message"]["from"];
        assert!(from.get("language_code").is_none() && from.get("is_premium").is_none());
        assert_eq!(update["message"]["text"], "hi");
        assert_eq!(update["message"]["chat"]["type"], "private");
        let rich = PrivateChat {
            lang: Some("de"),
            premium: true,
            ..plain
        };
        let update = rich.message(1, 2, 3, json!({}));
        assert_eq!(update["message"]["from"]["language_code"], "de");
        assert_eq!(update["message"]["from"]["is_premium"], true);
    }

    #[test]
    fn command_entities_count_utf16_units() {
        let chat = PrivateChat {
            user_id: 5,
            first_name: "A",
            lang: None,
            premium: false,
            bot: BOT,
        };
        let update = chat.command(1, 2, 3, "/start ref_x");
        assert_eq!(update["message"]["entities"][0]["length"], 6);
        let update = chat.command(1, 2, 3, "/😀 x");
        assert_eq!(update["message"]["entities"][0]["length"], 3);
        let kicked = chat.membership(1, 3, "member", "kicked");
        assert_eq!(kicked["my_chat_member"]["new_chat_member"]["until_date"], 0);
        assert_eq!(
            kicked["my_chat_member"]["old_chat_member"]["user"]["username"],
            "test_bot"
        );
    }
}
