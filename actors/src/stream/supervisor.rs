//! `StreamSupervisor`: one per capture. It carries out what the capture's state machine
//! ([`pullcast::capture::Capture`]) decides: it feeds it every message with the time, starts
//! and stops the children (a reader + normalizer per connection, the recorder, the
//! transcoders), sends media to subscribers, and arms one timer at the machine's next
//! deadline. It decides nothing itself, does no I/O and parses nothing.
//!
//! Fan-out is bounded: each subscriber has a queue in bytes and a mailbox capacity; frames
//! go out with `try_send`, and what does not go out is reported to the machine, which skips
//! that subscriber to the next keyframe. A slow subscriber never slows the capture.
//!
//! Every handler runs inside `panic_guard::catch`: a bug that panics ends this capture
//! `FAILED` with the panic's message as the reason (viewers told, the Registry forgets it),
//! and only this one.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use log::{error, info};
use pullcast::access::redact_text;
use pullcast::capture::{
    Action, Capture, CaptureConfig, Input, QueuedBytes, SourceEnd, SubscriberId,
};
use pullcast::config::{CaptureSettings, RecordSettings};
use uuid::Uuid;

use super::budget::{ByteBudget, SharedBudget};
use super::children::{start_recorder, TranscoderOutputs, Transcoders};
use super::normalizer::NormalizerActor;
use super::outlets::Outlets;
use super::recorder::Recorder;
use super::snapshot::{minimal_snapshot, snapshot, SnapshotContext};
use super::{SourceContext, SourceStarter};
use crate::messages::{
    CaptureEnd, CaptureEnded, Delivery, FinishRecording, GetSnapshot, InjectPanic, MediaEnd,
    PullRequest, ReaderEvent, RecordingStatus, RequestKeyframe, SourceMedia, SourceMediaEnded,
    StopCapture, StopSource, Subscribe, TranscodedAudio, TranscodedVideo, Unsubscribe,
};
use crate::panic_guard::{self, Panic};
use crate::telemetry::SharedTelemetry;
use pullcast::normalize::NormalizedEvent;

/// The time the state machine is given: tokio's clock (which tests can pause and advance).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Supervises one capture.
pub struct StreamSupervisor {
    id: Uuid,
    request: PullRequest,
    settings: CaptureSettings,
    record_settings: RecordSettings,
    starter: SourceStarter,
    registry: Option<Recipient<CaptureEnded>>,
    core: Capture,
    /// The current connection's reader, and its generation.
    source: Option<(u64, Recipient<StopSource>)>,
    outlets: Outlets,
    transcoders: Transcoders,
    recorder: Option<Addr<Recorder>>,
    recording: Option<RecordingStatus>,
    telemetry: SharedTelemetry,
    /// Why this capture ended, for viewers that arrive after it (shared with its handles).
    end: CaptureEnd,
    started_at: SystemTime,
    /// Media between the socket and this supervisor (bytes), shared with the reader and
    /// the normalizer of every connection.
    ingest: SharedBudget,
    /// The timer armed at the machine's next deadline, and that deadline.
    timer: Option<(Instant, SpawnHandle)>,
}

impl StreamSupervisor {
    /// A supervisor for `request`; `registry` hears when it stops on its own.
    pub fn new(
        id: Uuid,
        request: PullRequest,
        settings: CaptureSettings,
        starter: SourceStarter,
        registry: Option<Recipient<CaptureEnded>>,
    ) -> Self {
        let config = CaptureConfig {
            label: label(&request, id),
            on_demand: request.on_demand,
            record: request.record,
            has_audio: request.has_audio,
            has_video: request.has_video,
            settings: settings.clone(),
            jitter_seed: Uuid::new_v4().as_u128() as u64,
        };
        let started_at = SystemTime::now();
        Self {
            id,
            core: Capture::new(config, now(), started_at),
            ingest: ByteBudget::new(settings.ingest_queue_bytes),
            outlets: Outlets::new(settings.subscriber_queue_bytes),
            request,
            settings,
            record_settings: RecordSettings::default(),
            starter,
            registry,
            source: None,
            transcoders: Transcoders::default(),
            recorder: None,
            recording: None,
            telemetry: SharedTelemetry::default(),
            end: CaptureEnd::default(),
            started_at,
            timer: None,
        }
    }

    /// Where and how this capture records, when its request says `record`.
    pub fn with_record_settings(mut self, settings: RecordSettings) -> Self {
        self.record_settings = settings;
        self
    }

    /// Where this capture's viewers record their measurements.
    pub fn telemetry(&self) -> SharedTelemetry {
        self.telemetry.clone()
    }

    /// Where this capture leaves the reason it ended.
    pub fn end(&self) -> CaptureEnd {
        self.end.clone()
    }

    fn label(&self) -> String {
        label(&self.request, self.id)
    }

