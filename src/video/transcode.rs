//! [`BFrameTranscoder`]: H.264 with B-frames in, Constrained Baseline H.264 without B-frames
//! out, for browsers over WebRTC.
//!
//! WebRTC receivers expect every frame to be decodable and displayable as it arrives; a
//! stream with B-frames (frames whose presentation comes after later-decoded ones) makes
//! Chromium drop frames, freeze and ask for keyframes. One transcoder per capture decodes
//! the source (OpenH264, which reorders to display order) and re-encodes each picture as
//! Constrained Baseline (I and P frames only), so the output's decode order is its display
//! order. Each output frame gets the smallest presentation time still pending: times stay
//! the source's, and they only move forward.
//!
//! Pure: Annex-B access units in (keyframes carrying SPS/PPS, as the normalizer makes them),
//! Annex-B access units out; no I/O, no clock, no threads of its own.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bytes::Bytes;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::{YUVBuffer, YUVSource};
use openh264::{OpenH264API, Timestamp};

use crate::media::{MediaFrame, Track};

/// What the transcoder produces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TranscodeSettings {
    /// Target bitrate of the output, bits per second.
    pub bitrate_bps: u32,
    /// The source's frame rate (rate control budgets per frame), frames per second.
    pub frame_rate: f32,
    /// A keyframe at least this often, in frames (new viewers start at one).
    pub keyframe_interval: u32,
}

impl TranscodeSettings {
    /// The frame rate assumed when the source declares none.
    pub const FALLBACK_FRAME_RATE: f64 = 30.0;
    /// Seconds between keyframes of the output.
    pub const KEYFRAME_SECONDS: f64 = 2.0;

    /// Settings for a source whose declared frame rate (SPS timing, else `onMetaData`) is
    /// `frame_rate`: the encoder budgets bits per frame at that rate, and a keyframe comes
    /// every [`Self::KEYFRAME_SECONDS`] whatever the rate.
    pub fn for_source(bitrate_bps: u32, frame_rate: Option<f64>) -> Self {
        let fps = frame_rate
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(Self::FALLBACK_FRAME_RATE)
            .clamp(1.0, 120.0);
        Self {
            bitrate_bps,
            frame_rate: fps as f32,
            keyframe_interval: (fps * Self::KEYFRAME_SECONDS).round().max(1.0) as u32,
        }
    }
}

impl Default for TranscodeSettings {
    fn default() -> Self {
        Self::for_source(2_500_000, None)
    }
}

/// Most presentation times held for frames the decoder has taken and not given back as
/// pictures: 32, twice the largest H.264 decoded picture buffer (16 frames). Past it the
/// oldest is forgotten, so a stream that never yields pictures cannot grow the list.
pub const MAX_PENDING_PICTURES: usize = 32;

/// Decodes B-frame H.264 and re-encodes it without B-frames.
pub struct BFrameTranscoder {
    decoding: Decoding,
    encoding: Encoding,
    /// Pictures decoded but not encoded in a row while behind (see [`Self::push_live`]).
    skipped_in_a_row: u32,
}

/// The decoding half: pictures in display order, each with its presentation time.
struct Decoding {
    decoder: Decoder,
    /// Presentation times (and ingest stamps) of the frames fed in and not yet out.
    pending: BinaryHeap<Reverse<(i64, u64)>>,
    /// Nothing comes out before the decoder has seen a keyframe.
    seen_keyframe: bool,
    errors: u64,
}

/// The encoding half: Constrained Baseline access units with forward-only times.
struct Encoding {
    settings: TranscodeSettings,
    encoder: Option<Encoder>,
    /// The last output time: never go back.
    last_pts: Option<i64>,
    /// Output from a keyframe on: until the first picture, and after `request_keyframe`.
    force_keyframe: bool,
}

impl BFrameTranscoder {
    pub fn new(settings: TranscodeSettings) -> Result<Self, String> {
        Ok(Self {
            decoding: Decoding::new()?,
            encoding: Encoding {
                settings,
                encoder: None,
                last_pts: None,
                force_keyframe: true,
            },
            skipped_in_a_row: 0,
        })
    }

