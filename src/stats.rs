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

    /// Records `amount` at time `now_ms`. Amounts recorded at the same millisecond share one
    /// sample, so the meter holds at most one sample per millisecond of its window however
    /// many frames a source sends (a flood of tiny frames cannot grow it).
    pub fn add(&mut self, now_ms: i64, amount: u64) {
        self.expire(now_ms);
        match self.samples.back_mut() {
            Some((t, sum)) if *t == now_ms => *sum = sum.saturating_add(amount),
            _ => self.samples.push_back((now_ms, amount)),
        }
        self.in_window = self.in_window.saturating_add(amount);
        self.total = self.total.saturating_add(amount);
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
        self.in_window.saturating_sub(first_amount) as f64 * 1000.0 / span as f64
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some(&(t, amount)) = self.samples.front() {
            if now_ms - t <= self.window_ms {
                break;
            }
            self.samples.pop_front();
            self.in_window = self.in_window.saturating_sub(amount);
        }
    }
}

/// A histogram of durations in µs with ~12 % resolution (eight sub-buckets per power of
/// two, exact below 16 µs), for latency percentiles without keeping every sample.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; Self::BUCKETS],
            count: 0,
            max: 0,
        }
    }
}

impl LatencyHistogram {
    /// 16 exact buckets, then 8 per power of two from 2^4 to 2^40 µs.
    const BUCKETS: usize = 16 + 37 * 8;

    fn index(us: u64) -> usize {
        if us < 16 {
            return us as usize;
        }
        let us = us.min((1 << 41) - 1);
        let exp = 63 - us.leading_zeros() as usize; // ≥ 4
        let mantissa = ((us >> (exp - 3)) & 7) as usize;
        16 + (exp - 4) * 8 + mantissa
    }

    /// The smallest value of bucket `i`.
    fn lower_bound(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let exp = (i - 16) / 8 + 4;
        let mantissa = ((i - 16) % 8) as u64;
        (8 + mantissa) << (exp - 3)
    }

    /// Records one duration.
    pub fn record(&mut self, us: u64) {
        let i = Self::index(us).min(Self::BUCKETS - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest duration recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The recorded durations sorted into the buckets of `bounds_us` (increasing): counts[i]
    /// of those at most `bounds_us[i]` and over the bound before, the last entry those over
    /// every bound; and their sum. Each is taken at its bucket's lower bound (so within
    /// ~12 %), as the histogram keeps no more.
    pub fn bucketed(&self, bounds_us: &[u64]) -> (Vec<u64>, u64) {
        let mut counts = vec![0u64; bounds_us.len() + 1];
        let mut sum = 0u64;
        for (i, n) in self.buckets.iter().enumerate().filter(|(_, n)| **n > 0) {
            let value = Self::lower_bound(i).min(self.max);
            let slot = bounds_us
                .iter()
                .position(|b| value <= *b)
                .unwrap_or(bounds_us.len());
            counts[slot] += n;
            sum = sum.saturating_add(value.saturating_mul(*n));
        }
        (counts, sum)
    }

    /// The `q`-quantile (0.0–1.0), as the lower bound of its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::lower_bound(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bucketed_for_prometheus() {
        let mut h = LatencyHistogram::default();
        for us in [5, 900, 1000, 1500, 20_000, 5_000_000] {
            h.record(us);
        }
        let (counts, sum) = h.bucketed(&[1000, 10_000, 1_000_000]);
        assert_eq!(counts, vec![3, 1, 1, 1]);
        assert_eq!(counts.iter().sum::<u64>(), h.count());
        // Lower bounds: within 12.5 % of the true sum.
        let true_sum = 5 + 900 + 1000 + 1500 + 20_000 + 5_000_000u64;
        assert!(sum <= true_sum && sum * 8 >= true_sum * 7, "{sum}");
        assert_eq!(LatencyHistogram::default().bucketed(&[1]), (vec![0, 0], 0));
    }

    #[test]
    fn histogram_buckets_are_consistent() {
        for us in [
            0u64, 1, 15, 16, 17, 100, 999, 1000, 1023, 1024, 123_456, 9_999_999,
        ] {
            let i = LatencyHistogram::index(us);
            let low = LatencyHistogram::lower_bound(i);
            assert!(low <= us, "{us}: bucket {i} starts at {low}");
            assert!(
                LatencyHistogram::lower_bound(i + 1) > us,
                "{us}: next bucket"
            );
            // Resolution: within 12.5 % of the value.
            assert!(
                (us - low) as f64 <= us as f64 * 0.125 + 1.0,
                "{us} vs {low}"
            );
        }
    }

    #[test]
    fn percentiles() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=1000u64 {
            h.record(us * 10);
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((4400..=5000).contains(&p50), "{p50}");
        assert!((8700..=9900).contains(&p99), "{p99}");
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 10_000);
        // Absurd values land in the top bucket without overflow.
        h.record(u64::MAX);
        assert_eq!(h.max(), u64::MAX);
        assert!(h.quantile(1.0).unwrap() >= 1 << 40);
    }

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

    /// A million frames within one window hold at most one sample per millisecond.
    #[test]
    fn a_flood_keeps_one_sample_per_millisecond() {
        let mut m = RateMeter::new(2000);
        for i in 0..1_000_000i64 {
            m.add(i / 500, 1);
        }
        assert!(m.samples.len() <= 2001, "{}", m.samples.len());
        assert_eq!(m.total(), 1_000_000);
        let rate = m.per_second(1999);
        assert!((rate - 500_000.0).abs() < 1000.0, "{rate}");
    }
}
