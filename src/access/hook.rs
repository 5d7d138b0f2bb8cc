//! The authorization hook's wire format, without the socket: the URL (`http://` only), the
//! JSON question, the HTTP/1.1 request that carries it, and the status line of the answer.
//!
//! The question is one JSON object:
//! `{"action":"play","stream":"cam1","uri":"rtmp://…","user":"ops","address":"203.0.113.7",
//! "protocol":"whep","token":null}` — `stream` is the name the client asked for (or `null`),
//! `uri` the capture's uri when known, `user` the authenticated user (else `null`), `token`
//! a bearer token pullcast did not issue (else `null`). A 2xx answer allows; anything else
//! refuses.

use std::fmt::Write;
use std::net::IpAddr;

use super::permission::Permission;

/// Longest hook URL accepted, in bytes.
const MAX_URL_BYTES: usize = 2048;

/// Where the hook is: `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The request target, starting with `/`.
    pub path: String,
}

impl HookUrl {
    /// Parses `auth.hook_url`.
    pub fn parse(url: &str) -> Result<HookUrl, String> {
        let url = url.trim();
        if url.len() > MAX_URL_BYTES {
            return Err(format!(
                "auth.hook_url is longer than {MAX_URL_BYTES} bytes"
            ));
        }
        let rest = url
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("http://"))
            .and_then(|_| url.get(7..))
            .ok_or("auth.hook_url must start with http:// (the hook is a local backend; https is not supported)")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("auth.hook_url cannot carry credentials".to_string());
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("auth.hook_url: unclosed [ in the host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p)?,
                None if after.is_empty() => 80,
                None => return Err("auth.hook_url: junk after the ]".to_string()),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, p)) => (host.to_string(), parse_port(p)?),
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() {
            return Err("auth.hook_url has no host".to_string());
        }
        if path.chars().any(|c| c.is_control() || c == ' ')
            || host.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err("auth.hook_url contains spaces or control characters".to_string());
        }
        Ok(HookUrl {
            host,
            port,
            path: path.to_string(),
        })
    }

    /// The `Host` header value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| "auth.hook_url: the port is not a number from 1 to 65535".to_string())
}

/// What the hook is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookQuestion {
    pub action: Permission,
    /// The name the client asked for.
    pub stream: Option<String>,
    /// The capture's uri, when known.
    pub uri: Option<String>,
    pub user: Option<String>,
    pub address: IpAddr,
    /// `rest`, `whep`, `websocket`, `download`, `flv`, `hls`, `rtmp`, `metrics`.
    pub protocol: &'static str,
    /// A bearer token pullcast did not issue.
    pub token: Option<String>,
}

impl HookQuestion {
    /// The JSON body.
    pub fn to_json(&self) -> String {
        let address = canonical(self.address).to_string();
        let fields: [(&str, Option<&str>); 7] = [
            ("action", Some(self.action.name())),
            ("stream", self.stream.as_deref()),
            ("uri", self.uri.as_deref()),
            ("user", self.user.as_deref()),
            ("address", Some(&address)),
            ("protocol", Some(self.protocol)),
            ("token", self.token.as_deref()),
        ];
        let mut out = String::from("{");
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{name}\":");
            match value {
                Some(v) => json_string(&mut out, v),
                None => out.push_str("null"),
            }
        }
        out.push('}');
        out
    }

    /// The whole HTTP/1.1 request to `url`.
    pub fn request(&self, url: &HookUrl) -> Vec<u8> {
        let body = self.to_json();
        let mut out = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: pullcast\r\n\r\n",
            url.path,
            url.host_header(),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The status code of an HTTP/1.x answer that starts with `head`; `None` until the first
/// line is complete, or when it is not a status line.
pub fn parse_status(head: &[u8]) -> Option<u16> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(head.get(..end)?).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            HookUrl::parse("http://127.0.0.1:9000/auth").unwrap(),
            HookUrl {
                host: "127.0.0.1".into(),
                port: 9000,
                path: "/auth".into()
            }
        );
        assert_eq!(
            HookUrl::parse("HTTP://backend").unwrap(),
            HookUrl {
                host: "backend".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert_eq!(
            HookUrl::parse("http://[::1]:81/a?b=c").unwrap(),
            HookUrl {
                host: "::1".into(),
                port: 81,
                path: "/a?b=c".into()
            }
        );
        for (bad, words) in [
            ("https://h/auth", "http://"),
            ("ftp://h", "http://"),
            ("http://", "no host"),
            ("http://h:0/", "port"),
            ("http://h:99999/", "port"),
            ("http://u:p@h/", "credentials"),
            ("http://h/a b", "spaces"),
            ("http://[::1/", "unclosed"),
            ("直播", "http://"),
        ] {
            let err = HookUrl::parse(bad).unwrap_err();
            assert!(err.contains(words), "{bad}: {err}");
        }
    }

    #[test]
    fn question_json_and_request() {
        let q = HookQuestion {
            action: Permission::Play,
            stream: Some("直播\"流\"\n".into()),
            uri: None,
            user: Some("ops".into()),
            address: "::ffff:203.0.113.7".parse().unwrap(),
            protocol: "whep",
            token: None,
        };
        let json = q.to_json();
        assert_eq!(
            json,
            r#"{"action":"play","stream":"直播\"流\"\n","uri":null,"user":"ops","address":"203.0.113.7","protocol":"whep","token":null}"#
        );
        let url = HookUrl::parse("http://[::1]:9000/auth").unwrap();
        let request = String::from_utf8(q.request(&url)).unwrap();
        assert!(
            request.starts_with("POST /auth HTTP/1.1\r\nHost: [::1]:9000\r\n"),
            "{request}"
        );
        assert!(request.contains(&format!("Content-Length: {}\r\n", json.len())));
        assert!(request.ends_with(&json));
        let control = HookQuestion {
            stream: Some("a\u{1}b".into()),
            ..q
        };
        assert!(control.to_json().contains(r#""a\u0001b""#));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(
            parse_status(b"HTTP/1.0 403 Forbidden\r\nX: y\r\n\r\n"),
            Some(403)
        );
        assert_eq!(parse_status(b"HTTP/1.1 200"), None);
        assert_eq!(parse_status(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(parse_status(b"SSH-2.0-x\r\n"), None);
        assert_eq!(parse_status(&[0xff, 0xfe, b'\r', b'\n']), None);
    }
}
