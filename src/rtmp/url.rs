//! Parsing of the `rtmp://` URLs a pull names.
//!
//! `rtmp://host[:port]/app[/more]/stream[?query]`: the last path segment is the stream name
//! (sent in `play`, with its query), everything between the host and it is the application
//! (sent in `connect` and in `tcUrl`, with any query it carries). Pure string handling.

use std::fmt;

/// The default RTMP port.
pub const DEFAULT_PORT: u16 = 1935;

/// A parsed pull URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (1935 when absent).
    pub port: u16,
    /// Application, e.g. `live` or `app/inst?token=1`.
    pub app: String,
    /// Stream name with its query, e.g. `myStream?key=2`.
    pub stream: String,
}

/// Why a string is not a pullable RTMP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

fn bad(why: impl Into<String>) -> UrlError {
    UrlError(format!(
        "{}; expected rtmp://host[:port]/app/stream",
        why.into()
    ))
}

impl RtmpUrl {
    /// Parses and validates `input`.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let trimmed = input.trim();
        if trimmed.len() != input.len() {
            return Err(bad("the uri has leading or trailing spaces"));
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(bad(format!("'{input}' has no scheme")));
        };
        if !scheme.eq_ignore_ascii_case("rtmp") {
            return Err(bad(format!("unsupported scheme '{scheme}'")));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the uri contains spaces or control characters"));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = parse_authority(authority)?;
        let Some((app, stream)) = path.rsplit_once('/') else {
            return Err(bad(if path.is_empty() {
                "the uri has no application and stream name".to_string()
            } else {
                format!("the uri has an application '{path}' but no stream name")
            }));
        };
        if app.is_empty() || app.split('/').any(str::is_empty) {
            return Err(bad("the uri has an empty application name"));
        }
        if stream.is_empty() || stream.starts_with('?') {
            return Err(bad("the uri has an empty stream name"));
        }
        Ok(Self {
            host,
            port,
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }

    /// The `tcUrl` sent in `connect`: `rtmp://host:port/app`.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host_for_url(), self.port, self.app)
    }

    /// `host:port`, ready for a socket connect / DNS lookup.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host_for_url(), self.port)
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// For logs and messages: the stream's query (often a stream key or token) is shown as
/// `?…`, never its value.
impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stream.split_once('?') {
            Some((name, _)) => write!(f, "{}/{name}?…", self.tc_url()),
            None => write!(f, "{}/{}", self.tc_url(), self.stream),
        }
    }
}

fn parse_authority(authority: &str) -> Result<(String, u16), UrlError> {
    if authority.contains('@') {
        return Err(bad("user information in the uri is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(bad("unterminated IPv6 address"));
        };
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the uri has no host"));
    }
    let valid_host = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return Err(bad(format!("'{host}' is not a valid host name")));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad(format!("'{p}' is not a valid port (1-65535)"))),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shown_without_its_stream_key() {
        let url = RtmpUrl::parse("rtmp://h/live/cam?key=s3cret&x=1").unwrap();
        assert_eq!(url.to_string(), "rtmp://h:1935/live/cam?…");
        assert_eq!(url.stream, "cam?key=s3cret&x=1");
        let plain = RtmpUrl::parse("rtmp://h:1936/a/b").unwrap();
        assert_eq!(plain.to_string(), "rtmp://h:1936/a/b");
    }

    #[test]
    fn plain_url() {
        let u = RtmpUrl::parse("rtmp://myserver.com/live/myStream").unwrap();
        assert_eq!(u.host, "myserver.com");
        assert_eq!(u.port, 1935);
        assert_eq!(u.app, "live");
        assert_eq!(u.stream, "myStream");
        assert_eq!(u.tc_url(), "rtmp://myserver.com:1935/live");
        assert_eq!(u.authority(), "myserver.com:1935");
    }

    #[test]
    fn port_nested_app_and_queries_are_kept() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:19350/app/inst?token=a/cam1?key=b&x=1").unwrap();
        assert_eq!(u.port, 19350);
        assert_eq!(u.app, "app/inst?token=a");
        assert_eq!(u.stream, "cam1?key=b&x=1");
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1:19350/app/inst?token=a");
    }

    #[test]
    fn ipv6_host() {
        let u = RtmpUrl::parse("rtmp://[::1]:1936/live/s").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.authority(), "[::1]:1936");
    }

    #[test]
    fn bad_urls_say_why() {
        for (input, words) in [
            ("http://x/a/b", "scheme"),
            ("rtmp://", "no host"),
            ("rtmp://host", "no application"),
            ("rtmp://host/app", "no stream"),
            ("rtmp://host/app/", "empty stream"),
            ("rtmp://host//s", "empty application"),
            ("rtmp://host:99999/a/s", "port"),
            ("rtmp://host:0/a/s", "port"),
            ("rtmp://host:x/a/s", "port"),
            ("rtmp://ho st/a/s", "spaces"),
            ("rtmp://h$st/a/s", "host"),
            ("rtmp://u:p@host/a/s", "user"),
            ("myStream", "scheme"),
            (" rtmp://h/a/s", "spaces"),
        ] {
            let err = RtmpUrl::parse(input).unwrap_err().to_string();
            assert!(err.contains(words), "{input}: {err}");
            assert!(err.contains("rtmp://host[:port]/app/stream"), "{err}");
        }
    }
}
