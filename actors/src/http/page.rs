//! The player page and its scripts, embedded in the binary and served at `/` on every
//! listener (a request to `/` that asks for a WebSocket upgrade goes to the signalling
//! endpoint instead). Static bytes only.

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::ws;

const INDEX: &str = include_str!("../../static/index.html");
const APP_JS: &str = include_str!("../../static/app.js");
const CLIENT_JS: &str = include_str!("../../static/pullcast.js");

/// Mounts `/`, `/ws`, `/app.js` and `/pullcast.js`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().guard(WebSocketUpgrade).to(ws::connect))
            .route(web::get().to(|| async { page(INDEX, "text/html; charset=utf-8") })),
    )
    .service(web::resource("/ws").route(web::get().to(ws::connect)))
    .service(
        web::resource("/app.js")
            .route(web::get().to(|| async { page(APP_JS, "text/javascript; charset=utf-8") })),
    )
    .service(
        web::resource("/pullcast.js")
            .route(web::get().to(|| async { page(CLIENT_JS, "text/javascript; charset=utf-8") })),
    );
}

fn page(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
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
