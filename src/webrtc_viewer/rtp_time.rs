//! A viewer's RTP time: the clock that turns a frame's millisecond pts into an RTP
//! timestamp, and the forward-only placement of live frames and replayed GOPs on it. Numbers
//! in, numbers out: no clock is read here.

/// Maps a frame's presentation time (ms, on the capture's timeline) to an RTP timestamp:
/// `base + pts × rate / 1000`, modulo 2³². Every frame is stamped from its own pts — never from
/// accumulated durations — so audio and video stay aligned and gaps stay gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpClock {
    /// Clock rate in Hz (90 000 for video, 48 000 for Opus).
    pub rate: u32,
    /// Random per stream (RFC 3550 §5.1).
    pub base: u32,
}

impl RtpClock {
    /// Video clock: 90 kHz.
    pub fn video(base: u32) -> Self {
        Self { rate: 90_000, base }
    }

    /// Opus clock: 48 kHz.
    pub fn opus(base: u32) -> Self {
        Self { rate: 48_000, base }
    }

    /// The RTP timestamp of `pts_ms`.
    pub fn timestamp(&self, pts_ms: i64) -> u32 {
        self.timestamp_us(i128::from(pts_ms) * 1000)
    }

    /// The RTP timestamp of a time in microseconds on the capture's timeline (sender reports
    /// name instants between frames).
    pub fn timestamp_us(&self, pts_us: i128) -> u32 {
        let ticks = (pts_us * i128::from(self.rate)).div_euclid(1_000_000);
        // Modulo 2^32, also for negative times.
        let wrapped = ticks.rem_euclid(1 << 32) as u32;
        self.base.wrapping_add(wrapped)
    }
}

/// A viewer's video times on its RTP timeline, never backwards. Live frames keep their pts.
/// A replay of the keyframe cache (a new viewer's start, the answer to a PLI) is stamped as
/// a burst ending at the live edge: its frames [`Self::REPLAY_STEP_US`] apart, the newest
/// at its own pts ([`Self::place_replay`]) — or, when that is not after the last frame sent
/// (a PLI: the viewer already has the newest), just after that. So the browser decodes the
/// replayed GOP at once (its reference chain rebuilt up to now) and plays on from the live
/// edge, instead of playing the GOP out behind live, or dropping it when the next keyframe
/// arrives first; and the track's RTP timestamps only move forward, as receivers' jitter
/// buffers and timing estimators assume. Live frames after a replay keep their own pts.
#[derive(Debug, Clone, Default)]
pub struct ForwardTime {
    last_us: Option<i128>,
}

impl ForwardTime {
    /// How far apart replayed frames go out, in µs (9 ticks of the 90 kHz clock; a 60-frame
    /// GOP fits in 6 ms, well inside one frame interval of the live stream).
    pub const REPLAY_STEP_US: i128 = 100;

    /// The time (µs, for [`RtpClock::timestamp_us`]) to stamp a live frame of `pts_ms` with.
    pub fn place(&mut self, pts_ms: i64) -> i128 {
        self.place_us(i128::from(pts_ms) * 1000)
    }

    /// The times (µs) to stamp a replayed run of frames with, given their pts in order: a
    /// burst whose newest frame keeps the newest pts (never before the last frame sent).
    pub fn place_replay(&mut self, pts_ms: &[i64]) -> Vec<i128> {
        let Some(newest) = pts_ms.iter().max() else {
            return Vec::new();
        };
        let newest_us = i128::from(*newest) * 1000;
        let n = pts_ms.len() as i128;
        (0..n)
            .map(|k| self.place_us(newest_us - (n - 1 - k) * Self::REPLAY_STEP_US))
            .collect()
    }

    fn place_us(&mut self, pts_us: i128) -> i128 {
        let at = match self.last_us {
            Some(last) if pts_us <= last => last + Self::REPLAY_STEP_US,
            _ => pts_us,
        };
        self.last_us = Some(at);
        at
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rtp_timestamps_come_from_pts() {
        let v = RtpClock::video(1000);
        assert_eq!(v.timestamp(0), 1000);
        assert_eq!(v.timestamp(33), 1000 + 2970);
        assert_eq!(v.timestamp(1000), 1000 + 90_000);
        let a = RtpClock::opus(0);
        // 20 ms Opus frames are 960 ticks apart, whatever the gaps between them.
        assert_eq!(a.timestamp(20) - a.timestamp(0), 960);
        assert_eq!(a.timestamp(1020), 48_960);
        // Wraps modulo 2^32 and tolerates negative times.
        let w = RtpClock::video(u32::MAX - 10);
        assert_eq!(w.timestamp(1), 79);
        assert_eq!(RtpClock::video(0).timestamp(-1), u32::MAX - 89);
        // Same pts on both tracks: same instant in each clock.
        let pts = 123_456;
        assert_eq!(
            u64::from(RtpClock::video(0).timestamp(pts)) * 48_000,
            u64::from(RtpClock::opus(0).timestamp(pts)) * 90_000
        );
    }

    #[test]
    fn a_new_viewers_replay_is_a_burst_ending_at_the_newest_frame() {
        // A viewer joins 1.9 s into a 2 s GOP: 58 cached frames, 0 … 1900 ms.
        let pts: Vec<i64> = (0..58).map(|k| k * 1900 / 57).collect();
        let mut t = ForwardTime::default();
        let replay = t.place_replay(&pts);
        assert_eq!(replay.len(), 58);
        assert_eq!(replay[57], 1_900_000, "the newest keeps its pts");
        assert_eq!(replay[0], 1_900_000 - 57 * ForwardTime::REPLAY_STEP_US);
        assert!(replay.windows(2).all(|w| w[1] - w[0] == 100), "{replay:?}");
        // Live goes on with its own pts.
        assert_eq!(t.place(1933), 1_933_000);
        assert!(t.place_replay(&[]).is_empty());
    }

    #[test]
    fn a_replayed_gop_goes_out_just_after_the_last_frame_and_live_frames_keep_their_pts() {
        let mut t = ForwardTime::default();
        // Live: 0, 33, 66, 100 ms.
        let live: Vec<i128> = [0, 33, 66, 100].iter().map(|&p| t.place(p)).collect();
        assert_eq!(live, [0, 33_000, 66_000, 100_000]);
        // A PLI: the cached GOP (keyframe at 0) comes again, then live goes on at 133 ms.
        let replay = t.place_replay(&[0, 33, 66, 100]);
        assert_eq!(replay, [100_100, 100_200, 100_300, 100_400]);
        assert_eq!(t.place(133), 133_000);
        // A replay longer than a frame interval: live frames it overtook are squeezed in
        // after it, and once the live pts is ahead again they keep it.
        let mut t = ForwardTime::default();
        t.place(10_000);
        for pts in 0..400 {
            t.place(pts);
        }
        assert_eq!(t.place(10_033), 10_040_100);
        assert_eq!(t.place(10_066), 10_066_000);
        // Stamped on the RTP clock: strictly increasing.
        let clock = RtpClock::video(7);
        let mut t = ForwardTime::default();
        let stamps: Vec<u32> = [0, 33, 0, 33, 66]
            .iter()
            .map(|&p| clock.timestamp_us(t.place(p)))
            .collect();
        assert!(stamps.windows(2).all(|w| w[1] > w[0]), "{stamps:?}");
    }
}
