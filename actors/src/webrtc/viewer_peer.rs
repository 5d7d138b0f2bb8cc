//! `ViewerPeer`: one browser watching one capture over WebRTC.
//!
//! It answers the browser's offer with a `ViewerTransport` (ICE-lite, DTLS, SRTP) and a
//! `MediaPlane` (this viewer's RTP stamping and sender reports, `super::media_plane`) that
//! it hands to the one media port, whose worker runs both. Life: `Negotiate` (offer in,
//! answer with every candidate out) → ICE/DTLS up (the port's `Connected`, else `Failed`
//! after `webrtc.connect_timeout_ms`) → `SubscribeOnPort` to the capture, whose keyframe
//! cache gives the frames from the latest keyframe at once, straight to the worker →
//! `Playing` when the port says the first packets are out → `StopViewer`, the capture's
//! `Stopped`, or a dead connection.
//!
//! No frame passes through this actor: it owns the viewer's signalling, lifecycle, status,
//! keyframe requests (a PLI/FIR from the browser is passed to the capture —
//! `RequestKeyframe`: a fresh keyframe from the B-frame transcoder, else the cached GOP
//! again — at most once per `webrtc.keyframe_request_interval_ms`) and first-frame
//! telemetry. Nothing here may block the capture, panic on input or unwrap network data.

use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{debug, info, warn};
use uuid::Uuid;

use super::engine::{OnePort, ViewerCodecs, ViewerSlot, WebRtcEngine};
use super::media_plane::{MediaPlane, TrackStart};
use super::media_port::{MediaPort, PortEvent};
use super::transport::{OutgoingTrack, TransportEvent, TransportRecipe, ViewerTransport};
use crate::messages::{
    CaptureHandle, InjectPanic, RequestKeyframe, StopViewer, SubscribeOnPort, SubscriberMedia,
    Unsubscribe, ViewerEvent,
};
use crate::panic_guard::{self, Panic};
use pullcast::webrtc_viewer::KeyframeRequestLimiter;

/// The media stream id both tracks carry, so a browser puts them in one `MediaStream`.
const STREAM_ID: &str = "pullcast";

/// Negotiate the connection: the browser's offer in, our answer (all candidates) out.
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
pub struct Negotiate {
    pub offer_sdp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Answered,
    Connected,
    Ended,
}

/// One WebRTC viewer of one capture.
pub struct ViewerPeer {
    id: Uuid,
    engine: WebRtcEngine,
    capture: CaptureHandle,
    events: Recipient<ViewerEvent>,
    codecs: ViewerCodecs,
    /// This viewer counted against the viewer limits while it exists.
    _slot: ViewerSlot,
    /// ... and in its capture's WebRTC viewers.
    _counted: crate::telemetry::ViewerCount,
    /// The media port and this viewer's key on it, once answered.
    shared_port: Option<(MediaPort, u64)>,
    phase: Phase,
    subscribed: bool,
    playing: bool,
    limiter: KeyframeRequestLimiter,
    created: Instant,
    connected_at: Option<Instant>,
}

impl ViewerPeer {
    pub fn new(
        id: Uuid,
        engine: WebRtcEngine,
        capture: CaptureHandle,
        events: Recipient<ViewerEvent>,
        codecs: ViewerCodecs,
        slot: ViewerSlot,
    ) -> Self {
        let interval = engine.settings().webrtc.keyframe_request_interval_ms;
        let counted = capture
            .telemetry
            .count_viewer(crate::telemetry::ViewerProtocol::WebRtc);
        Self {
            _counted: counted,
            id,
            engine,
            capture,
            events,
            codecs,
            _slot: slot,
            shared_port: None,
            phase: Phase::Created,
            subscribed: false,
            playing: false,
            limiter: KeyframeRequestLimiter::new(interval),
            created: Instant::now(),
            connected_at: None,
        }
    }

    fn label(&self) -> String {
        format!(
            "viewer {} of {}",
            self.id,
            pullcast::access::redact_text(&self.capture.local_stream_name)
        )
    }

    /// Ends the viewer once: unsubscribes, reports `event`, stops the actor (which closes the
    /// connection).
    fn finish(&mut self, ctx: &mut Context<Self>, event: ViewerEvent) {
        if self.phase == Phase::Ended {
            return;
        }
        match &event {
            ViewerEvent::Failed { reason, .. } => warn!("{}: failed: {reason}", self.label()),
            ViewerEvent::Stopped { reason, .. } => info!("{}: stopped: {reason}", self.label()),
            _ => {}
        }
        self.phase = Phase::Ended;
        self.unsubscribe();
        self.events.do_send(event);
        ctx.stop();
    }

