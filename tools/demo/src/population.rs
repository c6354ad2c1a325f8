//! The synthetic population: users who arrive over `days` days (more of them lately, and a
//! burst from one ad campaign), each from a deep-link source, with a habit that decides how
//! often they come back (so retention cohorts decay like real ones), sessions like the
//! economy model's (`bench/src/economy`: 1 + Geometric(mean 3) updates, 2–8 s apart; commands,
//! button presses, other messages), a share who pay (Telegram Stars mostly, some USD; a few
//! refunds), a share who block the bot (some unblock later). Deterministic from the seed and
//! `now_ms`.
//!
//! Every update is real Bot API JSON (`Update` with `message`, `callback_query`,
//! `pre_checkout_query`, `my_chat_member`; messages with `successful_payment` and
//! `refunded_payment`), in a private chat whose id is the user's.

use std::collections::HashMap;

use e2e_tests::updates::{BotIdentity, Charge, PrivateChat};
use serde_json::json;

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The demo bot as Telegram describes it (the `user` of its own chat-member updates).
const BOT_ID: i64 = 7_000_000_001;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How many users.
    pub users: usize,
    /// Over how many days before `now_ms` (at least 1).
    pub days: u32,
    /// The seed: the same seed and `now_ms` give the same population.
    pub seed: u64,
    /// The end of the period, ms since the epoch (no update is later).
    pub now_ms: i64,
}

/// How often a user comes back after the first visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Habit {
    /// Tries the bot once, rarely returns.
    OneOff,
    /// Comes back for a couple of weeks, less and less.
    Casual,
    /// Comes back for months.
    Loyal,
}

/// One synthetic user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The Telegram user id (and the private chat's id).
    pub id: i64,
    /// First name.
    pub first_name: &'static str,
    /// `language_code` (absent for a few users, as Telegram may omit it).
    pub lang: Option<&'static str>,
    /// `is_premium`.
    pub premium: bool,
    /// The `/start` deep-link payload of the first visit (`None`: a plain `/start`).
    pub source: Option<String>,
    /// The first visit, ms since the epoch.
    pub joined_ms: i64,
    /// How often they come back.
    pub habit: Habit,
}

/// What a user does in one update.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `/start`, with the deep-link payload on the first visit.
    Start(Option<String>),
    /// Another command (`/help`, `/menu`, `/ping`, `/members`, or one the bot does not have).
    Command(&'static str),
    /// A press on the menu's inline button with this callback data.
    Button(&'static str),
    /// A plain text message (the demo bot does not answer text).
    Text(&'static str),
    /// A sticker.
    Sticker,
    /// The checkout step before a payment.
    PreCheckout {
        /// `XTR` (Telegram Stars) or `USD`.
        currency: &'static str,
        /// `total_amount`, in the currency's smallest units.
        amount: i64,
    },
    /// A message with `successful_payment`.
    Paid {
        /// `XTR` or `USD`.
        currency: &'static str,
        /// `total_amount`.
        amount: i64,
        /// `telegram_payment_charge_id`.
        charge: String,
    },
    /// A message with `refunded_payment` (Stars only, as Telegram's refunds are).
    Refunded {
        /// `total_amount`.
        amount: i64,
        /// The refunded payment's `telegram_payment_charge_id`.
        charge: String,
    },
    /// `my_chat_member`: the user blocked the bot (`member` → `kicked`).
    Blocked,
    /// `my_chat_member`: the user unblocked it (`kicked` → `member`).
    Unblocked,
}

/// One update of the simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUpdate {
    /// When it happens, ms since the epoch.
    pub at_ms: i64,
    /// Index into [`Population::users`].
    pub user: usize,
    /// What happens.
    pub action: Action,
    /// The message id in the user's chat (messages count up per chat).
    pub message_id: i64,
}

/// The generated users and their updates, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    /// The users.
    pub users: Vec<User>,
    /// Every update, sorted by time.
    pub updates: Vec<SimUpdate>,
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.f64() * (hi - lo) as f64) as i64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.f64() * items.len() as f64) as usize % items.len()]
    }

    /// One of `items` by weight.
    fn weighted<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let total: f64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.f64() * total;
        for (item, weight) in items {
            if x < *weight {
                return *item;
            }
            x -= weight;
        }
        items[items.len() - 1].0
    }
}

