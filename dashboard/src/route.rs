//! Which page a request asks for. Every parameter is validated here, before anything else
//! looks at it: ranges and sort orders come from fixed sets, a fingerprint is 16 lowercase hex
//! digits, a release is bounded text that only ever reaches SQL as a bound parameter.

use crate::queries::ErrorSort;
use crate::range::Range;

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/assets/dashboard.css";
/// Where the favicon is served.
pub const ICON_PATH: &str = "/assets/icon.svg";
/// Longest release name accepted (the column map's bound for the release column).
pub const MAX_RELEASE_BYTES: usize = 128;
/// Longest bot name accepted (the column map's bound for the bot column).
pub const MAX_BOT_BYTES: usize = 128;
/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 2048;

/// A page of the dashboard, with its validated parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `/`: charts and tables over a range.
    Overview {
        /// The range picked (default: the last 24 hours).
        range: Range,
        /// Only this bot's data (`bot`), or every bot's.
        bot: Option<String>,
    },
    /// `/errors`: error groups.
    Errors {
        /// Sort order (default: last seen).
        sort: ErrorSort,
        /// Only groups seen in this release.
        release: Option<String>,
        /// Only this bot's groups (`bot`), or every bot's.
        bot: Option<String>,
    },
    /// `/errors/<fingerprint>`: one group.
    ErrorGroup {
        /// The group's fingerprint (16 lowercase hex digits).
        fingerprint: String,
        /// The range of its occurrence chart (default: the last 7 days).
        range: Range,
        /// The bot filter the user came with (kept in the page's links; a group has one bot).
        bot: Option<String>,
    },
    /// `/pipeline`: pipeline health over a range.
    Pipeline {
        /// The range picked (default: the last 24 hours).
        range: Range,
        /// Only this bot's envelopes and lag (`bot`), or every bot's.
        bot: Option<String>,
    },
    /// `/users`: new, returning, active and blocked users; languages; twelve months.
    Users {
        /// The range of the daily table (default: the last 30 days).
        range: Range,
        /// Only this bot's users (`bot`), or every bot's.
        bot: Option<String>,
    },
    /// `/retention`: weekly cohorts by first seen, weeks 0–12.
    Retention {
        /// How many weekly cohorts: 24h the last 2, 7d the last 4, 30d (the default) the last
        /// 13 (weeks 0–12 of the oldest).
        range: Range,
        /// Only this bot's users (`bot`), or every bot's.
        bot: Option<String>,
    },
    /// `/funnels`: the configured funnels over a range.
    Funnels {
        /// The range picked (default: the last 7 days).
        range: Range,
        /// Only this bot's users (`bot`), or every bot's.
        bot: Option<String>,
    },
    /// `/sources`: users by deep-link source (first touch), acquired in a range.
    Sources {
        /// The range picked (default: the last 30 days).
        range: Range,
        /// Only this bot's users (`bot`), or every bot's.
        bot: Option<String>,
    },
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A dashboard page.
    Page(Page),
    /// One table of a page as CSV (`format=csv&table=<name>`; the name is one of the page
    /// kind's [`crate::pages::PageKind::tables`]).
    Csv {
        /// The page whose table is asked for.
        page: Page,
        /// The table's name.
        table: &'static str,
    },
    /// The stylesheet.
    Stylesheet,
    /// The favicon.
    Icon,
    /// `/health`: a liveness probe that needs no password and shows no data.
    Health,
    /// No such page (404).
    NotFound,
    /// A parameter was invalid (400), with a message that may echo it (escape it!).
    BadRequest(String),
    /// Only GET and HEAD are served (405), and POST to a group's status.
    MethodNotAllowed,
    /// `POST /errors/<fingerprint>/status`: resolve, mute, unmute or reopen a group
    /// ([`crate::lifecycle`]).
    GroupStatus {
        /// The group's fingerprint (16 lowercase hex digits).
        fingerprint: String,
    },
}

