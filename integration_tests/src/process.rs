//! Child processes: finding tools, stopping children (and their descendants) for sure,
//! and reading the tail of their logs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::wait::poll_until;

/// The path of `tool` on `PATH`. Panics with an install hint if it is missing: a missing
/// peer is a broken test machine, never a reason to skip a test.
pub fn require_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "required tool `{tool}` is not on PATH ({}). Install the test peers with \
         `apt-get install -y --no-install-recommends ffmpeg nginx libnginx-mod-rtmp` \
         (or run .ci/run, which does it).",
        path.to_string_lossy()
    );
}

/// Panics with an install hint unless `path` exists.
pub fn require_file(path: &Path, package: &str) {
    assert!(
        path.is_file(),
        "required file {} is missing. Install it with `apt-get install -y {package}` \
         (or run .ci/run, which does it).",
        path.display()
    );
}

/// stdout and stderr of a child both appended to `log` (stdin closed).
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("clone {}: {e}", log.display()));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()))
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll_until(timeout, Duration::from_millis(20), || {
        child.try_wait().ok().flatten()
    })
}

/// Process ids whose parent is `pid`, found by reading `/proc/*/stat`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..." — comm may contain spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// `pid` and all its descendants, parents first.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let kids = children_of(all[i]);
        all.extend(kids);
        i += 1;
    }
    all
}

/// True if `/proc/<pid>` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends SIGKILL to `pids` with the `kill` tool (procps). Used only for grandchildren (e.g.
/// nginx workers whose master did not stop in time): direct children are killed with
/// `Child::kill`, which needs no tool.
pub fn kill_pids(pids: &[u32]) {
    let alive: Vec<String> = pids
        .iter()
        .filter(|p| is_alive(**p))
        .map(|p| p.to_string())
        .collect();
    if alive.is_empty() {
        return;
    }
    match Command::new("kill").arg("-9").args(&alive).status() {
        Ok(_) => {}
        Err(e) => eprintln!(
            "[harness] cannot run `kill -9 {}` ({e}); install procps. These processes may be left behind.",
            alive.join(" ")
        ),
    }
}

/// Kills `child` (SIGKILL) and every descendant it had, then reaps it (bounded).
pub fn kill_tree(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let tree = process_tree(child.id());
    let _ = child.kill();
    if wait_exit(child, Duration::from_secs(5)).is_none() {
        eprintln!("[harness] pid {} did not exit after SIGKILL", child.id());
    }
    kill_pids(&tree[1..]);
}

/// The last `lines` lines of a log file, or a note saying why there are none.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Runs ffmpeg (`-v error -nostdin` and `args`), bounded by `limit` (killed past it): its exit
/// status (`None`: killed) and what it logged.
pub fn run_ffmpeg(args: &[&str], limit: Duration) -> (Option<ExitStatus>, String) {
    let dir = crate::TempDir::new("ffmpeg-run");
    let mut cmd = Command::new(require_tool("ffmpeg"));
    cmd.args(["-v", "error", "-nostdin"]).args(args);
    let mut child = spawn_logged(&mut cmd, &dir.join("ffmpeg.log"));
    let status = wait_exit(&mut child, limit);
    if status.is_none() {
        kill_tree(&mut child);
    }
    let log = std::fs::read_to_string(dir.join("ffmpeg.log")).unwrap_or_default();
    (status, log)
}
