//! The keyframe cache: the frames since the last video keyframe, so a new viewer can start
//! decoding at once instead of waiting up to a GOP for the next keyframe (RTMP sources cannot
//! be asked for one).
//!
//! Rules: a video keyframe empties the cache and starts it; until the first keyframe nothing
//! is kept (those frames cannot be decoded alone); audio between keyframes is kept beside
//! the video; past `max_bytes` (counted as [`MediaFrame::cost_bytes`], payload plus
//! per-frame overhead) the cache empties, says so once, and keeps nothing until the next
//! keyframe — a source that sends one keyframe and then hours of P-frames, huge frames or a
//! flood of tiny ones cannot grow it past its cap, and a new viewer then waits for the next
//! keyframe. Audio-only captures keep nothing: every audio frame is a starting point. Pure
//! data structure.

use crate::media::{MediaFrame, Track};

/// The cap a capture's keyframe cache gets unless configured otherwise: 16 MiB of
/// [`MediaFrame::cost_bytes`]. A 4 s GOP at 20 Mbit/s (1080p at a generous rate) is 10 MB;
/// a source whose GOP is bigger than this only makes a new viewer wait for its next
/// keyframe.
pub const DEFAULT_KEYFRAME_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// What [`GopCache::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GopPush {
    /// The frame is in the cache.
    Kept,
    /// Not kept: there has been no video keyframe since the cache started or last overflowed
    /// (or the capture is audio-only).
    Waiting,
    /// The frame would have taken the cache past its cap: the cache was emptied and keeps
    /// nothing until the next video keyframe, so a new viewer waits for that keyframe. Said
    /// once per overflow (the frames after it are `Waiting`): the caller logs it.
    Overflowed {
        /// What the cache would have held with this frame ([`MediaFrame::cost_bytes`]).
        would_hold: usize,
        /// The cap.
        max_bytes: usize,
    },
}

/// Frames from the latest video keyframe on, at most `max_bytes` of
/// [`MediaFrame::cost_bytes`].
#[derive(Debug, Clone, Default)]
pub struct GopCache {
    frames: Vec<MediaFrame>,
    bytes: usize,
    max_bytes: usize,
}

impl GopCache {
    /// A cache holding at most `max_bytes` (counted with [`MediaFrame::cost_bytes`]: payload
    /// plus per-frame overhead); [`DEFAULT_KEYFRAME_CACHE_BYTES`] unless configured.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            frames: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Offers a frame to the cache; says what became of it (see [`GopPush`]).
    pub fn push(&mut self, frame: &MediaFrame) -> GopPush {
        let video_keyframe = frame.track == Track::Video && frame.keyframe;
        if video_keyframe {
            self.clear();
        } else if self.frames.is_empty() {
            return GopPush::Waiting;
        }
        let would_hold = self.bytes.saturating_add(frame.cost_bytes());
        if would_hold > self.max_bytes {
            self.clear();
            self.frames.shrink_to_fit();
            return GopPush::Overflowed {
                would_hold,
                max_bytes: self.max_bytes,
            };
        }
        self.bytes = would_hold;
        self.frames.push(frame.clone());
        GopPush::Kept
    }

    /// Forgets everything (e.g. the video configuration changed).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// The cached frames, oldest first; the first is a video keyframe when not empty.
    pub fn frames(&self) -> &[MediaFrame] {
        &self.frames
    }

    /// What the cached frames cost ([`MediaFrame::cost_bytes`] summed), at most the cap.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The cap given to [`GopCache::new`].
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::FRAME_OVERHEAD_BYTES;
    use bytes::Bytes;

