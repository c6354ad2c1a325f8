//! `make errors ARGS="…"`: the report CLI's argument parsing and the SQL built from it must never
//! panic, whatever the arguments (split on NUL bytes here). `--since 5ч` used to.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<String> = text.split('\0').map(str::to_string).collect();
    if let Ok(options) = report::parse_args(&args) {
        let sql = report::sql_for(&options, 1_764_000_000_000, Some(42));
        assert!(!sql.contains(":since_ms") && !sql.contains(":limit"));
    }
});
