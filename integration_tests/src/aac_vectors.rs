//! AAC test sources that ffmpeg cannot make: HE-AAC v1 (SBR) and HE-AAC v2 (SBR + PS)
//! sines encoded at test time with the FDK encoder (the `fdk-aac` crate, `Transport::Raw`),
//! written into an FLV file by a small writer of our own, and published to nginx-rtmp by
//! `ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv rtmp://…` (FFmpeg's FLV muxer writes
//! the AudioSpecificConfig it read verbatim, so the signalling survives the trip).
//!
//! Debian's ffmpeg has no `libfdk_aac`, and its native encoder's `-profile:a aac_he` writes
//! undecodable streams, hence this module. The same raw frames can be described two ways:
//! - [`Signalling::Explicit`]: the encoder's own ASC (explicit hierarchical: AOT 5 or 29,
//!   core rate, channel configuration, extension rate, AOT 2);
//! - [`Signalling::Implicit`]: a 2-byte ASC written here that says AAC-LC at the core rate
//!   (half the output rate) with the core's channel configuration — as many real encoders
//!   do; the decoder only finds SBR (and PS) inside the frames.
//!
//! The sine has ffmpeg's `sine` filter's default amplitude (1/8 of full scale) in every
//! channel: −18.06 dBFS peak, −21.07 dBFS RMS.

use std::time::Duration;

use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

use crate::nginx::NginxRtmp;
use crate::publisher::Publisher;
use crate::tempdir::TempDir;

/// Frequency of every test sine (ffmpeg's `sine` default too).
pub const SINE_HZ: f64 = 1000.0;
/// Peak amplitude of every test sine, as a fraction of full scale (ffmpeg's `sine` default).
pub const SINE_AMPLITUDE: f64 = 0.125;

/// Which HE-AAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeProfile {
    /// HE-AAC v1: AAC-LC core at half the rate + SBR (AOT 5).
    V1,
    /// HE-AAC v2: mono AAC-LC core at half the rate + SBR + parametric stereo (AOT 29).
    V2,
}

/// How the AudioSpecificConfig announces SBR/PS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signalling {
    /// The FDK encoder's ASC: explicit hierarchical signalling.
    Explicit,
    /// A hand-written ASC that says AAC-LC at the core rate: SBR/PS only in the frames.
    Implicit,
}

/// One HE-AAC sine to encode.
#[derive(Clone, Copy, Debug)]
pub struct HeAacSine {
    pub profile: HeProfile,
    pub signalling: Signalling,
    /// Output (SBR) sample rate: 44100 or 48000 (the core runs at half of it).
    pub sample_rate: u32,
    /// Input channels: v2 needs 2 (the same sine on both).
    pub channels: u32,
    /// Constant bitrate, bits per second.
    pub bitrate: u32,
    /// Length of the file.
    pub seconds: f64,
}

/// An encoded AAC track: its AudioSpecificConfig and its raw access units in order.
#[derive(Clone, Debug)]
pub struct AacTrack {
    /// The AudioSpecificConfig put in the FLV sequence header.
    pub asc: Vec<u8>,
    /// Raw AAC access units (no ADTS).
    pub frames: Vec<Vec<u8>>,
    /// Output sample rate of the decoder (the SBR rate for HE-AAC).
    pub sample_rate: u32,
    /// Output samples per channel per access unit (2048 with SBR, 1024 without).
    pub frame_samples: u32,
    /// The encoder's total delay in output samples (priming): the first access units are
    /// mostly silence.
    pub delay_samples: u32,
}

impl AacTrack {
    /// The FLV timestamp (ms) of access unit `i`, rounded from the sample count (no drift).
    pub fn timestamp_ms(&self, i: usize) -> u32 {
        let samples = i as u64 * u64::from(self.frame_samples);
        ((samples * 1000 + u64::from(self.sample_rate) / 2) / u64::from(self.sample_rate)) as u32
    }

