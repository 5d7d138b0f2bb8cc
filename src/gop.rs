//! The keyframe cache: the frames since the last video keyframe, so a new viewer can start
//! decoding at once instead of waiting up to a GOP for the next keyframe (RTMP sources cannot
//! be asked for one).
//!
//! Rules: a video keyframe empties the cache and starts it; until the first keyframe nothing
//! is kept (those frames cannot be decoded alone); audio between keyframes is kept beside
//! the video; past `max_bytes` the cache empties and waits for the next keyframe, so a
//! source that never sends one cannot grow it without bound. Audio-only captures keep
//! nothing: every audio frame is a starting point. Pure data structure.

use crate::media::{MediaFrame, Track};

/// Frames from the latest video keyframe on.
#[derive(Debug, Clone, Default)]
pub struct GopCache {
    frames: Vec<MediaFrame>,
    bytes: usize,
    max_bytes: usize,
}

impl GopCache {
    /// A cache holding at most `max_bytes` of payload.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            frames: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Offers a frame to the cache.
    pub fn push(&mut self, frame: &MediaFrame) {
        let video_keyframe = frame.track == Track::Video && frame.keyframe;
        if video_keyframe {
            self.clear();
        } else if self.frames.is_empty() {
            return;
        }
        if self.bytes + frame.data.len() > self.max_bytes {
            self.clear();
            return;
        }
        self.bytes += frame.data.len();
        self.frames.push(frame.clone());
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

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(c.bytes(), 14);
    }

    #[test]
    fn overflow_empties_and_waits_for_the_next_keyframe() {
        let mut c = GopCache::new(25);
        c.push(&frame(Track::Video, 0, true, 10));
        c.push(&frame(Track::Video, 33, false, 10));
        c.push(&frame(Track::Video, 66, false, 10));
        assert!(c.frames().is_empty());
        c.push(&frame(Track::Video, 99, false, 1));
        assert!(c.frames().is_empty());
        c.push(&frame(Track::Video, 133, true, 10));
        assert_eq!(c.frames().len(), 1);
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