    /// How long a live frame may have waited before it reaches the transcoder (its
    /// `ingest_us` to now) before the transcoder counts as behind: 1 s. Shorter waits are
    /// caught up by encoding every frame (a busy machine delays the transcode by a few
    /// hundred ms now and then; skipping there cost a CI run 20 % of its frames); past 1 s
    /// the added latency is bounded by skipping.
    pub const BEHIND_AFTER_US: u64 = 1_000_000;
    /// While behind, at most this many pictures in a row are decoded without being encoded:
    /// an overloaded machine still gets a picture out at least every fifth frame.
    pub const MAX_SKIPPED_IN_A_ROW: u32 = 4;

    /// Frames the decoder could not decode (concealed or dropped) so far.
    pub fn decode_errors(&self) -> u64 {
        self.decoding.errors
    }

    /// The next output frame will be a keyframe (a viewer asked for one).
    pub fn request_keyframe(&mut self) {
        self.encoding.force_keyframe = true;
    }

    /// The source restarted or changed configuration: forget the pictures in flight and
    /// start again at the next keyframe.
    pub fn reset(&mut self) -> Result<(), String> {
        let errors = self.decoding.errors;
        self.decoding = Decoding::new()?;
        self.decoding.errors = errors;
        self.encoding.force_keyframe = true;
        Ok(())
    }

    /// Feeds one access unit; returns the frames that are ready (zero or one; a picture is
    /// held back while later-decoded frames may still precede it).
    pub fn push(&mut self, frame: &MediaFrame) -> Result<Vec<MediaFrame>, String> {
        // Time 0 is never behind: every picture is encoded.
        self.push_live(frame, 0)
    }

