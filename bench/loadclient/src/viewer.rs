//! One WHEP viewer: its own `webrtc` peer connection (recvonly H.264 + Opus), the WHEP
//! POST/DELETE, and reader tasks that take every decrypted RTP packet off its tracks.
//!
//! Built like pullcast's own `ViewerPeer` (mDNS off, loopback candidates, a handler on the
//! builder, NACK + RTCP report interceptors, `TrackRemote::poll()` to read), but as the
//! offering side, like a browser: offer with every candidate → `POST /whep/{stream}` →
//! answer → ICE → DTLS → RTP. Times are taken from the moment the POST is sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::shared::marshal::MarshalSize;
use tokio::sync::Notify;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    configure_nack, configure_rtcp_reports, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceConnectionState,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::stats::{starts_keyframe, Counters};

/// Payload types a browser typically offers for these codecs.
const H264_PT: u8 = 102;
const OPUS_PT: u8 = 111;
/// How long ICE gathering of the offer may take (loopback host candidates: instant).
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// What every viewer shares: where to connect and how long to wait.
pub struct Config {
    /// `http://host:port` of pullcast's REST/WHEP port.
    pub server: String,
    /// The stream name, already percent-encoded as one path segment.
    pub stream_segment: String,
    /// Local address for the viewer's UDP socket (port 0 = any).
    pub bind: SocketAddr,
    /// From POST to the first video packet, at most.
    pub connect_timeout: Duration,
    /// Send one keyframe request (PLI) this long after the first video packet.
    pub pli_after: Option<Duration>,
    pub http: ureq::Agent,
    /// Lean viewers ([`crate::lean`]): the sans-IO `rtc` core on one socket each, driven by
    /// this process's one thread, instead of a `webrtc` peer connection with its own tasks.
    pub lean: bool,
    /// Watch this mountpoint of Janus's streaming plugin (`server` is Janus's
    /// `http://HOST:8088/janus`) instead of pullcast over WHEP; lean viewers only.
    pub janus: Option<u64>,
}

/// Milestones of one viewer, in ms after its WHEP POST was sent.
#[derive(Default, Clone, Debug)]
pub struct Timeline {
    pub answer_ms: Option<f64>,
    pub ice_connected_ms: Option<f64>,
    pub connected_ms: Option<f64>,
    pub first_video_ms: Option<f64>,
    pub first_audio_ms: Option<f64>,
    /// The first video packet starts a keyframe (SPS/IDR), as pullcast's instant start promises.
    pub first_video_is_keyframe: Option<bool>,
    pub failure: Option<String>,
}

/// State shared between a viewer's handler, its reader tasks and `main`.
#[derive(Default)]
pub struct Shared {
    pub counters: Mutex<Counters>,
    pub timeline: Mutex<Timeline>,
    posted: Mutex<Option<Instant>>,
    pub(crate) first_video: Notify,
    pub(crate) failed: Notify,
    gathered: Notify,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The viewer's clock starts now (its offer or watch request is being sent).
    pub(crate) fn posted_now(&self) {
        *lock(&self.posted) = Some(Instant::now());
    }

    pub(crate) fn since_post_ms(&self) -> Option<f64> {
        (*lock(&self.posted)).map(|t| t.elapsed().as_secs_f64() * 1000.0)
    }

    pub(crate) fn mark(&self, set: impl FnOnce(&mut Timeline, f64)) {
        if let Some(ms) = self.since_post_ms() {
            set(&mut lock(&self.timeline), ms);
        }
    }

    /// Resolves once the viewer has failed (its connection reached `Failed`, or sending
    /// failed), also when that happened before the call and nobody has waited for it yet.
    pub async fn failed(&self) {
        self.failed.notified().await
    }

    pub(crate) fn fail(&self, reason: String) {
        let mut t = lock(&self.timeline);
        if t.failure.is_none() {
            t.failure = Some(reason);
        }
        drop(t);
        self.failed.notify_one();
    }

