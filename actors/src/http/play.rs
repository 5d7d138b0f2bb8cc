//! How a viewer gets a capture to watch, the same for every way to play (WebSocket
//! signalling, WHEP, HTTP-FLV, HLS, RTMP play): the access checks, then the Registry's
//! `Watch` ([`find_capture`]); for WebRTC, [`start_playing`] wraps it: the offer is read
//! once and refused before any lookup, then the viewer is started.
//!
//! 1. A caller that cannot play anything is refused before any lookup.
//! 2. `Watch` without permission to start a pull: an existing capture is found by its local
//!    name or uri, and `play` is decided on all its names (the hook asked if configured).
//! 3. Not found: `play` is decided on the name by the rules (a caller who may not play it
//!    learns nothing more: 401/403, else 404). An `rtmp://` name then needs `pull` on it too
//!    (so an anonymous client may only watch captures that exist); the hook is asked about
//!    both only when the rules allow both; then `Watch` again, now allowed to start the
//!    on-demand pull (to a private address only with `pull_private`).

use actix::{Addr, Recipient};
use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use log::warn;
use pullcast::access::{redact_text, Caller, Permission};

use super::access::{Ask, Gate, Refusal};
use super::dto::error;
use crate::messages::{CaptureHandle, ViewerEvent, Watch, WatchError};
use crate::registry::Registry;
use crate::webrtc::engine::{ViewerError, ViewerRequest, ViewerStarted, WebRtcEngine};

/// Why a play is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayRefusal {
    /// 401, 403 or 429.
    Access(Refusal),
    /// 400: an `rtmp://` name that is not a URL one could pull.
    BadName(String),
    /// 404: no such capture (and the name is not one to pull).
    NotFound(String),
    /// 500: the on-demand capture could not start.
    CannotStart(String),
    /// 503: the Registry did not answer (shutting down, overloaded).
    Unavailable(String),
    /// The viewer could not be started: 400 (not SDP), 406 (nothing we can send), 500, 503
    /// (a limit: ports, viewers).
    Viewer(ViewerError),
}

