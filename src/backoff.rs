//! [`Backoff`]: when to try a dropped source again — jittered exponential backoff.
//!
//! The n-th retry (counting from 0) waits `min(max, initial · 2ⁿ)` scaled by a jitter
//! factor in [½, 1], so many captures that lost the same server do not all come back in the
//! same millisecond, and the first retry still comes within `initial`. A capture that got
//! media again calls [`Backoff::reset`]. Pure: the caller supplies the jitter.

/// Retry delays for one capture.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// `initial_ms`: the first delay before jitter; `max_ms`: the cap.
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        Self {
            initial_ms: initial_ms.max(1),
            max_ms: max_ms.max(initial_ms.max(1)),
            attempt: 0,
        }
    }

    /// Retries scheduled since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next retry; `jitter` in [0, 1] picks a point in [½, 1] of it.
    pub fn next_delay_ms(&mut self, jitter: f64) -> u64 {
        let doubling = 1u64.checked_shl(self.attempt.min(32)).unwrap_or(u64::MAX);
        let full = self.initial_ms.saturating_mul(doubling).min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        let factor = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
        ((full as f64) * factor).round().max(1.0) as u64
    }

    /// Media flowed again: the next drop starts from `initial_ms`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_initial_delay_up_to_the_cap() {
        let mut b = Backoff::new(1000, 30_000);
        let full: Vec<u64> = (0..8).map(|_| b.next_delay_ms(1.0)).collect();
        assert_eq!(
            full,
            [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(b.attempts(), 8);
    }

    #[test]
    fn jitter_stays_between_half_and_the_full_delay() {
        let mut b = Backoff::new(1000, 30_000);
        assert_eq!(b.next_delay_ms(0.0), 500);
        let mut b = Backoff::new(1000, 30_000);
        assert_eq!(b.next_delay_ms(0.5), 750);
        for _ in 0..40 {
            let d = b.next_delay_ms(0.3);
            assert!((500..=30_000).contains(&d));
        }
        // Out-of-range jitter is clamped.
        let mut b = Backoff::new(1000, 30_000);
        assert_eq!(b.next_delay_ms(7.0), 1000);
    }

    #[test]
    fn reset_starts_over_and_huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(1000, 30_000);
        for _ in 0..100 {
            b.next_delay_ms(1.0);
        }
        assert_eq!(b.next_delay_ms(1.0), 30_000);
        b.reset();
        assert_eq!(b.next_delay_ms(1.0), 1000);
    }

    #[test]
    fn a_cap_below_the_initial_delay_is_raised_to_it() {
        let mut b = Backoff::new(2000, 10);
        assert_eq!(b.next_delay_ms(1.0), 2000);
        assert_eq!(b.next_delay_ms(1.0), 2000);
    }
}
