//! What `bench`, `soak`, `dashboard` and `economy` share: posting webhook updates at a given
//! concurrency, command-line arguments, rewriting a marked block of a doc, and the traffic
//! simulator.

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

/// The HTTP client the harnesses post updates with: every status is an answer, 30 s timeout.
pub fn agent() -> ureq::Agent {
    e2e_tests::http_agent(Duration::from_secs(30))
}

/// Posts one update with the test stack's secret; returns (status, 0 when no answer; latency
/// in ms; when it was sent).
pub fn post_one(agent: &ureq::Agent, url: &str, body: &str) -> (u16, f64, Instant) {
    let start = Instant::now();
    let status = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET)
        .send(body.as_bytes())
        .map(|mut r| {
            let _ = r.body_mut().read_to_vec();
            r.status().as_u16()
        })
        .unwrap_or(0);
    (status, start.elapsed().as_secs_f64() * 1000.0, start)
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
    let agent = agent();
    let started = Instant::now();
    let threads: Vec<_> = (0..concurrency.max(1))
        .map(|t| {
            let (agent, url, bodies) = (agent.clone(), url.to_string(), prepared.clone());
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in (t..requests).step_by(concurrency.max(1)) {
                    let (status, ms, _) = post_one(&agent, &url, &bodies[i]);
                    outcomes.push((status, ms));
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

/// The word after `--name` on the command line, if any.
pub fn arg_str(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// The number after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    arg_str(name)
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

/// `doc` with the text between its `<!-- name:start -->` and `<!-- name:end -->` markers
/// replaced by `body` (the start marker kept, on a line of its own); an error when the markers
/// are missing or out of order.
pub fn replace_block(doc: &str, name: &str, body: &str) -> Result<String, String> {
    let (start, end) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    match (doc.find(&start), doc.find(&end)) {
        (Some(i), Some(j)) if i < j => Ok(format!("{}{start}\n{body}{}", &doc[..i], &doc[j..])),
        _ => Err(format!("lacks the {name} markers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_block_rewrites_between_the_markers() {
        let doc = "a\n<!-- x:start -->\nold\n<!-- x:end -->\nb";
        assert_eq!(
            replace_block(doc, "x", "new\n").unwrap(),
            "a\n<!-- x:start -->\nnew\n<!-- x:end -->\nb"
        );
        assert!(replace_block(doc, "y", "new\n").is_err());
        assert!(replace_block("<!-- x:end --><!-- x:start -->", "x", "").is_err());
    }
}
