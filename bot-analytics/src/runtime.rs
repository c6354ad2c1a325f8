//! What the library needs from the Workers runtime: the clock, randomness and timeouts.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::JsCast;

/// Milliseconds since the Unix epoch (`Date.now()`). Deployed Workers advance it only across
/// I/O, so time only what includes I/O.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

thread_local! {
    /// The isolate's id generator state, seeded once from `crypto.getRandomValues`.
    static SEED_STATE: Cell<Option<u64>> = const { Cell::new(None) };
}

fn crypto_seed() -> u64 {
    let array = Uint8Array::new_with_length(8);
    let filled = Reflect::get(&js_sys::global(), &"crypto".into())
        .and_then(|crypto| {
            let f: js_sys::Function =
                Reflect::get(&crypto, &"getRandomValues".into())?.dyn_into()?;
            f.call1(&crypto, &array)
        })
        .is_ok();
    if filled {
        let mut bytes = [0u8; 8];
        array.copy_to(&mut bytes);
        u64::from_le_bytes(bytes)
    } else {
        // Never expected in Workers; unique enough for ids, not for secrets.
        js_sys::Math::random().to_bits() ^ now_ms().to_bits()
    }
}

/// 128 random bits for one tracker's ids: drawn from a generator seeded once per isolate by
/// `crypto.getRandomValues`, so a request costs no call into JavaScript for its seed.
pub fn seed() -> [u8; 16] {
    SEED_STATE.with(|state| {
        let mut s = state.get().unwrap_or_else(crypto_seed);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&analytics_core::ids::splitmix(&mut s).to_le_bytes());
        out[8..].copy_from_slice(&analytics_core::ids::splitmix(&mut s).to_le_bytes());
        state.set(Some(s));
        out
    })
}

/// Waits `ms` milliseconds (nothing when `ms` ≤ 0).
pub async fn sleep(ms: f64) {
    if ms > 0.0 {
        worker::Delay::from(Duration::from_millis(ms as u64)).await;
    }
}

/// Lets the runtime go first: resumes on a later turn of the event loop (a zero-delay timer),
/// so work that follows runs after the response has been handed to the runtime, not in the
/// same turn as the handler's return.
pub async fn yield_now() {
    worker::Delay::from(Duration::ZERO).await;
}

/// Runs `future` for at most `ms` milliseconds: `None` when time ran out first (the future is
/// dropped).
pub async fn timeout<F: Future>(ms: f64, future: F) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    let delay = std::pin::pin!(sleep(ms.max(1.0)));
    match select(future, delay).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}
