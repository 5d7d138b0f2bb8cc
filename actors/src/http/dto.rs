//! The JSON of the REST API, and the only place that reads or writes it.
//!
//! Request bodies are checked field by field so every mistake gets a sentence that says
//! what is wrong (`"hasAudio must be true or false"`), and unknown fields are ignored, as
//! the commercial product's clients send extras. Responses keep the spec's field names
//! exactly and add ours beside them.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use pullcast::access::{redact_text, PermissionSet, StreamPattern};
use pullcast::rtmp::session::MetaValue;
use pullcast::rtmp::RtmpUrl;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::messages::{CaptureSnapshot, CaptureStatus, PullRequest};
use crate::records;
use crate::telemetry::LatencySummary;

/// `{"error": "..."}`.
pub fn error_body(message: &str) -> Value {
    json!({ "error": message })
}

/// An error answer: `status` with `{"error": message}` — every refusal of every way in
/// (counted for /metrics by its status).
pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    crate::telemetry::count_refusal(crate::telemetry::refusal_reason(status.as_u16()));
    HttpResponse::build(status).json(error_body(message))
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_string())?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!(
            "the body must be a JSON object, not {}",
            kind(&other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A boolean field that clients send as `true` or as `"true"`.
fn flag(map: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(format!(
            "{key} must be true or false (or the strings \"true\"/\"false\"), not {}",
            describe_value(other)
        )),
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", s.chars().take(40).collect::<String>()),
        other => kind(other).to_string(),
    }
}

fn required_uri(map: &Map<String, Value>) -> Result<String, String> {
    match map.get("uri") {
        None | Some(Value::Null) => Err("uri is required".to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("uri must be a string, not {}", kind(other))),
    }
}

/// Parses the body of `/pull/rtmp/pull`; `record_default` applies when the body does not
/// say `record`.
pub fn parse_pull(body: &[u8], record_default: bool) -> Result<PullRequest, String> {
    let map = parse_object(body)?;
    let uri = required_uri(&map)?;
    let url = RtmpUrl::parse(&uri).map_err(|e| format!("invalid uri: {e}"))?;
    let local_stream_name = match map.get("localStreamName") {
        None | Some(Value::Null) => uri.clone(),
        Some(Value::String(s)) if s.trim().is_empty() => uri.clone(),
        Some(Value::String(s)) if s.len() > 1024 => {
            return Err("localStreamName is longer than 1024 bytes".to_string())
        }
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            return Err("localStreamName contains control characters".to_string())
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "localStreamName must be a string, not {}",
                kind(other)
            ))
        }
    };
    let request = PullRequest {
        uri,
        url,
        local_stream_name,
        record: flag(&map, "record", record_default)?,
        has_audio: flag(&map, "hasAudio", true)?,
        has_video: flag(&map, "hasVideo", true)?,
        on_demand: false,
        published: false,
        publish_grace_ms: 0,
        // The REST handler sets it from the caller's `pull_private`.
        may_pull_private: false,
    };
    if !request.has_audio && !request.has_video {
        return Err("hasAudio and hasVideo cannot both be false".to_string());
    }
    Ok(request)
}

/// Parses the body of `/pull/rtmp/terminate`: the uri.
pub fn parse_terminate(body: &[u8]) -> Result<String, String> {
    required_uri(&parse_object(body)?)
}

/// Checks the (optional) body of `/pull/rtmp/find_all`.
pub fn parse_find_all(body: &[u8]) -> Result<(), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    parse_object(body).map(|_| ())
}

/// Longest lifetime of an issued token: 30 days.
pub const MAX_TOKEN_SECONDS: u64 = 30 * 24 * 3600;

/// The body of `/auth/token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The stream pattern the token is for.
    pub stream: StreamPattern,
    /// What it grants (default: `play`).
    pub permissions: PermissionSet,
    /// How long it is valid, in seconds (default: one hour).
    pub expires_in_s: u64,
}

