//! The bot itself: a small, real example you replace with your own. Pure: given an update it
//! decides the reply (sent in the webhook response, no extra round trip) and the follow-up Bot
//! API calls (made after the response, inside `wait_until`).

use serde_json::{json, Value};
use shared::telegram::{Command, Update};

/// A Bot API call: the method and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// Bot API method name, e.g. `editMessageText`.
    pub method: &'static str,
    /// Its JSON parameters.
    pub params: Value,
}

impl ApiCall {
    /// The call as a webhook response body: `{"method": …, …params}`.
    pub fn as_webhook_response(&self) -> Value {
        let mut body = self.params.clone();
        if let Value::Object(map) = &mut body {
            map.insert("method".into(), Value::String(self.method.into()));
        }
        body
    }
}

/// What the bot does with one update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Sent back in the webhook response body (at most one method).
    pub respond: Option<ApiCall>,
    /// Called after the response, inside `wait_until`.
    pub follow_ups: Vec<ApiCall>,
    /// The command handled, if any (`unknown` for commands the bot does not have).
    pub command: Option<String>,
    /// Properties of the command event (the `/start` deep-link payload as `source`, …).
    pub command_properties: Vec<(String, String)>,
    /// The callback data of a pressed button, if any.
    pub callback: Option<String>,
}

const HELP: &str = "I am an example bot with analytics.\n\
/start - welcome\n/help - this help\n/ping - check that I am alive\n/menu - a menu with buttons";

fn menu_keyboard() -> Value {
    json!({"inline_keyboard": [[
        {"text": "📊 Stats", "callback_data": "menu:stats"},
        {"text": "ℹ️ About", "callback_data": "menu:about"}
    ]]})
}

fn send(chat_id: i64, text: &str) -> ApiCall {
    ApiCall {
        method: "sendMessage",
        params: json!({"chat_id": chat_id, "text": text}),
    }
}

/// Decides what to do with `update`; `bot_username` is the bot's @name (for `/cmd@Name`).
pub fn plan(update: &Update, bot_username: &str) -> Plan {
    match update.kind.as_str() {
        "message" | "business_message" => plan_message(update, bot_username),
        "callback_query" => plan_callback(update),
        _ => Plan::default(),
    }
}

fn plan_message(update: &Update, bot_username: &str) -> Plan {
    let (Some(text), Some(chat)) = (update.payload.text.as_deref(), update.chat()) else {
        return Plan::default();
    };
    let Some(command) = Command::parse(text) else {
        return Plan::default();
    };
    if !command.is_for(bot_username) {
        return Plan::default();
    }
    let mut plan = Plan::default();
    let (name, reply) = match command.name {
        "start" => {
            if !command.payload.is_empty() {
                plan.command_properties
                    .push(("source".into(), command.payload.to_string()));
            }
            ("start", send(chat.id, "Welcome! Try /menu."))
        }
        "help" => ("help", send(chat.id, HELP)),
        "ping" => ("ping", send(chat.id, "pong")),
        "menu" => {
            let mut call = send(chat.id, "Choose:");
            call.params["reply_markup"] = menu_keyboard();
            ("menu", call)
        }
        other => {
            plan.command_properties
                .push(("attempted".into(), other.to_string()));
            ("unknown", send(chat.id, HELP))
        }
    };
    plan.command = Some(name.into());
    plan.respond = Some(reply);
    plan
}

fn plan_callback(update: &Update) -> Plan {
    let p = &update.payload;
    let Some(id) = &p.id else {
        return Plan::default();
    };
    let data = p.data.clone().unwrap_or_default();
    let mut plan = Plan {
        callback: Some(data.clone()),
        respond: Some(ApiCall {
            method: "answerCallbackQuery",
            params: json!({"callback_query_id": id.to_string()}),
        }),
        ..Plan::default()
    };
    let message = p.message.as_deref();
    if let (Some(chat), Some(message_id)) = (
        message.and_then(|m| m.chat.as_ref()),
        message.and_then(|m| m.message_id),
    ) {
        let text = match data.as_str() {
            "menu:stats" => "Stats: every update of this bot is counted in Analytics Engine.",
            "menu:about" => "About: a Rust Telegram bot on Cloudflare Workers.",
            _ => "That button is not known any more.",
        };
        plan.follow_ups.push(ApiCall {
            method: "editMessageText",
            params: json!({
                "chat_id": chat.id,
                "message_id": message_id,
                "text": text,
                "reply_markup": menu_keyboard(),
            }),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(json: &str) -> Update {
        Update::parse(json.as_bytes()).unwrap()
    }

    fn text_update(text: &str) -> Update {
        update(&format!(
            r#"{{"update_id":1,"message":{{"message_id":2,"from":{{"id":42}},"chat":{{"id":42,"type":"private"}},"text":{}}}}}"#,
            serde_json::to_string(text).unwrap()
        ))
    }

    #[test]
    fn start_replies_in_the_response_and_tracks_the_deep_link_source() {
        let plan = plan(&text_update("/start campaign_7"), "MyBot");
        assert_eq!(plan.command.as_deref(), Some("start"));
        assert_eq!(
            plan.command_properties,
            vec![("source".to_string(), "campaign_7".to_string())]
        );
        let body = plan.respond.unwrap().as_webhook_response();
        assert_eq!(body["method"], "sendMessage");
        assert_eq!(body["chat_id"], 42);
        assert!(plan.follow_ups.is_empty());
    }

    #[test]
    fn addressed_commands_and_unknown_commands() {
        assert_eq!(
            plan(&text_update("/ping@MyBot"), "mybot")
                .command
                .as_deref(),
            Some("ping")
        );
        assert_eq!(
            plan(&text_update("/ping@OtherBot"), "MyBot"),
            Plan::default()
        );
        let unknown = plan(&text_update("/frobnicate"), "MyBot");
        assert_eq!(unknown.command.as_deref(), Some("unknown"));
        assert_eq!(unknown.respond.unwrap().params["text"], HELP);
        assert_eq!(
            plan(&text_update("just chatting"), "MyBot"),
            Plan::default()
        );
    }

    #[test]
    fn menu_has_an_inline_keyboard() {
        let plan = plan(&text_update("/menu"), "MyBot");
        let body = plan.respond.unwrap().as_webhook_response();
        assert_eq!(
            body["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            "menu:stats"
        );
    }

    #[test]
    fn callback_is_answered_in_the_response_and_edited_after() {
        let plan = plan(
            &update(
                r#"{"update_id":3,"callback_query":{"id":"99","from":{"id":42},"message":{"message_id":5,"chat":{"id":42,"type":"private"}},"data":"menu:about"}}"#,
            ),
            "MyBot",
        );
        let body = plan.respond.unwrap().as_webhook_response();
        assert_eq!(body["method"], "answerCallbackQuery");
        assert_eq!(body["callback_query_id"], "99");
        assert_eq!(plan.callback.as_deref(), Some("menu:about"));
        assert_eq!(plan.follow_ups.len(), 1);
        assert_eq!(plan.follow_ups[0].method, "editMessageText");
        assert_eq!(plan.follow_ups[0].params["message_id"], 5);
    }
}
