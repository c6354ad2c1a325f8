//! `demo --configs DIR --state DIR --work DIR [--port N] [--users N] [--days N] [--seed N]
//! [--concurrency N]`: what `make demo` runs after `tools/dev-stack` wrote the configs of
//! `make dev` into DIR. See the crate documentation and docs/demo.md.

use std::path::PathBuf;
use std::process::ExitCode;

use demo::population::Config;
use demo::{describe, handle_interrupts, run, DemoError, Options};

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let path = |v: Option<String>| v.map(PathBuf::from);
    let (mut configs, mut state, mut work) = (None, None, None);
    let (mut port, mut users, mut days, mut seed, mut concurrency) = (None, None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} must be a whole number, not {v:?}"))
        };
        match flag.as_str() {
            "--configs" => configs = Some(value),
            "--state" => state = Some(value),
            "--work" => work = Some(value),
            "--port" => port = Some(number(&value)?),
            "--users" => users = Some(number(&value)?),
            "--days" => days = Some(number(&value)?),
            "--seed" => seed = Some(number(&value)?),
            "--concurrency" => concurrency = Some(number(&value)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let days = days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(format!("--days must be 1 to 365, not {days}"));
    }
    let users = users.unwrap_or(600);
    if !(1..=100_000).contains(&users) {
        return Err(format!("--users must be 1 to 100000, not {users}"));
    }
    let port = port.unwrap_or(8787);
    let port = u16::try_from(port).map_err(|_| format!("--port {port} is not a port"))?;
    Ok(Options {
        configs: path(configs).ok_or("--configs is required")?,
        state: path(state).ok_or("--state is required")?,
        work: path(work).ok_or("--work is required")?,
        port,
        population: Config {
            users: users as usize,
            days: days as u32,
            seed: seed.unwrap_or(24),
            now_ms: e2e_tests::now_ms(),
        },
        concurrency: concurrency.unwrap_or(16).clamp(1, 256) as usize,
        progress: true,
    })
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("demo: {message}\nusage: demo --configs DIR --state DIR --work DIR [--port N] [--users N] [--days N] [--seed N] [--concurrency N]");
            return ExitCode::from(2);
        }
    };
    handle_interrupts();
    println!(
        "demo: {} users over {} days (seed {}), through the bot and the consumer in local workerd on port {}",
        options.population.users, options.population.days, options.population.seed, options.port
    );
    match run(&options) {
        Ok(summary) => {
            println!("{}", describe(&summary));
            println!("demo: now run make dev and open the dashboard");
            ExitCode::SUCCESS
        }
        Err(DemoError::Interrupted) => {
            eprintln!("demo: interrupted; wrangler dev stopped (the events stored so far stay)");
            ExitCode::from(130)
        }
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::FAILURE
        }
    }
}
