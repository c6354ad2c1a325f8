//! # shared — the pure analytics core
//!
//! Every decision of the pipeline, as plain Rust with no `worker` dependency: it compiles for
//! wasm32 and native and is tested natively. The two Workers are thin adapters around it.
//!
//! - [`event`]: the event model and its bounds.
//! - [`wire`]: the versioned MessagePack envelope (one queue message).
//! - [`tracker`]: what the bot calls (`track`, `track_error`, …) during one unit of work.
//! - [`delivery`]: the isolate's outbox: coalescing, full messages, retry once, drop counts.
//! - [`datapoint`]: the Analytics Engine column map.
//! - [`fingerprint`]: error grouping.
//! - [`skew`]: clock-skew correction.
//! - [`retry`]: the consumer's backoff policy.
//! - [`ingest`]: the consumer's whole policy: claims, deduplication, deferral through D1
//!   outages, retention (`docs/reliability.md`).
//! - [`telegram`]: webhook update parsing and command splitting.
//! - [`webhook`]: the checks of a webhook request (secret, content type, size, parsing).
//! - [`reply`]: a bot's answer in the response body, and its follow-up calls.
//! - [`auto`]: the events every Telegram update yields automatically, and their names.
//! - [`privacy`]: keyed pseudonyms of user and chat ids.
//! - [`scrub`]: e-mail addresses, phone numbers and tokens out of text that is stored.
//! - [`text`]: cutting text on character boundaries (the one helper every cut goes through).
#![warn(missing_docs)]

pub mod auto;
pub mod datapoint;
pub mod delivery;
pub mod event;
pub mod fingerprint;
pub mod ids;
pub mod ingest;
pub mod local_ae;
pub mod privacy;
pub mod reply;
pub mod retry;
pub mod samples;
pub mod scrub;
pub mod skew;
pub mod telegram;
pub mod text;
pub mod tracker;
pub mod webhook;
pub mod wire;

pub use event::{ErrorDetails, Event, EventKind, PropValue};
pub use tracker::{Clock, NewEvent, Tracker};
pub use wire::{decode, encode, DropCounts, Envelope, Source, WireError};
