//! The JSON of the WebSocket signalling protocol (documented in `docs/signalling.md`),
//! and the only place that reads or writes it.
//!
//! Every message is an object with a `type`. Parsing never panics: anything malformed is an
//! `Err` with a sentence the session sends back as an `error` message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a browser may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Play `name` (a local stream name, a pulled uri, or an rtmp:// URL to pull on demand)
    /// with the browser's SDP offer; `id` is the client's handle for this stream. `token`
    /// (optional) is a bearer token for this play, as browsers cannot set headers on a
    /// WebSocket.
    Play {
        id: String,
        name: String,
        sdp: String,
        #[serde(default)]
        token: Option<String>,
    },
    /// Stop the stream `id`.
    Stop { id: String },
    /// Keep-alive; answered with `pong` carrying the same `ts`.
    Ping {
        #[serde(default)]
        ts: Option<Value>,
    },
    /// Answer to the server's `ping`.
    Pong {
        #[serde(default)]
        ts: Option<Value>,
    },
}

/// A viewer's state as the protocol names it (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Pending,
    Playing,
    Stopped,
    Failed,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// Sent once, when the socket opens: `status` is `ESTABLISHED`.
    Session {
        status: &'static str,
        #[serde(rename = "sessionId")]
        session_id: String,
        server: String,
    },
    /// The SDP answer for stream `id` (every ICE candidate included; no trickle needed).
    Answer { id: String, sdp: String },
    /// A stream's state changed. A `FAILED` play refused before it started carries the
    /// HTTP status that says why (`code`: 401, 403, 404, 429, 500, 503).
    Status {
        id: String,
        status: StreamStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
    },
    /// Keep-alive from the server; answer with `pong`.
    Ping { ts: u64 },
    /// Answer to the client's `ping`.
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        ts: Option<Value>,
    },
    /// A message the server could not use.
    Error { message: String },
}

/// Longest text message accepted (an SDP offer is a few kB).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Parses one text message.
pub fn parse(text: &str) -> Result<ClientMessage, String> {
    if text.len() > MAX_MESSAGE {
        return Err(format!("message longer than {MAX_MESSAGE} bytes"));
    }
    let message: ClientMessage =
        serde_json::from_str(text).map_err(|e| format!("cannot read the message: {e}"))?;
    match &message {
        ClientMessage::Play { id, name, sdp, .. } => {
            if id.is_empty() || id.len() > 128 {
                return Err("play: id must be 1 to 128 characters".to_string());
            }
            if name.trim().is_empty() {
                return Err("play: name is empty".to_string());
            }
            if sdp.trim().is_empty() {
                return Err("play: sdp (the offer) is empty".to_string());
            }
        }
        ClientMessage::Stop { id } if id.is_empty() => {
            return Err("stop: id is empty".to_string());
        }
        _ => {}
    }
    Ok(message)
}

/// Serialises one server message.
pub fn render(message: &ServerMessage) -> String {
    serde_json::to_string(message).unwrap_or_else(|e| {
        format!("{{\"type\":\"error\",\"message\":\"cannot encode a message: {e}\"}}")
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn client_messages() {
        assert_eq!(
            parse(r#"{"type":"play","id":"s1","name":"cam","sdp":"v=0"}"#).unwrap(),
            ClientMessage::Play {
                id: "s1".into(),
                name: "cam".into(),
                sdp: "v=0".into(),
                token: None,
            }
        );
        assert_eq!(
            parse(r#"{"type":"play","id":"s1","name":"直播流","sdp":"v=0","token":"pc1.a.b"}"#)
                .unwrap(),
            ClientMessage::Play {
                id: "s1".into(),
                name: "直播流".into(),
                sdp: "v=0".into(),
                token: Some("pc1.a.b".into()),
            }
        );
        assert_eq!(
            parse(r#"{"type":"stop","id":"s1"}"#).unwrap(),
            ClientMessage::Stop { id: "s1".into() }
        );
        assert!(matches!(
            parse(r#"{"type":"ping","ts":5}"#).unwrap(),
            ClientMessage::Ping { ts: Some(_) }
        ));
    }

    #[test]
    fn bad_messages_say_why() {
        for (text, words) in [
            ("not json", "cannot read"),
            (r#"{"type":"dance"}"#, "cannot read"),
            (r#"{"type":"play","id":"","name":"x","sdp":"v=0"}"#, "id"),
            (r#"{"type":"play","id":"a","name":" ","sdp":"v=0"}"#, "name"),
            (r#"{"type":"play","id":"a","name":"x","sdp":""}"#, "sdp"),
            (r#"{"type":"play","id":"a","name":"x"}"#, "cannot read"),
            (r#"{"type":"stop","id":""}"#, "id"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(words), "{text}: {err}");
        }
        assert!(parse(&"x".repeat(MAX_MESSAGE + 1)).is_err());
    }

    #[test]
    fn server_messages() {
        let s = render(&ServerMessage::Status {
            id: "s1".into(),
            status: StreamStatus::Failed,
            reason: Some("Stream not found".into()),
            code: Some(404),
        });
        assert_eq!(
            s,
            r#"{"type":"status","id":"s1","status":"FAILED","reason":"Stream not found","code":404}"#
        );
        let s = render(&ServerMessage::Status {
            id: "s1".into(),
            status: StreamStatus::Playing,
            reason: None,
            code: None,
        });
        assert_eq!(s, r#"{"type":"status","id":"s1","status":"PLAYING"}"#);
        let s = render(&ServerMessage::Session {
            status: "ESTABLISHED",
            session_id: "u".into(),
            server: "pullcast".into(),
        });
        assert!(s.contains(r#""status":"ESTABLISHED""#));
    }
}
