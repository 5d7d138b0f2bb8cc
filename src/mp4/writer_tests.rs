//! Byte-level tests of [`FragmentedMp4Writer`] with synthetic frames: every output is walked
//! as a box tree (all sizes checked), fragments are parsed back and checked against the
//! fragmenting and timing rules (keyframe cuts, `max_fragment_ms`, `tfdt` continuity,
//! signed composition offsets, sync flags, data offsets, timestamp jumps).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;

use super::init::tests::{aac_config, avc_config};
use super::testutil::{fragments, walk_all, Fragment};
use super::writer::{MAX_FRAGMENT_BYTES, SAMPLE_OVERHEAD_BYTES};
use super::*;
use crate::media::{MediaFrame, Track};

/// An Annex-B access unit tagged with `id`: AUD, (SPS, PPS for keyframes,) one slice.
fn vframe(dts: i64, pts: i64, key: bool, id: u16) -> MediaFrame {
    let mut d = vec![0, 0, 0, 1, 0x09, 0xf0];
    if key {
        d.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x0d, 0xac]);
        d.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb]);
    }
    d.extend_from_slice(&[0, 0, 1, if key { 0x65 } else { 0x41 }]);
    d.extend_from_slice(&id.to_be_bytes());
    d.push(0x80);
    MediaFrame {
        track: Track::Video,
        pts,
        dts,
        keyframe: key,
        data: Bytes::from(d),
        ingest_us: 0,
    }
}

fn aframe(dts: i64, id: u16) -> MediaFrame {
    let [a, b] = id.to_be_bytes();
    MediaFrame {
        track: Track::Audio,
        pts: dts,
        dts,
        keyframe: true,
        data: Bytes::from(vec![0x21, a, b, 0x11]),
        ingest_us: 0,
    }
}

/// The id a sample was tagged with, read from mdat via the trun data offset.
fn sample_ids(data: &[u8], f: &Fragment, traf: usize) -> Vec<u16> {
    let t = &f.trafs[traf];
    let mut pos = f.moof_start + t.trun.data_offset as usize;
    let mut ids = Vec::new();
    for &(_, size, _, _) in &t.trun.samples {
        let s = &data[pos..pos + size as usize];
        assert!(pos + size as usize <= f.mdat_payload.end);
        let id = if s.len() == 8 {
            // AVCC video sample: 4-byte length, NAL header, id, 0x80.
            assert_eq!(&s[..4], &[0, 0, 0, 4]);
            u16::from_be_bytes([s[5], s[6]])
        } else {
            u16::from_be_bytes([s[1], s[2]])
        };
        ids.push(id);
        pos += size as usize;
    }
    ids
}

struct Output {
    file: Vec<u8>,
    /// How many fragments `push` returned (the rest came from `finish`).
    pushed: usize,
    stats: Mp4Stats,
}

fn record(video: bool, audio: Option<&[u8]>, options: Mp4Options, frames: &[MediaFrame]) -> Output {
    let mut w =
        FragmentedMp4Writer::new(video.then(avc_config), audio.map(aac_config), options).unwrap();
    let mut file = w.init_segment().to_vec();
    let mut pushed = 0;
    for f in frames {
        if let Some(frag) = w.push(f) {
            file.extend_from_slice(&frag);
            pushed += 1;
        }
    }
    if let Some(frag) = w.finish() {
        file.extend_from_slice(&frag);
    }
    assert_eq!(w.finish(), None, "finish twice writes nothing");
    walk_all(&file); // every box size adds up
    Output {
        file,
        pushed,
        stats: w.stats(),
    }
}

/// Per track: tfdt of each fragment equals the previous tfdt plus its durations.
fn check_continuity(frags: &[Fragment]) {
    let mut next: std::collections::HashMap<u32, u64> = Default::default();
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(f.sequence, i as u32 + 1, "sequence numbers increase by 1");
        for t in &f.trafs {
            assert_eq!(t.tfhd_flags, 0x02_0000, "default-base-is-moof");
            assert_eq!((t.tfdt_version, t.trun.version), (1, 1));
            assert_eq!(t.trun.flags, 0xf01);
            if let Some(&expected) = next.get(&t.track_id) {
                assert_eq!(
                    t.base_decode_time, expected,
                    "fragment {i} track {}",
                    t.track_id
                );
            }
            let total: u64 = t.trun.samples.iter().map(|s| u64::from(s.0)).sum();
            assert!(t.trun.samples.iter().all(|s| s.0 > 0), "no zero durations");
            next.insert(t.track_id, t.base_decode_time + total);
        }
    }
}

