//! An error group's lifecycle from its page: resolve, mute, unmute, reopen (`docs/alerts.md`).
//!
//! The change is a POST to `/errors/<fingerprint>/status` with a form of `action` and `csrf`,
//! behind the same password as every page. The CSRF token is an HMAC-SHA256, keyed by a key
//! derived from `DASHBOARD_PASSWORD`, of the form's purpose and the group's fingerprint: only
//! someone who knows the password (the page that shows the form) can make one, so a page on
//! another site that makes the owner's browser post (with its cached Basic credentials) is
//! refused. It is compared in constant time.

use hmac::{Hmac, Mac};
use ingest_policy::{SqlValue, Statement};
use sha2::Sha256;

use crate::auth::constant_time_eq;
use crate::route::parse_query;

type HmacSha256 = Hmac<Sha256>;

/// Largest form body read, bytes.
pub const MAX_FORM_BYTES: usize = 1024;

/// The key CSRF tokens are made with, derived from the dashboard password.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(…)")
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        m.update(part);
        m.update(&[0]);
    }
    m.finalize().into_bytes().into()
}

impl CsrfKey {
    /// The key of `password` (never the password itself).
    pub fn from_password(password: &str) -> CsrfKey {
        CsrfKey(mac(password.as_bytes(), &[b"dashboard csrf key v1"]))
    }

    /// The token of the status form of group `fingerprint` (64 hex digits).
    pub fn token(&self, fingerprint: &str) -> String {
        mac(&self.0, &[b"group status", fingerprint.as_bytes()])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `given` is the token of group `fingerprint` (constant time).
    pub fn verify(&self, fingerprint: &str, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.token(fingerprint).as_bytes())
    }
}

/// A status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Resolved in the group's latest release; seen in another release, it regresses.
    Resolve,
    /// No alert, whatever happens, until unmuted.
    Mute,
    /// Back to unresolved.
    Unmute,
    /// A resolved or regressed group back to unresolved.
    Reopen,
}

impl Action {
    /// Parses the form's `action`.
    pub fn parse(text: &str) -> Option<Action> {
        match text {
            "resolve" => Some(Action::Resolve),
            "mute" => Some(Action::Mute),
            "unmute" => Some(Action::Unmute),
            "reopen" => Some(Action::Reopen),
            _ => None,
        }
    }

    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Resolve => "resolve",
            Action::Mute => "mute",
            Action::Unmute => "unmute",
            Action::Reopen => "reopen",
        }
    }

    /// The status it sets.
    pub fn status(self) -> &'static str {
        match self {
            Action::Resolve => "resolved",
            Action::Mute => "muted",
            Action::Unmute | Action::Reopen => "unresolved",
        }
    }

    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            Action::Resolve => "Resolve",
            Action::Mute => "Mute",
            Action::Unmute => "Unmute",
            Action::Reopen => "Reopen",
        }
    }

    /// The actions a group of `status` offers.
    pub fn offered(status: &str) -> &'static [Action] {
        match status {
            "resolved" => &[Action::Reopen, Action::Mute],
            "muted" => &[Action::Unmute],
            _ => &[Action::Resolve, Action::Mute],
        }
    }
}

/// Why a status POST is refused (each a 4xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The body is too large.
    #[error("the form is larger than {MAX_FORM_BYTES} bytes")]
    TooLarge,
    /// The body is not a form.
    #[error("the form cannot be read: {0}")]
    Malformed(String),
    /// No or an unknown action.
    #[error("unknown action; resolve, mute, unmute or reopen")]
    UnknownAction,
    /// No or a wrong CSRF token (403).
    #[error("missing or wrong form token; reload the group's page and try again")]
    BadToken,
}

impl FormError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            FormError::TooLarge => 413,
            FormError::BadToken => 403,
            FormError::Malformed(_) | FormError::UnknownAction => 400,
        }
    }
}

