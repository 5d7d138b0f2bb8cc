//! Writing an FLV stream (FLV spec v10.1 §E.2–E.4) from a capture's frames: what an
//! HTTP-FLV player (flv.js, mpegts.js, ffplay) reads, and the tag bodies RTMP play sends.
//!
//! [`FlvTags`] is one player's tags (shared by HTTP-FLV and RTMP play); [`FlvStream`] is one
//! player's FLV file: the file header, then the codecs' sequence headers
//! (AVC `AVCDecoderConfigurationRecord`, AAC `AudioSpecificConfig`) before any frame and again
//! whenever the codecs change, then a tag per frame: H.264 as length-prefixed NAL units with
//! its composition time, AAC raw. Video starts at a keyframe (and starts again at the next
//! one after [`FlvStream::skip_to_keyframe`]). Timestamps start at 0 for each player (the
//! first frame's decode time) and never go back. Pure: frames in, bytes out; no I/O, no clock.

use bytes::{Bytes, BytesMut};

use crate::codec::h264::{annexb_to_avcc, avc_decoder_config_record};
use crate::media::{CodecSet, MediaFrame, Track};

/// FLV tag type of audio.
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video.
pub const TAG_VIDEO: u8 = 9;
/// The 11-byte tag header, and the 4-byte size of the previous tag after each tag.
const TAG_HEADER_BYTES: usize = 11;
/// The first byte of every AAC audio tag: AAC, 44 kHz, 16-bit, stereo (the spec's fixed
/// values for AAC; the real ones are in the AudioSpecificConfig).
const AAC_SOUND_BYTE: u8 = 0xaf;

