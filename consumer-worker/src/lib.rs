//! # consumer-worker — queue batches into Analytics Engine and a grouped D1 error log
//!
//! Every decision lives in `ingest_policy` (what is stored, rejected, retried, deferred,
//! claimed, which SQL runs); this Worker carries them out: the first D1 transaction, the
//! Analytics Engine points of claimed envelopes, the second transaction that marks them, the
//! deferred messages it sends to its own queue when D1 or Analytics Engine cannot take a batch,
//! and one ack or retry per message. It never returns an error to the runtime: every outcome
//! is a per-message ack or retry. `docs/reliability.md` says what that guarantees.

use std::cell::{Cell, RefCell};
use std::thread::LocalKey;

use analytics_core::datapoint::{DataPoint, MAX_POINTS_PER_INVOCATION};
use ingest_policy::deferred::Outgoing;
use ingest_policy::faults::D1Faults;
use ingest_policy::retention::{Retention, RetentionConfig};
use ingest_policy::store::Summary;
use ingest_policy::{
    BatchContext, BatchPlan, CommitResult, Fallback, IncomingMessage, MessageAction, Unavailable,
};
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{Message as MessageSys, MessageBatch as MessageBatchSys};
use worker::{
    console_error, console_log, event, AnalyticsEngineDataPointBuilder, AnalyticsEngineDataset,
    Env, Queue, ScheduleContext, ScheduledEvent,
};

mod alerting;
mod d1;

use d1::Db;

/// The D1 binding.
pub const DB_BINDING: &str = "DB";
/// The Analytics Engine binding.
pub const AE_BINDING: &str = "ANALYTICS";
/// The producer binding to the consumer's own queue, for deferred messages.
pub const DEFER_QUEUE_BINDING: &str = "DEFER_QUEUE";
/// The Analytics Engine dataset name, for the local mirror's `dataset` column.
pub const AE_DATASET: &str = "telegram_bot_events";

thread_local! {
    /// Dev-only crash injection fires once per isolate and point, so the redelivery succeeds.
    static CRASHED_AT: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    /// A missing binding is logged once per isolate, not once per batch.
    static SAID_NO_ANALYTICS: Cell<bool> = const { Cell::new(false) };
    static SAID_NO_DEFER_QUEUE: Cell<bool> = const { Cell::new(false) };
}

