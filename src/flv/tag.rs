//! Splitting FLV audio and video tag bodies into their header fields and payload
//! (FLV spec v10.1 §E.4.2–E.4.3, as carried by RTMP message types 8 and 9).
//!
//! Pure functions over [`Bytes`]: payloads are sub-slices of the input, never copies.
//! Codec configuration records inside the payloads are parsed by [`super::avc`] and
//! [`super::aac`], not here.

use std::fmt;

use bytes::Bytes;

/// FLV `CodecID` for H.264/AVC.
pub const VIDEO_CODEC_AVC: u8 = 7;
/// FLV `SoundFormat` for AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;

/// What went wrong reading a tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagError {
    /// The body ended before its header did.
    Truncated { what: &'static str, len: usize },
    /// A video codec we do not carry (FLV codec id or enhanced-RTMP FourCC).
    UnsupportedVideoCodec(String),
    /// An audio format we do not carry (FLV SoundFormat).
    UnsupportedAudioFormat(u8),
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagError::Truncated { what, len } => {
                write!(f, "{what} tag too short ({len} bytes)")
            }
            TagError::UnsupportedVideoCodec(name) => {
                write!(f, "unsupported video codec {name} (only H.264 is carried)")
            }
            TagError::UnsupportedAudioFormat(id) => write!(
                f,
                "unsupported audio format {} (only AAC is carried)",
                sound_format_name(*id)
            ),
        }
    }
}

impl std::error::Error for TagError {}

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoTag {
    /// `AVCPacketType` 0: an AVCDecoderConfigurationRecord.
    AvcSequenceHeader(Bytes),
    /// `AVCPacketType` 1: length-prefixed NAL units of one access unit.
    AvcNalus {
        /// FLV `FrameType` 1 (keyframe).
        keyframe: bool,
        /// `CompositionTime` in milliseconds (pts − dts); signed 24-bit.
        composition_time: i32,
        /// The NAL units, still in AVCC (length-prefixed) form.
        data: Bytes,
    },
    /// `AVCPacketType` 2: end of sequence.
    AvcEndOfSequence,
    /// `FrameType` 5: video info / command frame, carries no picture.
    Command,
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioTag {
    /// `AACPacketType` 0: an AudioSpecificConfig.
    AacSequenceHeader(Bytes),
    /// `AACPacketType` 1: one raw AAC frame.
    AacRaw(Bytes),
}

/// Parses a video tag body (the RTMP video message payload).
pub fn parse_video_tag(body: &Bytes) -> Result<VideoTag, TagError> {
    let first = *body.first().ok_or(TagError::Truncated {
        what: "video",
        len: 0,
    })?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: [IsExHeader:1][FrameType:3][PacketType:4][FourCC:32]
        let fourcc = body
            .get(1..5)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| "(truncated)".to_string());
        return Err(TagError::UnsupportedVideoCodec(format!(
            "'{fourcc}' (enhanced RTMP)"
        )));
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0f;
    if frame_type == 5 {
        return Ok(VideoTag::Command);
    }
    if codec_id != VIDEO_CODEC_AVC {
        return Err(TagError::UnsupportedVideoCodec(
            video_codec_name(codec_id).to_string(),
        ));
    }
    if body.len() < 5 {
        return Err(TagError::Truncated {
            what: "AVC video",
            len: body.len(),
        });
    }
    let packet_type = body[1];
    let raw = ((body[2] as u32) << 16) | ((body[3] as u32) << 8) | body[4] as u32;
    // Sign-extend the 24-bit composition time.
    let composition_time = ((raw << 8) as i32) >> 8;
    match packet_type {
        0 => Ok(VideoTag::AvcSequenceHeader(body.slice(5..))),
        1 => Ok(VideoTag::AvcNalus {
            keyframe: frame_type == 1,
            composition_time,
            data: body.slice(5..),
        }),
        _ => Ok(VideoTag::AvcEndOfSequence),
    }
}

/// Parses an audio tag body (the RTMP audio message payload).
pub fn parse_audio_tag(body: &Bytes) -> Result<AudioTag, TagError> {
    let first = *body.first().ok_or(TagError::Truncated {
        what: "audio",
        len: 0,
    })?;
    let format = first >> 4;
    if format != SOUND_FORMAT_AAC {
        return Err(TagError::UnsupportedAudioFormat(format));
    }
    match body.get(1) {
        None => Err(TagError::Truncated {
            what: "AAC audio",
            len: body.len(),
        }),
        Some(0) => Ok(AudioTag::AacSequenceHeader(body.slice(2..))),
        Some(_) => Ok(AudioTag::AacRaw(body.slice(2..))),
    }
}

