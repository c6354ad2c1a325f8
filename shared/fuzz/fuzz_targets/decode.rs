//! `analytics_core::wire::decode` must never panic: every input is an envelope or a `WireError`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match analytics_core::wire::decode(data) {
        Ok(envelope) => {
            // Whatever decodes must also be usable: count drops, encode it again.
            let _ = envelope.dropped.total();
            let _ = analytics_core::wire::encode(&envelope);
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
});
