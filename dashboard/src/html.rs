//! HTML: escaping and the pages. Every value that did not come from this file is escaped with
//! [`escape`] (text and attributes alike; attributes are always double-quoted) and query values
//! in links are percent-encoded first. Pages load nothing but the stylesheet and the icon, run no
//! script, and work under the strict policy in [`crate::headers`].

use crate::audience::{money, FunnelsPage, RetentionPage, SourcesPage, UsersPage};
use crate::chart::{bar_chart, line_chart, Series, PALETTE};
use crate::model::{ErrorsPage, GroupPage, GroupRow, Overview, PipelinePage, Section};
use crate::pages::bot_param;
use crate::pages::csv_url;
use crate::queries::ErrorSort;
use crate::range::Range;
use crate::route::{encode, is_fingerprint, Page, ICON_PATH, MAX_BOT_BYTES, STYLESHEET_PATH};
use crate::table::Table;
use crate::timefmt::{axis_label, display};

/// Escapes text for HTML text and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Longest message shown in a table cell (cut on a character boundary).
const CELL_BYTES: usize = 200;

fn cell(text: &str) -> String {
    escape(&analytics_core::text::ellipsize(text, CELL_BYTES))
}

/// `12,345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration: `—` when unknown, `850 ms`, `1.25 s`, `3.2 min`.
pub fn duration(ms: Option<f64>) -> String {
    match ms.filter(|v| v.is_finite()) {
        None => "—".into(),
        Some(v) if v.abs() < 1000.0 => format!("{v:.0} ms"),
        Some(v) if v.abs() < 60_000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) => format!("{:.1} min", v / 60_000.0),
    }
}

