//! HTTP-FLV: `GET /{stream}.flv` plays a capture as one endless FLV file (flv.js,
//! mpegts.js, ffplay, VLC), on every listener the REST API is on (8081 by default).
//!
//! Access is a play like any other (`find_capture`, protocol `flv`: permission `play`, the
//! hook asked; an `rtmp://` name, percent-encoded, is pulled on demand with `pull`), and
//! each start counts against the caller's viewer-start rate. The player is an
//! [`FlvViewer`] actor subscribed to the capture with `Delivery::Original` (the source's
//! H.264 and AAC, B-frames and all): it writes the stream with `pullcast::flv::write`
//! (header, sequence headers, the cached GOP from its keyframe, then live frames) into a
//! queue that the response body drains, bounded in chunks and in bytes
//! ([`QUEUE_BYTES`]). A player that reads too slowly loses whole chunks and resumes at the
//! next keyframe; one that goes away ends its viewer at the next frame (or within
//! [`IDLE_CHECK`] when none flows). A page of another origin may read the stream when
//! `rest.cors_allowed_origins` allows it, as for WHEP. Each player counts against
//! `limits.max_viewers` and `max_viewers_per_capture` like a WebRTC viewer (503 past them).
//! Nothing here parses FLV or decides timestamps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use log::{debug, info};
use pullcast::access::redact_text;
use pullcast::flv::write::FlvStream;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::access::{Authenticated, Gate};
use super::admission::Admission;
use super::dto::error;
use super::play::{find_capture, PlayRefusal};
use super::whep::percent_decode;
use crate::messages::{CaptureHandle, Delivery, Subscribe, SubscriberMedia, Unsubscribe};
use crate::registry::Registry;
use crate::telemetry::{count_egress, count_egress_frames, ViewerCount, ViewerProtocol};
use crate::webrtc::engine::ViewerSlot;
use crate::webrtc::WebRtcEngine;

/// Chunks (a frame's tags each) queued for one player's response before it loses them.
const QUEUE_CHUNKS: usize = 256;
/// Bytes queued for one player's response before it loses chunks (a replayed GOP fits).
pub const QUEUE_BYTES: usize = 8 << 20;
/// How often a player with no frames flowing is looked at (gone: its viewer ends).
pub const IDLE_CHECK: Duration = Duration::from_secs(5);

/// What the FLV route needs.
#[derive(Clone)]
pub struct FlvState {
    pub registry: Addr<Registry>,
    /// Where the viewer limits are counted.
    pub engine: WebRtcEngine,
    /// Frames a player's actor may have queued (`capture.subscriber_queue_frames`).
    pub mailbox_frames: usize,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(r"/{name:.+\.flv}")
            .route(web::get().to(play))
            .route(web::head().to(play)),
    );
}

async fn play(
    state: web::Data<FlvState>,
    gate: web::Data<Gate>,
    admission: web::Data<Admission>,
    req: HttpRequest,
) -> HttpResponse {
    let caller = match Authenticated::extract(&req).await {
        Ok(Authenticated(caller)) => caller,
        Err(refusal) => return refusal.response(),
    };
    if let Err(too_many) = admission.start_viewer(&caller) {
        return too_many.response();
    }
    let show_uris = gate.shows_uris(&caller);
    // The path as sent (the router's copy is decoded already, lossily).
    let raw = req.uri().path().strip_prefix('/').unwrap_or("");
    let encoded = raw.strip_suffix(".flv").unwrap_or(raw);
    let Some(name) = percent_decode(encoded) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the stream name is not valid percent-encoded UTF-8",
        );
    };
    if name.is_empty() {
        return error(StatusCode::NOT_FOUND, "Stream not found");
    }
    let capture = match find_capture(&gate, &state.registry, &caller, &name, "flv").await {
        Ok(capture) => capture,
        Err(refusal) => return refusal.response(show_uris),
    };
    let slot = match state.engine.take_viewer_slot(capture.id) {
        Ok(slot) => slot,
        Err(e) => return PlayRefusal::Viewer(e).response(show_uris),
    };
    if req.method() == actix_web::http::Method::HEAD {
        return flv_response(&req, &gate).finish();
    }
    let (chunks, body) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
    let queued = Arc::new(AtomicUsize::new(0));
    let id = Uuid::new_v4();
    let label = format!(
        "FLV player {id} of {}",
        redact_text(&capture.local_stream_name)
    );
    info!("{label}: from {}", caller.address);
    let counted = capture.telemetry.count_viewer(ViewerProtocol::Flv);
    let viewer = FlvViewer {
        _counted: counted,
        id,
        label,
        capture,
        chunks,
        queued: Arc::clone(&queued),
        stream: FlvStream::new(),
        mailbox_frames: state.mailbox_frames,
        _slot: slot,
    };
    viewer.start();
    let body = futures_util::stream::unfold(body, move |mut body| {
        let queued = Arc::clone(&queued);
        async move {
            let chunk = body.recv().await?;
            queued.fetch_sub(chunk.len(), Ordering::Relaxed);
            count_egress(ViewerProtocol::Flv, chunk.len());
            Some((Ok::<Bytes, actix_web::Error>(chunk), body))
        }
    });
    flv_response(&req, &gate).streaming(body)
}

