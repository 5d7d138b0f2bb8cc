//! Every actor message, grouped by the actor that receives it.
//!
//! Messages are structs with named, documented fields. Children talk to their parent through
//! `Recipient<Message>` (never a concrete `Addr`), so tests can stand in for any side.
//! Types shared by several messages (snapshots, requests, errors) are at the end.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use actix::prelude::*;
use bytes::Bytes;
/// The capture's status types and delivery kinds live with its state machine.
pub use pullcast::capture::{CaptureStatus, Delivery, ResumeInfo, RetryInfo, StatusChange};
use pullcast::codec::aac::AudioSpecificConfig;
use pullcast::media::{CodecSet, MediaFrame, Track};
use pullcast::normalize::NormalizedEvent;
use pullcast::rtmp::session::MetaValue;
use pullcast::rtmp::RtmpUrl;
use pullcast::rtp::RecentPayloads;
use uuid::Uuid;

use crate::stream::budget::Charge;
use crate::telemetry::{LatencySummary, SharedTelemetry};
use crate::webrtc::media_port::MediaPort;

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

/// Find the capture a viewer asks for by name — its local stream name or its uri. A name
/// that is an `rtmp://` URL with no capture yet starts one on demand, exactly as `pull`
/// would (SPEC §3), when `may_start_pull` says the caller may; such a capture stops
/// `capture.on_demand_linger_ms` after its last WebRTC viewer leaves. The access checks
/// are the caller's (`http::play`): the Registry only obeys these two flags.
#[derive(Message, Debug)]
#[rtype(result = "Result<CaptureHandle, WatchError>")]
pub struct Watch {
    pub name: String,
    /// Whether an `rtmp://` name nobody captures yet may be pulled on demand (the caller
    /// has the `pull` permission for it); if not, such a name is `NotFound`.
    pub may_start_pull: bool,
    /// Whether that pull may go to a private address (`pull_private`).
    pub may_pull_private: bool,
}

/// Take a stream an RTMP encoder publishes: a new capture named `request.local_stream_name`
/// fed by the publisher's connection (`request.published`), or — when a published capture of
/// that name waits for its publisher to return — that capture again. Any other capture of
/// the name (a pull, or a publish in progress) is a `Conflict`. The access check
/// (`publish`) is the caller's.
#[derive(Message, Debug)]
#[rtype(result = "Result<Publishing, PullError>")]
pub struct Publish {
    pub request: PullRequest,
}

/// Where a publisher attaches.
#[derive(Clone)]
pub struct Publishing {
    pub id: Uuid,
    pub slot: crate::stream::published::PublishSlot,
    /// The capture existed and waited for its publisher.
    pub resumed: bool,
}

impl std::fmt::Debug for Publishing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publishing")
            .field("id", &self.id)
            .field("resumed", &self.resumed)
            .finish()
    }
}

/// Stop every capture (SIGINT/SIGTERM): viewers are told `STOPPED`, recordings closed.
/// Answered when all captures have stopped.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub reason: String,
}

/// Fault injection for tests: the receiver panics inside its handler, so a test can prove
/// that a panic ends no more than it must (`crate::panic_guard`). Only code that holds an
/// actor's address can send it; nothing on the network can.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct InjectPanic {
    pub target: PanicTarget,
}

/// Which actor [`InjectPanic`] makes panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PanicTarget {
    /// The Registry itself.
    Registry,
    /// The `StreamSupervisor` of the capture with this local stream name or uri (the
    /// Registry forwards it). A `ViewerPeer` takes `InjectPanic` at its own address.
    Capture { name: String },
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
}

/// Media from the normalizer.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SourceMedia {
    /// Which connection of the capture this came from (the supervisor ignores media of
    /// connections it has already given up on).
    pub generation: u64,
    pub event: NormalizedEvent,
    /// Held on the capture's ingest budget until the supervisor has handled the event.
    pub charge: Charge,
}