/// A number with up to one decimal: `—` when unknown.
pub fn decimal(v: Option<f64>) -> String {
    match v.filter(|v| v.is_finite()) {
        None => "—".into(),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// A percentage with one decimal: `—` when unknown.
pub fn percent(v: Option<f64>) -> String {
    match v.filter(|v| v.is_finite()) {
        None => "—".into(),
        Some(v) => format!("{:.1} %", v * 100.0),
    }
}

/// Facts every page footer states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Where the Analytics Engine data came from.
    pub source: String,
    /// D1 queries the page ran.
    pub d1_queries: usize,
    /// Analytics Engine queries the page ran.
    pub ae_queries: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Overview,
    Users,
    Retention,
    Funnels,
    Sources,
    Errors,
    Pipeline,
    None,
}

fn layout(title: &str, nav: Nav, bot: Option<&str>, body: &str, footer: Option<&Footer>) -> String {
    // The navigation keeps the bot filter: every page of one bot stays that bot's.
    let filter = bot
        .map(|b| format!("?bot={}", encode(b)))
        .unwrap_or_default();
    let link = |href: &str, label: &str, this: Nav| {
        let current = if nav == this {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!(
            "<a href=\"{}\"{current}>{label}</a>",
            escape(&format!("{href}{filter}"))
        )
    };
    let foot = match footer {
        Some(f) => format!(
            "<footer>Times in UTC · Analytics Engine data: {} · this page ran {} D1 and {} Analytics Engine queries</footer>",
            escape(&f.source),
            f.d1_queries,
            f.ae_queries
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Bot analytics</title>\
         <link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">\
         <link rel=\"icon\" href=\"{ICON_PATH}\" type=\"image/svg+xml\"></head>\
         <body><header><nav><span class=\"brand\">Bot analytics</span>{}{}{}{}{}{}{}</nav></header>\
         <main>{body}</main>{foot}</body></html>\n",
        escape(title),
        link("/", "Overview", Nav::Overview),
        link("/users", "Users", Nav::Users),
        link("/retention", "Retention", Nav::Retention),
        link("/funnels", "Funnels", Nav::Funnels),
        link("/sources", "Sources", Nav::Sources),
        link("/errors", "Errors", Nav::Errors),
        link("/pipeline", "Pipeline", Nav::Pipeline),
    )
}

fn range_picker(path: &str, current: Range, bot: Option<&str>) -> String {
    let mut out = String::from("<nav class=\"ranges\" aria-label=\"Range\">");
    for r in Range::ALL {
        let here = if r == current {
            " aria-current=\"true\""
        } else {
            ""
        };
        let href = format!("{path}?range={}{}", r.as_param(), bot_param(bot));
        out.push_str(&format!(
            "<a href=\"{}\"{here}>{}</a>",
            escape(&href),
            r.as_param()
        ));
    }
    out.push_str("</nav>");
    out
}

/// The bot filter of a page: a form (GET `action`, keeping `hidden` parameters) with the bot's
/// name, and a link back to every bot when one is picked.
fn bot_filter(action: &str, hidden: &[(&str, &str)], bot: Option<&str>) -> String {
    let mut out = format!(
        "<form class=\"filter\" method=\"get\" action=\"{}\">",
        escape(action)
    );
    for (name, value) in hidden {
        out.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        ));
    }
    out.push_str(&format!(
        "<label>Bot <input name=\"bot\" value=\"{}\" placeholder=\"every bot\" maxlength=\"{MAX_BOT_BYTES}\" pattern=\"[A-Za-z0-9_.\\-]+\"></label> <button type=\"submit\">Show</button>",
        escape(bot.unwrap_or(""))
    ));
    if bot.is_some() {
        let all: Vec<String> = hidden
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let href = if all.is_empty() {
            action.to_string()
        } else {
            format!("{action}?{}", all.join("&"))
        };
        out.push_str(&format!(" <a href=\"{}\">every bot</a>", escape(&href)));
    }
    out.push_str("</form>");
    out
}

/// A bot's name as a table cell, linking to `path` filtered to that bot.
fn bot_cell(path: &str, bot: &str) -> String {
    if bot.is_empty() {
        return "<span class=\"muted\">—</span>".into();
    }
    let href = format!("{path}?bot={}", encode(bot));
    format!("<a href=\"{}\">{}</a>", escape(&href), cell(bot))
}

fn failed(error: &str) -> String {
    format!(
        "<p class=\"failed\">Could not load this: {}</p>",
        cell(error)
    )
}

fn card(label: &str, value: &str, id: &str) -> String {
    format!(
        "<div class=\"card\" id=\"{id}\"><div class=\"value\">{}</div><div class=\"label\">{}</div></div>",
        escape(value),
        escape(label)
    )
}

/// A chart legend: a swatch per series in palette order, with its total when given.
fn legend(items: &[(&str, Option<u64>)]) -> String {
    let mut out = String::from("<ul class=\"legend\">");
    for (i, (label, total)) in items.iter().enumerate() {
        let total = total
            .map(|n| format!(" <span class=\"muted\">{}</span>", count(n)))
            .unwrap_or_default();
        out.push_str(&format!(
            "<li><span class=\"swatch s{}\"></span>{}{total}</li>",
            i % PALETTE,
            escape(label),
        ));
    }
    out.push_str("</ul>");
    out
}

fn group_link(fingerprint: &str, text: &str) -> String {
    if is_fingerprint(fingerprint) {
        format!("<a href=\"/errors/{fingerprint}\">{}</a>", cell(text))
    } else {
        cell(text)
    }
}

fn section<T>(title: &str, id: &str, data: &Section<T>, body: impl FnOnce(&T) -> String) -> String {
    let inner = match data {
        Ok(data) => body(data),
        Err(e) => failed(e),
    };
    format!(
        "<section id=\"{id}\"><h2>{}</h2>{inner}</section>",
        escape(title)
    )
}

/// ` · bot <name>` after a page's range when a bot is picked.
fn bot_title(bot: Option<&str>) -> String {
    bot.map(|b| format!(" · bot {}", escape(b)))
        .unwrap_or_default()
}

/// The overview page.
pub fn overview(page: &Overview, footer: &Footer) -> String {
    let mut body = format!(
        "<div class=\"title\"><h1>Overview <span class=\"muted\">{}{}</span></h1>{}</div>{}",
        escape(page.range.label()),
        bot_title(page.bot.as_deref()),
        range_picker("/", page.range, page.bot.as_deref()),
        bot_filter(
            "/",
            &[("range", page.range.as_param())],
            page.bot.as_deref()
        )
    );
    let today = page
        .daily_users
        .as_ref()
        .ok()
        .and_then(|d| d.last())
        .map(|(_, n)| count(*n))
        .unwrap_or_else(|| "—".into());
    body.push_str("<div class=\"cards\">");
    let totals = page.series.is_ok();
    let or_dash = |n: u64| if totals { count(n) } else { "—".into() };
    body.push_str(&card(
        "updates",
        &or_dash(page.total("update")),
        "card-updates",
    ));
    body.push_str(&card("events", &or_dash(page.events()), "card-events"));
    body.push_str(&card(
        "errors",
        &or_dash(page.total("error")),
        "card-errors",
    ));
    body.push_str(&card(
        "errors per update",
        &percent(page.error_rate()),
        "card-error-rate",
    ));
    body.push_str(&card("active users today (UTC)", &today, "card-users"));
    body.push_str("</div>");

    let hourly = page.range == Range::Day;
    body.push_str(&section(
        "Events per hour, by kind",
        "events",
        &page.series,
        |series| {
            let lines: Vec<Series> = series
                .iter()
                .map(|s| Series {
                    label: &s.kind,
                    values: &s.values,
                })
                .collect();
            let items: Vec<(&str, Option<u64>)> = series
                .iter()
                .map(|s| (s.kind.as_str(), Some(s.total)))
                .collect();
            let chart = line_chart(
                "Events per hour, by kind",
                &page.hours,
                hourly,
                &lines,
                "events/h",
            );
            if series.is_empty() {
                format!("{chart}<p class=\"muted\">No events in this range.</p>")
            } else {
                format!("{chart}{}", legend(&items))
            }
        },
    ));

    body.push_str(&section("Commands and callbacks", "commands", &page.names, |names| {
        if names.is_empty() {
            return "<p class=\"muted\">No commands or button presses in this range.</p>".into();
        }
        let mut t = String::from(
            "<table><thead><tr><th>bot</th><th>kind</th><th>name</th><th class=\"num\">uses</th>\
             <th class=\"num\">handler p50</th><th class=\"num\">handler p95</th></tr></thead><tbody>",
        );
        for n in names {
            let shown = if n.kind == "command" {
                format!("/{}", n.name)
            } else {
                n.name.clone()
            };
            t.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"name\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                bot_cell("/", &n.bot),
                escape(&n.kind),
                cell(&shown),
                count(n.uses),
                duration(n.p50_ms),
                duration(n.p95_ms)
            ));
        }
        t.push_str("</tbody></table><p class=\"muted\">Durations come from the handler timings, which name commands only.</p>");
        t
    }));

    body.push_str(&section(
        "Daily active users",
        "users",
        &page.daily_users,
        |days| {
            let labels: Vec<String> = days.iter().map(|(d, _)| axis_label(*d, false)).collect();
            let values: Vec<f64> = days.iter().map(|(_, n)| *n as f64).collect();
            bar_chart("Distinct users per UTC day", &labels, &values, "users")
        },
    ));

    body.push_str(&section("Error groups seen in this range", "recent-errors", &page.recent_groups, |groups| {
        if groups.is_empty() {
            return "<p class=\"muted\">None. <a href=\"/errors\">All error groups</a></p>".into();
        }
        let mut t = String::from(
            "<table><thead><tr><th>bot</th><th>kind</th><th>message</th><th class=\"num\">events</th><th>last seen</th></tr></thead><tbody>",
        );
        for g in groups {
            t.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                bot_cell("/", &g.bot),
                cell(&g.kind),
                group_link(&g.fingerprint, &g.message),
                count(g.count),
                display(g.last_seen)
            ));
        }
        t.push_str("</tbody></table><p><a href=\"/errors\">All error groups</a></p>");
        t
    }));
    body.push_str(&csv_links(&Page::Overview {
        range: page.range,
        bot: page.bot.clone(),
    }));
    layout(
        "Overview",
        Nav::Overview,
        page.bot.as_deref(),
        &body,
        Some(footer),
    )
}

