//! H.264 (AVC) as a media server meets it, whatever the container: the decoder
//! configuration record, the sequence parameter set, the ids that tie slices to parameter
//! sets, the two framings of an access unit, profile names.
//!
//! - [`config`] — `AVCDecoderConfigurationRecord` (FLV's sequence header, MP4's `avcC`);
//! - [`sps`] — the sequence parameter set and its VUI;
//! - [`nal`] — NAL unit types and the ids at the start of a PPS or slice;
//! - [`bits`] — emulation prevention and the exp-Golomb bit reader;
//! - [`annexb`] — AVCC ↔ Annex-B;
//! - [`profile`] — profile names and the RFC 6381 codec string;
//! - [`error`] — what went wrong, and where.
//!
//! Every byte parsed here comes from the network: nothing may panic, allocate without bound
//! or keep state between calls. No I/O, no slice decoding.

pub mod annexb;
mod bits;
pub mod config;
pub mod error;
pub mod nal;
pub mod profile;
pub mod sps;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use annexb::{annexb_to_avcc, avcc_to_annexb, split_nals, NalSummary};
#[cfg(test)]
use bits::remove_emulation_prevention;
pub use config::{
    avc_decoder_config_record, parse_avc_decoder_config, AvcConfig, MAX_AVC_CONFIG_BYTES,
    MAX_PPS_BYTES, MAX_SPS_BYTES,
};
pub use error::AvcError;
pub use nal::{first_slice_pps_id, pps_ids, slice_pps_id, sps_id};
pub use profile::{codec_string, profile_name};
pub use sps::{parse_sps, SpsInfo, MAX_FRAME_MBS};
