//! The access model with real peers: the server on 127.0.0.1 with `trusted_networks = []`
//! (so this machine is "remote"), users with different permissions and stream patterns,
//! signed tokens, an authorization hook of our own, real captures from nginx-rtmp, and
//! REST, WHEP, the WebSocket signalling (header on the upgrade, `token` in `play`) and
//! recording downloads asked for each: allowed, 401, 403, per stream pattern, the hook
//! allowing, refusing and timing out, the failed-login throttle (429), the 415, the Origin
//! check, the console's headers. One test keeps the defaults and proves localhost trusted;
//! one plays in Chromium with a token; one sends non-ASCII and very long names everywhere.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use pullcast_integration_tests::auth_hook::HookServer;
use pullcast_integration_tests::browser::{exclusive, run_driver};
use pullcast_integration_tests::http::agent;
use pullcast_integration_tests::wait::poll_until;
use pullcast_integration_tests::ws_client::WsClient;
use pullcast_integration_tests::{free_port, NginxRtmp, Publisher, Pullcast, SilentTcpListener};
use serde_json::{json, Value};

const PROCESSED: Duration = Duration::from_secs(15);
const WS_ANSWER: Duration = Duration::from_secs(15);

/// A recvonly H.264 + Opus offer as a browser makes it (no candidates: the answer is the
/// proof; ICE never connects and the viewer ends after `webrtc.connect_timeout_ms`).
const OFFER: &str = "v=0\r\n\
o=- 4215775240449105457 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:pcAT\r\n\
a=ice-pwd:accesstestaccesstest1234\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:pcAT\r\n\
a=ice-pwd:accesstestaccesstest1234\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n";

const SECRET: &str = "access-test-secret-0123456789abcdef";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// An answer: status, headers asked for, body (JSON when it is JSON).
struct Answer {
    status: u16,
    headers: Vec<Option<String>>,
    all_www_authenticate: Vec<String>,
    body: Value,
    text: String,
}

