//! A viewer's keyframe request (RTCP PLI) on a passthrough capture, end to end: a WebRTC
//! viewer on the webrtc-rs stack (`pullcast-loadclient`; Chromium cannot be made to send a
//! PLI on demand) asks for a keyframe mid-GOP; pullcast answers at once with the capture's
//! cached GOP, stamped just after the last frame the viewer got, so the track's RTP
//! timestamps never go back. The source is nginx-rtmp fed by ffmpeg with a 5 s GOP, so the
//! answer cannot be the source's next keyframe.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pullcast_integration_tests::webrtc_client::run_loadclient;
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast};
use serde_json::json;

#[test]
fn a_pli_on_a_passthrough_capture_gets_the_cached_gop_at_once_and_timestamps_go_on() {
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("pli", Publisher::builder().size(640, 360).gop(150));
    let pc = Pullcast::start(&[]);
    let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": "pli" }));
    assert_eq!(status, 200, "{body}");
    pc.wait_for_keyframe(&uri, Duration::from_secs(15));

    // One viewer; its PLI goes out 2 s after its first video packet, mid-GOP.
    let summary = run_loadclient(
        &pc.http_root(),
        "pli",
        &[
            "--viewers",
            "1",
            "--settle-ms",
            "0",
            "--seconds",
            "4",
            "--pli-after-ms",
            "2000",
        ],
        Duration::from_secs(60),
    );
    let ctx = || format!("{summary}\n{}", pc.log_tail());
    assert_eq!(summary["connected"], 1, "{}", ctx());
    assert_eq!(summary["first_video_packet_is_keyframe"], 1, "{}", ctx());
    let requests = &summary["keyframe_requests"];
    assert_eq!(requests["sent"], 1, "{}", ctx());
    assert_eq!(
        requests["answered"],
        1,
        "no keyframe after the PLI\n{}",
        ctx()
    );
    // The answer is the cached GOP replayed, not the source's next keyframe (up to 5 s away,
    // and a live frame would come a frame interval, 2970 ticks, after the one before): it
    // goes out right behind the last frame sent (100 µs = 9 ticks after it).
    let step = requests["answer_ts_step_ticks"][0].as_i64().unwrap();
    assert!(
        (1..1000).contains(&step),
        "the keyframe after the PLI is {step} ticks after the frame before it\n{}",
        ctx()
    );
    let answer_ms = requests["answer_ms"]["max"].as_f64().unwrap();
    assert!(
        answer_ms < 1000.0,
        "the keyframe came {answer_ms} ms after the PLI\n{}",
        ctx()
    );
    eprintln!(
        "PLI answered by a keyframe {answer_ms} ms later, {step} ticks after the frame before it"
    );
    // Never a step back on the track, replay included.
    assert_eq!(summary["video_timestamps_backwards"], 0, "{}", ctx());
    let log = std::fs::read_to_string(pc.dir().join("pullcast.log")).unwrap();
    assert!(
        log.contains("keyframe requested; asking the capture"),
        "the server did not see the PLI\n{}",
        pc.log_tail()
    );
}
