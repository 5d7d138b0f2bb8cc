//! What the two per-capture transcodes cost: replays an FLV file (a recorded live source)
//! through the same pure code a capture runs — the normalizer, then the B-frame transcoder
//! (OpenH264 decode → Constrained Baseline encode) and the audio transcoder (AAC → 48 kHz
//! → Opus) — as fast as it can, and reports the CPU time each took per second of media,
//! i.e. the share of one core a live capture needs. Used by `bench/transcode_cpu.sh`.
//!
//! Usage: cargo run --release --example transcode_cpu -- FILE.flv

use std::time::{Duration, Instant};

use pullcast::audio::transcoder::AudioTranscoder;
use pullcast::flv::file::read_flv_file;
use pullcast::media::{MediaFrame, Track};
use pullcast::normalize::{NormalizedEvent, Normalizer};
use pullcast::video::transcode::{BFrameTranscoder, TranscodeSettings};

/// CPU time of this thread (user + system), from /proc/thread-self/stat.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: transcode_cpu FILE.flv")?;
    let file = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let tags = read_flv_file(&file).map_err(|e| format!("{path}: {e}"))?;
    let mut normalizer = Normalizer::new();
    let mut video = Vec::new();
    let mut audio = Vec::new();
    let mut audio_config = None;
    let mut video_config = None;
    for tag in tags {
        let result = match tag.kind {
            9 => normalizer.handle_video(tag.timestamp, &tag.body),
            8 => normalizer.handle_audio(tag.timestamp, &tag.body),
            _ => Ok(()),
        };
        result.map_err(|e| e.to_string())?;
        while let Some(event) = normalizer.poll() {
            match event {
                NormalizedEvent::CodecChange(c) => {
                    audio_config = c.audio.clone().or(audio_config);
                    video_config = c.video.clone().or(video_config);
                }
                NormalizedEvent::Frame(f) if f.track == Track::Video => video.push(f),
                NormalizedEvent::Frame(f) => audio.push(f),
            }
        }
    }
    let span = |frames: &[MediaFrame]| {
        frames.last().map_or(0, |l| l.pts) - frames.first().map_or(0, |f| f.pts)
    };
    let bframes = video.iter().filter(|f| f.pts != f.dts).count();
    println!(
        "source: {} video frames ({} with a composition offset) over {:.1} s, {} AAC frames over {:.1} s",
        video.len(),
        bframes,
        span(&video) as f64 / 1000.0,
        audio.len(),
        span(&audio) as f64 / 1000.0
    );
    if let Some(v) = &video_config {
        if let Some(s) = &v.sps_info {
            println!(
                "video: H.264 profile_idc {} {}x{}, max_num_reorder_frames {:?}",
                s.profile_idc, s.width, s.height, s.max_num_reorder_frames
            );
        }
    }

    if !video.is_empty() {
        let fps = video.len() as f64 * 1000.0 / span(&video).max(1) as f64;
        let mut t = BFrameTranscoder::new(TranscodeSettings {
            bitrate_bps: 2_500_000,
            frame_rate: fps as f32,
            keyframe_interval: 60,
        })?;
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        let mut out = 0;
        let mut bytes = 0;
        for f in &video {
            for o in t.push(f)? {
                out += 1;
                bytes += o.data.len();
            }
        }
        let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
        let media = span(&video) as f64 / 1000.0;
        println!(
            "B-frame transcode: {out} frames out, {:.0} kbit/s; CPU {:.2} s for {media:.1} s of video = {:.1} % of one core (wall {:.2} s, {:.1} ms per frame)",
            bytes as f64 * 8.0 / media / 1000.0,
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / media * 100.0,
            wall.as_secs_f64(),
            wall.as_secs_f64() * 1000.0 / video.len() as f64
        );
    }
    if let (Some(config), false) = (&audio_config, audio.is_empty()) {
        let mut t = AudioTranscoder::new(96_000)?;
        t.set_config(config)?;
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        let mut out = 0;
        for f in &audio {
            out += t.push(f)?.len();
        }
        let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
        let media = span(&audio) as f64 / 1000.0;
        println!(
            "audio transcode ({} Hz, {} ch → Opus 48 kHz stereo 96 kbit/s): {out} Opus frames; CPU {:.2} s for {media:.1} s of audio = {:.2} % of one core (wall {:.2} s)",
            config.output_sample_rate(),
            config.output_channels(),
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / media * 100.0,
            wall.as_secs_f64()
        );
    }
    Ok(())
}
