//! Funnels: ordered steps a user takes (commands, button presses, custom and other events), set
//! in the dashboard's `FUNNELS` variable (wrangler.dashboard.toml), and the rule that says how far
//! a user got.
//!
//! # The text format
//!
//! One funnel per line (or separated by `;`), `#` starts a comment line:
//!
//! ```text
//! Checkout: /start > callback menu > order_paid within 7d
//! ```
//!
//! - `NAME:` up to [`MAX_NAME_CHARS`] characters (no `:`, `;`, `>`), unique.
//! - Steps separated by `>` (or `→`), 2 to [`MAX_STEPS`] of them, no step twice:
//!   - `/start`: the command `start`;
//!   - `callback menu`: a button press whose callback name is `menu`;
//!   - `order_paid` or `custom order_paid`: the custom event `order_paid`;
//!   - `payment payment`, `user not_understood`, `command start`: an event of that kind and name.
//! - ` within 30m | 12h | 7d` (optional, default [`DEFAULT_LIMIT_MS`], at most 30 days): how long
//!   after the first step the last one may come.
//!
//! Names are 1–64 characters of `A-Z a-z 0-9 _ - .` (they reach Analytics Engine SQL as quoted
//! literals, so nothing else is accepted).
//!
//! # The rule
//!
//! Per user, the first time of each step in the range ([`reached`]): a user reached step k when
//! the first times of steps 1..k are in order (ties allowed) and step k came at most the time
//! limit after step 1. The dashboard's SQL computes exactly this (the test suite compares it with
//! [`reached`] on ClickHouse); a user who did a later step only before their first step 1 does not
//! count for it.

use crate::timefmt::{DAY_MS, HOUR_MS};

/// Most funnels a configuration may hold.
pub const MAX_FUNNELS: usize = 10;
/// Most steps of a funnel.
pub const MAX_STEPS: usize = 8;
/// Longest funnel name, in characters.
pub const MAX_NAME_CHARS: usize = 60;
/// Longest event name in a step, in bytes.
pub const MAX_EVENT_NAME: usize = 64;
/// The time limit when a funnel sets none: 7 days.
pub const DEFAULT_LIMIT_MS: i64 = 7 * DAY_MS;
/// The longest time limit: 30 days.
pub const MAX_LIMIT_MS: i64 = 30 * DAY_MS;
/// The configuration the tests and the documentation use.
pub const EXAMPLE: &str =
    "Onboarding: /start > callback menu > order_paid within 7d\nHelp: /start > /help within 1h";

/// The kinds a step may name (the pipeline's event kinds that carry a meaningful name).
pub const STEP_KINDS: [&str; 5] = ["command", "callback", "custom", "payment", "user"];

/// One step: an event kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The event kind (one of [`STEP_KINDS`]).
    pub kind: &'static str,
    /// The event name (validated: SQL-literal safe).
    pub name: String,
}

impl Step {
    /// How the pages show it: `/start`, `callback menu`, `order_paid`, `payment payment`.
    pub fn label(&self) -> String {
        match self.kind {
            "command" => format!("/{}", self.name),
            "custom" => self.name.clone(),
            kind => format!("{kind} {}", self.name),
        }
    }
}

/// A funnel: its name, its steps in order, and the time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funnel {
    /// Its name, as configured.
    pub name: String,
    /// The steps, in order (at least 2).
    pub steps: Vec<Step>,
    /// How long after step 1 the last step may come, ms.
    pub limit_ms: i64,
}

/// Why a funnel configuration was refused: which funnel (1-based line of the configuration,
/// counting `;` as a line break) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FUNNELS, funnel {line}: {message}")]
pub struct FunnelConfigError {
    /// The funnel's line (1-based).
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn event_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > MAX_EVENT_NAME || !text.chars().all(is_name_char) {
        return Err(format!(
            "a step's name is 1 to {MAX_EVENT_NAME} characters of A-Z a-z 0-9 _ - ., not {:?}",
            analytics_core::text::ellipsize(text, 40)
        ));
    }
    Ok(text.to_string())
}

