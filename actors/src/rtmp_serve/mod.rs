//! The RTMP listener (`server.rtmp_port`, 1935): players — ffmpeg, VLC, nginx-rtmp's `pull`,
//! another pullcast (edge cascading) — play any capture at `rtmp://HOST:1935/live/STREAM`,
//! and encoders (ffmpeg, OBS) publish to it: `rtmp://HOST:1935/live/NAME` becomes the
//! capture `NAME`.
//!
//! [`serve`] binds the port and accepts; each connection is served by
//! `connection::serve_connection` on one of a few arbiters (one per core, round robin),
//! within `rtmp.max_connections` and `rtmp.connections_per_address` (trusted networks are
//! not counted per address). The plays of a capture on one arbiter share one `RtmpFanout`
//! (`fanout.rs`), subscribed to the capture once; a publish makes the connection the source of a capture (`publisher.rs`). The
//! protocol is `pullcast::rtmp::ServeSession`'s; nothing here parses RTMP or media.

mod connection;
mod fanout;
mod out_queue;
mod publisher;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use log::{info, warn};
use pullcast::config::{RtmpSettings, Settings};
use tokio::net::TcpListener;

use crate::http::access::Gate;
use crate::http::admission::Admission;
use crate::registry::Registry;
use crate::webrtc::WebRtcEngine;

pub use connection::credentials_from_query;

/// What every connection needs.
pub struct RtmpDeps {
    pub settings: RtmpSettings,
    pub gate: Gate,
    pub admission: Admission,
    pub registry: Addr<Registry>,
    /// Where the viewer limits are counted.
    pub engine: WebRtcEngine,
    /// Bytes of media queued for one connection before its players lose frames.
    pub queue_bytes: usize,
    /// Frames a player's mailbox may hold.
    pub mailbox_frames: usize,
    /// How a publisher's source is bounded (`max_media_messages_per_second`).
    pub capture: pullcast::config::CaptureSettings,
    /// Record published streams (`record.by_default`).
    pub record_by_default: bool,
}

/// Open connections, in total and per address.
#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One connection counted while it lives.
struct Counted {
    counts: Arc<Mutex<Counts>>,
    address: Option<IpAddr>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(address) = self.address {
            if let Some(n) = counts.per_address.get_mut(&address) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.per_address.remove(&address);
                }
            }
        }
    }
}

/// Binds the RTMP port and accepts connections for as long as the system runs. Nothing when
/// `rtmp.enabled` is false.
pub async fn serve(settings: &Settings, deps: RtmpDeps) -> Result<(), String> {
    if !settings.rtmp.enabled {
        return Ok(());
    }
    let bind = settings.server.bind.as_str();
    let port = settings.server.rtmp_port;
    let listener = TcpListener::bind((bind, port))
        .await
        .map_err(|e| format!("cannot listen on rtmp {bind}:{port}: {e}"))?;
    info!("RTMP players on rtmp://{bind}:{port}/live/STREAM");
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arbiters: Vec<ArbiterHandle> = (0..workers).map(|_| Arbiter::new().handle()).collect();
    let deps = Arc::new(deps);
    let counts = Arc::new(Mutex::new(Counts::default()));
    actix::spawn(async move {
        let mut next = 0usize;
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!("RTMP accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let counted = match admit(&deps, &counts, peer.ip()) {
                Ok(counted) => counted,
                Err(why) => {
                    info!("RTMP client {peer} refused: {why}");
                    drop(socket);
                    continue;
                }
            };
            let deps = Arc::clone(&deps);
            let arbiter = &arbiters[next % arbiters.len()];
            next = next.wrapping_add(1);
            arbiter.spawn(async move {
                connection::serve_connection(socket, peer, deps).await;
                drop(counted);
            });
        }
    });
    Ok(())
}

/// Counts a new connection from `address`, or says why it is refused.
fn admit(deps: &RtmpDeps, counts: &Arc<Mutex<Counts>>, address: IpAddr) -> Result<Counted, String> {
    let address = pullcast::access::hook::canonical(address);
    let trusted = deps.gate.policy().is_trusted(address);
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    if c.total >= deps.settings.max_connections {
        return Err(format!(
            "the server has its most RTMP connections ({}, rtmp.max_connections)",
            deps.settings.max_connections
        ));
    }
    if !trusted {
        let open = c.per_address.get(&address).copied().unwrap_or(0);
        if open >= deps.settings.connections_per_address {
            return Err(format!(
                "{address} has {open} RTMP connections open already (rtmp.connections_per_address)"
            ));
        }
        *c.per_address.entry(address).or_insert(0) += 1;
    }
    c.total += 1;
    Ok(Counted {
        counts: Arc::clone(counts),
        address: (!trusted).then_some(address),
    })
}
