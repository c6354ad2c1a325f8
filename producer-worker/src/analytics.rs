//! Analytics plumbing of the bot: one tracker per request; inside `wait_until` its events go to
//! the queue as MessagePack with content type `bytes` — coalesced with those of concurrent
//! requests by the isolate's current flusher (`ANALYTICS_COALESCE_MS`, see
//! `docs/coalescing.md`), or as one message per request when the window is 0.

use std::cell::{Cell, RefCell};

use js_sys::{Object, Reflect, Uint8Array};
use shared::coalesce::{self, IsolateBuffer, Role};
use shared::tracker::pack;
use shared::{DropCounts, Flush, Source, Tracker};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{console_error, console_log, Queue};

/// The tracker type the bot uses: timed by `Date.now()`.
pub type BotTracker = Tracker<fn() -> f64>;

fn date_now() -> f64 {
    js_sys::Date::now()
}

/// How analytics behave, from the `ANALYTICS` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Track and send after the response (the default).
    On,
    /// No tracking at all (the benchmark's floor).
    Off,
    /// Send before answering (only to measure what fire-and-forget saves).
    Await,
}

impl Mode {
    /// Parses the variable; anything unknown means on.
    pub fn parse(value: Option<&str>) -> Mode {
        match value.map(str::trim) {
            Some("off") | Some("false") | Some("0") => Mode::Off,
            Some("await") => Mode::Await,
            _ => Mode::On,
        }
    }
}

thread_local! {
    /// Events dropped in this isolate since the last successful send; they ride in the next
    /// envelope.
    static DROPPED: Cell<DropCounts> = Cell::new(DropCounts::default());
    /// Events of concurrent requests waiting for the current flusher (coalescing).
    static BUFFER: RefCell<IsolateBuffer> = RefCell::new(IsolateBuffer::default());
    /// Dev-only fault injection: queue sends still to fail in this isolate.
    static FAILURES_LEFT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Dev-only fault switches (unset in production; tests set them in `.dev.vars`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// `DEV_FAULT_QUEUE_SEND_FAILURES`: this many queue send attempts per isolate fail.
    pub send_failures: Option<u32>,
    /// `DEV_FAULT_QUEUE_SEND_DELAY_MS`: each queue send waits this long first.
    pub send_delay_ms: Option<u64>,
    /// `DEV_LOG_SENDS=1`: log every successful send with its event count (the soak test reads
    /// it to know what was emitted). Off by default: a log line per send costs more CPU than
    /// the whole analytics path.
    pub log_sends: bool,
}

/// A new tracker for one request, with ids seeded from `crypto.getRandomValues`.
pub fn new_tracker(source: Source) -> BotTracker {
    Tracker::new(source, date_now as fn() -> f64, random_seed())
}

fn random_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    let array = Uint8Array::new_with_length(16);
    let filled = Reflect::get(&js_sys::global(), &"crypto".into())
        .and_then(|crypto| {
            let f: js_sys::Function =
                Reflect::get(&crypto, &"getRandomValues".into())?.dyn_into()?;
            f.call1(&crypto, &array)
        })
        .is_ok();
    if filled {
        array.copy_to(&mut seed);
    } else {
        // Never expected in Workers; still unique enough for ids, not for secrets.
        for chunk in seed.chunks_mut(8) {
            chunk.copy_from_slice(&(js_sys::Math::random().to_bits()).to_le_bytes());
        }
    }
    seed
}

