//! `dev-stack --bot BOT.toml --consumer CONSUMER.toml [--dashboard DASHBOARD.toml] --vars
//! .dev.vars --out DIR`: checks and builds the bot, then writes `DIR/bot.toml`,
//! `DIR/consumer.toml` (`DIR/dashboard.toml`) and `DIR/.dev.vars` for
//! `wrangler dev -c DIR/bot.toml -c DIR/consumer.toml` (what `make dev` runs; the consumer and
//! the dashboard must be built already). See the crate documentation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dev_stack::{
    build_bot, check_bot, consumer_queue, local_config, merge_dev_vars, read_config, DevError,
};

struct Args {
    bot: PathBuf,
    consumer: PathBuf,
    dashboard: Option<PathBuf>,
    vars: PathBuf,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut bot, mut consumer, mut vars, mut out) = (None, None, None, None);
    let mut dashboard = None;
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--bot" => &mut bot,
            "--consumer" => &mut consumer,
            "--dashboard" => &mut dashboard,
            "--vars" => &mut vars,
            "--out" => &mut out,
            other => return Err(format!("unknown argument {other:?}")),
        };
        *slot = Some(PathBuf::from(
            args.next().ok_or(format!("{flag} needs a value"))?,
        ));
    }
    let need = |v: Option<PathBuf>, name: &str| v.ok_or(format!("{name} is required"));
    Ok(Args {
        bot: need(bot, "--bot")?,
        consumer: need(consumer, "--consumer")?,
        dashboard,
        vars: need(vars, "--vars")?,
        out: need(out, "--out")?,
    })
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn run(args: &Args) -> Result<(), String> {
    let err = |e: DevError| e.to_string();
    let consumer = local_config(&args.consumer).map_err(err)?;
    let queue = consumer_queue(&consumer)
        .ok_or_else(|| format!("{}: no [[queues.consumers]]", args.consumer.display()))?;
    check_bot(&args.bot, &read_config(&args.bot).map_err(err)?, &queue).map_err(err)?;
    build_bot(&args.bot).map_err(err)?;
    let bot = local_config(&args.bot).map_err(err)?;

    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let toml = |t: &toml::Table| toml::to_string(t).map_err(|e| e.to_string());
    write(&args.out.join("bot.toml"), &toml(&bot)?)?;
    write(&args.out.join("consumer.toml"), &toml(&consumer)?)?;
    if let Some(dashboard) = &args.dashboard {
        let dashboard = local_config(dashboard).map_err(err)?;
        write(&args.out.join("dashboard.toml"), &toml(&dashboard)?)?;
    }
    let project_vars = std::fs::read_to_string(&args.vars).unwrap_or_default();
    let bot_vars_path = args
        .bot
        .parent()
        .map(|d| d.join(".dev.vars"))
        .filter(|p| p.canonicalize().ok() != args.vars.canonicalize().ok());
    let bot_vars = bot_vars_path
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    write(
        &args.out.join(".dev.vars"),
        &merge_dev_vars(&project_vars, &bot_vars),
    )?;
    eprintln!(
        "dev-stack: {} and the consumer, configs in {}",
        args.bot.display(),
        args.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("dev-stack: {message}\nusage: dev-stack --bot BOT.toml --consumer CONSUMER.toml [--dashboard DASHBOARD.toml] --vars .dev.vars --out DIR");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dev-stack: {message}");
            ExitCode::FAILURE
        }
    }
}
