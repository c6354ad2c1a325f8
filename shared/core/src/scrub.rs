//! Scrubbing personal data and secrets out of text that is about to be stored (error messages
//! from the Bot API, for example): strings that look like e-mail addresses, phone numbers or
//! tokens are replaced by `<email>`, `<phone>` and `<token>`. Errs on the side of scrubbing:
//! any run of 7 or more digits (with the usual separators) counts as a phone number.

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
            } else if looks_like_token(word) {
                "<token>".to_string()
            } else {
                word.to_string()
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

fn looks_like_token(word: &str) -> bool {
    let word = trim_punctuation(word).trim_end_matches('.');
    if word.len() < MIN_TOKEN_LEN {
        return false;
    }
    let token_chars = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '='));
    let digits = word.chars().any(|c| c.is_ascii_digit());
    let letters = word.chars().any(|c| c.is_ascii_alphabetic());
    token_chars && digits && letters
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
    fn ordinary_error_text_is_kept() {
        for text in [
            "Too Many Requests: retry after 35",
            "Bad Request: message to edit not found",
            "Forbidden: bot was blocked by the user",
            "HTTP 502 with a body that is not a Bot API response",
            "no answer within 10000 ms",
        ] {
            assert_eq!(scrub(text), text);
        }
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(scrub("€€€ 1234567 ü"), "€€€ <phone> ü");
        assert_eq!(scrub(""), "");
    }
}
