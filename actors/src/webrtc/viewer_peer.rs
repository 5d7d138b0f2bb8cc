//! `ViewerPeer`: one browser watching one capture over WebRTC.
//!
//! It answers the browser's offer with a `ViewerTransport` (ICE-lite, DTLS, SRTP) that it
//! hands to the one media port, and stamps its two tracks' RTP. Life: `Negotiate` (offer in,
//! answer with every candidate out) → ICE/DTLS up (the port's `Connected`, else `Failed`
//! after `webrtc.connect_timeout_ms`) → `Subscribe` to the capture, whose keyframe cache
//! gives codecs and the frames from the latest keyframe at once → RTP out (`Playing` at the
//! first video frame) → `StopViewer`, the capture's `Stopped`, or a dead connection.
//!
//! H.264 access units go out untouched, packetized once per capture for all its viewers
//! (`CaptureHandle::payloads`: FU-A, STAP-A with the SPS/PPS that precede every IDR; this
//! viewer only puts its RTP header on the shared payloads); Opus packets go out one per RTP
//! packet. RTP timestamps are the
//! frame's pts on a 90 kHz / 48 kHz clock with a random base (`pullcast::webrtc_viewer`), never
//! backwards; the keyframe cache replayed at the start or for a PLI goes out as a burst
//! ending at the live edge (`ForwardTime::place_replay`), so it costs no latency; the
//! payload type is the one negotiated on the sender. A keyframe request (PLI/FIR) is passed
//! to the capture (`RequestKeyframe`: a fresh keyframe from the B-frame transcoder, else the
//! cached GOP again), at most once per `webrtc.keyframe_request_interval_ms`.
//!
//! RTCP sender reports are ours, not the interceptor's: every `SENDER_REPORT_EVERY` each track
//! reports the capture time of "now" through one [`pullcast::lipsync::SyncAnchor`] shared by
//! both tracks (a frame's pts and its arrival at the server), so the browser aligns audio and
//! video as the source had them, whatever the transcodes' delays.
//!
//! Packets are queued on the port at once; a port that is behind loses them and video waits
//! for the next keyframe. A slow actor fills its bounded mailbox and the capture skips it to
//! the next keyframe; nothing here may block the capture, panic on input or unwrap network
//! data.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, info, warn};
use pullcast::lipsync::SyncAnchor;
use pullcast::media::{MediaFrame, Track};
use pullcast::webrtc_viewer::{ForwardTime, KeyframeRequestLimiter, RtpClock};
use rtc::rtcp::sender_report::SenderReport;
use rtc::shared::time::SystemInstant;
use uuid::Uuid;

use super::engine::{OnePort, ViewerCodecs, ViewerSlot, WebRtcEngine};
use super::media_port::{MediaPort, PortEvent, RtpOut, SentProbe};
use super::transport::{OutgoingTrack, TransportEvent, TransportRecipe, ViewerTransport};
use crate::messages::{
    CaptureHandle, Delivery, InjectPanic, RequestKeyframe, StopViewer, Subscribe, SubscriberMedia,
    Unsubscribe, ViewerEvent,
};
use crate::panic_guard::{self, Panic};
use crate::telemetry::now_us;

/// The media stream id both tracks carry, so a browser puts them in one `MediaStream`.
const STREAM_ID: &str = "pullcast";

/// Negotiate the connection: the browser's offer in, our answer (all candidates) out.
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
pub struct Negotiate {
    pub offer_sdp: String,
}

/// How often each track sends an RTCP sender report (browsers need two before they sync).
const SENDER_REPORT_EVERY: Duration = Duration::from_millis(500);

/// One outgoing track of this viewer.
struct OutTrack {
    /// The track on the port's transport (its SSRC and payload type).
    out: OutgoingTrack,
    sequence: u16,
    clock: RtpClock,
    /// Keeps the video timestamps moving forward through a keyframe-cache replay (audio skips
    /// replayed frames instead).
    time: ForwardTime,
    /// RTP packets and payload octets sent (for sender reports; wrap as RFC 3550 says).
    packets: u32,
    octets: u32,
}