async fn send_bytes(queue: &Queue, bytes: &[u8], faults: Faults) -> Result<(), JsValue> {
    if let Some(ms) = faults.send_delay_ms {
        worker::Delay::from(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(total) = faults.send_failures {
        let left = FAILURES_LEFT.with(|f| f.get()).unwrap_or(total);
        if left > 0 {
            FAILURES_LEFT.with(|f| f.set(Some(left - 1)));
            return Err(JsValue::from_str(
                "DEV_FAULT_QUEUE_SEND_FAILURES: injected failure",
            ));
        }
        FAILURES_LEFT.with(|f| f.set(Some(0)));
    }
    let sys: &worker::worker_sys::Queue = queue.as_ref().unchecked_ref();
    let options = Object::new();
    Reflect::set(&options, &"contentType".into(), &"bytes".into())?;
    let promise = sys.send(Uint8Array::from(bytes).into(), options.into())?;
    JsFuture::from(promise).await.map(|_| ())
}

/// Sends bytes as one queue message with content type `bytes`, no retry, no faults.
pub async fn send_raw(queue: &Queue, bytes: &[u8]) -> Result<(), JsValue> {
    send_bytes(queue, bytes, Faults::default()).await
}

/// How a request's events reach the queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery {
    /// Coalescing window in ms (`ANALYTICS_COALESCE_MS`); 0 = one message per request.
    pub coalesce_ms: f64,
    /// Dev-only fault switches.
    pub faults: Faults,
}

/// Sends the tracker's events, inside `wait_until`. With a coalescing window, the request
/// either becomes the isolate's flusher (waits the window, then sends everything buffered) or
/// leaves its events to the pending flusher. `response_at` is when the response was ready
/// (`Date.now()`), to keep the window inside the `wait_until` limit.
pub async fn deliver(queue: &Queue, tracker: &BotTracker, delivery: Delivery, response_at: f64) {
    if delivery.coalesce_ms <= 0.0 {
        tracker.carry_dropped(DROPPED.with(|d| d.take()));
        return send_flush(queue, tracker.flush(), delivery.faults).await;
    }
    let (events, dropped) = tracker.take_events();
    let role = BUFFER.with(|b| b.borrow_mut().add(events, dropped));
    if role == Role::Joined {
        return;
    }
    let wait = coalesce::window_ms(delivery.coalesce_ms, date_now() - response_at);
    if wait > 0.0 {
        worker::Delay::from(std::time::Duration::from_millis(wait as u64)).await;
    }
    let (events, mut carried) = BUFFER.with(|b| b.borrow_mut().take());
    carried.add(DROPPED.with(|d| d.take()));
    let sent_at = chrono_now();
    send_flush(
        queue,
        pack(tracker.source(), sent_at, events, carried),
        delivery.faults,
    )
    .await;
}

fn chrono_now() -> shared::event::Timestamp {
    shared::event::timestamp_from_ms(date_now())
}

/// Sends every message of a flush. A failed send is retried once; then its events are counted
/// as dropped (and its carried drop counts restored) for the next envelope.
async fn send_flush(queue: &Queue, flush: Flush, faults: Faults) {
    for message in flush.messages {
        let mut result = send_bytes(queue, &message.bytes, faults).await;
        if result.is_err() {
            result = send_bytes(queue, &message.bytes, faults).await;
        }
        if result.is_ok() && faults.log_sends {
            console_log!(
                "analytics: sent {} events in {} bytes",
                message.event_count,
                message.bytes.len()
            );
        }
        if let Err(error) = result {
            let mut lost = message.carried;
            lost.send_failed = lost.send_failed.saturating_add(message.event_count);
            DROPPED.with(|d| {
                let mut now = d.get();
                now.add(lost);
                d.set(now);
            });
            console_error!(
                "analytics: queue send failed twice, {} events counted as dropped: {:?}",
                message.event_count,
                error
            );
        }
    }
    if flush.dropped_now.oversize > 0 {
        console_log!(
            "analytics: {} events too large for one queue message were dropped and counted",
            flush.dropped_now.oversize
        );
    }
}

/// Drops counted in this isolate and not yet sent (for tests and logs).
pub fn pending_drops() -> DropCounts {
    DROPPED.with(|d| d.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parsing() {
        assert_eq!(Mode::parse(None), Mode::On);
        assert_eq!(Mode::parse(Some("off")), Mode::Off);
        assert_eq!(Mode::parse(Some(" await ")), Mode::Await);
        assert_eq!(Mode::parse(Some("yes")), Mode::On);
    }
}
