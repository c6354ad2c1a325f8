//! The checks of a Telegram webhook request, as pure functions: the secret header (constant
//! time), the content type, the body size, and parsing. Every failure is a [`Rejection`]: a 4xx
//! with a short plain reason, never a panic or a 5xx.

use subtle::ConstantTimeEq;

use crate::update::{Update, UpdateError};
use analytics_core::text;

/// Header Telegram sends the `secret_token` of `setWebhook` in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Largest webhook body accepted. Telegram updates are a few KB; this bounds memory per request.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Longest parser detail quoted in a 400's reason.
pub const MAX_REASON_DETAIL_BYTES: usize = 200;

/// Why a webhook request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Missing or wrong secret header (401).
    Unauthorized,
    /// Body larger than [`MAX_BODY_BYTES`] (413).
    TooLarge,
    /// Content type other than JSON (415).
    UnsupportedMediaType,
    /// Not JSON or not an update (400), with a short reason.
    BadRequest(String),
    /// Not a POST (405).
    MethodNotAllowed,
}

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Unauthorized => 401,
            Rejection::TooLarge => 413,
            Rejection::UnsupportedMediaType => 415,
            Rejection::BadRequest(_) => 400,
            Rejection::MethodNotAllowed => 405,
        }
    }

    /// A short stable reason code (used in analytics).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Unauthorized => "unauthorized",
            Rejection::TooLarge => "too_large",
            Rejection::UnsupportedMediaType => "unsupported_media_type",
            Rejection::BadRequest(_) => "bad_request",
            Rejection::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The plain-text body of the refusal.
    pub fn reason(&self) -> String {
        match self {
            Rejection::Unauthorized => "missing or wrong secret token".to_string(),
            Rejection::TooLarge => format!("body larger than {MAX_BODY_BYTES} bytes"),
            Rejection::UnsupportedMediaType => "content type must be application/json".into(),
            Rejection::BadRequest(reason) => reason.clone(),
            Rejection::MethodNotAllowed => "use POST".into(),
        }
    }
}

/// Compares the secret header with the configured secret in constant time (for equal lengths;
/// the length itself is not secret: Telegram documents 1–256 characters). An unset secret never
/// matches, so a Worker deployed without one refuses everything.
pub fn secret_matches(given: Option<&str>, expected: &str) -> bool {
    match given {
        Some(given) => {
            !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
        }
        None => false,
    }
}

/// Whether a `Content-Type` header value is acceptable (absent, or JSON).
pub fn content_type_ok(value: Option<&str>) -> bool {
    value.is_none_or(|v| {
        let media = v.split(';').next().unwrap_or("").trim();
        media.is_empty() || media.eq_ignore_ascii_case("application/json")
    })
}

/// Whether a declared `Content-Length` already says the body is too large.
pub fn declared_too_large(content_length: Option<&str>) -> bool {
    content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
}

/// The headers' part of the checks: secret, then content type, then declared length.
pub fn check_headers(
    secret_header: Option<&str>,
    expected_secret: &str,
    content_type: Option<&str>,
    content_length: Option<&str>,
) -> Result<(), Rejection> {
    if !secret_matches(secret_header, expected_secret) {
        return Err(Rejection::Unauthorized);
    }
    if !content_type_ok(content_type) {
        return Err(Rejection::UnsupportedMediaType);
    }
    if declared_too_large(content_length) {
        return Err(Rejection::TooLarge);
    }
    Ok(())
}

/// Parses the body into an update, or a 400 with a short reason (the parser's detail is cut on
/// a character boundary).
pub fn parse_update(body: &[u8]) -> Result<Update, Rejection> {
    if body.is_empty() {
        return Err(Rejection::BadRequest("empty body".into()));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(Rejection::TooLarge);
    }
    Update::parse(body).map_err(|e| {
        let reason = match e {
            UpdateError::MissingUpdateId => e.to_string(),
            UpdateError::Invalid(detail) => format!(
                "not a Telegram update: {}",
                text::ellipsize(&detail, MAX_REASON_DETAIL_BYTES)
            ),
        };
        Rejection::BadRequest(reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_must_match_exactly() {
        assert!(secret_matches(Some("s3cret"), "s3cret"));
        assert!(!secret_matches(Some("s3cre"), "s3cret"));
        assert!(!secret_matches(Some("s3cret!"), "s3cret"));
        assert!(!secret_matches(None, "s3cret"));
        assert!(
            !secret_matches(Some(""), ""),
            "an unset secret never matches"
        );
    }

    #[test]
    fn content_types_and_lengths() {
        assert!(content_type_ok(None));
        assert!(content_type_ok(Some("application/json")));
        assert!(content_type_ok(Some("application/json; charset=utf-8")));
        assert!(!content_type_ok(Some("text/plain")));
        assert!(!content_type_ok(Some("application/x-www-form-urlencoded")));
        assert!(declared_too_large(Some("262145")));
        assert!(!declared_too_large(Some("262144")));
        assert!(!declared_too_large(Some("nonsense")));
        assert_eq!(
            check_headers(Some("s"), "s", Some("text/plain"), None),
            Err(Rejection::UnsupportedMediaType)
        );
        assert_eq!(
            check_headers(None, "s", Some("text/plain"), None),
            Err(Rejection::Unauthorized),
            "the secret is checked first"
        );
    }

    #[test]
    fn bad_bodies_get_short_reasons() {
        assert_eq!(
            parse_update(b""),
            Err(Rejection::BadRequest("empty body".into()))
        );
        let Err(Rejection::BadRequest(reason)) = parse_update(b"[1,2]") else {
            panic!("expected 400")
        };
        assert!(reason.starts_with("not a Telegram update"), "{reason}");
        assert!(parse_update(br#"{"update_id":1}"#).is_ok());
    }

    #[test]
    fn a_multibyte_update_id_is_a_400_not_a_panic() {
        // Reported against `make dev`: the error text was cut at byte 200, inside a `€`.
        let body = format!(r#"{{"update_id":"{}"}}"#, "€".repeat(100));
        let Err(Rejection::BadRequest(reason)) = parse_update(body.as_bytes()) else {
            panic!("expected 400")
        };
        assert!(reason.starts_with("not a Telegram update"), "{reason}");
        assert!(
            reason.len() <= MAX_REASON_DETAIL_BYTES + 40,
            "{}",
            reason.len()
        );
    }
}
