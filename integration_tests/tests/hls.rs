//! LL-HLS, proven with real peers: a live ffmpeg → nginx-rtmp source pulled by pullcast and
//! played from `GET /{stream}/{stream}.m3u8` on the HLS listener — by hls.js in Chromium in
//! low-latency mode (blocking reloads, parts, delta updates; frames at the source's rate, the
//! 1 kHz tone, the delay behind the source by PROGRAM-DATE-TIME) and in plain mode, by
//! ffprobe and ffmpeg (streams, frames, decoded without an error); its playlists checked
//! against the RFC's rules by a reader of our own (`hls_check`); blocking requests, preload
//! hints, delta updates, the bounded wait and the end of a stream; names, on-demand pulls and
//! the access model.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::time::{Duration, Instant};

use pullcast_integration_tests::browser::{exclusive, run_driver};
use pullcast_integration_tests::hls_check::{self, Playlist};
use pullcast_integration_tests::probe::{
    assert_h264_aac, copy_and_count, decode_errors, probe_streams, reordered_video_packets,
};
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast, TempDir};
use serde_json::{json, Value};

/// One GET: status, body bytes, how long the answer took.
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>, Duration) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let started = Instant::now();
    let resp = match req.call() {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let mut body = Vec::new();
    resp.into_reader()
        .take(64 << 20)
        .read_to_end(&mut body)
        .unwrap_or_else(|e| panic!("GET {url}: reading: {e}"));
    (status, body, started.elapsed())
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The playlist at `url`, read and checked against the LL-HLS rules.
#[track_caller]
fn checked_playlist(pc: &Pullcast, url: &str) -> Playlist {
    let (status, body, _) = get(url, &[]);
    assert_eq!(status, 200, "GET {url}: {}\n{}", text(&body), pc.log_tail());
    let playlist =
        hls_check::parse(&text(&body)).unwrap_or_else(|e| panic!("{e}: {}", text(&body)));
    let violations = hls_check::violations(&playlist);
    assert!(violations.is_empty(), "{violations:#?}\n{}", text(&body));
    playlist
}

/// `uri` of a playlist at `playlist_url`, resolved.
fn resolve(playlist_url: &str, uri: &str) -> String {
    let folder = playlist_url
        .rsplit_once('/')
        .map_or(playlist_url, |(f, _)| f);
    format!("{folder}/{uri}")
}

#[test]
fn ffprobe_and_ffmpeg_read_the_ll_hls_playlist() {
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("hlssrc", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "hlsout");
    let url = format!("{}/hlsout/hlsout.m3u8", pc.hls_root());
    let started = Instant::now();
    let playlist = checked_playlist(&pc, &url);
    eprintln!(
        "[hls] first playlist after {:?}: part target {} s, {} segments",
        started.elapsed(),
        playlist.part_target,
        playlist.segments.len()
    );
    assert!(
        (0.18..=0.25).contains(&playlist.part_target),
        "{playlist:?}"
    );
    assert_eq!(playlist.target_duration, 2, "2 s GOPs: {playlist:?}");

    let streams = probe_streams(&url, Duration::from_secs(30));
    assert_h264_aac(&streams, 640, 360);

    // Six seconds of the live stream, copied as ffmpeg's HLS reader gets them.
    let dir = TempDir::new("hls");
    let copied = copy_and_count(&url, 6, dir.join("copy.mp4"));
    eprintln!(
        "[hls] ffmpeg copy: {} video frames, {} audio frames, audio {:.2} s",
        copied.video_frames, copied.audio_frames, copied.audio_seconds
    );
    // 30 fps and 48 kHz AAC (1024 samples a frame) for 6 s.
    assert!(copied.video_frames >= 170, "{copied:?}");
    assert!(copied.audio_frames >= 260, "{copied:?}");
    assert!(copied.audio_seconds >= 5.5, "{copied:?}");
    let copy = copied.file;
    let errors = decode_errors(&copy);
    assert!(errors.is_empty(), "the copy decodes with errors: {errors}");
}

#[test]
fn b_frames_go_through_hls_untouched() {
    let nginx = NginxRtmp::start();
    let source = Publisher::builder().size(640, 360).bframes(2);
    let (_publisher, uri) = nginx.publish("hlsbf", source);
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "hlsbf");
    let url = format!("{}/hlsbf/hlsbf.m3u8", pc.hls_root());
    let playlist = checked_playlist(&pc, &url);
    assert!(!playlist.segments.is_empty());
    let dir = TempDir::new("hls-bframes");
    let copied = copy_and_count(&url, 4, dir.join("copy.mp4"));
    let reordered = reordered_video_packets(&copied.file);
    eprintln!(
        "[hls] B-frames: {} video frames, {reordered} of the first 90 packets presented out of decode order",
        copied.video_frames
    );
    assert!(copied.video_frames >= 110, "{copied:?}");
    assert!(
        reordered > 20,
        "B-frames kept (presented out of decode order): {reordered}"
    );
    let errors = decode_errors(&copied.file);
    assert!(errors.is_empty(), "decoded with errors: {errors}");
}

