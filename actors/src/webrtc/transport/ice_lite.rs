//! ICE-lite for one viewer (RFC 8445 §2.5): it answers the browser's connectivity checks that
//! carry this viewer's password, follows the path the browser nominated last, and knows when
//! the browser has stopped checking (consent, RFC 7675: a browser checks a working path every
//! few seconds). It owns no socket and reads no clock.
//!
//! One check of its own goes back on the path of the browser's first passing check (a
//! triggered check, as the `rtc` crate's agent sends): a full agent that is answered there
//! nominates the path at once instead of on its next check interval (≈200 ms later), and
//! DTLS waits for the nomination.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::crypto::RTCCryptoProvider;
use rtc::ice::attributes::control::AttrControlled;
use rtc::ice::attributes::priority::PriorityAttr;
use rtc::stun::attributes::{ATTR_USERNAME, ATTR_USE_CANDIDATE};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{Message, Setter, TransactionId, BINDING_REQUEST, BINDING_SUCCESS};
use rtc::stun::textattrs::{TextAttribute, Username};
use rtc::stun::xoraddr::XorMappedAddress;

use super::Protocol;

/// The PRIORITY of our check: a host candidate's (RFC 8445 §5.1.2.1, type preference 126).
const HOST_PRIORITY: u32 = (126 << 24) | (65_535 << 8) | 255;

/// Where the browser is reached: over what, at which address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub protocol: Protocol,
    pub remote: SocketAddr,
}

/// A check that passed.
pub struct Answered {
    /// The Binding success response, to send back on the check's path.
    pub response: Vec<u8>,
    /// Our triggered check, to send after the response (the browser's first check only).
    pub triggered: Option<Vec<u8>>,
    /// The browser nominated a path for the first time: its ICE is now up.
    pub first_nomination: bool,
}

/// What proves a Binding request is for one viewer: our fragment and password. Cheap to
/// clone, so the port's receiving side can check a new address's claim without the
/// viewer's transport.
#[derive(Clone)]
pub struct CheckCredentials {
    ufrag: String,
    password: String,
    /// For MESSAGE-INTEGRITY (HMAC-SHA1).
    crypto: Arc<dyn RTCCryptoProvider>,
}

impl CheckCredentials {
    /// Our ICE username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Whether `datagram` is a Binding request whose MESSAGE-INTEGRITY was made with this
    /// viewer's password.
    pub fn authenticates(&self, datagram: &[u8]) -> bool {
        self.read_check(datagram).is_some()
    }

    /// The request, when it is a Binding request for us with our integrity.
    fn read_check(&self, datagram: &[u8]) -> Option<Message> {
        let mut message = Message::new();
        message.unmarshal_binary(datagram).ok()?;
        if message.typ != BINDING_REQUEST {
            return None;
        }
        let username = TextAttribute::get_from_as(&message, ATTR_USERNAME).ok()?;
        let (ours, _theirs) = username.text.split_once(':')?;
        if ours != self.ufrag {
            return None;
        }
        let crypto = self.crypto.crypto();
        MessageIntegrity::check(&mut message, self.password.as_bytes(), crypto).ok()?;
        Some(message)
    }
}

/// One viewer's ICE-lite agent.
pub struct IceLite {
    local: CheckCredentials,
    selected: Option<Path>,
    /// The browser's ICE credentials (for our check).
    remote_ufrag: String,
    remote_password: String,
    /// Whether a check of the browser's has passed yet.
    checked: bool,
    /// The last check that passed (or when the agent was made, before any).
    last_check: Instant,
    /// No passing check for this long ends the viewer.
    consent: Duration,
}

impl IceLite {
    /// `ufrag`/`password` are ours, `remote` the browser's (fragment, password).
    pub fn new(
        ufrag: String,
        password: String,
        remote: (String, String),
        consent: Duration,
        crypto: Arc<dyn RTCCryptoProvider>,
        now: Instant,
    ) -> Self {
        Self {
            local: CheckCredentials {
                ufrag,
                password,
                crypto,
            },
            selected: None,
            remote_ufrag: remote.0,
            remote_password: remote.1,
            checked: false,
            last_check: now,
            consent,
        }
    }

    pub fn ufrag(&self) -> &str {
        self.local.ufrag()
    }

    /// What checks a Binding request's claim to this viewer.
    pub fn credentials(&self) -> &CheckCredentials {
        &self.local
    }

    /// A Binding request from `path`: the response when it carries our username and
    /// password; a nomination (USE-CANDIDATE) makes `path` the one media goes to.
    pub fn check(&mut self, now: Instant, path: Path, datagram: &[u8]) -> Option<Answered> {
        let request = self.local.read_check(datagram)?;
        self.last_check = now;
        let mut first_nomination = false;
        if request.contains(ATTR_USE_CANDIDATE) {
            first_nomination = self.selected.is_none();
            self.selected = Some(path);
        }
        let response = self.success(&request, path.remote)?;
        let triggered = if self.checked {
            None
        } else {
            self.checked = true;
            self.triggered_check()
        };
        Some(Answered {
            response,
            triggered,
            first_nomination,
        })
    }

    /// The path media goes to: the browser's latest nomination.
    pub fn selected(&self) -> Option<Path> {
        self.selected
    }

    /// When consent runs out unless another check passes.
    pub fn consent_expires(&self) -> Instant {
        self.last_check + self.consent
    }

    /// Our Binding request to the browser (RFC 8445 §7.2.4 attributes; we are controlled).
    fn triggered_check(&self) -> Option<Vec<u8>> {
        let username = format!("{}:{}", self.remote_ufrag, self.local.ufrag);
        encode(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(Username::new(ATTR_USERNAME, username)),
            Box::new(AttrControlled(uuid::Uuid::new_v4().as_u64_pair().0)),
            Box::new(PriorityAttr(HOST_PRIORITY)),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                self.remote_password.clone(),
                self.local.crypto.crypto(),
            )),
            Box::new(FINGERPRINT),
        ])
    }

    /// The Binding success for `request` from `from` (RFC 8445 §7.3.1.5 via RFC 5389):
    /// XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY with our password, FINGERPRINT.
    fn success(&self, request: &Message, from: SocketAddr) -> Option<Vec<u8>> {
        encode(&[
            Box::new(request.transaction_id),
            Box::new(BINDING_SUCCESS),
            Box::new(XorMappedAddress {
                ip: from.ip().to_canonical(),
                port: from.port(),
            }),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                self.local.password.clone(),
                self.local.crypto.crypto(),
            )),
            Box::new(FINGERPRINT),
        ])
    }
}

/// A STUN message made of `attributes`, in order, as sent.
fn encode(attributes: &[Box<dyn Setter + '_>]) -> Option<Vec<u8>> {
    let mut message = Message::new();
    message.build(attributes).ok()?;
    Some(message.raw)
}
