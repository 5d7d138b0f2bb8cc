//! Measurements a capture shares with its viewers: the latency the server adds to each video
//! frame (RTMP message parsed → its last RTP packet sent to the viewer, by the media port's
//! worker) and the first-frame time of new viewers (connection up → first packets out).
//! Reported in `find_all` and used by the benchmarks.
//!
//! The monotonic clock lives here, in the server: the pure core only carries the
//! `ingest_us` stamp it is given.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use pullcast::stats::LatencyHistogram;

/// µs since the process's first call: the clock `MediaFrame::ingest_us` is stamped with.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// What the viewers of one capture measured.
#[derive(Debug, Default)]
pub struct ViewerTelemetry {
    /// Per video frame and viewer: source message parsed → last RTP packet sent.
    pub frame_latency_us: LatencyHistogram,
    /// Per viewer: connection up → first frame handed over.
    pub first_frame_us: LatencyHistogram,
    /// The capture's viewers now, by the protocol they play with.
    pub viewers: ProtocolCounts,
}

/// How a viewer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerProtocol {
    WebRtc,
    Hls,
    Rtmp,
    Flv,
}

impl ViewerProtocol {
    pub const ALL: [ViewerProtocol; 4] = [
        ViewerProtocol::WebRtc,
        ViewerProtocol::Hls,
        ViewerProtocol::Rtmp,
        ViewerProtocol::Flv,
    ];

    /// The name find_all and /metrics use.
    pub fn name(self) -> &'static str {
        match self {
            ViewerProtocol::WebRtc => "webrtc",
            ViewerProtocol::Hls => "hls",
            ViewerProtocol::Rtmp => "rtmp",
            ViewerProtocol::Flv => "flv",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Viewers by protocol (HLS: distinct players that asked for something lately).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtocolCounts([usize; 4]);

impl ProtocolCounts {
    pub fn get(&self, protocol: ViewerProtocol) -> usize {
        self.0[protocol.index()]
    }

    pub fn set(&mut self, protocol: ViewerProtocol, n: usize) {
        self.0[protocol.index()] = n;
    }
}

/// One viewer counted in its capture's [`ProtocolCounts`] while it lives.
#[derive(Debug)]
pub struct ViewerCount {
    telemetry: SharedTelemetry,
    protocol: ViewerProtocol,
}

impl Drop for ViewerCount {
    fn drop(&mut self) {
        let mut t = self.telemetry.lock();
        let n = t.viewers.get(self.protocol);
        t.viewers.set(self.protocol, n.saturating_sub(1));
    }
}

/// Shared between a capture's supervisor (which reports it) and its viewers (which record).
#[derive(Debug, Clone, Default)]
pub struct SharedTelemetry(Arc<Mutex<ViewerTelemetry>>);

impl SharedTelemetry {
    /// Counts a viewer of `protocol` until the returned guard is dropped.
    pub fn count_viewer(&self, protocol: ViewerProtocol) -> ViewerCount {
        {
            let mut t = self.lock();
            let n = t.viewers.get(protocol);
            t.viewers.set(protocol, n + 1);
        }
        ViewerCount {
            telemetry: self.clone(),
            protocol,
        }
    }

    /// The measurements, for reading or recording. A panic elsewhere never makes them
    /// unusable.
    pub fn lock(&self) -> MutexGuard<'_, ViewerTelemetry> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A summary of one histogram, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub count: u64,
}

impl LatencySummary {
    /// `None` when nothing was recorded.
    pub fn of(h: &LatencyHistogram) -> Option<Self> {
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        Some(Self {
            p50_ms: ms(h.quantile(0.5)?),
            p99_ms: ms(h.quantile(0.99)?),
            max_ms: ms(h.max()),
            count: h.count(),
        })
    }
}

/// Bytes sent to players, by protocol, since the process started (WebRTC: the UDP datagrams
/// the kernel took; ICE-TCP is not counted).
static EGRESS_BYTES: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Counts `bytes` sent to a player of `protocol`.
pub fn count_egress(protocol: ViewerProtocol, bytes: usize) {
    EGRESS_BYTES[protocol.index()].fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Frames handed to players, by protocol, since the process started (WebRTC: frames whose
/// packets went to a viewer's transport; HLS: parts and segments served).
static EGRESS_FRAMES: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Counts `n` frames (HLS: files) sent to players of `protocol`.
pub fn count_egress_frames(protocol: ViewerProtocol, n: usize) {
    EGRESS_FRAMES[protocol.index()].fetch_add(n as u64, Ordering::Relaxed);
}

/// Frames (HLS: media files) sent to players of `protocol` so far.
pub fn egress_frames(protocol: ViewerProtocol) -> u64 {
    EGRESS_FRAMES[protocol.index()].load(Ordering::Relaxed)
}

/// Bytes sent to players of `protocol` so far.
pub fn egress_bytes(protocol: ViewerProtocol) -> u64 {
    EGRESS_BYTES[protocol.index()].load(Ordering::Relaxed)
}

/// Why requests were refused, for /metrics.
pub const REFUSAL_REASONS: [&str; 9] = [
    "bad_request",
    "unauthenticated",
    "forbidden",
    "not_found",
    "conflict",
    "too_large",
    "throttled",
    "unavailable",
    "failed",
];

static REFUSALS: [AtomicU64; 9] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Counts a refusal; `reason` is one of [`REFUSAL_REASONS`] (others count as `failed`).
pub fn count_refusal(reason: &str) {
    let i = REFUSAL_REASONS
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(REFUSAL_REASONS.len() - 1);
    REFUSALS[i].fetch_add(1, Ordering::Relaxed);
}

/// Refusals so far, by reason (in [`REFUSAL_REASONS`] order).
pub fn refusals() -> [u64; 9] {
    std::array::from_fn(|i| REFUSALS[i].load(Ordering::Relaxed))
}

/// The refusal reason of an HTTP status.
pub fn refusal_reason(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        413 => "too_large",
        429 => "throttled",
        503 => "unavailable",
        _ => "failed",
    }
}
