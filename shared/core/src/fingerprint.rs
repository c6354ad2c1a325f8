//! Error fingerprints: errors that differ only in numbers, ids, quoted values or durations
//! group together (like Sentry issues); different errors don't.

/// A fingerprint: 16 lowercase hex digits of a 64-bit FNV-1a hash.
pub type Fingerprint = String;

/// The stable fingerprint of an error from its kind, message and location.
///
/// The message is normalized first with [`normalize_message`]. The hash function and the
/// normalization rules are part of the stored data's meaning: changing either splits existing
/// groups, so treat a change like a schema migration.
pub fn fingerprint(kind: &str, message: &str, location: Option<&str>) -> Fingerprint {
    let mut hash = Fnv1a::new();
    hash.write(kind.as_bytes());
    hash.write(&[0]);
    hash.write(normalize_message(message).as_bytes());
    hash.write(&[0]);
    hash.write(location.unwrap_or("").as_bytes());
    format!("{:016x}", hash.finish())
}

/// The fingerprint of an error event's details, within the bot that sent it (`bot`, the
/// sending Worker's name): two bots' errors never share a group, even at the same type and
/// line. Within a bot: by kind and the sender's grouping key when it chose one (handler errors
/// group by their type and code location), otherwise by kind, normalised message and location
/// (as [`fingerprint`] hashes them).
pub fn of_error(bot: &str, details: &crate::ErrorDetails) -> Fingerprint {
    let mut hash = Fnv1a::new();
    hash.write(b"bot\0");
    hash.write(bot.as_bytes());
    hash.write(&[0]);
    hash.write(details.kind.as_bytes());
    match &details.group_key {
        Some(key) => {
            hash.write(b"\0group\0");
            hash.write(key.as_bytes());
        }
        None => {
            hash.write(&[0]);
            hash.write(normalize_message(&details.message).as_bytes());
            hash.write(&[0]);
            hash.write(details.location.as_deref().unwrap_or("").as_bytes());
        }
    }
    format!("{:016x}", hash.finish())
}

/// 64-bit FNV-1a: small, stable across builds and platforms (part of the stored data's meaning).
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    pub(crate) fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

const DURATION_UNITS: [&str; 12] = [
    "ms", "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minutes", "h", "hours",
];

