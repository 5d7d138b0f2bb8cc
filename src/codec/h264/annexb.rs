//! H.264 access units between their two framings: length-prefixed NAL units (AVCC, as FLV
//! and MP4 carry them) → Annex-B start codes (what the normalizer hands on, what decoders
//! and RTP packetizers take), and Annex-B → the 4-byte length-prefixed NAL units an MP4
//! `avc1` sample holds (ISO/IEC 14496-15 §5.3.3; SPS, PPS and AUDs dropped: in MP4 the
//! parameter sets live in `avcC` and AUDs are not allowed in samples).
//!
//! The bytes come from the network: nothing here panics. AVCC with a length that overruns
//! is an error; Annex-B accepts 3- and 4-byte start codes, strips `trailing_zero_8bits`,
//! and treats bytes before the first start code as a NAL unit. Pure functions, no state.

use super::error::AvcError;
use super::nal::{NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};

/// What [`avcc_to_annexb`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NalSummary {
    /// Number of (non-empty) NAL units written.
    pub nal_count: usize,
    /// An IDR slice (type 5) was among them.
    pub has_idr: bool,
    /// An SPS (type 7) was among them.
    pub has_sps: bool,
    /// A PPS (type 8) was among them.
    pub has_pps: bool,
}

/// Rewrites length-prefixed (AVCC) NAL units as Annex-B: `00 00 00 01` before each NAL,
/// appended to `out`. Zero-length NAL units are skipped. On error `out` is left as it was.
pub fn avcc_to_annexb(
    data: &[u8],
    nal_length_size: u8,
    out: &mut Vec<u8>,
) -> Result<NalSummary, AvcError> {
    if !(1..=4).contains(&nal_length_size) {
        return Err(AvcError::InvalidNalLengthSize(nal_length_size));
    }
    let start_len = out.len();
    let result = append_annexb(data, usize::from(nal_length_size), out);
    if result.is_err() {
        out.truncate(start_len);
    }
    result
}

fn append_annexb(data: &[u8], size: usize, out: &mut Vec<u8>) -> Result<NalSummary, AvcError> {
    let mut summary = NalSummary::default();
    let mut pos = 0usize;
    while pos < data.len() {
        let prefix = data
            .get(pos..pos + size)
            .ok_or(AvcError::NalLengthOverrun {
                offset: pos,
                length: size,
                available: data.len() - pos,
            })?;
        let length = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let body_start = pos + size;
        let available = data.len() - body_start;
        let nal = data
            .get(body_start..)
            .and_then(|rest| rest.get(..length))
            .ok_or(AvcError::NalLengthOverrun {
                offset: pos,
                length,
                available,
            })?;
        pos = body_start + length;
        let Some(&header) = nal.first() else {
            continue;
        };
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        summary.nal_count += 1;
        match header & 0x1f {
            NAL_IDR => summary.has_idr = true,
            NAL_SPS => summary.has_sps = true,
            NAL_PPS => summary.has_pps = true,
            _ => {}
        }
    }
    Ok(summary)
}

/// Appends the NAL units of the Annex-B access unit `data` to `out`, each behind a 4-byte
/// big-endian length, skipping SPS/PPS/AUD and empty NAL units. Returns the bytes appended.
/// A NAL unit longer than `u32::MAX` bytes cannot be framed and is skipped.
pub fn annexb_to_avcc(data: &[u8], out: &mut Vec<u8>) -> usize {
    let before = out.len();
    for nal in split_nals(data) {
        let Some(&header) = nal.first() else {
            continue;
        };
        if matches!(header & 0x1f, NAL_SPS | NAL_PPS | NAL_AUD) {
            continue;
        }
        let Ok(len) = u32::try_from(nal.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
    out.len() - before
}

/// The NAL units of an Annex-B byte stream, trailing zero bytes removed; may yield empty
/// slices, which the caller skips.
pub fn split_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos > data.len() {
            return None;
        }
        let rest = data.get(pos..)?;
        let (nal_end, next) = match find_start_code(rest) {
            Some((at, len)) => (pos + at, pos + at + len),
            None => (data.len(), data.len() + 1),
        };
        let nal = data.get(pos..nal_end).unwrap_or(&[]);
        pos = next;
        let trimmed = nal.len() - nal.iter().rev().take_while(|&&b| b == 0).count();
        Some(nal.get(..trimmed).unwrap_or(&[]))
    })
}

/// The position and length (3) of the first `00 00 01` in `data`. A 4-byte start code is a
/// zero byte (stripped as a trailing zero of the previous NAL) followed by a 3-byte one.
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0usize;
    while let Some(window) = data.get(i..i + 3) {
        match window {
            [0, 0, 1] => return Some((i, 3)),
            // The third byte is neither 0 nor 1: no start code can begin before i + 3.
            [_, _, b] if *b > 1 => i += 3,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn convert(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = annexb_to_avcc(data, &mut out);
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn four_byte_start_codes_and_parameter_sets_dropped() {
        // AUD, SPS, PPS, SEI, IDR slice.
        let data = [
            0, 0, 0, 1, 0x09, 0xf0, //
            0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, //
            0, 0, 0, 1, 0x68, 0xee, 0x3c, 0x80, //
            0, 0, 0, 1, 0x06, 0x05, 0x01, //
            0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x21,
        ];
        assert_eq!(
            convert(&data),
            vec![0, 0, 0, 3, 0x06, 0x05, 0x01, 0, 0, 0, 5, 0x65, 0x88, 0x84, 0x00, 0x21]
        );
    }

    #[test]
    fn three_byte_start_codes_and_trailing_zeros() {
        let data = [0, 0, 1, 0x41, 0x9a, 0, 0, 0, 0, 0, 1, 0x01, 0x02, 0, 0];
        assert_eq!(
            convert(&data),
            vec![0, 0, 0, 2, 0x41, 0x9a, 0, 0, 0, 2, 0x01, 0x02]
        );
    }

    #[test]
    fn emulation_prevention_is_kept() {
        // 00 00 03 01 inside a NAL is not a start code and must stay byte-exact.
        let data = [0, 0, 0, 1, 0x41, 0, 0, 3, 1, 0x55];
        assert_eq!(convert(&data), vec![0, 0, 0, 6, 0x41, 0, 0, 3, 1, 0x55]);
    }

    #[test]
    fn odd_inputs() {
        assert!(convert(&[]).is_empty());
        assert!(convert(&[0, 0, 0, 1]).is_empty());
        assert!(convert(&[0, 0, 1, 0, 0, 1]).is_empty());
        assert!(convert(&[0, 0, 0, 1, 0x09, 0x10]).is_empty());
        // No start code at all: the whole buffer is one NAL unit.
        assert_eq!(convert(&[0x41, 7, 8]), vec![0, 0, 0, 3, 0x41, 7, 8]);
        // Bytes before the first start code count as a NAL unit too.
        assert_eq!(
            convert(&[0x41, 7, 0, 0, 1, 0x41, 9]),
            vec![0, 0, 0, 2, 0x41, 7, 0, 0, 0, 2, 0x41, 9]
        );
        // Pseudo-random junk never panics, and the output is well-formed AVCC.
        let mut x: u32 = 0x1234_5678;
        for len in 0..300 {
            // Many zeros and ones: many start codes.
            let data: Vec<u8> = crate::test_vectors::noise(&mut x, len)
                .into_iter()
                .map(|b| b % 4)
                .collect();
            let out = convert(&data);
            let mut pos = 0;
            while pos < out.len() {
                let n = u32::from_be_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
                assert!(n > 0);
                pos += 4 + n;
            }
            assert_eq!(pos, out.len());
        }
    }
}
