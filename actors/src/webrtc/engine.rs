//! The WebRTC engine: built once at start, shared by every signalling path (WHEP, WebSocket).
//!
//! It holds what every viewer's connection is built from — the codecs chosen per offer, the
//! viewer limits — the one [`OnePort`] (the `MediaPort` every viewer's transport lives on,
//! and the port's certificate and announced addresses), and the arbiters (threads) the
//! [`ViewerPeer`] actors run on. [`WebRtcEngine::start_viewer`] is the one way to create a
//! viewer. This module must not touch media: it never sees a frame.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::warn;
use pullcast::config::Settings;
use pullcast::media_port::{announced_addresses, AnnounceSettings};
use pullcast::webrtc_viewer::{self, opus_answer_fmtp, H264Format, OfferSummary, OpusFormat};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use uuid::Uuid;

use super::media_port::MediaPort;
use super::transport::{port_certificate, PortIdentity};
use super::viewer_peer::{Negotiate, ViewerPeer};
use crate::messages::{CaptureHandle, ViewerEvent};

/// No connectivity check from a browser for this long ends its viewer (a dead browser; a
/// live one checks every 2.5 s).
const ICE_CONSENT_TIMEOUT: Duration = Duration::from_secs(20);

/// What a new viewer needs.
pub struct ViewerRequest {
    /// The capture to watch (from `Registry` `Watch`).
    pub capture: CaptureHandle,
    /// The browser's SDP offer (recvonly audio/video), checked.
    pub offer: CheckedOffer,
    /// Where `ViewerEvent`s go.
    pub events: Recipient<ViewerEvent>,
}

/// An SDP offer read once, before any capture is looked up: the text (for the peer
/// connection) and what it offers (for the codecs, decided when the viewer starts).
#[derive(Debug, Clone)]
pub struct CheckedOffer {
    sdp: String,
    summary: OfferSummary,
}

/// A viewer whose answer is ready.
pub struct ViewerStarted {
    pub id: Uuid,
    /// The SDP answer with every ICE candidate in it (no trickle needed).
    pub answer_sdp: String,
    /// The viewer; send it `StopViewer` to end it.
    pub addr: Addr<ViewerPeer>,
}

/// Why a viewer could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerError {
    /// The offer is not SDP (400).
    BadOffer(String),
    /// The offer has nothing we can send: no H.264 video and no Opus audio (406).
    NotAcceptable(String),
    /// The connection could not be built, ICE gathering failed (500).
    Failed(String),
    /// A limit is reached: too many viewers in all or of one capture (503, try later).
    Unavailable(String),
}

impl std::fmt::Display for ViewerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ViewerError::BadOffer(m)
            | ViewerError::NotAcceptable(m)
            | ViewerError::Failed(m)
            | ViewerError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// The codecs one viewer's connection is built with, decided from its offer.
#[derive(Debug, Clone)]
pub struct ViewerCodecs {
    pub video: Option<H264Format>,
    pub audio: Option<OpusFormat>,
}

impl ViewerCodecs {
    pub fn video_codec(&self) -> Option<RTCRtpCodec> {
        self.video.as_ref().map(|v| RTCRtpCodec {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: v.fmtp.clone(),
            rtcp_feedback: vec![
                feedback("nack", ""),
                feedback("nack", "pli"),
                feedback("ccm", "fir"),
            ],
        })
    }

    pub fn audio_codec(&self) -> Option<RTCRtpCodec> {
        self.audio.as_ref().map(|a| RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: opus_answer_fmtp(&a.fmtp),
            rtcp_feedback: vec![],
        })
    }
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

/// How many viewers there are, in all and per capture.
#[derive(Default)]
struct ViewerCounts {
    total: usize,
    per_capture: HashMap<Uuid, usize>,
}

/// One viewer counted against `limits.max_viewers` and `max_viewers_per_capture`; given
/// back on drop.
pub struct ViewerSlot {
    capture: Uuid,
    counts: Arc<Mutex<ViewerCounts>>,
}

impl Drop for ViewerSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.total = counts.total.saturating_sub(1);
            if let Some(n) = counts.per_capture.get_mut(&self.capture) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.per_capture.remove(&self.capture);
                }
            }
        }
    }
}

struct Inner {
    settings: Settings,
    /// The media port every viewer is served on.
    one_port: OnePort,
    viewers: Arc<Mutex<ViewerCounts>>,
    arbiters: Mutex<VecDeque<ArbiterHandle>>,
    arbiter_count: usize,
    next_arbiter: AtomicUsize,
    origin: Instant,
}

