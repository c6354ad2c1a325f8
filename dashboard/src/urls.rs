//! The two URLs the dashboard reads, split by hand instead of with the `url` crate: the request's
//! URL (already normalised by the runtime) and the SQL API base from the configuration (checked
//! strictly: anything unusual is refused, not interpreted). The `url` crate and its IDNA tables
//! were about 10 % of the dashboard's wasm, and neither URL needs more than this.

/// The path (`/` when empty) and the raw query string (without `?`, empty when absent) of an
/// absolute request URL as the runtime hands it over: `scheme://authority/path?query#fragment`.
/// The fragment, which a browser never sends, is dropped.
pub fn path_and_query(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(url, |i| &url[i + 3..]);
    let rest = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |i| &after_scheme[i..]);
    let rest = rest.split('#').next().unwrap_or_default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

/// A base URL's parts: the scheme (lower case), the host as written (an IPv6 literal keeps its
/// brackets), and the path (empty, or starting with `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base<'a> {
    /// `http` or `https` (or another scheme, left to the caller to refuse), lower case.
    pub scheme: String,
    /// The host, e.g. `api.cloudflare.com`, `127.0.0.1` or `[::1]`.
    pub host: &'a str,
    /// The port, when one is written.
    pub port: Option<u16>,
    /// The path after the authority, e.g. `/client/v4/` (empty when none).
    pub path: &'a str,
}

impl Base<'_> {
    /// True when the host is the loopback: `127.0.0.1`, `localhost` or an IPv6 loopback literal.
    pub fn is_loopback(&self) -> bool {
        if self.host == "127.0.0.1" || self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
            .is_some_and(|ip| ip.is_loopback())
    }
}

/// Splits `scheme://host[:port][/path]`. Refuses (None) anything with a user name or password,
/// a query, a fragment, a character outside printable ASCII or one of `"'<>\`, an empty or
/// malformed host, or a port that is not a number up to 65535.
pub fn parse_base(base: &str) -> Option<Base<'_>> {
    let clean = base
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"?#\"'<>\\@".contains(&b));
    if !clean {
        return None;
    }
    let (scheme, rest) = base.split_once("://")?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        (&authority[..end], &authority[end..])
    } else {
        authority
            .find(':')
            .map_or((authority, ""), |i| authority.split_at(i))
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    let host_ok = if let Some(literal) = host.strip_prefix('[') {
        literal
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !host.starts_with(['.', '-'])
            && !host.contains("..")
    };
    host_ok.then(|| Base {
        scheme: scheme.to_ascii_lowercase(),
        host,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_request_url() {
        for (url, path, query) in [
            ("http://127.0.0.1:8788/", "/", ""),
            ("http://127.0.0.1:8788", "/", ""),
            (
                "https://dash.example/errors?range=7d&sort=new",
                "/errors",
                "range=7d&sort=new",
            ),
            (
                "https://dash.example/group/ab%20c?x=1#frag",
                "/group/ab%20c",
                "x=1",
            ),
            ("https://dash.example?range=7d", "/", "range=7d"),
            ("https://dash.example/users?", "/users", ""),
            ("https://dash.example/a?b=c?d", "/a", "b=c?d"),
        ] {
            assert_eq!(path_and_query(url), (path, query), "{url}");
        }
    }

    #[test]
    fn parses_a_base() {
        assert_eq!(
            parse_base("HTTPS://api.cloudflare.com/client/v4/"),
            Some(Base {
                scheme: "https".into(),
                host: "api.cloudflare.com",
                port: None,
                path: "/client/v4/",
            })
        );
        let v6 = parse_base("http://[::1]:4321").unwrap();
        assert_eq!((v6.host, v6.port, v6.path), ("[::1]", Some(4321), ""));
        assert!(v6.is_loopback());
        assert!(parse_base("http://LOCALHOST:1/").unwrap().is_loopback());
        assert!(parse_base("http://[0:0:0:0:0:0:0:1]/")
            .unwrap()
            .is_loopback());
        assert!(!parse_base("http://127.0.0.2/").unwrap().is_loopback());
        assert!(!parse_base("http://localhost.evil.example/")
            .unwrap()
            .is_loopback());
        for bad in [
            "",
            "api.cloudflare.com",
            "://x",
            "https://",
            "https:///path",
            "https://x:/",
            "https://x:99999/",
            "https://x:8a/",
            "https://x:1:2/",
            "https://[::1/",
            "https://[nope]/",
            "https://a..b/",
            "https://-a/",
            "https://a_b/",
            "https://user@x/",
            "https://x/ path",
            "https://x/?q",
            "https://x/#f",
            "javascript:alert(1)",
            "ht tp://x/",
            "https://é.example/",
        ] {
            assert_eq!(parse_base(bad), None, "{bad}");
        }
    }
}
