//! Where a capture's subscribers take their media: one recipient and one byte queue each.
//! Frames and replays go out with `try_send` within the queue; what does not go out comes
//! back as the input the state machine must hear (`DeliveryFailed`, `SubscriberGone`). The
//! rare and essential (codecs, the end) always go.

use std::collections::HashMap;

use actix::prelude::*;
use pullcast::capture::{Input, Outgoing, SubscriberId};

use pullcast::media::MediaFrame;

use super::budget::{ByteBudget, SharedBudget};
use crate::messages::SubscriberMedia;

/// One subscriber's way in.
struct Outlet {
    recipient: Recipient<SubscriberMedia>,
    /// What it has queued, in bytes.
    queue: SharedBudget,
}

/// Every subscriber's outlet.
pub struct Outlets {
    table: HashMap<SubscriberId, Outlet>,
    /// Each subscriber's queue limit, in bytes.
    queue_bytes: usize,
}

impl Outlets {
    /// Outlets whose queues hold `queue_bytes` each.
    pub fn new(queue_bytes: usize) -> Self {
        Self {
            table: HashMap::new(),
            queue_bytes,
        }
    }

    pub fn insert(&mut self, id: SubscriberId, recipient: Recipient<SubscriberMedia>) {
        let queue = ByteBudget::new(self.queue_bytes);
        self.table.insert(id, Outlet { recipient, queue });
    }

    pub fn remove(&mut self, id: SubscriberId) {
        self.table.remove(&id);
    }

    /// The fullest queue, in bytes (subscribers share frames, so queues overlap).
    pub fn largest_queue(&self) -> usize {
        self.table
            .values()
            .map(|o| o.queue.used())
            .max()
            .unwrap_or(0)
    }

    /// Sends `media` to `to`; returns what the state machine must hear when it did not go.
    pub fn deliver(&mut self, to: SubscriberId, media: Outgoing) -> Option<Input> {
        let outlet = self.table.get(&to)?;
        let (message, cost) = match media {
            Outgoing::Codecs(codecs) => {
                outlet.recipient.do_send(SubscriberMedia::Codecs(codecs));
                return None;
            }
            Outgoing::Stopped { reason, failed } => {
                outlet
                    .recipient
                    .do_send(SubscriberMedia::Stopped { reason, failed });
                return None;
            }
            Outgoing::Frame(frame) => {
                let cost = frame.cost_bytes();
                (Ok(frame), cost)
            }
            Outgoing::Replay(frames) => {
                let cost = frames.iter().map(MediaFrame::cost_bytes).sum();
                (Err(frames), cost)
            }
        };
        // A queue at its limit in bytes is as full as a full mailbox.
        let Some(charge) = outlet.queue.try_charge(cost) else {
            return Some(Input::DeliveryFailed { id: to });
        };
        let message = match message {
            Ok(frame) => SubscriberMedia::Frame(frame, charge),
            Err(frames) => SubscriberMedia::Replay(frames, charge),
        };
        match outlet.recipient.try_send(message) {
            Ok(()) => None,
            Err(SendError::Full(_)) => Some(Input::DeliveryFailed { id: to }),
            Err(SendError::Closed(_)) => {
                self.table.remove(&to);
                Some(Input::SubscriberGone { id: to })
            }
        }
    }
}
