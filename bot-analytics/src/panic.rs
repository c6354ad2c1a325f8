//! What a panic leaves behind. Release builds abort on a panic (`panic = "abort"`; catching one
//! needs `panic = "unwind"`, a nightly toolchain): the Wasm instance traps, workers-rs's shim
//! builds a fresh one on the next call into Wasm, and everything in Wasm memory is gone. What
//! survives is JavaScript state (`globalThis`), so the panic hook installed here writes there,
//! before the trap:
//!
//! - the panic as an error event of kind `panic` (its message, scrubbed, and its `file:line`),
//!   with the events the panicking handler had tracked, when the panic came from a handler run
//!   by [`watch`] (the Telegram layer runs every handler so);
//! - everything the isolate's outbox held ([`analytics_core::delivery::Held`]): waiting events,
//!   drop counts, and messages whose send had not finished (sent again: the consumer stores a
//!   copy once);
//! - the interrupted follow-up calls of requests already answered: a `follow_up` event marked
//!   `interrupted` for each, with the timings and errors of their calls so far;
//! - the request key of the panicking update, so a redelivery of it is recognised
//!   ([`panicked_before`]) and answered without running the handler again.
//!
//! The first hand-over on the fresh instance takes the kept events and counts back
//! ([`take_kept`]). What is lost anyway is said in docs/security.md.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;

use analytics_core::delivery::Held;
#[cfg(target_arch = "wasm32")]
use analytics_core::served;
use analytics_core::DropCounts;

use crate::analytics::Analytics;
use crate::Tracker;

/// The `globalThis` property holding what a panic kept for the next instance.
const KEPT: &str = "__bot_analytics_kept";
/// The `globalThis` property listing the request keys of updates whose handler panicked.
const PANICKED: &str = "__bot_analytics_panicked";
/// Most panicked request keys remembered (oldest forgotten first).
const MAX_PANICKED: u32 = 64;

/// The request whose handler is being polled.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Watched {
    key: u64,
    analytics: Analytics,
    tracker: Tracker,
}

/// A request whose follow-up calls are running (after its response).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Running {
    id: u64,
    started_ms: f64,
    analytics: Analytics,
    tracker: Tracker,
}

thread_local! {
    static CURRENT: RefCell<Option<Watched>> = const { RefCell::new(None) };
    /// Requests whose follow-up calls are running.
    static RUNNING: RefCell<Vec<Running>> = const { RefCell::new(Vec::new()) };
    static NEXT_RUNNING: Cell<u64> = const { Cell::new(0) };
    /// The first `Analytics` of this instance: tracks a panic no handler is marked for.
    #[cfg(target_arch = "wasm32")]
    static FALLBACK: RefCell<Option<Analytics>> = const { RefCell::new(None) };
    #[cfg(target_arch = "wasm32")]
    static INSTALLED: Cell<bool> = const { Cell::new(false) };
    /// This instance's copy of the panicked keys (read once: the list only grows in a panic
    /// hook, after which this instance is gone).
    static PANICKED_KEYS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    /// Set by [`dev_kill_isolate`]: the panic that follows keeps nothing.
    static DESTROYING: Cell<bool> = const { Cell::new(false) };
}

/// Why [`dev_kill_isolate`] did not kill: what it would lose could not be told exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KillRefused {
    /// Nothing waits in the outbox: not inside a coalescing window.
    #[error("nothing waits in the outbox")]
    NothingWaiting,
    /// Sends are under way: their events may or may not reach the queue.
    #[error("{0} sends in flight")]
    InFlight(usize),
    /// What an earlier panic kept has not been taken by a hand-over yet.
    #[error("what a panic kept is not taken yet")]
    KeptPending,
}

/// Dev only (the chaos soak, behind a dev-only route): behaves like this isolate being destroyed
/// inside its coalescing window. It logs what is lost with it
/// (`analytics: dev kill: N waiting events and C drop counts lost with the isolate; R requests'
/// follow-up calls cut off`: those requests' events tracked after their hand-over — their
/// follow-up timing, the errors of their calls — were never handed over), then
/// panics with the panic hook keeping nothing, so the Wasm instance is reset and everything in
/// its memory is gone, as in an out-of-memory kill or a deployment replacing the isolate:
/// waiting events and unreported drop counts, which the pipeline cannot count
/// (docs/coalescing.md). Requests still running in the instance fail (the messenger delivers
/// them again). Returns only when it refuses: when nothing waits, or while a send is under way
/// or a panic's kept events are untaken (what those lose could not be told exactly).
pub fn dev_kill_isolate() -> Result<std::convert::Infallible, KillRefused> {
    let (waiting, carried, in_flight) = crate::outbox::state().unwrap_or_default();
    if in_flight > 0 {
        return Err(KillRefused::InFlight(in_flight));
    }
    if js::has_kept() {
        return Err(KillRefused::KeptPending);
    }
    if waiting == 0 {
        return Err(KillRefused::NothingWaiting);
    }
    let cut_off = RUNNING.with(|r| r.borrow().len());
    worker::console_log!(
        "analytics: dev kill: {waiting} waiting events and {} drop counts lost with the isolate; {cut_off} requests' follow-up calls cut off",
        carried.total()
    );
    DESTROYING.with(|d| d.set(true));
    panic!("dev kill: the isolate is destroyed on purpose (DEV_ENQUEUE)");
}

