//! Reading an RBSP: emulation prevention removed, then an MSB-first bit reader with
//! exp-Golomb codes, each read naming the syntax element it was for.

use super::error::AvcError;

/// Drops every `0x03` that follows two zero bytes (H.264 §7.4.1).
pub(crate) fn remove_emulation_prevention(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0usize;
    for &b in data {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// An MSB-first bit reader over an RBSP. Every read reports the syntax element it was for
/// when the data runs out.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    pub(crate) fn bit(&mut self, field: &'static str) -> Result<u32, AvcError> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(AvcError::SpsTruncated(field))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    pub(crate) fn flag(&mut self, field: &'static str) -> Result<bool, AvcError> {
        Ok(self.bit(field)? == 1)
    }

    /// Reads `n <= 32` bits.
    pub(crate) fn bits(&mut self, n: u32, field: &'static str) -> Result<u32, AvcError> {
        let mut v: u64 = 0;
        for _ in 0..n.min(32) {
            v = (v << 1) | u64::from(self.bit(field)?);
        }
        // At most 32 bits were shifted in.
        u32::try_from(v).map_err(|_| AvcError::InvalidSps { field, value: v })
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, AvcError> {
        let v = self.bits(8, field)?;
        u8::try_from(v).map_err(|_| AvcError::InvalidSps {
            field,
            value: v.into(),
        })
    }

    /// Unsigned exp-Golomb `ue(v)`; at most 31 leading zeros (values up to 2^32 - 2).
    pub(crate) fn ue(&mut self, field: &'static str) -> Result<u32, AvcError> {
        let mut leading_zeros = 0u32;
        while self.bit(field)? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(AvcError::InvalidSps {
                    field,
                    value: u64::from(leading_zeros),
                });
            }
        }
        let suffix = u64::from(self.bits(leading_zeros, field)?);
        let v = (1u64 << leading_zeros) - 1 + suffix;
        u32::try_from(v).map_err(|_| AvcError::InvalidSps { field, value: v })
    }

    /// Signed exp-Golomb `se(v)`.
    pub(crate) fn se(&mut self, field: &'static str) -> Result<i64, AvcError> {
        let k = i64::from(self.ue(field)?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    /// Whether a set bit (the `rbsp_stop_one_bit`) remains at or after the current position.
    pub(crate) fn has_stop_bit(&self) -> bool {
        let byte_index = self.pos / 8;
        let Some(&first) = self.data.get(byte_index) else {
            return false;
        };
        let mask = 0xffu8 >> (self.pos % 8);
        first & mask != 0
            || self
                .data
                .get(byte_index + 1..)
                .is_some_and(|rest| rest.iter().any(|&b| b != 0))
    }
}
