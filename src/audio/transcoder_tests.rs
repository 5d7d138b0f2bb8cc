//! The AAC matrix through the transcoder: real AAC made by the FDK encoder at test time
//! (LC at every rate, mono and stereo, HE-AAC v1 and v2, implicit SBR signalling), Opus out,
//! decoded again with libopus and checked for pitch, level, duration and timestamps.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::codec::aac::parse_audio_specific_config;
use crate::test_vectors::{aac_sine, AacSine};
use fdk_aac::enc::AudioObjectType;

struct Encoded {
    config: Arc<AudioSpecificConfig>,
    frames: Vec<MediaFrame>,
}

/// `seconds` of a 1 kHz sine at `rate`, encoded as raw AAC frames with their pts in ms.
fn encode(aot: AudioObjectType, rate: u32, channels: usize, bitrate: u32, seconds: f32) -> Encoded {
    let (config, frames) = aac_sine(AacSine {
        aot,
        rate,
        channels,
        bitrate,
        seconds,
        frequency: 1000.0,
        amplitude: 12000.0,
        start_ms: 5_000,
    });
    Encoded { config, frames }
}

struct Decoded {
    pts: Vec<i64>,
    left: Vec<f32>,
}

fn transcode(encoded: &Encoded) -> Decoded {
    let mut t = AudioTranscoder::new(96_000).unwrap();
    t.set_config(&encoded.config).unwrap();
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let mut result = Decoded {
        pts: Vec::new(),
        left: Vec::new(),
    };
    let mut pcm = vec![0f32; 5760 * 2];
    for frame in &encoded.frames {
        for opus_frame in t.push(frame).unwrap() {
            result.pts.push(opus_frame.pts);
            let n = decoder
                .decode_float(&opus_frame.data, &mut pcm, false)
                .unwrap();
            assert_eq!(n, 960, "one Opus frame is 20 ms");
            result.left.extend(pcm[..n * 2].iter().step_by(2));
        }
    }
    result
}

/// Frequency from zero crossings and RMS level of the steady part.
fn analyse(left: &[f32]) -> (f32, f32) {
    let steady = &left[left.len() / 4..];
    let crossings = steady
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    let freq = crossings as f32 * 48_000.0 / steady.len() as f32;
    let rms = (steady.iter().map(|s| s * s).sum::<f32>() / steady.len() as f32).sqrt();
    (freq, rms)
}

fn check(name: &str, encoded: &Encoded, seconds: f32) {
    let d = transcode(encoded);
    let (freq, rms) = analyse(&d.left);
    assert!((freq - 1000.0).abs() < 20.0, "{name}: {freq} Hz");
    // 12000/32768 peak → 0.26 rms; allow codec loss, refuse silence.
    assert!(rms > 0.1, "{name}: level {rms}");
    // Timestamps: start at the source's first pts, exactly 20 ms apart.
    assert_eq!(d.pts[0], encoded.frames[0].pts, "{name}");
    assert!(
        d.pts.windows(2).all(|w| w[1] - w[0] == 20),
        "{name}: {:?}",
        &d.pts[..5]
    );
    let got = d.left.len() as f32 / 48_000.0;
    assert!(
        (got - seconds).abs() < 0.15,
        "{name}: {got} s of audio for {seconds} s"
    );
}

#[test]
fn aac_lc_every_rate_mono_and_stereo() {
    for rate in [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000] {
        for channels in [1, 2] {
            let e = encode(
                AudioObjectType::Mpeg4LowComplexity,
                rate,
                channels,
                64_000.min(rate * 3),
                2.0,
            );
            assert_eq!(e.config.sample_rate, rate);
            check(&format!("LC {rate} Hz {channels} ch"), &e, 2.0);
        }
    }
}

#[test]
fn he_aac_v1_and_v2() {
    let v1 = encode(AudioObjectType::Mpeg4HeAac, 44_100, 2, 48_000, 2.0);
    assert!(v1.config.sbr, "{:?}", v1.config);
    check("HE-AAC 44100", &v1, 2.0);
    let v2 = encode(AudioObjectType::Mpeg4HeAacV2, 48_000, 2, 32_000, 2.0);
    assert!(v2.config.ps, "{:?}", v2.config);
    check("HE-AACv2 48000", &v2, 2.0);
}

#[test]
fn implicit_sbr_signalling_plays_at_the_right_speed() {
    // Many encoders say only "AAC-LC at 22050 Hz" and leave SBR to be discovered.
    let mut e = encode(AudioObjectType::Mpeg4HeAac, 44_100, 2, 48_000, 2.0);
    // AOT 2, core rate index 7 (22050), 2 channels: 00010 0111 0010 000
    let implicit = parse_audio_specific_config(&[0x13, 0x90]).unwrap();
    assert!(!implicit.sbr);
    e.config = Arc::new(implicit);
    check("implicit HE-AAC", &e, 2.0);
}

#[test]
fn a_gap_in_the_source_restarts_the_timeline_at_the_new_time() {
    let mut e = encode(AudioObjectType::Mpeg4LowComplexity, 48_000, 2, 96_000, 2.0);
    // Drop 0.5 s in the middle: frames after it keep their own (later) times.
    let half = e.frames.len() / 2;
    e.frames.drain(half..half + 23);
    let d = transcode(&e);
    let jump = d.pts.windows(2).find(|w| w[1] - w[0] != 20).unwrap();
    assert!(jump[1] - jump[0] > 400, "{jump:?}");
    let resumed = e.frames[half].pts;
    assert!(
        d.pts.contains(&resumed),
        "timeline should restart at {resumed}"
    );
}

#[test]
fn a_new_configuration_mid_stream_is_applied() {
    let a = encode(AudioObjectType::Mpeg4LowComplexity, 48_000, 2, 96_000, 1.0);
    let b = encode(AudioObjectType::Mpeg4LowComplexity, 11_025, 1, 32_000, 1.0);
    let mut t = AudioTranscoder::new(64_000).unwrap();
    t.set_config(&a.config).unwrap();
    let mut out = 0;
    for f in &a.frames {
        out += t.push(f).unwrap().len();
    }
    t.set_config(&b.config).unwrap();
    for f in &b.frames {
        let mut f = f.clone();
        f.pts += 1_000;
        out += t.push(&f).unwrap().len();
    }
    // About 2 s of audio in 20 ms frames.
    assert!((90..=101).contains(&out), "{out} frames");
}

#[test]
fn garbage_frames_are_errors_not_panics() {
    let e = encode(AudioObjectType::Mpeg4LowComplexity, 44_100, 2, 64_000, 0.5);
    let mut t = AudioTranscoder::new(64_000).unwrap();
    assert!(t.push(&e.frames[0]).is_err(), "no configuration yet");
    t.set_config(&e.config).unwrap();
    let mut seed = 7u32;
    for len in 0..300usize {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as u8
            })
            .collect();
        let mut f = e.frames[0].clone();
        f.data = Bytes::from(data);
        let _ = t.push(&f);
    }
    // And it still decodes real frames afterwards.
    let mut ok = 0;
    for f in &e.frames {
        if t.push(f).is_ok() {
            ok += 1;
        }
    }
    assert!(ok > e.frames.len() / 2);
}
