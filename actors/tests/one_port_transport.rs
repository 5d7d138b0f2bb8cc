//! The one-port transport (`webrtc::transport::ViewerTransport`) against a browser-like peer
//! built from the same `rtc` crate (full ICE, controlling, recvonly H.264 + Opus), every
//! datagram passing through the port's demultiplexer (`pullcast::media_port::Demux`), in
//! virtual time: no socket, no sleep. What this proves: ICE-lite answers a controlling
//! agent, DTLS and SRTP come up with one shared certificate, the payloads packetized once
//! arrive decrypted and intact, a PLI comes back as a keyframe request, two viewers behind
//! one address (different ports) stay apart, and a datagram from an unknown address or a
//! Binding request with a wrong password reaches nobody. Real browsers are the integration
//! tests' job.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use bytes::{Bytes, BytesMut};
use pullcast::media::{MediaFrame, Track};
use pullcast::media_port::{Demux, Route};
use pullcast::rtp::h264::{packetize, MAX_PAYLOAD};
use pullcast::webrtc_viewer::parse_offer;
use pullcast_server::messages::SharedPayloads;
use pullcast_server::stream::budget::Charge;
use pullcast_server::telemetry::SharedTelemetry;
use pullcast_server::webrtc::media_plane::{MediaPlane, TrackStart};
use pullcast_server::webrtc::media_port::{MediaPort, PortEvent};
use pullcast_server::webrtc::transport::{
    PortIdentity, Protocol, TransportEvent, TransportRecipe, ViewerTransport, MAX_RESENDS_PER_RTCP,
};
use pullcast_server::webrtc::WebRtcEngine;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Registry;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

const SERVER: &str = "192.0.2.1:8189";

fn server_addr() -> SocketAddr {
    SERVER.parse().expect("address")
}

fn certificate() -> RTCCertificate {
    let provider = rtc::crypto::default_provider().expect("crypto provider");
    let params = CertificateParams::new(vec!["pullcast".to_string()]).expect("params");
    RTCCertificate::generate(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        params,
    )
    .expect("certificate")
}

/// A browser-like offerer at `address`: recvonly H.264 (42e01f, mode 1) and Opus.
fn browser(address: SocketAddr, now: Instant) -> (RTCPeerConnection, String) {
    let mut media = MediaEngine::default();
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_string(),
        parameter: parameter.to_string(),
    };
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_H264.to_string(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line:
                        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                            .to_string(),
                    rtcp_feedback: vec![feedback("nack", ""), feedback("nack", "pli")],
                },
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .expect("H.264");
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_string(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_string(),
                    rtcp_feedback: vec![],
                },
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .expect("Opus");
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(Registry::new())
        .build(now)
        .expect("browser");
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        };
        pc.add_transceiver_from_kind(kind, Some(init))
            .expect("transceiver");
    }
    pc.add_local_candidate(RTCIceCandidateInit {
        candidate: format!(
            "candidate:1 1 udp 2122260223 {} {} typ host",
            address.ip(),
            address.port()
        ),
        ..Default::default()
    })
    .expect("candidate");
    let offer = pc.create_offer(None).expect("offer");
    let sdp = offer.sdp.clone();
    pc.set_local_description(now, offer).expect("local offer");
    (pc, sdp)
}

/// What a browser-like peer reports: whether it became connected, and the RTP it received.
fn drain_browser(pc: &mut RTCPeerConnection) -> (bool, Vec<rtc::rtp::Packet>) {
    let mut connected = false;
    while let Some(event) = pc.poll_event() {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
            RTCPeerConnectionState::Connected,
        ) = event
        {
            connected = true;
        }
    }
    let mut packets = Vec::new();
    while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
        if let RTCMessage::RtpPacket(_, packet) = message {
            packets.push(packet);
        }
    }
    (connected, packets)
}

/// The server's recipe for the transport answering `offer`, as the engine makes it.
fn recipe_for(offer: &str) -> TransportRecipe {
    let summary = parse_offer(offer).expect("the offer parses");
    let codecs = WebRtcEngine::codecs_for_offer(&summary).expect("codecs");
    let media_engine = WebRtcEngine::media_engine(&codecs).expect("recipe");
    TransportRecipe {
        media_engine,
        video: codecs.video_codec(),
        audio: codecs.audio_codec(),
        stream_id: "pullcast".to_string(),
    }
}

