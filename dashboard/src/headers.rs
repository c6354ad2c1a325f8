//! Security headers. Pages run no script at all and load only the stylesheet and the icon from
//! the Worker itself, so the policy can be strict: nothing inline, nothing from elsewhere, no
//! framing, no caching of anything that shows data.

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What kind of response the headers are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A page, a refusal or an error: never cached.
    Page,
    /// The stylesheet or the icon: no data, cacheable by the browser.
    Asset,
}

/// The security headers of a response.
pub fn security_headers(kind: Kind) -> Vec<(&'static str, &'static str)> {
    vec![
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        (
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ),
        ("Strict-Transport-Security", "max-age=31536000"),
        (
            "Cache-Control",
            match kind {
                Kind::Page => "no-store",
                Kind::Asset => "private, max-age=3600",
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_policy() {
        let page = security_headers(Kind::Page);
        let get = |name: &str| page.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let csp = get("Content-Security-Policy").unwrap();
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"));
        assert!(!csp.contains("script-src"), "no script is allowed at all");
        assert_eq!(get("X-Frame-Options"), Some("DENY"));
        assert_eq!(get("Cache-Control"), Some("no-store"));
        let asset = security_headers(Kind::Asset);
        assert!(asset.contains(&("Cache-Control", "private, max-age=3600")));
    }
}
