//! Step 1: every queue message of a batch becomes one item (an envelope or a rejection), or
//! several (a deferred message holds a record per original message), within the invocation's
//! budget of Analytics Engine points and D1 statements.

use analytics_core::datapoint::{to_data_point, DataPoint, PointInput, MAX_POINTS_PER_INVOCATION};
use analytics_core::event::EventKind;
use analytics_core::skew::correct_timestamp;
use analytics_core::wire::{decode, DropCounts, Envelope};

use crate::audience::UserFact;
use crate::deferred::{self, Origin, PointsState, Record};
use crate::keys::{envelope_key, request_of, RequestAttempt};
use crate::{BatchContext, IncomingMessage};

/// One error event, as a row of `error_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRow {
    /// Event id (primary key).
    pub event_id: String,
    /// Group fingerprint.
    pub fingerprint: String,
    /// Corrected event time, ms since the epoch.
    pub occurred_at_ms: i64,
    /// Error kind.
    pub kind: String,
    /// Error message.
    pub message: String,
    /// Error location.
    pub location: Option<String>,
    /// Telegram user.
    pub user_id: Option<i64>,
    /// Telegram chat.
    pub chat_id: Option<i64>,
    /// Sending bot.
    pub bot: String,
    /// Sending release.
    pub release: String,
}

/// One event of an accepted envelope: its data point, its error row, and the request attempt
/// it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct EventOut {
    /// The request and attempt, for events whose id carries them.
    pub request: Option<RequestAttempt>,
    /// Its Analytics Engine data point.
    pub point: DataPoint,
    /// Its `error_events` row, for error events.
    pub error: Option<ErrorRow>,
    /// What it says about its user, for the user tables (`crate::audience`).
    pub user: Option<UserFact>,
}

/// A decoded envelope that will be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Idempotency key ([`envelope_key`] of its bytes).
    pub key: String,
    /// The sending Worker.
    pub bot: String,
    /// The drop counts it carries.
    pub dropped: DropCounts,
    /// Its events, in order.
    pub events: Vec<EventOut>,
}

/// The reason of a record kept aside after [`deferred::MAX_DEFERRALS`] deferrals. Its
/// `rejected_messages` row is dated when it was kept aside (not when first received), so the
/// dashboard's pipeline page shows it in the current range and its payload is kept
/// `REJECTED_PAYLOAD_DAYS` from then.
pub const DEFERRED_TOO_OFTEN: &str = "deferred_too_often";

/// A message that cannot be decoded: stored in `rejected_messages` and acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Short reason code ([`analytics_core::WireError::code`], `not_bytes`, `too_many_events`,
    /// `malformed_deferred` or `deferred_too_often`).
    pub reason: String,
    /// The full reason.
    pub detail: String,
}

/// What an item holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// An envelope to store.
    Envelope(Box<Accepted>),
    /// A message to keep aside.
    Rejected(Rejected),
}

/// One original queue message's content, as this invocation handles it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Position of the queue message that carried it in the batch.
    pub message: usize,
    /// Where it first came from.
    pub origin: Origin,
    /// Who claims its envelope's points: the original queue message id, or for points written
    /// during an outage, that write's own identity.
    pub writer: String,
    /// How many times it was deferred.
    pub deferrals: u32,
    /// Whether its points were already written.
    pub points: PointsState,
    /// The original body (kept for deferral and for `rejected_messages`).
    pub body: Result<Vec<u8>, String>,
    /// What it holds.
    pub content: Content,
}

impl Item {
    /// Data points this item still has to write.
    pub fn pending_points(&self) -> usize {
        match (&self.content, self.points) {
            (Content::Envelope(a), PointsState::Pending) => a.events.len(),
            _ => 0,
        }
    }

    /// The item as the record that defers it once more.
    pub fn deferred_record(&self) -> Record {
        Record {
            origin: self.origin.clone(),
            writer: self.writer.clone(),
            deferrals: self.deferrals.saturating_add(1),
            points: self.points,
            body: self.body.clone(),
        }
    }

    /// The accepted envelope, if it is one.
    pub fn accepted(&self) -> Option<&Accepted> {
        match &self.content {
            Content::Envelope(a) => Some(a),
            Content::Rejected(_) => None,
        }
    }
}

/// What to do with every message of a batch, before touching D1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchPlan {
    /// The items to store, in batch order.
    pub items: Vec<Item>,
    /// Items beyond this invocation's budget (Analytics Engine points, D1 statements): their
    /// message is retried soon, or they are sent again as a fresh message; never dropped.
    pub waiting: Vec<Item>,
    /// Messages with items in `waiting`, in batch order.
    pub over_budget: Vec<usize>,
}

