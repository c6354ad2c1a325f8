//! A fake of the Workers Analytics Engine SQL API on 127.0.0.1 that really evaluates the SQL it
//! receives, so the queries the dashboard sends in production are exercised end to end.
//!
//! - `POST /client/v4/accounts/<FAKE_ACCOUNT_ID>/analytics_engine/sql`, the SQL as the body,
//!   `Authorization: Bearer <FAKE_API_TOKEN>` (else 401 with Cloudflare's error envelope).
//! - The query is checked against the part of the Analytics Engine dialect this fake knows and
//!   translated to SQLite ([`translate`]); anything else is refused with 422, so SQL that only
//!   SQLite would accept (CASE, window functions, strftime, …) fails here as it would in
//!   production.
//! - It runs in an in-memory SQLite database holding a copy of the points: before every query
//!   the fake copies the local mirror (`analytics_points_local` in the stack's D1 file, written
//!   by the consumer), or tests insert points themselves (with any `_sample_interval`).
//! - The answer is the documented default `FORMAT JSON`: `meta` (name and type of each column),
//!   `data` (one object per row), `rows`, and `rows_before_limit_at_least` when the query has a
//!   `LIMIT` (here simply the row count, a valid lower bound). 64-bit integers are quoted, as
//!   ClickHouse does.
//!
//! Translated constructs (everything else passes through unchanged or is refused):
//!
//! | Analytics Engine | SQLite |
//! | --- | --- |
//! | `toStartOfHour(t)` | `strftime('%Y-%m-%d %H:00:00', t)` |
//! | `toStartOfDay(t)` | `strftime('%Y-%m-%d 00:00:00', t)` |
//! | `toDateTime('YYYY-MM-DD HH:MM:SS')` | `datetime('…')` |
//! | `toUnixTimestamp(t)` | `unixepoch(t)` |
//! | `now()` | `datetime('now')` |
//! | `if(c, a, b)` | `iif(c, a, b)` |
//! | `quantileExactWeighted(q)(v, w)` | `quantile_exact_weighted(q, v, w)`, an aggregate with ClickHouse's rule: values sorted, weights accumulated, the first value whose cumulative weight reaches `ceil(q × total)` |
//! | `count()` | `COUNT(*)` |
//! | `sum`, `count(DISTINCT x)`, `avg`, `min`, `max`, `IN (…)`, `=`, `!=`, arithmetic | unchanged |
//! | `FORMAT JSON` at the end | dropped (the only format served) |

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Map, Value};

/// The account id the fake serves (32 hex characters, like a real one).
pub const FAKE_ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";
/// The API token the fake accepts.
pub const FAKE_API_TOKEN: &str = "fake-account-analytics-read-token";
/// The dataset (table) the fake serves.
pub const DATASET: &str = "telegram_bot_events";

/// Why a query was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError(pub String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// ---- translation ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Sym(String),
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, SqlError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(SqlError("unterminated string literal".into())),
                    Some('\\') => {
                        return Err(SqlError(
                            "backslash escapes are not supported by this fake".into(),
                        ))
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        text.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        text.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(text));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["!=", "<>", "<=", ">="].contains(&two.as_str()) {
                out.push(Tok::Sym(two));
                i += 2;
            } else if "(),*+-/%=<>.".contains(c) {
                out.push(Tok::Sym(c.to_string()));
                i += 1;
            } else {
                return Err(SqlError(format!("unexpected character {c:?}")));
            }
        }
    }
    Ok(out)
}

const KEYWORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "ORDER", "LIMIT", "OFFSET", "AS", "AND",
    "OR", "NOT", "IN", "ASC", "DESC", "DISTINCT", "BETWEEN", "LIKE", "IS", "NULL", "TRUE", "FALSE",
    "FORMAT", "ALL",
];

/// Keywords that are SQLite (or general SQL) but not Analytics Engine, or that this fake does not
/// implement: refused rather than passed through.
const REFUSED: &[&str] = &[
    "JOIN",
    "UNION",
    "WITH",
    "OVER",
    "PARTITION",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "INSERT",
    "UPDATE",
    "DELETE",
    "DROP",
    "ALTER",
    "CREATE",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "REPLACE",
    "INTERVAL",
    "CAST",
    "ILIKE",
];