/// The reader's `MediaEnd`, passed on by the normalizer after the frames before it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SourceMediaEnded {
    /// Which connection of the capture it is about.
    pub generation: u64,
    pub end: MediaEnd,
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
    /// Which form of the media it takes.
    pub delivery: Delivery,
}

/// Add a WebRTC viewer whose media plane lives on the media port: its frames and replays go
/// to the port's worker that owns it (one message per frame for all that worker's viewers of
/// the capture), its codecs to that worker too; only the end (`SubscriberMedia::Stopped`)
/// goes to `control`. Delivered as `Delivery::WebRtc`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeOnPort {
    /// Chosen by the viewer; used to unsubscribe.
    pub id: Uuid,
    /// Where the capture's end goes (the `ViewerPeer`).
    pub control: Recipient<SubscriberMedia>,
    /// The port and the viewer's key on it.
    pub port: MediaPort,
    pub key: u64,
}

/// Remove a subscriber.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub id: Uuid,
}

/// A subscriber's decoder needs a keyframe (a browser's PLI/FIR). The capture answers that
/// subscriber only: a fresh keyframe from the video transcoder when WebRTC video is
/// transcoded, else the cached frames from the latest keyframe again. The subscription (and
/// the capture's transcoders) stay as they are.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RequestKeyframe {
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
    /// When the reader parsed the message (`telemetry::now_us`).
    pub received_us: u64,
    /// Held on the capture's ingest budget until the normalizer has handled the tag.
    pub charge: Charge,
}

/// The media of the connection stopped. The reader says it on the tags' path, so the
/// normalizer passes it on (as `SourceMediaEnded`) after every frame before it: the
/// supervisor neither takes a frame still in flight for the source's return nor drops the
/// last frames of a connection that closed.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub enum MediaEnd {
    /// The server said the publisher left (StreamEOF, UnpublishNotify, onFCUnpublish); the
    /// connection stays open for its return.
    PublisherLeft { reason: String },
    /// The pull failed or ended; the reader has stopped.
    ConnectionEnded { reason: String },
    /// A bug panicked in the reader or the normalizer: the capture ends `FAILED` (pulling
    /// again would likely hit the same bug with the same source).
    Crashed { reason: String },
}

/// Opus frames from the capture's AudioTranscoder, for its WebRTC subscribers.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TranscodedAudio {
    pub frames: Vec<MediaFrame>,
}

/// B-frame-free video from the capture's VideoTranscoder, for its WebRTC subscribers.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TranscodedVideo {
    pub frames: Vec<MediaFrame>,
}

/// What the capture's Recorder is doing.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct RecordingStatus {
    /// The file being written (name in the recordings folder).
    pub file: Option<String>,
    /// Bytes written to it so far.
    pub bytes: u64,
    /// Why recording stopped (disk full, folder not writable, ...).
    pub error: Option<String>,
}

/// Close the recording now (last fragment, rename, hook) and stop. Answered when done.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FinishRecording;

// ---------------------------------------------------------------------------------------
// AudioTranscoder
// ---------------------------------------------------------------------------------------

/// The AAC configuration to decode with (first one, or a change).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TranscoderConfig {
    pub config: Arc<AudioSpecificConfig>,
}

/// One AAC frame to transcode.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TranscodeAudio {
    pub frame: MediaFrame,
    /// Held on the transcoder's queue budget until it has handled the frame.
    pub charge: Charge,
}

// ---------------------------------------------------------------------------------------
// VideoTranscoderActor
// ---------------------------------------------------------------------------------------

/// One live original access unit (with B-frames) to transcode, in decode order.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TranscodeVideo {
    pub frame: MediaFrame,
    /// Held on the transcoder's queue budget until it has handled the frame.
    pub charge: Charge,
}

/// The keyframe cache, fed once at start, in decode order: all is decoded, only the latest
/// picture is encoded (as a keyframe), so the first viewer sees the current picture at once.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TranscodeBacklog {
    pub frames: Vec<MediaFrame>,
}

/// Make the next transcoded frame a keyframe (a viewer asked for one).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ForceKeyframe;

