//! # dev-stack — any bot beside the consumer, in one local workerd
//!
//! `wrangler dev -c bot/wrangler.toml -c wrangler.consumer.toml` runs every config's `[build]`
//! command in the directory wrangler was started from, and resolves each `main` beside its own
//! config; local queues are per `wrangler dev` process, so the bot and the consumer must share
//! one. This crate writes the configs that make that work for a bot anywhere on disk
//! (`make dev BOT=path/to/wrangler.toml`; the end-to-end tests use the same
//! [`local_config`]):
//!
//! - `main`, `migrations_dir` made absolute (resolved beside the config they came from);
//! - `[build]` removed (the bot is built first, where its config lives: [`build_bot`]);
//! - queue consumers deliver a partial batch after 1 s (`max_batch_timeout`), so local events
//!   show up within about two seconds with the dev coalescing window ([`DEV_COALESCE_MS`]);
//! - the bot's config is checked: it must send to the queue the consumer reads
//!   ([`check_bot`]), or every event would vanish without a word.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use toml::{Table, Value};

/// The binding the library sends events to by default.
pub const QUEUE_BINDING: &str = "ANALYTICS_QUEUE";
/// The coalescing window of local dev (ms), unless `.dev.vars` sets `ANALYTICS_COALESCE_MS`.
/// Production keeps the library's default (20 s).
pub const DEV_COALESCE_MS: u32 = 1000;
/// How long a local queue consumer waits for a fuller batch (s).
pub const DEV_BATCH_TIMEOUT_S: i64 = 1;

/// Why a local stack cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The config file is not there.
    #[error("{0}: no such file (BOT= wants the path of the bot's wrangler.toml)")]
    Missing(PathBuf),
    /// It could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not TOML, or lacks what a Worker config needs.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// The bot sends its events nowhere the consumer reads.
    #[error(
        "{path}: the bot has no [[queues.producers]] binding \"{QUEUE_BINDING}\" for queue \"{queue}\", \
         so its events would never reach the consumer. Add:\n\n[[queues.producers]]\nbinding = \"{QUEUE_BINDING}\"\nqueue = \"{queue}\"\n"
    )]
    NoQueue {
        /// The bot's config.
        path: PathBuf,
        /// The queue the consumer reads.
        queue: String,
    },
    /// The bot's build command failed.
    #[error("building the bot with `{command}` in {dir} failed ({status})")]
    Build {
        /// The command.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// Its exit status.
        status: String,
    },
    /// What the build should have made is missing.
    #[error("{0} is missing after the build: is `main` right, and did the build write it?")]
    NotBuilt(PathBuf),
}

