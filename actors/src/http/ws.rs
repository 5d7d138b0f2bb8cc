//! WebSocket signalling (SPEC §4): one `SignallingSession` actor per browser connection.
//!
//! The session turns the protocol of `docs/signalling.md` into actor messages: `play` asks
//! the `Registry` for the stream (`Watch`, which pulls rtmp:// names on demand), starts a
//! `ViewerPeer` with the browser's offer and sends the answer; `ViewerEvent`s become
//! `status` messages (`PENDING` → `PLAYING` → `STOPPED`/`FAILED`). One session may play
//! several streams. Closing the socket ends its viewers. It never touches media.
//!
//! Access: the upgrade is refused (403) for a page on a foreign origin (same origin and
//! `http.allowed_origins` only; clients without `Origin` are not browsers and may), and
//! (401, 429) for wrong credentials in its `Authorization` header. Each `play` is checked by
//! `play::find_capture` for the upgrade's caller, or for the holder of the play's `token`.
//! Callers without `api` see uris in reasons with their stream keys hidden.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use log::{debug, info};
use pullcast::access::{redact_text, redact_uri, Caller, Credentials};
use uuid::Uuid;

use super::access::{credentials, Client, Gate};
use super::admission::{Admission, SessionSlot};
use super::dto::error;
use super::play::{start_playing, PlayRefusal, PlayRequest};
use super::ws_protocol::{self, ClientMessage, ServerMessage, StreamStatus};
use crate::messages::{StopViewer, ViewerEvent};
use crate::registry::Registry;
use crate::webrtc::engine::ViewerStarted;
use crate::webrtc::viewer_peer::ViewerPeer;
use crate::webrtc::WebRtcEngine;

/// How often the server pings.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Silence after which the browser is taken for gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// What the WebSocket endpoint needs.
#[derive(Clone)]
pub struct SignallingState {
    pub registry: Addr<Registry>,
    pub engine: WebRtcEngine,
    /// Streams one session may play at once (`limits.plays_per_session`).
    pub plays_per_session: usize,
}

/// Upgrades the request to a WebSocket served by a new [`SignallingSession`], after the
/// Origin and credentials checks.
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<SignallingState>,
    gate: web::Data<Gate>,
    admission: web::Data<Admission>,
) -> Result<HttpResponse, actix_web::Error> {
    if !gate.websocket_origin_allowed(&req) {
        let origin = req
            .headers()
            .get(actix_web::http::header::ORIGIN)
            .map(|o| {
                String::from_utf8_lossy(o.as_bytes())
                    .chars()
                    .take(100)
                    .collect::<String>()
            })
            .unwrap_or_default();
        info!("WebSocket from {origin:?} refused: not this server's origin nor in http.allowed_origins");
        return Ok(error(
            StatusCode::FORBIDDEN,
            &format!("pages from {origin:?} may not open this WebSocket (http.allowed_origins)"),
        ));
    }
    let client = gate.client(&req);
    let caller = match gate.authenticate(client, credentials(&req)).await {
        Ok(caller) => caller,
        Err(refusal) => return Ok(refusal.response()),
    };
    let slot = match admission.open_session(&caller) {
        Ok(slot) => slot,
        Err(too_many) => return Ok(too_many.response()),
    };
    let mut session = SignallingSession::new(
        state.registry.clone(),
        state.engine.clone(),
        gate.get_ref().clone(),
        caller,
        client,
    );
    session.admission = Some((admission.get_ref().clone(), slot));
    session.plays_per_session = state.plays_per_session;
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(ws_protocol::MAX_MESSAGE)
        .start()
}

/// One stream a session plays.
struct Stream {
    viewer: Option<(Uuid, Addr<ViewerPeer>)>,
}

/// One browser connection.
pub struct SignallingSession {
    id: Uuid,
    registry: Addr<Registry>,
    engine: WebRtcEngine,
    gate: Gate,
    /// Who opened the socket (its address and the upgrade's credentials).
    caller: Caller,
    /// Where the socket comes from: a `token` in a `play` is checked as from there.
    client: Client,
    /// Whether reasons may show uris as they are (the caller has `api`).
    show_uris: bool,
    streams: HashMap<String, Stream>,
    last_heard: Instant,
    /// How often this caller may start viewers; the slot counts this session against its
    /// address (none for trusted callers).
    admission: Option<(Admission, Option<SessionSlot>)>,
    /// Streams this session may play at once.
    plays_per_session: usize,
}

