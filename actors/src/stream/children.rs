//! A capture's children besides its source — the recorder and the two transcoders — and how
//! each is started on an arbiter of its own. The supervisor decides nothing here; it holds
//! what these return and stops them when its state machine says so.

use actix::prelude::*;
use pullcast::capture::AudioConfig;
use pullcast::config::{CaptureSettings, RecordSettings};
use pullcast::media::MediaFrame;
use pullcast::video::transcode::TranscodeSettings;
use uuid::Uuid;

use super::audio_transcoder::AudioTranscoderActor;
use super::budget::{ByteBudget, SharedBudget};
use super::recorder::Recorder;
use super::video_transcoder::VideoTranscoderActor;
use crate::messages::{
    PullRequest, RecordingStatus, TranscodeBacklog, TranscodedAudio, TranscodedVideo,
    TranscoderConfig,
};

/// A transcoder actor on its own arbiter (stopping the arbiter stops it), and its queue.
pub struct Transcoder<A: Actor> {
    pub addr: Addr<A>,
    arbiter: Arbiter,
    /// What it has queued, in bytes.
    pub queue: SharedBudget,
}

impl<A: Actor> Transcoder<A> {
    /// Stops it (and its thread).
    pub fn stop(self) {
        self.arbiter.stop();
    }
}

/// Starts the recorder of a capture; it reports its status to `status`.
pub fn start_recorder(
    label: String,
    id: Uuid,
    request: &PullRequest,
    settings: RecordSettings,
    status: Recipient<RecordingStatus>,
) -> Addr<Recorder> {
    let arbiter = Arbiter::new();
    let stream = request.local_stream_name.clone();
    let (has_audio, has_video) = (request.has_audio, request.has_video);
    Recorder::start_in_arbiter(&arbiter.handle(), move |ctx| {
        ctx.set_mailbox_capacity(4096);
        Recorder::new(label, stream, id, settings, status).expecting(has_audio, has_video)
    })
}

/// Starts the AAC → Opus transcoder, configured with `config` when it is known.
pub fn start_audio_transcoder(
    label: String,
    settings: &CaptureSettings,
    config: Option<AudioConfig>,
    output: Recipient<TranscodedAudio>,
) -> Transcoder<AudioTranscoderActor> {
    let arbiter = Arbiter::new();
    let bitrate = settings.opus_bitrate;
    let addr = AudioTranscoderActor::start_in_arbiter(&arbiter.handle(), move |_| {
        AudioTranscoderActor::new(label, bitrate, output)
    });
    if let Some(config) = config {
        addr.do_send(TranscoderConfig { config });
    }
    Transcoder {
        addr,
        arbiter,
        queue: ByteBudget::new(settings.transcoder_queue_bytes),
    }
}

/// Starts the B-frame → Constrained Baseline transcoder at the source's declared
/// `frame_rate`, fed `backlog` first (so the first viewer need not wait for a keyframe).
pub fn start_video_transcoder(
    label: String,
    settings: &CaptureSettings,
    frame_rate: Option<f64>,
    backlog: Vec<MediaFrame>,
    output: Recipient<TranscodedVideo>,
) -> Transcoder<VideoTranscoderActor> {
    let arbiter = Arbiter::new();
    let transcode = TranscodeSettings::for_source(settings.bframe_transcode_bitrate, frame_rate);
    let addr = VideoTranscoderActor::start_in_arbiter(&arbiter.handle(), move |ctx| {
        ctx.set_mailbox_capacity(1024);
        VideoTranscoderActor::new(label, transcode, output)
    });
    if !backlog.is_empty() {
        addr.do_send(TranscodeBacklog { frames: backlog });
    }
    Transcoder {
        addr,
        arbiter,
        queue: ByteBudget::new(settings.transcoder_queue_bytes),
    }
}
