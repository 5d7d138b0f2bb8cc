//! What a browser's SDP offer says about its transport: its DTLS certificate fingerprint
//! (`a=fingerprint:sha-256 AA:BB:…`, RFC 8122), which the certificate it shows in the DTLS
//! handshake must match, and its ICE credentials (`a=ice-ufrag`, `a=ice-pwd`, RFC 8839),
//! which a check we send it must carry. Reads text only: the offer comes from the network, so
//! every value is bounded and nothing here panics.

use super::sdp::SdpError;

/// A SHA-256 certificate fingerprint.
pub type Sha256Fingerprint = [u8; 32];

/// The longest ICE fragment or password taken (RFC 8839 allows 256 characters).
const MAX_ICE_CREDENTIAL: usize = 256;

/// The browser's side of the transport, from its offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferTransport {
    pub fingerprint: Sha256Fingerprint,
    pub ice_ufrag: String,
    pub ice_pwd: String,
}

/// Reads the offer's fingerprint ([`offer_fingerprint`]) and ICE credentials (the first
/// `a=ice-ufrag` and `a=ice-pwd`: with BUNDLE every section has the same).
pub fn offer_transport(sdp: &str) -> Result<OfferTransport, SdpError> {
    let fingerprint = offer_fingerprint(sdp)?;
    let credential = |prefix: &str| -> Result<String, SdpError> {
        let value = sdp
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .ok_or_else(|| SdpError::Malformed(format!("it has no {prefix} line")))?;
        let usable = !value.is_empty()
            && value.len() <= MAX_ICE_CREDENTIAL
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if !usable {
            return Err(SdpError::Malformed(format!(
                "its {prefix} value is not 1 to {MAX_ICE_CREDENTIAL} ice-chars"
            )));
        }
        Ok(value.to_string())
    };
    Ok(OfferTransport {
        fingerprint,
        ice_ufrag: credential("a=ice-ufrag:")?,
        ice_pwd: credential("a=ice-pwd:")?,
    })
}

/// The offer's SHA-256 fingerprint. Every `sha-256` line (session or media level) must give
/// the same one; other hash functions are ignored; no `sha-256` line is an error.
pub fn offer_fingerprint(sdp: &str) -> Result<Sha256Fingerprint, SdpError> {
    let mut found: Option<Sha256Fingerprint> = None;
    for line in sdp.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("a=fingerprint:") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(algorithm), Some(value)) = (parts.next(), parts.next()) else {
            return Err(SdpError::Malformed(
                "an a=fingerprint line without a value".into(),
            ));
        };
        if !algorithm.eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let digest = parse_hex_colons(value).ok_or_else(|| {
            SdpError::Malformed("an a=fingerprint:sha-256 value that is not 32 hex bytes".into())
        })?;
        match found {
            Some(earlier) if earlier != digest => {
                return Err(SdpError::Malformed(
                    "its a=fingerprint lines disagree".to_string(),
                ))
            }
            _ => found = Some(digest),
        }
    }
    found.ok_or_else(|| SdpError::Malformed("it has no a=fingerprint:sha-256 line".to_string()))
}

/// `AA:bb:…` (32 bytes) → the bytes.
fn parse_hex_colons(value: &str) -> Option<Sha256Fingerprint> {
    let mut out = [0u8; 32];
    let mut parts = value.split(':');
    for byte in out.iter_mut() {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    fn digest() -> Sha256Fingerprint {
        let one = [0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89];
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = one[i % 8];
        }
        d
    }

    #[test]
    fn it_reads_the_credentials_with_the_fingerprint() {
        let offer = format!(
            "v=0\r\na=fingerprint:sha-256 {HEX}\r\nm=audio 9 X 111\r\na=ice-ufrag:Ab+/\r\na=ice-pwd:0123456789abcdefghijkl\r\nm=video 9 X 96\r\na=ice-ufrag:other\r\n"
        );
        assert_eq!(
            offer_transport(&offer),
            Ok(OfferTransport {
                fingerprint: digest(),
                ice_ufrag: "Ab+/".to_string(),
                ice_pwd: "0123456789abcdefghijkl".to_string(),
            })
        );
        let without_pwd = format!("v=0\na=fingerprint:sha-256 {HEX}\na=ice-ufrag:abcd\n");
        assert!(offer_transport(&without_pwd).is_err());
        let long = "x".repeat(MAX_ICE_CREDENTIAL + 1);
        let too_long =
            format!("v=0\na=fingerprint:sha-256 {HEX}\na=ice-ufrag:{long}\na=ice-pwd:abcd\n");
        assert!(offer_transport(&too_long).is_err());
        let odd = format!("v=0\na=fingerprint:sha-256 {HEX}\na=ice-ufrag:ab:cd\na=ice-pwd:äöü\n");
        assert!(offer_transport(&odd).is_err());
    }

    #[test]
    fn it_reads_the_session_or_media_fingerprint() {
        let session =
            format!("v=0\r\na=fingerprint:sha-256 {HEX}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n");
        assert_eq!(offer_fingerprint(&session), Ok(digest()));
        let media = format!(
            "v=0\nm=video 9 X 96\na=fingerprint:SHA-256 {HEX}\nm=audio 9 X 111\na=fingerprint:sha-256 {}\n",
            HEX.to_lowercase()
        );
        assert_eq!(offer_fingerprint(&media), Ok(digest()));
    }

    #[test]
    fn other_hashes_are_ignored_and_sha_256_is_required() {
        let both = format!("v=0\na=fingerprint:sha-1 AB:CD\na=fingerprint:sha-256 {HEX}\n");
        assert_eq!(offer_fingerprint(&both), Ok(digest()));
        assert!(offer_fingerprint("v=0\na=fingerprint:sha-1 AB:CD\n").is_err());
        assert!(offer_fingerprint("v=0\nm=video 9 X 96\n").is_err());
    }

    #[test]
    fn bad_or_disagreeing_values_are_refused() {
        let short = "v=0\na=fingerprint:sha-256 AB:CD\n";
        assert!(offer_fingerprint(short).is_err());
        let long = format!("v=0\na=fingerprint:sha-256 {HEX}:00\n");
        assert!(offer_fingerprint(&long).is_err());
        let junk = format!("v=0\na=fingerprint:sha-256 {}\n", HEX.replace("AB", "ZZ"));
        assert!(offer_fingerprint(&junk).is_err());
        let no_value = "v=0\na=fingerprint:sha-256\n";
        assert!(offer_fingerprint(no_value).is_err());
        let other = HEX.replacen("AB", "00", 1);
        let differ = format!("v=0\na=fingerprint:sha-256 {HEX}\na=fingerprint:sha-256 {other}\n");
        assert!(offer_fingerprint(&differ).is_err());
        let unicode = "v=0\na=fingerprint:sha-256 ÄB:CD\n";
        assert!(offer_fingerprint(unicode).is_err());
    }
}
