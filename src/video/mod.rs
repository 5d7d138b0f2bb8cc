//! Video for WebRTC viewers: whether a capture's H.264 has B-frames ([`BFrameDetector`]) and
//! the per-capture transcode that removes them ([`transcode::BFrameTranscoder`]).
//!
//! Browsers decode B-frames badly over WebRTC (Chromium drops frames, freezes and keeps
//! asking for keyframes). A capture is checked once: its SPS (reorder depth, profile) and
//! its first frames (a composition offset means a frame is shown later than decoded). Only a
//! capture with B-frames is transcoded, once, for all its WebRTC viewers; recordings keep
//! the original. Pure: no I/O, no clock.

pub mod transcode;

use crate::codec::h264::AvcConfig;
use crate::media::{MediaFrame, Track};

/// `profile_idc` of Baseline: no B-slices possible.
const PROFILE_BASELINE: u8 = 66;

/// Decides, once per capture, whether its video has B-frames.
#[derive(Debug, Clone, Default)]
pub struct BFrameDetector {
    decided: Option<bool>,
    /// How the decision was made, for the log and `find_all`.
    evidence: Option<String>,
}

impl BFrameDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Some(true)` once B-frames are known, `Some(false)` when they cannot occur, `None`
    /// while nothing says either way.
    pub fn decided(&self) -> Option<bool> {
        self.decided
    }

    /// Why: "SPS max_num_reorder_frames = 2", "composition offset 67 ms", …
    pub fn evidence(&self) -> Option<&str> {
        self.evidence.as_deref()
    }

    /// A (new) video configuration. Returns true when this decided that there are B-frames.
    pub fn on_config(&mut self, avc: &AvcConfig) -> bool {
        if self.decided == Some(true) {
            return false;
        }
        let profile = avc.sps_info.as_ref().map_or(avc.profile, |s| s.profile_idc);
        let reorder = avc.sps_info.as_ref().and_then(|s| s.max_num_reorder_frames);
        let (decided, evidence) = match (profile, reorder) {
            (_, Some(n)) if n > 0 => (Some(true), format!("SPS max_num_reorder_frames = {n}")),
            (_, Some(0)) => (Some(false), "SPS max_num_reorder_frames = 0".to_string()),
            (PROFILE_BASELINE, _) => (Some(false), "Baseline profile".to_string()),
            _ => (None, String::new()),
        };
        if decided.is_some() {
            self.decided = decided;
            self.evidence = Some(evidence);
        }
        self.decided == Some(true)
    }

    /// A video frame. Returns true when this decided that there are B-frames: a frame shown
    /// later than it is decoded (only B-frames make the order differ).
    pub fn on_frame(&mut self, frame: &MediaFrame) -> bool {
        if frame.track != Track::Video || self.decided.is_some() || frame.pts == frame.dts {
            return false;
        }
        self.decided = Some(true);
        self.evidence = Some(format!("composition offset {} ms", frame.pts - frame.dts));
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::h264::parse_avc_decoder_config;
    use crate::test_vectors::{bframes_flv, flv_file_tags};
    use bytes::Bytes;

    fn frame(pts: i64, dts: i64) -> MediaFrame {
        MediaFrame {
            track: Track::Video,
            pts,
            dts,
            keyframe: false,
            data: Bytes::new(),
            ingest_us: 0,
        }
    }

    #[test]
    fn a_composition_offset_means_b_frames() {
        let mut d = BFrameDetector::new();
        assert!(!d.on_frame(&frame(0, 0)));
        assert_eq!(d.decided(), None);
        assert!(d.on_frame(&frame(100, 33)));
        assert_eq!(d.decided(), Some(true));
        assert_eq!(d.evidence(), Some("composition offset 67 ms"));
        // Decided once.
        assert!(!d.on_frame(&frame(200, 66)));
    }

    #[test]
    fn the_sps_of_an_x264_b_frame_stream_decides_at_once() {
        let tags = flv_file_tags(&bframes_flv());
        let (_, _, header) = tags.iter().find(|(kind, _, _)| *kind == 9).unwrap();
        // Video tag header: frame type/codec, packet type 0, composition time (3 bytes).
        let avc = parse_avc_decoder_config(&header[5..]).unwrap();
        let mut d = BFrameDetector::new();
        assert!(d.on_config(&avc));
        assert_eq!(d.decided(), Some(true));
        assert!(d.evidence().unwrap().contains("max_num_reorder_frames"));
    }

    #[test]
    fn baseline_never_has_b_frames_and_other_tracks_do_not_count() {
        let mut d = BFrameDetector::new();
        let mut audio = frame(100, 0);
        audio.track = Track::Audio;
        assert!(!d.on_frame(&audio));
        assert_eq!(d.decided(), None);
        let avc = AvcConfig {
            profile: 66,
            compatibility: 0xc0,
            level: 31,
            nal_length_size: 4,
            sps: Vec::new(),
            pps: Vec::new(),
            sps_info: None,
        };
        assert!(!d.on_config(&avc));
        assert_eq!(d.decided(), Some(false));
        assert!(!d.on_frame(&frame(100, 0)));
    }
}
