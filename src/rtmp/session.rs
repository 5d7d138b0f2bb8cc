//! The RTMP play session: one client connection that pulls one stream, sans-IO.
//!
//! Bytes from the socket go into [`PlaySession::handle_input`]; bytes to send come out of
//! [`PlaySession::take_outbound`]; what happened comes out of [`PlaySession::poll_event`].
//! The call flow is the one ffmpeg and Flash players use against nginx-rtmp, Wowza, SRS and
//! FMS: handshake → `SetChunkSize` → `connect` → (`_result`) → `FCSubscribe` +
//! `createStream` → (`_result` with the stream id) → `play` + `SetBufferLength` →
//! `onStatus NetStream.Play.Start` → media. Along the way it answers pings, follows the
//! peer's chunk size, acknowledges the *total* bytes received once per window, answers
//! `SetPeerBandwidth` with our window size, and splits aggregate messages.
//!
//! A [`SessionError`] means the connection cannot go on (broken handshake or chunk stream);
//! anything wrong inside a single message is reported as an event and skipped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use super::aggregate::{split_aggregate, AGGREGATE_TYPE_ID};
use super::chunk::{ChunkDecoder, RawMessage};
use super::url::RtmpUrl;

/// The window acknowledgement size we announce to the server.
pub const OUR_WINDOW_ACK_SIZE: u32 = 2_500_000;
/// The Flash version string sent in `connect` (what ffmpeg sends on Linux).
const FLASH_VER: &str = "LNX 9,0,124,2";

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
    fn from_amf0(value: Amf0Value) -> Self {
        match value {
            Amf0Value::Number(n) => MetaValue::Number(n),
            Amf0Value::Boolean(b) => MetaValue::Bool(b),
            // nginx-rtmp pads some strings with NULs.
            Amf0Value::Utf8String(s) => MetaValue::String(s.trim_end_matches('\0').to_string()),
            Amf0Value::Object(map) => MetaValue::Object(sorted_properties(map)),
            Amf0Value::StrictArray(items) => {
                MetaValue::Array(items.into_iter().map(MetaValue::from_amf0).collect())
            }
            Amf0Value::Null | Amf0Value::Undefined => MetaValue::Null,
        }
    }
}

fn sorted_properties(map: HashMap<String, Amf0Value>) -> Vec<(String, MetaValue)> {
    let mut props: Vec<(String, MetaValue)> = map
        .into_iter()
        .map(|(k, v)| (k, MetaValue::from_amf0(v)))
        .collect();
    props.sort_by(|a, b| a.0.cmp(&b.0));
    props
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
    /// `onMetaData` properties.
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
    stream_id: Option<u32>,
    reported: HashSet<String>,
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
            stream_id: None,
            reported: HashSet::new(),
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
                    Err(parts) => {
                        self.report_once("truncated aggregate message");
                        parts
                    }
                };
                for part in parts {
                    if part.type_id != AGGREGATE_TYPE_ID {
                        self.handle_message(part)?;
                    }
                }
                Ok(())
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
                        self.report_once(&format!(
                            "undecodable RTMP message of type {} ({e})",
                            message.type_id
                        ));
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
            RtmpMessage::Amf0Command {
                command_name,
                transaction_id,
                additional_arguments,
                ..
            } => self.handle_command(&command_name, transaction_id, additional_arguments),
            RtmpMessage::Amf0Data { values } => {
                self.handle_data(values);
                Ok(())
            }
            RtmpMessage::AudioData { .. } | RtmpMessage::VideoData { .. } => Ok(()),
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

    fn handle_command(
        &mut self,
        name: &str,
        transaction: f64,
        arguments: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        let info = status_info(&arguments);
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
            "_result" | "_error" | "onFCSubscribe" | "onFCUnsubscribe" | "onBWDone" => {
                // Answers to FCSubscribe and friends are informational.
                self.events.push_back(SessionEvent::Status {
                    code: if info.code.is_empty() {
                        name.to_string()
                    } else {
                        info.code.clone()
                    },
                    description: info.description,
                });
                Ok(())
            }
            "onStatus" => {
                self.handle_status(info);
                Ok(())
            }
            "close" => {
                self.events.push_back(SessionEvent::Ended {
                    reason: "the server closed the connection (close)".to_string(),
                });
                Ok(())
            }
            other => {
                self.report_once(&format!("command '{other}'"));
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
            "NetStream.Play.Failed"
            | "NetStream.Failed"
            | "NetConnection.Connect.Rejected"
            | "NetConnection.Connect.Failed"
            | "NetConnection.Connect.Closed" => SessionEvent::Failed {
                reason: format!("the server reported {}", info.describe()),
            },
            _ if info.level == "error" => SessionEvent::Failed {
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
                let props = match values.next() {
                    Some(Amf0Value::Object(map)) => sorted_properties(map),
                    _ => Vec::new(),
                };
                self.events.push_back(SessionEvent::Metadata(props));
            }
            Some(Amf0Value::Utf8String(s)) if s == "|RtmpSampleAccess" => {}
            Some(Amf0Value::Utf8String(s)) => self.report_once(&format!("data message '{s}'")),
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
        // Akamai/Limelight-style CDNs and some Wowza setups want FCSubscribe before play;
        // servers that do not know it answer _error or nothing, which is harmless.
        let stream = self.config.url.stream.clone();
        let tx = self.next_transaction();
        self.send(
            command("FCSubscribe", tx, Amf0Value::Null, vec![string(&stream)]),
            0,
        )?;
        self.create_stream_tx = self.next_transaction();
        let tx = self.create_stream_tx;
        self.send(command("createStream", tx, Amf0Value::Null, vec![]), 0)
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
        let tx = self.next_transaction();
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
        if self.reported.insert(what.to_string()) {
            self.events.push_back(SessionEvent::Ignored {
                what: what.to_string(),
            });
        }
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

fn status_info(arguments: &[Amf0Value]) -> StatusInfo {
    let mut info = StatusInfo::default();
    for value in arguments {
        if let Amf0Value::Object(map) = value {
            let text = |key: &str| match map.get(key) {
                Some(Amf0Value::Utf8String(s)) => s.clone(),
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
