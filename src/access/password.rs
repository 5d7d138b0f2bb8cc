//! A user's password as configured — in clear (`password`) or as an argon2 PHC string
//! (`password_hash`) — and the check of a presented one. Comparisons take the same time
//! whatever the inputs share.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::digest;

/// How a user's password is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// In clear, as written in the configuration.
    Plain(String),
    /// An argon2 PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), checked when read.
    Argon2(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Plain(_) => f.write_str("Plain(***)"),
            Password::Argon2(_) => f.write_str("Argon2(***)"),
        }
    }
}

impl Password {
    /// The password of a `[[auth.users]]` entry: exactly one of `password` and
    /// `password_hash` must be given.
    pub fn from_settings(password: &str, password_hash: &str) -> Result<Password, String> {
        match (password.is_empty(), password_hash.trim().is_empty()) {
            (false, true) => Ok(Password::Plain(password.to_string())),
            (true, false) => {
                let phc = password_hash.trim();
                let parsed = PasswordHash::new(phc)
                    .map_err(|e| format!("password_hash is not a PHC string ({e})"))?;
                if !parsed.algorithm.as_str().starts_with("argon2") {
                    return Err(format!(
                        "password_hash uses {}; only argon2 (argon2id, argon2i, argon2d) is supported",
                        parsed.algorithm
                    ));
                }
                if parsed.hash.is_none() {
                    return Err("password_hash has no hash part".to_string());
                }
                Ok(Password::Argon2(phc.to_string()))
            }
            (false, false) => Err("give password or password_hash, not both".to_string()),
            (true, true) => Err("password or password_hash is required".to_string()),
        }
    }

    /// Whether `given` is the password. An argon2 check costs what its parameters say
    /// (tens of ms with the defaults): callers run it off latency-sensitive threads.
    pub fn verify(&self, given: &str) -> bool {
        match self {
            Password::Plain(expected) => digests_equal(expected.as_bytes(), given.as_bytes()),
            Password::Argon2(phc) => PasswordHash::new(phc).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(given.as_bytes(), &hash)
                    .is_ok()
            }),
        }
    }
}

/// An argon2id PHC string for `password` with the crate's default parameters (19 MiB, two
/// passes) and `salt` (at least 8 bytes; pass 16 random ones).
pub fn hash_password(password: &str, salt: &[u8]) -> Result<String, String> {
    let salt = SaltString::encode_b64(salt).map_err(|e| format!("bad salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `a` and `b` are equal, in time that depends on neither their contents nor
/// their lengths (both are hashed first).
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (
        digest::digest(&digest::SHA256, a),
        digest::digest(&digest::SHA256, b),
    );
    constant_time_eq(a.as_ref(), b.as_ref())
}

/// Byte equality that looks at every byte (the lengths are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let p = Password::from_settings("s3cret", "").unwrap();
        assert!(p.verify("s3cret"));
        assert!(!p.verify("s3cret "));
        assert!(!p.verify(""));
        let unicode = Password::from_settings("пароль-密码", "").unwrap();
        assert!(unicode.verify("пароль-密码"));
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn argon2_round_trip_and_a_known_vector() {
        let phc = hash_password("correct horse", b"0123456789abcdef").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        let p = Password::from_settings("", &phc).unwrap();
        assert!(p.verify("correct horse"));
        assert!(!p.verify("correct horse!"));
        // The reference implementation's own vector (phc-winner-argon2, src/test.c).
        let reference = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        let p = Password::from_settings("", reference).unwrap();
        assert!(p.verify("password"));
        assert!(!p.verify("Password"));
    }

    #[test]
    fn configuration_errors() {
        for (password, hash, words) in [
            ("", "", "required"),
            (
                "a",
                "$argon2id$v=19$m=16,t=2,p=1$c29tZXNhbHQ$aGFzaA",
                "not both",
            ),
            ("", "plain text", "PHC"),
            (
                "",
                "$pbkdf2-sha256$i=1000$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "argon2",
            ),
            ("", "$argon2id$v=19$m=16,t=2,p=1$c29tZXNhbHQ", "no hash"),
        ] {
            let err = Password::from_settings(password, hash).unwrap_err();
            assert!(err.contains(words), "{hash}: {err}");
        }
    }

    #[test]
    fn equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(digests_equal(b"x", b"x"));
        assert!(!digests_equal(b"x", b"xx"));
    }
}