#[test]
fn blocking_reloads_preload_hints_and_delta_updates() {
    let nginx = NginxRtmp::start();
    // One-second GOPs: TARGETDURATION 1, so delta updates skip after 6 s.
    let (mut publisher, uri) =
        nginx.publish("blocksrc", Publisher::builder().size(320, 180).gop(30));
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "block");
    let url = format!("{}/block/index.m3u8", pc.hls_root());
    let p = checked_playlist(&pc, &url);
    assert_eq!(p.target_duration, 1, "{p:?}");

    // The next part: answered when it closes, and listed.
    let (msn, part) = (p.next_msn(), p.open_parts.len() as u64 + 1);
    let (status, body, took) = get(&format!("{url}?_HLS_msn={msn}&_HLS_part={part}"), &[]);
    assert_eq!(status, 200, "{}", text(&body));
    let q = hls_check::parse(&text(&body)).unwrap();
    assert!(hls_check::violations(&q).is_empty(), "{}", text(&body));
    let has_it = (q.next_msn() == msn && q.open_parts.len() as u64 > part) || q.next_msn() > msn;
    assert!(has_it, "({msn}, {part}) not in\n{}", text(&body));
    eprintln!("[hls] blocking request for ({msn}, {part}) answered in {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A whole segment ahead: waits for it to complete.
    let (status, body, took) = get(&format!("{url}?_HLS_msn={}", q.next_msn()), &[]);
    assert_eq!(status, 200, "{}", text(&body));
    let r = hls_check::parse(&text(&body)).unwrap();
    assert!(r.next_msn() > q.next_msn(), "{}", text(&body));
    eprintln!(
        "[hls] blocking request for segment {} answered in {took:?}",
        q.next_msn()
    );

    // Too far ahead, or malformed: 400 at once.
    for query in [
        format!("_HLS_msn={}", r.next_msn() + 3),
        format!("_HLS_msn={}&_HLS_part=40", r.next_msn()),
        "_HLS_part=1".to_string(),
        "_HLS_msn=abc".to_string(),
        "_HLS_skip=maybe".to_string(),
    ] {
        let (status, body, took) = get(&format!("{url}?{query}"), &[]);
        assert_eq!(status, 400, "{query}: {}", text(&body));
        assert!(took < Duration::from_secs(1), "{query}: {took:?}");
    }

    // The preload hint: the request waits for the part, whose bytes are then those listed.
    let p = checked_playlist(&pc, &url);
    let hint = resolve(&url, p.preload_hint.as_deref().unwrap());
    let (status, hinted, took) = get(&hint, &[]);
    assert_eq!(status, 200, "{hint}: {}", text(&hinted));
    eprintln!(
        "[hls] preload-hinted part came in {took:?} ({} bytes)",
        hinted.len()
    );
    assert!(
        hinted.len() > 100 && &hinted[4..8] == b"moof",
        "a CMAF chunk"
    );
    let q = checked_playlist(&pc, &url);
    let listed = q.part_uris().into_iter().any(|u| resolve(&url, u) == hint);
    assert!(listed, "{hint} not listed: {q:?}");
    assert_eq!(get(&hint, &[]).1, hinted, "the same bytes when asked again");

    // A segment is its parts' bytes, one after the other.
    let with_parts = q
        .segments
        .iter()
        .rev()
        .find(|s| !s.parts.is_empty())
        .unwrap();
    let (status, segment, _) = get(&resolve(&url, &with_parts.uri), &[]);
    assert_eq!(status, 200);
    let mut joined = Vec::new();
    for part in &with_parts.parts {
        let (status, bytes, _) = get(&resolve(&url, &part.uri), &[]);
        assert_eq!(status, 200, "{}", part.uri);
        joined.extend_from_slice(&bytes);
    }
    assert_eq!(segment, joined, "segment {}", with_parts.msn);
    let (status, init, _) = get(&resolve(&url, q.map.as_deref().unwrap()), &[]);
    assert_eq!(status, 200);
    assert_eq!(&init[4..8], b"ftyp");

    // Delta updates: once the window holds more than 6 s, the oldest are skipped.
    let deadline = Instant::now() + Duration::from_secs(20);
    let full = loop {
        let p = checked_playlist(&pc, &url);
        if p.segments.len() >= 9 || Instant::now() > deadline {
            break p;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(full.segments.len() >= 9, "{full:?}");
    let at = format!("_HLS_msn={}&_HLS_part=0", full.next_msn());
    let (_, body, _) = get(&format!("{url}?{at}&_HLS_skip=YES"), &[]);
    let delta = hls_check::parse(&text(&body)).unwrap();
    let (_, body, _) = get(&format!("{url}?{at}"), &[]);
    let whole = hls_check::parse(&text(&body)).unwrap();
    assert!(delta.skipped >= 1, "{}", text(&body));
    assert!(delta.map.is_none(), "no EXT-X-MAP in a delta update");
    assert!(hls_check::violations(&delta).is_empty());
    assert_eq!(delta.media_sequence, whole.media_sequence);
    assert_eq!(
        delta.skipped as usize + delta.segments.len(),
        whole.segments.len(),
        "skipped + listed = the whole window"
    );
    let kept: f64 = delta.segments.iter().map(|s| s.duration).sum::<f64>()
        + delta.open_parts.iter().map(|p| p.duration).sum::<f64>();
    assert!(
        kept >= delta.can_skip_until,
        "{kept} s kept < CAN-SKIP-UNTIL"
    );
    eprintln!(
        "[hls] delta update: {} of {} segments skipped",
        delta.skipped,
        whole.segments.len()
    );

    // The source stops: a request for what will not come waits at most 3 target durations.
    publisher.stop();
    pc.wait_for_status(&uri, "RECONNECTING", Duration::from_secs(15));
    let p = checked_playlist(&pc, &url);
    let (status, body, took) = get(&format!("{url}?_HLS_msn={}&_HLS_part=5", p.next_msn()), &[]);
    eprintln!("[hls] a blocking request with the source gone: {status} after {took:?}");
    assert_eq!(status, 503, "{}", text(&body));
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
        "{took:?}"
    );

    // The capture ends: waiting requests are answered at once, new ones find nothing.
    let waiter = {
        let url = format!("{url}?_HLS_msn={}&_HLS_part=5", p.next_msn());
        std::thread::spawn(move || get(&url, &[]))
    };
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = pc.terminate(&uri);
    assert_eq!(status, 200, "{body}");
    let (status, body, took) = waiter.join().unwrap();
    assert_eq!(status, 404, "{}", text(&body));
    assert!(text(&body).contains("ended"), "{}", text(&body));
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (status, _, _) = get(&url, &[]);
    assert_eq!(status, 404);
}

#[test]
fn hls_names_files_and_on_demand_pulls() {
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("named", Publisher::builder().size(320, 180));
    let pc = Pullcast::start(&[]);
    let root = pc.hls_root();
    let status_of = |path: &str| {
        let (status, body, _) = get(&format!("{root}{path}"), &[]);
        (status, text(&body))
    };
    let (status, body) = status_of("/nothing/nothing.m3u8");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("Stream not found"), "{body}");
    let (status, body) = status_of("/%ff%fe/x.m3u8");
    assert_eq!(status, 400, "{body}");
    let (status, _) = status_of("/%E6%97%A5%E6%9C%AC%F0%9F%8E%A5/index.m3u8");
    assert_eq!(status, 404);
    let (status, _) = status_of(&format!("/{}/index.m3u8", "x".repeat(5000)));
    assert_eq!(status, 404);
    // Media files of a stream nobody plays over HLS, and names that are no HLS file.
    for path in [
        "/nothing/ab12_init.mp4",
        "/nothing/ab12_part3.mp4",
        "/named/x.mp4",
    ] {
        let (status, body) = status_of(path);
        assert_eq!(status, 404, "{path}: {body}");
    }

    // An rtmp:// name (percent-encoded, one path segment) pulls on demand.
    let encoded: String = uri
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    let url = format!("{root}/{encoded}/index.m3u8");
    let started = Instant::now();
    let p = checked_playlist(&pc, &url);
    eprintln!(
        "[hls] on-demand pull: first playlist after {:?}",
        started.elapsed()
    );
    let capture = pc.capture(&uri).expect("the on-demand capture");
    assert_eq!(capture["onDemand"], true, "{capture}");
    // A file of an old muxer (wrong prefix), a part long gone, one far ahead: 404.
    for file in [
        "00000000_init.mp4".to_string(),
        p.map.as_deref().unwrap().replace("_init", "_part999999"),
    ] {
        let (status, body, _) = get(&resolve(&url, &file), &[]);
        assert_eq!(status, 404, "{file}: {}", text(&body));
    }
}

