//! `NormalizerActor`: wraps the pure `pullcast::normalize::Normalizer` for one capture.
//!
//! FLV tags in (from the reader), normalized events out (to the supervisor). The reader's
//! `MediaEnd` (publisher left, connection ended) comes the same way and is passed on in its
//! place, after the frames of the tags before it. A bad tag is logged — once per distinct
//! problem, so a broken source cannot flood the log — and dropped; the capture goes on. No
//! parsing happens here.

use pullcast::report_once::ReportOnce;

use actix::prelude::*;
use log::warn;
use pullcast::media::Track;
use pullcast::normalize::{NormalizedEvent, Normalizer};

use crate::messages::{FlvTag, MediaEnd, SourceMedia, SourceMediaEnded};

/// Tags → frames for one capture.
pub struct NormalizerActor {
    label: String,
    normalizer: Normalizer,
    output: Recipient<SourceMedia>,
    ended: Recipient<SourceMediaEnded>,
    generation: u64,
    reported: ReportOnce,
}

impl NormalizerActor {
    /// `label` names the capture in log lines; `generation` numbers the connection whose
    /// tags this normalizer gets (one normalizer per connection: a new connection starts
    /// with a fresh timestamp and codec state).
    pub fn new(
        label: String,
        output: Recipient<SourceMedia>,
        ended: Recipient<SourceMediaEnded>,
        generation: u64,
    ) -> Self {
        Self {
            label,
            normalizer: Normalizer::new(),
            output,
            ended,
            generation,
            reported: ReportOnce::new(32),
        }
    }
}

impl Actor for NormalizerActor {
    type Context = Context<Self>;
}

impl Handler<FlvTag> for NormalizerActor {
    type Result = ();

    fn handle(&mut self, tag: FlvTag, _ctx: &mut Self::Context) {
        let result = match tag.track {
            Track::Video => self.normalizer.handle_video(tag.timestamp, &tag.body),
            Track::Audio => self.normalizer.handle_audio(tag.timestamp, &tag.body),
        };
        if let Err(e) = result {
            let text = e.to_string();
            if self.reported.first_time(&text) {
                warn!(
                    "{}: {text} (further identical problems are not logged)",
                    self.label
                );
            }
        }
        while let Some(mut event) = self.normalizer.poll() {
            if let NormalizedEvent::Frame(frame) = &mut event {
                frame.ingest_us = tag.received_us;
            }
            self.output.do_send(SourceMedia {
                generation: self.generation,
                event,
            });
        }
    }
}

impl Handler<MediaEnd> for NormalizerActor {
    type Result = ();

    fn handle(&mut self, end: MediaEnd, _ctx: &mut Self::Context) {
        // Every frame of the tags before it has been sent on: it arrives after them.
        self.ended.do_send(SourceMediaEnded {
            generation: self.generation,
            end,
        });
    }
}
