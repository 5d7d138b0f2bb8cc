//! Self-check of the harness against the real peers, independent of the server: nginx-rtmp
//! fed by ffmpeg carries the advertised streams (checked by ffprobe), the `ffmpeg -listen`
//! server serves them, the silent listener never answers, and dropping a peer leaves no
//! process behind.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use pullcast_integration_tests::probe::{probe_streams, stream_of};
use pullcast_integration_tests::process::{is_alive, process_tree};
use pullcast_integration_tests::{free_port, NginxRtmp, Publisher, SilentTcpListener};

const PROBE: Duration = Duration::from_secs(20);
const PUBLISHED: Duration = Duration::from_secs(10);

fn assert_gone(pids: &[u32], what: &str) {
    for pid in pids {
        assert!(!is_alive(*pid), "{what}: process {pid} is still running");
    }
}

#[test]
fn nginx_carries_the_base_source_and_leaves_nothing_behind() {
    let nginx = NginxRtmp::start();
    let nginx_pids = process_tree(nginx.pid().unwrap());
    assert!(
        nginx_pids.len() >= 2,
        "nginx master + worker: {nginx_pids:?}"
    );
    let url = nginx.rtmp_url("live/test");
    let publisher = Publisher::start(&url);
    let ffmpeg_pid = publisher.pid().unwrap();
    assert!(
        nginx.wait_published("test", PUBLISHED),
        "no publish logged\n{}\n{}",
        nginx.log_tail(),
        publisher.log_tail()
    );
    let streams = probe_streams(&url, PROBE);
    let v = stream_of(&streams, "video").expect("a video stream");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["profile"], "Constrained Baseline");
    assert_eq!(v["width"], 1280);
    assert_eq!(v["height"], 720);
    assert_eq!(v["r_frame_rate"], "30/1");
    let a = stream_of(&streams, "audio").expect("an audio stream");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["profile"], "LC");
    assert_eq!(a["sample_rate"], "48000");
    assert_eq!(a["channels"], 2);
    drop(publisher);
    drop(nginx);
    assert_gone(&[ffmpeg_pid], "ffmpeg");
    assert_gone(&nginx_pids, "nginx");
}

#[test]
fn publisher_variants_are_what_they_say() {
    let nginx = NginxRtmp::start();
    let audio_only = Publisher::builder()
        .audio_only()
        .audio(11_025, 1)
        .start(&nginx.rtmp_url("live/a"));
    let video_only = Publisher::builder()
        .video_only()
        .bframes(2)
        .video_bitrate_kbps(4000)
        .start(&nginx.rtmp_url("live/v"));
    for name in ["a", "v"] {
        assert!(
            nginx.wait_published(name, PUBLISHED),
            "{name} not published\n{}\n{}\n{}",
            nginx.log_tail(),
            audio_only.log_tail(),
            video_only.log_tail()
        );
    }
    let a = probe_streams(&nginx.rtmp_url("live/a"), PROBE);
    assert!(
        stream_of(&a, "video").is_none(),
        "audio-only has video: {a:?}"
    );
    let aa = stream_of(&a, "audio").expect("audio stream");
    assert_eq!(aa["sample_rate"], "11025");
    assert_eq!(aa["channels"], 1);
    let v = probe_streams(&nginx.rtmp_url("live/v"), PROBE);
    assert!(
        stream_of(&v, "audio").is_none(),
        "video-only has audio: {v:?}"
    );
    let vv = stream_of(&v, "video").expect("video stream");
    assert_eq!(vv["profile"], "High");
    assert_eq!(vv["has_b_frames"], 2);
}

#[test]
fn ffmpeg_listen_server_serves_one_client() {
    let port = free_port();
    let mut server = Publisher::listen_server(port, "live/test");
    let pid = server.pid().unwrap();
    let streams = probe_streams(&format!("rtmp://127.0.0.1:{port}/live/test"), PROBE);
    assert_eq!(
        stream_of(&streams, "video").expect("video")["codec_name"],
        "h264"
    );
    assert_eq!(
        stream_of(&streams, "audio").expect("audio")["sample_rate"],
        "48000"
    );
    // One client only: after ffprobe leaves, ffmpeg ends by itself (or is killed on drop).
    let _ = server.is_running();
    drop(server);
    assert_gone(&[pid], "ffmpeg -listen");
}

#[test]
fn silent_listener_accepts_and_never_writes() {
    let silent = SilentTcpListener::start();
    let mut s = TcpStream::connect(("127.0.0.1", silent.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = s
        .read(&mut buf)
        .expect_err("the silent listener wrote or closed");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert_eq!(silent.accepted(), 1);
    let port = silent.port();
    drop(silent);
    drop(s);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after drop"
    );
}
