//! # telegram-policy — what a Telegram bot's analytics decide, with no I/O
//!
//! The Telegram side of the pipeline, as plain Rust on the analytics core (`analytics-core`):
//! it knows nothing of the consumer's storage (`ingest-policy`). The library's webhook layer
//! (`bot-analytics`'s `telegram` module) is a thin adapter from the Workers runtime to these
//! functions.
//!
//! - [`update`]: webhook update parsing, update kinds and command splitting.
//! - [`webhook`]: the checks of a webhook request (secret, content type, size, parsing).
//! - [`reply`]: a bot's answer in the response body, and its follow-up calls.
//! - [`auto`]: the events every Telegram update yields automatically, and their names.
#![warn(missing_docs)]

pub mod auto;
pub mod reply;
pub mod update;
pub mod webhook;
