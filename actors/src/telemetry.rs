//! Measurements a capture shares with its viewers: the latency the server adds to each video
//! frame (RTMP message parsed → its last RTP packet sent to the viewer, by the media port's
//! worker) and the first-frame time of new viewers (connection up → first packets out).
//! Reported in `find_all` and used by the benchmarks.
//!
//! The monotonic clock lives here, in the server: the pure core only carries the
//! `ingest_us` stamp it is given.

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
}

/// Shared between a capture's supervisor (which reports it) and its viewers (which record).
#[derive(Debug, Clone, Default)]
pub struct SharedTelemetry(Arc<Mutex<ViewerTelemetry>>);

impl SharedTelemetry {
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
