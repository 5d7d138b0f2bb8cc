//! The media types every stage after the RTMP reader shares.
//!
//! A [`MediaFrame`] is one access unit (H.264) or one raw AAC frame with its decode and
//! presentation times on the capture's 64-bit millisecond timeline. Payloads are [`Bytes`],
//! so fanning a frame out to many subscribers clones a pointer, never the data.
//! This module holds types only: no parsing, no I/O.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::aac::AudioSpecificConfig;
use crate::codec::h264::AvcConfig;

/// Which elementary stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    Video,
    Audio,
}

/// One decodable unit of media.
///
/// - Video: one H.264 access unit in Annex-B form (`00 00 00 01` start codes); keyframes
///   (IDR) carry the SPS and PPS they need in front, so any keyframe can start a decoder.
/// - Audio: one raw AAC frame (no ADTS header), decoded with the capture's
///   [`AudioSpecificConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct MediaFrame {
    /// Which stream this frame belongs to.
    pub track: Track,
    /// Presentation time in milliseconds (dts + composition offset).
    pub pts: i64,
    /// Decode time in milliseconds, monotonic per track on the capture's timeline.
    pub dts: i64,
    /// A frame a decoder can start from (H.264 IDR; every AAC frame).
    pub keyframe: bool,
    /// The frame's bytes, shared.
    pub data: Bytes,
    /// When its source message was parsed, in µs on the server's monotonic clock (0 when
    /// unknown). Set by the server, which has a clock; used to measure the latency the server
    /// adds. The core only carries it.
    pub ingest_us: u64,
}

/// What one frame costs in memory beside its payload, in bytes: the `MediaFrame` itself (64),
/// the shared header `Bytes` allocates for a payload made from a `Vec` and the allocator's
/// rounding of the payload (about 64), and the slot of the queue or mailbox it waits in (an
/// actix envelope is a boxed message of about 100). Rounded up to 256 so that a flood of
/// tiny frames is counted at what it really holds, not at its few payload bytes.
pub const FRAME_OVERHEAD_BYTES: usize = 256;

impl MediaFrame {
    /// What this frame costs in memory: its payload plus [`FRAME_OVERHEAD_BYTES`]. Queues,
    /// caches and budgets count frames with this, never with the payload length alone.
    ///
    /// Honest only for a payload that owns its allocation: the normalizer and the RTMP
    /// chunk decoder copy what they hand on, so no frame keeps a larger buffer alive.
    pub fn cost_bytes(&self) -> usize {
        self.data.len().saturating_add(FRAME_OVERHEAD_BYTES)
    }
}

/// The codec configuration in force for a capture. A new one mid-stream is a codec change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CodecSet {
    /// H.264 configuration, if the source has video.
    pub video: Option<Arc<AvcConfig>>,
    /// AAC configuration, if the source has audio.
    pub audio: Option<Arc<AudioSpecificConfig>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_costs_its_payload_and_the_overhead() {
        let frame = MediaFrame {
            track: Track::Video,
            pts: 0,
            dts: 0,
            keyframe: true,
            data: Bytes::from(vec![0u8; 11]),
            ingest_us: 0,
        };
        assert_eq!(frame.cost_bytes(), 11 + FRAME_OVERHEAD_BYTES);
        // The constant covers the struct with room for the payload's and the queue's
        // bookkeeping.
        assert!(std::mem::size_of::<MediaFrame>() * 2 <= FRAME_OVERHEAD_BYTES);
    }
}
