//! Serving a messenger's webhook, whatever the messenger: the work around a bot's handler that
//! every messenger needs. This is where a second messenger plugs in.
//!
//! A messenger adapter (today [`crate::telegram`]; a Discord interactions endpoint, a WhatsApp
//! or Slack bot would sit beside it) keeps only what is its own: checking and parsing the
//! request, the update's automatic events (from its pure policy crate), and how a reply is
//! delivered. Everything else is here, in this order:
//!
//! 1. [`refuse`] a request the adapter rejected: counted in the isolate and reported as
//!    `webhook_rejected` events with the next accepted request (a flood of bad requests costs no
//!    queue message of its own), answered with a 4xx and a short reason.
//! 2. [`timed`] runs the handler and measures it across its awaits.
//! 3. [`AfterResponse::schedule`] queues the work after the response (inside `wait_until`, or
//!    awaited in `await` mode). Without follow-ups it only hands the events to the isolate's
//!    outbox, at once, and registers a `wait_until` only when a send or the flush falls to this
//!    request. With follow-ups it yields to the runtime first, records the automatic events,
//!    hands every event to the isolate's outbox **before** the follow-up calls (a follow-up that
//!    hangs cannot cost them), runs the follow-ups under one deadline inside the `wait_until`
//!    limit ([`served::follow_up_deadline`]), records their duration and the calls the deadline
//!    left out, and hands that over.

use std::cell::RefCell;
use std::future::Future;

use analytics_core::served::{self, FollowUps, RejectionCounts};
use analytics_core::NewEvent;
use futures_util::future::{join, OptionFuture};
use worker::{Context, Response};

use crate::analytics::Analytics;
use crate::panic;
use crate::runtime::{now_ms, yield_now};
use crate::settings::Mode;
use crate::Tracker;

thread_local! {
    /// Webhook requests refused since the last accepted one, by reason.
    static REJECTED: RefCell<RejectionCounts> = RefCell::new(RejectionCounts::default());
}

/// Counts a refused request under `code` (unless analytics are off) and answers it with
/// `status` and the short `reason`.
pub(crate) fn refuse(
    analytics: &Analytics,
    code: &'static str,
    reason: &str,
    status: u16,
) -> worker::Result<Response> {
    if analytics.mode() != Mode::Off {
        REJECTED.with(|r| r.borrow_mut().count(code));
    }
    Response::error(reason, status)
}

/// Answers a redelivery of an update whose handler panicked in this isolate (see
/// `crate::panic`): 200 with no reply, so the messenger stops redelivering it, without running
/// the handler again. Counted like a refusal, as `redelivered_after_panic`, and reported at once
/// (a `webhook_rejected` event, with the counts of refusals waiting so far).
pub(crate) async fn skip_redelivery(
    analytics: &Analytics,
    ctx: &Context,
) -> worker::Result<Response> {
    if analytics.mode() != Mode::Off {
        REJECTED.with(|r| r.borrow_mut().count("redelivered_after_panic"));
        let report = hand_over_rejections(analytics, now_ms());
        let after = async move {
            yield_now().await;
            if let Some(report) = report {
                report.await;
            }
        };
        match analytics.mode() {
            Mode::Await => after.await,
            _ => ctx.wait_until(after),
        }
    }
    Response::ok("")
}

/// Takes the refusals counted so far and hands their `webhook_rejected` events over (recorded
/// with a tracker of their own: they belong to no user and no chat); `None` when there are none.
fn hand_over_rejections(
    analytics: &Analytics,
    response_at: f64,
) -> Option<impl Future<Output = ()> + 'static> {
    let rejected = REJECTED.with(|r| r.borrow_mut().take());
    (!rejected.is_empty())
        .then(|| {
            let rejections = analytics.tracker();
            for event in served::rejection_events(&rejected) {
                rejections.record(event);
            }
            analytics.hand_over_now(&rejections, response_at)
        })
        .flatten()
}

