//! Cutting text to a byte budget. Every cut in the workspace goes through [`cut_at`], which only
//! ever cuts on a character boundary: slicing a `str` inside a multi-byte character panics, and
//! a panic in a Worker resets its whole instance.

/// The longest prefix of `text` that is at most `max_bytes` long and ends on a character
/// boundary.
pub fn cut_at(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Cuts `text` in place to at most `max_bytes` on a character boundary; says whether it cut.
pub fn truncate(text: &mut String, max_bytes: usize) -> bool {
    let keep = cut_at(text, max_bytes).len();
    if keep == text.len() {
        return false;
    }
    text.truncate(keep);
    true
}

/// `text` cut to at most `max_bytes`, as a new string, with `…` appended when it was cut (the
/// mark counts toward the budget).
pub fn ellipsize(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut out = cut_at(text, max_bytes.saturating_sub('…'.len_utf8())).to_string();
    out.push('…');
    out
}

/// Splits off the last character: `("5", 'h')` for `"5h"`; `None` for an empty string.
pub fn split_last_char(text: &str) -> Option<(&str, char)> {
    let last = text.chars().next_back()?;
    Some((&text[..text.len() - last.len_utf8()], last))
}

/// Whether `c` may be part of a bot's name in a filter (`BOT_NAME` as the dashboard and the
/// report take it): `A-Z a-z 0-9 _ - .`. Such a name can stand in SQL as a quoted literal.
pub fn is_bot_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Whether `text` is a bot's name of at most `max_bytes` made of [`is_bot_name_char`]s.
pub fn is_bot_name(text: &str, max_bytes: usize) -> bool {
    !text.is_empty() && text.len() <= max_bytes && text.chars().all(is_bot_name_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_character() {
        let euros = "€".repeat(100); // 3 bytes each
        for max in 0..=euros.len() + 1 {
            let cut = cut_at(&euros, max);
            assert!(cut.len() <= max);
            assert!(max.saturating_sub(cut.len()) < 3 || cut.len() == euros.len());
        }
        let mut s = "héllo".to_string();
        assert!(truncate(&mut s, 2));
        assert_eq!(s, "h");
        assert!(!truncate(&mut s, 2));
    }

    #[test]
    fn ellipsize_fits_the_budget() {
        let text = "€".repeat(100);
        let short = ellipsize(&text, 200);
        assert!(short.len() <= 200, "{}", short.len());
        assert!(short.ends_with('…'));
        assert_eq!(ellipsize("ok", 200), "ok");
    }

    #[test]
    fn last_char_split() {
        assert_eq!(split_last_char("5ч"), Some(("5", 'ч')));
        assert_eq!(split_last_char("24h"), Some(("24", 'h')));
        assert_eq!(split_last_char(""), None);
    }
}
