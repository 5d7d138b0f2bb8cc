//! LL-HLS (RFC 8216bis) out of a capture: CMAF fragmented MP4 parts and segments from the
//! source's own H.264 and AAC (no transcode; B-frames are fine), and the media playlist a
//! client polls or blocks on.
//!
//! - [`cutter`] — where parts and segments end (part target, 85 % rule, keyframes).
//! - [`muxer`] — [`HlsMuxer`]: frames in, parts and segments in a bounded window out.
//! - [`view`] — [`HlsView`]: one snapshot of the window and the answers to a client's
//!   questions (blocking reloads, parts, segments).
//! - [`playlist`] — the playlist text, with delta updates.
//! - [`query`] — the delivery directives of a request.
//!
//! Pure: no sockets, no clock (wall time is passed in), no waiting. The server's HLS actor
//! and handlers do that.

pub mod cutter;
pub mod muxer;
pub mod playlist;
pub mod query;
pub mod view;

#[cfg(test)]
mod muxer_tests;

pub use muxer::{HlsMuxer, HlsOptions, HlsStats, Overflow};
pub use view::{Availability, HlsView, Part, PartLookup, Segment};
