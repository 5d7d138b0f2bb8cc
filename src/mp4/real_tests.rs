//! Independent checks of the writer with real media: H.264 from libx264 (made by ffmpeg at
//! test time, with and without B-frames) and AAC from the FDK encoder, written to a temp
//! file and read back by the `mp4` crate's reader, `ffprobe` and `ffmpeg` (decoding to
//! null). These tests need `ffmpeg`/`ffprobe` on the PATH and fail loudly without them.
//!
//! Test-only: the files and processes here are the test's, never the writer's.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use fdk_aac::enc::AudioObjectType;

use super::testutil::{fragments, walk_all};
use super::*;
use crate::codec::aac::AudioSpecificConfig;
use crate::codec::h264::{parse_avc_decoder_config, AvcConfig};
use crate::media::{MediaFrame, Track};
use crate::test_vectors::{aac_sine, AacSine};

fn tool(name: &str, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("`{name}` is required by this test and could not be run ({e}); install ffmpeg")
    });
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pullcast-mp4-{}-{name}", std::process::id()));
    clean_up(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes a test's files, unless `PULLCAST_KEEP_MP4` is set (to look at them).
fn clean_up(dir: &Path) {
    if std::env::var_os("PULLCAST_KEEP_MP4").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every value of `"key": value` in ffprobe's JSON, unquoted, in order.
fn json_values(json: &str, key: &str) -> Vec<String> {
    let pat = format!("\"{key}\": ");
    json.match_indices(&pat)
        .map(|(i, _)| {
            let rest = &json[i + pat.len()..];
            let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
            rest[..end].trim().trim_matches('"').to_string()
        })
        .collect()
}

struct Video {
    config: Arc<AvcConfig>,
    frames: Vec<MediaFrame>,
}

/// 90 frames of 320x240 testsrc2 at 30 fps from libx264 (High, GOP 30, `bf` B-frames),
/// muxed to FLV so the timestamps are RTMP's milliseconds; the Annex-B access units come
/// from the same FLV through `h264_mp4toannexb`, split at the AUDs x264 was told to write.
fn x264_video(dir: &Path, bf: u32) -> Video {
    let flv = dir.join("src.flv");
    let h264 = dir.join("src.h264");
    let bf = bf.to_string();
    let (_, err, ok) = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-frames:v",
            "90",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            &bf,
            "-g",
            "30",
            "-x264-params",
            "aud=1",
            "-f",
            "flv",
            p(&flv),
        ],
    );
    assert!(ok, "ffmpeg encode failed: {err}");
    let (_, err, ok) = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-i",
            p(&flv),
            "-c",
            "copy",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
            p(&h264),
        ],
    );
    assert!(ok, "ffmpeg annexb failed: {err}");
    let (csv, err, ok) = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts,dts,flags",
            "-of",
            "csv=p=0",
            p(&flv),
        ],
    );
    assert!(ok, "ffprobe failed: {err}");
    let times: Vec<(i64, i64, bool)> = csv
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].starts_with('K'),
            )
        })
        .collect();
    let stream = std::fs::read(&h264).unwrap();
    // Access units start at each AUD (00 00 01 09); the first also owns what precedes.
    let mut starts: Vec<usize> = stream
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w[..3] == [0, 0, 1] && w[3] & 0x1f == 9)
        .map(|(i, _)| i)
        .collect();
    starts[0] = 0;
    starts.push(stream.len());
    let units: Vec<&[u8]> = starts.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
    assert_eq!(units.len(), 90);
    assert_eq!(times.len(), 90);

    // avcC from the SPS and PPS in front of the first IDR.
    let nal_after = |ty: u8| -> Vec<u8> {
        let at = units[0]
            .windows(4)
            .position(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == ty)
            .unwrap()
            + 3;
        let end = units[0][at..]
            .windows(3)
            .position(|w| w == [0, 0, 1])
            .map(|e| at + e)
            .unwrap_or(units[0].len());
        let mut nal = units[0][at..end].to_vec();
        while nal.last() == Some(&0) {
            nal.pop();
        }
        nal
    };
    let (sps, pps) = (nal_after(7), nal_after(8));
    let mut rec = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    rec.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    rec.extend_from_slice(&sps);
    rec.push(1);
    rec.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    rec.extend_from_slice(&pps);
    let config = Arc::new(parse_avc_decoder_config(&rec).unwrap());

    let frames = units
        .iter()
        .zip(&times)
        .map(|(unit, &(pts, dts, key))| MediaFrame {
            track: Track::Video,
            pts,
            dts,
            keyframe: key,
            data: Bytes::copy_from_slice(unit),
            ingest_us: 0,
        })
        .collect();
    Video { config, frames }
}

