//! [`RtmpFanout`]: every RTMP player of one capture on one RTMP arbiter, fed by one
//! subscription.
//!
//! It subscribes to the capture with `Delivery::Original` (the source's H.264 and AAC) and,
//! for each frame, writes the frame's RTMP message once (`pullcast::rtmp::serve::wire`,
//! timestamped with the frame's decode time, so the bytes are the same for every player on
//! message stream 1) and queues that `Bytes` for each of its players, deciding per player
//! with its `FlvTags` (`onMetaData` and sequence headers first, video from a keyframe). One
//! message per frame for all of them, not one per player. It keeps the frames since the
//! latest keyframe (within `capture.keyframe_cache_bytes`) so that a player who joins starts
//! at once. A player whose queue is full loses frames and resumes at a keyframe; one whose
//! connection is gone is dropped; the capture's end is told to every player
//! (`NetStream.Play.Stop`). It stops a while after its last player left. Never touches a
//! socket, never parses media.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, info};
use pullcast::flv::write::{audio_body, tag_kind, video_body, FlvTags};
use pullcast::media::{CodecSet, MediaFrame, Track};
use pullcast::rtmp::serve::wire;
use uuid::Uuid;

use super::out_queue::{OutQueue, QueueError};
use crate::messages::{CaptureHandle, Delivery, Subscribe, SubscriberMedia, Unsubscribe};
use crate::telemetry::ViewerCount;
use crate::webrtc::engine::ViewerSlot;

/// How often the fan-out looks for gone connections, its capture's end, and idleness.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// A fan-out without players stops after this long.
const IDLE_FOR: Duration = Duration::from_secs(5);

thread_local! {
    /// This arbiter's fan-outs, by capture.
    static FANOUTS: RefCell<HashMap<Uuid, Addr<RtmpFanout>>> = RefCell::new(HashMap::new());
}

/// One play, as the connection decided it.
pub struct PlayerSpec {
    pub id: Uuid,
    pub label: String,
    /// The message stream it plays on.
    pub stream_id: u32,
    pub queue: OutQueue,
    /// Counted against the viewer limits while it exists (held, never read).
    pub _slot: ViewerSlot,
    /// ... and in its capture's RTMP viewers.
    pub _counted: ViewerCount,
}

struct Player {
    spec: PlayerSpec,
    tags: FlvTags,
}

/// Adds a player (it gets the metadata, the sequence headers and the kept frames at once).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddPlayer(pub PlayerSpec);

/// Removes a player (its client deleted the stream, or the connection closed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemovePlayer {
    pub id: Uuid,
}

