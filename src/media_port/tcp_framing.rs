//! ICE-TCP framing (RFC 4571, as RFC 6544 uses it): on a TCP connection every STUN, DTLS or
//! SRTP packet travels behind a 16-bit big-endian length. The decoder turns a byte stream
//! back into packets, holding at most one partial packet plus one read; [`frame`] prefixes
//! a packet for sending. Pure: the caller reads and writes the socket.

use bytes::{Buf, Bytes, BytesMut};

/// The largest packet a 16-bit length can frame.
pub const MAX_PACKET: usize = u16::MAX as usize;

/// What the framing refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// A packet over the limit: 65 535 bytes (what a 16-bit length can frame), or the
    /// decoder's own.
    PacketTooLong(usize),
    /// The peer sent more than the decoder holds without reading its packets first.
    BufferFull { held: usize, limit: usize },
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PacketTooLong(len) => write!(f, "a {len}-byte packet is over the limit"),
            Self::BufferFull { held, limit } => write!(
                f,
                "{held} bytes held without a whole packet taken out (limit {limit})"
            ),
        }
    }
}

impl std::error::Error for FramingError {}

/// `packet` behind its length, ready to write.
pub fn frame(packet: &[u8]) -> Result<Vec<u8>, FramingError> {
    let len = u16::try_from(packet.len()).map_err(|_| FramingError::PacketTooLong(packet.len()))?;
    let mut out = Vec::with_capacity(2 + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Ok(out)
}

/// Packets back out of one connection's byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    limit: usize,
    max_packet: usize,
}

impl FrameDecoder {
    /// A decoder fed reads of at most `max_read` bytes: it holds at most one partial
    /// packet (with its length) plus one read.
    pub fn new(max_read: usize) -> Self {
        Self::with_max_packet(max_read, MAX_PACKET)
    }

    /// A decoder that also refuses packets longer than `max_packet` bytes (at most 65 535):
    /// it then holds at most `2 + max_packet + max_read` bytes.
    pub fn with_max_packet(max_read: usize, max_packet: usize) -> Self {
        let max_packet = max_packet.min(MAX_PACKET);
        Self {
            buffer: BytesMut::new(),
            limit: 2 + max_packet + max_read,
            max_packet,
        }
    }

    /// Adds bytes read from the connection. Take the whole packets out
    /// ([`Self::next_packet`]) before the next read.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FramingError> {
        let held = self.buffer.len() + bytes.len();
        if held > self.limit {
            return Err(FramingError::BufferFull {
                held,
                limit: self.limit,
            });
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// The next whole packet, if one has arrived (`Ok(None)`: not yet). Empty frames are
    /// skipped; a length over the decoder's packet limit is an error (the stream is unusable).
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, FramingError> {
        loop {
            let Some(head) = self.buffer.get(..2) else {
                return Ok(None);
            };
            let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
            if len > self.max_packet {
                return Err(FramingError::PacketTooLong(len));
            }
            if self.buffer.len() < 2 + len {
                return Ok(None);
            }
            self.buffer.advance(2);
            let packet = self.buffer.split_to(len).freeze();
            if !packet.is_empty() {
                return Ok(Some(packet));
            }
        }
    }

    /// Bytes held that are not yet a whole packet.
    pub fn held(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn packets(decoder: &mut FrameDecoder) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| decoder.next_packet().unwrap().map(|p| p.to_vec())).collect()
    }

    #[test]
    fn packets_come_back_whatever_way_the_stream_is_cut() {
        let sent: Vec<Vec<u8>> = vec![vec![1; 20], vec![2; 1], vec![3; 1400], vec![4; 3]];
        let stream: Vec<u8> = sent.iter().flat_map(|p| frame(p).unwrap()).collect();
        for cut in [1, 2, 3, 7, 100, 1500, stream.len()] {
            let mut decoder = FrameDecoder::new(cut);
            let mut got = Vec::new();
            for chunk in stream.chunks(cut) {
                decoder.push(chunk).unwrap();
                got.extend(packets(&mut decoder));
            }
            assert_eq!(got, sent, "reads of {cut}");
            assert_eq!(decoder.held(), 0);
        }
    }

    #[test]
    fn a_partial_packet_waits_for_the_rest_and_empty_frames_are_skipped() {
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&[0, 0, 0, 3, 9]).unwrap();
        assert_eq!(decoder.next_packet(), Ok(None));
        assert_eq!(decoder.held(), 3);
        decoder.push(&[9, 9]).unwrap();
        let packet = decoder.next_packet().unwrap().unwrap();
        assert_eq!(packet.to_vec(), vec![9, 9, 9]);
    }

    #[test]
    fn the_largest_packet_frames_and_a_longer_one_is_refused() {
        let largest = vec![7u8; MAX_PACKET];
        let framed = frame(&largest).unwrap();
        assert_eq!(&framed[..2], &[0xff, 0xff]);
        let mut decoder = FrameDecoder::new(framed.len());
        decoder.push(&framed).unwrap();
        assert_eq!(decoder.next_packet().unwrap().unwrap().len(), MAX_PACKET);
        assert_eq!(
            frame(&vec![0u8; MAX_PACKET + 1]),
            Err(FramingError::PacketTooLong(MAX_PACKET + 1))
        );
    }

    #[test]
    fn a_peer_that_floods_without_whole_packets_is_refused_not_buffered() {
        let mut decoder = FrameDecoder::new(1000);
        decoder.push(&[0xff, 0xff]).unwrap();
        let mut refused = None;
        for _ in 0..100 {
            if let Err(e) = decoder.push(&[0u8; 1000]) {
                refused = Some(e);
                break;
            }
        }
        let limit = 2 + MAX_PACKET + 1000;
        assert!(matches!(refused, Some(FramingError::BufferFull { limit: l, .. }) if l == limit));
        assert!(decoder.held() <= limit);
    }

    #[test]
    fn a_packet_over_the_limit_ends_the_stream_before_it_is_buffered() {
        let mut decoder = FrameDecoder::with_max_packet(100, 1500);
        decoder.push(&frame(&[7u8; 1500]).unwrap()).unwrap();
        assert_eq!(decoder.next_packet().unwrap().unwrap().len(), 1500);
        decoder.push(&[0x05, 0xdd]).unwrap(); // 1501
        assert_eq!(
            decoder.next_packet(),
            Err(FramingError::PacketTooLong(1501))
        );
        let limit = 2 + 1500 + 100;
        let mut small = FrameDecoder::with_max_packet(100, 1500);
        small.push(&[0x05, 0xdc]).unwrap();
        let mut refused = false;
        for _ in 0..40 {
            if small.push(&[1u8; 100]).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused && small.held() <= limit, "held {}", small.held());
    }
}
