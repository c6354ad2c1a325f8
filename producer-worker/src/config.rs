//! The bot's configuration, read once per isolate from vars and secrets (see the
//! README's configuration table and `wrangler.producer.toml`).

use std::rc::Rc;

use shared::Source;
use worker::Env;

use crate::analytics::{self, Mode};
use crate::bot_api;

/// What the bot reads from its environment (vars and secrets).
pub struct Config {
    /// `TELEGRAM_WEBHOOK_SECRET`.
    pub secret: String,
    /// `BOT_USERNAME`.
    pub bot_username: String,
    /// `ANALYTICS`.
    pub mode: Mode,
    /// `BOT_NAME` and `RELEASE`.
    pub source: Source,
    /// `TELEGRAM_API_BASE` and `TELEGRAM_BOT_TOKEN`.
    pub api: bot_api::BotApi,
    /// `ANALYTICS_COALESCE_MS` and the dev-only switches.
    pub delivery: analytics::Delivery,
}

thread_local! {
    /// The configuration, read from `env` once per isolate (bindings and secrets do not change
    /// while an isolate lives; a new deployment starts new isolates).
    static CONFIG: std::cell::OnceCell<Rc<Config>> = const { std::cell::OnceCell::new() };
}

impl Config {
    /// The isolate's configuration.
    pub fn get(env: &Env) -> Rc<Config> {
        CONFIG.with(|c| c.get_or_init(|| Rc::new(Config::from_env(env))).clone())
    }

    fn from_env(env: &Env) -> Config {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let secret = |name: &str| {
            env.secret(name)
                .ok()
                .map(|v| v.to_string())
                .filter(|v| !v.is_empty())
        };
        Config {
            secret: secret("TELEGRAM_WEBHOOK_SECRET").unwrap_or_default(),
            bot_username: var("BOT_USERNAME").unwrap_or_default(),
            mode: Mode::parse(var("ANALYTICS").as_deref()),
            source: Source {
                worker: var("BOT_NAME").unwrap_or_else(|| "telegram-bot".into()),
                release: var("RELEASE").unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
            },
            api: bot_api::BotApi {
                base: var("TELEGRAM_API_BASE").unwrap_or_else(|| "https://api.telegram.org".into()),
                token: secret("TELEGRAM_BOT_TOKEN"),
            },
            delivery: analytics::Delivery {
                coalesce_ms: var("ANALYTICS_COALESCE_MS")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0),
                faults: analytics::Faults {
                    send_failures: var("DEV_FAULT_QUEUE_SEND_FAILURES")
                        .and_then(|v| v.parse().ok()),
                    send_delay_ms: var("DEV_FAULT_QUEUE_SEND_DELAY_MS")
                        .and_then(|v| v.parse().ok()),
                    log_sends: var("DEV_LOG_SENDS").as_deref() == Some("1"),
                },
            },
        }
    }
}
