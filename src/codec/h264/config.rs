//! The `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.2.4.1) — what FLV's AVC
//! sequence header and MP4's `avcC` carry: profile, level, NAL length size and the
//! parameter sets, each id kept once, and which of them a picture needs.
//!
//! The record comes from the network: sizes are capped before anything is copied, nothing
//! panics, nothing is kept between calls.

use bytes::Bytes;

use super::error::AvcError;
use super::nal::{pps_ids, sps_id};
use super::sps::{parse_sps, SpsInfo};

/// The parsed `AVCDecoderConfigurationRecord`.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    /// `AVCProfileIndication`.
    pub profile: u8,
    /// `profile_compatibility` (the SPS constraint flags byte).
    pub compatibility: u8,
    /// `AVCLevelIndication`.
    pub level: u8,
    /// Size in bytes of the NAL length prefix in the video tags (1, 2, 3 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets, each starting with its NAL header byte; one per
    /// `seq_parameter_set_id` (at most 31, each at most [`MAX_SPS_BYTES`]).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, each starting with its NAL header byte; one per
    /// `pic_parameter_set_id` (at most 255, each at most [`MAX_PPS_BYTES`]).
    pub pps: Vec<Bytes>,
    /// What the first SPS says, or `None` when there is none or it does not parse.
    pub sps_info: Option<SpsInfo>,
}

/// Largest `AVCDecoderConfigurationRecord` accepted: 64 KiB. Real records are 40–200 bytes
/// (one SPS, one PPS); 64 KiB holds several of the largest conforming parameter sets, and
/// it bounds what a capture keeps of a source's parameter sets.
pub const MAX_AVC_CONFIG_BYTES: usize = 64 * 1024;
/// Largest SPS accepted: 8 KiB. x264 writes 20–60 bytes (about 1 KiB with custom scaling
/// matrices); the longest SPS the syntax allows (255 POC cycle offsets, 12 scaling lists and
/// two 32-entry HRD tables, all at their longest exp-Golomb codes, plus emulation
/// prevention) is about 6.5 KiB.
pub const MAX_SPS_BYTES: usize = 8 * 1024;
/// Largest PPS accepted: 4 KiB. Encoders write 4–10 bytes (about 1 KiB with scaling lists);
/// only an explicit slice-group map (FMO type 6, Baseline/Extended only, which no WebRTC
/// decoder plays) can be longer.
pub const MAX_PPS_BYTES: usize = 4 * 1024;

/// Writes `cfg` as an ISO/IEC 14496-15 `AVCDecoderConfigurationRecord` (an MP4 `avcC`
/// box's contents, an FLV AVC sequence header's body), always with 4-byte NAL lengths (what
/// [`super::annexb_to_avcc`] writes), whatever the source used. At most 31 SPS and 255 PPS
/// are written, and a parameter set over 65 535 bytes is written empty (a parsed config
/// holds neither: see [`parse_avc_decoder_config`]). The High profiles get their chroma
/// format and bit depths (§5.3.3.1.2) from the SPS summary.
pub fn avc_decoder_config_record(cfg: &AvcConfig) -> Vec<u8> {
    let mut out = vec![
        1, // configurationVersion
        cfg.profile,
        cfg.compatibility,
        cfg.level,
        0xfc | 3, // lengthSizeMinusOne = 3
    ];
    let sps: Vec<&Bytes> = cfg.sps.iter().take(31).collect();
    out.push(0xe0 | sps.len() as u8);
    for s in sps {
        push_parameter_set(&mut out, s);
    }
    let pps: Vec<&Bytes> = cfg.pps.iter().take(255).collect();
    out.push(pps.len() as u8);
    for p in pps {
        push_parameter_set(&mut out, p);
    }
    if matches!(cfg.profile, 100 | 110 | 122 | 144) {
        if let Some(info) = &cfg.sps_info {
            let depth_minus8 = info.bit_depth_luma.saturating_sub(8) & 0x07;
            out.push(0xfc | (info.chroma_format_idc as u8 & 0x03));
            out.push(0xf8 | depth_minus8); // bit_depth_luma_minus8
            out.push(0xf8 | depth_minus8); // bit_depth_chroma_minus8 (the summary has luma only)
            out.push(0); // numOfSequenceParameterSetExt
        }
    }
    out
}

/// A parameter set behind its 16-bit length (empty when it does not fit).
fn push_parameter_set(out: &mut Vec<u8>, set: &[u8]) {
    let set = if set.len() > usize::from(u16::MAX) {
        &[][..]
    } else {
        set
    };
    out.extend_from_slice(&(set.len() as u16).to_be_bytes());
    out.extend_from_slice(set);
}