/// Installs the panic hook, once per Wasm instance (a fresh instance installs it again). It
/// runs before workers-rs's own hook, which it keeps.
pub(crate) fn install(analytics: &Analytics) {
    #[cfg(not(target_arch = "wasm32"))]
    let _ = analytics;
    #[cfg(target_arch = "wasm32")]
    if !INSTALLED.with(|i| i.replace(true)) {
        FALLBACK.with(|f| *f.borrow_mut() = Some(analytics.clone()));
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            keep(info);
            previous(info);
        }));
    }
}

/// Runs `handler` as the handler of the update with request `key`: a panic while it runs is
/// tracked on `tracker` and the key remembered.
pub(crate) async fn watch<F: Future>(
    key: u64,
    analytics: &Analytics,
    tracker: &Tracker,
    handler: F,
) -> F::Output {
    let mut handler = pin!(handler);
    let mut mine = Some(Watched {
        key,
        analytics: analytics.clone(),
        tracker: tracker.clone(),
    });
    std::future::poll_fn(|cx| {
        // Marked while it is polled, and only then (other requests run between polls).
        let outer = CURRENT.with(|c| c.replace(mine.take()));
        let polled = handler.as_mut().poll(cx);
        mine = CURRENT.with(|c| c.replace(outer));
        polled
    })
    .await
}

/// Marks a request's follow-up calls as running until the returned guard is dropped: a panic
/// meanwhile records their `follow_up` event as interrupted, and keeps their events.
pub(crate) fn follow_ups_running(analytics: &Analytics, tracker: &Tracker) -> FollowUpsRunning {
    let id = NEXT_RUNNING.with(|n| n.replace(n.get() + 1));
    RUNNING.with(|r| {
        r.borrow_mut().push(Running {
            id,
            started_ms: crate::runtime::now_ms(),
            analytics: analytics.clone(),
            tracker: tracker.clone(),
        })
    });
    FollowUpsRunning { id }
}

/// See [`follow_ups_running`].
pub(crate) struct FollowUpsRunning {
    id: u64,
}

impl Drop for FollowUpsRunning {
    fn drop(&mut self) {
        RUNNING.with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                r.retain(|running| running.id != self.id);
            }
        });
    }
}

/// Whether the handler of the update with request `key` panicked in this isolate before.
pub(crate) fn panicked_before(key: u64) -> bool {
    let key = hex(key);
    PANICKED_KEYS.with(|keys| {
        keys.borrow_mut()
            .get_or_insert_with(js::panicked_keys)
            .contains(&key)
    })
}

/// What a panic kept for this instance, taken (once per instance; `None` when nothing).
pub(crate) fn take_kept() -> Option<(Held, usize)> {
    thread_local! {
        static TAKEN: Cell<bool> = const { Cell::new(false) };
    }
    if TAKEN.with(|t| t.replace(true)) {
        return None;
    }
    js::take_kept()
}

fn hex(key: u64) -> String {
    format!("{key:016x}")
}

