//! # dashboard-worker — the dashboard, served by a Worker of its own
//!
//! A thin adapter around `dashboard-core`: it reads the request and the bindings, asks the core
//! for the access decision and the page's data plan, runs the plan (the D1 queries as one
//! `batch()`, the Analytics Engine queries concurrently on the SQL API, or on the local mirror in
//! D1 under `make dev`), and returns the HTML the core renders with the core's security headers.

use dashboard_core::auth::{self, AuthDecision};
use dashboard_core::headers::{security_headers, Kind};
use dashboard_core::html::{self, Footer};
use dashboard_core::plan::{self, AeSource, DataPlan, Query, Results, Settings, Store};
use dashboard_core::route::{self, Route};
use dashboard_core::rows::Row;
use dashboard_core::sqlapi::{self, QueryError};
use dashboard_core::{lifecycle, pages, ICON_SVG, STYLESHEET};
use futures_util::future::{join, join_all};
use ingest_policy::SqlValue;
use wasm_bindgen::JsValue;
use worker::{
    console_error, event, Context, D1Database, Env, Fetch, Headers, Method, Request, RequestInit,
    Response, Result,
};

/// The D1 binding (the pipeline's database).
pub const DB_BINDING: &str = "DB";

fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|s| !s.is_empty())
}

fn respond(status: u16, body: Vec<u8>, content_type: &str, kind: Kind) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", content_type)?;
    for (name, value) in security_headers(kind) {
        headers.set(name, value)?;
    }
    Ok(Response::from_bytes(body)?
        .with_status(status)
        .with_headers(headers))
}

fn html_response(status: u16, html: String) -> Result<Response> {
    respond(
        status,
        html.into_bytes(),
        "text/html; charset=utf-8",
        Kind::Page,
    )
}

fn status_page(status: u16, title: &str, message: &str) -> Result<Response> {
    html_response(status, html::status_page(status, title, message))
}

