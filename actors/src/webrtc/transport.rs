//! One viewer's connection on the shared media port: ICE-lite, DTLS and SRTP from the
//! `rtc` crate's sans-IO peer connection, driven by whoever owns the socket.
//!
//! It answers the browser's offer with our ICE fragment and password, the server's one
//! certificate and the port's advertised host candidates; then it takes the datagrams the
//! port's demultiplexer routes to it ([`ViewerTransport::receive`]), hands back what to send
//! ([`ViewerTransport::poll_transmit`]), reports what happened
//! ([`ViewerTransport::poll_event`]: connected, failed, closed, a keyframe request) and sends
//! RTP whose header fields the caller chose. Time is passed in; it owns no socket, no
//! timer and no thread, and it never sees a frame: only RTP payloads.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::Message as StunMessage;

/// What every viewer's transport on one port shares.
#[derive(Clone)]
pub struct PortIdentity {
    /// The server's DTLS certificate (its fingerprint goes in every answer).
    pub certificate: RTCCertificate,
    /// The port's host candidates, as advertised (what browsers send to): the address a
    /// datagram is handed in with must be one of these.
    pub candidates: Vec<SocketAddr>,
    /// Its passive ICE-TCP candidates (RFC 6544), for browsers whose UDP is blocked;
    /// announced after every UDP one.
    pub tcp_candidates: Vec<SocketAddr>,
    /// No STUN from the browser for this long: disconnected; for this long: failed.
    pub disconnected_after: Duration,
    pub failed_after: Duration,
}

/// What one viewer's connection is built with.
pub struct TransportRecipe {
    /// The codecs, payload types and interceptors chosen from its offer.
    pub media_engine: MediaEngine,
    pub interceptors: Registry,
    pub video: Option<RTCRtpCodec>,
    pub audio: Option<RTCRtpCodec>,
    /// The stream id the browser groups the tracks by (msid).
    pub stream_id: String,
}

/// One outgoing track.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingTrack {
    sender: RTCRtpSenderId,
    pub ssrc: u32,
    /// The payload type the answer settled on.
    pub payload_type: u8,
}

/// What happened to the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// ICE and DTLS are up: media may flow.
    Connected,
    /// It cannot go on (ICE failed, DTLS failed or timed out); the reason says which.
    Failed(String),
    /// Closed by either side.
    Closed,
    /// The browser asked for a keyframe (PLI or FIR).
    KeyframeRequested,
}

/// One viewer's ICE-lite + DTLS + SRTP connection.
pub struct ViewerTransport {
    pc: RTCPeerConnection,
    ufrag: String,
    password: String,
    pub video: Option<OutgoingTrack>,
    pub audio: Option<OutgoingTrack>,
    /// The last time passed in: events that must act at once use it.
    now: Instant,
    /// Datagrams taken from the connection ahead of what it produces next, sent first.
    queued: VecDeque<(Protocol, SocketAddr, BytesMut)>,
    connected: bool,
    ended: bool,
}

