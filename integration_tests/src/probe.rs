//! ffprobe as an independent real client: what streams does an RTMP URL carry?

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{kill_tree, require_tool, spawn_logged, tail, wait_exit};
use crate::tempdir::TempDir;

/// Asserts that `streams` (ffprobe's) hold H.264 of `width`x`height` and AAC at 48 kHz: what
/// the tests' sources send, as every player must get it.
#[track_caller]
pub fn assert_h264_aac(streams: &[Value], width: u64, height: u64) {
    let video = stream_of(streams, "video").expect("a video stream");
    let audio = stream_of(streams, "audio").expect("an audio stream");
    assert_eq!(video["codec_name"], "h264", "{streams:?}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(width), Some(height)),
        "{streams:?}"
    );
    assert_eq!(audio["codec_name"], "aac", "{streams:?}");
    assert_eq!(audio["sample_rate"], "48000", "{streams:?}");
}

/// Runs `ffprobe -show_streams` on `url` (bounded by `timeout`) and returns the `streams`
/// array. Panics with ffprobe's output if it fails or times out.
pub fn probe_streams(url: &str, timeout: Duration) -> Vec<Value> {
    let ffprobe = require_tool("ffprobe");
    let dir = TempDir::new("ffprobe");
    let out = dir.join("out.json");
    let mut cmd = Command::new(ffprobe);
    cmd.args(["-v", "error", "-of", "json", "-show_streams", "-o"])
        .arg(&out)
        .arg(url);
    let mut child = spawn_logged(&mut cmd, &dir.join("ffprobe.log"));
    let Some(status) = wait_exit(&mut child, timeout) else {
        kill_tree(&mut child);
        panic!(
            "ffprobe {url} did not finish within {timeout:?}:\n{}",
            tail(&dir.join("ffprobe.log"), 20)
        );
    };
    assert!(
        status.success(),
        "ffprobe {url} failed ({status}):\n{}",
        tail(&dir.join("ffprobe.log"), 20)
    );
    let text = std::fs::read_to_string(&out).expect("read ffprobe output");
    let json: Value = serde_json::from_str(&text).expect("ffprobe output is JSON");
    json["streams"].as_array().cloned().unwrap_or_default()
}

/// The first stream of `codec_type` ("video" / "audio") in `streams`.
pub fn stream_of<'a>(streams: &'a [Value], codec_type: &str) -> Option<&'a Value> {
    streams.iter().find(|s| s["codec_type"] == codec_type)
}

/// Runs `ffprobe -v error -of json <args> <file>` and returns its JSON. Panics with
/// ffprobe's output if it fails.
pub fn probe_file(file: &std::path::Path, args: &[&str]) -> Value {
    let ffprobe = require_tool("ffprobe");
    let output = Command::new(ffprobe)
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        output.status.success(),
        "ffprobe {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ffprobe output is JSON")
}

/// Decodes `file` completely with `ffmpeg -v error -i FILE -enc_time_base -1 -f null -` and returns what it
/// printed (empty when the file decodes without an error).
pub fn decode_errors(file: &std::path::Path) -> String {
    let ffmpeg = require_tool("ffmpeg");
    let output = Command::new(ffmpeg)
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(file)
        // Decode in the file's own time base: by default the null output's is 1/frame-rate,
        // and ms-granular timestamps after a gap (a publisher's restart) can round to the
        // same tick there, which ffmpeg reports as non-monotonic dts of its own making. A
        // file whose timestamps really repeat or go back is still reported.
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        text.push_str(&format!("\n(ffmpeg exited with {})", output.status));
    }
    text
}

/// Runs `ffmpeg -nostdin -i FILE <args> -f null -` and returns what it printed on stdout and
/// stderr. Panics if ffmpeg fails.
fn ffmpeg_analyse(file: &std::path::Path, args: &[&str]) -> String {
    let ffmpeg = require_tool("ffmpeg");
    let output = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostats", "-nostdin", "-i"])
        .arg(file)
        .args(args)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "ffmpeg analysing {} failed: {text}",
        file.display()
    );
    text
}