    /// Duration of the track in ms.
    pub fn duration_ms(&self) -> u32 {
        self.timestamp_ms(self.frames.len())
    }
}

/// The fields at the start of an AudioSpecificConfig: object type, sampling-frequency index
/// and channel configuration. (For AOT 5 / 29 the index is the core's rate.) `None` for
/// escape values, which the FDK encoder never writes.
pub fn asc_head(asc: &[u8]) -> Option<(u8, u8, u8)> {
    let bits = u16::from_be_bytes([*asc.first()?, *asc.get(1)?]);
    let aot = (bits >> 11) as u8;
    let sfi = ((bits >> 7) & 0x0f) as u8;
    let cfg = ((bits >> 3) & 0x0f) as u8;
    (aot != 31 && sfi != 15).then_some((aot, sfi, cfg))
}

/// A 2-byte AAC-LC AudioSpecificConfig: AOT 2, `sfi`, `channel_config`, GASpecificConfig
/// all zero (1024-sample frames, no core coder, no extension).
pub fn lc_asc(sfi: u8, channel_config: u8) -> [u8; 2] {
    let bits: u16 =
        (2u16 << 11) | (u16::from(sfi & 0x0f) << 7) | (u16::from(channel_config & 0x0f) << 3);
    bits.to_be_bytes()
}

/// Encodes a [`SINE_HZ`] sine of amplitude [`SINE_AMPLITUDE`] with the FDK encoder.
pub fn he_aac_sine(spec: &HeAacSine) -> Result<AacTrack, String> {
    let aot = match spec.profile {
        HeProfile::V1 => AudioObjectType::Mpeg4HeAac,
        HeProfile::V2 => AudioObjectType::Mpeg4HeAacV2,
    };
    let channels = match spec.channels {
        1 => ChannelMode::Mono,
        2 => ChannelMode::Stereo,
        n => return Err(format!("{n} channels: the FDK encoder takes 1 or 2")),
    };
    let encoder = Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(spec.bitrate),
        sample_rate: spec.sample_rate,
        transport: Transport::Raw,
        channels,
        audio_object_type: aot,
    })
    .map_err(|e| format!("FDK encoder ({spec:?}): {e}"))?;
    let info = encoder
        .info()
        .map_err(|e| format!("FDK encoder info: {e}"))?;
    let own_asc = info
        .confBuf
        .get(..info.confSize as usize)
        .ok_or("FDK encoder: ASC longer than its buffer")?
        .to_vec();
    let asc = match spec.signalling {
        Signalling::Explicit => own_asc.clone(),
        Signalling::Implicit => {
            let (_, core_sfi, core_cfg) =
                asc_head(&own_asc).ok_or_else(|| format!("unexpected FDK ASC {own_asc:02x?}"))?;
            lc_asc(core_sfi, core_cfg).to_vec()
        }
    };
    let frame_samples = info.frameLength;
    let ch = spec.channels as usize;
    let total = (f64::from(spec.sample_rate) * spec.seconds) as usize;
    let amplitude = SINE_AMPLITUDE * 32767.0;
    let step = 2.0 * std::f64::consts::PI * SINE_HZ / f64::from(spec.sample_rate);
    let pcm: Vec<i16> = (0..total)
        .flat_map(|i| {
            let v = ((i as f64 * step).sin() * amplitude).round() as i16;
            std::iter::repeat_n(v, ch)
        })
        .collect();
    let mut out = vec![0u8; 8192];
    let mut frames = Vec::new();
    for chunk in pcm.chunks(frame_samples as usize * ch) {
        let r = encoder
            .encode(chunk, &mut out)
            .map_err(|e| format!("FDK encode: {e}"))?;
        if r.output_size > 0 {
            frames.push(out[..r.output_size].to_vec());
        }
    }
    if frames.is_empty() {
        return Err("the FDK encoder produced no frame".to_string());
    }
    Ok(AacTrack {
        asc,
        frames,
        sample_rate: spec.sample_rate,
        frame_samples,
        delay_samples: info.nDelay,
    })
}

