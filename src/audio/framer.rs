//! Cutting 48 kHz stereo PCM into 20 ms Opus frames, each stamped on the capture's timeline.
//!
//! The framer is told where the stream starts (`reset(base_ms)`) and then counts samples:
//! frame *n* plays at `base_ms + 20·n`, exactly, so audio timestamps never drift from the
//! source clock through rounding. Pure arithmetic, no codec.

use super::{CHANNELS, FRAME_MS, FRAME_SAMPLES};

/// Accumulates samples and hands out whole frames.
#[derive(Debug, Default, Clone)]
pub struct OpusFramer {
    base_ms: i64,
    frames_out: i64,
    pending: Vec<f32>,
}

impl OpusFramer {
    /// Starts a new run whose first sample plays at `base_ms`; drops anything pending.
    pub fn reset(&mut self, base_ms: i64) {
        self.base_ms = base_ms;
        self.frames_out = 0;
        self.pending.clear();
    }

    /// Adds interleaved stereo samples.
    pub fn push(&mut self, samples: &[f32]) {
        self.pending.extend_from_slice(samples);
    }

    /// Where the next sample pushed will play, in ms (fractional).
    pub fn end_ms(&self) -> f64 {
        let pending_ms = (self.pending.len() / CHANNELS) as f64 * 1000.0 / 48_000.0;
        (self.base_ms + self.frames_out * FRAME_MS) as f64 + pending_ms
    }

    /// The next whole frame (960 samples per channel, interleaved) and its time in ms.
    pub fn pop(&mut self) -> Option<(i64, Vec<f32>)> {
        let len = FRAME_SAMPLES * CHANNELS;
        if self.pending.len() < len {
            return None;
        }
        let frame: Vec<f32> = self.pending.drain(..len).collect();
        let pts = self.base_ms + self.frames_out * FRAME_MS;
        self.frames_out += 1;
        Some((pts, frame))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_20_ms_apart_from_the_base() {
        let mut f = OpusFramer::default();
        f.reset(1_000);
        // 1024-sample AAC frames at 48 kHz: 21.33 ms each.
        let mut got = Vec::new();
        for _ in 0..15 {
            f.push(&vec![0.1; 1024 * 2]);
            while let Some((pts, frame)) = f.pop() {
                assert_eq!(frame.len(), 1920);
                got.push(pts);
            }
        }
        // 15 × 1024 = 15360 samples = 16 whole frames.
        assert_eq!(got.len(), 16);
        assert_eq!(got[0], 1_000);
        assert!(got.windows(2).all(|w| w[1] - w[0] == 20));
        assert!((f.end_ms() - (1_000.0 + 15360.0 / 48.0)).abs() < 1e-6);
    }

    #[test]
    fn reset_starts_a_new_run() {
        let mut f = OpusFramer::default();
        f.reset(0);
        f.push(&vec![0.0; 1500]);
        f.reset(5_000);
        assert!(f.pop().is_none());
        f.push(&vec![0.0; 1920]);
        assert_eq!(f.pop().unwrap().0, 5_000);
    }
}
