//! WebRTC delivery: browsers watch a capture over WebRTC.
//!
//! - [`engine`] — the [`engine::WebRtcEngine`], built once at start: codecs per offer,
//!   interceptors, ICE settings (mDNS off, one UDP port per connection from the configured
//!   range, 1:1 NAT public IPs, loopback candidates), the viewer threads. Signalling (WHEP in
//!   `http::whep`, the WebSocket session) creates viewers with
//!   [`engine::WebRtcEngine::start_viewer`].
//! - [`viewer_peer`] — the [`viewer_peer::ViewerPeer`] actor, one per viewer: its peer
//!   connection, its tracks, RTP out.
//! - [`transport`] — one viewer's ICE-lite + DTLS + SRTP connection on the shared media port
//!   (the `rtc` crate's sans-IO peer connection), for the one-port engine being built;
//! - [`media_port`] — the task that owns that port's socket and every viewer's transport;
//!   [`tcp_conns`] its ICE-TCP connections.
//!
//! The SDP and timestamp decisions are pure and live in `pullcast::webrtc_viewer`. Nothing here
//! parses RTMP or transcodes; media arrives as `SubscriberMedia` from the capture.

pub mod engine;
pub mod media_port;
pub mod tcp_conns;
pub mod transport;
pub mod viewer_peer;

pub use engine::{ViewerError, ViewerRequest, ViewerStarted, WebRtcEngine};
pub use viewer_peer::ViewerPeer;
