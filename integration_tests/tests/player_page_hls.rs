//! The player page served by pullcast, in real headless Chromium, playing over LL-HLS with
//! its vendored hls.js instead of WebRTC: a pulled 640x360 stream plays at the source's
//! 30 fps, the page shows its delay behind the source (PROGRAM-DATE-TIME), Stop ends the
//! player, and the page's Content-Security-Policy blocks nothing on the way (the script, the
//! playlists and parts, the MediaSource `blob:`); an unknown name FAILS with the server's
//! reason as text.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pullcast_integration_tests::browser::{exclusive, run_driver};
use pullcast_integration_tests::cpu_load::CpuLoad;
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast};
use serde_json::{json, Value};

/// Plays `name` on the page of `pc` with HLS chosen (player_driver.js, `transport: "hls"`):
/// `run_ms` of samples after the first frame, then Stop.
fn play_hls(pc: &Pullcast, name: &str, run_ms: u64) -> Value {
    let spec = json!({
        "pageUrl": format!("{}/", pc.http_root()),
        "name": name,
        "transport": "hls",
        "runMs": run_ms,
        "stop": true,
        "timeoutMs": 50_000,
    });
    run_driver("player_driver.js", &spec, Duration::from_secs(70))
}

fn statuses(result: &Value) -> Vec<String> {
    result["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Nothing blocked by the page's CSP, no uncaught error in the page.
#[track_caller]
fn assert_clean_page(result: &Value) {
    assert_eq!(
        result["cspViolations"],
        json!([]),
        "the page's CSP blocked something: {result}"
    );
    assert_eq!(result["pageErrors"], json!([]), "page errors: {result}");
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
fn player_page_plays_a_pulled_stream_over_hls() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("hlspage", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&[]);
    let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": "hlspage" }));
    assert_eq!(status, 200, "{body}");
    pc.wait_for_keyframe(&uri, Duration::from_secs(10));

    let load = CpuLoad::start(pc.pid());
    let result = play_hls(&pc, "hlspage", 5000);
    let load = load.report();
    eprintln!(
        "[page hls] HTTP errors {}; console errors {}",
        result["httpErrors"], result["consoleErrors"]
    );
    assert_clean_page(&result);
    let seen = statuses(&result);
    let pending = seen.iter().position(|s| s == "PENDING");
    let playing = seen.iter().position(|s| s == "PLAYING");
    assert!(
        pending.is_some() && playing > pending,
        "PENDING then PLAYING expected: {seen:?}\n{result}\n{}",
        pc.log_tail()
    );
    assert_eq!(seen.last().map(String::as_str), Some("STOPPED"), "{seen:?}");
    // hls.js as the page configures it, in low-latency mode with blocking reloads and parts.
    assert_eq!(result["hls"]["lowLatencyMode"], true, "{result}");
    let requests = &result["requests"];
    assert_eq!(requests["script"], 1, "hls.js loaded once: {requests}");
    assert!(
        requests["msn"].as_u64() > Some(3) && requests["parts"].as_u64() > Some(3),
        "LL-HLS blocking reloads and parts: {requests}"
    );

    let samples = result["samples"].as_array().unwrap();
    let last = samples.last().unwrap();
    assert_eq!(
        (last["width"].as_u64(), last["height"].as_u64()),
        (Some(640), Some(360)),
        "{last}"
    );
    // Frames at the source's rate from the first second of playback on (the start may decode
    // a burst from the part's keyframe): 30 fps within 10 %.
    let first = samples.first().unwrap();
    let start_t = first["t"].as_f64().unwrap();
    let from = samples
        .iter()
        .rfind(|s| s["t"].as_f64().unwrap_or(f64::MAX) <= start_t + 1000.0)
        .unwrap();
    let number = |s: &Value, key: &str| s[key].as_f64().unwrap_or(0.0);
    let seconds = (number(last, "t") - number(from, "t")) / 1000.0;
    let frames = number(last, "framesDecoded") - number(from, "framesDecoded");
    let dropped = number(last, "framesDropped") - number(from, "framesDropped");
    let fps = frames / seconds;
    let played = number(last, "currentTime") - number(from, "currentTime");
    let delays: Vec<f64> = samples
        .iter()
        .filter_map(|s| s["delayMs"].as_f64())
        .collect();
    let shown = last["delayText"].as_str().unwrap_or("");
    eprintln!(
        "[page hls] first frame {} ms after Play; {frames} frames ({dropped} dropped) in \
         {seconds:.2} s = {fps:.1} fps, {played:.2} s played; delay behind the source p50 {:.0} \
         ms (max {:.0}), shown {shown:?}; hls.js latency {} s; requests {requests}; during the \
         browser run: {load}",
        result["firstFrameMs"],
        median(&delays),
        delays.iter().copied().fold(f64::NAN, f64::max),
        result["hls"]["latencyS"],
    );
    assert!(
        (27.0..=33.0).contains(&fps),
        "{frames} frames in {seconds:.2} s = {fps:.1} fps, 30 expected ({load}): {result}"
    );
    let drops: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (number(s, "t") - start_t, number(s, "framesDropped")))
        .collect();
    // Dropped frames are the renderer's, late on a machine shared with other work (11 % once
    // beside another test's Chromium); a player with a buffer shows delivery problems as
    // stalls (fewer frames, less played) rather than drops. One in five is something else.
    assert!(
        dropped * 5.0 <= frames,
        "{dropped} of {frames} dropped ({load}); frames dropped so far, by ms after the first \
         frame: {drops:?}"
    );
    assert!(
        played >= seconds * 0.9,
        "played {played:.2} s in {seconds:.2} s"
    );

    // The page shows the delay behind the source, updated each second, as a number of
    // seconds; what it shows agrees with PROGRAM-DATE-TIME (low latency: well under 3 s).
    let shown_s: f64 = shown
        .strip_prefix("delay behind the source: ")
        .and_then(|s| s.strip_suffix(" s"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no delay figure shown: {shown:?}\n{result}"));
    assert!(
        (0.0..3.0).contains(&shown_s),
        "delay shown {shown_s} s: {result}"
    );
    // Shown from about a second after the first frame on, in every sample after that, and
    // within a second's change of the delay at the end (it is refreshed once a second).
    let late = samples
        .iter()
        .filter(|s| s["t"].as_f64().unwrap_or(0.0) > start_t + 1500.0);
    let missing = late
        .clone()
        .filter(|s| s["delayText"].as_str().unwrap_or("").is_empty())
        .count();
    assert!(
        missing == 0 && late.count() > 10,
        "the delay was not shown in {missing} samples: {result}"
    );
    let last_delay = number(last, "delayMs");
    assert!(
        (shown_s * 1000.0 - last_delay).abs() < 1100.0,
        "shown {shown_s} s, the player's delay {last_delay} ms"
    );
    assert!(
        delays.len() * 2 >= samples.len() && (0.0..3000.0).contains(&median(&delays)),
        "delay behind the source: {delays:?}"
    );

    // Stop destroyed the player and emptied the element (no more requests to the server).
    let after = &result["afterStop"];
    assert_eq!(after["hls"], false, "{after}");
    assert_eq!(after["src"], Value::Null, "{after}");
    assert_eq!(after["delayText"], "", "{after}");
}

#[test]
fn player_page_over_hls_shows_why_an_unknown_stream_fails() {
    let _browser = exclusive();
    let pc = Pullcast::start(&[]);
    let result = play_hls(&pc, "no-such-stream", 500);
    assert_clean_page(&result);
    let final_status = &result["final"];
    assert_eq!(final_status["status"], "FAILED", "{result}");
    let reason = final_status["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("HTTP 404") && reason.contains("Stream not found"),
        "reason: {reason}"
    );
    assert!(
        !statuses(&result).contains(&"PLAYING".to_string()),
        "{result}"
    );
}
