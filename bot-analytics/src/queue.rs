//! The one piece of I/O the analytics need: putting bytes on a Cloudflare Queue with content
//! type `bytes` (workers-rs 0.8.7's `Queue::send` knows only json, text and v8), plus the
//! dev-only fault switches.

use std::cell::Cell;

use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Queue;

use crate::runtime;
use crate::settings::Faults;

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The queue refused or the call threw.
    #[error("queue send failed: {0}")]
    Queue(String),
    /// A dev-only fault switch made it fail.
    #[error("queue send failed: injected by {0}")]
    Injected(&'static str),
}

thread_local! {
    /// Dev-only: send attempts still to fail in this isolate.
    static FAILURES_LEFT: Cell<Option<u32>> = const { Cell::new(None) };
}

fn injected_failure(faults: &Faults) -> Option<&'static str> {
    if let Some(total) = faults.send_failures {
        let left = FAILURES_LEFT.with(|f| f.get()).unwrap_or(total);
        FAILURES_LEFT.with(|f| f.set(Some(left.saturating_sub(1))));
        if left > 0 {
            return Some("DEV_FAULT_QUEUE_SEND_FAILURES");
        }
    }
    match faults.send_fail_rate {
        Some(rate) if js_sys::Math::random() < rate => Some("DEV_FAULT_QUEUE_SEND_FAIL_RATE"),
        _ => None,
    }
}

/// Sends `bytes` as one message with content type `bytes`.
pub async fn send_bytes(queue: &Queue, bytes: &[u8], faults: &Faults) -> Result<(), SendError> {
    if let Some(ms) = faults.send_delay_ms {
        runtime::sleep(ms).await;
    }
    if let Some(switch) = injected_failure(faults) {
        return Err(SendError::Injected(switch));
    }
    if faults.send_noop {
        return Ok(());
    }
    let js_error = |e: JsValue| SendError::Queue(format!("{e:?}"));
    let sys: &worker::worker_sys::Queue = queue.as_ref().unchecked_ref();
    let options = Object::new();
    Reflect::set(&options, &"contentType".into(), &"bytes".into()).map_err(js_error)?;
    let promise = sys
        .send(Uint8Array::from(bytes).into(), options.into())
        .map_err(js_error)?;
    JsFuture::from(promise).await.map(|_| ()).map_err(js_error)
}