/// One browser and the server side of its connection.
struct Viewer {
    address: SocketAddr,
    browser: RTCPeerConnection,
    transport: ViewerTransport,
    browser_connected: bool,
    server_events: Vec<TransportEvent>,
    received: Vec<(u8, u32, Bytes)>,
    /// SRTP datagrams the port sent it (before the browser's own checks, which drop a
    /// duplicate).
    srtp_datagrams: usize,
    /// The browser vanished (no goodbye): it sends nothing and what reaches it is lost.
    gone: bool,
}

/// The port: its demultiplexer and the viewers behind it (viewer key = index).
struct Port {
    identity: PortIdentity,
    demux: Demux<usize>,
    viewers: Vec<Viewer>,
    now: Instant,
    /// Datagrams the demultiplexer gave to nobody.
    dropped: usize,
}

impl Port {
    fn new() -> Self {
        Self {
            identity: PortIdentity {
                certificate: certificate(),
                candidates: vec![server_addr()],
                tcp_candidates: Vec::new(),
                consent_timeout: Duration::from_secs(20),
            },
            demux: Demux::new(4),
            viewers: Vec::new(),
            now: Instant::now(),
            dropped: 0,
        }
    }

    /// A browser at `address` offers; the server answers.
    fn add_viewer(&mut self, address: SocketAddr) -> usize {
        let (mut browser, offer) = browser(address, self.now);
        let recipe = recipe_for(&offer);
        let seed = 0x1234_5678_9abc_def0 ^ self.viewers.len() as u64;
        let (transport, answer) =
            ViewerTransport::answer(&offer, recipe, &self.identity, seed, self.now)
                .expect("answer");
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains(&format!("{} typ host", SERVER.replace(':', " "))));
        let answer = RTCSessionDescription::answer(answer).expect("answer SDP");
        browser
            .set_remote_description(self.now, answer)
            .expect("the browser takes the answer");
        let key = self.viewers.len();
        self.demux
            .add_viewer(key, transport.ufrag())
            .expect("a fresh fragment");
        self.viewers.push(Viewer {
            address,
            browser,
            transport,
            browser_connected: false,
            server_events: Vec::new(),
            received: Vec::new(),
            srtp_datagrams: 0,
            gone: false,
        });
        key
    }

    /// A browser at `address` offers and connects (both sides up within 10 s of virtual time).
    fn connect_viewer(&mut self, address: SocketAddr) -> usize {
        let v = self.add_viewer(address);
        assert!(
            self.run_until(Duration::from_secs(10), |p| connected(&p.viewers[v])),
            "not connected: server events {:?}",
            self.viewers[v].server_events
        );
        v
    }

    /// Moves every datagram both ways and runs both sides' timers, until nothing moves;
    /// then advances virtual time to the next timer (at most `step`).
    fn turn(&mut self, step: Duration) {
        loop {
            let mut moved = false;
            for i in 0..self.viewers.len() {
                // Browser → port.
                while let Some(out) = self.viewers[i].browser.poll_write() {
                    if self.viewers[i].gone {
                        continue;
                    }
                    moved = true;
                    assert_eq!(out.transport.peer_addr, server_addr());
                    let from = self.viewers[i].address;
                    self.deliver_to_port(from, &out.message);
                }
                // Server side's events and output.
                let viewer = &mut self.viewers[i];
                while let Some(event) = viewer.transport.poll_event() {
                    viewer.server_events.push(event);
                }
                let mut outgoing = Vec::new();
                while let Some((_, to, datagram)) = viewer.transport.poll_transmit() {
                    outgoing.push((to, datagram));
                }
                for (to, datagram) in outgoing {
                    moved = true;
                    let target = self
                        .viewers
                        .iter_mut()
                        .find(|v| v.address == to)
                        .expect("the server sends only to a viewer's address");
                    if target.gone {
                        continue;
                    }
                    // RTP (RFC 7983: first byte 128..=191), not RTCP (payload types 192..=223).
                    let rtp = matches!(datagram.first(), Some(128..=191))
                        && !matches!(datagram.get(1), Some(192..=223));
                    target.srtp_datagrams += usize::from(rtp);
                    target
                        .browser
                        .handle_read(TaggedBytesMut {
                            now: self.now,
                            transport: TransportContext {
                                local_addr: to,
                                peer_addr: server_addr(),
                                transport_protocol: TransportProtocol::UDP,
                                ecn: None,
                            },
                            message: datagram,
                        })
                        .expect("browser read");
                }
                let viewer = &mut self.viewers[i];
                let (connected, packets) = drain_browser(&mut viewer.browser);
                viewer.browser_connected |= connected;
                for p in packets {
                    let h = &p.header;
                    viewer
                        .received
                        .push((h.payload_type, h.ssrc, p.payload.clone()));
                }
            }
            if !moved {
                break;
            }
        }
        let mut next = self.now + step;
        for v in &mut self.viewers {
            for t in [v.browser.poll_timeout(), v.transport.next_timeout()]
                .into_iter()
                .flatten()
            {
                next = next.min(t);
            }
        }
        self.now = next.max(self.now + Duration::from_micros(100));
        let now = self.now;
        for v in &mut self.viewers {
            let _ = v.browser.handle_timeout(now);
            if let Some(event) = v.transport.handle_timeout(now) {
                v.server_events.push(event);
            }
        }
    }

    fn deliver_to_port(&mut self, from: SocketAddr, datagram: &[u8]) {
        let key = match self.demux.route(datagram, from) {
            Route::Viewer(key) => key,
            Route::Claims(key) => {
                if !self.viewers[key].transport.authenticates(datagram) {
                    self.dropped += 1;
                    return;
                }
                assert!(self.demux.bind_path(from, key));
                key
            }
            Route::Unknown => {
                self.dropped += 1;
                return;
            }
        };
        let now = self.now;
        self.viewers[key]
            .transport
            .receive(now, Protocol::Udp, from, datagram);
    }

    /// Viewer `v`'s browser sends `packet` (RTCP feedback) on its first receiver.
    fn browser_sends_rtcp(&mut self, v: usize, packet: Box<dyn rtc::rtcp::Packet>) {
        let now = self.now;
        let browser = &mut self.viewers[v].browser;
        let receiver = browser.get_receivers().find(|_| true).expect("a receiver");
        let mut first = browser.rtp_receiver(receiver).expect("receiver");
        first.write_rtcp(now, vec![packet]).expect("RTCP");
    }

    /// Turns until `done` holds, for at most `limit` of virtual time.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Port) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.turn(Duration::from_millis(20));
        }
        done(self)
    }
}

