//! Where a capture's subscribers take their media. An actor subscriber (a recorder, a test)
//! has one recipient and one byte queue; a WebRTC viewer's media plane lives on a media port
//! worker, and the viewers one worker serves share one queue there: a live frame goes to
//! that worker once, naming every one of them that may have it ([`Outlets::deliver_frame`]).
//! Frames and replays go out with `try_send` within the queue; what does not go out comes
//! back as the inputs the state machine must hear (`DeliveryFailed`, `SubscriberGone`), one
//! per subscriber it missed. The rare and essential (codecs, the end) always go to an
//! actor; a port viewer's codecs go in line with its frames (lost, they close its gate).

use std::collections::HashMap;

use actix::prelude::*;
use pullcast::capture::{Input, Outgoing, SubscriberId};

use pullcast::media::MediaFrame;

use super::budget::{ByteBudget, Charge, SharedBudget};
use crate::messages::SubscriberMedia;
use crate::webrtc::media_port::{MediaPort, NotQueued};

/// How one subscriber is reached.
enum Way {
    /// An actor: everything goes to its recipient.
    Actor(Recipient<SubscriberMedia>),
    /// A viewer on a media port: media and codecs go to the worker that owns `key`, the end
    /// to `control`.
    Port {
        port: MediaPort,
        key: u64,
        worker: usize,
        control: Recipient<SubscriberMedia>,
    },
}

/// One subscriber's way in.
struct Outlet {
    way: Way,
    /// What its queue holds, in bytes (a port viewer shares its worker's).
    queue: SharedBudget,
}

/// Every subscriber's outlet.
pub struct Outlets {
    table: HashMap<SubscriberId, Outlet>,
    /// The queue of each media port worker this capture's viewers are on.
    worker_queues: Vec<(MediaPort, usize, SharedBudget)>,
    /// Each queue's limit, in bytes.
    queue_bytes: usize,
    /// A port worker's queue's limit, in messages (an actor's is its mailbox).
    queue_frames: usize,
}

/// Port viewers of one frame, gathered by worker.
struct WorkerGroup {
    port: MediaPort,
    worker: usize,
    queue: SharedBudget,
    ids: Vec<SubscriberId>,
    keys: Vec<u64>,
}

impl Outlets {
    /// Outlets whose queues hold `queue_bytes` each, and a port worker's queue at most
    /// `queue_frames` messages.
    pub fn new(queue_bytes: usize, queue_frames: usize) -> Self {
        Self {
            table: HashMap::new(),
            worker_queues: Vec::new(),
            queue_bytes,
            queue_frames,
        }
    }

    /// A charge of `cost` bytes on port worker queue `queue`, unless it is full in bytes or
    /// in messages.
    fn charge_worker_queue(&self, queue: &SharedBudget, cost: usize) -> Option<Charge> {
        if queue.messages() >= self.queue_frames {
            return None;
        }
        queue.try_charge(cost)
    }

    /// An actor subscriber.
    pub fn insert(&mut self, id: SubscriberId, recipient: Recipient<SubscriberMedia>) {
        let queue = ByteBudget::new(self.queue_bytes);
        let way = Way::Actor(recipient);
        self.table.insert(id, Outlet { way, queue });
    }

    /// A viewer whose media plane is `key` on `port`; the capture's end goes to `control`.
    pub fn insert_on_port(
        &mut self,
        id: SubscriberId,
        control: Recipient<SubscriberMedia>,
        port: MediaPort,
        key: u64,
    ) {
        let worker = port.worker_of(key);
        let queue = self.worker_queue(&port, worker);
        let way = Way::Port {
            port,
            key,
            worker,
            control,
        };
        self.table.insert(id, Outlet { way, queue });
    }