/// The source restarted or its video configuration changed: drop the pictures in flight.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ResetVideoTranscode;

// ---------------------------------------------------------------------------------------
// RtmpReader (and any stand-in source)
// ---------------------------------------------------------------------------------------

/// Close the connection and stop.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopSource;

// ---------------------------------------------------------------------------------------
// Signalling sessions (WebSocket, WHEP): what a ViewerPeer reports
// ---------------------------------------------------------------------------------------

/// A viewer's progress, reported to whoever started it.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum ViewerEvent {
    /// ICE and DTLS are up.
    Connected { viewer: Uuid },
    /// The first frame went out to the browser.
    Playing { viewer: Uuid },
    /// The viewer ended normally (asked to stop, capture terminated).
    Stopped { viewer: Uuid, reason: String },
    /// The viewer failed (ICE/DTLS failure or timeout, capture failed).
    Failed { viewer: Uuid, reason: String },
}

// ---------------------------------------------------------------------------------------
// ViewerPeer (actors/src/webrtc/viewer_peer.rs)
// ---------------------------------------------------------------------------------------

/// End a WebRTC viewer (WHEP `DELETE`, a WebSocket stop, its socket closed). The viewer
/// unsubscribes, closes its connection and reports `ViewerEvent::Stopped` with `reason`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StopViewer {
    pub reason: String,
}

// ---------------------------------------------------------------------------------------
// Subscribers
// ---------------------------------------------------------------------------------------

/// What a subscriber receives.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum SubscriberMedia {
    /// The codec configuration in force from now on. For `Delivery::WebRtc` the audio entry
    /// still describes the source's AAC; its frames arrive as Opus (48 kHz, stereo).
    Codecs(CodecSet),
    /// One frame: H.264 access unit (Annex-B, SPS/PPS before IDRs), or audio — AAC for
    /// `Delivery::Original`, one 20 ms Opus packet for `Delivery::WebRtc` (`pts` in ms on
    /// the same timeline as the video).
    /// The charge is held on this subscriber's queue budget until it has handled the frame.
    Frame(MediaFrame, Charge),
    /// The keyframe cache — the latest keyframe and the frames after it, in order — sent to
    /// one subscriber, as one message, when it subscribes or asks for a keyframe. Older than
    /// the live frames that follow, on purpose: a WebRTC viewer stamps them as a burst just
    /// before the newest, so the browser decodes them at once and plays from the live edge.
    Replay(Vec<MediaFrame>, Charge),
    /// The capture is gone; `failed` when it gave up (viewers report `FAILED`), not when it
    /// was terminated.
    Stopped { reason: String, failed: bool },
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
    /// Started by a viewer asking for an rtmp:// name (SPEC §3), not by REST: it stops by
    /// itself after its last viewer leaves.
    pub on_demand: bool,
    /// Fed by an RTMP publisher (no pull): its source is the publishing connection.
    pub published: bool,
    /// How long a published capture waits for its publisher to return (ms).
    pub publish_grace_ms: u64,
    /// The caller's `pull_private` permission: the source may be at a private or reserved
    /// address (loopback, RFC 1918, link-local, ...; see `pullcast::net::pull_guard`). Set
    /// from the permissions of whoever asked for the pull (REST caller, or the viewer who
    /// played an rtmp:// name); `pull.deny` refuses a target even so.
    pub may_pull_private: bool,
}

/// Why a pull was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    /// Same uri or same local name already captured (409).
    Conflict(String),
    /// The pull could not be started (500), e.g. the capture limit.
    CannotStart(String),
}

/// How a viewer reaches the capture it watches.
#[derive(Clone)]
pub struct CaptureHandle {
    pub id: Uuid,
    pub uri: String,
    pub local_stream_name: String,
    pub subscribe: Recipient<Subscribe>,
    pub subscribe_on_port: Recipient<SubscribeOnPort>,
    pub unsubscribe: Recipient<Unsubscribe>,
    pub keyframe: Recipient<RequestKeyframe>,
    /// Where viewers record frame latency and first-frame times.
    pub telemetry: SharedTelemetry,
    /// Why the capture ended, once it has: told to a viewer that comes too late.
    pub end: CaptureEnd,
    /// Its latest video frames' RTP payloads: each frame is packetized once for all viewers.
    pub payloads: SharedPayloads,
}