/// 30 fps video (keyframe every `gop` frames) and 48 kHz AAC, `seconds` long, from `start`.
fn av_frames(start: i64, seconds: i64, gop: u16) -> Vec<MediaFrame> {
    let mut frames = Vec::new();
    let (mut v, mut a) = (0u16, 0u16);
    loop {
        let vt = start + i64::from(v) * 1000 / 30;
        let at = start + i64::from(a) * 1024 * 1000 / 48_000;
        if vt.min(at) >= start + seconds * 1000 {
            break;
        }
        if vt <= at {
            frames.push(vframe(vt, vt, v % gop == 0, v));
            v += 1;
        } else {
            frames.push(aframe(at, a));
            a += 1;
        }
    }
    frames
}

#[test]
fn fragments_close_at_keyframes_with_continuous_tfdt() {
    // GOP of 15 frames = 500 ms: every fragment is one GOP.
    let out = record(
        true,
        Some(&[0x11, 0x90]),
        Mp4Options::default(),
        &av_frames(5_000, 3, 15),
    );
    let frags = fragments(&out.file);
    assert_eq!(frags.len(), 6);
    assert_eq!(out.pushed, 5);
    check_continuity(&frags);
    let mut all_video = Vec::new();
    let mut all_audio = Vec::new();
    for f in &frags {
        assert_eq!(f.trafs.len(), 2);
        assert_eq!((f.trafs[0].track_id, f.trafs[1].track_id), (1, 2));
        let video = &f.trafs[0].trun.samples;
        assert_eq!(video.len(), 15);
        // Sync flags on the keyframe only, which opens the fragment.
        assert_eq!(video[0].2, 0x0200_0000);
        assert!(video[1..].iter().all(|s| s.2 == 0x0101_0000));
        // 1/30 s in 90 kHz: 3000 ticks (±1 ms rounding of the ms source).
        assert!(
            video.iter().all(|s| (2970..=3060).contains(&s.0)),
            "{video:?}"
        );
        let audio = &f.trafs[1].trun.samples;
        assert!(audio.iter().all(|s| s.2 == 0x0200_0000 && s.3 == 0));
        assert!(audio.iter().all(|s| (1008..=1056).contains(&s.0)));
        all_video.extend(sample_ids(&out.file, f, 0));
        all_audio.extend(sample_ids(&out.file, f, 1));
    }
    // Every sample exactly once, in order, found where data_offset says.
    assert_eq!(all_video, (0..90).collect::<Vec<u16>>());
    assert_eq!(all_audio, (0..all_audio.len() as u16).collect::<Vec<u16>>());
    assert_eq!(all_audio.len(), 141);
    assert_eq!(frags[0].trafs[0].base_decode_time, 0);
    assert_eq!(frags[0].trafs[1].base_decode_time, 0);
    // 500 ms GOPs: the second fragment's video starts at 45000 ticks.
    assert_eq!(frags[1].trafs[0].base_decode_time, 45_000);
    let s = out.stats;
    assert_eq!(
        (s.video_samples, s.audio_samples, s.fragments),
        (90, 141, 6)
    );
    assert_eq!((s.first_pts_ms, s.last_pts_ms), (Some(5_000), Some(7_986)));
    assert!((2990..=3010).contains(&s.duration_ms), "{}", s.duration_ms);
    assert_eq!((s.dropped_frames, s.timestamp_discontinuities), (0, 0));
}

#[test]
fn long_gops_are_cut_every_max_fragment_ms() {
    // A keyframe every 5 s: fragments are cut after 1 s of media anyway.
    let out = record(
        true,
        Some(&[0x11, 0x90]),
        Mp4Options::default(),
        &av_frames(0, 4, 150),
    );
    let frags = fragments(&out.file);
    check_continuity(&frags);
    assert_eq!(frags.len(), 4);
    for f in &frags {
        let v: u64 = f.trafs[0].trun.samples.iter().map(|s| u64::from(s.0)).sum();
        assert!(v <= 90_000, "at most 1 s of video per fragment: {v}");
        let a: u64 = f.trafs[1].trun.samples.iter().map(|s| u64::from(s.0)).sum();
        assert!(a <= 48_000 + 2 * 1024, "about 1 s of audio: {a}");
    }
    // Only the very first video sample is a sync sample.
    let syncs: usize = frags
        .iter()
        .flat_map(|f| f.trafs[0].trun.samples.iter())
        .filter(|s| s.2 == 0x0200_0000)
        .count();
    assert_eq!(syncs, 1);
    // A smaller max_fragment_ms gives more fragments.
    let out = record(
        true,
        None,
        Mp4Options {
            max_fragment_ms: 250,
        },
        &av_frames(0, 2, 150),
    );
    assert_eq!(fragments(&out.file).len(), 8);
}

