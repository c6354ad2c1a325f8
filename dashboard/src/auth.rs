//! Who may see the dashboard. It fails closed: without a configured password nobody gets in
//! (503), and a request without the right password gets 401. HTTP Basic credentials are
//! checked against the secret `DASHBOARD_PASSWORD` with a constant-time comparison; any user
//! name is accepted.
//!
//! Cloudflare Access in front of the Worker is documented in `docs/dashboard.md` as an
//! additional layer; this check stays on either way.

use base64::Engine;
use subtle::ConstantTimeEq;

/// Shortest password the dashboard accepts; a shorter one counts as not configured.
pub const MIN_PASSWORD_BYTES: usize = 12;

/// The realm announced in `WWW-Authenticate`.
pub const REALM: &str = "Bot analytics dashboard";

/// The access decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// The request carries the configured password.
    Allow,
    /// No or wrong credentials: 401 with a Basic challenge.
    Challenge,
    /// No usable password is configured: 503, nobody gets in.
    NotConfigured,
}

impl AuthDecision {
    /// The HTTP status to answer with when access is refused (`None` when allowed).
    pub fn refusal_status(self) -> Option<u16> {
        match self {
            AuthDecision::Allow => None,
            AuthDecision::Challenge => Some(401),
            AuthDecision::NotConfigured => Some(503),
        }
    }
}

/// The `WWW-Authenticate` header value of a 401.
pub fn challenge_header() -> String {
    format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"")
}

/// Decides whether a request may see the dashboard. `configured` is the `DASHBOARD_PASSWORD`
/// secret (None when unset); `authorization` is the request's `Authorization` header.
pub fn check(configured: Option<&str>, authorization: Option<&str>) -> AuthDecision {
    let Some(expected) = configured.filter(|p| p.len() >= MIN_PASSWORD_BYTES) else {
        return AuthDecision::NotConfigured;
    };
    match authorization.and_then(basic_password) {
        Some(given) if constant_time_eq(&given, expected.as_bytes()) => AuthDecision::Allow,
        _ => AuthDecision::Challenge,
    }
}

/// The password of an HTTP Basic `Authorization` header (`Basic base64(user:password)`); the
/// user name is ignored. `None` for any other scheme or a malformed value.
pub fn basic_password(header: &str) -> Option<Vec<u8>> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || value.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// Compares `given` with `expected` in time that depends only on their lengths, never on where
/// they differ.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let padded: Vec<u8> = (0..expected.len())
        .map(|i| given.get(i).copied().unwrap_or(0))
        .collect();
    let same_len = (given.len() as u64).ct_eq(&(expected.len() as u64));
    bool::from(padded.as_slice().ct_eq(expected) & same_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "correct horse battery";

    fn basic(user: &str, password: &str) -> String {
        let raw = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn fails_closed_without_a_usable_password() {
        let header = basic("admin", "");
        for configured in [None, Some(""), Some("short")] {
            assert_eq!(check(configured, None), AuthDecision::NotConfigured);
            assert_eq!(
                check(configured, Some(&header)),
                AuthDecision::NotConfigured
            );
        }
        assert_eq!(AuthDecision::NotConfigured.refusal_status(), Some(503));
    }

    #[test]
    fn the_right_password_with_any_user_gets_in() {
        for user in ["", "admin", "ünïcode", "a:b"] {
            // The user name ends at the first colon; a colon in it would move the split, so
            // "a:b" logs in only when the password itself starts after "a:".
            let header = basic(user.split(':').next().unwrap(), PASSWORD);
            assert_eq!(check(Some(PASSWORD), Some(&header)), AuthDecision::Allow);
        }
        let lower = basic("x", PASSWORD).replacen("Basic", "basic", 1);
        assert_eq!(check(Some(PASSWORD), Some(&lower)), AuthDecision::Allow);
        assert_eq!(AuthDecision::Allow.refusal_status(), None);
    }

    #[test]
    fn anything_else_is_challenged() {
        let wrong = [
            None,
            Some(String::new()),
            Some("Basic".into()),
            Some("Basic !!!!".into()),
            Some(format!("Bearer {PASSWORD}")),
            Some(basic("admin", "correct horse batter")),
            Some(basic("admin", "correct horse battery ")),
            Some(basic("admin", &PASSWORD.to_uppercase())),
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(PASSWORD)
            )),
        ];
        for header in wrong {
            assert_eq!(
                check(Some(PASSWORD), header.as_deref()),
                AuthDecision::Challenge,
                "{header:?}"
            );
        }
        assert!(challenge_header().starts_with("Basic realm="));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abc\0", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_header(header in ".{0,200}", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = check(Some(PASSWORD), Some(&header));
            let encoded = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&bytes));
            let decision = check(Some(PASSWORD), Some(&encoded));
            proptest::prop_assert_eq!(decision == AuthDecision::Allow, bytes.iter().position(|&b| b == b':').map(|i| &bytes[i + 1..] == PASSWORD.as_bytes()).unwrap_or(false));
        }
    }
}