const NAMES: &[&str] = &[
    "Ada", "Boris", "Carmen", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira",
    "Luca", "Maya", "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tanya", "Umar", "Vera",
    "Wen", "Ximena", "Yuki", "Zoe",
];

const LANGUAGES: &[(Option<&str>, f64)] = &[
    (Some("en"), 38.0),
    (Some("ru"), 18.0),
    (Some("es"), 10.0),
    (Some("pt-br"), 8.0),
    (Some("de"), 6.0),
    (Some("uk"), 5.0),
    (Some("fr"), 4.0),
    (Some("it"), 3.0),
    (Some("tr"), 3.0),
    (Some("id"), 2.0),
    (None, 3.0),
];

/// Where first visits come from; `friend` becomes `ref_<code>` of an earlier user.
const SOURCES: &[(&str, f64)] = &[
    ("organic", 33.0),
    ("ads_tiktok", 20.0),
    ("friend", 18.0),
    ("blog", 10.0),
    ("ads_google", 9.0),
    ("channel_post", 10.0),
];

const TEXTS: &[&str] = &[
    "hi",
    "hello!",
    "how does this work?",
    "thanks",
    "what can you do",
    "🙂",
    "ok",
    "is this free?",
];

/// The referral code of the user at `index` (no raw user id in a deep link).
pub fn referral_code(seed: u64, index: usize) -> String {
    let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let alphabet = b"abcdefghijkmnpqrstuvwxyz23456789";
    let code: String = (0..6)
        .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize] as char)
        .collect();
    format!("ref_{code}")
}

/// A time of day people use a bot: 07:00–23:00, a little more in the evening.
fn daytime(rng: &mut Rng, day_start: i64) -> i64 {
    let hour = 7.0 + 16.0 * rng.f64().powf(0.8);
    day_start + (hour * 3_600_000.0) as i64 + rng.range(0, 60_000)
}

impl Population {
    /// Generates the population of `config`.
    pub fn generate(config: &Config) -> Population {
        let days = i64::from(config.days.max(1));
        let mut rng = Rng(config.seed);
        let start = config.now_ms - days * DAY_MS;
        // No update in the last ten minutes: every one is in the past when it is sent.
        let latest = config.now_ms - 10 * 60_000;
        let campaign = 0.55 + 0.3 * rng.f64();

        let mut users: Vec<User> = (0..config.users)
            .map(|i| {
                let kind = rng.weighted(SOURCES);
                // Growth: arrivals thicken towards today; the TikTok campaign is a burst.
                let position = if kind == "ads_tiktok" && rng.chance(0.6) {
                    (campaign + 0.06 * rng.f64()).min(0.999)
                } else {
                    rng.f64().sqrt()
                };
                let day = ((position * days as f64) as i64).min(days - 1);
                let joined_ms = daytime(&mut rng, start + day * DAY_MS).min(latest);
                let habit = rng.weighted(&[
                    (Habit::OneOff, 45.0),
                    (Habit::Casual, 35.0),
                    (Habit::Loyal, 20.0),
                ]);
                User {
                    id: 1_000_000_000 + i as i64 * 9_973 + rng.range(0, 9_000),
                    first_name: rng.pick(NAMES),
                    lang: rng.weighted(LANGUAGES),
                    premium: rng.chance(0.09),
                    source: (kind != "organic").then(|| kind.to_string()),
                    joined_ms,
                    habit,
                }
            })
            .collect();
        // A friend's referral names a user who came earlier (organic when nobody did).
        let mut order: Vec<usize> = (0..users.len()).collect();
        order.sort_by_key(|&i| users[i].joined_ms);
        for (rank, &i) in order.iter().enumerate() {
            if users[i].source.as_deref() == Some("friend") {
                users[i].source = (rank > 0).then(|| {
                    let referrer = order[rng.range(0, rank as i64) as usize];
                    referral_code(config.seed, referrer)
                });
            }
        }

        let mut updates = Vec::new();
        for (index, user) in users.iter().enumerate() {
            user_timeline(&mut rng, index, user, latest, &mut updates);
        }
        updates.retain(|u| u.at_ms <= latest && u.at_ms >= start);
        updates.sort_by_key(|u| (u.at_ms, u.user));
        let mut message_ids: HashMap<usize, i64> = HashMap::new();
        for update in &mut updates {
            let next = message_ids.entry(update.user).or_insert(0);
            *next += 1 + i64::from(matches!(
                update.action,
                Action::Start(_) | Action::Command(_)
            ));
            update.message_id = *next;
        }
        Population { users, updates }
    }