fn connected(v: &Viewer) -> bool {
    v.browser_connected && v.server_events.contains(&TransportEvent::Connected)
}

/// A keyframe-shaped access unit: SPS, PPS and a 5 000-byte IDR slice.
fn access_unit(seed: u8) -> Bytes {
    let mut au = vec![0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d, 0x40];
    au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
    au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
    au.extend((0..5000u32).map(|i| ((i as u8) ^ seed) | 0x10));
    Bytes::from(au)
}

#[test]
fn a_controlling_browser_connects_to_the_lite_transport_and_gets_the_shared_payloads() {
    let mut port = Port::new();
    let v = port.add_viewer("198.51.100.7:50000".parse().expect("address"));
    let t0 = port.now;
    assert!(
        port.run_until(Duration::from_secs(10), |p| connected(&p.viewers[v])),
        "not connected: server events {:?}",
        port.viewers[v].server_events
    );
    // In one exchange, without waiting for a DTLS retransmission (1 s): the success response
    // to the browser's nominating check must reach it before the server's ClientHello, which
    // a browser drops while its ICE is not connected yet.
    let took = port.now - t0;
    assert!(
        took < Duration::from_millis(100),
        "connecting took {took:?} of virtual time"
    );
    assert_eq!(port.dropped, 0, "every datagram had an owner");
    let viewer = &mut port.viewers[v];
    assert!(viewer.transport.is_connected());
    let video = viewer.transport.video.expect("a video track");
    let audio = viewer.transport.audio.expect("an audio track");
    assert_eq!((video.payload_type, audio.payload_type), (102, 111));
    // The payloads are made once; this viewer's header fields are its own.
    let payloads = packetize(&access_unit(1), MAX_PAYLOAD);
    for (i, payload) in payloads.iter().enumerate() {
        let last = i + 1 == payloads.len();
        let viewer = &mut port.viewers[v];
        let seq = 1000 + i as u16;
        viewer
            .transport
            .send_rtp(video, seq, 90_000, last, payload.clone());
    }
    let opus = Bytes::from_static(&[0xfc, 0xff, 0xfe]);
    port.viewers[v]
        .transport
        .send_rtp(audio, 7, 960, false, opus.clone());
    assert!(port.run_until(Duration::from_secs(1), |p| {
        p.viewers[v].received.len() == payloads.len() + 1
    }));
    let received = &port.viewers[v].received;
    let video_payloads: Vec<Bytes> = received
        .iter()
        .filter(|(pt, ssrc, _)| *pt == 102 && *ssrc == video.ssrc)
        .map(|(_, _, p)| p.clone())
        .collect();
    assert_eq!(video_payloads, payloads, "decrypted and intact, in order");
    assert!(received.contains(&(111, audio.ssrc, opus)));

    // A PLI from the browser comes back as a keyframe request.
    let pli = PictureLossIndication {
        sender_ssrc: 1,
        media_ssrc: video.ssrc,
    };
    port.browser_sends_rtcp(v, Box::new(pli));
    assert!(
        port.run_until(Duration::from_secs(1), |p| p.viewers[v]
            .server_events
            .contains(&TransportEvent::KeyframeRequested)),
        "no keyframe request: {:?}",
        port.viewers[v].server_events
    );
}

