//! The [`Normalizer`]: FLV audio/video tag bodies in, [`MediaFrame`]s and codec changes out.
//!
//! It owns the per-capture state that turning tags into frames needs: the current H.264 and
//! AAC configurations and the 32-bit → 64-bit timestamp extension. Feed it with
//! [`Normalizer::handle_video`] / [`Normalizer::handle_audio`], then drain
//! [`Normalizer::poll`] until `None`. A malformed tag is an `Err` for that tag only; the
//! normalizer stays usable. It does no I/O and reads no clock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::aac::{parse_audio_specific_config, AacError};
use crate::codec::h264::{
    avcc_to_annexb, first_slice_pps_id, parse_avc_decoder_config, AvcConfig, AvcError,
};
use crate::flv::tag::{parse_audio_tag, parse_video_tag, AudioTag, TagError, VideoTag};
use crate::media::{CodecSet, MediaFrame, Track};

/// H.264 NAL unit type of an access unit delimiter.
const NAL_AUD: u8 = 9;

/// What the normalizer hands on.
#[derive(Debug, Clone, PartialEq)]
pub enum NormalizedEvent {
    /// The codec configuration changed (first configuration included). Frames that follow
    /// use this set.
    CodecChange(CodecSet),
    /// One frame.
    Frame(MediaFrame),
}

/// Why one tag could not be used. The tag is dropped; the stream goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum NormalizeError {
    Tag(TagError),
    Avc(AvcError),
    Aac(AacError),
    /// A coded frame arrived before the sequence header that explains it.
    NoConfig(Track),
}

impl fmt::Display for NormalizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NormalizeError::Tag(e) => write!(f, "{e}"),
            NormalizeError::Avc(e) => write!(f, "bad H.264 data: {e}"),
            NormalizeError::Aac(e) => write!(f, "bad AAC configuration: {e}"),
            NormalizeError::NoConfig(Track::Video) => {
                write!(f, "H.264 frame before the AVC sequence header; dropped")
            }
            NormalizeError::NoConfig(Track::Audio) => {
                write!(f, "AAC frame before the AAC sequence header; dropped")
            }
        }
    }
}

impl std::error::Error for NormalizeError {}

/// Extends RTMP's 32-bit millisecond timestamps to an `i64` timeline.
///
/// Each new timestamp is taken as the nearest value to the previous one modulo 2^32, so a
/// wrap-around continues forward and the small backward steps of interleaved audio and
/// video stay small.
#[derive(Debug, Default, Clone)]
pub struct TimestampExtender {
    last: Option<(u32, i64)>,
}

impl TimestampExtender {
    /// Returns the extended value of `raw`.
    pub fn extend(&mut self, raw: u32) -> i64 {
        let extended = match self.last {
            None => raw as i64,
            Some((last_raw, last_ext)) => last_ext + raw.wrapping_sub(last_raw) as i32 as i64,
        };
        self.last = Some((raw, extended));
        extended
    }
}

/// Turns FLV tags into frames for one capture.
#[derive(Debug, Default)]
pub struct Normalizer {
    codecs: CodecSet,
    clock: TimestampExtender,
    out: VecDeque<NormalizedEvent>,
}

