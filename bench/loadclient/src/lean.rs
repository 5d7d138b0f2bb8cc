//! A lean WHEP viewer (`--lean`): the `rtc` crate's sans-IO peer connection — the same core
//! pullcast's media port drives — on one UDP socket, moved by one small task. Thousands of
//! them share this process's one thread: no per-viewer threads, interceptor tasks or
//! channels, so the client is not what limits a fan-out run.
//!
//! It still does everything a browser's network side does: full ICE as the controlling
//! agent, the DTLS handshake, SRTP decryption of every packet, NACKs for lost packets and
//! receiver reports (the `rtc` interceptors a browser-like peer uses), and counts what it
//! gets exactly like the `webrtc` viewer ([`crate::viewer::Shared`]). It watches pullcast
//! over WHEP (it offers), or Janus's streaming plugin with `--janus` ([`crate::janus`]:
//! Janus offers, it answers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use webrtc::peer_connection::Registry;

use crate::janus;
use crate::viewer::{self, lock, Config, Session, Shared};

/// How long a stopping viewer may take to send its goodbye.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest datagram read.
const MAX_DATAGRAM: usize = 2048;

/// A lean viewer's task (and its Janus keepalive), until the end of the run.
pub struct Running {
    stop: Arc<Notify>,
    task: JoinHandle<()>,
    keepalive: Option<JoinHandle<()>>,
}

impl Running {
    /// Closes the connection (DTLS close alert) and waits for the task to end.
    pub async fn stop(self) {
        if let Some(keepalive) = self.keepalive {
            keepalive.abort();
        }
        self.stop.notify_one();
        let _ = tokio::time::timeout(STOP_TIMEOUT, self.task).await;
    }
}

/// Signals (WHEP: offers and POSTs; Janus: takes its offer and answers), starts the
/// viewer's task; returns at the first video packet, a failure or the connect timeout, as
/// [`viewer::connect`] does.
pub async fn connect(
    config: &Config,
    shared: &Arc<Shared>,
    session: &mut Session,
) -> Result<(), String> {
    let socket = UdpSocket::bind(config.bind)
        .await
        .map_err(|e| format!("bind {}: {e}", config.bind))?;
    let local = socket
        .local_addr()
        .map_err(|e| format!("the socket's address: {e}"))?;
    let mut keepalive = None;
    let (pc, video_pt) = match config.janus {
        None => {
            let (mut pc, offer_sdp) = offer(local, Instant::now())?;
            let answer_sdp = viewer::whep_post(config, shared, session, offer_sdp).await?;
            let answer = RTCSessionDescription::answer(answer_sdp)
                .map_err(|e| format!("bad answer: {e}"))?;
            pc.set_remote_description(Instant::now(), answer)
                .map_err(|e| format!("the answer was refused: {e}"))?;
            (pc, viewer::h264().payload_type)
        }
        Some(mountpoint) => {
            let (janus, offer_sdp) = janus::watch(config, shared, mountpoint).await?;
            session.resource = Some(janus.session_url.clone());
            session.janus = true;
            let video_pt = h264_payload_type(&offer_sdp)
                .ok_or("Janus offered no H.264 (a=rtpmap:N H264/90000)")?;
            let (pc, answer_sdp) = answer(local, offer_sdp, Instant::now())?;
            janus.start(config.http.clone(), answer_sdp).await?;
            let (http, url) = (config.http.clone(), janus.session_url.clone());
            keepalive = Some(tokio::spawn(janus::keep_alive(http, url)));
            (pc, video_pt)
        }
    };
    let stop = Arc::new(Notify::new());
    let driver = Driver {
        pc,
        socket,
        local,
        video_pt,
        shared: Arc::clone(shared),
        pli_after: config.pli_after,
        pli_due: None,
        connected: false,
    };
    let task = tokio::spawn(driver.run(Arc::clone(&stop)));
    session.lean = Some(Running {
        stop,
        task,
        keepalive,
    });
    viewer::first_video_or_timeout(config, shared).await
}

/// The payload type `sdp` gives H.264.
fn h264_payload_type(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=rtpmap:")?;
        let (pt, codec) = rest.split_once(' ')?;
        codec
            .to_ascii_lowercase()
            .starts_with("h264/90000")
            .then(|| pt.parse().ok())?
    })
}

/// The peer connection a viewer at `local` is built on: recvonly H.264 + Opus like a
/// browser, NACKs and receiver reports, one host candidate.
fn peer_connection(local: SocketAddr, now: Instant) -> Result<RTCPeerConnection, String> {
    let mut media = MediaEngine::default();
    media
        .register_codec(viewer::h264(), RtpCodecKind::Video)
        .map_err(|e| format!("register H.264: {e}"))?;
    media
        .register_codec(viewer::opus(), RtpCodecKind::Audio)
        .map_err(|e| format!("register Opus: {e}"))?;
    let registry = configure_nack(Registry::new(), &mut media);
    let registry = configure_rtcp_reports(registry);
    // SRTP as Chromium ends up with against pullcast (and Janus): the DTLS server picks, and
    // Chromium's (BoringSSL) prefers AES128_CM_HMAC_SHA1_80 (pullcast logs the profile of
    // every viewer at debug level). Left to choose, this client would take the server's
    // first offer, AES-GCM, which costs the server less per packet than browsers do.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80])
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(|e| format!("cannot create the peer connection: {e}"))?;
    pc.add_local_candidate(RTCIceCandidateInit {
        candidate: format!(
            "candidate:1 1 udp 2122260223 {} {} typ host",
            local.ip(),
            local.port()
        ),
        ..Default::default()
    })
    .map_err(|e| format!("add the host candidate: {e}"))?;
    Ok(pc)
}

