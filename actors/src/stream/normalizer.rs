//! `NormalizerActor`: wraps the pure `pullcast::normalize::Normalizer` for one capture.
//!
//! FLV tags in (from the reader), normalized events out (to the supervisor). The reader's
//! `MediaEnd` (publisher left, connection ended) comes the same way and is passed on in its
//! place, after the frames of the tags before it. A bad tag is logged — once per distinct
//! problem, so a broken source cannot flood the log — and dropped; the capture goes on. No
//! parsing happens here. A panic in the parser (a bug) ends the connection's media with
//! `MediaEnd::Crashed`, and the capture `FAILED`.

use pullcast::report_once::ReportOnce;

use actix::prelude::*;
use log::warn;
use pullcast::media::Track;
use pullcast::normalize::{NormalizedEvent, Normalizer};

use super::budget::{SharedBudget, MESSAGE_OVERHEAD};
use crate::messages::{FlvTag, MediaEnd, SourceMedia, SourceMediaEnded};
use crate::panic_guard;

/// Tags → frames for one capture.
pub struct NormalizerActor {
    label: String,
    normalizer: Normalizer,
    output: Recipient<SourceMedia>,
    ended: Recipient<SourceMediaEnded>,
    generation: u64,
    reported: ReportOnce,
    /// The capture's ingest queue: each event sent on is charged on it.
    ingest: SharedBudget,
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
        ingest: SharedBudget,
    ) -> Self {
        Self {
            ingest,
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

    fn handle(&mut self, tag: FlvTag, ctx: &mut Self::Context) {
        let parsed = panic_guard::catch(|| match tag.track {
            Track::Video => self.normalizer.handle_video(tag.timestamp, &tag.body),
            Track::Audio => self.normalizer.handle_audio(tag.timestamp, &tag.body),
        });
        let result = match parsed {
            Ok(result) => result,
            Err(panic) => {
                // The parser's state is suspect: this connection's media ends here, and the
                // capture with it.
                log::error!("{}: caught a panic in the normalizer: {panic}", self.label);
                self.ended.do_send(SourceMediaEnded {
                    generation: self.generation,
                    end: MediaEnd::Crashed {
                        reason: panic.reason("the normalizer"),
                    },
                });
                ctx.stop();
                return;
            }
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
            let cost = match &event {
                NormalizedEvent::Frame(frame) => frame.cost_bytes(),
                NormalizedEvent::CodecChange(_) => MESSAGE_OVERHEAD,
            };
            self.output.do_send(SourceMedia {
                generation: self.generation,
                event,
                charge: self.ingest.charge(cost),
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