/// The 9-byte FLV header announcing `audio` and `video`, and the first (zero) previous-tag
/// size.
pub fn file_header(audio: bool, video: bool) -> [u8; 13] {
    let flags = (u8::from(audio) << 2) | u8::from(video);
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// Appends one tag of type `kind` at `timestamp_ms` with `body` to `out`: the 11-byte header,
/// the body, and the tag's size (what the next tag's "previous tag size" says). A body over
/// 16 MiB cannot be described and is not written (false).
pub fn push_tag(out: &mut BytesMut, kind: u8, timestamp_ms: u32, body: &[u8]) -> bool {
    let Ok(size) = u32::try_from(body.len()) else {
        return false;
    };
    if size >= 1 << 24 {
        return false;
    }
    let ts = timestamp_ms.to_be_bytes();
    let sz = size.to_be_bytes();
    out.reserve(TAG_HEADER_BYTES + body.len() + 4);
    out.extend_from_slice(&[
        kind, sz[1], sz[2], sz[3], ts[1], ts[2], ts[3], ts[0], 0, 0, 0,
    ]);
    out.extend_from_slice(body);
    out.extend_from_slice(&(size + TAG_HEADER_BYTES as u32).to_be_bytes());
    true
}

/// One player's FLV tags, whatever carries them (an FLV file over HTTP, RTMP messages):
/// the codecs' sequence headers before any frame and again when they change, video from a
/// keyframe on, timestamps from 0 that never go back.
#[derive(Debug, Default)]
pub struct FlvTags {
    /// Timestamps are the frames' decode times (mod 2^32) instead of counting from this
    /// player's first frame: every player then gets the same bytes for a frame.
    absolute: bool,
    codecs: Option<CodecSet>,
    /// The sequence headers must go out before the next frame.
    sequence_headers_due: bool,
    /// Send no video until a keyframe.
    waiting_for_keyframe: bool,
    /// The decode time (ms) that is this player's 0.
    base_ms: Option<i64>,
    /// The last timestamp written (ms), so none goes back.
    last_ms: u32,
}

impl FlvTags {
    /// Tags that have said nothing yet: they wait for the codecs and a keyframe.
    pub fn new() -> Self {
        Self {
            waiting_for_keyframe: true,
            ..Self::default()
        }
    }

    /// [`FlvTags::new`] with the frames' own decode times as timestamps (mod 2^32), the
    /// same for every player (RTMP play shares each frame's message between its players).
    pub fn absolute() -> Self {
        Self {
            absolute: true,
            ..Self::new()
        }
    }

    /// The codec configuration from now on: its sequence headers go out before the next
    /// frame, and video waits for a keyframe.
    pub fn codecs(&mut self, codecs: CodecSet) {
        self.codecs = Some(codecs);
        self.sequence_headers_due = true;
        self.waiting_for_keyframe = true;
    }

    /// The codecs in force, if known.
    pub fn current_codecs(&self) -> Option<&CodecSet> {
        self.codecs.as_ref()
    }

    /// A frame was lost on the way (a full queue): video waits for the next keyframe.
    pub fn skip_to_keyframe(&mut self) {
        self.waiting_for_keyframe = true;
    }

    /// Gives `emit` the tags (kind, timestamp, body) for `frame`, sequence headers first
    /// when due; nothing when the codecs are not known yet, the frame's track has no codec,
    /// or video waits for a keyframe. Returns whether anything was emitted.
    pub fn push(&mut self, frame: &MediaFrame, mut emit: impl FnMut(u8, u32, &[u8])) -> bool {
        let body = match frame.track {
            Track::Video => video_body(frame),
            Track::Audio => audio_body(&frame.data),
        };
        let Some(body) = body else {
            return false;
        };
        let Some(admitted) = self.admit(frame) else {
            return false;
        };
        for (kind, header) in &admitted.sequence_headers {
            emit(*kind, admitted.timestamp, header);
        }
        emit(tag_kind(frame.track), admitted.timestamp, &body);
        true
    }

    /// Whether `frame` goes out now, with which timestamp and after which sequence headers;
    /// `None` when the codecs are not known yet, the frame's track has no codec, or video
    /// waits for a keyframe. The caller writes the frame's tag itself (the body of a frame
    /// with nothing left in it is the caller's to skip, before asking).
    pub fn admit(&mut self, frame: &MediaFrame) -> Option<Admitted> {
        let codecs = self.codecs.as_ref()?;
        match frame.track {
            Track::Video if codecs.video.is_none() => return None,
            Track::Audio if codecs.audio.is_none() => return None,
            Track::Video if self.waiting_for_keyframe && !frame.keyframe => return None,
            // Audio before the first video keyframe would start the timeline early.
            Track::Audio if codecs.video.is_some() && self.base_ms.is_none() => return None,
            _ => {}
        }
        let timestamp = if self.absolute {
            self.base_ms.get_or_insert(frame.dts);
            // The capture's timeline is monotonic per track; mod 2^32 as RTMP wraps.
            frame.dts.rem_euclid(1 << 32) as u32
        } else {
            let base = *self.base_ms.get_or_insert(frame.dts);
            self.timestamp(frame.dts - base)
        };
        let sequence_headers = if self.sequence_headers_due {
            self.sequence_headers_due = false;
            self.codecs
                .as_ref()
                .map(sequence_headers)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if frame.track == Track::Video {
            self.waiting_for_keyframe = false;
        }
        Some(Admitted {
            timestamp,
            sequence_headers,
        })
    }

    /// This player's timestamp for `since_base_ms`: never before 0 or the last one written.
    fn timestamp(&mut self, since_base_ms: i64) -> u32 {
        let ms = u32::try_from(since_base_ms.max(0)).unwrap_or(u32::MAX);
        self.last_ms = self.last_ms.max(ms);
        self.last_ms
    }
}

/// A frame [`FlvTags::admit`] lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Its tag's timestamp.
    pub timestamp: u32,
    /// Sequence header tags (kind, body) to write before it.
    pub sequence_headers: Vec<(u8, Vec<u8>)>,
}

/// The FLV tag type of a track.
pub fn tag_kind(track: Track) -> u8 {
    match track {
        Track::Video => TAG_VIDEO,
        Track::Audio => TAG_AUDIO,
    }
}

/// The sequence header tags (kind, body) of `codecs`: AVC decoder configuration, AAC
/// AudioSpecificConfig.
pub fn sequence_headers(codecs: &CodecSet) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(avc) = &codecs.video {
        let mut body = vec![0x17, 0, 0, 0, 0];
        body.extend_from_slice(&avc_decoder_config_record(avc));
        out.push((TAG_VIDEO, body));
    }
    if let Some(aac) = &codecs.audio {
        let mut body = vec![AAC_SOUND_BYTE, 0];
        body.extend_from_slice(&aac.raw);
        out.push((TAG_AUDIO, body));
    }
    out
}

/// One player's FLV file: the header, then [`FlvTags`] as FLV tags.
#[derive(Debug, Default)]
pub struct FlvStream {
    tags: FlvTags,
    header_written: bool,
}

impl FlvStream {
    /// A stream that has written nothing yet: it waits for the codecs and a keyframe.
    pub fn new() -> Self {
        Self {
            tags: FlvTags::new(),
            header_written: false,
        }
    }

    /// The codec configuration from now on (see [`FlvTags::codecs`]).
    pub fn codecs(&mut self, codecs: CodecSet) {
        self.tags.codecs(codecs);
    }

    /// A frame was lost on the way (a full queue): video waits for the next keyframe.
    pub fn skip_to_keyframe(&mut self) {
        self.tags.skip_to_keyframe();
    }