/// Records a request's automatic events on its tracker and hands every event over now (the
/// request's, then the refusals counted so far); returns what falls to this request after
/// that (`None`: nothing).
fn hand_over_all<I: IntoIterator<Item = NewEvent>>(
    analytics: &Analytics,
    tracker: &Tracker,
    automatic: impl FnOnce() -> I,
    response_at: f64,
) -> Option<impl Future<Output = ()> + 'static> {
    if tracker.is_enabled() {
        for event in automatic() {
            tracker.record(event);
        }
    }
    let handed = analytics.hand_over_now(tracker, response_at);
    let rejections = hand_over_rejections(analytics, response_at);
    if handed.is_none() && rejections.is_none() {
        return None;
    }
    Some(async move {
        join(OptionFuture::from(handed), OptionFuture::from(rejections)).await;
    })
}

/// Runs the handler's future and measures it in milliseconds, across its awaits (deployed
/// Workers advance the clock only across I/O).
pub(crate) async fn timed<F: Future>(handler: F) -> (F::Output, f64) {
    let started = now_ms();
    let output = handler.await;
    (output, now_ms() - started)
}

/// The work after an accepted request's response.
pub(crate) struct AfterResponse<A, G> {
    /// Whose settings and outbox.
    pub analytics: Analytics,
    /// The request's tracker (the handler's events are in it).
    pub tracker: Tracker,
    /// The request's automatic events, computed when its events are handed over: as the
    /// response leaves, or after it when there are follow-ups.
    pub automatic: A,
    /// The follow-up calls, run after the events were handed over: given the deadline (ms since
    /// the epoch) by which they must all be done, they resolve to how many calls they made and
    /// how many the deadline left out. `None`: there are none.
    pub follow_ups: Option<G>,
}

impl<A, I, G, F> AfterResponse<A, G>
where
    A: FnOnce() -> I + 'static,
    I: IntoIterator<Item = NewEvent> + 'static,
    G: FnOnce(f64) -> F + 'static,
    F: Future<Output = FollowUps> + 'static,
{
    /// Schedules the work: inside `ctx.wait_until`, or, in `await` mode (benchmarks only),
    /// awaited here before the response leaves. Nothing is scheduled with analytics off and no
    /// follow-ups.
    ///
    /// With analytics on and no follow-ups (most updates) the events are handed to the
    /// isolate's outbox now, before the response leaves (Rust only, a few microseconds: no call
    /// into JavaScript, no timer), and `wait_until` is registered only when something falls to
    /// this request: a message it filled, or the flush it holds. Under load most requests join
    /// a pending flush and register nothing (issue 27: the per-request `wait_until`, its
    /// promise and its zero-delay timer cost more than the analytics themselves).
    pub async fn schedule(self, ctx: &Context) {
        let mode = self.analytics.mode();
        if mode == Mode::On && self.follow_ups.is_none() {
            let AfterResponse {
                analytics,
                tracker,
                automatic,
                ..
            } = self;
            if let Some(sending) = hand_over_all(&analytics, &tracker, automatic, now_ms()) {
                ctx.wait_until(async move {
                    // Nothing of this runs in the response's turn.
                    yield_now().await;
                    sending.await;
                });
            }
            return;
        }
        let work_after = mode != Mode::Off || self.follow_ups.is_some();
        let after = self.run(now_ms());
        if mode == Mode::Await {
            after.await;
        } else if work_after {
            ctx.wait_until(after);
        }
    }

    async fn run(self, response_at: f64) {
        let AfterResponse {
            analytics,
            tracker,
            automatic,
            follow_ups,
        } = self;
        // Nothing of this runs in the response's turn: the runtime sends the response first.
        yield_now().await;
        // The events are handed over first (now; sent by the future below): a follow-up that
        // hangs cannot cost them.
        let first = OptionFuture::from(hand_over_all(&analytics, &tracker, automatic, response_at));
        let follow_ups = async {
            let Some(follow_ups) = follow_ups else {
                return;
            };
            let deadline = served::follow_up_deadline(response_at);
            let running = panic::follow_ups_running(&analytics, &tracker);
            let (done, duration_ms) = timed(follow_ups(deadline)).await;
            drop(running);
            if let Some(event) = served::follow_up_event(done, duration_ms) {
                tracker.record(event);
            }
            if let Some(sending) = analytics.hand_over_now(&tracker, response_at) {
                sending.await;
            }
        };
        join(first, follow_ups).await;
    }
}
