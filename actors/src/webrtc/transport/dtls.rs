//! One viewer's DTLS association (RFC 6347) as the client — our answer says `a=setup:active`
//! — and the SRTP keys it yields (DTLS-SRTP, RFC 5764), on the `rtc` crate's sans-IO DTLS
//! endpoint. The browser's certificate must match the fingerprint in its offer. It owns no
//! socket and reads no clock; it never sees media.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use log::debug;
use pullcast::webrtc_viewer::Sha256Fingerprint;
use rtc::crypto::{HashAlgorithm, RTCCryptoProvider};
use rtc::dtls::config::{
    ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig,
    VerifyPeerCertificateFn,
};
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::dtls::state::State;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::shared::error::Error as RtcError;
use rtc::shared::TransportProtocol;
use rtc::srtp::context::Context as SrtpContext;
use rtc::srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc::srtp::protection_profile::ProtectionProfile;
use rustls::pki_types::CertificateDer;

/// The association is kept under this one address whatever path the browser is on (ICE may
/// move it; DTLS stays): the endpoint keys associations by remote address.
const PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 65_535);

/// Inbound SRTP/SRTCP replay windows (packets).
const REPLAY_WINDOW: usize = 64;

/// The SRTP contexts the handshake yields: one to protect what we send, one to check and
/// open what the browser sends.
pub struct SrtpKeys {
    pub outbound: SrtpContext,
    pub inbound: SrtpContext,
}

/// What a DTLS datagram from the browser led to.
pub enum DtlsEvent {
    /// The handshake is done: media may flow with these keys.
    Connected(Box<SrtpKeys>),
    /// The browser closed the association (close_notify).
    Closed,
}

enum Phase {
    /// Waiting for the browser's ICE: the ClientHello must not reach it earlier.
    Ready(Arc<HandshakeConfig>),
    Handshaking,
    Up,
    /// Closed by either side: nothing more goes through (a late datagram must not start a
    /// new association).
    Closed,
}

/// One viewer's DTLS client.
pub struct DtlsClient {
    endpoint: Endpoint,
    phase: Phase,
    crypto: Arc<dyn RTCCryptoProvider>,
}

