//! The isolate's outbox: carries out what `analytics_core::delivery::Outbox` decides. Mechanism only —
//! a thread-local outbox, the flusher's wait, the queue send with its timeout, and logs.

use std::cell::RefCell;

use analytics_core::delivery::{
    Handover, Message, NextStep, Outbox, Role, SendOutcome, SEND_TIMEOUT_MS,
};
use analytics_core::{DropCounts, Event};
use futures_util::future::join;
use worker::{console_error, console_log, Queue};

use crate::queue;
use crate::runtime::{self, now_ms};
use crate::settings::Settings;

thread_local! {
    static OUTBOX: RefCell<Option<Outbox>> = const { RefCell::new(None) };
}

/// Runs `f` on the isolate's outbox, creating it on first use.
fn with_outbox<T>(settings: &Settings, f: impl FnOnce(&mut Outbox) -> T) -> T {
    OUTBOX.with(|cell| {
        let mut cell = cell.borrow_mut();
        f(cell.get_or_insert_with(|| Outbox::new(&settings.source, settings.window_ms)))
    })
}

/// What falls to a request after its hand-over: the full messages it completed, and the flush
/// when it is the flusher.
pub struct Sending(Handover);

/// Hands one unit of work's events over to the outbox, now, in the caller's turn (no
/// JavaScript call, no timer): `None` when nothing falls to this request
/// ([`Handover::leaves_nothing_to_do`]), so it needs no `wait_until` of its own.
pub fn hand_over(
    settings: &Settings,
    events: Vec<Event>,
    dropped: DropCounts,
    response_at: f64,
) -> Option<Sending> {
    if settings.faults.log_sends {
        console_log!("analytics: handed over {} events", events.len());
    }
    let kept = crate::panic::take_kept();
    if let (Some((_, fresh)), true) = (&kept, settings.faults.log_sends) {
        console_log!("analytics: handed over {fresh} events (kept through a panic)");
    }
    let handover = with_outbox(settings, |o| {
        // What a panic kept goes first: its unfinished sends now, its events with this flush.
        let mut ready = kept.map_or_else(Vec::new, |(held, _)| o.restore(now_ms(), held));
        let mut handover = o.add(now_ms(), response_at, events, dropped);
        ready.append(&mut handover.ready);
        Handover { ready, ..handover }
    });
    (!handover.leaves_nothing_to_do()).then_some(Sending(handover))
}

impl Sending {
    /// Sends the completed messages and, for the flusher, waits the window and sends what is
    /// waiting then.
    pub async fn run(self, settings: &Settings, queue: &Queue) {
        let Handover { ready, role } = self.0;
        let now = send_all(settings, queue, ready);
        match role {
            Role::Joined => now.await,
            Role::Flusher { lease, wait_ms } => {
                let later = async {
                    runtime::sleep(wait_ms).await;
                    let messages = with_outbox(settings, |o| o.take(lease, now_ms()));
                    send_all(settings, queue, messages).await;
                };
                join(now, later).await;
            }
        }
    }
}

/// What waits in this isolate's outbox: events waiting for a flush, drop counts not yet
/// reported, sends not yet finished. For development and tests (the soak waits until all three
/// are zero); `None` before the first hand-over.
pub fn state() -> Option<(usize, analytics_core::DropCounts, usize)> {
    OUTBOX.with(|cell| {
        cell.borrow()
            .as_ref()
            .map(|o| (o.waiting(), o.carried(), o.in_flight()))
    })
}

/// A copy of what the isolate's outbox holds, for a panic hook (`None` if it is busy or
/// not there yet).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn hold() -> Option<analytics_core::delivery::Held> {
    OUTBOX
        .try_with(|cell| cell.try_borrow().ok()?.as_ref().map(Outbox::hold))
        .ok()
        .flatten()
}

async fn send_all(settings: &Settings, queue: &Queue, messages: Vec<Message>) {
    for message in messages {
        send_one(settings, queue, &message).await;
    }
}

/// Sends one message: an attempt that fails or takes longer than the send timeout is retried
/// once; the outbox counts what is lost.
async fn send_one(settings: &Settings, queue: &Queue, message: &Message) {
    loop {
        let attempt = runtime::timeout(
            SEND_TIMEOUT_MS,
            queue::send_bytes(queue, &message.bytes, &settings.faults),
        )
        .await;
        let outcome = match &attempt {
            Some(Ok(())) => SendOutcome::Sent,
            _ => SendOutcome::Failed,
        };
        if outcome == SendOutcome::Failed && settings.faults.log_sends {
            match &attempt {
                Some(Err(error)) => console_log!("analytics: send attempt failed: {error}"),
                _ => console_log!("analytics: send attempt failed: no answer in time"),
            }
        }
        match with_outbox(settings, |o| o.sent(message.ticket, outcome)) {
            NextStep::Retry => continue,
            NextStep::Done => {
                if outcome == SendOutcome::Sent && settings.faults.log_sends {
                    console_log!(
                        "analytics: sent {} events in {} bytes",
                        message.events,
                        message.bytes.len()
                    );
                }
            }
            NextStep::Dropped => {
                // Only a failed attempt is dropped: an error, or no answer in time.
                let why = match attempt {
                    Some(Err(error)) => error.to_string(),
                    Some(Ok(())) | None => format!("no answer within {SEND_TIMEOUT_MS} ms"),
                };
                console_error!(
                    "analytics: queue send failed twice, {} events counted as dropped: {why}",
                    message.events
                );
            }
        }
        return;
    }
}
