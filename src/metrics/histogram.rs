//! A plain (not atomic) histogram and the snapshot the text writer spells.
//!
//! Buckets follow Prometheus: an observation `v` goes into the first bucket whose upper
//! bound `b` has `v <= b` (`le` is inclusive), or into the last bucket (over every bound)
//! when there is none. The snapshot keeps per-bucket counts; making them cumulative is the
//! text writer's job.
//!
//! Nothing here does I/O, reads a clock or shares state between threads: an owner that
//! needs one histogram across tasks keeps it behind its own lock or merges snapshots.

/// Upper bounds, in seconds, for request and operation latencies: 1 ms to 10 s.
pub const LATENCY_BOUNDS_SECONDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The state of a histogram at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the buckets, finite and strictly increasing.
    pub bounds: Vec<f64>,
    /// Observations per bucket, NOT cumulative; `bounds.len() + 1` entries, the last one
    /// counting what was over the last bound.
    pub counts: Vec<u64>,
    /// The sum of every observation.
    pub sum: f64,
}

impl HistogramSnapshot {
    /// The number of observations (saturating at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |total, &count| total.saturating_add(count))
    }

    /// Whether the bounds are finite and strictly increasing and there is exactly one count
    /// per bound plus one. The text writer leaves out (and counts) a snapshot that is not.
    pub fn is_well_formed(&self) -> bool {
        self.counts.len() == self.bounds.len() + 1
            && self.bounds.iter().all(|b| b.is_finite())
            && self.bounds.windows(2).all(|pair| pair[0] < pair[1])
    }
}

