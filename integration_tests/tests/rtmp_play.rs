//! RTMP play, proven with real peers: a live ffmpeg → nginx-rtmp source pulled by pullcast
//! and played from pullcast's own RTMP port by ffprobe and by three ffmpegs at once (both
//! streams, frames at the source's rate, decoded without an error, starting at a keyframe); by a second pullcast
//! that pulls from the first, with Chromium playing the second over WHEP (edge cascading);
//! by nginx-rtmp's `pull` directive; names that are not captured, garbage and idle
//! connections; the access model with `?token=`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use pullcast_integration_tests::browser::{exclusive, whep_viewer};
use pullcast_integration_tests::probe::{
    assert_h264_aac, copy_and_count, decode_errors, probe_streams, reordered_video_packets,
};
use pullcast_integration_tests::process::run_ffmpeg;
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast, TempDir};
use serde_json::json;

#[test]
fn ffprobe_and_ffmpeg_play_a_capture_over_rtmp() {
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("rtmpsrc", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "rtmpout");
    let url = pc.rtmp_url("rtmpout");

    let streams = probe_streams(&url, Duration::from_secs(20));
    assert_eq!(streams.len(), 2, "video and audio only: {streams:?}");
    assert_h264_aac(&streams, 640, 360);

    // Three players at once (they share the capture's fan-out): each gets every frame.
    let dir = TempDir::new("rtmp-play");
    let started = Instant::now();
    let others: Vec<_> = (1..3)
        .map(|i| {
            let (url, file) = (url.clone(), dir.join(&format!("copy{i}.flv")));
            std::thread::spawn(move || copy_and_count(&url, 4, file))
        })
        .collect();
    let copied = copy_and_count(&url, 4, dir.join("copy.flv"));
    for other in others {
        let other = other.join().unwrap();
        assert!(other.starts_with_keyframe, "{other:?}");
        assert!(other.video_frames >= 100, "{other:?}");
        assert!(other.audio_frames >= 150, "{other:?}");
        let errors = decode_errors(&other.file);
        assert!(
            errors.is_empty(),
            "a concurrent copy decodes with errors: {errors}"
        );
    }
    let (video, audio, key, copy) = (
        copied.video_frames,
        copied.audio_frames,
        copied.starts_with_keyframe,
        copied.file,
    );
    eprintln!(
        "[rtmp play] 4 s copied in {:?}: {video} video frames (first is a keyframe: {key}), {audio} audio frames",
        started.elapsed()
    );
    assert!(key, "the first frame a player gets is a keyframe");
    assert!(video >= 100, "30 fps for ~4 s: {video}");
    assert!(audio >= 150, "AAC at 48 kHz for ~4 s: {audio}");
    let errors = decode_errors(&copy);
    assert!(errors.is_empty(), "the copy decodes with errors: {errors}");
    // The players left: their plays ended.
    let log = std::fs::read_to_string(pc.dir().join("pullcast.log")).unwrap_or_default();
    assert!(
        log.contains("RTMP player") && log.contains(": ended"),
        "{}",
        pc.log_tail()
    );
}

#[test]
fn b_frames_go_through_rtmp_untouched() {
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("rtmpbf", Publisher::builder().size(640, 360).bframes(2));
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "rtmpbf");
    let dir = TempDir::new("rtmp-bframes");
    let copied = copy_and_count(&pc.rtmp_url("rtmpbf"), 4, dir.join("copy.flv"));
    let reordered = reordered_video_packets(&copied.file);
    eprintln!(
        "[rtmp play] B-frames: {} video frames, {reordered} of the first 90 packets presented out of decode order",
        copied.video_frames
    );
    assert!(copied.starts_with_keyframe);
    assert!(copied.video_frames >= 100, "{copied:?}");
    assert!(
        reordered > 20,
        "B-frames kept (presented out of decode order): {reordered}"
    );
    let errors = decode_errors(&copied.file);
    assert!(errors.is_empty(), "decoded with errors: {errors}");
}

#[test]
fn nginx_rtmp_pulls_from_pullcast() {
    let source = NginxRtmp::start();
    let (_publisher, uri) = source.publish("edgesrc", Publisher::builder().size(320, 180));
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "forEdge");
    // nginx-rtmp's relay: connect (txn 1), createStream (txn 2), play on stream 1.
    let edge = NginxRtmp::start_with(&format!(
        "application edge {{ live on; pull rtmp://127.0.0.1:{}/live name=forEdge; }}",
        pc.rtmp_port()
    ));
    let url = edge.rtmp_url("edge/forEdge");
    let dir = TempDir::new("rtmp-edge");
    let copied = copy_and_count(&url, 3, dir.join("copy.flv"));
    let (video, audio, copy) = (copied.video_frames, copied.audio_frames, copied.file);
    eprintln!("[rtmp play] through nginx-rtmp's pull: {video} video and {audio} audio frames");
    assert!(
        video >= 60,
        "{video}\n{}\n{}",
        edge.log_tail(),
        pc.log_tail()
    );
    assert!(audio >= 100, "{audio}");
    let errors = decode_errors(&copy);
    assert!(errors.is_empty(), "decoded with errors: {errors}");
}

