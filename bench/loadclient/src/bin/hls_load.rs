//! `pullcast-hls-load`: N LL-HLS clients of one playlist, for the LL-HLS benchmark
//! (`bench/hls_load.sh`).
//!
//! ```text
//! pullcast-hls-load --url http://127.0.0.1:8082/bench/bench.m3u8 --clients 100 --seconds 20
//!     [--settle-ms 3000]
//! ```
//!
//! Each client is a thread doing what an LL-HLS player does at the live edge: a blocking
//! playlist reload for the next part (`_HLS_msn`/`_HLS_part`), then every new part the
//! answer lists, forever. After `--settle-ms` a window of `--seconds` is measured (announced
//! on stderr as `hls-load: window start` / `window end`). One JSON summary on stdout: parts
//! and bytes per second, playlist requests, errors.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

#[derive(Default)]
struct Totals {
    parts: AtomicU64,
    bytes: AtomicU64,
    playlists: AtomicU64,
    errors: AtomicU64,
}

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args().skip_while(|a| a != name);
    it.next()?;
    it.next()
}

/// Body of `url`, or `None` (counted as an error).
fn get(agent: &ureq::Agent, url: &str) -> Option<Vec<u8>> {
    let response = agent.get(url).call().ok()?;
    let mut body = Vec::new();
    response
        .into_reader()
        .take(64 << 20)
        .read_to_end(&mut body)
        .ok()?;
    Some(body)
}

/// (msn of the open segment, parts it has, every part (id, uri)) of a playlist.
fn read_playlist(text: &str) -> (u64, u64, Vec<(u64, String)>) {
    let mut sequence = 0;
    let mut segments = 0;
    let mut open_parts = 0;
    let mut parts = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            sequence = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
            segments += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            open_parts += 1;
            if let Some(uri) = attrs
                .split("URI=\"")
                .nth(1)
                .and_then(|u| u.split('"').next())
            {
                let id = uri
                    .rsplit("_part")
                    .next()
                    .and_then(|r| r.split('.').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                parts.push((id, uri.to_string()));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            segments += 1;
            open_parts = 0;
        }
    }
    (sequence + segments, open_parts, parts)
}

fn client(url: String, totals: Arc<Totals>, stop: Arc<AtomicBool>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let folder = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(f, _)| f)
        .to_string();
    let mut next_part: Option<u64> = None;
    let mut target = String::new();
    while !stop.load(Ordering::Relaxed) {
        let Some(body) = get(&agent, &format!("{url}{target}")) else {
            totals.errors.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        totals.playlists.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(&body);
        let (msn, open, parts) = read_playlist(&text);
        // Start at the live edge: the newest part only.
        let from = next_part.unwrap_or_else(|| parts.last().map_or(0, |p| p.0));
        for (id, uri) in parts.iter().filter(|(id, _)| *id >= from) {
            match get(&agent, &format!("{folder}/{uri}")) {
                Some(bytes) => {
                    totals.parts.fetch_add(1, Ordering::Relaxed);
                    totals
                        .bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                None => {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            next_part = Some(id + 1);
        }
        if next_part.is_none() {
            next_part = Some(from);
        }
        target = format!("?_HLS_msn={msn}&_HLS_part={open}");
    }
}

fn main() -> std::process::ExitCode {
    let Some(url) = arg("--url") else {
        eprintln!("usage: pullcast-hls-load --url http://HOST:PORT/S/S.m3u8 --clients N --seconds S [--settle-ms 3000]");
        return std::process::ExitCode::from(2);
    };
    let clients: usize = arg("--clients").and_then(|v| v.parse().ok()).unwrap_or(10);
    let seconds: u64 = arg("--seconds").and_then(|v| v.parse().ok()).unwrap_or(20);
    let settle: u64 = arg("--settle-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, totals, stop) = (url.clone(), Arc::clone(&totals), Arc::clone(&stop));
            std::thread::spawn(move || client(url, totals, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(settle));
    let read = |t: &Totals| {
        [
            t.parts.load(Ordering::Relaxed),
            t.bytes.load(Ordering::Relaxed),
            t.playlists.load(Ordering::Relaxed),
            t.errors.load(Ordering::Relaxed),
        ]
    };
    let before = read(&totals);
    eprintln!("hls-load: window start");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let span = t0.elapsed().as_secs_f64();
    let after = read(&totals);
    eprintln!("hls-load: window end");
    stop.store(true, Ordering::Relaxed);
    let per_client = |i: usize| (after[i] - before[i]) as f64 / span / clients as f64;
    println!(
        "{}",
        json!({
            "clients": clients,
            "partsPerSecondPerClient": (per_client(0) * 100.0).round() / 100.0,
            "playlistsPerSecondPerClient": (per_client(2) * 100.0).round() / 100.0,
            "kbitPerSecond": ((after[1] - before[1]) as f64 * 8.0 / span / 1000.0).round(),
            "errors": after[3] - before[3],
            "windowSeconds": (span * 10.0).round() / 10.0,
        })
    );
    // Clients blocked in a reload end with it; do not wait for them.
    drop(threads);
    std::process::ExitCode::SUCCESS
}
