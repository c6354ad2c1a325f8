//! `make bench` (callgrind part): the instruction count of one update's analytics path, natively
//! — what `bot-analytics` does for a `/start` update: the tracker, the automatic events, and the
//! hand-over to the isolate's outbox up to the encoded queue message (one update per flush, the
//! small-bot case). Run under `valgrind --tool=callgrind` with N updates and with 0; the
//! difference divided by N is the count per update. Counts instructions, not time, so the
//! machine's noise does not move it.

use analytics_core::delivery::{Outbox, Role};
use analytics_core::ids::update_request_key;
use analytics_core::{samples, DropCounts, Tracker};
use telegram_policy::auto::{self, BotProfile};
use telegram_policy::update::Update;

fn clock() -> f64 {
    1_764_000_000_000.0
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let body =
        std::fs::read(e2e_tests::repo_root().join("tests/fixtures/updates/message_start.json"))
            .expect("fixture");
    let update = Update::parse(&body).expect("a valid update");
    let profile = BotProfile {
        username: "MyAnalyticsBot",
        commands: &["start", "help", "ping", "menu", "members"],
    };
    let source = samples::source();
    let mut outbox = Outbox::new(&source, 20_000.0);
    let mut bytes = 0;
    for i in 0..n {
        let tracker = Tracker::new(source.clone(), clock as fn() -> f64, [i as u8; 16]);
        tracker.set_request_key(update_request_key("telegram-bot:123", update.update_id));
        tracker.set_context(update.user_id(), update.chat().map(|c| c.id));
        for event in auto::request_events(
            &update,
            &profile,
            clock(),
            1.5,
            None,
            auto::Answered::default(),
        ) {
            tracker.record(event);
        }
        let (events, dropped) = tracker.take_events();
        let handover = outbox.add(clock(), clock(), events, dropped);
        let Role::Flusher { lease, .. } = handover.role else {
            panic!("one update per flush")
        };
        for message in outbox.take(lease, clock()) {
            bytes += message.bytes.len();
            outbox.sent(message.ticket, analytics_core::delivery::SendOutcome::Sent);
        }
    }
    assert_eq!(outbox.carried(), DropCounts::default());
    println!("{n} updates, {bytes} bytes");
}
