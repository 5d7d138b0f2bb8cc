//! The capture proof: pullcast pulls real RTMP sources (ffmpeg → nginx-rtmp, or ffmpeg as
//! the RTMP server) on loopback, and its REST API reports what it receives — codecs, frame
//! rates, failures with their reasons — over HTTP and HTTPS.
//!
//! Every test starts its own peers and its own server; all of them are killed on drop.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use pullcast_integration_tests::{free_port, NginxRtmp, Publisher, Pullcast, SilentTcpListener};
use serde_json::{json, Value};

/// From the pull call to `PROCESSED_REMOTE` with codecs known.
const PROCESSED: Duration = Duration::from_secs(10);

/// Fields every `find_all` element carries (SPEC §2 plus our additions).
const FIELDS: [&str; 19] = [
    "localMediaSessionId",
    "remoteMediaSessionId",
    "localStreamName",
    "remoteStreamName",
    "uri",
    "status",
    "hasAudio",
    "hasVideo",
    "record",
    "reason",
    "video",
    "audio",
    "bytesReceived",
    "videoFrames",
    "videoKeyframes",
    "audioFrames",
    "bitrateKbps",
    "startTime",
    "metadata",
];

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z" || rest == "z" || {
        let r = rest.as_bytes();
        r.len() == 6
            && matches!(r[0], b'+' | b'-')
            && r[1..3].iter().all(u8::is_ascii_digit)
            && r[3] == b':'
            && r[4..6].iter().all(u8::is_ascii_digit)
    }
}

fn reason(c: &Value) -> String {
    c["reason"].as_str().unwrap_or("").to_lowercase()
}

