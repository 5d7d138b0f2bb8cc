//! What a caller presents: HTTP Basic (`user:password`) or a bearer token, read from an
//! `Authorization` header value (RFC 7617, RFC 6750) or given as a bare token (the
//! WebSocket `play` message's `token` field).

use super::base64;

/// Longest `Authorization` value or token looked at, in bytes; longer is malformed.
pub const MAX_CREDENTIALS_BYTES: usize = 8192;

/// Credentials as presented, not yet checked.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// HTTP Basic.
    Basic { user: String, password: String },
    /// `Authorization: Bearer …`, or a token given in a message.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    // Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user:?}, ***)"),
            Credentials::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

impl Credentials {
    /// Reads an `Authorization` header value. The scheme is case-insensitive. Anything that
    /// is not well-formed Basic or Bearer is an error with a sentence.
    pub fn from_header(value: &str) -> Result<Credentials, String> {
        if value.len() > MAX_CREDENTIALS_BYTES {
            return Err(format!(
                "the Authorization header is longer than {MAX_CREDENTIALS_BYTES} bytes"
            ));
        }
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::decode_standard(rest)
                .ok_or("the Basic credentials are not base64 (RFC 7617)")?;
            let text = String::from_utf8(decoded)
                .map_err(|_| "the Basic credentials are not UTF-8 text")?;
            let (user, password) = text
                .split_once(':')
                .ok_or("the Basic credentials have no ':' between user and password")?;
            Ok(Credentials::Basic {
                user: user.to_string(),
                password: password.to_string(),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Credentials::token(rest)
        } else {
            Err(format!(
                "the Authorization scheme {:?} is not supported (use Basic or Bearer)",
                scheme.chars().take(20).collect::<String>()
            ))
        }
    }

    /// A bare token (the `token` field of a WebSocket `play`).
    pub fn token(token: &str) -> Result<Credentials, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err("the bearer token is empty".to_string());
        }
        if token.len() > MAX_CREDENTIALS_BYTES {
            return Err(format!(
                "the token is longer than {MAX_CREDENTIALS_BYTES} bytes"
            ));
        }
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return Err("the token contains spaces or control characters".to_string());
        }
        Ok(Credentials::Bearer(token.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        // admin:s3cret
        assert_eq!(
            Credentials::from_header("Basic YWRtaW46czNjcmV0").unwrap(),
            Credentials::Basic {
                user: "admin".into(),
                password: "s3cret".into()
            }
        );
        assert_eq!(
            Credentials::from_header("basic  YWRtaW46czNjcmV0 ").unwrap(),
            Credentials::Basic {
                user: "admin".into(),
                password: "s3cret".into()
            }
        );
        // a password with ':' in it: "u:p:q"
        assert_eq!(
            Credentials::from_header("Basic dTpwOnE=").unwrap(),
            Credentials::Basic {
                user: "u".into(),
                password: "p:q".into()
            }
        );
        assert_eq!(
            Credentials::from_header("Bearer abc.def").unwrap(),
            Credentials::Bearer("abc.def".into())
        );
        for (bad, words) in [
            ("Basic %%%", "base64"),
            ("Basic YWRtaW4=", "':'"), // "admin"
            ("Basic //79", "UTF-8"),   // 0xff 0xfe 0xfd
            ("Bearer", "empty"),
            ("Bearer a b", "spaces"),
            ("Digest x", "not supported"),
            ("", "not supported"),
        ] {
            let err = Credentials::from_header(bad).unwrap_err();
            assert!(err.contains(words), "{bad}: {err}");
        }
        assert!(Credentials::from_header(&"x".repeat(MAX_CREDENTIALS_BYTES + 1)).is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::Basic {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("tok".into())).contains("tok"));
    }
}