/// `method url` with `headers` and an optional raw body; the headers named in `want`.
fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    want: &[&str],
) -> Answer {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let headers = want
        .iter()
        .map(|h| resp.header(h).map(str::to_string))
        .collect();
    let all_www_authenticate = resp
        .all("WWW-Authenticate")
        .into_iter()
        .map(str::to_string)
        .collect();
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
    Answer {
        status,
        headers,
        all_www_authenticate,
        body,
        text,
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Percent-encodes a stream name into one path segment.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `POST /rest-api{path}` with a JSON body and `authorization` (if any).
fn rest(pc: &Pullcast, path: &str, authorization: Option<&str>, body: &Value) -> Answer {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    call(
        "POST",
        &format!("{}{path}", pc.http_base()),
        &headers,
        Some(body.to_string().as_bytes()),
        &["WWW-Authenticate", "Retry-After", "X-Content-Type-Options"],
    )
}

/// `POST /whep/{name}` with the offer and `authorization` (if any).
fn whep(pc: &Pullcast, name: &str, authorization: Option<&str>) -> Answer {
    let mut headers = vec![("Content-Type", "application/sdp")];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    call(
        "POST",
        &format!("{}/whep/{}", pc.http_root(), encode(name)),
        &headers,
        Some(OFFER.as_bytes()),
        &["Location", "WWW-Authenticate"],
    )
}

/// Asserts an answer's status and that it is a JSON `{"error": …}` (for errors).
#[track_caller]
fn expect(pc: &Pullcast, what: &str, a: &Answer, status: u16) {
    assert_eq!(
        a.status,
        status,
        "{what}: {} {}\n{}",
        a.status,
        a.text,
        pc.log_tail()
    );
    if status >= 400 {
        assert!(
            a.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: want {{\"error\": …}}, got {}",
            a.text
        );
    }
}

/// A 201 with an SDP answer: the viewer was allowed.
#[track_caller]
fn expect_answer(pc: &Pullcast, what: &str, a: &Answer) {
    assert_eq!(
        a.status,
        201,
        "{what}: {} {}\n{}",
        a.status,
        a.text,
        pc.log_tail()
    );
    assert!(
        a.text.starts_with("v=0"),
        "{what}: not an SDP answer: {}",
        a.text
    );
    assert!(
        a.headers[0]
            .as_deref()
            .is_some_and(|l| l.starts_with("/whep/")),
        "{what}: no Location"
    );
}

/// A 401 that says how to authenticate (Basic and Bearer).
#[track_caller]
fn expect_401(pc: &Pullcast, what: &str, a: &Answer) {
    expect(pc, what, a, 401);
    assert!(
        a.all_www_authenticate
            .iter()
            .any(|h| h.starts_with("Basic"))
            && a.all_www_authenticate
                .iter()
                .any(|h| h.starts_with("Bearer")),
        "{what}: WWW-Authenticate {:?}",
        a.all_www_authenticate
    );
}

/// Opens the signalling socket (asserting the upgrade) and waits for ESTABLISHED.
fn ws_open(pc: &Pullcast, headers: &[(&str, &str)]) -> WsClient {
    let (port, _) = pc.ws_ports();
    let mut ws = WsClient::connect(port, "/", headers)
        .unwrap_or_else(|r| panic!("upgrade refused: {r:?}\n{}", pc.log_tail()));
    ws.wait_for(WS_ANSWER, "session ESTABLISHED", |m| {
        m["type"] == "session" && m["status"] == "ESTABLISHED"
    });
    ws
}

/// Sends `play` (with `token` if any) and returns the first `answer` or `FAILED` status of
/// that id.
fn ws_play(ws: &mut WsClient, id: &str, name: &str, token: Option<&str>) -> Value {
    let mut message = json!({ "type": "play", "id": id, "name": name, "sdp": OFFER });
    if let Some(t) = token {
        message["token"] = json!(t);
    }
    ws.send_json(&message);
    ws.wait_for(WS_ANSWER, &format!("answer or FAILED for {id}"), |m| {
        m["id"] == id && (m["type"] == "answer" || m["status"] == "FAILED")
    })
}

#[track_caller]
fn expect_ws_answer(pc: &Pullcast, what: &str, m: &Value) {
    assert!(
        m["type"] == "answer" && m["sdp"].as_str().is_some_and(|s| s.starts_with("v=0")),
        "{what}: want an SDP answer, got {m}\n{}",
        pc.log_tail()
    );
}

#[track_caller]
fn expect_ws_failed(what: &str, m: &Value, code: u64) -> String {
    assert!(
        m["status"] == "FAILED" && m["code"] == code,
        "{what}: want FAILED with code {code}, got {m}"
    );
    m["reason"].as_str().unwrap_or("").to_string()
}

/// Mints a token as `authorization` (an api caller).
fn mint(pc: &Pullcast, authorization: &str, body: &Value) -> String {
    let a = rest(pc, "/auth/token", Some(authorization), body);
    expect(pc, "issue a token", &a, 200);
    a.body["token"].as_str().unwrap().to_string()
}

/// `find_all` as `authorization` answers 200 or 404 (the control plane is alive).
#[track_caller]
fn control_plane_answers(pc: &Pullcast, authorization: Option<&str>, after: &str) {
    let a = rest(pc, "/pull/rtmp/find_all", authorization, &json!({}));
    assert!(
        a.status == 200 || a.status == 404,
        "after {after}: find_all answered {} {}\n{}",
        a.status,
        a.text,
        pc.log_tail()
    );
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|c| c["localStreamName"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The defaults: localhost is trusted
// ---------------------------------------------------------------------------------------

#[test]
fn localhost_is_trusted_by_default_and_the_web_rules_hold() {
    let pc = Pullcast::start(&[]);
    let target = SilentTcpListener::start();
    let uri = format!("rtmp://127.0.0.1:{}/live/local", target.port());

    // Everything, without credentials (the out-of-the-box experience).
    let a = rest(&pc, "/pull/rtmp/find_all", None, &json!({}));
    expect(&pc, "find_all from localhost", &a, 404);
    assert_eq!(
        a.headers[2].as_deref(),
        Some("nosniff"),
        "REST answers carry nosniff"
    );
    let a = rest(&pc, "/pull/rtmp/pull", None, &json!({ "uri": uri }));
    expect(&pc, "pull of a loopback target from localhost", &a, 200);
    let a = whep(&pc, "nothing-here", None);
    expect(&pc, "WHEP of a missing name from localhost", &a, 404);
    let a = rest(&pc, "/auth/token", None, &json!({ "stream": "x" }));
    expect(&pc, "tokens while token_secret is empty", &a, 404);
    assert!(a.text.contains("token_secret"), "{}", a.text);

    // REST bodies must be JSON: a form or text/plain cannot pull or terminate (CSRF).
    let url = format!("{}/pull/rtmp/pull", pc.http_base());
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let a = call(
            "POST",
            &url,
            &[("Content-Type", content_type)],
            Some(json!({ "uri": uri }).to_string().as_bytes()),
            &[],
        );
        expect(&pc, &format!("pull as {content_type}"), &a, 415);
    }
    let a = call("POST", &url, &[], Some(b"{\"uri\":\"rtmp://h/a/b\"}"), &[]);
    expect(&pc, "pull without a Content-Type", &a, 415);
    let a = call(
        "POST",
        &url,
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(json!({ "uri": format!("{uri}2") }).to_string().as_bytes()),
        &[],
    );
    expect(&pc, "pull as application/json; charset=utf-8", &a, 200);
    // A bare find_all (no body, no type: the commercial product's scripts) still works.
    let find_all = format!("{}/pull/rtmp/find_all", pc.http_base());
    let a = call("POST", &find_all, &[], None, &[]);
    expect(&pc, "bare find_all", &a, 200);
    let a = call(
        "POST",
        &find_all,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b""),
        &[],
    );
    expect(&pc, "find_all with an empty form body", &a, 200);

    // The console: its page and scripts carry the security headers.
    for path in ["/", "/app.js", "/pullcast.js"] {
        let a = call(
            "GET",
            &format!("{}{path}", pc.http_root()),
            &[],
            None,
            &[
                "Content-Security-Policy",
                "X-Content-Type-Options",
                "Referrer-Policy",
                "X-Frame-Options",
            ],
        );
        assert_eq!(a.status, 200, "GET {path}");
        let csp = a.headers[0].clone().unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "connect-src 'self'",
        ] {
            assert!(
                csp.contains(directive),
                "GET {path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert_eq!(a.headers[1].as_deref(), Some("nosniff"), "GET {path}");
        assert_eq!(a.headers[2].as_deref(), Some("no-referrer"), "GET {path}");
        assert_eq!(a.headers[3].as_deref(), Some("DENY"), "GET {path}");
    }

    // The WebSocket: a page on another origin may not open it, even from localhost; the
    // same origin and a client without Origin (not a browser) may.
    let (ws_port, _) = pc.ws_ports();
    let refused = WsClient::connect(ws_port, "/", &[("Origin", "http://evil.example")])
        .err()
        .expect("a foreign origin must not get a WebSocket");
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("allowed_origins"), "{refused:?}");
    let same = format!("http://127.0.0.1:{ws_port}");
    let mut ws = ws_open(&pc, &[("Origin", &same)]);
    let m = ws_play(&mut ws, "s1", "nothing-here", None);
    let reason = expect_ws_failed("play of a missing name", &m, 404);
    assert!(reason.contains("Stream not found"), "{reason}");
    ws_open(&pc, &[]);
    control_plane_answers(&pc, None, "the web checks");
}

// ---------------------------------------------------------------------------------------
// REST: credentials, permissions, patterns, tokens, redaction, the throttle
// ---------------------------------------------------------------------------------------

fn rest_config(max_failed_logins: u32) -> String {
    format!(
        r#"
[auth]
trusted_networks = []
token_secret = "{SECRET}"
max_failed_logins = {max_failed_logins}
failed_login_window_ms = 60000

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api", "pull", "pull_private", "play", "records"]

[[auth.users]]
name = "viewer"
password = "viewer-pw"
permissions = ["play", "records"]
streams = ["cam*"]

[[auth.users]]
name = "camops"
password = "camops-pw"
permissions = ["api", "pull", "pull_private", "play"]
streams = ["cam*"]

[[auth.users]]
name = "puller"
password = "puller-pw"
permissions = ["pull"]

[[auth.users]]
name = "privatepuller"
password = "privatepuller-pw"
permissions = ["pull", "pull_private"]
"#
    )
}

#[test]
fn rest_answers_by_credentials_permissions_and_stream_patterns() {
    let mut pc = Pullcast::start_with_config(&rest_config(6), &[]);
    let target = SilentTcpListener::start();
    let at = |path: &str| format!("rtmp://127.0.0.1:{}/{path}", target.port());
    let ops = basic("ops", "ops-pw");
    let viewer = basic("viewer", "viewer-pw");
    let camops = basic("camops", "camops-pw");
    let puller = basic("puller", "puller-pw");

    // Who may list: api callers only; no credentials is 401, the wrong ones too.
    let a = rest(&pc, "/pull/rtmp/find_all", None, &json!({}));
    expect_401(&pc, "find_all without credentials", &a);
    assert!(
        a.body["error"].as_str().unwrap().contains("`api`"),
        "{}",
        a.text
    );
    expect(
        &pc,
        "find_all as ops",
        &rest(&pc, "/pull/rtmp/find_all", Some(&ops), &json!({})),
        404,
    );
    expect(
        &pc,
        "find_all as viewer",
        &rest(&pc, "/pull/rtmp/find_all", Some(&viewer), &json!({})),
        403,
    );
    expect_401(
        &pc,
        "find_all with a wrong password",
        &rest(
            &pc,
            "/pull/rtmp/find_all",
            Some(&basic("ops", "nope")),
            &json!({}),
        ),
    );
    expect_401(
        &pc,
        "find_all with an unknown bearer token",
        &rest(
            &pc,
            "/pull/rtmp/find_all",
            Some(&bearer("made-up")),
            &json!({}),
        ),
    );
    expect_401(
        &pc,
        "find_all with a malformed Authorization",
        &rest(&pc, "/pull/rtmp/find_all", Some("Basic %%%"), &json!({})),
    );
    // A success clears the failures counted so far (3).
    expect(
        &pc,
        "find_all as ops",
        &rest(&pc, "/pull/rtmp/find_all", Some(&ops), &json!({})),
        404,
    );

    // Who may pull, and which streams: any name of the stream may match a pattern.
    let pull = |who: Option<&str>, uri: &str, name: &str| {
        rest(
            &pc,
            "/pull/rtmp/pull",
            who,
            &json!({ "uri": uri, "localStreamName": name }),
        )
    };
    expect_401(
        &pc,
        "pull without credentials",
        &pull(None, &at("live/a"), "cam-anon"),
    );
    expect(
        &pc,
        "pull as viewer (no pull)",
        &pull(Some(&viewer), &at("live/a"), "cam-v"),
        403,
    );
    expect(
        &pc,
        "pull as camops of cam1",
        &pull(Some(&camops), &at("live/cam1?key=camkey"), "cam1"),
        200,
    );
    let a = pull(Some(&camops), &at("live/b"), "studio");
    expect(&pc, "pull as camops of studio", &a, 403);
    assert!(
        a.body["error"].as_str().unwrap().contains("studio"),
        "{}",
        a.text
    );
    expect(
        &pc,
        "pull as ops of studio",
        &pull(Some(&ops), &at("live/studio"), "studio"),
        200,
    );
    // 415 comes after the credentials, for a caller who may pull.
    let a = call(
        "POST",
        &format!("{}/pull/rtmp/pull", pc.http_base()),
        &[("Content-Type", "text/plain"), ("Authorization", &ops)],
        Some(json!({ "uri": at("live/x") }).to_string().as_bytes()),
        &[],
    );
    expect(&pc, "pull as text/plain", &a, 415);

    // The puller has no pull_private: its loopback target is refused by the pull guard
    // before anything is registered, with the generic reason (no port-scan oracle for a
    // caller without api) and no stream key in it.
    let a = pull(Some(&puller), &at("live/p?key=s3cr3t-key"), "p0");
    expect(&pc, "pull of a loopback target as puller", &a, 403);
    assert_eq!(
        a.body["error"].as_str(),
        // pullcast::net::pull_guard::GENERIC_REFUSAL
        Some("the source could not be pulled"),
        "{}",
        a.text
    );
    // Stream keys: a caller without api sees them hidden, an api caller as they are.
    let privatepuller = basic("privatepuller", "privatepuller-pw");
    let a = pull(Some(&privatepuller), &at("live/p?key=s3cr3t-key"), "p1");
    expect(&pc, "pull as privatepuller", &a, 200);
    assert!(
        !a.text.contains("s3cr3t-key"),
        "a non-api caller saw the stream key: {}",
        a.text
    );
    assert!(
        a.body["uri"].as_str().unwrap().ends_with("live/p?key=***"),
        "{}",
        a.text
    );
    let a = rest(&pc, "/pull/rtmp/find_all", Some(&ops), &json!({}));
    expect(&pc, "find_all as ops", &a, 200);
    assert!(
        a.text.contains("s3cr3t-key"),
        "the api caller sees the uri as pulled: {}",
        a.text
    );
    let mut all = names(&a.body);
    all.sort();
    assert_eq!(all, ["cam1", "p1", "studio"]);
    // ops, camops and privatepuller may pull loopback targets: theirs are connecting (the
    // listener is silent), not refused.
    assert!(
        target_accepted(&target),
        "the api users' captures never reached the target"
    );

    // find_all shows an api user the streams its patterns match, only.
    let a = rest(&pc, "/pull/rtmp/find_all", Some(&camops), &json!({}));
    expect(&pc, "find_all as camops", &a, 200);
    assert_eq!(names(&a.body), ["cam1"]);

    // Terminate: api, and a stream the patterns match (by its local name here).
    let a = rest(
        &pc,
        "/pull/rtmp/terminate",
        Some(&camops),
        &json!({ "uri": at("live/studio") }),
    );
    expect(&pc, "terminate studio as camops", &a, 403);
    let a = rest(
        &pc,
        "/pull/rtmp/terminate",
        Some(&camops),
        &json!({ "uri": at("live/cam1?key=camkey") }),
    );
    expect(&pc, "terminate cam1 as camops", &a, 200);
    expect_401(
        &pc,
        "terminate without credentials",
        &rest(
            &pc,
            "/pull/rtmp/terminate",
            None,
            &json!({ "uri": at("live/studio") }),
        ),
    );
    expect(
        &pc,
        "terminate as puller",
        &rest(
            &pc,
            "/pull/rtmp/terminate",
            Some(&puller),
            &json!({ "uri": at("live/studio") }),
        ),
        403,
    );

    // Tokens: issued to api callers, within what they have; a bearer token is a credential.
    let a = rest(
        &pc,
        "/auth/token",
        Some(&viewer),
        &json!({ "stream": "cam1" }),
    );
    expect(&pc, "a token asked by viewer", &a, 403);
    let a = rest(
        &pc,
        "/auth/token",
        Some(&camops),
        &json!({ "stream": "studio" }),
    );
    expect(&pc, "a token for studio asked by camops", &a, 403);
    let a = rest(
        &pc,
        "/auth/token",
        Some(&camops),
        &json!({ "stream": "cam1", "permissions": ["records"] }),
    );
    expect(&pc, "a records token asked by camops", &a, 403);
    let a = rest(&pc, "/auth/token", None, &json!({ "stream": "cam1" }));
    expect_401(&pc, "a token without credentials", &a);
    let api_token = mint(
        &pc,
        &ops,
        &json!({ "stream": "*", "permissions": ["api"], "expiresInSeconds": 600 }),
    );
    assert!(api_token.starts_with("pc1."), "{api_token}");
    let a = rest(
        &pc,
        "/pull/rtmp/find_all",
        Some(&bearer(&api_token)),
        &json!({}),
    );
    expect(&pc, "find_all with an api token", &a, 200);
    let play_token = mint(&pc, &ops, &json!({ "stream": "cam1" }));
    expect(
        &pc,
        "find_all with a play token",
        &rest(
            &pc,
            "/pull/rtmp/find_all",
            Some(&bearer(&play_token)),
            &json!({}),
        ),
        403,
    );
    let mut forged = play_token.clone();
    forged.pop();
    forged.push(if play_token.ends_with('A') { 'B' } else { 'A' });
    expect_401(
        &pc,
        "find_all with a forged token",
        &rest(
            &pc,
            "/pull/rtmp/find_all",
            Some(&bearer(&forged)),
            &json!({}),
        ),
    );
    expect(
        &pc,
        "find_all as ops",
        &rest(&pc, "/pull/rtmp/find_all", Some(&ops), &json!({})),
        200,
    );

    // The recordings list is api, downloads are records.
    expect(
        &pc,
        "records list as viewer",
        &rest(&pc, "/records/find_all", Some(&viewer), &json!({})),
        403,
    );
    expect_401(
        &pc,
        "records list anonymous",
        &rest(&pc, "/records/find_all", None, &json!({})),
    );
    expect(
        &pc,
        "records list as ops",
        &rest(&pc, "/records/find_all", Some(&ops), &json!({})),
        404,
    );
    let file = format!("{}/records/stream-x.mp4", pc.http_root());
    expect_401(
        &pc,
        "download anonymous",
        &call("GET", &file, &[], None, &["WWW-Authenticate"]),
    );
    expect(
        &pc,
        "download as puller",
        &call("GET", &file, &[("Authorization", &puller)], None, &[]),
        403,
    );
    expect(
        &pc,
        "download of a missing file as viewer",
        &call("GET", &file, &[("Authorization", &viewer)], None, &[]),
        404,
    );

    // Non-ASCII and very long names over REST: clear answers, and the API goes on.
    for name in ["直播流", "Ёлка", "café"] {
        let a = pull(Some(&ops), &at(&format!("live/{name}")), name);
        expect(&pc, &format!("pull of {name}"), &a, 200);
        assert_eq!(a.body["localStreamName"], name);
        control_plane_answers(&pc, Some(&ops), name);
    }
    let long = "直".repeat(10_000);
    let a = pull(Some(&ops), &at("live/long"), &long);
    expect(&pc, "pull with a 10 000-character name", &a, 400);
    assert!(
        a.body["error"].as_str().unwrap().contains("1024"),
        "{}",
        a.text
    );
    control_plane_answers(&pc, Some(&ops), "a 10 000-character name");
    let a = rest(
        &pc,
        "/pull/rtmp/terminate",
        Some(&ops),
        &json!({ "uri": at(&format!("live/{}", "é".repeat(10_000))) }),
    );
    expect(&pc, "terminate of a 10 000-character uri", &a, 404);
    control_plane_answers(&pc, Some(&ops), "a 10 000-character uri");

    // The throttle: 6 failed logins in a row from this address, then 429 for everything
    // with credentials — the right ones too — while anonymous play still answers.
    for i in 1..=6 {
        let a = rest(
            &pc,
            "/pull/rtmp/find_all",
            Some(&basic("ops", &format!("guess-{i}"))),
            &json!({}),
        );
        expect_401(&pc, &format!("wrong password #{i}"), &a);
    }
    for who in [&ops, &basic("ops", "guess-7"), &bearer(&api_token)] {
        let a = rest(&pc, "/pull/rtmp/find_all", Some(who), &json!({}));
        expect(&pc, "after 6 failed logins", &a, 429);
        let retry: u64 = a.headers[1]
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!((1..=60).contains(&retry), "Retry-After {:?}", a.headers[1]);
    }
    let a = whep(&pc, "not-there", None);
    expect(&pc, "anonymous WHEP while throttled", &a, 404);
    assert!(pc.is_alive());
}

/// Polls ops's find_all until the capture named `name` satisfies `pred`.
fn pc_capture(pc: &Pullcast, ops: &str, name: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    poll_until(PROCESSED, Duration::from_millis(100), || {
        let a = rest(pc, "/pull/rtmp/find_all", Some(ops), &json!({}));
        let found = a
            .body
            .as_array()
            .and_then(|l| l.iter().find(|c| c["localStreamName"] == name).cloned())?;
        last = found.clone();
        pred(&found).then_some(found)
    })
    .unwrap_or_else(|| {
        panic!(
            "capture {name} never got there; last {last}\n{}",
            pc.log_tail()
        )
    })
}

fn target_accepted(target: &SilentTcpListener) -> bool {
    poll_until(PROCESSED, Duration::from_millis(50), || {
        (target.accepted() >= 1).then_some(())
    })
    .is_some()
}

// ---------------------------------------------------------------------------------------
// Play: WHEP, WebSocket, downloads, Chromium with a token
// ---------------------------------------------------------------------------------------

fn play_config() -> String {
    format!(
        r#"
[http]
allowed_origins = ["https://app.example"]

[auth]
trusted_networks = []
anonymous = []
token_secret = "{SECRET}"

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api", "pull", "pull_private", "play", "records"]

[[auth.users]]
name = "viewer"
password = "viewer-pw"
permissions = ["play", "records"]
streams = ["cam*"]

[[auth.users]]
name = "studio"
password = "studio-pw"
permissions = ["play", "records"]
streams = ["studio*"]

[[auth.users]]
name = "puller"
password = "puller-pw"
permissions = ["pull", "pull_private", "play"]
"#
    )
}

/// Pulls `uri` as `name` (recording or not) as `ops` and waits until a viewer can start.
fn pull_and_wait(pc: &Pullcast, ops: &str, uri: &str, name: &str, record: bool) {
    let a = rest(
        pc,
        "/pull/rtmp/pull",
        Some(ops),
        &json!({ "uri": uri, "localStreamName": name, "record": record }),
    );
    expect(pc, &format!("pull {name}"), &a, 200);
    pc_capture(pc, ops, name, |c| {
        c["status"] == "PROCESSED_REMOTE" && c["videoKeyframes"].as_u64().unwrap_or(0) >= 1
    });
}

#[test]
fn play_needs_a_permission_a_pattern_or_a_token_over_whep_websocket_and_downloads() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let small = || Publisher::builder().size(640, 360).fps(25).gop(25);
    let (_cam, cam_uri) = nginx.publish("cam1", small());
    let (_studio, studio_uri) = nginx.publish("studio", small());
    let mut pc = Pullcast::start_with_config(&play_config(), &[]);
    let ops = basic("ops", "ops-pw");
    let viewer = basic("viewer", "viewer-pw");
    let studio_user = basic("studio", "studio-pw");
    let puller = basic("puller", "puller-pw");
    // The capture's uri carries a stream key (nginx ignores the query).
    let cam_uri = format!("{cam_uri}?key=s3cr3t-key");
    pull_and_wait(&pc, &ops, &cam_uri, "cam1", true);
    pull_and_wait(&pc, &ops, &studio_uri, "studio", false);

    // WHEP (RFC 9725: Bearer; Basic works too).
    expect_401(&pc, "WHEP without credentials", &whep(&pc, "cam1", None));
    expect_answer(&pc, "WHEP as ops", &whep(&pc, "cam1", Some(&ops)));
    expect_answer(
        &pc,
        "WHEP of cam1 as viewer (cam*)",
        &whep(&pc, "cam1", Some(&viewer)),
    );
    let a = whep(&pc, "studio", Some(&viewer));
    expect(&pc, "WHEP of studio as viewer (cam*)", &a, 403);
    expect_answer(
        &pc,
        "WHEP of studio as studio",
        &whep(&pc, "studio", Some(&studio_user)),
    );
    expect_answer(
        &pc,
        "WHEP of cam1 by its uri as viewer",
        &whep(&pc, &cam_uri, Some(&viewer)),
    );
    expect_401(
        &pc,
        "WHEP with a wrong password",
        &whep(&pc, "cam1", Some(&basic("viewer", "x"))),
    );
    let token = mint(
        &pc,
        &ops,
        &json!({ "stream": "cam1", "expiresInSeconds": 600 }),
    );
    expect_answer(
        &pc,
        "WHEP of cam1 with its token",
        &whep(&pc, "cam1", Some(&bearer(&token))),
    );
    expect(
        &pc,
        "WHEP of studio with cam1's token",
        &whep(&pc, "studio", Some(&bearer(&token))),
        403,
    );
    expect_401(
        &pc,
        "WHEP with an unknown bearer token",
        &whep(&pc, "cam1", Some(&bearer("nope"))),
    );
    // A token that expires: refused as soon as it has.
    let short = mint(
        &pc,
        &ops,
        &json!({ "stream": "cam1", "expiresInSeconds": 1 }),
    );
    let expired = poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let a = whep(&pc, "cam1", Some(&bearer(&short)));
        (a.status == 401).then_some(a)
    })
    .expect("a 1 s token was still accepted after 10 s");
    assert!(expired.text.contains("expired"), "{}", expired.text);
    // An rtmp:// name nobody captures needs pull: a play token does not start pulls.
    let other = nginx.rtmp_url("live/other");
    let other_token = mint(
        &pc,
        &ops,
        &json!({ "stream": format!("{}*", nginx.rtmp_url("live/")) }),
    );
    let a = whep(&pc, &other, Some(&bearer(&other_token)));
    expect(
        &pc,
        "WHEP of an uncaptured rtmp:// name with a play token",
        &a,
        403,
    );
    assert!(a.text.contains("`pull`"), "{}", a.text);
    expect_answer(
        &pc,
        "WHEP of an uncaptured rtmp:// name as puller",
        &whep(&pc, &other, Some(&puller)),
    );

    // The WebSocket: credentials on the upgrade, or a token per play.
    let (ws_port, _) = pc.ws_ports();
    let mut anonymous = ws_open(&pc, &[]);
    let m = ws_play(&mut anonymous, "a1", "cam1", None);
    expect_ws_failed("WS play of cam1 without credentials", &m, 401);
    let m = ws_play(&mut anonymous, "a2", "cam1", Some(&token));
    expect_ws_answer(&pc, "WS play of cam1 with its token", &m);
    let m = ws_play(&mut anonymous, "a3", "studio", Some(&token));
    expect_ws_failed("WS play of studio with cam1's token", &m, 403);
    let m = ws_play(&mut anonymous, "a4", "cam1", Some("pc1.forged.token"));
    expect_ws_failed("WS play with a forged token", &m, 401);
    let mut as_viewer = ws_open(&pc, &[("Authorization", &viewer)]);
    expect_ws_answer(
        &pc,
        "WS play of cam1 as viewer",
        &ws_play(&mut as_viewer, "v1", "cam1", None),
    );
    expect_ws_failed(
        "WS play of studio as viewer",
        &ws_play(&mut as_viewer, "v2", "studio", None),
        403,
    );
    let refused = WsClient::connect(ws_port, "/", &[("Authorization", &basic("viewer", "x"))])
        .err()
        .expect("wrong credentials on the upgrade must be refused");
    assert_eq!(refused.status, 401, "{refused:?}");
    let refused = WsClient::connect(ws_port, "/", &[("Origin", "https://evil.example")])
        .err()
        .expect("a foreign origin must be refused");
    assert_eq!(refused.status, 403, "{refused:?}");
    ws_open(&pc, &[("Origin", "https://app.example")]);
    // Stream keys stay hidden from a caller without api, in every reason.
    let gone = format!("{}?key=hidden-key", nginx.rtmp_url("live/gone"));
    let m = ws_play(&mut anonymous, "a5", &gone, Some(&other_token));
    let reason = expect_ws_failed(
        "WS play of an uncaptured rtmp:// name with a play token",
        &m,
        403,
    );
    assert!(
        !reason.contains("hidden-key") && reason.contains("key=***"),
        "{reason}"
    );

    // Downloads: records on the recording's stream.
    let recording = poll_until(PROCESSED, Duration::from_millis(200), || {
        let a = rest(&pc, "/records/find_all", Some(&ops), &json!({}));
        a.body
            .as_array()?
            .iter()
            .find(|r| r["stream"] == "cam1" && r["size"].as_u64() > Some(0))
            .cloned()
    })
    .unwrap_or_else(|| panic!("no recording of cam1 listed\n{}", pc.log_tail()));
    let url = format!("{}{}", pc.http_root(), recording["url"].as_str().unwrap());
    expect_401(
        &pc,
        "download without credentials",
        &call("GET", &url, &[], None, &["WWW-Authenticate"]),
    );
    let a = call(
        "GET",
        &url,
        &[("Authorization", &viewer)],
        None,
        &["Content-Type"],
    );
    assert_eq!(
        a.status, 200,
        "download as viewer (records, cam*): {}",
        a.text
    );
    assert_eq!(a.headers[0].as_deref(), Some("video/mp4"));
    expect(
        &pc,
        "download as studio (records, studio*)",
        &call("GET", &url, &[("Authorization", &studio_user)], None, &[]),
        403,
    );
    expect(
        &pc,
        "download as puller (no records)",
        &call("GET", &url, &[("Authorization", &puller)], None, &[]),
        403,
    );
    let records_token = mint(
        &pc,
        &ops,
        &json!({ "stream": "cam1", "permissions": ["records"] }),
    );
    let a = call(
        "GET",
        &url,
        &[("Authorization", &bearer(&records_token))],
        None,
        &[],
    );
    assert_eq!(a.status, 200, "download with a records token: {}", a.text);

    // A real browser: the player page with ?token= plays cam1.
    let result = run_driver(
        "player_driver.js",
        &json!({
            "pageUrl": format!("{}/?token={}", pc.http_root(), token),
            "name": "cam1",
            "runMs": 3000,
            "stop": true,
            "timeoutMs": 40_000,
        }),
        Duration::from_secs(60),
    );
    let statuses: Vec<&str> = result["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"PLAYING"),
        "{statuses:?}\n{result}\n{}",
        pc.log_tail()
    );
    let decoded = result["samples"]
        .as_array()
        .and_then(|s| s.last())
        .map_or(0, |l| l["framesDecoded"].as_u64().unwrap_or(0));
    assert!(
        decoded >= 25,
        "Chromium decoded {decoded} frames in 3 s with a token"
    );
    eprintln!("Chromium with a play token: {statuses:?}, {decoded} frames decoded");
    // The same page without the token is refused.
    let result = run_driver(
        "player_driver.js",
        &json!({
            "pageUrl": format!("{}/", pc.http_root()),
            "name": "cam1",
            "runMs": 500,
            "stop": false,
            "timeoutMs": 30_000,
        }),
        Duration::from_secs(50),
    );
    let last = result["statuses"]
        .as_array()
        .and_then(|s| s.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["status"], "FAILED", "{result}");
    assert!(
        last["reason"]
            .as_str()
            .is_some_and(|r| r.contains("authentication required")),
        "{result}"
    );
    assert!(pc.is_alive());
}

// ---------------------------------------------------------------------------------------
// The hook
// ---------------------------------------------------------------------------------------

#[test]
fn the_hook_narrows_what_the_rules_allow_and_fails_closed() {
    let nginx = NginxRtmp::start();
    // Plays: "backend-ok" tokens pass, other tokens not; streams named *deny* are refused,
    // *slow* never answered; the user "blocked" is refused. Everything else: 204.
    let hook = HookServer::start(|q| {
        let stream = q["stream"].as_str().unwrap_or("");
        match (q["action"].as_str(), q["token"].as_str()) {
            (_, Some("backend-ok")) => 200,
            (_, Some(_)) => 403,
            (Some("play"), None) if stream.contains("deny") => 403,
            (Some("play"), None) if stream.contains("slow") => 0,
            _ if q["user"] == "blocked" => 500,
            _ => 204,
        }
    });
    let config = format!(
        r#"
[auth]
trusted_networks = []
hook_url = "{}"
hook_timeout_ms = 3000
hook_max_in_flight = 2

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api", "pull", "pull_private", "play", "records"]

[[auth.users]]
name = "blocked"
password = "blocked-pw"
permissions = ["api", "play"]
"#,
        hook.url()
    );
    let pc = Pullcast::start_with_config(&config, &[]);
    let ops = basic("ops", "ops-pw");
    // Captures that exist (nginx holds them until a publisher comes: enough to answer).
    for name in ["cam1", "x-deny", "x-slow", "x-slow2"] {
        let a = rest(
            &pc,
            "/pull/rtmp/pull",
            Some(&ops),
            &json!({ "uri": nginx.rtmp_url(&format!("live/{name}")), "localStreamName": name }),
        );
        expect(&pc, &format!("pull {name} (the hook allows ops)"), &a, 200);
    }
    let q = hook.questions();
    assert_eq!(q.len(), 4, "{q:?}");
    assert_eq!(q[0]["action"], "pull");
    assert_eq!(q[0]["user"], "ops");
    assert_eq!(q[0]["protocol"], "rest");
    assert_eq!(q[0]["address"], "127.0.0.1");
    assert_eq!(q[0]["stream"], "cam1");
    assert_eq!(q[0]["uri"], nginx.rtmp_url("live/cam1"));

    // Anonymous play of a capture that exists: allowed by the rules, the hook agrees.
    expect_answer(&pc, "anonymous WHEP of cam1", &whep(&pc, "cam1", None));
    let last = hook.questions().pop().unwrap();
    assert_eq!(
        last,
        json!({ "action": "play", "stream": "cam1", "uri": nginx.rtmp_url("live/cam1"), "user": null,
                "address": "127.0.0.1", "protocol": "whep", "token": null })
    );
    let a = whep(&pc, "x-deny", None);
    expect(&pc, "anonymous WHEP the hook refuses", &a, 403);
    assert!(a.text.contains("hook"), "{}", a.text);
    // Starting a pull is not anonymous's: refused before the hook is asked.
    let before = hook.questions().len();
    let a = whep(&pc, &nginx.rtmp_url("live/new"), None);
    expect_401(&pc, "anonymous WHEP of an uncaptured rtmp:// name", &a);
    assert_eq!(
        hook.questions().len(),
        before,
        "the hook was asked about a refused pull"
    );

    // Bearer tokens pullcast did not issue go to the hook, which alone accepts them.
    expect_answer(
        &pc,
        "WHEP with a token the hook accepts",
        &whep(&pc, "cam1", Some(&bearer("backend-ok"))),
    );
    assert_eq!(hook.questions().pop().unwrap()["token"], "backend-ok");
    expect(
        &pc,
        "WHEP with a token the hook refuses",
        &whep(&pc, "cam1", Some(&bearer("backend-bad"))),
        403,
    );
    let mut ws = ws_open(&pc, &[]);
    expect_ws_answer(
        &pc,
        "WS play with a hook token",
        &ws_play(&mut ws, "h1", "cam1", Some("backend-ok")),
    );
    let last = hook.questions().pop().unwrap();
    assert_eq!(
        (last["protocol"].as_str(), last["token"].as_str()),
        (Some("websocket"), Some("backend-ok"))
    );
    expect_ws_failed(
        "WS play the hook refuses",
        &ws_play(&mut ws, "h2", "x-deny", None),
        403,
    );

    // The hook on REST: asked with the user; a 500 is a refusal.
    expect(
        &pc,
        "find_all as ops",
        &rest(&pc, "/pull/rtmp/find_all", Some(&ops), &json!({})),
        200,
    );
    let last = hook.questions().pop().unwrap();
    assert_eq!(
        (
            last["action"].as_str(),
            last["user"].as_str(),
            last["stream"].as_str()
        ),
        (Some("api"), Some("ops"), None)
    );
    let a = rest(
        &pc,
        "/pull/rtmp/find_all",
        Some(&basic("blocked", "blocked-pw")),
        &json!({}),
    );
    expect(&pc, "find_all as a user the hook refuses (500)", &a, 403);
    assert!(a.text.contains("500"), "{}", a.text);

    // Fail closed: a hook that does not answer; more questions than hook_max_in_flight.
    let started = Instant::now();
    let slow: Vec<_> = ["x-slow", "x-slow2"]
        .into_iter()
        .map(|name| {
            let root = pc.http_root();
            std::thread::spawn(move || {
                let a = call(
                    "POST",
                    &format!("{root}/whep/{name}"),
                    &[("Content-Type", "application/sdp")],
                    Some(OFFER.as_bytes()),
                    &[],
                );
                (a.status, a.text)
            })
        })
        .collect();
    let waiting = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        let n = hook
            .questions()
            .iter()
            .filter(|q| {
                q["action"] == "play" && q["stream"].as_str().is_some_and(|s| s.contains("slow"))
            })
            .count();
        (n == 2).then_some(())
    });
    assert!(
        waiting.is_some(),
        "the two slow questions never reached the hook"
    );
    let a = whep(&pc, "cam1", None);
    expect(&pc, "a third question while two wait", &a, 403);
    assert!(a.text.contains("hook_max_in_flight"), "{}", a.text);
    for handle in slow {
        let (status, text) = handle.join().unwrap();
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("did not answer within 3000 ms"), "{text}");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "refused after {waited:?}, before the timeout"
    );
    eprintln!("a silent hook: refused after {waited:?} (hook_timeout_ms 3000)");
    expect_answer(
        &pc,
        "anonymous WHEP of cam1 after the timeouts",
        &whep(&pc, "cam1", None),
    );
}

