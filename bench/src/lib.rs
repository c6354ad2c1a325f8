//! What `bench`, `soak` and `economy` share: posting webhook updates at a given concurrency,
//! and the traffic simulator.

pub mod economy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::stack::TEST_SECRET;

/// One answered (or failed) request: HTTP status (0 when no answer) and latency in ms.
pub type Outcome = (u16, f64);

/// `body` with its `update_id` replaced by `update_id` (bodies that are not JSON objects are
/// returned as they are).
pub fn with_update_id(body: &str, update_id: u64) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("update_id".into(), update_id.into());
            serde_json::Value::Object(map).to_string()
        }
        _ => body.to_string(),
    }
}

/// Posts `requests` updates to `url` from `concurrency` threads, each thread taking every
/// `concurrency`-th request; request `i` sends `bodies[i % bodies.len()]` with `update_id`
/// 1,000,000 + `i`, so every request is a distinct update (Telegram's redeliveries of one
/// update are stored once). The bodies are prepared before the clock starts. Returns every
/// outcome and the wall time.
pub fn post_updates(
    url: &str,
    bodies: &Arc<Vec<String>>,
    requests: usize,
    concurrency: usize,
) -> (Vec<Outcome>, Duration) {
    let prepared: Arc<Vec<String>> = Arc::new(
        (0..requests)
            .map(|i| with_update_id(&bodies[i % bodies.len()], 1_000_000 + i as u64))
            .collect(),
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let started = Instant::now();
    let threads: Vec<_> = (0..concurrency.max(1))
        .map(|t| {
            let (agent, url, bodies) = (agent.clone(), url.to_string(), prepared.clone());
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in (t..requests).step_by(concurrency.max(1)) {
                    let body = &bodies[i];
                    let start = Instant::now();
                    let status = agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET)
                        .send(body.as_bytes())
                        .map(|mut r| {
                            let _ = r.body_mut().read_to_vec();
                            r.status().as_u16()
                        })
                        .unwrap_or(0);
                    outcomes.push((status, start.elapsed().as_secs_f64() * 1000.0));
                }
                outcomes
            })
        })
        .collect();
    let outcomes = threads
        .into_iter()
        .flat_map(|t| t.join().expect("load thread"))
        .collect();
    (outcomes, started.elapsed())
}

/// The number after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether `--name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The `q` quantile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