/// Appends one FLV tag (header, body, PreviousTagSize) to `out`.
pub fn flv_tag(out: &mut Vec<u8>, kind: u8, timestamp_ms: u32, body: &[u8]) {
    let size = body.len() as u32;
    out.push(kind);
    out.extend_from_slice(&size.to_be_bytes()[1..]);
    out.extend_from_slice(&timestamp_ms.to_be_bytes()[1..]);
    out.push((timestamp_ms >> 24) as u8); // TimestampExtended
    out.extend_from_slice(&[0, 0, 0]); // StreamID
    out.extend_from_slice(body);
    out.extend_from_slice(&(11 + size).to_be_bytes());
}

/// An audio-only FLV file: header, the AAC sequence header (`AF 00` + ASC), then each
/// access unit (`AF 01` + raw frame) at its timestamp. `AF` = AAC, 44 kHz, 16-bit, stereo:
/// fixed for AAC by the FLV specification (the ASC says the truth).
pub fn flv_audio_file(track: &AacTrack) -> Vec<u8> {
    flv_audio_file_of(std::slice::from_ref(track))
}

/// An audio-only FLV file of `tracks` one after another on one timeline, each starting with
/// its own sequence header: from the second on, a new AAC configuration mid-stream.
pub fn flv_audio_file_of(tracks: &[AacTrack]) -> Vec<u8> {
    let size: usize = tracks
        .iter()
        .flat_map(|t| t.frames.iter().map(|f| f.len() + 17))
        .sum();
    let mut out = Vec::with_capacity(64 + size);
    out.extend_from_slice(b"FLV");
    out.push(1); // version
    out.push(0x04); // audio present
    out.extend_from_slice(&9u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // PreviousTagSize0
    let mut start_ms = 0;
    let mut body = Vec::new();
    for track in tracks {
        body.clear();
        body.extend_from_slice(&[0xAF, 0x00]);
        body.extend_from_slice(&track.asc);
        flv_tag(&mut out, 8, start_ms, &body);
        for (i, frame) in track.frames.iter().enumerate() {
            body.clear();
            body.extend_from_slice(&[0xAF, 0x01]);
            body.extend_from_slice(frame);
            flv_tag(&mut out, 8, start_ms + track.timestamp_ms(i), &body);
        }
        start_ms += track.duration_ms();
    }
    out
}

/// Writes `track` as an FLV file into a fresh folder and has ffmpeg re-publish it in real
/// time, looped, without re-encoding (`-re -stream_loop -1 -i FILE -c copy -f flv URL`) on
/// nginx's `live/<name>`; returns once nginx has logged the publish (≤ 10 s), with the
/// stream's URL. The publisher is killed on drop; its folder (the file, the command line and
/// ffmpeg's log) is kept when the test panics.
pub fn publish_flv_track(nginx: &NginxRtmp, name: &str, track: &AacTrack) -> (Publisher, String) {
    publish_flv_tracks(nginx, name, std::slice::from_ref(track))
}

/// [`publish_flv_track`] for [`flv_audio_file_of`]`(tracks)`: the AAC configuration changes
/// where each track begins.
pub fn publish_flv_tracks(
    nginx: &NginxRtmp,
    name: &str,
    tracks: &[AacTrack],
) -> (Publisher, String) {
    let dir = TempDir::new("flv-publisher");
    let file = dir.join(&format!("{name}.flv"));
    std::fs::write(&file, flv_audio_file_of(tracks))
        .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let url = nginx.rtmp_url(&format!("live/{name}"));
    let before = nginx.publish_count(name);
    let args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"]
        .into_iter()
        .chain(["-stream_loop", "-1", "-i"])
        .map(String::from)
        .chain([file.display().to_string()])
        .chain(["-c", "copy", "-f", "flv"].map(String::from))
        .chain([url.clone()])
        .collect();
    let publisher = Publisher::spawn_in(dir, args, &url);
    assert!(
        nginx.wait_published_count(name, before + 1, Duration::from_secs(10)),
        "ffmpeg did not publish {url}\n{}\n{}",
        nginx.log_tail(),
        publisher.log_tail()
    );
    (publisher, url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lc_asc_writes_the_fields() {
        // AAC-LC, 44100 Hz (index 4), stereo: the ASC ffmpeg writes for the base source.
        assert_eq!(lc_asc(4, 2), [0x12, 0x10]);
        assert_eq!(asc_head(&[0x12, 0x10]), Some((2, 4, 2)));
        // 24000 Hz (6), mono.
        assert_eq!(lc_asc(6, 1), [0x13, 0x08]);
    }

    #[test]
    fn fdk_he_aac_vectors_have_the_expected_asc() {
        for (profile, aot, cfg) in [(HeProfile::V1, 5, 2), (HeProfile::V2, 29, 1)] {
            let spec = HeAacSine {
                profile,
                signalling: Signalling::Explicit,
                sample_rate: 48_000,
                channels: 2,
                bitrate: if profile == HeProfile::V1 {
                    64_000
                } else {
                    32_000
                },
                seconds: 1.0,
            };
            let t = he_aac_sine(&spec).unwrap();
            assert_eq!(t.frame_samples, 2048, "{profile:?}");
            assert_eq!(
                asc_head(&t.asc),
                Some((aot, 6, cfg)),
                "{profile:?} {:02x?}",
                t.asc
            );
            let implicit = he_aac_sine(&HeAacSine {
                signalling: Signalling::Implicit,
                ..spec
            })
            .unwrap();
            assert_eq!(implicit.asc, lc_asc(6, cfg).to_vec());
            assert!(t.frames.len() >= 20, "{}", t.frames.len());
        }
    }

    #[test]
    fn flv_file_layout() {
        let track = AacTrack {
            asc: vec![0x12, 0x10],
            frames: vec![vec![1, 2, 3], vec![4]],
            sample_rate: 44_100,
            frame_samples: 1024,
            delay_samples: 0,
        };
        let f = flv_audio_file(&track);
        assert_eq!(&f[..13], b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00");
        // Sequence header tag: type 8, size 4, ts 0, body AF 00 12 10, PreviousTagSize 15.
        assert_eq!(&f[13..24], &[8, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&f[24..28], &[0xAF, 0x00, 0x12, 0x10]);
        assert_eq!(&f[28..32], &15u32.to_be_bytes());
        // Second frame at 1024/44100 s = 23.2 ms → 23.
        assert_eq!(track.timestamp_ms(1), 23);
        assert_eq!(f.len(), 13 + (11 + 4 + 4) + (11 + 5 + 4) + (11 + 3 + 4));
    }

    #[test]
    fn a_second_track_starts_with_its_own_sequence_header_where_the_first_ends() {
        let first = AacTrack {
            asc: vec![0x12, 0x10],
            frames: vec![vec![1], vec![2]],
            sample_rate: 44_100,
            frame_samples: 1024,
            delay_samples: 0,
        };
        let second = AacTrack {
            asc: vec![0x13, 0x08],
            frames: vec![vec![3]],
            sample_rate: 24_000,
            frame_samples: 1024,
            delay_samples: 0,
        };
        let f = flv_audio_file_of(&[first.clone(), second]);
        let one = flv_audio_file(&first);
        assert_eq!(&f[..one.len()], &one[..]);
        // Then: sequence header AF 00 13 08 at 2 × 1024 / 44100 s = 46 ms, then the frame.
        let rest = &f[one.len()..];
        assert_eq!(&rest[..11], &[8, 0, 0, 4, 0, 0, 46, 0, 0, 0, 0]);
        assert_eq!(&rest[11..15], &[0xAF, 0x00, 0x13, 0x08]);
        assert_eq!(&rest[19..30], &[8, 0, 0, 3, 0, 0, 46, 0, 0, 0, 0]);
        assert_eq!(&rest[30..33], &[0xAF, 0x01, 3]);
    }
}
