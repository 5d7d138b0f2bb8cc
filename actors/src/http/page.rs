//! The player page and its scripts, embedded in the binary and served at `/` on every
//! listener (a request to `/` that asks for a WebSocket upgrade goes to the signalling
//! endpoint instead). Static bytes only.
//!
//! The page plays a stream over WebRTC (`/pullcast.js`, WebSocket signalling) or over LL-HLS
//! from this origin with hls.js, vendored as published (`static/vendor/hls.light.min.js`,
//! hls.js 1.7.4's light build, Apache-2.0: `static/vendor/hls.js.LICENSE`) and served at
//! `/vendor/hls.light.min.js`. hls.js feeds the video element through Media Source
//! Extensions (a `blob:` media URL: `media-src 'self' blob:`); the page runs it without its
//! worker (`enableWorker: false`), so no `blob:` worker is needed and `worker-src` stays at
//! its fallback, `script-src 'self'`.
//!
//! The page needs no permission: it is the same for everybody, and what it does — the
//! signalling's `play`, the REST calls of its console — is checked where it arrives. Its
//! answers carry a Content-Security-Policy (scripts and connections to this origin only,
//! no framing), `X-Frame-Options: DENY`; every answer of the server carries
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` (`http::serve`).

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::ws;

const INDEX: &str = include_str!("../../static/index.html");
const APP_JS: &str = include_str!("../../static/app.js");
const CLIENT_JS: &str = include_str!("../../static/pullcast.js");
const HLS_JS: &str = include_str!("../../static/vendor/hls.light.min.js");

/// The page and its own scripts change with the server: revalidated every time.
const NO_CACHE: &str = "no-cache";
/// The vendored player changes only with a new server version; its URL has no version in
/// it, so a day rather than forever.
const VENDOR_CACHE: &str = "public, max-age=86400";

/// Mounts `/`, `/ws`, `/app.js`, `/pullcast.js` and `/vendor/hls.light.min.js`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().guard(WebSocketUpgrade).to(ws::connect))
            .route(web::get().to(|req: HttpRequest| async move {
                page(&req, INDEX, "text/html; charset=utf-8", NO_CACHE)
            })),
    )
    .service(web::resource("/ws").route(web::get().to(ws::connect)))
    .service(
        web::resource("/app.js").route(web::get().to(|req: HttpRequest| async move {
            page(&req, APP_JS, "text/javascript; charset=utf-8", NO_CACHE)
        })),
    )
    .service(
        web::resource("/pullcast.js").route(web::get().to(|req: HttpRequest| async move {
            page(&req, CLIENT_JS, "text/javascript; charset=utf-8", NO_CACHE)
        })),
    )
    .service(
        web::resource("/vendor/hls.light.min.js").route(web::get().to(
            |req: HttpRequest| async move {
                page(&req, HLS_JS, "text/javascript; charset=utf-8", VENDOR_CACHE)
            },
        )),
    );
}

fn page(
    req: &HttpRequest,
    body: &'static str,
    content_type: &'static str,
    cache_control: &'static str,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(req),
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body)
}

/// The page's policy: its own scripts and styles (the page has inline styles), connections
/// to its own origin — `'self'`, and the `ws:`/`wss:` spelling of this host for browsers
/// that do not count a WebSocket to the same host as `'self'` — media from this origin or
/// a `blob:` URL (hls.js's MediaSource; a WebRTC stream is a `srcObject`, not a URL),
/// workers only from this origin (the `script-src` fallback: hls.js runs without its blob
/// worker), and no framing, forms, base URL or plugins.
fn content_security_policy(req: &HttpRequest) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    let sockets = host.map_or(String::new(), |h| format!(" ws://{h} wss://{h}"));
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; media-src 'self' blob:; connect-src 'self'{sockets}; \
         base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors 'none'"
    )
}

/// Matches requests asking to upgrade to a WebSocket.
struct WebSocketUpgrade;

impl Guard for WebSocketUpgrade {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.head()
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{self, TestRequest};
    use actix_web::App;

    #[actix_web::test]
    async fn the_vendored_player_is_served_as_a_script_under_the_page_policy() {
        let app = test::init_service(App::new().configure(configure)).await;
        let req = TestRequest::get()
            .uri("/vendor/hls.light.min.js")
            .insert_header((header::HOST, "media.example"))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), 200);
        let headers = resp.headers();
        let value = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(
            value(header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(value(header::CACHE_CONTROL), VENDOR_CACHE);
        assert_eq!(value(header::X_FRAME_OPTIONS), "DENY");
        let csp = value(header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("script-src 'self';"), "{csp}");
        let body = test::read_body(resp).await;
        assert_eq!(body.len(), HLS_JS.len());
        assert!(HLS_JS.contains("lowLatencyMode"), "not hls.js");
    }

    #[test]
    fn the_policy_lets_media_source_play_and_nothing_more() {
        let req = TestRequest::default()
            .insert_header((header::HOST, "media.example"))
            .to_http_request();
        let csp = content_security_policy(&req);
        assert!(csp.contains("media-src 'self' blob:;"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        // No worker-src: workers fall back to script-src 'self' (hls.js runs without one).
        assert!(!csp.contains("worker-src"), "{csp}");
        assert!(!csp.contains("child-src"), "{csp}");
        assert!(!csp.contains("unsafe-eval"), "{csp}");
    }

    #[test]
    fn the_policy_names_this_host_only_when_it_is_a_plain_host() {
        let req = TestRequest::default()
            .insert_header((header::HOST, "media.example:8080"))
            .to_http_request();
        let csp = content_security_policy(&req);
        assert!(
            csp.contains("connect-src 'self' ws://media.example:8080 wss://media.example:8080;"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let evil = TestRequest::default()
            .insert_header((header::HOST, "x; script-src *"))
            .to_http_request();
        let csp = content_security_policy(&evil);
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(!csp.contains("script-src *"), "{csp}");
    }
}
