//! The Analytics Engine SQL API: where to send a query and how to read the answer.
//!
//! `POST {base}/accounts/{account_id}/analytics_engine/sql` with the SQL as the body and
//! `Authorization: Bearer {token}`. The default answer format (`FORMAT JSON`) is one object:
//! `meta` (column names and types), `data` (one object per row), `rows` (the row count) and,
//! with a `LIMIT`, `rows_before_limit_at_least`. 64-bit integers come quoted, as in ClickHouse.

use serde_json::Value;

use crate::rows::Row;

/// The production API base.
pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// How long one SQL API query may take before the page shows it as timed out, in ms. A
/// dashboard page waits for all its queries; a hung API must not hang the page.
pub const SQL_API_TIMEOUT_MS: u32 = 10_000;

/// Why the Analytics Engine data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Neither SQL API credentials nor the local mirror are configured.
    #[error("Analytics Engine is not configured (set CF_ACCOUNT_ID and CF_API_TOKEN)")]
    NotConfigured,
    /// The SQL API answered with an error status.
    #[error("SQL API answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The API's own message, shortened.
        message: String,
    },
    /// The answer was not the documented JSON.
    #[error("unreadable SQL API answer: {0}")]
    Malformed(String),
    /// The request did not get through (network, runtime).
    #[error("SQL API request failed: {0}")]
    Transport(String),
    /// No answer within the timeout (ms), see [`SQL_API_TIMEOUT_MS`].
    #[error("the SQL API gave no answer within {} s", .0 / 1000)]
    Timeout(u32),
    /// A D1 query failed.
    #[error("D1 query failed: {0}")]
    D1(String),
}

/// Why the SQL API configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The account id is not 32 hexadecimal characters.
    #[error("CF_ACCOUNT_ID must be 32 hexadecimal characters")]
    AccountId,
    /// The base URL is neither https nor a loopback http address, or carries a user name,
    /// password, query or fragment.
    #[error("CF_API_BASE must be an https URL (or http on 127.0.0.1/localhost, for tests), without user, password, query or fragment")]
    Base,
    /// The API token holds characters a header cannot carry.
    #[error("CF_API_TOKEN holds characters other than printable ASCII")]
    Token,
}

/// The SQL API URL for `account_id` under `base` (checked: the id is 32 hex characters; the
/// base parses as a URL with no user name, password, query or fragment, and is https, or plain
/// http only when its host is the loopback — `127.0.0.1`, `[::1]` or `localhost` — for local
/// fakes). The host is compared after parsing, so `http://127.0.0.1:@evil.example` (whose host
/// is `evil.example`) is refused.
pub fn sql_api_url(base: &str, account_id: &str) -> Result<String, ConfigError> {
    if account_id.len() != 32 || !account_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::AccountId);
    }
    let url = crate::urls::parse_base(base).ok_or(ConfigError::Base)?;
    let allowed = match url.scheme.as_str() {
        "https" => true,
        "http" => url.is_loopback(),
        _ => false,
    };
    if !allowed {
        return Err(ConfigError::Base);
    }
    let port = url.port.map(|p| format!(":{p}")).unwrap_or_default();
    let base = format!("{}://{}{port}{}", url.scheme, url.host, url.path);
    let base = base.trim_end_matches('/');
    Ok(format!("{base}/accounts/{account_id}/analytics_engine/sql"))
}

/// Reads one SQL API answer: the rows of a `200` with the documented JSON, or the error.
pub fn parse_response(status: u16, body: &str) -> Result<Vec<Row>, QueryError> {
    if status != 200 {
        return Err(QueryError::Status {
            status,
            message: error_message(body),
        });
    }
    let value: Value =
        serde_json::from_str(body).map_err(|e| QueryError::Malformed(format!("not JSON: {e}")))?;
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| QueryError::Malformed("no \"data\" array".into()))?;
    let rows: Vec<Row> = data
        .iter()
        .map(|r| {
            r.as_object()
                .cloned()
                .ok_or_else(|| QueryError::Malformed("a row is not an object".into()))
        })
        .collect::<Result<_, _>>()?;
    if let Some(n) = value.get("rows").and_then(Value::as_u64) {
        if n != rows.len() as u64 {
            return Err(QueryError::Malformed(format!(
                "\"rows\" is {n} but \"data\" has {}",
                rows.len()
            )));
        }
    }
    Ok(rows)
}

