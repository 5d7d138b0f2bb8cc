//! HTTP-FLV, proven with real peers: a live ffmpeg → nginx-rtmp source pulled by pullcast,
//! played at `GET /{stream}.flv` by ffprobe (which streams it announces) and by ffmpeg
//! (several seconds copied off the live stream, then counted and decoded without an error)
//! and by mpegts.js in Chromium (frames at the source's rate, audio, the playhead moving);
//! a name that is not captured, one that is not valid percent-encoding, a non-ASCII one and
//! a very long one get clear errors; the player leaving ends its viewer; the access model
//! decides who may play what.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use pullcast_integration_tests::browser::{exclusive, run_driver};
use pullcast_integration_tests::http::{agent, send_with_headers};
use pullcast_integration_tests::probe::{
    assert_h264_aac, decode_errors, probe_file, probe_streams,
};
use pullcast_integration_tests::process::{kill_tree, require_tool, spawn_logged, wait_exit};
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast, TempDir};
use serde_json::json;

/// How many FLV players' viewers have ended, from the server's log.
fn players_ended(pc: &Pullcast) -> usize {
    std::fs::read_to_string(pc.dir().join("pullcast.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("FLV player") && l.ends_with(": ended"))
        .count()
}

#[test]
fn ffprobe_and_ffmpeg_play_a_capture_over_http_flv() {
    let nginx = NginxRtmp::start();
    let source = Publisher::builder().size(640, 360).video_bitrate_kbps(800);
    let (_publisher, uri) = nginx.publish("flvsrc", source);
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "flvout");
    let url = format!("{}/flvout.flv", pc.http_root());

    let streams = probe_streams(&url, Duration::from_secs(20));
    assert_h264_aac(&streams, 640, 360);

    // Four seconds off the live stream, copied as they come.
    let dir = TempDir::new("http-flv");
    let copy = dir.join("copy.flv");
    let mut cmd = Command::new(require_tool("ffmpeg"));
    cmd.args([
        "-v", "error", "-nostdin", "-i", &url, "-t", "4", "-c", "copy", "-y",
    ])
    .arg(&copy);
    let mut child = spawn_logged(&mut cmd, &dir.join("ffmpeg.log"));
    let started = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    if status.is_none() {
        kill_tree(&mut child);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "ffmpeg could not copy 4 s of {url} within 30 s\n{}",
        pc.log_tail()
    );
    eprintln!("[http-flv] 4 s copied in {:?}", started.elapsed());
    let counted = probe_file(
        &copy,
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_type,nb_read_frames",
        ],
    );
    let frames = |kind: &str| {
        counted["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
            .and_then(|s| s["nb_read_frames"].as_str())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    eprintln!(
        "[http-flv] copy: {} video frames, {} audio frames",
        frames("video"),
        frames("audio")
    );
    assert!(frames("video") >= 100, "30 fps for ~4 s: {counted}");
    assert!(frames("audio") >= 150, "AAC at 48 kHz for ~4 s: {counted}");
    let errors = decode_errors(&copy);
    assert!(errors.is_empty(), "the copy decodes with errors: {errors}");

    // The players left: their viewers end (at the next frame).
    let deadline = Instant::now() + Duration::from_secs(10);
    while players_ended(&pc) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        players_ended(&pc) >= 2,
        "the players' viewers did not end\n{}",
        pc.log_tail()
    );
}

#[test]
fn http_flv_names_that_are_not_played_get_clear_errors() {
    let pc = Pullcast::start(&[]);
    let get = |path: &str| pc.request_url("GET", &format!("{}{path}", pc.http_root()), None);
    let (status, body) = get("/nothing-here.flv");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("Stream not found"), "{body}");
    let (status, body) = get("/%ff%fe.flv");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("percent-encoded"), "{body}");
    // Non-ASCII and very long names are names like any other.
    let (status, body) = get("/%E6%97%A5%E6%9C%AC%F0%9F%8E%A5.flv");
    assert_eq!(status, 404, "{body}");
    let long = "x".repeat(5_000);
    let (status, body) = get(&format!("/{long}.flv"));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("Stream not found"), "{body}"); // An rtmp:// name nobody captures, whose server refuses: the on-demand pull starts,
                                                          // fails at once, and the player's stream ends empty (not a hanging request).
    let port = pullcast_integration_tests::free_port();
    let started = Instant::now();
    let (status, body) = get(&format!(
        "/rtmp%3A%2F%2F127.0.0.1%3A{port}%2Flive%2Fnone.flv"
    ));
    assert!(
        (status == 200 && body.is_empty()) || status == 404 || status == 500,
        "{status} {body}\n{}",
        pc.log_tail()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the failed on-demand play took {:?}",
        started.elapsed()
    );
}