#[test]
fn a_nack_is_answered_with_the_packet_again() {
    let mut port = Port::new();
    let v = port.connect_viewer("198.51.100.8:50000".parse().expect("address"));
    let video = port.viewers[v].transport.video.expect("a video track");
    for seq in 100..105u16 {
        let payload = Bytes::from(vec![0x41, seq as u8, 0x77]);
        let transport = &mut port.viewers[v].transport;
        transport.send_rtp(video, seq, 9_000, seq == 104, payload);
    }
    assert!(port.run_until(Duration::from_secs(1), |p| p.viewers[v].received.len() == 5));
    // The browser says 102 was lost: the same packet comes again (RFC 4585 generic NACK).
    assert_eq!(port.viewers[v].srtp_datagrams, 5);
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: video.ssrc,
        nacks: vec![NackPair {
            packet_id: 102,
            lost_packets: 0,
        }],
    };
    port.browser_sends_rtcp(v, Box::new(nack));
    // The browser's SRTP drops the copy as a replay, so it is counted on the wire.
    assert!(
        port.run_until(Duration::from_secs(1), |p| p.viewers[v].srtp_datagrams == 6),
        "no retransmission: {} RTP datagrams",
        port.viewers[v].srtp_datagrams
    );
    assert_eq!(port.viewers[v].received.len(), 5);
}

#[test]
fn a_nack_for_the_whole_history_is_answered_with_a_bounded_burst() {
    let mut port = Port::new();
    let v = port.connect_viewer("198.51.100.13:50000".parse().expect("address"));
    let video = port.viewers[v].transport.video.expect("a video track");
    for seq in 0..300u16 {
        let payload = Bytes::from(vec![0x41, seq as u8, 0x77]);
        let transport = &mut port.viewers[v].transport;
        transport.send_rtp(video, seq, 9_000, false, payload);
    }
    assert!(
        port.run_until(Duration::from_secs(1), |p| p.viewers[v].srtp_datagrams
            == 300)
    );
    // A NACK naming every packet kept (and each twice): one datagram of 32 pairs.
    let pairs: Vec<NackPair> = (0..2)
        .flat_map(|_| {
            (0..16u16).map(|i| NackPair {
                packet_id: 44 + i * 17,
                lost_packets: 0xffff,
            })
        })
        .collect();
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: video.ssrc,
        nacks: pairs,
    };
    port.browser_sends_rtcp(v, Box::new(nack));
    let resent = |p: &Port| p.viewers[v].srtp_datagrams - 300;
    assert!(port.run_until(Duration::from_secs(1), |p| resent(p) > 0));
    port.turn(Duration::from_millis(100));
    assert_eq!(
        resent(&port),
        MAX_RESENDS_PER_RTCP,
        "each packet once, at most {MAX_RESENDS_PER_RTCP} for one RTCP datagram"
    );
}