/// Parses an ISO/IEC 14496-15 `AVCDecoderConfigurationRecord` (the body of an FLV AVC
/// sequence header after the 5-byte video tag header).
///
/// The record is refused when it is longer than [`MAX_AVC_CONFIG_BYTES`] or holds an SPS
/// over [`MAX_SPS_BYTES`] or a PPS over [`MAX_PPS_BYTES`]. Its count fields allow at most
/// 31 SPS and 255 PPS. A parameter set with the same id as an earlier one replaces it (in
/// the earlier one's place), so each id is kept once; one whose id cannot be read is kept
/// as it is.
///
/// The trailing `chroma_format` / bit depth / SPS extension fields of the High profiles are
/// optional (many muxers leave them out) and are ignored, also when cut short.
pub fn parse_avc_decoder_config(data: &[u8]) -> Result<AvcConfig, AvcError> {
    if data.len() < 7 {
        return Err(AvcError::ConfigTooShort(data.len()));
    }
    if data.len() > MAX_AVC_CONFIG_BYTES {
        return Err(AvcError::ConfigTooLarge(data.len()));
    }
    let mut r = ByteReader { data, pos: 0 };
    let version = r.u8("configurationVersion")?;
    if version != 1 {
        return Err(AvcError::UnsupportedConfigVersion(version));
    }
    let profile = r.u8("AVCProfileIndication")?;
    let compatibility = r.u8("profile_compatibility")?;
    let level = r.u8("AVCLevelIndication")?;
    let nal_length_size = (r.u8("lengthSizeMinusOne")? & 0x03) + 1;
    let num_sps = r.u8("numOfSequenceParameterSets")? & 0x1f;
    let mut sps = Vec::with_capacity(usize::from(num_sps));
    for _ in 0..num_sps {
        let nal = r.parameter_set("sequence parameter set", "SPS", MAX_SPS_BYTES)?;
        insert_by_id(&mut sps, nal, sps_id);
    }
    let num_pps = r.u8("numOfPictureParameterSets")?;
    let mut pps = Vec::with_capacity(usize::from(num_pps));
    for _ in 0..num_pps {
        let nal = r.parameter_set("picture parameter set", "PPS", MAX_PPS_BYTES)?;
        insert_by_id(&mut pps, nal, |p| pps_ids(p).map(|(id, _)| id));
    }
    // For profiles 100/110/122/144 the record may continue with chroma_format,
    // bit_depth_luma_minus8, bit_depth_chroma_minus8 and SPS extensions. Everything we need
    // is in the SPS itself, so whatever follows (complete, cut short or absent) is ignored.
    let sps_info = sps.first().and_then(|s| parse_sps(s).ok());
    Ok(AvcConfig {
        profile,
        compatibility,
        level,
        nal_length_size,
        sps,
        pps,
        sps_info,
    })
}

/// Adds `nal` to `list`, replacing the entry with the same id (as `id_of` reads it).
fn insert_by_id(list: &mut Vec<Bytes>, nal: Bytes, id_of: impl Fn(&[u8]) -> Option<u32>) {
    let id = id_of(&nal);
    let same = id.and_then(|id| list.iter().position(|old| id_of(old) == Some(id)));
    match same.and_then(|i| list.get_mut(i)) {
        Some(slot) => *slot = nal,
        None => list.push(nal),
    }
}

impl AvcConfig {
    /// The SPS and PPS a decoder needs for a picture whose slices use PPS `pps_id` (see
    /// [`first_slice_pps_id`]): that PPS and the SPS it names. When the id is unknown, or
    /// not found, the first PPS stands in; when the PPS's SPS is not found, the first SPS.
    /// Never more than one of each, whatever the configuration holds.
    pub fn parameter_sets_for(&self, pps_id: Option<u32>) -> (Option<&Bytes>, Option<&Bytes>) {
        let pps = pps_id
            .and_then(|id| {
                self.pps
                    .iter()
                    .find(|p| pps_ids(p).is_some_and(|(pid, _)| pid == id))
            })
            .or_else(|| self.pps.first());
        let sps = pps
            .and_then(|p| pps_ids(p))
            .and_then(|(_, sid)| self.sps.iter().find(|s| sps_id(s) == Some(sid)))
            .or_else(|| self.sps.first());
        (sps, pps)
    }
}

/// A cursor over the decoder configuration record.
struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl ByteReader<'_> {
    fn u8(&mut self, what: &'static str) -> Result<u8, AvcError> {
        let b = self
            .data
            .get(self.pos)
            .copied()
            .ok_or(AvcError::ConfigTruncated {
                what,
                offset: self.pos,
            })?;
        self.pos += 1;
        Ok(b)
    }

    /// One length-prefixed parameter set of at most `max` bytes, copied out of the record
    /// (so it does not keep the message it came in alive).
    fn parameter_set(
        &mut self,
        what: &'static str,
        kind: &'static str,
        max: usize,
    ) -> Result<Bytes, AvcError> {
        let offset = self.pos;
        let truncated = AvcError::ConfigTruncated { what, offset };
        let len_bytes = self
            .data
            .get(offset..offset.saturating_add(2))
            .ok_or_else(|| truncated.clone())?;
        let len = match len_bytes {
            [hi, lo] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => return Err(truncated),
        };
        if len > max {
            return Err(AvcError::ParameterSetTooLarge {
                what: kind,
                len,
                max,
            });
        }
        let start = offset + 2;
        let body = self
            .data
            .get(start..start.saturating_add(len))
            .ok_or(truncated)?;
        self.pos = start + len;
        Ok(Bytes::copy_from_slice(body))
    }
}