fn groups_table(groups: &[GroupRow]) -> String {
    let mut t = String::from(
        "<table class=\"groups\"><thead><tr><th>kind</th><th>message</th><th class=\"num\">count</th>\
         <th class=\"num\">users</th><th>first seen</th><th>last seen</th><th>release</th><th>bot</th><th>status</th></tr></thead><tbody>",
    );
    for g in groups {
        t.push_str(&format!(
            "<tr><td>{}</td><td>{}<div class=\"muted\">{}</div></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            cell(&g.kind),
            group_link(&g.fingerprint, &g.message),
            cell(&g.location),
            count(g.count),
            count(g.users),
            display(g.first_seen),
            display(g.last_seen),
            cell(&g.release),
            bot_cell("/errors", &g.bot),
            cell(&status_label(g))
        ));
    }
    t.push_str("</tbody></table>");
    t
}

/// The errors page.
pub fn errors(page: &ErrorsPage, footer: &Footer) -> String {
    let bot = page.bot.as_deref();
    let release_param = page
        .release
        .as_deref()
        .map(|r| format!("&release={}", encode(r)))
        .unwrap_or_default()
        + &bot_param(bot);
    let sort_link = |sort: ErrorSort, label: &str| {
        let here = if sort == page.sort {
            " aria-current=\"true\""
        } else {
            ""
        };
        format!(
            "<a href=\"{}\"{here}>{label}</a>",
            escape(&format!("/errors?sort={}{release_param}", sort.as_param()))
        )
    };
    let mut body = format!(
        "<div class=\"title\"><h1>Errors<span class=\"muted\">{}</span></h1></div>",
        bot_title(bot)
    );
    let mut hidden = vec![("sort", page.sort.as_param())];
    if let Some(release) = &page.release {
        hidden.push(("release", release));
    }
    body.push_str(&bot_filter("/errors", &hidden, bot));
    let bot_input = bot
        .map(|b| {
            format!(
                "<input type=\"hidden\" name=\"bot\" value=\"{}\">",
                escape(b)
            )
        })
        .unwrap_or_default();
    body.push_str(&format!(
        "<form class=\"filter\" method=\"get\" action=\"/errors\"><input type=\"hidden\" name=\"sort\" value=\"{}\">{bot_input}\
         <label>Release <select name=\"release\"><option value=\"\">all releases</option>",
        page.sort.as_param()
    ));
    let mut listed = false;
    if let Ok(releases) = &page.releases {
        for (release, events) in releases {
            let selected = page.release.as_deref() == Some(release.as_str());
            listed |= selected;
            body.push_str(&format!(
                "<option value=\"{}\"{}>{} ({} events)</option>",
                escape(release),
                if selected { " selected" } else { "" },
                cell(release),
                count(*events)
            ));
        }
    }
    if let (Some(release), false) = (&page.release, listed) {
        body.push_str(&format!(
            "<option value=\"{}\" selected>{}</option>",
            escape(release),
            cell(release)
        ));
    }
    body.push_str("</select></label> <button type=\"submit\">Filter</button></form>");
    body.push_str(&format!(
        "<p class=\"sort\">Sort by {} · {}</p>",
        sort_link(ErrorSort::LastSeen, "last seen"),
        sort_link(ErrorSort::Count, "count")
    ));
    if let Err(e) = &page.releases {
        body.push_str(&failed(e));
    }
    let title = match &page.release {
        Some(r) => format!(
            "Groups seen in release {}",
            analytics_core::text::ellipsize(r, 80)
        ),
        None => "Groups".to_string(),
    };
    body.push_str(&section(&title, "groups", &page.groups, |groups| {
        if groups.is_empty() {
            "<p class=\"muted\">No error groups.</p>".into()
        } else {
            format!(
                "{}<p class=\"muted\">Counts are all-time; users are distinct users among the events still kept.</p>",
                groups_table(groups)
            )
        }
    }));
    body.push_str(&csv_links(&Page::Errors {
        sort: page.sort,
        release: page.release.clone(),
        bot: page.bot.clone(),
    }));
    layout("Errors", Nav::Errors, bot, &body, Some(footer))
}

/// A group's status as shown: `resolved in 1.2.0`, `regressed`, `muted`, `unresolved`.
fn status_label(g: &GroupRow) -> String {
    match g.status.as_str() {
        "resolved" if !g.resolved_in_release.is_empty() => format!(
            "resolved in {}",
            analytics_core::text::ellipsize(&g.resolved_in_release, 40)
        ),
        "" => "unresolved".into(),
        other => analytics_core::text::ellipsize(other, 20),
    }
}

/// The status form of a group: one button per action its status offers, with the CSRF token.
fn status_form(fingerprint: &str, status: &str, token: &str) -> String {
    let mut form = format!(
        "<form class=\"status\" method=\"post\" action=\"/errors/{}/status\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(fingerprint),
        escape(token)
    );
    for action in crate::lifecycle::Action::offered(status) {
        form.push_str(&format!(
            "<button type=\"submit\" name=\"action\" value=\"{}\" id=\"action-{}\">{}</button> ",
            action.as_str(),
            action.as_str(),
            action.label()
        ));
    }
    form.push_str("</form>");
    form
}

