//! Recording, proven with real peers: a live ffmpeg → nginx-rtmp source pulled with
//! `record`, the files checked by ffprobe and decoded by ffmpeg: every track, right timing,
//! B-frames, 11025 Hz, a crash (`kill -9`) that loses at most a second, the hook, the
//! listing and the Range download, and an unwritable folder that stops only the recording.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pullcast_integration_tests::probe::{decode_errors, probe_file};
use pullcast_integration_tests::{NginxRtmp, Publisher, PublisherBuilder, Pullcast};
use serde_json::{json, Value};

/// Pulls `uri` with `record` and waits until the recording file has started.
fn record(pc: &Pullcast, uri: &str, name: &str) -> Value {
    let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": name, "record": "true" }));
    assert_eq!(status, 200, "{body}");
    pc.wait_for(uri, Duration::from_secs(15), "recording started", |c| {
        c["record"] == true && c["recording"]["file"].is_string()
    })
}

/// A hook script that writes its two arguments as `stream|path` into the returned file.
fn hook_script(tag: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("pullcast-hook-{tag}-{}", std::process::id()));
    let out = base.with_extension("out");
    let hook = base.with_extension("sh");
    let script = format!("#!/bin/sh\necho \"$1|$2\" > {}\n", out.display());
    std::fs::write(&hook, script).unwrap();
    let made_executable = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();
    assert!(made_executable.success());
    let _ = std::fs::remove_file(&out);
    (hook, out)
}

fn file_of(pc: &Pullcast, c: &Value) -> PathBuf {
    pc.dir()
        .join("records")
        .join(c["recording"]["file"].as_str().unwrap())
}

fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

fn f(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or(f64::NAN)
}

/// Frames per stream type that ffprobe decoded.
fn decoded_frames(file: &Path) -> (u64, u64) {
    let p = probe_file(file, &["-count_frames", "-show_streams"]);
    let n = |kind| f(&stream(&p, kind)["nb_read_frames"]) as u64;
    (n("video"), n("audio"))
}

#[test]
fn records_every_track_with_the_right_timing_and_lists_and_serves_it() {
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("rec", Publisher::builder());
    let (hook, hook_out) = hook_script("rec");
    let pc = Pullcast::start(&[("PULLCAST_RECORD__HOOK", hook.to_str().unwrap())]);
    let c = record(&pc, &uri, "rec");
    let file = file_of(&pc, &c);
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(pc.terminate(&uri).0, 200);
    // The hook ran with the stream name and the absolute path.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hook_out.exists() {
        assert!(
            Instant::now() < deadline,
            "the hook did not run\n{}",
            pc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let said = std::fs::read_to_string(&hook_out).unwrap();
    let absolute = std::fs::canonicalize(&file).unwrap();
    assert_eq!(said.trim(), format!("rec|{}", absolute.display()));

    let p = probe_file(&file, &["-show_streams", "-show_format"]);
    let v = stream(&p, "video");
    let a = stream(&p, "audio");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "48000");
    let duration = f(&p["format"]["duration"]);
    assert!((duration - 10.0).abs() <= 0.5, "duration {duration} s");
    let start_gap = (f(&v["start_time"]) - f(&a["start_time"])).abs();
    assert!(
        start_gap < 0.040,
        "audio/video start times differ by {start_gap} s"
    );
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "ffmpeg decoding errors: {errors}");

    // Listed, with its stream and duration.
    let (status, list) = pc.post("/records/find_all", "{}");
    assert_eq!(status, 200, "{list}");
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| file.file_name().unwrap() == e["name"].as_str().unwrap())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(entry["stream"], "rec");
    assert!((f(&entry["durationSeconds"]) - 10.0).abs() < 1.5, "{entry}");
    assert_eq!(
        entry["size"].as_u64(),
        Some(std::fs::metadata(&file).unwrap().len())
    );

    // Downloaded with Range, and nothing outside the folder.
    let url = format!(
        "{}/records/{}",
        pc.http_root(),
        entry["name"].as_str().unwrap()
    );
    let agent = pullcast_integration_tests::http::agent();
    let resp = agent.get(&url).set("Range", "bytes=0-99").call().unwrap();
    assert_eq!(resp.status(), 206);
    assert!(resp
        .header("Content-Range")
        .unwrap_or("")
        .starts_with("bytes 0-99/"));
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    assert_eq!(body.len(), 100);
    assert_eq!(&body[4..8], b"ftyp");
    for bad in [
        "/records/..%2Fpullcast.log",
        "/records/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/records/pullcast.log",
        "/records/nope.mp4",
    ] {
        let (status, _) = pc.request_url("GET", &format!("{}{bad}", pc.http_root()), None);
        assert_eq!(status, 404, "{bad}");
    }
    let _ = std::fs::remove_file(hook_out);
    let _ = std::fs::remove_file(hook);
}