#[test]
fn a_bad_dtls_record_from_the_browsers_address_does_not_end_a_connected_viewer() {
    let mut port = Port::new();
    let address: SocketAddr = "198.51.100.14:50000".parse().expect("address");
    let v = port.connect_viewer(address);
    // What an off-path sender forging the browser's address could send: DTLS application
    // data (content type 23, DTLS 1.2, epoch 1) that does not authenticate, and a record
    // too short to parse.
    let mut forged = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 40];
    forged.extend_from_slice(&[0x5a; 40]);
    port.deliver_to_port(address, &forged);
    port.deliver_to_port(address, &[22, 0xfe]);
    // And handshake records of epoch 0, again and again (a completed association answers a
    // repeated final flight by sending its own again, within a budget).
    for seq in 0..20u8 {
        let mut handshake = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 50 + seq, 0, 24];
        handshake.extend_from_slice(&[20, 0, 0, 12, 0, 9, 0, 0, 0, 0, 0, 12]);
        handshake.extend_from_slice(&[0xa5; 12]);
        port.deliver_to_port(address, &handshake);
        port.turn(Duration::from_millis(5));
    }
    port.turn(Duration::from_millis(20));
    let events = &port.viewers[v].server_events;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TransportEvent::Failed(_) | TransportEvent::Closed)),
        "{events:?}"
    );
    let video = port.viewers[v].transport.video.expect("a video track");
    port.viewers[v]
        .transport
        .send_rtp(video, 7, 9_000, true, Bytes::from_static(&[0x41, 1, 2]));
    assert!(
        port.run_until(Duration::from_secs(1), |p| p.viewers[v].received.len() == 1),
        "media stopped after the forged records"
    );
}