/// One error group's page.
pub fn group(page: &GroupPage, footer: &Footer) -> String {
    let path = format!("/errors/{}", page.fingerprint);
    let mut body = String::new();
    let group = match &page.group {
        Ok(Some(g)) => Some(g),
        Ok(None) => {
            body.push_str(&format!(
                "<h1>No such error group</h1><p>No group has the fingerprint {}. <a href=\"/errors\">All error groups</a></p>",
                escape(&page.fingerprint)
            ));
            None
        }
        Err(e) => {
            body.push_str(&format!("<h1>Error group</h1>{}", failed(e)));
            None
        }
    };
    if let Some(g) = group {
        body.push_str(&format!(
            "<div class=\"title\"><h1><span class=\"kind\">{}</span> {}</h1>{}</div>\
             <p class=\"location\">{}</p>",
            cell(&g.kind),
            cell(&g.message),
            range_picker(&path, page.range, page.bot.as_deref()),
            cell(&g.location)
        ));
        body.push_str("<div class=\"cards\">");
        body.push_str(&card("events", &count(g.count), "card-count"));
        body.push_str(&card("users affected", &count(g.users), "card-users"));
        body.push_str(&card("first seen", &display(g.first_seen), "card-first"));
        body.push_str(&card("last seen", &display(g.last_seen), "card-last"));
        body.push_str(&card(
            "latest release",
            &analytics_core::text::ellipsize(&g.release, 40),
            "card-release",
        ));
        body.push_str(&card(
            "bot",
            &analytics_core::text::ellipsize(&g.bot, 40),
            "card-bot",
        ));
        body.push_str(&card("status", &status_label(g), "card-status"));
        body.push_str("</div>");
        if let Some(token) = &page.csrf {
            body.push_str(&status_form(&page.fingerprint, &g.status, token));
        }
        let hourly = page.range == Range::Day;
        body.push_str(&section(
            &format!("Occurrences per hour, {}", page.range.label()),
            "occurrences",
            &page.per_hour,
            |values| {
                line_chart(
                    "Occurrences per hour",
                    &page.hours,
                    hourly,
                    &[Series {
                        label: "occurrences",
                        values,
                    }],
                    "events/h",
                )
            },
        ));
        body.push_str(&section("Recent events", "events", &page.events, |events| {
            if events.is_empty() {
                return "<p class=\"muted\">No events kept (older ones are deleted by retention).</p>".into();
            }
            let mut t = String::from(
                "<table><thead><tr><th>occurred</th><th>message</th><th>user</th><th>chat</th><th>release</th><th>event id</th></tr></thead><tbody>",
            );
            for e in events {
                t.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"id\">{}</td></tr>",
                    display(e.occurred_at),
                    cell(&e.message),
                    cell(&e.user),
                    cell(&e.chat),
                    cell(&e.release),
                    cell(&e.event_id)
                ));
            }
            t.push_str("</tbody></table>");
            t
        }));
    }
    body.push_str(&csv_links(&Page::ErrorGroup {
        fingerprint: page.fingerprint.clone(),
        range: page.range,
        bot: page.bot.clone(),
    }));
    layout(
        "Error group",
        Nav::Errors,
        page.bot.as_deref(),
        &body,
        Some(footer),
    )
}