    fn frame(track: Track, dts: i64, keyframe: bool, size: usize) -> MediaFrame {
        MediaFrame {
            track,
            pts: dts,
            dts,
            keyframe,
            data: Bytes::from(vec![0u8; size]),
            ingest_us: 0,
        }
    }

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut c = GopCache::new(1 << 20);
        c.push(&frame(Track::Video, 0, false, 10));
        c.push(&frame(Track::Audio, 5, true, 10));
        assert!(c.frames().is_empty());
    }

    #[test]
    fn a_keyframe_restarts_the_cache_and_audio_is_kept_beside_video() {
        let mut c = GopCache::new(1 << 20);
        c.push(&frame(Track::Video, 0, true, 10));
        c.push(&frame(Track::Audio, 10, true, 4));
        c.push(&frame(Track::Video, 33, false, 10));
        c.push(&frame(Track::Video, 66, true, 10));
        c.push(&frame(Track::Audio, 70, true, 4));
        let dts: Vec<i64> = c.frames().iter().map(|f| f.dts).collect();
        assert_eq!(dts, vec![66, 70]);
        assert!(c.frames()[0].keyframe);
        assert_eq!(c.bytes(), 14 + 2 * FRAME_OVERHEAD_BYTES);
    }

    #[test]
    fn overflow_empties_says_so_once_and_waits_for_the_next_keyframe() {
        let max = 2 * FRAME_OVERHEAD_BYTES + 25;
        let mut c = GopCache::new(max);
        assert_eq!(c.push(&frame(Track::Video, 0, true, 10)), GopPush::Kept);
        assert_eq!(c.push(&frame(Track::Video, 33, false, 10)), GopPush::Kept);
        assert_eq!(
            c.push(&frame(Track::Video, 66, false, 10)),
            GopPush::Overflowed {
                would_hold: 3 * FRAME_OVERHEAD_BYTES + 30,
                max_bytes: max
            }
        );
        assert!(c.frames().is_empty());
        assert_eq!(c.bytes(), 0);
        assert_eq!(c.push(&frame(Track::Video, 99, false, 1)), GopPush::Waiting);
        assert_eq!(c.push(&frame(Track::Audio, 99, true, 1)), GopPush::Waiting);
        assert!(c.frames().is_empty());
        assert_eq!(c.push(&frame(Track::Video, 133, true, 10)), GopPush::Kept);
        assert_eq!(c.frames().len(), 1);
    }

    /// The attack of issue 11 without the parameter sets: one keyframe, then a flood of
    /// tiny frames. Counted by payload alone 100 000 frames of 11 bytes would be 1.1 MB;
    /// what they really hold (about 26 MB) is what the cap sees.
    #[test]
    fn a_flood_of_tiny_frames_is_counted_at_what_it_costs() {
        let mut c = GopCache::new(DEFAULT_KEYFRAME_CACHE_BYTES);
        assert_eq!(c.push(&frame(Track::Video, 0, true, 11)), GopPush::Kept);
        let mut overflows = 0;
        for i in 1..100_000 {
            match c.push(&frame(Track::Video, i, false, 11)) {
                GopPush::Overflowed { .. } => overflows += 1,
                GopPush::Kept | GopPush::Waiting => {}
            }
            assert!(c.bytes() <= DEFAULT_KEYFRAME_CACHE_BYTES);
        }
        assert_eq!(overflows, 1);
        assert!(c.frames().is_empty());
        // Hours of P-frames after one keyframe: the same.
        let mut c = GopCache::new(1 << 20);
        c.push(&frame(Track::Video, 0, true, 50_000));
        let kept = (1..10_000)
            .take_while(|&i| c.push(&frame(Track::Video, i, false, 50_000)) == GopPush::Kept)
            .count();
        assert_eq!(kept, (1 << 20) / (50_000 + FRAME_OVERHEAD_BYTES) - 1);
    }

    #[test]
    fn a_keyframe_bigger_than_the_cap_is_not_kept() {
        let mut c = GopCache::new(1000);
        assert!(matches!(
            c.push(&frame(Track::Video, 0, true, 1000)),
            GopPush::Overflowed { .. }
        ));
        assert!(c.frames().is_empty());
        assert_eq!(c.max_bytes(), 1000);
    }

    #[test]
    fn audio_only_keeps_nothing() {
        let mut c = GopCache::new(1 << 20);
        for i in 0..50 {
            c.push(&frame(Track::Audio, i * 21, true, 300));
        }
        assert!(c.frames().is_empty());
    }
}
