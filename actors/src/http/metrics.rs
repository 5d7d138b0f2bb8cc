//! `GET /metrics`: the Prometheus text format (0.0.4), written by `pullcast::metrics`.
//!
//! Access: the `api` permission (as `find_all`; trusted networks have it), or anyone when
//! `metrics.public`. Captures the caller may not see are left out of the per-stream series
//! and the totals alike. What it shows (prefix `pullcast_`):
//! - `captures{status}`, `viewers{protocol}` (webrtc, hls, rtmp, flv), `published_captures`;
//! - per capture (`metrics.per_stream`, label `stream` = its local name; never a uri):
//!   `capture_received_bytes_total`, `capture_frames_total{track}`,
//!   `capture_reconnects_total`, `capture_viewers{protocol}`,
//!   `capture_receive_rate_bytes_per_second`,
//!   `capture_recording_bytes`, and the WebRTC histograms `webrtc_frame_latency_seconds` (frame
//!   parsed → sent) and `webrtc_first_frame_seconds` (connection up → first frame out);
//! - `transcoders_running{kind}`, `egress_bytes_total{protocol}`,
//!   `egress_frames_total{protocol}`, `refusals_total{reason}`,
//!   `hls_streams`, `hls_waiting_requests`, `build_info{version}`;
//! - `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//!   `process_start_time_seconds` (from `/proc`).
//!
//! Gathering only: nothing here changes a capture.

use actix::Addr;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use pullcast::access::Permission;
use pullcast::capture::CaptureStatus;
use pullcast::metrics::{Kind, TextWriter};

use super::access::{Ask, Authenticated, Gate};
use super::dto::error;
use crate::hls::HlsDirectory;
use crate::messages::{CaptureSnapshot, FindAll};
use crate::registry::Registry;
use crate::telemetry::{egress_bytes, egress_frames, refusals, ViewerProtocol, REFUSAL_REASONS};

/// What the route needs.
#[derive(Clone)]
pub struct MetricsState {
    pub registry: Addr<Registry>,
    pub hls: HlsDirectory,
    pub settings: pullcast::config::MetricsSettings,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(scrape)));
}

async fn scrape(
    state: web::Data<MetricsState>,
    gate: web::Data<Gate>,
    Authenticated(caller): Authenticated,
) -> HttpResponse {
    if !state.settings.enabled {
        return error(StatusCode::NOT_FOUND, "metrics are off (metrics.enabled)");
    }
    if !state.settings.public {
        if let Err(refusal) = gate
            .allow(&caller, Ask::new(Permission::Api, "metrics"))
            .await
        {
            return refusal.response();
        }
    }
    let captures = match state.registry.send(FindAll).await {
        Ok(list) => list,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the registry did not answer: {e}"),
            )
        }
    };
    let visible: Vec<&CaptureSnapshot> = captures
        .iter()
        .filter(|s| {
            state.settings.public
                || gate
                    .policy()
                    .may_see(&caller, &[&s.local_stream_name, &s.uri])
        })
        .collect();
    let text = exposition(&visible, &state.hls, state.settings.per_stream);
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(text)
}

fn status_label(status: CaptureStatus) -> &'static str {
    match status {
        CaptureStatus::Pending => "PENDING",
        CaptureStatus::ProcessedRemote => "PROCESSED_REMOTE",
        CaptureStatus::Reconnecting => "RECONNECTING",
        CaptureStatus::Failed => "FAILED",
    }
}

