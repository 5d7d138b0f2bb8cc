//! Churn mode (`--churn-min-s` / `--churn-max-s`, for `bench/soak.sh`): a fixed number of
//! viewer slots, each of which joins (WHEP POST), stays a random time after its first video
//! packet, leaves (WHEP DELETE, connection closed) and is replaced at once, until the run's
//! end. Slot `i` watches stream `i % streams`, so every stream keeps the same audience.
//!
//! Only running totals are kept — never a finished viewer's connection or counters — so the
//! client's own memory stays flat over an hour. Progress goes to stderr as one
//! `loadclient: churn t=… active=… joins=…` line per `--report-s`; the totals are returned
//! for the JSON summary. Must not: wait on anything without a bound (a connect is bounded
//! by `--connect-timeout-ms`, a DELETE by the HTTP agent's timeout, a close by
//! [`CLOSE_TIMEOUT`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::viewer::{self, Config, Shared};

/// Longest a leaving viewer's DELETE + close may take before the slot moves on.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Distinct failure reasons kept (normalised); the rest are counted under "other".
const MAX_REASONS: usize = 20;
/// First-video times are kept in 10 ms buckets up to this; later ones in the last bucket.
const HISTOGRAM_MAX_MS: usize = 60_000;
const BUCKET_MS: usize = 10;

/// What the run does.
pub struct Plan {
    /// Viewers at once (slots).
    pub slots: usize,
    /// A viewer stays a uniformly random time in `stay_min..=stay_max` after its first video.
    pub stay_min: Duration,
    pub stay_max: Duration,
    /// Length of the whole run (from the start of the first slot).
    pub run: Duration,
    /// Between the first joins of two consecutive slots (a ramp, not a burst).
    pub stagger: Duration,
    /// How often a progress line goes to stderr.
    pub report_every: Duration,
    /// After a failed join the slot waits this long before the next (no tight loop against
    /// a server that refuses).
    pub retry_after_failure: Duration,
}

/// First-video times (ms after the POST) in fixed buckets: bounded memory whatever the run.
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; HISTOGRAM_MAX_MS / BUCKET_MS + 1],
            count: 0,
            max: 0.0,
        }
    }
}

impl Histogram {
    pub fn add(&mut self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        let i = ((ms as usize) / BUCKET_MS).min(self.buckets.len() - 1);
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.max = self.max.max(ms);
    }

    /// The upper edge (ms) of the bucket holding the `p`-th percentile (nearest rank);
    /// `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                if i + 1 == self.buckets.len() {
                    return Some(self.max); // the open-ended last bucket
                }
                return Some((((i + 1) * BUCKET_MS) as f64).min(self.max.ceil()));
            }
        }
        Some(self.max)
    }
}

/// The run's totals, shared by every slot.
#[derive(Default)]
pub struct Totals {
    /// WHEP offers started.
    pub joins: u64,
    /// Joins that got their first video packet.
    pub connected: u64,
    /// Joins that did not (refused, ICE/DTLS failed, no video within the connect timeout).
    pub failed: u64,
    /// Connected viewers whose connection failed before they meant to leave.
    pub dropped: u64,
    /// Sessions ended with a successful WHEP DELETE.
    pub leaves: u64,
    /// Sessions whose DELETE failed (or did not end within [`CLOSE_TIMEOUT`]).
    pub delete_errors: u64,
    /// Viewers receiving video now.
    pub active: u64,
    pub packets: u64,
    pub bytes: u64,
    pub video_frames: u64,
    /// RTP packets numbered by the sender / never received, over every finished viewer.
    pub expected: u64,
    pub lost: u64,
    /// Seconds viewers spent watching (first video → leave), summed.
    pub watch_seconds: f64,
    pub first_video: Histogram,
    /// Failure reasons with digits blanked, counted.
    pub reasons: BTreeMap<String, u64>,
    /// The first few failures, verbatim.
    pub examples: Vec<String>,
}

impl Totals {
    fn failure(&mut self, reason: &str) {
        self.failed += 1;
        self.reason(reason);
    }

    fn reason(&mut self, reason: &str) {
        let key = normalise_reason(reason);
        if self.reasons.contains_key(&key) || self.reasons.len() < MAX_REASONS {
            *self.reasons.entry(key).or_default() += 1;
        } else {
            *self.reasons.entry("other".to_string()).or_default() += 1;
        }
        if self.examples.len() < 5 {
            self.examples.push(reason.to_string());
        }
    }