/// The pipeline health page.
pub fn pipeline(page: &PipelinePage, footer: &Footer) -> String {
    let mut body = format!(
        "<div class=\"title\"><h1>Pipeline health <span class=\"muted\">{}{}</span></h1>{}</div>{}",
        escape(page.range.label()),
        bot_title(page.bot.as_deref()),
        range_picker("/pipeline", page.range, page.bot.as_deref()),
        bot_filter(
            "/pipeline",
            &[("range", page.range.as_param())],
            page.bot.as_deref()
        )
    );
    body.push_str(&section(
        "Webhooks (getWebhookInfo, every 5 minutes)",
        "webhooks",
        &page.webhooks,
        |rows| {
            if rows.is_empty() {
                return "<p class=\"muted\">No webhook checked yet: the consumer's 5-minute cron checks each bot whose token it has (docs/alerts.md).</p>".into();
            }
            let mut t = String::from(
                "<table class=\"webhooks\"><thead><tr><th>bot</th><th class=\"num\">pending updates</th><th>last error</th><th>error</th><th>checked</th></tr></thead><tbody>",
            );
            for w in rows {
                let error = if w.ok {
                    cell(&w.last_error_message)
                } else {
                    cell(&format!("getWebhookInfo failed: {}", w.problem))
                };
                t.push_str(&format!(
                    "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    cell(&w.bot),
                    if w.ok { count(w.pending) } else { "–".into() },
                    w.last_error_at.map(display).unwrap_or_else(|| "none".into()),
                    error,
                    display(w.checked_at)
                ));
            }
            t.push_str("</tbody></table>");
            t
        },
    ));
    body.push_str(&section(
        "Telegram → bot delivery (update received minus its date)",
        "telegram-lag",
        &page.telegram_lag,
        |hours| {
            if hours.is_empty() {
                return "<p class=\"muted\">No dated update received in this range.</p>".into();
            }
            let ms = |v: Option<f64>| v.map(|v| count(v.round() as u64)).unwrap_or_else(|| "—".into());
            let mut t = String::from(
                "<table class=\"telegram-lag\"><thead><tr><th>hour (UTC)</th><th class=\"num\">updates</th><th class=\"num\">p50 lag (ms)</th><th class=\"num\">p95 lag (ms)</th></tr></thead><tbody>",
            );
            for h in hours {
                t.push_str(&format!(
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    display(h.hour),
                    count(h.updates),
                    ms(h.p50_ms),
                    ms(h.p95_ms)
                ));
            }
            t.push_str("</tbody></table><p class=\"muted\">Telegram dates an update in whole seconds, so a lag is good to a second. Only updates with a date of their own count (messages, edits, channel posts, membership changes, join requests, reactions); button presses and inline queries have none.</p>");
            t
        },
    ));
    body.push_str(&section(
        "Queue messages stored",
        "messages",
        &page.envelopes,
        |e| {
            let dropped: u64 = e.dropped.iter().map(|(_, n)| n).sum();
            let mut out = String::from("<div class=\"cards\">");
            out.push_str(&card("messages", &count(e.messages), "card-messages"));
            out.push_str(&card("events in them", &count(e.events), "card-events"));
            out.push_str(&card(
                "events per message (mean)",
                &decimal(e.mean),
                "card-mean",
            ));
            out.push_str(&card(
                "p50 / p95 / max",
                &format!(
                    "{} / {} / {}",
                    decimal(e.p50),
                    decimal(e.p95),
                    decimal(e.max)
                ),
                "card-per-message",
            ));
            out.push_str(&card(
                "events dropped by producers",
                &count(dropped),
                "card-dropped",
            ));
            out.push_str("</div>");
            out.push_str("<h3>Events dropped, by reason</h3><table class=\"compact\"><tbody>");
            for (reason, n) in &e.dropped {
                out.push_str(&format!(
                    "<tr><td>{reason}</td><td class=\"num\">{}</td></tr>",
                    count(*n)
                ));
            }
            out.push_str("</tbody></table>");
            if !e.histogram.is_empty() {
                let labels: Vec<String> = e.histogram.iter().map(|(n, _)| n.to_string()).collect();
                let values: Vec<f64> = e.histogram.iter().map(|(_, m)| *m as f64).collect();
                out.push_str("<h3>Messages by events per message</h3>");
                out.push_str(&bar_chart(
                    "Messages by events per message",
                    &labels,
                    &values,
                    "messages",
                ));
            }
            out
        },
    ));
    body.push_str(&section("Delivery lag (stored minus occurred)", "lag", &page.lag, |lag| {
        let mut out = String::from("<div class=\"cards\">");
        out.push_str(&card("events", &count(lag.events), "card-lag-events"));
        out.push_str(&card("p50", &duration(lag.p50_ms), "card-lag-p50"));
        out.push_str(&card("p95", &duration(lag.p95_ms), "card-lag-p95"));
        out.push_str(&card("p99", &duration(lag.p99_ms), "card-lag-p99"));
        out.push_str(&card("max", &duration(lag.max_ms), "card-lag-max"));
        out.push_str("</div><p class=\"muted\">Resolution one second: Analytics Engine's timestamp column has whole seconds.</p>");
        out
    }));
    let hourly = page.range == Range::Day;
    body.push_str(&section(
        "Per hour",
        "per-hour",
        &page.lag_per_hour,
        |(events, p50, p95)| {
            let stored = line_chart(
                "Events stored per hour",
                &page.hours,
                hourly,
                &[Series {
                    label: "events stored",
                    values: events,
                }],
                "events/h",
            );
            let to_s = |v: &Vec<f64>| v.iter().map(|x| x / 1000.0).collect::<Vec<f64>>();
            let (p50, p95) = (to_s(p50), to_s(p95));
            let lag = line_chart(
                "Delivery lag per hour",
                &page.hours,
                hourly,
                &[
                    Series {
                        label: "lag p50",
                        values: &p50,
                    },
                    Series {
                        label: "lag p95",
                        values: &p95,
                    },
                ],
                "seconds",
            );
            format!(
                "<h3>Events stored</h3>{stored}<h3>Delivery lag</h3>{lag}{}",
                legend(&[("lag p50", None), ("lag p95", None)])
            )
        },
    ));
    body.push_str(&section("Rejected and dead-lettered messages", "rejected", &page.rejected, |rows| {
        if rows.is_empty() {
            return "<p class=\"muted\">None in this range.</p>".into();
        }
        let mut t = String::from(
            "<table><thead><tr><th>queue</th><th>reason</th><th class=\"num\">messages</th><th>last</th></tr></thead><tbody>",
        );
        for r in rows {
            t.push_str(&format!(
                "<tr><td>{}{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                cell(&r.queue),
                if r.dead_letter { " <span class=\"tag\">dead letter</span>" } else { "" },
                cell(&r.reason),
                count(r.messages),
                display(r.last_seen)
            ));
        }
        t.push_str("</tbody></table>");
        t
    }));
    body.push_str(&section("Latest rejected messages", "rejected-recent", &page.recent_rejected, |rows| {
        if rows.is_empty() {
            return "<p class=\"muted\">None in this range.</p>".into();
        }
        let mut t = String::from(
            "<table><thead><tr><th>stored</th><th>queue</th><th>reason</th><th>detail</th><th class=\"num\">payload</th></tr></thead><tbody>",
        );
        for r in rows {
            t.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}<div class=\"muted id\">{}</div></td><td class=\"num\">{} B</td></tr>",
                display(r.received_at),
                cell(&r.queue),
                cell(&r.reason),
                cell(&r.detail),
                cell(&r.message_id),
                count(r.payload_bytes)
            ));
        }
        t.push_str("</tbody></table>");
        t
    }));
    body.push_str(&csv_links(&Page::Pipeline {
        range: page.range,
        bot: page.bot.clone(),
    }));
    layout(
        "Pipeline health",
        Nav::Pipeline,
        page.bot.as_deref(),
        &body,
        Some(footer),
    )
}

/// A page's CSV links, one per table.
fn csv_links(page: &Page) -> String {
    let url = page.url();
    let links: Vec<String> = page
        .kind()
        .tables()
        .iter()
        .map(|t| {
            format!(
                "<a href=\"{}\" download>{}</a>",
                escape(&csv_url(&url, t)),
                escape(t)
            )
        })
        .collect();
    format!("<p class=\"exports muted\">CSV: {}</p>", links.join(" · "))
}

/// A section holding one table, with its CSV link; `empty` when it has no rows, `note` after it.
fn table_section(title: &str, table: &Table, page_url: &str, empty: &str, note: &str) -> String {
    let inner = match &table.rows {
        Err(e) => failed(e),
        Ok(rows) if rows.is_empty() => format!("<p class=\"muted\">{}</p>", escape(empty)),
        Ok(rows) => format!("{}{note}", table.html(rows)),
    };
    format!(
        "<section id=\"{}\"><h2>{} <a class=\"csv\" href=\"{}\" download>CSV</a></h2>{inner}</section>",
        table.name,
        escape(title),
        escape(&csv_url(page_url, table.name))
    )
}

