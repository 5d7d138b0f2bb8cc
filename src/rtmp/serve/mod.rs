//! The RTMP *server* session, sans-IO: one client connection that plays or publishes
//! (ffmpeg, VLC, OBS, nginx-rtmp's `pull`, another pullcast). The twin of the play session
//! in [`super::session`], with the same chunk decoder, AMF0 checks and bounds.
//!
//! Bytes from the socket go into [`ServeSession::handle_input`]; bytes to send come out of
//! [`ServeSession::take_outbound`]; what the client asks for comes out of
//! [`ServeSession::poll_event`], and the caller answers a play or a publish with
//! `accept_*`/`refuse_*`. Media sent to a player is written by [`wire`] (no shared state),
//! so it may be produced elsewhere and queued in order with the session's bytes.
//!
//! What it answers, and how (the calls ffmpeg, librtmp/OBS, nginx-rtmp and Wowza make):
//! - after the handshake: Window Acknowledgement Size, Set Peer Bandwidth and Set Chunk
//!   Size 4096 (nginx-rtmp's opening);
//! - `connect` → `_result` `NetConnection.Connect.Success` (fmsVer, capabilities 31, the
//!   client's objectEncoding) + [`ServeEvent::Connected`] with the app and tcUrl;
//! - `createStream` → `_result` with a new stream id, from 1 (nginx-rtmp's relay plays on
//!   id 1 whatever it is told); at most [`MAX_STREAMS`] per connection;
//! - `play` → [`ServeEvent::Play`]; `publish` → [`ServeEvent::Publish`];
//! - `releaseStream`, `FCPublish` (+ `onFCPublish`), `FCUnpublish` (+ `onFCUnpublish`),
//!   `FCSubscribe` (+ `onFCSubscribe`), `getStreamLength` (0), `_checkbw` → `_result`;
//! - `deleteStream`, `closeStream`, `FCUnpublish` → the stream's play or publish ends
//!   ([`ServeEvent::PlayEnded`], [`ServeEvent::PublishEnded`]);
//! - `receiveAudio`, `receiveVideo`, `pause`, `seek`, `_result`/`_error` from the client,
//!   `onBWDone` → nothing;
//! - any other command: `_error` `NetConnection.Call.Failed` when it has a transaction id
//!   (nobody waits), reported once ([`ServeEvent::Ignored`]);
//! - on a publishing stream: audio, video and `@setDataFrame`/`onMetaData` become events;
//!   a media message on a stream that does not publish is dropped (reported once);
//! - pings answered; the client's chunk size followed; an Acknowledgement with the total
//!   bytes received each time the client's window fills.
//!
//! A [`SessionError`] means the connection cannot go on (broken handshake or chunk
//! stream). Anything wrong inside one message is reported and skipped. Nothing here panics
//! on input.

mod commands;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{RtmpMessage, UserControlEventType};

use super::chunk::{ChunkDecoder, RawMessage};
use super::incoming::{self, Incoming};
use super::session::{MetaValue, SessionError};
use crate::report_once::ReportOnce;

/// Most message streams one connection may create.
pub const MAX_STREAMS: usize = 8;
/// Distinct things reported as ignored before the session goes quiet.
const MAX_REPORTED: usize = 64;
/// Longest name quoted in a report or carried in an event, in characters.
pub const MAX_NAME_CHARS: usize = 1024;

/// What the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum ServeEvent {
    /// `connect` was answered.
    Connected { app: String, tc_url: String },
    /// `play` of `name` (as sent, query included) on message stream `stream_id`: answer
    /// with [`ServeSession::accept_play`] or [`ServeSession::refuse_play`].
    Play { stream_id: u32, name: String },
    /// `publish` of `name` (as sent, query included), `kind` "live", "record" or "append":
    /// answer with [`ServeSession::accept_publish`] or [`ServeSession::refuse_publish`].
    Publish {
        stream_id: u32,
        name: String,
        kind: String,
    },
    /// The play on `stream_id` ended (`deleteStream`, `closeStream`).
    PlayEnded { stream_id: u32 },
    /// The publish on `stream_id` ended (`FCUnpublish`, `deleteStream`, `closeStream`).
    PublishEnded { stream_id: u32 },
    /// `onMetaData` of a publisher, sorted by name, within the metadata bounds.
    Metadata(Vec<(String, MetaValue)>),
    /// An FLV video tag body from a publisher.
    Video { timestamp: u32, data: Bytes },
    /// An FLV audio tag body from a publisher.
    Audio { timestamp: u32, data: Bytes },
    /// Something not acted on; reported once per kind.
    Ignored { what: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StreamRole {
    Created,
    Playing,
    Publishing,
}

/// One client connection (see the module documentation).
pub struct ServeSession {
    handshake: Option<Handshake>,
    decoder: ChunkDecoder,
    outbound: Vec<u8>,
    events: VecDeque<ServeEvent>,
    bytes_received: u64,
    acknowledged: u64,
    /// The client's Window Acknowledgement Size (0: none asked).
    ack_window: u32,
    connected: bool,
    next_stream_id: u32,
    streams: BTreeMap<u32, StreamRole>,
    reported: ReportOnce,
}

impl fmt::Debug for ServeSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeSession")
            .field("connected", &self.connected)
            .field("streams", &self.streams)
            .field("bytes_received", &self.bytes_received)
            .finish()
    }
}

impl Default for ServeSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ServeSession {
    /// A session waiting for the client's C0+C1.
    pub fn new() -> Self {
        Self {
            handshake: Some(Handshake::new(PeerType::Server)),
            decoder: ChunkDecoder::new(),
            outbound: Vec::new(),
            events: VecDeque::new(),
            bytes_received: 0,
            acknowledged: 0,
            ack_window: 0,
            connected: false,
            next_stream_id: 1,
            streams: BTreeMap::new(),
            reported: ReportOnce::new(MAX_REPORTED),
        }
    }