fn is_column(name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=20).contains(&n) && !name[prefix.len()..].starts_with('0'))
    };
    ["dataset", "timestamp", "_sample_interval", "index1"].contains(&name)
        || numbered("blob")
        || numbered("double")
}

/// The SQLite text a function call starts with (the `(` included), by Analytics Engine name.
/// CamelCase names are case-sensitive, as in ClickHouse; the SQL-standard ones are not.
fn function_prefix(name: &str) -> Option<&'static str> {
    Some(match name {
        "toStartOfHour" => "strftime('%Y-%m-%d %H:00:00', ",
        "toStartOfDay" => "strftime('%Y-%m-%d 00:00:00', ",
        "toDateTime" => "datetime(",
        "toUnixTimestamp" => "unixepoch(",
        _ => match name.to_ascii_lowercase().as_str() {
            "sum" => "SUM(",
            "count" => "COUNT(",
            "avg" => "AVG(",
            "min" => "MIN(",
            "max" => "MAX(",
            "if" => "iif(",
            "now" => "datetime('now'",
            _ => return None,
        },
    })
}

/// Checks an Analytics Engine query against the dialect this fake knows and translates it to
/// SQLite (see the module documentation for the table of translations).
pub fn translate(sql: &str) -> Result<String, SqlError> {
    let mut toks = tokenize(sql)?;
    let upper = |t: &Tok| match t {
        Tok::Ident(s) => Some(s.to_ascii_uppercase()),
        _ => None,
    };
    // A trailing FORMAT JSON is the default; other formats are not served here.
    if let Some(i) = toks
        .iter()
        .position(|t| upper(t).as_deref() == Some("FORMAT"))
    {
        match (toks.get(i + 1).and_then(upper).as_deref(), toks.len()) {
            (Some("JSON"), n) if n == i + 2 => toks.truncate(i),
            _ => {
                return Err(SqlError(
                    "only a final FORMAT JSON is supported by this fake".into(),
                ))
            }
        }
    }
    if toks.first().and_then(upper).as_deref() != Some("SELECT") {
        return Err(SqlError("only SELECT statements are supported".into()));
    }
    let aliases: Vec<String> = toks
        .windows(2)
        .filter(|w| upper(&w[0]).as_deref() == Some("AS"))
        .filter_map(|w| match &w[1] {
            Tok::Ident(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let tok = &toks[i];
        let next_is_paren = matches!(toks.get(i + 1), Some(Tok::Sym(s)) if s == "(");
        match tok {
            Tok::Str(s) => out.push(format!("'{}'", s.replace('\'', "''"))),
            Tok::Num(n) => out.push(n.clone()),
            Tok::Sym(s) => out.push(s.clone()),
            Tok::Ident(name) => {
                let up = name.to_ascii_uppercase();
                if REFUSED.contains(&up.as_str()) {
                    return Err(SqlError(format!(
                        "{up} is not part of the Analytics Engine SQL this fake accepts"
                    )));
                }
                let after_from = i > 0 && upper(&toks[i - 1]).as_deref() == Some("FROM");
                if after_from {
                    if name != DATASET {
                        return Err(SqlError(format!("unknown table {name}")));
                    }
                    out.push(name.clone());
                } else if name == "quantileExactWeighted" {
                    // quantileExactWeighted ( q ) ( v , w ) → quantile_exact_weighted(q, v, w)
                    match (&toks.get(i + 1), &toks.get(i + 2), &toks.get(i + 3), &toks.get(i + 4)) {
                        (Some(Tok::Sym(a)), Some(Tok::Num(q)), Some(Tok::Sym(b)), Some(Tok::Sym(c)))
                            if a == "(" && b == ")" && c == "(" =>
                        {
                            out.push(format!("quantile_exact_weighted({q}, "));
                            i += 5;
                            continue;
                        }
                        _ => {
                            return Err(SqlError(
                                "quantileExactWeighted needs the form quantileExactWeighted(q)(value, weight)".into(),
                            ))
                        }
                    }
                } else if next_is_paren && !KEYWORDS.contains(&up.as_str()) {
                    let Some(prefix) = function_prefix(name) else {
                        return Err(SqlError(format!("unknown function {name}")));
                    };
                    if up == "COUNT" && matches!(toks.get(i + 2), Some(Tok::Sym(s)) if s == ")") {
                        out.push("COUNT(*)".into());
                        i += 3;
                        continue;
                    }
                    out.push(prefix.to_string());
                    i += 2;
                    continue;
                } else if KEYWORDS.contains(&up.as_str())
                    || is_column(name)
                    || aliases.contains(name)
                {
                    out.push(name.clone());
                } else {
                    return Err(SqlError(format!("unknown column or alias {name}")));
                }
            }
        }
        i += 1;
    }
    Ok(out.join(" "))
}

// ---- evaluation ----

/// `quantile_exact_weighted(q, value, weight)`: ClickHouse's `quantileExactWeighted` rule.
struct QuantileExactWeighted;

#[derive(Default)]
struct QuantileState {
    level: f64,
    pairs: Vec<(f64, u64)>,
}

impl Aggregate<QuantileState, Option<f64>> for QuantileExactWeighted {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<QuantileState> {
        Ok(QuantileState::default())
    }

    fn step(&self, ctx: &mut Context<'_>, state: &mut QuantileState) -> rusqlite::Result<()> {
        state.level = ctx.get::<f64>(0)?;
        let value: Option<f64> = ctx.get(1)?;
        let weight: Option<f64> = ctx.get(2)?;
        if let (Some(v), Some(w)) = (value, weight) {
            if v.is_finite() {
                state.pairs.push((v, w.max(0.0) as u64));
            }
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        state: Option<QuantileState>,
    ) -> rusqlite::Result<Option<f64>> {
        let Some(mut state) = state else {
            return Ok(None);
        };
        if state.pairs.is_empty() {
            return Ok(None);
        }
        state.pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: u64 = state.pairs.iter().map(|(_, w)| w).sum();
        let threshold = (total as f64 * state.level).ceil() as u64;
        let mut accumulated = 0;
        for (value, weight) in &state.pairs {
            accumulated += weight;
            if accumulated >= threshold {
                return Ok(Some(*value));
            }
        }
        Ok(state.pairs.last().map(|(v, _)| *v))
    }
}

/// The dataset's columns: name, SQLite type, and for blobs and doubles the value an unwritten one
/// reads as (Analytics Engine has no NULLs).
fn columns() -> Vec<(String, &'static str, Option<&'static str>)> {
    let mut columns = vec![
        ("dataset".to_string(), "TEXT NOT NULL", None),
        ("timestamp".into(), "TEXT NOT NULL", None),
        (
            "_sample_interval".into(),
            "INTEGER NOT NULL DEFAULT 1",
            None,
        ),
        ("index1".into(), "TEXT NOT NULL DEFAULT ''", None),
    ];
    columns.extend((1..=20).map(|i| (format!("blob{i}"), "TEXT NOT NULL DEFAULT ''", Some("''"))));
    columns.extend((1..=20).map(|i| (format!("double{i}"), "REAL NOT NULL DEFAULT 0", Some("0"))));
    columns
}

/// `column(name, type, unwritten)` for every column, comma-separated.
fn column_list(column: impl Fn(&str, &str, Option<&str>) -> String) -> String {
    let list: Vec<String> = columns()
        .iter()
        .map(|(name, sql_type, unwritten)| column(name, sql_type, *unwritten))
        .collect();
    list.join(", ")
}

/// The fake's query engine: an in-memory SQLite copy of the points and the translator.
pub struct AeSqlEngine {
    db: Connection,
    source: Option<PathBuf>,
}

impl AeSqlEngine {
    /// An engine whose points are copied from the D1 file `source` before every query (`None`:
    /// the points tests insert with [`AeSqlEngine::insert`]).
    pub fn new(source: Option<PathBuf>) -> AeSqlEngine {
        let db = Connection::open_with_flags(
            ":memory:",
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .expect("in-memory SQLite");
        let columns = column_list(|name, sql_type, _| format!("{name} {sql_type}"));
        db.execute_batch(&format!("CREATE TABLE {DATASET} ({columns})"))
            .expect("create the dataset table");
        db.create_aggregate_function(
            "quantile_exact_weighted",
            3,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            QuantileExactWeighted,
        )
        .expect("register quantile_exact_weighted");
        db.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        AeSqlEngine { db, source }
    }

    /// Inserts one point: `timestamp` (`YYYY-MM-DD HH:MM:SS`), `_sample_interval`, and blob or
    /// double columns by name (others default to empty / 0).
    pub fn insert(&self, timestamp: &str, sample_interval: i64, values: &[(&str, Value)]) {
        let mut names = vec!["dataset", "timestamp", "_sample_interval"];
        let mut params: Vec<rusqlite::types::Value> = vec![
            DATASET.to_string().into(),
            timestamp.to_string().into(),
            sample_interval.into(),
        ];
        for (name, value) in values {
            assert!(is_column(name), "{name} is not a column");
            names.push(name);
            params.push(match value {
                Value::Number(n) => n.as_f64().unwrap_or(0.0).into(),
                Value::String(s) => s.clone().into(),
                other => other.to_string().into(),
            });
        }
        let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        self.db
            .execute(
                &format!(
                    "INSERT INTO {DATASET} ({}) VALUES ({})",
                    names.join(", "),
                    marks.join(", ")
                ),
                rusqlite::params_from_iter(params),
            )
            .expect("insert a point");
    }

    fn refresh(&self) -> Result<(), SqlError> {
        let Some(path) = &self.source else {
            return Ok(());
        };
        let fail = |e: rusqlite::Error| SqlError(format!("copying the local mirror: {e}"));
        self.db
            .execute(
                "ATTACH DATABASE ?1 AS d1",
                [format!("file:{}?mode=ro", path.display())],
            )
            .map_err(fail)?;
        // Analytics Engine has no NULLs: unwritten blobs read as '' and doubles as 0.
        let names = column_list(|name, _, _| name.to_string());
        let values = column_list(|name, _, unwritten| match unwritten {
            Some(value) => format!("ifnull({name}, {value})"),
            None => name.to_string(),
        });
        let copied = self.db.execute_batch(&format!(
            "DELETE FROM {DATASET}; INSERT INTO {DATASET} ({names}) SELECT {values} FROM d1.analytics_points_local;"
        ));
        let detached = self.db.execute_batch("DETACH DATABASE d1");
        copied.map_err(fail)?;
        detached.map_err(fail)
    }

    /// Evaluates an Analytics Engine query: the JSON answer, or why it failed.
    pub fn query(&self, sql: &str) -> Result<Value, SqlError> {
        let translated = translate(sql)?;
        self.refresh()?;
        let mut statement = self
            .db
            .prepare(&translated)
            .map_err(|e| SqlError(format!("{e} (translated: {translated})")))?;
        let names: Vec<String> = statement.column_names().map(str::to_string).collect();
        let mut types: Vec<Option<&'static str>> = vec![None; names.len()];
        let mut data = Vec::new();
        let mut rows = statement.query([]).map_err(|e| SqlError(e.to_string()))?;
        while let Some(row) = rows.next().map_err(|e| SqlError(e.to_string()))? {
            let mut object = Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = row.get_ref(i).map_err(|e| SqlError(e.to_string()))?;
                let (json, kind) = match value {
                    ValueRef::Null => (Value::Null, None),
                    // ClickHouse's JSON quotes 64-bit integers.
                    ValueRef::Integer(n) => (Value::String(n.to_string()), Some("UInt64")),
                    ValueRef::Real(x) => (json!(x), Some("Float64")),
                    ValueRef::Text(t) => {
                        let text = String::from_utf8_lossy(t).to_string();
                        let datetime = text.len() == 19
                            && dashboard_core::timefmt::parse_datetime(&text).is_some();
                        (
                            Value::String(text),
                            Some(if datetime { "DateTime" } else { "String" }),
                        )
                    }
                    ValueRef::Blob(_) => {
                        return Err(SqlError("blob results are not supported".into()))
                    }
                };
                if types[i].is_none() {
                    types[i] = kind;
                }
                object.insert(name.clone(), json);
            }
            data.push(Value::Object(object));
        }
        let meta: Vec<Value> = names
            .iter()
            .zip(&types)
            .map(|(name, kind)| json!({"name": name, "type": kind.unwrap_or("Nullable(Nothing)")}))
            .collect();
        let mut answer = json!({"meta": meta, "rows": data.len(), "data": data});
        if translated.to_ascii_uppercase().contains(" LIMIT ") {
            answer["rows_before_limit_at_least"] = answer["rows"].clone();
        }
        Ok(answer)
    }
}

/// The local D1 database file of a wrangler `--persist-to` directory (the one that is not
/// miniflare's metadata file).
pub fn local_d1_file(persist_dir: &Path) -> Option<PathBuf> {
    let dir = persist_dir.join("v3/d1/miniflare-D1DatabaseObject");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "sqlite")
                && p.file_name().is_some_and(|n| n != "metadata.sqlite")
        })
}

