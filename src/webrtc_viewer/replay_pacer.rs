//! When the packets of a replayed GOP may go out (`webrtc.replay_rate_kbps`; 0, the default,
//! sends at once). The caller measures the time; this only says what is due.

/// When the packets of a replayed GOP may go out: at most `rate_kbps` after the first
/// `BURST_BYTES`. A GOP sent at line rate (up to ~1 MB) overflows a receiver's socket buffer
/// or a router's queue (a webrtc-rs receiver that had just connected lost part of a 60 kB
/// keyframe sent at once on loopback); paced, a 2 s GOP at 1.5 Mbit/s takes ~150 ms at the
/// default 20 Mbit/s. `rate_kbps` 0 sends at once.
#[derive(Debug, Clone, Copy)]
pub struct ReplayPacer {
    rate_kbps: u64,
}

impl ReplayPacer {
    /// Bytes that may go out before pacing starts.
    pub const BURST_BYTES: u64 = 8 * 1024;

    pub fn new(rate_kbps: u64) -> Self {
        Self { rate_kbps }
    }

    /// How long after the replay's start the packet that follows `sent_bytes` may go.
    pub fn due_us(&self, sent_bytes: u64) -> u64 {
        if self.rate_kbps == 0 {
            return 0;
        }
        let paced = sent_bytes.saturating_sub(Self::BURST_BYTES);
        // bits / (kbit/s) = ms; × 1000 for µs.
        paced.saturating_mul(8_000) / self.rate_kbps
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_is_paced_after_its_first_burst() {
        let pacer = ReplayPacer::new(20_000);
        assert_eq!(pacer.due_us(0), 0);
        assert_eq!(pacer.due_us(ReplayPacer::BURST_BYTES), 0);
        // 20 Mbit/s = 2500 bytes per ms.
        assert_eq!(pacer.due_us(ReplayPacer::BURST_BYTES + 2500), 1000);
        assert_eq!(pacer.due_us(ReplayPacer::BURST_BYTES + 1_000_000), 400_000);
        assert_eq!(ReplayPacer::new(0).due_us(10_000_000), 0);
        assert!(ReplayPacer::new(1).due_us(u64::MAX) > 0, "no overflow");
    }
}
