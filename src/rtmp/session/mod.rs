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

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use super::chunk::{ChunkDecoder, RawMessage};
use super::incoming::{self, Incoming};
use super::url::RtmpUrl;
use crate::report_once::ReportOnce;

mod commands;
pub(crate) mod metadata;

pub(crate) use commands::shorten;
pub use commands::MAX_STATUS_TEXT_BYTES;
use commands::{command, string};
pub use metadata::{MetaValue, MAX_METADATA_BYTES, MAX_METADATA_STRING_BYTES};

/// The window acknowledgement size we announce to the server.
pub const OUR_WINDOW_ACK_SIZE: u32 = 2_500_000;
/// The Flash version string sent in `connect` (what ffmpeg sends on Linux).
const FLASH_VER: &str = "LNX 9,0,124,2";
/// Distinct things reported as [`SessionEvent::Ignored`]; past this, one last report and then
/// silence, so a server inventing command names grows neither memory nor the log.
const MAX_REPORTED: usize = 64;
/// Longest command name quoted in a report.
const MAX_REPORTED_NAME: usize = 64;

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
        let sorted = incoming::sort(message).map_err(|e| SessionError::Chunk(e.0))?;
        for item in sorted {
            match item {
                Incoming::Media(message) => {
                    let (timestamp, data) = (message.timestamp, message.payload);
                    self.events.push_back(if message.type_id == 8 {
                        SessionEvent::Audio { timestamp, data }
                    } else {
                        SessionEvent::Video { timestamp, data }
                    });
                }
                Incoming::Parts(parts) => {
                    for part in parts {
                        self.handle_message(part)?;
                    }
                }
                Incoming::Data { values, .. } => self.handle_data(values),
                Incoming::Command { stream_id, values } => {
                    self.handle_command_values(stream_id, values)?
                }
                Incoming::Control(message) => self.handle_control(message)?,
                Incoming::Report { key, what } => self.report_keyed(&key, &what),
            }
        }
        Ok(())
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
        if let Some(what) = self.reported.report(key, what) {
            self.events.push_back(SessionEvent::Ignored { what });
        }
    }
}

#[cfg(test)]
mod tests;
