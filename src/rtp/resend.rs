//! What a viewer's track sent lately, kept to send again when the browser reports it lost
//! (RFC 4585 §6.2.1 generic NACK). A slot holds the header fields and the shared payload
//! (the capture's bytes, counted not copied), so a resend is byte-identical to the first
//! send. Pure: no clock, no I/O.

use bytes::Bytes;

/// One packet as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPacket {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// The latest packets of one track, by sequence number.
#[derive(Debug)]
pub struct ResendHistory {
    slots: Vec<Option<SentPacket>>,
    /// Slots in use minus one: a power of two minus one.
    mask: usize,
}

impl ResendHistory {
    /// Keeps the latest `capacity` packets (rounded up to a power of two, at least 1). The
    /// slots are taken as packets arrive.
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(1).next_power_of_two();
        Self {
            slots: Vec::new(),
            mask: n - 1,
        }
    }

    /// Remembers `packet`, forgetting the one `capacity` sequence numbers before it.
    pub fn record(&mut self, packet: SentPacket) {
        let i = usize::from(packet.sequence_number) & self.mask;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(packet);
        }
    }

    /// The packet sent with `sequence_number`, if it is still kept.
    pub fn get(&self, sequence_number: u16) -> Option<&SentPacket> {
        let i = usize::from(sequence_number) & self.mask;
        self.slots
            .get(i)?
            .as_ref()
            .filter(|p| p.sequence_number == sequence_number)
    }
}

/// The sequence numbers one NACK pair names: `packet_id`, and `packet_id + i + 1` for each
/// bit `i` set in `lost_packets` (RFC 4585 §6.2.1).
pub fn nacked(packet_id: u16, lost_packets: u16) -> impl Iterator<Item = u16> {
    std::iter::once(packet_id).chain(
        (0..16u16)
            .filter(move |i| lost_packets & (1 << i) != 0)
            .map(move |i| packet_id.wrapping_add(i + 1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(seq: u16) -> SentPacket {
        SentPacket {
            sequence_number: seq,
            timestamp: u32::from(seq) * 10,
            marker: seq.is_multiple_of(2),
            payload: Bytes::from(vec![seq as u8; 3]),
        }
    }

    #[test]
    fn it_finds_what_it_keeps_and_forgets_what_was_overwritten() {
        let mut h = ResendHistory::new(200); // 256 slots
        for seq in 65_500..=65_535u16 {
            h.record(sent(seq));
        }
        for seq in 0..300u16 {
            h.record(sent(seq));
        }
        assert_eq!(h.get(299), Some(&sent(299)));
        assert_eq!(h.get(44), Some(&sent(44)), "the 256th newest");
        assert_eq!(h.get(43), None, "overwritten by 299");
        assert_eq!(h.get(65_535), None, "overwritten by 255");
        assert_eq!(h.get(300), None, "never sent");
    }

    #[test]
    fn an_empty_history_has_nothing() {
        let h = ResendHistory::new(0);
        assert_eq!(h.get(0), None);
    }

    #[test]
    fn a_nack_pair_names_its_id_and_each_bit() {
        assert_eq!(nacked(10, 0).collect::<Vec<_>>(), vec![10]);
        assert_eq!(nacked(10, 0b101).collect::<Vec<_>>(), vec![10, 11, 13]);
        assert_eq!(
            nacked(65_535, 0x8001).collect::<Vec<_>>(),
            vec![65_535, 0, 15],
            "wraps around"
        );
        assert_eq!(nacked(0, 0xffff).count(), 17);
    }
}
