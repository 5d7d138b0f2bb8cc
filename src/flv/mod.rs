//! FLV tag bodies as RTMP carries them (audio message type 8, video type 9).
//!
//! [`tag`] splits a tag body into its header fields and payload; [`avc`] and [`aac`] parse
//! the H.264 and AAC codec configurations those payloads carry; [`file`] reads FLV files
//! (header + framed tags) for benchmarks and tests. Nothing here keeps state
//! between tags — that is the [`crate::normalize::Normalizer`]'s job.

pub mod aac;
pub mod avc;
pub mod file;
pub mod tag;
