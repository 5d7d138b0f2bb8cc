//! How busy the machine was while a test measured something timing-sensitive, split into
//! this test's own processes (everything it started: nginx, ffmpeg, pullcast, node,
//! Chromium), the server alone, and everything else — so that a failure caused by a machine
//! starved by other work (a parallel build, another test's 720p encoder) says so, with the
//! busiest foreign processes named.
//!
//! Linux only (`/proc`); figures are approximations: jiffies are 1/100 s. A thread looks at
//! this process's tree every 200 ms, so that processes it started which outlive their parent
//! (Chromium's helpers after the driver exits) still count as ours; a process that is
//! orphaned and ends inside the window is not seen.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::process::process_tree;

/// Jiffies per second (`USER_HZ`, 100 on Linux).
const HZ: f64 = 100.0;

/// Busy and total jiffies of the whole machine (first line of `/proc/stat`).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The command name and the fields after it of `/proc/<pid>/stat`: `fields[0]` is field 3
/// (the state), so field `n` of proc(5) is `fields[n - 3]`.
fn stat(pid: u32) -> Option<(String, Vec<String>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head.split_once('(').map_or("", |(_, c)| c).to_string();
    Some((comm, rest.split_whitespace().map(str::to_string).collect()))
}

/// Field `n` (numbered as in proc(5)) of `fields` from [`stat`], as jiffies.
fn field(fields: &[String], n: usize) -> u64 {
    fields
        .get(n - 3)
        .and_then(|x| x.parse::<i64>().ok())
        .map_or(0, |v| v.max(0) as u64)
}

/// User + system jiffies of `pid` (fields 14, 15); with `reaped`, plus those of the children
/// it waited for (16, 17).
fn process_jiffies(pid: u32, reaped: bool) -> u64 {
    let Some((_, f)) = stat(pid) else { return 0 };
    field(&f, 14)
        + field(&f, 15)
        + if reaped {
            field(&f, 16) + field(&f, 17)
        } else {
            0
        }
}

/// This process, its live descendants and `also` (once ours, maybe orphaned since), plus the
/// children it already reaped.
fn own_jiffies(also: &HashSet<u32>) -> u64 {
    let me = std::process::id();
    let mut pids: HashSet<u32> = process_tree(me).into_iter().collect();
    pids.extend(also);
    pids.into_iter()
        .map(|pid| process_jiffies(pid, pid == me))
        .sum()
}

/// Every process's (command, user + system jiffies).
fn all_processes() -> HashMap<u32, (String, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (comm, f) = stat(pid)?;
            Some((pid, (comm, field(&f, 14) + field(&f, 15))))
        })
        .collect()
}

/// A measurement window, started with [`CpuLoad::start`], read with [`CpuLoad::report`].
#[derive(Debug)]
pub struct CpuLoad {
    machine: (u64, u64),
    own: u64,
    server_pid: u32,
    server: u64,
    processes: HashMap<u32, (String, u64)>,
    at: Instant,
    /// Every process seen in this process's tree since the start.
    seen: Arc<Mutex<HashSet<u32>>>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

impl CpuLoad {
    /// Starts a window; `server_pid` is reported on its own (e.g. [`crate::Pullcast::pid`]).
    pub fn start(server_pid: u32) -> Self {
        let tree: HashSet<u32> = process_tree(std::process::id()).into_iter().collect();
        let seen = Arc::new(Mutex::new(tree));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let tree = process_tree(std::process::id());
                    if let Ok(mut seen) = seen.lock() {
                        seen.extend(tree);
                    }
                }
            })
        };
        CpuLoad {
            machine: machine_jiffies(),
            own: own_jiffies(&HashSet::new()),
            server_pid,
            server: process_jiffies(server_pid, false),
            processes: all_processes(),
            at: Instant::now(),
            seen,
            stop,
            sampler: Some(sampler),
        }
    }

    /// One line: the machine's busy share, this test's processes, the server, the other
    /// processes, and the busiest three of those (≥ 5 % of a core), in % of one core.
    pub fn report(&self) -> String {
        let seconds = self.at.elapsed().as_secs_f64().max(0.001);
        let per_core = |j: u64| j as f64 / HZ / seconds * 100.0;
        let (busy, total) = machine_jiffies();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let machine = busy.saturating_sub(self.machine.0) as f64
            / total.saturating_sub(self.machine.1).max(1) as f64;
        let mut mine = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        mine.extend(process_tree(std::process::id()));
        let own = per_core(own_jiffies(&mine).saturating_sub(self.own));
        let server = per_core(process_jiffies(self.server_pid, false).saturating_sub(self.server));
        let others = (machine * cores as f64 * 100.0 - own).max(0.0);
        let mut foreign: Vec<(f64, String)> = all_processes()
            .into_iter()
            .filter(|(pid, _)| !mine.contains(pid))
            .map(|(pid, (comm, j))| {
                let before = self
                    .processes
                    .get(&pid)
                    .filter(|(c, _)| *c == comm)
                    .map_or(0, |(_, b)| *b);
                (per_core(j.saturating_sub(before)), format!("{comm}[{pid}]"))
            })
            .filter(|(pct, _)| *pct >= 5.0)
            .collect();
        foreign.sort_by(|a, b| b.0.total_cmp(&a.0));
        let busiest: Vec<String> = foreign
            .iter()
            .take(3)
            .map(|(pct, name)| format!("{name} {pct:.0} %"))
            .collect();
        format!(
            "over {seconds:.1} s: machine {:.0} % busy ({cores} cores); this test's processes \
             {own:.0} % of one core (pullcast {server:.0} %); other processes {others:.0} %{}",
            machine * 100.0,
            if busiest.is_empty() {
                String::new()
            } else {
                format!(" (busiest: {})", busiest.join(", "))
            }
        )
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
    }
}