/// Replaces the variable parts of an error message with placeholders:
/// quoted values → `<str>`, UUIDs → `<uuid>`, hex → `<hex>`, durations → `<dur>`,
/// long mixed tokens (ids, secrets) → `<id>`, other digit runs → `<n>`; whitespace collapses.
pub fn normalize_message(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' || c == '`' {
            if let Some(end) = chars[i + 1..].iter().position(|&d| d == c) {
                out.push_str("<str>");
                i += end + 2;
                continue;
            }
        }
        let negative_number =
            c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) && !prev_is_word(&out);
        if c.is_alphanumeric() || negative_number {
            let start = i;
            i += 1;
            while i < chars.len() && (is_token_char(chars[i]) || joins_token(&chars, i)) {
                i += 1;
            }
            let token: String = chars[start..i].iter().collect();
            out.push_str(&classify_token(&token));
            continue;
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out.trim_end().to_string()
}

fn prev_is_word(out: &str) -> bool {
    out.chars().last().is_some_and(|c| c.is_alphanumeric())
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A '-' or '.' inside a token (as in UUIDs or decimals) joins when alphanumerics follow.
fn joins_token(chars: &[char], i: usize) -> bool {
    (chars[i] == '-' || chars[i] == '.') && chars.get(i + 1).is_some_and(|c| c.is_alphanumeric())
}

fn classify_token(token: &str) -> String {
    let body = token.strip_prefix('-').unwrap_or(token);
    if is_uuid(body) {
        return "<uuid>".into();
    }
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return "<hex>".into();
        }
    }
    if is_number(body) {
        return "<n>".into();
    }
    if let Some(split) = body.find(|c: char| !c.is_ascii_digit() && c != '.') {
        let (number, unit) = body.split_at(split);
        if !number.is_empty() && is_number(number) && DURATION_UNITS.contains(&unit) {
            return "<dur>".into();
        }
    }
    let digits = body.chars().filter(|c| c.is_ascii_digit()).count();
    if body.len() >= 8 && digits > 0 && body.chars().all(|c| c.is_ascii_hexdigit()) {
        return "<hex>".into();
    }
    let letters = body.chars().filter(|c| c.is_alphabetic()).count();
    if body.len() >= 16 && digits > 0 && letters > 0 {
        return "<id>".into();
    }
    if digits == 0 {
        return token.to_string();
    }
    // Digit runs inside words (`msg_123`, `user42`) are ids too.
    let mut out = String::new();
    let mut in_digits = false;
    for c in token.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("<n>");
                in_digits = true;
            }
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

fn is_number(s: &str) -> bool {
    let mut dots = 0;
    !s.is_empty()
        && s.chars().all(|c| {
            if c == '.' {
                dots += 1;
                true
            } else {
                c.is_ascii_digit()
            }
        })
        && dots <= 1
        && !s.starts_with('.')
        && !s.ends_with('.')
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_key_groups_by_kind_and_key_whatever_the_message() {
        let at = |message: &str, key: Option<&str>| {
            of_error(
                "bot",
                &crate::ErrorDetails {
                    kind: "D1Error".into(),
                    message: message.into(),
                    location: Some("handler:src/bot.rs:42".into()),
                    group_key: key.map(str::to_string),
                },
            )
        };
        let key = Some("handler:src/bot.rs:42");
        assert_eq!(
            at("no such table: quiz", key),
            at("database is locked", key)
        );
        assert_ne!(
            at("no such table: quiz", key),
            at("no such table: quiz", Some("handler:src/bot.rs:43"))
        );
        assert_ne!(
            at("no such table: quiz", None),
            at("database is locked", None)
        );
        assert_eq!(at("x", key).len(), 16);
    }

    #[test]
    fn two_bots_errors_at_the_same_type_and_line_are_two_groups() {
        let details = crate::ErrorDetails {
            kind: "ParseIntError".into(),
            message: "invalid digit found in string".into(),
            location: Some("handler:src/lib.rs:164".into()),
            group_key: Some("handler:src/lib.rs:164".into()),
        };
        assert_ne!(
            of_error("quiz-bot", &details),
            of_error("shop-bot", &details)
        );
        assert_eq!(
            of_error("quiz-bot", &details),
            of_error("quiz-bot", &details)
        );
        let ungrouped = crate::ErrorDetails {
            group_key: None,
            ..details
        };
        assert_ne!(
            of_error("quiz-bot", &ungrouped),
            of_error("shop-bot", &ungrouped)
        );
    }

    fn same(a: &str, b: &str) -> bool {
        fingerprint("telegram_api", a, Some("bot_api:sendMessage"))
            == fingerprint("telegram_api", b, Some("bot_api:sendMessage"))
    }

    #[test]
    fn retry_after_values_group_together() {
        assert!(same(
            "Too Many Requests: retry after 35",
            "Too Many Requests: retry after 7"
        ));
    }

    #[test]
    fn different_telegram_errors_do_not_group() {
        let errors = [
            "Bad Request: message to edit not found",
            "Bad Request: message is not modified",
            "Forbidden: bot was blocked by the user",
            "Forbidden: user is deactivated",
            "Too Many Requests: retry after 35",
            "Bad Request: chat not found",
        ];
        for (i, a) in errors.iter().enumerate() {
            for b in &errors[i + 1..] {
                assert!(!same(a, b), "{a:?} grouped with {b:?}");
            }
        }
    }

    #[test]
    fn ids_quotes_hex_uuids_and_durations_are_normalized() {
        let cases = [
            ("chat -1001234567890 not found", "chat <n> not found"),
            ("user 5123456789 blocked", "user <n> blocked"),
            ("value 'abc' is invalid", "value <str> is invalid"),
            ("key \"x y\" missing", "key <str> missing"),
            (
                "event 0190a5b3-0000-7000-8000-000000000001 duplicate",
                "event <uuid> duplicate",
            ),
            ("pointer 0xdeadBEEF bad", "pointer <hex> bad"),
            ("hash a3f9c0d2e1 mismatch", "hash <hex> mismatch"),
            ("timed out after 30s", "timed out after <dur>"),
            ("timed out after 1500ms", "timed out after <dur>"),
            ("took 2.5 seconds", "took <n> seconds"),
            ("message_id msg_12345 gone", "message_id msg_<n> gone"),
            (
                "token 123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
                "token <n>:<id>",
            ),
            ("  many   spaces ", "many spaces"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_message(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn network_and_json_errors_group_by_shape() {
        assert!(same(
            "expected value at line 1 column 5",
            "expected value at line 3 column 17"
        ));
        assert!(!same(
            "expected value at line 1 column 5",
            "EOF while parsing a string at line 1 column 5"
        ));
        assert!(same(
            "Network connection lost after 1200ms",
            "Network connection lost after 35ms"
        ));
        assert!(!same("Network connection lost", "connection refused"));
    }

    #[test]
    fn kind_and_location_take_part() {
        let m = "Bad Request: chat not found";
        assert_ne!(
            fingerprint("telegram_api", m, Some("a")),
            fingerprint("telegram_api", m, Some("b"))
        );
        assert_ne!(fingerprint("a", m, None), fingerprint("b", m, None));
    }

    #[test]
    fn fingerprint_is_stable_across_builds() {
        // Pinned value: if this changes, existing D1 groups split. See the doc comment.
        assert_eq!(
            fingerprint(
                "telegram_api",
                "Too Many Requests: retry after 35",
                Some("bot_api:editMessageText")
            ),
            fingerprint(
                "telegram_api",
                "Too Many Requests: retry after 1",
                Some("bot_api:editMessageText")
            )
        );
        assert_eq!(fingerprint("k", "m", None), PINNED_K_M);
    }

    const PINNED_K_M: &str = "eadf61d56b34550b";
}