    /// Appends `frame`'s tags to `out`, the file header first the first time. Returns
    /// whether anything was written.
    pub fn push(&mut self, frame: &MediaFrame, out: &mut BytesMut) -> bool {
        let header = match self.tags.current_codecs() {
            Some(c) if !self.header_written => {
                Some(file_header(c.audio.is_some(), c.video.is_some()))
            }
            _ => None,
        };
        let before = out.len();
        let mut first = true;
        self.tags.push(frame, |kind, timestamp, body| {
            if first {
                first = false;
                if let Some(header) = header {
                    out.extend_from_slice(&header);
                }
            }
            push_tag(out, kind, timestamp, body);
        });
        if header.is_some() && out.len() > before {
            self.header_written = true;
        }
        out.len() > before
    }
}

/// A video tag body for an Annex-B access unit: frame type and AVC NALU packet, the
/// composition time (pts − dts, signed 24-bit ms), the NAL units behind 4-byte lengths
/// (parameter sets left out: they are in the sequence header). `None` when no NAL unit
/// remains.
pub fn video_body(frame: &MediaFrame) -> Option<Bytes> {
    let frame_type: u8 = if frame.keyframe { 0x10 } else { 0x20 };
    let cts = (frame.pts - frame.dts).clamp(-(1 << 23), (1 << 23) - 1) as i32;
    let cts = cts.to_be_bytes();
    let mut body = vec![frame_type | 7, 1, cts[1], cts[2], cts[3]];
    if annexb_to_avcc(&frame.data, &mut body) == 0 {
        return None;
    }
    Some(Bytes::from(body))
}