#[test]
fn b_frame_composition_offsets_are_signed_and_exact() {
    // Decode order I P B B ... with pts ≠ dts, one of them before its dts.
    let pattern: [(i64, i64, bool); 8] = [
        (0, 66, true),
        (33, 166, false),
        (66, 100, false),
        (100, 133, false),
        (133, 100, false), // pts < dts: negative offset
        (166, 266, false),
        (200, 200, true),
        (233, 300, false),
    ];
    let frames: Vec<MediaFrame> = pattern
        .iter()
        .enumerate()
        .map(|(i, &(dts, pts, key))| vframe(dts, pts, key, i as u16))
        .collect();
    let out = record(true, None, Mp4Options::default(), &frames);
    let frags = fragments(&out.file);
    assert_eq!(frags.len(), 2, "cut at the second keyframe");
    check_continuity(&frags);
    let samples: Vec<_> = frags
        .iter()
        .flat_map(|f| f.trafs[0].trun.samples.clone())
        .collect();
    let ctos: Vec<i32> = samples.iter().map(|s| s.3).collect();
    assert_eq!(
        ctos,
        pattern
            .iter()
            .map(|&(d, p, _)| ((p - d) * 90) as i32)
            .collect::<Vec<_>>()
    );
    assert_eq!(ctos[4], -2970);
    let durations: Vec<u32> = samples.iter().map(|s| s.0).collect();
    assert_eq!(
        durations,
        vec![2970, 2970, 3060, 2970, 2970, 3060, 2970, 2970]
    );
    let flags: Vec<u32> = samples.iter().map(|s| s.2).collect();
    assert_eq!(flags[0], 0x0200_0000);
    assert_eq!(flags[6], 0x0200_0000);
    assert_eq!(flags.iter().filter(|&&f| f == 0x0200_0000).count(), 2);
    assert_eq!(frags[1].trafs[0].base_decode_time, 200 * 90);
}

#[test]
fn audio_starting_20ms_after_video_keeps_its_offset() {
    let mut frames = vec![aframe(980, 99)]; // before the first keyframe: dropped
    frames.extend((0..60u16).map(|i| {
        let t = 1000 + i64::from(i) * 1000 / 30;
        vframe(t, t, i % 30 == 0, i)
    }));
    let audio: Vec<MediaFrame> = (0..90u16)
        .map(|i| aframe(1020 + i64::from(i) * 1024 * 1000 / 48_000, i))
        .collect();
    // Interleave by dts, video first on ties.
    let mut all: Vec<MediaFrame> = frames.into_iter().chain(audio).collect();
    all[1..].sort_by_key(|f| (f.dts, f.track == Track::Audio));
    let out = record(true, Some(&[0x11, 0x90]), Mp4Options::default(), &all);
    let frags = fragments(&out.file);
    check_continuity(&frags);
    assert_eq!(frags[0].trafs[0].base_decode_time, 0);
    assert_eq!(
        frags[0].trafs[1].base_decode_time,
        20 * 48,
        "20 ms at 48 kHz"
    );
    assert_eq!(out.stats.dropped_frames, 1);

    // Audio that arrives just after the keyframe but is stamped 10 ms before it sets the
    // origin: the video then starts 10 ms in.
    let frames = vec![
        vframe(1000, 1000, true, 0),
        aframe(990, 0),
        vframe(1033, 1033, false, 1),
        aframe(1011, 1),
        vframe(1066, 1066, true, 2),
    ];
    let out = record(true, Some(&[0x11, 0x90]), Mp4Options::default(), &frames);
    let frags = fragments(&out.file);
    assert_eq!(frags[0].trafs[0].base_decode_time, 900);
    assert_eq!(frags[0].trafs[1].base_decode_time, 0);
}