impl BatchPlan {
    /// Item `n`: `items[n]`, or past them, `waiting[n - items.len()]` (how a
    /// [`crate::Fallback`] names the items it carries).
    pub fn item(&self, n: usize) -> Option<&Item> {
        self.items
            .get(n)
            .or_else(|| self.waiting.get(n.checked_sub(self.items.len())?))
    }

    /// Whether message `m` has items this invocation stores.
    pub fn admits(&self, m: usize) -> bool {
        self.items.iter().any(|i| i.message == m)
    }
}

/// JSON rows bound as one parameter: how many, and how large.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct JsonRows {
    rows: usize,
    /// Rows of more than half a parameter: each may need a statement of its own.
    large: usize,
    /// Bytes of the others.
    bytes: usize,
}

impl JsonRows {
    fn with(mut self, bytes: usize) -> JsonRows {
        self.rows += 1;
        if bytes > crate::MAX_JSON_PARAM_BYTES / 2 {
            self.large += 1;
        } else {
            self.bytes += bytes;
        }
        self
    }

    /// Statements [`crate::json_chunks`] makes of them at most: every chunk but the last holds
    /// more than half a parameter.
    fn statements(self) -> usize {
        if self.rows == 0 {
            0
        } else {
            self.large + 1 + self.bytes / (crate::MAX_JSON_PARAM_BYTES / 2)
        }
    }
}

/// Counts behind an upper bound of the D1 statements an invocation runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    claims: JsonRows,
    winners: JsonRows,
    errors: JsonRows,
    envelopes: JsonRows,
    states: JsonRows,
    /// `bot_users`, `user_days` and `user_events` rows (one per event at most: an upper bound).
    users: JsonRows,
    days: JsonRows,
    exact: JsonRows,
    rejected: usize,
    /// Most marks of one envelope: the second transaction marks an envelope met by `k`
    /// writers in `k` statements.
    rounds: usize,
}

fn r_len(request: &Option<RequestAttempt>) -> usize {
    request.as_ref().map_or(0, |r| r.key.len())
}

/// Rows of `rejected_messages` one insert binds (6 columns, at most 100 parameters).
const REJECTED_PER_STATEMENT: usize = crate::D1_MAX_PARAMS / 6;

impl Counts {
    fn statements(&self) -> usize {
        self.claims.statements()
            + self.winners.statements()
            + self.errors.statements()
            + self.envelopes.statements()
            + self.states.statements()
            + self.users.statements()
            + self.days.statements()
            + self.exact.statements()
            + self.rejected.div_ceil(REJECTED_PER_STATEMENT)
            + self.rounds
    }
}

/// An upper bound of the D1 statements an invocation runs for the items admitted so far: the
/// first transaction ([`crate::store::commit_statements`]) and the marks of the second
/// ([`crate::store::after_commit`]); the development-only local mirror is not counted.
#[derive(Debug, Clone, Default, PartialEq)]
struct StatementTally {
    counts: Counts,
    /// Per envelope key: items whose points were written, and whether one is pending (of
    /// those, one claim at most is marked).
    keys: std::collections::HashMap<String, (usize, bool)>,
}

impl StatementTally {
    /// The counts with `item` admitted too.
    fn with(&self, item: &Item) -> Counts {
        let mut next = self.counts;
        match &item.content {
            Content::Rejected(_) => next.rejected += 1,
            Content::Envelope(a) => {
                for event in &a.events {
                    if let Some(r) = &event.request {
                        next.claims = next.claims.with(r.key.len() + 48);
                        next.winners = next.winners.with(r.key.len() + 3);
                    }
                    if let Some(e) = &event.error {
                        // JSON escapes a character in at most 6 bytes.
                        let text = e.event_id.len()
                            + e.fingerprint.len()
                            + e.kind.len()
                            + e.message.len()
                            + e.location.as_ref().map_or(0, String::len)
                            + e.bot.len()
                            + e.release.len();
                        next.errors = next.errors.with(6 * text + 200);
                    }
                    if let Some(u) = &event.user {
                        let source = u.source.as_ref().map_or(0, String::len);
                        next.users = next.users.with(6 * (a.bot.len() + source) + 200);
                        if u.active {
                            next.days = next.days.with(6 * a.bot.len() + 60);
                        }
                        if let Some(e) = &u.exact {
                            let text = e.event_id.len()
                                + a.bot.len()
                                + e.currency.as_ref().map_or(0, String::len)
                                + r_len(&event.request);
                            next.exact = next.exact.with(6 * text + 200);
                        }
                    }
                }
                let text =
                    a.key.len() + item.origin.message_id.len() + a.bot.len() + item.writer.len();
                // With `kind_counts`: at most eight kinds and their counts.
                next.envelopes = next.envelopes.with(6 * text + 400);
                next.states = next.states.with(a.key.len() + 3);
                let (written, pending) = self.keys.get(&a.key).copied().unwrap_or_default();
                let met = match item.points {
                    PointsState::Pending => written + 1,
                    _ => written + 1 + usize::from(pending),
                };
                next.rounds = next.rounds.max(met);
            }
        }
        next
    }

