//! `pullcast-loadclient`: N WebRTC viewers of pullcast streams over WHEP, for the fan-out
//! benchmark (`bench/fanout.sh`, issue 3) and the soak (`bench/soak.sh`, issue 11).
//!
//! ```text
//! pullcast-loadclient --server http://127.0.0.1:8081 --stream bench --viewers 50 --seconds 20
//!     [--stagger-ms 50] [--settle-ms 3000] [--connect-timeout-ms 15000] [--bind 127.0.0.1]
//!     [--pli-after-ms 2000] [--churn-min-s 5 --churn-max-s 30 [--report-s 10]] [--lean]
//!     [--janus MOUNTPOINT]
//! ```
//!
//! `--stream` may be given more than once: viewer `i` watches stream `i % streams`.
//!
//! With `--churn-min-s`/`--churn-max-s` (churn mode, see [`churn`]) the viewers do not stay:
//! each leaves a random time after its first video packet and is replaced at once, for
//! `--seconds` in all; progress lines go to stderr and a churn summary to stdout. Without
//! them:
//!
//! Each viewer is its own `webrtc` peer connection (recvonly H.264 + Opus) that completes
//! ICE and DTLS and decrypts every SRTP packet. Phases: viewers start `--stagger-ms` apart;
//! once each has its first video packet (or failed), the client waits `--settle-ms` (the
//! keyframe-cache burst of a new viewer passes), then measures a window of `--seconds`.
//! The window's edges are announced on stderr (`loadclient: window start` / `window end`)
//! so a script can sample the server's CPU over exactly that time. At the end every viewer
//! DELETEs its WHEP session and one JSON summary goes to stdout. With `--pli-after-ms`, each
//! viewer sends one keyframe request (RTCP PLI) that long after its first video packet; the
//! summary says how soon a keyframe came and with what RTP timestamp step, and counts video
//! timestamps that went back.
//!
//! With `--lean` each viewer is the `rtc` crate's sans-IO peer connection on a socket of its
//! own, moved by one small task ([`lean`]): the same ICE, DTLS, SRTP decryption, NACKs and
//! receiver reports, without the `webrtc` crate's tasks per connection, so one client core
//! carries many more viewers. With `--janus ID` the (lean) viewers watch mountpoint `ID` of
//! Janus's streaming plugin at `--server` instead ([`janus`]), for side-by-side runs.
//!
//! Runs on one current-thread tokio runtime (plus the blocking pool for the HTTP calls),
//! so it uses at most one core next to the server.

mod churn;
mod janus;
mod lean;
mod stats;
mod viewer;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use stats::{percentile, Snapshot};
use viewer::{Config, Shared};

struct Args {
    server: String,
    /// One or more stream names (`--stream` repeated).
    streams: Vec<String>,
    viewers: usize,
    seconds: f64,
    stagger_ms: u64,
    settle_ms: u64,
    connect_timeout_ms: u64,
    bind: SocketAddr,
    pli_after_ms: Option<u64>,
    /// Churn mode: each viewer stays this many seconds (uniform in min..=max) after its
    /// first video packet, then is replaced.
    churn_min_s: Option<f64>,
    churn_max_s: Option<f64>,
    /// Churn mode: seconds between two progress lines on stderr.
    report_s: f64,
    /// Lean viewers (see [`lean`]).
    lean: bool,
    /// Watch this Janus streaming mountpoint instead (see [`janus`]).
    janus: Option<u64>,
}

