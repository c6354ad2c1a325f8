//! `cargo run -p report -- top --since 24h` (or `make errors ARGS="top --since 24h"`).
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let env_key = std::env::var("ANALYTICS_ID_KEY").ok();
    let result =
        report::parse_args(&args).and_then(|options| report::query(&options, now_ms, env_key));
    match result {
        Ok(rows) => print!("{}", report::render_table(&rows)),
        Err(error) => {
            eprintln!("report: {error}");
            std::process::exit(2);
        }
    }
}
