//! What `bench`, `soak`, `dashboard` and `economy` share: posting webhook updates at a given
//! concurrency, command-line arguments, rewriting a marked block of a doc, and the traffic
//! simulator.

pub mod economy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::stack::TEST_SECRET;

/// One answered (or failed) request: HTTP status (0 when no answer), latency in ms, and for
/// anything but a 200 what came back (see [`Failure`]).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The HTTP status, 0 when no answer came.
    pub status: u16,
    /// Time to the whole answer, in ms.
    pub ms: f64,
    /// For a status other than 200: what came back.
    pub failure: Option<Failure>,
    /// How many earlier attempts of this request wrangler's local dev proxy lost (see
    /// [`DEV_PROXY_LOST`]; only [`post_updates_retrying`] retries them). `ms` includes them.
    pub dev_proxy_retries: u32,
}

/// How wrangler's local dev proxy answers a POST whose connection to the local runtime was
/// lost (its `ProxyWorker`: the fetch to the Worker failed, "Network connection lost"). It
/// says "restarted", but no restart is needed: for any path other than `/` the proxy takes
/// every lost connection for a restart (it compares the request's URL, path included, with the
/// Worker's bare URL). On this machine it happens when the proxy reuses a pooled connection to
/// the Worker just as the runtime closes it after about 5 s idle: at the start of a burst that
/// follows a 5 s pause (`bench --idle-race`, docs/benchmarks.md). The Worker never answered
/// it; in production there is no such proxy, and Telegram redelivers any non-2xx.
pub const DEV_PROXY_LOST: &str = "Your worker restarted mid-request";

/// What a request that was not answered 200 got: its body (or the transport error), and when.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The answer's body, cut to 500 bytes, or the client's error when no answer came.
    pub detail: String,
    /// When the request was sent, as wall-clock time (to find its lines in the Worker's log).
    pub sent_at: std::time::SystemTime,
    /// The request's number in its run (its update is 1,000,000 + this).
    pub request: usize,
}

impl Outcome {
    /// Whether the answer was a 200.
    pub fn ok(&self) -> bool {
        self.status == 200
    }

    /// Whether wrangler's local dev proxy lost the request on its way to the Worker (see
    /// [`DEV_PROXY_LOST`]), or reset the harness's connection to it (the same pause causes
    /// both: `bench --idle-race` counts the resets as "other"). Any answer of the Worker's own,
    /// whatever its status, is not.
    pub fn dev_proxy_lost(&self) -> bool {
        let detail = self.failure.as_ref().map_or("", |f| f.detail.as_str());
        (self.status == 503 && detail.starts_with(DEV_PROXY_LOST))
            || (self.status == 0 && detail.contains("Connection reset by peer"))
    }
}

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

/// Posts one update with the test stack's secret; returns its [`Outcome`] (`request` numbers
/// it in a failure) and when it was sent.
pub fn post_one(agent: &ureq::Agent, url: &str, body: &str, request: usize) -> (Outcome, Instant) {
    let (start, sent_at) = (Instant::now(), std::time::SystemTime::now());
    let answer = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET)
        .send(body.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|mut r| {
            let body = r.body_mut().read_to_vec().map_err(|e| e.to_string())?;
            Ok((r.status().as_u16(), body))
        });
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let (status, detail) = match answer {
        Ok((status, body)) => {
            let mut text = String::from_utf8_lossy(&body).into_owned();
            analytics_core::text::truncate(&mut text, 500);
            (status, text)
        }
        Err(error) => (0, format!("no answer: {error}")),
    };
    let failure = (status != 200).then_some(Failure {
        detail,
        sent_at,
        request,
    });
    (
        Outcome {
            status,
            ms,
            failure,
            dev_proxy_retries: 0,
        },
        start,
    )
}

/// [`post_one`], sent again (at most twice more) when wrangler's local dev proxy lost it on
/// its way to the Worker ([`Outcome::dev_proxy_lost`]), as Telegram redelivers an update that
/// got no 2xx. The outcome counts the lost attempts, and its time includes them.
pub fn post_one_retrying(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    request: usize,
) -> (Outcome, Instant) {
    let (mut outcome, start) = post_one(agent, url, body, request);
    let mut retries = 0;
    while outcome.dev_proxy_lost() && retries < 2 {
        retries += 1;
        outcome = post_one(agent, url, body, request).0;
    }
    outcome.dev_proxy_retries = retries;
    outcome.ms = start.elapsed().as_secs_f64() * 1000.0;
    (outcome, start)
}

