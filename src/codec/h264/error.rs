//! Why an H.264 structure could not be parsed: one error type for the configuration record,
//! parameter sets and NAL unit framing, each naming the field or offset that was wrong.

use std::fmt;

use super::config::MAX_AVC_CONFIG_BYTES;

/// Why an H.264 structure could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvcError {
    /// The decoder configuration record is shorter than its 7 mandatory bytes.
    ConfigTooShort(usize),
    /// The decoder configuration record is longer than [`MAX_AVC_CONFIG_BYTES`].
    ConfigTooLarge(usize),
    /// `configurationVersion` is not 1.
    UnsupportedConfigVersion(u8),
    /// A parameter set in the decoder configuration is longer than its limit
    /// ([`MAX_SPS_BYTES`], [`MAX_PPS_BYTES`]).
    ParameterSetTooLarge {
        /// "SPS" or "PPS".
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A parameter set count or length in the decoder configuration runs past the end.
    ConfigTruncated {
        /// Which part of the record was cut off.
        what: &'static str,
        /// Byte offset in the record where it was expected.
        offset: usize,
    },
    /// The NAL unit is empty.
    EmptyNal,
    /// The NAL unit is not a sequence parameter set (its `nal_unit_type`).
    NotSps(u8),
    /// The SPS bitstream ended before the named syntax element.
    SpsTruncated(&'static str),
    /// A syntax element of the SPS holds a value the standard does not allow.
    InvalidSps {
        /// The syntax element.
        field: &'static str,
        /// The value read.
        value: u64,
    },
    /// `nal_length_size` is not 1, 2, 3 or 4.
    InvalidNalLengthSize(u8),
    /// A length-prefixed NAL unit runs past the end of the data.
    NalLengthOverrun {
        /// Offset of the length prefix.
        offset: usize,
        /// The NAL length the prefix announced.
        length: usize,
        /// Bytes actually left after the prefix.
        available: usize,
    },
}

impl fmt::Display for AvcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AvcError::ConfigTooShort(n) => {
                write!(f, "AVC decoder configuration too short ({n} bytes)")
            }
            AvcError::ConfigTooLarge(n) => write!(
                f,
                "AVC decoder configuration of {n} bytes is over the {MAX_AVC_CONFIG_BYTES}-byte limit"
            ),
            AvcError::ParameterSetTooLarge { what, len, max } => write!(
                f,
                "AVC decoder configuration holds a {what} of {len} bytes, over the {max}-byte limit"
            ),
            AvcError::UnsupportedConfigVersion(v) => {
                write!(f, "unsupported AVC decoder configuration version {v}")
            }
            AvcError::ConfigTruncated { what, offset } => {
                write!(
                    f,
                    "AVC decoder configuration truncated: {what} missing at byte {offset}"
                )
            }
            AvcError::EmptyNal => write!(f, "empty NAL unit"),
            AvcError::NotSps(t) => write!(f, "NAL unit type {t} is not an SPS (type 7)"),
            AvcError::SpsTruncated(field) => write!(f, "SPS truncated before {field}"),
            AvcError::InvalidSps { field, value } => {
                write!(f, "invalid SPS: {field} = {value}")
            }
            AvcError::InvalidNalLengthSize(n) => {
                write!(f, "invalid NAL length size {n} (must be 1 to 4)")
            }
            AvcError::NalLengthOverrun {
                offset,
                length,
                available,
            } => write!(
                f,
                "NAL unit at byte {offset} announces {length} bytes but only {available} remain"
            ),
        }
    }
}

impl std::error::Error for AvcError {}
