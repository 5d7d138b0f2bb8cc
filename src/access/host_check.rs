//! Whether a request's `Host` names this server: the guard of trust by address against DNS
//! rebinding.
//!
//! A page on `evil.example` can make its name resolve to 127.0.0.1 once it is loaded; the
//! browser then sends that page's requests to pullcast on loopback, same-origin in the
//! browser's eyes, with `Host: evil.example`. So the trust `auth.trusted_networks` gives is
//! only given to a request whose `Host` is an IP address (no DNS involved), `localhost` or a
//! name under `.localhost` (resolved locally, RFC 6761), or one of the names this server is
//! configured with (`http.host_names`, `tls.host_names`). A request without `Host` (HTTP/1.0
//! tools) passes: browsers always send one. Must not do I/O.

use crate::net::host::numeric_host;

/// The longest `Host` value looked at; a longer one names nothing.
const MAX_HOST_BYTES: usize = 300;

/// Whether `host` (a `Host` header, port included) names this server, given its configured
/// names (`names`, compared without case and trailing dot).
pub fn names_this_server(host: Option<&str>, names: &[String]) -> bool {
    let Some(host) = host else {
        return true;
    };
    let Some(name) = host_without_port(host.trim()) else {
        return false;
    };
    if numeric_host(name).is_some() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    names.iter().any(|configured| {
        let configured = configured.trim();
        let configured = configured.strip_suffix('.').unwrap_or(configured);
        configured.eq_ignore_ascii_case(&name)
    })
}

/// `example.com` of `example.com:8080`, `[::1]` of `[::1]:8080`; `None` for what no client
/// would send (empty, too long, not ASCII, a bad port).
fn host_without_port(host: &str) -> Option<&str> {
    if host.is_empty() || host.len() > MAX_HOST_BYTES || !host.is_ascii() {
        return None;
    }
    // ASCII: every index is a character boundary.
    let (name, port) = if let Some(inside) = host.strip_prefix('[') {
        let end = inside.find(']')? + 2;
        (&host[..end], &host[end..])
    } else {
        match host.find(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => {
            !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
        }
    };
    (port_ok && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let names = vec!["media.example.com".to_string(), "Cam.Local.".to_string()];
        for (host, want) in [
            (None, true),
            (Some("127.0.0.1"), true),
            (Some("127.0.0.1:8080"), true),
            (Some("[::1]:8080"), true),
            (Some("[::1]"), true),
            (Some("10.1.2.3:443"), true),
            (Some("localhost:8080"), true),
            (Some("LOCALHOST."), true),
            (Some("app.localhost:3000"), true),
            (Some("media.example.com:8443"), true),
            (Some("MEDIA.example.com."), true),
            (Some("cam.local"), true),
            (Some("evil.example:8080"), false),
            (Some("localhost.evil.example"), false),
            (Some("media.example.com.evil.example"), false),
            (Some(""), false),
            (Some(":8080"), false),
            (Some("localhost:"), false),
            (Some("localhost:http"), false),
            (Some("[::1]x"), false),
            (Some("[::1"), false),
            (Some("直播.example"), false),
        ] {
            assert_eq!(names_this_server(host, &names), want, "{host:?}");
        }
        let long = format!("{}.localhost", "a".repeat(400));
        assert!(!names_this_server(Some(&long), &names));
    }
}
