//! Base64 (RFC 4648): the standard alphabet that HTTP Basic credentials use (§4) and the
//! URL-safe one, without padding, that tokens use (§5).

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Standard base64 with optional padding; `None` for anything else.
pub fn decode_standard(text: &str) -> Option<Vec<u8>> {
    decode(text.trim_end_matches('='), STANDARD)
}

/// URL-safe base64 without padding; `None` for anything else (padding included).
pub fn decode_url_safe(text: &str) -> Option<Vec<u8>> {
    decode(text, URL_SAFE)
}

/// URL-safe base64 without padding.
pub fn encode_url_safe(bytes: &[u8]) -> String {
    encode(bytes, URL_SAFE, false)
}

/// Standard base64 with padding (the test vectors' other direction).
#[cfg(test)]
fn encode_standard(bytes: &[u8]) -> String {
    encode(bytes, STANDARD, true)
}

fn encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for i in 0..4 {
            if i < symbols {
                let index = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(alphabet[index % 64]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn decode(text: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = alphabet.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Six leftover bits are a lone symbol (never valid); leftover bits must be zero.
    (bits < 6 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(decode_standard(encoded).as_deref(), Some(plain.as_bytes()));
            assert_eq!(encode_standard(plain.as_bytes()), encoded);
            let unpadded = encoded.trim_end_matches('=');
            assert_eq!(encode_url_safe(plain.as_bytes()), unpadded);
            assert_eq!(decode_url_safe(unpadded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(decode_standard("Zm9v!"), None);
        assert_eq!(decode_standard("Z"), None);
        assert_eq!(decode_url_safe("Zg=="), None);
        // Non-zero leftover bits: not a canonical encoding.
        assert_eq!(decode_url_safe("Zh"), None);
        assert_eq!(encode_url_safe(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode_url_safe("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(decode_standard("直播"), None);
    }
}
