//! Where LL-HLS parts and segments end: decided on the leading track's decode times (video
//! when the stream has video, else audio), in the source's milliseconds.
//!
//! Rules (RFC 8216bis §4.4.4.9 and §4.4.3.7):
//! - The part target `T` is fixed once, before the first part is published, from the first
//!   leading samples' durations ([`part_target_ms`]): `k` whole samples of the usual
//!   duration, about the asked part length, times the longest duration seen. So a part of
//!   `k` samples always fits in `T` and is more than 85 % of it, whatever the 1-ms jitter of
//!   RTMP timestamps (33/34 ms at 30 fps gives `T` = 204 ms).
//! - A part ends at a sample boundary as soon as the next sample would not fit in `T`
//!   (its duration estimated by the last one's). When a sample comes later than that estimate
//!   (a frame-rate drop), the part ends at the sample before it, so it still fits; a single
//!   sample longer than `T` makes a part of its own, which is counted ([`over_long_parts`]).
//! - A segment ends at a keyframe at least `segment_min_ms` after the segment began, so every
//!   segment starts with one; a keyframe does not end a part otherwise (a short part in the
//!   middle of a segment would break the 85 % rule). A source that sends no keyframe gets a
//!   segment cut anyway after `segment_max_ms`.
//!
//! Pure: decode times in, [`Cut`]s out; it must not know about bytes or clocks.
//!
//! [`over_long_parts`]: PartCutter::over_long_parts

/// One boundary to make, at a decode time (ms): everything that decodes before it goes into
/// the part that ends there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The open part ends here.
    Part(i64),
    /// The open part and its segment end here; the next segment starts here.
    Segment(i64),
}

/// The part target (ms) for parts of about `part_ms`, given leading-sample durations seen
/// (ms; zero and negative ones ignored, and outliers over twice the usual duration).
pub fn part_target_ms(durations: &[i64], part_ms: i64) -> i64 {
    let part_ms = part_ms.max(1);
    let mut seen: Vec<i64> = durations.iter().copied().filter(|d| *d > 0).collect();
    if seen.is_empty() {
        return part_ms;
    }
    seen.sort_unstable();
    let usual = seen[seen.len() / 2];
    let longest = seen
        .iter()
        .copied()
        .filter(|d| *d <= usual.saturating_mul(2))
        .max()
        .unwrap_or(usual);
    let k = ((part_ms + usual / 2) / usual).max(1);
    k.saturating_mul(longest)
}

/// Decides the cuts of one stream (see the module documentation).
#[derive(Debug, Clone)]
pub struct PartCutter {
    target: i64,
    segment_min: i64,
    segment_max: i64,
    /// Decode time the open part started at; `None` before the first sample.
    part_start: Option<i64>,
    segment_start: i64,
    /// The last sample's decode time.
    previous: Option<i64>,
    /// Parts made of one sample longer than the target.
    pub over_long_parts: u64,
    /// Segments cut without a keyframe (the source sent none for `segment_max_ms`).
    pub forced_segments: u64,
}

impl PartCutter {
    /// A cutter with part target `target_ms`; segments of at least `segment_min_ms` (at a
    /// keyframe) and at most `segment_max_ms` (without one).
    pub fn new(target_ms: i64, segment_min_ms: i64, segment_max_ms: i64) -> Self {
        let segment_min = segment_min_ms.max(1);
        Self {
            target: target_ms.max(1),
            segment_min,
            segment_max: segment_max_ms.max(segment_min),
            part_start: None,
            segment_start: 0,
            previous: None,
            over_long_parts: 0,
            forced_segments: 0,
        }
    }

    /// The part target, ms.
    pub fn target_ms(&self) -> i64 {
        self.target
    }

