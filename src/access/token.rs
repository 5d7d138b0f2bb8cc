//! Signed, expiring tokens: what a web app hands a viewer so it may play one stream (or, more
//! generally, what an `api` caller hands someone for a subset of its own permissions on one
//! stream pattern) until a given time.
//!
//! A token is `pc1.<payload>.<tag>`: `payload` is the URL-safe, unpadded base64 of the UTF-8
//! text `<expiry, Unix seconds>\n<permissions, comma-separated>\n<stream pattern>`, and `tag`
//! the URL-safe, unpadded base64 of HMAC-SHA256(`auth.token_secret`, `pc1.<payload>`). Any
//! backend that knows the secret can mint tokens itself. Nothing here reads a clock: the
//! time is passed in.

use ring::hmac;

use super::base64;
use super::pattern::StreamPattern;
use super::permission::PermissionSet;

/// The prefix (and version) of every token pullcast issues.
pub const PREFIX: &str = "pc1.";

/// Shortest accepted `auth.token_secret`, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// What its holder may do.
    pub permissions: PermissionSet,
    /// On which streams (local names or uris).
    pub stream: StreamPattern,
    /// Until when, in Unix seconds (the token is refused from this second on).
    pub expires_unix_s: u64,
}

/// The key that signs and checks tokens.
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

/// Whether `token` has the shape of a pullcast token (it may still be forged or expired).
pub fn is_pullcast_token(token: &str) -> bool {
    token.starts_with(PREFIX)
}

impl TokenKey {
    /// A key from `auth.token_secret` (at least [`MIN_SECRET_BYTES`] bytes).
    pub fn new(secret: &str) -> Result<TokenKey, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "auth.token_secret must be at least {MIN_SECRET_BYTES} bytes (e.g. the output of `openssl rand -hex 32`)"
            ));
        }
        Ok(TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        })
    }

    /// The token for `claims`.
    pub fn mint(&self, claims: &TokenClaims) -> String {
        let payload = format!(
            "{}\n{}\n{}",
            claims.expires_unix_s,
            claims.permissions.names(),
            claims.stream.as_str()
        );
        let signed = format!("{PREFIX}{}", base64::encode_url_safe(payload.as_bytes()));
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", base64::encode_url_safe(tag.as_ref()))
    }

    /// The claims of `token` if its signature is right and it has not expired at `now_unix_s`.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<TokenClaims, String> {
        let rest = token
            .strip_prefix(PREFIX)
            .ok_or("the token is not a pullcast token (pc1.…)")?;
        let (payload_b64, tag_b64) = rest
            .split_once('.')
            .ok_or("the token is malformed (pc1.<payload>.<signature>)")?;
        let tag =
            base64::decode_url_safe(tag_b64).ok_or("the token's signature is not base64url")?;
        let signed_len = PREFIX.len() + payload_b64.len();
        let signed = token.get(..signed_len).ok_or("the token is malformed")?;
        hmac::verify(&self.key, signed.as_bytes(), &tag)
            .map_err(|_| "the token's signature is wrong".to_string())?;
        // Signed by us: what follows can only fail for a token of another version.
        let payload = base64::decode_url_safe(payload_b64)
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or("the token's payload is not base64url UTF-8")?;
        let mut lines = payload.splitn(3, '\n');
        let (Some(expiry), Some(permissions), Some(stream)) =
            (lines.next(), lines.next(), lines.next())
        else {
            return Err("the token's payload is malformed".to_string());
        };
        let expires_unix_s: u64 = expiry
            .parse()
            .map_err(|_| "the token's expiry is not a number".to_string())?;
        let permissions: Vec<&str> = permissions.split(',').collect();
        let claims = TokenClaims {
            permissions: PermissionSet::parse(&permissions)?,
            stream: StreamPattern::parse(stream)?,
            expires_unix_s,
        };
        if now_unix_s >= claims.expires_unix_s {
            return Err(format!(
                "the token expired {} s ago",
                now_unix_s - claims.expires_unix_s
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::access::permission::Permission;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn claims(stream: &str, expires_unix_s: u64) -> TokenClaims {
        TokenClaims {
            permissions: PermissionSet::NONE.with(Permission::Play),
            stream: StreamPattern::parse(stream).unwrap(),
            expires_unix_s,
        }
    }

    #[test]
    fn a_fixed_vector() {
        // Computed outside pullcast (Python's hmac, hashlib and base64 modules).
        let key = TokenKey::new(SECRET).unwrap();
        let token = key.mint(&claims("cam1", 1_700_000_000));
        assert_eq!(
            token,
            "pc1.MTcwMDAwMDAwMApwbGF5CmNhbTE.be2ktqlxxO-uoPV27qcCIXRdHAGJDU7-U04m0KZ-0Js"
        );
        assert_eq!(
            key.verify(&token, 1_699_999_999).unwrap(),
            claims("cam1", 1_700_000_000)
        );
    }

    #[test]
    fn round_trip_unicode_and_expiry() {
        let key = TokenKey::new(SECRET).unwrap();
        let c = claims("直播流*", 2000);
        let token = key.mint(&c);
        assert!(is_pullcast_token(&token));
        assert_eq!(key.verify(&token, 1999).unwrap(), c);
        assert!(key.verify(&token, 2000).unwrap_err().contains("expired"));
        assert!(key.verify(&token, 5000).unwrap_err().contains("3000 s ago"));
    }

    #[test]
    fn forgeries_are_refused() {
        let key = TokenKey::new(SECRET).unwrap();
        let other = TokenKey::new("another secret that is long enough!!").unwrap();
        let token = other.mint(&claims("*", u64::MAX));
        assert!(key.verify(&token, 0).unwrap_err().contains("signature"));
        // Widening the pattern of a real token breaks its signature.
        let real = key.mint(&claims("cam1", 5000));
        let (_, tag) = real.rsplit_once('.').unwrap();
        let widened = format!(
            "{PREFIX}{}.{tag}",
            base64::encode_url_safe(b"5000\nplay\n*")
        );
        assert!(key.verify(&widened, 0).unwrap_err().contains("signature"));
        for bad in [
            "",
            "pc1.",
            "pc1.abc",
            "pc1.abc.@@@",
            "xyz.abc.def",
            "pc1..",
            "pc1.直播.流",
        ] {
            assert!(key.verify(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKey::new("short").unwrap_err().contains("32 bytes"));
    }
}
