//! How each message the `StreamSupervisor` passes to the capture's state machine becomes
//! the machine's inputs, and what the message changes in the plumbing on the way (a
//! subscriber's outlet, a connection that ended by itself). Translation only: what the
//! inputs mean is the machine's business.

use actix::prelude::*;
use log::{debug, info};
use pullcast::capture::{Input, SourceEnd, SubscriberId};
use pullcast::normalize::NormalizedEvent;

use super::plumbing::Plumbing;
use crate::messages::{
    Delivery, MediaEnd, ReaderEvent, RequestKeyframe, SourceMedia, SourceMediaEnded, Subscribe,
    SubscribeOnPort, TranscodedAudio, TranscodedVideo, Unsubscribe,
};

/// A message for the capture's state machine.
pub trait ForTheMachine: Message<Result = ()> + Send + 'static {
    /// Its inputs, in order (one at a time: a delivery that failed is heard before the
    /// next). `label` names the capture in log lines.
    fn inputs(self, plumbing: &mut Plumbing, label: &str) -> Vec<Input>;
}

impl ForTheMachine for ReaderEvent {
    /// The machine needs what it measures; the rest is for the log.
    fn inputs(self, _: &mut Plumbing, label: &str) -> Vec<Input> {
        match self {
            ReaderEvent::Connected { peer } => info!("{label}: connected to {peer}"),
            ReaderEvent::HandshakeDone => debug!("{label}: handshake done"),
            ReaderEvent::PlayStarted => info!("{label}: the source started playing"),
            ReaderEvent::Status { message } => info!("{label}: {message}"),
            ReaderEvent::Metadata(props) => return vec![Input::Metadata(props)],
            ReaderEvent::Progress { bytes_received } => {
                return vec![Input::Progress { bytes_received }]
            }
        }
        Vec::new()
    }
}

impl ForTheMachine for SourceMedia {
    /// A frame comes with what the queues outside the machine hold when it arrives.
    fn inputs(self, plumbing: &mut Plumbing, _: &str) -> Vec<Input> {
        let generation = self.generation;
        vec![match self.event {
            NormalizedEvent::CodecChange(codecs) => Input::Codecs { generation, codecs },
            NormalizedEvent::Frame(frame) => Input::Frame {
                generation,
                frame,
                queued: plumbing.queued(),
            },
        }]
    }
}

impl ForTheMachine for SourceMediaEnded {
    fn inputs(self, plumbing: &mut Plumbing, _: &str) -> Vec<Input> {
        let generation = self.generation;
        let end = match self.end {
            MediaEnd::PublisherLeft { reason } => SourceEnd::PublisherLeft { reason },
            MediaEnd::ConnectionEnded { reason } => {
                // That reader has stopped by itself: nothing to stop later.
                plumbing.source.ended(generation);
                SourceEnd::ConnectionEnded { reason }
            }
            MediaEnd::Crashed { reason } => SourceEnd::Crashed { reason },
        };
        vec![Input::SourceEnded { generation, end }]
    }
}

impl ForTheMachine for Subscribe {
    fn inputs(self, plumbing: &mut Plumbing, _: &str) -> Vec<Input> {
        let id = SubscriberId(self.id.as_u128());
        plumbing.outlets.insert(id, self.recipient);
        let delivery = self.delivery;
        vec![Input::Subscribe { id, delivery }]
    }
}

impl ForTheMachine for SubscribeOnPort {
    fn inputs(self, plumbing: &mut Plumbing, _: &str) -> Vec<Input> {
        let id = SubscriberId(self.id.as_u128());
        plumbing
            .outlets
            .insert_on_port(id, self.control, self.port, self.key);
        let delivery = Delivery::WebRtc;
        vec![Input::Subscribe { id, delivery }]
    }
}

impl ForTheMachine for Unsubscribe {
    fn inputs(self, plumbing: &mut Plumbing, _: &str) -> Vec<Input> {
        let id = SubscriberId(self.id.as_u128());
        plumbing.outlets.remove(id);
        vec![Input::Unsubscribe { id }]
    }
}

impl ForTheMachine for RequestKeyframe {
    fn inputs(self, _: &mut Plumbing, _: &str) -> Vec<Input> {
        let id = SubscriberId(self.id.as_u128());
        vec![Input::KeyframeRequest { id }]
    }
}

impl ForTheMachine for TranscodedAudio {
    fn inputs(self, _: &mut Plumbing, _: &str) -> Vec<Input> {
        let frames = self.frames.into_iter();
        frames
            .map(|frame| Input::TranscodedAudio { frame })
            .collect()
    }
}

impl ForTheMachine for TranscodedVideo {
    fn inputs(self, _: &mut Plumbing, _: &str) -> Vec<Input> {
        let frames = self.frames.into_iter();
        frames
            .map(|frame| Input::TranscodedVideo { frame })
            .collect()
    }
}
