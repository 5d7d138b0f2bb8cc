//! `VideoTranscoderActor`: the one B-frame → Constrained Baseline transcoder of a capture, on
//! its own thread.
//!
//! The supervisor starts it when a capture with B-frames has its first WebRTC viewer and
//! stops it with the last, feeds it the original access units, and gets `TranscodedVideo`
//! back to fan out to WebRTC viewers (recordings keep the original). It wraps the pure
//! `pullcast::video::transcode::BFrameTranscoder`; a frame that fails is logged (once per
//! kind of failure) and skipped. Live frames go in with the time they reach it, so a
//! transcoder that fell behind catches up by skipping pictures, not by a burst.

use pullcast::report_once::ReportOnce;

use actix::prelude::*;
use log::{info, warn};
use pullcast::media::MediaFrame;
use pullcast::video::transcode::{BFrameTranscoder, TranscodeSettings};

use crate::messages::{
    ForceKeyframe, ResetVideoTranscode, TranscodeBacklog, TranscodeVideo, TranscodedVideo,
};
use crate::telemetry::now_us;

/// B-frames → no B-frames, for one capture.
pub struct VideoTranscoderActor {
    label: String,
    transcoder: Option<BFrameTranscoder>,
    output: Recipient<TranscodedVideo>,
    reported: ReportOnce,
}

impl VideoTranscoderActor {
    pub fn new(
        label: String,
        settings: TranscodeSettings,
        output: Recipient<TranscodedVideo>,
    ) -> Self {
        let mut me = Self {
            label,
            transcoder: None,
            output,
            reported: ReportOnce::new(16),
        };
        match BFrameTranscoder::new(settings) {
            Ok(t) => me.transcoder = Some(t),
            Err(e) => me.report(e),
        }
        me
    }

    /// Sends what the transcoder made, or reports why it could not.
    fn send(&mut self, out: Result<Vec<MediaFrame>, String>) {
        match out {
            Ok(frames) if !frames.is_empty() => self.output.do_send(TranscodedVideo { frames }),
            Ok(_) => {}
            Err(e) => self.report(e),
        }
    }

    fn report(&mut self, problem: String) {
        if self.reported.first_time(&problem) {
            warn!(
                "{}: video transcoding: {problem} (reported once)",
                self.label
            );
        }
    }
}

impl Actor for VideoTranscoderActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(t) = &self.transcoder {
            if t.decode_errors() > 0 {
                info!(
                    "{}: video transcoder stopped ({} pictures could not be decoded)",
                    self.label,
                    t.decode_errors()
                );
            }
        }
    }
}

impl Handler<TranscodeVideo> for VideoTranscoderActor {
    type Result = ();

    fn handle(&mut self, msg: TranscodeVideo, _ctx: &mut Self::Context) {
        if let Some(t) = self.transcoder.as_mut() {
            let out = t.push_live(&msg.frame, now_us());
            self.send(out);
        }
    }
}

impl Handler<TranscodeBacklog> for VideoTranscoderActor {
    type Result = ();

    fn handle(&mut self, msg: TranscodeBacklog, _ctx: &mut Self::Context) {
        if let Some(t) = self.transcoder.as_mut() {
            let out = t.push_backlog(&msg.frames);
            self.send(out);
        }
    }
}

impl Handler<ResetVideoTranscode> for VideoTranscoderActor {
    type Result = ();

    fn handle(&mut self, _msg: ResetVideoTranscode, _ctx: &mut Self::Context) {
        if let Some(t) = self.transcoder.as_mut() {
            if let Err(e) = t.reset() {
                self.report(e);
            }
        }
    }
}

impl Handler<ForceKeyframe> for VideoTranscoderActor {
    type Result = ();

    fn handle(&mut self, _msg: ForceKeyframe, _ctx: &mut Self::Context) {
        if let Some(t) = self.transcoder.as_mut() {
            t.request_keyframe();
        }
    }
}
