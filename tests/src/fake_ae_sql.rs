//! A fake of the Workers Analytics Engine SQL API on 127.0.0.1 whose queries run on a real
//! ClickHouse engine (chDB, in `tests/fake_ae_sql/server.py`), so the SQL the dashboard sends in
//! production is executed by the engine Analytics Engine is built on, not by a translator of ours.
//!
//! - `POST /client/v4/accounts/<FAKE_ACCOUNT_ID>/analytics_engine/sql`, the SQL as the body,
//!   `Authorization: Bearer <FAKE_API_TOKEN>` (else 401 with Cloudflare's error envelope).
//! - The query is first held to Analytics Engine's dialect: the functions, clauses and operators
//!   Cloudflare's SQL reference documents, listed in one file,
//!   `tests/fake_ae_sql/ae_sql_reference.toml`. Anything else (`uniqExact`, `arrayJoin`, window
//!   functions, `JOIN`, `CASE`, …) is refused with 422 and Cloudflare's error envelope, even
//!   though ClickHouse would run it.
//! - Then it runs unchanged on ClickHouse over a table with Analytics Engine's schema (`dataset`,
//!   `timestamp` DateTime, `_sample_interval`, `index1`, `blob1`–`blob20` String,
//!   `double1`–`double20` Float64) in UTC; ClickHouse's own errors (unknown names, wrong types)
//!   come back as 422 too. The table holds the local mirror's points (`analytics_points_local` in
//!   the stack's D1 file, written by the consumer, copied before every query), or the points tests
//!   insert with [`AeSqlEngine::insert`] (with any `_sample_interval`).
//! - The answer is ClickHouse's `FORMAT JSON`: `meta`, `data`, `rows`, and
//!   `rows_before_limit_at_least` with a `LIMIT`; 64-bit integers quoted.
//!
//! The engine is a Python process (chDB is a Python package) started per fake and killed when
//! the fake is dropped, also when a test fails; it also exits by itself when its standard input
//! closes, so it never outlives the test process. `make chdb` installs the pinned chDB.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{mpsc, Mutex, Once};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{http_agent, repo_root};

/// The account id the fake serves (32 hex characters, like a real one).
pub const FAKE_ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";
/// The API token the fake accepts.
pub const FAKE_API_TOKEN: &str = "fake-account-analytics-read-token";
/// The dataset (table) the fake serves.
pub const DATASET: &str = "telegram_bot_events";

/// Why a query was refused or failed: the API's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError(pub String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fake's script (the HTTP server, the dialect check and the engine).
pub fn server_script() -> PathBuf {
    repo_root().join("tests/fake_ae_sql/server.py")
}

/// The Python that runs it: `AE_SQL_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("AE_SQL_PYTHON").unwrap_or_else(|_| "python3".into())
}

const NOT_INSTALLED: &str =
    "the fake Analytics Engine SQL API needs Python 3.11+ with chDB: run `make chdb`";

/// A running `server.py serve`: killed when dropped.
struct Process {
    child: Child,
    // Held open: the server exits when its standard input closes.
    _stdin: ChildStdin,
    _stdout: ChildStdout,
    port: u16,
    engine: String,
}

static ENGINE_PRINTED: Once = Once::new();