/// True the first time it is asked in this isolate.
fn first_time(flag: &'static LocalKey<Cell<bool>>) -> bool {
    !flag.with(|f| f.replace(true))
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

fn flag(env: &Env, name: &str) -> bool {
    matches!(var(env, name).as_deref(), Some("1" | "true" | "on"))
}

/// Whether the dev-only crash switch `DEV_FAULT_CONSUMER_CRASH` (a comma-separated list) names
/// `point` and it has not fired there yet in this isolate. Never set in production.
fn crash_fault(env: &Env, point: &'static str) -> bool {
    ingest_policy::faults::crash_point_named(var(env, "DEV_FAULT_CONSUMER_CRASH").as_deref(), point)
        && CRASHED_AT.with(|fired| {
            let mut fired = fired.borrow_mut();
            let first = !fired.contains(&point);
            fired.push(point);
            first
        })
}

/// Dev only (`DEV_FAULT_AE_SWITCH=1`): whether the table `dev_fault_ae_down` exists, in which
/// case the batch is handled as if the `ANALYTICS` binding were missing. Read past the D1 fault
/// switches; a failed probe means no.
async fn analytics_switched_off(env: &Env) -> bool {
    if !ingest_policy::faults::switch_on(var(env, "DEV_FAULT_AE_SWITCH").as_deref()) {
        return false;
    }
    let Ok(db) = env.d1(DB_BINDING) else {
        return false;
    };
    match db
        .prepare(ingest_policy::faults::AE_SWITCH_PROBE_SQL)
        .first::<serde_json::Value>(None)
        .await
    {
        Ok(Some(row)) => row["n"].as_i64().unwrap_or(0) > 0,
        _ => false,
    }
}

fn body_bytes(body: JsValue) -> Result<Vec<u8>, String> {
    if body.is_instance_of::<js_sys::ArrayBuffer>() || body.is_instance_of::<Uint8Array>() {
        Ok(Uint8Array::new(&body).to_vec())
    } else if let Some(text) = body.as_string() {
        Err(format!("a text message ({} chars), not bytes", text.len()))
    } else {
        Err(format!(
            "not bytes: {}",
            body.js_typeof().as_string().unwrap_or_default()
        ))
    }
}

/// The runtime's `message.attempts` (workers-rs 0.8.7 has no accessor): 1 on the first
/// delivery. A runtime without it counts as a first delivery.
fn attempts(message: &MessageSys) -> u32 {
    Reflect::get(message, &JsValue::from_str("attempts"))
        .ok()
        .and_then(|v| v.as_f64())
        .filter(|a| a.is_finite() && *a >= 1.0)
        .map(|a| a.min(f64::from(u32::MAX)) as u32)
        .unwrap_or(1)
}

fn incoming(message: &MessageSys) -> IncomingMessage {
    IncomingMessage {
        id: message.id().map(String::from).unwrap_or_default(),
        attempts: attempts(message),
        body: message
            .body()
            .map_err(|e| format!("unreadable body: {e:?}"))
            .and_then(body_bytes),
    }
}

fn act(message: &MessageSys, action: &MessageAction) {
    let done = match action {
        MessageAction::Ack => message.ack(),
        MessageAction::Retry { delay_seconds } => {
            let options = Object::new();
            let _ = Reflect::set(
                &options,
                &JsValue::from_str("delaySeconds"),
                &JsValue::from(*delay_seconds),
            );
            message.retry(options.into())
        }
    };
    if let Err(error) = done {
        console_error!("consumer: ack/retry failed: {error:?}");
    }
}

/// The queue handler's export, written out instead of `#[event(queue)]`: workers-rs 0.8.7's
/// `RawMessage` hides the JS message, whose `attempts` the retry policy reads, and its glue
/// panics (poisoning the instance) when the handler returns `Err`. This one always resolves.
#[wasm_bindgen]
pub async fn queue(
    batch: MessageBatchSys,
    env: Env,
    _ctx: worker::worker_sys::Context,
) -> Result<JsValue, JsValue> {
    consume(&batch, &env).await;
    Ok(JsValue::UNDEFINED)
}

async fn consume(batch: &MessageBatchSys, env: &Env) {
    let queue_name = batch.queue().map(String::from).unwrap_or_default();
    let raw: Vec<MessageSys> = batch
        .messages()
        .map(|messages| {
            messages
                .iter()
                .map(|m| m.unchecked_into::<MessageSys>())
                .collect()
        })
        .unwrap_or_default();
    let messages: Vec<IncomingMessage> = raw.iter().map(incoming).collect();
    let ctx = BatchContext {
        queue: &queue_name,
        now_ms: js_sys::Date::now() as i64,
        point_budget: MAX_POINTS_PER_INVOCATION,
    };
    let mut plan = ingest_policy::plan_batch(&messages, &ctx);
    // Local dev only (`LOCAL_DEV=1`, never deployed): keep the old event times `make demo`
    // sends instead of correcting them (see ingest_policy::backdate).
    if var(env, "LOCAL_DEV").as_deref() == Some("1") {
        ingest_policy::backdate::trust_event_times(&mut plan, ctx.now_ms);
    }
    let defer_queue = env.queue(DEFER_QUEUE_BINDING).ok();
    if defer_queue.is_none() && first_time(&SAID_NO_DEFER_QUEUE) {
        console_error!(
            "consumer: no {DEFER_QUEUE_BINDING} binding: a batch D1 cannot take is only retried in place"
        );
    }
    let switched_off = analytics_switched_off(env).await;
    if switched_off {
        console_error!(
            "consumer: DEV_FAULT_AE_SWITCH: {} messages handled as if the {AE_BINDING} binding were missing",
            messages.len()
        );
    }
    let analytics = match env.analytics_engine(AE_BINDING) {
        Ok(_) if switched_off => None,
        Ok(dataset) => Some(dataset),
        Err(error) => {
            if first_time(&SAID_NO_ANALYTICS) {
                console_error!(
                    "consumer: no {AE_BINDING} binding ({error}): messages wait until it is back, no point is marked written"
                );
            }
            None
        }
    };
    let faults = D1Faults::from_vars(
        var(env, "DEV_FAULT_D1_SWITCH").as_deref(),
        var(env, "DEV_FAULT_D1_FAIL_RATE").as_deref(),
    );
    let db = env.d1(DB_BINDING).ok().map(|db| Db::new(db, faults));
    let mirror = flag(env, "AE_LOCAL_MIRROR").then_some(AE_DATASET);

    let mut log = Outcome::default();
    // The error groups of a committed batch, whose pending alerts are claimed at the end.
    let mut alert_groups: Option<(&Db, Vec<String>)> = None;
    let actions = match (&analytics, &db) {
        (None, _) => {
            let fallback = ingest_policy::cannot_store(
                &plan,
                &messages,
                &ctx,
                Unavailable::Analytics,
                defer_queue.is_some(),
            );
            carry_out(&fallback, &plan, defer_queue.as_ref(), None, &mut log).await
        }
        (Some(dataset), db) => {
            let statements = ingest_policy::commit_statements(&plan, &ctx);
            let committed = match db {
                Some(db) => db
                    .batch(&statements)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|answer| {
                        log.rows_written.push(answer.rows_written);
                        CommitResult::read(&statements, &answer.rows).map_err(|e| e.to_string())
                    })
                    .map(|result| (result, db)),
                None => Err(format!("no {DB_BINDING} binding")),
            };
            match committed {
                Ok((result, db)) => {
                    alert_groups = Some((db, error_fingerprints(&plan)));
                    let after =
                        ingest_policy::after_commit(&plan, &messages, &result, &ctx, mirror);
                    log.summary = after.summary;
                    if crash_fault(env, "after_commit") {
                        return crash(batch, "after_commit", 0);
                    }
                    write_points(dataset, &after.points);
                    if crash_fault(env, "after_points") {
                        return crash(batch, "after_points", after.points.len());
                    }
                    let finished = after.finish.is_empty()
                        || match db.batch(&after.finish).await {
                            Ok(answer) => {
                                log.rows_written.push(answer.rows_written);
                                true
                            }
                            Err(error) => {
                                console_error!(
                                "consumer: marking {} envelopes failed, deferring their marks: {error}",
                                after.finishing.len()
                            );
                                false
                            }
                        };
                    let fallback = ingest_policy::settle(&plan, &after, &ctx, finished);
                    carry_out(&fallback, &plan, defer_queue.as_ref(), None, &mut log).await
                }
                Err(error) => {
                    console_error!(
                        "consumer: D1 transaction of {} messages failed, retrying them in place or deferring them: {error}",
                        messages.len()
                    );
                    let fallback = ingest_policy::cannot_store(
                        &plan,
                        &messages,
                        &ctx,
                        Unavailable::D1,
                        defer_queue.is_some(),
                    );
                    carry_out(
                        &fallback,
                        &plan,
                        defer_queue.as_ref(),
                        Some(dataset),
                        &mut log,
                    )
                    .await
                }
            }
        }
    };
    for (message, action) in raw.iter().zip(&actions) {
        act(message, action);
    }
    log.report(&queue_name, &messages, &plan, &actions);
    if let Some((db, fingerprints)) = alert_groups {
        let dead_lettered = if queue_name.ends_with("-dlq") {
            messages.len()
        } else {
            0
        };
        alerting::after_batch(env, db, &fingerprints, dead_lettered).await;
    }
}

