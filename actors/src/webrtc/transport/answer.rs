//! The SDP answer to a browser's offer, written by the `rtc` crate's peer connection (JSEP:
//! every offered m-section in order, BUNDLE, the chosen codecs with their feedback, msid,
//! SSRCs, our ICE-lite credentials, the certificate's fingerprint, `a=setup:active`, the
//! port's candidates). The connection is used for that text only and then dropped: the
//! viewer's ICE, DTLS and SRTP are the transport's own.

use std::net::SocketAddr;
use std::time::Instant;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::{PortIdentity, Protocol, TransportRecipe};

/// The answer and what it settled on.
pub struct Answer {
    pub sdp: String,
    /// Each track's SSRC and payload type, when the answer sends it.
    pub video: Option<(u32, u8)>,
    pub audio: Option<(u32, u8)>,
}

/// The credentials the answer carries.
pub struct IceCredentials<'a> {
    pub ufrag: &'a str,
    pub password: &'a str,
}

/// Answers `offer_sdp` with `recipe`'s codecs on SSRCs `ssrcs` (video, audio).
pub fn answer(
    offer_sdp: &str,
    recipe: TransportRecipe,
    port: &PortIdentity,
    ice: IceCredentials<'_>,
    ssrcs: [u32; 2],
    now: Instant,
) -> Result<Answer, String> {
    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_credentials(ice.ufrag.to_string(), ice.password.to_string())
        .build();
    let configuration = RTCConfigurationBuilder::new()
        .with_certificates(vec![port.certificate.clone()])
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(recipe.media_engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(Registry::new())
        .build(now)
        .map_err(|e| format!("cannot build the connection: {e}"))?;
    let offer = RTCSessionDescription::offer(offer_sdp.to_string())
        .map_err(|e| format!("unusable offer: {e}"))?;
    pc.set_remote_description(now, offer)
        .map_err(|e| format!("cannot apply the offer: {e}"))?;
    let mut video = None;
    if let Some(codec) = recipe.video {
        let sender = add_track(
            &mut pc,
            &recipe.stream_id,
            RtpCodecKind::Video,
            codec,
            ssrcs[0],
        )?;
        video = Some((ssrcs[0], payload_type(&mut pc, sender)));
    }
    let mut audio = None;
    if let Some(codec) = recipe.audio {
        let sender = add_track(
            &mut pc,
            &recipe.stream_id,
            RtpCodecKind::Audio,
            codec,
            ssrcs[1],
        )?;
        audio = Some((ssrcs[1], payload_type(&mut pc, sender)));
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
    Ok(Answer {
        sdp: answer.sdp,
        video,
        audio,
    })
}

/// The payload type the answer settled on for `sender`.
fn payload_type(pc: &mut RTCPeerConnection, sender: RTCRtpSenderId) -> u8 {
    pc.rtp_sender(sender)
        .and_then(|mut s| {
            let codecs = &s.get_parameters().rtp_parameters.codecs;
            codecs.first().map(|c| c.payload_type)
        })
        .unwrap_or(0)
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
