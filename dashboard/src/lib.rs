//! # dashboard-core — the dashboard's pure core
//!
//! Everything the dashboard Worker decides, as plain Rust with no `worker` dependency, tested
//! natively. The Worker (`dashboard-worker`) only reads bindings, runs the queries a
//! [`plan::DataPlan`] lists (D1 and the Analytics Engine SQL API) and sends the HTML back.
//!
//! - [`route`]: which page a request asks for, with every parameter validated.
//! - [`pages`]: the registry of pages: kinds, URLs, test examples, and page → model → HTML.
//! - [`auth`]: the access decision (fails closed; HTTP Basic, constant-time compare).
//! - [`lifecycle`]: an error group's resolve / mute form, its CSRF token and its D1 update.
//! - [`range`]: the time ranges a user can pick and the hour-aligned windows they cover.
//! - [`columns`]: the Analytics Engine columns the dashboard reads (from the column map).
//! - [`queries`]: every SQL text, in both dialects (Analytics Engine and SQLite/D1).
//! - [`plan`]: which queries a page runs (at most three per store, checked by tests).
//! - [`sqlapi`]: the SQL API's URL and response parsing.
//! - [`rows`]: reading result rows whatever their number encoding.
//! - [`stats`]: weighted percentiles.
//! - [`model`]: query results turned into page models.
//! - [`audience`]: the owner-analytics pages' models (users, retention, funnels, sources).
//! - [`funnel`]: the funnel configuration (`FUNNELS`) and the rule of a user's progress.
//! - [`table`]: tables as data, for CSV export and the owner-analytics pages.
//! - [`chart`]: inline SVG charts.
//! - [`html`]: escaping and the pages.
//! - [`headers`]: security headers.
#![warn(missing_docs)]

pub mod audience;
pub mod auth;
pub mod chart;
pub mod columns;
pub mod funnel;
pub mod headers;
pub mod html;
pub mod lifecycle;
pub mod model;
pub mod pages;
pub mod plan;
pub mod queries;
pub mod range;
pub mod route;
pub mod rows;
pub mod sqlapi;
pub mod stats;
pub mod table;
pub mod timefmt;
pub mod urls;

/// The stylesheet every page links (served at [`route::STYLESHEET_PATH`]).
pub const STYLESHEET: &str = include_str!("../assets/dashboard.css");
/// The favicon (served at [`route::ICON_PATH`]).
pub const ICON_SVG: &str = include_str!("../assets/icon.svg");
