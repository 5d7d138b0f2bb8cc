//! WHEP (RFC 9725): a browser or player watches a capture over WebRTC with one HTTP call.
//!
//! On the REST ports:
//! - `POST /whep/{stream}` with an `application/sdp` offer → `201 Created`, `Location:
//!   /whep/{stream}/{viewer-id}`, body = the answer with every ICE candidate (no trickle
//!   needed). `{stream}` is a local stream name or a capture uri, percent-encoded as one path
//!   segment (`rtmp%3A%2F%2Fhost%2Flive%2Fx`); an `rtmp://` name nobody pulls yet starts an
//!   on-demand capture (the `Registry`'s `Watch`).
//! - `DELETE` on the Location → `200`, the viewer ends; unknown → `404`.
//! - `OPTIONS` → `204` with `Accept-Post: application/sdp` (and CORS headers for allowed
//!   origins); `PATCH` (trickle ICE) → `405`: answers carry all candidates.
//!
//! Access (RFC 9725 §4.5): the caller is its address and `Authorization: Bearer <token>`
//! (HTTP Basic works too); the checks are `play::find_capture`'s, the same as signalling's.
//! `DELETE` needs nothing but the Location, an unguessable capability.
//!
//! Errors are JSON `{"error": ...}` like the REST API: 400 bad offer, 401 credentials
//! needed or wrong, 403 not allowed, 404 "Stream not found", 406 nothing in the offer we can
//! send, 415 not `application/sdp`, 429 too many failed logins, 500 the viewer could not
//! start. Callers without `api` see uris with their stream keys hidden. This module only
//! signals: media is the `ViewerPeer`'s business.

use std::collections::HashMap;

use actix::prelude::*;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;
use log::{info, warn};
use uuid::Uuid;

use pullcast::access::{redact_text, redact_uri};

use super::access::{Authenticated, Gate};
use super::admission::Admission;
use super::dto::error;
use super::play::{start_playing, PlayRequest};
use crate::messages::{StopViewer, ViewerEvent};
use crate::registry::Registry;
use crate::webrtc::{ViewerPeer, WebRtcEngine};

/// The path prefix of every WHEP resource.
pub const PREFIX: &str = "/whep/";

/// What the WHEP handlers need.
#[derive(Clone)]
pub struct WhepState {
    pub registry: Addr<Registry>,
    pub engine: WebRtcEngine,
    pub sessions: Addr<WhepSessions>,
    pub max_body: usize,
}

impl WhepState {
    /// Starts the session table (on the current arbiter).
    pub fn new(registry: Addr<Registry>, engine: WebRtcEngine, max_body: usize) -> Self {
        Self {
            registry,
            engine,
            sessions: WhepSessions::default().start(),
            max_body,
        }
    }
}

/// Mounts `/whep/...`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/whep/{tail:.*}")
            .route(web::post().to(post))
            .route(web::delete().to(delete))
            .route(web::method(Method::OPTIONS).to(options))
            .default_service(web::to(method_not_allowed)),
    );
}

// ---------------------------------------------------------------------------------------
// Session table
// ---------------------------------------------------------------------------------------

struct Session {
    stream: String,
    addr: Addr<ViewerPeer>,
}

/// The live WHEP sessions by viewer id; a viewer that ends on its own is forgotten when its
/// `Stopped`/`Failed` event arrives.
#[derive(Default)]
pub struct WhepSessions {
    sessions: HashMap<Uuid, Session>,
}

impl Actor for WhepSessions {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Register {
    id: Uuid,
    stream: String,
    addr: Addr<ViewerPeer>,
}

#[derive(Message)]
#[rtype(result = "Option<Addr<ViewerPeer>>")]
struct Take {
    id: Uuid,
    stream: String,
}

impl Handler<Register> for WhepSessions {
    type Result = ();

    fn handle(&mut self, msg: Register, _ctx: &mut Self::Context) {
        if msg.addr.connected() {
            self.sessions.insert(
                msg.id,
                Session {
                    stream: msg.stream,
                    addr: msg.addr,
                },
            );
        }
    }
}

impl Handler<Take> for WhepSessions {
    type Result = Option<Addr<ViewerPeer>>;

    fn handle(&mut self, msg: Take, _ctx: &mut Self::Context) -> Self::Result {
        match self.sessions.get(&msg.id) {
            Some(s) if s.stream == msg.stream => self.sessions.remove(&msg.id).map(|s| s.addr),
            _ => None,
        }
    }
}

impl Handler<ViewerEvent> for WhepSessions {
    type Result = ();

