//! Test vectors made at test time (tests only): real AAC frames of a sine, encoded by the
//! FDK encoder, stamped on a capture timeline (shared by the audio and MP4 tests), and
//! deterministic noise for the parsers' never-panic tests.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use fdk_aac::enc::{
    AudioObjectType, BitRate, ChannelMode, Encoder as AacEncoder, EncoderParams, Transport,
};

use crate::codec::aac::{parse_audio_specific_config, AudioSpecificConfig};
use crate::media::{MediaFrame, Track};

/// What sine to encode, and how.
#[derive(Debug, Clone, Copy)]
pub struct AacSine {
    pub aot: AudioObjectType,
    pub rate: u32,
    pub channels: usize,
    pub bitrate: u32,
    pub seconds: f32,
    pub frequency: f32,
    /// Peak of the i16 samples.
    pub amplitude: f32,
    /// pts of the first frame, ms.
    pub start_ms: i64,
}

/// The encoder's AudioSpecificConfig and its raw AAC frames.
pub fn aac_sine(spec: AacSine) -> (Arc<AudioSpecificConfig>, Vec<MediaFrame>) {
    let encoder = AacEncoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(spec.bitrate),
        sample_rate: spec.rate,
        transport: Transport::Raw,
        channels: if spec.channels == 1 {
            ChannelMode::Mono
        } else {
            ChannelMode::Stereo
        },
        audio_object_type: spec.aot,
    })
    .unwrap();
    let info = encoder.info().unwrap();
    let config =
        Arc::new(parse_audio_specific_config(&info.confBuf[..info.confSize as usize]).unwrap());
    let frame_len = info.frameLength as usize;
    let total = (spec.rate as f32 * spec.seconds) as usize;
    let pcm: Vec<i16> = (0..total)
        .flat_map(|i| {
            let t = i as f32 / spec.rate as f32;
            let v = (2.0 * std::f32::consts::PI * spec.frequency * t).sin();
            vec![(v * spec.amplitude) as i16; spec.channels]
        })
        .collect();
    let mut out = vec![0u8; 8192];
    let mut frames = Vec::new();
    for chunk in pcm.chunks(frame_len * spec.channels) {
        let r = encoder.encode(chunk, &mut out).unwrap();
        if r.output_size > 0 {
            let pts = spec.start_ms + (frames.len() * frame_len * 1000 / spec.rate as usize) as i64;
            frames.push(MediaFrame {
                track: Track::Audio,
                pts,
                dts: pts,
                keyframe: true,
                data: Bytes::copy_from_slice(&out[..r.output_size]),
                ingest_us: 0,
            });
        }
    }
    (config, frames)
}

/// `len` bytes of deterministic noise from the xorshift32 generator in `state`, which
/// advances, so successive calls give different bytes.
pub fn noise(state: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 17;
            *state ^= *state << 5;
            *state as u8
        })
        .collect()
}

/// `src/video/testdata/bframes_160x96.flv`: 45 frames of ffmpeg's `testsrc2` at 160x96,
/// 30 fps, encoded by x264 (High profile, 3 B-frames, B-pyramid, keyframe every 30 frames)
/// into an FLV file by ffmpeg 5.1:
/// `ffmpeg -f lavfi -i testsrc2=size=160x96:rate=30 -frames:v 45 -c:v libx264 -profile:v high
/// -preset veryfast -g 30 -bf 3 -x264-params b-pyramid=normal:b-adapt=0:scenecut=0
/// -pix_fmt yuv420p -f flv bframes_160x96.flv`.
pub fn bframes_flv() -> Vec<u8> {
    include_bytes!("video/testdata/bframes_160x96.flv").to_vec()
}

/// The tags of an FLV *file*: (tag type 8/9/18, timestamp, body).
pub fn flv_file_tags(file: &[u8]) -> Vec<(u8, u32, Bytes)> {
    crate::flv::file::read_flv_file(file)
        .unwrap()
        .into_iter()
        .map(|t| (t.kind, t.timestamp, t.body))
        .collect()
}