/// `POST /errors/<fingerprint>/status`, once the password was checked: the form's CSRF token
/// and action ([`lifecycle::read_form`]), the change in D1, then a redirect (303) to the group.
async fn group_status(
    mut req: Request,
    env: &Env,
    fingerprint: &str,
    password: &str,
) -> Result<Response> {
    let body = req.bytes().await.unwrap_or_default();
    let key = lifecycle::CsrfKey::from_password(password);
    let action = match lifecycle::read_form(&body, fingerprint, &key) {
        Ok(action) => action,
        Err(error) => {
            let title = if error.status() == 403 {
                "Forbidden"
            } else {
                "Bad request"
            };
            return status_page(error.status(), title, &error.to_string());
        }
    };
    let statement = lifecycle::statement(fingerprint, action, js_sys::Date::now() as i64);
    let db = match env.d1(DB_BINDING) {
        Ok(db) => db,
        Err(error) => return status_page(503, "Data unavailable", &error.to_string()),
    };
    let params: Vec<JsValue> = statement.params.iter().map(bind).collect();
    let run = match db.prepare(statement.sql.as_str()).bind(&params) {
        Ok(prepared) => prepared.run().await,
        Err(error) => Err(error),
    };
    if let Err(error) = run {
        console_error!("dashboard: status change failed: {error}");
        return status_page(
            503,
            "Data unavailable",
            "The change could not be saved; try again.",
        );
    }
    let headers = Headers::new();
    headers.set("Location", &format!("/errors/{fingerprint}"))?;
    for (name, value) in security_headers(Kind::Page) {
        headers.set(name, value)?;
    }
    Ok(Response::empty()?.with_status(303).with_headers(headers))
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let started = js_sys::Date::now();
    let url = req.inner().url();
    let (path, query) = dashboard_core::urls::path_and_query(&url);
    let method = req.method();
    let route = route::route(method.as_ref(), path, query);
    // The liveness probe is the one thing served without the password; it shows no data.
    if route == Route::Health {
        return respond(
            200,
            b"ok\n".to_vec(),
            "text/plain; charset=utf-8",
            Kind::Page,
        );
    }
    let password = setting(&env, "DASHBOARD_PASSWORD");
    let authorization = req.headers().get("Authorization").ok().flatten();
    let decision = auth::check(password.as_deref(), authorization.as_deref());
    if let Some(status) = decision.refusal_status() {
        let challenge = decision == AuthDecision::Challenge;
        let (title, message) = if challenge {
            (
                "Password required",
                "Sign in with the dashboard password (any user name).",
            )
        } else {
            (
                "Dashboard not configured",
                "Set the DASHBOARD_PASSWORD secret (at least 12 characters) to use the dashboard.",
            )
        };
        let mut response = html_response(status, html::refusal_page(status, title, message))?;
        if challenge {
            response
                .headers_mut()
                .set("WWW-Authenticate", &auth::challenge_header())?;
        }
        return Ok(response);
    }
    if let (Route::GroupStatus { fingerprint }, Some(password)) = (&route, &password) {
        return group_status(req, &env, fingerprint, password).await;
    }
    let (page, csv_table) = match route {
        Route::Page(page) => (page, None),
        Route::Csv { page, table } => (page, Some(table)),
        Route::Stylesheet => {
            let css = STYLESHEET.as_bytes().to_vec();
            return respond(200, css, "text/css; charset=utf-8", Kind::Asset);
        }
        Route::Icon => {
            let icon = ICON_SVG.as_bytes().to_vec();
            return respond(200, icon, "image/svg+xml", Kind::Asset);
        }
        Route::BadRequest(message) => return status_page(400, "Bad request", &message),
        Route::MethodNotAllowed => {
            return status_page(
                405,
                "Method not allowed",
                "Only GET and HEAD are served (and POST to a group's status).",
            )
        }
        Route::NotFound | Route::Health | Route::GroupStatus { .. } => {
            return status_page(404, "Not found", "No such page.")
        }
    };
    let source = match AeSource::from_config(
        setting(&env, "CF_ACCOUNT_ID").as_deref(),
        setting(&env, "CF_API_TOKEN").as_deref(),
        setting(&env, "CF_API_BASE").as_deref(),
        matches!(
            setting(&env, "AE_LOCAL_MIRROR").as_deref(),
            Some("1" | "true" | "on")
        ),
    ) {
        Ok(source) => source,
        Err(error) => return status_page(500, "Dashboard misconfigured", &error.to_string()),
    };
    let now_ms = started as i64;
    let mut settings = Settings::from_vars(setting(&env, "FUNNELS").as_deref());
    if let Some(password) = &password {
        settings = settings.with_password(password);
    }
    let plan = plan::plan(&page, now_ms, source.dialect(), &settings);
    let results = run(&env, &source, &plan).await;
    for error in results.errors() {
        console_error!("dashboard: {error}");
    }
    if let Some(table) = csv_table {
        let mut response = csv_response(&page, table, now_ms, &results, &settings)?;
        response.headers_mut().set(
            "Server-Timing",
            &format!("total;dur={:.1}", js_sys::Date::now() - started),
        )?;
        return Ok(response);
    }
    let footer = Footer {
        source: source.label().to_string(),
        d1_queries: plan.count(Store::D1),
        ae_queries: plan.count(Store::AnalyticsEngine),
    };
    let html = pages::render(&page, now_ms, &results, &settings, &footer);
    let mut response = html_response(200, html)?;
    response.headers_mut().set(
        "Server-Timing",
        &format!("total;dur={:.1}", js_sys::Date::now() - started),
    )?;
    Ok(response)
}

/// One table of a page as a CSV download; a table whose query failed is a 503 with the reason.
fn csv_response(
    page: &route::Page,
    table: &str,
    now_ms: i64,
    results: &Results,
    settings: &Settings,
) -> Result<Response> {
    match pages::csv(page, table, now_ms, results, settings) {
        Ok(csv) => {
            let mut response =
                respond(200, csv.into_bytes(), "text/csv; charset=utf-8", Kind::Page)?;
            response.headers_mut().set(
                "Content-Disposition",
                &format!(
                    "attachment; filename=\"{}\"",
                    pages::csv_filename(page, table)
                ),
            )?;
            Ok(response)
        }
        Err(pages::CsvError::UnknownTable(name)) => status_page(
            404,
            "Not found",
            &format!("This page has no table {name:?}."),
        ),
        Err(error) => status_page(503, "Data unavailable", &error.to_string()),
    }
}

/// The outcome of one query.
type QueryResult = std::result::Result<Vec<Row>, QueryError>;

/// `error` as the result of each of `count` queries.
fn all_failed(count: usize, error: QueryError) -> Vec<QueryResult> {
    vec![Err(error); count]
}