/// The distinct fingerprints of the batch's error events.
fn error_fingerprints(plan: &BatchPlan) -> Vec<String> {
    let mut fingerprints: Vec<String> = plan
        .items
        .iter()
        .filter_map(|item| item.accepted())
        .flat_map(|a| a.events.iter())
        .filter_map(|e| e.error.as_ref().map(|r| r.fingerprint.clone()))
        .collect();
    fingerprints.sort();
    fingerprints.dedup();
    fingerprints
}

/// Dev-only: behaves like an invocation that died here — no message acknowledged, the whole
/// batch delivered again. (Not a real panic: a panic would leave the instance unusable.) Says
/// how many points it had written to Analytics Engine (the chaos soak counts every point
/// written, these too).
fn crash(batch: &MessageBatchSys, point: &str, points_written: usize) {
    console_error!(
        "consumer: DEV_FAULT_CONSUMER_CRASH={point}: injected crash after writing {points_written} points, batch retried"
    );
    let _ = batch.retry_all(JsValue::NULL);
}

/// What the invocation did, for its log line.
#[derive(Default)]
struct Outcome {
    summary: Summary,
    deferred_records: usize,
    early_points: usize,
    /// D1 rows written by each transaction that committed, as D1 reports them.
    rows_written: Vec<Option<u64>>,
}