/// The title line of an owner-analytics page: heading, range picker, bot filter.
fn owner_title(
    title: &str,
    path: &str,
    range: Range,
    range_label: &str,
    bot: Option<&str>,
) -> String {
    format!(
        "<div class=\"title\"><h1>{} <span class=\"muted\">{}{}</span></h1>{}</div>{}",
        escape(title),
        escape(range_label),
        bot_title(bot),
        range_picker(path, range, bot),
        bot_filter(path, &[("range", range.as_param())], bot)
    )
}

/// The Users page.
pub fn users(page: &UsersPage, url: &str, footer: &Footer) -> String {
    let bot = page.bot.as_deref();
    let mut body = owner_title("Users", "/users", page.range, page.range.label(), bot);
    let tables = page.tables();
    body.push_str("<div class=\"cards\">");
    let audience = page.audience.as_ref().ok();
    let or_dash = |f: &dyn Fn(&crate::audience::Audience) -> String| {
        audience.map(f).unwrap_or_else(|| "—".into())
    };
    body.push_str(&card(
        "active today (DAU)",
        &or_dash(&|a| count(a.dau)),
        "card-dau",
    ));
    body.push_str(&card(
        "active in 7 days (WAU)",
        &or_dash(&|a| count(a.wau)),
        "card-wau",
    ));
    body.push_str(&card(
        "active in 30 days (MAU)",
        &or_dash(&|a| count(a.mau)),
        "card-mau",
    ));
    body.push_str(&card(
        "stickiness (DAU/MAU)",
        &or_dash(&|a| percent(a.stickiness())),
        "card-stickiness",
    ));
    body.push_str(&card(
        "blocked the bot now",
        &or_dash(&|a| count(a.blocked_now)),
        "card-blocked",
    ));
    body.push_str(&card(
        "Premium, of users seen in the range",
        &or_dash(&|a| {
            percent((a.premium_known > 0).then(|| a.premium as f64 / a.premium_known as f64))
        }),
        "card-premium",
    ));
    let not_understood = page.not_understood.as_ref().ok().map(|days| {
        let n: u64 = days.iter().map(|d| d.not_understood).sum();
        let m: u64 = days.iter().map(|d| d.messages).sum();
        percent((m > 0).then(|| n as f64 / m as f64))
    });
    body.push_str(&card(
        "not understood, per message",
        &not_understood.unwrap_or_else(|| "—".into()),
        "card-not-understood",
    ));
    body.push_str("</div>");
    if let Ok(days) = &page.days {
        let new: Vec<f64> = days.iter().map(|d| d.new as f64).collect();
        let returning: Vec<f64> = days.iter().map(|d| d.returning as f64).collect();
        let starts: Vec<i64> = days.iter().map(|d| d.day).collect();
        body.push_str(&format!(
            "<section id=\"users-chart\"><h2>New and returning users per UTC day</h2>{}{}</section>",
            line_chart(
                "New and returning users per UTC day",
                &starts,
                false,
                &[
                    Series { label: "new", values: &new },
                    Series { label: "returning", values: &returning },
                ],
                "users",
            ),
            legend(&[("new", None), ("returning", None)])
        ));
    }
    let [daily, not_understood, languages, months] = <[Table; 4]>::try_from(tables)
        .unwrap_or_else(|_| unreachable!("the Users page has four tables"));
    body.push_str(&table_section(
        "Users per UTC day",
        &daily,
        url,
        "No users in this range.",
        "<p class=\"muted\">Active: sent the bot something that day. Returning: active and first seen on an earlier day. From D1, exact.</p>",
    ));
    body.push_str(&table_section(
        "Messages not understood per UTC day",
        &not_understood,
        url,
        "No messages in this range.",
        "<p class=\"muted\">Rate: <code>user/not_understood</code> events per message received (updates of type message), weighted by Analytics Engine's sample interval.</p>",
    ));
    body.push_str(&table_section(
        "Languages of users seen in the range",
        &languages,
        url,
        "No users seen in this range.",
        "",
    ));
    body.push_str(&table_section(
        "Twelve months (daily rollups)",
        &months,
        url,
        "No rollups yet.",
        "<p class=\"muted\">From D1 <code>daily_rollup</code> (kept two years, written by the consumer's daily cron). Revenue in the currency's smallest units.</p>",
    ));
    layout("Users", Nav::Users, bot, &body, Some(footer))
}

/// The Retention page.
pub fn retention(page: &RetentionPage, url: &str, footer: &Footer) -> String {
    let bot = page.bot.as_deref();
    let label = format!(
        "last {} weekly cohorts",
        crate::audience::cohort_count(page.range)
    );
    let mut body = owner_title("Retention", "/retention", page.range, &label, bot);
    let table = page.tables().remove(0);
    body.push_str(&table_section(
        "Weekly cohorts by first seen: share active in week 0–12",
        &table,
        url,
        "No users.",
        "<p class=\"muted\">A cohort: the users first seen in a UTC week (Monday to Sunday). Week n: days 7n to 7n+6 after a user's first day; blank: not begun yet. From D1 (<code>bot_users</code>, <code>user_days</code>), exact.</p>",
    ));
    layout("Retention", Nav::Retention, bot, &body, Some(footer))
}

