//! Scrubbing personal data and secrets out of text that is about to be stored (error messages
//! from the Bot API, for example): strings that look like e-mail addresses, phone numbers or
//! tokens are replaced by `<email>`, `<phone>` and `<token>`. Errs on the side of scrubbing:
//! any run of 7 or more digits (with the usual separators) counts as a phone number.
//!
//! Tokens are found anywhere in a word: a word is cut at every character a token does not hold
//! (`/`, `?`, `&`, `=`, `%`, quotes, …), so a bot token inside a Bot API URL
//! (`…/bot123456:AAH…/sendMessage`) or an API key in a query string (`?key=…`) is replaced. The
//! value of a parameter whose name says it is secret (`key`, `token`, `secret`, `password`,
//! `auth`, `session`, `signature`, `sig`, `pwd`: `api_key=abc123`) is replaced whatever its
//! length.

/// Fewest digits a phone-number-like run has.
const MIN_PHONE_DIGITS: usize = 7;
/// Shortest word that can be a token (API keys, bot tokens, session ids).
const MIN_TOKEN_LEN: usize = 20;

/// `text` with e-mail addresses, phone numbers and tokens replaced.
pub fn scrub(text: &str) -> String {
    let words: Vec<String> = text
        .split(' ')
        .map(|word| {
            if looks_like_email(word) {
                "<email>".to_string()
            } else {
                scrub_tokens(word)
            }
        })
        .collect();
    scrub_phones(&words.join(" "))
}

fn trim_punctuation(word: &str) -> &str {
    word.trim_matches(|c: char| {
        matches!(
            c,
            ',' | ';' | '(' | ')' | '"' | '\'' | '<' | '>' | '[' | ']'
        )
    })
}

fn looks_like_email(word: &str) -> bool {
    let word = trim_punctuation(word).trim_end_matches('.');
    match word.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }
        None => false,
    }
}

/// A character a token may hold (bot tokens have `:`, API keys `_` and `-`).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.')
}

/// Whether a parameter called `name` holds a secret.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let name = name.rsplit(['.', ':']).next().unwrap_or_default();
    [
        "key",
        "token",
        "secret",
        "passw",
        "pwd",
        "auth",
        "session",
        "signature",
    ]
    .iter()
    .any(|secret| name.contains(secret))
        || name == "sig"
}

/// Where a parameter's value ends.
fn ends_value(c: char) -> bool {
    matches!(c, '&' | '#' | ';' | ',' | ')' | '"' | '\'' | '<' | '>')
}

/// `word` with every token-like run and every secret parameter's value replaced.
fn scrub_tokens(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(first) = rest.chars().next() {
        if !is_token_char(first) {
            out.push(first);
            rest = &rest[first.len_utf8()..];
            continue;
        }
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let (run, after) = rest.split_at(end);
        rest = after;
        if is_secret_name(run) && rest.starts_with('=') {
            out.push_str(run);
            out.push('=');
            let value_end = rest[1..].find(ends_value).map_or(rest.len(), |i| i + 1);
            if value_end > 1 {
                out.push_str("<token>");
            }
            rest = &rest[value_end..];
            continue;
        }
        let core = run.trim_end_matches(['.', ':']);
        if looks_like_token(core) {
            out.push_str("<token>");
            out.push_str(&run[core.len()..]);
        } else {
            out.push_str(run);
        }
    }
    out
}

/// A run of token characters long enough, with digits and letters.
fn looks_like_token(run: &str) -> bool {
    run.len() >= MIN_TOKEN_LEN
        && run.chars().any(|c| c.is_ascii_digit())
        && run.chars().any(|c| c.is_ascii_alphabetic())
}

