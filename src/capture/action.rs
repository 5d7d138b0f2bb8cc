//! What a capture asks its actor to do — the outputs of [`super::Capture::handle`]: start
//! and stop its children, feed the transcoders, send media to subscribers, end.

use super::input::AudioConfig;
use super::subscribers::SubscriberId;
use crate::media::{CodecSet, MediaFrame};

/// Media for one subscriber.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// The codec configuration (rare and essential: sent even past a full queue).
    Codecs(CodecSet),
    /// One frame (dropped when the subscriber's queue is full: report `DeliveryFailed`).
    Frame(MediaFrame),
    /// The frames since the latest keyframe, at once (a new subscriber's start, a PLI's
    /// answer; dropped when the queue cannot take them all: report `DeliveryFailed`).
    Replay(Vec<MediaFrame>),
    /// The capture ended (sent even past a full queue).
    Stopped { reason: String, failed: bool },
}

/// One action.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open connection `generation`: a fresh reader and normalizer.
    StartSource {
        generation: u64,
    },
    /// Close the current connection.
    StopSource,
    /// Start the recorder (it subscribes as `Original`).
    StartRecorder,
    /// Start the AAC → Opus transcoder (with `config`, when the audio's is known).
    StartAudioTranscoder {
        config: Option<AudioConfig>,
    },
    /// The audio configuration changed.
    ConfigureAudioTranscoder {
        config: AudioConfig,
    },
    StopAudioTranscoder,
    /// One AAC frame for the audio transcoder (dropped when its queue is full).
    TranscodeAudio {
        frame: MediaFrame,
    },
    /// Start the B-frame → Constrained Baseline transcoder at `frame_rate` (declared by the
    /// source, if it does), first fed `backlog` (the cached video since the last keyframe).
    StartVideoTranscoder {
        frame_rate: Option<f64>,
        backlog: Vec<MediaFrame>,
    },
    /// The video restarts (source dropped, configuration changed): start over at a keyframe.
    ResetVideoTranscoder,
    /// Make a fresh keyframe for the transcode's viewers.
    ForceKeyframe,
    StopVideoTranscoder,
    /// One frame for the video transcoder (report `VideoTranscodeDropped` when its queue is
    /// full).
    TranscodeVideo {
        frame: MediaFrame,
    },
    /// Send `media` to subscriber `to`.
    Deliver {
        to: SubscriberId,
        media: Outgoing,
    },
    /// The capture is over: stop the actor (whose `Finish` tells everyone).
    End,
}
