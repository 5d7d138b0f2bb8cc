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
//!
//! Memory is bounded whatever the peer declares. A chunk's body is taken as it arrives, so
//! neither a declared message length nor a chunk size (up to the spec's 2^31 − 1) makes the
//! decoder allocate or wait for more than what was received: after `next_message` has said
//! `Ok(None)` the input buffer holds less than one chunk header. A message's buffer grows
//! with what has arrived, never past the declared length; each message type has a size cap
//! ([`max_message_bytes`]); at most [`MAX_OPEN_CHUNK_STREAMS`] chunk streams are remembered
//! and at most [`MAX_BUFFERED_PARTIAL_BYTES`] are held in partial messages across them. Over
//! a cap is a [`ChunkError`]: the connection cannot go on. Every message is handed on in an
//! allocation of its own, exactly its size, so a small frame never keeps a large read
//! buffer alive.

use std::collections::HashMap;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// The chunk size every RTMP connection starts with.
pub const INITIAL_CHUNK_SIZE: usize = 128;
/// Largest chunk size the peer may set: the spec's 2^31 − 1 (the top bit of the field is
/// ignored). A big chunk size costs nothing here: bodies are taken as they arrive, and a
/// message's buffer is bounded by its type's cap, not by the chunk size.
pub const MAX_CHUNK_SIZE: usize = 0x7fff_ffff;
/// Largest audio, video or aggregate message: 8 MiB. An H.264 keyframe of a 4K stream at
/// 50 Mbit/s is 1–3 MB; nothing a live source sends in one message comes near 8 MiB, and
/// without a cap a peer declaring the 24-bit field's 16 MiB on many chunk streams could make
/// us hold that much per stream.
pub const MAX_MEDIA_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Largest AMF command or data message (types 15, 17, 18, 20): 1 MiB. Status answers are
/// under 1 KiB; the largest legitimate one is an `onMetaData` with the keyframe index of a
/// long recording (18 000 keyframes, 10 h at 2 s GOPs: about 330 KB).
pub const MAX_AMF_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest message of any other type (protocol and user control messages, shared objects,
/// unknown types): 64 KiB. Control messages are 4–10 bytes; the others are ignored.
pub const MAX_OTHER_MESSAGE_BYTES: usize = 64 * 1024;
/// Most chunk streams remembered at once (the protocol allows 65 599 ids). Past it, streams
/// without a partial message are forgotten; if all have one, it is an error. Servers use 2
/// to 8.
pub const MAX_OPEN_CHUNK_STREAMS: usize = 64;
/// Most bytes held in partial messages across all chunk streams: 16 MiB, two media messages
/// at their cap (a big video message interleaved with audio and data needs one and a bit).
pub const MAX_BUFFERED_PARTIAL_BYTES: usize = 2 * MAX_MEDIA_MESSAGE_BYTES;

/// The largest message of RTMP message type `type_id` we assemble (see
/// [`MAX_MEDIA_MESSAGE_BYTES`], [`MAX_AMF_MESSAGE_BYTES`], [`MAX_OTHER_MESSAGE_BYTES`]).
pub fn max_message_bytes(type_id: u8) -> usize {
    match type_id {
        8 | 9 | 22 => MAX_MEDIA_MESSAGE_BYTES,
        15 | 17 | 18 | 20 => MAX_AMF_MESSAGE_BYTES,
        _ => MAX_OTHER_MESSAGE_BYTES,
    }
}

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

/// The peer broke the chunk protocol or went over a limit; the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// A type 1/2/3 chunk on a chunk stream that never had a type 0 header.
    NoPreviousHeader { csid: u32, fmt: u8 },
    /// A message longer than its type's cap ([`max_message_bytes`]).
    MessageTooLarge {
        /// Chunk stream it came on.
        csid: u32,
        /// Its message type.
        type_id: u8,
        /// The length its header declares.
        length: usize,
        /// The cap for its type.
        max: usize,
    },
    /// A `SetChunkSize` of 0.
    BadChunkSize(u32),
    /// More than [`MAX_OPEN_CHUNK_STREAMS`] chunk streams with partial messages at once.
    TooManyChunkStreams,
    /// Partial messages would hold more than [`MAX_BUFFERED_PARTIAL_BYTES`].
    TooMuchBuffered {
        /// What they would hold.
        bytes: usize,
    },
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::NoPreviousHeader { csid, fmt } => write!(
                f,
                "RTMP chunk of type {fmt} on chunk stream {csid} without a previous header"
            ),
            ChunkError::MessageTooLarge {
                csid,
                type_id,
                length,
                max,
            } => write!(
                f,
                "RTMP message of type {type_id} on chunk stream {csid} declares {length} bytes, \
                 over the {max}-byte limit for its type"
            ),
            ChunkError::BadChunkSize(size) => write!(f, "invalid RTMP chunk size {size}"),
            ChunkError::TooManyChunkStreams => write!(
                f,
                "more than {MAX_OPEN_CHUNK_STREAMS} RTMP chunk streams with partial messages"
            ),
            ChunkError::TooMuchBuffered { bytes } => write!(
                f,
                "RTMP partial messages would hold {bytes} bytes, over the \
                 {MAX_BUFFERED_PARTIAL_BYTES}-byte limit"
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
    /// Body collected so far of the message in progress; its capacity never exceeds
    /// `length`.
    partial: Vec<u8>,
    /// Whether a message is in progress.
    in_progress: bool,
}

/// The chunk whose body is being read.
#[derive(Debug, Clone, Copy)]
struct BodyInProgress {
    csid: u32,
    /// Body bytes of this chunk still to come.
    remaining: usize,
}

/// Reassembles RTMP messages from chunks.
#[derive(Debug)]
pub struct ChunkDecoder {
    buffer: BytesMut,
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    /// A chunk whose header has been read and whose body has not all arrived.
    body: Option<BodyInProgress>,
    /// Capacity of all partial messages together.
    buffered: usize,
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
            body: None,
            buffered: 0,
        }
    }

    /// Appends received bytes. Drain [`ChunkDecoder::next_message`] until `Ok(None)` after
    /// each push: the buffer then keeps less than one chunk header.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Applies the peer's `SetChunkSize` (1 to [`MAX_CHUNK_SIZE`]; the top bit is ignored).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let size = size & 0x7fff_ffff;
        if size == 0 {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = (size as usize).min(MAX_CHUNK_SIZE);
        Ok(())
    }

    /// Applies the peer's `Abort`: drops the partial message of `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(stream) = self.streams.get_mut(&csid) {
            self.buffered = self.buffered.saturating_sub(stream.partial.capacity());
            stream.partial = Vec::new();
            stream.in_progress = false;
        }
    }

    /// Bytes held in partial messages (at most [`MAX_BUFFERED_PARTIAL_BYTES`]).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Received bytes not consumed yet.
    #[cfg(test)]
    fn pending_input(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let outcome = match self.body {
                Some(body) => self.read_body(body)?,
                None => self.read_header()?,
            };
            match outcome {
                ChunkOutcome::NeedMore => return Ok(None),
                ChunkOutcome::Message(m) => return Ok(Some(m)),
                ChunkOutcome::Partial => continue,
            }
        }
    }

    /// Reads one chunk header if all of it is buffered (consumes nothing otherwise), then
    /// what has arrived of its body.
    fn read_header(&mut self) -> Result<ChunkOutcome, ChunkError> {
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
        let header_len = match fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
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
        let ts_field = header.get(..3).filter(|_| fmt < 3).map(u24);
        let extended = match ts_field {
            Some(0xff_ffff) => match buf.get(pos..pos + 4).map(u32_be) {
                Some(value) => {
                    pos += 4;
                    Some(value)
                }
                None => return Ok(ChunkOutcome::NeedMore),
            },
            Some(_) => None,
            None => match previous.and_then(|s| s.extended) {
                // Type 3 after an extended header: take the 4 bytes only if they repeat it.
                Some(value) => match buf.get(pos..pos + 4).map(u32_be) {
                    Some(next) if next == value => {
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
        let (length, type_id, stream_id) = match header {
            [_, _, _, l0, l1, l2, t, s0, s1, s2, s3] => (
                u24(&[*l0, *l1, *l2]) as usize,
                *t,
                u32::from_le_bytes([*s0, *s1, *s2, *s3]),
            ),
            [_, _, _, l0, l1, l2, t] => (u24(&[*l0, *l1, *l2]) as usize, *t, p_sid),
            _ => (p_len, p_type, p_sid),
        };
        let max = max_message_bytes(type_id);
        if length > max {
            return Err(ChunkError::MessageTooLarge {
                csid,
                type_id,
                length,
                max,
            });
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
        let take = length.saturating_sub(already).min(self.chunk_size);

        // The header is whole: consume it and update the chunk stream.
        self.buffer.advance(pos);
        let stream = self.streams.entry(csid).or_default();
        if !continuing {
            // A new message; a header of type 0/1/2 in the middle of one abandons it.
            self.buffered = self.buffered.saturating_sub(stream.partial.capacity());
            stream.partial = Vec::new();
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
        self.read_body(BodyInProgress {
            csid,
            remaining: take,
        })
    }

    /// Takes what has arrived of the current chunk's body into its message.
    fn read_body(&mut self, body: BodyInProgress) -> Result<ChunkOutcome, ChunkError> {
        let Some(stream) = self.streams.get_mut(&body.csid) else {
            // The stream was forgotten under the body (cannot happen: only streams without
            // a message in progress are); skip nothing, read the next header.
            self.body = None;
            return Ok(ChunkOutcome::Partial);
        };
        let n = body.remaining.min(self.buffer.len());
        if !stream.in_progress {
            // Its message was aborted in the middle of this chunk (the session only aborts
            // between messages, so this is defensive): the rest of the chunk is skipped.
            self.buffer.advance(n);
            let remaining = body.remaining - n;
            self.body = (remaining > 0).then_some(BodyInProgress { remaining, ..body });
            return Ok(if remaining > 0 {
                ChunkOutcome::NeedMore
            } else {
                ChunkOutcome::Partial
            });
        }
        let needed = stream.partial.len() + n;
        if needed > stream.partial.capacity() {
            // Grow by doubling, never past the declared length, and only as bytes arrive.
            let old = stream.partial.capacity();
            let target = needed.max(old.saturating_mul(2)).min(stream.length);
            let total = self.buffered.saturating_sub(old).saturating_add(target);
            if total > MAX_BUFFERED_PARTIAL_BYTES {
                return Err(ChunkError::TooMuchBuffered { bytes: total });
            }
            stream
                .partial
                .reserve_exact(target.saturating_sub(stream.partial.len()));
            self.buffered = self
                .buffered
                .saturating_sub(old)
                .saturating_add(stream.partial.capacity());
        }
        stream
            .partial
            .extend_from_slice(self.buffer.get(..n).unwrap_or_default());
        self.buffer.advance(n);
        let remaining = body.remaining - n;
        if remaining > 0 {
            self.body = Some(BodyInProgress { remaining, ..body });
            return Ok(ChunkOutcome::NeedMore);
        }
        self.body = None;
        if stream.partial.len() < stream.length {
            return Ok(ChunkOutcome::Partial);
        }
        stream.in_progress = false;
        self.buffered = self.buffered.saturating_sub(stream.partial.capacity());
        // Exactly `length` bytes in an allocation of exactly that size.
        let payload = Bytes::from(std::mem::take(&mut stream.partial));
        Ok(ChunkOutcome::Message(RawMessage {
            csid: body.csid,
            timestamp: stream.timestamp,
            type_id: stream.type_id,
            stream_id: stream.stream_id,
            payload,
        }))
    }
}

enum ChunkOutcome {
    NeedMore,
    Partial,
    Message(RawMessage),
}

fn u24(b: &[u8]) -> u32 {
    b.iter().take(3).fold(0, |n, &x| (n << 8) | u32::from(x))
}

fn u32_be(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |n, &x| (n << 8) | u32::from(x))
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
        // Aborted in the middle of a chunk's body: the rest of that chunk is skipped.
        let mut d = ChunkDecoder::new();
        d.push(&type0(6, 0, 200, 9, 1));
        d.push(&[1; 50]);
        assert!(drain(&mut d).is_empty());
        d.abort(6);
        assert_eq!(d.buffered_bytes(), 0);
        d.push(&[1; 78]);
        d.push(&next);
        let got = drain(&mut d);
        assert_eq!(got.len(), 1);
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

    /// A type-0 header with a 3-byte basic header (csid 64 + `n`), for many streams.
    fn type0_wide(n: u16, len: usize, type_id: u8) -> Vec<u8> {
        let mut v = vec![0x01, (n & 0xff) as u8, (n >> 8) as u8];
        v.extend_from_slice(&type0(0, 0, len, type_id, 1)[1..]);
        v
    }

    #[test]
    fn each_type_has_its_cap_and_going_over_it_ends_the_connection() {
        for (type_id, max) in [
            (9u8, MAX_MEDIA_MESSAGE_BYTES),
            (8, MAX_MEDIA_MESSAGE_BYTES),
            (22, MAX_MEDIA_MESSAGE_BYTES),
            (20, MAX_AMF_MESSAGE_BYTES),
            (18, MAX_AMF_MESSAGE_BYTES),
            (4, MAX_OTHER_MESSAGE_BYTES),
            (19, MAX_OTHER_MESSAGE_BYTES),
        ] {
            assert_eq!(max_message_bytes(type_id), max);
            // At the cap: accepted (nothing allocated yet, no body has come).
            let mut d = ChunkDecoder::new();
            d.push(&type0(4, 0, max, type_id, 1));
            assert_eq!(d.next_message(), Ok(None));
            assert_eq!(d.buffered_bytes(), 0);
            // One byte over: refused at the header.
            let mut d = ChunkDecoder::new();
            d.push(&type0(4, 0, max + 1, type_id, 1));
            let err = d.next_message().unwrap_err();
            assert_eq!(
                err,
                ChunkError::MessageTooLarge {
                    csid: 4,
                    type_id,
                    length: max + 1,
                    max
                }
            );
        }
        // The 24-bit field's 16 MiB, and the message the error names.
        let mut d = ChunkDecoder::new();
        d.push(&type0(6, 0, 0xff_ffff, 9, 1));
        assert_eq!(
            d.next_message().unwrap_err().to_string(),
            "RTMP message of type 9 on chunk stream 6 declares 16777215 bytes, over the \
             8388608-byte limit for its type"
        );
        // A type-1 header that changes a stream's type to one with a lower cap.
        let mut d = ChunkDecoder::new();
        let mut wire = type0(5, 0, 1, 9, 1);
        wire.push(0x17);
        wire.extend_from_slice(&[0x45, 0, 0, 0, 0x10, 0, 1, 20]); // 1 MiB + 1, type 20
        d.push(&wire);
        assert_eq!(d.next_message().unwrap().unwrap().payload.as_ref(), &[0x17]);
        assert!(matches!(
            d.next_message(),
            Err(ChunkError::MessageTooLarge { type_id: 20, .. })
        ));
    }

    /// A message that declares 8 MiB and sends a trickle holds what came, not 8 MiB; the
    /// largest chunk size the peer may set changes nothing.
    #[test]
    fn memory_follows_what_arrived_not_what_was_declared() {
        let mut d = ChunkDecoder::new();
        d.set_chunk_size(0x7fff_ffff).unwrap();
        assert_eq!(d.set_chunk_size(0xffff_ffff), Ok(()), "top bit ignored");
        d.push(&type0(6, 0, MAX_MEDIA_MESSAGE_BYTES, 9, 1));
        let mut received = 0usize;
        for _ in 0..5000 {
            d.push(&[0xab; 7]);
            received += 7;
            assert_eq!(d.next_message(), Ok(None));
            assert_eq!(d.pending_input(), 0);
            assert!(d.buffered_bytes() <= 2 * received, "{}", d.buffered_bytes());
        }
        assert!(d.buffered_bytes() >= received);
        // The rest of it, in one go: one message, the accounting back at 0.
        d.push(&vec![0xcd; MAX_MEDIA_MESSAGE_BYTES - received]);
        let m = d.next_message().unwrap().unwrap();
        assert_eq!(m.payload.len(), MAX_MEDIA_MESSAGE_BYTES);
        assert_eq!(m.payload[..received], vec![0xab; received][..]);
        assert_eq!(d.buffered_bytes(), 0);
        assert_eq!(d.pending_input(), 0);
    }

    /// Partial messages on many chunk streams cannot add up past the cap.
    #[test]
    fn partial_messages_together_are_capped() {
        let chunk = 4 * 1024 * 1024;
        let mut d = ChunkDecoder::new();
        d.set_chunk_size(chunk as u32).unwrap();
        let streams = MAX_BUFFERED_PARTIAL_BYTES / chunk;
        for n in 0..streams as u16 {
            d.push(&type0_wide(n, MAX_MEDIA_MESSAGE_BYTES, 9));
            d.push(&vec![1; chunk]);
            assert_eq!(d.next_message(), Ok(None));
        }
        assert_eq!(d.buffered_bytes(), MAX_BUFFERED_PARTIAL_BYTES);
        d.push(&type0_wide(streams as u16, MAX_MEDIA_MESSAGE_BYTES, 9));
        d.push(&[1; 100]);
        assert_eq!(
            d.next_message(),
            Err(ChunkError::TooMuchBuffered {
                bytes: MAX_BUFFERED_PARTIAL_BYTES + 100
            })
        );
        // An abort gives the bytes back.
        let mut d = ChunkDecoder::new();
        d.push(&type0(6, 0, 1000, 9, 1));
        d.push(&[0; 128]);
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(d.buffered_bytes(), 128);
        d.abort(6);
        assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn chunk_streams_are_bounded() {
        let mut d = ChunkDecoder::new();
        // Many streams, each with a complete message: old ones are forgotten.
        for n in 0..1000u16 {
            let mut wire = type0_wide(n, 1, 8);
            wire.push(0xaf);
            d.push(&wire);
            assert_eq!(d.next_message().unwrap().unwrap().csid, 64 + u32::from(n));
        }
        assert!(d.streams.len() <= MAX_OPEN_CHUNK_STREAMS);
        // As many with a partial message as allowed, then one more.
        let mut d = ChunkDecoder::new();
        for n in 0..MAX_OPEN_CHUNK_STREAMS as u16 {
            d.push(&type0_wide(n, 200, 9));
            d.push(&[0; 128]);
            assert_eq!(d.next_message(), Ok(None));
        }
        d.push(&type0_wide(1000, 200, 9));
        assert_eq!(d.next_message(), Err(ChunkError::TooManyChunkStreams));
    }

    /// A header cut anywhere, and bodies arriving in pieces, give the same messages.
    #[test]
    fn any_split_of_the_input_gives_the_same_messages() {
        let mut wire = type0(6, 0x0100_0000, 300, 9, 1);
        wire.extend_from_slice(&[3; 128]);
        wire.push(0xc6);
        wire.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        wire.extend_from_slice(&[4; 128]);
        wire.extend(type0(4, 10, 3, 8, 1));
        wire.extend_from_slice(&[0xaf, 1, 2]);
        wire.push(0xc6);
        wire.extend_from_slice(&[5; 44]);
        let mut whole = ChunkDecoder::new();
        whole.push(&wire);
        let expected = drain(&mut whole);
        // The audio message completes first; the video's third chunk (without a repeated
        // extended timestamp) completes it.
        assert_eq!(expected.len(), 2);
        assert_eq!(expected[0].payload.as_ref(), &[0xaf, 1, 2]);
        assert_eq!(expected[1].payload.len(), 300);
        assert_eq!(expected[1].payload[256..], [5; 44]);
        for cut in 0..wire.len() {
            let mut d = ChunkDecoder::new();
            d.push(&wire[..cut]);
            let mut got = drain(&mut d);
            d.push(&wire[cut..]);
            got.extend(drain(&mut d));
            assert_eq!(got, expected, "cut at {cut}");
        }
    }
}
