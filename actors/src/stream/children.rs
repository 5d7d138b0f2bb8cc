//! A capture's children besides its source — the recorder and the two transcoders — and how
//! each is started on an arbiter of its own. The supervisor decides nothing here; it holds
//! what these return and stops them when its state machine says so.

use actix::prelude::*;
use pullcast::capture::{Action, AudioConfig, Input};
use pullcast::config::{CaptureSettings, RecordSettings};
use pullcast::media::MediaFrame;
use pullcast::video::transcode::TranscodeSettings;
use uuid::Uuid;

use super::audio_transcoder::AudioTranscoderActor;
use super::budget::{ByteBudget, SharedBudget};
use super::recorder::Recorder;
use super::video_transcoder::VideoTranscoderActor;
use crate::messages::{
    FinishRecording, ForceKeyframe, PullRequest, RecordingStatus, ResetVideoTranscode,
    SubscriberMedia, TranscodeAudio, TranscodeBacklog, TranscodeVideo, TranscodedAudio,
    TranscodedVideo, TranscoderConfig,
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

/// The capture's recorder, once started, and what it last reported.
#[derive(Default)]
pub struct Recording {
    recorder: Option<Addr<Recorder>>,
    status: Option<RecordingStatus>,
}

impl Recording {
    /// Starts the recorder of capture `id` on an arbiter of its own; it reports its status
    /// to `status`. Returns where it takes its media (to subscribe it as `Original`).
    pub fn start(
        &mut self,
        label: String,
        id: Uuid,
        request: &PullRequest,
        settings: RecordSettings,
        status: Recipient<RecordingStatus>,
    ) -> Recipient<SubscriberMedia> {
        let arbiter = Arbiter::new();
        let stream = request.local_stream_name.clone();
        let (has_audio, has_video) = (request.has_audio, request.has_video);
        let recorder = Recorder::start_in_arbiter(&arbiter.handle(), move |ctx| {
            ctx.set_mailbox_capacity(4096);
            Recorder::new(label, stream, id, settings, status).expecting(has_audio, has_video)
        });
        self.status = Some(RecordingStatus {
            file: None,
            bytes: 0,
            error: None,
        });
        let media = recorder.clone().recipient();
        self.recorder = Some(recorder);
        media
    }

    /// What the recorder reported.
    pub fn report(&mut self, status: RecordingStatus) {
        self.status = Some(status);
    }

    /// The recording's status, once one was started.
    pub fn status(&self) -> Option<RecordingStatus> {
        self.status.clone()
    }

    /// Closes the recording (last fragment, rename, hook); done when the future is.
    pub fn finish(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let recorder = self.recorder.take();
        async move {
            if let Some(recorder) = recorder {
                let _ = recorder.send(FinishRecording).await;
            }
        }
    }
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

/// Where the transcoders' output goes, and how they are named in logs.
pub struct TranscoderOutputs {
    pub label: String,
    pub audio: Recipient<TranscodedAudio>,
    pub video: Recipient<TranscodedVideo>,
}

/// The capture's two transcoders, while they run.
#[derive(Default)]
pub struct Transcoders {
    audio: Option<Transcoder<AudioTranscoderActor>>,
    video: Option<Transcoder<VideoTranscoderActor>>,
}

impl Transcoders {
    /// What they have queued, in bytes.
    pub fn queued(&self) -> usize {
        self.audio.as_ref().map_or(0, |t| t.queue.used())
            + self.video.as_ref().map_or(0, |t| t.queue.used())
    }

    /// Carries out `action` when it is about a transcoder (`Ok` with what the state machine
    /// must hear back); hands any other action back (`Err`).
    pub fn apply(
        &mut self,
        action: Action,
        settings: &CaptureSettings,
        outputs: impl FnOnce() -> TranscoderOutputs,
    ) -> Result<Option<Input>, Action> {
        match action {
            Action::StartAudioTranscoder { config } => {
                let o = outputs();
                self.audio = Some(start_audio_transcoder(o.label, settings, config, o.audio));
            }
            Action::ConfigureAudioTranscoder { config } => {
                if let Some(t) = &self.audio {
                    t.addr.do_send(TranscoderConfig { config });
                }
            }
            Action::StopAudioTranscoder => self.stop_audio(),
            Action::TranscodeAudio { frame } => {
                // Over its queue the transcoder is far behind: a frame less beats a backlog.
                if let Some(t) = &self.audio {
                    if let Some(charge) = t.queue.try_charge(frame.cost_bytes()) {
                        t.addr.do_send(TranscodeAudio { frame, charge });
                    }
                }
            }
            Action::StartVideoTranscoder {
                frame_rate,
                backlog,
            } => {
                let o = outputs();
                let t = start_video_transcoder(o.label, settings, frame_rate, backlog, o.video);
                self.video = Some(t);
            }
            Action::ResetVideoTranscoder => {
                if let Some(t) = &self.video {
                    t.addr.do_send(ResetVideoTranscode);
                }
            }
            Action::ForceKeyframe => {
                if let Some(t) = &self.video {
                    t.addr.do_send(ForceKeyframe);
                }
            }
            Action::StopVideoTranscoder => self.stop_video(),
            Action::TranscodeVideo { frame } => {
                if let Some(t) = &self.video {
                    let Some(charge) = t.queue.try_charge(frame.cost_bytes()) else {
                        return Ok(Some(Input::VideoTranscodeDropped));
                    };
                    t.addr.do_send(TranscodeVideo { frame, charge });
                }
            }
            other => return Err(other),
        }
        Ok(None)
    }

    fn stop_audio(&mut self) {
        if let Some(t) = self.audio.take() {
            t.stop();
        }
    }

    fn stop_video(&mut self) {
        if let Some(t) = self.video.take() {
            t.stop();
        }
    }

    /// Stops both.
    pub fn stop_all(&mut self) {
        self.stop_audio();
        self.stop_video();
    }
}
