//! Starting and stopping `wrangler dev`, shared by the test stack and the benchmark harness.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root, wait_for};

/// The project's wrangler (installed by `npm ci`).
pub fn wrangler() -> PathBuf {
    repo_root().join("node_modules/.bin/wrangler")
}

/// Starts `wrangler dev` in `dir` with `args` (configs and extra flags), state persisted to
/// `persist_to` (relative to `dir`), listening on 127.0.0.1:`port`, output to `log`. It runs in a
/// process group of its own so [`stop_process_group`] can end workerd with it.
pub fn spawn_wrangler_dev(
    dir: &Path,
    args: &[&str],
    persist_to: &str,
    port: u16,
    log: &Path,
) -> Child {
    let log = File::create(log).expect("create the wrangler dev log");
    Command::new(wrangler())
        .current_dir(dir)
        .arg("dev")
        .args(args)
        .args(["--persist-to", persist_to, "--ip", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .args(["--inspector-port", &free_port().to_string()])
        .args(["--show-interactive-dev-session=false"])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start wrangler dev")
}

/// Stops a process group started by [`spawn_wrangler_dev`]: TERM, up to 10 s to exit, then
/// KILL for whatever is left (workerd children included).
pub fn stop_process_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}

/// Waits (bounded, 90 s) until `probe` answers, for a `wrangler dev` started by
/// [`spawn_wrangler_dev`] (`name` in messages): when `child` exits first, panics at once with the
/// last lines of its `log` rather than waiting out the timeout.
pub fn wait_until_serving<T>(
    name: &str,
    child: &mut Child,
    log: &Path,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    wait_for(
        &format!("{name} to answer"),
        Duration::from_secs(90),
        || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited early ({status}):\n{}", log_tail(log, 60));
            }
            probe()
        },
    )
}

/// The last `lines` lines of the log file `log` (empty when it cannot be read).
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