    /// One `key=value` progress line (after `loadclient: churn `).
    pub fn progress(&self, elapsed: Duration) -> String {
        format!(
            "t={:.0} active={} joins={} connected={} failed={} dropped={} leaves={} delete_errors={}",
            elapsed.as_secs_f64(),
            self.active,
            self.joins,
            self.connected,
            self.failed,
            self.dropped,
            self.leaves,
            self.delete_errors
        )
    }

    /// The JSON summary of the run.
    pub fn summary(&self, plan: &Plan, streams: &[String], elapsed: Duration) -> Value {
        let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let round1 = |v: f64| (v * 10.0).round() / 10.0;
        json!({
            "mode": "churn",
            "streams": streams,
            "slots": plan.slots,
            "stay_s": [plan.stay_min.as_secs_f64(), plan.stay_max.as_secs_f64()],
            "run_s": round1(secs),
            "joins": self.joins,
            "connected": self.connected,
            "failed": self.failed,
            "dropped": self.dropped,
            "leaves": self.leaves,
            "delete_errors": self.delete_errors,
            "joins_per_s": round1(self.joins as f64 / secs),
            "first_video_ms": {
                "p50": self.first_video.percentile(50.0),
                "p99": self.first_video.percentile(99.0),
                "max": round1(self.first_video.max),
                "n": self.first_video.count,
            },
            "watch_seconds": round1(self.watch_seconds),
            "video_fps_while_watching": if self.watch_seconds > 0.0 {
                json!(round1(self.video_frames as f64 / self.watch_seconds))
            } else {
                Value::Null
            },
            "packets_total": self.packets,
            "bytes_total": self.bytes,
            "loss_pct_total": if self.expected == 0 {
                0.0
            } else {
                (self.lost as f64 * 100.0 / self.expected as f64 * 1000.0).round() / 1000.0
            },
            "failure_reasons": self.reasons,
            "failure_examples": self.examples,
        })
    }
}

/// A failure reason with its variable parts blanked, so equal causes count together:
/// digits become `#`, and what follows the first `(` (timings) is dropped.
pub fn normalise_reason(reason: &str) -> String {
    let head = reason.split('(').next().unwrap_or(reason).trim();
    let blanked: String = head
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    blanked.chars().take(160).collect()
}

/// SplitMix64: a small, seedable generator for the stay times (no crate needed).
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `min..=max` (at millisecond resolution).
    pub fn between(&mut self, min: Duration, max: Duration) -> Duration {
        let (lo, hi) = (min.as_millis() as u64, max.as_millis() as u64);
        if hi <= lo {
            return min;
        }
        Duration::from_millis(lo + self.next_u64() % (hi - lo + 1))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the churn: every slot joins, stays, leaves and is replaced until `plan.run` is over,
/// then leaves. Returns the totals and the time the run took.
pub async fn run(
    plan: Arc<Plan>,
    configs: Vec<Arc<Config>>,
    http: ureq::Agent,
) -> (Arc<Mutex<Totals>>, Duration) {
    let totals = Arc::new(Mutex::new(Totals::default()));
    let started = Instant::now();
    let end = started + plan.run;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5eed);

    let reporter = {
        let (totals, every) = (totals.clone(), plan.report_every);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let line = lock(&totals).progress(started.elapsed());
                eprintln!("loadclient: churn {line}");
            }
        })
    };

    let mut slots = Vec::with_capacity(plan.slots);
    for i in 0..plan.slots {
        let Some(config) = configs.get(i % configs.len().max(1)).cloned() else {
            break;
        };
        let (plan, totals, http) = (plan.clone(), totals.clone(), http.clone());
        let rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        slots.push(tokio::spawn(async move {
            let first = started + plan.stagger * i as u32;
            tokio::time::sleep_until(first.into()).await;
            slot(&plan, config, &totals, http, rng, end).await;
        }));
    }
    for s in slots {
        if let Err(e) = s.await {
            eprintln!("loadclient: a churn slot ended abnormally: {e}");
        }
    }
    reporter.abort();
    let elapsed = started.elapsed();
    eprintln!("loadclient: churn {}", lock(&totals).progress(elapsed));
    (totals, elapsed)
}

