//! The player page served by pullcast, in real headless Chromium, over the WebSocket
//! signalling: a pulled stream plays (video 1280x720 decoded, Opus audio well above
//! silence, first frame fast), Stop gives STOPPED, a missing name FAILED with its reason,
//! and an rtmp:// name starts an on-demand capture that ends after its last viewer.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use pullcast_integration_tests::browser::{exclusive, play_on_player_page};
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast};
use serde_json::{json, Value};

fn play(pc: &Pullcast, name: &str, run_ms: u64) -> Value {
    play_on_player_page(&pc.http_root(), name, run_ms, true, 40_000)
}

fn statuses(result: &Value) -> Vec<String> {
    result["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn player_page_plays_a_pulled_stream_over_websocket_signalling() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("cam", Publisher::builder());
    let pc = Pullcast::start(&[]);
    let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": "cam1" }));
    assert_eq!(status, 200, "{body}");
    // A viewer starts at once from here on: the first-frame limit is about that start.
    pc.wait_for_keyframe(&uri, Duration::from_secs(10));

    let result = play(&pc, "cam1", 5000);
    let seen = statuses(&result);
    let pending = seen.iter().position(|s| s == "PENDING");
    let playing = seen.iter().position(|s| s == "PLAYING");
    assert!(
        pending.is_some() && playing > pending,
        "PENDING then PLAYING expected: {seen:?}\n{result}\n{}",
        pc.log_tail()
    );
    assert_eq!(seen.last().map(String::as_str), Some("STOPPED"), "{seen:?}");

    let samples = result["samples"].as_array().unwrap();
    let last = samples.last().unwrap();
    let decoded = last["framesDecoded"].as_u64().unwrap();
    assert!(decoded >= 100, "framesDecoded {decoded} in 5 s: {last}");
    assert_eq!(
        (last["width"].as_u64(), last["height"].as_u64()),
        (Some(1280), Some(720))
    );
    // Counted from the first second of playback on, as the WHEP tests count: the start is
    // the capture's cached GOP replayed as a decode-at-once burst, and Chromium may skip part
    // of it on this shared 2-core machine when the next keyframe comes first (13 and 45
    // frames in 2 of 4 runs here); after that second a dropped frame is a delivery problem.
    // Samples start at the first decoded frame.
    let start = samples.first().and_then(|s| s["t"].as_u64()).unwrap_or(0);
    let at_1s = |key: &str| {
        samples
            .iter()
            .rfind(|s| s["t"].as_u64().unwrap_or(u64::MAX) <= start + 1000)
            .and_then(|s| s[key].as_u64())
            .unwrap_or(0)
    };
    let dropped = last["framesDropped"]
        .as_u64()
        .unwrap()
        .saturating_sub(at_1s("framesDropped"));
    let decoded_after = decoded.saturating_sub(at_1s("framesDecoded"));
    let drops: Vec<(u64, u64)> = samples
        .iter()
        .map(|s| {
            let t = s["t"].as_u64().unwrap_or(0).saturating_sub(start);
            (t, s["framesDropped"].as_u64().unwrap_or(0))
        })
        .filter(|(_, d)| *d > 0)
        .take(5)
        .collect();
    assert!(
        dropped * 20 <= decoded_after,
        "framesDropped {dropped} of {decoded_after} after the first second; the first samples \
         with drops (ms after the first frame, dropped so far): {drops:?}"
    );
    // Audio: Opus from the capture's transcoder, decoded, at a level well above silence.
    let samples_received = last["totalSamplesReceived"].as_u64().unwrap();
    assert!(
        samples_received > 48_000 * 3,
        "audio samples {samples_received}: {last}"
    );
    let loudest = samples
        .iter()
        .map(|s| s["audioLevel"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max);
    assert!(
        loudest > 0.05,
        "audio level {loudest}: the 1 kHz sine should be clearly audible"
    );
    let first = result["firstFrameMs"].as_f64();
    assert!(
        first.is_some_and(|ms| ms < 300.0),
        "first frame {first:?} ms after the connection was up (limit 300)"
    );
    eprintln!("first frame {first:?} ms after connected; {decoded} frames decoded");

    // The server measured what it added per frame and the viewer's first-frame time.
    let c = pc.capture(&uri).unwrap();
    let latency = &c["webrtc"]["frameLatencyMs"];
    assert!(latency["count"].as_u64().unwrap_or(0) >= 100, "{c}");
    assert!(
        latency["p50"].as_f64().is_some() && latency["p99"].as_f64().is_some(),
        "{c}"
    );
    assert_eq!(c["webrtc"]["firstFrameMs"]["count"], 1, "{c}");
    eprintln!(
        "server-side: frame latency {latency}, first frame {}",
        c["webrtc"]["firstFrameMs"]
    );

    // The viewer is gone from the capture once stopped.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = pc.capture(&uri).unwrap();
        if c["subscribers"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "viewer still subscribed: {c}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_missing_name_fails_with_stream_not_found() {
    let _browser = exclusive();
    let pc = Pullcast::start(&[]);
    let result = play(&pc, "no-such-stream", 500);
    let final_status = &result["final"];
    assert_eq!(final_status["status"], "FAILED", "{result}");
    let reason = final_status["reason"].as_str().unwrap_or("");
    assert!(reason.contains("Stream not found"), "reason: {reason}");
}

#[test]
fn an_rtmp_name_is_pulled_on_demand_and_stops_after_its_last_viewer() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("ondemand", Publisher::builder());
    let pc = Pullcast::start(&[("PULLCAST_CAPTURE__ON_DEMAND_LINGER_MS", "1500")]);
    let (status, _) = pc.find_all();
    assert_eq!(status, 404, "nothing is pulled before the viewer asks");

    // While the browser plays, find_all lists the on-demand capture.
    let listed = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Some(c) = pc.capture(&uri) {
                    if c["status"] == "PROCESSED_REMOTE" && c["subscribers"] == 1 {
                        return Some(c);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            None
        });
        let result = play(&pc, &uri, 3000);
        assert!(
            statuses(&result).contains(&"PLAYING".to_string()),
            "{result}"
        );
        watcher.join().unwrap()
    });
    let c = listed.expect("the on-demand capture was never listed as playing to one viewer");
    assert_eq!(c["onDemand"], true, "{c}");
    assert_eq!(c["localStreamName"], uri.as_str(), "{c}");

    // After the viewer stopped, it lingers 1.5 s, then ends.
    let deadline = Instant::now() + Duration::from_secs(8);
    while pc.find_all().0 != 404 {
        assert!(
            Instant::now() < deadline,
            "on-demand capture still listed: {:?}\n{}",
            pc.find_all(),
            pc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn terminate_ends_the_viewers_with_stopped_and_a_reason() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("ending", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&[]);
    let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": "ending" }));
    assert_eq!(status, 200, "{body}");
    pc.wait_for_status(&uri, "PROCESSED_REMOTE", Duration::from_secs(10));
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Terminate once the browser plays.
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if pc.capture(&uri).is_some_and(|c| c["subscribers"] == 1) {
                    std::thread::sleep(Duration::from_millis(1500));
                    let (status, _) = pc.terminate(&uri);
                    assert_eq!(status, 200);
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the browser never subscribed");
        });
        play_on_player_page(&pc.http_root(), "ending", 5000, false, 40_000)
    });
    let final_status = &result["final"];
    assert_eq!(final_status["status"], "STOPPED", "{result}");
    let reason = final_status["reason"].as_str().unwrap_or("");
    assert!(reason.contains("terminated"), "reason: {reason}");
}

