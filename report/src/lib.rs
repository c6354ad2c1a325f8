//! Error reports from the D1 error log. Runs the saved SQL of `queries/d1/` through
//! `wrangler d1 execute --json` (local by default, `--remote` for production) and prints
//! readable tables.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The saved queries, compiled in so the tool and the files users copy cannot drift.
pub const TOP_GROUPS_SQL: &str = include_str!("../../queries/d1/top_groups.sql");
/// Recent events of one group.
pub const GROUP_EVENTS_SQL: &str = include_str!("../../queries/d1/group_events.sql");
/// Errors by release.
pub const ERRORS_BY_RELEASE_SQL: &str = include_str!("../../queries/d1/errors_by_release.sql");
/// Errors of one user.
pub const USER_ERRORS_SQL: &str = include_str!("../../queries/d1/user_errors.sql");
/// Erasing one user.
pub const FORGET_USER_SQL: &str = include_str!("../../queries/d1/forget_user.sql");

/// What went wrong, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Bad command line.
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    /// The local database has not been created yet.
    #[error("no local database at {0}: run `make dev` (or `make migrate`) first")]
    NoLocalDatabase(String),
    /// The database exists but has no error log tables.
    #[error("the database has no error log yet: apply the migrations (`make migrate` locally, `npx wrangler d1 migrations apply DB --remote -c wrangler.consumer.toml` in production)")]
    NotMigrated,
    /// wrangler is not logged in (remote).
    #[error("wrangler is not logged in: run `npx wrangler login` (or set CLOUDFLARE_API_TOKEN)")]
    NotLoggedIn,
    /// The remote database does not exist.
    #[error("the D1 database does not exist: create it with `npx wrangler d1 create telegram-analytics` and put its id into the config")]
    NoDatabase,
    /// wrangler could not be run.
    #[error("could not run wrangler ({0}): run `npm ci` in the repository first")]
    NoWrangler(String),
    /// wrangler failed otherwise.
    #[error("wrangler failed:\n{0}")]
    Wrangler(String),
    /// No pseudonym key to turn a raw user id into the stored one.
    #[error("no ANALYTICS_ID_KEY: set it in the environment (export ANALYTICS_ID_KEY=…, from your secret store), or give --key-file FILE (a file holding the key, or a .dev.vars line ANALYTICS_ID_KEY=…); --raw-ids if the bot keeps raw ids")]
    NoIdKey,
    /// The key file could not be read.
    #[error("cannot read the key file {0}: {1}")]
    KeyFile(String, String),
    /// Nothing is stored for the user under any key given.
    #[error("nothing stored for user {user} under the key(s) tried ({tried}). Each bot may have its own ANALYTICS_ID_KEY: give every bot's key with --key-file (repeatable, e.g. --key-file path/to/bot/.dev.vars), or --raw-ids if the bot keeps raw ids")]
    NoMatch {
        /// The raw user id asked for.
        user: i64,
        /// Where the keys came from, with the pseudonym each gives.
        tried: String,
    },
}

/// Usage text.
pub const USAGE: &str =
    "usage: report [--remote] [--config FILE] [--persist-to DIR] [--since 24h] [--limit N] COMMAND
commands:
  top                 top error groups in the time range
  group FINGERPRINT   recent events of one group
  releases            errors by release
  user USER_ID        errors of one Telegram user (give the raw id: it is hashed with the key)
  forget USER_ID      erase one Telegram user from every D1 table (counts stay consistent)
--bot NAME keeps one bot's errors (its BOT_NAME); every row names its bot.
--since takes a number with m, h or d (minutes, hours, days); default 7d.
User ids are stored as keyed pseudonyms: `user` and `forget` need the key, read from the
ANALYTICS_ID_KEY environment variable and from each --key-file FILE (repeatable: one per bot
with a key of its own; locally it defaults to .dev.vars), never from the command line; they
try every key and say so when none finds the user; --raw-ids when the bot keeps raw ids
(ANALYTICS_RAW_IDS=1).";

/// Parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Query production (`--remote`) instead of the local database.
    pub remote: bool,
    /// The consumer's wrangler config.
    pub config: PathBuf,
    /// Local state directory.
    pub persist_to: PathBuf,
    /// Window start, as a duration back from now, in ms.
    pub since_ms: i64,
    /// Row limit.
    pub limit: u32,
    /// The report.
    pub command: Report,
    /// Where the pseudonym keys are (`--key-file`, repeatable; locally `.dev.vars` by default).
    pub key_files: Vec<PathBuf>,
    /// Only this bot's errors (`--bot`).
    pub bot: Option<String>,
    /// The bot keeps raw ids (`--raw-ids`): user ids are used as given.
    pub raw_ids: bool,
}

/// Which report.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Top groups.
    Top,
    /// One group's events.
    Group(String),
    /// By release.
    Releases,
    /// One user's errors (the raw Telegram id).
    User(i64),
    /// Erase one user (the raw Telegram id).
    Forget(i64),
}

/// Parses `24h`, `30m`, `7d` into milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, ReportError> {
    let (number, unit) = analytics_core::text::split_last_char(text)
        .ok_or_else(|| ReportError::Usage("--since needs a value like 24h".into()))?;
    let n: i64 = number
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ReportError::Usage(format!("bad duration {text:?}")))?;
    let unit_ms = match unit {
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return Err(ReportError::Usage(format!("bad duration unit in {text:?}"))),
    };
    Ok(n.saturating_mul(unit_ms))
}

/// Parses command-line arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Options, ReportError> {
    let mut options = Options {
        remote: false,
        config: "wrangler.consumer.toml".into(),
        persist_to: ".wrangler/state".into(),
        since_ms: 7 * 86_400_000,
        limit: 20,
        command: Report::Top,
        key_files: Vec::new(),
        bot: None,
        raw_ids: false,
    };
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| ReportError::Usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--remote" => options.remote = true,
            "--config" => options.config = value("--config")?.into(),
            "--persist-to" => options.persist_to = value("--persist-to")?.into(),
            "--since" => options.since_ms = parse_duration(&value("--since")?)?,
            "--key-file" => options.key_files.push(value("--key-file")?.into()),
            "--bot" => options.bot = Some(parse_bot(&value("--bot")?)?),
            "--raw-ids" => options.raw_ids = true,
            "--limit" => {
                options.limit = value("--limit")?
                    .parse()
                    .map_err(|_| ReportError::Usage("--limit needs a number".into()))?
            }
            "-h" | "--help" => return Err(ReportError::Usage(String::new())),
            other if other.starts_with("--") => {
                return Err(ReportError::Usage(format!("unknown option {other}")))
            }
            other => positional.push(other.to_string()),
        }
    }
    options.command = match positional.as_slice() {
        [] => Report::Top,
        [c] if c == "top" => Report::Top,
        [c] if c == "releases" => Report::Releases,
        [c, fp] if c == "group" => {
            if fp.len() != 16 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ReportError::Usage(format!(
                    "a fingerprint is 16 hex digits, not {fp:?}"
                )));
            }
            Report::Group(fp.to_ascii_lowercase())
        }
        [c, user] if c == "user" => Report::User(parse_user_id(user)?),
        [c, user] if c == "forget" => Report::Forget(parse_user_id(user)?),
        other => return Err(ReportError::Usage(format!("unknown command {other:?}"))),
    };
    Ok(options)
}

fn parse_user_id(text: &str) -> Result<i64, ReportError> {
    text.parse()
        .map_err(|_| ReportError::Usage(format!("a user id is a number, not {text:?}")))
}

/// A bot's name as `--bot` takes it: what `BOT_NAME` may be in a filter (it reaches SQL as a
/// quoted literal, so only these characters).
fn parse_bot(text: &str) -> Result<String, ReportError> {
    let valid = analytics_core::text::is_bot_name(text, 128);
    if valid {
        Ok(text.to_string())
    } else {
        Err(ReportError::Usage(format!(
            "--bot takes a bot's name (up to 128 of A-Z a-z 0-9 _ - .), not {:?}",
            analytics_core::text::ellipsize(text, 40)
        )))
    }
}