fn parse_step(text: &str) -> Result<Step, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [] => Err("an empty step".into()),
        [one] => match one.strip_prefix('/') {
            Some(command) => Ok(Step {
                kind: "command",
                name: event_name(command)?,
            }),
            None => Ok(Step {
                kind: "custom",
                name: event_name(one)?,
            }),
        },
        [kind, name] => {
            let kind = STEP_KINDS.iter().find(|k| *k == kind).ok_or_else(|| {
                format!(
                    "unknown step kind {:?} (one of {})",
                    analytics_core::text::ellipsize(kind, 20),
                    STEP_KINDS.join(", ")
                )
            })?;
            Ok(Step {
                kind,
                name: event_name(name)?,
            })
        }
        _ => Err(format!(
            "a step is `/command`, `event_name` or `kind name`, not {:?}",
            analytics_core::text::ellipsize(text.trim(), 60)
        )),
    }
}

fn parse_limit(text: &str) -> Result<i64, String> {
    let bad = || format!("a time limit is like 30m, 12h or 7d (at most 30d), not {text:?}");
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => HOUR_MS,
        "d" => DAY_MS,
        _ => return Err(bad()),
    };
    let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
    if ms <= 0 || ms > MAX_LIMIT_MS {
        return Err(bad());
    }
    Ok(ms)
}

