//! Privacy by default: Telegram user and chat ids never leave the bot as they are.
//!
//! With a secret key (`ANALYTICS_ID_KEY`), every id becomes a **pseudonym**: HMAC-SHA-256 of
//! the id's decimal text under the key, cut to its first 52 bits, so it stays exact as a number
//! (Analytics Engine doubles, D1 integers, JavaScript numbers). The same id always gives the same
//! pseudonym, so distinct users, daily active users and cohorts still count right; without the
//! key nobody can tell whose it is, and rotating the key unlinks every pseudonym from the
//! people behind it. Raw ids are kept only on an explicit opt-in (`ANALYTICS_RAW_IDS=1`); with
//! neither, ids are left out entirely.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bits a pseudonym keeps: exact in an f64 (JavaScript numbers, Analytics Engine doubles).
pub const PSEUDONYM_BITS: u32 = 52;

/// What happens to user and chat ids before events leave the bot.
#[derive(Clone, PartialEq, Eq)]
pub enum IdPolicy {
    /// Replace each id by its keyed pseudonym (the default when a key is set).
    Pseudonymous(Vec<u8>),
    /// Keep raw ids (`ANALYTICS_RAW_IDS=1`: an explicit opt-in).
    Raw,
    /// No key and no opt-in: leave ids out.
    Omitted,
}

impl std::fmt::Debug for IdPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdPolicy::Pseudonymous(_) => "Pseudonymous(<key>)",
            IdPolicy::Raw => "Raw",
            IdPolicy::Omitted => "Omitted",
        })
    }
}

/// Fewest characters a pseudonym key must have (`ANALYTICS_ID_KEY`). Anyone holding the key
/// can hash every plausible id and reverse the pseudonyms, and a short or guessable key can be
/// found the same way: 32 random characters put that out of reach (`openssl rand -hex 32`
/// gives 64).
pub const MIN_KEY_CHARS: usize = 32;

/// The pseudonym key published in `.dev.vars.example`: fine on a laptop, reversible by anyone
/// anywhere else, so refused unless local dev says otherwise (`LOCAL_DEV=1`, set only in
/// `.dev.vars`).
pub const PUBLISHED_DEV_KEY: &str = "dev-only-pseudonym-key-not-secret";

/// Why a pseudonym key was refused (ids are then left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Shorter than [`MIN_KEY_CHARS`] (its length in characters).
    TooShort(usize),
    /// The published dev key, outside local dev.
    PublishedDevKey,
}

impl std::fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRefusal::TooShort(n) => write!(
                f,
                "ANALYTICS_ID_KEY has {n} characters, fewer than {MIN_KEY_CHARS}: refused, user and chat ids are left out of every event; set a long random key (openssl rand -hex 32)"
            ),
            KeyRefusal::PublishedDevKey => write!(
                f,
                "ANALYTICS_ID_KEY is the published dev key of .dev.vars.example, refused outside local dev (LOCAL_DEV=1): user and chat ids are left out of every event; set a long random key (openssl rand -hex 32)"
            ),
        }
    }
}

impl IdPolicy {
    /// The policy from the settings outside local dev: see [`IdPolicy::decide`].
    pub fn from_settings(key: Option<&str>, raw_ids: Option<&str>) -> IdPolicy {
        IdPolicy::decide(key, raw_ids, false).0
    }

    /// The policy from the settings, and why the key was refused if it was: a non-empty key
    /// wins when it has at least [`MIN_KEY_CHARS`] characters and is not
    /// [`PUBLISHED_DEV_KEY`] (which only `local_dev` accepts); a refused key leaves ids out
    /// (never raw). Without a key, raw ids only when `raw_ids` says `1`/`true`; otherwise ids
    /// are left out.
    pub fn decide(
        key: Option<&str>,
        raw_ids: Option<&str>,
        local_dev: bool,
    ) -> (IdPolicy, Option<KeyRefusal>) {
        match key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) if key.chars().count() < MIN_KEY_CHARS => (
                IdPolicy::Omitted,
                Some(KeyRefusal::TooShort(key.chars().count())),
            ),
            Some(PUBLISHED_DEV_KEY) if !local_dev => {
                (IdPolicy::Omitted, Some(KeyRefusal::PublishedDevKey))
            }
            Some(key) => (IdPolicy::Pseudonymous(key.as_bytes().to_vec()), None),
            None if matches!(raw_ids.map(str::trim), Some("1") | Some("true")) => {
                (IdPolicy::Raw, None)
            }
            None => (IdPolicy::Omitted, None),
        }
    }

    /// What an id becomes.
    pub fn apply(&self, id: Option<i64>) -> Option<i64> {
        let id = id?;
        match self {
            IdPolicy::Pseudonymous(key) => Some(pseudonym(key, id)),
            IdPolicy::Raw => Some(id),
            IdPolicy::Omitted => None,
        }
    }
}