impl DtlsClient {
    /// A client with the server's `certificate` that accepts only a browser certificate whose
    /// SHA-256 is `browser`.
    pub fn new(
        certificate: &RTCCertificate,
        browser: Sha256Fingerprint,
        crypto: Arc<dyn RTCCryptoProvider>,
    ) -> Result<Self, String> {
        let hasher = crypto.clone();
        let verify: VerifyPeerCertificateFn = Arc::new(
            move |chain: &[Vec<u8>], _: &[CertificateDer<'static>]| -> Result<(), RtcError> {
                let leaf = chain.first().ok_or(RtcError::ErrNonCertificate)?;
                let digest = hasher
                    .crypto()
                    .hash(HashAlgorithm::Sha256, leaf)
                    .map_err(|e| RtcError::Other(e.to_string()))?;
                if digest.as_slice() == browser.as_slice() {
                    Ok(())
                } else {
                    Err(RtcError::ErrNoMatchingCertificateFingerprint)
                }
            },
        );
        let config = ConfigBuilder::default()
            .with_crypto_provider(crypto.clone())
            .with_certificates(vec![certificate.dtls_certificate.clone()])
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
            ])
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_server_name("pullcast".to_string())
            .build(true, None)
            .map_err(|e| format!("DTLS configuration: {e}"))?;
        Ok(Self {
            endpoint: Endpoint::new(PEER, TransportProtocol::UDP, None),
            phase: Phase::Ready(Arc::new(config)),
            crypto,
        })
    }

    /// Starts the handshake (the ClientHello is then in [`Self::poll_transmit`]); once only.
    pub fn start(&mut self, now: Instant) -> Result<(), String> {
        let Phase::Ready(config) = &self.phase else {
            return Ok(());
        };
        let config = config.clone();
        self.phase = Phase::Handshaking;
        self.endpoint
            .connect(now, PEER, config, None)
            .map_err(|e| format!("DTLS: {e}"))
    }

    /// A DTLS datagram from the browser. An error ends the association.
    pub fn receive(&mut self, now: Instant, datagram: &[u8]) -> Result<Option<DtlsEvent>, String> {
        if !matches!(self.phase, Phase::Handshaking | Phase::Up) {
            return Ok(None);
        }
        let events = match self
            .endpoint
            .read(now, PEER, None, BytesMut::from(datagram))
        {
            Ok(events) => events,
            // Once up, only the browser's fatal alert ends the association: a record that
            // does not parse or authenticate is dropped (RFC 6347 §4.1.2.7), whoever sent
            // it — an off-path sender can forge the browser's address.
            Err(e)
                if matches!(self.phase, Phase::Up)
                    && !matches!(e, RtcError::ErrAlertFatalOrClose) =>
            {
                debug!("DTLS: a record from the browser was dropped: {e}");
                return Ok(None);
            }
            Err(e) => return Err(format!("DTLS: {e}")),
        };
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete => {
                    let state = self
                        .endpoint
                        .get_connection_state(PEER)
                        .ok_or("DTLS: the association is gone")?;
                    let keys = srtp_keys(state, self.crypto.as_ref())?;
                    debug!(
                        "DTLS up: SRTP {:?}, cipher suite {}",
                        state.srtp_protection_profile(),
                        state
                            .cipher_suite()
                            .map_or_else(|| "?".to_string(), |c| c.to_string())
                    );
                    self.phase = Phase::Up;
                    return Ok(Some(DtlsEvent::Connected(Box::new(keys))));
                }
                EndpointEvent::PeerClosed => {
                    self.phase = Phase::Closed;
                    return Ok(Some(DtlsEvent::Closed));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// The next datagram to send to the browser.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.endpoint.poll_transmit().map(|t| t.message)
    }

    /// When [`Self::handle_timeout`] is next due (a handshake flight to resend).
    pub fn next_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Handshaking => self.endpoint.poll_timeout(&PEER),
            _ => None,
        }
    }

    /// Resends a flight that is due; an error when the handshake has given up.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), String> {
        if !matches!(self.phase, Phase::Handshaking) {
            return Ok(());
        }
        self.endpoint
            .handle_timeout(PEER, now)
            .map_err(|e| format!("DTLS failed: {e}"))
    }

    /// Says goodbye (close_notify, then in [`Self::poll_transmit`]) and takes nothing more.
    pub fn close(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Handshaking | Phase::Up) {
            let _ = self.endpoint.stop(now, PEER);
        }
        self.phase = Phase::Closed;
    }
}

/// The SRTP contexts from a finished handshake's exported keys (RFC 5764 §4.2): we are the
/// client, so ours are the client's half.
fn srtp_keys(state: &State, crypto: &dyn RTCCryptoProvider) -> Result<SrtpKeys, String> {
    let profile = match state.srtp_protection_profile() {
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm => ProtectionProfile::AeadAes256Gcm,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
            ProtectionProfile::Aes128CmHmacSha1_80
        }
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32 => {
            ProtectionProfile::Aes128CmHmacSha1_32
        }
        _ => return Err("DTLS: no SRTP profile was agreed".to_string()),
    };
    let mut config = rtc::srtp::config::Config {
        profile,
        ..Default::default()
    };
    let material = state
        .export_keying_material(
            rtc::srtp::config::LABEL_EXTRACTOR_DTLS_SRTP,
            &[],
            config.keying_material_len(),
        )
        .map_err(|e| format!("DTLS-SRTP key export: {e}"))?;
    config
        .set_session_keys_from_keying_material(material.as_ref(), state.is_client())
        .map_err(|e| format!("DTLS-SRTP keys: {e}"))?;
    let keys = &config.keys;
    let outbound = SrtpContext::new(
        &keys.local_master_key,
        &keys.local_master_salt,
        profile,
        None,
        None,
        crypto.crypto(),
    )
    .map_err(|e| format!("SRTP: {e}"))?;
    let inbound = SrtpContext::new(
        &keys.remote_master_key,
        &keys.remote_master_salt,
        profile,
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
        crypto.crypto(),
    )
    .map_err(|e| format!("SRTP: {e}"))?;
    Ok(SrtpKeys { outbound, inbound })
}