    /// Whether the handshake is over.
    pub fn handshake_done(&self) -> bool {
        self.handshake.is_none()
    }

    /// Total bytes received.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes to write to the socket (empties the queue).
    pub fn take_outbound(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbound)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServeEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if self.bytes_received == 0 {
            if let Some(&version) = bytes.first().filter(|&&b| b != 3) {
                return Err(SessionError::Handshake(format!(
                    "the client's first byte is 0x{version:02x}, not the RTMP version 0x03 \
                     (encrypted RTMPE and RTMP over HTTP are not supported)"
                )));
            }
        }
        self.bytes_received += bytes.len() as u64;
        if let Some(handshake) = self.handshake.as_mut() {
            let result = handshake
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
                    self.handshake = None;
                    wire::window_and_bandwidth(&mut self.outbound);
                    wire::set_chunk_size(&mut self.outbound);
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
        self.acknowledge();
        Ok(())
    }

    /// Plays `stream_id`: the start sequence; media may follow (written with [`wire`]).
    /// `name` is what the status texts say.
    pub fn accept_play(&mut self, stream_id: u32, name: &str) {
        if let Some(role) = self.streams.get_mut(&stream_id) {
            *role = StreamRole::Playing;
        }
        wire::play_started(&mut self.outbound, stream_id, &short(name));
    }

    /// Refuses the play on `stream_id`: `onStatus` level `error` with `code` (e.g.
    /// `NetStream.Play.StreamNotFound`, `NetStream.Play.Failed`) and `description`.
    pub fn refuse_play(&mut self, stream_id: u32, code: &str, description: &str) {
        if let Some(role) = self.streams.get_mut(&stream_id) {
            *role = StreamRole::Created;
        }
        wire::on_status(&mut self.outbound, stream_id, "error", code, description);
    }

    /// Accepts the publish on `stream_id`: Stream Begin and `NetStream.Publish.Start`;
    /// its media now comes out as events.
    pub fn accept_publish(&mut self, stream_id: u32, name: &str) {
        if let Some(role) = self.streams.get_mut(&stream_id) {
            *role = StreamRole::Publishing;
        }
        wire::stream_begin(&mut self.outbound, stream_id);
        wire::on_status(
            &mut self.outbound,
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{} is now published.", short(name)),
        );
    }

    /// Refuses the publish on `stream_id` (`NetStream.Publish.BadName` for a name in use,
    /// `NetStream.Publish.Unauthorized`, …).
    pub fn refuse_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        if let Some(role) = self.streams.get_mut(&stream_id) {
            *role = StreamRole::Created;
        }
        wire::on_status(&mut self.outbound, stream_id, "error", code, description);
    }

    /// Whether `stream_id` is being played.
    pub fn is_playing(&self, stream_id: u32) -> bool {
        self.streams.get(&stream_id) == Some(&StreamRole::Playing)
    }

    fn handle_message(&mut self, message: RawMessage) -> Result<(), SessionError> {
        let sorted = incoming::sort(message).map_err(|e| SessionError::Chunk(e.0))?;
        for item in sorted {
            match item {
                Incoming::Media(message) => self.handle_media(message),
                Incoming::Parts(parts) => {
                    for part in parts {
                        self.handle_message(part)?;
                    }
                }
                Incoming::Data { stream_id, values } => self.handle_data(stream_id, values),
                Incoming::Command { stream_id, values } => {
                    self.handle_command_values(stream_id, values)
                }
                Incoming::Control(message) => self.handle_control(message)?,
                Incoming::Report { key, what } => self.report_keyed(&key, &what),
            }
        }
        Ok(())
    }

    fn handle_media(&mut self, message: RawMessage) {
        if self.streams.get(&message.stream_id) != Some(&StreamRole::Publishing) {
            self.report_once("media on a stream that does not publish");
        } else if message.type_id == 8 {
            self.events.push_back(ServeEvent::Audio {
                timestamp: message.timestamp,
                data: message.payload,
            });
        } else {
            self.events.push_back(ServeEvent::Video {
                timestamp: message.timestamp,
                data: message.payload,
            });
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
            RtmpMessage::UserControl {
                event_type: UserControlEventType::PingRequest,
                timestamp,
                ..
            } => {
                wire::ping_response(&mut self.outbound, timestamp.map_or(0, |t| t.value));
                Ok(())
            }
            RtmpMessage::UserControl { .. }
            | RtmpMessage::Acknowledgement { .. }
            | RtmpMessage::SetPeerBandwidth { .. } => Ok(()),
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

    /// An Acknowledgement with the total bytes received each time the client's window
    /// fills.
    fn acknowledge(&mut self) {
        if self.ack_window == 0 || self.handshake.is_some() {
            return;
        }
        if self.bytes_received - self.acknowledged >= u64::from(self.ack_window) {
            self.acknowledged = self.bytes_received;
            wire::acknowledgement(&mut self.outbound, self.bytes_received);
        }
    }

    fn report_once(&mut self, what: &str) {
        self.report_keyed(what, what);
    }

    fn report_keyed(&mut self, key: &str, what: &str) {
        if let Some(what) = self.reported.report(key, what) {
            self.events.push_back(ServeEvent::Ignored { what });
        }
    }
}

/// `name` cut at [`MAX_NAME_CHARS`] characters.
pub(crate) fn short(name: &str) -> String {
    let mut out: String = name.chars().take(MAX_NAME_CHARS).collect();
    if name.chars().nth(MAX_NAME_CHARS).is_some() {
        out.push('…');
    }
    out
}
