//! What an RTMP server sends, as bytes: our own chunk writer and the messages built on it.
//!
//! Every message is written whole, one chunk header of format 0 (full header) followed by
//! format-3 continuation headers every [`SERVE_CHUNK_SIZE`] bytes, with the extended
//! timestamp field when the timestamp does not fit 24 bits (repeated in each continuation,
//! as the spec and ffmpeg do). No header compression, so no state: the connection's
//! control answers and a player's media can be written by different owners into one ordered
//! byte queue, message by message. The chunk size is announced once, right after the
//! handshake ([`set_chunk_size`]).
//!
//! Chunk streams: 2 protocol control, 3 commands, 5 data, 4 audio, 6 video. Pure: bytes out,
//! nothing else.

use std::collections::HashMap;

use rml_rtmp::rml_amf0::{self, Amf0Value};

use crate::media::CodecSet;

/// The chunk size we send with, announced right after the handshake.
pub const SERVE_CHUNK_SIZE: usize = 4096;
/// The window acknowledgement size and peer bandwidth we announce (what nginx-rtmp does).
pub const SERVE_WINDOW: u32 = 5_000_000;

const CSID_CONTROL: u8 = 2;
const CSID_COMMAND: u8 = 3;
const CSID_AUDIO: u8 = 4;
const CSID_DATA: u8 = 5;
const CSID_VIDEO: u8 = 6;

/// RTMP message types.
pub const TYPE_SET_CHUNK_SIZE: u8 = 1;
pub const TYPE_ACKNOWLEDGEMENT: u8 = 3;
pub const TYPE_USER_CONTROL: u8 = 4;
pub const TYPE_WINDOW_ACK_SIZE: u8 = 5;
pub const TYPE_SET_PEER_BANDWIDTH: u8 = 6;
pub const TYPE_AUDIO: u8 = 8;
pub const TYPE_VIDEO: u8 = 9;
pub const TYPE_DATA_AMF0: u8 = 18;
pub const TYPE_COMMAND_AMF0: u8 = 20;

/// User control events.
const EVENT_STREAM_BEGIN: u16 = 0;
const EVENT_STREAM_EOF: u16 = 1;
const EVENT_PING_RESPONSE: u16 = 7;