#[test]
fn kill_9_loses_at_most_the_last_second() {
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("crash", Publisher::builder());
    let mut pc = Pullcast::start(&[]);
    let c = record(&pc, &uri, "crash");
    // The recording began no later than now (it starts at the cached keyframe, maybe earlier).
    let listed = Instant::now();
    let file = file_of(&pc, &c);
    std::thread::sleep(Duration::from_secs(6));
    let recorded = listed.elapsed().as_secs_f64();
    let status = std::process::Command::new("kill")
        .args(["-9", &pc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pc.is_alive());
    // All but the last second decodes (1 s fragments; the frame whose duration is not known
    // yet is held back): 30 fps video, 46.875 AAC frames/s. (A fragment torn by the kill, if
    // any, may make ffmpeg complain about the file's very end.)
    let kept = recorded - 1.0;
    let (video, audio) = decoded_frames(&file);
    let (min_video, min_audio) = ((30.0 * kept) as u64 - 1, (46.875 * kept) as u64 - 1);
    assert!(
        video >= min_video,
        "{video} video frames decoded, want ≥ {min_video} ({recorded:.2} s recorded)"
    );
    assert!(
        audio >= min_audio,
        "{audio} audio frames decoded, want ≥ {min_audio} ({recorded:.2} s recorded)"
    );
}

fn record_for(source: PublisherBuilder, seconds: u64) -> (PathBuf, Pullcast, NginxRtmp) {
    let nginx = NginxRtmp::start();
    let (p, uri) = nginx.publish("src", source);
    let pc = Pullcast::start(&[]);
    let c = record(&pc, &uri, "src");
    let file = file_of(&pc, &c);
    std::thread::sleep(Duration::from_secs(seconds));
    assert_eq!(pc.terminate(&uri).0, 200);
    std::thread::sleep(Duration::from_millis(500));
    drop(p);
    (file, pc, nginx)
}

#[test]
fn b_frames_are_recorded_right() {
    let (file, _pc, _nginx) = record_for(Publisher::builder().bframes(3), 5);
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "ffmpeg decoding errors: {errors}");
    let p = probe_file(&file, &["-count_frames", "-count_packets", "-show_streams"]);
    let v = stream(&p, "video");
    assert_eq!(v["profile"], "High");
    let frames = f(&v["nb_read_frames"]) as u64;
    let packets = f(&v["nb_read_packets"]) as u64;
    assert_eq!(frames, packets, "every recorded frame decodes");
    assert!(
        (140..=165).contains(&frames),
        "{frames} frames in ~5 s at 30 fps"
    );
}

#[test]
fn aac_11025_hz_mono_keeps_its_true_rate() {
    let (file, _pc, _nginx) = record_for(Publisher::builder().audio(11_025, 1), 4);
    let p = probe_file(&file, &["-show_streams"]);
    let a = stream(&p, "audio");
    assert_eq!(a["sample_rate"], "11025");
    assert_eq!(a["channels"], 1);
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "ffmpeg decoding errors: {errors}");
}

#[test]
fn an_unwritable_folder_stops_the_recording_not_the_capture() {
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("disk", Publisher::builder().size(640, 360));
    let blocker =
        std::env::temp_dir().join(format!("pullcast-not-a-folder-{}", std::process::id()));
    std::fs::write(&blocker, b"a file where the folder should be").unwrap();
    let folder = blocker.join("records");
    let pc = Pullcast::start(&[("PULLCAST_RECORD__FOLDER", folder.to_str().unwrap())]);
    let (status, body) = pc.pull(&json!({ "uri": uri, "record": true }));
    assert_eq!(status, 200, "{body}");
    let c = pc.wait_for(&uri, Duration::from_secs(15), "a recording error", |c| {
        c["recording"]["error"].is_string()
    });
    let error = c["recording"]["error"].as_str().unwrap();
    assert!(error.contains("cannot create"), "{error}");
    // The capture goes on.
    std::thread::sleep(Duration::from_secs(1));
    let c = pc.capture(&uri).unwrap();
    assert_eq!(c["status"], "PROCESSED_REMOTE", "{c}");
    let _ = std::fs::remove_file(blocker);
}

#[test]
fn has_audio_false_records_video_only_and_duration_names_are_filled_at_the_end() {
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("hv", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&[("PULLCAST_RECORD__TEMPLATE", "{streamName}-{duration}s")]);
    let (status, body) = pc.pull(&json!({
        "uri": uri, "localStreamName": "hv", "record": "true", "hasAudio": false
    }));
    assert_eq!(status, 200, "{body}");
    let c = pc.wait_for(&uri, Duration::from_secs(15), "recording started", |c| {
        c["recording"]["file"].is_string()
    });
    // While recording, the duration is not known yet.
    assert_eq!(c["recording"]["file"], "hv-recordings.mp4", "{c}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(pc.terminate(&uri).0, 200);
    let folder = pc.dir().join("records");
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = loop {
        let names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".mp4"))
            .collect();
        if let [name] = names.as_slice() {
            if name != "hv-recordings.mp4" {
                break folder.join(name);
            }
        }
        assert!(Instant::now() < deadline, "not renamed: {names:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name == "hv-4s.mp4" || name == "hv-5s.mp4", "{name}");
    let p = probe_file(&file, &["-show_streams"]);
    let kinds: Vec<&str> = p["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["video"], "hasAudio false records video only");
}

#[test]
fn sigterm_closes_the_recording_cleanly_and_runs_the_hook() {
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("term", Publisher::builder().size(640, 360));
    let (hook, hook_out) = hook_script("term");
    let mut pc = Pullcast::start(&[("PULLCAST_RECORD__HOOK", hook.to_str().unwrap())]);
    let c = record(&pc, &uri, "term");
    let file = file_of(&pc, &c);
    std::thread::sleep(Duration::from_secs(4));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while pc.is_alive() {
        assert!(
            Instant::now() < deadline,
            "still running 15 s after SIGTERM\n{}",
            pc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The last fragment was written: the file decodes to its end without an error.
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "ffmpeg decoding errors: {errors}");
    let (video, _audio) = decoded_frames(&file);
    assert!(video >= 100, "{video} frames for ~4 s");
    // And the hook ran before the process ended.
    let said = std::fs::read_to_string(&hook_out).unwrap_or_default();
    assert!(
        said.starts_with("term|"),
        "hook output: {said:?}\n{}",
        pc.log_tail()
    );
    let _ = std::fs::remove_file(hook_out);
    let _ = std::fs::remove_file(hook);
}
