//! The RTMP play session: one client connection that pulls one stream, sans-IO.
//!
//! Bytes from the socket go into [`PlaySession::handle_input`]; bytes to send come out of
//! [`PlaySession::take_outbound`]; what happened comes out of [`PlaySession::poll_event`].
//! The call flow is the one ffmpeg (`rtmpproto.c`) and librtmp use against nginx-rtmp, Wowza,
//! SRS and FMS: handshake → `SetChunkSize` → `connect` → (`_result`) → Window Acknowledgement
//! Size + `createStream` + `FCSubscribe` (sent together, in that order) → (`_result` with the
//! stream id) → `play` + `SetBufferLength` → `onStatus NetStream.Play.Start` → media. Along
//! the way it answers pings, follows the peer's chunk size, acknowledges the *total* bytes
//! received once per window, answers `SetPeerBandwidth` with our window size, and splits
//! aggregate messages.
//!
//! Commands from the server, on message stream 0 or the play stream alike:
//! - `onStatus` (a command, or the data message some servers use for `NetStream.Data.Start`):
//!   `NetStream.Play.Start` → [`SessionEvent::PlayStarted`]; `UnpublishNotify` →
//!   `Unpublished`; `Stop`/`Complete` → `Ended`; `StreamNotFound`, `Play.Failed` and any
//!   `error` level → `Failed` with the server's words; any other level (`status`, `warning`)
//!   → `Status`.
//! - `onFCSubscribe` (Wowza, Akamai, FMS answer `FCSubscribe` with it): an error there
//!   (`StreamNotFound`, `Play.Failed`, `error` level) → `Failed`, else `Status`. A `_result`
//!   or `_error` answering `FCSubscribe` is only a `Status`: servers that do not know the
//!   call answer `_error`, and ffmpeg and librtmp ignore that too.
//! - `onFCUnpublish`, `onFCUnsubscribe` → `Unpublished` (the server keeps the connection).
//! - `onFCPublish`, `onUpstreamBase` → `Status` (informational).
//! - `onBWDone`, `_onbwdone`, `|RtmpSampleAccess` → nothing (we run no bandwidth check).
//! - `onBWCheck`, `_onbwcheck` with a transaction id > 0 → answered `_result` with that id
//!   and a counter, as librtmp and Flash players do (the server measures the round trip).
//! - `releaseStream`, `FCPublish`, `FCUnpublish` (a publisher's calls) → answered `_error`
//!   `NetConnection.Call.Failed` if the transaction id is > 0, so the peer is not left
//!   waiting; reported once as `Ignored`.
//! - `_error` answering `connect`, `createStream` or `play` → `Failed`; `close` → `Ended`.
//! - anything else → [`SessionEvent::Ignored`], once per name (and at most 64 distinct
//!   reports a session); a command with a transaction id > 0 gets no answer.
//!
//! A [`SessionError`] means the connection cannot go on (broken handshake or chunk stream);
//! anything wrong inside a single message is reported as an event and skipped. AMF0 bodies
//! are checked before `rml_amf0` decodes them: it recurses once per nesting level, so a
//! deeply nested body would overflow the stack (an abort, not an error).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Cursor;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::{self, Amf0Value};
use rml_rtmp::time::RtmpTimestamp;

use super::aggregate::{split_aggregate, AggregateError, AGGREGATE_TYPE_ID};
use super::chunk::{ChunkDecoder, RawMessage};
use super::url::RtmpUrl;
use crate::report_once::{ReportOnce, Verdict};

/// The window acknowledgement size we announce to the server.
pub const OUR_WINDOW_ACK_SIZE: u32 = 2_500_000;
/// The Flash version string sent in `connect` (what ffmpeg sends on Linux).
const FLASH_VER: &str = "LNX 9,0,124,2";
/// Distinct things reported as [`SessionEvent::Ignored`]; past this, one last report and then
/// silence, so a server inventing command names grows neither memory nor the log.
const MAX_REPORTED: usize = 64;
/// Longest command name quoted in a report.
const MAX_REPORTED_NAME: usize = 64;
/// Deepest nesting of AMF0 objects and arrays we decode. `rml_amf0` parses them recursively,
/// so a body of nested strict arrays (5 bytes a level) would overflow the stack long before
/// the 1 MiB AMF message limit. Status objects and metadata nest two or three levels.
const MAX_AMF0_DEPTH: usize = 32;
/// Most AMF0 values we decode from one message: 65 536. A body at the 1 MiB AMF message cap
/// made of one-byte nulls would otherwise become a million values (about 60 MB decoded).
/// Ample for the keyframe tables in the `onMetaData` of long recordings (two numbers per
/// keyframe: 18 hours at 2 s GOPs).
const MAX_AMF0_VALUES: usize = 1 << 16;
/// Most bytes of `onMetaData` kept for the capture (property names, strings, and
/// [`META_VALUE_COST`] per value): 16 KiB. The metadata is held as long as the capture and
/// copied into every `find_all` answer; the properties worth showing (size, rates, codecs,
/// encoder) take well under 1 KiB. Scalar properties are kept first, so a large keyframe
/// table cannot push out the width or the frame rate.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Longest metadata string kept, in bytes (cut at a character boundary).
pub const MAX_METADATA_STRING_BYTES: usize = 512;
/// What one metadata value is counted as beside its text: the size of a [`MetaValue`] and a
/// vector slot, rounded up.
const META_VALUE_COST: usize = 48;
/// Longest status text (`level`, `code`, `description` of an info object) kept, in bytes:
/// it ends up in capture failure reasons and log lines.
pub const MAX_STATUS_TEXT_BYTES: usize = 512;