// ---------------------------------------------------------------------------------------
// Names: non-ASCII and very long, over WS, WHEP and REST
// ---------------------------------------------------------------------------------------

#[test]
fn non_ascii_and_very_long_names_get_clear_answers_and_the_server_goes_on() {
    let nginx = NginxRtmp::start();
    let (_p, uri) = nginx.publish("zh", Publisher::builder().size(640, 360).fps(25).gop(25));
    let mut pc = Pullcast::start(&[]);
    let a = rest(
        &pc,
        "/pull/rtmp/pull",
        None,
        &json!({ "uri": uri, "localStreamName": "直播流" }),
    );
    expect(&pc, "pull as 直播流", &a, 200);
    pc.wait_for_keyframe(&uri, PROCESSED);
    expect_answer(&pc, "WHEP of 直播流", &whep(&pc, "直播流", None));
    let mut ws = ws_open(&pc, &[]);
    expect_ws_answer(
        &pc,
        "WS play of 直播流",
        &ws_play(&mut ws, "zh", "直播流", None),
    );

    let long_ascii = "x".repeat(10_000);
    let long_cjk = "流".repeat(10_000);
    let long_rtmp = format!(
        "rtmp://127.0.0.1:{}/live/{}",
        free_port(),
        "é".repeat(10_000)
    );
    let missing: Vec<(&str, String)> = vec![
        ("Ёлка", "Ёлка".into()),
        ("café", "café".into()),
        ("直播", "直播".into()),
        ("10 000 × x", long_ascii.clone()),
        ("10 000 × 流", long_cjk.clone()),
        (
            "an rtmp:// name with a non-ASCII host",
            "rtmp://直播流/live/x".into(),
        ),
        (
            "rtmp:/ and a multi-byte character at byte 6",
            "rtmp:é/x".into(),
        ),
        ("a 10 000-character rtmp:// name", long_rtmp.clone()),
    ];
    for (i, (what, name)) in missing.iter().enumerate() {
        let id = format!("m{i}");
        let mut m = ws_play(&mut ws, &id, name, None);
        if m["type"] == "answer" {
            // An rtmp:// name from a trusted client starts an on-demand pull, which then
            // fails (no such host, nothing listening) and says so.
            m = ws.wait_for(
                Duration::from_secs(40),
                &format!("FAILED for {what}"),
                |m| m["id"] == id.as_str() && m["status"] == "FAILED",
            );
        } else {
            assert!(
                m["code"].as_u64().is_some_and(|c| c >= 400),
                "WS play of {what}: {m}"
            );
        }
        assert_eq!(m["status"], "FAILED", "WS play of {what}: {m}");
        let reason = m["reason"].as_str().unwrap_or("");
        assert!(!reason.is_empty(), "WS play of {what}: no reason");
        eprintln!(
            "WS play of {what}: {}",
            reason.chars().take(160).collect::<String>()
        );
        control_plane_answers(&pc, None, &format!("WS play of {what}"));
        // The session goes on.
        ws.send_json(&json!({ "type": "ping", "ts": i }));
        ws.wait_for(WS_ANSWER, "pong", |m| m["type"] == "pong" && m["ts"] == i);
    }
    for (what, name) in [
        ("Ёлка", "Ёлка".to_string()),
        ("café", "café".into()),
        ("10 000 × x", long_ascii.clone()),
    ] {
        let a = whep(&pc, &name, None);
        expect(&pc, &format!("WHEP of {what}"), &a, 404);
        control_plane_answers(&pc, None, &format!("WHEP of {what}"));
    }
    // 10 000 × 流 is 90 000 bytes percent-encoded: past what an HTTP request line may be.
    let a = call(
        "POST",
        &format!("{}/whep/{}", pc.http_root(), encode(&long_cjk)),
        &[("Content-Type", "application/sdp")],
        Some(OFFER.as_bytes()),
        &[],
    );
    assert!(
        (400..500).contains(&a.status),
        "WHEP of 10 000 × 流: {} {}",
        a.status,
        a.text
    );
    control_plane_answers(&pc, None, "WHEP of 10 000 × 流");
    let a = whep(&pc, "rtmp://直播流/live/x", None);
    expect(&pc, "WHEP of rtmp://直播流/live/x", &a, 400);
    assert!(a.text.contains("not a valid host name"), "{}", a.text);
    control_plane_answers(&pc, None, "WHEP of a non-ASCII rtmp:// host");
    for (what, body) in [
        ("terminate Ёлка", json!({ "uri": "Ёлка" })),
        ("terminate 10 000 × 流", json!({ "uri": long_cjk })),
    ] {
        let a = rest(&pc, "/pull/rtmp/terminate", None, &body);
        expect(&pc, what, &a, 404);
        control_plane_answers(&pc, None, what);
    }
    for (what, body) in [
        (
            "pull of a non-ASCII host",
            json!({ "uri": "rtmp://直播流/live/x" }),
        ),
        (
            "pull with a 10 000 × 流 name",
            json!({ "uri": uri, "localStreamName": long_cjk }),
        ),
        (
            "pull with a 10 000-character uri",
            json!({ "uri": format!("rtmp://h/live/{long_ascii}") }),
        ),
    ] {
        let a = rest(&pc, "/pull/rtmp/pull", None, &body);
        assert!(
            a.status == 200 || a.status == 400 || a.status == 409,
            "{what}: {} {}",
            a.status,
            a.text
        );
        assert!(
            a.status == 200 || a.body["error"].is_string(),
            "{what}: {}",
            a.text
        );
        eprintln!(
            "{what}: {} {}",
            a.status,
            a.text.chars().take(160).collect::<String>()
        );
        control_plane_answers(&pc, None, what);
    }
    // And the capture of 直播流 still plays.
    expect_ws_answer(
        &pc,
        "WS play of 直播流 at the end",
        &ws_play(&mut ws, "zh2", "直播流", None),
    );
    assert!(pc.is_alive());
}

