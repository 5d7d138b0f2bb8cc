//! The audio path for WebRTC viewers: AAC (any flavour, any rate) → PCM → 48 kHz → Opus.
//!
//! One [`transcoder::AudioTranscoder`] serves a whole capture. It is computation only — the
//! codecs are libraries called in-process (FDK AAC, libopus, rubato) — with no I/O, no
//! clock and no runtime; timestamps come from the frames it is given.
//!
//! - [`decode`] wraps the FDK AAC decoder (AAC-LC, HE-AAC v1/v2, explicit or implicit
//!   signalling), always giving stereo PCM.
//! - [`resample`] converts any rate to 48 kHz.
//! - [`framer`] cuts 20 ms Opus frames and stamps them on the capture's timeline.
//! - [`transcoder`] ties them to libopus and keeps the timeline through gaps and codec changes.

pub mod decode;
pub mod framer;
pub mod resample;
pub mod transcoder;

/// The Opus clock rate and the rate everything is resampled to.
pub const OPUS_RATE: u32 = 48_000;
/// Channels we encode: browsers play stereo Opus; mono sources are duplicated.
pub const CHANNELS: usize = 2;
/// Samples per channel in one 20 ms Opus frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Duration of one Opus frame in ms.
pub const FRAME_MS: i64 = 20;