/// Reads and checks a status form of group `fingerprint`.
pub fn read_form(body: &[u8], fingerprint: &str, key: &CsrfKey) -> Result<Action, FormError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(FormError::TooLarge);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| FormError::Malformed("not UTF-8".into()))?
        .trim();
    let fields = parse_query(text).map_err(FormError::Malformed)?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // The token first: nothing about the request is acted on without it.
    match get("csrf") {
        Some(token) if key.verify(fingerprint, token) => {}
        _ => return Err(FormError::BadToken),
    }
    get("action")
        .and_then(Action::parse)
        .ok_or(FormError::UnknownAction)
}

/// The D1 statement of `action` on group `fingerprint` at `now_ms`. Resolving records the
/// group's latest release; every change clears a pending alert (a muted or resolved group
/// announces nothing it had pending).
pub fn statement(fingerprint: &str, action: Action, now_ms: i64) -> Statement {
    Statement::write(
        "UPDATE error_groups SET status = ?2, \
         resolved_in_release = CASE WHEN ?2 = 'resolved' THEN release ELSE NULL END, \
         status_changed_at = ?3, alert = NULL WHERE fingerprint = ?1",
        vec![
            SqlValue::Text(fingerprint.to_string()),
            SqlValue::Text(action.status().to_string()),
            SqlValue::Integer(now_ms),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "0123456789abcdef";

    fn key() -> CsrfKey {
        CsrfKey::from_password("correct horse battery")
    }

    #[test]
    fn a_form_with_its_token_is_accepted() {
        let token = key().token(FP);
        assert_eq!(token.len(), 64);
        let body = format!("action=resolve&csrf={token}");
        assert_eq!(read_form(body.as_bytes(), FP, &key()), Ok(Action::Resolve));
        for action in ["mute", "unmute", "reopen"] {
            let body = format!("csrf={token}&action={action}");
            assert_eq!(
                read_form(body.as_bytes(), FP, &key()).map(Action::as_str),
                Ok(action)
            );
        }
    }

    #[test]
    fn a_form_without_the_right_token_is_refused() {
        let token = key().token(FP);
        let other_group = key().token("fedcba9876543210");
        let other_password = CsrfKey::from_password("another password!").token(FP);
        for body in [
            "action=resolve".to_string(),
            "action=resolve&csrf=".to_string(),
            format!("action=resolve&csrf={}", &token[..63]),
            format!("action=resolve&csrf={token}0"),
            format!("action=resolve&csrf={}", token.to_uppercase()),
            format!("action=resolve&csrf={other_group}"),
            format!("action=resolve&csrf={other_password}"),
        ] {
            let refused = read_form(body.as_bytes(), FP, &key()).unwrap_err();
            assert_eq!(refused, FormError::BadToken, "{body}");
            assert_eq!(refused.status(), 403);
        }
    }

    #[test]
    fn bad_forms_are_4xx() {
        let token = key().token(FP);
        let unknown = format!("action=delete&csrf={token}");
        assert_eq!(
            read_form(unknown.as_bytes(), FP, &key()),
            Err(FormError::UnknownAction)
        );
        assert_eq!(
            read_form(&[b'a'; MAX_FORM_BYTES + 1], FP, &key())
                .unwrap_err()
                .status(),
            413
        );
        assert_eq!(
            read_form(&[0xff, 0xfe], FP, &key()).unwrap_err().status(),
            400
        );
        assert_eq!(
            read_form(b"csrf=%zz", FP, &key()).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn offered_actions_follow_the_status() {
        assert_eq!(
            Action::offered("unresolved"),
            &[Action::Resolve, Action::Mute]
        );
        assert_eq!(
            Action::offered("regressed"),
            &[Action::Resolve, Action::Mute]
        );
        assert_eq!(Action::offered("resolved"), &[Action::Reopen, Action::Mute]);
        assert_eq!(Action::offered("muted"), &[Action::Unmute]);
        assert_eq!(
            statement(FP, Action::Resolve, 5).params[1],
            SqlValue::Text("resolved".into())
        );
    }

    #[test]
    fn the_key_does_not_show_the_password() {
        assert_eq!(format!("{:?}", key()), "CsrfKey(…)");
    }
}