/// The key in a key file: a file holding the key, or `.dev.vars`-style lines with
/// `ANALYTICS_ID_KEY=…`.
fn key_in_file(path: &std::path::Path) -> Result<Vec<u8>, ReportError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ReportError::KeyFile(path.display().to_string(), e.to_string()))?;
    let from_line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ANALYTICS_ID_KEY="))
        .map(|k| k.trim().trim_matches('"').to_string());
    let key = match from_line {
        Some(key) => key,
        None if !text.contains('=') => text.trim().to_string(),
        None => String::new(),
    };
    if key.is_empty() {
        return Err(ReportError::KeyFile(
            path.display().to_string(),
            "it holds no ANALYTICS_ID_KEY".into(),
        ));
    }
    Ok(key.into_bytes())
}

/// The pseudonym keys to try, each with where it came from: `ANALYTICS_ID_KEY` from the
/// environment, then every `--key-file`; locally, with neither, `.dev.vars`.
pub fn id_keys(
    options: &Options,
    env_key: Option<String>,
) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
    let mut keys = Vec::new();
    if let Some(key) = env_key.filter(|k| !k.trim().is_empty()) {
        keys.push((
            "ANALYTICS_ID_KEY".to_string(),
            key.trim().as_bytes().to_vec(),
        ));
    }
    let default_file = [PathBuf::from(".dev.vars")];
    let files = match (&options.key_files[..], options.remote, keys.is_empty()) {
        ([], false, true) => &default_file[..],
        (files, _, _) => files,
    };
    for path in files {
        keys.push((path.display().to_string(), key_in_file(path)?));
    }
    if keys.is_empty() {
        return Err(ReportError::NoIdKey);
    }
    Ok(keys)
}

/// The ids a user's rows may be stored under, each with the key it comes from: the pseudonym of
/// `raw` under every key, or `raw` itself with `--raw-ids`.
pub fn stored_user_ids(
    options: &Options,
    raw: i64,
    env_key: Option<String>,
) -> Result<Vec<(String, i64)>, ReportError> {
    if options.raw_ids {
        return Ok(vec![("--raw-ids".into(), raw)]);
    }
    Ok(id_keys(options, env_key)?
        .into_iter()
        .map(|(from, key)| (from, analytics_core::privacy::pseudonym(&key, raw)))
        .collect())
}