/// The access model holds for HTTP-FLV as for every way to play: no credentials 401, a
/// user whose patterns do not name the stream 403, one whose do 200; CORS as for WHEP.
#[test]
fn http_flv_plays_only_what_the_caller_may_play() {
    let config = r#"
[rest]
cors_allowed_origins = ["https://app.example"]

[auth]
trusted_networks = []
anonymous = []
token_secret = "http-flv-test-secret-0123456789abcdef"

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api", "pull", "pull_private", "play"]

[[auth.users]]
name = "viewer"
password = "viewer-pw"
permissions = ["play"]
streams = ["cam*"]
"#;
    let nginx = NginxRtmp::start();
    let small = || Publisher::builder().size(320, 180);
    let (_cam, cam_uri) = nginx.publish("cam1", small());
    let (_studio, studio_uri) = nginx.publish("studio", small());
    let mut pc = Pullcast::start_with_config(config, &[]);
    let ops = "Basic b3BzOm9wcy1wdw==";
    let viewer = "Basic dmlld2VyOnZpZXdlci1wdw==";
    pc.authorize(ops);
    pc.pull_named(&cam_uri, "cam1");
    pc.pull_named(&studio_uri, "studio");
    let agent = agent();
    let head = |name: &str, authorization: Option<&str>| {
        let url = format!("{}/{name}.flv", pc.http_root());
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        send_with_headers(&agent, "HEAD", &url, None, &headers)
            .unwrap_or_else(|e| panic!("no answer: {e}\n{}", pc.log_tail()))
            .0
    };
    assert_eq!(head("cam1", None), 401, "no credentials");
    assert_eq!(
        head("cam1", Some("Basic dmlld2VyOng=")),
        401,
        "a wrong password"
    );
    assert_eq!(head("cam1", Some(viewer)), 200, "cam1 is one of viewer's");
    assert_eq!(head("studio", Some(viewer)), 403, "studio is not");
    assert_eq!(head("studio", Some(ops)), 200, "ops plays everything");
    // A page of an allowed origin may read the stream (CORS, as for WHEP); another may not.
    let cors = |origin: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", pc.rest_http_port())).unwrap();
        let request = format!(
            "HEAD /cam1.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\n\
             Authorization: {viewer}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("access-control-allow-origin")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_default()
    };
    assert_eq!(cors("https://app.example"), "https://app.example");
    assert_eq!(cors("https://evil.example"), "", "an origin not allowed");
}

/// An FLV player counts against the viewer limits like a WebRTC viewer: with one viewer per
/// capture allowed, a second player gets 503 while the first plays, and plays once the
/// first has left.
#[test]
fn http_flv_players_count_against_the_viewer_limits() {
    use std::io::{Read, Write};
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("limited", Publisher::builder().size(320, 180));
    let pc = Pullcast::start(&[("PULLCAST_LIMITS__MAX_VIEWERS_PER_CAPTURE", "1")]);
    pc.pull_named(&uri, "limited");
    let url = format!("{}/limited.flv", pc.http_root());
    let head = || pc.request_url("HEAD", &url, None).0;
    // The first player: a raw connection that reads the answer's start and stays.
    let mut first = std::net::TcpStream::connect(("127.0.0.1", pc.rest_http_port())).unwrap();
    first
        .write_all(b"GET /limited.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut start = [0u8; 12];
    first.read_exact(&mut start).unwrap();
    assert_eq!(&start, b"HTTP/1.1 200", "the first player plays");
    let (status, body) = pc.request_url("GET", &url, None);
    assert_eq!(status, 503, "a second player past the limit: {body}");
    assert!(body.contains("limits.max_viewers_per_capture"), "{body}");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while head() != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        head(),
        200,
        "the first player's slot came back\n{}",
        pc.log_tail()
    );
}

/// mpegts.js (the maintained flv.js) plays the FLV stream in Chromium: the media it
/// announces, video frames at the source's rate with few dropped, audio decoded, the
/// playhead moving with the wall clock.
#[test]
fn mpegts_js_plays_http_flv_in_chromium() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("flvweb", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "flvweb");
    let run_ms = 5_000;
    let spec = json!({
        "pageUrl": format!("{}/", pc.http_root()),
        "flvUrl": format!("{}/flvweb.flv", pc.http_root()),
        "scripts": ["node_modules/mpegts.js/dist/mpegts.js"],
        "runMs": run_ms,
        "timeoutMs": 40_000,
    });
    let result = run_driver("flv_driver.js", &spec, Duration::from_secs(60));
    assert_eq!(result["ok"], true, "{result}\n{}", pc.log_tail());
    assert_eq!(result["supported"], true, "MSE in this Chromium: {result}");
    let errors = result["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.is_empty(), "player errors: {errors:?}\n{result}");
    let info = &result["mediaInfo"];
    assert_eq!(info["hasVideo"], true, "{result}");
    assert_eq!(info["hasAudio"], true, "{result}");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(640), Some(360))
    );
    let (start, end) = (&result["start"], &result["final"]);
    let number = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(0.0);
    let frames = number(end, "totalVideoFrames") - number(start, "totalVideoFrames");
    let dropped = number(end, "droppedVideoFrames") - number(start, "droppedVideoFrames");
    let played = number(end, "currentTime") - number(start, "currentTime");
    let seconds = (number(end, "t") - number(start, "t")) / 1000.0;
    eprintln!(
        "[http-flv chromium] first frame {} ms, {frames} frames ({dropped} dropped) and {played:.2} s played in {seconds:.2} s, audio {} bytes decoded",
        result["firstFrameMs"],
        number(end, "audioDecodedBytes")
    );
    assert!(
        frames >= seconds * 30.0 * 0.8,
        "{frames} frames in {seconds:.2} s: {result}"
    );
    assert!(
        dropped * 20.0 <= frames,
        "{dropped} of {frames} dropped: {result}"
    );
    assert!(
        played >= seconds * 0.8,
        "the playhead moved {played:.2} s in {seconds:.2} s: {result}"
    );
    assert!(
        number(end, "audioDecodedBytes") > 0.0,
        "no audio decoded: {result}"
    );
}