impl SignallingSession {
    pub fn new(
        registry: Addr<Registry>,
        engine: WebRtcEngine,
        gate: Gate,
        caller: Caller,
        client: Client,
    ) -> Self {
        let show_uris = gate.shows_uris(&caller);
        Self {
            id: Uuid::new_v4(),
            registry,
            engine,
            gate,
            caller,
            client,
            show_uris,
            streams: HashMap::new(),
            last_heard: Instant::now(),
            admission: None,
            plays_per_session: usize::MAX,
        }
    }

    fn send(ctx: &mut ws::WebsocketContext<Self>, message: &ServerMessage) {
        ctx.text(ws_protocol::render(message));
    }

    /// Sends a `status`; the reason with stream keys hidden unless the caller has `api`.
    fn status(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: &str,
        status: StreamStatus,
        reason: Option<String>,
    ) {
        self.status_with_code(ctx, id, status, reason, None);
    }

    fn status_with_code(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: &str,
        status: StreamStatus,
        reason: Option<String>,
        code: Option<u16>,
    ) {
        let reason = match reason {
            Some(r) if !self.show_uris => Some(redact_text(&r).into_owned()),
            other => other,
        };
        Self::send(
            ctx,
            &ServerMessage::Status {
                id: id.to_string(),
                status,
                reason,
                code,
            },
        );
    }

    fn on_message(&mut self, message: ClientMessage, ctx: &mut ws::WebsocketContext<Self>) {
        match message {
            ClientMessage::Play {
                id,
                name,
                sdp,
                token,
            } => self.play(id, name, sdp, token, ctx),
            ClientMessage::Stop { id } => match self.streams.remove(&id) {
                Some(stream) => {
                    if let Some((_, viewer)) = stream.viewer {
                        viewer.do_send(StopViewer {
                            reason: "stopped by the client".to_string(),
                        });
                    }
                    self.status(
                        ctx,
                        &id,
                        StreamStatus::Stopped,
                        Some("stopped by the client".into()),
                    );
                }
                None => Self::send(
                    ctx,
                    &ServerMessage::Error {
                        message: format!("stop: no stream '{id}' in this session"),
                    },
                ),
            },
            ClientMessage::Ping { ts } => Self::send(ctx, &ServerMessage::Pong { ts }),
            ClientMessage::Pong { .. } => {}
        }
    }

    fn play(
        &mut self,
        id: String,
        name: String,
        sdp: String,
        token: Option<String>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if self.streams.contains_key(&id) {
            Self::send(
                ctx,
                &ServerMessage::Error {
                    message: format!("play: stream id '{id}' is already in use in this session"),
                },
            );
            return;
        }
        if self.streams.len() >= self.plays_per_session {
            self.status(
                ctx,
                &id,
                StreamStatus::Failed,
                Some(format!(
                    "this session plays {} streams already (limits.plays_per_session)",
                    self.plays_per_session
                )),
            );
            return;
        }
        if let Some((admission, _)) = &self.admission {
            if let Err(too_many) = admission.start_viewer(&self.caller) {
                self.status(ctx, &id, StreamStatus::Failed, Some(too_many.reason));
                return;
            }
        }
        info!(
            "session {} ({}): play '{}' as '{id}'",
            self.id,
            self.caller.address,
            redact_uri(&name)
        );
        self.streams.insert(id.clone(), Stream { viewer: None });
        self.status(ctx, &id, StreamStatus::Pending, None);
        let registry = self.registry.clone();
        let engine = self.engine.clone();
        let gate = self.gate.clone();
        let session_caller = self.caller.clone();
        let session_client = self.client;
        let events = ctx.address().recipient::<ViewerEvent>();
        let start = async move {
            // A token in the message speaks for this play instead of the upgrade's caller.
            let caller = match token {
                Some(token) => gate
                    .authenticate(session_client, Credentials::token(&token).map(Some))
                    .await
                    .map_err(PlayRefusal::Access)?,
                None => session_caller,
            };
            let play = PlayRequest {
                caller: &caller,
                name: &name,
                offer_sdp: sdp,
                events,
                protocol: "websocket",
            };
            start_playing(&gate, &registry, &engine, play).await
        };
        ctx.spawn(start.into_actor(self).map(
            move |result: Result<ViewerStarted, PlayRefusal>, act, ctx| {
                match (result, act.streams.get_mut(&id)) {
                    (Ok(started), Some(stream)) => {
                        stream.viewer = Some((started.id, started.addr));
                        Self::send(
                            ctx,
                            &ServerMessage::Answer {
                                id: id.clone(),
                                sdp: started.answer_sdp,
                            },
                        );
                    }
                    (Ok(started), None) => {
                        // Stopped while the viewer was being set up.
                        started.addr.do_send(StopViewer {
                            reason: "stopped by the client".to_string(),
                        });
                    }
                    (Err(refusal), Some(_)) => {
                        act.streams.remove(&id);
                        let reason = refusal.reason(act.show_uris);
                        act.status_with_code(
                            ctx,
                            &id,
                            StreamStatus::Failed,
                            Some(reason),
                            Some(refusal.status().as_u16()),
                        );
                    }
                    (Err(_), None) => {}
                }
            },
        ));
    }

