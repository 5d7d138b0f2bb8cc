//! NAL unit types and the ids at the start of a parameter set or slice header: which SPS a
//! PPS names, which PPS a slice uses — read from a small prefix, without allocating.

use super::bits::BitReader;
use super::sps::MAX_FRAME_MBS;

pub(crate) const NAL_SLICE: u8 = 1;
pub(crate) const NAL_IDR: u8 = 5;
pub(crate) const NAL_SPS: u8 = 7;
pub(crate) const NAL_PPS: u8 = 8;
pub(crate) const NAL_AUD: u8 = 9;
/// Bytes of a NAL unit's payload read to find the ids at its start: three exp-Golomb codes
/// of at most 63 bits each, after at most 3 fixed bytes, fit in 28.
const ID_PREFIX_BYTES: usize = 32;

/// The first [`ID_PREFIX_BYTES`] bytes of a NAL unit's RBSP (after its header byte), with
/// emulation prevention removed: enough to read the ids at the start of an SPS, a PPS or a
/// slice header without allocating.
fn rbsp_prefix(nal: &[u8]) -> ([u8; ID_PREFIX_BYTES], usize) {
    let mut out = [0u8; ID_PREFIX_BYTES];
    let mut len = 0;
    let mut zeros = 0usize;
    for &b in nal.iter().skip(1) {
        if len == out.len() {
            break;
        }
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        if let Some(slot) = out.get_mut(len) {
            *slot = b;
        }
        len += 1;
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    (out, len)
}

/// `seq_parameter_set_id` of an SPS NAL unit (header byte included); `None` when the NAL
/// unit is not an SPS or the id cannot be read or is over 31.
pub fn sps_id(nal: &[u8]) -> Option<u32> {
    if nal.first().map(|h| h & 0x1f) != Some(NAL_SPS) {
        return None;
    }
    let (prefix, len) = rbsp_prefix(nal);
    let mut r = BitReader::new(prefix.get(..len)?);
    r.bits(24, "profile_idc, constraint flags, level_idc")
        .ok()?;
    r.ue("seq_parameter_set_id").ok().filter(|&id| id <= 31)
}

/// `(pic_parameter_set_id, seq_parameter_set_id)` of a PPS NAL unit (header byte
/// included); `None` when it is not a PPS or the ids cannot be read or are out of range
/// (255 and 31).
pub fn pps_ids(nal: &[u8]) -> Option<(u32, u32)> {
    if nal.first().map(|h| h & 0x1f) != Some(NAL_PPS) {
        return None;
    }
    let (prefix, len) = rbsp_prefix(nal);
    let mut r = BitReader::new(prefix.get(..len)?);
    let pps = r.ue("pic_parameter_set_id").ok().filter(|&id| id <= 255)?;
    let sps = r.ue("seq_parameter_set_id").ok().filter(|&id| id <= 31)?;
    Some((pps, sps))
}

/// `pic_parameter_set_id` of a coded slice NAL unit (type 1 or 5, header byte included),
/// read from the start of its header (`first_mb_in_slice`, `slice_type`,
/// `pic_parameter_set_id`; H.264 §7.3.3); `None` for other NAL units or values out of range.
pub fn slice_pps_id(nal: &[u8]) -> Option<u32> {
    let nal_type = nal.first().map(|h| h & 0x1f)?;
    if nal_type != NAL_SLICE && nal_type != NAL_IDR {
        return None;
    }
    let (prefix, len) = rbsp_prefix(nal);
    let mut r = BitReader::new(prefix.get(..len)?);
    let first_mb = r.ue("first_mb_in_slice").ok()?;
    if u64::from(first_mb) >= MAX_FRAME_MBS {
        return None;
    }
    r.ue("slice_type").ok().filter(|&t| t <= 9)?;
    r.ue("pic_parameter_set_id").ok().filter(|&id| id <= 255)
}

/// The `pic_parameter_set_id` of the first coded slice among length-prefixed (AVCC) NAL
/// units: the PPS the picture is decoded with. `None` when there is no slice, a length
/// prefix is broken before it, or its header cannot be read.
pub fn first_slice_pps_id(data: &[u8], nal_length_size: u8) -> Option<u32> {
    let size = usize::from(nal_length_size);
    if !(1..=4).contains(&size) {
        return None;
    }
    let mut pos = 0usize;
    while pos < data.len() {
        let prefix = data.get(pos..pos.checked_add(size)?)?;
        let length = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let start = pos + size;
        let nal = data.get(start..start.checked_add(length)?)?;
        if let Some(&header) = nal.first() {
            if matches!(header & 0x1f, NAL_SLICE | NAL_IDR) {
                return slice_pps_id(nal);
            }
        }
        pos = start + length;
    }
    None
}