/// The pull-target guard from the REST API: every spelling of a private or reserved address
/// (and a name that resolves to loopback) is refused before anything is registered — with a
/// generic reason for a caller without `api`, the precise one for an `api` caller — and
/// `pull.deny` wins even over `pull_private`. Nothing here connects anywhere: the refused
/// targets are checked, never dialled.
#[test]
fn pulls_to_private_targets_are_refused_in_every_spelling() {
    let config = r#"
[auth]
trusted_networks = []

[pull]
deny = ["127.0.0.2/32"]

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api", "pull", "pull_private"]

[[auth.users]]
name = "puller"
password = "puller-pw"
permissions = ["api", "pull"]

[[auth.users]]
name = "anon-puller"
password = "anon-pw"
permissions = ["pull"]
"#;
    let pc = Pullcast::start_with_config(config, &[]);
    let (ops, puller, anon) = (
        basic("ops", "ops-pw"),
        basic("puller", "puller-pw"),
        basic("anon-puller", "anon-pw"),
    );
    let pull = |who: &str, uri: &str, name: &str| {
        rest(
            &pc,
            "/pull/rtmp/pull",
            Some(who),
            &json!({ "uri": uri, "localStreamName": name }),
        )
    };
    let spellings = [
        "rtmp://127.0.0.1/live/a",
        "rtmp://2130706433/live/a",
        "rtmp://0x7f000001/live/a",
        "rtmp://0177.0.0.1/live/a",
        "rtmp://127.1/live/a",
        "rtmp://0x7f.1/live/a",
        "rtmp://localhost/live/a",
        "rtmp://[::1]/live/a",
        "rtmp://[::ffff:127.0.0.1]/live/a",
        "rtmp://[::ffff:7f00:1]/live/a",
        "rtmp://169.254.169.254/live/a",
        "rtmp://2852039166/live/a",
        "rtmp://10.0.0.1/live/a",
        "rtmp://172.16.5.4/live/a",
        "rtmp://192.168.1.1/live/a",
        "rtmp://100.64.0.1/live/a",
        "rtmp://[fd00::1]/live/a",
        "rtmp://[fe80::1]/live/a",
        "rtmp://0.0.0.0/live/a",
        "rtmp://224.0.0.1/live/a",
        "rtmp://255.255.255.255/live/a",
    ];
    for (i, uri) in spellings.iter().enumerate() {
        let name = format!("s{i}");
        let a = pull(&puller, uri, &name);
        expect(
            &pc,
            &format!("{uri} as an api caller without pull_private"),
            &a,
            403,
        );
        let reason = a.body["error"].as_str().unwrap_or_default();
        assert!(
            reason.contains("pull_private"),
            "{uri}: the api caller gets the precise reason, got {reason:?}"
        );
        let a = pull(&anon, uri, &name);
        expect(&pc, &format!("{uri} as a caller without api"), &a, 403);
        assert_eq!(
            a.body["error"].as_str(),
            Some("the source could not be pulled"),
            "{uri}: a caller without api gets the generic reason"
        );
    }
    // pull.deny wins over pull_private.
    let a = pull(&ops, "rtmp://127.0.0.2/live/a", "denied");
    expect(&pc, "a denied target as ops", &a, 403);
    assert!(
        a.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("pull.deny")),
        "{}",
        a.text
    );
    // Nothing was registered by the refusals.
    let all = rest(&pc, "/pull/rtmp/find_all", Some(&ops), &json!({}));
    expect(&pc, "find_all after the refusals", &all, 404);
}

