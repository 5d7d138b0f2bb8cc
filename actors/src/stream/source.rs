//! A capture's connection to its source: for each connection (a generation) a fresh
//! normalizer and a reader (from the capture's [`SourceStarter`]), both charging the
//! capture's ingest budget. It holds the current reader's stop handle and nothing else:
//! when to connect, and when to give up, is the state machine's decision.

use actix::prelude::*;
use pullcast::config::CaptureSettings;

use super::budget::{ByteBudget, SharedBudget};
use super::normalizer::NormalizerActor;
use super::{SourceContext, SourceStarter};
use crate::messages::{PullRequest, ReaderEvent, SourceMedia, SourceMediaEnded, StopSource};

/// Where a connection reports: the capture's supervisor.
pub struct SourceInbox {
    /// Connection events, from the reader.
    pub events: Recipient<ReaderEvent>,
    /// Frames and codec changes, from the normalizer.
    pub media: Recipient<SourceMedia>,
    /// The end of the media, from the normalizer, after the frames before it.
    pub ended: Recipient<SourceMediaEnded>,
}

/// The capture's source: how it starts one, and the one running.
pub struct Source {
    starter: SourceStarter,
    /// Media between the socket and the supervisor (bytes), shared with the reader and the
    /// normalizer of every connection.
    ingest: SharedBudget,
    /// The current connection's generation and how to stop its reader.
    current: Option<(u64, Recipient<StopSource>)>,
}

impl Source {
    /// A source started by `starter`, whose media in flight is bounded by `ingest_bytes`.
    pub fn new(starter: SourceStarter, ingest_bytes: usize) -> Self {
        Self {
            starter,
            ingest: ByteBudget::new(ingest_bytes),
            current: None,
        }
    }

    /// Starts connection `generation` of the capture named `label` in logs.
    pub fn start(
        &mut self,
        generation: u64,
        label: String,
        request: &PullRequest,
        settings: &CaptureSettings,
        inbox: SourceInbox,
    ) {
        let normalizer = NormalizerActor::new(
            label,
            inbox.media,
            inbox.ended,
            generation,
            self.ingest.clone(),
        )
        .start();
        let reader = (self.starter)(SourceContext {
            url: request.url.clone(),
            settings: settings.clone(),
            may_pull_private: request.may_pull_private,
            events: inbox.events,
            tags: normalizer.clone().recipient(),
            media_end: normalizer.recipient(),
            ingest: self.ingest.clone(),
        });
        self.current = Some((generation, reader));
    }

    /// Stops the current connection's reader, if one runs.
    pub fn stop(&mut self) {
        if let Some((_, reader)) = self.current.take() {
            reader.do_send(StopSource);
        }
    }

    /// Connection `generation` ended by itself: its reader has stopped already.
    pub fn ended(&mut self, generation: u64) {
        if self.current.as_ref().is_some_and(|(g, _)| *g == generation) {
            self.current = None;
        }
    }

    /// The bytes in flight between the socket and the supervisor.
    pub fn queued(&self) -> usize {
        self.ingest.used()
    }
}
