//! A real browser for the end-to-end tests: headless Chromium (`/usr/bin/chromium`, or
//! `$CHROMIUM`) driven by `playwright-core` from `integration_tests/browser/`.
//!
//! [`run_driver`] runs one of the node scripts there with a JSON spec and returns the JSON it
//! prints. The scripts only measure (getStats, timings); the Rust tests decide. A missing
//! `node` or Chromium is a loud panic with an install hint, never a skipped test; a missing
//! `node_modules` is installed once with `npm ci` (as `.ci/run` does).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{kill_tree, require_tool, spawn_logged, tail, wait_exit};
use crate::tempdir::TempDir;

/// `integration_tests/browser`: package.json, package-lock.json and the driver scripts.
pub fn browser_dir() -> PathBuf {
    crate::package_dir::package_dir().join("browser")
}

/// The Chromium binary the drivers launch.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Checks node, Chromium and playwright-core (installing the npm packages once if their
/// folder is missing). Panics with a hint when something cannot be had.
pub fn require_browser() -> PathBuf {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match READY.get_or_init(prepare) {
        Ok(node) => node.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn prepare() -> Result<PathBuf, String> {
    let node = require_tool("node");
    let chromium = chromium_path();
    if !chromium.is_file() {
        return Err(format!(
            "Chromium is missing at {} (set $CHROMIUM to another path). Install it with \
             `apt-get install -y --no-install-recommends chromium` (or run .ci/run, which does it).",
            chromium.display()
        ));
    }
    let dir = browser_dir();
    let installed = ["playwright-core", "mpegts.js", "hls.js"]
        .iter()
        .all(|package| {
            dir.join("node_modules")
                .join(package)
                .join("package.json")
                .is_file()
        });
    if !installed {
        let npm = require_tool("npm");
        let logs = TempDir::new("npm-ci");
        let mut child = spawn_logged(
            Command::new(npm)
                .current_dir(&dir)
                .args(["ci", "--no-audit", "--no-fund"]),
            &logs.join("npm.log"),
        );
        match wait_exit(&mut child, Duration::from_secs(300)) {
            Some(status) if status.success() => {}
            Some(status) => {
                return Err(format!(
                    "`npm ci` in {} failed ({status}):\n{}",
                    dir.display(),
                    tail(&logs.join("npm.log"), 30)
                ))
            }
            None => {
                kill_tree(&mut child);
                return Err(format!("`npm ci` in {} took over 5 min", dir.display()));
            }
        }
    }
    Ok(node)
}

/// One browser scenario at a time in a test process: Chromium decoding several 720p
/// streams takes a core, and first-frame times measured on a starved machine mean nothing.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Plays `name` on the player page of the server at `http_root` (player_driver.js: WebSocket
/// signalling, Play, `run_ms` of samples, then Stop if `stop`) and returns the driver's
/// result; the driver gives up after `timeout_ms`, this call 20 s later.
pub fn play_on_player_page(
    http_root: &str,
    name: &str,
    run_ms: u64,
    stop: bool,
    timeout_ms: u64,
) -> Value {
    run_driver(
        "player_driver.js",
        &serde_json::json!({
            "pageUrl": format!("{http_root}/"),
            "name": name,
            "runMs": run_ms,
            "stop": stop,
            "timeoutMs": timeout_ms,
        }),
        Duration::from_millis(timeout_ms + 20_000),
    )
}

/// Runs `node <browser_dir>/<script> '<spec>'` and returns the JSON object it prints last.
/// Panics (with the driver's output) if it fails, times out or prints no JSON, or if the
/// object says `"ok": false`.
pub fn run_driver(script: &str, spec: &Value, timeout: Duration) -> Value {
    let node = require_browser();
    let logs = TempDir::new("browser");
    let log = logs.join("driver.log");
    let started = Instant::now();
    let mut child = spawn_logged(
        Command::new(node)
            .current_dir(browser_dir())
            .arg(script)
            .arg(spec.to_string())
            .env("CHROMIUM", chromium_path()),
        &log,
    );
    let status = wait_exit(&mut child, timeout);
    if status.is_none() {
        kill_tree(&mut child);
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let result = text
        .lines()
        .rev()
        .filter(|l| l.trim_start().starts_with('{'))
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    match (status, result) {
        (_, Some(v)) if v["ok"] == true => {
            eprintln!(
                "[harness] {script} finished in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            v
        }
        (status, v) => panic!(
            "browser driver {script} failed (exit {status:?}, after {:.1} s): {}\n--- driver output ---\n{}",
            started.elapsed().as_secs_f64(),
            v.map_or("no JSON result".to_string(), |v| v["error"].to_string()),
            tail(&log, 60)
        ),
    }
}

/// Plays `name` on the server at `http_root` over WHEP in Chromium (whep_driver.js) for
/// `run_ms`, deletes the session, and returns that viewer's result (201 checked).
pub fn whep_viewer(http_root: &str, name: &str, run_ms: u64) -> Value {
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let spec = serde_json::json!({
        "pageUrl": format!("{http_root}/"),
        "viewers": [{ "whepPath": format!("/whep/{encoded}") }],
        "runMs": run_ms,
        "pollMs": 10,
        "sampleMs": 250,
        "deleteAtEnd": true,
        "timeoutMs": 60_000,
    });
    let result = run_driver("whep_driver.js", &spec, Duration::from_secs(90));
    let viewer = result["viewers"][0].clone();
    assert_eq!(viewer["postStatus"], 201, "{viewer}");
    viewer
}