/// The Funnels page.
pub fn funnels(page: &FunnelsPage, url: &str, footer: &Footer) -> String {
    let bot = page.bot.as_deref();
    let mut body = owner_title("Funnels", "/funnels", page.range, page.range.label(), bot);
    if let Some(error) = &page.config_error {
        body.push_str(&format!(
            "<section id=\"funnel-config\"><h2>The funnel configuration is invalid</h2><p class=\"failed\">{}</p>\
             <p class=\"muted\">Fix <code>FUNNELS</code> in wrangler.dashboard.toml (see docs/dashboard.md), e.g. <code>Checkout: /start &gt; callback menu &gt; order_paid within 7d</code>.</p></section>",
            cell(error)
        ));
    }
    match &page.funnels {
        Err(e) => body.push_str(&format!("<section id=\"funnels\"><h2>Funnels</h2>{}</section>", failed(e))),
        Ok(funnels) if funnels.is_empty() && page.config_error.is_none() => body.push_str(
            "<section id=\"funnels\"><h2>Funnels</h2><p class=\"muted\">No funnels configured: set <code>FUNNELS</code> in wrangler.dashboard.toml, e.g. <code>Checkout: /start &gt; callback menu &gt; order_paid within 7d</code>.</p></section>",
        ),
        Ok(funnels) => {
            for (i, f) in funnels.iter().enumerate() {
                let steps: Vec<String> = f.funnel.steps.iter().map(|s| s.label()).collect();
                let mut t = String::from(
                    "<table class=\"data funnel\"><thead><tr><th>step</th><th>event</th><th class=\"num\">users</th><th class=\"num\">of step 1</th><th class=\"num\">of previous step</th></tr></thead><tbody>",
                );
                for (k, label) in steps.iter().enumerate() {
                    let n = f.overall[k];
                    let previous = if k == 0 { n } else { f.overall[k - 1] };
                    let share = |whole: u64| (whole > 0).then(|| n as f64 / whole as f64);
                    t.push_str(&format!(
                        "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                        k + 1,
                        cell(label),
                        count(n),
                        percent(share(f.overall[0])),
                        percent(share(previous))
                    ));
                }
                t.push_str("</tbody></table>");
                if !f.by_source.is_empty() {
                    t.push_str("<h3>By source (first /start deep link in the range)</h3><table class=\"data by-source\"><thead><tr><th>source</th>");
                    for label in &steps {
                        t.push_str(&format!("<th class=\"num\">{}</th>", cell(label)));
                    }
                    t.push_str("<th class=\"num\">converted</th></tr></thead><tbody>");
                    for (source, counts) in &f.by_source {
                        let shown = if source.is_empty() { "(none)" } else { source };
                        t.push_str(&format!("<tr><td>{}</td>", cell(shown)));
                        for n in counts {
                            t.push_str(&format!("<td class=\"num\">{}</td>", count(*n)));
                        }
                        let last = counts.last().copied().unwrap_or(0);
                        t.push_str(&format!(
                            "<td class=\"num\">{}</td></tr>",
                            percent((counts[0] > 0).then(|| last as f64 / counts[0] as f64))
                        ));
                    }
                    t.push_str("</tbody></table>");
                }
                body.push_str(&format!(
                    "<section id=\"funnel-{i}\"><h2>{} <span class=\"muted\">{} · within {}</span> <a class=\"csv\" href=\"{}\" download>CSV</a></h2>{t}</section>",
                    cell(&f.funnel.name),
                    cell(&steps.join(" → ")),
                    escape(&limit_label(f.funnel.limit_ms)),
                    escape(&csv_url(url, "funnels"))
                ));
            }
            body.push_str("<p class=\"muted\">A user reaches step k when their first times of steps 1…k in the range are in order and step k came within the limit after step 1. From Analytics Engine (users are its index, so sampling keeps or drops a user whole).</p>");
        }
    }
    layout("Funnels", Nav::Funnels, bot, &body, Some(footer))
}

/// `7 d`, `12 h`, `30 min`.
fn limit_label(ms: i64) -> String {
    use crate::timefmt::{DAY_MS, HOUR_MS};
    if ms % DAY_MS == 0 {
        format!("{} d", ms / DAY_MS)
    } else if ms % HOUR_MS == 0 {
        format!("{} h", ms / HOUR_MS)
    } else {
        format!("{} min", ms / 60_000)
    }
}

/// The Sources page.
pub fn sources(page: &SourcesPage, url: &str, footer: &Footer) -> String {
    let bot = page.bot.as_deref();
    let label = format!("users first seen in the {}", page.range.label());
    let mut body = owner_title("Sources", "/sources", page.range, &label, bot);
    let tables = page.tables();
    if let Ok(revenue) = &page.revenue {
        let mut totals: Vec<(String, f64)> = Vec::new();
        for r in revenue {
            match totals.iter_mut().find(|(c, _)| *c == r.currency) {
                Some((_, t)) => *t += r.paid - r.refunded,
                None => totals.push((r.currency.clone(), r.paid - r.refunded)),
            }
        }
        let text = if totals.is_empty() {
            "—".to_string()
        } else {
            money(&totals)
        };
        body.push_str(&format!(
            "<div class=\"cards\">{}</div>",
            card("net revenue from these users", &text, "card-revenue")
        ));
    }
    for (table, title, empty, note) in [
        (&tables[0], "New users by first-touch source", "No new users in this range.", "<p class=\"muted\">Source: the deep-link parameter of a user's first <code>/start</code> with one; (none): never had one. Retained week 1: active on day 7–13 after their first day. Payers: paid at least once. From D1, exact.</p>"),
        (&tables[1], "Revenue of these users by source and currency", "No payments from these users.", "<p class=\"muted\">In the currency's smallest units (as Telegram sends <code>total_amount</code>); net = paid − refunded.</p>"),
    ] {
        body.push_str(&table_section(title, table, url, empty, note));
    }
    layout("Sources", Nav::Sources, bot, &body, Some(footer))
}

/// A page without data for a signed-in user: a bad request, a missing page (`message` is
/// escaped here).
pub fn status_page(status: u16, title: &str, message: &str) -> String {
    let body = format!(
        "<h1>{status} {}</h1><p>{}</p>",
        escape(title),
        escape(&analytics_core::text::ellipsize(message, 300))
    );
    layout(title, Nav::None, None, &body, None)
}