/// One slot: join, stay, leave, repeat until `end`.
async fn slot(
    plan: &Plan,
    config: Arc<Config>,
    totals: &Mutex<Totals>,
    http: ureq::Agent,
    mut rng: SplitMix64,
    end: Instant,
) {
    while Instant::now() < end {
        let shared = Arc::new(Shared::default());
        lock(totals).joins += 1;
        let session = viewer::connect(config.clone(), shared.clone()).await;
        let timeline = lock(&shared.timeline).clone();
        let watching_since = Instant::now();
        match (&timeline.failure, timeline.first_video_ms) {
            (None, Some(first_ms)) => {
                {
                    let mut t = lock(totals);
                    t.connected += 1;
                    t.active += 1;
                    t.first_video.add(first_ms);
                }
                let stay = rng.between(plan.stay_min, plan.stay_max);
                let until = (watching_since + stay).min(end);
                let dropped = tokio::select! {
                    _ = shared.failed() => true,
                    _ = tokio::time::sleep_until(until.into()) => false,
                };
                let mut t = lock(totals);
                t.active = t.active.saturating_sub(1);
                if dropped {
                    t.dropped += 1;
                    let reason = lock(&shared.timeline).failure.clone().unwrap_or_default();
                    t.reason(&format!("dropped: {reason}"));
                }
            }
            (failure, _) => {
                let reason = failure
                    .clone()
                    .unwrap_or_else(|| "no video and no reason".to_string());
                lock(totals).failure(&reason);
            }
        }
        let watched = watching_since.elapsed().as_secs_f64();
        let had_resource = session.resource.is_some();
        let ended = tokio::time::timeout(CLOSE_TIMEOUT, session.end(http.clone())).await;
        {
            let c = lock(&shared.counters);
            let mut t = lock(totals);
            t.packets += c.packets;
            t.bytes += c.bytes;
            t.video_frames += c.video_frames;
            t.expected += c.video_seq.expected() + c.audio_seq.expected();
            t.lost += c.video_seq.lost() + c.audio_seq.lost();
            if timeline.failure.is_none() && timeline.first_video_ms.is_some() {
                t.watch_seconds += watched;
            }
            match ended {
                Ok(Ok(())) if had_resource => t.leaves += 1,
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    t.delete_errors += 1;
                    t.reason(&format!("leave: {e}"));
                }
                Err(_) => {
                    t.delete_errors += 1;
                    t.reason("leave: DELETE + close took longer than 15 s");
                }
            }
        }
        if timeline.failure.is_some() || timeline.first_video_ms.is_none() {
            let pause = plan
                .retry_after_failure
                .min(end.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_bucket_edges_capped_by_the_max() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(50.0), None);
        for ms in [203.0, 205.0, 207.0, 211.0, 950.0] {
            h.add(ms);
        }
        assert_eq!(h.percentile(50.0), Some(210.0));
        assert_eq!(h.percentile(80.0), Some(220.0));
        assert_eq!(h.percentile(100.0), Some(950.0));
        // Beyond the last bucket and nonsense values do not break it.
        h.add(1e9);
        h.add(f64::NAN);
        h.add(-5.0);
        assert_eq!(h.count, 8);
        assert_eq!(h.percentile(100.0), Some(1e9));
    }

    #[test]
    fn reasons_are_normalised_and_bounded() {
        assert_eq!(
            normalise_reason("no video within 15000 ms of the POST (answer Some(3.0) ms)"),
            "no video within ##### ms of the POST"
        );
        let mut t = Totals::default();
        for i in 0..(MAX_REASONS + 5) {
            t.failure(&format!("reason {}", "x".repeat(i)));
        }
        t.failure("reason ");
        assert_eq!(t.failed, MAX_REASONS as u64 + 6);
        assert_eq!(t.reasons.len(), MAX_REASONS + 1);
        assert_eq!(t.reasons.get("other"), Some(&5));
        assert_eq!(t.reasons.get("reason"), Some(&2));
        assert_eq!(t.examples.len(), 5);
    }

    #[test]
    fn stays_are_uniform_within_the_bounds() {
        let mut rng = SplitMix64::new(7);
        let (lo, hi) = (Duration::from_secs(5), Duration::from_secs(30));
        let stays: Vec<Duration> = (0..10_000).map(|_| rng.between(lo, hi)).collect();
        assert!(stays.iter().all(|s| *s >= lo && *s <= hi));
        let mean = stays.iter().map(Duration::as_secs_f64).sum::<f64>() / stays.len() as f64;
        assert!((mean - 17.5).abs() < 0.5, "mean {mean}");
        assert_eq!(rng.between(hi, lo), hi);
    }
}
