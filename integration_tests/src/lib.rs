//! End-to-end test harness for pullcast: real peers on 127.0.0.1 only.
//!
//! Every test starts its own peers and its own server:
//! - [`NginxRtmp`] — nginx with the RTMP module, a real RTMP server to pull from;
//! - [`Publisher`] — ffmpeg publishing a synthetic H.264 + AAC source (or serving one itself
//!   with `-listen 1`);
//! - [`Pullcast`] — the server binary under test, built once per test process;
//! - [`SilentTcpListener`] — a TCP peer that accepts and never answers;
//! - [`browser`] — headless Chromium (playwright-core) running a page-side script, e.g. WHEP viewers;
//! - [`aac_vectors`] — HE-AAC sources ffmpeg cannot encode (FDK encoder → our FLV file →
//!   `ffmpeg -c copy` to nginx);
//! - [`cpu_load`] — how busy the machine was during a measurement, ours versus others';
//! - [`ws_client`] — a WebSocket client for the signalling, with any headers on the upgrade;
//! - [`auth_hook`] — an authorization hook (a small HTTP server) that records what it is
//!   asked and answers as the test says;
//! - [`webrtc_client`] — a non-browser WebRTC viewer (webrtc-rs, `bench/loadclient`) for
//!   what Chromium cannot be made to do on demand (a keyframe request at a chosen moment);
//! - [`HostileRtmpServer`] — an RTMP server of our own that attacks whoever pulls from it
//!   (one [`hostile_rtmp::Scenario`] per connection), or serves a valid live stream;
//! - [`flv_clip`] — short H.264 + AAC clips encoded by ffmpeg at test time, as FLV tags;
//! - [`hls_check`] — an LL-HLS playlist read back and checked against the RFC's rules;
//! - [`memory`] — a process's resident memory from `/proc`, sampled during a test;
//! - [`prom`] — a reader of the Prometheus text format, to look up what `/metrics` says;
//! - [`lossy_relay`] — a UDP relay between a viewer and the media port that loses some of
//!   the server's video packets, so the browser has to NACK them.
//!
//! Rules the harness keeps: a missing tool is a loud panic, never a skipped test; every child
//! process is killed on `Drop` (so a failing test leaves nothing behind); every wait has a
//! deadline; each peer keeps its log in its own temporary folder, and the folder is kept (and
//! its path printed) when the test panics.

pub mod aac_vectors;
pub mod auth_hook;
pub mod browser;
pub mod cpu_load;
pub mod flv_clip;
pub mod hls_check;
pub mod hostile_rtmp;
pub mod http;
pub mod lossy_relay;
pub mod memory;
pub mod nginx;
pub mod package_dir;
pub mod ports;
pub mod probe;
pub mod process;
pub mod prom;
pub mod publisher;
pub mod server;
pub mod tempdir;
pub mod wait;
pub mod webrtc_client;
pub mod ws_client;

pub use hostile_rtmp::HostileRtmpServer;
pub use nginx::NginxRtmp;
pub use ports::{free_port, SilentTcpListener};
pub use publisher::{Publisher, PublisherBuilder};
pub use server::Pullcast;
pub use tempdir::TempDir;