fn parse_funnel(text: &str) -> Result<Funnel, String> {
    let (name, rest) = text
        .split_once(':')
        .ok_or("a funnel is `name: step > step [within 7d]`: no `:` after the name")?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('>') {
        return Err(format!(
            "a funnel's name is 1 to {MAX_NAME_CHARS} characters without `:`, `;` or `>`"
        ));
    }
    let rest = rest.replace('→', ">");
    let (steps_text, limit_ms) = match rest.rsplit_once(" within ") {
        Some((steps, limit)) => (steps.to_string(), parse_limit(limit.trim())?),
        None => (rest.clone(), DEFAULT_LIMIT_MS),
    };
    let steps = steps_text
        .split('>')
        .map(parse_step)
        .collect::<Result<Vec<_>, _>>()?;
    if steps.len() < 2 || steps.len() > MAX_STEPS {
        return Err(format!(
            "a funnel has 2 to {MAX_STEPS} steps, not {}",
            steps.len()
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        if steps[..i].contains(step) {
            return Err(format!("the step {} comes twice", step.label()));
        }
    }
    Ok(Funnel {
        name: name.to_string(),
        steps,
        limit_ms,
    })
}

/// Parses a `FUNNELS` configuration (see the module's documentation). Empty or absent: no
/// funnels. The first mistake is reported, with its funnel's line.
pub fn parse_config(text: &str) -> Result<Vec<Funnel>, FunnelConfigError> {
    let mut funnels: Vec<Funnel> = Vec::new();
    for (i, line) in text.split(['\n', ';']).enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |message: String| FunnelConfigError {
            line: i + 1,
            message,
        };
        let funnel = parse_funnel(line).map_err(error)?;
        if funnels.iter().any(|f| f.name == funnel.name) {
            return Err(error(format!("the name {:?} is used twice", funnel.name)));
        }
        if funnels.len() == MAX_FUNNELS {
            return Err(error(format!("at most {MAX_FUNNELS} funnels")));
        }
        funnels.push(funnel);
    }
    Ok(funnels)
}

/// How many steps of a funnel one user reached, from the first time (ms) they did each step
/// (`None`: never, in the range): steps 1..k count when their first times are in order and step
/// k came at most `limit_ms` after step 1.
pub fn reached(first_times: &[Option<f64>], limit_ms: i64) -> usize {
    let Some(Some(start)) = first_times.first() else {
        return 0;
    };
    let mut previous = *start;
    let mut n = 1;
    for time in &first_times[1..] {
        match time {
            Some(t) if *t >= previous && *t <= start + limit_ms as f64 => {
                previous = *t;
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// Users at each step, from how many steps each user reached.
pub fn step_counts(reached_per_user: impl IntoIterator<Item = usize>, steps: usize) -> Vec<u64> {
    let mut counts = vec![0u64; steps];
    for n in reached_per_user {
        for slot in counts.iter_mut().take(n) {
            *slot += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: &'static str, name: &str) -> Step {
        Step {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn parses_the_example() {
        let funnels = parse_config(EXAMPLE).unwrap();
        assert_eq!(funnels.len(), 2);
        assert_eq!(
            funnels[0],
            Funnel {
                name: "Onboarding".into(),
                steps: vec![
                    step("command", "start"),
                    step("callback", "menu"),
                    step("custom", "order_paid")
                ],
                limit_ms: 7 * DAY_MS,
            }
        );
        assert_eq!(funnels[1].limit_ms, HOUR_MS);
        let labels: Vec<String> = funnels[0].steps.iter().map(Step::label).collect();
        assert_eq!(labels, ["/start", "callback menu", "order_paid"]);
    }

    #[test]
    fn accepts_arrows_semicolons_comments_kinds_and_the_default_limit() {
        let funnels = parse_config(
            "# shop\n  Pay : /start → payment pre_checkout → payment payment ;\n\nX: custom a>user not_understood within 30m",
        )
        .unwrap();
        assert_eq!(funnels.len(), 2);
        assert_eq!(funnels[0].name, "Pay");
        assert_eq!(funnels[0].limit_ms, DEFAULT_LIMIT_MS);
        assert_eq!(funnels[0].steps[2], step("payment", "payment"));
        assert_eq!(funnels[1].steps[1], step("user", "not_understood"));
        assert_eq!(funnels[1].limit_ms, 30 * 60_000);
        assert_eq!(parse_config("").unwrap(), vec![]);
        assert_eq!(parse_config("  \n# nothing\n").unwrap(), vec![]);
    }

    #[test]
    fn refuses_bad_configurations_with_the_line_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            ("/start > /help", 1, "no `:`"),
            ("A: /start", 1, "2 to 8 steps"),
            ("A: /start > ", 1, "empty step"),
            ("A: /start > /x' OR 1=1 --", 1, "step is"),
            ("A: /start > /x'; DROP TABLE x", 1, "A-Z a-z"),
            ("A: /start > /x'y", 1, "A-Z a-z"),
            ("A: /start > bogus menu", 1, "unknown step kind"),
            ("A: /start > /help within 31d", 1, "at most 30d"),
            ("A: /start > /help within 0h", 1, "time limit"),
            ("A: /start > /help within soon", 1, "time limit"),
            ("A: /start > /start", 1, "comes twice"),
            ("A: /a > /b\nA: /c > /d", 2, "used twice"),
            (": /a > /b", 1, "name is 1 to"),
            ("A: /a>/b>/c>/d>/e>/f>/g>/h>/i", 1, "not 9"),
        ];
        for (text, line, needle) in cases {
            let error = parse_config(text).unwrap_err();
            assert_eq!(error.line, *line, "{text}: {error}");
            assert!(error.to_string().contains(needle), "{text}: {error}");
            assert!(error.to_string().starts_with("FUNNELS, funnel"));
        }
        let many: Vec<String> = (0..11).map(|i| format!("F{i}: /a > /b")).collect();
        let error = parse_config(&many.join(";")).unwrap_err();
        assert_eq!(error.line, 11);
        assert!(error.message.contains("at most 10"));
    }

    #[test]
    fn a_user_reaches_steps_in_order_within_the_limit() {
        let limit = HOUR_MS;
        let h = |x: f64| Some(x * HOUR_MS as f64);
        assert_eq!(reached(&[None, h(1.0)], limit), 0);
        assert_eq!(reached(&[], limit), 0);
        assert_eq!(reached(&[h(0.0), None, h(0.5)], limit), 1);
        assert_eq!(reached(&[h(0.0), h(0.5), h(0.9)], limit), 3);
        // Ties count; the limit is inclusive.
        assert_eq!(reached(&[h(0.0), h(0.0), h(1.0)], limit), 3);
        // Out of order: step 2 first happened before step 1.
        assert_eq!(reached(&[h(1.0), h(0.5), h(1.2)], limit), 1);
        // Too late: step 3 came after the limit.
        assert_eq!(reached(&[h(0.0), h(0.5), h(1.5)], limit), 2);
        assert_eq!(step_counts([3, 1, 0, 2], 3), vec![3, 2, 1]);
    }
}
