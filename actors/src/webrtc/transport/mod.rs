//! One viewer's connection on the shared media port: ICE-lite ([`ice_lite`]), DTLS
//! ([`dtls`]) and SRTP of our own over the `rtc` crate's sans-IO parts, driven by whoever
//! owns the socket.
//!
//! It answers the browser's offer ([`answer`]: our ICE fragment and password, the server's
//! one certificate, the port's advertised host candidates); then it takes the datagrams the
//! port's demultiplexer routes to it ([`ViewerTransport::receive`]), hands back what to send
//! ([`ViewerTransport::poll_transmit`]), reports what happened
//! ([`ViewerTransport::poll_event`]: connected, failed, closed, a keyframe request) and
//! protects RTP whose header fields the caller chose — one header write, one SRTP pass, no
//! queue in between — keeping the latest video packets to answer a NACK with the same
//! bytes. Time is passed in; it owns no socket, no timer and no thread, and it never sees a
//! frame: only RTP payloads.

mod answer;
mod dtls;
mod ice_lite;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use log::debug;
use pullcast::rtp::{nacked, ResendHistory, RtpHeader, SentPacket, HEADER_LEN};
use pullcast::webrtc_viewer::offer_transport;
use rtc::crypto::RTCCryptoProvider;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::shared::TransportProtocol;

use answer::IceCredentials;
use dtls::{DtlsClient, DtlsEvent, SrtpKeys};
pub use ice_lite::CheckCredentials;
use ice_lite::{IceLite, Path};

/// Video packets each viewer keeps to resend on a NACK (a power of two): about 4 s at
/// 600 kbit/s, 1 s at 2.5 Mbit/s — well past a browser's NACK horizon (its RTT plus jitter
/// buffer). The payloads are the capture's shared bytes; a slot costs a header's worth.
pub const NACK_HISTORY: usize = 256;

/// The most packets sent again for one RTCP datagram from the browser (a browser names a few
/// at a time: what one loss burst took).
pub const MAX_RESENDS_PER_RTCP: usize = 64;

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
    /// No connectivity check from the browser for this long ends the viewer (consent, RFC
    /// 7675; a browser checks a working path every 2.5 s).
    pub consent_timeout: Duration,
}

/// What one viewer's connection is built with.
pub struct TransportRecipe {
    /// The codecs and payload types chosen from its offer.
    pub media_engine: MediaEngine,
    pub video: Option<RTCRtpCodec>,
    pub audio: Option<RTCRtpCodec>,
    /// The stream id the browser groups the tracks by (msid).
    pub stream_id: String,
}