/// The headers of an FLV answer: never cached; readable by a page of another origin (a
/// player's `fetch`) when `rest.cors_allowed_origins` allows that origin, as for WHEP.
fn flv_response(req: &HttpRequest, gate: &Gate) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, "video/x-flv"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Origin"));
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    if let Some(allowed) = origin.and_then(|o| gate.cors_origin(o)) {
        response.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed));
    }
    response
}

/// One HTTP-FLV player of one capture.
pub struct FlvViewer {
    id: Uuid,
    label: String,
    capture: CaptureHandle,
    /// The response body's queue; closed when the player is gone.
    chunks: mpsc::Sender<Bytes>,
    /// Bytes in `chunks` (the body takes them off as it sends).
    queued: Arc<AtomicUsize>,
    stream: FlvStream,
    mailbox_frames: usize,
    /// This player counted against the viewer limits while it exists.
    _slot: ViewerSlot,
    /// ... and in its capture's FLV viewers.
    _counted: ViewerCount,
}

impl FlvViewer {
    /// Queues what `stream` wrote; a full queue loses it (video resumes at a keyframe), a
    /// closed one (the player left) ends this viewer.
    fn send(&mut self, out: BytesMut, ctx: &mut Context<Self>) {
        if out.is_empty() {
            return;
        }
        let len = out.len();
        // Counted before it is queued: the body (another thread) may take it off at once.
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before + len > QUEUE_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.stream.skip_to_keyframe();
            return;
        }
        let sent = self.chunks.try_send(out.freeze());
        if sent.is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.stream.skip_to_keyframe(),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!("{}: the player went away", self.label);
                ctx.stop();
            }
        }
    }
}

impl Actor for FlvViewer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_frames);
        if self.capture.is_gone() {
            // The capture ended already (an on-demand source that failed at once): the
            // player's stream ends empty.
            let why = self.capture.end.reason().unwrap_or("it stopped");
            info!("{}: the stream ended before it started: {why}", self.label);
            ctx.stop();
            return;
        }
        self.capture.subscribe.do_send(Subscribe {
            id: self.id,
            recipient: ctx.address().recipient(),
            delivery: Delivery::Original,
        });
        ctx.run_interval(IDLE_CHECK, |act, ctx| {
            if act.chunks.is_closed() {
                debug!("{}: the player went away", act.label);
                ctx.stop();
            } else if act.capture.is_gone() {
                // Gone without telling this player (it subscribed as the capture stopped).
                info!("{}: the stream ended", act.label);
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

impl Handler<SubscriberMedia> for FlvViewer {
    type Result = ();

    fn handle(&mut self, msg: SubscriberMedia, ctx: &mut Self::Context) {
        let mut out = BytesMut::new();
        match msg {
            SubscriberMedia::Codecs(codecs) => self.stream.codecs(codecs),
            SubscriberMedia::Frame(frame, _charge) => {
                if self.stream.push(&frame, &mut out) {
                    count_egress_frames(ViewerProtocol::Flv, 1);
                }
            }
            SubscriberMedia::Replay(frames, _charge) => {
                let pushed = frames
                    .iter()
                    .filter(|frame| self.stream.push(frame, &mut out))
                    .count();
                count_egress_frames(ViewerProtocol::Flv, pushed);
            }
            SubscriberMedia::Stopped { reason, .. } => {
                info!("{}: the stream ended: {reason}", self.label);
                ctx.stop();
                return;
            }
        }
        self.send(out, ctx);
    }
}
