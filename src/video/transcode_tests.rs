#![allow(clippy::unwrap_used)]

use super::*;
use crate::normalize::{NormalizedEvent, Normalizer};
use crate::test_vectors::{bframes_flv, flv_file_tags};
use openh264::decoder::Decoder;

/// The test vector's frames as the normalizer makes them (Annex-B, SPS/PPS before IDRs,
/// pts = dts + composition offset), in decode order.
fn source_frames() -> Vec<MediaFrame> {
    let mut n = Normalizer::new();
    let mut frames = Vec::new();
    for (kind, ts, body) in flv_file_tags(&bframes_flv()) {
        if kind != 9 {
            continue;
        }
        n.handle_video(ts, &body).unwrap();
        while let Some(event) = n.poll() {
            if let NormalizedEvent::Frame(f) = event {
                frames.push(f);
            }
        }
    }
    frames
}

fn transcoder() -> BFrameTranscoder {
    BFrameTranscoder::new(TranscodeSettings {
        bitrate_bps: 300_000,
        frame_rate: 30.0,
        keyframe_interval: 30,
    })
    .unwrap()
}

/// The NAL unit types of an Annex-B access unit.
fn nal_types(au: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            types.push(au[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

#[test]
fn settings_follow_the_declared_frame_rate_with_a_keyframe_every_two_seconds() {
    let at = |fps| TranscodeSettings::for_source(2_000_000, fps);
    assert_eq!(
        at(Some(25.0)),
        TranscodeSettings {
            bitrate_bps: 2_000_000,
            frame_rate: 25.0,
            keyframe_interval: 50,
        }
    );
    assert_eq!(
        (
            at(Some(59.94)).frame_rate,
            at(Some(59.94)).keyframe_interval
        ),
        (59.94, 120)
    );
    assert_eq!(
        (
            at(Some(29.97)).keyframe_interval,
            at(Some(15.0)).keyframe_interval
        ),
        (60, 30)
    );
    // Nothing declared, or nonsense declared: 30 fps.
    for fps in [
        None,
        Some(0.0),
        Some(-5.0),
        Some(f64::NAN),
        Some(f64::INFINITY),
    ] {
        assert_eq!(
            (at(fps).frame_rate, at(fps).keyframe_interval),
            (30.0, 60),
            "{fps:?}"
        );
    }
    // A silly rate is held to a sane one.
    assert_eq!(at(Some(1000.0)).frame_rate, 120.0);
    assert_eq!(at(Some(0.2)).keyframe_interval, 2);
    assert_eq!(
        TranscodeSettings::default(),
        TranscodeSettings::for_source(2_500_000, None)
    );
}

#[test]
fn the_vector_really_has_b_frames() {
    let frames = source_frames();
    assert_eq!(frames.len(), 45);
    let reordered = frames.iter().filter(|f| f.pts != f.dts).count();
    assert!(
        reordered > 20,
        "{reordered} frames with a composition offset"
    );
    let pts: Vec<i64> = frames.iter().map(|f| f.pts).collect();
    assert!(
        pts.windows(2).any(|w| w[1] < w[0]),
        "decode order ≠ display order"
    );
}

#[test]
fn b_frames_come_out_as_constrained_baseline_in_display_order() {
    let source = source_frames();
    let mut t = transcoder();
    let mut out = Vec::new();
    for f in &source {
        out.extend(t.push(f).unwrap());
    }
    // A couple of pictures are held back for reordering at the end of the input.
    assert!(
        out.len() >= source.len() - 3,
        "{} of {}",
        out.len(),
        source.len()
    );
    assert_eq!(t.decode_errors(), 0);
    // Times: the source's presentation times, in order, never back.
    let mut expected: Vec<i64> = source.iter().map(|f| f.pts).collect();
    expected.sort_unstable();
    let got: Vec<i64> = out.iter().map(|f| f.pts).collect();
    assert_eq!(got, expected[..got.len()]);
    assert!(out.iter().all(|f| f.pts == f.dts));
    // Starts at a keyframe that carries SPS + PPS; the SPS is Constrained Baseline.
    assert!(out[0].keyframe);
    let types = nal_types(&out[0].data);
    assert!(
        types.contains(&7) && types.contains(&8) && types.contains(&5),
        "{types:?}"
    );
    let sps_at = out[0]
        .data
        .windows(4)
        .position(|w| w == [0, 0, 1, 0x67])
        .unwrap();
    let profile_idc = out[0].data[sps_at + 4];
    let constraints = out[0].data[sps_at + 5];
    assert_eq!(profile_idc, 66, "Baseline profile_idc");
    assert_eq!(
        constraints & 0x40,
        0x40,
        "constraint_set1: Constrained Baseline"
    );
    // No B-slices: every output frame decodes at once (no reorder delay) in a fresh decoder.
    let mut check = Decoder::new().unwrap();
    for f in &out {
        let picture = check.decode(&f.data).unwrap();
        let picture = picture.expect("each access unit gives its picture immediately");
        assert_eq!(picture.dimensions(), (160, 96));
    }
}

#[test]
fn frames_before_the_first_keyframe_are_skipped_and_a_reset_waits_for_the_next() {
    let source = source_frames();
    let mut t = transcoder();
    // Start mid-GOP: nothing until the keyframe at frame 30.
    let mut out = Vec::new();
    for f in &source[1..] {
        out.extend(t.push(f).unwrap());
    }
    assert!(!out.is_empty());
    assert!(out[0].keyframe);
    assert!(out[0].pts >= source[30].pts.min(source[30].dts));
    t.reset().unwrap();
    assert!(t.push(&source[31]).unwrap().is_empty());
}

#[test]
fn a_keyframe_request_makes_the_next_output_a_keyframe() {
    let source = source_frames();
    let mut t = transcoder();
    let mut out = Vec::new();
    for f in &source[..12] {
        out.extend(t.push(f).unwrap());
    }
    assert!(out[1..].iter().all(|f| !f.keyframe));
    t.request_keyframe();
    let next = source[12..]
        .iter()
        .find_map(|f| t.push(f).unwrap().into_iter().next())
        .unwrap();
    assert!(next.keyframe);
}

#[test]
fn behind_live_frames_are_decoded_but_only_every_fifth_picture_is_encoded_until_caught_up() {
    let source: Vec<MediaFrame> = source_frames()
        .into_iter()
        .map(|mut f| {
            f.ingest_us = 1_000_000 + f.dts.max(0) as u64 * 1000;
            f
        })
        .collect();
    let mut t = transcoder();
    // The first 30 frames reach the transcoder 1.2 s late: it is behind.
    let late = |f: &MediaFrame| f.ingest_us + 1_200_000;
    let mut out = Vec::new();
    for f in &source[..30] {
        out.extend(t.push_live(f, late(f)).unwrap());
    }
    // The first picture is a keyframe (never skipped); after it, one in five.
    assert!(out[0].keyframe);
    let pictures_then = out.len();
    assert!(
        (4..=8).contains(&pictures_then),
        "{pictures_then} pictures encoded of ~30 while behind"
    );
    // Caught up (frames wait less than the limit, here 300 ms): every picture is encoded
    // again, and the output stays decodable and forward in time.
    for f in &source[30..] {
        out.extend(t.push_live(f, f.ingest_us + 300_000).unwrap());
    }
    let caught_up = out.len() - pictures_then;
    assert!(
        caught_up + 4 >= source.len() - 30,
        "{caught_up} pictures for {} frames once caught up",
        source.len() - 30
    );
    assert!(out.windows(2).all(|w| w[1].pts > w[0].pts));
    let mut check = Decoder::new().unwrap();
    for f in &out {
        assert!(check.decode(&f.data).unwrap().is_some());
    }
    // A frame of unknown arrival (ingest 0) is never taken as late.
    let mut t = transcoder();
    let unknown: Vec<MediaFrame> = source_frames();
    let all: usize = unknown
        .iter()
        .map(|f| t.push_live(f, 10_000_000).unwrap().len())
        .sum();
    let mut plain = transcoder();
    let expected: usize = unknown.iter().map(|f| plain.push(f).unwrap().len()).sum();
    assert_eq!(all, expected);
}

#[test]
fn garbage_and_audio_are_harmless() {
    let source = source_frames();
    let mut t = transcoder();
    let mut junk = source[0].clone();
    junk.data = Bytes::from_static(&[0, 0, 0, 1, 0x65, 0xff, 0x00, 0x13, 0x37]);
    let _ = t.push(&junk).unwrap();
    let mut audio = source[1].clone();
    audio.track = Track::Audio;
    assert!(t.push(&audio).unwrap().is_empty());
    // The real stream still comes through afterwards.
    let mut out = Vec::new();
    for f in &source {
        out.extend(t.push(f).unwrap());
    }
    assert!(out.len() > 30, "{}", out.len());
}

#[test]
fn a_backlog_gives_one_keyframe_of_the_latest_picture_then_live_frames_continue() {
    let source = source_frames();
    let mut t = transcoder();
    // The cache at start: keyframe 0 and the 20 frames after it (decode order).
    let first = t.push_backlog(&source[..21]).unwrap();
    assert_eq!(first.len(), 1);
    assert!(first[0].keyframe);
    let latest_shown = first[0].pts;
    // Live frames follow; their times continue after the backlog picture's, never back.
    let mut out = first.clone();
    for f in &source[21..] {
        out.extend(t.push(f).unwrap());
    }
    assert!(out.len() > 15, "{}", out.len());
    assert!(out.windows(2).all(|w| w[1].pts > w[0].pts));
    assert!(out[1].pts > latest_shown);
    // The whole output decodes.
    let mut check = Decoder::new().unwrap();
    for f in &out {
        assert!(check.decode(&f.data).unwrap().is_some());
    }
}

/// Frames the decoder takes without giving a picture back (here: access units holding only
/// a delimiter) cannot grow the list of pending presentation times.
#[test]
fn pending_times_are_bounded_when_no_picture_comes_back() {
    let source = source_frames();
    let mut t = transcoder();
    t.push(&source[0]).unwrap();
    let mut empty = source[1].clone();
    empty.data = Bytes::from_static(&[0, 0, 0, 1, 0x09, 0xf0]);
    for i in 0..1000 {
        empty.pts = 1000 + i;
        empty.dts = 1000 + i;
        let _ = t.push(&empty);
    }
    assert_eq!(t.decoding.pending.len(), MAX_PENDING_PICTURES);
}