/// One outgoing track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingTrack {
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
    ice: IceLite,
    dtls: DtlsClient,
    /// Set once DTLS is up.
    srtp: Option<Box<SrtpKeys>>,
    pub video: Option<OutgoingTrack>,
    pub audio: Option<OutgoingTrack>,
    /// The video track's latest packets, for NACKs.
    video_sent: ResendHistory,
    /// What to send, in order.
    out: VecDeque<(Protocol, SocketAddr, BytesMut)>,
    events: VecDeque<TransportEvent>,
    /// One packet's header and payload, before protection (reused).
    plain: Vec<u8>,
    /// The last time passed in (a goodbye is stamped with it).
    now: Instant,
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
        let browser = offer_transport(offer_sdp).map_err(|e| e.to_string())?;
        let crypto: Arc<dyn RTCCryptoProvider> =
            rtc::crypto::default_provider().map_err(|e| format!("no crypto provider: {e}"))?;
        let ufrag = rtc::ice::rand::generate_ufrag();
        let password = rtc::ice::rand::generate_pwd();
        let ssrcs = [(ssrc_seed as u32).max(1), ((ssrc_seed >> 32) as u32).max(2)];
        let credentials = IceCredentials {
            ufrag: &ufrag,
            password: &password,
        };
        let answer = answer::answer(offer_sdp, recipe, port, credentials, ssrcs, now)?;
        let dtls = DtlsClient::new(&port.certificate, browser.fingerprint, crypto.clone())?;
        let track = |(ssrc, payload_type)| OutgoingTrack { ssrc, payload_type };
        let transport = Self {
            ice: IceLite::new(
                ufrag,
                password,
                (browser.ice_ufrag, browser.ice_pwd),
                port.consent_timeout,
                crypto,
                now,
            ),
            dtls,
            srtp: None,
            video: answer.video.map(track),
            audio: answer.audio.map(track),
            video_sent: ResendHistory::new(NACK_HISTORY),
            out: VecDeque::new(),
            events: VecDeque::new(),
            plain: Vec::with_capacity(1_500),
            now,
            ended: false,
        };
        Ok((transport, answer.sdp))
    }

    /// Our ICE username fragment: a Binding request naming it is this viewer's.
    pub fn ufrag(&self) -> &str {
        self.ice.ufrag()
    }

    /// Whether `datagram` (a Binding request) carries a MESSAGE-INTEGRITY made with this
    /// viewer's password: only then may its sender's address be bound to this viewer.
    pub fn authenticates(&self, datagram: &[u8]) -> bool {
        self.ice.credentials().authenticates(datagram)
    }

    /// What checks a Binding request's claim to this viewer, apart from the transport (the
    /// port's receiving side binds new addresses with it).
    pub fn credentials(&self) -> CheckCredentials {
        self.ice.credentials().clone()
    }

    /// A packet from `from` over `protocol`, told apart by its first byte (RFC 7983).
    pub fn receive(&mut self, now: Instant, protocol: Protocol, from: SocketAddr, datagram: &[u8]) {
        self.now = now;
        if self.ended {
            return;
        }
        let path = Path {
            protocol,
            remote: from,
        };
        match datagram.first() {
            Some(0..=3) => self.connectivity_check(now, path, datagram),
            Some(20..=63) => self.dtls_datagram(now, datagram),
            Some(128..=191) if matches!(datagram.get(1), Some(192..=223)) => self.rtcp(datagram),
            // The browser sends no media; anything else is noise.
            _ => {}
        }
    }

    fn connectivity_check(&mut self, now: Instant, path: Path, datagram: &[u8]) {
        let Some(answered) = self.ice.check(now, path, datagram) else {
            return;
        };
        self.out.push_back((
            path.protocol,
            path.remote,
            BytesMut::from(&answered.response[..]),
        ));
        if let Some(check) = answered.triggered {
            self.out
                .push_back((path.protocol, path.remote, BytesMut::from(&check[..])));
        }
        if answered.first_nomination {
            // The browser's ICE is up on this path: now the ClientHello may go, after the
            // success response just queued (a browser drops a ClientHello that arrives
            // before its ICE is connected, and DTLS would wait for its first resend, 1 s).
            if let Err(e) = self.dtls.start(now) {
                self.fail(e);
            }
            self.take_dtls_output();
        }
    }

    fn dtls_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let result = self.dtls.receive(now, datagram);
        self.take_dtls_output();
        match result {
            Ok(Some(DtlsEvent::Connected(keys))) => {
                self.srtp = Some(keys);
                self.events.push_back(TransportEvent::Connected);
            }
            Ok(Some(DtlsEvent::Closed)) => {
                self.ended = true;
                self.events.push_back(TransportEvent::Closed);
            }
            Ok(None) => {}
            Err(e) => self.fail(e),
        }
    }

    /// Moves what DTLS has to send onto the selected path.
    fn take_dtls_output(&mut self) {
        while let Some(datagram) = self.dtls.poll_transmit() {
            if let Some(path) = self.ice.selected() {
                self.out.push_back((path.protocol, path.remote, datagram));
            }
        }
    }

    /// The browser's SRTCP: keyframe requests go up, NACKs are answered here, the rest
    /// (receiver reports) is dropped.
    fn rtcp(&mut self, datagram: &[u8]) {
        let Some(keys) = self.srtp.as_mut() else {
            return;
        };
        let mut plain = match keys.inbound.decrypt_rtcp(datagram) {
            Ok(plain) => plain,
            Err(e) => {
                debug!("SRTCP from the browser refused: {e}");
                return;
            }
        };
        let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut plain) else {
            return;
        };
        let mut keyframe = false;
        let mut lost = Vec::new();
        for packet in &packets {
            let any = packet.as_any();
            keyframe |= any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>();
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                if self.video.is_some_and(|v| v.ssrc == nack.media_ssrc) {
                    for pair in &nack.nacks {
                        lost.extend(nacked(pair.packet_id, pair.lost_packets));
                    }
                }
            }
        }
        if keyframe {
            self.events.push_back(TransportEvent::KeyframeRequested);
        }
        if let Some(video) = self.video {
            // Each packet once, and a bounded number per RTCP datagram: a NACK names up to 17
            // packets per 4 bytes, and a hostile viewer must not make the port protect its
            // whole history again for every small datagram it sends.
            lost.sort_unstable();
            lost.dedup();
            lost.truncate(MAX_RESENDS_PER_RTCP);
            for sequence_number in lost {
                if let Some(p) = self.video_sent.get(sequence_number).cloned() {
                    self.protect(video, &p);
                }
            }
        }
    }

    /// What happened since the last call; `None` when nothing more.
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }

    /// The next packet to send: over what, where to, and its bytes.
    pub fn poll_transmit(&mut self) -> Option<(Protocol, SocketAddr, BytesMut)> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let consent = self.ice.consent_expires();
        Some(self.dtls.next_timeout().map_or(consent, |t| t.min(consent)))
    }

    /// Runs the timers due at `now`: a browser that stopped checking, or a DTLS handshake
    /// that gave up, ends the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TransportEvent> {
        self.now = now;
        if self.ended {
            return None;
        }
        if now >= self.ice.consent_expires() {
            self.ended = true;
            return Some(TransportEvent::Failed(
                "ICE failed: no checks from the browser".to_string(),
            ));
        }
        if let Err(e) = self.dtls.handle_timeout(now) {
            self.ended = true;
            return Some(TransportEvent::Failed(e));
        }
        self.take_dtls_output();
        None
    }

    fn fail(&mut self, reason: String) {
        if !self.ended {
            self.ended = true;
            self.events.push_back(TransportEvent::Failed(reason));
        }
    }

    /// Sends one RTP packet on `track` (SRTP-protected); dropped until connected.
    pub fn send_rtp(
        &mut self,
        track: OutgoingTrack,
        sequence_number: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) {
        if !self.is_connected() {
            return;
        }
        let packet = SentPacket {
            sequence_number,
            timestamp,
            marker,
            payload,
        };
        self.protect(track, &packet);
        if self.video == Some(track) {
            self.video_sent.record(packet);
        }
    }

    /// Writes `packet`'s header and payload, protects them and queues the datagram for the
    /// selected path.
    fn protect(&mut self, track: OutgoingTrack, packet: &SentPacket) {
        let (Some(keys), Some(path)) = (self.srtp.as_mut(), self.ice.selected()) else {
            return;
        };
        let header = RtpHeader {
            payload_type: track.payload_type,
            marker: packet.marker,
            sequence_number: packet.sequence_number,
            timestamp: packet.timestamp,
            ssrc: track.ssrc,
        };
        self.plain.clear();
        self.plain.extend_from_slice(&header.to_bytes());
        self.plain.extend_from_slice(&packet.payload);
        // The SRTP context only reads these fields (and the header's length: 12).
        let described = rtp::header::Header {
            version: 2,
            marker: packet.marker,
            payload_type: track.payload_type,
            sequence_number: packet.sequence_number,
            timestamp: packet.timestamp,
            ssrc: track.ssrc,
            ..Default::default()
        };
        debug_assert_eq!(
            rtc::shared::marshal::MarshalSize::marshal_size(&described),
            HEADER_LEN
        );
        match keys
            .outbound
            .encrypt_rtp_with_header(&self.plain, &described)
        {
            Ok(datagram) => self.out.push_back((path.protocol, path.remote, datagram)),
            Err(e) => debug!("SRTP: {e}"),
        }
    }

    /// Sends RTCP (sender reports, which name their stream); dropped until connected.
    pub fn send_rtcp(&mut self, packets: Vec<Box<dyn rtc::rtcp::Packet>>) {
        if !self.is_connected() {
            return;
        }
        let (Some(keys), Some(path)) = (self.srtp.as_mut(), self.ice.selected()) else {
            return;
        };
        let protected = rtc::rtcp::packet::marshal(&packets)
            .map_err(|e| e.to_string())
            .and_then(|plain| {
                keys.outbound
                    .encrypt_rtcp(&plain)
                    .map_err(|e| e.to_string())
            });
        match protected {
            Ok(datagram) => self.out.push_back((path.protocol, path.remote, datagram)),
            Err(e) => debug!("SRTCP: {e}"),
        }
    }

    /// Whether media may flow.
    pub fn is_connected(&self) -> bool {
        self.srtp.is_some() && !self.ended
    }

    /// Closes it (the goodbye to the browser is then in [`Self::poll_transmit`]).
    pub fn close(&mut self) {
        self.dtls.close(self.now);
        self.take_dtls_output();
        self.ended = true;
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