/// How to open the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaySessionConfig {
    /// What to pull.
    pub url: RtmpUrl,
    /// Chunk size we announce for what we send.
    pub chunk_size: u32,
    /// Buffer length we ask for with `SetBufferLength`, in ms.
    pub buffer_length_ms: u32,
}

/// A value from an AMF0 data message (`onMetaData`), reduced to what JSON can say.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<MetaValue>),
    Object(Vec<(String, MetaValue)>),
}

impl MetaValue {
    /// Converts `value` within `budget`; `None` when the budget has run out (containers
    /// keep what fitted).
    fn from_amf0(value: Amf0Value, budget: &mut MetaBudget) -> Option<Self> {
        if !budget.take(META_VALUE_COST) {
            return None;
        }
        Some(match value {
            Amf0Value::Number(n) => MetaValue::Number(n),
            Amf0Value::Boolean(b) => MetaValue::Bool(b),
            // nginx-rtmp pads some strings with NULs.
            Amf0Value::Utf8String(s) => {
                let text = cut_text(s.trim_end_matches('\0'), MAX_METADATA_STRING_BYTES);
                if !budget.take(text.len()) {
                    return None;
                }
                MetaValue::String(text.to_string())
            }
            Amf0Value::Object(map) => MetaValue::Object(sorted_properties(map, budget)),
            Amf0Value::StrictArray(items) => MetaValue::Array(
                items
                    .into_iter()
                    .map_while(|item| MetaValue::from_amf0(item, budget))
                    .collect(),
            ),
            Amf0Value::Null | Amf0Value::Undefined => MetaValue::Null,
        })
    }
}

/// What is left of [`MAX_METADATA_BYTES`] while metadata is converted.
#[derive(Debug)]
struct MetaBudget {
    left: usize,
    /// Something did not fit.
    cut: bool,
}

impl MetaBudget {
    fn new() -> Self {
        Self {
            left: MAX_METADATA_BYTES,
            cut: false,
        }
    }

    /// Takes `n` bytes if they are left.
    fn take(&mut self, n: usize) -> bool {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                true
            }
            None => {
                self.cut = true;
                false
            }
        }
    }
}

/// An object's properties sorted by name, scalar ones first taken from the budget (a big
/// nested table cannot push out the width or the frame rate); what does not fit is left out.
fn sorted_properties(
    map: HashMap<String, Amf0Value>,
    budget: &mut MetaBudget,
) -> Vec<(String, MetaValue)> {
    let mut entries: Vec<(String, Amf0Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| {
        let nested = |v: &Amf0Value| matches!(v, Amf0Value::Object(_) | Amf0Value::StrictArray(_));
        (nested(&a.1), &a.0).cmp(&(nested(&b.1), &b.0))
    });
    let mut props = Vec::new();
    for (name, value) in entries {
        let name = cut_text(&name, MAX_METADATA_STRING_BYTES).to_string();
        if !budget.take(name.len()) {
            continue;
        }
        if let Some(value) = MetaValue::from_amf0(value, budget) {
            props.push((name, value));
        }
    }
    props.sort_by(|a, b| a.0.cmp(&b.0));
    props
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut_text(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// What the session reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The handshake finished; `connect` has been queued.
    HandshakeComplete,
    /// `connect` succeeded.
    Connected,
    /// `play` has been sent on message stream `stream_id`.
    PlayRequested { stream_id: u32 },
    /// `NetStream.Play.Start`: the server is playing the stream.
    PlayStarted { description: String },
    /// The publisher of the stream went away (`NetStream.Play.UnpublishNotify`); a live
    /// server may resume it later.
    Unpublished { description: String },
    /// The stream ended (`NetStream.Play.Stop`, `.Complete`, `close`).
    Ended { reason: String },
    /// The server refused something essential; the pull cannot succeed.
    Failed { reason: String },
    /// Any other status the server sent (informational).
    Status { code: String, description: String },
    /// `onMetaData` properties, sorted by name, at most [`MAX_METADATA_BYTES`] of them.
    Metadata(Vec<(String, MetaValue)>),
    /// An FLV video tag body.
    Video { timestamp: u32, data: Bytes },
    /// An FLV audio tag body.
    Audio { timestamp: u32, data: Bytes },
    /// A command or message we do not act on; reported once per name.
    Ignored { what: String },
}

/// The connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    Handshake(String),
    Chunk(String),
    Serialize(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Handshake(e) => write!(f, "RTMP handshake failed: {e}"),
            SessionError::Chunk(e) => write!(f, "RTMP protocol error: {e}"),
            SessionError::Serialize(e) => write!(f, "cannot encode an RTMP message: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Connecting,
    CreatingStream,
    Playing,
}

/// One pull over one connection.
pub struct PlaySession {
    config: PlaySessionConfig,
    state: State,
    handshake: Handshake,
    decoder: ChunkDecoder,
    serializer: ChunkSerializer,
    outbound: Vec<u8>,
    events: VecDeque<SessionEvent>,
    bytes_received: u64,
    acknowledged: u64,
    ack_window: u32,
    window_sent: Option<u32>,
    transactions: u32,
    connect_tx: f64,
    create_stream_tx: f64,
    fc_subscribe_tx: f64,
    play_tx: f64,
    /// Answers given to `onBWCheck`; the number each answer carries.
    bw_checks: u32,
    stream_id: Option<u32>,
    reported: ReportOnce,
}

impl fmt::Debug for PlaySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaySession")
            .field("url", &self.config.url.to_string())
            .field("state", &self.state)
            .field("bytes_received", &self.bytes_received)
            .finish()
    }
}