    /// The client id of the stream whose viewer is `viewer`.
    fn stream_of(&self, viewer: Uuid) -> Option<String> {
        self.streams
            .iter()
            .find(|(_, s)| s.viewer.as_ref().is_some_and(|(v, _)| *v == viewer))
            .map(|(id, _)| id.clone())
    }
}

impl Actor for SignallingSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        debug!("signalling session {} opened", self.id);
        Self::send(
            ctx,
            &ServerMessage::Session {
                status: "ESTABLISHED",
                session_id: self.id.to_string(),
                server: format!("pullcast {}", env!("CARGO_PKG_VERSION")),
            },
        );
        ctx.run_interval(PING_EVERY, |act, ctx| {
            if act.last_heard.elapsed() > SILENCE_LIMIT {
                info!(
                    "signalling session {}: no word for {:?}; closing",
                    act.id, SILENCE_LIMIT
                );
                ctx.stop();
                return;
            }
            ctx.ping(b"");
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Self::send(ctx, &ServerMessage::Ping { ts });
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        for (_, stream) in self.streams.drain() {
            if let Some((_, viewer)) = stream.viewer {
                viewer.do_send(StopViewer {
                    reason: "the signalling connection closed".to_string(),
                });
            }
        }
        debug!("signalling session {} closed", self.id);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for SignallingSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => match ws_protocol::parse(&text) {
                Ok(message) => self.on_message(message, ctx),
                Err(message) => Self::send(ctx, &ServerMessage::Error { message }),
            },
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_)) => Self::send(
                ctx,
                &ServerMessage::Error {
                    message: "binary messages are not part of the protocol; send JSON text".into(),
                },
            ),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(_)) | Ok(ws::Message::Nop) => {}
            Err(e) => {
                info!(
                    "signalling session {}: protocol error {e}; closing",
                    self.id
                );
                ctx.stop();
            }
        }
    }
}

impl Handler<ViewerEvent> for SignallingSession {
    type Result = ();

    fn handle(&mut self, event: ViewerEvent, ctx: &mut Self::Context) {
        match event {
            ViewerEvent::Connected { .. } => {}
            ViewerEvent::Playing { viewer } => {
                if let Some(id) = self.stream_of(viewer) {
                    self.status(ctx, &id, StreamStatus::Playing, None);
                }
            }
            ViewerEvent::Stopped { viewer, reason } => {
                if let Some(id) = self.stream_of(viewer) {
                    self.streams.remove(&id);
                    self.status(ctx, &id, StreamStatus::Stopped, Some(reason));
                }
            }
            ViewerEvent::Failed { viewer, reason } => {
                if let Some(id) = self.stream_of(viewer) {
                    self.streams.remove(&id);
                    self.status(ctx, &id, StreamStatus::Failed, Some(reason));
                }
            }
        }
    }
}