    fn handle(&mut self, event: ViewerEvent, _ctx: &mut Self::Context) {
        match event {
            ViewerEvent::Connected { viewer } => info!("WHEP viewer {viewer}: connected"),
            ViewerEvent::Playing { viewer } => info!("WHEP viewer {viewer}: playing"),
            ViewerEvent::Stopped { viewer, reason } => {
                info!("WHEP viewer {viewer}: stopped ({reason})");
                self.sessions.remove(&viewer);
            }
            ViewerEvent::Failed { viewer, reason } => {
                warn!("WHEP viewer {viewer}: failed ({reason})");
                self.sessions.remove(&viewer);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// The part of the raw (still percent-encoded) path after `/whep/`.
fn tail(req: &HttpRequest) -> &str {
    req.uri().path().strip_prefix(PREFIX).unwrap_or("")
}

fn cors(req: &HttpRequest, response: &mut HttpResponse) {
    let allowed = req
        .app_data::<web::Data<Gate>>()
        .zip(
            req.headers()
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok()),
        )
        .and_then(|(gate, origin)| gate.cors_origin(origin));
    if let Some(origin) = allowed {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Location, Content-Type"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

fn answer(req: &HttpRequest, mut response: HttpResponse) -> HttpResponse {
    cors(req, &mut response);
    response
}

fn fail(req: &HttpRequest, status: StatusCode, message: &str) -> HttpResponse {
    answer(req, error(status, message))
}

async fn post(
    state: web::Data<WhepState>,
    gate: web::Data<Gate>,
    admission: web::Data<Admission>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    // Who calls, first: a refusal must not depend on what the body says.
    let caller = match Authenticated::extract(&req).await {
        Ok(Authenticated(caller)) => caller,
        Err(refusal) => return answer(&req, refusal.response()),
    };
    // How often: every offer makes the server build a peer connection.
    if let Err(too_many) = admission.start_viewer(&caller) {
        return answer(&req, too_many.response());
    }
    let show_uris = gate.shows_uris(&caller);
    let fail = |req: &HttpRequest, status: StatusCode, message: &str| {
        if show_uris {
            fail(req, status, message)
        } else {
            fail(req, status, &redact_text(message))
        }
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/sdp" {
        let shown: String = content_type.chars().take(80).collect();
        return fail(
            &req,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("a WHEP offer is Content-Type: application/sdp, not {shown:?}"),
        );
    }
    let Some(stream) = percent_decode(tail(&req)) else {
        return fail(
            &req,
            StatusCode::BAD_REQUEST,
            "the stream name is not valid percent-encoded UTF-8",
        );
    };
    if stream.is_empty() {
        return fail(&req, StatusCode::NOT_FOUND, "Stream not found");
    }
    let body = match read_body(payload, state.max_body).await {
        Ok(b) => b,
        Err((status, message)) => return fail(&req, status, &message),
    };
    let Ok(offer_sdp) = String::from_utf8(body.to_vec()) else {
        return fail(&req, StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8");
    };
    let play = PlayRequest {
        caller: &caller,
        name: &stream,
        offer_sdp,
        events: state.sessions.clone().recipient(),
        protocol: "whep",
    };
    let started = start_playing(&gate, &state.registry, &state.engine, play).await;
    let started = match started {
        Ok(s) => s,
        Err(refusal) => return answer(&req, refusal.response(show_uris)),
    };
    let location = format!("{PREFIX}{}/{}", percent_encode(&stream), started.id);
    info!(
        "WHEP: viewer {} of {} from {}",
        started.id,
        redact_uri(&stream),
        caller.address
    );
    state.sessions.do_send(Register {
        id: started.id,
        stream,
        addr: started.addr,
    });
    answer(
        &req,
        HttpResponse::Created()
            .insert_header((header::CONTENT_TYPE, "application/sdp"))
            .insert_header((header::LOCATION, location))
            .body(started.answer_sdp),
    )
}

async fn delete(state: web::Data<WhepState>, req: HttpRequest) -> HttpResponse {
    let not_found = |req: &HttpRequest| fail(req, StatusCode::NOT_FOUND, "no such WHEP session");
    let Some((stream, id)) = tail(&req).rsplit_once('/') else {
        return not_found(&req);
    };
    let (Some(stream), Ok(id)) = (percent_decode(stream), Uuid::parse_str(id)) else {
        return not_found(&req);
    };
    match state.sessions.send(Take { id, stream }).await {
        Ok(Some(addr)) => {
            addr.do_send(StopViewer {
                reason: "the viewer ended the WHEP session".to_string(),
            });
            answer(&req, HttpResponse::Ok().finish())
        }
        _ => not_found(&req),
    }
}

async fn options(req: HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::NoContent()
        .insert_header((header::ALLOW, "OPTIONS, POST, DELETE"))
        .insert_header(("Accept-Post", "application/sdp"))
        .finish();
    cors(&req, &mut response);
    if response
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("OPTIONS, POST, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, Authorization, If-Match"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = fail(
        &req,
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "{} is not supported on {} (WHEP: POST an offer, DELETE the session; answers carry every ICE candidate, so no trickle PATCH)",
            req.method(),
            req.path()
        ),
    );
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("OPTIONS, POST, DELETE"),
    );
    response
}

async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, (StatusCode, String)> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the offer is larger than {limit} bytes (limits.max_request_body)"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes everything but RFC 3986 unreserved characters, so a name is one path segment.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_one_segment() {
        let uri = "rtmp://127.0.0.1:1935/live/test?token=a b";
        let encoded = percent_encode(uri);
        assert!(!encoded.contains('/'));
        assert_eq!(percent_decode(&encoded).as_deref(), Some(uri));
        assert_eq!(percent_decode("stream1").as_deref(), Some("stream1"));
        assert_eq!(
            percent_decode("rtmp://h/live/x").as_deref(),
            Some("rtmp://h/live/x")
        );
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
