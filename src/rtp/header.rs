//! The fixed 12-byte RTP header (RFC 3550 §5.1) every packet we send carries: version 2, no
//! padding, no extension, no CSRC. Pure: writes bytes, reads nothing.

/// Its length.
pub const HEADER_LEN: usize = 12;

/// The header fields that differ between packets and viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// The header's bytes (the payload type keeps its low 7 bits).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = 0x80;
        b[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        b[2..4].copy_from_slice(&self.sequence_number.to_be_bytes());
        b[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_rfc_3550s_fixed_part() {
        let h = RtpHeader {
            payload_type: 102,
            marker: true,
            sequence_number: 0x1234,
            timestamp: 0x89ab_cdef,
            ssrc: 0x0102_0304,
        };
        assert_eq!(
            h.to_bytes(),
            [
                0x80,
                0x80 | 102,
                0x12,
                0x34,
                0x89,
                0xab,
                0xcd,
                0xef,
                1,
                2,
                3,
                4
            ]
        );
        let quiet = RtpHeader {
            marker: false,
            payload_type: 0xff,
            ..h
        };
        assert_eq!(
            quiet.to_bytes()[1],
            0x7f,
            "7 bits of payload type, no marker"
        );
    }
}