/// Every non-200 outcome, one line each (status, request number, seconds since the epoch it
/// was sent, body or error), then the lines of `log` that look like trouble (errors, panics,
/// exceeded limits, uncaught exceptions), so a failed run says why. Empty when all were 200.
pub fn describe_failures(outcomes: &[Outcome], log: &str) -> String {
    let failures: Vec<_> = outcomes.iter().filter(|o| !o.ok()).collect();
    if failures.is_empty() {
        return String::new();
    }
    let mut out = format!("{} requests not answered 200:\n", failures.len());
    for o in &failures {
        if let Some(f) = &o.failure {
            let at = f
                .sent_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            out += &format!(
                "  status {} (request {}, sent at {at:.3}, {:.0} ms): {}\n",
                o.status, f.request, o.ms, f.detail
            );
        }
    }
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            [
                "error",
                "panic",
                "exceeded",
                "uncaught",
                "exception",
                "reset",
                "abort",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .collect();
    out += &format!("{} log lines that look like trouble", trouble.len());
    if trouble.len() > 40 {
        out += " (the last 40)";
    }
    out += ":\n";
    for line in &trouble[trouble.len().saturating_sub(40)..] {
        out += &format!("  {line}\n");
    }
    out
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
    post_updates_counting(url, bodies, requests, concurrency, &Arc::default())
}

/// [`post_updates`] with [`post_one_retrying`]: for the benchmark, whose variants pause while
/// the others run (the pause that makes wrangler's local dev proxy lose requests).
pub fn post_updates_retrying(
    url: &str,
    bodies: &Arc<Vec<String>>,
    requests: usize,
    concurrency: usize,
) -> (Vec<Outcome>, Duration) {
    post_with(
        url,
        bodies,
        requests,
        concurrency,
        &Arc::default(),
        post_one_retrying,
    )
}

/// The body [`post_updates`] sends as request `i`.
pub fn update_body(bodies: &[String], i: usize) -> String {
    with_update_id(&bodies[i % bodies.len()], 1_000_000 + i as u64)
}

/// [`post_updates`], counting answered requests in `done` as it goes (the chaos soak times its
/// faults by it).
pub fn post_updates_counting(
    url: &str,
    bodies: &Arc<Vec<String>>,
    requests: usize,
    concurrency: usize,
    done: &Arc<std::sync::atomic::AtomicUsize>,
) -> (Vec<Outcome>, Duration) {
    post_with(url, bodies, requests, concurrency, done, post_one)
}

type Post = fn(&ureq::Agent, &str, &str, usize) -> (Outcome, Instant);

fn post_with(
    url: &str,
    bodies: &Arc<Vec<String>>,
    requests: usize,
    concurrency: usize,
    done: &Arc<std::sync::atomic::AtomicUsize>,
    post: Post,
) -> (Vec<Outcome>, Duration) {
    let prepared: Arc<Vec<String>> =
        Arc::new((0..requests).map(|i| update_body(bodies, i)).collect());
    let agent = agent();
    let started = Instant::now();
    let threads: Vec<_> = (0..concurrency.max(1))
        .map(|t| {
            let (agent, url, bodies) = (agent.clone(), url.to_string(), prepared.clone());
            let done = done.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in (t..requests).step_by(concurrency.max(1)) {
                    outcomes.push(post(&agent, &url, &bodies[i], i).0);
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    fn a_failure_is_described_with_its_status_body_and_the_log_lines_that_explain_it() {
        let ok = Outcome {
            status: 200,
            ms: 1.0,
            failure: None,
            dev_proxy_retries: 0,
        };
        let failed = Outcome {
            status: 500,
            ms: 12.0,
            failure: Some(Failure {
                detail: "Worker threw exception".into(),
                sent_at: std::time::UNIX_EPOCH + Duration::from_millis(1_500),
                request: 7,
            }),
            dev_proxy_retries: 0,
        };
        assert!(
            !failed.dev_proxy_lost(),
            "the Worker's own 500 is never retried"
        );
        assert_eq!(
            describe_failures(std::slice::from_ref(&ok), "panicked at x"),
            ""
        );
        let log = "[wrangler:info] POST /telegram 200 OK\n✘ [ERROR] panicked at src/lib.rs:3\n";
        let text = describe_failures(&[ok, failed], log);
        assert!(text.starts_with("1 requests not answered 200:"), "{text}");
        assert!(
            text.contains("status 500 (request 7, sent at 1.500, 12 ms): Worker threw exception"),
            "{text}"
        );
        assert!(
            text.contains("1 log lines that look like trouble:\n  ✘ [ERROR] panicked"),
            "{text}"
        );
        assert!(!text.contains("200 OK"), "{text}");
    }

    #[test]
    fn only_the_dev_proxys_lost_connection_answer_counts_as_lost_by_the_proxy() {
        // wrangler's ProxyWorker body, as the bench recorded it (issue 21 item 14).
        let lost = |status: u16, detail: &str| Outcome {
            status,
            ms: 20.0,
            failure: Some(Failure {
                detail: detail.into(),
                sent_at: std::time::UNIX_EPOCH,
                request: 1,
            }),
            dev_proxy_retries: 0,
        };
        let proxy = "Your worker restarted mid-request. Please try sending the request again. Only GET or HEAD requests are retried automatically.";
        assert!(lost(503, proxy).dev_proxy_lost());
        assert!(!lost(503, "Service Unavailable").dev_proxy_lost());
        assert!(!lost(500, proxy).dev_proxy_lost());
        assert!(lost(0, "no answer: io: Connection reset by peer (os error 104)").dev_proxy_lost());
        assert!(!lost(0, "no answer: timeout").dev_proxy_lost());
    }

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
