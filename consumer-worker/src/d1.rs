//! Runs the statements `ingest_policy` builds: binds values the way D1 accepts them, runs
//! them as one `batch()` (one transaction), and hands back every statement's rows. The dev-only
//! D1 fault switches (`ingest_policy::faults`) are applied here.

use ingest_policy::faults::{D1Fault, D1Faults, Switches, SWITCH_PROBE_SQL};
use ingest_policy::{SqlValue, Statement, StatementRole};
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

/// Why a D1 call failed.
#[derive(Debug, thiserror::Error)]
pub enum D1Error {
    /// A dev-only fault switch failed the call.
    #[error("injected by {0}")]
    Injected(&'static str),
    /// Preparing or running the batch failed.
    #[error("D1 batch of {statements} statements failed: {source}")]
    Batch {
        /// Statements in the batch.
        statements: usize,
        /// What D1 (or the binding) reported.
        source: worker::Error,
    },
    /// One statement reported an error.
    #[error("statement {index} failed: {message}")]
    Statement {
        /// Its position in the batch.
        index: usize,
        /// D1's message.
        message: String,
    },
    /// Its rows could not be read.
    #[error("rows of statement {index} unreadable: {source}")]
    Rows {
        /// Its position in the batch.
        index: usize,
        /// The conversion error.
        source: worker::Error,
    },
}

/// What a batch returned.
#[derive(Debug, Default)]
pub struct Answer {
    /// Each statement's rows, as JSON objects (empty for statements whose rows are not read).
    pub rows: Vec<Vec<Value>>,
    /// Rows written, as D1 reports them (`None` when it does not).
    pub rows_written: Option<u64>,
}

/// The D1 database with the dev-only fault switches.
pub struct Db {
    db: D1Database,
    faults: D1Faults,
}

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

impl Db {
    /// Wraps the binding.
    pub fn new(db: D1Database, faults: D1Faults) -> Db {
        Db { db, faults }
    }

    fn prepare(&self, statement: &Statement) -> worker::Result<D1PreparedStatement> {
        let params: Vec<JsValue> = statement.params.iter().map(bind).collect();
        self.db.prepare(statement.sql.as_str()).bind(&params)
    }

    /// Which dev-only switch tables exist (none when the probe fails).
    async fn switches(&self) -> Switches {
        let rows = match self.db.prepare(SWITCH_PROBE_SQL).all().await {
            Ok(result) => result.results::<Value>().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        Switches::from_names(rows.iter().filter_map(|row| row["name"].as_str()))
    }

    /// Runs all statements in one `batch()` (one transaction).
    pub async fn batch(&self, statements: &[Statement]) -> Result<Answer, D1Error> {
        if statements.is_empty() {
            return Ok(Answer::default());
        }
        let mut fault = D1Fault::None;
        if self.faults.any() {
            let switches = if self.faults.switch {
                self.switches().await
            } else {
                Switches::default()
            };
            fault = self
                .faults
                .for_call(switches, js_sys::Math::random(), js_sys::Math::random());
            match fault {
                D1Fault::SwitchedOff => {
                    return Err(D1Error::Injected("DEV_FAULT_D1_SWITCH (D1 switched off)"))
                }
                D1Fault::FailBefore => {
                    return Err(D1Error::Injected(
                        "DEV_FAULT_D1_FAIL_RATE (before the call)",
                    ))
                }
                D1Fault::FailAfterCommit | D1Fault::None => {}
            }
        }
        let batch_error = |source| D1Error::Batch {
            statements: statements.len(),
            source,
        };
        let prepared = statements
            .iter()
            .map(|s| self.prepare(s))
            .collect::<worker::Result<Vec<_>>>()
            .map_err(batch_error)?;
        let results = self.db.batch(prepared).await.map_err(batch_error)?;
        let mut answer = Answer::default();
        let mut written: Option<u64> = None;
        for (index, (statement, result)) in statements.iter().zip(results).enumerate() {
            if let Some(message) = result.error() {
                return Err(D1Error::Statement { index, message });
            }
            if let Ok(Some(meta)) = result.meta() {
                if let Some(n) = meta.rows_written {
                    written = Some(written.unwrap_or(0) + n as u64);
                }
            }
            let rows = if statement.role == StatementRole::Write {
                Vec::new()
            } else {
                result
                    .results::<Value>()
                    .map_err(|source| D1Error::Rows { index, source })?
            };
            answer.rows.push(rows);
        }
        answer.rows_written = written;
        if fault == D1Fault::FailAfterCommit {
            return Err(D1Error::Injected(
                "DEV_FAULT_D1_FAIL_RATE (after the commit: the answer was lost)",
            ));
        }
        Ok(answer)
    }
}