impl Normalizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration currently in force.
    pub fn codecs(&self) -> &CodecSet {
        &self.codecs
    }

    /// Handles one video tag body with its RTMP timestamp (ms).
    pub fn handle_video(&mut self, timestamp: u32, body: &Bytes) -> Result<(), NormalizeError> {
        let dts = self.clock.extend(timestamp);
        match parse_video_tag(body).map_err(NormalizeError::Tag)? {
            VideoTag::AvcSequenceHeader(record) => {
                let config = parse_avc_decoder_config(&record).map_err(NormalizeError::Avc)?;
                if self.codecs.video.as_deref() != Some(&config) {
                    self.codecs.video = Some(Arc::new(config));
                    self.out
                        .push_back(NormalizedEvent::CodecChange(self.codecs.clone()));
                }
                Ok(())
            }
            VideoTag::AvcNalus {
                keyframe,
                composition_time,
                data,
            } => {
                let config = self
                    .codecs
                    .video
                    .clone()
                    .ok_or(NormalizeError::NoConfig(Track::Video))?;
                let (payload, idr) = access_unit(&config, keyframe, &data)?;
                if payload.is_empty() {
                    return Ok(());
                }
                self.out.push_back(NormalizedEvent::Frame(MediaFrame {
                    track: Track::Video,
                    pts: dts + composition_time as i64,
                    dts,
                    keyframe: idr,
                    data: payload,
                    ingest_us: 0,
                }));
                Ok(())
            }
            VideoTag::AvcEndOfSequence | VideoTag::Command => Ok(()),
        }
    }

    /// Handles one audio tag body with its RTMP timestamp (ms).
    pub fn handle_audio(&mut self, timestamp: u32, body: &Bytes) -> Result<(), NormalizeError> {
        let dts = self.clock.extend(timestamp);
        match parse_audio_tag(body).map_err(NormalizeError::Tag)? {
            AudioTag::AacSequenceHeader(raw) => {
                let config = parse_audio_specific_config(&raw).map_err(NormalizeError::Aac)?;
                if self.codecs.audio.as_deref() != Some(&config) {
                    self.codecs.audio = Some(Arc::new(config));
                    self.out
                        .push_back(NormalizedEvent::CodecChange(self.codecs.clone()));
                }
                Ok(())
            }
            AudioTag::AacRaw(frame) => {
                if self.codecs.audio.is_none() {
                    return Err(NormalizeError::NoConfig(Track::Audio));
                }
                if frame.is_empty() {
                    return Ok(());
                }
                self.out.push_back(NormalizedEvent::Frame(MediaFrame {
                    track: Track::Audio,
                    pts: dts,
                    dts,
                    keyframe: true,
                    // A copy of its own: a slice would keep the whole buffer the tag came in
                    // alive for as long as the frame is cached or queued, whatever
                    // `MediaFrame::cost_bytes` says.
                    data: Bytes::copy_from_slice(&frame),
                    ingest_us: 0,
                }));
                Ok(())
            }
        }
    }

    /// The next output, if any.
    pub fn poll(&mut self) -> Option<NormalizedEvent> {
        self.out.pop_front()
    }
}