    /// Admits `item`.
    fn admit(&mut self, item: &Item) {
        self.counts = self.with(item);
        if let Some(a) = item.accepted() {
            let entry = self.keys.entry(a.key.clone()).or_default();
            match item.points {
                PointsState::Pending => entry.1 = true,
                _ => entry.0 += 1,
            }
        }
    }
}

/// Decodes every message of a batch within the invocation's budget: at most
/// [`MAX_POINTS_PER_INVOCATION`] (or `ctx.point_budget`) points to write and
/// [`crate::MAX_D1_STATEMENTS_PER_INVOCATION`] D1 statements. Items are admitted in batch
/// order, each if it still fits; a message's other items wait ([`BatchPlan::waiting`]).
pub fn plan_batch(messages: &[IncomingMessage], ctx: &BatchContext) -> BatchPlan {
    let mut plan = BatchPlan::default();
    let mut budget = ctx.point_budget.min(MAX_POINTS_PER_INVOCATION);
    let mut tally = StatementTally::default();
    for (index, message) in messages.iter().enumerate() {
        for item in items_of(index, message, ctx) {
            let pending = item.pending_points();
            let fits = pending <= budget
                && tally.with(&item).statements() <= crate::MAX_D1_STATEMENTS_PER_INVOCATION;
            if fits {
                budget -= pending;
                tally.admit(&item);
                plan.items.push(item);
            } else {
                if !plan.over_budget.contains(&index) {
                    plan.over_budget.push(index);
                }
                plan.waiting.push(item);
            }
        }
    }
    plan
}

fn items_of(index: usize, message: &IncomingMessage, ctx: &BatchContext) -> Vec<Item> {
    let fresh = Record {
        origin: Origin {
            queue: ctx.queue.to_string(),
            message_id: message.id.clone(),
            received_at_ms: ctx.now_ms,
        },
        writer: message.id.clone(),
        deferrals: 0,
        points: PointsState::Pending,
        body: message.body.clone(),
    };
    if let Ok(bytes) = &message.body {
        if deferred::is_deferred(bytes) {
            return match deferred::decode(bytes) {
                Ok(records) => records.into_iter().map(|r| item(index, r)).collect(),
                Err(error) => vec![Item {
                    content: Content::Rejected(Rejected {
                        reason: "malformed_deferred".into(),
                        detail: error.to_string(),
                    }),
                    ..item(index, fresh)
                }],
            };
        }
    }
    vec![item(index, fresh)]
}

fn item(message: usize, record: Record) -> Item {
    let content = match &record.body {
        Err(what) => Content::Rejected(Rejected {
            reason: "not_bytes".into(),
            detail: what.clone(),
        }),
        Ok(bytes) => match decode(bytes) {
            Err(error) => Content::Rejected(Rejected {
                reason: error.code().into(),
                detail: error.to_string(),
            }),
            // Could never be written in one invocation: kept aside instead of retried forever.
            Ok(envelope) if envelope.events.len() > MAX_POINTS_PER_INVOCATION => {
                Content::Rejected(Rejected {
                    reason: "too_many_events".into(),
                    detail: format!(
                        "{} events, more than the {MAX_POINTS_PER_INVOCATION} data points one invocation may write",
                        envelope.events.len()
                    ),
                })
            }
            // Deferred too often: kept aside, so it neither waits forever nor keeps failing
            // the transactions of the records batched with it.
            Ok(envelope) if record.deferrals >= deferred::MAX_DEFERRALS => {
                let points = match record.points {
                    PointsState::Pending => format!("its {} points not written", envelope.events.len()),
                    _ => "its points written".to_string(),
                };
                Content::Rejected(Rejected {
                    reason: DEFERRED_TOO_OFTEN.into(),
                    detail: format!(
                        "deferred {} times since {} ({points}): D1 or Analytics Engine did not take it",
                        record.deferrals,
                        chrono::DateTime::from_timestamp_millis(record.origin.received_at_ms)
                            .unwrap_or_default()
                            .format("%Y-%m-%d %H:%M:%S UTC"),
                    ),
                })
            }
            Ok(envelope) => Content::Envelope(Box::new(accept(
                &envelope,
                bytes,
                record.origin.received_at_ms,
            ))),
        },
    };
    Item {
        message,
        origin: record.origin,
        writer: record.writer,
        deferrals: record.deferrals,
        points: record.points,
        body: record.body,
        content,
    }
}