    pub(crate) fn on_packet(&self, kind: RtpCodecKind, packet: &rtp::Packet) {
        let mut c = lock(&self.counters);
        c.packets += 1;
        c.bytes += (packet.header.marshal_size() + packet.payload.len()) as u64;
        let first = match kind {
            RtpCodecKind::Video => {
                c.video_packets += 1;
                c.video_seq.push(packet.header.sequence_number);
                c.video_timing.on_packet(
                    self.since_post_ms().unwrap_or(0.0),
                    packet.header.sequence_number,
                    packet.header.timestamp,
                    starts_keyframe(&packet.payload),
                );
                if packet.header.marker {
                    c.video_frames += 1;
                }
                c.video_packets == 1
            }
            _ => {
                c.audio_packets += 1;
                c.audio_seq.push(packet.header.sequence_number);
                c.audio_packets == 1
            }
        };
        drop(c);
        if first {
            let keyframe = starts_keyframe(&packet.payload);
            self.mark(|t, ms| match kind {
                RtpCodecKind::Video => {
                    t.first_video_ms = Some(ms);
                    t.first_video_is_keyframe = Some(keyframe);
                }
                _ => t.first_audio_ms = Some(ms),
            });
            if kind == RtpCodecKind::Video {
                self.first_video.notify_one();
            }
        }
    }
}

/// The connection's events → the shared state; each remote track gets a reader task.
struct Events {
    shared: Arc<Shared>,
    pli_after: Option<Duration>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.shared.gathered.notify_one();
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if state == RTCIceConnectionState::Connected {
            self.shared.mark(|t, ms| {
                t.ice_connected_ms.get_or_insert(ms);
            });
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => self.shared.mark(|t, ms| {
                t.connected_ms.get_or_insert(ms);
            }),
            RTCPeerConnectionState::Failed => self.shared.fail("ICE/DTLS failed".to_string()),
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let shared = self.shared.clone();
        let pli_after = self.pli_after;
        tokio::spawn(async move {
            let kind = track.kind().await;
            let mut pli_due: Option<Instant> = None;
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    shared.on_packet(kind, &packet);
                    if kind != RtpCodecKind::Video {
                        continue;
                    }
                    let Some(after) = pli_after else { continue };
                    let due = *pli_due.get_or_insert_with(|| Instant::now() + after);
                    if Instant::now() >= due
                        && lock(&shared.counters).video_timing.requested_ms().is_none()
                    {
                        let now = shared.since_post_ms().unwrap_or(0.0);
                        lock(&shared.counters).video_timing.requested(now);
                        let pli = PictureLossIndication {
                            sender_ssrc: 0,
                            media_ssrc: packet.header.ssrc,
                        };
                        if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                            shared.fail(format!("cannot send the PLI: {e}"));
                        }
                    }
                }
            }
        });
    }
}

/// A viewer's connection and WHEP resource, kept until the end of the run.
pub struct Session {
    pub pc: Option<Arc<dyn PeerConnection>>,
    /// A lean viewer's driving task.
    pub lean: Option<crate::lean::Running>,
    /// Absolute URL of the WHEP resource (from `Location`), for the DELETE; with Janus its
    /// session, destroyed with a POST.
    pub resource: Option<String>,
    pub janus: bool,
}

impl Session {
    /// DELETEs the WHEP resource (errors are returned, not fatal) and closes the connection.
    pub async fn end(self, http: ureq::Agent) -> Result<(), String> {
        let deleted = match self.resource {
            Some(url) if self.janus => {
                tokio::task::spawn_blocking(move || crate::janus::destroy(&http, &url))
                    .await
                    .map_err(|e| format!("destroy task: {e}"))
                    .and_then(|r| r)
            }
            Some(url) => tokio::task::spawn_blocking(move || {
                http.delete(&url)
                    .call()
                    .map(drop)
                    .map_err(|e| format!("DELETE: {e}")) // names the URL itself
            })
            .await
            .map_err(|e| format!("DELETE task: {e}"))
            .and_then(|r| r),
            None => Ok(()),
        };
        if let Some(pc) = self.pc {
            let _ = pc.close().await;
        }
        if let Some(lean) = self.lean {
            lean.stop().await;
        }
        deleted
    }
}

pub(crate) fn h264() -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_string(),
        parameter: parameter.to_string(),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "video/H264".to_string(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                .to_string(),
            rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
        },
        payload_type: H264_PT,
    }
}

pub(crate) fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/opus".to_string(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_string(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PT,
    }
}

/// Connects one viewer: returns once its first video packet arrived, or it failed (the
/// reason is in `shared.timeline.failure`). The session is returned either way, so the
/// caller can DELETE and close whatever was set up.
pub async fn connect(config: Arc<Config>, shared: Arc<Shared>) -> Session {
    let mut session = Session {
        pc: None,
        lean: None,
        resource: None,
        janus: false,
    };
    let connected = match config.lean || config.janus.is_some() {
        true => crate::lean::connect(&config, &shared, &mut session).await,
        false => connect_inner(&config, &shared, &mut session).await,
    };
    if let Err(e) = connected {
        shared.fail(e);
    }
    session
}