/// The scrape body.
fn exposition(captures: &[&CaptureSnapshot], hls: &HlsDirectory, per_stream: bool) -> String {
    let mut w = TextWriter::new();
    w.family(
        "pullcast_build_info",
        "The running pullcast's version.",
        Kind::Gauge,
    )
    .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);

    let mut family = w.family("pullcast_captures", "Captures by status.", Kind::Gauge);
    for status in [
        CaptureStatus::Pending,
        CaptureStatus::ProcessedRemote,
        CaptureStatus::Reconnecting,
        CaptureStatus::Failed,
    ] {
        let n = captures.iter().filter(|c| c.status == status).count();
        family.sample(&[("status", status_label(status))], n as f64);
    }
    w.family(
        "pullcast_published_captures",
        "Captures fed by an RTMP publisher.",
        Kind::Gauge,
    )
    .sample(&[], captures.iter().filter(|c| c.published).count() as f64);

    let mut family = w.family(
        "pullcast_viewers",
        "Viewers by protocol (hls: distinct players that asked in the last 10 s).",
        Kind::Gauge,
    );
    for protocol in ViewerProtocol::ALL {
        let n: usize = captures.iter().map(|c| c.viewers.get(protocol)).sum();
        family.sample(&[("protocol", protocol.name())], n as f64);
    }

    let mut family = w.family(
        "pullcast_transcoders_running",
        "Transcoders running for WebRTC viewers: audio (AAC to Opus), video (B-frames to Constrained Baseline).",
        Kind::Gauge,
    );
    let audio = captures
        .iter()
        .filter(|c| c.audio.is_some() && c.viewers.get(ViewerProtocol::WebRtc) > 0)
        .count();
    let video = captures.iter().filter(|c| c.video_transcoding).count();
    family.sample(&[("kind", "audio")], audio as f64);
    family.sample(&[("kind", "video")], video as f64);

    let mut family = w.family(
        "pullcast_egress_bytes_total",
        "Bytes sent to players since the start, by protocol (webrtc: UDP datagrams).",
        Kind::Counter,
    );
    for protocol in ViewerProtocol::ALL {
        family.sample(
            &[("protocol", protocol.name())],
            egress_bytes(protocol) as f64,
        );
    }
    let mut family = w.family(
        "pullcast_egress_frames_total",
        "Frames sent to players since the start, by protocol (hls: parts, segments and init files served).",
        Kind::Counter,
    );
    for protocol in ViewerProtocol::ALL {
        family.sample(
            &[("protocol", protocol.name())],
            egress_frames(protocol) as f64,
        );
    }
    let mut family = w.family(
        "pullcast_refusals_total",
        "Requests refused since the start, by reason.",
        Kind::Counter,
    );
    for (reason, n) in REFUSAL_REASONS.iter().zip(refusals()) {
        family.sample(&[("reason", reason)], n as f64);
    }
    w.family(
        "pullcast_hls_streams",
        "Captures served over HLS now.",
        Kind::Gauge,
    )
    .sample(&[], hls.streams() as f64);
    w.family(
        "pullcast_hls_waiting_requests",
        "HLS requests waiting now (blocking reloads, preload hints).",
        Kind::Gauge,
    )
    .sample(&[], hls.waiting() as f64);

    if per_stream {
        per_capture(&mut w, captures);
    }
    process(&mut w);
    w.finish()
}