#[test]
fn two_viewers_behind_one_address_stay_apart_and_strangers_reach_nobody() {
    let mut port = Port::new();
    let a = port.add_viewer("198.51.100.9:40000".parse().expect("address"));
    let b = port.add_viewer("198.51.100.9:40001".parse().expect("address"));
    assert!(port.run_until(Duration::from_secs(10), |p| {
        connected(&p.viewers[a]) && connected(&p.viewers[b])
    }));
    for (key, byte) in [(a, 0xaa_u8), (b, 0xbb)] {
        let viewer = &mut port.viewers[key];
        let video = viewer.transport.video.expect("video");
        let payload = Bytes::from(vec![0x41, byte, byte, byte]);
        viewer.transport.send_rtp(video, 1, 0, true, payload);
    }
    assert!(port.run_until(Duration::from_secs(1), |p| {
        !p.viewers[a].received.is_empty() && !p.viewers[b].received.is_empty()
    }));
    assert_eq!(port.viewers[a].received[0].2[1], 0xaa);
    assert_eq!(port.viewers[b].received[0].2[1], 0xbb);
    assert_eq!(port.viewers[a].received.len(), 1);
    assert_eq!(port.viewers[b].received.len(), 1);

    // An address nobody bound, sending what looks like DTLS or SRTP: dropped.
    let before = port.dropped;
    let stranger: SocketAddr = "203.0.113.66:1234".parse().expect("address");
    port.deliver_to_port(stranger, &[23, 0xfe, 0xfd, 0, 1, 2, 3]);
    port.deliver_to_port(stranger, &[0x80, 102, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert_eq!(port.dropped, before + 2);
    // A Binding request naming viewer a's fragment with a wrong password: dropped, and the
    // stranger's address stays unbound.
    let username = format!("{}:evil", port.viewers[a].transport.ufrag());
    let forged = forged_binding_request(&username);
    port.deliver_to_port(stranger, &forged);
    assert_eq!(port.dropped, before + 3);
    assert_eq!(
        port.demux.route(&[23, 0xfe, 0xfd], stranger),
        Route::Unknown
    );
}

/// A Binding request with `username` and a MESSAGE-INTEGRITY made with the wrong key.
fn forged_binding_request(username: &str) -> Vec<u8> {
    let mut attributes = Vec::new();
    attributes.extend_from_slice(&0x0006u16.to_be_bytes());
    attributes.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attributes.extend_from_slice(username.as_bytes());
    while attributes.len() % 4 != 0 {
        attributes.push(0);
    }
    attributes.extend_from_slice(&0x0008u16.to_be_bytes());
    attributes.extend_from_slice(&20u16.to_be_bytes());
    attributes.extend_from_slice(&[0x5a; 20]);
    let mut message = vec![0x00, 0x01];
    message.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    message.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    message.extend_from_slice(&[3; 12]);
    message.extend_from_slice(&attributes);
    message
}

// --- the same over real sockets: one media port on 127.0.0.1 --------------------------------

/// Collects what the port tells one viewer.
struct EventLog(Arc<Mutex<Vec<TransportEvent>>>);

impl Actor for EventLog {
    type Context = Context<Self>;
}

impl Handler<PortEvent> for EventLog {
    type Result = ();
    fn handle(&mut self, msg: PortEvent, _ctx: &mut Self::Context) {
        if let PortEvent::Transport(event) = msg {
            self.0.lock().expect("log").push(event);
        }
    }
}

/// A browser-like peer on its own UDP socket.
struct SocketBrowser {
    pc: RTCPeerConnection,
    socket: tokio::net::UdpSocket,
    address: SocketAddr,
    /// The addresses the port's datagrams came from.
    port_addresses: Vec<SocketAddr>,
    connected: bool,
    received: Vec<Bytes>,
}

impl SocketBrowser {
    async fn new() -> (Self, String) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = socket.local_addr().expect("address");
        let (pc, offer) = browser(address, Instant::now());
        let me = Self {
            pc,
            socket,
            address,
            port_addresses: Vec::new(),
            connected: false,
            received: Vec::new(),
        };
        (me, offer)
    }

    /// Sends what it has, reads for up to `wait`, runs its timers.
    async fn pump(&mut self, wait: Duration) {
        while let Some(out) = self.pc.poll_write() {
            let _ = self
                .socket
                .send_to(&out.message, out.transport.peer_addr)
                .await;
        }
        let mut buffer = vec![0u8; 2048];
        if let Ok(Ok((len, from))) =
            tokio::time::timeout(wait, self.socket.recv_from(&mut buffer)).await
        {
            if !self.port_addresses.contains(&from) {
                self.port_addresses.push(from);
            }
            let _ = self.pc.handle_read(TaggedBytesMut {
                now: Instant::now(),
                transport: TransportContext {
                    local_addr: self.address,
                    peer_addr: from,
                    transport_protocol: TransportProtocol::UDP,
                    ecn: None,
                },
                message: BytesMut::from(&buffer[..len]),
            });
        }
        let _ = self.pc.handle_timeout(Instant::now());
        let (connected, packets) = drain_browser(&mut self.pc);
        self.connected |= connected;
        self.received.extend(packets.into_iter().map(|p| p.payload));
    }
}

#[actix::test]
async fn two_viewers_connect_and_play_through_one_udp_port() {
    viewers_connect_and_play_through_one_udp_port(1, 2).await;
}

/// Three workers, two viewers each (a viewer's key picks its worker): every viewer's
/// handshake, media and RTCP reach the right worker through the one receiver, and every
/// packet leaves from the one port.
#[actix::test]
async fn viewers_of_three_workers_share_one_udp_port() {
    viewers_connect_and_play_through_one_udp_port(3, 6).await;
}

async fn viewers_connect_and_play_through_one_udp_port(workers: usize, viewers: u64) {
    let port = MediaPort::start(
        "127.0.0.1:0".parse().expect("address"),
        vec!["127.0.0.1:0".parse().expect("address")],
        workers,
    )
    .expect("the port binds");
    assert_eq!(port.workers(), workers);
    let identity = PortIdentity {
        certificate: certificate(),
        candidates: port.announced().to_vec(),
        tcp_candidates: Vec::new(),
        consent_timeout: Duration::from_secs(20),
    };
    let mut browsers = Vec::new();
    let mut logs = Vec::new();
    let payloads = SharedPayloads::default();
    for key in 0..viewers {
        let (mut browser, offer) = SocketBrowser::new().await;
        let recipe = recipe_for(&offer);
        let (transport, answer) =
            ViewerTransport::answer(&offer, recipe, &identity, key + 7, Instant::now())
                .expect("answer");
        let video = transport.video.expect("video");
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = TrackStart {
            track: video,
            sequence: 0,
            clock_base: 0,
        };
        let plane = MediaPlane::new(
            Some(start),
            None,
            payloads.clone(),
            SharedTelemetry::default(),
            Instant::now(),
        );
        port.add(
            key,
            transport,
            plane,
            EventLog(log.clone()).start().recipient(),
        );
        let answer = RTCSessionDescription::answer(answer).expect("answer SDP");
        browser
            .pc
            .set_remote_description(Instant::now(), answer)
            .expect("the browser takes the answer");
        browsers.push((browser, video));
        logs.push(log);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let connected = |logs: &[Arc<Mutex<Vec<TransportEvent>>>]| {
        logs.iter()
            .all(|l| l.lock().expect("log").contains(&TransportEvent::Connected))
    };
    while Instant::now() < deadline
        && !(connected(&logs) && browsers.iter().all(|(b, _)| b.connected))
    {
        for (browser, _) in &mut browsers {
            browser.pump(Duration::from_millis(5)).await;
        }
    }
    assert!(connected(&logs), "server side: {logs:?}");
    assert!(
        browsers.iter().all(|(b, _)| b.connected),
        "a browser did not connect"
    );

    // The capture's codecs, then a live keyframe and the frame after it, each sent to each
    // worker once for all its viewers. The codecs go in line with the frames: handled after
    // the keyframe, they would hold the next frame back (video waits for a keyframe after a
    // codec change).
    let unit = access_unit(9);
    let mut delta = vec![0, 0, 0, 1, 0x41];
    delta.extend((0..3000u32).map(|i| (i as u8) | 0x20));
    let delta = Bytes::from(delta);
    let frame = |pts: i64, keyframe: bool, data: &Bytes| MediaFrame {
        track: Track::Video,
        pts,
        dts: pts,
        keyframe,
        data: data.clone(),
        ingest_us: 0,
    };
    for worker in 0..workers {
        let keys: Vec<u64> = (0..viewers)
            .filter(|&key| port.worker_of(key) == worker)
            .collect();
        assert!(
            !keys.is_empty(),
            "worker {worker} serves none of the viewers"
        );
        for &key in &keys {
            port.send_codecs(key, true)
                .expect("the worker takes the codecs");
        }
        for (pts, keyframe, data) in [(33, true, &unit), (66, false, &delta)] {
            port.send_frame(
                worker,
                frame(pts, keyframe, data),
                keys.clone(),
                Charge::none(),
            )
            .expect("the worker takes the frame");
        }
    }
    let mut payloads = packetize(&unit, MAX_PAYLOAD);
    payloads.extend(packetize(&delta, MAX_PAYLOAD));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && browsers
            .iter()
            .any(|(b, _)| b.received.len() < payloads.len())
    {
        for (browser, _) in &mut browsers {
            browser.pump(Duration::from_millis(5)).await;
        }
    }
    for (browser, _) in &browsers {
        assert_eq!(
            browser.received, payloads,
            "every payload, intact and in order"
        );
        assert_eq!(
            browser.port_addresses,
            port.announced().to_vec(),
            "everything came from the one port"
        );
    }
    let counters = port.counters();
    assert_eq!(counters.dropped_batches.load(Ordering::Relaxed), 0);
    assert_eq!(counters.send_failures.load(Ordering::Relaxed), 0);
    assert_eq!(counters.dropped_inbound.load(Ordering::Relaxed), 0);
    for key in 0..viewers {
        port.remove(key);
    }
}

#[test]
fn a_browser_that_vanishes_is_ended_by_the_consent_timeout() {
    let mut port = Port::new();
    let v = port.connect_viewer("198.51.100.12:50000".parse().expect("address"));
    let vanished_at = port.now;
    port.viewers[v].gone = true;
    // No checks arrive any more: disconnected after 5 s, failed 15 s later.
    let failed = |p: &Port| {
        p.viewers[v]
            .server_events
            .iter()
            .any(|e| matches!(e, TransportEvent::Failed(_)))
    };
    assert!(
        port.run_until(Duration::from_secs(40), failed),
        "still alive 40 s after the browser vanished: {:?}",
        port.viewers[v].server_events
    );
    let after = port.now.duration_since(vanished_at);
    eprintln!("[consent] the transport failed {after:?} after its browser vanished");
    assert!(
        after >= Duration::from_secs(5) && after <= Duration::from_secs(25),
        "ended {after:?} after the browser vanished (5 s disconnected + 15 s failed)"
    );
    assert!(!port.viewers[v].transport.is_connected());
}
