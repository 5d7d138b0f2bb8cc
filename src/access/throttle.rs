//! Failed-login throttling per client address: after `max_failures` failed logins (wrong
//! password, forged or expired token) within `window_ms`, further logins from that address
//! are refused for `window_ms` (the HTTP side answers 429 with `Retry-After`).
//!
//! IPv6 clients are counted per /64 (one host usually owns the whole /64), IPv4-mapped IPv6
//! as the IPv4 address. The table is bounded: expired entries go first, then the least
//! recently active. Time is passed in (milliseconds on any monotonic clock).

use std::collections::HashMap;
use std::net::IpAddr;

/// Most addresses remembered at once.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6Prefix(u64),
}

fn key(address: IpAddr) -> Key {
    match address {
        IpAddr::V4(a) => Key::V4(u32::from(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => Key::V4(u32::from(v4)),
            None => Key::V6Prefix((u128::from(a) >> 64) as u64),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start_ms: u64,
    failures: u32,
    blocked_until_ms: Option<u64>,
    last_ms: u64,
}

/// The throttle's state.
#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: u32,
    window_ms: u64,
    capacity: usize,
    entries: HashMap<Key, Entry>,
}

impl LoginThrottle {
    /// `max_failures` 0 switches throttling off.
    pub fn new(max_failures: u32, window_ms: u64) -> Self {
        Self::with_capacity(max_failures, window_ms, MAX_ENTRIES)
    }

    /// As [`LoginThrottle::new`], remembering at most `capacity` addresses.
    pub fn with_capacity(max_failures: u32, window_ms: u64, capacity: usize) -> Self {
        Self {
            max_failures,
            window_ms: window_ms.max(1),
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    /// `Err(seconds to wait)` while `address` is refused.
    pub fn check(&self, address: IpAddr, now_ms: u64) -> Result<(), u64> {
        match self
            .entries
            .get(&key(address))
            .and_then(|e| e.blocked_until_ms)
        {
            Some(until) if until > now_ms => Err((until - now_ms).div_ceil(1000).max(1)),
            _ => Ok(()),
        }
    }

    /// Counts a failed login; `Some(seconds to wait)` when this failure blocks the address.
    pub fn record_failure(&mut self, address: IpAddr, now_ms: u64) -> Option<u64> {
        if self.max_failures == 0 {
            return None;
        }
        let k = key(address);
        if !self.entries.contains_key(&k) && self.entries.len() >= self.capacity {
            self.make_room(now_ms);
        }
        let window_ms = self.window_ms;
        let entry = self.entries.entry(k).or_insert(Entry {
            window_start_ms: now_ms,
            failures: 0,
            blocked_until_ms: None,
            last_ms: now_ms,
        });
        if now_ms.saturating_sub(entry.window_start_ms) >= window_ms
            && entry.blocked_until_ms.is_none_or(|u| u <= now_ms)
        {
            *entry = Entry {
                window_start_ms: now_ms,
                failures: 0,
                blocked_until_ms: None,
                last_ms: now_ms,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_ms = now_ms;
        if entry.failures >= self.max_failures {
            let until = now_ms.saturating_add(window_ms);
            entry.blocked_until_ms = Some(until);
            return Some(window_ms.div_ceil(1000).max(1));
        }
        None
    }

    /// A successful login from `address` clears its count (not a block in force).
    pub fn record_success(&mut self, address: IpAddr, now_ms: u64) {
        let k = key(address);
        if self
            .entries
            .get(&k)
            .is_some_and(|e| e.blocked_until_ms.is_none_or(|u| u <= now_ms))
        {
            self.entries.remove(&k);
        }
    }

    /// How many addresses are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn make_room(&mut self, now_ms: u64) {
        let window_ms = self.window_ms;
        self.entries.retain(|_, e| {
            let counting = now_ms.saturating_sub(e.window_start_ms) < window_ms;
            let blocked = e.blocked_until_ms.is_some_and(|u| u > now_ms);
            counting || blocked
        });
        if self.entries.len() >= self.capacity {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_ms)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn blocks_after_the_limit_for_one_window() {
        let mut t = LoginThrottle::new(3, 60_000);
        let a = ip("203.0.113.7");
        assert_eq!(t.record_failure(a, 0), None);
        assert_eq!(t.record_failure(a, 1_000), None);
        assert_eq!(t.check(a, 1_500), Ok(()));
        assert_eq!(t.record_failure(a, 2_000), Some(60));
        assert_eq!(t.check(a, 2_000), Err(60));
        assert_eq!(t.check(a, 61_500), Err(1));
        assert_eq!(t.check(a, 62_000), Ok(()));
        // Another address is not affected.
        assert_eq!(t.check(ip("203.0.113.8"), 2_000), Ok(()));
    }

    #[test]
    fn failures_spread_over_windows_do_not_add_up() {
        let mut t = LoginThrottle::new(3, 10_000);
        let a = ip("198.51.100.1");
        for round in 0..5u64 {
            let base = round * 20_000;
            assert_eq!(t.record_failure(a, base), None);
            assert_eq!(t.record_failure(a, base + 1), None);
        }
        assert_eq!(t.check(a, 100_000), Ok(()));
    }

    #[test]
    fn success_clears_the_count_but_not_a_block() {
        let mut t = LoginThrottle::new(2, 10_000);
        let a = ip("192.0.2.1");
        t.record_failure(a, 0);
        t.record_success(a, 1);
        assert_eq!(t.record_failure(a, 2), None);
        assert_eq!(t.record_failure(a, 3), Some(10));
        t.record_success(a, 4);
        assert!(t.check(a, 5).is_err());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut t = LoginThrottle::new(2, 10_000);
        t.record_failure(ip("2001:db8:1:2::1"), 0);
        t.record_failure(ip("2001:db8:1:2::ffff"), 1);
        assert!(t.check(ip("2001:db8:1:2:abcd::9"), 2).is_err());
        assert_eq!(t.check(ip("2001:db8:1:3::1"), 2), Ok(()));
        t.record_failure(ip("::ffff:192.0.2.9"), 0);
        t.record_failure(ip("192.0.2.9"), 1);
        assert!(t.check(ip("192.0.2.9"), 2).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut t = LoginThrottle::with_capacity(5, 60_000, 100);
        for i in 0..10_000u32 {
            t.record_failure(IpAddr::from(i.to_be_bytes()), u64::from(i));
        }
        assert!(t.len() <= 100, "{}", t.len());
        // A blocked address survives newcomers that only failed once, as long as it is
        // among the most recently active.
        let a = ip("10.9.9.9");
        for n in 0..5 {
            t.record_failure(a, 20_000 + n);
        }
        assert!(t.check(a, 20_010).is_err());
    }

    #[test]
    fn zero_switches_it_off() {
        let mut t = LoginThrottle::new(0, 60_000);
        let a = ip("192.0.2.1");
        for n in 0..100 {
            assert_eq!(t.record_failure(a, n), None);
        }
        assert_eq!(t.check(a, 100), Ok(()));
        assert!(t.is_empty());
    }
}