/// Converts one AVCC access unit to Annex-B. A keyframe that carries no SPS of its own
/// gets the two parameter sets its first slice needs put in front (after an access unit
/// delimiter, if the unit starts with one): the PPS its header names and the SPS that PPS
/// names, or the configuration's first of each when those cannot be found
/// ([`AvcConfig::parameter_sets_for`]) — never the whole configuration, so what a keyframe
/// costs does not grow with the number of parameter sets a source announces. A keyframe
/// with an SPS in-band is passed on as it is. Returns the bytes and whether the unit is a
/// keyframe a decoder can start at.
fn access_unit(
    config: &AvcConfig,
    flv_keyframe: bool,
    data: &Bytes,
) -> Result<(Bytes, bool), NormalizeError> {
    let size = config.nal_length_size;
    let mut converted = Vec::with_capacity(data.len() + 64);
    let summary = avcc_to_annexb(data, size, &mut converted).map_err(NormalizeError::Avc)?;
    let keyframe = summary.has_idr || flv_keyframe;
    if !keyframe || summary.has_sps || config.sps.is_empty() {
        return Ok((Bytes::from(converted), keyframe));
    }
    // Where the first NAL unit ends in the Annex-B output, if it is an AUD.
    let aud_end = first_nal_len(data, size)
        .filter(|(nal_type, _)| *nal_type == NAL_AUD)
        .map(|(_, len)| 4 + len)
        .unwrap_or(0);
    let (sps, pps) = config.parameter_sets_for(first_slice_pps_id(data, size));
    let sets = [sps, pps];
    let sets_len: usize = sets.iter().flatten().map(|n| n.len() + 4).sum();
    let mut out = Vec::with_capacity(converted.len() + sets_len);
    out.extend_from_slice(converted.get(..aud_end).unwrap_or_default());
    for nal in sets.iter().flatten() {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out.extend_from_slice(converted.get(aud_end..).unwrap_or_default());
    Ok((Bytes::from(out), keyframe))
}

/// Type and length of the first length-prefixed NAL unit.
fn first_nal_len(data: &[u8], size: u8) -> Option<(u8, usize)> {
    let size = size as usize;
    let len = data
        .get(..size)?
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    let header = *data.get(size)?;
    Some((header & 0x1f, len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// x264's Constrained Baseline 1280x720 SPS and PPS (level 3.1).
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
        0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0xa8,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn sequence_header() -> Bytes {
        let mut v = vec![0x17, 0x00, 0, 0, 0];
        v.extend_from_slice(&[0x01, 0x42, 0xc0, 0x1f, 0xff, 0xe1]);
        v.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        v.extend_from_slice(SPS);
        v.push(0x01);
        v.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        v.extend_from_slice(PPS);
        Bytes::from(v)
    }

    fn nalus(frame_type: u8, cts: i32, nals: &[&[u8]]) -> Bytes {
        let c = (cts as u32).to_be_bytes();
        let mut v = vec![(frame_type << 4) | 7, 0x01, c[1], c[2], c[3]];
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    }

    fn drain(n: &mut Normalizer) -> Vec<NormalizedEvent> {
        std::iter::from_fn(|| n.poll()).collect()
    }

    #[test]
    fn idr_gets_parameter_sets_in_annex_b() {
        let mut n = Normalizer::new();
        n.handle_video(0, &sequence_header()).unwrap();
        n.handle_video(0, &nalus(1, 0, &[&[0x65, 0x88, 0x84]]))
            .unwrap();
        let out = drain(&mut n);
        assert!(matches!(&out[0], NormalizedEvent::CodecChange(set) if set.video.is_some()));
        let NormalizedEvent::Frame(frame) = &out[1] else {
            panic!("expected a frame, got {:?}", out[1]);
        };
        let mut expected = vec![0, 0, 0, 1];
        expected.extend_from_slice(SPS);
        expected.extend_from_slice(&[0, 0, 0, 1]);
        expected.extend_from_slice(PPS);
        expected.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        assert_eq!(frame.data.as_ref(), expected.as_slice());
        assert!(frame.keyframe);
        assert_eq!(frame.track, Track::Video);
    }

    #[test]
    fn parameter_sets_go_after_an_access_unit_delimiter() {
        let mut n = Normalizer::new();
        n.handle_video(0, &sequence_header()).unwrap();
        n.handle_video(0, &nalus(1, 0, &[&[0x09, 0xf0], &[0x65, 0x01]]))
            .unwrap();
        let out = drain(&mut n);
        let NormalizedEvent::Frame(frame) = &out[1] else {
            panic!("expected a frame");
        };
        assert_eq!(&frame.data[..6], &[0, 0, 0, 1, 0x09, 0xf0]);
        assert_eq!(&frame.data[6..11], &[0, 0, 0, 1, 0x67]);
        assert!(frame.data.ends_with(&[0, 0, 0, 1, 0x65, 0x01]));
    }

    #[test]
    fn inter_frames_are_passed_untouched_with_composition_offsets() {
        let mut n = Normalizer::new();
        n.handle_video(1000, &sequence_header()).unwrap();
        // A B-frame stream: decode at 1033, present 66 ms later.
        n.handle_video(1033, &nalus(2, 66, &[&[0x41, 0x9a]]))
            .unwrap();
        // A negative composition offset (some encoders start with pts < dts).
        n.handle_video(1066, &nalus(2, -33, &[&[0x01, 0x9e]]))
            .unwrap();
        let frames: Vec<MediaFrame> = drain(&mut n)
            .into_iter()
            .filter_map(|e| match e {
                NormalizedEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!((frames[0].dts, frames[0].pts), (1033, 1099));
        assert!(!frames[0].keyframe);
        assert_eq!(frames[0].data.as_ref(), &[0, 0, 0, 1, 0x41, 0x9a]);
        assert_eq!((frames[1].dts, frames[1].pts), (1066, 1033));
    }

    #[test]
    fn repeated_identical_sequence_header_is_not_a_change_but_a_new_one_is() {
        let mut n = Normalizer::new();
        n.handle_video(0, &sequence_header()).unwrap();
        n.handle_video(40, &sequence_header()).unwrap();
        assert_eq!(drain(&mut n).len(), 1);
        // Same stream, AAC config appears: a change carrying both.
        n.handle_audio(40, &Bytes::from_static(&[0xaf, 0x00, 0x11, 0x90]))
            .unwrap();
        let out = drain(&mut n);
        let NormalizedEvent::CodecChange(set) = &out[0] else {
            panic!("expected a codec change");
        };
        assert!(set.video.is_some());
        assert_eq!(set.audio.as_ref().unwrap().sample_rate, 48000);
        // Mid-stream switch to 11025 Hz mono: another change.
        n.handle_audio(80, &Bytes::from_static(&[0xaf, 0x00, 0x15, 0x08]))
            .unwrap();
        let out = drain(&mut n);
        let NormalizedEvent::CodecChange(set) = &out[0] else {
            panic!("expected a codec change");
        };
        let audio = set.audio.as_ref().unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (11025, 1));
    }

    #[test]
    fn frames_before_configuration_are_refused_not_fatal() {
        let mut n = Normalizer::new();
        assert_eq!(
            n.handle_video(0, &nalus(1, 0, &[&[0x65]])),
            Err(NormalizeError::NoConfig(Track::Video))
        );
        assert_eq!(
            n.handle_audio(0, &Bytes::from_static(&[0xaf, 0x01, 0x21])),
            Err(NormalizeError::NoConfig(Track::Audio))
        );
        n.handle_audio(0, &Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]))
            .unwrap();
        n.handle_audio(23, &Bytes::from_static(&[0xaf, 0x01, 0x21]))
            .unwrap();
        let out = drain(&mut n);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[1], NormalizedEvent::Frame(f) if f.dts == 23 && f.keyframe));
    }

    #[test]
    fn garbage_tags_are_errors_and_the_normalizer_goes_on() {
        let mut n = Normalizer::new();
        assert!(n
            .handle_video(0, &Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1]))
            .is_err());
        n.handle_video(0, &sequence_header()).unwrap();
        // A NAL length running past the end.
        assert!(n
            .handle_video(
                0,
                &Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x65])
            )
            .is_err());
        n.handle_video(33, &nalus(2, 0, &[&[0x41]])).unwrap();
        assert_eq!(drain(&mut n).len(), 2);
    }

    #[test]
    fn random_tags_never_panic() {
        let mut n = Normalizer::new();
        n.handle_video(0, &sequence_header()).unwrap();
        n.handle_audio(0, &Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]))
            .unwrap();
        let mut seed = 0x2545_f491u32;
        for round in 0..5000u32 {
            let len = (round % 64) as usize;
            let mut body = crate::test_vectors::noise(&mut seed, len);
            // Keep the first byte plausible half the time so the deeper parsers are reached.
            if round % 2 == 0 && !body.is_empty() {
                body[0] = if round % 4 == 0 { 0x17 } else { 0xaf };
            }
            let body = Bytes::from(body);
            let _ = n.handle_video(round, &body);
            let _ = n.handle_audio(round, &body);
            while n.poll().is_some() {}
        }
    }

    #[test]
    fn timestamps_continue_across_the_32_bit_wrap() {
        let mut clock = TimestampExtender::default();
        assert_eq!(clock.extend(u32::MAX - 10), u32::MAX as i64 - 10);
        assert_eq!(clock.extend(5), u32::MAX as i64 + 6);
        // Interleaved audio slightly behind video stays just behind.
        assert_eq!(clock.extend(2), u32::MAX as i64 + 3);
        assert_eq!(clock.extend(40), u32::MAX as i64 + 41);
    }

    /// An AVC sequence header tag holding these parameter sets.
    fn sequence_header_of(sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Bytes {
        let mut v = vec![0x17, 0x00, 0, 0, 0];
        v.extend_from_slice(&[0x01, 0x42, 0xc0, 0x1f, 0xff, 0xe0 | sps.len() as u8]);
        for s in sps {
            v.extend_from_slice(&(s.len() as u16).to_be_bytes());
            v.extend_from_slice(s);
        }
        v.push(pps.len() as u8);
        for p in pps {
            v.extend_from_slice(&(p.len() as u16).to_be_bytes());
            v.extend_from_slice(p);
        }
        Bytes::from(v)
    }

    /// An SPS with id 1 (only its start is read: profile, flags, level, ue(1), stop bit).
    const SPS1: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0x50];
    /// PPS 1 → SPS 1 (ue(1) ue(1) stop bit) and PPS 2 → SPS 0 (ue(2) ue(0) stop bit).
    const PPS1: &[u8] = &[0x68, 0x4a];
    const PPS2: &[u8] = &[0x68, 0x78];
    /// IDR slice headers (first_mb 0, slice_type 7) naming PPS 1 and PPS 2.
    const IDR_PPS1: &[u8] = &[0x65, 0x88, 0x5f];
    const IDR_PPS2: &[u8] = &[0x65, 0x88, 0x7f];

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        v
    }

    fn only_frame(n: &mut Normalizer) -> MediaFrame {
        let frames: Vec<MediaFrame> = drain(n)
            .into_iter()
            .filter_map(|e| match e {
                NormalizedEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 1);
        frames.into_iter().next().unwrap()
    }

    #[test]
    fn a_keyframe_gets_only_the_parameter_sets_its_slice_needs() {
        let mut n = Normalizer::new();
        n.handle_video(
            0,
            &sequence_header_of(
                &[SPS.to_vec(), SPS1.to_vec()],
                &[PPS.to_vec(), PPS1.to_vec(), PPS2.to_vec()],
            ),
        )
        .unwrap();
        drain(&mut n);
        // PPS 1 → SPS 1.
        n.handle_video(40, &nalus(1, 0, &[IDR_PPS1])).unwrap();
        assert_eq!(
            only_frame(&mut n).data.as_ref(),
            annexb(&[SPS1, PPS1, IDR_PPS1]).as_slice()
        );
        // PPS 2 → SPS 0, after an access unit delimiter.
        n.handle_video(80, &nalus(1, 0, &[&[0x09, 0xf0], IDR_PPS2]))
            .unwrap();
        assert_eq!(
            only_frame(&mut n).data.as_ref(),
            annexb(&[&[0x09, 0xf0], SPS, PPS2, IDR_PPS2]).as_slice()
        );
        // A slice header that cannot be read: the first SPS and the first PPS, no more.
        n.handle_video(120, &nalus(1, 0, &[&[0x65, 0x88]])).unwrap();
        assert_eq!(
            only_frame(&mut n).data.as_ref(),
            annexb(&[SPS, PPS, &[0x65, 0x88]]).as_slice()
        );
        // A keyframe carrying its own SPS and PPS is passed on as it is.
        n.handle_video(160, &nalus(1, 0, &[SPS1, PPS1, IDR_PPS1]))
            .unwrap();
        let frame = only_frame(&mut n);
        assert_eq!(
            frame.data.as_ref(),
            annexb(&[SPS1, PPS1, IDR_PPS1]).as_slice()
        );
        assert!(frame.keyframe);
        // Inter frames get nothing.
        n.handle_video(200, &nalus(2, 0, &[&[0x41, 0x9a]])).unwrap();
        assert_eq!(
            only_frame(&mut n).data.as_ref(),
            annexb(&[&[0x41, 0x9a]]).as_slice()
        );
    }

    /// Issue 11's attack: a valid configuration, then one holding 31 SPS and 200 PPS of
    /// 64 000 bytes each, then a flood of 11-byte keyframe tags. The hostile record is
    /// refused with one clear error, the good configuration stays in force, and each
    /// keyframe grows by its one SPS and one PPS, not by 14.8 MB.
    #[test]
    fn the_parameter_set_flood_of_issue_11_is_refused_and_keyframes_stay_small() {
        let mut n = Normalizer::new();
        n.handle_video(0, &sequence_header()).unwrap();
        assert_eq!(drain(&mut n).len(), 1);
        let sps: Vec<Vec<u8>> = (0..31)
            .map(|_| {
                let mut s = SPS.to_vec();
                s.resize(64_000, 0x55);
                s
            })
            .collect();
        let pps: Vec<Vec<u8>> = (0..200)
            .map(|_| {
                let mut p = PPS.to_vec();
                p.resize(64_000, 0x55);
                p
            })
            .collect();
        let hostile = sequence_header_of(&sps, &pps);
        let err = n.handle_video(40, &hostile).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "bad H.264 data: AVC decoder configuration of {} bytes is over the 65536-byte \
                 limit",
                hostile.len() - 5
            )
        );
        assert!(drain(&mut n).is_empty(), "no codec change");
        let tag = Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]);
        assert_eq!(tag.len(), 11);
        let expected = annexb(&[SPS, PPS, &[0x65, 0x88]]);
        for i in 0..1000 {
            n.handle_video(80 + i, &tag).unwrap();
            let frame = only_frame(&mut n);
            assert_eq!(frame.data.as_ref(), expected.as_slice());
        }
        // A big configuration that passes (31 SPS and 30 PPS of 1 000 bytes with distinct
        // ids, 61 KB): still two parameter sets in front of each keyframe.
        let sps: Vec<Vec<u8>> = (0..31)
            .map(|id| with_ids(&[0x67, 0x42, 0xc0, 0x1f], &[id], 1000))
            .collect();
        let pps: Vec<Vec<u8>> = (0..30)
            .map(|id| with_ids(&[0x68], &[id, id % 31], 1000))
            .collect();
        n.handle_video(2000, &sequence_header_of(&sps, &pps))
            .unwrap();
        let out = drain(&mut n);
        let NormalizedEvent::CodecChange(set) = &out[0] else {
            panic!("expected a codec change, got {out:?}");
        };
        let video = set.video.as_ref().unwrap();
        assert_eq!((video.sps.len(), video.pps.len()), (31, 30));
        n.handle_video(2040, &tag).unwrap();
        assert_eq!(only_frame(&mut n).data.len(), 4 + 1000 + 4 + 1000 + 4 + 2);
        // A slice naming PPS 29 gets PPS 29 and SPS 29.
        n.handle_video(2080, &nalus(1, 0, &[&with_ids(&[0x65], &[0, 7, 29], 4)]))
            .unwrap();
        let frame = only_frame(&mut n);
        assert_eq!(frame.data[4..1004], sps[29][..]);
        assert_eq!(frame.data[1008..2008], pps[29][..]);
    }

    /// `prefix`, then `ids` as exp-Golomb codes and a stop bit, padded to `len` bytes (no
    /// emulation prevention needed for these small values).
    fn with_ids(prefix: &[u8], ids: &[u32], len: usize) -> Vec<u8> {
        let mut bits = String::new();
        for &id in ids {
            let code = format!("{:b}", id + 1);
            bits.push_str(&"0".repeat(code.len() - 1));
            bits.push_str(&code);
        }
        bits.push('1');
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let mut v = prefix.to_vec();
        for i in (0..bits.len()).step_by(8) {
            v.push(u8::from_str_radix(&bits[i..i + 8], 2).unwrap());
        }
        v.resize(len.max(v.len()), 0x55);
        v
    }

    #[test]
    fn audio_frames_own_their_bytes() {
        let mut n = Normalizer::new();
        n.handle_audio(0, &Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]))
            .unwrap();
        let tag = Bytes::from(vec![0xaf, 0x01, 0x21, 0x10, 0x04]);
        n.handle_audio(23, &tag).unwrap();
        let frame = only_frame(&mut n);
        assert_eq!(frame.data.as_ref(), &[0x21, 0x10, 0x04]);
        assert!(!tag.as_ptr_range().contains(&frame.data.as_ptr()));
    }
}
