//! How often a viewer's keyframe requests (PLI/FIR) are honoured. The time is passed in.

/// Lets a keyframe request (PLI/FIR) through at most once per `interval_ms`.
#[derive(Debug, Clone)]
pub struct KeyframeRequestLimiter {
    interval_ms: u64,
    last_ms: Option<u64>,
}

impl KeyframeRequestLimiter {
    pub fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms,
            last_ms: None,
        }
    }

    /// Whether a request arriving at `now_ms` (any monotonic clock) is honoured.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        match self.last_ms {
            Some(last) if now_ms.saturating_sub(last) < self.interval_ms => false,
            _ => {
                self.last_ms = Some(now_ms);
                true
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_requests_are_rate_limited() {
        let mut l = KeyframeRequestLimiter::new(1000);
        assert!(l.allow(5));
        assert!(!l.allow(500));
        assert!(!l.allow(1004));
        assert!(l.allow(1005));
        assert!(!l.allow(1005));
    }
}