/// A browser-like offer from `local` (WHEP).
fn offer(local: SocketAddr, now: Instant) -> Result<(RTCPeerConnection, String), String> {
    let mut pc = peer_connection(local, now)?;
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        };
        pc.add_transceiver_from_kind(kind, Some(init))
            .map_err(|e| format!("add a recvonly {kind:?} transceiver: {e}"))?;
    }
    let offer = pc
        .create_offer(None)
        .map_err(|e| format!("create the offer: {e}"))?;
    let sdp = offer.sdp.clone();
    pc.set_local_description(now, offer)
        .map_err(|e| format!("apply the offer: {e}"))?;
    Ok((pc, sdp))
}

/// The answer from `local` to a server's offer (Janus), with every candidate.
fn answer(
    local: SocketAddr,
    offer_sdp: String,
    now: Instant,
) -> Result<(RTCPeerConnection, String), String> {
    let mut pc = peer_connection(local, now)?;
    let offer = RTCSessionDescription::offer(offer_sdp).map_err(|e| format!("bad offer: {e}"))?;
    pc.set_remote_description(now, offer)
        .map_err(|e| format!("the offer was refused: {e}"))?;
    let answer = pc
        .create_answer(None)
        .map_err(|e| format!("create the answer: {e}"))?;
    let sdp = answer.sdp.clone();
    pc.set_local_description(now, answer)
        .map_err(|e| format!("apply the answer: {e}"))?;
    Ok((pc, sdp))
}

/// One viewer's connection and socket, moved by its task.
struct Driver {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    /// The payload type video arrives with (the rest is audio).
    video_pt: u8,
    shared: Arc<Shared>,
    pli_after: Option<Duration>,
    pli_due: Option<Instant>,
    connected: bool,
}

impl Driver {
    async fn run(mut self, stop: Arc<Notify>) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        loop {
            // Timers that are due run here, every turn: a steady stream of datagrams would
            // otherwise keep winning the select below and starve them.
            let now = Instant::now();
            if self.pc.poll_timeout().is_some_and(|at| at <= now) {
                let _ = self.pc.handle_timeout(now);
            }
            self.send().await;
            self.take_events();
            self.take_packets();
            let deadline = self
                .pc
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                biased;
                () = stop.notified() => break,
                received = self.socket.recv_from(&mut buffer) => {
                    let Ok((len, from)) = received else { continue };
                    let Some(data) = buffer.get(..len) else { continue };
                    let _ = self.pc.handle_read(TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr: self.local,
                            peer_addr: from,
                            transport_protocol: TransportProtocol::UDP,
                            ecn: None,
                        },
                        message: BytesMut::from(data),
                    });
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
            }
        }
        let _ = self.pc.close();
        self.send().await;
    }

    /// Sends what the connection has to send.
    async fn send(&mut self) {
        while let Some(out) = self.pc.poll_write() {
            let _ = self
                .socket
                .send_to(&out.message, out.transport.peer_addr)
                .await;
        }
    }

    fn take_events(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                    RTCIceConnectionState::Connected,
                ) => {
                    self.shared.mark(|t, ms| {
                        t.ice_connected_ms.get_or_insert(ms);
                    });
                    // As a DTLS client (its answer to Janus's actpass offer) its first flight
                    // leaves on the connection's next timeout, as in the server's transport:
                    // run it now. What was already due (the answer to the nominating check)
                    // went out first, in `send` before this.
                    let _ = self.pc.handle_timeout(Instant::now());
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        self.connected = true;
                        self.shared.mark(|t, ms| {
                            t.connected_ms.get_or_insert(ms);
                        });
                    }
                    RTCPeerConnectionState::Failed => {
                        self.shared.fail("ICE/DTLS failed".to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    /// Counts every decrypted RTP packet (video by its payload type, as offered) and sends
    /// the one PLI `--pli-after-ms` asks for.
    fn take_packets(&mut self) {
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            let RTCMessage::RtpPacket(_, packet) = message else {
                continue;
            };
            let video = packet.header.payload_type == self.video_pt;
            let kind = match video {
                true => RtpCodecKind::Video,
                false => RtpCodecKind::Audio,
            };
            self.shared.on_packet(kind, &packet);
            if video {
                self.maybe_request_keyframe(packet.header.ssrc);
            }
        }
    }

    fn maybe_request_keyframe(&mut self, media_ssrc: u32) {
        let Some(after) = self.pli_after else {
            return;
        };
        let now = Instant::now();
        let due = *self.pli_due.get_or_insert(now + after);
        let asked = lock(&self.shared.counters)
            .video_timing
            .requested_ms()
            .is_some();
        if now < due || asked {
            return;
        }
        let since_post = self.shared.since_post_ms().unwrap_or(0.0);
        lock(&self.shared.counters)
            .video_timing
            .requested(since_post);
        let Some(receiver) = self.pc.get_receivers().next() else {
            self.shared
                .fail("no receiver to send the PLI on".to_string());
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        let sent = self
            .pc
            .rtp_receiver(receiver)
            .map(|mut r| r.write_rtcp(now, vec![Box::new(pli)]));
        if !matches!(sent, Some(Ok(_))) {
            self.shared.fail("cannot send the PLI".to_string());
        }
    }
}