    /// The queue of `port`'s worker `worker` (made at its first viewer).
    fn worker_queue(&mut self, port: &MediaPort, worker: usize) -> SharedBudget {
        let known = self
            .worker_queues
            .iter()
            .find(|(p, w, _)| *w == worker && p.same_port(port));
        if let Some((_, _, queue)) = known {
            return queue.clone();
        }
        let queue = ByteBudget::new(self.queue_bytes);
        (self.worker_queues).push((port.clone(), worker, queue.clone()));
        queue
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
        if let Outgoing::Frame(frame) = &media {
            if self.is_on_port(to) {
                return self.deliver_frame(frame, &[to]).into_iter().next();
            }
        }
        let outlet = self.table.get(&to)?;
        let recipient = match &outlet.way {
            Way::Actor(recipient) => recipient,
            Way::Port {
                port, key, control, ..
            } => {
                let sent = match media {
                    // In line with the frames; lost with a worker that is behind, and
                    // then the capture's gate holds the video until a keyframe.
                    Outgoing::Codecs(codecs) => port.send_codecs(*key, codecs.video.is_some()),
                    Outgoing::Stopped { reason, failed } => {
                        control.do_send(SubscriberMedia::Stopped { reason, failed });
                        return None;
                    }
                    // Sent above.
                    Outgoing::Frame(_) => return None,
                    Outgoing::Replay(frames) => {
                        let cost = frames.iter().map(MediaFrame::cost_bytes).sum();
                        let Some(charge) = self.charge_worker_queue(&outlet.queue, cost) else {
                            return Some(Input::DeliveryFailed { id: to });
                        };
                        port.send_replay(*key, frames, charge)
                    }
                };
                return self.not_queued(to, sent);
            }
        };
        let (message, cost) = match media {
            Outgoing::Codecs(codecs) => {
                recipient.do_send(SubscriberMedia::Codecs(codecs));
                return None;
            }
            Outgoing::Stopped { reason, failed } => {
                recipient.do_send(SubscriberMedia::Stopped { reason, failed });
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
        match recipient.try_send(message) {
            Ok(()) => None,
            Err(SendError::Full(_)) => Some(Input::DeliveryFailed { id: to }),
            Err(SendError::Closed(_)) => {
                self.table.remove(&to);
                Some(Input::SubscriberGone { id: to })
            }
        }
    }

    /// Whether `id` is a viewer on a media port.
    fn is_on_port(&self, id: SubscriberId) -> bool {
        self.table
            .get(&id)
            .is_some_and(|o| matches!(o.way, Way::Port { .. }))
    }

    /// Sends one live `frame` to every subscriber in `to`: each actor on its own, the port
    /// viewers in one message per worker. Returns what the machine must hear, one input per
    /// subscriber that missed it.
    pub fn deliver_frame(&mut self, frame: &MediaFrame, to: &[SubscriberId]) -> Vec<Input> {
        let mut missed = Vec::new();
        let mut groups: Vec<WorkerGroup> = Vec::new();
        for &id in to {
            let Some(outlet) = self.table.get(&id) else {
                continue;
            };
            let Way::Port {
                port, key, worker, ..
            } = &outlet.way
            else {
                missed.extend(self.deliver(id, Outgoing::Frame(frame.clone())));
                continue;
            };
            let group = groups
                .iter_mut()
                .find(|g| g.worker == *worker && g.port.same_port(port));
            match group {
                Some(group) => {
                    group.ids.push(id);
                    group.keys.push(*key);
                }
                None => groups.push(WorkerGroup {
                    port: port.clone(),
                    worker: *worker,
                    queue: outlet.queue.clone(),
                    ids: vec![id],
                    keys: vec![*key],
                }),
            }
        }
        for group in groups {
            let sent = match self.charge_worker_queue(&group.queue, frame.cost_bytes()) {
                Some(charge) => {
                    let (worker, keys) = (group.worker, group.keys);
                    (group.port).send_frame(worker, frame.clone(), keys, charge)
                }
                None => Err(NotQueued::Full),
            };
            for id in group.ids {
                missed.extend(self.not_queued(id, sent));
            }
        }
        missed
    }

    /// What the machine must hear of `id` when its media was `sent` (or not).
    fn not_queued(&mut self, id: SubscriberId, sent: Result<(), NotQueued>) -> Option<Input> {
        match sent {
            Ok(()) => None,
            Err(NotQueued::Full) => Some(Input::DeliveryFailed { id }),
            Err(NotQueued::Closed) => {
                self.table.remove(&id);
                Some(Input::SubscriberGone { id })
            }
        }
    }
}