/// Admission per address for callers outside the trusted networks: viewer starts (WHEP
/// offers and WebSocket plays share one bucket) are rate-limited with 429 + Retry-After
/// (WHEP) or FAILED with the retry time (WebSocket), WebSocket sessions per address and
/// plays per session are capped; the control plane answers throughout.
#[test]
fn viewer_starts_and_websocket_sessions_are_limited_per_address() {
    let config = r#"
[auth]
trusted_networks = []
anonymous = ["play"]

[limits]
viewer_starts_per_second = 1
viewer_start_burst = 3
ws_sessions_per_address = 2
plays_per_session = 1

[[auth.users]]
name = "ops"
password = "ops-pw"
permissions = ["api"]
"#;
    let pc = Pullcast::start_with_config(config, &[]);
    // Three starts at once pass the rate check (the streams do not exist: 404); the fourth
    // is refused before anything else is looked at.
    for i in 0..3 {
        let a = whep(&pc, &format!("nothing-{i}"), None);
        expect(&pc, &format!("WHEP offer {i} within the burst"), &a, 404);
    }
    let a = call(
        "POST",
        &format!("{}/whep/nothing-3", pc.http_root()),
        &[("Content-Type", "application/sdp")],
        Some(OFFER.as_bytes()),
        &["Retry-After"],
    );
    expect(&pc, "WHEP offer past the burst", &a, 429);
    assert!(
        a.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("limits.viewer_starts_per_second")),
        "{}",
        a.text
    );
    assert!(
        a.headers[0]
            .as_deref()
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)),
        "Retry-After: {:?}",
        a.headers
    );
    // The same bucket refuses a WebSocket play, with the reason.
    let (port, _) = pc.ws_ports();
    let mut first = ws_open(&pc, &[]);
    let m = ws_play(&mut first, "p1", "nothing", None);
    assert_eq!(m["status"], "FAILED", "{m}");
    assert!(
        m["reason"]
            .as_str()
            .is_some_and(|r| r.contains("limits.viewer_starts_per_second")),
        "{m}"
    );
    // Two sessions per address: the third upgrade is refused with 429.
    let _second = ws_open(&pc, &[]);
    let third = WsClient::connect(port, "/", &[]);
    assert!(
        matches!(&third, Err(refused) if refused.status == 429
            && refused.body.contains("limits.ws_sessions_per_address")),
        "{:?}",
        third.as_ref().err()
    );
    // A session closed frees its place.
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(ws) = WsClient::connect(port, "/", &[]) {
            again = Some(ws);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(again.is_some(), "a closed session's place was never freed");
    control_plane_answers(&pc, Some(&basic("ops", "ops-pw")), "the admission limits");
}

