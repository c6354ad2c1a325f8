//! Warming up a fresh isolate: the first run of each WebAssembly function pays for compiling it.

use analytics_core::delivery::Outbox;
use analytics_core::privacy::{IdPolicy, Pseudonyms};
use analytics_core::{samples, Tracker};
use telegram_policy::auto::{self, BotProfile};
use telegram_policy::reply::Reply;

const SAMPLE_UPDATE: &[u8] = br#"{"update_id":1,"message":{"message_id":1,"from":{"id":42},"chat":{"id":42,"type":"private"},"date":1,"text":"/start warm_up"}}"#;

/// Runs the pure parts of a webhook request once, with sample data and no I/O: parsing, the
/// automatic events, the pseudonyms, the encoding and packing, the reply. Call it from the
/// Worker's `#[event(start)]` so that compiling them happens while the isolate starts, not
/// while the first user waits (see `docs/benchmarks.md`, cold start).
pub fn warm_up() {
    let Ok(update) = telegram_policy::webhook::parse_update(SAMPLE_UPDATE) else {
        return;
    };
    let bot = BotProfile {
        username: "",
        commands: &[],
    };
    let tracker = Tracker::new(samples::source(), || 0.0, [1; 16]);
    tracker.set_request_key(analytics_core::ids::update_request_key(
        "warm-up",
        update.update_id,
    ));
    for event in auto::request_events(&update, &bot, 2_000.0, 1.0, None, auto::Answered::default())
    {
        tracker.record(event);
    }
    let (mut events, dropped) = tracker.take_events();
    Pseudonyms::new(IdPolicy::Pseudonymous(b"warm-up".to_vec())).apply_to(&mut events);
    let _ = Outbox::new(&samples::source(), 0.0).add(0.0, 0.0, events, dropped);
    let _ = analytics_core::scrub::scrub("warm up +1 555 0100");
    let _ = Reply::text(42, "warm").body();
}