// ---- the HTTP server ----

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct SqlCall {
    /// The SQL text (the body).
    pub sql: String,
    /// The status answered.
    pub status: u16,
}

/// The running fake; stops when dropped.
pub struct FakeAeSqlApi {
    port: u16,
    calls: Arc<Mutex<Vec<SqlCall>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn cloudflare_error(code: u32, message: &str) -> String {
    json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})
        .to_string()
}

impl FakeAeSqlApi {
    /// Starts the fake on a free port, serving the points of the local D1 file `d1_file`.
    pub fn start(d1_file: PathBuf) -> FakeAeSqlApi {
        Self::start_with(Some(d1_file))
    }

    fn start_with(source: Option<PathBuf>) -> FakeAeSqlApi {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind fake SQL API");
        let port = server.server_addr().to_ip().expect("ip address").port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (calls, stop) = (calls.clone(), stop.clone());
            std::thread::spawn(move || {
                let engine = AeSqlEngine::new(source);
                let path = format!("/client/v4/accounts/{FAKE_ACCOUNT_ID}/analytics_engine/sql");
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(100))
                    else {
                        continue;
                    };
                    let mut sql = String::new();
                    let _ = request.as_reader().read_to_string(&mut sql);
                    let bearer = request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Authorization"))
                        .map(|h| h.value.as_str().to_string());
                    let (status, body) =
                        if request.method() != &tiny_http::Method::Post || request.url() != path {
                            (
                                404,
                                cloudflare_error(7003, "Could not route to the requested URL"),
                            )
                        } else if bearer.as_deref() != Some(&format!("Bearer {FAKE_API_TOKEN}")) {
                            (401, cloudflare_error(10000, "Authentication error"))
                        } else {
                            match engine.query(&sql) {
                                Ok(answer) => (200, answer.to_string()),
                                Err(e) => (422, cloudflare_error(1000, &e.0)),
                            }
                        };
                    if status != 200 {
                        eprintln!("fake SQL API: {status} for {sql:?}: {body}");
                    }
                    calls.lock().unwrap().push(SqlCall { sql, status });
                    let header =
                        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
                    let _ = request.respond(
                        tiny_http::Response::from_string(body)
                            .with_status_code(status)
                            .with_header(header),
                    );
                }
            })
        };
        FakeAeSqlApi {
            port,
            calls,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL to give the dashboard as `CF_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.port)
    }

    /// The requests received so far.
    pub fn calls(&self) -> Vec<SqlCall> {
        self.calls.lock().unwrap().clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }
}

impl Drop for FakeAeSqlApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
