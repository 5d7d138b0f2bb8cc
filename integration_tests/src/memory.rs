//! Resident memory of a process, read from `/proc/<pid>/status` (Linux): the current
//! resident set (`VmRSS`) and its high-water mark (`VmHWM`), and a sampler that reads them
//! on a thread every few tens of milliseconds while a test runs.
//!
//! The sampler can also protect the test machine from a process whose memory runs away:
//! past a *guard* it raises a flag (a test stops its attack), past a *hard limit* it kills
//! the process. It measures and protects; it never decides whether a test passes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::process::kill_pids;

/// One MiB in bytes.
pub const MIB: u64 = 1024 * 1024;

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the most it was ever resident (since it started).
    pub hwm: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`; `None` if the process is gone (or a zombie, which
/// has no memory lines).
pub fn resident(pid: u32) -> Option<Resident> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

/// `VmRSS` and `VmHWM` from the text of a `/proc/<pid>/status` file.
fn parse_status(status: &str) -> Option<Resident> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.trim();
            let kib: u64 = value.strip_suffix("kB")?.trim().parse().ok()?;
            Some(kib * 1024)
        })
    };
    Some(Resident {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// What to do when the sampled process grows too much.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Past this resident size (bytes), every flag of `raise` is set (once).
    pub raise_above: u64,
    /// The flags to set, e.g. the ones that make test peers stop attacking.
    pub raise: Vec<Arc<AtomicBool>>,
    /// Past this resident size (bytes) the process is killed (SIGKILL), so a runaway cannot
    /// take the test machine down.
    pub kill_above: u64,
}

#[derive(Debug, Default)]
struct Shared {
    samples: usize,
    peak_rss: u64,
    last: Option<Resident>,
    /// Resident size and time since start when the guard was raised.
    raised: Option<(u64, Duration)>,
    /// Resident size and time since start when the process was killed.
    killed: Option<(u64, Duration)>,
    /// The process was gone at this time since start.
    gone: Option<Duration>,
}

/// Samples a process's resident memory on a thread until [`MemorySampler::finish`].
pub struct MemorySampler {
    pid: u32,
    started: Instant,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

/// What a [`MemorySampler`] saw.
#[derive(Debug, Clone, Copy)]
pub struct MemoryReport {
    /// Readings taken.
    pub samples: usize,
    /// Largest `VmRSS` sampled.
    pub peak_rss: u64,
    /// `VmHWM` at the last reading: the true peak, between samples too.
    pub hwm: u64,
    /// `VmRSS` at the last reading.
    pub last_rss: u64,
    /// Resident size and time when the guard's flag was raised.
    pub raised: Option<(u64, Duration)>,
    /// Resident size and time when the process was killed for passing the hard limit.
    pub killed: Option<(u64, Duration)>,
    /// When the process was found gone (crashed or killed).
    pub gone: Option<Duration>,
    /// How long sampling ran.
    pub duration: Duration,
}

impl MemoryReport {
    /// The larger of the sampled peak and the high-water mark.
    pub fn peak(&self) -> u64 {
        self.peak_rss.max(self.hwm)
    }
}

impl MemorySampler {
    /// Reads `pid`'s memory every `interval` (and once at once), with an optional guard.
    pub fn start(pid: u32, interval: Duration, guard: Option<Guard>) -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let started = Instant::now();
        let thread = {
            let stop = stop.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("rss-{pid}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if !sample_once(pid, started, guard.as_ref(), &shared) {
                            return;
                        }
                        std::thread::sleep(interval);
                    }
                })
                .expect("spawn the memory sampler thread")
        };
        MemorySampler {
            pid,
            started,
            stop,
            shared,
            thread: Some(thread),
        }
    }

    /// The largest `VmRSS` sampled so far.
    pub fn peak_rss(&self) -> u64 {
        self.lock().peak_rss
    }

    /// Whether the guard's flag has been raised (or the process killed).
    pub fn tripped(&self) -> bool {
        let shared = self.lock();
        shared.raised.is_some() || shared.killed.is_some()
    }

    /// Stops sampling (after one last reading) and says what was seen.
    pub fn finish(mut self) -> MemoryReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        sample_once(self.pid, self.started, None, &self.shared);
        let shared = self.lock();
        let last = shared.last.unwrap_or(Resident { rss: 0, hwm: 0 });
        MemoryReport {
            samples: shared.samples,
            peak_rss: shared.peak_rss,
            hwm: last.hwm,
            last_rss: last.rss,
            raised: shared.raised,
            killed: shared.killed,
            gone: shared.gone,
            duration: self.started.elapsed(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for MemorySampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One reading; applies the guard. False once the process is gone.
fn sample_once(pid: u32, started: Instant, guard: Option<&Guard>, shared: &Mutex<Shared>) -> bool {
    let reading = resident(pid);
    let mut s = shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(r) = reading else {
        s.gone.get_or_insert(started.elapsed());
        return false;
    };
    s.samples += 1;
    s.peak_rss = s.peak_rss.max(r.rss);
    s.last = Some(r);
    if let Some(g) = guard {
        if r.rss > g.raise_above && s.raised.is_none() {
            s.raised = Some((r.rss, started.elapsed()));
            eprintln!(
                "[memory] pid {pid} is resident at {} MiB, past the guard of {} MiB: raising the flags",
                r.rss / MIB,
                g.raise_above / MIB
            );
            g.raise
                .iter()
                .for_each(|f| f.store(true, Ordering::Relaxed));
        }
        if r.rss > g.kill_above && s.killed.is_none() {
            s.killed = Some((r.rss, started.elapsed()));
            g.raise
                .iter()
                .for_each(|f| f.store(true, Ordering::Relaxed));
            eprintln!(
                "[memory] pid {pid} is resident at {} MiB, past the hard limit of {} MiB: killing it",
                r.rss / MIB,
                g.kill_above / MIB
            );
            kill_pids(&[pid]);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_hwm_from_status_text() {
        let text = "Name:\tpullcast\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Resident {
                rss: 1024 * 1024,
                hwm: 2048 * 1024
            })
        );
        assert_eq!(parse_status("Name:\tzombie\nState:\tZ (zombie)\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = resident(std::process::id()).expect("our own /proc status");
        assert!(me.rss > 0 && me.hwm >= me.rss, "{me:?}");
    }
}
