//! Admission per client address: how fast one address may start viewers (WHEP offers and
//! WebSocket plays, one token bucket: `limits.viewer_starts_per_second` with a burst of
//! `limits.viewer_start_burst`) and how many WebSocket sessions it may hold at once
//! (`limits.ws_sessions_per_address`).
//!
//! Each viewer start makes the server build a peer connection (ICE gathering, DTLS keys); one
//! client must not make it do so as fast as it can send. Callers from the trusted networks
//! (the operator's own machines, the benchmarks and tests on localhost) are not limited. The
//! access model decides *whether* a caller may; this only decides *how often*.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use pullcast::access::{Caller, Identity};
use pullcast::config::LimitSettings;
use pullcast::rate_limit::RateLimiter;

/// Addresses remembered by the rate limiter at most (a flood of new addresses costs bounded
/// memory; see `pullcast::rate_limit`).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// The shared admission state. Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    starts: Mutex<RateLimiter<IpAddr>>,
    sessions: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_sessions: usize,
    epoch: Instant,
}

/// Why a start or a session is refused, as a sentence and (for rates) when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMany {
    pub reason: String,
    pub retry_after_s: u64,
}

impl TooMany {
    /// 429 with the reason and `Retry-After`.
    pub fn response(&self) -> HttpResponse {
        let mut response = super::dto::error(StatusCode::TOO_MANY_REQUESTS, &self.reason);
        if let Ok(value) = HeaderValue::from_str(&self.retry_after_s.to_string()) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
}

/// One WebSocket session counted against its address while it exists.
pub struct SessionSlot {
    address: IpAddr,
    sessions: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut sessions = lock(&self.sessions);
        if let Some(n) = sessions.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                sessions.remove(&self.address);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn trusted(caller: &Caller) -> bool {
    matches!(caller.identity, Identity::Trusted)
}

impl Admission {
    pub fn new(limits: &LimitSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                starts: Mutex::new(RateLimiter::new(
                    f64::from(limits.viewer_starts_per_second),
                    limits.viewer_start_burst,
                    MAX_TRACKED_ADDRESSES,
                )),
                sessions: Arc::new(Mutex::new(HashMap::new())),
                max_sessions: limits.ws_sessions_per_address,
                epoch: Instant::now(),
            }),
        }
    }

    /// One viewer start (a WHEP offer, a WebSocket play) by `caller`.
    pub fn start_viewer(&self, caller: &Caller) -> Result<(), TooMany> {
        if trusted(caller) {
            return Ok(());
        }
        let now_ms = self.inner.epoch.elapsed().as_millis() as i64;
        lock(&self.inner.starts)
            .allow(&caller.address, now_ms)
            .map_err(|wait_ms| TooMany {
                reason: format!(
                    "too many viewers started from {} (limits.viewer_starts_per_second); try again in {} ms",
                    caller.address, wait_ms
                ),
                retry_after_s: wait_ms.div_ceil(1000).max(1),
            })
    }

    /// A new WebSocket session of `caller`; the slot counts it until dropped.
    pub fn open_session(&self, caller: &Caller) -> Result<Option<SessionSlot>, TooMany> {
        if trusted(caller) {
            return Ok(None);
        }
        let mut sessions = lock(&self.inner.sessions);
        let open = sessions.entry(caller.address).or_insert(0);
        if *open >= self.inner.max_sessions {
            return Err(TooMany {
                reason: format!(
                    "{} has {} WebSocket sessions open already (limits.ws_sessions_per_address)",
                    caller.address, self.inner.max_sessions
                ),
                retry_after_s: 10,
            });
        }
        *open += 1;
        Ok(Some(SessionSlot {
            address: caller.address,
            sessions: self.inner.sessions.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(address: &str, identity: Identity) -> Caller {
        Caller {
            address: address.parse().expect("address"),
            identity,
        }
    }

    fn limits() -> LimitSettings {
        LimitSettings {
            viewer_starts_per_second: 1,
            viewer_start_burst: 2,
            ws_sessions_per_address: 2,
            ..LimitSettings::default()
        }
    }

    #[test]
    fn starts_are_rate_limited_per_address_except_for_trusted_callers() {
        let admission = Admission::new(&limits());
        let remote = caller("203.0.113.9", Identity::Anonymous);
        assert!(admission.start_viewer(&remote).is_ok());
        assert!(admission.start_viewer(&remote).is_ok());
        let refused = admission.start_viewer(&remote);
        assert!(matches!(&refused, Err(t) if t.retry_after_s == 1
            && t.reason.contains("limits.viewer_starts_per_second")));
        assert!(admission
            .start_viewer(&caller("203.0.113.10", Identity::Anonymous))
            .is_ok());
        let local = caller("127.0.0.1", Identity::Trusted);
        for _ in 0..100 {
            assert!(admission.start_viewer(&local).is_ok());
        }
    }

    #[test]
    fn sessions_per_address_are_counted_while_their_slots_live() {
        let admission = Admission::new(&limits());
        let remote = caller("203.0.113.9", Identity::Anonymous);
        let first = admission.open_session(&remote).expect("first");
        let _second = admission.open_session(&remote).expect("second");
        assert!(admission.open_session(&remote).is_err());
        drop(first);
        assert!(admission.open_session(&remote).is_ok_and(|s| s.is_some()));
        let local = caller("127.0.0.1", Identity::Trusted);
        assert!(admission.open_session(&local).is_ok_and(|s| s.is_none()));
    }
}