    /// Feeds `input` to the machine and carries out its actions; what could not be
    /// delivered goes back in, then the timer is armed at the next deadline.
    fn run(&mut self, input: Input, ctx: &mut Context<Self>) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for action in self.core.handle(input, now()) {
                if let Some(feedback) = self.carry_out(action, ctx) {
                    inputs.push_back(feedback);
                }
            }
        }
        let due = self.core.next_deadline();
        if self.timer.as_ref().map(|(at, _)| *at) == due {
            return;
        }
        if let Some((_, timer)) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(due) = due {
            let after = due.saturating_duration_since(now());
            let timer = ctx.run_later(after, |act, ctx| {
                act.timer = None;
                act.guarded(Input::Tick, ctx);
            });
            self.timer = Some((due, timer));
        }
    }

    /// [`Self::run`] inside the panic guard.
    fn guarded(&mut self, input: Input, ctx: &mut Context<Self>) {
        if let Err(panic) = panic_guard::catch(|| self.run(input, ctx)) {
            self.crashed(panic, ctx);
        }
    }

    /// Does `action`; returns what the machine must hear back (a delivery that failed).
    fn carry_out(&mut self, action: Action, ctx: &mut Context<Self>) -> Option<Input> {
        let label = label(&self.request, self.id);
        let outputs = || TranscoderOutputs {
            label,
            audio: ctx.address().recipient(),
            video: ctx.address().recipient(),
        };
        let action = match self.transcoders.apply(action, &self.settings, outputs) {
            Ok(feedback) => return feedback,
            Err(other) => other,
        };
        match action {
            Action::StartSource { generation } => self.start_source(generation, ctx),
            Action::StopSource => {
                if let Some((_, source)) = self.source.take() {
                    source.do_send(StopSource);
                }
            }
            Action::StartRecorder => {
                let status = ctx.address().recipient();
                let recorder = start_recorder(
                    self.label(),
                    self.id,
                    &self.request,
                    self.record_settings.clone(),
                    status,
                );
                self.recording = Some(RecordingStatus {
                    file: None,
                    bytes: 0,
                    error: None,
                });
                ctx.address().do_send(Subscribe {
                    id: Uuid::new_v4(),
                    recipient: recorder.clone().recipient(),
                    delivery: Delivery::Original,
                });
                self.recorder = Some(recorder);
            }
            Action::Deliver { to, media } => return self.outlets.deliver(to, media),
            Action::End => ctx.stop(),
            _ => {} // the transcoders' (above)
        }
        None
    }

    /// Starts connection `generation`: a fresh normalizer and reader.
    fn start_source(&mut self, generation: u64, ctx: &mut Context<Self>) {
        let normalizer = NormalizerActor::new(
            self.label(),
            ctx.address().recipient(),
            ctx.address().recipient(),
            generation,
            self.ingest.clone(),
        )
        .start();
        let source = (self.starter)(SourceContext {
            url: self.request.url.clone(),
            settings: self.settings.clone(),
            may_pull_private: self.request.may_pull_private,
            events: ctx.address().recipient(),
            tags: normalizer.clone().recipient(),
            media_end: normalizer.recipient(),
            ingest: self.ingest.clone(),
        });
        self.source = Some((generation, source));
    }

    /// What the capture's queues outside the machine hold.
    fn queued(&self) -> QueuedBytes {
        QueuedBytes {
            ingest: self.ingest.used(),
            largest_subscriber_queue: self.outlets.largest_queue(),
            transcoders: self.transcoders.queued(),
        }
    }

    fn snapshot_context(&self) -> SnapshotContext<'_> {
        SnapshotContext {
            id: self.id,
            request: &self.request,
            started_at: self.started_at,
            recording: self.recording.clone(),
            telemetry: &self.telemetry,
        }
    }

    /// A handler panicked: the state may be half-changed, so this capture ends `FAILED`
    /// (viewers are told so, the Registry forgets it); every other capture goes on.
    fn crashed(&mut self, panic: Panic, ctx: &mut Context<Self>) {
        error!(
            "{}: caught a panic; ending this capture: {panic}",
            self.label()
        );
        let reason = panic.reason("this capture");
        // Through the machine if it still can; otherwise the end is told without it.
        if panic_guard::catch(|| {
            self.core.handle(
                Input::Fail {
                    reason: reason.clone(),
                },
                now(),
            )
        })
        .is_err()
        {
            self.end.record(&reason);
        }
        ctx.stop();
    }
}

/// How logs name a capture: its local name (the uri when none was given, its stream key
/// hidden) and id.
fn label(request: &PullRequest, id: Uuid) -> String {
    format!("capture {} ({id})", redact_text(&request.local_stream_name))
}

impl Actor for StreamSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.guarded(Input::Start, ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let ended = panic_guard::catch(|| {
            let actions = self.core.handle(Input::Finish, now());
            self.end.record(&self.core.end_reason());
            for action in actions {
                self.carry_out(action, ctx);
            }
        });
        if let Err(panic) = ended {
            error!("{}: caught a panic while stopping: {panic}", self.label());
        }
        // Whatever the machine's view, no child outlives the capture.
        if let Some((_, source)) = self.source.take() {
            source.do_send(StopSource);
        }
        self.transcoders.stop_all();
        if let Some(registry) = &self.registry {
            registry.do_send(CaptureEnded { id: self.id });
        }
        info!("{}: stopped", self.label());
    }
}

