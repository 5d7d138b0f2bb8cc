//! The LL-HLS muxer on synthetic streams: parts within the target, segments on keyframes,
//! media intact and continuous across parts, the window bounded.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;

use super::muxer::{HlsMuxer, HlsOptions};
use super::playlist::render_media;
use super::view::HlsView;
use crate::media::{CodecSet, MediaFrame, Track};
use crate::mp4::init::tests::{aac_config, avc_config};
use crate::mp4::testutil::fragments;

const WALL: i64 = 1_796_551_200_000;

fn video(dts: i64, keyframe: bool, size: usize) -> MediaFrame {
    let mut data = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
    data.resize(size.max(6), 0xAB);
    MediaFrame {
        track: Track::Video,
        pts: dts + 66,
        dts,
        keyframe,
        data: Bytes::from(data),
        ingest_us: 0,
    }
}

fn audio(dts: i64) -> MediaFrame {
    MediaFrame {
        track: Track::Audio,
        pts: dts,
        dts,
        keyframe: true,
        data: Bytes::from(vec![0x21; 200]),
        ingest_us: 0,
    }
}

fn both() -> CodecSet {
    CodecSet {
        video: Some(avc_config()),
        audio: Some(aac_config(&[0x11, 0x90])), // AAC-LC 48 kHz stereo
    }
}

/// 30 fps video with a keyframe every `gop` frames, AAC 48 kHz, interleaved by time,
/// for `seconds`; each frame reaches the server 5 ms after its dts (plus the wall anchor).
fn feed(muxer: &mut HlsMuxer, seconds: i64, gop: usize) -> usize {
    let mut changes = 0;
    let frames = (seconds * 30) as usize;
    let mut next_audio = 0usize;
    for i in 0..frames {
        let dts = (i as f64 * 1000.0 / 30.0).floor() as i64;
        while (next_audio as f64 * 1024.0 / 48.0) < dts as f64 {
            let a = (next_audio as f64 * 1024.0 / 48.0).floor() as i64;
            if muxer.push(&audio(a), WALL + a + 5).unwrap() {
                changes += 1;
            }
            next_audio += 1;
        }
        if muxer
            .push(&video(dts, i % gop == 0, 3000), WALL + dts + 5)
            .unwrap()
        {
            changes += 1;
        }
    }
    changes
}

fn check_parts(view: &HlsView) {
    let target = view.part_target_ms;
    let all: Vec<_> = view
        .segments
        .iter()
        .flat_map(|s| s.parts.iter())
        .chain(view.open.iter())
        .collect();
    for (i, p) in all.iter().enumerate() {
        assert!(
            p.duration_ms <= target,
            "part {} {} > {target}",
            p.id,
            p.duration_ms
        );
        if i > 0 {
            assert_eq!(p.id, all[i - 1].id + 1);
        }
    }
    for s in &view.segments {
        assert!(
            s.parts[0].independent,
            "segment {} starts without a keyframe",
            s.msn
        );
        assert_eq!(
            s.duration_ms,
            s.parts.iter().map(|p| p.duration_ms).sum::<i64>()
        );
        for p in &s.parts[..s.parts.len() - 1] {
            assert!(p.duration_ms * 100 >= target * 85 || p.independent);
        }
    }
}

#[test]
fn thirty_fps_with_audio() {
    let mut muxer = HlsMuxer::new(both(), "ab12", HlsOptions::default()).unwrap();
    let changes = feed(&mut muxer, 10, 60);
    let view = muxer.view();
    assert_eq!(view.part_target_ms, 204);
    // Segments at 2, 4, 6, 8 s; the fifth is open.
    assert_eq!(view.segments.len(), 4);
    assert_eq!(view.next_msn, 4);
    assert!(view
        .segments
        .iter()
        .all(|s| s.duration_ms == 2000 && s.parts.len() == 10));
    assert_eq!(changes as u64, muxer.stats().parts);
    assert_eq!(view.target_duration, 2);
    check_parts(&view);
    // PROGRAM-DATE-TIME: the first frame's arrival plus decode time.
    let pdts: Vec<i64> = view.segments.iter().map(|s| s.pdt_ms).collect();
    assert_eq!(pdts, vec![WALL + 5, WALL + 2005, WALL + 4005, WALL + 6005]);
    assert_eq!(&*view.codecs, "avc1.64000d,mp4a.40.2");
}