/// Reads a Worker config.
pub fn read_config(path: &Path) -> Result<Table, DevError> {
    if !path.is_file() {
        return Err(DevError::Missing(path.to_path_buf()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| DevError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let config: Table = text
        .parse()
        .map_err(|e: toml::de::Error| DevError::Invalid {
            path: path.to_path_buf(),
            reason: format!("not valid TOML: {}", e.message()),
        })?;
    if config.get("main").and_then(Value::as_str).is_none() {
        return Err(DevError::Invalid {
            path: path.to_path_buf(),
            reason: "no `main` (the built Worker's entry, e.g. build/index.js)".into(),
        });
    }
    Ok(config)
}

fn directory_of(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// The config at `path` for a local stack: `main` and `migrations_dir` absolute, no
/// `[build]`, consumers delivering partial batches after [`DEV_BATCH_TIMEOUT_S`].
pub fn local_config(path: &Path) -> Result<Table, DevError> {
    let mut config = read_config(path)?;
    let dir = directory_of(path);
    let main = config["main"].as_str().unwrap_or_default().to_string();
    config.insert("main".into(), dir.join(main).display().to_string().into());
    config.remove("build");
    if let Some(Value::Array(dbs)) = config.get_mut("d1_databases") {
        for db in dbs.iter_mut().filter_map(Value::as_table_mut) {
            if let Some(migrations) = db.get("migrations_dir").and_then(Value::as_str) {
                let absolute = dir.join(migrations).display().to_string();
                db.insert("migrations_dir".into(), absolute.into());
            }
        }
    }
    for consumer in consumers_mut(&mut config) {
        consumer.insert("max_batch_timeout".into(), DEV_BATCH_TIMEOUT_S.into());
    }
    Ok(config)
}

fn consumers_mut(config: &mut Table) -> impl Iterator<Item = &mut Table> {
    config
        .get_mut("queues")
        .and_then(|q| q.get_mut("consumers"))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_table_mut)
}

/// The queues a config's producers send to, by binding.
fn producers(config: &Table) -> Vec<(String, String)> {
    config
        .get("queues")
        .and_then(|q| q.get("producers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("binding")?.as_str()?.to_string(),
                p.get("queue")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The first queue the consumer config reads (its main queue).
pub fn consumer_queue(consumer: &Table) -> Option<String> {
    consumer
        .get("queues")
        .and_then(|q| q.get("consumers"))
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("queue"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Checks that the bot at `path` sends its events to `queue` through [`QUEUE_BINDING`].
pub fn check_bot(path: &Path, bot: &Table, queue: &str) -> Result<(), DevError> {
    let sends = producers(bot)
        .iter()
        .any(|(binding, q)| binding == QUEUE_BINDING && q == queue);
    if sends {
        Ok(())
    } else {
        Err(DevError::NoQueue {
            path: path.to_path_buf(),
            queue: queue.to_string(),
        })
    }
}

/// Builds the bot: its `[build] command`, run where its config lives (with the environment of
/// the caller, which points worker-build at the pinned tools). Then checks that `main` exists.
pub fn build_bot(path: &Path) -> Result<(), DevError> {
    let config = read_config(path)?;
    let dir = directory_of(path);
    let build = config.get("build").and_then(Value::as_table);
    if let Some(command) = build.and_then(|b| b.get("command")).and_then(Value::as_str) {
        let cwd = build
            .and_then(|b| b.get("cwd"))
            .and_then(Value::as_str)
            .map_or(dir.clone(), |c| dir.join(c));
        eprintln!(
            "dev-stack: building the bot in {}: {command}",
            cwd.display()
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&cwd)
            .status()
            .map_err(|e| DevError::Build {
                command: command.to_string(),
                dir: cwd.clone(),
                status: e.to_string(),
            })?;
        if !status.success() {
            return Err(DevError::Build {
                command: command.to_string(),
                dir: cwd,
                status: status.to_string(),
            });
        }
    }
    let main = dir.join(config["main"].as_str().unwrap_or_default());
    if main.exists() {
        Ok(())
    } else {
        Err(DevError::NotBuilt(main))
    }
}

/// `NAME=value` lines of a `.dev.vars` file, in order (comments and blank lines skipped).
pub fn parse_dev_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

/// One `.dev.vars` for both Workers of the stack: the project's, then the bot's own (its values
/// win), then [`DEV_COALESCE_MS`] as `ANALYTICS_COALESCE_MS` unless either set it.
pub fn merge_dev_vars(project: &str, bot: &str) -> String {
    let mut vars: Vec<(String, String)> = Vec::new();
    for (name, value) in parse_dev_vars(project)
        .into_iter()
        .chain(parse_dev_vars(bot))
    {
        match vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => vars.push((name, value)),
        }
    }
    if !vars.iter().any(|(n, _)| n == "ANALYTICS_COALESCE_MS") {
        vars.push(("ANALYTICS_COALESCE_MS".into(), DEV_COALESCE_MS.to_string()));
    }
    let mut out = String::from(
        "# Written by tools/dev-stack for this local stack: edit .dev.vars instead.\n",
    );
    for (name, value) in vars {
        let _ = writeln!(out, "{name}={value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dev-stack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const BOT: &str = r#"name = "quiz"
main = "build/index.js"
[build]
command = "mkdir -p build && echo built > build/index.js"
[[queues.producers]]
binding = "ANALYTICS_QUEUE"
queue = "telegram-analytics"
[[d1_databases]]
binding = "QUIZ"
migrations_dir = "migrations"
"#;

    #[test]
    fn paths_become_absolute_and_the_build_goes() {
        let dir = temp("paths");
        let path = write(&dir, "bot/wrangler.toml", BOT);
        let config = local_config(&path).unwrap();
        let bot_dir = dir.join("bot").canonicalize().unwrap();
        assert_eq!(
            config["main"].as_str().unwrap(),
            bot_dir.join("build/index.js").display().to_string()
        );
        assert!(config.get("build").is_none());
        assert_eq!(
            config["d1_databases"][0]["migrations_dir"]
                .as_str()
                .unwrap(),
            bot_dir.join("migrations").display().to_string()
        );
    }

    #[test]
    fn consumers_deliver_partial_batches_after_a_second() {
        let dir = temp("consumer");
        let path = write(
            &dir,
            "wrangler.toml",
            "main = \"x.js\"\n[[queues.consumers]]\nqueue = \"telegram-analytics\"\nmax_batch_timeout = 5\n",
        );
        let config = local_config(&path).unwrap();
        assert_eq!(
            consumer_queue(&config).as_deref(),
            Some("telegram-analytics")
        );
        assert_eq!(
            config["queues"]["consumers"][0]["max_batch_timeout"].as_integer(),
            Some(DEV_BATCH_TIMEOUT_S)
        );
    }

    #[test]
    fn wrong_paths_and_configs_without_the_queue_are_clear_errors() {
        let dir = temp("errors");
        let missing = local_config(&dir.join("nope/wrangler.toml")).unwrap_err();
        assert!(matches!(missing, DevError::Missing(_)), "{missing}");
        let bad = write(&dir, "bad.toml", "main = [");
        assert!(matches!(local_config(&bad), Err(DevError::Invalid { .. })));
        let no_main = write(&dir, "no_main.toml", "name = \"x\"\n");
        assert!(local_config(&no_main)
            .unwrap_err()
            .to_string()
            .contains("main"));

        let no_queue = write(&dir, "no_queue.toml", "main = \"x.js\"\n");
        let config = read_config(&no_queue).unwrap();
        let error = check_bot(&no_queue, &config, "telegram-analytics").unwrap_err();
        assert!(
            error.to_string().contains("binding = \"ANALYTICS_QUEUE\""),
            "{error}"
        );
        let other = write(
            &dir,
            "other.toml",
            "main = \"x.js\"\n[[queues.producers]]\nbinding = \"ANALYTICS_QUEUE\"\nqueue = \"elsewhere\"\n",
        );
        let config = read_config(&other).unwrap();
        assert!(check_bot(&other, &config, "telegram-analytics").is_err());
        let good = write(&dir, "bot/wrangler.toml", BOT);
        let config = read_config(&good).unwrap();
        check_bot(&good, &config, "telegram-analytics").unwrap();
    }

    #[test]
    fn the_bot_is_built_where_its_config_lives() {
        let dir = temp("build");
        let path = write(&dir, "bot/wrangler.toml", BOT);
        build_bot(&path).unwrap();
        assert!(dir.join("bot/build/index.js").exists());
        let failing = write(
            &dir,
            "failing/wrangler.toml",
            "main = \"build/index.js\"\n[build]\ncommand = \"exit 3\"\n",
        );
        assert!(matches!(build_bot(&failing), Err(DevError::Build { .. })));
        let silent = write(&dir, "silent/wrangler.toml", "main = \"build/index.js\"\n");
        assert!(matches!(build_bot(&silent), Err(DevError::NotBuilt(_))));
    }

    #[test]
    fn the_bots_dev_vars_win_and_the_dev_window_is_short_unless_set() {
        let merged = merge_dev_vars("A=1\n# c\nB=2\n", "B=3\nC=4\n");
        assert_eq!(
            parse_dev_vars(&merged),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "3".into()),
                ("C".into(), "4".into()),
                ("ANALYTICS_COALESCE_MS".into(), "1000".into()),
            ]
        );
        let set = merge_dev_vars("ANALYTICS_COALESCE_MS=20000\n", "");
        assert_eq!(
            parse_dev_vars(&set),
            vec![("ANALYTICS_COALESCE_MS".into(), "20000".into())]
        );
    }
}