/// Parses the body of `/auth/token`:
/// `{"stream": "cam1", "permissions": ["play"], "expiresInSeconds": 3600}`.
pub fn parse_token_request(body: &[u8]) -> Result<TokenRequest, String> {
    let map = parse_object(body)?;
    let stream = match map.get("stream") {
        Some(Value::String(s)) => StreamPattern::parse(s).map_err(|e| format!("stream: {e}"))?,
        None | Some(Value::Null) => {
            return Err(
                "stream is required (a stream name, or a pattern like \"cam*\")".to_string(),
            )
        }
        Some(other) => return Err(format!("stream must be a string, not {}", kind(other))),
    };
    let permissions = match map.get("permissions") {
        None | Some(Value::Null) => PermissionSet::parse(&["play"])?,
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => names.push(s.as_str()),
                    other => {
                        return Err(format!(
                            "permissions must be an array of strings, not of {}",
                            kind(other)
                        ))
                    }
                }
            }
            let set = PermissionSet::parse(&names).map_err(|e| format!("permissions: {e}"))?;
            if set.is_empty() {
                return Err("permissions is empty: a token must grant something".to_string());
            }
            set
        }
        Some(other) => return Err(format!("permissions must be an array, not {}", kind(other))),
    };
    let expires_in_s = match map.get("expiresInSeconds") {
        None | Some(Value::Null) => 3600,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s) if (1..=MAX_TOKEN_SECONDS).contains(&s) => s,
            _ => {
                return Err(format!(
                    "expiresInSeconds must be a whole number from 1 to {MAX_TOKEN_SECONDS}"
                ))
            }
        },
        Some(other) => {
            return Err(format!(
                "expiresInSeconds must be a number, not {}",
                kind(other)
            ))
        }
    };
    Ok(TokenRequest {
        stream,
        permissions,
        expires_in_s,
    })
}

/// The answer of `/auth/token`.
pub fn token_json(token: &str, request: &TokenRequest, expires_unix_s: u64) -> Value {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires_unix_s);
    json!({
        "token": token,
        "stream": request.stream.as_str(),
        "permissions": request.permissions.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "expiresAt": humantime::format_rfc3339_seconds(at).to_string(),
        "expiresInSeconds": request.expires_in_s,
    })
}