/// An audio tag body for one raw AAC frame (`None` when it is empty).
pub fn audio_body(aac: &[u8]) -> Option<Bytes> {
    if aac.is_empty() {
        return None;
    }
    let mut body = Vec::with_capacity(2 + aac.len());
    body.extend_from_slice(&[AAC_SOUND_BYTE, 1]);
    body.extend_from_slice(aac);
    Some(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::file::read_flv_file;
    use crate::flv::tag::{parse_audio_tag, parse_video_tag, AudioTag, VideoTag};
    use crate::normalize::{NormalizedEvent, Normalizer};
    use crate::test_vectors::{self, aac_sine, AacSine};
    use fdk_aac::enc::AudioObjectType;

    /// Every frame the normalizer makes of `tags` (kind, timestamp, body), and the codecs.
    fn normalized(tags: &[(u8, u32, Bytes)]) -> (Vec<MediaFrame>, CodecSet) {
        let mut normalizer = Normalizer::new();
        let mut frames = Vec::new();
        for (kind, ts, body) in tags {
            let _ = match *kind {
                TAG_VIDEO => normalizer.handle_video(*ts, body),
                TAG_AUDIO => normalizer.handle_audio(*ts, body),
                _ => continue,
            };
            while let Some(event) = normalizer.poll() {
                if let NormalizedEvent::Frame(f) = event {
                    frames.push(f);
                }
            }
        }
        (frames, normalizer.codecs().clone())
    }

    /// A source's frames as a capture has them: the B-frame video vector (160x96 High,
    /// composition times) and 1.5 s of AAC-LC, in decode order, with their codecs.
    fn source() -> (Vec<MediaFrame>, CodecSet) {
        let (mut frames, mut codecs) =
            normalized(&test_vectors::flv_file_tags(&test_vectors::bframes_flv()));
        let (asc, audio) = aac_sine(AacSine {
            aot: AudioObjectType::Mpeg4LowComplexity,
            rate: 48_000,
            channels: 2,
            bitrate: 96_000,
            seconds: 1.5,
            frequency: 1000.0,
            amplitude: 8000.0,
            start_ms: 0,
        });
        codecs.audio = Some(asc);
        frames.extend(audio);
        frames.sort_by_key(|f| (f.dts, f.track == Track::Audio));
        (frames, codecs)
    }

    #[test]
    fn absolute_timestamps_are_the_same_for_every_player() {
        let (frames, codecs) =
            normalized(&test_vectors::flv_file_tags(&test_vectors::bframes_flv()));
        let mut early = FlvTags::absolute();
        let mut late = FlvTags::absolute();
        early.codecs(codecs.clone());
        late.codecs(codecs);
        let stamps = |tags: &mut FlvTags, frames: &[MediaFrame]| -> Vec<(i64, u32)> {
            frames
                .iter()
                .filter_map(|f| tags.admit(f).map(|a| (f.dts, a.timestamp)))
                .collect()
        };
        let all = stamps(&mut early, &frames);
        // The late player starts at the next keyframe: same timestamps for the same frames.
        let start = frames
            .iter()
            .skip(1)
            .position(|f| f.keyframe && f.track == Track::Video);
        let late_stamps = stamps(&mut late, &frames[start.map_or(0, |s| s + 1)..]);
        assert!(!late_stamps.is_empty());
        for (dts, ts) in &late_stamps {
            assert!(all.contains(&(*dts, *ts)), "{dts} {ts}");
            assert_eq!(*ts as i64, *dts);
        }
        // The first admitted frame carries the sequence headers.
        let mut fresh = FlvTags::absolute();
        fresh.codecs(normalized(&test_vectors::flv_file_tags(&test_vectors::bframes_flv())).1);
        let Some(first) = frames.iter().find_map(|f| fresh.admit(f)) else {
            panic!("nothing admitted");
        };
        assert_eq!(first.sequence_headers[0].0, TAG_VIDEO);
    }

    #[test]
    fn a_stream_written_from_frames_reads_back_as_the_same_frames() {
        let (frames, codecs) = source();
        assert!(
            frames.iter().any(|f| f.pts != f.dts),
            "the vector has B-frames"
        );
        let mut stream = FlvStream::new();
        stream.codecs(codecs);
        let mut out = BytesMut::new();
        for frame in &frames {
            stream.push(frame, &mut out);
        }
        let written = read_flv_file(&out).expect("our stream is an FLV file");
        assert_eq!(&out[..5], b"FLV\x01\x05", "audio and video announced");
        assert!(matches!(
            parse_video_tag(&written[0].body),
            Ok(VideoTag::AvcSequenceHeader(_))
        ));
        assert!(matches!(
            parse_audio_tag(&written[1].body),
            Ok(AudioTag::AacSequenceHeader(_))
        ));
        let tags: Vec<(u8, u32, Bytes)> = written
            .iter()
            .map(|t| (t.kind, t.timestamp, t.body.clone()))
            .collect();
        let (read_back, codecs_back) = normalized(&tags);
        assert!(codecs_back.video.is_some() && codecs_back.audio.is_some());
        let first_keyframe = frames
            .iter()
            .position(|f| f.track == Track::Video && f.keyframe)
            .expect("a keyframe");
        let base = frames[first_keyframe].dts;
        let shape = |f: &MediaFrame, base: i64| {
            (
                f.track,
                f.pts - base,
                f.dts - base,
                f.keyframe,
                f.data.len(),
            )
        };
        let expected: Vec<_> = frames[first_keyframe..]
            .iter()
            .filter(|f| f.dts >= base)
            .map(|f| shape(f, base))
            .collect();
        let got: Vec<_> = read_back.iter().map(|f| shape(f, 0)).collect();
        assert_eq!(got, expected);
        assert!(got.len() > 100, "{} frames", got.len());
    }

    #[test]
    fn nothing_before_codecs_and_a_keyframe_and_time_never_goes_back() {
        let (frames, codecs) = source();
        let mut stream = FlvStream::new();
        let mut out = BytesMut::new();
        assert!(!stream.push(&frames[0], &mut out), "no codecs yet");
        stream.codecs(codecs);
        let delta = frames
            .iter()
            .find(|f| f.track == Track::Video && !f.keyframe)
            .expect("a delta frame");
        assert!(!stream.push(delta, &mut out), "video starts at a keyframe");
        assert!(out.is_empty());
        let key = frames
            .iter()
            .find(|f| f.track == Track::Video && f.keyframe)
            .expect("a keyframe");
        assert!(stream.push(key, &mut out));
        let mut older = key.clone();
        older.dts -= 1_000;
        older.pts -= 1_000;
        stream.push(&older, &mut out);
        let tags = read_flv_file(&out).expect("FLV");
        let times: Vec<u32> = tags.iter().map(|t| t.timestamp).collect();
        assert_eq!(
            times,
            [0, 0, 0, 0],
            "sequence headers, the keyframe, no going back"
        );
        stream.skip_to_keyframe();
        assert!(
            !stream.push(delta, &mut out),
            "after a loss, the next keyframe"
        );
    }

    #[test]
    fn tags_carry_their_size_time_extension_and_back_pointer() {
        let mut out = BytesMut::new();
        assert!(push_tag(&mut out, TAG_AUDIO, 0x0102_0304, &[9, 8, 7]));
        assert_eq!(
            &out[..],
            &[8, 0, 0, 3, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, 9, 8, 7, 0, 0, 0, 14]
        );
        assert!(!push_tag(&mut out, TAG_VIDEO, 0, &vec![0; 1 << 24]));
        assert_eq!(file_header(false, true), *b"FLV\x01\x01\0\0\0\x09\0\0\0\0");
    }
}