/// The message of an error answer: Cloudflare's `errors[0].message`, else the body, shortened.
fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        v.get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    analytics_core::text::ellipsize(from_json.as_deref().unwrap_or(body).trim(), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn builds_the_documented_url() {
        assert_eq!(
            sql_api_url(DEFAULT_API_BASE, ACCOUNT).unwrap(),
            format!("https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/analytics_engine/sql")
        );
        assert_eq!(
            sql_api_url("http://127.0.0.1:4321/client/v4/", ACCOUNT).unwrap(),
            format!("http://127.0.0.1:4321/client/v4/accounts/{ACCOUNT}/analytics_engine/sql")
        );
        assert_eq!(
            sql_api_url(DEFAULT_API_BASE, "abc"),
            Err(ConfigError::AccountId)
        );
        assert_eq!(
            sql_api_url(DEFAULT_API_BASE, &"g".repeat(32)),
            Err(ConfigError::AccountId)
        );
        for bad in [
            "http://example.com",
            "ftp://x",
            "https://x/?a",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(sql_api_url(bad, ACCOUNT), Err(ConfigError::Base), "{bad}");
        }
    }

    #[test]
    fn the_base_is_parsed_and_its_host_compared() {
        // Each of these sends the bearer token to evil.example (userinfo, or a look-alike host).
        for bad in [
            "http://127.0.0.1:@evil.example",
            "http://127.0.0.1:@evil.example/client/v4",
            "http://127.0.0.1@evil.example/",
            "http://localhost:80@evil.example",
            "http://localhost:x@evil.example:8080/",
            "http://127.0.0.1.evil.example/",
            "http://localhost.evil.example:8080",
            "https://user:pw@api.cloudflare.com/client/v4",
            "http://127.0.0.1:4321/client/v4#x",
            "https://api.cloudflare.com/client/v4?x=1",
        ] {
            assert_eq!(sql_api_url(bad, ACCOUNT), Err(ConfigError::Base), "{bad}");
        }
        for good in [
            "http://127.0.0.1:4321",
            "http://localhost:4321/client/v4",
            "http://[::1]:4321/client/v4",
            "https://api.cloudflare.com/client/v4/",
        ] {
            let url = sql_api_url(good, ACCOUNT).unwrap();
            assert!(
                url.ends_with(&format!("/accounts/{ACCOUNT}/analytics_engine/sql")),
                "{good}: {url}"
            );
        }
    }

    #[test]
    fn a_timeout_is_its_own_error() {
        assert_eq!(
            QueryError::Timeout(SQL_API_TIMEOUT_MS).to_string(),
            "the SQL API gave no answer within 10 s"
        );
    }

    #[test]
    fn reads_the_json_format() {
        let body = r#"{"meta":[{"name":"kind","type":"String"},{"name":"events","type":"UInt64"}],
                       "data":[{"kind":"command","events":"3"},{"kind":"update","events":5}],
                       "rows":2,"rows_before_limit_at_least":2}"#;
        let rows = parse_response(200, body).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(crate::rows::count(&rows[0], "events"), 3);
        assert_eq!(crate::rows::count(&rows[1], "events"), 5);
        assert_eq!(
            parse_response(200, r#"{"meta":[],"data":[],"rows":0}"#)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn errors_are_typed_and_short() {
        let auth =
            r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#;
        assert_eq!(
            parse_response(401, auth),
            Err(QueryError::Status {
                status: 401,
                message: "Authentication error".into()
            })
        );
        let long = "x".repeat(5000);
        match parse_response(500, &long) {
            Err(QueryError::Status { message, .. }) => assert!(message.len() <= 300),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"data":[1]}"#,
            r#"{"data":[],"rows":3}"#,
            "<html>",
        ] {
            assert!(
                matches!(parse_response(200, bad), Err(QueryError::Malformed(_))),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(status in 0u16..600, body in ".{0,300}") {
            let _ = parse_response(status, &body);
        }
    }
}
