//! The whole webhook request path after the headers, as the Telegram layer runs it: parsing the
//! body (`telegram_policy::webhook::parse_update`) and the 400 text built from the parser's error, then,
//! for an update, the automatic events and their encoding. Nothing may panic (a panic in a
//! Worker resets its instance), and a refusal's reason stays short.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telegram_policy::auto::{self, BotProfile};
use telegram_policy::webhook::{parse_update, Rejection, MAX_REASON_DETAIL_BYTES};

fuzz_target!(|data: &[u8]| {
    match parse_update(data) {
        Ok(update) => {
            let bot = BotProfile {
                username: "MyBot",
                commands: &["start", "help"],
            };
            let command = auto::command_of(&update, &bot);
            let tracker = analytics_core::Tracker::new(analytics_core::samples::source(), || 0.0, [7; 16]);
            // A fixed receipt time: the update's own (fuzzed) date makes the delivery lag.
            for event in auto::update_events(&update, command.as_ref(), 1_764_000_000_000.0) {
                tracker.record(event);
            }
            let (events, _) = tracker.take_events();
            for event in &events {
                let _ = analytics_core::wire::encode_event(event);
            }
        }
        Err(rejection) => {
            let reason = rejection.reason();
            if let Rejection::BadRequest(_) = rejection {
                assert!(reason.len() <= MAX_REASON_DETAIL_BYTES + 64, "{} bytes", reason.len());
            }
            let _ = (rejection.status(), rejection.code());
        }
    }
});
