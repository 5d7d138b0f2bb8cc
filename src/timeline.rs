//! [`Timeline`]: keeps a capture's frame times monotonic across source restarts.
//!
//! When a source drops and comes back — a reconnect, or a new publisher on the same
//! connection — its timestamps start again (usually near 0). Everything downstream (RTP
//! timestamps of viewers that stay connected, the recording that continues in the same file,
//! the Opus framer) needs one timeline that only moves forward. The timeline adds an offset
//! to every frame; after a discontinuity it picks a new offset so that the first frame of the
//! new segment lands where the old one ended plus the wall-clock time of the gap. Both tracks
//! share the offset, so the source's own audio/video alignment is kept.
//!
//! A discontinuity is announced by the caller ([`Timeline::discontinuity`]) or detected: a
//! track's time going back by more than [`MAX_BACKWARD_STEP_MS`] or forward by more than
//! [`MAX_FORWARD_JUMP_MS`] beyond the wall-clock time that passed.
//!
//! Pure: the caller passes the wall clock in milliseconds.

use crate::media::{MediaFrame, Track};

/// A track going back by more than this starts a new segment (interleaved audio and video,
/// and B-frame decode times, step back far less).
pub const MAX_BACKWARD_STEP_MS: i64 = 500;
/// A track jumping forward by this much more than the wall clock advanced starts a new
/// segment.
pub const MAX_FORWARD_JUMP_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy)]
struct Last {
    /// Source time of the track's latest frame (before the offset).
    source_dts: i64,
    /// Its time on the output timeline.
    out_dts: i64,
    /// Wall clock when it arrived.
    wall_ms: i64,
}