/// `seconds` of a 440 Hz sine as raw AAC-LC frames from FDK, stamped from `start` ms.
fn fdk_audio(
    rate: u32,
    channels: usize,
    seconds: f32,
    start: i64,
) -> (Arc<AudioSpecificConfig>, Vec<MediaFrame>) {
    aac_sine(AacSine {
        aot: AudioObjectType::Mpeg4LowComplexity,
        rate,
        channels,
        bitrate: if rate < 20_000 { 24_000 } else { 96_000 },
        seconds,
        frequency: 440.0,
        amplitude: 10_000.0,
        start_ms: start,
    })
}

/// Writes the frames (interleaved by dts, as a capture delivers them) to `dir/out.mp4`;
/// returns the path, the bytes and the byte offsets where each fragment ends.
fn write_file(
    dir: &Path,
    video: Option<&Video>,
    audio: Option<(Arc<AudioSpecificConfig>, Vec<MediaFrame>)>,
) -> (PathBuf, Vec<u8>, Vec<usize>, Mp4Stats) {
    let mut frames: Vec<MediaFrame> = Vec::new();
    frames.extend(video.iter().flat_map(|v| v.frames.iter().cloned()));
    frames.extend(audio.iter().flat_map(|a| a.1.iter().cloned()));
    frames.sort_by_key(|f| (f.dts, f.track == Track::Audio)); // stable: decode order kept
    let mut w = FragmentedMp4Writer::new(
        video.map(|v| Arc::clone(&v.config)),
        audio.map(|a| a.0),
        Mp4Options::default(),
    )
    .unwrap();
    let mut file = w.init_segment().to_vec();
    let mut ends = Vec::new();
    for f in &frames {
        if let Some(frag) = w.push(f) {
            file.extend_from_slice(&frag);
            ends.push(file.len());
        }
    }
    if let Some(frag) = w.finish() {
        file.extend_from_slice(&frag);
        ends.push(file.len());
    }
    walk_all(&file);
    let path = dir.join("out.mp4");
    std::fs::write(&path, &file).unwrap();
    (path, file, ends, w.stats())
}

/// ffprobe's JSON for the file, and ffmpeg's complaints when decoding all of it.
fn probe_and_decode(path: &Path) -> (String, String) {
    let (json, err, ok) = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            p(path),
        ],
    );
    assert!(ok && err.is_empty(), "ffprobe: {err}");
    let (_, decode_err, ok) = tool("ffmpeg", &["-v", "error", "-i", p(path), "-f", "null", "-"]);
    assert!(ok, "ffmpeg decode failed: {decode_err}");
    (json, decode_err)
}

/// The mp4 crate's reader (moof-aware) on the whole file: (track id, type, samples).
fn mp4_crate_tracks(file: &[u8]) -> Vec<(u32, String, u32)> {
    let reader =
        ::mp4::Mp4Reader::read_header(std::io::Cursor::new(file), file.len() as u64).unwrap();
    assert!(reader.is_fragmented());
    let mut tracks: Vec<(u32, String, u32)> = reader
        .tracks()
        .values()
        .map(|t| {
            (
                t.track_id(),
                t.media_type().unwrap().to_string(),
                t.sample_count(),
            )
        })
        .collect();
    tracks.sort();
    tracks
}

#[test]
fn h264_with_b_frames_and_aac_decode_cleanly() {
    let dir = temp_dir("bframes");
    let video = x264_video(&dir, 3);
    // B-frames: the FLV carries composition offsets (pts != dts).
    assert!(video.frames.iter().any(|f| f.pts != f.dts));
    // The source's audio starts where its video is first presented, as ffmpeg sends it.
    let first_pts = video.frames.iter().map(|f| f.pts).min().unwrap();
    let audio = fdk_audio(48_000, 2, 3.0, first_pts);
    let audio_count = audio.1.len();
    let (path, file, ends, stats) = write_file(&dir, Some(&video), Some(audio));
    assert_eq!(stats.video_samples, 90);
    assert_eq!(stats.audio_samples, audio_count as u64);
    assert!(fragments(&file).len() >= 3);
    assert_eq!(ends.len(), fragments(&file).len());

    assert_eq!(
        mp4_crate_tracks(&file),
        vec![
            (1, "h264".to_string(), 90),
            (2, "aac".to_string(), audio_count as u32)
        ]
    );

    let (json, decode_err) = probe_and_decode(&path);
    assert!(decode_err.is_empty(), "ffmpeg -f null: {decode_err}");
    assert_eq!(json_values(&json, "codec_name"), vec!["h264", "aac"]);
    assert_eq!(json_values(&json, "width"), vec!["320"]);
    assert_eq!(json_values(&json, "height"), vec!["240"]);
    assert_eq!(json_values(&json, "sample_rate"), vec!["48000"]);
    assert_eq!(json_values(&json, "channels"), vec!["2"]);
    assert_eq!(json_values(&json, "nb_read_frames")[0], "90");
    let starts: Vec<f64> = json_values(&json, "start_time")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(
        (starts[0] - starts[1]).abs() < 0.040,
        "A/V start times {starts:?}"
    );
    let duration: f64 = json_values(&json, "duration")
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 3.0).abs() < 0.2, "duration {duration}");

    // Every video packet comes back with the source's pts and dts (relative to the origin).
    let (csv, _, _) = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,dts_time",
            "-of",
            "csv=p=0",
            p(&path),
        ],
    );
    let origin = video.frames[0].dts.min(first_pts);
    let got: Vec<(i64, i64)> = csv
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            (
                (f[0] * 1000.0).round() as i64,
                (f[1] * 1000.0).round() as i64,
            )
        })
        .collect();
    let want: Vec<(i64, i64)> = video
        .frames
        .iter()
        .map(|f| (f.pts - origin, f.dts - origin))
        .collect();
    assert_eq!(got, want);
    clean_up(&dir);
}