#[test]
fn hls_plays_only_what_the_caller_may_play() {
    let config = r#"
[auth]
trusted_networks = []
anonymous = []
token_secret = "hls-test-secret-0123456789abcdef012"

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
    let (_cam, cam_uri) = nginx.publish("hlscam", Publisher::builder().size(320, 180));
    let mut pc = Pullcast::start_with_config(config, &[]);
    let ops = "Basic b3BzOm9wcy1wdw==";
    let viewer = "Basic dmlld2VyOnZpZXdlci1wdw==";
    pc.authorize(ops);
    pc.pull_named(&cam_uri, "cam1");
    let url = format!("{}/cam1/cam1.m3u8", pc.hls_root());
    let (status, _, _) = get(&url, &[]);
    assert_eq!(status, 401, "anonymous");
    let (status, body, _) = get(&url, &[("Authorization", viewer)]);
    assert_eq!(status, 200, "{}", text(&body));

    // A token in the query (players that cannot set headers): carried into every URI.
    let (status, body) = pc.post("/auth/token", &json!({ "stream": "cam1" }).to_string());
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let (status, body, _) = get(&format!("{url}?token={token}"), &[]);
    assert_eq!(status, 200, "{}", text(&body));
    let p = hls_check::parse(&text(&body)).unwrap();
    let suffix = format!("?token={token}");
    assert!(p.map.as_deref().unwrap().ends_with(&suffix), "{p:?}");
    assert!(p.part_uris().iter().all(|u| u.ends_with(&suffix)), "{p:?}");
    assert!(p.preload_hint.as_deref().unwrap().ends_with(&suffix));
    let part = resolve(&url, p.part_uris()[0]);
    let (status, _, _) = get(&part, &[]);
    assert_eq!(status, 200, "with the token");
    let bare = part.split('?').next().unwrap();
    let (status, _, _) = get(bare, &[]);
    assert_eq!(status, 401, "a part without credentials");
    let (status, _, _) = get(&format!("{bare}?token=forged"), &[]);
    assert!(status == 401 || status == 403, "a forged token: {status}");
}