impl Outcome {
    fn report(
        &self,
        queue: &str,
        messages: &[IncomingMessage],
        plan: &BatchPlan,
        actions: &[MessageAction],
    ) {
        let retried = actions
            .iter()
            .filter(|a| matches!(a, MessageAction::Retry { .. }))
            .count();
        let s = self.summary;
        console_log!(
            "consumer: {queue}: {} messages, {} items: {} stored, {} duplicates, {} duplicate events, {} rejected, {} over budget, {} retried, {} deferred, {} points, {} written ahead of D1, {} counted twice, D1 rows written {:?}",
            messages.len(),
            plan.items.len(),
            s.stored,
            s.duplicates,
            s.duplicate_events,
            s.rejected,
            plan.over_budget.len(),
            retried,
            self.deferred_records,
            s.points + self.early_points,
            self.early_points,
            s.points_twice,
            self.rows_written
        );
    }
}

/// Sends a fallback's deferred messages, writes the points whose records were sent, and
/// returns each message's action.
async fn carry_out(
    fallback: &Fallback<'_>,
    plan: &BatchPlan,
    defer_queue: Option<&Queue>,
    dataset: Option<&AnalyticsEngineDataset>,
    log: &mut Outcome,
) -> Vec<MessageAction> {
    let mut sent = Vec::with_capacity(fallback.outgoing.len());
    for outgoing in &fallback.outgoing {
        let ok = match defer_queue {
            Some(queue) => match send_deferred(queue, outgoing).await {
                Ok(()) => true,
                Err(error) => {
                    console_error!("consumer: sending a deferred message failed: {error:?}");
                    false
                }
            },
            None => false,
        };
        sent.push(ok);
    }
    if fallback.unsendable > 0 {
        console_error!(
            "consumer: {} records too large to defer: their points are written, their marks are lost",
            fallback.unsendable
        );
    }
    let (actions, points) = fallback.resolve(plan, &sent);
    if let Some(dataset) = dataset {
        write_points(dataset, &points);
        log.early_points += points.len();
    }
    log.deferred_records += fallback
        .carries
        .iter()
        .zip(&sent)
        .filter(|(_, ok)| **ok)
        .map(|(c, _)| c.len())
        .sum::<usize>();
    actions
}

/// Sends one deferred message (content type `bytes`, delayed) through the raw binding:
/// workers-rs 0.8.7's `QueueContentType` has no `bytes`.
async fn send_deferred(queue: &Queue, outgoing: &Outgoing) -> Result<(), JsValue> {
    let sys: &worker::worker_sys::Queue = queue.as_ref().unchecked_ref();
    let options = Object::new();
    Reflect::set(&options, &"contentType".into(), &"bytes".into())?;
    Reflect::set(
        &options,
        &"delaySeconds".into(),
        &JsValue::from(outgoing.delay_seconds),
    )?;
    let promise = sys.send(Uint8Array::from(&outgoing.bytes[..]).into(), options.into())?;
    JsFuture::from(promise).await.map(|_| ())
}