/// A JSON answer for a caller without `api`: every string that holds a uri has its query
/// and user information hidden (`pullcast::access::redact_text`).
pub fn redact_json(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(hidden) = redact_text(s) {
                *s = hidden;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => map.values_mut().for_each(redact_json),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn status_name(status: CaptureStatus) -> &'static str {
    match status {
        CaptureStatus::Pending => "PENDING",
        CaptureStatus::ProcessedRemote => "PROCESSED_REMOTE",
        CaptureStatus::Reconnecting => "RECONNECTING",
        CaptureStatus::Failed => "FAILED",
    }
}

fn meta_json(value: &MetaValue) -> Value {
    match value {
        MetaValue::Null => Value::Null,
        MetaValue::Bool(b) => Value::Bool(*b),
        MetaValue::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        MetaValue::String(s) => Value::String(s.clone()),
        MetaValue::Array(items) => Value::Array(items.iter().map(meta_json).collect()),
        MetaValue::Object(props) => Value::Object(
            props
                .iter()
                .map(|(k, v)| (k.clone(), meta_json(v)))
                .collect(),
        ),
    }
}

fn latency_json(l: LatencySummary) -> Value {
    json!({ "p50": l.p50_ms, "p99": l.p99_ms, "max": l.max_ms, "count": l.count })
}

/// One element of `find_all` (also the body of a successful `pull`).
pub fn snapshot_json(s: &CaptureSnapshot) -> Value {
    let video = s.video.as_ref().map(|v| {
        json!({
            "codec": v.codec,
            "profile": v.profile,
            "level": v.level,
            "width": v.width,
            "height": v.height,
            "frameRate": v.frame_rate,
        })
    });
    let audio = s.audio.as_ref().map(|a| {
        json!({
            "codec": a.codec,
            "profile": a.profile,
            "sampleRate": a.sample_rate,
            "channels": a.channels,
        })
    });
    json!({
        "localMediaSessionId": s.id.to_string(),
        "remoteMediaSessionId": null,
        "localStreamName": s.local_stream_name,
        "remoteStreamName": null,
        "uri": s.uri,
        "status": status_name(s.status),
        "hasAudio": s.has_audio,
        "hasVideo": s.has_video,
        "record": s.record,
        "reason": s.reason,
        "video": video,
        "audio": audio,
        "bytesReceived": s.bytes_received,
        "videoFrames": s.video_frames,
        "videoKeyframes": s.video_keyframes,
        "audioFrames": s.audio_frames,
        "bitrateKbps": s.bitrate_kbps,
        "measuredFps": s.measured_fps,
        "startTime": humantime::format_rfc3339_millis(s.started_at).to_string(),
        "subscribers": s.subscribers,
        "viewers": Value::Object(
            crate::telemetry::ViewerProtocol::ALL
                .iter()
                .map(|p| (p.name().to_string(), json!(s.viewers.get(*p))))
                .collect(),
        ),
        "onDemand": s.on_demand,
        "published": s.published,
        "history": s.history.iter().map(|h| json!({
            "time": humantime::format_rfc3339_millis(h.at).to_string(),
            "status": status_name(h.status),
            "reason": h.reason,
        })).collect::<Vec<_>>(),
        "reconnects": s.reconnects,
        "bFrames": {
            "detected": s.b_frames,
            "evidence": s.b_frames_evidence,
            "transcodingForWebrtc": s.video_transcoding,
        },
        "lastResume": s.last_resume.as_ref().map(|r| json!({
            "time": humantime::format_rfc3339_millis(r.at).to_string(),
            "epochMs": r.at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            "gapMs": r.gap_ms,
        })),
        "retry": s.retry.as_ref().map(|r| json!({
            "attempt": r.attempt,
            "nextAttemptInMs": r.next_attempt_in_ms,
        })),
        "recording": s.recording.as_ref().map(|r| json!({
            "file": r.file,
            "bytes": r.bytes,
            "error": r.error,
        })),
        "webrtc": {
            "frameLatencyMs": s.frame_latency.map(latency_json),
            "firstFrameMs": s.first_frame.map(latency_json),
        },
        "metadata": Value::Object(s.metadata.iter().map(|(k, v)| (k.clone(), meta_json(v))).collect()),
    })
}

/// One recording of the recordings list.
pub fn recording_json(l: &records::Listed) -> Value {
    let side = l.sidecar.as_ref();
    // A sidecar is a file: its times may be anything. humantime's Display fails for times
    // after the year 9999, and `to_string` would panic on that, so it is written with `write!`.
    let iso = |ms: i64| {
        let time = std::time::UNIX_EPOCH
            .checked_add(std::time::Duration::from_millis(ms.max(0) as u64))?;
        let mut text = String::new();
        write!(text, "{}", humantime::format_rfc3339_millis(time)).ok()?;
        Some(text)
    };
    json!({
        "name": l.name,
        "url": format!("/records/{}", l.name),
        "size": l.size,
        "stream": side.map(|s| s.stream.clone()),
        "mediaSessionId": side.map(|s| s.media_session_id.clone()),
        "startTime": side.and_then(|s| iso(s.start_ms)),
        "endTime": side.and_then(|s| s.end_ms).and_then(iso),
        "durationSeconds": side
            .and_then(|s| s.end_ms.map(|e| e.saturating_sub(s.start_ms) as f64 / 1000.0)),
        "videoCodec": side.map(|s| s.video_codec.clone()),
        "audioCodec": side.map(|s| s.audio_codec.clone()),
    })
}

/// The answer to a successful `terminate`.
pub fn terminated_json(uri: &str) -> Value {
    json!({ "terminated": uri })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_pull_default(body: &[u8]) -> Result<PullRequest, String> {
        parse_pull(body, false)
    }

    #[test]
    fn record_default_applies_only_when_the_body_is_silent() {
        assert!(
            parse_pull(br#"{"uri":"rtmp://h/live/s"}"#, true)
                .unwrap()
                .record
        );
        assert!(
            !parse_pull(br#"{"uri":"rtmp://h/live/s","record":"false"}"#, true)
                .unwrap()
                .record
        );
    }

    #[test]
    fn minimal_and_full_pull_bodies() {
        let r = parse_pull_default(br#"{"uri":"rtmp://h/live/s"}"#).unwrap();
        assert_eq!(r.local_stream_name, "rtmp://h/live/s");
        assert!(!r.record && r.has_audio && r.has_video);
        let r = parse_pull_default(
            br#"{"uri":"rtmp://h/live/s","localStreamName":"s1","record":"true","hasAudio":false,"hasVideo":"true","extra":1}"#,
        )
        .unwrap();
        assert_eq!(r.local_stream_name, "s1");
        assert!(r.record && !r.has_audio && r.has_video);
        assert!(
            parse_pull_default(br#"{"uri":"rtmp://h/live/s","record":true}"#)
                .unwrap()
                .record
        );
    }

    #[test]
    fn bad_pull_bodies_say_what_is_wrong() {
        for (body, words) in [
            (&br#"{"uri":"#[..], "not valid JSON"),
            (br#"[1,2]"#, "JSON object"),
            (br#"{}"#, "uri is required"),
            (br#"{"uri":5}"#, "uri must be a string"),
            (br#"{"uri":"http://x/a/b"}"#, "invalid uri"),
            (br#"{"uri":"rtmp://h/a/s","hasAudio":"maybe"}"#, "hasAudio"),
            (br#"{"uri":"rtmp://h/a/s","record":"perhaps"}"#, "record"),
            (
                br#"{"uri":"rtmp://h/a/s","localStreamName":7}"#,
                "localStreamName",
            ),
            (
                br#"{"uri":"rtmp://h/a/s","hasAudio":false,"hasVideo":false}"#,
                "both",
            ),
            (&[0xff, 0xfe, 0x00][..], "UTF-8"),
        ] {
            let err = parse_pull(body, false).unwrap_err();
            assert!(err.contains(words), "{err}");
        }
    }

    #[test]
    fn token_requests() {
        let r = parse_token_request(br#"{"stream":"cam1"}"#).unwrap();
        assert_eq!(r.stream.as_str(), "cam1");
        assert_eq!(r.permissions.names(), "play");
        assert_eq!(r.expires_in_s, 3600);
        let r = parse_token_request(
            r#"{"stream":"直播*","permissions":["play","records"],"expiresInSeconds":60}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.permissions.names(), "play,records");
        assert_eq!(r.expires_in_s, 60);
        for (body, words) in [
            (&br#"{}"#[..], "stream is required"),
            (br#"{"stream":5}"#, "stream must be a string"),
            (br#"{"stream":""}"#, "stream:"),
            (
                br#"{"stream":"a","permissions":["fly"]}"#,
                "unknown permission",
            ),
            (br#"{"stream":"a","permissions":[]}"#, "empty"),
            (br#"{"stream":"a","permissions":"play"}"#, "array"),
            (
                br#"{"stream":"a","expiresInSeconds":0}"#,
                "expiresInSeconds",
            ),
            (
                br#"{"stream":"a","expiresInSeconds":99999999}"#,
                "expiresInSeconds",
            ),
            (br#"{"stream":"a","expiresInSeconds":"1"}"#, "number"),
        ] {
            let err = parse_token_request(body).unwrap_err();
            assert!(err.contains(words), "{err}");
        }
    }

    #[test]
    fn redacted_answers_hide_stream_keys_everywhere() {
        let mut v = json!({
            "uri": "rtmp://h/live/s?key=abc",
            "localStreamName": "rtmp://h/live/s?key=abc",
            "history": [{"reason": "cannot pull 'rtmp://u:p@h/live/s?key=abc'"}],
            "count": 3,
        });
        redact_json(&mut v);
        let text = v.to_string();
        assert!(!text.contains("abc") && !text.contains("u:p@"), "{text}");
        assert_eq!(v["uri"], "rtmp://h/live/s?key=***");
        assert_eq!(v["count"], 3);
    }

    #[test]
    fn find_all_accepts_nothing_or_an_object() {
        assert!(parse_find_all(b"").is_ok());
        assert!(parse_find_all(b" \n").is_ok());
        assert!(parse_find_all(b"{}").is_ok());
        assert!(parse_find_all(b"{").is_err());
    }
}
