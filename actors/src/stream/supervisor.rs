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
use pullcast::capture::{Action, Capture, CaptureConfig, Input};
use pullcast::config::{CaptureSettings, RecordSettings};
use uuid::Uuid;

use super::inputs::ForTheMachine;
use super::plumbing::{gather_fan_outs, CaptureRefs, Inbox, Plumbing, Step};
use super::snapshot::{minimal_snapshot, snapshot, SnapshotContext};
use super::SourceStarter;
use crate::messages::{
    CaptureEnd, CaptureEnded, GetSnapshot, InjectPanic, PullRequest, RecordingStatus, StopCapture,
};
use crate::panic_guard::{self, Panic};
use crate::telemetry::SharedTelemetry;

/// The time the state machine is given: tokio's clock (which tests can pause and advance).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Supervises one capture.
pub struct StreamSupervisor {
    id: Uuid,
    /// How logs name it: its local name (the uri when none was given, its stream key
    /// hidden) and id.
    label: String,
    request: PullRequest,
    settings: CaptureSettings,
    record_settings: RecordSettings,
    registry: Option<Recipient<CaptureEnded>>,
    core: Capture,
    plumbing: Plumbing,
    telemetry: SharedTelemetry,
    /// Why this capture ended, for viewers that arrive after it (shared with its handles).
    end: CaptureEnd,
    started_at: SystemTime,
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
        let label = format!("capture {} ({id})", redact_text(&request.local_stream_name));
        let config = CaptureConfig {
            label: label.clone(),
            on_demand: request.on_demand,
            published: request.published,
            publish_grace_ms: request.publish_grace_ms,
            record: request.record,
            has_audio: request.has_audio,
            has_video: request.has_video,
            settings: settings.clone(),
            jitter_seed: Uuid::new_v4().as_u128() as u64,
        };
        let started_at = SystemTime::now();
        Self {
            id,
            label,
            core: Capture::new(config, now(), started_at),
            plumbing: Plumbing::new(&settings, starter),
            request,
            settings,
            record_settings: RecordSettings::default(),
            registry,
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

    /// Feeds `input` to the machine and carries out its actions; what the machine must
    /// hear back goes in next, then the timer is armed at the next deadline.
    fn run(&mut self, input: Input, ctx: &mut Context<Self>) {
        let mut feedback = VecDeque::new();
        let mut next = Some(input);
        while let Some(input) = next.take().or_else(|| feedback.pop_front()) {
            for step in gather_fan_outs(self.core.handle(input, now())) {
                match step {
                    Step::One(action) => feedback.extend(self.carry_out(action, ctx)),
                    Step::FanOut { frame, to } => {
                        feedback.extend(self.plumbing.outlets.deliver_frame(&frame, &to));
                    }
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

    /// Does `action`; returns what the machine must hear back.
    fn carry_out(&mut self, action: Action, ctx: &mut Context<Self>) -> Option<Input> {
        if let Action::End = action {
            ctx.stop();
            return None;
        }
        let capture = CaptureRefs {
            id: self.id,
            label: &self.label,
            request: &self.request,
            settings: &self.settings,
            record_settings: &self.record_settings,
        };
        let inbox = || Inbox::of(&ctx.address());
        self.plumbing.carry_out(action, &capture, inbox)
    }

    fn snapshot_context(&self) -> SnapshotContext<'_> {
        SnapshotContext {
            id: self.id,
            request: &self.request,
            started_at: self.started_at,
            recording: self.plumbing.recording.status(),
            telemetry: &self.telemetry,
        }
    }

    /// A handler panicked: the state may be half-changed, so this capture ends `FAILED`
    /// (viewers are told so, the Registry forgets it); every other capture goes on.
    fn crashed(&mut self, panic: Panic, ctx: &mut Context<Self>) {
        error!(
            "{}: caught a panic; ending this capture: {panic}",
            self.label
        );
        let reason = panic.reason("this capture");
        // Through the machine if it still can; otherwise the end is told without it.
        let fail = Input::Fail {
            reason: reason.clone(),
        };
        if panic_guard::catch(|| self.core.handle(fail, now())).is_err() {
            self.end.record(&reason);
        }
        ctx.stop();
    }
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
            error!("{}: caught a panic while stopping: {panic}", self.label);
        }
        // Whatever the machine's view, no child outlives the capture.
        self.plumbing.stop_children();
        if let Some(registry) = &self.registry {
            registry.do_send(CaptureEnded { id: self.id });
        }
        info!("{}: stopped", self.label);
    }
}

/// Every message for the machine ([`ForTheMachine`]): its inputs, one at a time.
impl<M: ForTheMachine> Handler<M> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: M, ctx: &mut Self::Context) {
        for input in msg.inputs(&mut self.plumbing, &self.label) {
            self.guarded(input, ctx);
        }
    }
}

impl Handler<RecordingStatus> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RecordingStatus, _ctx: &mut Self::Context) {
        self.plumbing.recording.report(msg);
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
        info!("{}: stopping: {}", self.label, msg.reason);
        self.registry = None;
        self.guarded(Input::Stop { reason: msg.reason }, ctx);
        let finished = self.plumbing.recording.finish();
        Box::pin(finished.into_actor(self).map(|(), _act, ctx| ctx.stop()))
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