    /// The Bot API JSON of update `index`, numbered `update_id`.
    pub fn body(&self, index: usize, update_id: i64) -> String {
        let update = &self.updates[index];
        let user = &self.users[update.user];
        let chat = PrivateChat {
            user_id: user.id,
            first_name: user.first_name,
            lang: user.lang,
            premium: user.premium,
            bot: BotIdentity {
                id: BOT_ID,
                first_name: "Demo bot",
                username: "demo_analytics_bot",
            },
        };
        let date = update.at_ms / 1000;
        let message_id = update.message_id;
        let value = match &update.action {
            Action::Start(Some(source)) => {
                chat.command(update_id, message_id, date, &format!("/start {source}"))
            }
            Action::Start(None) => chat.command(update_id, message_id, date, "/start"),
            Action::Command(name) => chat.command(update_id, message_id, date, &format!("/{name}")),
            Action::Text(text) => chat.message(update_id, message_id, date, json!({"text": text})),
            Action::Sticker => chat.message(
                update_id,
                message_id,
                date,
                json!({"sticker": {
                    "file_id": format!("CAACAgIAAxkBAAE{message_id}"),
                    "file_unique_id": format!("AgAD{message_id}"),
                    "type": "regular", "width": 512, "height": 512,
                    "is_animated": false, "is_video": false, "emoji": "👍",
                }}),
            ),
            Action::Button(data) => chat.button(update_id, message_id, date, data),
            Action::PreCheckout { currency, amount } => chat.pre_checkout(
                update_id,
                &format!("pc{}{message_id}", user.id),
                currency,
                *amount,
            ),
            Action::Paid {
                currency,
                amount,
                charge,
            } => {
                let provider_id = if *currency == "XTR" {
                    String::new()
                } else {
                    format!("ch_{charge}")
                };
                let paid = Charge {
                    currency,
                    amount: *amount,
                    telegram_id: charge,
                    provider_id: &provider_id,
                };
                chat.payment(update_id, message_id, date, &paid)
            }
            Action::Refunded { amount, charge } => {
                let refund = Charge {
                    currency: "XTR",
                    amount: *amount,
                    telegram_id: charge,
                    provider_id: "",
                };
                chat.refund(update_id, message_id, date, &refund)
            }
            Action::Blocked => chat.membership(update_id, date, "member", "kicked"),
            Action::Unblocked => chat.membership(update_id, date, "kicked", "member"),
        };
        value.to_string()
    }

    /// How many users did `what` at least once.
    pub fn users_who(&self, what: impl Fn(&Action) -> bool) -> usize {
        let mut seen = vec![false; self.users.len()];
        for update in self.updates.iter().filter(|u| what(&u.action)) {
            seen[update.user] = true;
        }
        seen.iter().filter(|s| **s).count()
    }

    /// The distinct days (since the epoch) that have updates.
    pub fn days_with_updates(&self) -> usize {
        let mut days: Vec<i64> = self.updates.iter().map(|u| u.at_ms / DAY_MS).collect();
        days.dedup();
        days.len()
    }
}

/// One session from `at`: 1 + Geometric(mean 3) updates, 2–8 s apart (the economy model's);
/// `first` opens it. Returns when it ended.
fn session(rng: &mut Rng, user: usize, at: i64, first: Action, out: &mut Vec<SimUpdate>) -> i64 {
    let mut at = at;
    let mut action = first;
    let mut count = 0;
    loop {
        out.push(SimUpdate {
            at_ms: at,
            user,
            action,
            message_id: 0,
        });
        count += 1;
        if count >= 30 || !rng.chance(0.75) {
            return at;
        }
        at += rng.range(2_000, 8_000);
        let kind = rng.f64();
        action = if kind < 0.3 {
            Action::Command(rng.weighted(&[
                ("menu", 40.0),
                ("help", 25.0),
                ("ping", 15.0),
                ("members", 15.0),
                ("settings", 5.0),
            ]))
        } else if kind < 0.5 {
            Action::Button(rng.weighted(&[("menu:stats", 60.0), ("menu:about", 40.0)]))
        } else if kind < 0.9 {
            Action::Sticker
        } else {
            Action::Text(rng.pick(TEXTS))
        };
    }
}

