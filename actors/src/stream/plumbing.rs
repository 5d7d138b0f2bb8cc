//! What a capture's supervisor holds outside its state machine — the source's connection,
//! the subscribers' outlets, the transcoders and the recorder — and how each action of the
//! machine is carried out on them. It decides nothing: every choice is in the action.

use actix::prelude::*;
use pullcast::capture::{Action, Input, Outgoing, QueuedBytes, SubscriberId};
use pullcast::config::{CaptureSettings, RecordSettings};
use pullcast::media::MediaFrame;
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
            outlets: Outlets::new(
                settings.subscriber_queue_bytes,
                settings.subscriber_queue_frames,
            ),
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

/// One step of carrying out a machine's actions: an action, or one frame's deliveries to
/// many subscribers together.
pub enum Step {
    One(Action),
    /// Consecutive `Deliver`s of the same live frame (the machine's fan-out), so the
    /// viewers on one media port worker get it in one message.
    FanOut {
        frame: MediaFrame,
        to: Vec<SubscriberId>,
    },
}

/// `actions` in order, each run of deliveries of one frame gathered into a [`Step::FanOut`].
pub fn gather_fan_outs(actions: Vec<Action>) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::with_capacity(actions.len());
    for action in actions {
        if let Action::Deliver {
            to,
            media: Outgoing::Frame(frame),
        } = action
        {
            if let Some(Step::FanOut {
                frame: last,
                to: ids,
            }) = steps.last_mut()
            {
                if same_frame(last, &frame) {
                    ids.push(to);
                    continue;
                }
            }
            steps.push(Step::FanOut {
                frame,
                to: vec![to],
            });
            continue;
        }
        steps.push(Step::One(action));
    }
    steps
}

/// Whether `a` and `b` are one frame (the fan-out clones one frame: its bytes are shared).
fn same_frame(a: &MediaFrame, b: &MediaFrame) -> bool {
    a.track == b.track
        && a.pts == b.pts
        && a.data.len() == b.data.len()
        && a.data.as_ptr() == b.data.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pullcast::media::Track;

    fn frame(pts: i64, data: &Bytes) -> MediaFrame {
        MediaFrame {
            track: Track::Video,
            pts,
            dts: pts,
            keyframe: false,
            data: data.clone(),
            ingest_us: 0,
        }
    }

    fn deliver(to: u128, frame: MediaFrame) -> Action {
        Action::Deliver {
            to: SubscriberId(to),
            media: Outgoing::Frame(frame),
        }
    }

    #[test]
    fn a_frames_deliveries_are_gathered_and_order_is_kept() {
        let a = Bytes::from_static(b"first frame");
        let b = Bytes::from_static(b"second frame");
        let actions = vec![
            deliver(1, frame(0, &a)),
            deliver(2, frame(0, &a)),
            Action::StopSource,
            deliver(3, frame(0, &a)),
            deliver(1, frame(33, &b)),
            deliver(2, frame(33, &b)),
            // Equal bytes elsewhere in memory are another frame.
            deliver(3, frame(33, &Bytes::copy_from_slice(b"second frame"))),
        ];
        let shape: Vec<String> = gather_fan_outs(actions)
            .into_iter()
            .map(|step| match step {
                Step::One(_) => "one".to_string(),
                Step::FanOut { frame, to } => format!("{}→{:?}", frame.pts, to),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "0→[SubscriberId(1), SubscriberId(2)]",
                "one",
                "0→[SubscriberId(3)]",
                "33→[SubscriberId(1), SubscriberId(2)]",
                "33→[SubscriberId(3)]",
            ]
        );
    }
}
