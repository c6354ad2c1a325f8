//! The Analytics Engine columns the dashboard reads. Their meanings come from the column map
//! (`analytics_core::datapoint::{BLOBS, DOUBLES}`, documented in `docs/analytics-engine.md`); the tests
//! below fail when a column this module names starts holding something else, so a column change
//! is one edit here (every query in [`crate::queries`] uses these names).
//!
//! User columns hold whatever identifies a user (the raw id today, a keyed-hash pseudonym
//! later): the dashboard only counts distinct values and never interprets them.

/// The dataset (the SQL API's table; the local mirror has a view of the same name).
pub const DATASET: &str = "telegram_bot_events";

/// The bot: the sending Worker's name (`BOT_NAME`).
pub const BOT: &str = "blob1";
/// Event kind: update, command, callback, performance, error, custom.
pub const KIND: &str = "blob3";
/// Event name: update kind, command, metric, error kind, …
pub const NAME: &str = "blob4";
/// The user, empty when none (counted for daily active users).
pub const USER: &str = "blob5";
/// Property `command`: on handler timings, the command the handler ran.
pub const COMMAND: &str = "blob13";
/// Property `source`: the /start deep-link source (on the /start command event).
pub const SOURCE: &str = "blob16";
/// Duration in ms, 0 when none.
pub const DURATION_MS: &str = "double2";
/// Event time (after clock-skew correction), ms since the epoch.
pub const EVENT_TIME_MS: &str = "double3";
/// Telegram → bot delivery lag of an update, ms (meaningful where [`HAS_TELEGRAM_LAG`] is 1).
pub const TELEGRAM_LAG_MS: &str = "double9";
/// 1 when [`TELEGRAM_LAG_MS`] holds a delivery lag, 0 otherwise (other events, undated update
/// kinds, points written before the column existed).
pub const HAS_TELEGRAM_LAG: &str = "double10";

/// Value of [`KIND`] for received updates.
pub const KIND_UPDATE: &str = "update";
/// Value of [`KIND`] for commands.
pub const KIND_COMMAND: &str = "command";
/// Value of [`KIND`] for button presses.
pub const KIND_CALLBACK: &str = "callback";
/// Value of [`KIND`] for timings.
pub const KIND_PERFORMANCE: &str = "performance";
/// Value of [`KIND`] for errors.
pub const KIND_ERROR: &str = "error";
/// Value of [`KIND`] for user lifecycle events (blocked, unblocked, not understood).
pub const KIND_USER: &str = "user";
/// Value of [`NAME`] for a message the bot did not understand (kind [`KIND_USER`]).
pub const NAME_NOT_UNDERSTOOD: &str = analytics_core::audience::NOT_UNDERSTOOD;
/// Value of [`NAME`] for a received message (kind [`KIND_UPDATE`]).
pub const NAME_MESSAGE: &str = "message";
/// Value of [`NAME`] for the handler's timing (its [`COMMAND`] names the command).
pub const NAME_HANDLER: &str = "handler";

/// The event kinds in the order the charts list them.
pub const KINDS: [&str; 8] = [
    KIND_UPDATE,
    KIND_COMMAND,
    KIND_CALLBACK,
    KIND_PERFORMANCE,
    KIND_ERROR,
    "custom",
    KIND_USER,
    "payment",
];

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::datapoint::{BLOBS, DOUBLES};
    use analytics_core::EventKind;

    fn blob_holds(column: &str) -> &'static str {
        let n: usize = column.trim_start_matches("blob").parse().unwrap();
        BLOBS[n - 1].holds
    }

    fn double_holds(column: &str) -> &'static str {
        let n: usize = column.trim_start_matches("double").parse().unwrap();
        DOUBLES[n - 1].holds
    }

    #[test]
    fn the_columns_mean_what_the_column_map_says() {
        assert!(blob_holds(BOT).starts_with("bot"));
        assert!(blob_holds(KIND).starts_with("event kind"));
        assert!(blob_holds(NAME).starts_with("event name"));
        assert!(blob_holds(USER).contains("user"));
        assert!(blob_holds(COMMAND).contains("`command`"));
        assert!(blob_holds(SOURCE).contains("`source`"));
        assert!(double_holds(DURATION_MS).starts_with("duration in ms"));
        assert!(double_holds(EVENT_TIME_MS).starts_with("event time"));
    }

    #[test]
    fn the_kinds_are_the_pipelines_kinds() {
        let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(all, KINDS);
    }

    #[test]
    fn the_dataset_is_the_one_the_consumer_writes() {
        let config = include_str!("../../wrangler.consumer.toml");
        assert!(
            config.contains(&format!("dataset = \"{DATASET}\"")),
            "wrangler.consumer.toml writes another dataset"
        );
    }
}