/// A capture's latest video frames' RTP payloads, shared by its WebRTC viewers (which run on
/// several threads): the first viewer to send a frame packetizes it, the others reuse it.
#[derive(Debug, Clone, Default)]
pub struct SharedPayloads(Arc<Mutex<RecentPayloads>>);

impl SharedPayloads {
    /// `access_unit`'s H.264 payloads (see [`RecentPayloads::h264`]).
    pub fn h264(&self, access_unit: &Bytes) -> Arc<[Bytes]> {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        recent.h264(access_unit)
    }
}

/// Why a capture ended, readable after its actors are gone: a viewer that finishes
/// connecting after the end is told the capture's own reason ("connection refused", "the
/// source did not come back within …") rather than a guess. Set once.
#[derive(Debug, Clone, Default)]
pub struct CaptureEnd(Arc<OnceLock<String>>);

impl CaptureEnd {
    /// Records the reason; a second call keeps the first.
    pub fn record(&self, reason: &str) {
        let _ = self.0.set(reason.to_string());
    }

    /// The reason, once the capture has ended.
    pub fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

impl CaptureHandle {
    /// Whether the capture is gone (its supervisor stopped): a subscription sent now would
    /// reach nobody, and no `Stopped` would come.
    pub fn is_gone(&self) -> bool {
        !self.subscribe.connected()
    }
}

impl std::fmt::Debug for CaptureHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureHandle")
            .field("id", &self.id)
            .field("uri", &self.uri)
            .field("local_stream_name", &self.local_stream_name)
            .finish()
    }
}

/// Why a viewer cannot watch a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchError {
    /// No capture has that name, and it is not an rtmp:// URL ("Stream not found").
    NotFound(String),
    /// An on-demand capture could not be started (limit reached, bad URL).
    CannotStart(String),
}

/// Why a terminate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminateError {
    NotFound(String),
    /// The registry hit a bug answering (500); it keeps serving.
    Internal(String),
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
    /// Video keyframes received (a viewer can start at once after the first).
    pub video_keyframes: u64,
    pub audio_frames: u64,
    pub bitrate_kbps: f64,
    pub measured_fps: f64,
    pub started_at: SystemTime,
    pub subscribers: usize,
    pub on_demand: bool,
    /// The recording, when `record` was asked.
    pub recording: Option<RecordingStatus>,
    /// The last status transitions, oldest first.
    pub history: Vec<StatusChange>,
    /// Times the source came back after a drop.
    pub reconnects: u64,
    /// Whether the video has B-frames (`None`: not known yet).
    pub b_frames: Option<bool>,
    /// What showed it.
    pub b_frames_evidence: Option<String>,
    /// The B-frame transcode for WebRTC viewers is running.
    pub video_transcoding: bool,
    /// The latest of those returns.
    pub last_resume: Option<ResumeInfo>,
    /// While the source is being pulled again.
    pub retry: Option<RetryInfo>,
    /// Server-added latency per video frame to WebRTC viewers.
    pub frame_latency: Option<LatencySummary>,
    /// Connection up → first frame, per WebRTC viewer.
    pub first_frame: Option<LatencySummary>,
    /// The same two as Prometheus histograms (`pullcast::metrics::LATENCY_BOUNDS_SECONDS`).
    pub frame_latency_histogram: pullcast::metrics::HistogramSnapshot,
    pub first_frame_histogram: pullcast::metrics::HistogramSnapshot,
    /// Viewers now, by protocol.
    pub viewers: crate::telemetry::ProtocolCounts,
    /// Fed by an RTMP publisher rather than pulled.
    pub published: bool,
    pub metadata: Vec<(String, MetaValue)>,
}