/// The FLV name of a video codec id, for messages.
pub fn video_codec_name(codec_id: u8) -> &'static str {
    match codec_id {
        1 => "JPEG",
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 with alpha",
        6 => "Screen video v2",
        7 => "H.264",
        12 => "HEVC (non-standard FLV id 12)",
        _ => "unknown",
    }
}

/// The FLV name of a sound format, for messages.
pub fn sound_format_name(format: u8) -> &'static str {
    match format {
        0 => "linear PCM (platform endian)",
        1 => "ADPCM",
        2 => "MP3",
        3 => "linear PCM (little endian)",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        10 => "AAC",
        11 => "Speex",
        14 => "MP3 8 kHz",
        _ => "unknown",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn b(v: &[u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }

    #[test]
    fn avc_sequence_header() {
        let tag = parse_video_tag(&b(&[0x17, 0x00, 0, 0, 0, 0x01, 0x42])).unwrap();
        assert_eq!(tag, VideoTag::AvcSequenceHeader(b(&[0x01, 0x42])));
    }

    #[test]
    fn avc_keyframe_and_interframe() {
        let key = parse_video_tag(&b(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65])).unwrap();
        assert_eq!(
            key,
            VideoTag::AvcNalus {
                keyframe: true,
                composition_time: 0,
                data: b(&[0, 0, 0, 1, 0x65])
            }
        );
        let inter = parse_video_tag(&b(&[0x27, 0x01, 0, 0, 0x42, 0, 0, 0, 1, 0x41])).unwrap();
        assert_eq!(
            inter,
            VideoTag::AvcNalus {
                keyframe: false,
                composition_time: 66,
                data: b(&[0, 0, 0, 1, 0x41])
            }
        );
    }

    #[test]
    fn composition_time_is_signed_24_bit() {
        // -33 ms = 0xFFFFDF in 24-bit two's complement.
        let tag = parse_video_tag(&b(&[0x27, 0x01, 0xff, 0xff, 0xdf])).unwrap();
        match tag {
            VideoTag::AvcNalus {
                composition_time, ..
            } => assert_eq!(composition_time, -33),
            other => panic!("unexpected {other:?}"),
        }
        // The largest positive value, 0x7FFFFF.
        let tag = parse_video_tag(&b(&[0x27, 0x01, 0x7f, 0xff, 0xff])).unwrap();
        match tag {
            VideoTag::AvcNalus {
                composition_time, ..
            } => assert_eq!(composition_time, 0x7f_ffff),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn end_of_sequence_and_command_frames() {
        assert_eq!(
            parse_video_tag(&b(&[0x17, 0x02, 0, 0, 0])).unwrap(),
            VideoTag::AvcEndOfSequence
        );
        assert_eq!(
            parse_video_tag(&b(&[0x57, 0x00])).unwrap(),
            VideoTag::Command
        );
    }

    #[test]
    fn other_video_codecs_are_named() {
        let err = parse_video_tag(&b(&[0x12, 0x00])).unwrap_err();
        assert!(err.to_string().contains("Sorenson H.263"), "{err}");
        let err = parse_video_tag(&b(&[0x90, b'h', b'v', b'c', b'1'])).unwrap_err();
        assert!(err.to_string().contains("hvc1"), "{err}");
    }

    #[test]
    fn truncated_video_tags_are_errors() {
        for len in 0..5 {
            let body = b(&[0x17, 0x01, 0, 0, 0][..len]);
            assert!(parse_video_tag(&body).is_err(), "len {len}");
        }
    }

    #[test]
    fn aac_tags() {
        assert_eq!(
            parse_audio_tag(&b(&[0xaf, 0x00, 0x12, 0x10])).unwrap(),
            AudioTag::AacSequenceHeader(b(&[0x12, 0x10]))
        );
        assert_eq!(
            parse_audio_tag(&b(&[0xaf, 0x01, 0x21, 0x00])).unwrap(),
            AudioTag::AacRaw(b(&[0x21, 0x00]))
        );
        assert!(parse_audio_tag(&b(&[0xaf])).is_err());
        assert!(parse_audio_tag(&b(&[])).is_err());
    }

    #[test]
    fn other_audio_formats_are_named() {
        let err = parse_audio_tag(&b(&[0x2f, 0x00])).unwrap_err();
        assert!(err.to_string().contains("MP3"), "{err}");
    }
}