/// The one port every viewer shares (`webrtc.udp_port`), and what each viewer's transport
/// on it is built with.
#[derive(Clone)]
pub struct OnePort {
    pub port: MediaPort,
    pub identity: PortIdentity,
}

impl OnePort {
    /// Binds `webrtc.udp_port` on `bind` and starts the port's receiver and workers (`webrtc.port_workers`).
    fn start(settings: &Settings, bind: IpAddr) -> Result<Self, String> {
        let w = &settings.webrtc;
        let interfaces: Vec<IpAddr> = match rtc::shared::ifaces::ifaces() {
            Ok(list) => list.iter().filter_map(|i| i.addr).map(|a| a.ip()).collect(),
            Err(e) => {
                warn!("cannot list the network interfaces: {e}");
                Vec::new()
            }
        };
        let announce = AnnounceSettings {
            advertise: &w.advertise,
            public_ips: &w.public_ips,
            loopback_candidates: w.loopback_candidates,
            bind,
            udp_port: w.udp_port,
        };
        let announced = announced_addresses(&announce, &interfaces)?;
        let workers = match w.port_workers {
            0 => cores(),
            n => n,
        };
        let port = MediaPort::start(SocketAddr::new(bind, w.udp_port), announced, workers)
            .map_err(|e| format!("cannot bind the WebRTC port {bind}:{}: {e}", w.udp_port))?;
        let identity = PortIdentity {
            certificate: port_certificate()?,
            candidates: port.announced().to_vec(),
            tcp_candidates: port.announced().to_vec(),
            consent_timeout: ICE_CONSENT_TIMEOUT,
        };
        Ok(Self { port, identity })
    }
}

/// The cores this machine has (one when it cannot tell).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The shared WebRTC engine. Cheap to clone.
#[derive(Clone)]
pub struct WebRtcEngine {
    inner: Arc<Inner>,
}