/// One capture's output timeline.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    offset: i64,
    pending: bool,
    video: Option<Last>,
    audio: Option<Last>,
    segments: u64,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// The source restarted (or is about to): the next frame starts a new segment.
    pub fn discontinuity(&mut self) {
        self.pending = true;
    }

    /// How many segments began after the first (announced or detected discontinuities that
    /// were followed by media).
    pub fn restarts(&self) -> u64 {
        self.segments
    }

    /// Moves `frame` onto the output timeline; `wall_ms` is when it arrived.
    pub fn place(&mut self, frame: &mut MediaFrame, wall_ms: i64) {
        let last = match frame.track {
            Track::Video => self.video,
            Track::Audio => self.audio,
        };
        let jumped = last.is_some_and(|l| {
            let step = frame.dts - l.source_dts;
            let wall = wall_ms - l.wall_ms;
            step < -MAX_BACKWARD_STEP_MS || step > wall.max(0) + MAX_FORWARD_JUMP_MS
        });
        if (self.pending || jumped) && self.newest().is_some() {
            self.rebase(frame.dts, wall_ms);
        }
        self.pending = false;
        let source_dts = frame.dts;
        // Never backwards on a track, whatever the source does within a segment: a frame
        // that would go back is held at the track's last time (only that frame moves).
        let shift = last.map_or(0, |l| (l.out_dts - (frame.dts + self.offset)).max(0));
        frame.dts += self.offset + shift;
        frame.pts += self.offset + shift;
        let entry = Last {
            source_dts,
            out_dts: frame.dts,
            wall_ms,
        };
        match frame.track {
            Track::Video => self.video = Some(entry),
            Track::Audio => self.audio = Some(entry),
        }
    }

    /// The track that ended latest on the output timeline.
    fn newest(&self) -> Option<Last> {
        match (self.video, self.audio) {
            (Some(v), Some(a)) => Some(if v.out_dts >= a.out_dts { v } else { a }),
            (v, a) => v.or(a),
        }
    }

    /// New offset: the segment's first frame goes where the timeline ended plus the gap.
    fn rebase(&mut self, source_dts: i64, wall_ms: i64) {
        let Some(newest) = self.newest() else {
            return;
        };
        let gap = (wall_ms - newest.wall_ms).max(1);
        self.offset = newest.out_dts + gap - source_dts;
        self.segments += 1;
        // A track's old "last" belongs to the old segment: compare only output times now.
        for last in [&mut self.video, &mut self.audio].into_iter().flatten() {
            last.source_dts = last.out_dts - self.offset;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(track: Track, dts: i64, cts: i64) -> MediaFrame {
        MediaFrame {
            track,
            pts: dts + cts,
            dts,
            keyframe: true,
            data: Bytes::new(),
            ingest_us: 0,
        }
    }

    fn place(t: &mut Timeline, track: Track, dts: i64, wall: i64) -> (i64, i64) {
        let mut f = frame(track, dts, 0);
        t.place(&mut f, wall);
        (f.dts, f.pts)
    }

    #[test]
    fn a_continuous_source_is_untouched() {
        let mut t = Timeline::new();
        for i in 0..100 {
            let mut v = frame(Track::Video, 1000 + i * 33, 66);
            t.place(&mut v, i * 33);
            assert_eq!((v.dts, v.pts), (1000 + i * 33, 1066 + i * 33));
            assert_eq!(
                place(&mut t, Track::Audio, 990 + i * 21, i * 33).0,
                990 + i * 21
            );
        }
        assert_eq!(t.restarts(), 0);
    }

    #[test]
    fn after_a_reconnect_time_continues_from_where_it_ended_plus_the_gap() {
        let mut t = Timeline::new();
        place(&mut t, Track::Video, 59_967, 10_000);
        place(&mut t, Track::Audio, 59_990, 10_001);
        t.discontinuity();
        // 3 s later the source starts again at 0.
        let (v, _) = place(&mut t, Track::Video, 0, 13_001);
        assert_eq!(v, 59_990 + 3000);
        // Audio of the new segment keeps its offset to video.
        assert_eq!(
            place(&mut t, Track::Audio, 21, 13_002).0,
            59_990 + 3000 + 21
        );
        assert_eq!(
            place(&mut t, Track::Video, 33, 13_034).0,
            59_990 + 3000 + 33
        );
        assert_eq!(t.restarts(), 1);
    }

    #[test]
    fn composition_offsets_survive_a_rebase() {
        let mut t = Timeline::new();
        place(&mut t, Track::Video, 5000, 0);
        t.discontinuity();
        let mut f = frame(Track::Video, 0, 80);
        t.place(&mut f, 2000);
        assert_eq!(f.pts - f.dts, 80);
    }

    #[test]
    fn a_backward_jump_without_notice_is_a_new_segment() {
        let mut t = Timeline::new();
        for i in 0..30 {
            place(&mut t, Track::Video, 40_000 + i * 33, i * 33);
        }
        let (v, _) = place(&mut t, Track::Video, 0, 30 * 33 + 500);
        assert_eq!(v, 40_000 + 29 * 33 + 533);
        assert_eq!(t.restarts(), 1);
    }

    #[test]
    fn a_huge_forward_jump_is_a_new_segment_but_a_real_gap_is_not() {
        let mut t = Timeline::new();
        place(&mut t, Track::Video, 0, 0);
        // 4 s of silence that really took 4 s: a gap, kept.
        assert_eq!(place(&mut t, Track::Video, 4000, 4000).0, 4000);
        // A jump of an hour after 40 ms: rebased to 40 ms later.
        assert_eq!(place(&mut t, Track::Video, 3_600_000, 4040).0, 4040);
        assert_eq!(t.restarts(), 1);
    }

    #[test]
    fn small_steps_back_are_clamped_never_negative() {
        let mut t = Timeline::new();
        place(&mut t, Track::Audio, 1000, 0);
        // Interleaving: a slightly older audio frame.
        let (a, _) = place(&mut t, Track::Audio, 990, 1);
        assert_eq!(a, 1000);
        // Only that frame was held: the next one is where the source says.
        assert_eq!(place(&mut t, Track::Audio, 1011, 22).0, 1011);
        assert_eq!(t.restarts(), 0);
    }

    #[test]
    fn a_discontinuity_before_any_media_changes_nothing() {
        let mut t = Timeline::new();
        t.discontinuity();
        assert_eq!(place(&mut t, Track::Video, 1234, 99).0, 1234);
        assert_eq!(t.restarts(), 0);
    }

    #[test]
    fn both_tracks_stay_monotonic_over_many_restarts() {
        let mut t = Timeline::new();
        let (mut last_v, mut last_a) = (i64::MIN, i64::MIN);
        let mut wall = 0;
        for round in 0..5 {
            t.discontinuity();
            for i in 0..50 {
                wall += 20;
                let (v, _) = place(&mut t, Track::Video, round * 7 + i * 40, wall);
                let (a, _) = place(&mut t, Track::Audio, i * 40 + 3, wall);
                assert!(v >= last_v && a >= last_a, "round {round} frame {i}");
                (last_v, last_a) = (v, a);
            }
            wall += 2000;
        }
        assert_eq!(t.restarts(), 4);
    }
}