/// Replaces runs of digits and phone separators holding at least [`MIN_PHONE_DIGITS`] digits.
fn scrub_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            || (matches!(chars[i], '+' | '(')
                && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()));
        let after_word = i > 0 && chars[i - 1].is_alphanumeric();
        if starts && !after_word {
            let mut end = i;
            let mut digits = 0;
            let mut last_digit = i;
            while end < chars.len()
                && (chars[end].is_ascii_digit()
                    || matches!(chars[end], ' ' | '-' | '.' | '(' | ')' | '+'))
            {
                if chars[end].is_ascii_digit() {
                    digits += 1;
                    last_digit = end;
                }
                end += 1;
            }
            let followed_by_word = chars
                .get(last_digit + 1)
                .is_some_and(|c| c.is_alphanumeric());
            if digits >= MIN_PHONE_DIGITS && !followed_by_word {
                out.push_str("<phone>");
                i = last_digit + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Fewest digits in a run that could be a Telegram id (user ids are 5 to 16 digits; the
/// earliest accounts have few) or a phone number: [`mask_numbers`] replaces such runs.
pub const MIN_ID_DIGITS: usize = 5;

/// What [`mask_numbers`] puts in place of a masked run.
pub const MASKED_NUMBER: &str = "<n>";

/// `text` with every run of digits that could be an id or a phone number replaced by
/// [`MASKED_NUMBER`]: a run is digits joined by single `-` (`44-7700-900123`), masked when it
/// holds at least [`MIN_ID_DIGITS`] digits. For values a bot defines but a user can shape
/// (deep-link parameters, callback data, command names): `campaign_2026` stays,
/// `ref_5123456789` becomes `ref_<n>`.
pub fn mask_numbers(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0;
        let mut end = i;
        while end < bytes.len() {
            if bytes[end].is_ascii_digit() {
                digits += 1;
                end += 1;
            } else if bytes[end] == b'-' && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
                end += 1;
            } else {
                break;
            }
        }
        if digits >= MIN_ID_DIGITS {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..start]);
            out.push_str(MASKED_NUMBER);
            copied = end;
        }
        i = end;
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            std::borrow::Cow::Owned(out)
        }
        None => std::borrow::Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_phones_and_tokens_are_scrubbed() {
        assert_eq!(
            scrub("Bad Request: can't parse entities: jane.doe@example.com, call +44 7700 900123"),
            "Bad Request: can't parse entities: <email> call <phone>"
        );
        assert_eq!(
            scrub("Unauthorized: token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw invalid"),
            "Unauthorized: token <token> invalid"
        );
        assert_eq!(scrub("tel. (030) 123-4567."), "tel. <phone>.");
    }

    #[test]
    fn tokens_inside_urls_and_query_strings_are_scrubbed() {
        let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        assert_eq!(
            scrub(&format!(
                "POST https://api.telegram.org/bot{token}/sendMessage failed"
            )),
            "POST https://api.telegram.org/<token>/sendMessage failed"
        );
        assert_eq!(
            scrub("GET https://maps.example/geo?key=AIzaSyD4x9Qv7Lm2Kp8Rt5Wn3Yb6Hc1Jf0Ge&city=Paris: 403"),
            "GET https://maps.example/geo?key=<token>&city=Paris: 403"
        );
        // A secret-named query parameter loses its value whatever its length.
        assert_eq!(
            scrub("https://x.example/cb?api_key=abc123&token=s3cr3t&page=2"),
            "https://x.example/cb?api_key=<token>&token=<token>&page=2"
        );
        assert_eq!(
            scrub("url-encoded: bot123456789%3AAAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
            "url-encoded: bot123456789%<token>"
        );
        assert_eq!(
            scrub("Authorization=Bearer_eyJhbGciOiJIUzI1NiJ9x0 (\"sk_live_51HxYz2abcDEF3ghiJKL\")"),
            "Authorization=<token> (\"<token>\")"
        );
    }

    #[test]
    fn ordinary_error_text_is_kept() {
        for text in [
            "Too Many Requests: retry after 35",
            "Bad Request: message to edit not found",
            "Forbidden: bot was blocked by the user",
            "HTTP 502 with a body that is not a Bot API response",
            "no answer within 10000 ms",
            "GET https://api.example.com/v1/cities?name=Paris&page=2: 404 Not Found",
            "handler:src/bot.rs:42",
        ] {
            assert_eq!(scrub(text), text);
        }
    }

    #[test]
    fn numbers_that_could_be_ids_or_phones_are_masked() {
        for (text, masked) in [
            ("ref_5123456789", "ref_<n>"),
            ("447700900123", "<n>"),
            ("promo_44-7700-900123", "promo_<n>"),
            ("ban:5123456789:now", "ban:<n>:now"),
            ("campaign_2026", "campaign_2026"),
            ("menu:about", "menu:about"),
            ("v1-2-3", "v1-2-3"),
            ("a12345b", "a<n>b"),
            ("x-12345-", "x-<n>-"),
            ("€12345", "€<n>"),
            ("", ""),
        ] {
            assert_eq!(mask_numbers(text), masked, "{text}");
        }
        assert!(matches!(
            mask_numbers("campaign_2026"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(scrub("€€€ 1234567 ü"), "€€€ <phone> ü");
        assert_eq!(scrub(""), "");
    }
}
