//! Bad input to the REST API: every malformed request gets its 4xx with a JSON `error`
//! string, creates nothing, and the server keeps answering.
#![allow(clippy::unwrap_used)]

use pullcast_integration_tests::http::raw_request;
use pullcast_integration_tests::Pullcast;
use serde_json::Value;

fn assert_json_error(pc: &Pullcast, what: &str, status: u16, body: &Value, want: u16) {
    assert_eq!(
        status,
        want,
        "{what}: got {status} {body}\n{}",
        pc.log_tail()
    );
    assert!(
        body["error"].as_str().is_some_and(|e| !e.trim().is_empty()),
        "{what}: want a JSON body {{\"error\": \"...\"}}, got {body}"
    );
}

fn assert_still_empty(pc: &Pullcast, after: &str) {
    let (status, body) = pc.find_all();
    assert_eq!(
        status,
        404,
        "after {after}: find_all should still answer 404 (nothing pulled), got {status} {body}\n{}",
        pc.log_tail()
    );
}

#[test]
fn bad_requests_get_4xx_with_json_errors_and_the_server_survives() {
    let mut pc = Pullcast::start(&[]);
    let pull = "/pull/rtmp/pull";

    let bad_pulls: &[(&str, &[u8])] = &[
        ("malformed JSON", br#"{"uri":"#),
        ("uri of the wrong type", br#"{"uri": 5}"#),
        (
            "hasAudio of the wrong type",
            br#"{"uri":"rtmp://h/a/s","hasAudio":"maybe"}"#,
        ),
        (
            "hasVideo of the wrong type",
            br#"{"uri":"rtmp://h/a/s","hasVideo":[]}"#,
        ),
        (
            "record neither bool nor \"true\"/\"false\"",
            br#"{"uri":"rtmp://h/a/s","record":"perhaps"}"#,
        ),
        (
            "localStreamName of the wrong type",
            br#"{"uri":"rtmp://h/a/s","localStreamName":5}"#,
        ),
        ("missing uri", b"{}"),
        ("empty body", b""),
        ("empty uri", br#"{"uri":""}"#),
        ("http uri", br#"{"uri":"http://x/a/b"}"#),
        ("uri without host", br#"{"uri":"rtmp://"}"#),
        ("uri without app", br#"{"uri":"rtmp://host"}"#),
        ("uri without stream", br#"{"uri":"rtmp://host/app"}"#),
        (
            "uri with port out of range",
            br#"{"uri":"rtmp://host:99999/a/s"}"#,
        ),
        (
            "uri with a space in the host",
            br#"{"uri":"rtmp://ho st/a/s"}"#,
        ),
        ("JSON array body", br#"[{"uri":"rtmp://h/a/s"}]"#),
        ("JSON string body", br#""rtmp://h/a/s""#),
        (
            "binary garbage",
            &[0xff, 0xfe, 0x00, 0x01, 0x80, 0x7b, 0x22, 0xc3, 0x28, 0x00],
        ),
    ];
    for (what, body) in bad_pulls {
        let (status, reply) = pc.post_raw(pull, body);
        assert_json_error(&pc, &format!("pull with {what}"), status, &reply, 400);
        assert_still_empty(&pc, what);
    }

    let (status, reply) = pc.post_raw("/pull/rtmp/terminate", br#"{"uri":"#);
    assert_json_error(&pc, "terminate with malformed JSON", status, &reply, 400);

    // Larger than max_request_body (64 KiB by default), yet well-formed JSON: refused by size.
    let big = format!(
        r#"{{"uri":"rtmp://h/a/s","localStreamName":"{}"}}"#,
        "x".repeat(200 * 1024)
    );
    let (status, text) = raw_request(
        pc.rest_http_port(),
        "POST",
        "/rest-api/pull/rtmp/pull",
        big.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("oversized body: no HTTP answer: {e}\n{}", pc.log_tail()));
    let reply = pullcast_integration_tests::http::parse_body(&text);
    assert_json_error(&pc, "oversized body", status, &reply, 413);
    assert_still_empty(&pc, "oversized body");

    let (status, reply) = pc.post("/pull/rtmp/nope", "{}");
    assert_json_error(&pc, "unknown method", status, &reply, 404);
    let (status, text) = pc.request_url("POST", &format!("{}/nope", pc.http_root()), Some(b"{}"));
    let reply = pullcast_integration_tests::http::parse_body(&text);
    assert_json_error(&pc, "path outside /rest-api", status, &reply, 404);

    for (method, path) in [
        ("GET", "/pull/rtmp/find_all"),
        ("PUT", "/pull/rtmp/pull"),
        ("DELETE", "/pull/rtmp/terminate"),
    ] {
        let body: Option<&[u8]> = if method == "GET" { None } else { Some(b"{}") };
        let (status, text) = pc.request(method, path, body);
        let reply = pullcast_integration_tests::http::parse_body(&text);
        assert_json_error(&pc, &format!("{method} {path}"), status, &reply, 405);
    }

    assert_still_empty(&pc, "all bad requests");
    assert!(pc.is_alive(), "the server died\n{}", pc.log_tail());
}