/// Runs a plan: D1 queries in one batch, Analytics Engine queries concurrently with it.
async fn run(env: &Env, source: &AeSource, plan: &DataPlan) -> Results {
    let db = env
        .d1(DB_BINDING)
        .map_err(|e| QueryError::D1(e.to_string()));
    let d1: Vec<&Query> = plan.in_store(Store::D1).collect();
    let ae: Vec<&Query> = plan.in_store(Store::AnalyticsEngine).collect();
    let d1_future = async {
        match &db {
            Ok(db) => d1_batch(db, &d1).await,
            Err(e) => all_failed(d1.len(), e.clone()),
        }
    };
    let ae_future = async {
        match source {
            AeSource::SqlApi { url, token } => {
                join_all(ae.iter().map(|q| sql_api(url, token, &q.sql))).await
            }
            // The local mirror is a D1 table: its queries go in a batch of their own, so a
            // failure there leaves the D1 sections intact.
            AeSource::LocalMirror => match &db {
                Ok(db) => d1_batch(db, &ae).await,
                Err(e) => all_failed(ae.len(), e.clone()),
            },
            AeSource::NotConfigured => all_failed(ae.len(), QueryError::NotConfigured),
        }
    };
    let (d1_results, ae_results) = join(d1_future, ae_future).await;
    let mut results = Results::default();
    for (q, r) in d1.iter().zip(d1_results).chain(ae.iter().zip(ae_results)) {
        results.insert(q.id, r);
    }
    results
}

fn bind(value: &SqlValue) -> JsValue {
    match value {
        SqlValue::Text(text) => JsValue::from_str(text),
        // D1 rejects BigInt: bind integers as numbers (exact up to 2^53).
        SqlValue::Integer(n) => JsValue::from_f64(*n as f64),
        SqlValue::Real(x) => JsValue::from_f64(*x),
        SqlValue::Blob(bytes) => js_sys::Uint8Array::from(bytes.as_slice()).into(),
        SqlValue::Null => JsValue::NULL,
    }
}

async fn d1_batch(db: &D1Database, queries: &[&Query]) -> Vec<QueryResult> {
    if queries.is_empty() {
        return Vec::new();
    }
    let failed = |e: worker::Error| all_failed(queries.len(), QueryError::D1(e.to_string()));
    let statements = match queries
        .iter()
        .map(|q| {
            let params: Vec<JsValue> = q.params.iter().map(bind).collect();
            db.prepare(q.sql.as_str()).bind(&params)
        })
        .collect::<Result<Vec<_>>>()
    {
        Ok(statements) => statements,
        Err(e) => return failed(e),
    };
    match db.batch(statements).await {
        Ok(results) => results
            .into_iter()
            .map(|r| match r.error() {
                Some(e) => Err(QueryError::D1(e)),
                None => r
                    .results::<Row>()
                    .map_err(|e| QueryError::D1(e.to_string())),
            })
            .collect(),
        Err(e) => failed(e),
    }
}

/// One query on the SQL API, given at most [`sqlapi::SQL_API_TIMEOUT_MS`]: then the request is
/// aborted and the page shows the timeout in the query's section.
async fn sql_api(url: &str, token: &str, sql: &str) -> QueryResult {
    use futures_util::future::{select, Either};
    let transport = |e: worker::Error| QueryError::Transport(e.to_string());
    let headers = Headers::new();
    headers
        .set("Authorization", &format!("Bearer {token}"))
        .map_err(transport)?;
    headers
        .set("Content-Type", "text/plain; charset=utf-8")
        .map_err(transport)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(sql)));
    let request = Request::new_with_init(url, &init).map_err(transport)?;
    let controller = worker::AbortController::default();
    let signal = controller.signal();
    let exchange = std::pin::pin!(async {
        let mut response = Fetch::Request(request)
            .send_with_signal(&signal)
            .await
            .map_err(transport)?;
        let status = response.status_code();
        let body = response.text().await.map_err(transport)?;
        Ok::<_, QueryError>((status, body))
    });
    let limit = sqlapi::SQL_API_TIMEOUT_MS;
    let timer = std::pin::pin!(worker::Delay::from(std::time::Duration::from_millis(
        u64::from(limit)
    )));
    match select(exchange, timer).await {
        Either::Left((exchanged, _)) => {
            let (status, body) = exchanged?;
            sqlapi::parse_response(status, &body)
        }
        Either::Right(_) => {
            controller.abort();
            Err(QueryError::Timeout(limit))
        }
    }
}