impl PlaySession {
    /// A session with C0+C1 already queued for sending.
    pub fn new(config: PlaySessionConfig) -> Result<Self, SessionError> {
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 = handshake
            .generate_outbound_p0_and_p1()
            .map_err(|e| SessionError::Handshake(format!("{e:?}")))?;
        Ok(Self {
            config,
            state: State::Handshaking,
            handshake,
            decoder: ChunkDecoder::new(),
            serializer: ChunkSerializer::new(),
            outbound: c0c1,
            events: VecDeque::new(),
            bytes_received: 0,
            acknowledged: 0,
            ack_window: 0,
            window_sent: None,
            transactions: 0,
            connect_tx: 0.0,
            create_stream_tx: 0.0,
            fc_subscribe_tx: 0.0,
            play_tx: 0.0,
            bw_checks: 0,
            stream_id: None,
            reported: ReportOnce::new(MAX_REPORTED),
        })
    }

    /// Whether the handshake is over.
    pub fn handshake_done(&self) -> bool {
        self.state != State::Handshaking
    }

    /// Total bytes received on the connection.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes to write to the socket (empties the queue).
    pub fn take_outbound(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbound)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if self.bytes_received == 0 {
            // S0 is the RTMP version, 3. Anything else is not a plain RTMP server (an HTTP
            // server answers 'H', RTMPE answers 6): say so rather than parse noise.
            if let Some(&version) = bytes.first().filter(|&&b| b != 3) {
                return Err(SessionError::Handshake(format!(
                    "the server's first byte is 0x{version:02x}, not the RTMP version 0x03 \
                     (is this an RTMP port? encrypted RTMPE is not supported)"
                )));
            }
        }
        self.bytes_received += bytes.len() as u64;
        if self.state == State::Handshaking {
            let result = self
                .handshake
                .process_bytes(bytes)
                .map_err(|e| SessionError::Handshake(format!("{e:?}")))?;
            match result {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.outbound.extend_from_slice(&response_bytes);
                    return Ok(());
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.outbound.extend_from_slice(&response_bytes);
                    self.state = State::Connecting;
                    self.events.push_back(SessionEvent::HandshakeComplete);
                    self.send_connect()?;
                    self.decoder.push(&remaining_bytes);
                }
            }
        } else {
            self.decoder.push(bytes);
        }
        while let Some(message) = self
            .decoder
            .next_message()
            .map_err(|e| SessionError::Chunk(e.to_string()))?
        {
            self.handle_message(message)?;
        }
        self.acknowledge()
    }

    fn handle_message(&mut self, message: RawMessage) -> Result<(), SessionError> {
        match message.type_id {
            // An empty audio or video message carries nothing, and each would still cost an
            // event and a queue slot downstream: a peer could send one per byte.
            8 | 9 if message.payload.is_empty() => {
                self.report_once("empty audio or video message");
                Ok(())
            }
            8 => {
                self.events.push_back(SessionEvent::Audio {
                    timestamp: message.timestamp,
                    data: message.payload,
                });
                Ok(())
            }
            9 => {
                self.events.push_back(SessionEvent::Video {
                    timestamp: message.timestamp,
                    data: message.payload,
                });
                Ok(())
            }
            AGGREGATE_TYPE_ID => {
                let parts = match split_aggregate(&message) {
                    Ok(parts) => parts,
                    Err(AggregateError::Truncated { parts }) => {
                        self.report_once("truncated aggregate message");
                        parts
                    }
                    Err(e @ AggregateError::TooManyParts) => {
                        return Err(SessionError::Chunk(e.to_string()))
                    }
                };
                for part in parts {
                    if part.type_id != AGGREGATE_TYPE_ID {
                        self.handle_message(part)?;
                    }
                }
                Ok(())
            }
            // AMF0 data (18) and commands (20), and their AMF3-flagged twins (15, 17) that
            // Flash-era peers fill with AMF0 anyway: decoded here, not by rml_rtmp, whose
            // command decoder panics on fewer than three values.
            15 | 18 => {
                match decode_amf0(&message.payload) {
                    Ok(values) => self.handle_data(values),
                    Err(e) => self.report_keyed(
                        &format!("undecodable data type {}", message.type_id),
                        &format!("undecodable AMF0 data message ({e})"),
                    ),
                }
                Ok(())
            }
            17 | 20 => {
                let body = match message.payload.split_first() {
                    // An AMF3 command starts with a format byte of 0 before its AMF0 values.
                    Some((&0, rest)) if message.type_id == 17 => rest,
                    _ => &message.payload[..],
                };
                match decode_amf0(body) {
                    Ok(values) => self.handle_command_values(message.stream_id, values),
                    Err(e) => {
                        self.report_keyed(
                            &format!("undecodable command type {}", message.type_id),
                            &format!("undecodable AMF0 command message ({e})"),
                        );
                        Ok(())
                    }
                }
            }
            _ => {
                let payload = MessagePayload {
                    timestamp: RtmpTimestamp::new(message.timestamp),
                    type_id: message.type_id,
                    message_stream_id: message.stream_id,
                    data: message.payload,
                };
                match payload.to_rtmp_message() {
                    Ok(parsed) => self.handle_control(parsed),
                    Err(e) => {
                        self.report_keyed(
                            &format!("undecodable type {}", message.type_id),
                            &format!("undecodable RTMP message of type {} ({e})", message.type_id),
                        );
                        Ok(())
                    }
                }
            }
        }
    }

    fn handle_control(&mut self, message: RtmpMessage) -> Result<(), SessionError> {
        match message {
            RtmpMessage::SetChunkSize { size } => self
                .decoder
                .set_chunk_size(size)
                .map_err(|e| SessionError::Chunk(e.to_string())),
            RtmpMessage::Abort { stream_id } => {
                self.decoder.abort(stream_id);
                Ok(())
            }
            RtmpMessage::WindowAcknowledgement { size } => {
                self.ack_window = size;
                Ok(())
            }
            RtmpMessage::SetPeerBandwidth { size, .. } => {
                // Spec §5.4.5: answer with a Window Acknowledgement Size if it differs from
                // the last one we sent.
                if self.window_sent != Some(size) {
                    self.window_sent = Some(size);
                    self.send(RtmpMessage::WindowAcknowledgement { size }, 0)?;
                }
                Ok(())
            }
            RtmpMessage::Acknowledgement { .. } => Ok(()),
            RtmpMessage::UserControl {
                event_type,
                timestamp,
                ..
            } => self.handle_user_control(event_type, timestamp),
            // Media, AMF0 commands and data are taken apart in `handle_message`; these
            // cannot come from rml_rtmp here.
            RtmpMessage::Amf0Command { .. }
            | RtmpMessage::Amf0Data { .. }
            | RtmpMessage::AudioData { .. }
            | RtmpMessage::VideoData { .. } => Ok(()),
            RtmpMessage::Unknown { type_id, .. } => {
                self.report_once(&format!("RTMP message type {type_id}"));
                Ok(())
            }
        }
    }

    fn handle_user_control(
        &mut self,
        event_type: UserControlEventType,
        timestamp: Option<RtmpTimestamp>,
    ) -> Result<(), SessionError> {
        match event_type {
            UserControlEventType::PingRequest => self.send(
                RtmpMessage::UserControl {
                    event_type: UserControlEventType::PingResponse,
                    stream_id: None,
                    buffer_length: None,
                    timestamp: Some(timestamp.unwrap_or_else(|| RtmpTimestamp::new(0))),
                },
                0,
            ),
            UserControlEventType::StreamEof => {
                // Not the end of the connection: nginx-rtmp sends it (alone, or with
                // `NetStream.Play.UnpublishNotify`) when the publisher leaves, and keeps the
                // player for the next publisher. A server that means it closes the socket.
                self.events.push_back(SessionEvent::Unpublished {
                    description: "StreamEOF".to_string(),
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Splits a command message into name, transaction id, command object and arguments.
    fn handle_command_values(
        &mut self,
        stream_id: u32,
        values: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        let mut values = values.into_iter();
        let name = match values.next() {
            // nginx-rtmp pads some strings with NULs.
            Some(Amf0Value::Utf8String(name)) => name.trim_end_matches('\0').to_string(),
            _ => {
                self.report_once("command message without a name");
                return Ok(());
            }
        };
        // A missing or non-numeric transaction id reads as 0 (a notification), a missing
        // command object as null.
        let transaction = match values.next() {
            Some(Amf0Value::Number(n)) => n,
            _ => 0.0,
        };
        let object = values.next().unwrap_or(Amf0Value::Null);
        self.handle_command(stream_id, &name, transaction, object, values.collect())
    }

    fn handle_command(
        &mut self,
        stream_id: u32,
        name: &str,
        transaction: f64,
        object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        // The info object is the first argument; a few servers put it in the command
        // object's place instead.
        let info = status_info(arguments.iter().chain(std::iter::once(&object)));
        match name {
            "_result" if transaction == self.connect_tx && self.state == State::Connecting => {
                self.events.push_back(SessionEvent::Connected);
                self.after_connect()
            }
            "_result"
                if transaction == self.create_stream_tx && self.state == State::CreatingStream =>
            {
                let stream_id = arguments.iter().find_map(|v| match v {
                    Amf0Value::Number(n) if *n >= 0.0 && *n <= u32::MAX as f64 => Some(*n as u32),
                    _ => None,
                });
                match stream_id {
                    Some(id) => self.send_play(id),
                    None => {
                        self.events.push_back(SessionEvent::Failed {
                            reason: "the server answered createStream without a stream id"
                                .to_string(),
                        });
                        Ok(())
                    }
                }
            }
            "_error" if transaction == self.connect_tx && self.state == State::Connecting => {
                self.events.push_back(SessionEvent::Failed {
                    reason: format!("the server refused connect: {}", info.describe()),
                });
                Ok(())
            }
            "_error"
                if transaction == self.create_stream_tx && self.state == State::CreatingStream =>
            {
                self.events.push_back(SessionEvent::Failed {
                    reason: format!("the server refused createStream: {}", info.describe()),
                });
                Ok(())
            }
            // ffmpeg takes an `_error` answering `play` as fatal; the server will not play.
            "_error" if transaction == self.play_tx && self.state == State::Playing => {
                self.events.push_back(SessionEvent::Failed {
                    reason: format!("the server refused play: {}", info.describe()),
                });
                Ok(())
            }
            // The answer to FCSubscribe, an Adobe-era extra: servers that do not know it
            // answer `_error` (ffmpeg and librtmp ignore that too); `play` decides.
            "_result" | "_error"
                if transaction == self.fc_subscribe_tx && self.fc_subscribe_tx > 0.0 =>
            {
                self.events
                    .push_back(status_event(&format!("{name} to FCSubscribe"), info));
                Ok(())
            }
            // A late or duplicate answer nobody waits for.
            "_result" | "_error" => {
                self.events.push_back(status_event(name, info));
                Ok(())
            }
            "onStatus" => {
                self.handle_status(info);
                Ok(())
            }
            // Wowza, Akamai and FMS answer FCSubscribe with this; an error there is the
            // refusal `play` would get, so the pull fails now with the server's words.
            "onFCSubscribe" => {
                let event = if info.code == "NetStream.Play.StreamNotFound" {
                    SessionEvent::Failed {
                        reason: format!("stream not found (onFCSubscribe {})", info.describe()),
                    }
                } else if is_failure(&info) {
                    SessionEvent::Failed {
                        reason: format!("the server refused FCSubscribe: {}", info.describe()),
                    }
                } else {
                    status_event(name, info)
                };
                self.events.push_back(event);
                Ok(())
            }
            // The server relays that the publisher stopped (FMS/Wowza edges), or dropped
            // our subscription: like UnpublishNotify, it keeps the connection.
            "onFCUnpublish" | "onFCUnsubscribe" => {
                self.events.push_back(SessionEvent::Unpublished {
                    description: format!("{name} ({})", info.describe()),
                });
                Ok(())
            }
            // Informational: a publisher started (relayed), or the CDN names its origin.
            "onFCPublish" | "onUpstreamBase" => {
                self.events.push_back(status_event(name, info));
                Ok(())
            }
            // The server offers a bandwidth check; we run none (librtmp would call
            // `_checkbw`), and the server needs no answer.
            "onBWDone" | "_onbwdone" => Ok(()),
            // The server measures the round trip of its calls: answer `_result` with the
            // same transaction id and a counter, as librtmp and Flash players do. A
            // transaction id of 0 asks for no answer.
            "onBWCheck" | "_onbwcheck" => {
                if transaction > 0.0 {
                    let count = self.bw_checks;
                    self.bw_checks = self.bw_checks.wrapping_add(1);
                    self.send(
                        command(
                            "_result",
                            transaction,
                            Amf0Value::Null,
                            vec![Amf0Value::Number(count as f64)],
                        ),
                        stream_id,
                    )?;
                }
                Ok(())
            }
            // A publisher's calls: a player takes none. Answer `_error` when an answer is
            // awaited (transaction id > 0) so the peer is not left hanging; never fail.
            "releaseStream" | "FCPublish" | "FCUnpublish" => {
                if transaction > 0.0 {
                    self.send(call_failed(name, transaction), stream_id)?;
                    self.report_once(&format!(
                        "command '{name}' (a publisher's; answered _error)"
                    ));
                } else {
                    self.report_once(&format!("command '{name}' (a publisher's)"));
                }
                Ok(())
            }
            // Flash players' permission to read raw samples; nothing for us to do.
            "|RtmpSampleAccess" => Ok(()),
            "close" => {
                self.events.push_back(SessionEvent::Ended {
                    reason: "the server closed the connection (close)".to_string(),
                });
                Ok(())
            }
            other => {
                self.report_once(&format!("command '{}'", shorten(other)));
                Ok(())
            }
        }
    }

    fn handle_status(&mut self, info: StatusInfo) {
        let event = match info.code.as_str() {
            "NetStream.Play.Start" => SessionEvent::PlayStarted {
                description: info.description,
            },
            "NetStream.Play.StreamNotFound" => SessionEvent::Failed {
                reason: format!("stream not found ({})", info.describe()),
            },
            "NetStream.Play.UnpublishNotify" => SessionEvent::Unpublished {
                description: info.describe(),
            },
            "NetStream.Play.Stop" | "NetStream.Play.Complete" => SessionEvent::Ended {
                reason: format!("the server stopped the stream ({})", info.describe()),
            },
            "NetConnection.Connect.Rejected"
            | "NetConnection.Connect.Failed"
            | "NetConnection.Connect.Closed" => SessionEvent::Failed {
                reason: format!("the server reported {}", info.describe()),
            },
            // `NetStream.Play.Failed`, `NetStream.Failed` and any `error` level. Other levels
            // (`status`, `warning` as in `NetStream.Play.InsufficientBW`) only inform.
            _ if is_failure(&info) => SessionEvent::Failed {
                reason: format!("the server reported {}", info.describe()),
            },
            _ => SessionEvent::Status {
                code: info.code,
                description: info.description,
            },
        };
        self.events.push_back(event);
    }

    fn handle_data(&mut self, values: Vec<Amf0Value>) {
        let mut values = values.into_iter();
        let mut name = values.next();
        if matches!(&name, Some(Amf0Value::Utf8String(s)) if s == "@setDataFrame") {
            name = values.next();
        }
        match name {
            Some(Amf0Value::Utf8String(s)) if s == "onMetaData" => {
                let mut budget = MetaBudget::new();
                let props = match values.next() {
                    Some(Amf0Value::Object(map)) => sorted_properties(map, &mut budget),
                    _ => Vec::new(),
                };
                if budget.cut {
                    self.report_once(&format!(
                        "onMetaData over {MAX_METADATA_BYTES} bytes (the rest is left out)"
                    ));
                }
                self.events.push_back(SessionEvent::Metadata(props));
            }
            // Flash players' permission to read raw samples; nothing for us to do.
            Some(Amf0Value::Utf8String(s)) if s == "|RtmpSampleAccess" => {}
            // Servers (rml_rtmp, Wowza) announce `NetStream.Data.Start` as a data message.
            Some(Amf0Value::Utf8String(s)) if s == "onStatus" => {
                let values: Vec<Amf0Value> = values.collect();
                self.handle_status(status_info(&values));
            }
            Some(Amf0Value::Utf8String(s)) => {
                self.report_once(&format!("data message '{}'", shorten(&s)))
            }
            _ => self.report_once("data message without a name"),
        }
    }

    fn after_connect(&mut self) -> Result<(), SessionError> {
        self.state = State::CreatingStream;
        if self.window_sent.is_none() {
            self.window_sent = Some(OUR_WINDOW_ACK_SIZE);
            self.send(
                RtmpMessage::WindowAcknowledgement {
                    size: OUR_WINDOW_ACK_SIZE,
                },
                0,
            )?;
        }
        self.create_stream_tx = self.next_transaction();
        let tx = self.create_stream_tx;
        self.send(command("createStream", tx, Amf0Value::Null, vec![]), 0)?;
        // Akamai/Limelight-style CDNs and some Wowza setups want FCSubscribe before play.
        // ffmpeg (rtmpproto.c) and librtmp send it right after createStream, in the same
        // answer to connect's `_result`, with the next transaction id; so do we. Servers
        // that do not know it answer `_error` or nothing, which is harmless.
        let stream = self.config.url.stream.clone();
        self.fc_subscribe_tx = self.next_transaction();
        let tx = self.fc_subscribe_tx;
        self.send(
            command("FCSubscribe", tx, Amf0Value::Null, vec![string(&stream)]),
            0,
        )
    }

    fn send_connect(&mut self) -> Result<(), SessionError> {
        let packet = self
            .serializer
            .set_max_chunk_size(self.config.chunk_size, RtmpTimestamp::new(0))
            .map_err(|e| SessionError::Serialize(format!("{e:?}")))?;
        self.outbound.extend_from_slice(&packet.bytes);
        let url = &self.config.url;
        let mut props = HashMap::new();
        props.insert("app".to_string(), string(&url.app));
        props.insert("flashVer".to_string(), string(FLASH_VER));
        props.insert("tcUrl".to_string(), string(&url.tc_url()));
        props.insert("fpad".to_string(), Amf0Value::Boolean(false));
        props.insert("capabilities".to_string(), Amf0Value::Number(15.0));
        props.insert("audioCodecs".to_string(), Amf0Value::Number(4071.0));
        props.insert("videoCodecs".to_string(), Amf0Value::Number(252.0));
        props.insert("videoFunction".to_string(), Amf0Value::Number(1.0));
        self.connect_tx = self.next_transaction();
        let tx = self.connect_tx;
        self.send(command("connect", tx, Amf0Value::Object(props), vec![]), 0)
    }

    fn send_play(&mut self, stream_id: u32) -> Result<(), SessionError> {
        self.state = State::Playing;
        self.stream_id = Some(stream_id);
        let stream = self.config.url.stream.clone();
        self.play_tx = self.next_transaction();
        let tx = self.play_tx;
        // Start -2: live if there is one, else recorded; duration -1: to the end.
        self.send(
            command(
                "play",
                tx,
                Amf0Value::Null,
                vec![string(&stream), Amf0Value::Number(-2.0)],
            ),
            stream_id,
        )?;
        self.send(
            RtmpMessage::UserControl {
                event_type: UserControlEventType::SetBufferLength,
                stream_id: Some(stream_id),
                buffer_length: Some(self.config.buffer_length_ms),
                timestamp: None,
            },
            0,
        )?;
        self.events
            .push_back(SessionEvent::PlayRequested { stream_id });
        Ok(())
    }

    /// Sends an Acknowledgement carrying the total byte count each time a window fills.
    fn acknowledge(&mut self) -> Result<(), SessionError> {
        if self.ack_window == 0 || self.state == State::Handshaking {
            return Ok(());
        }
        if self.bytes_received - self.acknowledged >= self.ack_window as u64 {
            self.acknowledged = self.bytes_received;
            let sequence_number = (self.bytes_received & 0xffff_ffff) as u32;
            self.send(RtmpMessage::Acknowledgement { sequence_number }, 0)?;
        }
        Ok(())
    }

    fn send(&mut self, message: RtmpMessage, stream_id: u32) -> Result<(), SessionError> {
        let payload = message
            .into_message_payload(RtmpTimestamp::new(0), stream_id)
            .map_err(|e| SessionError::Serialize(format!("{e:?}")))?;
        let packet = self
            .serializer
            .serialize(&payload, true, false)
            .map_err(|e| SessionError::Serialize(format!("{e:?}")))?;
        self.outbound.extend_from_slice(&packet.bytes);
        Ok(())
    }

    fn next_transaction(&mut self) -> f64 {
        self.transactions += 1;
        self.transactions as f64
    }

    fn report_once(&mut self, what: &str) {
        self.report_keyed(what, what);
    }

    /// Reports `what` unless something with the same `key` was reported before; after
    /// [`MAX_REPORTED`] distinct keys, says once that it stops reporting.
    fn report_keyed(&mut self, key: &str, what: &str) {
        let what = match self.reported.verdict(key) {
            Verdict::First => what.to_string(),
            Verdict::FirstOverLimit => {
                format!("{what} (from now on, further kinds of ignored messages go unreported)")
            }
            Verdict::Quiet => return,
        };
        self.events.push_back(SessionEvent::Ignored { what });
    }
}

fn command(name: &str, tx: f64, object: Amf0Value, args: Vec<Amf0Value>) -> RtmpMessage {
    RtmpMessage::Amf0Command {
        command_name: name.to_string(),
        transaction_id: tx,
        command_object: object,
        additional_arguments: args,
    }
}

fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_string())
}

/// The `_error` a server gives for a call it does not take (`NetConnection.Call.Failed`).
fn call_failed(name: &str, tx: f64) -> RtmpMessage {
    let mut info = HashMap::new();
    info.insert("level".to_string(), string("error"));
    info.insert("code".to_string(), string("NetConnection.Call.Failed"));
    info.insert(
        "description".to_string(),
        string(&format!("{name} is not supported: this client only plays")),
    );
    command("_error", tx, Amf0Value::Null, vec![Amf0Value::Object(info)])
}

/// A server-chosen name, cut to [`MAX_REPORTED_NAME`] characters and escaped for a log line.
fn shorten(name: &str) -> String {
    let mut short: String = name
        .chars()
        .take(MAX_REPORTED_NAME)
        .collect::<String>()
        .escape_debug()
        .collect();
    if name.chars().nth(MAX_REPORTED_NAME).is_some() {
        short.push('…');
    }
    short
}

/// An informational [`SessionEvent::Status`] from a command and its info object.
fn status_event(name: &str, info: StatusInfo) -> SessionEvent {
    SessionEvent::Status {
        code: if info.code.is_empty() {
            name.to_string()
        } else {
            info.code
        },
        description: if info.description.is_empty() {
            name.to_string()
        } else {
            format!("{name}: {}", info.description)
        },
    }
}

/// Whether an info object says the request failed: an `error` level, or a failure code some
/// servers send with another level.
fn is_failure(info: &StatusInfo) -> bool {
    info.level == "error"
        || matches!(
            info.code.as_str(),
            "NetStream.Play.StreamNotFound" | "NetStream.Play.Failed" | "NetStream.Failed"
        )
}

/// Decodes an AMF0 body with `rml_amf0` once [`amf0_too_big`] has found it safe to.
fn decode_amf0(data: &[u8]) -> Result<Vec<Amf0Value>, String> {
    if let Some(why) = amf0_too_big(data) {
        return Err(why);
    }
    rml_amf0::deserialize(&mut Cursor::new(data)).map_err(|e| e.to_string())
}

/// Walks an AMF0 body along the path `rml_amf0` 0.3 would take, without recursion, and
/// says why it must not be handed to it: nested deeper than [`MAX_AMF0_DEPTH`] or more than
/// [`MAX_AMF0_VALUES`] values. Where the bytes are malformed the walk stops and says
/// nothing: `rml_amf0` stops at the same place with an error (it also rejects bad UTF-8,
/// which the walk skips, so the walk never sees less than `rml_amf0` would parse).
fn amf0_too_big(data: &[u8]) -> Option<String> {
    enum Frame {
        Object,
        /// A strict array with this many values still to come.
        Array(u32),
    }
    fn read_be(data: &[u8], pos: &mut usize, len: usize) -> Option<u32> {
        let bytes = data.get(*pos..pos.checked_add(len)?)?;
        *pos += len;
        Some(bytes.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)))
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0usize;
    let mut values = 0usize;
    loop {
        // What comes before the next value: nothing, or an object property's name.
        let in_property = match stack.last_mut() {
            None => false,
            Some(Frame::Array(left)) => {
                if *left == 0 {
                    stack.pop();
                    continue;
                }
                *left -= 1;
                false
            }
            Some(Frame::Object) => {
                let label = read_be(data, &mut pos, 2)?;
                if label == 0 {
                    // An empty name must be the object's end marker.
                    if data.get(pos) != Some(&0x09) {
                        return None;
                    }
                    pos += 1;
                    stack.pop();
                    continue;
                }
                // rml_amf0 reads what there is of a truncated name.
                pos = pos.saturating_add(label as usize).min(data.len());
                true
            }
        };
        let marker = data.get(pos).copied();
        pos = pos.saturating_add(1);
        match marker {
            // No value: the end of the body, or of a strict array; an error in a property.
            None | Some(0x09) => {
                if in_property {
                    return None;
                }
                stack.pop()?;
                continue;
            }
            Some(_) => {
                values += 1;
                if values > MAX_AMF0_VALUES {
                    return Some(format!("more than {MAX_AMF0_VALUES} AMF0 values"));
                }
            }
        }
        let frame = match marker {
            Some(0x00) => {
                read_be(data, &mut pos, 4)?;
                read_be(data, &mut pos, 4)?;
                None
            }
            Some(0x01) => {
                read_be(data, &mut pos, 1)?;
                None
            }
            Some(0x02) => {
                let len = read_be(data, &mut pos, 2)?;
                pos = pos.saturating_add(len as usize).min(data.len());
                None
            }
            Some(0x03) => Some(Frame::Object),
            Some(0x05) | Some(0x06) => None,
            Some(0x08) => {
                // The ECMA array's count, then properties as in an object.
                read_be(data, &mut pos, 4)?;
                Some(Frame::Object)
            }
            Some(0x0a) => Some(Frame::Array(read_be(data, &mut pos, 4)?)),
            _ => return None,
        };
        if let Some(frame) = frame {
            if stack.len() >= MAX_AMF0_DEPTH {
                return Some(format!("AMF0 nested deeper than {MAX_AMF0_DEPTH} levels"));
            }
            stack.push(frame);
        }
    }
}

/// The `level` / `code` / `description` of a status or error info object.
#[derive(Debug, Default)]
struct StatusInfo {
    level: String,
    code: String,
    description: String,
}

impl StatusInfo {
    fn describe(&self) -> String {
        match (self.code.is_empty(), self.description.is_empty()) {
            (true, true) => "no details given".to_string(),
            (false, true) => self.code.clone(),
            (true, false) => self.description.clone(),
            (false, false) => format!("{}: {}", self.code, self.description),
        }
    }
}

/// A server's status text as we keep it: at most [`MAX_STATUS_TEXT_BYTES`], control
/// characters escaped (it goes into log lines and failure reasons).
fn status_text(text: &str) -> String {
    // nginx-rtmp pads some strings with NULs.
    let text = text.trim_end_matches('\0');
    let cut = cut_text(text, MAX_STATUS_TEXT_BYTES);
    let mut out = String::with_capacity(cut.len());
    for c in cut.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut.len() < text.len() {
        out.push('…');
    }
    out
}

/// The first info object among `values`.
fn status_info<'a>(values: impl IntoIterator<Item = &'a Amf0Value>) -> StatusInfo {
    let mut info = StatusInfo::default();
    for value in values {
        if let Amf0Value::Object(map) = value {
            let text = |key: &str| match map.get(key) {
                Some(Amf0Value::Utf8String(s)) => status_text(s),
                _ => String::new(),
            };
            info.level = text("level");
            info.code = text("code");
            info.description = text("description");
            break;
        }
    }
    info
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