/// Times (s, on the file's timeline) at which the picture turns bright: a frame whose mean
/// luma is over half scale after one that is not (`signalstats`).
pub fn flash_onsets(file: &std::path::Path) -> Vec<f64> {
    let text = ffmpeg_analyse(
        file,
        &[
            "-map",
            "0:v:0",
            "-vf",
            "signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file=-",
        ],
    );
    let mut onsets = Vec::new();
    let (mut time, mut bright) = (None, false);
    for line in text.lines() {
        if let Some(t) = line.split("pts_time:").nth(1) {
            time = t
                .split_whitespace()
                .next()
                .and_then(|t| t.parse::<f64>().ok());
        } else if let Some(y) = line.strip_prefix("lavfi.signalstats.YAVG=") {
            let now_bright = y.trim().parse::<f64>().is_ok_and(|y| y > 128.0);
            if let (true, false, Some(t)) = (now_bright, bright, time) {
                onsets.push(t);
            }
            bright = now_bright;
        }
    }
    onsets
}

/// Times (s, on the file's timeline) at which sound starts after at least 30 ms under
/// −20 dBFS (`silencedetect`'s `silence_end`).
pub fn sound_onsets(file: &std::path::Path) -> Vec<f64> {
    let text = ffmpeg_analyse(
        file,
        &[
            "-map",
            "0:a:0",
            "-af",
            "silencedetect=noise=-20dB:duration=0.03",
        ],
    );
    let ends: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("silence_end: ").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    // silencedetect also ends a silence where the stream ends (within a frame of its end):
    // that is no sound.
    let audio_end = probe_file(
        file,
        &["-select_streams", "a:0", "-show_entries", "stream=duration"],
    )["streams"][0]["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok());
    ends.into_iter()
        .filter(|t| audio_end.is_none_or(|end| (end - t).abs() > 0.05))
        .collect()
}

/// What a copy of a live stream holds.
#[derive(Debug, Clone)]
pub struct Copied {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Seconds of audio.
    pub audio_seconds: f64,
    /// The first video frame is a keyframe.
    pub starts_with_keyframe: bool,
    pub file: std::path::PathBuf,
}

/// Copies `seconds` of the live stream at `url` with ffmpeg (`-c copy`) into `file` (its
/// extension picks the container), then counts its frames with ffprobe. Panics with
/// ffmpeg's log when the copy fails.
pub fn copy_and_count(url: &str, seconds: u32, file: std::path::PathBuf) -> Copied {
    let t = seconds.to_string();
    let out = file.to_string_lossy().to_string();
    let (status, log) = crate::process::run_ffmpeg(
        &["-i", url, "-t", &t, "-c", "copy", "-y", &out],
        Duration::from_secs(u64::from(seconds) + 30),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "ffmpeg could not copy {seconds} s of {url}: {log}"
    );
    let counted = probe_file(
        &file,
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_type,nb_read_frames,duration",
        ],
    );
    let field = |kind: &str, key: &str| {
        counted["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
            .and_then(|s| s[key].as_str())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let first = probe_file(
        &file,
        &[
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame",
        ],
    );
    Copied {
        video_frames: field("video", "nb_read_frames") as u64,
        audio_frames: field("audio", "nb_read_frames") as u64,
        audio_seconds: field("audio", "duration"),
        starts_with_keyframe: first["frames"][0]["key_frame"] == 1,
        file,
    }
}

/// How many of the first 90 video packets of `file` are presented before a packet decoded
/// earlier (B-frames kept as they were: without them presentation follows decode order).
pub fn reordered_video_packets(file: &std::path::Path) -> usize {
    let packets = probe_file(
        file,
        &[
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#90",
            "-show_entries",
            "packet=pts",
        ],
    );
    let pts: Vec<i64> = packets["packets"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["pts"].as_i64()).collect())
        .unwrap_or_default();
    let mut latest = i64::MIN;
    let mut reordered = 0;
    for p in pts {
        if p < latest {
            reordered += 1;
        }
        latest = latest.max(p);
    }
    reordered
}