/// Routes a request: `method`, the URL path and the raw query string (without `?`).
pub fn route(method: &str, path: &str, query: &str) -> Route {
    if method == "POST" {
        return match path
            .strip_prefix("/errors/")
            .and_then(|rest| rest.strip_suffix("/status"))
        {
            Some(fingerprint) if is_fingerprint(fingerprint) => Route::GroupStatus {
                fingerprint: fingerprint.to_string(),
            },
            _ => Route::MethodNotAllowed,
        };
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    let params = match parse_query(query) {
        Ok(params) => params,
        Err(message) => return Route::BadRequest(message),
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let range = |default: Range| match get("range") {
        None | Some("") => Ok(default),
        Some(text) => Range::parse(text).ok_or_else(|| format!("unknown range {text:?}")),
    };
    let bot = match parse_bot(get("bot")) {
        Ok(bot) => bot,
        Err(message) => return Route::BadRequest(message),
    };
    let page = match path {
        "/" => range(Range::Day).map(|range| Page::Overview { range, bot }),
        "/pipeline" => range(Range::Day).map(|range| Page::Pipeline { range, bot }),
        "/users" => range(Range::Month).map(|range| Page::Users { range, bot }),
        "/retention" => range(Range::Month).map(|range| Page::Retention { range, bot }),
        "/funnels" => range(Range::Week).map(|range| Page::Funnels { range, bot }),
        "/sources" => range(Range::Month).map(|range| Page::Sources { range, bot }),
        "/errors" => errors_page(get("sort"), get("release"), bot),
        STYLESHEET_PATH => return Route::Stylesheet,
        ICON_PATH | "/favicon.ico" => return Route::Icon,
        "/health" => return Route::Health,
        _ => match path.strip_prefix("/errors/") {
            Some(fingerprint) if is_fingerprint(fingerprint) => {
                range(Range::Week).map(|range| Page::ErrorGroup {
                    fingerprint: fingerprint.to_string(),
                    range,
                    bot,
                })
            }
            _ => return Route::NotFound,
        },
    };
    let page = match page {
        Ok(page) => page,
        Err(message) => return Route::BadRequest(message),
    };
    match (get("format"), get("table")) {
        (None | Some("" | "html"), None | Some("")) => Route::Page(page),
        (None | Some("" | "html"), Some(_)) => {
            Route::BadRequest("`table` goes with format=csv".into())
        }
        (Some("csv"), table) => {
            let tables = page.kind().tables();
            match tables.iter().find(|t| Some(**t) == table) {
                Some(table) => Route::Csv { page, table },
                None => Route::BadRequest(format!(
                    "unknown table {:?}; this page has: {}",
                    analytics_core::text::ellipsize(table.unwrap_or(""), 40),
                    tables.join(", ")
                )),
            }
        }
        (Some(other), _) => Route::BadRequest(format!(
            "unknown format {:?} (csv, or none for the page)",
            analytics_core::text::ellipsize(other, 20)
        )),
    }
}

/// The `bot` filter: a bot's name as `BOT_NAME` gives it, up to [`MAX_BOT_BYTES`] of
/// `A-Z a-z 0-9 _ - .` (it reaches Analytics Engine SQL as a quoted literal, so nothing else);
/// empty or absent: every bot.
pub fn parse_bot(value: Option<&str>) -> Result<Option<String>, String> {
    match value {
        None | Some("") => Ok(None),
        Some(text) if analytics_core::text::is_bot_name(text, MAX_BOT_BYTES) => {
            Ok(Some(text.to_string()))
        }
        Some(text) => Err(format!(
            "a bot's name is up to {MAX_BOT_BYTES} characters of A-Z a-z 0-9 _ - ., not {:?}",
            analytics_core::text::ellipsize(text, 60)
        )),
    }
}

fn errors_page(
    sort: Option<&str>,
    release: Option<&str>,
    bot: Option<String>,
) -> Result<Page, String> {
    let sort = match sort {
        None | Some("") => ErrorSort::LastSeen,
        Some(text) => ErrorSort::parse(text).ok_or_else(|| format!("unknown sort {text:?}"))?,
    };
    let release = match release {
        None | Some("") => None,
        Some(text) if text.len() > MAX_RELEASE_BYTES => {
            return Err(format!(
                "release longer than {MAX_RELEASE_BYTES} bytes: {:?}",
                analytics_core::text::ellipsize(text, 60)
            ))
        }
        Some(text) => Some(text.to_string()),
    };
    Ok(Page::Errors { sort, release, bot })
}

/// Whether `text` looks like an error fingerprint (16 lowercase hex digits).
pub fn is_fingerprint(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Decodes an `application/x-www-form-urlencoded` query string. Fails on oversized input,
/// bad percent escapes and text that is not UTF-8 (or holds control characters).
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!("query string longer than {MAX_QUERY_BYTES} bytes"));
    }
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "bad percent escape in the query string".to_string())?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let decoded = String::from_utf8(out).map_err(|_| "query string is not UTF-8".to_string())?;
    if decoded.chars().any(char::is_control) {
        return Err("control characters in the query string".into());
    }
    Ok(decoded)
}