#[test]
fn parts_hold_every_frame_once_and_continue_each_other() {
    let mut muxer = HlsMuxer::new(both(), "ab12", HlsOptions::default()).unwrap();
    feed(&mut muxer, 6, 60);
    let view = muxer.view();
    let mut next_video = 0u64;
    let mut next_audio: Option<u64> = None;
    let mut video_samples = 0;
    for part in view.segments.iter().flat_map(|s| s.parts.iter()) {
        let f = fragments(&part.data);
        assert_eq!(f.len(), 1, "one moof+mdat per part");
        for traf in &f[0].trafs {
            let duration: u64 = traf.trun.samples.iter().map(|s| u64::from(s.0)).sum();
            match traf.track_id {
                1 => {
                    assert_eq!(traf.base_decode_time, next_video);
                    next_video += duration;
                    video_samples += traf.trun.samples.len();
                    // B-frame style offsets survive: pts − dts = 66 ms.
                    assert!(traf.trun.samples.iter().all(|s| s.3 == 66 * 90));
                }
                2 => {
                    if let Some(n) = next_audio {
                        assert_eq!(traf.base_decode_time, n);
                    }
                    next_audio = Some(traf.base_decode_time + duration);
                }
                other => panic!("track {other}"),
            }
        }
        // The leading track's length is the part's.
        let v = f[0].trafs.iter().find(|t| t.track_id == 1).unwrap();
        let ticks: u64 = v.trun.samples.iter().map(|s| u64::from(s.0)).sum();
        assert_eq!(ticks, part.duration_ms as u64 * 90);
        // Audio reaches the part's end too (a player buffers what both tracks hold).
        let a = f[0].trafs.iter().find(|t| t.track_id == 2).unwrap();
        let audio_end = (a.base_decode_time
            + a.trun.samples.iter().map(|s| u64::from(s.0)).sum::<u64>())
            as f64
            / 48_000.0;
        let video_end = (v.base_decode_time + ticks) as f64 / 90_000.0;
        // (within the 1 ms RTMP timestamps are rounded to)
        assert!(
            audio_end >= video_end - 0.0015,
            "audio ends at {audio_end}, video at {video_end}"
        );
    }
    // Two complete 2 s segments: 120 frames.
    assert_eq!(view.segments.len(), 2);
    assert_eq!(video_samples, 120);
    let seg = view.segment(1).unwrap();
    assert_eq!(seg.len(), view.segments[1].parts.len());
}

#[test]
fn the_window_is_bounded_in_segments_and_bytes() {
    let options = HlsOptions {
        segment_count: 3,
        ..HlsOptions::default()
    };
    let mut muxer = HlsMuxer::new(both(), "p", options).unwrap();
    feed(&mut muxer, 20, 30);
    let view = muxer.view();
    assert_eq!(view.segments.len(), 3);
    assert_eq!(view.media_sequence(), view.next_msn - 3);
    check_parts(&view);

    let options = HlsOptions {
        max_window_bytes: 200_000,
        ..HlsOptions::default()
    };
    let mut muxer = HlsMuxer::new(both(), "p", options).unwrap();
    feed(&mut muxer, 20, 30);
    let view = muxer.view();
    assert!(view.window_bytes() <= 200_000, "{}", view.window_bytes());
    assert!(muxer.stats().evicted_for_bytes > 0);
    assert!(!view.segments.is_empty());
}

#[test]
fn a_stalled_leading_track_overflows_instead_of_growing() {
    let options = HlsOptions {
        max_window_bytes: 100_000,
        ..HlsOptions::default()
    };
    let mut muxer = HlsMuxer::new(both(), "p", options).unwrap();
    feed(&mut muxer, 2, 30);
    // Video stops; audio goes on (and on).
    let mut overflowed = false;
    for i in 0..2000 {
        let a = 2000 + i * 21;
        if muxer.push(&audio(a), WALL + a).is_err() {
            overflowed = true;
            break;
        }
    }
    assert!(overflowed);
}

#[test]
fn audio_only_and_video_only() {
    let codecs = CodecSet {
        video: None,
        audio: Some(aac_config(&[0x11, 0x90])),
    };
    let mut muxer = HlsMuxer::new(codecs, "a", HlsOptions::default()).unwrap();
    for i in 0..500 {
        let a = (i as f64 * 1024.0 / 48.0).floor() as i64;
        let _ = muxer.push(&audio(a), WALL + a).unwrap();
    }
    let view = muxer.view();
    assert!(view.audio_only);
    assert_eq!(view.part_target_ms, 220);
    assert!(view.segments.len() >= 9);
    check_parts(&view);
    assert!(view
        .segments
        .iter()
        .flat_map(|s| s.parts.iter())
        .all(|p| p.independent));

    let codecs = CodecSet {
        video: Some(avc_config()),
        audio: None,
    };
    let mut muxer = HlsMuxer::new(codecs, "v", HlsOptions::default()).unwrap();
    for i in 0..150 {
        let dts = i * 40;
        let _ = muxer
            .push(&video(dts, i % 25 == 0, 500), WALL + dts)
            .unwrap();
    }
    let view = muxer.view();
    assert_eq!(view.part_target_ms, 200);
    assert_eq!(view.segments.len(), 5);
    check_parts(&view);
}

#[test]
fn video_before_the_first_keyframe_is_not_published() {
    let mut muxer = HlsMuxer::new(both(), "p", HlsOptions::default()).unwrap();
    for i in 0..20 {
        let _ = muxer.push(&video(i * 33, false, 100), WALL).unwrap();
    }
    let view = muxer.view();
    assert!(view.segments.is_empty() && view.open.is_empty());
    assert_eq!(view.part_target_ms, 0);
}

#[test]
fn its_playlist_lists_what_it_holds() {
    let mut muxer = HlsMuxer::new(both(), "ab12", HlsOptions::default()).unwrap();
    feed(&mut muxer, 5, 60);
    let text = render_media(&muxer.view(), false, "");
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"));
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.20400\n"));
    assert!(text.contains("PART-HOLD-BACK=0.61200"));
    assert!(text.contains("#EXT-X-MAP:URI=\"ab12_init.mp4\"\n"));
    assert_eq!(text.matches("#EXTINF:2.00000,").count(), 2);
    assert!(text.contains("ab12_seg1.mp4\n"));
    assert!(text.contains("#EXT-X-PART:DURATION=0.20000,URI=\"ab12_part20.mp4\",INDEPENDENT=YES\n"));
    let next = muxer.view().next_part_id;
    assert!(text.ends_with(&format!(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ab12_part{next}.mp4\"\n"
    )));
}
