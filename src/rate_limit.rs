//! A token-bucket rate limiter per key (a client address), with a bounded table.
//!
//! Used for what one address may start per second — WHEP offers, WebSocket plays — so one
//! client cannot make the server build peer connections as fast as it can send. Time is
//! passed in (milliseconds from any fixed origin); nothing here reads a clock.
//!
//! The table holds at most `max_keys` addresses: idle ones (whose bucket is full again) are
//! dropped first, then the least recently seen, so a flood of new addresses costs bounded
//! memory and never locks out a client for good.

use std::collections::HashMap;
use std::hash::Hash;

/// One address's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

/// Tokens refill at `per_second` up to `burst`; each allowed event takes one.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    max_keys: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// `per_second` events on average, `burst` at once, for at most `max_keys` keys.
    /// `per_second` of 0 (or less) allows everything.
    pub fn new(per_second: f64, burst: u32, max_keys: usize) -> Self {
        Self {
            per_second,
            burst: f64::from(burst.max(1)),
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `key` at `now_ms`; when there is none, `Err` with the milliseconds
    /// until there is one (for a `Retry-After`).
    pub fn allow(&mut self, key: &K, now_ms: i64) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.make_room(now_ms);
        }
        let (per_second, burst) = (self.per_second, self.burst);
        let bucket = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            updated_ms: now_ms,
        });
        let elapsed_s = (now_ms - bucket.updated_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed_s * per_second).min(burst);
        bucket.updated_ms = bucket.updated_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_s = (1.0 - bucket.tokens) / per_second;
            Err((wait_s * 1000.0).ceil().max(1.0) as u64)
        }
    }

    /// Keys in the table (bounded by `max_keys`).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Drops the idle keys; if none is idle, the least recently seen one.
    fn make_room(&mut self, now_ms: i64) {
        let (per_second, burst) = (self.per_second, self.burst);
        self.buckets.retain(|_, b| {
            let elapsed_s = (now_ms - b.updated_ms).max(0) as f64 / 1000.0;
            b.tokens + elapsed_s * per_second < burst
        });
        if self.buckets.len() >= self.max_keys {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.updated_ms)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.buckets.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut limiter = RateLimiter::new(2.0, 3, 100);
        let a = "10.0.0.1";
        for _ in 0..3 {
            assert_eq!(limiter.allow(&a, 0), Ok(()));
        }
        assert_eq!(limiter.allow(&a, 0), Err(500));
        assert_eq!(limiter.allow(&a, 250), Err(250));
        assert_eq!(limiter.allow(&a, 500), Ok(()));
        // Another address has its own bucket.
        assert_eq!(limiter.allow(&"10.0.0.2", 500), Ok(()));
        // After a long pause, the burst again, not more.
        for _ in 0..3 {
            assert_eq!(limiter.allow(&a, 60_000), Ok(()));
        }
        assert!(limiter.allow(&a, 60_000).is_err());
    }

    #[test]
    fn zero_rate_allows_everything_and_time_going_back_is_harmless() {
        let mut open = RateLimiter::new(0.0, 1, 1);
        for i in 0..1000 {
            assert_eq!(open.allow(&i, 0), Ok(()));
        }
        assert!(open.is_empty());
        let mut limiter = RateLimiter::new(1.0, 1, 10);
        assert_eq!(limiter.allow(&1, 10_000), Ok(()));
        assert!(limiter.allow(&1, 0).is_err());
        assert_eq!(limiter.allow(&1, 11_000), Ok(()));
    }

    #[test]
    fn the_table_is_bounded_and_busy_keys_keep_their_state() {
        let mut limiter = RateLimiter::new(1.0, 1, 100);
        assert_eq!(limiter.allow(&u32::MAX, 0), Ok(()));
        assert!(limiter.allow(&u32::MAX, 0).is_err());
        for key in 0..10_000u32 {
            let _ = limiter.allow(&key, 1 + i64::from(key) / 1000);
            assert!(limiter.len() <= 100);
        }
        // An idle key may be forgotten; a key that just used its token is not reset while
        // idle ones remain.
        let mut limiter = RateLimiter::new(1.0, 1, 2);
        assert_eq!(limiter.allow(&"busy", 0), Ok(()));
        assert_eq!(limiter.allow(&"idle", -5_000), Ok(()));
        assert_eq!(limiter.allow(&"new", 100), Ok(()));
        assert!(limiter.allow(&"busy", 100).is_err());
    }
}
