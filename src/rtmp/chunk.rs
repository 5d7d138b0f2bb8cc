//! Our RTMP chunk-stream decoder (RTMP spec 1.0 §5.3): bytes in, whole messages out.
//!
//! Why not `rml_rtmp`'s `ChunkDeserializer`: it keeps one payload buffer for all chunk
//! streams (so a video message interleaved with an audio message at chunk granularity is
//! corrupted), and it always reads four extended-timestamp bytes on a type-3 chunk once the
//! previous header had one, while some servers do not repeat them. Here every chunk stream has
//! its own partial message, and a type-3 chunk's extended timestamp is taken only when the
//! next four bytes equal the one in force (the rule SRS and librtmp follow in practice).
//!
//! Feed with [`ChunkDecoder::push`], drain with [`ChunkDecoder::next_message`] until
//! `Ok(None)` ("need more bytes"). No I/O.

use std::collections::HashMap;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// The chunk size every RTMP connection starts with.
pub const INITIAL_CHUNK_SIZE: usize = 128;
/// Largest chunk size we accept (the spec's maximum is 2^31 - 1; no real server goes past
/// 16 MiB, and a bigger one would only let a peer make us buffer without bound).
pub const MAX_CHUNK_SIZE: usize = 16 * 1024 * 1024;
/// Largest message we assemble (the 24-bit length field allows 16 MiB).
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Most chunk streams with a partial message at once (the protocol allows 65599).
pub const MAX_OPEN_CHUNK_STREAMS: usize = 64;

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in ms (32-bit, wraps).
    pub timestamp: u32,
    /// Message type id (8 audio, 9 video, 20 AMF0 command, ...).
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}

/// The peer broke the chunk protocol; the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// A type 1/2/3 chunk on a chunk stream that never had a type 0 header.
    NoPreviousHeader { csid: u32, fmt: u8 },
    /// A message longer than we accept.
    MessageTooLarge { csid: u32, length: usize },
    /// A `SetChunkSize` outside 1..=16 MiB.
    BadChunkSize(u32),
    /// Too many chunk streams with partial messages at once.
    TooManyChunkStreams,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::NoPreviousHeader { csid, fmt } => write!(
                f,
                "RTMP chunk of type {fmt} on chunk stream {csid} without a previous header"
            ),
            ChunkError::MessageTooLarge { csid, length } => write!(
                f,
                "RTMP message of {length} bytes on chunk stream {csid} exceeds the {MAX_MESSAGE_SIZE} byte limit"
            ),
            ChunkError::BadChunkSize(size) => write!(f, "invalid RTMP chunk size {size}"),
            ChunkError::TooManyChunkStreams => write!(
                f,
                "more than {MAX_OPEN_CHUNK_STREAMS} RTMP chunk streams with partial messages"
            ),
        }
    }
}

impl std::error::Error for ChunkError {}

/// What a chunk stream remembers from its previous chunks.
#[derive(Debug, Default)]
struct ChunkStream {
    /// Timestamp of the current (or last) message.
    timestamp: u32,
    /// Delta from the last type 1/2 header (0 after a type 0), reused by type 3.
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The last header carried an extended timestamp with this value.
    extended: Option<u32>,
    /// Body collected so far of the message in progress.
    partial: BytesMut,
    /// Whether a message is in progress.
    in_progress: bool,
}

