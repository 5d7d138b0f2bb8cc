//! Fuzz entry points of the server crate: the parsers of what HTTP clients, WebSocket peers
//! and the recordings folder hand the server. One function per fuzz target, each taking
//! arbitrary bytes; shared by the cargo-fuzz targets in `fuzz/fuzz_targets/` (built with the
//! fuzz crate's `server` feature) and by `tests/fuzz_corpus.rs`, which replays the committed
//! corpus on stable. The core's targets and [`pullcast::fuzzing::FuzzInput`] are in
//! `pullcast::fuzzing`; `fuzz/README.md` describes the layout.
//!
//! An entry must never panic on any input; its `assert!`s state only what the driven code
//! promises in its documentation. Nothing here is used by the server itself.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pullcast::access::hook::{parse_status, HookQuestion, HookUrl};
use pullcast::access::Permission;
use pullcast::fuzzing::{FuzzInput, Target};
use rtc::peer_connection::sdp::RTCSessionDescription;
use serde_json::Value;

use crate::http::dto::recording_json;
use crate::http::whep::percent_decode;
use crate::http::{dto, ws_protocol};
use crate::records::{self, Listed, Sidecar};

/// Every fuzz target of the server crate.
pub const TARGETS: &[Target] = &[
    ("ws_message", ws_message),
    ("rest_body", rest_body),
    ("record_path", record_path),
    ("record_sidecar", record_sidecar),
    ("webrtc_offer", webrtc_offer),
    ("auth_hook", auth_hook),
];

/// `ws_message`: one WebSocket text message from a browser (text frames are UTF-8; other
/// bytes never reach the parser), and an `error` answer quoting it.
pub fn ws_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ws_protocol::parse(text) {
        Ok(ws_protocol::ClientMessage::Play { id, name, sdp, .. }) => {
            assert!(
                (1..=128).contains(&id.len()),
                "play id of {} bytes",
                id.len()
            );
            assert!(!name.trim().is_empty() && !sdp.trim().is_empty());
        }
        Ok(ws_protocol::ClientMessage::Stop { id }) => assert!(!id.is_empty()),
        Ok(_) | Err(_) => {}
    }
    let answer = ws_protocol::render(&ws_protocol::ServerMessage::Error {
        message: text.to_string(),
    });
    let parsed: Result<Value, _> = serde_json::from_str(&answer);
    assert!(
        parsed
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|m| m == text),
        "the error message does not carry the text back"
    );
}

/// `rest_body`: a REST request body, read as a pull, a terminate and a find_all. Input: a
/// byte whose bit 0 is the `record` default, then the body.
pub fn rest_body(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let record_default = input.u8() & 1 == 1;
    let body = input.rest();
    if let Ok(pull) = dto::parse_pull(body, record_default) {
        assert!(pull.has_audio || pull.has_video);
        assert!(!pull.on_demand);
        assert!(pull.local_stream_name == pull.uri || pull.local_stream_name.len() <= 1024);
    }
    let _ = dto::parse_terminate(body);
    let _ = dto::parse_find_all(body);
    if let Ok(request) = dto::parse_token_request(body) {
        assert!((1..=dto::MAX_TOKEN_SECONDS).contains(&request.expires_in_s));
        assert!(!request.permissions.is_empty());
    }
    // What a caller without `api` is shown of any JSON answer.
    if let Ok(mut value) = serde_json::from_slice::<Value>(body) {
        dto::redact_json(&mut value);
    }
}

/// A recordings folder made once per process: two recordings, a sidecar, a folder named
/// like a recording, a link to a recording inside and a link to a file outside.
fn recordings_folder() -> Option<&'static (PathBuf, Vec<PathBuf>)> {
    static FOLDER: OnceLock<Option<(PathBuf, Vec<PathBuf>)>> = OnceLock::new();
    FOLDER
        .get_or_init(|| {
            let base = std::env::temp_dir().join("pullcast-fuzz-records");
            let root = base.join("records");
            std::fs::create_dir_all(root.join("folder.mp4")).ok()?;
            std::fs::write(base.join("outside.mp4"), b"outside").ok()?;
            for name in ["a.mp4", "b-1_x.mp4", "é.mp4", "a.mp4.json"] {
                std::fs::write(root.join(name), b"x").ok()?;
            }
            #[cfg(unix)]
            {
                let _ = std::os::unix::fs::symlink("a.mp4", root.join("inside.mp4"));
                let _ = std::os::unix::fs::symlink("../outside.mp4", root.join("out.mp4"));
            }
            let root = std::fs::canonicalize(&root).ok()?;
            let files = ["a.mp4", "b-1_x.mp4", "é.mp4"]
                .iter()
                .map(|n| root.join(n))
                .collect();
            Some((root, files))
        })
        .as_ref()
}