impl Handler<ReaderEvent> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, event: ReaderEvent, ctx: &mut Self::Context) {
        let label = self.label();
        match event {
            ReaderEvent::Connected { peer } => info!("{label}: connected to {peer}"),
            ReaderEvent::HandshakeDone => log::debug!("{label}: handshake done"),
            ReaderEvent::PlayStarted => info!("{label}: the source started playing"),
            ReaderEvent::Status { message } => info!("{label}: {message}"),
            ReaderEvent::Metadata(props) => self.guarded(Input::Metadata(props), ctx),
            ReaderEvent::Progress { bytes_received } => {
                self.guarded(Input::Progress { bytes_received }, ctx)
            }
        }
    }
}

impl Handler<SourceMedia> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, media: SourceMedia, ctx: &mut Self::Context) {
        let generation = media.generation;
        let input = match media.event {
            NormalizedEvent::CodecChange(codecs) => Input::Codecs { generation, codecs },
            NormalizedEvent::Frame(frame) => Input::Frame {
                generation,
                frame,
                queued: self.queued(),
            },
        };
        self.guarded(input, ctx);
    }
}

impl Handler<SourceMediaEnded> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SourceMediaEnded, ctx: &mut Self::Context) {
        let generation = msg.generation;
        let end = match msg.end {
            MediaEnd::PublisherLeft { reason } => SourceEnd::PublisherLeft { reason },
            MediaEnd::ConnectionEnded { reason } => {
                // That reader has stopped by itself: nothing to stop later.
                if self.source.as_ref().is_some_and(|(g, _)| *g == generation) {
                    self.source = None;
                }
                SourceEnd::ConnectionEnded { reason }
            }
            MediaEnd::Crashed { reason } => SourceEnd::Crashed { reason },
        };
        self.guarded(Input::SourceEnded { generation, end }, ctx);
    }
}

impl Handler<Subscribe> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) {
        let id = SubscriberId(msg.id.as_u128());
        self.outlets.insert(id, msg.recipient);
        let delivery = msg.delivery;
        self.guarded(Input::Subscribe { id, delivery }, ctx);
    }
}

impl Handler<RequestKeyframe> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RequestKeyframe, ctx: &mut Self::Context) {
        let id = SubscriberId(msg.id.as_u128());
        self.guarded(Input::KeyframeRequest { id }, ctx);
    }
}

impl Handler<Unsubscribe> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Self::Context) {
        let id = SubscriberId(msg.id.as_u128());
        self.outlets.remove(id);
        self.guarded(Input::Unsubscribe { id }, ctx);
    }
}

impl Handler<RecordingStatus> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RecordingStatus, _ctx: &mut Self::Context) {
        self.recording = Some(msg);
    }
}

impl Handler<TranscodedAudio> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: TranscodedAudio, ctx: &mut Self::Context) {
        // One frame at a time: a delivery that failed is heard before the next frame.
        for frame in msg.frames {
            self.guarded(Input::TranscodedAudio { frame }, ctx);
        }
    }
}

impl Handler<TranscodedVideo> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: TranscodedVideo, ctx: &mut Self::Context) {
        // One frame at a time: a delivery that failed is heard before the next frame.
        for frame in msg.frames {
            self.guarded(Input::TranscodedVideo { frame }, ctx);
        }
    }
}

impl Handler<GetSnapshot> for StreamSupervisor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _msg: GetSnapshot, ctx: &mut Self::Context) -> Self::Result {
        let full = panic_guard::catch(|| {
            let now = now();
            let rates = self.core.rates(now);
            snapshot(&self.core, self.snapshot_context(), rates, now)
        });
        match full {
            Ok(snapshot) => MessageResult(snapshot),
            Err(panic) => {
                let reason = panic.reason("this capture");
                self.crashed(panic, ctx);
                let minimal = minimal_snapshot(&self.core, self.snapshot_context(), reason);
                MessageResult(minimal)
            }
        }
    }
}

impl Handler<StopCapture> for StreamSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    /// Answered once the capture has stopped and its recording (if any) is closed.
    fn handle(&mut self, msg: StopCapture, ctx: &mut Self::Context) -> Self::Result {
        info!("{}: stopping: {}", self.label(), msg.reason);
        self.registry = None;
        self.guarded(Input::Stop { reason: msg.reason }, ctx);
        let recorder = self.recorder.take();
        Box::pin(
            async move {
                if let Some(recorder) = recorder {
                    let _ = recorder.send(FinishRecording).await;
                }
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        )
    }
}

impl Handler<InjectPanic> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: InjectPanic, ctx: &mut Self::Context) {
        if let Err(panic) = panic_guard::catch(|| panic!("injected panic (test)")) {
            self.crashed(panic, ctx);
        }
    }
}