impl WebRtcEngine {
    /// Builds the engine from the settings; must run inside an actix `System` (it starts one
    /// arbiter per core for the viewers).
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let bind: IpAddr = settings
            .server
            .bind
            .parse()
            .map_err(|e| format!("server.bind {:?}: {e}", settings.server.bind))?;
        let arbiters: VecDeque<ArbiterHandle> = (0..cores().min(16))
            .map(|_| Arbiter::new().handle())
            .collect();
        for key in settings.webrtc.retired_keys() {
            warn!("{key} is retired and ignored: every viewer is served on webrtc.udp_port, and a replayed GOP goes out at once");
        }
        let one_port = OnePort::start(settings, bind)?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                one_port,
                viewers: Arc::default(),
                arbiter_count: arbiters.len(),
                arbiters: Mutex::new(arbiters),
                next_arbiter: AtomicUsize::new(0),
                origin: Instant::now(),
            }),
        })
    }

    /// The one port every viewer shares.
    pub fn one_port(&self) -> &OnePort {
        &self.inner.one_port
    }

    /// The server's settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Milliseconds since the engine started (a monotonic clock for rate limits).
    pub fn now_ms(&self) -> u64 {
        self.inner.origin.elapsed().as_millis() as u64
    }

    /// The media engine for one connection's answer with `codecs`: exactly the formats
    /// chosen from the browser's offer (same payload types, same fmtp; video with its `nack`,
    /// `nack pli` and `ccm fir` feedback, see [`ViewerCodecs::video_codec`]). NACKs and
    /// keyframe requests are the viewer's transport's to act on.
    pub fn media_engine(codecs: &ViewerCodecs) -> Result<MediaEngine, String> {
        let mut media_engine = MediaEngine::default();
        if let (Some(format), Some(codec)) = (&codecs.video, codecs.video_codec()) {
            media_engine
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: codec,
                        payload_type: format.payload_type,
                    },
                    RtpCodecKind::Video,
                )
                .map_err(|e| format!("cannot register H.264: {e}"))?;
        }
        if let (Some(format), Some(codec)) = (&codecs.audio, codecs.audio_codec()) {
            media_engine
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: codec,
                        payload_type: format.payload_type,
                    },
                    RtpCodecKind::Audio,
                )
                .map_err(|e| format!("cannot register Opus: {e}"))?;
        }
        Ok(media_engine)
    }

    /// Counts one more viewer of `capture` (WebRTC, or a player of another protocol, e.g.
    /// HTTP-FLV), unless that passes a limit.
    pub fn take_viewer_slot(&self, capture: Uuid) -> Result<ViewerSlot, ViewerError> {
        let limits = &self.inner.settings.limits;
        let mut counts = self
            .inner
            .viewers
            .lock()
            .map_err(|_| ViewerError::Failed("the viewer table is unusable".to_string()))?;
        if counts.total >= limits.max_viewers {
            return Err(ViewerError::Unavailable(format!(
                "the server has its most viewers ({}, limits.max_viewers); try later",
                limits.max_viewers
            )));
        }
        let of_capture = counts.per_capture.get(&capture).copied().unwrap_or(0);
        if of_capture >= limits.max_viewers_per_capture {
            return Err(ViewerError::Unavailable(format!(
                "this stream has its most viewers ({}, limits.max_viewers_per_capture); try later",
                limits.max_viewers_per_capture
            )));
        }
        counts.total += 1;
        *counts.per_capture.entry(capture).or_insert(0) += 1;
        Ok(ViewerSlot {
            capture,
            counts: self.inner.viewers.clone(),
        })
    }

    /// The next arbiter for a viewer (round robin).
    fn arbiter(&self) -> Option<ArbiterHandle> {
        let arbiters = self.inner.arbiters.lock().ok()?;
        let n = self.inner.next_arbiter.fetch_add(1, Ordering::Relaxed);
        arbiters.get(n % self.inner.arbiter_count.max(1)).cloned()
    }

    /// Decides the codecs for an offer: H.264 (mode 1 preferred, an offered profile) for the
    /// video section, Opus for the audio section.
    pub fn codecs_for_offer(offer: &OfferSummary) -> Result<ViewerCodecs, ViewerError> {
        let video = webrtc_viewer::choose_h264(&offer.h264, None);
        let audio = offer.opus.clone();
        if video.is_none() && audio.is_none() {
            return Err(ViewerError::NotAcceptable(
                "the offer has neither H.264 video nor Opus audio".to_string(),
            ));
        }
        if offer.has_video_section && video.is_none() {
            warn!("the offer has a video section without H.264: the viewer gets audio only");
        }
        Ok(ViewerCodecs { video, audio })
    }

    /// Reads an offer: `BadOffer` (400) when it is not SDP. Whether it has anything we can
    /// send (406) is decided when the viewer starts, after the capture is found.
    pub fn check_offer(sdp: String) -> Result<CheckedOffer, ViewerError> {
        let summary =
            webrtc_viewer::parse_offer(&sdp).map_err(|e| ViewerError::BadOffer(e.to_string()))?;
        Ok(CheckedOffer { sdp, summary })
    }

    /// Creates a viewer for `request`: starts a `ViewerPeer` on a WebRTC arbiter and returns
    /// its answer once ICE gathering is complete.
    pub async fn start_viewer(&self, request: ViewerRequest) -> Result<ViewerStarted, ViewerError> {
        let codecs = Self::codecs_for_offer(&request.offer.summary)?;
        let slot = self.take_viewer_slot(request.capture.id)?;
        let id = Uuid::new_v4();
        let engine = self.clone();
        let ViewerRequest {
            capture,
            offer: CheckedOffer { sdp: offer_sdp, .. },
            events,
        } = request;
        let make = move |_: &mut Context<ViewerPeer>| {
            ViewerPeer::new(id, engine, capture, events, codecs, slot)
        };
        let addr = match self.arbiter() {
            Some(arbiter) => ViewerPeer::start_in_arbiter(&arbiter, make),
            None => ViewerPeer::create(make),
        };
        let answer = addr
            .send(Negotiate { offer_sdp })
            .await
            .map_err(|e| ViewerError::Failed(format!("the viewer stopped: {e}")))?
            .map_err(ViewerError::Failed)?;
        Ok(ViewerStarted {
            id,
            answer_sdp: answer,
            addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn viewer_limits_count_per_capture_and_in_all_and_free_on_drop() {
        let mut settings = Settings::default();
        settings.limits.max_viewers = 3;
        settings.limits.max_viewers_per_capture = 2;
        let engine = WebRtcEngine::new(&settings).expect("engine");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let a1 = engine.take_viewer_slot(a).expect("first of a");
        let _a2 = engine.take_viewer_slot(a).expect("second of a");
        let third = engine.take_viewer_slot(a);
        assert!(
            matches!(&third, Err(ViewerError::Unavailable(m)) if m.contains("max_viewers_per_capture"))
        );
        let _b1 = engine.take_viewer_slot(b).expect("first of b");
        let over = engine.take_viewer_slot(b);
        assert!(
            matches!(&over, Err(ViewerError::Unavailable(m)) if m.contains("limits.max_viewers"))
        );
        drop(a1);
        assert!(
            engine.take_viewer_slot(b).is_ok(),
            "a slot given back is free again"
        );
    }
}
