//! Codec knowledge, independent of any container or protocol: H.264 ([`h264`]) and AAC
//! ([`aac`]). FLV, MP4, RTMP and WebRTC code use these; nothing here knows them.

pub mod aac;
pub mod h264;
