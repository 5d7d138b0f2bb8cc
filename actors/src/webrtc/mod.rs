//! WebRTC delivery: browsers watch a capture over WebRTC.
//!
//! - [`engine`] — the [`engine::WebRtcEngine`], built once at start: codecs per offer,
//!   viewer limits, the one media port, the viewer threads. Signalling (WHEP in
//!   `http::whep`, the WebSocket session) creates viewers with
//!   [`engine::WebRtcEngine::start_viewer`].
//! - [`viewer_peer`] — the [`viewer_peer::ViewerPeer`] actor, one per viewer: its answer,
//!   status and keyframe requests, its tracks' RTP stamping (on payloads made once per
//!   capture), sender reports.
//! - [`media_port`] — the task that owns the one port every viewer uses (a UDP socket and
//!   [`tcp_conns`], its ICE-TCP connections) and every viewer's [`transport`]: ICE-lite +
//!   DTLS + SRTP of our own on the `rtc` crate's sans-IO parts; [`udp_batch`] sends its
//!   datagrams with `sendmmsg`.
//!
//! The SDP and timestamp decisions are pure and live in `pullcast::webrtc_viewer`. Nothing here
//! parses RTMP or transcodes; media arrives as `SubscriberMedia` from the capture.

pub mod engine;
pub mod media_port;
pub mod tcp_conns;
pub mod transport;
pub mod udp_batch;
pub mod viewer_peer;

pub use engine::{ViewerError, ViewerRequest, ViewerStarted, WebRtcEngine};
pub use viewer_peer::ViewerPeer;