/// Percent-encodes a query parameter value (everything but unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, query: &str) -> Route {
        route("GET", path, query)
    }

    #[test]
    fn pages_and_defaults() {
        assert_eq!(
            get("/", ""),
            Route::Page(Page::Overview {
                range: Range::Day,
                bot: None
            })
        );
        assert_eq!(
            get("/", "range=7d"),
            Route::Page(Page::Overview {
                range: Range::Week,
                bot: None
            })
        );
        assert_eq!(
            get("/pipeline", "range=30d&x=1"),
            Route::Page(Page::Pipeline {
                range: Range::Month,
                bot: None
            })
        );
        assert_eq!(
            get("/errors", "sort=count&release=0.1.0"),
            Route::Page(Page::Errors {
                sort: ErrorSort::Count,
                release: Some("0.1.0".into()),
                bot: None
            })
        );
        assert_eq!(
            get("/errors", "release="),
            Route::Page(Page::Errors {
                sort: ErrorSort::LastSeen,
                release: None,
                bot: None
            })
        );
        assert_eq!(
            get("/errors/0123456789abcdef", ""),
            Route::Page(Page::ErrorGroup {
                fingerprint: "0123456789abcdef".into(),
                range: Range::Week,
                bot: None
            })
        );
        assert_eq!(
            get("/pipeline", "bot=quiz-bot"),
            Route::Page(Page::Pipeline {
                range: Range::Day,
                bot: Some("quiz-bot".into())
            })
        );
        assert_eq!(get(STYLESHEET_PATH, ""), Route::Stylesheet);
        assert_eq!(get("/favicon.ico", ""), Route::Icon);
        assert_eq!(get("/health", ""), Route::Health);
        assert_eq!(
            route("HEAD", "/", ""),
            Route::Page(Page::Overview {
                range: Range::Day,
                bot: None
            })
        );
        assert_eq!(route("POST", "/", ""), Route::MethodNotAllowed);
    }

    #[test]
    fn only_a_groups_status_takes_a_post() {
        assert_eq!(
            route("POST", "/errors/0123456789abcdef/status", ""),
            Route::GroupStatus {
                fingerprint: "0123456789abcdef".into()
            }
        );
        for path in [
            "/errors/0123456789ABCDEF/status",
            "/errors/0123456789abcdef",
            "/errors/0123456789abcdef/status/x",
            "/errors/../status",
            "/errors",
        ] {
            assert_eq!(route("POST", path, ""), Route::MethodNotAllowed, "{path}");
        }
        assert_eq!(get("/errors/0123456789abcdef/status", ""), Route::NotFound);
        assert_eq!(
            route("PUT", "/errors/0123456789abcdef/status", ""),
            Route::MethodNotAllowed
        );
    }

    #[test]
    fn hostile_values_are_refused_or_kept_as_data() {
        assert_eq!(get("/errors/0123456789ABCDEF", ""), Route::NotFound);
        assert_eq!(get("/errors/../../etc/passwd", ""), Route::NotFound);
        assert_eq!(get("/errors/0123456789abcdef'--", ""), Route::NotFound);
        assert_eq!(get("/nope", ""), Route::NotFound);
        assert!(
            matches!(get("/", "range=%27%3B%20DROP%20TABLE%20x"), Route::BadRequest(m) if m.contains("DROP"))
        );
        assert!(matches!(
            get("/", "range=%3Cscript%3E"),
            Route::BadRequest(_)
        ));
        assert!(matches!(
            get("/errors", "sort=count%20DESC"),
            Route::BadRequest(_)
        ));
        assert!(matches!(get("/", "range=%zz"), Route::BadRequest(_)));
        assert!(matches!(get("/", "range=%ff"), Route::BadRequest(_)));
        assert!(matches!(get("/", "a=%0a"), Route::BadRequest(_)));
        assert!(matches!(
            get("/errors", &format!("release={}", "a".repeat(129))),
            Route::BadRequest(_)
        ));
        assert!(matches!(
            get("/", &"a=b&".repeat(600)),
            Route::BadRequest(_)
        ));
        // A bot name reaches Analytics Engine SQL as a literal: only a name's characters.
        for bad in ["x%27+OR+1%3D1", "a+b", "%3Cscript%3E", &"b".repeat(129)] {
            assert!(
                matches!(get("/errors", &format!("bot={bad}")), Route::BadRequest(_)),
                "{bad}"
            );
        }
        // A hostile release is just a value to look for.
        assert_eq!(
            get("/errors", "release=%27%3B+DROP+TABLE+error_groups%3B+--"),
            Route::Page(Page::Errors {
                sort: ErrorSort::LastSeen,
                release: Some("'; DROP TABLE error_groups; --".into()),
                bot: None
            })
        );
    }

    #[test]
    fn owner_pages_and_their_defaults() {
        assert_eq!(
            get("/users", ""),
            Route::Page(Page::Users {
                range: Range::Month,
                bot: None
            })
        );
        assert_eq!(
            get("/retention", "bot=quiz-bot"),
            Route::Page(Page::Retention {
                range: Range::Month,
                bot: Some("quiz-bot".into())
            })
        );
        assert_eq!(
            get("/funnels", "range=24h"),
            Route::Page(Page::Funnels {
                range: Range::Day,
                bot: None
            })
        );
        assert_eq!(
            get("/sources", ""),
            Route::Page(Page::Sources {
                range: Range::Month,
                bot: None
            })
        );
        assert!(matches!(get("/users", "bot=a%27b"), Route::BadRequest(_)));
    }

    #[test]
    fn csv_names_a_table_of_the_page() {
        assert_eq!(
            get("/sources", "range=7d&format=csv&table=sources"),
            Route::Csv {
                page: Page::Sources {
                    range: Range::Week,
                    bot: None
                },
                table: "sources"
            }
        );
        assert_eq!(
            get("/", "format=csv&table=commands"),
            Route::Csv {
                page: Page::Overview {
                    range: Range::Day,
                    bot: None
                },
                table: "commands"
            }
        );
        assert!(
            matches!(get("/", "format=csv&table=nope"), Route::BadRequest(m) if m.contains("unknown table \"nope\"") && m.contains("commands"))
        );
        assert!(
            matches!(get("/", "format=csv"), Route::BadRequest(m) if m.contains("unknown table"))
        );
        assert!(matches!(
            get("/", "format=xml&table=commands"),
            Route::BadRequest(_)
        ));
        assert!(matches!(get("/", "table=commands"), Route::BadRequest(_)));
        assert!(matches!(
            get("/nope", "format=csv&table=x"),
            Route::NotFound
        ));
        assert_eq!(
            get("/", "format=html"),
            Route::Page(Page::Overview {
                range: Range::Day,
                bot: None
            })
        );
    }

    #[test]
    fn encoding_round_trips() {
        for value in ["0.1.0", "a b&c=d", "<script>'\"", "ünï"] {
            let pairs = parse_query(&format!("v={}", encode(value))).unwrap();
            assert_eq!(pairs, vec![("v".to_string(), value.to_string())]);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(path in ".{0,80}", query in ".{0,200}", method in "[A-Z]{0,7}") {
            let _ = route(&method, &path, &query);
        }
    }
}