    fn fail(&mut self, ctx: &mut Context<Self>, reason: String) {
        let viewer = self.id;
        self.finish(ctx, ViewerEvent::Failed { viewer, reason });
    }

    fn subscribe(&mut self, ctx: &mut Context<Self>) {
        if self.capture.is_gone() {
            // The capture ended while this viewer connected (e.g. an on-demand source that
            // failed at once): there is nothing to wait for; say why it ended.
            let reason = match self.capture.end.reason() {
                Some(why) => format!("the stream ended before this viewer could start: {why}"),
                None => "the stream ended before this viewer could start".to_string(),
            };
            self.fail(ctx, reason);
            return;
        }
        let Some((port, key)) = &self.shared_port else {
            return;
        };
        self.capture.subscribe_on_port.do_send(SubscribeOnPort {
            id: self.id,
            control: ctx.address().recipient(),
            port: port.clone(),
            key: *key,
        });
        self.subscribed = true;
    }

    fn unsubscribe(&mut self) {
        if self.subscribed {
            self.capture
                .unsubscribe
                .do_send(Unsubscribe { id: self.id });
            self.subscribed = false;
        }
    }

    fn on_connected(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Answered {
            return;
        }
        self.phase = Phase::Connected;
        self.connected_at = Some(Instant::now());
        info!(
            "{}: connected ({} ms after the offer)",
            self.label(),
            self.created.elapsed().as_millis()
        );
        self.events
            .do_send(ViewerEvent::Connected { viewer: self.id });
        self.subscribe(ctx);
    }

    /// The port sent this viewer's first packets that play: `Playing`, once.
    fn on_playing(&mut self) {
        if self.playing || self.phase != Phase::Connected {
            return;
        }
        self.playing = true;
        let since = self.connected_at.map(|t| t.elapsed()).unwrap_or_default();
        let us = since.as_micros() as u64;
        self.capture.telemetry.lock().first_frame_us.record(us);
        info!(
            "{}: playing ({} ms after connection)",
            self.label(),
            since.as_millis()
        );
        self.events
            .do_send(ViewerEvent::Playing { viewer: self.id });
    }
}

impl Actor for ViewerPeer {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if self.phase != Phase::Ended {
            self.phase = Phase::Ended;
            self.unsubscribe();
            self.events.do_send(ViewerEvent::Stopped {
                viewer: self.id,
                reason: "the viewer was stopped".to_string(),
            });
        }
        if let Some((port, key)) = self.shared_port.take() {
            port.remove(key);
        }
    }
}

impl Handler<Negotiate> for ViewerPeer {
    type Result = AtomicResponse<Self, Result<String, String>>;

    fn handle(&mut self, msg: Negotiate, ctx: &mut Self::Context) -> Self::Result {
        let one_port = self.engine.one_port().clone();
        let answer = self.answer_on_port(ctx, &one_port, &msg.offer_sdp);
        if let Err(e) = &answer {
            self.fail(ctx, e.clone());
        }
        AtomicResponse::new(Box::pin(actix::fut::ready(answer)))
    }
}

impl ViewerPeer {
    /// The answer is out: the connection has its time to come up.
    fn answered(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Answered;
        let timeout = self.engine.settings().webrtc.connect_timeout_ms;
        ctx.run_later(Duration::from_millis(timeout), move |act, ctx| {
            if act.phase == Phase::Answered {
                act.fail(ctx, format!("ICE/DTLS did not connect within {timeout} ms"));
            }
        });
    }

