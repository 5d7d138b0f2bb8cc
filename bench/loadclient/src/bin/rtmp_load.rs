//! `pullcast-rtmp-load`: N RTMP players of one stream, for the RTMP fan-out benchmark
//! (`bench/rtmp_fanout.sh`), against pullcast or nginx-rtmp alike.
//!
//! ```text
//! pullcast-rtmp-load --url rtmp://127.0.0.1:1935/live/bench --players 100 --seconds 20
//!     [--stagger-ms 10] [--settle-ms 3000]
//! ```
//!
//! Each player is pullcast's own sans-IO play session (`pullcast::rtmp::PlaySession`: the
//! handshake, connect, createStream, play, acknowledgements) on a TCP connection, driven by
//! one task on one current-thread runtime: every message is reassembled and counted, none
//! decoded. Players start `--stagger-ms` apart; once each has its first video message (or
//! failed), the client waits `--settle-ms` (the cached GOP's burst passes), then measures a
//! window of `--seconds`, announced on stderr (`rtmp-load: window start` / `window end`) so a
//! script can sample the server's CPU over exactly that time. One JSON summary on stdout.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use pullcast::rtmp::{PlaySession, PlaySessionConfig, RtmpUrl, SessionEvent};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default, Clone)]
struct Counters {
    first_video_ms: Option<f64>,
    video: u64,
    audio: u64,
    bytes: u64,
    failed: Option<String>,
}

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args().skip_while(|a| a != name);
    it.next()?;
    it.next()
}

fn number(name: &str, default: u64) -> u64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn player(url: RtmpUrl, counters: Rc<RefCell<Counters>>, started: Instant) {
    let fail = |why: String| counters.borrow_mut().failed = Some(why);
    let mut socket = match TcpStream::connect((url.host.as_str(), url.port)).await {
        Ok(s) => s,
        Err(e) => return fail(format!("connect: {e}")),
    };
    let _ = socket.set_nodelay(true);
    let mut session = match PlaySession::new(PlaySessionConfig {
        url,
        chunk_size: 4096,
        buffer_length_ms: 1000,
    }) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let out = session.take_outbound();
        if !out.is_empty() && socket.write_all(&out).await.is_err() {
            return fail("write".into());
        }
        let n = match socket.read(&mut buf).await {
            Ok(0) => return fail("closed".into()),
            Ok(n) => n,
            Err(e) => return fail(format!("read: {e}")),
        };
        if let Err(e) = session.handle_input(&buf[..n]) {
            return fail(e.to_string());
        }
        let mut c = counters.borrow_mut();
        c.bytes += n as u64;
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::Video { .. } => {
                    c.video += 1;
                    if c.first_video_ms.is_none() {
                        c.first_video_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                SessionEvent::Audio { .. } => c.audio += 1,
                SessionEvent::Failed { reason } | SessionEvent::Ended { reason } => {
                    c.failed = Some(reason);
                    return;
                }
                _ => {}
            }
        }
    }
}

fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    Some((values[i] * 10.0).round() / 10.0)
}

fn main() -> std::process::ExitCode {
    let Some(url) = arg("--url") else {
        eprintln!("usage: pullcast-rtmp-load --url rtmp://HOST:PORT/APP/STREAM --players N --seconds S [--stagger-ms 10] [--settle-ms 3000]");
        return std::process::ExitCode::from(2);
    };
    let url = match RtmpUrl::parse(&url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("rtmp-load: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let players = number("--players", 10) as usize;
    let seconds = number("--seconds", 20);
    let stagger = Duration::from_millis(number("--stagger-ms", 10));
    let settle = Duration::from_millis(number("--settle-ms", 3000));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rtmp-load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let summary = local.block_on(&runtime, async move {
        let all: Vec<Rc<RefCell<Counters>>> = (0..players).map(|_| Rc::default()).collect();
        for c in &all {
            let started = Instant::now();
            tokio::task::spawn_local(player(url.clone(), Rc::clone(c), started));
            tokio::time::sleep(stagger).await;
        }
        let wait_until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < wait_until
            && all.iter().any(|c| {
                let c = c.borrow();
                c.first_video_ms.is_none() && c.failed.is_none()
            })
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(settle).await;
        let before: Vec<Counters> = all.iter().map(|c| c.borrow().clone()).collect();
        eprintln!("rtmp-load: window start");
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let span = t0.elapsed().as_secs_f64();
        eprintln!("rtmp-load: window end");
        let after: Vec<Counters> = all.iter().map(|c| c.borrow().clone()).collect();
        let mut first: Vec<f64> = after.iter().filter_map(|c| c.first_video_ms).collect();
        let mut fps: Vec<f64> = before
            .iter()
            .zip(&after)
            .filter(|(_, a)| a.failed.is_none())
            .map(|(b, a)| (a.video - b.video) as f64 / span)
            .collect();
        let bytes: u64 = before.iter().zip(&after).map(|(b, a)| a.bytes - b.bytes).sum();
        let failed: Vec<&str> = after.iter().filter_map(|c| c.failed.as_deref()).collect();
        json!({
            "players": players,
            "playing": after.iter().filter(|c| c.first_video_ms.is_some() && c.failed.is_none()).count(),
            "failed": failed.len(),
            "firstFailure": failed.first(),
            "firstVideoMs": { "p50": percentile(&mut first, 50.0), "max": percentile(&mut first, 100.0) },
            "videoFps": { "min": percentile(&mut fps, 0.0), "p50": percentile(&mut fps, 50.0) },
            "kbitPerSecond": (bytes as f64 * 8.0 / span / 1000.0).round(),
            "windowSeconds": (span * 10.0).round() / 10.0,
        })
    });
    println!("{summary}");
    std::process::ExitCode::SUCCESS
}