impl OutTrack {
    /// The next packet of this track: `payload` under this viewer's header fields.
    fn packet(&mut self, timestamp: u32, marker: bool, payload: Bytes) -> RtpOut {
        let sequence_number = self.sequence;
        self.sequence = self.sequence.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        RtpOut {
            track: self.out,
            sequence_number,
            timestamp,
            marker,
            payload,
        }
    }
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
    /// The media port and this viewer's key on it, once answered.
    shared_port: Option<(MediaPort, u64)>,
    video: Option<OutTrack>,
    audio: Option<OutTrack>,
    phase: Phase,
    subscribed: bool,
    /// The capture has video (from its codecs); `Playing` waits for a video frame then.
    capture_has_video: bool,
    /// Send no video until a keyframe (start, resubscribe, codec change).
    waiting_for_keyframe: bool,
    last_audio_pts: Option<i64>,
    playing: bool,
    limiter: KeyframeRequestLimiter,
    created: Instant,
    connected_at: Option<Instant>,
    /// Capture time ↔ server clock for the sender reports of both tracks.
    anchor: Option<SyncAnchor>,
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
        Self {
            id,
            engine,
            capture,
            events,
            codecs,
            _slot: slot,
            shared_port: None,
            video: None,
            audio: None,
            phase: Phase::Created,
            subscribed: false,
            capture_has_video: true,
            waiting_for_keyframe: true,
            last_audio_pts: None,
            playing: false,
            limiter: KeyframeRequestLimiter::new(interval),
            created: Instant::now(),
            connected_at: None,
            anchor: None,
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
        if !self.capture.subscribe.connected() {
            // The capture ended while this viewer connected (e.g. an on-demand source that
            // failed at once): there is nothing to wait for; say why it ended.
            let reason = match self.capture.end.reason() {
                Some(why) => format!("the stream ended before this viewer could start: {why}"),
                None => "the stream ended before this viewer could start".to_string(),
            };
            self.fail(ctx, reason);
            return;
        }
        self.waiting_for_keyframe = true;
        self.capture.subscribe.do_send(Subscribe {
            id: self.id,
            recipient: ctx.address().recipient(),
            delivery: Delivery::WebRtc,
        });
        self.subscribed = true;
    }

