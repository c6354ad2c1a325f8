//! Webhook request checks: the secret header (constant time), the body size cap, and parsing.
//! Every failure is a 4xx with a short plain reason, never a panic or a 5xx.

use futures_util::StreamExt;
use shared::telegram::{Update, UpdateError};
use subtle::ConstantTimeEq;
use worker::{Request, Response};

/// Header Telegram sends the `secret_token` of `setWebhook` in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Largest webhook body accepted. Telegram updates are a few KB; this bounds memory per request.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Why a webhook request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Missing or wrong secret header (401).
    Unauthorized,
    /// Body larger than [`MAX_BODY_BYTES`] (413).
    TooLarge,
    /// Content type other than JSON (415).
    UnsupportedMediaType,
    /// Not JSON or not an update (400).
    BadRequest(String),
}

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Unauthorized => 401,
            Rejection::TooLarge => 413,
            Rejection::UnsupportedMediaType => 415,
            Rejection::BadRequest(_) => 400,
        }
    }

    /// A short stable reason code (used in analytics).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Unauthorized => "unauthorized",
            Rejection::TooLarge => "too_large",
            Rejection::UnsupportedMediaType => "unsupported_media_type",
            Rejection::BadRequest(_) => "bad_request",
        }
    }

    /// The plain-text response.
    pub fn response(&self) -> worker::Result<Response> {
        let text = match self {
            Rejection::Unauthorized => "missing or wrong secret token".to_string(),
            Rejection::TooLarge => format!("body larger than {MAX_BODY_BYTES} bytes"),
            Rejection::UnsupportedMediaType => "content type must be application/json".into(),
            Rejection::BadRequest(reason) => reason.clone(),
        };
        Response::error(text, self.status())
    }
}

/// Compares the secret header with the configured secret in constant time (for equal lengths;
/// the length itself is not secret: Telegram documents 1–256 characters).
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

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] without buffering it all.
pub async fn read_body(req: &mut Request) -> Result<Vec<u8>, Rejection> {
    let declared = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(Rejection::TooLarge);
    }
    let mut body = Vec::new();
    let Ok(mut stream) = req.stream() else {
        return Ok(body); // no body at all
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Rejection::BadRequest("body could not be read".into()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Rejection::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses the body into an update, or a 400 with a short reason.
pub fn parse_update(body: &[u8]) -> Result<Update, Rejection> {
    if body.is_empty() {
        return Err(Rejection::BadRequest("empty body".into()));
    }
    Update::parse(body).map_err(|e| {
        let reason = match e {
            UpdateError::MissingUpdateId => e.to_string(),
            UpdateError::Invalid(detail) => {
                format!(
                    "not a Telegram update: {}",
                    shared::text::ellipsize(&detail, 200)
                )
            }
        };
        Rejection::BadRequest(reason)
    })
}

/// Checks a webhook request and parses its update, or says why it is refused.
pub async fn accept(req: &mut Request, secret: &str) -> Result<Update, Rejection> {
    let given = req.headers().get(SECRET_HEADER).ok().flatten();
    if !secret_matches(given.as_deref(), secret) {
        return Err(Rejection::Unauthorized);
    }
    let content_type = req.headers().get("Content-Type").ok().flatten();
    if !content_type_ok(content_type.as_deref()) {
        return Err(Rejection::UnsupportedMediaType);
    }
    let body = read_body(req).await?;
    parse_update(&body)
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
    fn content_types() {
        assert!(content_type_ok(None));
        assert!(content_type_ok(Some("application/json")));
        assert!(content_type_ok(Some("application/json; charset=utf-8")));
        assert!(!content_type_ok(Some("text/plain")));
        assert!(!content_type_ok(Some("application/x-www-form-urlencoded")));
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
    }
}
