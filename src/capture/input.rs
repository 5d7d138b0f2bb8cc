//! What happens to a capture — the inputs of [`super::Capture::handle`]: the source's
//! connection and media, subscribers coming and going, the transcoders' output, what the
//! actor could not deliver, time passing, a stop.

use std::sync::Arc;

use super::subscribers::{Delivery, SubscriberId};
use crate::media::{CodecSet, MediaFrame};
use crate::rtmp::session::MetaValue;

/// How a connection's media ended (in line with its frames: every frame before it was
/// handled first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEnd {
    /// The publisher left; the connection stays open and media may come back on it.
    PublisherLeft { reason: String },
    /// The connection is over (refused, reset, timed out, closed).
    ConnectionEnded { reason: String },
    /// The reader or normalizer panicked: a bug, not a source to retry.
    Crashed { reason: String },
}

/// Bytes a capture's media holds outside the core (the actor's queues): with the core's own
/// keyframe caches, what the memory budget is checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueuedBytes {
    /// Between the socket and the supervisor.
    pub ingest: usize,
    /// The fullest subscriber queue (subscribers share frames, so queues overlap).
    pub largest_subscriber_queue: usize,
    /// Queued for the transcoders.
    pub transcoders: usize,
}

/// One input.
#[derive(Debug, Clone)]
pub enum Input {
    /// The capture starts: pull the source (and record, and wait for a first viewer).
    Start,
    /// Bytes received on the current connection so far.
    Progress { bytes_received: u64 },
    /// The source's `onMetaData`.
    Metadata(Vec<(String, MetaValue)>),
    /// Connection `generation` reported codec configurations (tracks not reported keep
    /// theirs).
    Codecs { generation: u64, codecs: CodecSet },
    /// A frame of connection `generation`, and what the actor's queues hold.
    Frame {
        generation: u64,
        frame: MediaFrame,
        queued: QueuedBytes,
    },
    /// Connection `generation`'s media ended.
    SourceEnded { generation: u64, end: SourceEnd },
    /// A subscriber joins.
    Subscribe {
        id: SubscriberId,
        delivery: Delivery,
    },
    /// A subscriber leaves.
    Unsubscribe { id: SubscriberId },
    /// A subscriber asks for a keyframe (a viewer's PLI/FIR).
    KeyframeRequest { id: SubscriberId },
    /// What was sent to `id` did not go out: its queue was full.
    DeliveryFailed { id: SubscriberId },
    /// `id` is gone (its mailbox closed).
    SubscriberGone { id: SubscriberId },
    /// The video transcoder's queue was full: the frame did not go in.
    VideoTranscodeDropped,
    /// An Opus frame from the audio transcoder (one per input: what could not be delivered
    /// is heard before the next frame).
    TranscodedAudio { frame: MediaFrame },
    /// A Constrained Baseline frame from the video transcoder (one per input, likewise).
    TranscodedVideo { frame: MediaFrame },
    /// Time passed: deadlines up to now fire.
    Tick,
    /// A bug in this capture's handling (a caught panic): end `FAILED` with `reason`.
    Fail { reason: String },
    /// Stop: no more retries; the end is told with `reason`.
    Stop { reason: String },
    /// The actor is stopping: stop everything and tell every subscriber.
    Finish,
}

/// The configuration an audio transcoder starts with or changes to.
pub type AudioConfig = Arc<crate::codec::aac::AudioSpecificConfig>;