/// The page of a refused request (401, 503): bare HTML that loads nothing (the stylesheet
/// itself needs the password) and shows nothing but why.
pub fn refusal_page(status: u16, title: &str, message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {}</title></head>\
         <body><h1>{status} {}</h1><p>{}</p></body></html>\n",
        escape(title),
        escape(title),
        escape(&analytics_core::text::ellipsize(message, 300))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;
    use crate::plan::{QueryId, Results};
    use crate::rows::rows_from_json as rows;
    use serde_json::json;

    const NOW: i64 = 1_764_000_000_000;
    const HOSTILE: &str = "<script>alert(1)</script>\"'&";

    fn footer() -> Footer {
        Footer {
            source: "<src>".into(),
            d1_queries: 1,
            ae_queries: 3,
        }
    }

    fn assert_clean(html: &str) {
        assert!(!html.contains("<script"), "unescaped script tag");
        assert!(!html.contains("alert(1)</script>"));
        assert!(
            html.contains("&lt;script&gt;"),
            "the hostile text is shown, escaped"
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape(HOSTILE),
            "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"
        );
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(duration(Some(850.4)), "850 ms");
        assert_eq!(duration(Some(1250.0)), "1.25 s");
        assert_eq!(duration(Some(90_000.0)), "1.5 min");
        assert_eq!(duration(None), "—");
        assert_eq!(percent(Some(0.5)), "50.0 %");
        assert_eq!(decimal(Some(2.0)), "2");
    }

    #[test]
    fn hostile_data_is_escaped_on_every_page() {
        let mut results = Results::default();
        results.insert(
            QueryId::EventsPerHour,
            Ok(rows(
                json!([{"hour": "2025-11-24 16:00:00", "kind": HOSTILE, "events": "1"}]),
            )),
        );
        results.insert(QueryId::CommandsAndCallbacks, Ok(rows(json!([{"kind": "command", "name": HOSTILE, "uses": 1, "timed": 1, "p50_ms": 1, "p95_ms": 2}]))));
        let group_rows = json!([{"fingerprint": "\"><script>", "kind": HOSTILE, "location": HOSTILE, "last_message": HOSTILE, "count": 1, "users": 1, "first_seen": NOW, "last_seen": NOW, "release": HOSTILE, "bot": HOSTILE}]);
        results.insert(QueryId::RecentGroups, Ok(rows(group_rows.clone())));
        results.insert(QueryId::ErrorGroups, Ok(rows(group_rows.clone())));
        results.insert(QueryId::Group, Ok(rows(group_rows)));
        results.insert(
            QueryId::Releases,
            Ok(rows(json!([{"release": HOSTILE, "events": 1}]))),
        );
        results.insert(QueryId::GroupEvents, Ok(rows(json!([{"event_id": HOSTILE, "message": HOSTILE, "user_id": HOSTILE, "occurred_at": NOW}]))));
        results.insert(
            QueryId::RejectedSummary,
            Ok(rows(
                json!([{"queue": HOSTILE, "reason": HOSTILE, "messages": 1}]),
            )),
        );
        results.insert(QueryId::RejectedRecent, Ok(rows(json!([{"queue": HOSTILE, "reason": HOSTILE, "detail": HOSTILE, "message_id": HOSTILE}]))));
        results.insert(
            QueryId::DailyActiveUsers,
            Err(crate::sqlapi::QueryError::Malformed(HOSTILE.into())),
        );
        results.insert(
            QueryId::Audience,
            Ok(rows(json!([{"metric": "lang", "key": HOSTILE, "n": 1}]))),
        );
        results.insert(
            QueryId::Retention,
            Err(crate::sqlapi::QueryError::Malformed(HOSTILE.into())),
        );
        results.insert(
            QueryId::Funnels,
            Err(crate::sqlapi::QueryError::Malformed(HOSTILE.into())),
        );
        results.insert(
            QueryId::Sources,
            Ok(rows(json!([{"source": HOSTILE, "users": 1}]))),
        );
        // Every page of the registry, with every parameter value its examples cover.
        let mut pages: Vec<String> = crate::pages::every_example()
            .map(|page| {
                crate::pages::render(
                    &page,
                    NOW,
                    &results,
                    &crate::plan::Settings::example(),
                    &footer(),
                )
            })
            .collect();
        assert!(pages.len() > crate::pages::PageKind::ALL.len());
        let refusal = refusal_page(401, "Password required", HOSTILE);
        pages.push(status_page(400, "Bad request", HOSTILE));
        pages.push(refusal.clone());
        let hostile_release = errors(
            &model::errors(ErrorSort::Count, Some(HOSTILE.into()), None, &results),
            &footer(),
        );
        pages.push(hostile_release.clone());
        for html in &pages {
            assert_clean(html);
            assert!(!html.contains("<src>"));
            assert!(
                !html.contains(" style="),
                "inline styles would need 'unsafe-inline'"
            );
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "nothing loads from elsewhere"
            );
        }
        assert!(!refusal.contains("<link"), "a refusal loads nothing");
        // An invalid fingerprint from the database is shown but never linked.
        let overview = overview(&model::overview(Range::Day, None, NOW, &results), &footer());
        assert!(!overview.contains("href=\"/errors/&quot;"));
        // The hostile release is kept in the filter form, escaped and percent-encoded in links.
        assert!(
            hostile_release.contains("release=%3Cscript%3Ealert%281%29%3C%2Fscript%3E%22%27%26")
        );
    }

    #[test]
    fn a_missing_group_says_so() {
        let mut results = Results::default();
        results.insert(QueryId::Group, Ok(vec![]));
        let html = group(
            &model::group("0123456789abcdef", Range::Week, None, NOW, &results),
            &footer(),
        );
        assert!(html.contains("No such error group"));
    }
}