impl ViewerTransport {
    /// Answers `offer_sdp`: the transport, and the answer (with every candidate: no
    /// trickle). SSRCs are chosen from `ssrc_seed`.
    pub fn answer(
        offer_sdp: &str,
        recipe: TransportRecipe,
        port: &PortIdentity,
        ssrc_seed: u64,
        now: Instant,
    ) -> Result<(Self, String), String> {
        let ufrag = rtc::ice::rand::generate_ufrag();
        let password = rtc::ice::rand::generate_pwd();
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_ice_credentials(ufrag.clone(), password.clone())
            .with_ice_timeouts(Some(port.disconnected_after), Some(port.failed_after), None)
            .build();
        let configuration = RTCConfigurationBuilder::new()
            .with_certificates(vec![port.certificate.clone()])
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(recipe.media_engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(recipe.interceptors)
            .build(now)
            .map_err(|e| format!("cannot build the connection: {e}"))?;
        let offer = RTCSessionDescription::offer(offer_sdp.to_string())
            .map_err(|e| format!("unusable offer: {e}"))?;
        pc.set_remote_description(now, offer)
            .map_err(|e| format!("cannot apply the offer: {e}"))?;
        let ssrcs = [(ssrc_seed as u32).max(1), ((ssrc_seed >> 32) as u32).max(2)];
        let mut video = None;
        let mut audio = None;
        if let Some(codec) = recipe.video {
            let sender = add_track(
                &mut pc,
                &recipe.stream_id,
                RtpCodecKind::Video,
                codec,
                ssrcs[0],
            )?;
            video = Some((sender, ssrcs[0]));
        }
        if let Some(codec) = recipe.audio {
            let sender = add_track(
                &mut pc,
                &recipe.stream_id,
                RtpCodecKind::Audio,
                codec,
                ssrcs[1],
            )?;
            audio = Some((sender, ssrcs[1]));
        }
        let udp = port.candidates.iter().map(|a| (Protocol::Udp, a));
        let tcp = port.tcp_candidates.iter().map(|a| (Protocol::Tcp, a));
        for (i, (protocol, address)) in udp.chain(tcp).enumerate() {
            pc.add_local_candidate(RTCIceCandidateInit {
                candidate: host_candidate(i, protocol, *address),
                ..Default::default()
            })
            .map_err(|e| format!("cannot add the candidate {address}: {e}"))?;
        }
        let answer = pc
            .create_answer(None)
            .map_err(|e| format!("cannot answer: {e}"))?;
        let answer_sdp = answer.sdp.clone();
        pc.set_local_description(now, answer)
            .map_err(|e| format!("cannot apply the answer: {e}"))?;
        let mut transport = Self {
            pc,
            ufrag,
            password,
            video: None,
            audio: None,
            now,
            queued: VecDeque::new(),
            connected: false,
            ended: false,
        };
        transport.video = video.map(|(s, ssrc)| transport.outgoing(s, ssrc));
        transport.audio = audio.map(|(s, ssrc)| transport.outgoing(s, ssrc));
        Ok((transport, answer_sdp))
    }

    fn outgoing(&mut self, sender: RTCRtpSenderId, ssrc: u32) -> OutgoingTrack {
        let payload_type = self
            .pc
            .rtp_sender(sender)
            .and_then(|mut s| {
                let codecs = &s.get_parameters().rtp_parameters.codecs;
                codecs.first().map(|c| c.payload_type)
            })
            .unwrap_or(0);
        OutgoingTrack {
            sender,
            ssrc,
            payload_type,
        }
    }

    /// Our ICE username fragment: a Binding request naming it is this viewer's.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Whether `datagram` (a Binding request) carries a MESSAGE-INTEGRITY made with this
    /// viewer's password: only then may its sender's address be bound to this viewer.
    pub fn authenticates(&self, datagram: &[u8]) -> bool {
        let mut message = StunMessage::new();
        if message.unmarshal_binary(datagram).is_err() {
            return false;
        }
        let Ok(provider) = rtc::crypto::default_provider() else {
            return false;
        };
        MessageIntegrity::check(&mut message, self.password.as_bytes(), provider.crypto()).is_ok()
    }

    /// A packet from `from` over `protocol`, received on the advertised address `local`.
    pub fn receive(
        &mut self,
        now: Instant,
        protocol: Protocol,
        local: SocketAddr,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        self.now = now;
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: from,
                transport_protocol: protocol.into(),
                ecn: None,
            },
            message: BytesMut::from(datagram),
        });
    }

    /// What happened since the last call; `None` when nothing more.
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                    RTCIceConnectionState::Connected,
                ) => {
                    // The DTLS client's first flight leaves on the next timeout: now. What is
                    // already waiting (the success response to the browser's nominating
                    // check) must go out before it: a browser drops a ClientHello that
                    // arrives before its ICE is connected, and DTLS would wait for its first
                    // retransmission (1 s).
                    while let Some(datagram) = self.take_write() {
                        self.queued.push_back(datagram);
                    }
                    let _ = self.pc.handle_timeout(self.now);
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        self.connected = true;
                        return Some(TransportEvent::Connected);
                    }
                    RTCPeerConnectionState::Failed if !self.ended => {
                        self.ended = true;
                        return Some(TransportEvent::Failed(
                            "ICE failed: no checks from the browser".to_string(),
                        ));
                    }
                    RTCPeerConnectionState::Closed if !self.ended => {
                        self.ended = true;
                        return Some(TransportEvent::Closed);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = message {
                let asks = packets.iter().any(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                });
                if asks {
                    return Some(TransportEvent::KeyframeRequested);
                }
            }
        }
        None
    }

    /// The next packet to send: over what, where to, and its bytes.
    pub fn poll_transmit(&mut self) -> Option<(Protocol, SocketAddr, BytesMut)> {
        self.queued.pop_front().or_else(|| self.take_write())
    }

    fn take_write(&mut self) -> Option<(Protocol, SocketAddr, BytesMut)> {
        self.pc.poll_write().map(|t| {
            let protocol = match t.transport.transport_protocol {
                TransportProtocol::TCP => Protocol::Tcp,
                _ => Protocol::Udp,
            };
            (protocol, t.transport.peer_addr, t.message)
        })
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn next_timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    /// Runs the timers due at `now`. A DTLS handshake that gave up ends the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TransportEvent> {
        self.now = now;
        match self.pc.handle_timeout(now) {
            Err(e) if !self.ended => {
                self.ended = true;
                Some(TransportEvent::Failed(format!("DTLS failed: {e}")))
            }
            _ => None,
        }
    }

    /// Sends one RTP packet on `track` (SRTP-protected); dropped until connected.
    pub fn send_rtp(
        &mut self,
        now: Instant,
        track: OutgoingTrack,
        sequence_number: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) {
        if !self.connected || self.ended {
            return;
        }
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker,
                payload_type: track.payload_type,
                sequence_number,
                timestamp,
                ssrc: track.ssrc,
                ..Default::default()
            },
            payload,
        };
        if let Some(mut sender) = self.pc.rtp_sender(track.sender) {
            let _ = sender.write_rtp(now, packet);
        }
    }

    /// Sends RTCP (sender reports) on `track`'s stream; dropped until connected.
    pub fn send_rtcp(
        &mut self,
        now: Instant,
        track: OutgoingTrack,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) {
        if !self.connected || self.ended {
            return;
        }
        if let Some(mut sender) = self.pc.rtp_sender(track.sender) {
            let _ = sender.write_rtcp(now, packets);
        }
    }

    /// Whether media may flow.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.ended
    }

    /// Closes it (what goes to the browser is then in [`Self::poll_transmit`]).
    pub fn close(&mut self) {
        let _ = self.pc.close();
    }
}

