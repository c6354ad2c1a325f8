//! # consumer-worker — queue batches into Analytics Engine and a grouped D1 error log
//!
//! All decisions live in `shared::ingest` (what is stored, rejected, deferred or retried);
//! this Worker carries them out: one D1 transaction per batch, then Analytics Engine points
//! for envelopes that D1 saw for the first time, then one ack or retry per message.

use chrono::{DateTime, Utc};
use js_sys::Uint8Array;
use shared::datapoint::DataPoint;
use shared::ingest::{self, IncomingMessage, MessageAction, SqlValue, Statement, StatementRole};
use shared::local_ae;
use shared::retry::Backoff;
use wasm_bindgen::{JsCast, JsValue};
use worker::{
    console_error, console_log, event, AnalyticsEngineDataPointBuilder, Context, Env, MessageBatch,
    MessageExt, QueueRetryOptionsBuilder, RawMessage, Result, ScheduleContext, ScheduledEvent,
};

mod d1;

/// The D1 binding.
pub const DB_BINDING: &str = "DB";
/// The Analytics Engine binding.
pub const AE_BINDING: &str = "ANALYTICS";
/// The Analytics Engine dataset name, for the local mirror's `dataset` column.
pub const AE_DATASET: &str = "telegram_bot_events";

fn flag(env: &Env, name: &str) -> bool {
    env.var(name)
        .map(|v| matches!(v.to_string().as_str(), "1" | "true" | "on"))
        .unwrap_or(false)
}

thread_local! {
    /// Dev-only fault injection fires once per isolate, so the redelivery succeeds.
    static FAULT_FIRED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Dev-only: behaves like an invocation that died at `point` — no message acknowledged, the
/// whole batch delivered again. (Not a real panic: in workers-rs a panic leaves the wasm instance
/// unusable for the next batches.)
fn crash<T>(batch: &MessageBatch<T>, point: &str) {
    console_error!("consumer: DEV_FAULT_CONSUMER_CRASH={point}: injected crash, batch retried");
    batch.retry_all();
}

/// Whether the dev-only crash switch `DEV_FAULT_CONSUMER_CRASH` names `point` and has not fired
/// yet in this isolate. Never set in production.
fn fault(env: &Env, point: &str) -> bool {
    let armed = env
        .var("DEV_FAULT_CONSUMER_CRASH")
        .map(|v| v.to_string() == point)
        .unwrap_or(false);
    armed && !FAULT_FIRED.with(|f| f.replace(true))
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
}

fn body_bytes(body: JsValue) -> std::result::Result<Vec<u8>, String> {
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

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    let queue_name = batch.queue();
    let raw: Vec<RawMessage> = batch.raw_iter().collect();
    let received = now();
    let received_ms = received.timestamp_millis();
    let incoming: Vec<IncomingMessage> = raw
        .iter()
        .map(|m| IncomingMessage {
            id: m.id(),
            age_ms: received_ms - m.timestamp().as_millis() as i64,
            body: body_bytes(m.body()),
        })
        .collect();

    let plan = ingest::plan_batch(
        &incoming,
        received_ms,
        shared::datapoint::MAX_POINTS_PER_INVOCATION,
    );
    let statements = ingest::d1_statements(&plan, &incoming, &queue_name, received_ms);
    let db = match env.d1(DB_BINDING) {
        Ok(db) => db,
        Err(error) => {
            // Never return Err from a queue handler: the workers-rs glue turns it into a panic,
            // which leaves the wasm instance unusable for the following batches.
            console_error!("consumer: no {DB_BINDING} binding ({error}); retrying the batch");
            batch.retry_all();
            return Ok(());
        }
    };
    let committed = d1::run_batch(&db, &statements).await;
    if let Err(error) = &committed {
        console_error!(
            "consumer: D1 batch of {} messages failed, retrying them: {error}",
            incoming.len()
        );
    }
    let (actions, to_write) = ingest::decide(
        &plan,
        &incoming,
        committed.as_deref().map_err(|_| ()),
        &Backoff::default(),
    );

    if committed.is_ok() && fault(&env, "after_commit") {
        crash(&batch, "after_commit");
        return Ok(());
    }
    let points: Vec<&DataPoint> = to_write
        .iter()
        .flat_map(|&n| plan.accepted[n].points.iter())
        .collect();
    write_points(&env, &points);
    if fault(&env, "after_points") {
        crash(&batch, "after_points");
        return Ok(());
    }
    // Mark the points written; the local mirror (dev only) goes in the same transaction, so it
    // is exactly once even where real Analytics Engine could see a crash between the two.
    let keys: Vec<&str> = to_write
        .iter()
        .map(|&n| plan.accepted[n].key.as_str())
        .collect();
    let mut after = ingest::mark_points_written(&keys);
    if flag(&env, "AE_LOCAL_MIRROR") && !points.is_empty() {
        after.push(Statement {
            sql: local_ae::insert_sql(),
            params: vec![SqlValue::Text(local_ae::rows_json(
                AE_DATASET, received, &points,
            ))],
            role: StatementRole::Write,
        });
    }
    if let Err(error) = d1::run_batch(&db, &after).await {
        // The points are written; the next delivery of these messages would write them again.
        console_error!("consumer: marking points written failed: {error}");
    }

    for (message, action) in raw.iter().zip(&actions) {
        match action {
            MessageAction::Ack => message.ack(),
            MessageAction::Retry { delay_seconds } => message.retry_with_options(
                &QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(*delay_seconds)
                    .build(),
            ),
        }
    }
    console_log!(
        "consumer: {queue_name}: {} messages, {} stored, {} rejected, {} deferred, {} points",
        incoming.len(),
        plan.accepted.len(),
        plan.rejected.len(),
        plan.deferred.len(),
        points.len()
    );
    Ok(())
}

fn write_points(env: &Env, points: &[&DataPoint]) {
    let dataset = match env.analytics_engine(AE_BINDING) {
        Ok(dataset) => dataset,
        Err(error) => {
            console_error!(
                "consumer: no {AE_BINDING} binding, {} points not written: {error}",
                points.len()
            );
            return;
        }
    };
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

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let days = env
        .var("RETENTION_DAYS")
        .ok()
        .and_then(|v| v.to_string().parse::<i64>().ok());
    let db = match env.d1(DB_BINDING) {
        Ok(db) => db,
        Err(error) => return console_error!("retention: no D1 binding: {error}"),
    };
    for statement in ingest::retention_statements(now().timestamp_millis(), days) {
        if let Err(error) = d1::run(&db, &statement.sql, statement.params.clone()).await {
            console_error!("retention: {} failed: {error}", statement.sql);
        }
    }
    console_log!("retention: done");
}
