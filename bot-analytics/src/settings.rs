//! What the library reads from the Worker's environment (vars and secrets), once per isolate:
//! bindings and secrets do not change while an isolate lives, and a new deployment starts new
//! isolates.

use std::cell::OnceCell;
use std::rc::Rc;

use analytics_core::delivery;
use analytics_core::privacy::IdPolicy;
use analytics_core::Source;
use worker::{console_error, console_warn, Env};

/// The queue binding events go to, unless [`crate::Analytics::with_queue`] names another.
pub const DEFAULT_QUEUE_BINDING: &str = "ANALYTICS_QUEUE";

/// Reads a var or secret as text; unset or empty is `None`.
pub(crate) fn text(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// How analytics behave, from the `ANALYTICS` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Track, and send after the response (the default).
    On,
    /// Track nothing, send nothing: every tracker is a no-op.
    Off,
    /// Send before answering (only to measure what sending after the response saves).
    Await,
}

impl Mode {
    /// Parses the variable; anything unknown means on.
    pub fn parse(value: Option<&str>) -> Mode {
        match value.map(str::trim) {
            Some("off") | Some("false") | Some("0") => Mode::Off,
            Some("await") => Mode::Await,
            _ => Mode::On,
        }
    }
}

/// Dev-only fault switches (unset in production; tests set them in `.dev.vars`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// `DEV_FAULT_QUEUE_SEND_FAILURES`: this many queue send attempts per isolate fail.
    pub send_failures: Option<u32>,
    /// `DEV_FAULT_QUEUE_SEND_FAIL_RATE`: each send attempt fails with this probability (0–1).
    pub send_fail_rate: Option<f64>,
    /// `DEV_FAULT_QUEUE_SEND_DELAY_MS`: each queue send waits this long first (the benchmark
    /// models a remote queue's latency with it).
    pub send_delay_ms: Option<f64>,
    /// `DEV_QUEUE_SEND_NOOP=1`: sends succeed at once without reaching the queue (the benchmark
    /// separates the local queue broker's cost from the bot's own with it).
    pub send_noop: bool,
    /// `DEV_LOG_SENDS=1`: log every successful send with its event count (the soak reads it to
    /// know what was emitted). Off by default: a log line per send costs more CPU than the whole
    /// analytics path.
    pub log_sends: bool,
}

/// The library's settings for one isolate.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `ANALYTICS`.
    pub mode: Mode,
    /// `BOT_NAME` (default `telegram-bot`) and `RELEASE` (default the crate version).
    pub source: Source,
    /// `ANALYTICS_COALESCE_MS` (default [`delivery::DEFAULT_WINDOW_MS`]; 0 = one message per
    /// request). `await` mode sends at once.
    pub window_ms: f64,
    /// What user and chat ids become: `ANALYTICS_ID_KEY` (pseudonyms; a key shorter than 32
    /// characters, or the published dev key outside local dev, is refused and ids are left out,
    /// with an error logged once), `ANALYTICS_RAW_IDS=1` (raw, an explicit opt-in), or neither
    /// (left out; a warning is logged once).
    pub ids: IdPolicy,
    /// Dev-only fault switches.
    pub faults: Faults,
}

thread_local! {
    static SETTINGS: OnceCell<Rc<Settings>> = const { OnceCell::new() };
}

impl Settings {
    /// The isolate's settings.
    pub fn get(env: &Env) -> Rc<Settings> {
        SETTINGS.with(|s| s.get_or_init(|| Rc::new(Settings::from_env(env))).clone())
    }

    fn from_env(env: &Env) -> Settings {
        let number = |name: &str| text(env, name).and_then(|v| v.trim().parse::<f64>().ok());
        let mode = Mode::parse(text(env, "ANALYTICS").as_deref());
        let window = delivery::window_from_setting(text(env, "ANALYTICS_COALESCE_MS").as_deref());
        // `LOCAL_DEV=1` is set only in `.dev.vars` (local dev): it lets the published dev key
        // of `.dev.vars.example` through. Read once per isolate, so a refusal is logged once.
        let (ids, refused) = IdPolicy::decide(
            text(env, "ANALYTICS_ID_KEY").as_deref(),
            text(env, "ANALYTICS_RAW_IDS").as_deref(),
            text(env, "LOCAL_DEV").as_deref() == Some("1"),
        );
        if let Some(refusal) = refused.filter(|_| mode != Mode::Off) {
            console_error!("analytics: {refusal}");
        } else if ids == IdPolicy::Omitted && mode != Mode::Off {
            console_warn!(
                "analytics: no ANALYTICS_ID_KEY secret (and no ANALYTICS_RAW_IDS=1): user and chat ids are left out of every event"
            );
        }
        Settings {
            mode,
            source: Source {
                worker: text(env, "BOT_NAME").unwrap_or_else(|| "telegram-bot".into()),
                release: text(env, "RELEASE").unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
            },
            window_ms: if mode == Mode::Await { 0.0 } else { window },
            ids,
            faults: Faults {
                send_failures: number("DEV_FAULT_QUEUE_SEND_FAILURES").map(|n| n as u32),
                send_fail_rate: number("DEV_FAULT_QUEUE_SEND_FAIL_RATE"),
                send_delay_ms: number("DEV_FAULT_QUEUE_SEND_DELAY_MS"),
                send_noop: text(env, "DEV_QUEUE_SEND_NOOP").as_deref() == Some("1"),
                log_sends: text(env, "DEV_LOG_SENDS").as_deref() == Some("1"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parsing() {
        assert_eq!(Mode::parse(None), Mode::On);
        assert_eq!(Mode::parse(Some("off")), Mode::Off);
        assert_eq!(Mode::parse(Some(" await ")), Mode::Await);
        assert_eq!(Mode::parse(Some("yes")), Mode::On);
    }
}