async fn connect_inner(
    config: &Config,
    shared: &Arc<Shared>,
    session: &mut Session,
) -> Result<(), String> {
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(h264(), RtpCodecKind::Video)
        .map_err(|e| format!("register H.264: {e}"))?;
    media_engine
        .register_codec(opus(), RtpCodecKind::Audio)
        .map_err(|e| format!("register Opus: {e}"))?;
    // Like a browser: NACKs for lost packets, receiver reports.
    let registry = configure_nack(Registry::new(), &mut media_engine);
    let registry = configure_rtcp_reports(registry);
    let setting_engine = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine)
        .with_handler(Arc::new(Events {
            shared: shared.clone(),
            pli_after: config.pli_after,
        }))
        .with_udp_addrs(vec![config.bind])
        .build()
        .await
        .map_err(|e| format!("cannot create the peer connection: {e}"))?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    session.pc = Some(pc.clone());
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| format!("add a recvonly {kind:?} transceiver: {e}"))?;
    }
    let offer = pc
        .create_offer(None)
        .await
        .map_err(|e| format!("create the offer: {e}"))?;
    pc.set_local_description(offer)
        .await
        .map_err(|e| format!("apply the offer: {e}"))?;
    tokio::time::timeout(GATHER_TIMEOUT, shared.gathered.notified())
        .await
        .map_err(|_| "ICE gathering did not complete within 5 s".to_string())?;
    let offer_sdp = pc
        .local_description()
        .await
        .ok_or("no local description after gathering")?
        .sdp;

    let answer_sdp = whep_post(config, shared, session, offer_sdp).await?;
    let answer =
        RTCSessionDescription::answer(answer_sdp).map_err(|e| format!("bad answer: {e}"))?;
    pc.set_remote_description(answer)
        .await
        .map_err(|e| format!("the answer was refused: {e}"))?;

    first_video_or_timeout(config, shared).await
}

/// Waits for the first video packet or a failure, until the connect timeout after the POST.
pub(crate) async fn first_video_or_timeout(config: &Config, shared: &Shared) -> Result<(), String> {
    let posted = (*lock(&shared.posted)).unwrap_or_else(Instant::now);
    let remaining = config.connect_timeout.saturating_sub(posted.elapsed());
    tokio::select! {
        _ = shared.first_video.notified() => Ok(()),
        _ = shared.failed.notified() => Ok(()), // the reason is already recorded
        _ = tokio::time::sleep(remaining) => {
            let t = lock(&shared.timeline).clone();
            Err(format!(
                "no video within {} ms of the POST (answer {:?} ms, ICE {:?} ms, DTLS {:?} ms)",
                config.connect_timeout.as_millis(),
                t.answer_ms.map(|v| v.round()),
                t.ice_connected_ms.map(|v| v.round()),
                t.connected_ms.map(|v| v.round())
            ))
        }
    }
}

/// POSTs `offer_sdp` to the stream's WHEP endpoint (blocking HTTP on the blocking pool; the
/// viewer's clock starts as it is sent): the answer; the resource goes into `session`.
pub(crate) async fn whep_post(
    config: &Config,
    shared: &Shared,
    session: &mut Session,
    offer_sdp: String,
) -> Result<String, String> {
    let url = format!("{}/whep/{}", config.server, config.stream_segment);
    let http = config.http.clone();
    shared.posted_now();
    let answer = tokio::task::spawn_blocking(move || -> Result<(String, String), String> {
        let response = http
            .post(&url)
            .set("Content-Type", "application/sdp")
            .send_string(&offer_sdp)
            .map_err(|e| match e {
                ureq::Error::Status(code, r) => format!(
                    "POST {url}: {code} {}",
                    r.into_string().unwrap_or_default().trim()
                ),
                other => format!("POST: {other}"), // names the URL itself
            })?;
        let location = response
            .header("Location")
            .ok_or_else(|| format!("POST {url}: no Location header"))?
            .to_string();
        let sdp = response
            .into_string()
            .map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
        Ok((location, sdp))
    })
    .await
    .map_err(|e| format!("POST task: {e}"))?;
    let (location, answer_sdp) = answer?;
    shared.mark(|t, ms| t.answer_ms = Some(ms));
    session.resource = Some(if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", config.server)
    });
    Ok(answer_sdp)
}