/// The SQL of a report with its placeholders filled (all values are validated numbers or hex).
/// `stored_user` is the id user rows are stored under (see [`stored_user_id`]).
pub fn sql_for(options: &Options, now_ms: i64, stored_user: Option<i64>) -> String {
    let template = match options.command {
        Report::Top => TOP_GROUPS_SQL,
        Report::Group(_) => GROUP_EVENTS_SQL,
        Report::Releases => ERRORS_BY_RELEASE_SQL,
        Report::User(_) => USER_ERRORS_SQL,
        Report::Forget(_) => FORGET_USER_SQL,
    };
    let mut sql = template
        .replace(
            ":since_ms",
            &now_ms.saturating_sub(options.since_ms).to_string(),
        )
        .replace(":limit", &options.limit.to_string());
    if let Report::Group(fp) = &options.command {
        sql = sql.replace(":fingerprint", fp);
    }
    if let Some(id) = stored_user {
        sql = sql.replace(":user_id", &id.to_string());
    }
    // A validated name (see parse_bot), as a quoted literal; '' keeps every bot.
    let bot = options.bot.as_deref().unwrap_or("");
    sql = sql.replace(":bot", &format!("'{bot}'"));
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The project's wrangler (`node_modules/.bin/wrangler` here or in a parent directory), else
/// whatever `npx` finds.
fn wrangler_command() -> Command {
    let cwd = std::env::current_dir().unwrap_or_default();
    let local = cwd
        .ancestors()
        .map(|dir| dir.join("node_modules/.bin/wrangler"))
        .find(|path| path.exists());
    if let Some(local) = local {
        Command::new(local)
    } else {
        let mut npx = Command::new("npx");
        npx.args(["--no-install", "wrangler"]);
        npx
    }
}

/// Runs the report and returns its rows (for `forget`: what is left of the user, all zeros).
/// `env_key` is the `ANALYTICS_ID_KEY` environment variable.
pub fn query(
    options: &Options,
    now_ms: i64,
    env_key: Option<String>,
) -> Result<Vec<Value>, ReportError> {
    let raw = match options.command {
        Report::User(raw) | Report::Forget(raw) => raw,
        _ => return run_sql(options, &sql_for(options, now_ms, None)),
    };
    // Every key the user gave: a bot with a key of its own stores its users under other
    // pseudonyms. Rows found under any key are the answer; none under all is said clearly.
    let mut rows = Vec::new();
    let mut tried = Vec::new();
    let mut found = false;
    // `forget` runs under every key even where nothing is stored yet: it leaves a tombstone,
    // so a record of the user still in flight is not stored later.
    let forget = matches!(options.command, Report::Forget(_));
    for (from, id) in stored_user_ids(options, raw, env_key)? {
        let before = run_sql(options, &stored_rows_sql(id))?
            .first()
            .cloned()
            .unwrap_or(Value::Null);
        let rows_of = |column: &str| before[column].as_i64().unwrap_or(0);
        // `user` reports errors; `forget` erases the owner analytics rows too.
        let stored = rows_of("error_events") + rows_of("local_points");
        let owner_rows = rows_of("bot_users") + rows_of("user_days") + rows_of("user_events");
        let stored = if forget { stored + owner_rows } else { stored };
        tried.push(format!("{from} → {id}: {stored} rows"));
        found |= stored > 0;
        if stored == 0 && !forget {
            continue;
        }
        let mut result = run_sql(options, &sql_for(options, now_ms, Some(id)))?;
        if forget {
            // Which key, and what it held before: a forget that found nothing says so.
            for row in result.iter_mut().filter_map(Value::as_object_mut) {
                row.insert("key".into(), from.clone().into());
                row.insert("rows_before".into(), stored.into());
                for table in STORED_ROW_TABLES {
                    row.insert(format!("{table}_before"), rows_of(table).into());
                }
            }
        }
        rows.extend(result);
    }
    if !found && !forget {
        return Err(ReportError::NoMatch {
            user: raw,
            tried: tried.join("; "),
        });
    }
    Ok(rows)
}

/// The tables [`stored_rows_sql`] counts a user's rows in (its column names).
pub const STORED_ROW_TABLES: [&str; 5] = [
    "error_events",
    "local_points",
    "bot_users",
    "user_days",
    "user_events",
];

/// One row counting what D1 holds of stored id `id`, a column per [`STORED_ROW_TABLES`].
pub fn stored_rows_sql(id: i64) -> String {
    format!(
        "SELECT (SELECT count(*) FROM error_events WHERE user_id = {id} OR chat_id = {id}) AS error_events, \
         (SELECT count(*) FROM analytics_points_local WHERE index1 = '{id}' OR double4 = {id} \
         OR double5 = {id}) AS local_points, \
         (SELECT count(*) FROM bot_users WHERE user_id = {id}) AS bot_users, \
         (SELECT count(*) FROM user_days WHERE user_id = {id}) AS user_days, \
         (SELECT count(*) FROM user_events WHERE user_id = {id}) AS user_events"
    )
}

/// Runs one SQL text with wrangler; returns the rows of its last statement.
fn run_sql(options: &Options, sql: &str) -> Result<Vec<Value>, ReportError> {
    if !options.remote && !options.persist_to.join("v3/d1").exists() {
        return Err(ReportError::NoLocalDatabase(
            options.persist_to.display().to_string(),
        ));
    }
    let mut command = wrangler_command();
    command.args(["d1", "execute", "DB", "--json", "-c"]);
    command.arg(&options.config);
    if options.remote {
        command.arg("--remote");
    } else {
        command
            .arg("--local")
            .arg("--persist-to")
            .arg(&options.persist_to);
    }
    command.arg("--command").arg(sql);
    command.env("WRANGLER_SEND_METRICS", "false");
    let output = command
        .output()
        .map_err(|e| ReportError::NoWrangler(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(classify_failure(&text));
    }
    let parsed: Value =
        serde_json::from_str(&stdout).map_err(|_| ReportError::Wrangler(text.clone()))?;
    // Several statements (forget) give one result each: the last one is the answer.
    let last = parsed
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or(Value::Null);
    Ok(last["results"].as_array().cloned().unwrap_or_default())
}

/// Turns wrangler's failure output into an actionable error.
pub fn classify_failure(text: &str) -> ReportError {
    let lower = text.to_ascii_lowercase();
    if lower.contains("no such table") {
        ReportError::NotMigrated
    } else if lower.contains("not authenticated")
        || lower.contains("not logged in")
        || lower.contains("wrangler login")
    {
        ReportError::NotLoggedIn
    } else if lower.contains("couldn't find")
        || lower.contains("database_id")
        || lower.contains("not found") && lower.contains("database")
    {
        ReportError::NoDatabase
    } else {
        ReportError::Wrangler(text.trim().to_string())
    }
}

/// Renders rows as an aligned text table (columns in the order of the first row).
pub fn render_table(rows: &[Value]) -> String {
    let Some(first) = rows.first().and_then(Value::as_object) else {
        return "(no rows)\n".into();
    };
    let columns: Vec<&String> = first.keys().collect();
    let cell = |v: &Value| -> String {
        let text = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let text = text.replace('\n', " ");
        if text.chars().count() > 60 {
            format!("{}…", text.chars().take(59).collect::<String>())
        } else {
            text
        }
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(&r[c.as_str()])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(columns.iter().map(|c| c.to_string()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in table {
        out += &line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_non_ascii_duration_unit_is_a_usage_error_not_a_panic() {
        for since in ["5ч", "ч", "€", "1€d", ""] {
            let args = vec!["--since".to_string(), since.to_string()];
            assert!(
                matches!(parse_args(&args), Err(ReportError::Usage(_))),
                "--since {since:?}"
            );
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_commands_and_options() {
        let o = parse_args(&args(&["--since", "24h", "--limit", "5", "user", "42"])).unwrap();
        assert_eq!(o.since_ms, 86_400_000);
        assert_eq!(o.limit, 5);
        assert_eq!(o.command, Report::User(42));
        assert!(!o.remote);
        let o = parse_args(&args(&["--remote", "group", "00AABBCCDDEEFF11"])).unwrap();
        assert_eq!(o.command, Report::Group("00aabbccddeeff11".into()));
        assert!(o.remote);
    }

    #[test]
    fn rejects_what_could_inject_sql() {
        assert!(parse_args(&args(&["group", "x' OR 1=1 --"])).is_err());
        assert!(parse_args(&args(&["user", "1; DROP TABLE error_events"])).is_err());
        assert!(parse_args(&args(&["--since", "1w"])).is_err());
    }

    #[test]
    fn fills_every_placeholder() {
        let mut o = parse_args(&args(&["--since", "1h", "user", "7"])).unwrap();
        let sql = sql_for(&o, 10_000_000, Some(77));
        assert!(
            sql.contains("user_id = 77") && sql.contains(">= 6400000"),
            "{sql}"
        );
        assert!(!sql.contains(':'), "{sql}");
        for command in [
            Report::Top,
            Report::Releases,
            Report::Group("0123456789abcdef".into()),
        ] {
            o.command = command;
            assert!(!sql_for(&o, 0, None).contains(":since_ms"));
            assert!(!sql_for(&o, 0, None).contains(":limit"));
        }
        o.command = Report::Forget(7);
        let forget = sql_for(&o, 0, Some(77));
        assert!(
            !forget.contains(":user_id") && forget.contains("'77'"),
            "{forget}"
        );
    }

    #[test]
    fn a_huge_since_does_not_overflow() {
        // Found by the report_args fuzz target: `now - since` overflowed.
        assert!(matches!(
            parse_args(&args(&["--since", "-4444444444444444d", "top"])),
            Err(ReportError::Usage(_))
        ));
        let o = parse_args(&args(&["--since", "4444444444444444d", "top"])).unwrap();
        let sql = sql_for(&o, 1_764_000_000_000, None);
        assert!(
            !sql.contains(":since_ms") && sql.contains(">= -92"),
            "{sql}"
        );
    }

    #[test]
    fn user_ids_are_hashed_with_the_key_from_the_environment_or_a_file() {
        let o = parse_args(&args(&["forget", "5123456789"])).unwrap();
        assert_eq!(o.command, Report::Forget(5_123_456_789));
        let key = "dev-key".to_string();
        assert_eq!(
            stored_user_ids(&o, 5_123_456_789, Some(key.clone())).unwrap(),
            vec![(
                "ANALYTICS_ID_KEY".to_string(),
                analytics_core::privacy::pseudonym(b"dev-key", 5_123_456_789)
            )]
        );
        let dir = std::env::temp_dir().join(format!("report-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vars = dir.join("dev.vars");
        std::fs::write(
            &vars,
            "TELEGRAM_WEBHOOK_SECRET=x\nANALYTICS_ID_KEY=dev-key\n",
        )
        .unwrap();
        let plain = dir.join("key");
        std::fs::write(&plain, "dev-key\n").unwrap();
        for file in [&vars, &plain] {
            let with_file =
                parse_args(&args(&["--key-file", file.to_str().unwrap(), "user", "1"])).unwrap();
            assert_eq!(
                stored_user_ids(&with_file, 1, None).unwrap()[0].1,
                analytics_core::privacy::pseudonym(b"dev-key", 1)
            );
        }
        // Several bots, several keys: every key is tried, the environment's first.
        let other = dir.join("other.vars");
        std::fs::write(&other, "ANALYTICS_ID_KEY=other-bot-key\n").unwrap();
        let both = parse_args(&args(&[
            "--key-file",
            vars.to_str().unwrap(),
            "--key-file",
            other.to_str().unwrap(),
            "user",
            "1",
        ]))
        .unwrap();
        let ids: Vec<i64> = stored_user_ids(&both, 1, Some("env-key".into()))
            .unwrap()
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        assert_eq!(
            ids,
            [b"env-key".as_slice(), b"dev-key", b"other-bot-key"]
                .map(|k| analytics_core::privacy::pseudonym(k, 1))
        );
        let empty = dir.join("empty.vars");
        std::fs::write(&empty, "TELEGRAM_WEBHOOK_SECRET=x\n").unwrap();
        let no_key =
            parse_args(&args(&["--key-file", empty.to_str().unwrap(), "user", "1"])).unwrap();
        assert!(matches!(
            stored_user_ids(&no_key, 1, None),
            Err(ReportError::KeyFile(..))
        ));
        let remote = parse_args(&args(&["--remote", "user", "1"])).unwrap();
        assert!(matches!(
            stored_user_ids(&remote, 1, None),
            Err(ReportError::NoIdKey)
        ));
        let raw = parse_args(&args(&["--raw-ids", "--remote", "user", "1"])).unwrap();
        assert_eq!(stored_user_ids(&raw, 1, None).unwrap()[0].1, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bot_filter_is_a_validated_literal() {
        let o = parse_args(&args(&["--bot", "quiz-bot", "top"])).unwrap();
        assert_eq!(o.bot.as_deref(), Some("quiz-bot"));
        let sql = sql_for(&o, 1_764_000_000_000, None);
        assert!(sql.contains("'quiz-bot'") && !sql.contains(":bot"), "{sql}");
        let all = sql_for(&parse_args(&args(&["top"])).unwrap(), 0, None);
        assert!(all.contains("('' = '' OR e.bot = '')"), "{all}");
        for bad in ["x' OR 1=1 --", "", "a b", "bot;", "ü"] {
            assert!(
                parse_args(&args(&["--bot", bad, "top"])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn classifies_wrangler_failures() {
        assert!(matches!(
            classify_failure("Error: no such table: error_events"),
            ReportError::NotMigrated
        ));
        assert!(matches!(
            classify_failure("You are not authenticated. Please run `wrangler login`."),
            ReportError::NotLoggedIn
        ));
        assert!(matches!(classify_failure("boom"), ReportError::Wrangler(_)));
    }

    #[test]
    fn renders_aligned_tables() {
        let rows = vec![
            json!({"a": "x", "b": 10}),
            json!({"a": "longer", "b": null}),
        ];
        assert_eq!(
            render_table(&rows),
            "a       b\n------  --\nx       10\nlonger\n"
        );
        assert_eq!(render_table(&[]), "(no rows)\n");
    }
}
