//! The one thing the port's demultiplexer reads from a STUN message: whether it is a Binding
//! request and which ICE username fragments its USERNAME names (RFC 8445 §7.2.2: "<ours>:
//! <theirs>"). Read in place, without allocating, every length checked against the
//! datagram; MESSAGE-INTEGRITY is the ICE agent's to check, not this scan's.

/// The STUN header: type, length, magic cookie, transaction id.
const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
/// RFC 8489 §14.3: a USERNAME holds at most 513 bytes.
const MAX_USERNAME: usize = 513;

/// The two fragments of a Binding request's USERNAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceUsername<'a> {
    /// Ours: the fragment the receiver (this server) put in its answer.
    pub local: &'a str,
    /// The sender's.
    pub remote: &'a str,
}

/// Whether `datagram` is shaped like a STUN message (RFC 7983: first byte 0-3, the magic
/// cookie, a length that matches and is a multiple of 4).
pub fn is_stun(datagram: &[u8]) -> bool {
    header(datagram).is_some()
}

/// The USERNAME of `datagram` when it is a STUN Binding request carrying one in the ICE
/// form "local:remote" (both non-empty, UTF-8); `None` for anything else.
pub fn binding_request_username(datagram: &[u8]) -> Option<IceUsername<'_>> {
    let (message_type, body) = header(datagram)?;
    if message_type != BINDING_REQUEST {
        return None;
    }
    let value = attribute(body, ATTR_USERNAME)?;
    if value.len() > MAX_USERNAME {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let (local, remote) = text.split_once(':')?;
    if local.is_empty() || remote.is_empty() {
        return None;
    }
    Some(IceUsername { local, remote })
}

/// The message type and the attributes of a well-formed STUN message.
fn header(datagram: &[u8]) -> Option<(u16, &[u8])> {
    let head = datagram.get(..HEADER_LEN)?;
    if head[0] > 3 || head[4..8] != MAGIC_COOKIE {
        return None;
    }
    let message_type = u16::from_be_bytes([head[0], head[1]]);
    let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let body = datagram.get(HEADER_LEN..)?;
    if length % 4 != 0 || body.len() != length {
        return None;
    }
    Some((message_type, body))
}

/// The value of the first attribute of type `wanted` in `body` (type-length-value, each
/// padded to 4 bytes); `None` when it is missing or an attribute overruns the message.
fn attribute(mut body: &[u8], wanted: u16) -> Option<&[u8]> {
    while !body.is_empty() {
        let head = body.get(..4)?;
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let value = body.get(4..4 + len)?;
        if kind == wanted {
            return Some(value);
        }
        let padded = 4 + len.div_ceil(4) * 4;
        body = body.get(padded..)?;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A STUN message of `message_type` holding `attributes` (type, value), padded.
    fn message(message_type: u16, attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attributes {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&message_type.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE);
        out.extend_from_slice(&[7; 12]);
        out.extend_from_slice(&body);
        out
    }

    /// A Binding request shaped as Chromium sends one: USERNAME, GOOG-NETWORK-INFO,
    /// ICE-CONTROLLING, USE-CANDIDATE, PRIORITY, MESSAGE-INTEGRITY and FINGERPRINT (the
    /// integrity and fingerprint values are placeholders: the scan does not check them).
    const CHROMIUM_REQUEST: &[u8] = &[
        0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xa4, 0x42, 0x4b, 0x62, 0x57, 0x6a, 0x4f, 0x52, 0x61,
        0x66, 0x71, 0x33, 0x52, 0x79, // header, transaction id
        0x00, 0x06, 0x00, 0x09, b'p', b'c', b'4', b'2', b':', b'W', b'x', b'Y', b'z', 0x00, 0x00,
        0x00, // USERNAME "pc42:WxYz" + 3 padding
        0xc0, 0x57, 0x00, 0x04, 0x00, 0x01, 0x00, 0x0a, // GOOG-NETWORK-INFO
        0x80, 0x2a, 0x00, 0x08, 0x5d, 0x2a, 0x18, 0xe8, 0x2c, 0x4f, 0x16,
        0x7e, // ICE-CONTROLLING
        0x00, 0x25, 0x00, 0x00, // USE-CANDIDATE
        0x00, 0x24, 0x00, 0x04, 0x6e, 0x7f, 0x1e, 0xff, // PRIORITY
        0x00, 0x08, 0x00, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
        20, // MESSAGE-INTEGRITY
        0x80, 0x28, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef, // FINGERPRINT
    ];

    #[test]
    fn a_chromium_binding_request_names_our_fragment_then_its_own() {
        assert!(is_stun(CHROMIUM_REQUEST));
        let username = binding_request_username(CHROMIUM_REQUEST).unwrap();
        assert_eq!(username.local, "pc42");
        assert_eq!(username.remote, "WxYz");
    }

    #[test]
    fn the_username_is_found_after_other_attributes() {
        let m = message(
            BINDING_REQUEST,
            &[
                (0x0024, &[1, 2, 3, 4]),
                (0x8022, b"x"),
                (ATTR_USERNAME, b"ab:cd"),
            ],
        );
        let username = binding_request_username(&m).unwrap();
        assert_eq!((username.local, username.remote), ("ab", "cd"));
    }

    #[test]
    fn responses_and_requests_without_an_ice_username_name_nobody() {
        let response = message(0x0101, &[(ATTR_USERNAME, b"ab:cd")]);
        assert!(is_stun(&response));
        assert_eq!(binding_request_username(&response), None);
        for bad in [&b""[..], b"abcd", b":cd", b"ab:", b"\xff\xfe:cd"] {
            let m = message(BINDING_REQUEST, &[(ATTR_USERNAME, bad)]);
            assert_eq!(binding_request_username(&m), None, "{bad:?}");
        }
        let long = vec![b'a'; 600];
        let m = message(BINDING_REQUEST, &[(ATTR_USERNAME, &long)]);
        assert_eq!(binding_request_username(&m), None);
        assert_eq!(
            binding_request_username(&message(BINDING_REQUEST, &[])),
            None
        );
    }

    #[test]
    fn what_is_not_stun_or_lies_about_its_lengths_is_refused() {
        let good = message(BINDING_REQUEST, &[(ATTR_USERNAME, b"ab:cd")]);
        // DTLS (first byte 22), RTP (0x80), a wrong cookie, a length that does not match.
        let mut dtls = good.clone();
        dtls[0] = 22;
        let mut rtp = good.clone();
        rtp[0] = 0x80;
        let mut cookie = good.clone();
        cookie[4] = 0;
        let mut long = good.clone();
        long[3] += 4;
        let mut unaligned = good.clone();
        unaligned.push(0);
        unaligned[3] += 1;
        for bad in [dtls, rtp, cookie, long, unaligned] {
            assert!(!is_stun(&bad));
            assert_eq!(binding_request_username(&bad), None);
        }
        // An attribute whose length runs past the message.
        let mut overrun = good.clone();
        overrun[23] = 200;
        assert_eq!(binding_request_username(&overrun), None);
        for len in 0..good.len() {
            let _ = binding_request_username(&good[..len]);
        }
    }
}
