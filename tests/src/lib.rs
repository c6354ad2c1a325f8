//! Test harness: runs both Workers in one real local `wrangler dev` (workerd, local Queue,
//! SQLite-backed D1) with its own temporary state, and a fake Telegram Bot API on 127.0.0.1.
//! Every process it starts is stopped when the [`Stack`] is dropped, also when a test fails.
//! The dashboard runs beside a stack ([`dashboard`]) against a fake Analytics Engine SQL API
//! ([`fake_ae_sql`]) that runs the SQL it receives on ClickHouse (chDB), held to Analytics
//! Engine's documented dialect.

pub mod dashboard;
pub mod fake_ae_sql;
pub mod fake_bot_api;
pub mod owner;
pub mod process;
pub mod stack;
pub mod updates;

pub use fake_bot_api::{ApiCall, FakeBotApi};
pub use stack::{SecondBot, Stack, StackOptions};

use std::time::{Duration, Instant};

/// Polls `probe` every 250 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, probe)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `probe` every 250 ms until it returns `Some`; `None` once `timeout` has passed.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An HTTP client that returns every status as an answer (not an error), with a global
/// `timeout` per request.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// The wall clock in milliseconds since the epoch, as the Workers read it.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Reads a fixture from `tests/fixtures/`.
pub fn fixture(path: &str) -> String {
    let full = repo_root().join("tests/fixtures").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}
