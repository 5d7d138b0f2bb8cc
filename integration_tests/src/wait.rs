//! Bounded polling: every wait in the harness has a deadline.

use std::time::{Duration, Instant};

/// Calls `probe` every `interval` until it returns `Some`, or `timeout` has passed
/// (then `None`). `probe` is always called at least once, and once more at the deadline.
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}