#[test]
fn h264_without_b_frames_video_only() {
    let dir = temp_dir("nobframes");
    let video = x264_video(&dir, 0);
    assert!(video.frames.iter().all(|f| f.pts == f.dts));
    let (path, file, _, stats) = write_file(&dir, Some(&video), None);
    assert_eq!(stats.video_samples, 90);
    assert_eq!(mp4_crate_tracks(&file), vec![(1, "h264".to_string(), 90)]);
    let (json, decode_err) = probe_and_decode(&path);
    assert!(decode_err.is_empty(), "ffmpeg -f null: {decode_err}");
    assert_eq!(json_values(&json, "codec_name"), vec!["h264"]);
    assert_eq!(json_values(&json, "nb_read_frames"), vec!["90"]);
    assert_eq!(json_values(&json, "start_time")[0], "0.000000");
    clean_up(&dir);
}

#[test]
fn aac_11025_mono_keeps_its_true_rate() {
    let dir = temp_dir("aac11025");
    let audio = fdk_audio(11_025, 1, 4.0, 123_456);
    let count = audio.1.len();
    let (path, file, _, stats) = write_file(&dir, None, Some(audio));
    assert_eq!(stats.audio_samples, count as u64);
    assert_eq!(
        mp4_crate_tracks(&file),
        vec![(1, "aac".to_string(), count as u32)]
    );
    let (json, decode_err) = probe_and_decode(&path);
    assert!(decode_err.is_empty(), "ffmpeg -f null: {decode_err}");
    assert_eq!(json_values(&json, "codec_name"), vec!["aac"]);
    assert_eq!(json_values(&json, "sample_rate"), vec!["11025"]);
    assert_eq!(json_values(&json, "channels"), vec!["1"]);
    assert_eq!(json_values(&json, "time_base")[0], "1/11025");
    let duration: f64 = json_values(&json, "duration")[0].parse().unwrap();
    assert!((duration - 4.0).abs() < 0.2, "duration {duration}");
    clean_up(&dir);
}

#[test]
fn a_file_cut_inside_a_fragment_still_plays() {
    // What a kill -9 leaves: complete fragments, then half of the next one.
    let dir = temp_dir("truncated");
    let video = x264_video(&dir, 3);
    let audio = fdk_audio(48_000, 2, 3.0, 0);
    let (_, file, ends, _) = write_file(&dir, Some(&video), Some(audio));
    assert!(ends.len() >= 3);
    let cut = ends[1] + (ends[2] - ends[1]) / 2;
    let path = dir.join("cut.mp4");
    std::fs::write(&path, &file[..cut]).unwrap();
    let (json, err, ok) = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-of",
            "json",
            p(&path),
        ],
    );
    assert!(ok, "ffprobe on a cut file: {err}");
    assert_eq!(json_values(&json, "codec_name"), vec!["h264", "aac"]);
    let complete = fragments(&file[..ends[1]]);
    let video_in_complete: usize = complete
        .iter()
        .flat_map(|f| f.trafs.iter().filter(|t| t.track_id == 1))
        .map(|t| t.trun.samples.len())
        .sum();
    let decoded: usize = json_values(&json, "nb_read_frames")[0].parse().unwrap();
    assert!(
        decoded >= video_in_complete,
        "{decoded} < {video_in_complete}"
    );
    clean_up(&dir);
}
