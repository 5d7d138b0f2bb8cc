//! The actors of one capture: a [`supervisor::StreamSupervisor`] owning an
//! [`rtmp_reader::RtmpReader`] (the socket) and a [`normalizer::NormalizerActor`] (tags →
//! frames), and fanning frames out to subscribers.
//!
//! [`SourceStarter`] is how a supervisor gets its reader: production code starts an
//! `RtmpReader`; tests pass a fake that hands them the reader's recipients instead.

pub mod audio_transcoder;
pub mod budget;
pub mod children;
pub mod connect;
pub mod inputs;
pub mod normalizer;
pub mod outlets;
pub mod plumbing;
pub mod published;
pub mod recorder;
pub mod rtmp_reader;
pub mod snapshot;
pub mod source;
pub mod supervisor;
pub mod video_transcoder;

use std::sync::Arc;

use actix::prelude::*;
use pullcast::config::CaptureSettings;
use pullcast::net::pull_guard::PullGuard;
use pullcast::rtmp::RtmpUrl;

use crate::messages::{FlvTag, MediaEnd, ReaderEvent, StopSource};
use budget::SharedBudget;

/// Everything a source needs to start: what to pull and where to report.
pub struct SourceContext {
    pub url: RtmpUrl,
    pub settings: CaptureSettings,
    /// The caller's `pull_private` permission ([`crate::messages::PullRequest`]): may the
    /// source be at a private or reserved address?
    pub may_pull_private: bool,
    /// Connection events go to the supervisor.
    pub events: Recipient<ReaderEvent>,
    /// Tags go to the normalizer.
    pub tags: Recipient<FlvTag>,
    /// The end of the media (publisher left, connection ended): to the normalizer too, in
    /// line with the tags.
    pub media_end: Recipient<MediaEnd>,
    /// The capture's ingest queue: each tag sent is charged on it, and the reader reads no
    /// more from the socket while it is over its limit.
    pub ingest: SharedBudget,
}

/// Starts a source for a capture and returns how to stop it.
pub type SourceStarter = Arc<dyn Fn(SourceContext) -> Recipient<StopSource> + Send + Sync>;

/// The production starter: an [`rtmp_reader::RtmpReader`] on the current arbiter, which
/// connects only where `guard` allows (the configuration's `[pull]` section).
pub fn rtmp_source(guard: Arc<PullGuard>) -> SourceStarter {
    Arc::new(move |ctx: SourceContext| {
        rtmp_reader::RtmpReader::new(ctx, guard.clone())
            .start()
            .recipient()
    })
}