impl PlayRefusal {
    /// The HTTP status (WHEP answers with it; signalling reports it as `code`).
    pub fn status(&self) -> StatusCode {
        match self {
            PlayRefusal::Access(r) => r.status(),
            PlayRefusal::BadName(_) => StatusCode::BAD_REQUEST,
            PlayRefusal::NotFound(_) => StatusCode::NOT_FOUND,
            PlayRefusal::CannotStart(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PlayRefusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PlayRefusal::Viewer(e) => match e {
                ViewerError::BadOffer(_) => StatusCode::BAD_REQUEST,
                ViewerError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
                ViewerError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
                ViewerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// The sentence for the client; stream keys hidden unless `show_uris`.
    pub fn reason(&self, show_uris: bool) -> String {
        let text = match self {
            PlayRefusal::Access(r) => r.reason(),
            PlayRefusal::BadName(r)
            | PlayRefusal::NotFound(r)
            | PlayRefusal::CannotStart(r)
            | PlayRefusal::Unavailable(r) => r.clone(),
            PlayRefusal::Viewer(
                ViewerError::BadOffer(r)
                | ViewerError::NotAcceptable(r)
                | ViewerError::Failed(r)
                | ViewerError::Unavailable(r),
            ) => r.clone(),
        };
        if show_uris {
            text
        } else {
            redact_text(&text).into_owned()
        }
    }
}

impl PlayRefusal {
    /// The JSON answer (with `WWW-Authenticate` or `Retry-After` where they belong).
    pub fn response(&self, show_uris: bool) -> HttpResponse {
        let reason = self.reason(show_uris);
        match self {
            PlayRefusal::Access(r) => r.response_saying(&reason),
            PlayRefusal::Viewer(ViewerError::Unavailable(_)) => {
                let mut response = error(self.status(), &reason);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                response
            }
            other => error(other.status(), &reason),
        }
    }
}

impl From<Refusal> for PlayRefusal {
    fn from(r: Refusal) -> Self {
        PlayRefusal::Access(r)
    }
}

/// Whether `name` is an `rtmp://` URL (a name that may be pulled on demand).
fn is_rtmp_url(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rtmp://"))
}

/// The capture `caller` may watch under `name`, through `protocol`.
pub async fn find_capture(
    gate: &Gate,
    registry: &Addr<Registry>,
    caller: &Caller,
    name: &str,
    protocol: &'static str,
) -> Result<CaptureHandle, PlayRefusal> {
    gate.precheck(caller, Permission::Play)?;
    let ask = Ask::new(Permission::Play, protocol).on(name);
    match watch(registry, name, false, false).await? {
        Ok(handle) => {
            gate.allow(caller, ask.capture(&handle.local_stream_name, &handle.uri))
                .await?;
            return Ok(handle);
        }
        Err(WatchError::NotFound(reason)) => {
            gate.check(caller, ask)?;
            if !is_rtmp_url(name) {
                return Err(PlayRefusal::NotFound(reason));
            }
        }
        Err(WatchError::CannotStart(reason)) => return Err(PlayRefusal::CannotStart(reason)),
    }
    // An rtmp:// name nobody captures: starting its pull is a pull — of a real URL.
    if let Err(e) = pullcast::rtmp::RtmpUrl::parse(name) {
        return Err(PlayRefusal::BadName(format!(
            "cannot pull '{}': {e}",
            short(name)
        )));
    }
    let pull = Ask::new(Permission::Pull, protocol).on(name);
    let needs_pull = |refusal: Refusal| {
        let why = refusal.reason();
        let sentence = format!(
            "{} is not being captured, and starting its pull needs the `pull` permission ({why})",
            short(name)
        );
        PlayRefusal::Access(match refusal {
            Refusal::Unauthenticated(_) => Refusal::Unauthenticated(sentence),
            Refusal::Forbidden(_) => Refusal::Forbidden(sentence),
            throttled => throttled,
        })
    };
    gate.check(caller, pull).map_err(needs_pull)?;
    gate.allow(caller, ask).await?;
    gate.allow(caller, pull).await.map_err(needs_pull)?;
    if let Ok(url) = pullcast::rtmp::RtmpUrl::parse(name) {
        gate.check_pull_target(caller, &url).await?;
    }
    let may_pull_private = gate.policy().holds(caller, Permission::PullPrivate);
    match watch(registry, name, true, may_pull_private).await? {
        Ok(handle) => Ok(handle),
        Err(WatchError::NotFound(reason)) => Err(PlayRefusal::NotFound(reason)),
        Err(WatchError::CannotStart(reason)) => Err(PlayRefusal::CannotStart(reason)),
    }
}

/// One WebRTC play as a way in received it.
pub struct PlayRequest<'a> {
    /// Who asks.
    pub caller: &'a Caller,
    /// The local stream name or uri asked for.
    pub name: &'a str,
    /// The browser's SDP offer.
    pub offer_sdp: String,
    /// Where the viewer's events go.
    pub events: Recipient<ViewerEvent>,
    /// `websocket`, `whep`: told to the hook.
    pub protocol: &'static str,
}

/// One WebRTC play: the offer is read (a malformed one refused before any capture is
/// looked up or started), the capture found as [`find_capture`] does, the viewer started
/// with its events going to `events`. The one flow of the WebSocket and WHEP.
pub async fn start_playing(
    gate: &Gate,
    registry: &Addr<Registry>,
    engine: &WebRtcEngine,
    play: PlayRequest<'_>,
) -> Result<ViewerStarted, PlayRefusal> {
    let PlayRequest {
        caller,
        name,
        offer_sdp,
        events,
        protocol,
    } = play;
    let offer = WebRtcEngine::check_offer(offer_sdp).map_err(PlayRefusal::Viewer)?;
    let capture = find_capture(gate, registry, caller, name, protocol).await?;
    engine
        .start_viewer(ViewerRequest {
            capture,
            offer,
            events,
        })
        .await
        .map_err(PlayRefusal::Viewer)
}

async fn watch(
    registry: &Addr<Registry>,
    name: &str,
    may_start_pull: bool,
    may_pull_private: bool,
) -> Result<Result<CaptureHandle, WatchError>, PlayRefusal> {
    registry
        .send(Watch {
            name: name.to_string(),
            may_start_pull,
            may_pull_private,
        })
        .await
        .map_err(|e| {
            warn!("the registry did not answer: {e}");
            PlayRefusal::Unavailable("the server is shutting down or overloaded; try again".into())
        })
}

fn short(name: &str) -> String {
    let mut out: String = name.chars().take(200).collect();
    if out.len() < name.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_urls() {
        assert!(is_rtmp_url("rtmp://h/a/b"));
        assert!(is_rtmp_url("RTMP://h/a/b"));
        assert!(!is_rtmp_url("rtmps://h/a/b"));
        assert!(!is_rtmp_url("直播流"));
        assert!(!is_rtmp_url("rtmp:/"));
    }

    #[test]
    fn reasons_hide_stream_keys_unless_asked() {
        let r = PlayRefusal::CannotStart("cannot pull rtmp://h/live/s?key=abc".into());
        assert_eq!(r.reason(true), "cannot pull rtmp://h/live/s?key=abc");
        assert_eq!(r.reason(false), "cannot pull rtmp://h/live/s?key=***");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