    /// A leading-track sample decoding at `dts` has been added; the cuts to make now, in
    /// order (at most two).
    pub fn sample(&mut self, dts: i64, keyframe: bool) -> Vec<Cut> {
        let mut cuts = Vec::new();
        let Some(mut start) = self.part_start else {
            self.part_start = Some(dts);
            self.segment_start = dts;
            self.previous = Some(dts);
            return cuts;
        };
        let previous = self.previous.unwrap_or(start);
        let dts = dts.max(previous);
        // Late: the part up to here would not fit; end it at the sample before.
        if dts - start > self.target && previous > start {
            cuts.push(Cut::Part(previous));
            start = previous;
        }
        let newest = dts - previous;
        if (keyframe && dts - self.segment_start >= self.segment_min)
            || dts - self.segment_start >= self.segment_max
        {
            if !keyframe {
                self.forced_segments += 1;
            }
            if dts - start > self.target {
                self.over_long_parts += 1;
            }
            cuts.push(Cut::Segment(dts));
            start = dts;
            self.segment_start = dts;
        } else if dts - start > self.target {
            self.over_long_parts += 1;
            cuts.push(Cut::Part(dts));
            start = dts;
        } else if dts > start && dts - start + newest > self.target {
            cuts.push(Cut::Part(dts));
            start = dts;
        }
        self.previous = Some(dts);
        self.part_start = Some(start);
        cuts
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Feeds `dts` (keyframes where `key(i)`) and returns the part lengths (ms) and which
    /// cuts were segment ends.
    fn run(cutter: &mut PartCutter, dts: &[i64], key: impl Fn(usize) -> bool) -> Vec<(i64, bool)> {
        let mut parts = Vec::new();
        let mut start = None;
        for (i, &t) in dts.iter().enumerate() {
            for cut in cutter.sample(t, key(i)) {
                let (at, segment) = match cut {
                    Cut::Part(at) => (at, false),
                    Cut::Segment(at) => (at, true),
                };
                parts.push((at - start.unwrap_or(at), segment));
                start = Some(at);
            }
            if start.is_none() {
                start = Some(t);
            }
        }
        parts
    }

    /// RTMP's millisecond times of a `fps` stream.
    fn times(fps: f64, count: usize) -> Vec<i64> {
        (0..count)
            .map(|i| (i as f64 * 1000.0 / fps).floor() as i64)
            .collect()
    }

    fn durations(t: &[i64]) -> Vec<i64> {
        t.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Every part fits the target; all but segment-final and the keyframe-led ones are at
    /// least 85 % of it.
    fn assert_rfc_bounds(parts: &[(i64, bool)], target: i64) {
        for (i, &(len, _)) in parts.iter().enumerate() {
            assert!(len <= target, "part {i} is {len} ms > {target}: {parts:?}");
            let last_of_segment = parts[i].1;
            let first_of_segment = i == 0 || parts[i - 1].1;
            if !last_of_segment && !first_of_segment {
                assert!(
                    len * 100 >= target * 85,
                    "part {i} is {len} ms < 85 % of {target}: {parts:?}"
                );
            }
        }
    }

    #[test]
    fn the_target_fits_whole_samples() {
        assert_eq!(part_target_ms(&durations(&times(30.0, 11)), 200), 204);
        assert_eq!(part_target_ms(&durations(&times(25.0, 11)), 200), 200);
        assert_eq!(part_target_ms(&durations(&times(29.97, 11)), 200), 204);
        assert_eq!(part_target_ms(&durations(&times(60.0, 11)), 200), 204);
        // AAC 48 kHz alone: 21.33 ms frames.
        assert_eq!(part_target_ms(&durations(&times(46.875, 11)), 200), 220);
        // AAC 44.1 kHz alone: 23.2 ms frames.
        assert_eq!(part_target_ms(&durations(&times(43.066, 11)), 200), 216);
        // A stall among the first samples does not inflate the target.
        assert_eq!(part_target_ms(&[33, 34, 33, 500, 33, 34], 200), 204);
        assert_eq!(part_target_ms(&[], 200), 200);
        assert_eq!(part_target_ms(&[0, -5], 300), 300);
        // Slow sources: one sample per part.
        assert_eq!(part_target_ms(&[500, 500], 200), 500);
    }

    #[test]
    fn thirty_fps_with_a_two_second_gop() {
        let t = times(30.0, 300);
        let target = part_target_ms(&durations(&t[..11]), 200);
        let mut cutter = PartCutter::new(target, 1000, 10_000);
        let parts = run(&mut cutter, &t, |i| i % 60 == 0);
        assert_rfc_bounds(&parts, target);
        let segments = parts.iter().filter(|p| p.1).count();
        assert_eq!(segments, 4, "{parts:?}");
        // Ten parts per 2 s segment, each of 6 frames.
        assert!(
            parts.iter().all(|p| (198..=201).contains(&p.0)),
            "{parts:?}"
        );
        assert_eq!(cutter.over_long_parts, 0);
    }

    #[test]
    fn common_rates_keep_the_bounds() {
        for fps in [23.976, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0] {
            let t = times(fps, 600);
            let target = part_target_ms(&durations(&t[..11]), 200);
            let mut cutter = PartCutter::new(target, 1000, 10_000);
            let gop = fps.round() as usize;
            let parts = run(&mut cutter, &t, |i| i % gop == 0);
            assert_rfc_bounds(&parts, target);
            assert_eq!(cutter.over_long_parts, 0, "{fps}");
        }
    }

    #[test]
    fn audio_only_parts() {
        let t = times(46.875, 500);
        let target = part_target_ms(&durations(&t[..11]), 200);
        let mut cutter = PartCutter::new(target, 1000, 10_000);
        let parts = run(&mut cutter, &t, |_| true);
        assert_rfc_bounds(&parts, target);
        assert!(parts.iter().filter(|p| p.1).count() >= 9);
    }

    #[test]
    fn a_keyframe_mid_segment_does_not_cut_a_part() {
        let t = times(30.0, 120);
        let mut cutter = PartCutter::new(204, 1000, 10_000);
        // Keyframes at 0 and at frame 10 (333 ms: too early for a segment), then frame 60.
        let parts = run(&mut cutter, &t, |i| i == 0 || i == 10 || i == 60);
        assert_rfc_bounds(&parts, 204);
        assert_eq!(parts.iter().filter(|p| p.1).count(), 1);
    }

    #[test]
    fn a_frame_rate_drop_never_makes_a_part_too_long() {
        // 30 fps, then 8 fps, then 3 fps, then 30 fps again.
        let mut t = times(30.0, 31);
        let mut last = *t.last().unwrap();
        for step in [125; 20].into_iter().chain([333; 10]).chain([33; 60]) {
            last += step;
            t.push(last);
        }
        let mut cutter = PartCutter::new(204, 1000, 10_000);
        let parts = run(&mut cutter, &t, |i| i % 60 == 0);
        // The 333 ms samples are over-long parts of their own; every other part fits.
        let over = parts.iter().filter(|p| p.0 > 204).count() as u64;
        assert_eq!(over, cutter.over_long_parts);
        assert!(
            parts.iter().filter(|p| p.0 > 204).all(|p| p.0 == 333),
            "{parts:?}"
        );
        assert!(parts.iter().filter(|p| p.0 <= 204).count() > 20);
    }

    #[test]
    fn no_keyframe_for_long_forces_segments() {
        let t = times(30.0, 900);
        let mut cutter = PartCutter::new(204, 1000, 6000);
        let parts = run(&mut cutter, &t, |i| i == 0);
        assert_eq!(parts.iter().filter(|p| p.1).count(), 4);
        assert_eq!(cutter.forced_segments, 4);
        assert_rfc_bounds(&parts, 204);
    }

    #[test]
    fn bframes_timestamps_and_repeats_do_not_confuse_it() {
        // Decode times repeat or go back (a source's glitch): parts never get negative.
        let t = [0, 33, 33, 20, 66, 100, 133, 166, 200, 233, 266, 300];
        let mut cutter = PartCutter::new(204, 1000, 10_000);
        let parts = run(&mut cutter, &t, |i| i == 0);
        assert!(parts.iter().all(|p| p.0 >= 0 && p.0 <= 204), "{parts:?}");
    }
}
