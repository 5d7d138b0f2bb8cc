//! RTP payloads made once per capture and shared by every WebRTC viewer: per viewer only
//! the 12-byte header (SSRC, sequence number, timestamp, payload type) differs.
//!
//! - [`h264`] — H.264 access units → FU-A / STAP-A / single NAL unit payloads.
//! - [`recent`] — a capture's latest frames' payloads, so each frame is packetized once.
//! - [`header`] — the 12-byte header each viewer puts on them.
//! - [`resend`] — what a viewer's track sent lately, to answer a NACK with.
//!
//! An Opus frame is one payload as it is. Nothing here does I/O, reads a clock or knows
//! about the `rtc` crate.

pub mod h264;
pub mod header;
pub mod recent;
pub mod resend;

pub use header::{RtpHeader, HEADER_LEN};
pub use recent::RecentPayloads;
pub use resend::{nacked, ResendHistory, SentPacket};
