//! `AudioTranscoderActor`: the one AAC → Opus transcoder of a capture, on its own thread.
//!
//! The supervisor starts it with the first WebRTC viewer and stops it with the last, feeds it
//! the AAC configuration and frames, and gets `TranscodedAudio` back to fan out. It wraps the
//! pure `pullcast::audio::transcoder::AudioTranscoder`; a frame that fails is logged (once per
//! kind of failure) and skipped.

use pullcast::report_once::ReportOnce;

use actix::prelude::*;
use log::warn;
use pullcast::audio::transcoder::AudioTranscoder;

use crate::messages::{TranscodeAudio, TranscodedAudio, TranscoderConfig};

/// AAC → Opus for one capture.
pub struct AudioTranscoderActor {
    label: String,
    bitrate: u32,
    transcoder: Option<AudioTranscoder>,
    output: Recipient<TranscodedAudio>,
    reported: ReportOnce,
}

impl AudioTranscoderActor {
    pub fn new(label: String, bitrate: u32, output: Recipient<TranscodedAudio>) -> Self {
        Self {
            label,
            bitrate,
            transcoder: None,
            output,
            reported: ReportOnce::new(16),
        }
    }

    fn report(&mut self, problem: String) {
        if self.reported.first_time(&problem) {
            warn!(
                "{}: audio transcoding: {problem} (reported once)",
                self.label
            );
        }
    }
}

impl Actor for AudioTranscoderActor {
    type Context = Context<Self>;
}

impl Handler<TranscoderConfig> for AudioTranscoderActor {
    type Result = ();

    fn handle(&mut self, msg: TranscoderConfig, _ctx: &mut Self::Context) {
        if self.transcoder.is_none() {
            match AudioTranscoder::new(self.bitrate.min(i32::MAX as u32) as i32) {
                Ok(t) => self.transcoder = Some(t),
                Err(e) => return self.report(e),
            }
        }
        if let Some(t) = self.transcoder.as_mut() {
            if let Err(e) = t.set_config(&msg.config) {
                self.report(e);
            }
        }
    }
}

impl Handler<TranscodeAudio> for AudioTranscoderActor {
    type Result = ();

    fn handle(&mut self, msg: TranscodeAudio, _ctx: &mut Self::Context) {
        let Some(t) = self.transcoder.as_mut() else {
            return;
        };
        match t.push(&msg.frame) {
            Ok(frames) if frames.is_empty() => {}
            Ok(frames) => self.output.do_send(TranscodedAudio { frames }),
            Err(e) => self.report(e),
        }
    }
}