#[test]
fn timestamp_jumps_do_not_break_the_file() {
    let mut frames = Vec::new();
    let mut id = 0u16;
    // 1 s of video+audio, then a jump back by 30 s, 1 s, then a 20 s jump forward, 1 s.
    for base in [100_000i64, 70_000, 91_000] {
        for f in av_frames(base, 1, 30) {
            let mut f = f;
            if f.track == Track::Video {
                f = vframe(f.dts, f.pts, f.keyframe, id);
                id += 1;
            }
            frames.push(f);
        }
    }
    let out = record(true, Some(&[0x11, 0x90]), Mp4Options::default(), &frames);
    let frags = fragments(&out.file);
    check_continuity(&frags);
    let video: Vec<_> = frags
        .iter()
        .flat_map(|f| f.trafs.iter().filter(|t| t.track_id == 1))
        .flat_map(|t| t.trun.samples.clone())
        .collect();
    assert_eq!(video.len(), 90);
    // The timeline goes on monotonically: durations stay about one frame everywhere.
    assert!(
        video.iter().all(|s| (2970..=3060).contains(&s.0)),
        "{video:?}"
    );
    let audio_total: u64 = frags
        .iter()
        .flat_map(|f| f.trafs.iter().filter(|t| t.track_id == 2))
        .flat_map(|t| t.trun.samples.iter())
        .map(|s| u64::from(s.0))
        .sum();
    assert!(audio_total.abs_diff(3 * 48_000) < 2 * 1024, "{audio_total}");
    assert_eq!(out.stats.timestamp_discontinuities, 4, "two per track");
    assert!((2990..=3030).contains(&out.stats.duration_ms));
    assert_eq!(out.stats.first_pts_ms, Some(70_000));
}

#[test]
fn audio_only_11025_mono() {
    // 1024 samples at 11025 Hz = 92.88 ms per frame, 5 s.
    let frames: Vec<MediaFrame> = (0..54u16)
        .map(|i| aframe(2_000 + i64::from(i) * 1024 * 1000 / 11_025, i))
        .collect();
    let out = record(false, Some(&[0x15, 0x08]), Mp4Options::default(), &frames);
    let root = walk_all(&out.file);
    let mdhd = root.find("moov/trak/mdia/mdhd").unwrap();
    assert_eq!(super::testutil::be32(&out.file, mdhd.payload + 12), 11_025);
    let frags = fragments(&out.file);
    check_continuity(&frags);
    assert_eq!(frags.len(), 5, "cut every second");
    for f in &frags {
        assert_eq!(f.trafs.len(), 1);
        assert_eq!(f.trafs[0].track_id, 1);
        let total: u64 = f.trafs[0].trun.samples.iter().map(|s| u64::from(s.0)).sum();
        assert!(total <= 11_025 + 1024, "{total}");
    }
    let all: Vec<_> = frags
        .iter()
        .flat_map(|f| f.trafs[0].trun.samples.clone())
        .collect();
    assert_eq!(all.len(), 54);
    // ms rounding: within a millisecond (11 ticks) of 1024 per frame, no drift overall.
    assert!(all.iter().all(|s| (1013..=1035).contains(&s.0)));
    let total: u64 = all.iter().map(|s| u64::from(s.0)).sum();
    assert!(total.abs_diff(54 * 1024) <= 11, "{total}");
    // The last sample reuses the previous duration.
    assert_eq!(all[53].0, all[52].0);
    assert_eq!(out.stats.audio_samples, 54);
    assert_eq!(out.stats.video_samples, 0);
}