    /// Answers `offer_sdp` with a transport and a media plane on the media port and hands
    /// both to the port.
    fn answer_on_port(
        &mut self,
        ctx: &mut Context<Self>,
        one_port: &OnePort,
        offer_sdp: &str,
    ) -> Result<String, String> {
        if self.phase == Phase::Ended {
            return Err("the viewer was stopped".to_string());
        }
        let media_engine = WebRtcEngine::media_engine(&self.codecs)?;
        let recipe = TransportRecipe {
            media_engine,
            video: self.codecs.video_codec(),
            audio: self.codecs.audio_codec(),
            stream_id: STREAM_ID.to_string(),
        };
        let random = Uuid::new_v4().as_u128();
        let (transport, answer) = ViewerTransport::answer(
            offer_sdp,
            recipe,
            &one_port.identity,
            random as u64,
            Instant::now(),
        )?;
        let start = |track: Option<OutgoingTrack>, bits: u32| {
            track.map(|track| TrackStart {
                track,
                sequence: (random >> (64 + bits)) as u16,
                clock_base: (random >> (bits + 80)) as u32,
            })
        };
        let video = start(transport.video, 0);
        let audio = start(transport.audio, 16);
        // For debugging a viewer's streams (and the lip-sync test): which SSRC carries what,
        // and where its RTP clock starts (pts 0 on the capture).
        let describe = |t: &Option<TrackStart>| {
            t.as_ref().map_or("none".to_string(), |t| {
                format!("ssrc {} rtp base {}", t.track.ssrc, t.clock_base)
            })
        };
        info!(
            "{}: RTP video {}, audio {}",
            self.label(),
            describe(&video),
            describe(&audio)
        );
        let plane = MediaPlane::new(
            video,
            audio,
            self.capture.payloads.clone(),
            self.capture.telemetry.clone(),
            Instant::now(),
        );
        let key = self.id.as_u128() as u64;
        let events = ctx.address().recipient();
        one_port.port.add(key, transport, plane, events);
        self.shared_port = Some((one_port.port.clone(), key));
        self.answered(ctx);
        Ok(answer)
    }

    /// The browser asked for a keyframe (PLI or FIR): ask the capture, at most once per
    /// `keyframe_request_interval_ms`.
    fn keyframe_requested(&mut self) {
        if self.phase != Phase::Connected || !self.limiter.allow(self.engine.now_ms()) {
            return;
        }
        debug!("{}: keyframe requested; asking the capture", self.label());
        self.capture
            .keyframe
            .do_send(RequestKeyframe { id: self.id });
    }
}

impl Handler<PortEvent> for ViewerPeer {
    type Result = ();

    /// What the shared media port says of this viewer.
    fn handle(&mut self, msg: PortEvent, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| match msg {
            PortEvent::Transport(TransportEvent::Connected) => self.on_connected(ctx),
            PortEvent::Transport(TransportEvent::Failed(reason)) => {
                let reason = if self.phase == Phase::Connected {
                    format!("the connection to the browser was lost ({reason})")
                } else {
                    reason
                };
                self.fail(ctx, reason);
            }
            PortEvent::Transport(TransportEvent::Closed) => {
                let viewer = self.id;
                let reason = "the connection was closed".to_string();
                self.finish(ctx, ViewerEvent::Stopped { viewer, reason });
            }
            PortEvent::Transport(TransportEvent::KeyframeRequested) => self.keyframe_requested(),
            PortEvent::Playing => self.on_playing(),
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<SubscriberMedia> for ViewerPeer {
    type Result = ();

    /// Only the capture's end comes here (its media goes to the port's worker).
    fn handle(&mut self, msg: SubscriberMedia, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            if let SubscriberMedia::Stopped { reason, failed } = msg {
                // The capture is gone: nothing to unsubscribe from.
                self.subscribed = false;
                let viewer = self.id;
                let event = if failed {
                    ViewerEvent::Failed { viewer, reason }
                } else {
                    ViewerEvent::Stopped { viewer, reason }
                };
                self.finish(ctx, event);
            }
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<StopViewer> for ViewerPeer {
    type Result = ();

    fn handle(&mut self, msg: StopViewer, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            let viewer = self.id;
            self.finish(
                ctx,
                ViewerEvent::Stopped {
                    viewer,
                    reason: msg.reason,
                },
            );
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<InjectPanic> for ViewerPeer {
    type Result = ();

    fn handle(&mut self, _msg: InjectPanic, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| panic!("injected panic (test)"));
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl ViewerPeer {
    /// A handler panicked: this viewer ends `FAILED` (unsubscribed, its session told);
    /// the capture and every other viewer go on.
    fn crashed(&mut self, panic: Panic, ctx: &mut Context<Self>) {
        log::error!(
            "{}: caught a panic; ending this viewer: {panic}",
            self.label()
        );
        self.fail(ctx, panic.reason("this viewer"));
    }
}
