//! A WebRTC viewer that is not a browser: `pullcast-loadclient` (bench/loadclient, on the
//! webrtc-rs stack), for what headless Chromium cannot be made to do on demand, such as
//! sending a keyframe request (RTCP PLI) at a chosen moment. Built once per test process,
//! run to its end, its JSON summary returned; it decides nothing.

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::process::{kill_tree, tail, wait_exit};
use crate::server::build_binary;
use crate::tempdir::TempDir;

/// Builds `pullcast-loadclient` once per test process and returns its path.
pub fn loadclient_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(|| build_binary("pullcast-loadclient", "pullcast-loadclient")) {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Runs the load client against the server at `http_root` (`http://127.0.0.1:PORT`) for
/// `stream` with the extra `args` (e.g. `--viewers 1 --seconds 5 --pli-after-ms 2000`) and
/// returns its summary. Panics with its output if it fails or outlives `timeout`.
pub fn run_loadclient(http_root: &str, stream: &str, args: &[&str], timeout: Duration) -> Value {
    let binary = loadclient_binary();
    let dir = TempDir::new("loadclient");
    let (out, err) = (dir.join("stdout.json"), dir.join("stderr.log"));
    let mut child = Command::new(&binary)
        .args(["--server", http_root, "--stream", stream])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(File::create(&out).expect("create the load client's stdout file"))
        .stderr(File::create(&err).expect("create the load client's stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let Some(status) = wait_exit(&mut child, timeout) else {
        kill_tree(&mut child);
        panic!(
            "the load client did not finish within {timeout:?}:\n{}",
            tail(&err, 30)
        );
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let summary = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    match (status.success(), summary) {
        (true, Some(summary)) => summary,
        _ => panic!(
            "the load client failed ({status}): {text}\n{}",
            tail(&err, 30)
        ),
    }
}
