//! Every actor message, grouped by the actor that receives it.
//!
//! Messages are structs with named, documented fields. Children talk to their parent through
//! `Recipient<Message>` (never a concrete `Addr`), so tests can stand in for any side.
//! Types shared by several messages (snapshots, requests, errors) are at the end.

use std::time::SystemTime;

use actix::prelude::*;
use bytes::Bytes;
use pullcast::media::{CodecSet, MediaFrame, Track};
use pullcast::normalize::NormalizedEvent;
use pullcast::rtmp::session::MetaValue;
use pullcast::rtmp::RtmpUrl;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------

/// Start pulling a stream (REST `pull`). Answered once the capture is registered.
#[derive(Message, Debug)]
#[rtype(result = "Result<CaptureSnapshot, PullError>")]
pub struct Pull {
    pub request: PullRequest,
}

/// List every capture (REST `find_all`).
#[derive(Message, Debug)]
#[rtype(result = "Vec<CaptureSnapshot>")]
pub struct FindAll;

/// Stop and forget the capture of `uri` (REST `terminate`).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), TerminateError>")]
pub struct Terminate {
    /// The uri exactly as given to `pull`.
    pub uri: String,
}

/// A supervisor stopped on its own. Carries its id so a late notice never removes a newer
/// capture of the same uri.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct CaptureEnded {
    pub id: Uuid,
}

// ---------------------------------------------------------------------------------------
// StreamSupervisor
// ---------------------------------------------------------------------------------------

/// What the RTMP reader reports about its connection.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub enum ReaderEvent {
    /// TCP connected to `peer`.
    Connected { peer: String },
    /// RTMP handshake done, `connect` sent.
    HandshakeDone,
    /// The source answered `play` with `NetStream.Play.Start`.
    PlayStarted,
    /// The source's `onMetaData`.
    Metadata(Vec<(String, MetaValue)>),
    /// An informational status (e.g. the publisher went away); no state change.
    Status { message: String },
    /// Bytes received on the socket so far.
    Progress { bytes_received: u64 },
    /// The pull failed or ended; the reader has stopped.
    Failed { reason: String },
}

/// Media from the normalizer.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SourceMedia {
    pub event: NormalizedEvent,
}

/// Add a subscriber (viewer, recorder). It gets the codec configuration and the frames since
/// the last keyframe at once, then live frames.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    /// Chosen by the subscriber; used to unsubscribe.
    pub id: Uuid,
    /// Where media goes. Its mailbox bounds the queue.
    pub recipient: Recipient<SubscriberMedia>,
}

/// Remove a subscriber.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub id: Uuid,
}

/// Ask for the capture's current state.
#[derive(Message, Debug)]
#[rtype(result = "CaptureSnapshot")]
pub struct GetSnapshot;

/// Stop the capture and its children.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopCapture {
    pub reason: String,
}

// ---------------------------------------------------------------------------------------
// Normalizer
// ---------------------------------------------------------------------------------------

/// One FLV tag body from the source.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FlvTag {
    pub track: Track,
    /// RTMP timestamp (ms, 32-bit).
    pub timestamp: u32,
    pub body: Bytes,
}

// ---------------------------------------------------------------------------------------
// RtmpReader (and any stand-in source)
// ---------------------------------------------------------------------------------------

/// Close the connection and stop.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopSource;

// ---------------------------------------------------------------------------------------
// Subscribers
// ---------------------------------------------------------------------------------------

/// What a subscriber receives.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum SubscriberMedia {
    /// The codec configuration in force from now on.
    Codecs(CodecSet),
    /// One frame.
    Frame(MediaFrame),
    /// The capture is gone.
    Stopped { reason: String },
}

// ---------------------------------------------------------------------------------------
// Shared types
// ---------------------------------------------------------------------------------------

/// A validated pull request.
#[derive(Debug, Clone, PartialEq)]
pub struct PullRequest {
    /// The uri as the caller wrote it (the capture's key).
    pub uri: String,
    /// The parsed uri.
    pub url: RtmpUrl,
    /// The name viewers use; the uri when not given.
    pub local_stream_name: String,
    pub record: bool,
    pub has_audio: bool,
    pub has_video: bool,
}

/// Why a pull was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    /// Same uri or same local name already captured (409).
    Conflict(String),
    /// The pull could not be started (500), e.g. the capture limit.
    CannotStart(String),
}

/// Why a terminate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminateError {
    NotFound(String),
}

/// The state of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureStatus {
    /// Connecting to the source, or connected and waiting for media.
    Pending,
    /// Media is flowing.
    ProcessedRemote,
    /// The pull failed; see the reason.
    Failed,
}

/// H.264 details for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub codec: String,
    pub profile: String,
    pub level: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
}

/// AAC details for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub codec: String,
    pub profile: String,
    pub sample_rate: u32,
    pub channels: u8,
}

/// Everything `find_all` says about one capture.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSnapshot {
    pub id: Uuid,
    pub uri: String,
    pub local_stream_name: String,
    pub record: bool,
    pub has_audio: bool,
    pub has_video: bool,
    pub status: CaptureStatus,
    pub reason: Option<String>,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    pub bytes_received: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bitrate_kbps: f64,
    pub measured_fps: f64,
    pub started_at: SystemTime,
    pub subscribers: usize,
    pub metadata: Vec<(String, MetaValue)>,
}