/// Integer properties that hold a Telegram user id (`referrer`: who shared a `/start` referral
/// link): [`Pseudonyms::apply_to`] treats them like the event's own user, so a referrer gets the
/// same pseudonym as that user's own events (left out without a key, raw only with raw ids).
pub const ID_PROPERTIES: &[&str] = &["referrer"];

/// Most pseudonyms [`Pseudonyms`] remembers before it starts over.
pub const PSEUDONYM_CACHE_ENTRIES: usize = 4_096;

/// An [`IdPolicy`] with a memory: a bot sees the same users again and again, and each
/// pseudonym costs an HMAC-SHA-256. Bounded: when full it starts over. Its `Debug` shows the
/// policy and how many pseudonyms it remembers, never an id or a pseudonym.
#[derive(Clone)]
pub struct Pseudonyms {
    policy: IdPolicy,
    cache: std::collections::HashMap<i64, i64>,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonyms")
            .field("policy", &self.policy)
            .field("remembered", &self.cache.len())
            .finish()
    }
}

impl Pseudonyms {
    /// A memory for `policy`.
    pub fn new(policy: IdPolicy) -> Pseudonyms {
        Pseudonyms {
            policy,
            cache: std::collections::HashMap::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &IdPolicy {
        &self.policy
    }

    fn map(&mut self, id: Option<i64>) -> Option<i64> {
        let id = id?;
        let IdPolicy::Pseudonymous(key) = &self.policy else {
            return self.policy.apply(Some(id));
        };
        if let Some(p) = self.cache.get(&id) {
            return Some(*p);
        }
        if self.cache.len() >= PSEUDONYM_CACHE_ENTRIES {
            self.cache.clear();
        }
        let p = pseudonym(key, id);
        self.cache.insert(id, p);
        Some(p)
    }

    /// Applies the policy to every event's user and chat, and to its integer
    /// [`ID_PROPERTIES`] (a property whose id is left out is removed).
    pub fn apply_to(&mut self, events: &mut [crate::Event]) {
        if self.policy == IdPolicy::Raw {
            return;
        }
        for event in events {
            event.user_id = self.map(event.user_id);
            event.chat_id = self.map(event.chat_id);
            let is_id = |(key, value): &(String, crate::PropValue)| {
                matches!(value, crate::PropValue::Int(_)) && ID_PROPERTIES.contains(&key.as_str())
            };
            if event.properties.iter().any(is_id) {
                let properties = std::mem::take(&mut event.properties);
                for (key, value) in properties {
                    match value {
                        crate::PropValue::Int(id) if ID_PROPERTIES.contains(&key.as_str()) => {
                            if let Some(p) = self.map(Some(id)) {
                                event.properties.push((key, crate::PropValue::Int(p)));
                            }
                        }
                        other => event.properties.push((key, other)),
                    }
                }
            }
        }
    }
}

/// The keyed pseudonym of `id` under `key` (see the module documentation).
pub fn pseudonym(key: &[u8], id: i64) -> i64 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(id.to_string().as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> (64 - PSEUDONYM_BITS)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_exact_as_numbers() {
        let a = pseudonym(b"key-one", 5_123_456_789);
        assert_eq!(a, pseudonym(b"key-one", 5_123_456_789));
        assert_ne!(
            a,
            pseudonym(b"key-two", 5_123_456_789),
            "rotating the key unlinks"
        );
        assert_ne!(a, pseudonym(b"key-one", 5_123_456_788));
        assert_ne!(a, 5_123_456_789);
        for id in [0, 1, -1_001_234_567_890, i64::MAX, i64::MIN] {
            let p = pseudonym(b"k", id);
            assert!((0..1i64 << 52).contains(&p), "{p}");
            assert_eq!(p as f64 as i64, p, "exact as a double");
        }
        // The pseudonym is the first 52 bits of HMAC-SHA-256(key, "42").
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"k").unwrap();
        mac.update(b"42");
        let d = mac.finalize().into_bytes();
        let top = u64::from_be_bytes(d[..8].try_into().unwrap()) >> 12;
        assert_eq!(pseudonym(b"k", 42), top as i64);
    }

    #[test]
    fn the_policy_follows_the_settings() {
        assert_eq!(IdPolicy::from_settings(None, None), IdPolicy::Omitted);
        assert_eq!(
            IdPolicy::from_settings(Some(" "), Some("0")),
            IdPolicy::Omitted
        );
        assert_eq!(IdPolicy::from_settings(None, Some("1")), IdPolicy::Raw);
        assert!(matches!(
            IdPolicy::from_settings(Some(&"k".repeat(MIN_KEY_CHARS)), Some("1")),
            IdPolicy::Pseudonymous(_)
        ));
        assert_eq!(IdPolicy::Omitted.apply(Some(42)), None);
        assert_eq!(IdPolicy::Raw.apply(Some(42)), Some(42));
        assert_eq!(IdPolicy::Raw.apply(None), None);
        assert_eq!(
            format!("{:?}", IdPolicy::Pseudonymous(b"s3cret".to_vec())),
            "Pseudonymous(<key>)"
        );
    }

    #[test]
    fn weak_keys_and_the_published_dev_key_are_refused() {
        // Too short to resist enumerating ids: ids are left out instead.
        assert_eq!(IdPolicy::from_settings(Some("k"), None), IdPolicy::Omitted);
        assert_eq!(
            IdPolicy::from_settings(Some("short-but-not-empty-key"), Some("1")),
            IdPolicy::Omitted,
            "a refused key never falls back to raw ids"
        );
        // The dev key of .dev.vars.example is public: refused outside local dev.
        assert_eq!(
            IdPolicy::from_settings(Some("dev-only-pseudonym-key-not-secret"), None),
            IdPolicy::Omitted
        );
        let long = "k".repeat(32);
        assert!(matches!(
            IdPolicy::from_settings(Some(&long), None),
            IdPolicy::Pseudonymous(_)
        ));
        // In local dev the dev key works; the refusals say why, once, in words.
        assert!(matches!(
            IdPolicy::decide(Some(PUBLISHED_DEV_KEY), None, true),
            (IdPolicy::Pseudonymous(_), None)
        ));
        let (_, refusal) = IdPolicy::decide(Some(PUBLISHED_DEV_KEY), None, false);
        assert_eq!(refusal, Some(KeyRefusal::PublishedDevKey));
        assert!(refusal.unwrap().to_string().contains("LOCAL_DEV=1"));
        let (_, refusal) = IdPolicy::decide(Some("k"), None, true);
        assert_eq!(refusal, Some(KeyRefusal::TooShort(1)));
        assert!(refusal.unwrap().to_string().contains("fewer than 32"));
        assert_eq!(
            IdPolicy::decide(None, None, true),
            (IdPolicy::Omitted, None)
        );
    }

    #[test]
    fn the_memory_gives_the_same_pseudonyms_and_stays_bounded() {
        let mut memory = Pseudonyms::new(IdPolicy::Pseudonymous(b"k".to_vec()));
        let mut events = crate::samples::typical_events();
        memory.apply_to(&mut events);
        assert!(events
            .iter()
            .all(|e| e.user_id == Some(pseudonym(b"k", 5_123_456_789))));
        for id in 0..(PSEUDONYM_CACHE_ENTRIES as i64 * 2) {
            assert_eq!(memory.map(Some(id)), Some(pseudonym(b"k", id)));
        }
        assert!(memory.cache.len() <= PSEUDONYM_CACHE_ENTRIES);
        let mut omitted = Pseudonyms::new(IdPolicy::Omitted);
        omitted.apply_to(&mut events);
        assert!(events.iter().all(|e| e.user_id.is_none()));
    }

    #[test]
    fn a_referrer_id_becomes_that_users_own_pseudonym() {
        let mut events = crate::samples::typical_events();
        events[1]
            .properties
            .push(("referrer".into(), crate::PropValue::Int(5_123_456_789)));
        let mut memory = Pseudonyms::new(IdPolicy::Pseudonymous(b"k".to_vec()));
        memory.apply_to(&mut events);
        let own = events[0].user_id.unwrap();
        assert_eq!(own, pseudonym(b"k", 5_123_456_789));
        assert!(
            events[1]
                .properties
                .contains(&("referrer".into(), crate::PropValue::Int(own))),
            "{:?}",
            events[1].properties
        );
        // Without a key the referrer is left out, like every other id.
        let mut events = crate::samples::typical_events();
        events[1]
            .properties
            .push(("referrer".into(), crate::PropValue::Int(5_123_456_789)));
        Pseudonyms::new(IdPolicy::Omitted).apply_to(&mut events);
        assert!(!events[1].properties.iter().any(|(k, _)| k == "referrer"));
    }

    #[test]
    fn events_lose_their_raw_ids() {
        let mut events = crate::samples::typical_events();
        Pseudonyms::new(IdPolicy::Pseudonymous(b"k".to_vec())).apply_to(&mut events);
        let p = pseudonym(b"k", 5_123_456_789);
        assert!(events
            .iter()
            .all(|e| e.user_id == Some(p) && e.chat_id == Some(p)));
        Pseudonyms::new(IdPolicy::Omitted).apply_to(&mut events);
        assert!(events
            .iter()
            .all(|e| e.user_id.is_none() && e.chat_id.is_none()));
    }

    #[test]
    fn debug_never_prints_raw_ids_pseudonyms_or_the_key() {
        let mut memory = Pseudonyms::new(IdPolicy::Pseudonymous(b"s3cret-key".to_vec()));
        let mut events = crate::samples::typical_events();
        memory.apply_to(&mut events);
        let printed = format!("{memory:?} {memory:#?}");
        let pseudonym = pseudonym(b"s3cret-key", 5_123_456_789).to_string();
        assert!(!printed.contains("5123456789"), "{printed}");
        assert!(!printed.contains(&pseudonym), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("Pseudonymous(<key>)"), "{printed}");
    }
}