/// Appends one message on chunk stream `csid` (2–63). A payload over 16 MiB − 1 cannot be
/// described and is not written (false).
pub fn write_message(
    out: &mut Vec<u8>,
    csid: u8,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
) -> bool {
    if payload.len() >= 1 << 24 {
        return false;
    }
    let extended = timestamp >= 0x00ff_ffff;
    let field = if extended { 0x00ff_ffff } else { timestamp };
    let chunks = payload.len().div_ceil(SERVE_CHUNK_SIZE).max(1);
    out.reserve(payload.len() + 16 + (chunks - 1) * 5);
    let len = payload.len() as u32;
    out.push(csid & 0x3f);
    out.extend_from_slice(&field.to_be_bytes()[1..]);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    for (i, chunk) in payload.chunks(SERVE_CHUNK_SIZE).enumerate() {
        if i > 0 {
            out.push(0xc0 | (csid & 0x3f));
            if extended {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(chunk);
    }
    true
}

/// An audio (8) or video (9) message: an FLV tag body on the play stream.
pub fn media(out: &mut Vec<u8>, stream_id: u32, kind: u8, timestamp: u32, body: &[u8]) -> bool {
    let csid = if kind == TYPE_AUDIO {
        CSID_AUDIO
    } else {
        CSID_VIDEO
    };
    write_message(out, csid, timestamp, kind, stream_id, body)
}

/// Set Chunk Size to [`SERVE_CHUNK_SIZE`].
pub fn set_chunk_size(out: &mut Vec<u8>) {
    let size = SERVE_CHUNK_SIZE as u32;
    write_message(
        out,
        CSID_CONTROL,
        0,
        TYPE_SET_CHUNK_SIZE,
        0,
        &size.to_be_bytes(),
    );
}

/// Window Acknowledgement Size and Set Peer Bandwidth (dynamic), [`SERVE_WINDOW`] each.
pub fn window_and_bandwidth(out: &mut Vec<u8>) {
    write_message(
        out,
        CSID_CONTROL,
        0,
        TYPE_WINDOW_ACK_SIZE,
        0,
        &SERVE_WINDOW.to_be_bytes(),
    );
    let mut body = SERVE_WINDOW.to_be_bytes().to_vec();
    body.push(2);
    write_message(out, CSID_CONTROL, 0, TYPE_SET_PEER_BANDWIDTH, 0, &body);
}

/// An Acknowledgement of `total` bytes received (its low 32 bits).
pub fn acknowledgement(out: &mut Vec<u8>, total: u64) {
    let sequence = (total & 0xffff_ffff) as u32;
    write_message(
        out,
        CSID_CONTROL,
        0,
        TYPE_ACKNOWLEDGEMENT,
        0,
        &sequence.to_be_bytes(),
    );
}

fn user_control(out: &mut Vec<u8>, event: u16, value: u32) {
    let mut body = event.to_be_bytes().to_vec();
    body.extend_from_slice(&value.to_be_bytes());
    write_message(out, CSID_CONTROL, 0, TYPE_USER_CONTROL, 0, &body);
}

/// Stream Begin for `stream_id`.
pub fn stream_begin(out: &mut Vec<u8>, stream_id: u32) {
    user_control(out, EVENT_STREAM_BEGIN, stream_id);
}

/// Stream EOF for `stream_id`.
pub fn stream_eof(out: &mut Vec<u8>, stream_id: u32) {
    user_control(out, EVENT_STREAM_EOF, stream_id);
}

/// The answer to a Ping Request carrying `timestamp`.
pub fn ping_response(out: &mut Vec<u8>, timestamp: u32) {
    user_control(out, EVENT_PING_RESPONSE, timestamp);
}

/// An AMF0 command message on `stream_id`.
pub fn command(
    out: &mut Vec<u8>,
    stream_id: u32,
    name: &str,
    transaction: f64,
    object: Amf0Value,
    arguments: Vec<Amf0Value>,
) {
    let mut values = vec![
        Amf0Value::Utf8String(name.to_string()),
        Amf0Value::Number(transaction),
        object,
    ];
    values.extend(arguments);
    if let Ok(body) = rml_amf0::serialize(&values) {
        write_message(out, CSID_COMMAND, 0, TYPE_COMMAND_AMF0, stream_id, &body);
    }
}

/// An AMF0 data message on `stream_id`.
pub fn data(out: &mut Vec<u8>, stream_id: u32, values: Vec<Amf0Value>) {
    if let Ok(body) = rml_amf0::serialize(&values) {
        write_message(out, CSID_DATA, 0, TYPE_DATA_AMF0, stream_id, &body);
    }
}

/// A status info object (`level`, `code`, `description`).
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    let mut info = HashMap::new();
    info.insert("level".to_string(), text(level));
    info.insert("code".to_string(), text(code));
    info.insert("description".to_string(), text(description));
    Amf0Value::Object(info)
}

/// `onStatus` on `stream_id`.
pub fn on_status(out: &mut Vec<u8>, stream_id: u32, level: &str, code: &str, description: &str) {
    command(
        out,
        stream_id,
        "onStatus",
        0.0,
        Amf0Value::Null,
        vec![status_object(level, code, description)],
    );
}

/// What a server sends when it starts playing `name` on `stream_id`: Stream Begin,
/// `NetStream.Play.Reset`, `NetStream.Play.Start`, `|RtmpSampleAccess` (nginx-rtmp's
/// order). No `onStatus NetStream.Data.Start` data message: ffmpeg's FLV reader would make a
/// data stream of it.
pub fn play_started(out: &mut Vec<u8>, stream_id: u32, name: &str) {
    stream_begin(out, stream_id);
    on_status(
        out,
        stream_id,
        "status",
        "NetStream.Play.Reset",
        &format!("Playing and resetting {name}."),
    );
    on_status(
        out,
        stream_id,
        "status",
        "NetStream.Play.Start",
        &format!("Started playing {name}."),
    );
    data(
        out,
        stream_id,
        vec![
            text("|RtmpSampleAccess"),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true),
        ],
    );
}

/// The source of a playing stream went away (it may come back): Stream EOF and
/// `NetStream.Play.UnpublishNotify`, as nginx-rtmp says it.
pub fn unpublish_notify(out: &mut Vec<u8>, stream_id: u32, name: &str) {
    stream_eof(out, stream_id);
    on_status(
        out,
        stream_id,
        "status",
        "NetStream.Play.UnpublishNotify",
        &format!("{name} is now unpublished."),
    );
}

/// The source is back: Stream Begin and `NetStream.Play.PublishNotify`.
pub fn publish_notify(out: &mut Vec<u8>, stream_id: u32, name: &str) {
    stream_begin(out, stream_id);
    on_status(
        out,
        stream_id,
        "status",
        "NetStream.Play.PublishNotify",
        &format!("{name} is now published."),
    );
}