fn per_capture(w: &mut TextWriter, captures: &[&CaptureSnapshot]) {
    let stream = |c: &CaptureSnapshot| c.local_stream_name.clone();
    let mut f = w.family(
        "pullcast_capture_received_bytes_total",
        "Bytes received from the capture's source.",
        Kind::Counter,
    );
    for c in captures {
        f.sample(&[("stream", &stream(c))], c.bytes_received as f64);
    }
    let mut f = w.family(
        "pullcast_capture_frames_total",
        "Frames received from the capture's source, by track.",
        Kind::Counter,
    );
    for c in captures {
        let name = stream(c);
        f.sample(
            &[("stream", &name), ("track", "video")],
            c.video_frames as f64,
        );
        f.sample(
            &[("stream", &name), ("track", "audio")],
            c.audio_frames as f64,
        );
    }
    let mut f = w.family(
        "pullcast_capture_reconnects_total",
        "Times the capture's source came back after a drop.",
        Kind::Counter,
    );
    for c in captures {
        f.sample(&[("stream", &stream(c))], c.reconnects as f64);
    }
    let mut f = w.family(
        "pullcast_capture_viewers",
        "The capture's viewers, by protocol.",
        Kind::Gauge,
    );
    for c in captures {
        let name = stream(c);
        for protocol in ViewerProtocol::ALL {
            f.sample(
                &[("stream", &name), ("protocol", protocol.name())],
                c.viewers.get(protocol) as f64,
            );
        }
    }
    let mut f = w.family(
        "pullcast_capture_receive_rate_bytes_per_second",
        "What the capture receives, over the last seconds.",
        Kind::Gauge,
    );
    for c in captures {
        f.sample(&[("stream", &stream(c))], c.bitrate_kbps * 1000.0 / 8.0);
    }
    let mut f = w.family(
        "pullcast_capture_recording_bytes",
        "Bytes written to the capture's current recording.",
        Kind::Gauge,
    );
    for c in captures {
        if let Some(r) = &c.recording {
            f.sample(&[("stream", &stream(c))], r.bytes as f64);
        }
    }
    let mut f = w.family(
        "pullcast_webrtc_frame_latency_seconds",
        "Server-added latency per video frame and WebRTC viewer: RTMP message parsed to its last packet sent.",
        Kind::Histogram,
    );
    for c in captures {
        f.histogram(&[("stream", &stream(c))], &c.frame_latency_histogram);
    }
    let mut f = w.family(
        "pullcast_webrtc_first_frame_seconds",
        "Per WebRTC viewer: connection up to its first frame sent.",
        Kind::Histogram,
    );
    for c in captures {
        f.histogram(&[("stream", &stream(c))], &c.first_frame_histogram);
    }
}

/// Process figures from `/proc` (Linux); a figure that cannot be read is left out.
fn process(w: &mut TextWriter) {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let fields = stat.as_deref().and_then(stat_fields);
    if let Some(f) = &fields {
        w.family(
            "process_cpu_seconds_total",
            "User and system CPU time spent, in seconds.",
            Kind::Counter,
        )
        .sample(&[], (f.utime + f.stime) as f64 / USER_HZ);
    }
    if let Some(rss) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(resident_bytes)
    {
        w.family(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Kind::Gauge,
        )
        .sample(&[], rss as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        w.family(
            "process_open_fds",
            "Number of open file descriptors.",
            Kind::Gauge,
        )
        .sample(&[], fds.count() as f64);
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(boot_time);
    if let (Some(f), Some(boot)) = (&fields, boot) {
        w.family(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            Kind::Gauge,
        )
        .sample(&[], boot as f64 + f.start_ticks as f64 / USER_HZ);
    }
}

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on Linux (fixed by its ABI).
const USER_HZ: f64 = 100.0;

#[derive(Debug, PartialEq)]
struct StatFields {
    utime: u64,
    stime: u64,
    start_ticks: u64,
}

/// utime, stime and starttime of `/proc/self/stat` (fields 14, 15, 22; the command name in
/// parentheses may hold spaces).
fn stat_fields(stat: &str) -> Option<StatFields> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatFields {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
    })
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `btime` of `/proc/stat`: boot time, seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proc_files() {
        let stat = "4242 (pull cast) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 9 0 \
                    123456 1000000 2000 18446744073709551615";
        assert_eq!(
            stat_fields(stat),
            Some(StatFields {
                utime: 150,
                stime: 25,
                start_ticks: 123456
            })
        );
        assert_eq!(stat_fields("garbage"), None);
        assert_eq!(
            resident_bytes("Name:\tpullcast\nVmRSS:\t   20480 kB\n"),
            Some(20480 * 1024)
        );
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1796500000\n"),
            Some(1_796_500_000)
        );
        // The real ones of this process can be read.
        assert!(stat_fields(&std::fs::read_to_string("/proc/self/stat").unwrap()).is_some());
    }
}