/// Counts observations into fixed buckets and sums them.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    /// A histogram with these upper bounds; they are sorted and deduplicated, and the
    /// non-finite ones (NaN, ±∞) dropped: the bucket over the last bound always exists.
    pub fn new(bounds: &[f64]) -> Self {
        let mut bounds: Vec<f64> = bounds
            .iter()
            .filter(|b| b.is_finite())
            // -0.0 is the bound 0.0, and would otherwise be spelled `le="-0"`.
            .map(|&b| if b == 0.0 { 0.0 } else { b })
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let counts = vec![0; bounds.len() + 1];
        Self {
            bounds,
            counts,
            sum: 0.0,
        }
    }

    /// The upper bounds, finite and strictly increasing.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Records one observation. `v` equal to a bound goes into that bound's bucket. NaN is
    /// ignored: it belongs to no bucket and would turn the sum into NaN for good.
    pub fn observe(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        let bucket = self.bounds.partition_point(|&bound| bound < v);
        if let Some(count) = self.counts.get_mut(bucket) {
            *count = count.saturating_add(1);
        }
        self.sum += v;
    }

    /// The current bounds, per-bucket counts and sum.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds.clone(),
            counts: self.counts.clone(),
            sum: self.sum,
        }
    }

    /// Adds `other`'s counts and sum to this histogram. Returns `false`, and changes
    /// nothing, when `other`'s bounds differ from ours or its counts do not match them.
    pub fn merge(&mut self, other: &HistogramSnapshot) -> bool {
        if other.bounds != self.bounds || other.counts.len() != self.counts.len() {
            return false;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        self.sum += other.sum;
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn latency_bounds_are_increasing_and_kept_as_given() {
        let h = Histogram::new(&LATENCY_BOUNDS_SECONDS);
        assert_eq!(h.bounds(), &LATENCY_BOUNDS_SECONDS[..]);
        assert!(h.snapshot().is_well_formed());
    }

    #[test]
    fn new_sorts_deduplicates_and_drops_non_finite_bounds() {
        let h = Histogram::new(&[
            5.0,
            1.0,
            f64::NAN,
            1.0,
            f64::INFINITY,
            0.0,
            -0.0,
            f64::NEG_INFINITY,
            2.5,
        ]);
        assert_eq!(h.bounds(), &[0.0, 1.0, 2.5, 5.0]);
        assert!(h.bounds()[0].is_sign_positive());
        let s = h.snapshot();
        assert_eq!(s.counts, vec![0; 5]);
        assert_eq!(s.sum, 0.0);
        assert!(s.is_well_formed());
    }

    #[test]
    fn no_bounds_leaves_one_bucket() {
        let mut h = Histogram::new(&[f64::NAN]);
        h.observe(3.0);
        let s = h.snapshot();
        assert!(s.bounds.is_empty());
        assert_eq!(s.counts, vec![1]);
        assert_eq!(s.count(), 1);
        assert!(s.is_well_formed());
    }

    #[test]
    fn observe_on_a_bound_goes_into_that_bounds_bucket() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        h.observe(1.0); // le="1" is inclusive
        h.observe(2.0);
        h.observe(1.000_000_1);
        h.observe(-5.0);
        h.observe(2.5);
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 2, 1]);
        assert_eq!(s.count(), 5);
        assert!((s.sum - 1.500_000_1).abs() < 1e-9);
    }

    #[test]
    fn nan_is_ignored_and_infinities_have_buckets() {
        let mut h = Histogram::new(&[1.0]);
        h.observe(f64::NAN);
        h.observe(f64::INFINITY);
        h.observe(f64::NEG_INFINITY);
        let s = h.snapshot();
        assert_eq!(s.counts, vec![1, 1]);
        assert!(s.sum.is_nan()); // +∞ + -∞, as any other sum would say
        let mut h = Histogram::new(&[1.0]);
        h.observe(f64::NAN);
        h.observe(f64::INFINITY);
        assert_eq!(h.snapshot().counts, vec![0, 1]);
        assert_eq!(h.snapshot().sum, f64::INFINITY);
    }

    #[test]
    fn merge_adds_counts_and_sums_when_bounds_match() {
        let mut a = Histogram::new(&[1.0, 10.0]);
        a.observe(0.5);
        a.observe(20.0);
        let mut b = Histogram::new(&[10.0, 1.0]);
        b.observe(5.0);
        b.observe(1.0);
        assert!(a.merge(&b.snapshot()));
        let s = a.snapshot();
        assert_eq!(s.counts, vec![2, 1, 1]);
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum, 26.5);
    }

    #[test]
    fn merge_refuses_other_bounds_and_malformed_snapshots() {
        let mut a = Histogram::new(&[1.0, 10.0]);
        a.observe(0.5);
        let before = a.clone();
        let mut other = Histogram::new(&[1.0, 5.0]);
        other.observe(2.0);
        assert!(!a.merge(&other.snapshot()));
        let short = HistogramSnapshot {
            bounds: vec![1.0, 10.0],
            counts: vec![1, 1],
            sum: 1.0,
        };
        assert!(!a.merge(&short));
        assert_eq!(a, before);
    }

    #[test]
    fn count_saturates() {
        let s = HistogramSnapshot {
            bounds: vec![1.0],
            counts: vec![u64::MAX, 3],
            sum: 0.0,
        };
        assert_eq!(s.count(), u64::MAX);
    }

    #[test]
    fn well_formed_checks_lengths_order_and_finiteness() {
        let good = HistogramSnapshot {
            bounds: vec![1.0, 2.0],
            counts: vec![0, 0, 0],
            sum: 0.0,
        };
        assert!(good.is_well_formed());
        let mut bad = good.clone();
        bad.counts.pop();
        assert!(!bad.is_well_formed());
        let mut bad = good.clone();
        bad.bounds = vec![2.0, 1.0];
        assert!(!bad.is_well_formed());
        let mut bad = good.clone();
        bad.bounds = vec![1.0, 1.0];
        assert!(!bad.is_well_formed());
        let mut bad = good;
        bad.bounds = vec![1.0, f64::INFINITY];
        assert!(!bad.is_well_formed());
    }
}