/// The panic hook's work: track the panic, keep what Wasm memory holds. Never panics itself
/// (a panic in the hook would abort before workers-rs's hook logs the first): every borrow is
/// tried, not forced.
#[cfg(target_arch = "wasm32")]
fn keep(info: &std::panic::PanicHookInfo<'_>) {
    if DESTROYING.with(Cell::get) {
        return;
    }
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic with a non-text payload");
    let location = info
        .location()
        .map(|l| format!("{}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let mut held = Held::default();
    let mut fresh = 0;
    // The tracker's events, pseudonymised and encoded, join what is kept. The code that
    // panicked never runs inside a tracker's borrow, so this take cannot find it borrowed.
    let mut keep_tracked = |analytics: &Analytics, tracker: &Tracker| {
        let (mut events, dropped) = tracker.take();
        analytics.pseudonymize(&mut events);
        fresh += events.len();
        held.events.extend(
            events
                .iter()
                .filter_map(|e| analytics_core::wire::encode_event(e).ok()),
        );
        held.carried.add(dropped);
    };
    let watched = CURRENT.with(|c| {
        c.try_borrow().ok().and_then(|w| {
            w.as_ref()
                .map(|w| (Some(w.key), w.analytics.clone(), w.tracker.clone()))
        })
    });
    // Not in a marked handler: tracked with no user, no chat and no update.
    let unmarked = || {
        let analytics = FALLBACK.with(|f| f.try_borrow().ok()?.clone())?;
        let tracker = analytics.tracker();
        Some((None, analytics, tracker))
    };
    if let Some((key, analytics, tracker)) = watched.or_else(unmarked) {
        if let Some(key) = key {
            js::remember_panicked(&hex(key));
        }
        let message = analytics_core::scrub::scrub(message);
        tracker.track_error_message("panic", &message, &location);
        keep_tracked(&analytics, &tracker);
    }
    let now = crate::runtime::now_ms();
    let running: Vec<_> = RUNNING.with(|r| {
        r.try_borrow()
            .map(|r| {
                r.iter()
                    .map(|f| (f.started_ms, f.analytics.clone(), f.tracker.clone()))
                    .collect()
            })
            .unwrap_or_default()
    });
    for (started_ms, analytics, tracker) in running {
        tracker.record(served::interrupted_follow_up_event(now - started_ms));
        keep_tracked(&analytics, &tracker);
    }
    if let Some(outbox) = crate::outbox::hold() {
        held.extend(outbox);
    }
    if !held.is_empty() {
        js::keep(&held, fresh);
    }
}

/// The `globalThis` side: survives the Wasm reset.
mod js {
    use super::*;
    use js_sys::{Array, Object, Reflect, Uint8Array};
    use wasm_bindgen::JsValue;

    fn get(name: &str) -> JsValue {
        Reflect::get(&js_sys::global(), &name.into()).unwrap_or(JsValue::UNDEFINED)
    }

    fn set(name: &str, value: &JsValue) {
        let _ = Reflect::set(&js_sys::global(), &name.into(), value);
    }

    fn array(object: &JsValue, field: &str) -> Array {
        match Reflect::get(object, &field.into()) {
            Ok(value) if Array::is_array(&value) => value.into(),
            _ => {
                let fresh = Array::new();
                let _ = Reflect::set(object, &field.into(), &fresh);
                fresh
            }
        }
    }

    fn number(object: &JsValue, field: &str) -> u32 {
        Reflect::get(object, &field.into())
            .ok()
            .and_then(|v| v.as_f64())
            .map_or(0, |v| v as u32)
    }

    fn counts_to_js(counts: &DropCounts) -> JsValue {
        let a = Array::new();
        for n in [
            counts.send_failed,
            counts.oversize,
            counts.buffer_full,
            counts.cancelled,
        ] {
            a.push(&JsValue::from(n));
        }
        a.into()
    }

    fn counts_from_js(value: &JsValue) -> DropCounts {
        let n = |i: u32| {
            Reflect::get_u32(value, i)
                .ok()
                .and_then(|v| v.as_f64())
                .map_or(0, |v| v as u32)
        };
        DropCounts {
            send_failed: n(0),
            oversize: n(1),
            buffer_full: n(2),
            cancelled: n(3),
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(super) fn remember_panicked(key: &str) {
        let keys = match get(PANICKED) {
            value if Array::is_array(&value) => Array::from(&value),
            _ => {
                let fresh = Array::new();
                set(PANICKED, &fresh);
                fresh
            }
        };
        keys.push(&key.into());
        while keys.length() > MAX_PANICKED {
            keys.shift();
        }
    }

    /// Whether a panic kept something no hand-over has taken yet.
    pub(super) fn has_kept() -> bool {
        get(KEPT).is_object()
    }

    pub(super) fn panicked_keys() -> Vec<String> {
        let value = get(PANICKED);
        if !Array::is_array(&value) {
            return Vec::new();
        }
        Array::from(&value)
            .iter()
            .filter_map(|k| k.as_string())
            .collect()
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    /// Adds `held` to what is kept (a second panic before the next hand-over adds to the
    /// first's); `fresh` of its events were never handed over before.
    pub(super) fn keep(held: &Held, fresh: usize) {
        let kept = match get(KEPT) {
            value if value.is_object() => value,
            _ => {
                let fresh = Object::new().into();
                set(KEPT, &fresh);
                fresh
            }
        };
        let events = array(&kept, "events");
        for bytes in &held.events {
            events.push(&Uint8Array::from(bytes.as_slice()));
        }
        let mut carried = counts_from_js(&array(&kept, "carried"));
        carried.add(held.carried);
        let _ = Reflect::set(&kept, &"carried".into(), &counts_to_js(&carried));
        let messages = array(&kept, "in_flight");
        for (bytes, events, counts) in &held.in_flight {
            let m = Array::new();
            m.push(&Uint8Array::from(bytes.as_slice()));
            m.push(&JsValue::from(*events));
            m.push(&counts_to_js(counts));
            messages.push(&m);
        }
        let fresh = number(&kept, "fresh") as usize + fresh;
        let _ = Reflect::set(&kept, &"fresh".into(), &JsValue::from(fresh as u32));
    }

    pub(super) fn take_kept() -> Option<(Held, usize)> {
        let kept = get(KEPT);
        if !kept.is_object() {
            return None;
        }
        set(KEPT, &JsValue::UNDEFINED);
        let bytes = |v: JsValue| Uint8Array::new(&v).to_vec();
        let held = Held {
            events: array(&kept, "events").iter().map(bytes).collect(),
            carried: counts_from_js(&array(&kept, "carried")),
            in_flight: array(&kept, "in_flight")
                .iter()
                .map(|m| {
                    let m = Array::from(&m);
                    let events = m.get(1).as_f64().map_or(0, |n| n as u32);
                    (bytes(m.get(0)), events, counts_from_js(&m.get(2)))
                })
                .collect(),
        };
        Some((held, number(&kept, "fresh") as usize))
    }
}
