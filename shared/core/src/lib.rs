//! # analytics-core — the pure analytics core
//!
//! The decisions every source of events shares, as plain Rust with no `worker` dependency: it
//! compiles for wasm32 and native and is tested natively. It knows nothing of Telegram
//! (`telegram-policy`, beside it in `shared/telegram`) nor of the consumer's storage
//! (`ingest-policy`, in `shared/ingest`): both depend on it, never the other way round.
//!
//! - [`event`]: the event model and its bounds.
//! - [`audience`]: the names of the events and properties owner analytics reads (users,
//!   blocks, payments, sources).
//! - [`wire`]: the versioned MessagePack envelope (one queue message).
//! - [`tracker`]: what the bot calls (`track`, `track_error`, …) during one unit of work.
//! - [`delivery`]: the isolate's outbox: coalescing, full messages, retry once, drop counts.
//! - [`datapoint`]: the Analytics Engine column map.
//! - [`fingerprint`]: error grouping.
//! - [`skew`]: clock-skew correction.
//! - [`served`]: the events serving any request yields (refusals, follow-up calls).
//! - [`ids`]: event ids, request keys and the isolate's seed stream.
//! - [`samples`]: sample events and envelopes for tests, benchmarks and docs.
//! - [`privacy`]: keyed pseudonyms of user and chat ids.
//! - [`scrub`]: e-mail addresses, phone numbers and tokens out of text that is stored.
//! - [`text`]: cutting text on character boundaries (the one helper every cut goes through).
#![warn(missing_docs)]

pub mod audience;
pub mod datapoint;
pub mod delivery;
pub mod event;
pub mod fingerprint;
pub mod ids;
pub mod privacy;
pub mod samples;
pub mod scrub;
pub mod served;
pub mod skew;
pub mod text;
pub mod tracker;
pub mod wire;

pub use event::{ErrorDetails, Event, EventKind, PropValue};
pub use tracker::{Clock, NewEvent, Tracker};
pub use wire::{decode, encode, DropCounts, Envelope, Source, WireError};
