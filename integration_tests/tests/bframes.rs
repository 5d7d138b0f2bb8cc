//! B-frames, proven with real peers: an H.264 High-profile source with 3 B-frames and
//! B-pyramid (ffmpeg → nginx-rtmp → pullcast) plays smoothly in headless Chromium over
//! WebRTC — frames decoded at the source's rate, none dropped, no freezes — while the
//! recording of the same capture keeps the original B-frames and decodes without errors.
//!
//! The source is 640x360 at 30 fps. At 1280x720 the same test decoded 302–303 frames in its
//! 10 s window on a quiet machine, but a CI run (a debug-built server, x264, Chromium and
//! nginx sharing 2 cores) once dipped to 281: the machine, not the design, ran out of
//! time. The source is encoded before the test and sent in real time with `-c copy`, so
//! x264 does not compete with the server and the browser during the measurement. What a
//! 720p30 capture costs is measured in release builds by
//! `bench/transcode_cpu.sh` and `BFRAMES=3 bench/fanout.sh`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pullcast_integration_tests::browser::{exclusive, run_driver};
use pullcast_integration_tests::probe::probe_file;
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast};
use serde_json::{json, Value};

/// `framesDecoded` (and drops, freezes) at the sample nearest to `t` ms.
fn at(timeline: &[Value], t: u64, key: &str) -> u64 {
    timeline
        .iter()
        .filter(|s| s["t"].as_u64().unwrap_or(0) <= t)
        .map(|s| s[key].as_u64().unwrap_or(0))
        .next_back()
        .unwrap_or(0)
}

/// `key` at time `t`, interpolated between the samples either side (so the window's ends
/// are exact, not up to one sampling interval off).
fn interpolated(timeline: &[Value], t: u64, key: &str) -> f64 {
    let point = |s: &Value| {
        (
            s["t"].as_f64().unwrap_or(0.0),
            s[key].as_f64().unwrap_or(0.0),
        )
    };
    let t = t as f64;
    let before = timeline.iter().map(point).rfind(|p| p.0 <= t);
    let after = timeline.iter().map(point).find(|p| p.0 > t);
    match (before, after) {
        (Some((t0, v0)), Some((t1, v1))) => v0 + (v1 - v0) * (t - t0) / (t1 - t0),
        (Some((_, v)), None) | (None, Some((_, v))) => v,
        (None, None) => 0.0,
    }
}

#[test]
fn a_b_frame_source_plays_smoothly_in_chromium_and_records_untouched() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish(
        "bframes",
        Publisher::builder()
            .size(640, 360)
            .bframes(3)
            .pre_encoded(60),
    );
    let pc = Pullcast::start(&[]);
    let (status, body) = pc.pull(&json!({
        "uri": uri, "localStreamName": "bframes", "record": true
    }));
    assert_eq!(status, 200, "{body}");
    let c = pc.wait_for(&uri, Duration::from_secs(15), "recording with video", |c| {
        c["video"]["width"].is_u64() && c["recording"]["file"].is_string()
    });
    assert_eq!(c["video"]["profile"], "High", "{c}");
    let file = c["recording"]["file"].as_str().unwrap().to_string();

    let result = run_driver(
        "whep_driver.js",
        &json!({
            "pageUrl": format!("{}/", pc.http_root()),
            "viewers": [{ "whepPath": "/whep/bframes" }],
            "runMs": 13_000,
            "pollMs": 10,
            "sampleMs": 100,
            "deleteAtEnd": true,
            "timeoutMs": 80_000,
        }),
        Duration::from_secs(100),
    );
    let v = &result["viewers"][0];
    let timeline = v["timeline"].as_array().unwrap();
    let ctx = || format!("viewer: {v}\n{}", pc.log_tail());
    // Ten seconds, starting 2.5 s in (past the instant-start burst of the cached GOP).
    let (from, to) = (2500, 12_500);
    let decoded = (interpolated(timeline, to, "framesDecoded")
        - interpolated(timeline, from, "framesDecoded"))
    .round() as u64;
    let dropped = at(timeline, to, "framesDropped") - at(timeline, from, "framesDropped");
    let freezes = at(timeline, to, "freezeCount");
    let first = v["firstFrameMs"].as_u64();
    eprintln!(
        "B-frame source in Chromium: first frame {first:?} ms after connected; {decoded} frames decoded in 10 s, {dropped} dropped, {freezes} freezes"
    );
    // The transcoder starts with the first viewer, from the cached keyframe. The time itself
    // is measured by `BFRAMES=3 bench/fanout.sh` (release build); here, in a debug build
    // sharing two cores with ffmpeg and Chromium, only a stall is a failure: the first frame
    // must come within one GOP (2 s) of the connection.
    assert!(
        first.is_some_and(|ms| ms < 2000),
        "first frame {first:?} ms after the connection was up\n{}",
        ctx()
    );
    let c = pc.capture(&uri).unwrap();
    assert_eq!(c["bFrames"]["detected"], true, "{c}");
    assert!(
        (285..=315).contains(&decoded),
        "framesDecoded {decoded} in 10 s (expected 300 ± 5 %)\n{}",
        ctx()
    );
    assert!(dropped <= 3, "framesDropped {dropped}\n{}", ctx());
    assert!(freezes <= 1, "freezeCount {freezes}\n{}", ctx());

    // The recording keeps the source's B-frames and decodes cleanly.
    let path = pc.terminate_and_check_recording(&uri, &file);
    let probe = probe_file(&path, &["-show_streams"]);
    let video = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap();
    assert_eq!(video["profile"], "High", "{probe}");
    assert!(
        video["has_b_frames"].as_u64().unwrap_or(0) >= 1,
        "the recording lost its B-frames: {probe}"
    );
}