/// The median of `values`.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn play_in_chromium(pc: &Pullcast, url: &str, low_latency: bool) -> Value {
    let spec = json!({
        "pageUrl": format!("{}/", pc.hls_root()),
        "playlistUrl": url,
        "scripts": ["node_modules/hls.js/dist/hls.min.js"],
        "lowLatency": low_latency,
        "runMs": 8_000,
        "timeoutMs": 50_000,
    });
    let result = run_driver("hls_driver.js", &spec, Duration::from_secs(70));
    assert_eq!(result["ok"], true, "{result}\n{}", pc.log_tail());
    assert_eq!(result["supported"], true, "MSE in this Chromium: {result}");
    let fatal: Vec<&Value> = result["errors"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["fatal"] == true).collect())
        .unwrap_or_default();
    assert!(fatal.is_empty(), "fatal player errors: {fatal:?}\n{result}");
    let (start, end) = (&result["start"], &result["final"]);
    let number = |v: &Value, key: &str| v[key].as_f64().unwrap_or(0.0);
    let frames = number(end, "totalVideoFrames") - number(start, "totalVideoFrames");
    let dropped = number(end, "droppedVideoFrames") - number(start, "droppedVideoFrames");
    let played = number(end, "currentTime") - number(start, "currentTime");
    let seconds = (number(end, "t") - number(start, "t")) / 1000.0;
    let delays: Vec<f64> = result["delaysMs"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let peaks: Vec<f64> = result["audio"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["hz"].as_f64()).collect())
        .unwrap_or_default();
    eprintln!(
        "[hls chromium {}] first frame {} ms, {frames} frames ({dropped} dropped), {played:.2} s played in {seconds:.2} s; delay behind the source p50 {} ms (max {}), hls.js latency {} s; tone {} Hz; requests {}",
        if low_latency { "LL" } else { "plain" },
        result["firstFrameMs"],
        median(&delays),
        delays.iter().copied().fold(f64::NAN, f64::max),
        result["latencyS"],
        median(&peaks),
        result["requests"]
    );
    assert!(
        frames >= seconds * 30.0 * 0.9,
        "{frames} frames in {seconds:.2} s: {result}"
    );
    assert!(dropped * 20.0 <= frames, "{dropped} of {frames} dropped");
    assert!(
        played >= seconds * 0.9,
        "played {played:.2} s in {seconds:.2} s"
    );
    assert!(delays.len() >= 10, "no PROGRAM-DATE-TIME delay: {result}");
    assert!(
        (985.0..=1015.0).contains(&median(&peaks)),
        "the 1 kHz tone is not what plays: {peaks:?}"
    );
    result
}