const USAGE: &str = "usage: pullcast-loadclient --server http://HOST:PORT --stream NAME \
--viewers N --seconds S [--stagger-ms 50] [--settle-ms 3000] [--connect-timeout-ms 15000] \
[--bind 127.0.0.1] [--pli-after-ms MS] [--churn-min-s S --churn-max-s S [--report-s 10]] \
[--lean] [--janus MOUNTPOINT] (--stream may be repeated; with --janus, --server is Janus's \
http://HOST:8088/janus and --stream only a label)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: String::new(),
        streams: Vec::new(),
        viewers: 1,
        seconds: 20.0,
        stagger_ms: 50,
        settle_ms: 3000,
        connect_timeout_ms: 15_000,
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        pli_after_ms: None,
        churn_min_s: None,
        churn_max_s: None,
        report_s: 10.0,
        lean: false,
        janus: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        if flag == "--lean" {
            args.lean = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--server" => args.server = value.trim_end_matches('/').to_string(),
            "--stream" => args.streams.push(value),
            "--viewers" => args.viewers = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => args.seconds = value.parse().map_err(|e| bad(&e))?,
            "--stagger-ms" => args.stagger_ms = value.parse().map_err(|e| bad(&e))?,
            "--settle-ms" => args.settle_ms = value.parse().map_err(|e| bad(&e))?,
            "--pli-after-ms" => args.pli_after_ms = Some(value.parse().map_err(|e| bad(&e))?),
            "--churn-min-s" => args.churn_min_s = Some(value.parse().map_err(|e| bad(&e))?),
            "--churn-max-s" => args.churn_max_s = Some(value.parse().map_err(|e| bad(&e))?),
            "--report-s" => args.report_s = value.parse().map_err(|e| bad(&e))?,
            "--janus" => args.janus = Some(value.parse().map_err(|e| bad(&e))?),
            "--connect-timeout-ms" => {
                args.connect_timeout_ms = value.parse().map_err(|e| bad(&e))?
            }
            "--bind" => {
                let ip: std::net::IpAddr = value.parse().map_err(|e| bad(&e))?;
                args.bind = SocketAddr::new(ip, 0);
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if args.server.is_empty() || args.streams.is_empty() {
        return Err(format!("--server and --stream are required\n{USAGE}"));
    }
    if args.viewers == 0 || args.seconds.is_nan() || args.seconds <= 0.0 {
        return Err("--viewers must be ≥ 1 and --seconds > 0".to_string());
    }
    match (args.churn_min_s, args.churn_max_s) {
        (None, None) => {}
        (Some(min), Some(max))
            if min.is_finite() && max.is_finite() && 0.0 <= min && min <= max =>
        {
            if !(args.report_s.is_finite() && args.report_s > 0.0) {
                return Err("--report-s must be > 0".to_string());
            }
        }
        _ => {
            return Err(
                "--churn-min-s and --churn-max-s go together, with 0 ≤ min ≤ max".to_string(),
            )
        }
    }
    Ok(args)
}

/// Encodes everything but RFC 3986 unreserved characters (one WHEP path segment).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `{"p50": .., "max": ..}` of some milliseconds (null when none).
fn p50_max(values: &[f64]) -> Value {
    json!({
        "p50": percentile(values, 50.0).map(round1),
        "max": percentile(values, 100.0).map(round1),
        "n": values.len(),
    })
}

fn min_avg_max(values: &[f64]) -> Value {
    if values.is_empty() {
        return json!({"min": null, "avg": null, "max": null});
    }
    let sum: f64 = values.iter().sum();
    json!({
        "min": round1(values.iter().copied().fold(f64::INFINITY, f64::min)),
        "avg": round1(sum / values.len() as f64),
        "max": round1(values.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
    })
}

fn snapshot(viewers: &[Arc<Shared>]) -> Vec<Snapshot> {
    viewers
        .iter()
        .map(|v| v.counters.lock().map(|c| c.snapshot()).unwrap_or_default())
        .collect()
}

fn timelines(shared: &[Arc<Shared>]) -> Vec<viewer::Timeline> {
    shared
        .iter()
        .map(|s| s.timeline.lock().map(|t| t.clone()).unwrap_or_default())
        .collect()
}

/// This process's CPU time (user + system, all threads) in seconds, from `/proc/self/stat`
/// (Linux; `None` elsewhere). Assumes the usual 100 clock ticks per second.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let http = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let configs: Vec<Arc<Config>> = args
        .streams
        .iter()
        .map(|stream| {
            Arc::new(Config {
                server: args.server.clone(),
                stream_segment: percent_encode(stream),
                bind: args.bind,
                connect_timeout: Duration::from_millis(args.connect_timeout_ms),
                pli_after: args.pli_after_ms.map(Duration::from_millis),
                http: http.clone(),
                lean: args.lean,
                janus: args.janus,
            })
        })
        .collect();

    if let (Some(min), Some(max)) = (args.churn_min_s, args.churn_max_s) {
        let plan = Arc::new(churn::Plan {
            slots: args.viewers,
            stay_min: Duration::from_secs_f64(min),
            stay_max: Duration::from_secs_f64(max),
            run: Duration::from_secs_f64(args.seconds),
            stagger: Duration::from_millis(args.stagger_ms),
            report_every: Duration::from_secs_f64(args.report_s),
            retry_after_failure: Duration::from_secs(1),
        });
        let (totals, elapsed) = churn::run(plan.clone(), configs, http).await;
        let summary = totals
            .lock()
            .map(|t| t.summary(&plan, &args.streams, elapsed))
            .unwrap_or_else(|e| e.into_inner().summary(&plan, &args.streams, elapsed));
        println!("{summary}");
        return ExitCode::SUCCESS;
    }

    // 1. Connect, `stagger_ms` apart.
    let started = Instant::now();
    let shared: Vec<Arc<Shared>> = (0..args.viewers)
        .map(|_| Arc::new(Shared::default()))
        .collect();
    let mut tasks = Vec::with_capacity(args.viewers);
    for (i, s) in shared.iter().enumerate() {
        let Some(config) = configs.get(i % configs.len()).cloned() else {
            break;
        };
        let s = s.clone();
        let delay = Duration::from_millis(args.stagger_ms * i as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            viewer::connect(config, s).await
        }));
    }
    let mut sessions = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(session) => sessions.push(session),
            Err(e) => eprintln!("loadclient: a viewer task ended abnormally: {e}"),
        }
    }
    let timelines = timelines(&shared);
    let ok: Vec<bool> = timelines
        .iter()
        .map(|t| t.failure.is_none() && t.first_video_ms.is_some())
        .collect();
    let connected = ok.iter().filter(|&&b| b).count();
    let setup_ms = started.elapsed().as_millis();
    eprintln!(
        "loadclient: {connected}/{} viewers receiving video after {setup_ms} ms",
        args.viewers
    );
    for (i, t) in timelines.iter().enumerate() {
        if let Some(f) = &t.failure {
            eprintln!("loadclient: viewer {i} failed: {f}");
        }
    }

    // 2. Settle, then the measured window.
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let before = snapshot(&shared);
    let cpu_before = own_cpu_seconds();
    let window_start = Instant::now();
    eprintln!("loadclient: window start");
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let after = snapshot(&shared);
    let window = window_start.elapsed().as_secs_f64();
    let cpu_after = own_cpu_seconds();
    eprintln!("loadclient: window end ({window:.3} s)");
    // Give a sampling script time to read the server's counters before the teardown.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 3. Tear down: DELETE every WHEP session, close every connection.
    let mut ends = Vec::with_capacity(sessions.len());
    for session in sessions {
        let http = http.clone();
        ends.push(tokio::spawn(async move { session.end(http).await }));
    }
    let mut delete_errors = Vec::new();
    for end in ends {
        match end.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => delete_errors.push(e),
            Err(e) => delete_errors.push(e.to_string()),
        }
    }

    // 4. Summary (connected viewers only for rates).
    let mut kbps = Vec::new();
    let mut fps = Vec::new();
    let (mut packets_window, mut expected_window, mut unique_window) = (0u64, 0u64, 0u64);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        packets_window += a.packets - b.packets;
        if !ok[i] {
            continue;
        }
        kbps.push((a.bytes - b.bytes) as f64 * 8.0 / window / 1000.0);
        fps.push((a.video_frames - b.video_frames) as f64 / window);
        expected_window += a.expected - b.expected;
        unique_window += a.unique - b.unique;
    }
    let (mut packets_total, mut bytes_total, mut lost_total, mut expected_total, mut dups) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut plis_sent, mut pli_answer_ms, mut pli_answer_steps, mut ts_backwards) =
        (0usize, Vec::new(), Vec::new(), 0u64);
    for s in &shared {
        if let Ok(c) = s.counters.lock() {
            let timing = &c.video_timing;
            ts_backwards += timing.backwards;
            plis_sent += usize::from(timing.requested_ms().is_some());
            if let Some((ms, step)) = timing.answer {
                pli_answer_ms.push(ms);
                pli_answer_steps.push(step);
            }
            packets_total += c.packets;
            bytes_total += c.bytes;
            expected_total += c.video_seq.expected() + c.audio_seq.expected();
            lost_total += c.video_seq.lost() + c.audio_seq.lost();
            dups += c.video_seq.duplicates + c.audio_seq.duplicates;
        }
    }
    let pct = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            (part as f64 * 100.0 / whole as f64 * 1000.0).round() / 1000.0
        }
    };
    // Milestones as they are now (a viewer's first audio packet may follow its first video).
    let timelines = self::timelines(&shared);
    let pick = |f: fn(&viewer::Timeline) -> Option<f64>| -> Vec<f64> {
        timelines
            .iter()
            .zip(&ok)
            .filter(|(_, ok)| **ok)
            .filter_map(|(t, _)| f(t))
            .collect()
    };
    let failures: Vec<&String> = timelines
        .iter()
        .filter_map(|t| t.failure.as_ref())
        .collect();
    let summary = json!({
        "server": args.server,
        "stream": args.streams.join(","),
        "viewers": args.viewers,
        "connected": connected,
        "failed": args.viewers - connected,
        "failures": failures.iter().take(5).collect::<Vec<_>>(),
        "setup_ms": setup_ms,
        "stagger_ms": args.stagger_ms,
        "window_s": (window * 1000.0).round() / 1000.0,
        "kbps_per_viewer": min_avg_max(&kbps),
        "video_fps_per_viewer": min_avg_max(&fps),
        "client_cpu_pct_window": match (cpu_before, cpu_after) {
            (Some(b), Some(a)) => json!(round1((a - b) / window * 100.0)),
            _ => Value::Null,
        },
        "packets_window": packets_window,
        "loss_pct_window": pct(expected_window.saturating_sub(unique_window), expected_window),
        "packets_total": packets_total,
        "bytes_total": bytes_total,
        "loss_pct_total": pct(lost_total, expected_total),
        "duplicates_total": dups,
        "first_video_packet_is_keyframe": pick(|t| t.first_video_is_keyframe.map(|k| if k { 1.0 } else { 0.0 })).iter().filter(|&&k| k > 0.0).count(),
        "ms_after_post": {
            "answer": p50_max(&pick(|t| t.answer_ms)),
            "ice_connected": p50_max(&pick(|t| t.ice_connected_ms)),
            "dtls_connected": p50_max(&pick(|t| t.connected_ms)),
            "first_video_rtp": p50_max(&pick(|t| t.first_video_ms)),
            "first_audio_rtp": p50_max(&pick(|t| t.first_audio_ms)),
        },
        "video_timestamps_backwards": ts_backwards,
        "keyframe_requests": {
            "sent": plis_sent,
            "answered": pli_answer_ms.len(),
            "answer_ms": p50_max(&pli_answer_ms),
            "answer_ts_step_ticks": pli_answer_steps,
        },
        "delete_errors": delete_errors.iter().take(5).collect::<Vec<_>>(),
        "delete_error_count": delete_errors.len(),
    });
    println!("{summary}");
    ExitCode::SUCCESS
}
