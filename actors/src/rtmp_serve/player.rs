//! [`RtmpPlayer`]: one RTMP play of one capture, on one message stream of one connection.
//!
//! A subscriber with `Delivery::Original` (the source's H.264 and AAC): `onMetaData` and
//! the sequence headers first (`pullcast::flv::write::FlvTags`, timestamps = the frames'
//! decode times), then the cached GOP from its keyframe, then live frames, each an RTMP
//! message (`pullcast::rtmp::serve::wire`) queued for the connection. On message stream 1
//! (nearly every client's) a frame's message is the capture's shared one
//! (`CaptureHandle::rtmp_messages`): written once, sent by every player. A player that reads too slowly loses whole frames and
//! resumes at the next keyframe. The capture's end is told to the player
//! (`NetStream.Play.Stop`). It never touches the socket and never parses media.

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, info};
use pullcast::flv::write::{audio_body, tag_kind, video_body, FlvTags};
use pullcast::media::{MediaFrame, Track};
use pullcast::rtmp::serve::wire;
use uuid::Uuid;

use super::out_queue::{OutQueue, QueueError};
use crate::messages::{CaptureHandle, Delivery, Subscribe, SubscriberMedia, Unsubscribe};
use crate::webrtc::engine::ViewerSlot;

/// How often a player with no frames flowing is looked at (connection gone: it ends).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Ends a player (its client deleted the stream, or the connection closed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndPlay;

pub struct RtmpPlayer {
    pub id: Uuid,
    pub label: String,
    pub capture: CaptureHandle,
    /// The message stream it plays on.
    pub stream_id: u32,
    pub queue: OutQueue,
    pub tags: FlvTags,
    pub mailbox_frames: usize,
    /// Counted against the viewer limits while it exists.
    pub _slot: ViewerSlot,
    /// ... and in its capture's RTMP viewers.
    pub _counted: crate::telemetry::ViewerCount,
}

impl RtmpPlayer {
    fn send(&mut self, out: Vec<u8>, ctx: &mut Context<Self>) -> bool {
        self.send_bytes(Bytes::from(out), ctx)
    }

    /// Queues one message; a full queue loses it (video resumes at a keyframe), a closed
    /// one ends the player (false).
    fn send_bytes(&mut self, bytes: Bytes, ctx: &mut Context<Self>) -> bool {
        match self.queue.media(bytes) {
            Ok(()) => true,
            Err(QueueError::Full) => {
                self.tags.skip_to_keyframe();
                true
            }
            Err(QueueError::Closed) => {
                debug!("{}: the connection is gone", self.label);
                ctx.stop();
                false
            }
        }
    }

    /// Queues `frame` (after its sequence headers when due): the capture's shared message
    /// when this play is on message stream 1 (every player's bytes for the frame are then the
    /// same), else its own. Returns false when the player is gone.
    fn push(&mut self, frame: &MediaFrame, ctx: &mut Context<Self>) -> bool {
        let body = || match frame.track {
            Track::Video => video_body(frame),
            Track::Audio => audio_body(&frame.data),
        };
        // A frame with nothing to send is skipped before the tags count it.
        if frame.data.is_empty() {
            return true;
        }
        let Some(admitted) = self.tags.admit(frame) else {
            return true;
        };
        let stream_id = self.stream_id;
        if !admitted.sequence_headers.is_empty() {
            let mut out = Vec::new();
            for (kind, header) in &admitted.sequence_headers {
                wire::media(&mut out, stream_id, *kind, admitted.timestamp, header);
            }
            if !self.send(out, ctx) {
                return false;
            }
        }
        let kind = tag_kind(frame.track);
        let message = if stream_id == 1 {
            self.capture.rtmp_messages.get_or_make(frame, || {
                let body = body()?;
                let mut out = Vec::with_capacity(body.len() + 32);
                wire::media(&mut out, 1, kind, admitted.timestamp, &body);
                Some(out)
            })
        } else {
            body().map(|body| {
                let mut out = Vec::with_capacity(body.len() + 32);
                wire::media(&mut out, stream_id, kind, admitted.timestamp, &body);
                Bytes::from(out)
            })
        };
        match message {
            Some(bytes) => {
                crate::telemetry::count_egress_frames(crate::telemetry::ViewerProtocol::Rtmp, 1);
                self.send_bytes(bytes, ctx)
            }
            None => true,
        }
    }
}

impl Actor for RtmpPlayer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_frames);
        if self.capture.is_gone() {
            let why = self
                .capture
                .end
                .reason()
                .unwrap_or("it stopped")
                .to_string();
            info!("{}: the stream ended before it started: {why}", self.label);
            let mut out = Vec::new();
            wire::play_stopped(&mut out, self.stream_id, &why);
            let _ = self.queue.control(out);
            ctx.stop();
            return;
        }
        info!("{}: playing", self.label);
        self.capture.subscribe.do_send(Subscribe {
            id: self.id,
            recipient: ctx.address().recipient(),
            delivery: Delivery::Original,
        });
        ctx.run_interval(IDLE_CHECK, |act, ctx| {
            if act.queue.is_closed() {
                debug!("{}: the connection is gone", act.label);
                ctx.stop();
            } else if act.capture.is_gone() {
                info!("{}: the stream ended", act.label);
                let mut out = Vec::new();
                let why = act.capture.end.reason().unwrap_or("it stopped").to_string();
                wire::play_stopped(&mut out, act.stream_id, &why);
                let _ = act.queue.control(out);
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.capture
            .unsubscribe
            .do_send(Unsubscribe { id: self.id });
        info!("{}: ended", self.label);
    }
}

impl Handler<SubscriberMedia> for RtmpPlayer {
    type Result = ();

    fn handle(&mut self, msg: SubscriberMedia, ctx: &mut Self::Context) {
        let mut out = Vec::new();
        match msg {
            SubscriberMedia::Codecs(codecs) => {
                wire::codec_metadata(&mut out, self.stream_id, &codecs);
                self.tags.codecs(codecs);
                if self.queue.control(out).is_err() {
                    ctx.stop();
                }
            }
            SubscriberMedia::Frame(frame, _charge) => {
                self.push(&frame, ctx);
            }
            SubscriberMedia::Replay(frames, _charge) => {
                for frame in &frames {
                    if !self.push(frame, ctx) {
                        break;
                    }
                }
            }
            SubscriberMedia::Stopped { reason, .. } => {
                info!("{}: the stream ended: {reason}", self.label);
                wire::play_stopped(&mut out, self.stream_id, &reason);
                let _ = self.queue.control(out);
                ctx.stop();
            }
        }
    }
}

impl Handler<EndPlay> for RtmpPlayer {
    type Result = ();

    fn handle(&mut self, _msg: EndPlay, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