#[test]
fn hls_js_plays_it_in_low_latency_and_plain_mode() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("hlsweb", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&[]);
    pc.pull_named(&uri, "hlsweb");
    let url = format!("{}/hlsweb/hlsweb.m3u8", pc.hls_root());

    let ll = play_in_chromium(&pc, &url, true);
    let requests = &ll["requests"];
    assert!(
        requests["msn"].as_u64() > Some(5),
        "blocking reloads: {requests}"
    );
    assert!(
        requests["part"].as_u64() > Some(5),
        "part requests: {requests}"
    );
    assert!(
        requests["parts"].as_u64() > Some(5),
        "parts loaded: {requests}"
    );
    assert!(
        requests["skip"].as_u64() > Some(0),
        "delta updates: {requests}"
    );
    let level = &ll["level"];
    assert_eq!(level["canBlockReload"], true, "{level}");
    let delays: Vec<f64> = ll["delaysMs"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    // Glass to glass behind the server's arrival time (PROGRAM-DATE-TIME): under 1.5 s.
    assert!(
        median(&delays) < 1500.0,
        "LL delay p50 {} ms: {delays:?}",
        median(&delays)
    );

    let plain = play_in_chromium(&pc, &url, false);
    assert_eq!(
        plain["requests"]["parts"].as_u64(),
        Some(0),
        "plain mode loads segments"
    );
    assert!(plain["requests"]["segments"].as_u64() > Some(0));
}
