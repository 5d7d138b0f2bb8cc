//! RTMP publish, proven with real peers: ffmpeg publishes to pullcast's RTMP port and the
//! stream becomes a capture like a pulled one — listed by find_all, played by Chromium over
//! WHEP and by ffmpeg over RTMP, recorded (an MP4 with both tracks, read by ffprobe),
//! terminated (which closes the encoder's connection); a second publisher of the name is
//! refused; an encoder that reconnects within `rtmp.publish_grace_ms` continues the same
//! capture, one that does not ends it; the access model decides who may publish.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use pullcast_integration_tests::browser::{exclusive, whep_viewer};
use pullcast_integration_tests::probe::{probe_file, probe_streams, stream_of};
use pullcast_integration_tests::process::run_ffmpeg;
use pullcast_integration_tests::{Publisher, Pullcast};

const STREAMING: Duration = Duration::from_secs(20);

#[test]
fn ffmpeg_publishes_and_every_player_plays_it() {
    let _browser = exclusive();
    let pc = Pullcast::start(&[("PULLCAST_RECORD__BY_DEFAULT", "true")]);
    let url = pc.rtmp_url("pub");
    let mut encoder = Publisher::builder().size(640, 360).start(&url);
    let capture = pc.wait_for(&url, STREAMING, "streaming", |c| {
        c["status"] == "PROCESSED_REMOTE" && c["videoKeyframes"].as_u64() > Some(0)
    });
    assert_eq!(capture["localStreamName"], "pub", "{capture}");
    assert_eq!(capture["video"]["width"], 640, "{capture}");
    assert_eq!(capture["hasAudio"], true, "{capture}");
    let id = capture["localMediaSessionId"].clone();

    // Chromium plays it over WHEP.
    let v = whep_viewer(&pc.http_root(), "pub", 4000);
    let frames = v["final"]["framesDecoded"].as_u64().unwrap_or(0);
    eprintln!(
        "[rtmp publish] Chromium: first frame {} ms after connected, {frames} frames in 4 s",
        v["firstFrameMs"]
    );
    assert!(frames >= 90, "{frames}: {v}");

    // ffprobe reads it back over RTMP.
    let streams = probe_streams(&url, Duration::from_secs(20));
    assert_eq!(stream_of(&streams, "video").unwrap()["codec_name"], "h264");
    assert_eq!(stream_of(&streams, "audio").unwrap()["codec_name"], "aac");

    // A second publisher of the name is refused with the reason.
    let (status, log) = run_ffmpeg(
        &[
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=10",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-f",
            "flv",
            &url,
        ],
        Duration::from_secs(20),
    );
    assert!(status.is_some_and(|s| !s.success()), "{log}");
    assert!(log.contains("published already"), "{log}");
    assert!(encoder.is_running(), "the first publisher goes on");
    assert_eq!(pc.capture(&url).unwrap()["localMediaSessionId"], id);

    // Terminate: the recording is complete and the encoder's connection is closed.
    let file = pc.capture(&url).unwrap()["recording"]["file"]
        .as_str()
        .unwrap()
        .to_string();
    let path = pc.terminate_and_check_recording(&url, &file);
    let probed = probe_file(&path, &["-show_entries", "stream=codec_type,codec_name"]);
    let kinds: Vec<&str> = probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"video") && kinds.contains(&"audio"),
        "{probed}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while encoder.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !encoder.is_running(),
        "terminate closes the publisher's connection"
    );
}

#[test]
fn a_publisher_that_comes_back_within_the_grace_continues_its_capture() {
    let pc = Pullcast::start(&[("PULLCAST_RTMP__PUBLISH_GRACE_MS", "8000")]);
    let url = pc.rtmp_url("again");
    let mut first = Publisher::builder().size(320, 180).start(&url);
    let capture = pc.wait_for(&url, STREAMING, "streaming", |c| {
        c["status"] == "PROCESSED_REMOTE"
    });
    let id = capture["localMediaSessionId"].clone();
    first.stop();
    let gone = pc.wait_for_status(&url, "RECONNECTING", Duration::from_secs(10));
    let frames = gone["videoFrames"].as_u64().unwrap_or(0);
    let _second = Publisher::builder().size(320, 180).start(&url);
    let back = pc.wait_for(&url, STREAMING, "streaming again", |c| {
        c["status"] == "PROCESSED_REMOTE" && c["videoFrames"].as_u64().unwrap_or(0) > frames + 30
    });
    assert_eq!(back["localMediaSessionId"], id, "the same capture");

    // Gone for longer than the grace: the capture ends.
    drop(_second);
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pc.capture(&url).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(pc.capture(&url).is_none(), "{}", pc.log_tail());
    eprintln!(
        "[rtmp publish] capture ended {:?} after its publisher left (grace 8 s)",
        started.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_secs(7));
    let log = std::fs::read_to_string(pc.dir().join("pullcast.log")).unwrap_or_default();
    assert!(log.contains("the publisher did not come back within 8000 ms"));
}

#[test]
fn only_callers_with_publish_may_publish() {
    let config = r#"
[auth]
trusted_networks = []
anonymous = ["play"]

[[auth.users]]
name = "encoder"
password = "enc-pw"
permissions = ["publish"]
streams = ["studio*"]

[[auth.users]]
name = "viewer"
password = "viewer-pw"
permissions = ["play"]

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api"]
"#;
    let mut pc = Pullcast::start_with_config(config, &[]);
    pc.authorize("Basic b3BzOm9wcy1wdw==");
    let publish = |name: &str| {
        run_ffmpeg(
            &[
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x90:rate=10",
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-f",
                "flv",
                &pc.rtmp_url(name),
            ],
            Duration::from_secs(20),
        )
    };
    for (name, why) in [
        ("studio1", "anonymous"),
        (
            "studio1?user=viewer&pass=viewer-pw",
            "no publish permission",
        ),
        ("studio1?user=encoder&pass=wrong", "a wrong password"),
        ("other?user=encoder&pass=enc-pw", "not its stream"),
    ] {
        let (status, log) = publish(name);
        assert!(status.is_some_and(|s| !s.success()), "{why}: {log}");
    }
    let url = pc.rtmp_url("studio1?user=encoder&pass=enc-pw");
    let _encoder = Publisher::builder().size(320, 180).start(&url);
    let plain = pc.rtmp_url("studio1");
    let deadline = Instant::now() + STREAMING;
    while Instant::now() < deadline {
        if pc
            .captures()
            .iter()
            .any(|c| c["localStreamName"] == "studio1")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let found = pc.captures();
    let capture = found
        .iter()
        .find(|c| c["localStreamName"] == "studio1")
        .unwrap_or_else(|| panic!("no capture: {found:?}\n{}", pc.log_tail()));
    assert_eq!(
        capture["uri"].as_str(),
        Some(plain.as_str()),
        "no credentials in the uri"
    );
    let log = std::fs::read_to_string(pc.dir().join("pullcast.log")).unwrap_or_default();
    assert!(!log.contains("enc-pw"), "the password is never logged");
}