fn write_points(dataset: &AnalyticsEngineDataset, points: &[&DataPoint]) {
    for point in points {
        let mut builder = AnalyticsEngineDataPointBuilder::new().indexes([point.index.as_str()]);
        for blob in &point.blobs {
            builder = builder.add_blob(blob.as_str());
        }
        for double in &point.doubles {
            builder = builder.add_double(*double);
        }
        if let Err(error) = dataset.write_data_point(&builder.build()) {
            console_error!("consumer: writeDataPoint failed: {error}");
        }
    }
}

/// The 5-minute cron's schedule in `wrangler.consumer.toml`: it runs
/// [`alerting::every_five_minutes`]; every other schedule (the daily `17 3 * * *`) runs the
/// daily work.
pub const FIVE_MINUTE_CRON: &str = "*/5 * * * *";

/// The cron triggers: the 5-minute one (webhook health and alerts,
/// [`alerting::every_five_minutes`]) and the daily one ([`daily`]).
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    if event.cron() != FIVE_MINUTE_CRON {
        daily(env).await;
    } else {
        let faults = D1Faults::from_vars(
            var(&env, "DEV_FAULT_D1_SWITCH").as_deref(),
            var(&env, "DEV_FAULT_D1_FAIL_RATE").as_deref(),
        );
        match env.d1(DB_BINDING) {
            Ok(db) => alerting::every_five_minutes(&env, &Db::new(db, faults)).await,
            Err(error) => console_error!("alerts: no {DB_BINDING} binding: {error}"),
        }
    }
}

/// The daily cron: the rollup of the last days (`ingest_policy::rollup`), then retention's
/// chunked deletes, a bounded amount per run (`ingest_policy::retention`). The rollup goes
/// first: it reads rows retention may delete, and a failed rollup is redone by the next run
/// (it recomputes three days) without holding retention back.
async fn daily(env: Env) {
    let config = RetentionConfig::from_vars(
        var(&env, "RETENTION_DAYS").as_deref(),
        var(&env, "RETENTION_MAX_ROWS_WRITTEN").as_deref(),
    )
    .with_expiry(
        var(&env, "GROUP_MESSAGE_DAYS").as_deref(),
        var(&env, "REJECTED_PAYLOAD_DAYS").as_deref(),
    );
    let faults = D1Faults::from_vars(
        var(&env, "DEV_FAULT_D1_SWITCH").as_deref(),
        var(&env, "DEV_FAULT_D1_FAIL_RATE").as_deref(),
    );
    let db = match env.d1(DB_BINDING) {
        Ok(db) => Db::new(db, faults),
        Err(error) => return console_error!("retention: no {DB_BINDING} binding: {error}"),
    };
    let now_ms = js_sys::Date::now() as i64;
    let rollup = ingest_policy::rollup::statement(now_ms);
    match db.batch(std::slice::from_ref(&rollup)).await {
        Ok(answer) => console_log!(
            "rollup: done: days {:?}, {} rows written",
            ingest_policy::rollup::days(now_ms),
            answer
                .rows_written
                .map_or_else(|| "unknown".to_string(), |n| n.to_string())
        ),
        Err(error) => console_error!("rollup: failed, the next run recomputes the days: {error}"),
    }
    let mut run = Retention::new(now_ms, config);
    while let Some(step) = run.next_step() {
        match db.batch(std::slice::from_ref(&step.statement)).await {
            Ok(answer) => {
                let rows = answer.rows.first().map(Vec::as_slice).unwrap_or(&[]);
                run.record(step.table, rows, answer.rows_written);
            }
            Err(error) => {
                console_error!(
                    "retention: {} failed, left for the next run: {error}",
                    step.table.name()
                );
                run.failed(step.table);
            }
        }
    }
    let report = run.report();
    let deleted: u64 = report.deleted.iter().map(|(_, n)| n).sum();
    let per_table: Vec<String> = report
        .deleted
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{} {n}", t.name()))
        .collect();
    console_log!(
        "retention: done: {deleted} rows deleted ({}), {} rows written, {} statements{}",
        per_table.join(", "),
        report.rows_written,
        report.statements,
        if report.finished {
            ""
        } else {
            "; cap reached, the next run continues"
        }
    );
}