// ---------------------------------------------------------------------------------------
// Where a request comes from: trusted proxies, and Host against DNS rebinding
// ---------------------------------------------------------------------------------------

/// `find_all` with extra headers (no credentials).
fn find_all_with(pc: &Pullcast, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    call(
        "POST",
        &format!("{}/pull/rtmp/find_all", pc.http_base()),
        &all,
        Some(b"{}"),
        &["WWW-Authenticate"],
    )
}

#[test]
fn a_rebound_dns_name_gets_no_trust_and_forwarded_addresses_only_from_trusted_proxies() {
    // The defaults: localhost trusted, no proxies.
    let pc = Pullcast::start(&[]);
    let port = pc.http_root().rsplit(':').next().unwrap().to_string();
    expect(
        &pc,
        "find_all from localhost",
        &find_all_with(&pc, &[]),
        404,
    );
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let a = find_all_with(&pc, &[("Host", &host)]);
        expect(
            &pc,
            &format!("find_all naming the server as {host}"),
            &a,
            404,
        );
    }
    // A page whose DNS name was rebound to 127.0.0.1: same machine, foreign Host.
    let rebound = format!("rebound.example:{port}");
    let a = find_all_with(&pc, &[("Host", &rebound)]);
    expect_401(&pc, "find_all with a rebound Host", &a);
    assert!(
        a.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("http.host_names")),
        "the refusal says why: {}",
        a.text
    );
    // Its page may open the WebSocket (same origin in the browser's eyes) but gets what an
    // anonymous client gets: no pull of an rtmp:// name.
    let target = SilentTcpListener::start();
    let origin = format!("http://{rebound}");
    let mut ws = ws_open(&pc, &[("Host", &rebound), ("Origin", &origin)]);
    let uri = format!("rtmp://127.0.0.1:{}/live/rebound", target.port());
    let m = ws_play(&mut ws, "r1", &uri, None);
    expect_ws_failed("a pull from a rebound page", &m, 401);
    assert_eq!(
        target.accepted(),
        0,
        "the rebound page made the server connect"
    );
    // Without proxies configured, X-Forwarded-For is not believed either way.
    let a = find_all_with(&pc, &[("X-Forwarded-For", "203.0.113.9")]);
    expect(&pc, "a forwarded-for header from a non-proxy", &a, 404);
    drop(pc);

    // Behind nginx on this machine: the proxy is trusted, the clients it forwards are not.
    let config = r#"
