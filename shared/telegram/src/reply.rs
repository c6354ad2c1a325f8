//! What a bot answers: at most one Bot API method in the webhook response body (zero extra
//! round trips; Telegram runs it, but no result comes back), and follow-up calls made after the
//! response, inside `wait_until`.

use serde_json::{json, Map, Value};

/// A Bot API call: the method and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// Bot API method name, e.g. `sendMessage`.
    pub method: String,
    /// Its JSON parameters (an object).
    pub params: Value,
}

impl ApiCall {
    /// A call of `method` with `params` (anything but an object is replaced by `{}`).
    pub fn new(method: impl Into<String>, params: Value) -> ApiCall {
        let params = if params.is_object() {
            params
        } else {
            Value::Object(Map::new())
        };
        ApiCall {
            method: method.into(),
            params,
        }
    }

    /// The call as a webhook response body: `{"method": …, …params}`.
    pub fn to_webhook_body(&self) -> String {
        let mut body = self.params.clone();
        if let Value::Object(map) = &mut body {
            map.insert("method".into(), Value::String(self.method.clone()));
        }
        body.to_string()
    }
}

/// What the bot does with one update: the answer in the response body, and follow-ups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Sent back in the webhook response body (at most one method).
    pub respond: Option<ApiCall>,
    /// Called after the response, inside `wait_until`, in order.
    pub follow_ups: Vec<ApiCall>,
}

impl Reply {
    /// No answer: an empty 200.
    pub fn none() -> Reply {
        Reply::default()
    }

    /// Answers with `method(params)` in the response body.
    pub fn call(method: impl Into<String>, params: Value) -> Reply {
        Reply {
            respond: Some(ApiCall::new(method, params)),
            follow_ups: Vec::new(),
        }
    }

    /// Answers with `sendMessage` to `chat_id`.
    pub fn text(chat_id: i64, text: impl Into<String>) -> Reply {
        Reply::call(
            "sendMessage",
            json!({"chat_id": chat_id, "text": text.into()}),
        )
    }

    /// Answers a button press (`answerCallbackQuery`): the button's spinner stops.
    pub fn answer_callback(callback_query_id: impl Into<String>) -> Reply {
        Reply::call(
            "answerCallbackQuery",
            json!({"callback_query_id": callback_query_id.into()}),
        )
    }

    /// Adds a parameter to the answer (e.g. `reply_markup`); no effect without an answer.
    pub fn with(mut self, key: &str, value: Value) -> Reply {
        if let Some(Value::Object(map)) = self.respond.as_mut().map(|c| &mut c.params) {
            map.insert(key.to_string(), value);
        }
        self
    }

    /// Adds a follow-up call, made after the response.
    pub fn then(mut self, method: impl Into<String>, params: Value) -> Reply {
        self.follow_ups.push(ApiCall::new(method, params));
        self
    }

    /// The response body: the answer's JSON, or empty.
    pub fn body(&self) -> String {
        self.respond
            .as_ref()
            .map(ApiCall::to_webhook_body)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_rides_in_the_body_and_follow_ups_wait() {
        let reply = Reply::text(42, "hi")
            .with("reply_markup", json!({"inline_keyboard": []}))
            .then("editMessageText", json!({"chat_id": 42, "message_id": 5}));
        let body: Value = serde_json::from_str(&reply.body()).unwrap();
        assert_eq!(body["method"], "sendMessage");
        assert_eq!(body["chat_id"], 42);
        assert_eq!(body["reply_markup"]["inline_keyboard"], json!([]));
        assert_eq!(reply.follow_ups.len(), 1);
        assert_eq!(reply.follow_ups[0].method, "editMessageText");
        assert_eq!(Reply::none().body(), "");
        assert_eq!(ApiCall::new("getMe", json!(3)).params, json!({}));
    }
}