    /// [`Self::push`] for a live frame that arrives at the transcoder at `now_us` (the
    /// clock of `ingest_us`). When it waited longer than [`Self::BEHIND_AFTER_US`], the
    /// transcoder is behind (a slow start, a busy machine): the picture is decoded (later
    /// frames refer to it) but not encoded — up to [`Self::MAX_SKIPPED_IN_A_ROW`] in a row —
    /// so the viewers catch up by a small skip instead of a fast-forward burst of frames
    /// that are already late. A requested keyframe is never skipped.
    pub fn push_live(
        &mut self,
        frame: &MediaFrame,
        now_us: u64,
    ) -> Result<Vec<MediaFrame>, String> {
        let behind =
            frame.ingest_us != 0 && now_us.saturating_sub(frame.ingest_us) > Self::BEHIND_AFTER_US;
        let skip = behind
            && !self.encoding.force_keyframe
            && self.skipped_in_a_row < Self::MAX_SKIPPED_IN_A_ROW;
        match self.decoding.decode(frame) {
            Some(_) if skip => {
                self.skipped_in_a_row += 1;
                Ok(Vec::new())
            }
            Some((picture, pts, ingest_us)) => {
                self.skipped_in_a_row = 0;
                self.encoding.encode(&picture, pts, ingest_us)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Feeds the keyframe cache when the transcoder starts for a first viewer: every frame
    /// is decoded (later ones refer to them) but only the latest picture is encoded, as a
    /// keyframe — the viewer sees the current picture at once, without a fast-forward burst.
    pub fn push_backlog(&mut self, frames: &[MediaFrame]) -> Result<Vec<MediaFrame>, String> {
        let mut latest: Option<(YUVBuffer, i64, u64)> = None;
        for frame in frames {
            if let Some((picture, pts, ingest_us)) = self.decoding.decode(frame) {
                latest = copy_i420(&picture).map(|copy| (copy, pts, ingest_us));
            }
        }
        let Some((picture, pts, ingest_us)) = latest else {
            return Ok(Vec::new());
        };
        self.encoding.force_keyframe = true;
        self.encoding.encode(&picture, pts, ingest_us)
    }
}

impl Decoding {
    fn new() -> Result<Self, String> {
        Ok(Self {
            decoder: new_decoder()?,
            pending: BinaryHeap::new(),
            seen_keyframe: false,
            errors: 0,
        })
    }

    /// Decodes one video access unit (from a keyframe on); returns the picture it releases,
    /// if any, with the smallest pending presentation time and that frame's ingest stamp.
    fn decode(&mut self, frame: &MediaFrame) -> Option<(DecodedYUV<'_>, i64, u64)> {
        if frame.track != Track::Video {
            return None;
        }
        if !self.seen_keyframe {
            if !frame.keyframe {
                return None;
            }
            self.seen_keyframe = true;
        }
        self.pending.push(Reverse((frame.pts, frame.ingest_us)));
        if self.pending.len() > MAX_PENDING_PICTURES {
            // A decoder that takes frames and gives no pictures back (a broken or hostile
            // stream): forget the oldest time rather than grow.
            self.pending.pop();
        }
        let Ok(decoded) = self.decoder.decode(&frame.data) else {
            // A corrupt or concealed picture: its time is dropped with it.
            self.errors += 1;
            self.pending.pop();
            return None;
        };
        let picture = decoded?;
        let Reverse((pts, ingest_us)) = self.pending.pop()?;
        Some((picture, pts, ingest_us))
    }
}

impl Encoding {
    fn encode(
        &mut self,
        picture: &impl YUVSource,
        pts: i64,
        ingest_us: u64,
    ) -> Result<Vec<MediaFrame>, String> {
        let (width, height) = picture.dimensions();
        if width % 2 != 0 || height % 2 != 0 {
            return Err(format!(
                "cannot re-encode a {width}x{height} picture (odd sizes are not supported)"
            ));
        }
        // Never back, also when the source's times stumble.
        let pts = self.last_pts.map_or(pts, |last| pts.max(last + 1));
        let encoder = match self.encoder.as_mut() {
            Some(e) => e,
            None => self.encoder.insert(new_encoder(&self.settings)?),
        };
        if self.force_keyframe {
            encoder.force_intra_frame();
            self.force_keyframe = false;
        }
        let millis = u64::try_from(pts).unwrap_or(0);
        let stream = encoder
            .encode_at(picture, Timestamp::from_millis(millis))
            .map_err(|e| format!("H.264 encoding of a {width}x{height} picture failed: {e}"))?;
        let keyframe = match stream.frame_type() {
            FrameType::IDR | FrameType::I => true,
            FrameType::P | FrameType::IPMixed => false,
            FrameType::Skip | FrameType::Invalid => return Ok(Vec::new()),
        };
        let data = stream.to_vec();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        self.last_pts = Some(pts);
        Ok(vec![MediaFrame {
            track: Track::Video,
            pts,
            dts: pts,
            keyframe,
            data: Bytes::from(data),
            ingest_us,
        }])
    }
}

/// An owned copy of a decoded picture (I420, no padding); `None` for odd sizes.
fn copy_i420(p: &impl YUVSource) -> Option<YUVBuffer> {
    let (w, h) = p.dimensions();
    if w % 2 != 0 || h % 2 != 0 {
        return None;
    }
    let (sy, su, sv) = p.strides();
    let mut data = Vec::with_capacity(w * h * 3 / 2);
    for row in 0..h {
        data.extend_from_slice(p.y().get(row * sy..row * sy + w)?);
    }
    for (plane, stride) in [(p.u(), su), (p.v(), sv)] {
        for row in 0..h / 2 {
            data.extend_from_slice(plane.get(row * stride..row * stride + w / 2)?);
        }
    }
    Some(YUVBuffer::from_vec(data, w, h))
}

fn new_decoder() -> Result<Decoder, String> {
    // Without flushing after each frame, OpenH264 hands pictures out in display order.
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    Decoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| format!("cannot create the H.264 decoder: {e}"))
}

fn new_encoder(s: &TranscodeSettings) -> Result<Encoder, String> {
    let config = EncoderConfig::new()
        .profile(Profile::Baseline)
        .usage_type(UsageType::CameraVideoRealTime)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(s.bitrate_bps.max(100_000)))
        .max_frame_rate(FrameRate::from_hz(s.frame_rate.clamp(1.0, 60.0)))
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(
            s.keyframe_interval.max(1),
        ))
        .complexity(Complexity::Low)
        .num_threads(1);
    Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| format!("cannot create the H.264 encoder: {e}"))
}

#[cfg(test)]
#[path = "transcode_tests.rs"]
mod tests;