/// Everything one user does, unsorted.
fn user_timeline(rng: &mut Rng, index: usize, user: &User, latest: i64, out: &mut Vec<SimUpdate>) {
    let joined_day = user.joined_ms - user.joined_ms.rem_euclid(DAY_MS);
    // Active days after the first, by habit: the retention curve.
    let mut active = vec![user.joined_ms];
    let mut day = 1;
    while joined_day + day * DAY_MS <= latest {
        let d = day as f64;
        let p = match user.habit {
            Habit::OneOff => 0.004,
            Habit::Casual => 0.25 * (-d / 6.0).exp(),
            Habit::Loyal => 0.5 * (-d / 45.0).exp() + 0.06,
        };
        if rng.chance(p) {
            active.push(daytime(rng, joined_day + day * DAY_MS));
        }
        day += 1;
    }
    let payer = rng.chance(match user.habit {
        Habit::OneOff => 0.01,
        Habit::Casual => 0.08,
        Habit::Loyal => 0.3,
    });
    let blocks = rng.chance(match user.habit {
        Habit::OneOff => 0.3,
        Habit::Casual => 0.18,
        Habit::Loyal => 0.05,
    });
    let mut last = user.joined_ms;
    for (n, &start) in active.iter().enumerate() {
        let sessions = 1 + usize::from(rng.chance(0.3)) + usize::from(rng.chance(0.1));
        for s in 0..sessions {
            let at = if s == 0 {
                start
            } else {
                start + rng.range(600_000, 4 * 3_600_000)
            };
            let first = match (n, s) {
                (0, 0) => Action::Start(user.source.clone()),
                _ if rng.chance(0.5) => Action::Command("menu"),
                _ => Action::Button("menu:stats"),
            };
            let mut end = session(rng, index, at, first, out);
            // A purchase closes a session: checkout, then (mostly) the payment.
            if payer && n > 0 && s == 0 && (rng.chance(0.35) || n + 1 == active.len()) {
                end = purchase(rng, index, end, latest, out);
            }
            last = last.max(end);
        }
    }
    if blocks {
        let later = rng.range(0, 6) * DAY_MS;
        let blocked_at = daytime(rng, last - last.rem_euclid(DAY_MS) + later).max(last + 60_000);
        if blocked_at <= latest {
            out.push(SimUpdate {
                at_ms: blocked_at,
                user: index,
                action: Action::Blocked,
                message_id: 0,
            });
            if rng.chance(0.3) {
                let back = blocked_at + rng.range(2, 21) * DAY_MS;
                if back <= latest {
                    out.push(SimUpdate {
                        at_ms: back,
                        user: index,
                        action: Action::Unblocked,
                        message_id: 0,
                    });
                    session(rng, index, back + 5_000, Action::Start(None), out);
                }
            }
        }
    }
}

/// A purchase after `at`: `pre_checkout_query`, then (85 %) the `successful_payment`, and for a
/// few Stars payments a refund days later. Returns when it ended.
fn purchase(rng: &mut Rng, user: usize, at: i64, latest: i64, out: &mut Vec<SimUpdate>) -> i64 {
    let (currency, amount) = if rng.chance(0.8) {
        ("XTR", rng.pick(&[50, 100, 100, 250, 500]))
    } else {
        ("USD", rng.pick(&[199, 499, 499, 999]))
    };
    let checkout = at + rng.range(3_000, 20_000);
    out.push(SimUpdate {
        at_ms: checkout,
        user,
        action: Action::PreCheckout { currency, amount },
        message_id: 0,
    });
    if !rng.chance(0.85) {
        return checkout;
    }
    let paid = checkout + rng.range(1_000, 6_000);
    let charge = format!("stxdemo{}x{}", user, paid % 1_000_000_007);
    if currency == "XTR" && rng.chance(0.1) {
        let refund = paid + rng.range(1, 8) * DAY_MS;
        if refund <= latest {
            out.push(SimUpdate {
                at_ms: refund,
                user,
                action: Action::Refunded {
                    amount,
                    charge: charge.clone(),
                },
                message_id: 0,
            });
        }
    }
    out.push(SimUpdate {
        at_ms: paid,
        user,
        action: Action::Paid {
            currency,
            amount,
            charge,
        },
        message_id: 0,
    });
    paid
}
