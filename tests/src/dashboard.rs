//! The dashboard Worker next to a running [`Stack`]: its own `wrangler dev` (as `make dev` runs
//! it) with the stack's `--persist-to` state, so it reads the same local D1. It lives in a
//! subdirectory of the stack's directory with a `.dev.vars` of its own.

use std::fs;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::fake_ae_sql::{FakeAeSqlApi, FAKE_ACCOUNT_ID, FAKE_API_TOKEN};
use crate::process::{spawn_wrangler_dev, stop_process_group};
use crate::stack::local_config;
use crate::{free_port, wait_for, Stack};

/// The password the test dashboards use.
pub const TEST_PASSWORD: &str = "test-dashboard-password";

/// Where the dashboard reads Analytics Engine data.
#[derive(Debug, Clone)]
pub enum AeData {
    /// The SQL API at this base URL (the fake), with the fake's account and token.
    SqlApi(String),
    /// The local mirror in D1 (`AE_LOCAL_MIRROR=1`, as under `make dev`).
    LocalMirror,
}

/// How to start the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// `DASHBOARD_PASSWORD` (`None`: unset, the dashboard must refuse everyone).
    pub password: Option<String>,
    /// Where Analytics Engine data comes from.
    pub data: AeData,
}

impl DashboardOptions {
    /// The production path: the password and the fake SQL API.
    pub fn with_sql_api(api: &FakeAeSqlApi) -> DashboardOptions {
        DashboardOptions {
            password: Some(TEST_PASSWORD.into()),
            data: AeData::SqlApi(api.base_url()),
        }
    }
}

/// A response: status, headers (lowercase names) and body.
#[derive(Debug, Clone)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Page {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running dashboard. Dropping it stops its `wrangler dev`.
pub struct Dashboard {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// An HTTP Basic `Authorization` value.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Dashboard {
    /// Starts the dashboard beside `stack` and waits (bounded) until it answers `/health`.
    /// `name` keeps several dashboards of one stack apart.
    pub fn start(stack: &Stack, name: &str, options: DashboardOptions) -> Dashboard {
        let dir = stack.dir().join(name);
        fs::create_dir_all(&dir).expect("dashboard dir");
        let config = local_config("wrangler.dashboard.toml");
        fs::write(
            dir.join("wrangler.dashboard.toml"),
            toml::to_string(&config).expect("serialize config"),
        )
        .expect("write dashboard config");
        let mut vars = Vec::new();
        if let Some(password) = &options.password {
            vars.push(("DASHBOARD_PASSWORD", password.clone()));
        }
        match &options.data {
            AeData::SqlApi(base) => {
                vars.push(("CF_API_BASE", base.clone()));
                vars.push(("CF_ACCOUNT_ID", FAKE_ACCOUNT_ID.into()));
                vars.push(("CF_API_TOKEN", FAKE_API_TOKEN.into()));
            }
            AeData::LocalMirror => vars.push(("AE_LOCAL_MIRROR", "1".into())),
        }
        let dev_vars: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        fs::write(dir.join(".dev.vars"), dev_vars).expect("write .dev.vars");
        let port = free_port();
        let child = spawn_wrangler_dev(
            &dir,
            &["-c", "wrangler.dashboard.toml"],
            "../state",
            port,
            &dir.join("wrangler-dev.log"),
        );
        println!(
            "e2e: started the dashboard (pid {}) on 127.0.0.1:{port}",
            child.id()
        );
        let mut dashboard = Dashboard {
            dir,
            port,
            child: Some(child),
        };
        let started = Instant::now();
        wait_for("the dashboard to answer", Duration::from_secs(90), || {
            if let Some(child) = dashboard.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "dashboard wrangler dev exited early ({status}):\n{}",
                        dashboard.log()
                    );
                }
            }
            dashboard
                .get("/health", None)
                .ok()
                .filter(|p| p.status == 200)
        });
        println!("e2e: dashboard ready after {:.1?}", started.elapsed());
        dashboard
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// GET `path` with the given `Authorization` value (or none).
    pub fn get(&self, path: &str, authorization: Option<&str>) -> Result<Page, ureq::Error> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut request = agent.get(&self.url(path));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request.call()?;
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        Ok(Page {
            status: response.status().as_u16(),
            headers,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        })
    }

    /// GET `path` with the test password; panics when the request fails.
    pub fn get_ok(&self, path: &str) -> Page {
        self.get(path, Some(&basic_auth("tester", TEST_PASSWORD)))
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    /// The dashboard's wrangler output.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("wrangler-dev.log")).unwrap_or_default()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "---- dashboard wrangler dev output (last lines) ----\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        if let Some(mut child) = self.child.take() {
            stop_process_group(&mut child);
        }
    }
}
