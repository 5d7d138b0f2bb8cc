//! WebSocket signalling (SPEC §4): one `SignallingSession` actor per browser connection.
//!
//! The session turns the protocol of `docs/signalling.md` into actor messages: `play` asks
//! the `Registry` for the stream (`Watch`, which pulls rtmp:// names on demand), starts a
//! `ViewerPeer` with the browser's offer and sends the answer; `ViewerEvent`s become
//! `status` messages (`PENDING` → `PLAYING` → `STOPPED`/`FAILED`). One session may play
//! several streams. Closing the socket ends its viewers. It never touches media.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use log::{debug, info};
use uuid::Uuid;

use super::ws_protocol::{self, ClientMessage, ServerMessage, StreamStatus};
use crate::messages::{StopViewer, ViewerEvent, Watch, WatchError};
use crate::registry::Registry;
use crate::webrtc::engine::{ViewerRequest, ViewerStarted};
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
}

/// Upgrades the request to a WebSocket served by a new [`SignallingSession`].
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<SignallingState>,
) -> Result<HttpResponse, actix_web::Error> {
    let session = SignallingSession::new(state.registry.clone(), state.engine.clone());
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
    streams: HashMap<String, Stream>,
    last_heard: Instant,
}

impl SignallingSession {
    pub fn new(registry: Addr<Registry>, engine: WebRtcEngine) -> Self {
        Self {
            id: Uuid::new_v4(),
            registry,
            engine,
            streams: HashMap::new(),
            last_heard: Instant::now(),
        }
    }

    fn send(ctx: &mut ws::WebsocketContext<Self>, message: &ServerMessage) {
        ctx.text(ws_protocol::render(message));
    }

    fn status(
        ctx: &mut ws::WebsocketContext<Self>,
        id: &str,
        status: StreamStatus,
        reason: Option<String>,
    ) {
        Self::send(
            ctx,
            &ServerMessage::Status {
                id: id.to_string(),
                status,
                reason,
            },
        );
    }

    fn on_message(&mut self, message: ClientMessage, ctx: &mut ws::WebsocketContext<Self>) {
        match message {
            ClientMessage::Play { id, name, sdp } => self.play(id, name, sdp, ctx),
            ClientMessage::Stop { id } => match self.streams.remove(&id) {
                Some(stream) => {
                    if let Some((_, viewer)) = stream.viewer {
                        viewer.do_send(StopViewer {
                            reason: "stopped by the client".to_string(),
                        });
                    }
                    Self::status(
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
        info!("session {}: play '{name}' as '{id}'", self.id);
        self.streams.insert(id.clone(), Stream { viewer: None });
        Self::status(ctx, &id, StreamStatus::Pending, None);
        let registry = self.registry.clone();
        let engine = self.engine.clone();
        let events = ctx.address().recipient::<ViewerEvent>();
        let start = async move {
            let capture = match registry.send(Watch { name }).await {
                Ok(Ok(handle)) => handle,
                Ok(Err(WatchError::NotFound(e) | WatchError::CannotStart(e))) => return Err(e),
                Err(e) => return Err(format!("the server is shutting down ({e})")),
            };
            engine
                .start_viewer(ViewerRequest {
                    capture,
                    offer_sdp: sdp,
                    events,
                })
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(start.into_actor(self).map(
            move |result: Result<ViewerStarted, String>, act, ctx| {
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
                    (Err(reason), Some(_)) => {
                        act.streams.remove(&id);
                        Self::status(ctx, &id, StreamStatus::Failed, Some(reason));
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
                    Self::status(ctx, &id, StreamStatus::Playing, None);
                }
            }
            ViewerEvent::Stopped { viewer, reason } => {
                if let Some(id) = self.stream_of(viewer) {
                    self.streams.remove(&id);
                    Self::status(ctx, &id, StreamStatus::Stopped, Some(reason));
                }
            }
            ViewerEvent::Failed { viewer, reason } => {
                if let Some(id) = self.stream_of(viewer) {
                    self.streams.remove(&id);
                    Self::status(ctx, &id, StreamStatus::Failed, Some(reason));
                }
            }
        }
    }
}