/// Builds the points and error rows of an envelope; times are corrected against its
/// `sent_at` and the time the consumer first received it ([`correct_timestamp`]).
pub fn accept(envelope: &Envelope, bytes: &[u8], received_at_ms: i64) -> Accepted {
    let sent_at_ms = envelope.sent_at.timestamp_millis();
    accept_timed(envelope, bytes, |original| {
        correct_timestamp(original, sent_at_ms, received_at_ms)
    })
}

/// [`accept`] with the event times `time` makes of each event's own (local dev's
/// [`crate::backdate`] keeps them as they are).
pub fn accept_timed(envelope: &Envelope, bytes: &[u8], time: impl Fn(i64) -> i64) -> Accepted {
    let events = envelope
        .events
        .iter()
        .map(|event| {
            let original = event.timestamp.timestamp_millis();
            let corrected = time(original);
            let point = to_data_point(&PointInput {
                source: &envelope.source,
                event,
                timestamp_ms: corrected,
                skew_ms: corrected.saturating_sub(original),
            });
            let error = (event.kind == EventKind::Error).then(|| {
                let details = event
                    .error
                    .clone()
                    .unwrap_or_else(|| analytics_core::ErrorDetails {
                        kind: event.name.clone(),
                        message: String::new(),
                        location: None,
                        group_key: None,
                    });
                ErrorRow {
                    event_id: event.id.to_string(),
                    fingerprint: analytics_core::fingerprint::of_error(
                        &envelope.source.worker,
                        &details,
                    ),
                    occurred_at_ms: corrected,
                    kind: details.kind,
                    message: details.message,
                    location: details.location,
                    user_id: event.user_id,
                    chat_id: event.chat_id,
                    bot: envelope.source.worker.clone(),
                    release: envelope.source.release.clone(),
                }
            });
            EventOut {
                request: request_of(event, envelope.version),
                point,
                error,
                user: UserFact::of(event, corrected),
            }
        })
        .collect();
    Accepted {
        key: envelope_key(bytes),
        bot: envelope.source.worker.clone(),
        dropped: envelope.dropped,
        events,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use analytics_core::samples;
    use analytics_core::wire::encode;

    pub(crate) const NOW: i64 = 1_764_000_001_000;

    pub(crate) fn ctx() -> BatchContext<'static> {
        BatchContext {
            queue: "telegram-analytics",
            now_ms: NOW,
            point_budget: MAX_POINTS_PER_INVOCATION,
        }
    }

    pub(crate) fn message(id: &str, body: Vec<u8>) -> IncomingMessage {
        IncomingMessage {
            id: id.into(),
            attempts: 1,
            body: Ok(body),
        }
    }

    pub(crate) fn good(id: &str) -> IncomingMessage {
        message(id, encode(&samples::typical_envelope()).unwrap())
    }

    pub(crate) fn with_error(id: &str) -> IncomingMessage {
        message(id, encode(&samples::error_envelope()).unwrap())
    }

    fn rejected(item: &Item) -> &Rejected {
        match &item.content {
            Content::Rejected(r) => r,
            Content::Envelope(_) => panic!("not rejected"),
        }
    }

    #[test]
    fn a_poison_message_is_rejected_and_the_rest_accepted() {
        let batch = vec![
            good("a"),
            message("b", b"garbage".to_vec()),
            with_error("c"),
            IncomingMessage {
                body: Err("a text message".into()),
                ..good("d")
            },
        ];
        let plan = plan_batch(&batch, &ctx());
        assert_eq!(plan.items.len(), 4);
        assert_eq!(rejected(&plan.items[1]).reason, "not_an_envelope");
        assert_eq!(rejected(&plan.items[3]).reason, "not_bytes");
        assert_eq!(plan.items[0].accepted().unwrap().events.len(), 5);
        let errors: Vec<_> = plan.items[2]
            .accepted()
            .unwrap()
            .events
            .iter()
            .filter_map(|e| e.error.as_ref())
            .collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].bot, "telegram-bot");
        assert_eq!(errors[0].fingerprint.len(), 16);
        assert_eq!(
            errors[0].location.as_deref(),
            Some("bot_api:editMessageText")
        );
        assert_eq!(
            plan.items[0].writer, "a",
            "an original is claimed by its message id"
        );
        assert_eq!(plan.items[0].origin.received_at_ms, NOW);
    }

    #[test]
    fn messages_beyond_the_point_budget_are_deferred_not_dropped() {
        let batch: Vec<_> = (0..60).map(|i| good(&i.to_string())).collect();
        let plan = plan_batch(&batch, &ctx());
        let points: usize = plan.items.iter().map(Item::pending_points).sum();
        assert_eq!(points, 250);
        assert_eq!(plan.over_budget.len(), 10);
    }

    #[test]
    fn an_envelope_larger_than_the_budget_is_kept_aside_not_retried_forever() {
        let mut envelope = samples::typical_envelope();
        let event = envelope.events[0].clone();
        envelope.events = vec![event; MAX_POINTS_PER_INVOCATION + 1];
        let batch = vec![message("big", encode(&envelope).unwrap()), good("ok")];
        let plan = plan_batch(&batch, &ctx());
        assert_eq!(rejected(&plan.items[0]).reason, "too_many_events");
        assert_eq!(plan.items.len(), 2);
        assert!(plan.over_budget.is_empty());
    }

    #[test]
    fn an_event_dated_1970_is_clamped_to_shortly_before_its_envelope() {
        let mut envelope = samples::error_envelope();
        envelope.events[0].timestamp = chrono::DateTime::UNIX_EPOCH;
        let plan = plan_batch(&[message("e", encode(&envelope).unwrap())], &ctx());
        let event = &plan.items[0].accepted().unwrap().events[0];
        let sent_at = envelope.sent_at.timestamp_millis();
        let occurred = event.error.as_ref().unwrap().occurred_at_ms;
        assert_eq!(occurred, sent_at - analytics_core::skew::MAX_EVENT_LEAD_MS);
    }

    #[test]
    fn an_envelope_sent_in_1970_cannot_move_first_seen_to_1970() {
        let mut envelope = samples::error_envelope();
        envelope.sent_at = chrono::DateTime::UNIX_EPOCH;
        envelope.events[0].timestamp = chrono::DateTime::UNIX_EPOCH;
        let plan = plan_batch(&[message("e", encode(&envelope).unwrap())], &ctx());
        let event = &plan.items[0].accepted().unwrap().events[0];
        let occurred = event.error.as_ref().unwrap().occurred_at_ms;
        let earliest =
            NOW - analytics_core::skew::MAX_QUEUE_STAY_MS - analytics_core::skew::MAX_EVENT_LEAD_MS;
        assert_eq!(occurred, earliest, "not {occurred} (1970)");
    }

    #[test]
    fn a_deferred_message_yields_its_records_and_garbage_behind_the_marker_is_rejected() {
        let typical = encode(&samples::typical_envelope()).unwrap();
        let record = |id: &str, points| Record {
            origin: Origin {
                queue: "telegram-analytics".into(),
                message_id: id.into(),
                received_at_ms: NOW - 60_000,
            },
            writer: format!("{id}@1"),
            deferrals: 2,
            points,
            body: Ok(typical.clone()),
        };
        let bytes = deferred::encode(&[
            record(
                "x",
                PointsState::WrittenAll {
                    at_ms: NOW - 50_000,
                },
            ),
            record("y", PointsState::Pending),
        ])
        .unwrap();
        let mut garbage = bytes.clone();
        garbage.truncate(40);
        let plan = plan_batch(&[message("d", bytes), message("g", garbage)], &ctx());
        assert_eq!(plan.items.len(), 3);
        assert_eq!(plan.items[0].origin.message_id, "x");
        assert_eq!(plan.items[0].writer, "x@1");
        assert_eq!(plan.items[0].origin.received_at_ms, NOW - 60_000);
        assert_eq!(plan.items[0].pending_points(), 0, "already written");
        assert_eq!(plan.items[1].pending_points(), 5);
        assert_eq!(plan.items[0].message, 0);
        assert_eq!(plan.items[1].message, 0);
        assert_eq!(rejected(&plan.items[2]).reason, "malformed_deferred");
        assert_eq!(plan.items[2].message, 1);
    }
}