impl Process {
    fn start(source: Option<&Path>) -> Process {
        let mut command = Command::new(python());
        command
            .arg(server_script())
            .args(["serve", "--account", FAKE_ACCOUNT_ID])
            .args(["--token", FAKE_API_TOKEN, "--dataset", DATASET]);
        if let Some(path) = source {
            command.arg("--d1").arg(path);
        }
        let mut child = command
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{NOT_INSTALLED} ({e})"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        // The first line says where it listens and which engine runs; bounded wait.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line);
            let _ = tx.send((read.map(|_| line), reader.into_inner()));
        });
        let ready = rx.recv_timeout(Duration::from_secs(120));
        let Ok((Ok(line), stdout)) = ready else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{NOT_INSTALLED} (no answer from {})",
                server_script().display()
            );
        };
        let hello: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{NOT_INSTALLED} (it said {line:?})")
        });
        let port = hello["port"].as_u64().expect("port") as u16;
        let engine = hello["engine"].as_str().unwrap_or("?").to_string();
        ENGINE_PRINTED.call_once(|| eprintln!("AE SQL fake: {engine}"));
        Process {
            child,
            _stdin: stdin,
            _stdout: stdout,
            port,
            engine,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fake's query engine: ClickHouse (chDB) over the dataset's table, behind the dialect check.
pub struct AeSqlEngine {
    process: Process,
    agent: ureq::Agent,
    // Points inserted but not yet sent to the engine (sent in one request before a query).
    pending: Mutex<Vec<Value>>,
}

impl AeSqlEngine {
    /// An engine whose points are copied from the D1 file `source` before every query (`None`:
    /// the points tests insert with [`AeSqlEngine::insert`]).
    pub fn new(source: Option<PathBuf>) -> AeSqlEngine {
        AeSqlEngine {
            process: Process::start(source.as_deref()),
            agent: http_agent(Duration::from_secs(60)),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// The engine, e.g. `chDB 4.4.0 (ClickHouse 26.9.2.1)`.
    pub fn engine(&self) -> &str {
        &self.process.engine
    }

    /// Inserts one point: `timestamp` (`YYYY-MM-DD HH:MM:SS`, UTC), `_sample_interval`, and blob
    /// or double columns by name (others read as empty / 0).
    pub fn insert(&self, timestamp: &str, sample_interval: i64, values: &[(&str, Value)]) {
        let values: serde_json::Map<String, Value> = values
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        self.pending.lock().unwrap().push(json!({
            "timestamp": timestamp,
            "_sample_interval": sample_interval,
            "values": values,
        }));
    }

    fn flush(&self) {
        let points = std::mem::take(&mut *self.pending.lock().unwrap());
        if points.is_empty() {
            return;
        }
        let (status, body) = self.post("/_fake/points", &Value::Array(points).to_string(), None);
        assert_eq!(status, 200, "inserting points: {body}");
    }

    fn post(&self, path: &str, body: &str, bearer: Option<&str>) -> (u16, String) {
        let mut request = self.agent.post(self.process.url(path));
        if let Some(token) = bearer {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request
            .send(body)
            .unwrap_or_else(|e| panic!("the fake SQL API did not answer: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    }

    /// The API path of the fake (under [`FakeAeSqlApi::base_url`]).
    fn api_path() -> String {
        format!("/client/v4/accounts/{FAKE_ACCOUNT_ID}/analytics_engine/sql")
    }

    /// Runs an Analytics Engine query through the fake API: the JSON answer, or the API's error
    /// message (a refusal by the dialect check, or ClickHouse's error).
    pub fn query(&self, sql: &str) -> Result<Value, SqlError> {
        self.flush();
        let (status, body) = self.post(&Self::api_path(), sql, Some(FAKE_API_TOKEN));
        Self::answer(status, body)
    }

    /// Runs an Analytics Engine query in any `FORMAT`: the answer's text, or the API's error.
    pub fn query_text(&self, sql: &str) -> Result<String, SqlError> {
        self.flush();
        let (status, body) = self.post(&Self::api_path(), sql, Some(FAKE_API_TOKEN));
        if status == 200 {
            return Ok(body);
        }
        Self::answer(status, body).map(|v| v.to_string())
    }

    /// Runs `sql` on the same ClickHouse engine without the dialect check: what ClickHouse
    /// alone accepts (for tests that show the check is what refuses a query).
    pub fn query_on_clickhouse_alone(&self, sql: &str) -> Result<Value, SqlError> {
        self.flush();
        let (status, body) = self.post("/_fake/clickhouse", sql, None);
        if status == 200 {
            // Other formats than JSON come back as text.
            return Ok(serde_json::from_str(&body).unwrap_or(Value::String(body)));
        }
        Self::answer(status, body)
    }

    fn answer(status: u16, body: String) -> Result<Value, SqlError> {
        if status == 200 {
            return serde_json::from_str(&body)
                .map_err(|e| SqlError(format!("not JSON ({e}): {body}")));
        }
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        Err(SqlError(format!("{status}: {message}")))
    }
}

/// The features of Analytics Engine's SQL reference a query uses, or why the fake refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The documented features used (keywords, operators, `name()` for functions), sorted.
    pub features: Result<Vec<String>, String>,
}

/// What the dialect check says of each of `queries` (no engine needed), and the page of
/// Cloudflare's SQL reference documenting each feature.
pub fn check(queries: &[String]) -> (Vec<Checked>, Vec<(String, String)>) {
    let mut child = Command::new(python())
        .arg(server_script())
        .args(["check", "--dataset", DATASET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{NOT_INSTALLED} ({e})"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(json!(queries).to_string().as_bytes())
            .expect("write queries");
    }
    let output = child.wait_with_output().expect("server.py check");
    assert!(output.status.success(), "server.py check failed");
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON from server.py check");
    let results = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| Checked {
            features: match r["error"].as_str() {
                Some(e) => Err(e.to_string()),
                None => Ok(r["features"]
                    .as_array()
                    .expect("features")
                    .iter()
                    .map(|f| f.as_str().unwrap_or_default().to_string())
                    .collect()),
            },
        })
        .collect();
    let pages = answer["pages"]
        .as_object()
        .expect("pages")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    (results, pages)
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

// ---- the HTTP API ----

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct SqlCall {
    /// The SQL text (the body).
    pub sql: String,
    /// The status answered.
    pub status: u16,
}

/// The running fake; its engine process stops when dropped.
pub struct FakeAeSqlApi {
    engine: AeSqlEngine,
}

impl FakeAeSqlApi {
    /// Starts the fake on a free port, serving the points of the local D1 file `d1_file`.
    pub fn start(d1_file: PathBuf) -> FakeAeSqlApi {
        FakeAeSqlApi {
            engine: AeSqlEngine::new(Some(d1_file)),
        }
    }

    /// The base URL to give the dashboard as `CF_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.engine.process.port)
    }

    /// The engine behind it.
    pub fn engine(&self) -> &AeSqlEngine {
        &self.engine
    }

    /// The requests received so far.
    pub fn calls(&self) -> Vec<SqlCall> {
        let mut response = self
            .engine
            .agent
            .get(self.engine.process.url("/_fake/calls"))
            .call()
            .expect("the fake SQL API's calls");
        let text = response.body_mut().read_to_string().expect("the calls");
        let calls: Value = serde_json::from_str(&text).expect("calls as JSON");
        calls
            .as_array()
            .expect("a list of calls")
            .iter()
            .map(|c| SqlCall {
                sql: c["sql"].as_str().unwrap_or_default().to_string(),
                status: c["status"].as_u64().unwrap_or_default() as u16,
            })
            .collect()
    }

    /// Forgets the requests received so far.
    pub fn clear_calls(&self) {
        let (status, body) = self.engine.post("/_fake/calls/clear", "", None);
        assert_eq!(status, 200, "{body}");
    }
}