#[test]
fn an_rtmp_name_whose_source_refuses_fails_its_viewer_at_once() {
    let _browser = exclusive();
    // A loopback port nobody listens on: the on-demand capture fails at its first connect,
    // usually before the browser's connection is up (it used to leave that viewer connected
    // to a capture that no longer existed, waiting for media until the browser gave up).
    let port = pullcast_integration_tests::free_port();
    let uri = format!("rtmp://127.0.0.1:{port}/live/nobody");
    let pc = Pullcast::start(&[]);
    let started = Instant::now();
    let result = play(&pc, &uri, 500);
    let took = started.elapsed();
    let final_status = &result["final"];
    assert_eq!(final_status["status"], "FAILED", "{result}");
    let reason = final_status["reason"].as_str().unwrap_or("");
    // The capture's own reason, whether the viewer was subscribed when it ended or finished
    // connecting after (then: "the stream ended before this viewer could start: …").
    assert!(reason.contains("refused"), "reason: {reason}");
    assert!(
        !statuses(&result).contains(&"PLAYING".to_string()),
        "{result}"
    );
    // Well before the WebRTC connect timeout (10 s) would have ended it.
    assert!(
        took < Duration::from_secs(9),
        "FAILED only after {took:?}: {result}"
    );
    eprintln!("on-demand source refused: FAILED after {took:?} with {reason:?}");
}