fn check_resolve(root: &Path, files: &[PathBuf], name: &str) {
    if let Some(path) = records::resolve(root, name) {
        assert!(
            files.contains(&path),
            "{name:?} resolved to {path:?}, not a recording of the folder"
        );
    }
}

/// `record_path`: a recording name from `GET /records/{file}`, as given and percent-decoded
/// (the WHEP stream-name decoder), resolved against a real folder: a name may only ever
/// resolve to a recording directly inside it.
pub fn record_path(data: &[u8]) {
    let name = String::from_utf8_lossy(data);
    let Some((root, files)) = recordings_folder() else {
        return;
    };
    check_resolve(root, files, &name);
    if let Some(decoded) = percent_decode(&name) {
        check_resolve(root, files, &decoded);
    }
}

/// `record_sidecar`: a recording's sidecar file (`<file>.json`), and its entry in the
/// recordings listing.
pub fn record_sidecar(data: &[u8]) {
    let Ok(sidecar) = serde_json::from_slice::<Sidecar>(data) else {
        return;
    };
    let listed = Listed {
        name: "a.mp4".to_string(),
        size: data.len() as u64,
        sidecar: Some(sidecar),
    };
    let _ = recording_json(&listed);
}

/// `webrtc_offer`: a browser's SDP offer read by webrtc-rs, as a viewer's peer connection
/// reads it (`RTCSessionDescription::offer`), and by our own offer summary.
pub fn webrtc_offer(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = pullcast::webrtc_viewer::parse_offer(&text);
    let _ = RTCSessionDescription::offer(text);
}

/// `auth_hook`: the authorization hook's wire format. Input: a selector byte (the action,
/// the protocol, which fields are absent), 16 address bytes (IPv6; IPv4-mapped ones are
/// IPv4), then the stream, uri, user, token and hook URL, NUL-separated; the bytes after the
/// last NUL are also read as the hook's answer. The JSON question must parse back to exactly
/// what was asked, and the request must be one header block and that body.
pub fn auth_hook(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let selector = input.u8();
    let mut octets = [0u8; 16];
    let got = input.bytes(16);
    octets[..got.len()].copy_from_slice(got);
    let address = IpAddr::V6(Ipv6Addr::from(octets));
    let rest = input.rest();
    let _ = parse_status(rest);
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\0').map(str::to_string);
    let mut field = |bit: u8| {
        let value = parts.next().unwrap_or_default();
        (selector & bit == 0).then_some(value)
    };
    let question = HookQuestion {
        action: Permission::ALL[usize::from(selector) % Permission::ALL.len()],
        stream: field(8),
        uri: field(16),
        user: field(32),
        address,
        protocol: ["rest", "whep", "websocket", "download"][usize::from(selector >> 6)],
        token: field(64),
    };
    let url_text = parts.next().unwrap_or_default();
    let json = question.to_json();
    let parsed: Value = match serde_json::from_str(&json) {
        Ok(v) => v,
        Err(e) => panic!("the hook question is not JSON ({e}): {json}"),
    };
    let text_of = |name: &str| parsed.get(name).and_then(Value::as_str).map(str::to_string);
    assert_eq!(text_of("action").as_deref(), Some(question.action.name()));
    assert_eq!(text_of("stream"), question.stream);
    assert_eq!(text_of("uri"), question.uri);
    assert_eq!(text_of("user"), question.user);
    assert_eq!(text_of("token"), question.token);
    assert_eq!(text_of("protocol").as_deref(), Some(question.protocol));
    let Ok(url) = HookUrl::parse(&url_text) else {
        return;
    };
    let request = question.request(&url);
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    assert_eq!(
        head_end.and_then(|end| request.get(end..)),
        Some(json.as_bytes()),
        "the hook request is not one header block and the question"
    );
}