/// Reassembles RTMP messages from chunks.
#[derive(Debug)]
pub struct ChunkDecoder {
    buffer: BytesMut,
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkDecoder {
    pub fn new() -> Self {
        Self {
            buffer: BytesMut::with_capacity(64 * 1024),
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: HashMap::new(),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Applies the peer's `SetChunkSize`.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let size = size & 0x7fff_ffff;
        if size == 0 || size as usize > MAX_CHUNK_SIZE {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Applies the peer's `Abort`: drops the partial message of `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(stream) = self.streams.get_mut(&csid) {
            stream.partial.clear();
            stream.in_progress = false;
        }
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            match self.read_chunk()? {
                ChunkOutcome::NeedMore => return Ok(None),
                ChunkOutcome::Message(m) => return Ok(Some(m)),
                ChunkOutcome::Partial => continue,
            }
        }
    }

    /// Reads one chunk if the whole of it is buffered; consumes nothing otherwise.
    fn read_chunk(&mut self) -> Result<ChunkOutcome, ChunkError> {
        let buf = &self.buffer[..];
        let Some(&b0) = buf.first() else {
            return Ok(ChunkOutcome::NeedMore);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match buf.get(1) {
                Some(&b1) => (64 + b1 as u32, 2),
                None => return Ok(ChunkOutcome::NeedMore),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + b1 as u32 + 256 * b2 as u32, 3),
                _ => return Ok(ChunkOutcome::NeedMore),
            },
            n => (n as u32, 1),
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        let Some(header) = buf.get(pos..pos + header_len) else {
            return Ok(ChunkOutcome::NeedMore);
        };
        pos += header_len;

        let known = self.streams.contains_key(&csid);
        if fmt != 0 && !known {
            return Err(ChunkError::NoPreviousHeader { csid, fmt });
        }
        if !known && self.streams.len() >= MAX_OPEN_CHUNK_STREAMS {
            self.streams.retain(|_, s| s.in_progress);
            if self.streams.len() >= MAX_OPEN_CHUNK_STREAMS {
                return Err(ChunkError::TooManyChunkStreams);
            }
        }
        let previous = self.streams.get(&csid);
        let continuing = fmt == 3 && previous.is_some_and(|s| s.in_progress);

        // The 3-byte timestamp field, and whether it escapes to 4 extended bytes.
        let ts_field = (fmt < 3).then(|| u24(header));
        let extended = match ts_field {
            Some(0xff_ffff) => match buf.get(pos..pos + 4) {
                Some(b) => {
                    pos += 4;
                    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                }
                None => return Ok(ChunkOutcome::NeedMore),
            },
            Some(_) => None,
            None => match previous.and_then(|s| s.extended) {
                // Type 3 after an extended header: take the 4 bytes only if they repeat it.
                Some(value) => match buf.get(pos..pos + 4) {
                    Some(b) if u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == value => {
                        pos += 4;
                        Some(value)
                    }
                    Some(_) => None,
                    None if continuing || previous.is_some_and(|s| s.length > 0) => {
                        // Not enough bytes to decide yet.
                        return Ok(ChunkOutcome::NeedMore);
                    }
                    None => None,
                },
                None => None,
            },
        };

        // Work out the header this chunk stands for, without touching state yet.
        let prev = previous.map(|s| (s.timestamp, s.delta, s.length, s.type_id, s.stream_id));
        let (p_ts, p_delta, p_len, p_type, p_sid) = prev.unwrap_or((0, 0, 0, 0, 0));
        let field = extended.or(ts_field).unwrap_or(p_delta);
        let (length, type_id, stream_id) = match fmt {
            0 => (
                u24(&header[3..]) as usize,
                header[6],
                u32::from_le_bytes([header[7], header[8], header[9], header[10]]),
            ),
            1 => (u24(&header[3..]) as usize, header[6], p_sid),
            _ => (p_len, p_type, p_sid),
        };
        if length > MAX_MESSAGE_SIZE {
            return Err(ChunkError::MessageTooLarge { csid, length });
        }
        let (timestamp, delta) = match fmt {
            0 => (field, 0),
            1 | 2 => (p_ts.wrapping_add(field), field),
            _ if continuing => (p_ts, p_delta),
            _ => (p_ts.wrapping_add(p_delta), p_delta),
        };
        let already = if continuing {
            previous.map_or(0, |s| s.partial.len())
        } else {
            0
        };
        let take = (length - already).min(self.chunk_size);
        if buf.len() < pos + take {
            return Ok(ChunkOutcome::NeedMore);
        }

        // The whole chunk is here: consume it and update the chunk stream.
        self.buffer.advance(pos);
        let body = self.buffer.split_to(take);
        let stream = self.streams.entry(csid).or_default();
        if !continuing {
            // A new message; a header of type 0/1/2 in the middle of one abandons it.
            stream.partial.clear();
            stream.timestamp = timestamp;
            stream.delta = delta;
            stream.length = length;
            stream.type_id = type_id;
            stream.stream_id = stream_id;
            if fmt < 3 {
                stream.extended = extended;
            }
            stream.in_progress = true;
        }
        if stream.partial.is_empty() && body.len() == length {
            // Single-chunk message: hand the buffer on without copying.
            stream.in_progress = false;
            return Ok(ChunkOutcome::Message(RawMessage {
                csid,
                timestamp: stream.timestamp,
                type_id: stream.type_id,
                stream_id: stream.stream_id,
                payload: body.freeze(),
            }));
        }
        stream.partial.extend_from_slice(&body);
        if stream.partial.len() < stream.length {
            return Ok(ChunkOutcome::Partial);
        }
        stream.in_progress = false;
        Ok(ChunkOutcome::Message(RawMessage {
            csid,
            timestamp: stream.timestamp,
            type_id: stream.type_id,
            stream_id: stream.stream_id,
            payload: stream.partial.split().freeze(),
        }))
    }
}

enum ChunkOutcome {
    NeedMore,
    Partial,
    Message(RawMessage),
}

fn u24(b: &[u8]) -> u32 {
    ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    fn drain(d: &mut ChunkDecoder) -> Vec<RawMessage> {
        std::iter::from_fn(|| d.next_message().unwrap()).collect()
    }

    fn type0(csid: u8, ts: u32, len: usize, type_id: u8, sid: u32) -> Vec<u8> {
        let mut v = vec![csid];
        let t = if ts >= 0xff_ffff { 0xff_ffff } else { ts };
        v.extend_from_slice(&t.to_be_bytes()[1..]);
        v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        v.push(type_id);
        v.extend_from_slice(&sid.to_le_bytes());
        if ts >= 0xff_ffff {
            v.extend_from_slice(&ts.to_be_bytes());
        }
        v
    }

    #[test]
    fn round_trips_what_rml_rtmp_serializes_byte_by_byte() {
        let mut ser = ChunkSerializer::new();
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (i, len) in [10usize, 300, 128, 129, 1000, 1].iter().enumerate() {
            let payload = MessagePayload {
                timestamp: RtmpTimestamp::new(i as u32 * 40),
                message_stream_id: 1,
                type_id: 9,
                data: Bytes::from(vec![i as u8; *len]),
            };
            wire.extend_from_slice(&ser.serialize(&payload, false, false).unwrap().bytes);
            expected.push((i as u32 * 40, *len));
        }
        let mut d = ChunkDecoder::new();
        let mut got = Vec::new();
        for byte in wire {
            d.push(&[byte]);
            got.extend(drain(&mut d));
        }
        let got: Vec<(u32, usize)> = got.iter().map(|m| (m.timestamp, m.payload.len())).collect();
        assert_eq!(got, expected);
    }

    /// The failure rml_rtmp 0.8 has: audio and video messages interleaved chunk by chunk on
    /// different chunk streams, as nginx-rtmp and FMS send them.
    #[test]
    fn interleaved_chunk_streams_keep_their_own_payloads() {
        let video: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8).collect();
        let audio: Vec<u8> = vec![0xaa; 150];
        let mut wire = type0(6, 1000, video.len(), 9, 1);
        wire.extend_from_slice(&video[..128]);
        wire.extend(type0(4, 1000, audio.len(), 8, 1));
        wire.extend_from_slice(&audio[..128]);
        wire.push(0xc6); // type 3, csid 6: video continues
        wire.extend_from_slice(&video[128..]);
        wire.push(0xc4); // type 3, csid 4: audio continues
        wire.extend_from_slice(&audio[128..]);
        let mut d = ChunkDecoder::new();
        d.push(&wire);
        let got = drain(&mut d);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].type_id, got[0].payload.as_ref()), (9, &video[..]));
        assert_eq!((got[1].type_id, got[1].payload.as_ref()), (8, &audio[..]));
        assert_eq!(got[0].stream_id, 1);
    }

    #[test]
    fn type_3_continuation_with_repeated_extended_timestamp() {
        let ts = 0x0100_0000;
        let payload = [7u8; 200];
        let mut wire = type0(5, ts, payload.len(), 9, 1);
        wire.extend_from_slice(&payload[..128]);
        wire.push(0xc5);
        wire.extend_from_slice(&(ts).to_be_bytes()); // repeated, as the spec asks
        wire.extend_from_slice(&payload[128..]);
        let mut d = ChunkDecoder::new();
        d.push(&wire);
        let got = drain(&mut d);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].timestamp, ts);
        assert_eq!(got[0].payload.as_ref(), &payload[..]);
    }

    /// What rml_rtmp 0.8 gets wrong: a server that does not repeat the extended timestamp on
    /// type-3 continuation chunks.
    #[test]
    fn type_3_continuation_without_repeated_extended_timestamp() {
        let ts = 0x0100_0000;
        let payload: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let mut wire = type0(5, ts, payload.len(), 9, 1);
        wire.extend_from_slice(&payload[..128]);
        wire.push(0xc5);
        wire.extend_from_slice(&payload[128..]);
        let mut d = ChunkDecoder::new();
        d.push(&wire);
        let got = drain(&mut d);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload.as_ref(), &payload[..]);
    }

    #[test]
    fn deltas_accumulate_for_type_1_2_and_3_headers() {
        let mut wire = type0(4, 1000, 2, 8, 1);
        wire.extend_from_slice(&[1, 1]);
        // type 1: delta 23, length 3, type 8
        wire.extend_from_slice(&[0x44, 0, 0, 23, 0, 0, 3, 8, 2, 2, 2]);
        // type 2: delta 24
        wire.extend_from_slice(&[0x84, 0, 0, 24, 3, 3, 3]);
        // type 3: new message, same delta 24
        wire.extend_from_slice(&[0xc4, 4, 4, 4]);
        let mut d = ChunkDecoder::new();
        d.push(&wire);
        let ts: Vec<u32> = drain(&mut d).iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![1000, 1023, 1047, 1071]);
    }

    #[test]
    fn chunk_size_change_and_extended_csids() {
        let mut d = ChunkDecoder::new();
        d.set_chunk_size(4096).unwrap();
        let payload = vec![9u8; 3000];
        // two-byte basic header: csid 64 + 10
        let mut wire = vec![0x00, 10];
        wire.extend_from_slice(&type0(0, 5, payload.len(), 9, 1)[1..]);
        wire.extend_from_slice(&payload);
        // three-byte basic header: csid 64 + 1 + 256*2 = 577
        wire.extend_from_slice(&[0x01, 1, 2]);
        wire.extend_from_slice(&type0(0, 6, 1, 8, 1)[1..]);
        wire.push(0xaf);
        d.push(&wire);
        let got = drain(&mut d);
        assert_eq!((got[0].csid, got[0].payload.len()), (74, 3000));
        assert_eq!((got[1].csid, got[1].payload.as_ref()), (577, &[0xafu8][..]));
        assert_eq!(d.set_chunk_size(0), Err(ChunkError::BadChunkSize(0)));
    }

    #[test]
    fn zero_length_message() {
        let mut wire = type0(3, 7, 0, 18, 1);
        wire.extend(type0(3, 8, 1, 18, 1));
        wire.push(2);
        let mut d = ChunkDecoder::new();
        d.push(&wire);
        let got = drain(&mut d);
        assert_eq!(got.len(), 2);
        assert!(got[0].payload.is_empty());
        assert_eq!(got[1].payload.as_ref(), &[2]);
    }

    #[test]
    fn media_on_message_stream_0_is_delivered() {
        let mut wire = type0(4, 0, 1, 8, 0);
        wire.push(0xaf);
        let mut d = ChunkDecoder::new();
        d.push(&wire);
        let got = drain(&mut d);
        assert_eq!((got[0].stream_id, got[0].type_id), (0, 8));
    }

    #[test]
    fn abort_discards_a_partial_message() {
        let mut wire = type0(6, 0, 200, 9, 1);
        wire.extend_from_slice(&[1; 128]);
        let mut d = ChunkDecoder::new();
        d.push(&wire);
        assert!(drain(&mut d).is_empty());
        d.abort(6);
        let mut next = type0(6, 40, 2, 9, 1);
        next.extend_from_slice(&[5, 5]);
        d.push(&next);
        let got = drain(&mut d);
        assert_eq!(got[0].payload.as_ref(), &[5, 5]);
    }

    #[test]
    fn protocol_violations_are_errors_and_garbage_never_panics() {
        let mut d = ChunkDecoder::new();
        d.push(&[0x43, 0, 0, 1, 0, 0, 1, 8]);
        assert!(matches!(
            d.next_message(),
            Err(ChunkError::NoPreviousHeader { csid: 3, fmt: 1 })
        ));
        // Deterministic pseudo-random garbage in many shapes.
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut d = ChunkDecoder::new();
            let len = (seed % 300) as usize;
            let bytes = crate::test_vectors::noise(&mut seed, len);
            d.push(&bytes);
            for _ in 0..50 {
                match d.next_message() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
}