fn num(c: &Value, field: &str) -> f64 {
    c[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {c}"))
}

fn assert_error(pc: &Pullcast, what: &str, got: (u16, Value), want: u16) -> Value {
    let (status, body) = got;
    assert_eq!(status, want, "{what}: body {body}\n{}", pc.log_tail());
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: error body must be {{\"error\": \"...\"}}, got {body}"
    );
    body
}

/// Counter rates of a capture over at least `span`: (video fps, audio frames/s, bytes/s).
fn rates(pc: &Pullcast, uri: &str, span: Duration) -> (f64, f64, f64, Value) {
    let c0 = pc.capture(uri).expect("capture listed");
    let t0 = Instant::now();
    std::thread::sleep(span);
    let c1 = pc.capture(uri).expect("capture listed");
    let dt = t0.elapsed().as_secs_f64();
    (
        (num(&c1, "videoFrames") - num(&c0, "videoFrames")) / dt,
        (num(&c1, "audioFrames") - num(&c0, "audioFrames")) / dt,
        (num(&c1, "bytesReceived") - num(&c0, "bytesReceived")) / dt,
        c1,
    )
}

fn processed_with(pc: &Pullcast, uri: &str, video: bool, audio: bool) -> Value {
    pc.wait_for(
        uri,
        PROCESSED,
        &format!("PROCESSED_REMOTE with video={video} audio={audio} described"),
        |c| {
            c["status"] == "PROCESSED_REMOTE"
                && (!video || c["video"].is_object())
                && (!audio || c["audio"].is_object())
        },
    )
}

#[test]
fn pulls_a_live_720p30_h264_aac_source() {
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("test", Publisher::builder());
    let pc = Pullcast::start(&[]);

    let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": "cam1" }));
    assert_eq!(status, 200, "pull: {body}\n{}", pc.log_tail());
    let c = processed_with(&pc, &uri, true, true);

    for f in FIELDS {
        assert!(c.get(f).is_some(), "find_all element lacks `{f}`: {c}");
    }
    assert!(
        c["localMediaSessionId"].as_str().is_some_and(is_uuid),
        "localMediaSessionId is not a UUID: {c}"
    );
    assert_eq!(c["remoteMediaSessionId"], Value::Null);
    assert_eq!(c["remoteStreamName"], Value::Null);
    assert_eq!(c["localStreamName"], "cam1");
    assert_eq!(c["uri"], uri.as_str());
    assert_eq!(c["hasAudio"], true);
    assert_eq!(c["hasVideo"], true);
    assert_eq!(c["record"], false);
    assert_eq!(c["reason"], Value::Null, "{c}");
    assert!(
        c["startTime"].as_str().is_some_and(is_rfc3339),
        "startTime is not RFC 3339: {c}"
    );
    let v = &c["video"];
    assert_eq!(v["codec"], "H264", "{c}");
    assert_eq!(v["profile"], "Constrained Baseline", "{c}");
    assert_eq!(v["level"], "3.1", "{c}");
    assert_eq!(v["width"], 1280, "{c}");
    assert_eq!(v["height"], 720, "{c}");
    let fps = v["frameRate"].as_f64().unwrap_or(0.0);
    assert!((29.0..=31.0).contains(&fps), "video.frameRate {fps}: {c}");
    let a = &c["audio"];
    assert_eq!(a["codec"], "AAC", "{c}");
    assert_eq!(a["profile"], "AAC-LC", "{c}");
    assert_eq!(a["sampleRate"], 48_000, "{c}");
    assert_eq!(a["channels"], 2, "{c}");
    let meta = &c["metadata"];
    assert!(meta.is_object(), "metadata is not an object: {c}");
    assert_eq!(
        meta["width"].as_f64(),
        Some(1280.0),
        "onMetaData width: {c}"
    );
    assert_eq!(
        meta["height"].as_f64(),
        Some(720.0),
        "onMetaData height: {c}"
    );

    let (video_fps, audio_fps, bytes_per_s, c) = rates(&pc, &uri, Duration::from_millis(3500));
    assert!(
        (24.0..=36.0).contains(&video_fps),
        "videoFrames grow at {video_fps:.1}/s, want ~30\n{c}\n{}",
        pc.log_tail()
    );
    // The source has a keyframe every 60 frames (x264 -g 60, no scene cuts in testsrc2 that
    // would add more than a few).
    let (frames, keyframes) = (num(&c, "videoFrames"), num(&c, "videoKeyframes"));
    assert!(
        keyframes >= 1.0 && keyframes <= frames / 60.0 + 3.0,
        "{keyframes} keyframes in {frames} frames with a 60-frame GOP\n{c}"
    );
    // 48000 Hz / 1024 samples per AAC frame = 46.9 frames/s.
    assert!(
        (38.0..=56.0).contains(&audio_fps),
        "audioFrames grow at {audio_fps:.1}/s, want ~46.9\n{c}"
    );
    assert!(
        bytes_per_s > 10_000.0,
        "bytesReceived grows at {bytes_per_s:.0} B/s\n{c}"
    );
    assert!(num(&c, "bitrateKbps") > 0.0, "bitrateKbps: {c}");

    // HTTPS answers the same list (trusting exactly the server's self-signed cert.pem).
    let (https_status, https_list) = pc.post_https("/pull/rtmp/find_all", "{}");
    assert_eq!(https_status, 200, "HTTPS find_all: {https_list}");
    let key = |list: &Value| -> Vec<(Value, Value, Value)> {
        list.as_array()
            .unwrap_or_else(|| panic!("not an array: {list}"))
            .iter()
            .map(|c| {
                (
                    c["localMediaSessionId"].clone(),
                    c["uri"].clone(),
                    c["localStreamName"].clone(),
                )
            })
            .collect()
    };
    let (_, http_list) = pc.find_all();
    assert_eq!(
        key(&https_list),
        key(&http_list),
        "HTTPS list differs from HTTP list"
    );
    assert_eq!(key(&http_list).len(), 1);

    // The same uri again, or another uri under the same local name → 409.
    assert_error(
        &pc,
        "second pull of the same uri",
        pc.pull(&json!({ "uri": uri })),
        409,
    );
    let other = nginx.rtmp_url("live/other");
    assert_error(
        &pc,
        "pull of another uri under the same localStreamName",
        pc.pull(&json!({ "uri": other, "localStreamName": "cam1" })),
        409,
    );
    assert_eq!(pc.captures().len(), 1, "a refused pull was listed anyway");

    assert_error(
        &pc,
        "terminate of an unknown uri",
        pc.terminate(&nginx.rtmp_url("live/unknown")),
        404,
    );
    let (status, body) = pc.terminate(&uri);
    assert_eq!(status, 200, "terminate: {body}\n{}", pc.log_tail());
    assert_error(&pc, "find_all after terminate", pc.find_all(), 404);
    assert_error(&pc, "second terminate", pc.terminate(&uri), 404);
}

#[test]
fn local_name_defaults_to_uri_and_record_accepts_strings_and_booleans() {
    // Nobody publishes: the captures stay PENDING, which is all this test needs.
    let nginx = NginxRtmp::start();
    let pc = Pullcast::start(&[]);
    let u = |s: &str| nginx.rtmp_url(&format!("live/{s}"));
    let cases = [
        (json!({ "uri": u("a") }), u("a"), false, true),
        (
            json!({ "uri": u("b"), "localStreamName": "b", "record": "true" }),
            "b".into(),
            true,
            true,
        ),
        (
            json!({ "uri": u("c"), "localStreamName": "c", "record": true }),
            "c".into(),
            true,
            true,
        ),
        (
            json!({ "uri": u("d"), "localStreamName": "d", "record": "false", "hasAudio": false }),
            "d".into(),
            false,
            false,
        ),
        (
            json!({ "uri": u("e"), "localStreamName": "e", "record": false }),
            "e".into(),
            false,
            true,
        ),
    ];
    for (body, _, _, _) in &cases {
        let (status, reply) = pc.pull(body);
        assert_eq!(status, 200, "pull {body}: {reply}\n{}", pc.log_tail());
    }
    let list = pc.captures();
    assert_eq!(list.len(), cases.len(), "find_all: {list:?}");
    for (body, local_name, record, has_audio) in &cases {
        let uri = body["uri"].as_str().unwrap();
        let c = list
            .iter()
            .find(|c| c["uri"] == uri)
            .unwrap_or_else(|| panic!("{uri} not listed: {list:?}"));
        assert_eq!(c["localStreamName"], local_name.as_str(), "{body} → {c}");
        assert_eq!(c["record"], Value::Bool(*record), "{body} → {c}");
        assert_eq!(c["hasAudio"], Value::Bool(*has_audio), "{body} → {c}");
        assert_eq!(c["hasVideo"], true, "{body} → {c}");
        assert!(
            matches!(
                c["status"].as_str(),
                Some("PENDING" | "PROCESSED_REMOTE" | "FAILED")
            ),
            "status: {c}"
        );
    }
    let ids: std::collections::HashSet<_> = list
        .iter()
        .map(|c| c["localMediaSessionId"].to_string())
        .collect();
    assert_eq!(
        ids.len(),
        cases.len(),
        "session ids are not unique: {list:?}"
    );
    for (body, _, _, _) in &cases {
        let (status, reply) = pc.terminate(body["uri"].as_str().unwrap());
        assert_eq!(status, 200, "terminate {body}: {reply}");
    }
    assert_error(&pc, "find_all after terminating all", pc.find_all(), 404);
}

#[test]
fn closed_port_fails_with_connection_refused_and_stays_listed() {
    let pc = Pullcast::start(&[]);
    let uri = format!("rtmp://127.0.0.1:{}/live/x", free_port());
    pc.pull_ok(&uri);
    let c = pc.wait_for(
        &uri,
        Duration::from_secs(10),
        "FAILED: connection refused",
        |c| c["status"] == "FAILED" && reason(c).contains("connection refused"),
    );
    assert_eq!(c["video"], Value::Null, "{c}");
    std::thread::sleep(Duration::from_secs(1));
    let c = pc
        .capture(&uri)
        .expect("a FAILED capture stays listed until terminated");
    assert_eq!(c["status"], "FAILED", "{c}");
    // The history says how it got there, with the reason.
    let history = c["history"].as_array().expect("history");
    let statuses: Vec<&str> = history
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["PENDING", "FAILED"], "{c}");
    assert!(history[1]["reason"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
    assert!(
        history
            .iter()
            .all(|h| h["time"].as_str().is_some_and(is_rfc3339)),
        "{c}"
    );
    let (status, body) = pc.terminate(&uri);
    assert_eq!(status, 200, "terminate: {body}");
    assert_error(&pc, "find_all after terminate", pc.find_all(), 404);
}

#[test]
fn unresolvable_host_fails_with_cannot_resolve() {
    let pc = Pullcast::start(&[]);
    let uri = "rtmp://nonexistent.invalid/live/x";
    pc.pull_ok(uri);
    pc.wait_for(
        uri,
        Duration::from_secs(15),
        "FAILED: cannot resolve",
        |c| c["status"] == "FAILED" && reason(c).contains("cannot resolve"),
    );
}

#[test]
fn garbage_instead_of_a_handshake_fails_with_a_reason_and_the_server_goes_on() {
    // An HTTP server's answer where an RTMP handshake should be, then 4 KiB of noise.
    let mut reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec();
    reply.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let garbage = SilentTcpListener::replying(reply);
    let pc = Pullcast::start(&[("PULLCAST_CAPTURE__HANDSHAKE_TIMEOUT_MS", "3000")]);
    let uri = format!("rtmp://127.0.0.1:{}/live/x", garbage.port());
    pc.pull_ok(&uri);
    let c = pc.wait_for(&uri, Duration::from_secs(8), "FAILED: handshake", |c| {
        c["status"] == "FAILED" && reason(c).to_lowercase().contains("handshake")
    });
    assert_eq!(c["video"], Value::Null, "{c}");
    // The server is still fine: another call answers.
    let (status, _) = pc.terminate(&uri);
    assert_eq!(status, 200);
    assert_error(&pc, "find_all after terminate", pc.find_all(), 404);
}

#[test]
fn silent_server_fails_with_handshake_timed_out() {
    let silent = SilentTcpListener::start();
    let pc = Pullcast::start(&[("PULLCAST_CAPTURE__HANDSHAKE_TIMEOUT_MS", "1500")]);
    let uri = format!("rtmp://127.0.0.1:{}/live/x", silent.port());
    let t0 = Instant::now();
    pc.pull_ok(&uri);
    pc.wait_for(
        &uri,
        Duration::from_secs(5),
        "FAILED: handshake timed out",
        |c| c["status"] == "FAILED" && reason(c).contains("handshake timed out"),
    );
    let took = t0.elapsed();
    assert!(
        silent.accepted() >= 1,
        "pullcast never connected to the silent server"
    );
    assert!(
        took >= Duration::from_millis(1300),
        "failed after {took:?}, before the 1500 ms handshake timeout could expire"
    );
}

#[test]
fn stream_without_media_fails_with_no_media() {
    // nginx-rtmp accepts `play` of a stream nobody publishes and then sends nothing.
    let nginx = NginxRtmp::start();
    let pc = Pullcast::start(&[("PULLCAST_CAPTURE__MEDIA_TIMEOUT_MS", "2000")]);
    let uri = nginx.rtmp_url("live/nobody");
    let t0 = Instant::now();
    pc.pull_ok(&uri);
    pc.wait_for(&uri, Duration::from_secs(8), "FAILED: no media", |c| {
        c["status"] == "FAILED" && reason(c).contains("no media")
    });
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1800),
        "failed after {took:?}, before the 2000 ms media timeout could expire"
    );
}

#[test]
fn pulls_from_ffmpeg_listen_server_with_media_on_stream_id_0() {
    let port = free_port();
    let _server = Publisher::listen_server(port, "live/test");
    let pc = Pullcast::start(&[]);
    let uri = format!("rtmp://127.0.0.1:{port}/live/test");
    pc.pull_ok(&uri);
    let c = processed_with(&pc, &uri, true, true);
    assert_eq!(c["video"]["codec"], "H264", "{c}");
    assert_eq!(c["video"]["width"], 1280, "{c}");
    assert_eq!(c["audio"]["codec"], "AAC", "{c}");
    assert_eq!(c["audio"]["sampleRate"], 48_000, "{c}");
    let (video_fps, audio_fps, _, c) = rates(&pc, &uri, Duration::from_secs(3));
    assert!(
        (24.0..=36.0).contains(&video_fps),
        "video {video_fps:.1} fps: {c}"
    );
    assert!(audio_fps > 30.0, "audio {audio_fps:.1} frames/s: {c}");
}

#[test]
fn audio_only_and_video_only_sources() {
    let nginx = NginxRtmp::start();
    let (_a, audio_uri) = nginx.publish("audio", Publisher::builder().audio_only());
    let (_v, video_uri) = nginx.publish("video", Publisher::builder().video_only());
    let pc = Pullcast::start(&[]);
    pc.pull_ok(&audio_uri);
    pc.pull_ok(&video_uri);

    let a = processed_with(&pc, &audio_uri, false, true);
    let v = processed_with(&pc, &video_uri, true, false);
    assert_eq!(a["audio"]["codec"], "AAC", "{a}");
    assert_eq!(v["video"]["codec"], "H264", "{v}");
    // Give a wrong "the other track is coming" guess time to show up.
    let (a_video, a_audio, _, a) = rates(&pc, &audio_uri, Duration::from_secs(2));
    assert_eq!(
        a["video"],
        Value::Null,
        "audio-only source reports video: {a}"
    );
    assert_eq!(a_video, 0.0, "audio-only source counts video frames: {a}");
    assert!(
        a_audio > 30.0,
        "audio-only: {a_audio:.1} audio frames/s: {a}"
    );
    let v = pc.capture(&video_uri).expect("video-only listed");
    assert_eq!(
        v["audio"],
        Value::Null,
        "video-only source reports audio: {v}"
    );
    assert_eq!(
        num(&v, "audioFrames"),
        0.0,
        "video-only source counts audio frames: {v}"
    );
    assert!(num(&v, "videoFrames") > 0.0, "{v}");
}

#[test]
fn aac_11025_hz_mono_is_described() {
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("low", Publisher::builder().audio(11_025, 1));
    let pc = Pullcast::start(&[]);
    pc.pull_ok(&uri);
    let c = processed_with(&pc, &uri, true, true);
    assert_eq!(c["audio"]["codec"], "AAC", "{c}");
    assert_eq!(c["audio"]["sampleRate"], 11_025, "{c}");
    assert_eq!(c["audio"]["channels"], 1, "{c}");
    // 11025 Hz / 1024 samples per frame = 10.8 frames/s.
    let (_, audio_fps, _, c) = rates(&pc, &uri, Duration::from_secs(3));
    assert!(
        (7.0..=15.0).contains(&audio_fps),
        "audio {audio_fps:.1} frames/s, want ~10.8: {c}"
    );
}

#[test]
fn capture_limit_refuses_with_500() {
    let nginx = NginxRtmp::start();
    let pc = Pullcast::start(&[("PULLCAST_LIMITS__MAX_CAPTURES", "1")]);
    let first = nginx.rtmp_url("live/one");
    let second = nginx.rtmp_url("live/two");
    pc.pull_ok(&first);
    let body = assert_error(
        &pc,
        "pull beyond max_captures",
        pc.pull(&json!({ "uri": second })),
        500,
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("limit"),
        "the error should mention the limit: {body}"
    );
    assert_eq!(pc.captures().len(), 1, "the refused pull was listed");
    // Terminating frees the slot.
    assert_eq!(pc.terminate(&first).0, 200);
    pc.pull_ok(&second);
}
