//! WebRTC delivery: browsers watch a capture over WebRTC.
//!
//! - [`engine`] — the [`engine::WebRtcEngine`], built once at start: codecs per offer,
//!   viewer limits, the one media port, the viewer threads. Signalling (WHEP in
//!   `http::whep`, the WebSocket session) creates viewers with
//!   [`engine::WebRtcEngine::start_viewer`].
//! - [`viewer_peer`] — the [`viewer_peer::ViewerPeer`] actor, one per viewer: its answer,
//!   lifecycle, status, keyframe requests. No frame passes through it.
//! - [`media_plane`] — a viewer's RTP stamping (on payloads made once per capture) and
//!   sender reports, run by the port worker that owns the viewer.
//! - [`media_port`] — the one port every viewer uses (a UDP socket and [`tcp_conns`], its
//!   ICE-TCP connections): a receiver that routes what arrives, and one worker per core
//!   that owns its viewers' media planes and [`transport`]s (ICE-lite + DTLS + SRTP of our
//!   own on the `rtc` crate's sans-IO parts) and sends with [`udp_batch`] (`sendmmsg`).
//!
//! The SDP and timestamp decisions are pure and live in `pullcast::webrtc_viewer`. Nothing here
//! parses RTMP or transcodes; media arrives from the capture's outlets.

pub mod engine;
pub mod media_plane;
pub mod media_port;
pub mod tcp_conns;
pub mod transport;
pub mod udp_batch;
pub mod viewer_peer;

pub use engine::{ViewerError, ViewerRequest, ViewerStarted, WebRtcEngine};
pub use viewer_peer::ViewerPeer;
