//! The decisions a WebRTC viewer needs, as pure functions and small state machines:
//!
//! - [`sdp`] — what a browser's offer contains, which H.264 format to answer with;
//! - [`offer_transport`] — the browser's DTLS fingerprint and ICE credentials from its offer;
//! - [`rtp_time`] — pts → RTP timestamps, forward-only placement of live and replayed frames;
//! - [`keyframe_limiter`] — how often a keyframe request is honoured.
//!
//! Nothing here does I/O, reads a clock or knows about the `webrtc` crate: the server's
//! `ViewerPeer` feeds it the offer and the times.

pub mod keyframe_limiter;
pub mod offer_transport;
pub mod rtp_time;
pub mod sdp;

pub use keyframe_limiter::KeyframeRequestLimiter;
pub use offer_transport::{offer_fingerprint, offer_transport, OfferTransport, Sha256Fingerprint};
pub use rtp_time::{ForwardTime, RtpClock};
pub use sdp::{
    choose_h264, h264_format, opus_answer_fmtp, parse_offer, H264Format, OfferSummary, OpusFormat,
    SdpError, SourceProfile,
};