/// The fan-out of `capture` on this arbiter, started if there is none.
pub fn fanout_for(capture: &CaptureHandle, settings: FanoutSettings) -> Addr<RtmpFanout> {
    FANOUTS.with(|fanouts| {
        let mut fanouts = fanouts.borrow_mut();
        if let Some(addr) = fanouts.get(&capture.id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let addr = RtmpFanout::new(capture.clone(), settings).start();
        fanouts.insert(capture.id, addr.clone());
        addr
    })
}

fn forget(capture: Uuid) {
    FANOUTS.with(|fanouts| {
        fanouts.borrow_mut().remove(&capture);
    });
}

/// How a fan-out is bounded.
#[derive(Debug, Clone, Copy)]
pub struct FanoutSettings {
    /// Frames its mailbox may hold (`capture.subscriber_queue_frames`).
    pub mailbox_frames: usize,
    /// Bytes of kept frames (`capture.keyframe_cache_bytes`).
    pub keep_bytes: usize,
}

pub struct RtmpFanout {
    /// Its subscription's id.
    id: Uuid,
    label: String,
    capture: CaptureHandle,
    settings: FanoutSettings,
    players: HashMap<Uuid, Player>,
    codecs: Option<CodecSet>,
    /// The frames since the latest video keyframe (or since the first frame, audio only).
    kept: Vec<MediaFrame>,
    kept_bytes: usize,
    /// Since when it has had no player.
    empty_since: Option<Instant>,
}

impl RtmpFanout {
    fn new(capture: CaptureHandle, settings: FanoutSettings) -> Self {
        let label = format!(
            "RTMP fan-out of {}",
            pullcast::access::redact_text(&capture.local_stream_name)
        );
        Self {
            id: Uuid::new_v4(),
            label,
            capture,
            settings,
            players: HashMap::new(),
            codecs: None,
            kept: Vec::new(),
            kept_bytes: 0,
            empty_since: Some(Instant::now()),
        }
    }

    /// Keeps `frame` for players who join later: a video keyframe starts over, a frame
    /// over the byte bound empties the store until the next keyframe.
    fn keep(&mut self, frame: &MediaFrame) {
        let video_keyframe = frame.track == Track::Video && frame.keyframe;
        if video_keyframe {
            self.kept.clear();
            self.kept_bytes = 0;
        } else if self.kept.is_empty() && self.has_video() {
            return;
        }
        self.kept_bytes += frame.cost_bytes();
        if self.kept_bytes > self.settings.keep_bytes {
            self.kept.clear();
            self.kept_bytes = 0;
            return;
        }
        self.kept.push(frame.clone());
    }

    fn has_video(&self) -> bool {
        self.codecs.as_ref().is_some_and(|c| c.video.is_some())
    }

    /// Sends `frame` to every player (or only to `only`): the frame's message is made once.
    fn send_frame(&mut self, frame: &MediaFrame, only: Option<Uuid>) {
        if frame.data.is_empty() {
            return;
        }
        let mut shared: Option<Option<Bytes>> = None;
        let mut gone = Vec::new();
        let mut sent = 0;
        for (id, player) in self.players.iter_mut() {
            if only.is_some_and(|o| o != *id) {
                continue;
            }
            let Some(admitted) = player.tags.admit(frame) else {
                continue;
            };
            let stream_id = player.spec.stream_id;
            let mut result = Ok(());
            if !admitted.sequence_headers.is_empty() {
                let mut out = Vec::new();
                for (kind, header) in &admitted.sequence_headers {
                    wire::media(&mut out, stream_id, *kind, admitted.timestamp, header);
                }
                result = player.spec.queue.media(Bytes::from(out));
            }
            let message = if stream_id == 1 {
                shared
                    .get_or_insert_with(|| message(frame, 1, admitted.timestamp))
                    .clone()
            } else {
                message(frame, stream_id, admitted.timestamp)
            };
            if let (Ok(()), Some(bytes)) = (&result, message) {
                result = player.spec.queue.media(bytes);
                sent += 1;
            }
            match result {
                Ok(()) => {}
                Err(QueueError::Full) => player.tags.skip_to_keyframe(),
                Err(QueueError::Closed) => gone.push(*id),
            }
        }
        crate::telemetry::count_egress_frames(crate::telemetry::ViewerProtocol::Rtmp, sent);
        for id in gone {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: Uuid) {
        if let Some(player) = self.players.remove(&id) {
            info!("{}: ended", player.spec.label);
        }
        if self.players.is_empty() {
            self.empty_since = Some(Instant::now());
        }
    }

    /// Tells every player the stream ended and stops.
    fn end(&mut self, reason: &str, ctx: &mut Context<Self>) {
        for player in self.players.values() {
            let mut out = Vec::new();
            wire::play_stopped(&mut out, player.spec.stream_id, reason);
            let _ = player.spec.queue.control(out);
        }
        forget(self.capture.id);
        ctx.stop();
    }
}

/// The RTMP message of `frame` on `stream_id` at `timestamp` (`None`: nothing to send).
fn message(frame: &MediaFrame, stream_id: u32, timestamp: u32) -> Option<Bytes> {
    let body = match frame.track {
        Track::Video => video_body(frame),
        Track::Audio => audio_body(&frame.data),
    }?;
    let mut out = Vec::with_capacity(body.len() + 32);
    wire::media(&mut out, stream_id, tag_kind(frame.track), timestamp, &body);
    Some(Bytes::from(out))
}

impl Actor for RtmpFanout {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.mailbox_frames);
        self.capture.subscribe.do_send(Subscribe {
            id: self.id,
            recipient: ctx.address().recipient(),
            delivery: Delivery::Original,
        });
        ctx.run_interval(CHECK_EVERY, |act, ctx| {
            let gone: Vec<Uuid> = act
                .players
                .iter()
                .filter(|(_, p)| p.spec.queue.is_closed())
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                debug!("{}: a connection is gone", act.label);
                act.remove(id);
            }
            if act.capture.is_gone() {
                let why = act.capture.end.reason().unwrap_or("it stopped").to_string();
                act.end(&why, ctx);
            } else if act.empty_since.is_some_and(|t| t.elapsed() >= IDLE_FOR) {
                forget(act.capture.id);
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.capture
            .unsubscribe
            .do_send(Unsubscribe { id: self.id });
        FANOUTS.with(|fanouts| {
            let mut fanouts = fanouts.borrow_mut();
            if fanouts
                .get(&self.capture.id)
                .is_some_and(|a| !a.connected())
            {
                fanouts.remove(&self.capture.id);
            }
        });
    }
}

impl Handler<AddPlayer> for RtmpFanout {
    type Result = ();

    fn handle(&mut self, msg: AddPlayer, _ctx: &mut Self::Context) {
        let spec = msg.0;
        let id = spec.id;
        info!("{}: playing", spec.label);
        let mut tags = FlvTags::absolute();
        if let Some(codecs) = &self.codecs {
            let mut out = Vec::new();
            wire::codec_metadata(&mut out, spec.stream_id, codecs);
            let _ = spec.queue.control(out);
            tags.codecs(codecs.clone());
        }
        self.players.insert(id, Player { spec, tags });
        self.empty_since = None;
        let kept = std::mem::take(&mut self.kept);
        for frame in &kept {
            self.send_frame(frame, Some(id));
        }
        self.kept = kept;
    }
}

impl Handler<RemovePlayer> for RtmpFanout {
    type Result = ();

    fn handle(&mut self, msg: RemovePlayer, _ctx: &mut Self::Context) {
        self.remove(msg.id);
    }
}

impl Handler<SubscriberMedia> for RtmpFanout {
    type Result = ();

    fn handle(&mut self, msg: SubscriberMedia, ctx: &mut Self::Context) {
        match msg {
            SubscriberMedia::Codecs(codecs) => {
                for player in self.players.values_mut() {
                    let mut out = Vec::new();
                    wire::codec_metadata(&mut out, player.spec.stream_id, &codecs);
                    let _ = player.spec.queue.control(out);
                    player.tags.codecs(codecs.clone());
                }
                self.kept.clear();
                self.kept_bytes = 0;
                self.codecs = Some(codecs);
            }
            SubscriberMedia::Frame(frame, _charge) => {
                self.keep(&frame);
                self.send_frame(&frame, None);
            }
            SubscriberMedia::Replay(frames, _charge) => {
                for frame in &frames {
                    self.keep(frame);
                    self.send_frame(frame, None);
                }
            }
            SubscriberMedia::Stopped { reason, .. } => {
                info!("{}: the stream ended: {reason}", self.label);
                self.end(&reason, ctx);
            }
        }
    }
}