#[test]
fn video_only_and_dropped_frames() {
    let frames = vec![
        vframe(0, 0, false, 100), // before the first keyframe
        aframe(10, 5),            // no audio track
        vframe(33, 33, true, 0),
        vframe(66, 66, false, 1),
        // SPS/PPS/AUD only: nothing left
        MediaFrame {
            data: Bytes::from_static(&[0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 1, 9, 0]),
            ..vframe(80, 80, false, 0)
        },
        vframe(100, 100, false, 2),
    ];
    let out = record(true, None, Mp4Options::default(), &frames);
    let frags = fragments(&out.file);
    assert_eq!(frags.len(), 1);
    let t = &frags[0].trafs[0];
    assert_eq!(sample_ids(&out.file, &frags[0], 0), vec![0, 1, 2]);
    // 33 ms, 34 ms, then the last one reuses 34 ms.
    let d: Vec<u32> = t.trun.samples.iter().map(|s| s.0).collect();
    assert_eq!(d, vec![2970, 3060, 3060]);
    assert_eq!(out.stats.dropped_frames, 3);
    assert_eq!(out.stats.video_samples, 3);

    // A single frame: its duration is the default 1/30 s; an empty writer writes nothing.
    let out = record(true, None, Mp4Options::default(), &[vframe(5, 5, true, 0)]);
    assert_eq!(fragments(&out.file)[0].trafs[0].trun.samples[0].0, 3000);
    let out = record(false, Some(&[0x11, 0x90]), Mp4Options::default(), &[]);
    assert!(fragments(&out.file).is_empty());
    let out = record(
        false,
        Some(&[0x11, 0x90]),
        Mp4Options::default(),
        &[aframe(0, 0)],
    );
    assert_eq!(fragments(&out.file)[0].trafs[0].trun.samples[0].0, 1024);
    assert_eq!(
        FragmentedMp4Writer::new(None, None, Mp4Options::default()).unwrap_err(),
        Mp4Error::NoTracks
    );
}

#[test]
fn junk_never_panics_and_stays_well_formed() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..20 {
        let mut w = FragmentedMp4Writer::new(
            (round % 3 != 1).then(avc_config),
            (round % 3 != 2).then(|| aac_config(&[0x12, 0x10])),
            Mp4Options {
                max_fragment_ms: (round as i64 * 97) - 200,
            },
        )
        .unwrap();
        let mut file = w.init_segment().to_vec();
        let mut dts = 0i64;
        for _ in 0..400 {
            let r = next();
            dts = match r % 10 {
                0 => dts.saturating_sub(r as i64 % 100_000),
                1 => dts.saturating_add((r as i64 % 100_000).abs()),
                2 => [i64::MIN, i64::MAX, 0][(r % 3) as usize],
                _ => dts.saturating_add((r % 50) as i64),
            };
            let len = (next() % 40) as usize;
            let data: Vec<u8> = (0..len).map(|_| (next() % 3) as u8).collect();
            let frame = MediaFrame {
                track: if r % 2 == 0 {
                    Track::Video
                } else {
                    Track::Audio
                },
                pts: dts.saturating_add((next() % 200) as i64 - 100),
                dts,
                keyframe: next() % 4 == 0,
                data: Bytes::from(data),
                ingest_us: 0,
            };
            if let Some(f) = w.push(&frame) {
                file.extend_from_slice(&f);
            }
        }
        if let Some(f) = w.finish() {
            file.extend_from_slice(&f);
        }
        let frags = fragments(&file);
        check_continuity(&frags);
        let s = w.stats();
        assert_eq!(s.fragments as usize, frags.len());
        assert!(s.duration_ms >= 0);
    }
}

#[test]
fn writer_is_usable_from_arcs() {
    // The configs are shared with the capture, not copied.
    let v = avc_config();
    let w = FragmentedMp4Writer::new(Some(Arc::clone(&v)), None, Mp4Options::default()).unwrap();
    assert_eq!(Arc::strong_count(&v), 2); // ours and the writer's
    assert_eq!(w.init_segment(), w.init_segment());
}

/// A source whose timestamps stand still never reaches `max_fragment_ms`, and a flood of
/// tiny frames is cut by what the samples cost, not by their few payload bytes.
#[test]
fn standing_timestamps_and_tiny_frames_are_cut_by_cost() {
    // Each sample is 8 bytes of AVCC (see `sample_ids`).
    let per_sample = 8 + SAMPLE_OVERHEAD_BYTES;
    let to_cut = MAX_FRAGMENT_BYTES.div_ceil(per_sample);
    let mut w = FragmentedMp4Writer::new(Some(avc_config()), None, Mp4Options::default()).unwrap();
    assert_eq!(w.push(&vframe(0, 0, true, 0)), None);
    let mut cuts = Vec::new();
    for i in 1..to_cut + 10 {
        if let Some(fragment) = w.push(&vframe(0, 0, false, i as u16)) {
            cuts.push((i, fragment.len()));
        }
    }
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert_eq!(cuts[0].0, to_cut - 1);
}
