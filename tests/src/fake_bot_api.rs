//! A fake Telegram Bot API server on 127.0.0.1: records every call (with the moment it arrived)
//! and answers with scripted responses (`{"ok":true,"result":true}` unless told otherwise),
//! optionally after a delay that models the network to Telegram (each call on its own thread,
//! so delays overlap as they would over a network).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One recorded call.
#[derive(Debug, Clone)]
pub struct ApiCall {
    /// The token from the path `/bot<token>/<method>`.
    pub token: String,
    /// The Bot API method.
    pub method: String,
    /// The JSON body.
    pub body: Value,
    /// When the call arrived (before the modelled delay).
    pub received: Instant,
}

type Script = HashMap<String, (u16, String)>;

/// The running fake; stops when dropped.
pub struct FakeBotApi {
    port: u16,
    calls: Arc<Mutex<Vec<ApiCall>>>,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeBotApi {
    /// Starts the server on a free port, answering at once.
    pub fn start() -> FakeBotApi {
        FakeBotApi::start_with_delay(Duration::ZERO)
    }

    /// Starts the server on a free port; every answer waits `delay` first.
    pub fn start_with_delay(delay: Duration) -> FakeBotApi {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind fake Bot API");
        let port = server.server_addr().to_ip().expect("ip address").port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (calls, script, stop) = (calls.clone(), script.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    let received = Instant::now();
                    let (calls, script) = (calls.clone(), script.clone());
                    let serve = move || answer(request, received, delay, &calls, &script);
                    if delay.is_zero() {
                        serve();
                    } else {
                        std::thread::spawn(serve);
                    }
                }
            })
        };
        FakeBotApi {
            port,
            calls,
            script,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL to give the bot as `TELEGRAM_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes `method` answer with `status` and the JSON `body` from now on.
    pub fn respond(&self, method: &str, status: u16, body: Value) {
        self.script
            .lock()
            .unwrap()
            .insert(method.to_string(), (status, body.to_string()));
    }

    /// Makes `method` fail from now on with Telegram's error shape:
    /// `{"ok": false, "error_code": status, "description": description}`.
    pub fn respond_error(&self, method: &str, status: u16, description: &str) {
        self.respond(
            method,
            status,
            serde_json::json!({"ok": false, "error_code": status, "description": description}),
        );
    }

    /// Makes `method` answer from now on as Telegram does when the user blocked the bot: 403
    /// with `{"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the
    /// user"}`.
    pub fn respond_blocked(&self, method: &str) {
        self.respond_error(method, 403, "Forbidden: bot was blocked by the user");
    }

    /// The calls received so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.calls.lock().unwrap().clone()
    }
}

/// Records one call, waits the modelled delay, and answers it.
fn answer(
    mut request: tiny_http::Request,
    received: Instant,
    delay: Duration,
    calls: &Mutex<Vec<ApiCall>>,
    script: &Mutex<Script>,
) {
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    let path = request.url().trim_start_matches('/').to_string();
    let (token, method) = path
        .split_once('/')
        .map(|(t, m)| (t.trim_start_matches("bot").to_string(), m.to_string()))
        .unwrap_or_default();
    let (status, answer) = script
        .lock()
        .unwrap()
        .get(&method)
        .cloned()
        .unwrap_or((200, r#"{"ok":true,"result":true}"#.to_string()));
    calls.lock().unwrap().push(ApiCall {
        token,
        method,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        received,
    });
    std::thread::sleep(delay);
    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
    let response = tiny_http::Response::from_string(answer)
        .with_status_code(status)
        .with_header(header);
    let _ = request.respond(response);
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
