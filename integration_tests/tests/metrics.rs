//! `GET /metrics`, proven with Prometheus's own checker: while a capture of an nginx-rtmp
//! source is played over HTTP-FLV, HLS and RTMP, the scrape passes `promtool check metrics`,
//! our own reader finds the figures, counters move with the traffic, viewers are counted by
//! protocol (as find_all shows them), a stream name with a quote and non-ASCII is escaped,
//! refusals are counted; and only callers with `api` may scrape unless `metrics.public`.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pullcast_integration_tests::process::require_tool;
use pullcast_integration_tests::prom::{self, Sample};
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast};
use serde_json::json;

/// The scrape as `authorization` (or anonymous): status and body.
fn scrape(pc: &Pullcast, authorization: Option<&str>) -> (u16, String) {
    let agent = pullcast_integration_tests::http::agent();
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    pullcast_integration_tests::http::send_with_headers(
        &agent,
        "GET",
        &format!("{}/metrics", pc.http_root()),
        None,
        &headers,
    )
    .unwrap()
}

/// `promtool check metrics` on `text`: its verdict and output.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new(require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn checked(pc: &Pullcast) -> Vec<Sample> {
    let (status, text) = scrape(pc, None);
    assert_eq!(status, 200, "{text}");
    let (ok, problems) = promtool(&text);
    assert!(ok, "promtool: {problems}\n{text}");
    prom::parse(&text).unwrap()
}

#[test]
fn metrics_follow_the_traffic_and_pass_promtool() {
    let nginx = NginxRtmp::start();
    let (_publisher, uri) = nginx.publish("metricsrc", Publisher::builder().size(320, 180));
    let pc = Pullcast::start(&[]);
    let name = "cam \"é\"";
    let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": name }));
    assert_eq!(status, 200, "{body}");
    pc.wait_for_keyframe(&uri, Duration::from_secs(10));
    let encoded = "cam%20%22%C3%A9%22";
    // A plain name for the RTMP player (an RTMP URL cannot carry the odd one).
    let (_second, plain_uri) = nginx.publish("metricsrc2", Publisher::builder().size(320, 180));
    let (status, body) = pc.pull(&json!({ "uri": plain_uri, "localStreamName": "plain" }));
    assert_eq!(status, 200, "{body}");
    pc.wait_for_keyframe(&plain_uri, Duration::from_secs(10));

    let first = checked(&pc);
    let stream = [("stream", name)];
    let bytes_before = prom::value(&first, "pullcast_capture_received_bytes_total", &stream)
        .expect("the capture's bytes, its name escaped and read back");
    assert_eq!(
        prom::value(
            &first,
            "pullcast_captures",
            &[("status", "PROCESSED_REMOTE")]
        ),
        Some(2.0)
    );

    // An HTTP-FLV player reads for a while (in a thread), an HLS player asks for the
    // playlist and a part, an RTMP player takes a second.
    let flv_url = format!("{}/{encoded}.flv", pc.http_root());
    let flv = std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        let mut reader = agent.get(&flv_url).call().unwrap().into_reader();
        let mut buf = vec![0u8; 64 * 1024];
        let started = Instant::now();
        let mut total = 0;
        while started.elapsed() < Duration::from_secs(6) {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    });
    let playlist_url = format!("{}/{encoded}/index.m3u8", pc.hls_root());
    let (status, playlist) = pc.request_url("GET", &playlist_url, None);
    assert_eq!(status, 200, "{playlist}");
    let part = playlist
        .lines()
        .find_map(|l| {
            l.strip_prefix("#EXT-X-PART:")
                .and_then(|a| a.split("URI=\"").nth(1))
        })
        .map(|u| u.split('"').next().unwrap().to_string())
        .expect("a part");
    let (status, _) = pc.request_url("GET", &format!("{}/{encoded}/{part}", pc.hls_root()), None);
    assert_eq!(status, 200);
    let rtmp = Command::new(require_tool("ffmpeg"))
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(pc.rtmp_url("plain"))
        .args(["-t", "1", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(rtmp.success(), "the RTMP player");
    let (status, _) = pc.request_url("GET", &format!("{}/nothing.flv", pc.http_root()), None);
    assert_eq!(status, 404);

    // While the FLV player reads: it is counted; so is the HLS player (seen lately).
    let deadline = Instant::now() + Duration::from_secs(5);
    let during = loop {
        let s = checked(&pc);
        let flv_now = prom::value(&s, "pullcast_viewers", &[("protocol", "flv")]);
        let hls_now = prom::value(&s, "pullcast_viewers", &[("protocol", "hls")]);
        if (flv_now == Some(1.0) && hls_now == Some(1.0)) || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        prom::value(&during, "pullcast_viewers", &[("protocol", "flv")]),
        Some(1.0)
    );
    assert_eq!(
        prom::value(
            &during,
            "pullcast_capture_viewers",
            &[("stream", name), ("protocol", "hls")]
        ),
        Some(1.0)
    );
    let capture = pc.capture(&uri).unwrap();
    assert_eq!(
        capture["viewers"]["flv"], 1,
        "find_all says the same: {capture}"
    );
    assert_eq!(capture["viewers"]["hls"], 1, "{capture}");
    let read = flv.join().unwrap();
    assert!(read > 10_000, "the FLV player read {read} bytes");

    let after = checked(&pc);
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let a = prom::value(&first, name, labels).unwrap_or(0.0);
        let b = prom::value(&after, name, labels).unwrap_or(0.0);
        assert!(b > a, "{name} {labels:?}: {a} then {b}");
    };
    grew("pullcast_capture_received_bytes_total", &stream);
    grew(
        "pullcast_capture_frames_total",
        &[("stream", name), ("track", "video")],
    );
    for protocol in ["flv", "hls", "rtmp"] {
        grew("pullcast_egress_bytes_total", &[("protocol", protocol)]);
        grew("pullcast_egress_frames_total", &[("protocol", protocol)]);
    }
    grew("pullcast_refusals_total", &[("reason", "not_found")]);
    assert!(
        prom::value(&after, "pullcast_capture_received_bytes_total", &stream).unwrap()
            > bytes_before
    );
    assert!(prom::value(&after, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(prom::value(&after, "process_open_fds", &[]).unwrap() > 3.0);
    // The latency histogram's +Inf bucket equals its count.
    let inf = prom::value(
        &after,
        "pullcast_webrtc_frame_latency_seconds_bucket",
        &[("stream", name), ("le", "+Inf")],
    );
    let count = prom::value(
        &after,
        "pullcast_webrtc_frame_latency_seconds_count",
        &stream,
    );
    assert_eq!(inf, count);
}

#[test]
fn only_api_callers_scrape_unless_public() {
    let config = r#"
[auth]
trusted_networks = []
anonymous = ["play"]

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api"]
"#;
    let pc = Pullcast::start_with_config(config, &[]);
    let (status, _) = scrape(&pc, None);
    assert_eq!(status, 401, "anonymous");
    let (status, text) = scrape(&pc, Some("Basic b3BzOm9wcy1wdw=="));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("pullcast_captures{status=\"PROCESSED_REMOTE\"} 0"));
    let public = Pullcast::start_with_config(config, &[("PULLCAST_METRICS__PUBLIC", "true")]);
    let (status, _) = scrape(&public, None);
    assert_eq!(status, 200, "metrics.public");
}
