//! One track's decode timeline: source milliseconds → decode times in the track's timescale,
//! without drift and always strictly increasing.
//!
//! Rules (all per track):
//! - A sample's decode time is `anchor_ts + round((dts − anchor_dts) · timescale / 1000)`,
//!   computed from the millisecond value itself, never by summing rounded durations, so
//!   there is no drift. The first anchor is the file's origin (decode time 0), or the
//!   track's own first dts if that lies before the origin.
//! - A dts that goes backwards, or jumps more than [`MAX_JUMP_MS`] forward, is a
//!   discontinuity: the previous sample gets the track's last duration (or the codec's
//!   default when there is none yet), the new sample follows right after it, and the anchor
//!   moves to it, so the timeline goes on monotonically from there.
//! - A sample written before its successor came (its duration estimated) is followed without
//!   a gap: the successor starts where it ended when that is within half a default duration
//!   of its own time.
//! - Two samples never share a decode time: a repeated dts is bumped by one tick, which the
//!   next anchored conversion absorbs.
//!
//! Pure arithmetic; it never panics (saturating, 128-bit intermediates).

/// A forward dts jump larger than this (ms) is treated as a discontinuity.
pub(crate) const MAX_JUMP_MS: i64 = 10_000;

/// The decode-time state of one track.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    timescale: u32,
    default_duration: u32,
    /// (source dts in ms, decode time) the conversion is anchored at.
    anchor: Option<(i64, u64)>,
    /// (source dts, decode time) of the last converted sample.
    last: Option<(i64, u64)>,
    /// Duration of the sample before the last one (the last one's is not known yet).
    last_duration: Option<u32>,
    /// The smallest decode time the next sample may have.
    floor: u64,
    /// Where the last sample, written with an estimated duration, ended: the next sample
    /// starts exactly there when it is within half a default duration of it.
    continue_at: Option<u64>,
    /// How many discontinuities were smoothed over.
    pub discontinuities: u64,
}

impl Timeline {
    pub(crate) fn new(timescale: u32, default_duration: u32) -> Self {
        Self {
            timescale,
            default_duration: default_duration.max(1),
            anchor: None,
            last: None,
            last_duration: None,
            floor: 0,
            continue_at: None,
            discontinuities: 0,
        }
    }