    /// One sender report per track that has sent media, naming the capture time of now.
    fn send_sender_reports(&mut self) {
        let Some(anchor) = self.anchor else {
            return;
        };
        let now = now_us();
        let ntp_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, SystemInstant::unix2ntp);
        for track in [self.video.as_ref(), self.audio.as_ref()]
            .into_iter()
            .flatten()
        {
            if track.packets == 0 {
                continue;
            }
            let report = SenderReport {
                ssrc: track.out.ssrc,
                ntp_time,
                rtp_time: anchor.rtp_time(&track.clock, now),
                packet_count: track.packets,
                octet_count: track.octets,
                ..Default::default()
            };
            if let Some((port, key)) = &self.shared_port {
                port.send_rtcp(*key, vec![Box::new(report)]);
            }
        }
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
        ctx.run_interval(SENDER_REPORT_EVERY, |act, _ctx| act.send_sender_reports());
        self.subscribe(ctx);
    }

    fn on_video(&mut self, frame: MediaFrame) {
        if self.waiting_for_keyframe {
            if !frame.keyframe {
                return;
            }
            self.waiting_for_keyframe = false;
        }
        let Some(video) = self.video.as_mut() else {
            return;
        };
        let at_us = video.time.place(frame.pts);
        self.send_video(frame, at_us);
    }

    /// The keyframe cache: its video as a burst ending at the live edge (`ForwardTime`), so
    /// the browser decodes it at once and plays on from now; its audio (none for WebRTC
    /// subscribers, whose Opus starts live) as live audio.
    fn on_replay(&mut self, frames: Vec<MediaFrame>) {
        let (mut video, audio): (Vec<MediaFrame>, Vec<MediaFrame>) =
            frames.into_iter().partition(|f| f.track == Track::Video);
        if self.waiting_for_keyframe {
            let first_keyframe = video.iter().position(|f| f.keyframe);
            video.drain(..first_keyframe.unwrap_or(video.len()));
            self.waiting_for_keyframe = video.is_empty();
        }
        // One write per track, in order.
        if let Some(track) = self.video.as_mut() {
            let pts: Vec<i64> = video.iter().map(|f| f.pts).collect();
            let stamps = track.time.place_replay(&pts);
            let mut packets = Vec::new();
            for (frame, at_us) in video.into_iter().zip(stamps) {
                packets.extend(self.video_packets(&frame, at_us));
            }
            if !packets.is_empty() {
                // `Playing` once the newest picture — the live edge — is out.
                self.write(Track::Video, packets, true, None);
            }
        }
        let packets: Vec<RtpOut> = audio
            .into_iter()
            .filter_map(|frame| self.audio_packet(frame))
            .collect();
        if !packets.is_empty() {
            let counts_as_playing = !self.capture_has_video || self.video.is_none();
            self.write(Track::Audio, packets, counts_as_playing, None);
        }
    }

    /// Packetizes a live `frame` stamped at `at_us` (capture time, µs) and sends it; it counts
    /// towards the latency the server adds (a replay goes through `on_replay`, which does not).
    fn send_video(&mut self, frame: MediaFrame, at_us: i128) {
        let packets = self.video_packets(&frame, at_us);
        if packets.is_empty() {
            return;
        }
        let ingest_us = (frame.ingest_us > 0).then_some(frame.ingest_us);
        self.write(Track::Video, packets, true, ingest_us);
    }

    /// `frame`'s RTP packets stamped at `at_us` (none when there is no video track or the
    /// access unit cannot be packetized).
    fn video_packets(&mut self, frame: &MediaFrame, at_us: i128) -> Vec<RtpOut> {
        let Some(video) = self.video.as_mut() else {
            return Vec::new();
        };
        let payloads = self.capture.payloads.h264(&frame.data);
        if payloads.is_empty() {
            return Vec::new();
        }
        let timestamp = video.clock.timestamp_us(at_us);
        self.anchor.get_or_insert_with(|| anchor_of(frame));
        let last = payloads.len() - 1;
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| video.packet(timestamp, i == last, p.clone()))
            .collect()
    }

    fn on_audio(&mut self, frame: MediaFrame) {
        let Some(packet) = self.audio_packet(frame) else {
            return;
        };
        let counts_as_playing = !self.capture_has_video || self.video.is_none();
        self.write(Track::Audio, vec![packet], counts_as_playing, None);
    }

    /// `frame`'s RTP packet, unless there is no audio track, it is empty, or it is not after
    /// the last one sent (after a resubscribe the cache replays audio already sent).
    fn audio_packet(&mut self, frame: MediaFrame) -> Option<RtpOut> {
        if self.last_audio_pts.is_some_and(|last| frame.pts <= last) {
            return None;
        }
        let audio = self.audio.as_mut()?;
        if frame.data.is_empty() {
            return None;
        }
        self.last_audio_pts = Some(frame.pts);
        let timestamp = audio.clock.timestamp(frame.pts);
        self.anchor.get_or_insert_with(|| anchor_of(&frame));
        Some(audio.packet(timestamp, false, frame.data))
    }

    /// Queues `kind`'s packets on the media port at once; a port that is behind loses them
    /// (video then waits for the next keyframe).
    fn write(
        &mut self,
        kind: Track,
        packets: Vec<RtpOut>,
        counts_as_playing: bool,
        video_ingest_us: Option<u64>,
    ) {
        let Some((port, key)) = &self.shared_port else {
            return;
        };
        let probe = video_ingest_us.map(|ingest_us| SentProbe {
            ingest_us,
            telemetry: self.capture.telemetry.clone(),
        });
        if port.send(*key, packets, probe) {
            self.written(counts_as_playing);
        } else if kind == Track::Video {
            self.waiting_for_keyframe = true;
        }
    }

    /// Packets are queued on the port (the port records a live frame's latency once they
    /// have left): `Playing` once.
    fn written(&mut self, counts_as_playing: bool) {
        if counts_as_playing && !self.playing && self.phase == Phase::Connected {
            if let Some(t) = self.connected_at {
                let us = t.elapsed().as_micros() as u64;
                self.capture.telemetry.lock().first_frame_us.record(us);
            }
            self.playing = true;
            info!(
                "{}: playing ({} ms after connection)",
                self.label(),
                self.connected_at.map_or(0, |t| t.elapsed().as_millis())
            );
            self.events
                .do_send(ViewerEvent::Playing { viewer: self.id });
        }
    }
}