[http]
trusted_proxies = ["127.0.0.1/32"]
host_names = ["media.example"]

[limits]
ws_sessions_per_address = 1
"#;
    let pc = Pullcast::start_with_config(config, &[]);
    let a = find_all_with(&pc, &[("X-Forwarded-For", "203.0.113.9")]);
    expect_401(&pc, "find_all forwarded for a remote client", &a);
    let a = find_all_with(&pc, &[("X-Forwarded-For", "127.0.0.1, 203.0.113.9")]);
    expect_401(&pc, "find_all with a spoofed first hop", &a);
    let a = find_all_with(&pc, &[("X-Forwarded-For", "not-an-address")]);
    expect_401(&pc, "find_all with an unreadable forwarded-for", &a);
    let a = find_all_with(&pc, &[("X-Forwarded-For", "127.0.0.1")]);
    expect(&pc, "find_all forwarded for a local client", &a, 404);
    let a = find_all_with(&pc, &[]);
    expect(&pc, "the proxy's own request", &a, 404);
    let a = find_all_with(&pc, &[("Host", "media.example")]);
    expect(&pc, "find_all naming a configured host name", &a, 404);
    // Limits count the forwarded address: one session each for two remote clients.
    let (ws_port, _) = pc.ws_ports();
    let _first = ws_open(&pc, &[("X-Forwarded-For", "203.0.113.9")]);
    let again = WsClient::connect(ws_port, "/", &[("X-Forwarded-For", "203.0.113.9")]);
    assert!(
        matches!(&again, Err(refused) if refused.status == 429),
        "a second session of one forwarded client: {:?}",
        again.as_ref().err()
    );
    let _other = ws_open(&pc, &[("X-Forwarded-For", "203.0.113.10")]);
    control_plane_answers(&pc, None, "trusted proxies");
}
