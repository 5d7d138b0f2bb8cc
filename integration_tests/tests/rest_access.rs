//! Access control of the REST API over real HTTP: the old `rest.basic_auth_*` keys (a user
//! with every permission) for clients outside the trusted networks, CORS preflights and
//! headers for the allowed origins only. (The whole access model: `access.rs`.)
#![allow(clippy::unwrap_used)]

use pullcast_integration_tests::http::agent;
use pullcast_integration_tests::Pullcast;

/// Sends a request with extra headers; returns the status and the named response headers.
fn call(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    want: &[&str],
) -> (u16, Vec<Option<String>>) {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let values = want
        .iter()
        .map(|h| resp.header(h).map(str::to_string))
        .collect();
    (resp.status(), values)
}

#[test]
fn basic_auth_and_cors_when_configured() {
    // trusted_networks switched off: this machine is a remote client.
    let pc = Pullcast::start(&[
        ("PULLCAST_AUTH__TRUSTED_NETWORKS", ""),
        ("PULLCAST_REST__BASIC_AUTH_USER", "admin"),
        ("PULLCAST_REST__BASIC_AUTH_PASSWORD", "s3cret"),
        ("PULLCAST_REST__CORS_ALLOWED_ORIGINS", "https://ops.example"),
    ]);
    let find_all = format!("{}/pull/rtmp/find_all", pc.http_base());
    let good = ("Authorization", "Basic YWRtaW46czNjcmV0"); // admin:s3cret
    let bad = ("Authorization", "Basic YWRtaW46d3Jvbmc="); // admin:wrong

    let (status, h) = call(&find_all, "POST", &[], &["WWW-Authenticate"]);
    assert_eq!(status, 401, "{}", pc.log_tail());
    assert!(h[0].as_deref().unwrap_or("").starts_with("Basic"), "{h:?}");
    assert_eq!(call(&find_all, "POST", &[bad], &[]).0, 401);
    // Authenticated: the ordinary answer (no captures → 404).
    assert_eq!(call(&find_all, "POST", &[good], &[]).0, 404);

    // Preflight from the allowed origin, without credentials, as browsers send it.
    let (status, h) = call(
        &find_all,
        "OPTIONS",
        &[
            ("Origin", "https://ops.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        &[
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Methods",
        ],
    );
    assert_eq!(status, 204);
    assert_eq!(h[0].as_deref(), Some("https://ops.example"));
    assert!(h[1].as_deref().unwrap_or("").contains("POST"), "{h:?}");
    // From another origin: refused, no CORS header.
    let (status, h) = call(
        &find_all,
        "OPTIONS",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        &["Access-Control-Allow-Origin"],
    );
    assert_eq!(status, 403);
    assert_eq!(h[0], None);
    // The real call from the allowed origin carries the header.
    let (status, h) = call(
        &find_all,
        "POST",
        &[good, ("Origin", "https://ops.example")],
        &["Access-Control-Allow-Origin"],
    );
    assert_eq!(status, 404);
    assert_eq!(h[0].as_deref(), Some("https://ops.example"));
}

#[test]
fn open_by_default_without_cors_headers() {
    let pc = Pullcast::start(&[]);
    let find_all = format!("{}/pull/rtmp/find_all", pc.http_base());
    let (status, h) = call(
        &find_all,
        "POST",
        &[("Origin", "https://ops.example")],
        &["Access-Control-Allow-Origin"],
    );
    assert_eq!(status, 404, "{}", pc.log_tail());
    assert_eq!(h[0], None);
}