impl Actor for ViewerPeer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.engine.settings().capture.subscriber_queue_frames);
    }

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
    /// The answer is out: the tracks are known, the connection has its time to come up.
    fn answered(
        &mut self,
        ctx: &mut Context<Self>,
        video: Option<OutTrack>,
        audio: Option<OutTrack>,
    ) {
        self.video = video;
        self.audio = audio;
        self.phase = Phase::Answered;
        // For debugging a viewer's streams (and the lip-sync test): which SSRC carries what,
        // and where its RTP clock starts (pts 0 on the capture).
        let describe = |t: &Option<OutTrack>| {
            t.as_ref().map_or("none".to_string(), |t| {
                format!("ssrc {} rtp base {}", t.out.ssrc, t.clock.base)
            })
        };
        info!(
            "{}: RTP video {}, audio {}",
            self.label(),
            describe(&self.video),
            describe(&self.audio)
        );
        let timeout = self.engine.settings().webrtc.connect_timeout_ms;
        ctx.run_later(Duration::from_millis(timeout), move |act, ctx| {
            if act.phase == Phase::Answered {
                act.fail(ctx, format!("ICE/DTLS did not connect within {timeout} ms"));
            }
        });
    }

    /// Answers `offer_sdp` with a transport on the media port and hands the transport to
    /// the port.
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
        let track = |out: Option<OutgoingTrack>, clock: fn(u32) -> RtpClock, bits: u32| {
            out.map(|out| OutTrack {
                out,
                sequence: (random >> (64 + bits)) as u16,
                clock: clock((random >> (bits + 80)) as u32),
                time: ForwardTime::default(),
                packets: 0,
                octets: 0,
            })
        };
        let video = track(transport.video, RtpClock::video, 0);
        let audio = track(transport.audio, RtpClock::opus, 16);
        let key = self.id.as_u128() as u64;
        let events = ctx.address().recipient();
        one_port.port.add(key, transport, events);
        self.shared_port = Some((one_port.port.clone(), key));
        self.answered(ctx, video, audio);
        Ok(answer)
    }

    /// The browser asked for a keyframe (PLI or FIR): ask the capture, at most once per
    /// `keyframe_request_interval_ms`.
    fn keyframe_requested(&mut self) {
        if self.phase != Phase::Connected || !self.limiter.allow(self.engine.now_ms()) {
            return;
        }
        debug!("{}: keyframe requested; asking the capture", self.label());
        // What comes next starts at a keyframe.
        self.waiting_for_keyframe = true;
        self.capture
            .keyframe
            .do_send(RequestKeyframe { id: self.id });
    }
}

impl Handler<PortEvent> for ViewerPeer {
    type Result = ();

    /// What the shared media port says of this viewer's transport.
    fn handle(&mut self, msg: PortEvent, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| match msg.event {
            TransportEvent::Connected => self.on_connected(ctx),
            TransportEvent::Failed(reason) => {
                let reason = if self.phase == Phase::Connected {
                    format!("the connection to the browser was lost ({reason})")
                } else {
                    reason
                };
                self.fail(ctx, reason);
            }
            TransportEvent::Closed => {
                let viewer = self.id;
                let reason = "the connection was closed".to_string();
                self.finish(ctx, ViewerEvent::Stopped { viewer, reason });
            }
            TransportEvent::KeyframeRequested => self.keyframe_requested(),
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<SubscriberMedia> for ViewerPeer {
    type Result = ();

    fn handle(&mut self, msg: SubscriberMedia, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            if self.phase != Phase::Connected && !matches!(msg, SubscriberMedia::Stopped { .. }) {
                return;
            }
            match msg {
                SubscriberMedia::Codecs(codecs) => {
                    self.capture_has_video = codecs.video.is_some();
                    // What follows starts at a keyframe (cache replay or a new configuration).
                    self.waiting_for_keyframe = true;
                }
                SubscriberMedia::Frame(frame, _queued) => match frame.track {
                    Track::Video => self.on_video(frame),
                    Track::Audio => self.on_audio(frame),
                },
                SubscriberMedia::Replay(frames, _queued) => self.on_replay(frames),
                SubscriberMedia::Stopped { reason, failed } => {
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

/// The anchor a frame gives: its pts and when its source message arrived (now, if unknown).
fn anchor_of(frame: &MediaFrame) -> SyncAnchor {
    SyncAnchor {
        pts_ms: frame.pts,
        arrival_us: if frame.ingest_us > 0 {
            frame.ingest_us
        } else {
            now_us()
        },
    }
}
