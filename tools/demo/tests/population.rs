//! The population generator: deterministic, believable shares, dates inside the period, and
//! every update real Bot API JSON that the bot's parser takes.

use demo::population::{Action, Config, Population, DAY_MS};
use telegram_policy::update::Update;

const NOW: i64 = 1_764_000_000_000;

fn config(users: usize, days: u32, seed: u64) -> Config {
    Config {
        users,
        days,
        seed,
        now_ms: NOW,
    }
}

#[test]
fn the_same_seed_gives_the_same_population_and_another_seed_another() {
    let a = Population::generate(&config(200, 90, 7));
    assert_eq!(a, Population::generate(&config(200, 90, 7)));
    assert_ne!(a, Population::generate(&config(200, 90, 8)));
}

#[test]
fn every_update_is_inside_the_period_in_time_order() {
    let population = Population::generate(&config(300, 90, 1));
    let start = NOW - 90 * DAY_MS;
    assert!(population
        .updates
        .iter()
        .all(|u| (start..=NOW).contains(&u.at_ms)));
    assert!(population
        .updates
        .windows(2)
        .all(|w| w[0].at_ms <= w[1].at_ms));
    // History, not one day: updates on most days of the period, early and late.
    let days = population.days_with_updates();
    assert!(days >= 80, "{days} days with updates");
    let first_week = population
        .updates
        .iter()
        .filter(|u| u.at_ms < start + 7 * DAY_MS)
        .count();
    assert!(first_week > 0, "nothing in the first week");
}

#[test]
fn every_user_starts_with_start_and_their_source() {
    let population = Population::generate(&config(300, 90, 2));
    let mut seen = vec![false; population.users.len()];
    for update in &population.updates {
        if !seen[update.user] {
            seen[update.user] = true;
            let user = &population.users[update.user];
            assert_eq!(
                update.action,
                Action::Start(user.source.clone()),
                "user {}",
                user.id
            );
        }
    }
    let sources: Vec<&str> = population
        .users
        .iter()
        .filter_map(|u| u.source.as_deref())
        .collect();
    for expected in ["ads_tiktok", "blog", "ref_"] {
        assert!(
            sources.iter().any(|s| s.starts_with(expected)),
            "no source {expected}"
        );
    }
    let organic = population
        .users
        .iter()
        .filter(|u| u.source.is_none())
        .count();
    assert!((50..=150).contains(&organic), "{organic} organic of 300");
}

#[test]
fn shares_of_payers_blockers_and_returning_users_are_believable() {
    let population = Population::generate(&config(1_000, 90, 3));
    let users = population.users.len();
    let payers = population.users_who(|a| matches!(a, Action::Paid { .. }));
    let blockers = population.users_who(|a| matches!(a, Action::Blocked));
    let unblockers = population.users_who(|a| matches!(a, Action::Unblocked));
    let refunds = population.users_who(|a| matches!(a, Action::Refunded { .. }));
    assert!((30..=150).contains(&payers), "{payers} payers of {users}");
    assert!(
        (100..=300).contains(&blockers),
        "{blockers} blockers of {users}"
    );
    assert!(
        unblockers > 0 && unblockers < blockers,
        "{unblockers} unblocked"
    );
    assert!(refunds > 0 && refunds < payers, "{refunds} refunds");
    let usd = population
        .updates
        .iter()
        .filter(|u| {
            matches!(
                u.action,
                Action::Paid {
                    currency: "USD",
                    ..
                }
            )
        })
        .count();
    let stars = population
        .updates
        .iter()
        .filter(|u| {
            matches!(
                u.action,
                Action::Paid {
                    currency: "XTR",
                    ..
                }
            )
        })
        .count();
    assert!(
        usd > 0 && stars > 2 * usd,
        "{stars} Stars payments, {usd} USD"
    );
    // Some come back a week or more after their first visit (retention cohorts).
    let mut first = vec![None; users];
    let mut back_after_a_week = vec![false; users];
    for u in &population.updates {
        let joined = *first[u.user].get_or_insert(u.at_ms);
        back_after_a_week[u.user] |= u.at_ms - joined >= 7 * DAY_MS;
    }
    let returning = back_after_a_week.iter().filter(|b| **b).count();
    assert!(
        (100..=500).contains(&returning),
        "{returning} back after a week"
    );
    let premium = population.users.iter().filter(|u| u.premium).count();
    assert!((40..=150).contains(&premium), "{premium} premium");
    let langs = population.users.iter().filter(|u| u.lang.is_some()).count();
    assert!(langs > 900, "{langs} with a language");
    // Sessions of a few updates: tens of updates per user on average, not hundreds.
    let per_user = population.updates.len() as f64 / users as f64;
    assert!(
        (5.0..=60.0).contains(&per_user),
        "{per_user:.1} updates per user"
    );
}

#[test]
fn every_update_parses_as_the_kind_it_is() {
    let population = Population::generate(&config(300, 30, 4));
    let mut kinds = std::collections::BTreeSet::new();
    for (i, update) in population.updates.iter().enumerate() {
        let body = population.body(i, 1_000 + i as i64);
        let parsed = Update::parse(body.as_bytes())
            .unwrap_or_else(|e| panic!("update {i} does not parse ({e:?}): {body}"));
        assert_eq!(parsed.update_id, 1_000 + i as i64);
        assert!(parsed.known, "{body}");
        let expected = match update.action {
            Action::Button(_) => "callback_query",
            Action::PreCheckout { .. } => "pre_checkout_query",
            Action::Blocked | Action::Unblocked => "my_chat_member",
            _ => "message",
        };
        assert_eq!(parsed.kind, expected, "{body}");
        let user = &population.users[update.user];
        assert_eq!(parsed.user_id(), Some(user.id), "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let from = match expected {
            "my_chat_member" => &json[expected]["from"],
            _ => &json[expected]["from"],
        };
        assert_eq!(from["language_code"].as_str(), user.lang, "{body}");
        assert_eq!(
            from["is_premium"].as_bool(),
            user.premium.then_some(true),
            "{body}"
        );
        if let Action::Blocked = update.action {
            assert_eq!(json[expected]["new_chat_member"]["status"], "kicked");
            assert_eq!(json[expected]["chat"]["type"], "private");
        }
        if let Action::Paid {
            amount, currency, ..
        } = &update.action
        {
            let paid = &json["message"]["successful_payment"];
            assert_eq!(paid["total_amount"], *amount);
            assert_eq!(paid["currency"], *currency);
        }
        kinds.insert(expected);
    }
    assert_eq!(kinds.len(), 4, "{kinds:?}");
}

#[test]
#[ignore = "prints the default population's numbers"]
fn print_the_default_population() {
    let p = Population::generate(&config(600, 90, 24));
    println!(
        "users {} updates {} payers {} blockers {} days {}",
        p.users.len(),
        p.updates.len(),
        p.users_who(|a| matches!(a, Action::Paid { .. })),
        p.users_who(|a| matches!(a, Action::Blocked)),
        p.days_with_updates()
    );
}
