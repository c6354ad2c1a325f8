//! Sparse, bursty traffic with the default coalescing window, in real local workerd: a small
//! bot's requests arrive seconds apart, and their events still share queue messages.

use std::time::{Duration, Instant};

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{Stack, StackOptions};
use serde_json::json;

#[test]
fn sparse_bursty_traffic_shares_messages_and_loses_nothing() {
    // An empty value means unset: the library's default window.
    let stack = Stack::start(StackOptions {
        extra_vars: vec![("ANALYTICS_COALESCE_MS".into(), String::new())],
        ..StackOptions::default()
    });
    // 30 updates: 6 bursts of 5, a second apart within a burst, 8 s between bursts (~64 s).
    let started = Instant::now();
    let mut update_id = 500_000;
    for burst in 0..6 {
        for _ in 0..5 {
            update_id += 1;
            let body = json!({"update_id": update_id, "message": {"message_id": update_id,
                "from": {"id": 42 + burst}, "chat": {"id": 42 + burst, "type": "private"},
                "date": 1764000000, "text": "/ping"}})
            .to_string();
            let (status, reply) = stack.post_update(&body, Some(TEST_SECRET));
            assert_eq!(status, 200, "{reply}");
            std::thread::sleep(Duration::from_secs(1));
        }
        std::thread::sleep(Duration::from_secs(8));
    }
    println!("sparse: 30 updates posted in {:.0?}", started.elapsed());
    // Each /ping update yields 3 events (update, command, handler): 90 in all.
    let stored = stack.wait_count(
        "all 90 events in the local Analytics Engine table",
        "SELECT count(*) FROM analytics_points_local",
        90,
    );
    std::thread::sleep(Duration::from_secs(3)); // a late duplicate would show itself
    assert_eq!(
        stack.d1_count("SELECT count(*) FROM analytics_points_local"),
        90
    );
    assert_eq!(
        stack.d1_count("SELECT count(DISTINCT blob7) FROM analytics_points_local"),
        stored,
        "no event stored twice"
    );
    let row = &stack.d1("SELECT count(*) AS messages, SUM(event_count) AS events, \
         SUM(dropped_send_failed + dropped_oversize + dropped_buffer_full + dropped_cancelled) AS dropped \
         FROM processed_envelopes")[0];
    let (messages, events) = (
        row["messages"].as_i64().unwrap(),
        row["events"].as_i64().unwrap(),
    );
    assert_eq!(events, 90);
    assert_eq!(row["dropped"].as_i64(), Some(0));
    let per_message = events as f64 / messages as f64;
    println!("sparse: {events} events in {messages} queue messages ({per_message:.1} per message)");
    assert!(per_message >= 5.0, "{per_message:.1} events per message");
}
