//! Counters and rate meters for a capture, fed with caller-supplied time.
//!
//! The server's supervisor owns one [`RateMeter`] per figure (bytes, video frames) and asks
//! it for a rate whenever `find_all` is answered. No clock is read here: every call takes
//! `now_ms`, so the meters are deterministic in tests.

use std::collections::VecDeque;

/// Sums amounts over a sliding time window and reports the rate per second.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window_ms: i64,
    samples: VecDeque<(i64, u64)>,
    in_window: u64,
    total: u64,
}

impl RateMeter {
    /// A meter averaging over the last `window_ms` milliseconds.
    pub fn new(window_ms: i64) -> Self {
        Self {
            window_ms: window_ms.max(1),
            samples: VecDeque::new(),
            in_window: 0,
            total: 0,
        }
    }

    /// Records `amount` at time `now_ms`.
    pub fn add(&mut self, now_ms: i64, amount: u64) {
        self.expire(now_ms);
        self.samples.push_back((now_ms, amount));
        self.in_window += amount;
        self.total += amount;
    }

    /// Everything ever recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The rate per second over the window ending at `now_ms`.
    ///
    /// The oldest sample in the window only marks where the measured span starts: what it
    /// carries arrived *before* its time stamp (a counter reported every 500 ms, say), so it
    /// is not counted. Before a quarter window of history exists the rate is 0.
    pub fn per_second(&mut self, now_ms: i64) -> f64 {
        self.expire(now_ms);
        let Some(&(first, first_amount)) = self.samples.front() else {
            return 0.0;
        };
        let span = now_ms - first;
        if span < self.window_ms / 4 {
            // Too little history to say anything honest.
            return 0.0;
        }
        (self.in_window - first_amount) as f64 * 1000.0 / span as f64
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some(&(t, amount)) = self.samples.front() {
            if now_ms - t <= self.window_ms {
                break;
            }
            self.samples.pop_front();
            self.in_window -= amount;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate() {
        let mut m = RateMeter::new(2000);
        for i in 0..=90 {
            m.add(i * 1000 / 30, 1);
        }
        let fps = m.per_second(3000);
        assert!((fps - 30.0).abs() < 1.0, "{fps}");
        assert_eq!(m.total(), 91);
    }

    /// A byte counter reported every 500 ms at a steady 1000 B/s must read 1000 B/s, not
    /// 1250 (five reports in a two-second window carry only four intervals of data).
    #[test]
    fn periodic_counter_reports_are_not_overcounted() {
        let mut m = RateMeter::new(2000);
        for i in 1..=20 {
            m.add(i * 500, 500);
        }
        let rate = m.per_second(10_000);
        assert!((rate - 1000.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn rate_falls_to_zero_when_input_stops() {
        let mut m = RateMeter::new(1000);
        m.add(0, 500);
        m.add(500, 500);
        assert!(m.per_second(600) > 0.0);
        assert_eq!(m.per_second(5000), 0.0);
        assert_eq!(m.total(), 1000);
    }

    #[test]
    fn no_rate_from_a_single_instant() {
        let mut m = RateMeter::new(2000);
        m.add(100, 1_000_000);
        assert_eq!(m.per_second(100), 0.0);
    }
}
