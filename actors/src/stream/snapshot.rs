//! What `find_all` shows of one capture, assembled from its state machine
//! ([`pullcast::capture::Capture`]), its request and what its actor keeps (the recording's
//! status, the viewers' telemetry). Reads, never decides.

use std::time::{Instant, SystemTime};

use pullcast::capture::{Capture, CaptureStatus, Rates};
use pullcast::codec::h264::profile_name;
use uuid::Uuid;

use crate::messages::{AudioInfo, CaptureSnapshot, PullRequest, RecordingStatus, VideoInfo};
use crate::telemetry::{LatencySummary, SharedTelemetry};
use pullcast::metrics::{HistogramSnapshot, LATENCY_BOUNDS_SECONDS};

/// What the snapshot needs beside the state machine.
pub struct SnapshotContext<'a> {
    pub id: Uuid,
    pub request: &'a PullRequest,
    pub started_at: SystemTime,
    pub recording: Option<RecordingStatus>,
    pub telemetry: &'a SharedTelemetry,
}

/// The full snapshot at `now`, with the capture's `rates` read at that time.
pub fn snapshot(
    core: &Capture,
    cx: SnapshotContext<'_>,
    rates: Rates,
    now: Instant,
) -> CaptureSnapshot {
    let Rates {
        bitrate_kbps,
        measured_fps,
    } = rates;
    let video = core.codecs().video.as_ref().map(|avc| {
        let sps = avc.sps_info.as_ref();
        VideoInfo {
            codec: "H264".to_string(),
            profile: profile_name(avc.profile, avc.compatibility).to_string(),
            level: level_name(avc.level),
            width: sps.map_or(0, |s| s.width),
            height: sps.map_or(0, |s| s.height),
            frame_rate: core
                .declared_frame_rate()
                .or((measured_fps > 0.0).then_some(measured_fps))
                .map(|f| (f * 100.0).round() / 100.0),
        }
    });
    let audio = core.codecs().audio.as_ref().map(|asc| AudioInfo {
        codec: "AAC".to_string(),
        profile: asc.profile_name().to_string(),
        sample_rate: asc.output_sample_rate(),
        channels: asc.output_channels(),
    });
    let (frame_latency, first_frame, frame_latency_histogram, first_frame_histogram, viewers) = {
        let telemetry = cx.telemetry.lock();
        (
            LatencySummary::of(&telemetry.frame_latency_us),
            LatencySummary::of(&telemetry.first_frame_us),
            prometheus_histogram(&telemetry.frame_latency_us),
            prometheus_histogram(&telemetry.first_frame_us),
            telemetry.viewers,
        )
    };
    let counters = core.counters();
    let (b_frames, evidence) = core.b_frames();
    CaptureSnapshot {
        id: cx.id,
        uri: cx.request.uri.clone(),
        local_stream_name: cx.request.local_stream_name.clone(),
        record: cx.request.record,
        has_audio: cx.request.has_audio,
        has_video: cx.request.has_video,
        status: core.status(),
        reason: core.reason().map(str::to_string),
        video,
        audio,
        bytes_received: counters.bytes_received,
        video_frames: counters.video_frames,
        video_keyframes: counters.video_keyframes,
        audio_frames: counters.audio_frames,
        bitrate_kbps: bitrate_kbps.round(),
        measured_fps: (measured_fps * 10.0).round() / 10.0,
        started_at: cx.started_at,
        subscribers: core.subscriber_count(),
        on_demand: cx.request.on_demand,
        recording: cx.recording,
        history: core.history(),
        reconnects: core.reconnects(),
        b_frames,
        b_frames_evidence: evidence.map(str::to_string),
        video_transcoding: core.video_transcoding(),
        last_resume: core.last_resume().cloned(),
        retry: core.retry(now),
        frame_latency,
        first_frame,
        frame_latency_histogram,
        first_frame_histogram,
        viewers,
        published: cx.request.published,
        metadata: core.metadata().to_vec(),
    }
}

/// A latency histogram (µs) in the seconds buckets of `/metrics`.
fn prometheus_histogram(h: &pullcast::stats::LatencyHistogram) -> HistogramSnapshot {
    let bounds: Vec<f64> = LATENCY_BOUNDS_SECONDS.to_vec();
    let bounds_us: Vec<u64> = bounds.iter().map(|s| (s * 1e6).round() as u64).collect();
    let (counts, sum_us) = h.bucketed(&bounds_us);
    HistogramSnapshot {
        bounds,
        counts,
        sum: sum_us as f64 / 1e6,
    }
}

/// What `find_all` shows when building the full snapshot itself panicked: the request, and
/// `FAILED` with `reason`.
pub fn minimal_snapshot(
    core: &Capture,
    cx: SnapshotContext<'_>,
    reason: String,
) -> CaptureSnapshot {
    let (id, request, started_at) = (cx.id, cx.request, cx.started_at);
    let counters = core.counters();
    CaptureSnapshot {
        id,
        uri: request.uri.clone(),
        local_stream_name: request.local_stream_name.clone(),
        record: request.record,
        has_audio: request.has_audio,
        has_video: request.has_video,
        status: CaptureStatus::Failed,
        reason: Some(reason),
        video: None,
        audio: None,
        bytes_received: counters.bytes_received,
        video_frames: counters.video_frames,
        video_keyframes: counters.video_keyframes,
        audio_frames: counters.audio_frames,
        bitrate_kbps: 0.0,
        measured_fps: 0.0,
        started_at,
        subscribers: core.subscriber_count(),
        on_demand: request.on_demand,
        recording: None,
        history: Vec::new(),
        reconnects: core.reconnects(),
        b_frames: None,
        b_frames_evidence: None,
        video_transcoding: false,
        last_resume: None,
        retry: None,
        frame_latency: None,
        first_frame: None,
        frame_latency_histogram: prometheus_histogram(&Default::default()),
        first_frame_histogram: prometheus_histogram(&Default::default()),
        viewers: Default::default(),
        published: request.published,
        metadata: Vec::new(),
    }
}

/// `level_idc` 31 → "3.1"; 9 → "1b".
fn level_name(level_idc: u8) -> String {
    if level_idc == 9 {
        "1b".to_string()
    } else {
        format!("{}.{}", level_idc / 10, level_idc % 10)
    }
}
