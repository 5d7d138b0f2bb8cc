//! FLV tag bodies as RTMP carries them (audio message type 8, video type 9).
//!
//! [`tag`] splits a tag body into its header fields and payload (the H.264 and AAC
//! configurations they carry are parsed by [`crate::codec`]); [`file`] reads FLV files
//! (header + framed tags) for benchmarks and tests; [`write`] writes a player's FLV stream
//! from a capture's frames (HTTP-FLV). Nothing here keeps state between tags but a player's
//! [`write::FlvStream`] — reading them back is the [`crate::normalize::Normalizer`]'s job.

pub mod file;
pub mod tag;
pub mod write;