/// The stream ended for good: Stream EOF and `NetStream.Play.Stop` with the reason.
pub fn play_stopped(out: &mut Vec<u8>, stream_id: u32, reason: &str) {
    stream_eof(out, stream_id);
    on_status(out, stream_id, "status", "NetStream.Play.Stop", reason);
}

/// `onMetaData` (as `@setDataFrame`-less data message) with these properties.
pub fn metadata(out: &mut Vec<u8>, stream_id: u32, properties: Vec<(String, Amf0Value)>) {
    let object: HashMap<String, Amf0Value> = properties.into_iter().collect();
    data(
        out,
        stream_id,
        vec![text("onMetaData"), Amf0Value::Object(object)],
    );
}

/// `onMetaData` describing `codecs` (what players show before the first frame): size,
/// codec ids (7 H.264, 10 AAC), sample rate, channels.
pub fn codec_metadata(out: &mut Vec<u8>, stream_id: u32, codecs: &CodecSet) {
    let mut props = vec![("encoder".to_string(), text("pullcast"))];
    if let Some(video) = &codecs.video {
        props.push(("videocodecid".into(), Amf0Value::Number(7.0)));
        if let Some(sps) = &video.sps_info {
            props.push(("width".into(), Amf0Value::Number(f64::from(sps.width))));
            props.push(("height".into(), Amf0Value::Number(f64::from(sps.height))));
        }
    }
    if let Some(audio) = &codecs.audio {
        props.push(("audiocodecid".into(), Amf0Value::Number(10.0)));
        props.push((
            "audiosamplerate".into(),
            Amf0Value::Number(f64::from(audio.sample_rate)),
        ));
        props.push(("audiosamplesize".into(), Amf0Value::Number(16.0)));
        props.push(("stereo".into(), Amf0Value::Boolean(audio.channels >= 2)));
    }
    metadata(out, stream_id, props);
}

pub(crate) fn text(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::ChunkDecoder;

    fn decode(bytes: &[u8]) -> Vec<crate::rtmp::chunk::RawMessage> {
        let mut d = ChunkDecoder::new();
        d.set_chunk_size(SERVE_CHUNK_SIZE as u32).unwrap();
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn messages_round_trip_through_our_decoder() {
        let mut out = Vec::new();
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        assert!(media(&mut out, 1, TYPE_VIDEO, 40, &big));
        assert!(media(&mut out, 1, TYPE_AUDIO, 41, &[0xaf, 1, 2]));
        // Past 24 bits: the extended timestamp, in every chunk.
        assert!(media(&mut out, 1, TYPE_VIDEO, 0x0100_0000, &big));
        assert!(media(&mut out, 7, TYPE_VIDEO, u32::MAX, &[1]));
        let m = decode(&out);
        assert_eq!(m.len(), 4);
        assert_eq!((m[0].type_id, m[0].timestamp, m[0].stream_id), (9, 40, 1));
        assert_eq!(&m[0].payload[..], &big[..]);
        assert_eq!(
            (m[1].type_id, m[1].timestamp, &m[1].payload[..]),
            (8, 41, &[0xaf, 1, 2][..])
        );
        assert_eq!(m[2].timestamp, 0x0100_0000);
        assert_eq!(&m[2].payload[..], &big[..]);
        assert_eq!((m[3].timestamp, m[3].stream_id), (u32::MAX, 7));
        // 10 000 bytes: one full header (12) and two continuation bytes.
        let mut one = Vec::new();
        media(&mut one, 1, TYPE_VIDEO, 0, &big);
        assert_eq!(one.len(), 10_000 + 12 + 2);
    }

    #[test]
    fn too_big_a_payload_is_not_written() {
        let mut out = Vec::new();
        assert!(!write_message(&mut out, 6, 0, 9, 1, &vec![0; 1 << 24]));
        assert!(out.is_empty());
    }

    #[test]
    fn the_play_start_sequence() {
        let mut out = Vec::new();
        play_started(&mut out, 1, "cam");
        let m = decode(&out);
        let types: Vec<u8> = m.iter().map(|m| m.type_id).collect();
        assert_eq!(types, vec![4, 20, 20, 18]);
        let start = crate::rtmp::amf0::decode_amf0(&m[2].payload).unwrap();
        assert_eq!(start[0], text("onStatus"));
        match &start[3] {
            Amf0Value::Object(o) => assert_eq!(o["code"], text("NetStream.Play.Start")),
            other => panic!("{other:?}"),
        }
    }
}
