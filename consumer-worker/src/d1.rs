//! Runs the statements `shared::ingest` builds: binds values the way D1 accepts them and reads
//! back the keys of new envelopes.

use serde::Deserialize;
use shared::ingest::{SqlValue, Statement, StatementRole};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

fn bind(value: &SqlValue) -> JsValue {
    match value {
        SqlValue::Text(text) => JsValue::from_str(text),
        // D1 rejects BigInt: bind integers as numbers (exact up to 2^53; Telegram ids fit).
        SqlValue::Integer(n) => JsValue::from_f64(*n as f64),
        SqlValue::Real(x) => JsValue::from_f64(*x),
        SqlValue::Blob(bytes) => js_sys::Uint8Array::from(bytes.as_slice()).into(),
        SqlValue::Null => JsValue::NULL,
    }
}

fn prepare(db: &D1Database, statement: &Statement) -> worker::Result<D1PreparedStatement> {
    let params: Vec<JsValue> = statement.params.iter().map(bind).collect();
    db.prepare(statement.sql.as_str()).bind(&params)
}

#[derive(Deserialize)]
struct KeyRow {
    key: String,
}

/// Runs all statements in one `batch()` (one transaction). Returns the envelope keys whose
/// data points are still to be written, or the error.
pub async fn run_batch(db: &D1Database, statements: &[Statement]) -> worker::Result<Vec<String>> {
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    let prepared = statements
        .iter()
        .map(|s| prepare(db, s))
        .collect::<worker::Result<Vec<_>>>()?;
    let results = db.batch(prepared).await?;
    let mut new_keys = Vec::new();
    for (statement, result) in statements.iter().zip(results) {
        if let Some(error) = result.error() {
            return Err(worker::Error::RustError(error));
        }
        if statement.role == StatementRole::PendingPointKeys {
            new_keys.extend(result.results::<KeyRow>()?.into_iter().map(|r| r.key));
        }
    }
    Ok(new_keys)
}

/// Runs one statement with the given parameters.
pub async fn run(db: &D1Database, sql: &str, params: Vec<SqlValue>) -> worker::Result<()> {
    let statement = Statement {
        sql: sql.to_string(),
        params,
        role: StatementRole::Write,
    };
    prepare(db, &statement)?.run().await.map(|_| ())
}