/// A fresh self-signed ECDSA P-256 certificate for the port's DTLS (one per server run: every
/// answer carries its fingerprint).
pub fn port_certificate() -> Result<RTCCertificate, String> {
    let provider =
        rtc::crypto::default_provider().map_err(|e| format!("no crypto provider: {e}"))?;
    let params = CertificateParams::new(vec!["pullcast".to_string()])
        .map_err(|e| format!("certificate parameters: {e}"))?;
    RTCCertificate::generate(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        params,
    )
    .map_err(|e| format!("cannot make the DTLS certificate: {e}"))
}

/// Adds the send-only track `kind` of stream `stream_id` (the browser groups tracks by it):
/// one encoding with `codec` on `ssrc`.
fn add_track(
    pc: &mut RTCPeerConnection,
    stream_id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    ssrc: u32,
) -> Result<RTCRtpSenderId, String> {
    let name = match kind {
        RtpCodecKind::Audio => "audio",
        _ => "video",
    };
    let track = MediaStreamTrack::new(
        stream_id.to_string(),
        name.to_string(),
        name.to_string(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    );
    pc.add_track(track)
        .map_err(|e| format!("cannot add the {name} track: {e}"))
}

/// An SDP host candidate for `address` over `protocol` (component 1), the `index`-th of the
/// port's (UDP ones first: the lower local preference of the later TCP ones keeps them last).
fn host_candidate(index: usize, protocol: Protocol, address: SocketAddr) -> String {
    // RFC 8445 §5.1.2.1: type preference 126 (host), local preference by order, component 1.
    let local_preference = 65_535u32.saturating_sub(index as u32);
    let priority = (126u32 << 24) | (local_preference << 8) | 255;
    let (ip, port, n) = (address.ip(), address.port(), index + 1);
    match protocol {
        Protocol::Udp => format!("candidate:{n} 1 udp {priority} {ip} {port} typ host"),
        Protocol::Tcp => {
            format!("candidate:{n} 1 tcp {priority} {ip} {port} typ host tcptype passive")
        }
    }
}

/// How a packet travels between the port and a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    /// ICE-TCP: RFC 4571 frames on a connection the browser opened.
    Tcp,
}

impl From<Protocol> for TransportProtocol {
    fn from(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Udp => TransportProtocol::UDP,
            Protocol::Tcp => TransportProtocol::TCP,
        }
    }
}