#[test]
fn a_second_pullcast_pulls_from_the_first_and_chromium_plays_it() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (mut publisher, uri) = nginx.publish("origin", Publisher::builder().size(640, 360));
    let origin = Pullcast::start(&[]);
    origin.pull_named(&uri, "cam");
    let edge = Pullcast::start(&[]);
    let edge_uri = origin.rtmp_url("cam");
    edge.pull_named(&edge_uri, "cam-edge");
    let capture = edge.capture(&edge_uri).unwrap();
    assert_eq!(capture["video"]["width"], 640, "{capture}");
    assert_eq!(capture["hasAudio"], true, "{capture}");

    let v = whep_viewer(&edge.http_root(), "cam-edge", 4000);
    let frames = v["final"]["framesDecoded"].as_u64().unwrap_or(0);
    eprintln!(
        "[rtmp cascade] Chromium on the edge: first frame {} ms after connected, {frames} frames",
        v["firstFrameMs"]
    );
    assert!(
        v["firstFrameMs"].as_u64().is_some(),
        "no frame decoded: {v}"
    );
    assert!(frames >= 90, "{frames} frames in 4 s: {v}");

    // The origin's source drops and comes back: the edge follows, without failing.
    publisher.stop();
    origin.wait_for_status(&uri, "RECONNECTING", Duration::from_secs(20));
    let before = edge.capture(&edge_uri).unwrap()["videoFrames"]
        .as_u64()
        .unwrap_or(0);
    let (_publisher, _) = nginx.publish("origin", Publisher::builder().size(640, 360));
    origin.wait_for_status(&uri, "PROCESSED_REMOTE", Duration::from_secs(30));
    let resumed = edge.wait_for(&edge_uri, Duration::from_secs(40), "more frames", |c| {
        c["status"] == "PROCESSED_REMOTE" && c["videoFrames"].as_u64().unwrap_or(0) > before + 30
    });
    assert_ne!(resumed["status"], "FAILED", "{resumed}");
}

#[test]
fn rtmp_names_garbage_and_idle_clients() {
    let pc = Pullcast::start(&[("PULLCAST_RTMP__START_TIMEOUT_MS", "1500")]);
    // Not captured: ffmpeg gives up at once (the server says StreamNotFound).
    for name in ["nothing", "日本🎥", &"x".repeat(3000)] {
        let started = Instant::now();
        let (status, log) = run_ffmpeg(
            &["-i", &pc.rtmp_url(name), "-t", "1", "-f", "null", "-"],
            Duration::from_secs(20),
        );
        assert!(status.is_some_and(|s| !s.success()), "{name}: {log}");
        assert!(started.elapsed() < Duration::from_secs(10), "{name}");
    }
    let log = std::fs::read_to_string(pc.dir().join("pullcast.log")).unwrap_or_default();
    assert!(log.contains("refused"), "{}", pc.log_tail());

    // Garbage, and a client that says nothing: closed; the server goes on.
    use std::io::{Read, Write};
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", pc.rtmp_port())).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = garbage.read_to_end(&mut sink);
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", pc.rtmp_port())).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let _ = idle.read_to_end(&mut sink);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle client is closed after rtmp.start_timeout_ms"
    );
    let (status, _) = pc.find_all();
    assert!(status == 200 || status == 404);
}

#[test]
fn rtmp_play_follows_the_access_rules() {
    let config = r#"
[auth]
trusted_networks = []
anonymous = []
token_secret = "rtmp-test-secret-0123456789abcdef0123"

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api", "pull", "pull_private", "play"]
"#;
    let nginx = NginxRtmp::start();
    let (_cam, cam_uri) = nginx.publish("rtmpcam", Publisher::builder().size(320, 180));
    let mut pc = Pullcast::start_with_config(config, &[]);
    pc.authorize("Basic b3BzOm9wcy1wdw==");
    pc.pull_named(&cam_uri, "cam1");
    let plays = |url: &str| {
        let (status, log) = run_ffmpeg(
            &["-i", url, "-t", "1", "-f", "null", "-"],
            Duration::from_secs(20),
        );
        (status.is_some_and(|s| s.success()), log)
    };
    let (ok, _) = plays(&pc.rtmp_url("cam1"));
    assert!(!ok, "anonymous");
    let (status, body) = pc.post("/auth/token", &json!({ "stream": "cam1" }).to_string());
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let (ok, log) = plays(&format!("{}?token={token}", pc.rtmp_url("cam1")));
    assert!(ok, "with the token: {log}\n{}", pc.log_tail());
    let (ok, log) = plays(&format!("{}?user=ops&pass=ops-pw", pc.rtmp_url("cam1")));
    assert!(ok, "with user and password: {log}");
    let (ok, _) = plays(&format!("{}?user=ops&pass=wrong", pc.rtmp_url("cam1")));
    assert!(!ok, "a wrong password");
    let log = std::fs::read_to_string(pc.dir().join("pullcast.log")).unwrap_or_default();
    assert!(!log.contains(&token), "the token is never logged");
}
