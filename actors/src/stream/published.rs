//! A published capture's source: the RTMP connection of its publisher instead of a reader
//! that dials. The capture's [`SourceStarter`] ([`PublishSlot::starter`]) does not connect
//! anywhere: each connection (generation) the capture starts is parked in the slot until a
//! publisher takes it ([`PublishSlot::take`]) and feeds it tags as a reader would; the first
//! one is taken by the publisher whose `publish` made the capture, later ones by a publisher
//! of the same name coming back (the capture's state machine waits `publish_grace_ms` for
//! that). Stopping the source (terminate, the capture's end) tells the publisher's
//! connection to close. Nothing here reads a socket or media.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{oneshot, Notify};

use super::{SourceContext, SourceStarter};
use crate::messages::StopSource;

/// A parked source: what a publisher takes.
pub struct Attached {
    /// Where its tags and events go.
    pub context: SourceContext,
    /// Fires when the capture stops this source (the connection then closes).
    pub stop: oneshot::Receiver<()>,
}

#[derive(Default)]
struct SlotState {
    parked: Option<Attached>,
}

/// The meeting point of a published capture and its publishers.
#[derive(Clone, Default)]
pub struct PublishSlot {
    state: Arc<Mutex<SlotState>>,
    parked: Arc<Notify>,
}

impl PublishSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The capture's source starter: parks each new connection for a publisher.
    pub fn starter(&self) -> SourceStarter {
        let slot = self.clone();
        Arc::new(move |context: SourceContext| {
            let (tx, stop) = oneshot::channel();
            slot.lock().parked = Some(Attached { context, stop });
            slot.parked.notify_waiters();
            PublishedSource { stop: Some(tx) }.start().recipient()
        })
    }

    /// Whether a connection waits for a publisher (the last one left).
    pub fn is_waiting(&self) -> bool {
        self.lock().parked.is_some()
    }

    /// Takes the parked connection, waiting for it at most `limit` (the capture parks its
    /// first one as it starts).
    pub async fn take(&self, limit: Duration) -> Option<Attached> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.parked.notified();
            if let Some(attached) = self.lock().parked.take() {
                return Some(attached);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.lock().parked.take();
            }
        }
    }
}

/// Stands for one parked or attached connection towards the capture: `StopSource` closes
/// the publisher's connection (or, parked, just forgets it).
struct PublishedSource {
    stop: Option<oneshot::Sender<()>>,
}

impl Actor for PublishedSource {
    type Context = Context<Self>;
}

impl Handler<StopSource> for PublishedSource {
    type Result = ();

    fn handle(&mut self, _msg: StopSource, ctx: &mut Self::Context) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        ctx.stop();
    }
}
