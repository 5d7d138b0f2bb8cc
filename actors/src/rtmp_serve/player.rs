//! [`RtmpPlayer`]: one RTMP play of one capture, on one message stream of one connection.
//!
//! A subscriber with `Delivery::Original` (the source's H.264 and AAC): `onMetaData` and
//! the sequence headers first (`pullcast::flv::write::FlvTags`), then the cached GOP from its
//! keyframe, then live frames, each written as RTMP messages (`pullcast::rtmp::serve::wire`)
//! into the connection's byte queue. A player that reads too slowly loses whole frames and
//! resumes at the next keyframe. The capture's end is told to the player
//! (`NetStream.Play.Stop`). It never touches the socket and never parses media.

use std::time::Duration;

use actix::prelude::*;
use log::{debug, info};
use pullcast::flv::write::FlvTags;
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
    fn send(&mut self, out: Vec<u8>, ctx: &mut Context<Self>) {
        match self.queue.media(out) {
            Ok(()) => {}
            Err(QueueError::Full) => self.tags.skip_to_keyframe(),
            Err(QueueError::Closed) => {
                debug!("{}: the connection is gone", self.label);
                ctx.stop();
            }
        }
    }

    fn push(&mut self, frame: &pullcast::media::MediaFrame, out: &mut Vec<u8>) {
        let stream_id = self.stream_id;
        self.tags.push(frame, |kind, timestamp, body| {
            wire::media(out, stream_id, kind, timestamp, body);
        });
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
                return;
            }
            SubscriberMedia::Frame(frame, _charge) => self.push(&frame, &mut out),
            SubscriberMedia::Replay(frames, _charge) => {
                for frame in &frames {
                    self.push(frame, &mut out);
                }
            }
            SubscriberMedia::Stopped { reason, .. } => {
                info!("{}: the stream ended: {reason}", self.label);
                wire::play_stopped(&mut out, self.stream_id, &reason);
                let _ = self.queue.control(out);
                ctx.stop();
                return;
            }
        }
        self.send(out, ctx);
    }
}

impl Handler<EndPlay> for RtmpPlayer {
    type Result = ();

    fn handle(&mut self, _msg: EndPlay, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