    /// Milliseconds → ticks, rounded to nearest; negative spans are 0.
    pub(crate) fn ms_to_ticks(&self, ms: i64) -> u64 {
        if ms <= 0 {
            return 0;
        }
        let ticks = (i128::from(ms) * i128::from(self.timescale) + 500) / 1000;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// Signed milliseconds → signed ticks, rounded to nearest, within i32.
    pub(crate) fn ms_to_ticks_signed(&self, ms: i64) -> i32 {
        let magnitude = self.ms_to_ticks(ms.saturating_abs());
        let magnitude = i32::try_from(magnitude).unwrap_or(i32::MAX);
        if ms < 0 {
            -magnitude
        } else {
            magnitude
        }
    }

    /// Ticks → milliseconds (rounded down).
    pub(crate) fn ticks_to_ms(&self, ticks: u64) -> i64 {
        let ms = i128::from(ticks) * 1000 / i128::from(self.timescale.max(1));
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// The decode time of the next sample, whose source dts is `dts`, on a file timeline
    /// whose decode time 0 is the source time `origin`.
    pub(crate) fn decode_time(&mut self, dts: i64, origin: i64) -> u64 {
        let ts = match (self.last, self.anchor) {
            (Some((last_dts, last_ts)), Some((anchor_dts, anchor_ts))) => {
                let delta = dts.saturating_sub(last_dts);
                if !(0..=MAX_JUMP_MS).contains(&delta) {
                    self.discontinuities += 1;
                    let ts = last_ts
                        .saturating_add(u64::from(self.fallback_duration()))
                        .max(self.floor);
                    self.anchor = Some((dts, ts));
                    ts
                } else {
                    anchor_ts
                        .saturating_add(self.ms_to_ticks(dts.saturating_sub(anchor_dts)))
                        .max(self.floor)
                }
            }
            _ => {
                let anchor = if dts >= origin { (origin, 0) } else { (dts, 0) };
                self.anchor = Some(anchor);
                self.ms_to_ticks(dts.saturating_sub(anchor.0))
                    .max(self.floor)
            }
        };
        let ts = match self.continue_at.take() {
            Some(at) if ts.abs_diff(at) <= u64::from(self.default_duration / 2) => at,
            _ => ts,
        };
        if let Some((_, last_ts)) = self.last {
            let d = ts.saturating_sub(last_ts);
            self.last_duration = Some(u32::try_from(d).unwrap_or(u32::MAX));
        }
        self.last = Some((dts, ts));
        self.floor = ts.saturating_add(1);
        ts
    }

    /// The duration to give a sample whose successor is unknown or unusable: the last
    /// derived duration, else the codec default.
    pub(crate) fn fallback_duration(&self) -> u32 {
        self.last_duration.unwrap_or(self.default_duration)
    }

    /// The last converted sample was written with `duration` (an estimate): later samples
    /// start after it, and the next one right at its end when it is about there.
    pub(crate) fn closed_with(&mut self, duration: u32) {
        if let Some((_, last_ts)) = self.last {
            let end = last_ts.saturating_add(u64::from(duration));
            self.floor = self.floor.max(end);
            self.continue_at = Some(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut Timeline, dts: &[i64], origin: i64) -> Vec<u64> {
        dts.iter().map(|&d| t.decode_time(d, origin)).collect()
    }

    #[test]
    fn no_drift_at_44100() {
        // AAC frames at 44.1 kHz are 23.2 ms; the source rounds to ms.
        let mut t = Timeline::new(44_100, 1024);
        let dts: Vec<i64> = (0..10_000)
            .map(|n| 1000 + n * 1024 * 1000 / 44_100)
            .collect();
        let ts = run(&mut t, &dts, 1000);
        let last = *ts.last().unwrap_or(&0);
        let exact = 9_999 * 1024;
        assert!(last.abs_diff(exact) <= 45, "{last} vs {exact}"); // within 1 ms
        assert!(ts.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn late_track_keeps_its_offset() {
        let mut t = Timeline::new(48_000, 1024);
        assert_eq!(run(&mut t, &[1020, 1041], 1000), vec![960, 1968]);
        // A track that starts before the origin starts at 0.
        let mut t = Timeline::new(90_000, 3000);
        assert_eq!(run(&mut t, &[990, 1023], 1000), vec![0, 2970]);
    }

    #[test]
    fn discontinuities() {
        let mut t = Timeline::new(90_000, 3000);
        // 40 ms steps, then back 5 s, then on, then a 20 s jump, then on.
        let ts = run(
            &mut t,
            &[0, 40, 80, -4920, -4880, 15_120, 15_160, 15_160],
            0,
        );
        assert_eq!(
            ts,
            vec![0, 3600, 7200, 10_800, 14_400, 18_000, 21_600, 21_601]
        );
        assert_eq!(t.discontinuities, 2);
        // A first discontinuity with no duration yet uses the codec default.
        let mut t = Timeline::new(11_025, 1024);
        assert_eq!(run(&mut t, &[500, 100], 500), vec![0, 1024]);
        assert_eq!(t.fallback_duration(), 1024);
    }

    #[test]
    fn conversions() {
        let t = Timeline::new(90_000, 3000);
        assert_eq!(t.ms_to_ticks_signed(-33), -2970);
        assert_eq!(t.ms_to_ticks_signed(i64::MIN), -i32::MAX);
        assert_eq!(t.ms_to_ticks(i64::MAX), u64::MAX);
        assert_eq!(t.ticks_to_ms(90_000), 1000);
        // Extreme values saturate instead of overflowing.
        let mut t = Timeline::new(1000, 0);
        let first = t.decode_time(i64::MAX, i64::MIN);
        assert_eq!(first, i64::MAX as u64);
        t.closed_with(u32::MAX);
        let second = t.decode_time(i64::MIN, 0);
        assert!(second > first);
        assert!(t.decode_time(i64::MAX, 0) > second);
    }
}
