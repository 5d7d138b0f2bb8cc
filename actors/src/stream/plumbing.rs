//! What a capture's supervisor holds outside its state machine — the source's connection,
//! the subscribers' outlets, the transcoders and the recorder — and how each action of the
//! machine is carried out on them. It decides nothing: every choice is in the action.

use actix::prelude::*;
use pullcast::capture::{Action, Input, QueuedBytes, SubscriberId};
use pullcast::config::{CaptureSettings, RecordSettings};
use uuid::Uuid;

use super::children::{Recording, TranscoderOutputs, Transcoders};
use super::outlets::Outlets;
use super::source::{Source, SourceInbox};
use super::SourceStarter;
use crate::messages::{
    Delivery, PullRequest, ReaderEvent, RecordingStatus, SourceMedia, SourceMediaEnded,
    TranscodedAudio, TranscodedVideo,
};

/// Where the children report: the supervisor's recipients.
pub struct Inbox {
    pub source: SourceInbox,
    pub audio: Recipient<TranscodedAudio>,
    pub video: Recipient<TranscodedVideo>,
    pub recording: Recipient<RecordingStatus>,
}

impl Inbox {
    /// The recipients of the actor at `addr`.
    pub fn of<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<ReaderEvent>
            + Handler<SourceMedia>
            + Handler<SourceMediaEnded>
            + Handler<TranscodedAudio>
            + Handler<TranscodedVideo>
            + Handler<RecordingStatus>,
    {
        Self {
            source: SourceInbox {
                events: addr.clone().recipient(),
                media: addr.clone().recipient(),
                ended: addr.clone().recipient(),
            },
            audio: addr.clone().recipient(),
            video: addr.clone().recipient(),
            recording: addr.clone().recipient(),
        }
    }
}

/// What the actions need to know of the capture.
pub struct CaptureRefs<'a> {
    pub id: Uuid,
    /// How logs name it.
    pub label: &'a str,
    pub request: &'a PullRequest,
    pub settings: &'a CaptureSettings,
    pub record_settings: &'a RecordSettings,
}

/// Everything the supervisor moves media through.
pub struct Plumbing {
    pub source: Source,
    pub outlets: Outlets,
    pub transcoders: Transcoders,
    pub recording: Recording,
}

impl Plumbing {
    /// Empty plumbing for a capture with `settings`, whose source `starter` starts.
    pub fn new(settings: &CaptureSettings, starter: SourceStarter) -> Self {
        Self {
            source: Source::new(starter, settings.ingest_queue_bytes),
            outlets: Outlets::new(settings.subscriber_queue_bytes),
            transcoders: Transcoders::default(),
            recording: Recording::default(),
        }
    }

    /// Carries out `action` (any but `End`, which is the actor's own); returns what the
    /// machine must hear back (a delivery that failed, the recorder subscribing). `inbox`
    /// is called only when a child starts.
    pub fn carry_out(
        &mut self,
        action: Action,
        capture: &CaptureRefs<'_>,
        inbox: impl Fn() -> Inbox,
    ) -> Option<Input> {
        let outputs = || {
            let inbox = inbox();
            TranscoderOutputs {
                label: capture.label.to_string(),
                audio: inbox.audio,
                video: inbox.video,
            }
        };
        let action = match self.transcoders.apply(action, capture.settings, outputs) {
            Ok(feedback) => return feedback,
            Err(other) => other,
        };
        match action {
            Action::Deliver { to, media } => self.outlets.deliver(to, media),
            Action::StartSource { generation } => {
                let inbox = inbox();
                let label = capture.label.to_string();
                let settings = capture.settings;
                (self.source).start(generation, label, capture.request, settings, inbox.source);
                None
            }
            Action::StopSource => {
                self.source.stop();
                None
            }
            Action::StartRecorder => {
                let inbox = inbox();
                let media = self.recording.start(
                    capture.label.to_string(),
                    capture.id,
                    capture.request,
                    capture.record_settings.clone(),
                    inbox.recording,
                );
                let id = SubscriberId(Uuid::new_v4().as_u128());
                self.outlets.insert(id, media);
                let delivery = Delivery::Original;
                Some(Input::Subscribe { id, delivery })
            }
            _ => None, // End (the actor's) and the transcoders' (above)
        }
    }

    /// What the queues outside the machine hold.
    pub fn queued(&self) -> QueuedBytes {
        QueuedBytes {
            ingest: self.source.queued(),
            largest_subscriber_queue: self.outlets.largest_queue(),
            transcoders: self.transcoders.queued(),
        }
    }

    /// Stops every child but the recorder (which [`Recording::finish`] closes).
    pub fn stop_children(&mut self) {
        self.source.stop();
        self.transcoders.stop_all();
    }
}
