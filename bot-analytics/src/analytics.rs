//! The handle a Worker builds from its `Env`: per-request trackers, and delivery after the
//! response.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use analytics_core::privacy::Pseudonyms;
use worker::{console_error, Context, Env, Queue};

use crate::outbox;
use crate::runtime::now_ms;
use crate::settings::{Mode, Settings, DEFAULT_QUEUE_BINDING};
use crate::tracker::Tracker;

thread_local! {
    static WARNED_NO_QUEUE: Cell<bool> = const { Cell::new(false) };
    /// The queue binding found in this isolate, so it is looked up once, not per request.
    static QUEUE_FOUND: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
    /// The isolate's pseudonyms (its settings do not change while it lives).
    static PSEUDONYMS: RefCell<Option<Pseudonyms>> = const { RefCell::new(None) };
}

/// Analytics for one Worker: built from its `Env` (queue binding, source, release, coalescing
/// window; see the crate documentation's configuration table), it gives a [`Tracker`] per
/// request and sends the tracked events after the response.
#[derive(Clone)]
pub struct Analytics {
    settings: Rc<Settings>,
    /// The environment, to look the queue binding up after the response (a JavaScript call
    /// nobody should wait for).
    env: Option<Env>,
    binding: Rc<str>,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("settings", &self.settings)
            .field("queue_binding", &self.binding)
            .finish()
    }
}

impl Analytics {
    /// Analytics sending to the queue bound as `ANALYTICS_QUEUE`.
    pub fn from_env(env: &Env) -> Analytics {
        Analytics::with_queue(env, DEFAULT_QUEUE_BINDING)
    }

    /// Analytics sending to the queue bound as `binding`.
    pub fn with_queue(env: &Env, binding: &str) -> Analytics {
        let settings = Settings::get(env);
        let env = (settings.mode != Mode::Off).then(|| env.clone());
        let analytics = Analytics {
            settings,
            env,
            binding: binding.into(),
        };
        crate::panic::install(&analytics);
        analytics
    }

    /// The queue binding, looked up when events are sent; a missing binding is logged once per
    /// isolate.
    fn queue(env: &Env, binding: &str) -> Option<Queue> {
        match env.queue(binding) {
            Ok(queue) => Some(queue),
            Err(error) => {
                if !WARNED_NO_QUEUE.with(|w| w.replace(true)) {
                    console_error!(
                        "analytics: no queue binding {binding} ({error}); events are not sent"
                    );
                }
                None
            }
        }
    }

    /// Whether the queue binding is there: looked up once per isolate (a binding does not
    /// come or go while an isolate lives), so a request that only hands its events over makes
    /// no call into JavaScript for it.
    fn has_queue(&self) -> bool {
        if QUEUE_FOUND.with(|found| found.borrow().as_deref() == Some(&*self.binding)) {
            return true;
        }
        let found = self
            .env
            .as_ref()
            .is_some_and(|env| Self::queue(env, &self.binding).is_some());
        if found {
            QUEUE_FOUND.with(|f| *f.borrow_mut() = Some(self.binding.clone()));
        }
        found
    }

    /// How analytics behave (`ANALYTICS`: on, off, await).
    pub fn mode(&self) -> Mode {
        self.settings.mode
    }

    /// The isolate's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A tracker for one request; a no-op with `ANALYTICS=off`.
    pub fn tracker(&self) -> Tracker {
        match self.settings.mode {
            Mode::Off => Tracker::noop(),
            _ => Tracker::new(self.settings.source.clone()),
        }
    }

    /// A tracker for one request whose clock runs `offset_ms` off the Worker's (local dev only:
    /// see `crate::devclock`); a no-op with `ANALYTICS=off`.
    pub(crate) fn tracker_shifted(&self, offset_ms: f64) -> Tracker {
        match self.settings.mode {
            Mode::Off => Tracker::noop(),
            _ => Tracker::shifted(self.settings.source.clone(), offset_ms),
        }
    }

    /// Sends the tracker's events after the response: call it just before returning the
    /// response. The events go to the isolate's outbox at once (Rust only: no call into
    /// JavaScript, no timer); what falls to this request after that (a full message to send,
    /// or the flush it holds) runs inside `ctx.wait_until`, after the response. Most requests
    /// under load join a pending flush and register nothing. Never waits for the queue (in
    /// `await` mode, use [`Analytics::send`] instead).
    pub fn send_after(&self, ctx: &Context, tracker: &Tracker) {
        if !tracker.is_enabled() {
            return;
        }
        if let Some(sending) = self.hand_over_now(tracker, now_ms()) {
            ctx.wait_until(async move {
                // Runs after the response has been handed to the runtime, not in its turn.
                crate::runtime::yield_now().await;
                sending.await;
            });
        }
    }

    /// Sends the tracker's events now and waits: for use inside your own `wait_until` (or to
    /// measure what sending before the response costs).
    pub async fn send(&self, tracker: &Tracker) {
        if let Some(sending) = self.hand_over_now(tracker, now_ms()) {
            sending.await;
        }
    }

    /// Replaces raw user and chat ids in `events` by pseudonyms (or removes them, as the
    /// settings say): raw ids stay in this isolate's memory. Where the pseudonyms are busy
    /// (only in a panic hook that interrupted them), the ids are removed instead.
    pub(crate) fn pseudonymize(&self, events: &mut [analytics_core::Event]) {
        let applied = PSEUDONYMS.with(|p| {
            let Ok(mut p) = p.try_borrow_mut() else {
                return false;
            };
            p.get_or_insert_with(|| Pseudonyms::new(self.settings.ids.clone()))
                .apply_to(events);
            true
        });
        if !applied {
            for event in events.iter_mut() {
                (event.user_id, event.chat_id) = (None, None);
            }
        }
    }

    /// Hands the tracker's events to the isolate's outbox now, in the caller's turn, and
    /// returns what falls to this request after that (sending a message it completed, or the
    /// flush it holds), as of a response ready at `response_at`; `None` when nothing does, so
    /// the caller needs no `wait_until`: a pending flush, kept alive by its flusher's
    /// `wait_until`, takes the events.
    pub(crate) fn hand_over_now(
        &self,
        tracker: &Tracker,
        response_at: f64,
    ) -> Option<impl std::future::Future<Output = ()> + 'static> {
        let (mut events, dropped) = tracker.take();
        if events.is_empty() && dropped.total() == 0 {
            return None;
        }
        if !self.has_queue() {
            return None;
        }
        self.pseudonymize(&mut events);
        let sending = outbox::hand_over(&self.settings, events, dropped, response_at)?;
        let (settings, env, binding) = (
            self.settings.clone(),
            self.env.clone(),
            self.binding.clone(),
        );
        Some(async move {
            if let Some(queue) = env.as_ref().and_then(|env| Self::queue(env, &binding)) {
                sending.run(&settings, &queue).await;
            }
        })
    }
}
