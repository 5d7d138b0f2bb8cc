//! A dropped source comes back and its viewers stay, with real peers: a Chromium viewer on
//! pullcast's player page keeps playing — same peer connection, no new signalling — while
//! the ffmpeg publisher is killed for 3 s, and while nginx itself is restarted; the
//! recording of the same capture continues in one file that decodes cleanly. A silent TCP
//! server keeps a REST capture retrying with a handshake-timeout reason; an on-demand
//! capture whose source never returns gives up and its viewer gets FAILED.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pullcast_integration_tests::browser::{exclusive, play_on_player_page};
use pullcast_integration_tests::ports::SilentTcpListener;
use pullcast_integration_tests::probe::probe_file;
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast};
use serde_json::{json, Value};

/// Milliseconds since the epoch, the clock the browser's samples use.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// What the test did to the source, on the wall clock.
struct Outage {
    /// The source went away.
    lost_at: u64,
    /// The source was publishing again (nginx logged the new publish).
    back_at: u64,
    /// What `find_all` said in between.
    statuses_seen: Vec<String>,
    reasons_seen: Vec<String>,
    /// The new publisher, kept running until the test ends.
    publisher: Option<Publisher>,
}

/// Polls the capture every 100 ms for `for_ms`, collecting statuses and reasons.
fn watch_statuses(pc: &Pullcast, uri: &str, for_ms: u64, outage: &mut Outage) {
    let end = Instant::now() + Duration::from_millis(for_ms);
    while Instant::now() < end {
        if let Some(c) = pc.capture(uri) {
            let status = c["status"].as_str().unwrap_or("").to_string();
            if !outage.statuses_seen.contains(&status) {
                outage.statuses_seen.push(status);
            }
            if let Some(reason) = c["reason"].as_str() {
                if !outage.reasons_seen.iter().any(|r| r == reason) {
                    outage.reasons_seen.push(reason.to_string());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Takes the source away with `drop_source`, watches `find_all` for 3 s, brings it back
/// with `bring_back` (which returns once nginx has the new publish) and watches 1.5 s more.
/// Both steps get `peers` (what they stop and start).
fn outage<P>(
    pc: &Pullcast,
    uri: &str,
    peers: &mut P,
    drop_source: impl FnOnce(&mut P),
    bring_back: impl FnOnce(&mut P) -> Publisher,
) -> Outage {
    drop_source(peers);
    // Taken once the source is really gone (stopping nginx or a process tree takes a while).
    let mut outage = Outage {
        lost_at: wall_ms(),
        back_at: 0,
        statuses_seen: Vec::new(),
        reasons_seen: Vec::new(),
        publisher: None,
    };
    watch_statuses(pc, uri, 3000, &mut outage);
    outage.publisher = Some(bring_back(peers));
    outage.back_at = wall_ms();
    watch_statuses(pc, uri, 1500, &mut outage);
    outage
}

fn assert_reconnecting_seen(outage: &Outage) {
    assert!(
        outage.statuses_seen.iter().any(|s| s == "RECONNECTING"),
        "find_all never showed RECONNECTING: {:?} {:?}",
        outage.statuses_seen,
        outage.reasons_seen
    );
}

/// A viewer's first frame went out (the server counts it; PLAYING was sent with it).
fn first_frame_sent(capture: Value) -> bool {
    capture["webrtc"]["firstFrameMs"]["count"].as_u64() >= Some(1)
}

/// Plays `name` in Chromium for `run_ms` while `disturb` runs (once the viewer has played
/// for 2 s). Returns the driver's result and what `disturb` reported.
fn play_through(
    pc: &Pullcast,
    uri: &str,
    name: &str,
    run_ms: u64,
    disturb: impl FnOnce() -> Outage + Send,
) -> (Value, Outage) {
    std::thread::scope(|scope| {
        let disturber = scope.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !pc.capture(uri).is_some_and(first_frame_sent) {
                assert!(
                    Instant::now() < deadline,
                    "the browser never started playing"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_secs(2));
            disturb()
        });
        let result = play_on_player_page(&pc.http_root(), name, run_ms, true, run_ms + 40_000);
        (result, disturber.join().unwrap())
    })
}

fn decoded_at(samples: &[Value], wall: u64) -> u64 {
    samples
        .iter()
        .filter(|s| s["wall"].as_u64().unwrap() <= wall)
        .map(|s| s["framesDecoded"].as_u64().unwrap())
        .next_back()
        .unwrap_or(0)
}

/// The viewer lived through the outage: decoding before, a pause during, new frames within
/// 2 s of the source's return, one peer connection and one `play` throughout.
fn assert_viewer_survived(result: &Value, outage: &Outage) {
    let samples = result["samples"].as_array().unwrap();
    let last = samples.last().unwrap();
    let context = || {
        let brief: Vec<(u64, u64)> = samples
            .iter()
            .map(|s| {
                (
                    s["wall"].as_u64().unwrap(),
                    s["framesDecoded"].as_u64().unwrap(),
                )
            })
            .collect();
        format!(
            "lost at {}, back at {}; samples (wall, framesDecoded): {brief:?}\nstatuses: {}\nsent: {}",
            outage.lost_at, outage.back_at, result["statuses"], result["sent"]
        )
    };
    let before = decoded_at(samples, outage.lost_at);
    assert!(
        before >= 30,
        "too little decoded before the outage\n{}",
        context()
    );
    // The outage was real: nothing new was decoded while the source was away — counted from
    // 1 s after the kill, since frames already on their way (nginx, the network, the
    // browser's jitter buffer, a decoder still catching up on its start) play out first.
    let settled = decoded_at(samples, outage.lost_at + 1000);
    let during = decoded_at(samples, outage.back_at.saturating_sub(300));
    assert!(
        during <= settled + 3,
        "frames kept coming while the source was away?\n{}",
        context()
    );
    let at_return = decoded_at(samples, outage.back_at);
    let resumed = samples.iter().find(|s| {
        s["wall"].as_u64().unwrap() > outage.back_at
            && s["framesDecoded"].as_u64().unwrap() > at_return
    });
    let resumed_after = resumed.map(|s| s["wall"].as_u64().unwrap() - outage.back_at);
    assert!(
        resumed_after.is_some_and(|ms| ms <= 2000),
        "new frames {resumed_after:?} ms after the source returned (limit 2000)\n{}",
        context()
    );
    eprintln!(
        "viewer decoded new frames within {} ms of the source's return",
        resumed_after.unwrap()
    );
    let after = last["framesDecoded"].as_u64().unwrap() - at_return;
    assert!(
        after >= 60,
        "only {after} frames after the return\n{}",
        context()
    );
    assert_eq!(last["connection"], "connected", "{}", context());
    assert_eq!(result["samePeerConnection"], true, "{}", context());
    // No renegotiation: one `play`, and the page showed PLAYING until the test stopped it.
    let plays = result["sent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "play")
        .count();
    assert_eq!(plays, 1, "{}", context());
    let last_sample_wall = last["wall"].as_u64().unwrap();
    for s in result["statuses"].as_array().unwrap() {
        if s["wall"].as_u64().unwrap() <= last_sample_wall {
            assert!(
                s["status"] == "PENDING" || s["status"] == "PLAYING",
                "status {s} during the run\n{}",
                context()
            );
        }
    }
}

#[test]
fn a_chromium_viewer_keeps_playing_through_a_publisher_restart_and_the_recording_continues() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (publisher, uri) = nginx.publish("comeback", Publisher::builder());
    let pc = Pullcast::start(&[]);
    let (status, body) = pc.pull(&json!({
        "uri": uri, "localStreamName": "comeback", "record": true
    }));
    assert_eq!(status, 200, "{body}");
    let c = pc.wait_for(&uri, Duration::from_secs(15), "recording", |c| {
        c["status"] == "PROCESSED_REMOTE" && c["recording"]["file"].is_string()
    });
    let file = c["recording"]["file"].as_str().unwrap().to_string();

    let (result, outage) = play_through(&pc, &uri, "comeback", 12_000, || {
        let mut publisher = publisher;
        outage(
            &pc,
            &uri,
            &mut publisher,
            |p| p.stop(),
            |_| nginx.publish("comeback", Publisher::builder()).0,
        )
    });
    assert_reconnecting_seen(&outage);
    assert!(
        outage
            .reasons_seen
            .iter()
            .any(|r| r.contains("stopped publishing")),
        "{:?}",
        outage.reasons_seen
    );
    assert_viewer_survived(&result, &outage);

    let c = pc.capture(&uri).unwrap();
    assert_eq!(c["status"], "PROCESSED_REMOTE", "{c}");
    assert_eq!(c["reconnects"], 1, "{c}");
    assert_eq!(
        c["recording"]["file"], file,
        "the recording continues in the same file: {c}"
    );
    let path = pc.terminate_and_check_recording(&uri, &file);
    let probe = probe_file(&path, &["-show_format"]);
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    // Before, the 3 s gap, and after: one file spans them all.
    assert!(duration >= 12.0, "recording lasts {duration} s: {probe}");
    let dir_entries = std::fs::read_dir(pc.dir().join("records"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".mp4"))
        .count();
    assert_eq!(dir_entries, 1, "one recording file expected");
}

#[test]
fn a_chromium_viewer_keeps_playing_through_an_nginx_restart() {
    let _browser = exclusive();
    let mut nginx = NginxRtmp::start();
    // nginx-rtmp keeps no GOP: a player that connects after the publisher's first keyframe
    // waits for the next one. A 1 s GOP and retries at most 500 ms apart keep "back" →
    // "decoded" within the 2 s budget wherever in the backoff the restart falls
    // (bench/reconnect.sh measures the defaults).
    let source = || Publisher::builder().gop(30);
    let (publisher, uri) = nginx.publish("restart", source());
    let pc = Pullcast::start(&[("PULLCAST_CAPTURE__RECONNECT_MAX_MS", "500")]);
    let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": "restart" }));
    assert_eq!(status, 200, "{body}");
    pc.wait_for_status(&uri, "PROCESSED_REMOTE", Duration::from_secs(10));

    let (result, outage) = play_through(&pc, &uri, "restart", 12_000, || {
        let mut peers = (&mut nginx, publisher);
        outage(
            &pc,
            &uri,
            &mut peers,
            |(nginx, publisher)| {
                nginx.stop();
                publisher.stop();
            },
            |(nginx, _)| {
                nginx.restart();
                nginx.publish("restart", source()).0
            },
        )
    });
    assert_reconnecting_seen(&outage);
    assert_viewer_survived(&result, &outage);
    let c = pc.capture(&uri).unwrap();
    assert_eq!(c["status"], "PROCESSED_REMOTE", "{c}");
    assert!(c["reconnects"].as_u64().unwrap() >= 1, "{c}");
    let history: Vec<&str> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert!(
        history.ends_with(&["RECONNECTING", "PROCESSED_REMOTE"]),
        "{history:?}"
    );
}

#[test]
fn a_silent_server_keeps_a_rest_capture_retrying_with_a_handshake_timeout_reason() {
    let silent = SilentTcpListener::start();
    let pc = Pullcast::start(&[
        ("PULLCAST_CAPTURE__HANDSHAKE_TIMEOUT_MS", "800"),
        ("PULLCAST_CAPTURE__RECONNECT_INITIAL_MS", "200"),
    ]);
    let uri = format!("rtmp://127.0.0.1:{}/live/x", silent.port());
    let t0 = Instant::now();
    pc.pull_ok(&uri);
    let c = pc.wait_for(&uri, Duration::from_secs(10), "a third attempt", |c| {
        c["status"] == "FAILED"
            && c["reason"]
                .as_str()
                .is_some_and(|r| r.contains("handshake timed out after 800 ms"))
            && c["retry"]["attempt"].as_u64().unwrap_or(0) >= 2
    });
    assert!(
        silent.accepted() >= 2,
        "only {} connections",
        silent.accepted()
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(1600),
        "two 800 ms handshake timeouts took only {:?}",
        t0.elapsed()
    );
    // The same failure again and again is one history entry, not one per attempt.
    let failed = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "FAILED")
        .count();
    assert_eq!(failed, 1, "{c}");
    // Terminate stops the retries.
    assert_eq!(pc.terminate(&uri).0, 200);
    std::thread::sleep(Duration::from_millis(300));
    let accepted = silent.accepted();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        silent.accepted(),
        accepted,
        "still retrying after terminate"
    );
}

#[test]
fn an_on_demand_capture_whose_source_never_returns_gives_up_and_fails_its_viewer() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (mut publisher, uri) = nginx.publish("vanish", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&[("PULLCAST_CAPTURE__ON_DEMAND_GIVE_UP_MS", "3000")]);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !pc.capture(&uri).is_some_and(first_frame_sent) {
                assert!(
                    Instant::now() < deadline,
                    "the browser never started playing"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(1500));
            publisher.stop();
        });
        play_on_player_page(&pc.http_root(), &uri, 8000, false, 40_000)
    });
    let statuses: Vec<&Value> = result["statuses"].as_array().unwrap().iter().collect();
    assert!(
        statuses.iter().any(|s| s["status"] == "PLAYING"),
        "{result}"
    );
    let final_status = &result["final"];
    assert_eq!(final_status["status"], "FAILED", "{result}");
    let reason = final_status["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("did not come back within 3000 ms"),
        "reason: {reason}"
    );
    // The capture is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pc.find_all().0 != 404 {
        assert!(Instant::now() < deadline, "{:?}", pc.find_all());
        std::thread::sleep(Duration::from_millis(100));
    }
}
