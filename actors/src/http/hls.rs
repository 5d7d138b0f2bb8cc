//! LL-HLS over HTTP: `GET /{stream}/{stream}.m3u8` (any `*.m3u8` name in the stream's
//! folder) and the files the playlist names, `{prefix}_init.mp4`, `{prefix}_seg{msn}.mp4`
//! and `{prefix}_part{id}.mp4`. Served on every listener; the HLS ports (8082/8445) are the
//! ones players are told about.
//!
//! - The stream is one path segment, percent-decoded (an `rtmp://` name is sent encoded and
//!   pulls on demand). The first playlist request of a capture is a play like any other
//!   (`find_capture`, protocol `hls`, counted against the viewer-start rate) and starts its
//!   muxer (`crate::hls`); later requests of that capture, and every media request, are
//!   decided by the Gate on the capture's names without asking the Registry. Credentials:
//!   the `Authorization` header, or `?token=` (Safari and native players cannot set
//!   headers); the rest of the playlist's query is carried into every URI it lists.
//! - Blocking reloads (`_HLS_msn`, `_HLS_part`) and preload-hinted parts wait on the
//!   muxer's watch channel, at most `hls.block_timeout_ms` (default three target durations),
//!   then 503; a request too far ahead gets 400. The first playlist waits for the first
//!   segment at most `hls.first_segment_timeout_ms`. Past `hls.max_waiting` waiting requests
//!   on a stream, 503.
//! - Playlists are never cached; media files are immutable (their prefix is new per muxer).
//!
//! Nothing here cuts media or writes playlist text (`pullcast::hls` does).

use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use pullcast::access::{Caller, Credentials, Permission};
use pullcast::hls::playlist::render_media;
use pullcast::hls::query::{self, Directives};
use pullcast::hls::{Availability, HlsView, PartLookup};
use tokio::time::Instant;

use super::access::{credentials, Ask, Gate};
use super::admission::Admission;
use super::dto::error;
use super::play::find_capture;
use super::whep::percent_decode;
use crate::hls::{HlsDirectory, HlsEntry};
use crate::registry::Registry;
use crate::telemetry::{count_egress, count_egress_frames, ViewerProtocol};

/// What the HLS routes need.
#[derive(Clone)]
pub struct HlsState {
    pub registry: Addr<Registry>,
    pub directory: HlsDirectory,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(r"/{path:.+/[^/]+\.(m3u8|mp4)}")
            .route(web::get().to(serve))
            .route(web::head().to(serve)),
    );
}

/// One file of a stream's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum File {
    Playlist,
    Init(String),
    Segment(String, u64),
    Part(String, u64),
}

fn parse_file(name: &str) -> Option<File> {
    if name.ends_with(".m3u8") {
        return Some(File::Playlist);
    }
    let stem = name.strip_suffix(".mp4")?;
    let (prefix, what) = stem.split_once('_')?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let number = |digits: &str| {
        (!digits.is_empty() && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u64>().ok())
            .flatten()
    };
    let prefix = prefix.to_string();
    if what == "init" {
        Some(File::Init(prefix))
    } else if let Some(n) = what.strip_prefix("seg") {
        number(n).map(|n| File::Segment(prefix, n))
    } else if let Some(n) = what.strip_prefix("part") {
        number(n).map(|n| File::Part(prefix, n))
    } else {
        None
    }
}

/// The credentials of a request: its `Authorization` header, else a `token` in its query.
fn credentials_of(req: &HttpRequest) -> Result<Option<Credentials>, String> {
    if let Some(from_header) = credentials(req)? {
        return Ok(Some(from_header));
    }
    Ok(req
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .and_then(percent_decode)
        .filter(|t| !t.is_empty())
        .map(Credentials::Bearer))
}

async fn serve(
    state: web::Data<HlsState>,
    gate: web::Data<Gate>,
    admission: web::Data<Admission>,
    req: HttpRequest,
) -> HttpResponse {
    if !state.directory.settings.enabled {
        return error(
            StatusCode::NOT_FOUND,
            "HLS is off on this server (hls.enabled)",
        );
    }
    let raw = req.uri().path().strip_prefix('/').unwrap_or("");
    let Some((encoded, file_name)) = raw.rsplit_once('/') else {
        return error(StatusCode::NOT_FOUND, "Stream not found");
    };
    let Some(name) = percent_decode(encoded) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the stream name is not valid percent-encoded UTF-8",
        );
    };
    let Some(file) = parse_file(file_name) else {
        return error(StatusCode::NOT_FOUND, "no such HLS file");
    };
    if name.is_empty() {
        return error(StatusCode::NOT_FOUND, "Stream not found");
    }
    let caller = match gate
        .authenticate(gate.client(&req), credentials_of(&req))
        .await
    {
        Ok(caller) => caller,
        Err(refusal) => return refusal.response(),
    };
    let show_uris = gate.shows_uris(&caller);
    let entry = match state.directory.find(&name) {
        Some(entry) => {
            if let Err(refusal) = allow_on(&gate, &caller, &entry).await {
                return refusal.response();
            }
            entry
        }
        None if file == File::Playlist => {
            if let Err(too_many) = admission.start_viewer(&caller) {
                return too_many.response();
            }
            match find_capture(&gate, &state.registry, &caller, &name, "hls").await {
                Ok(capture) => state.directory.ensure(&capture),
                Err(refusal) => return refusal.response(show_uris),
            }
        }
        None => return error(StatusCode::NOT_FOUND, "Stream not found"),
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    entry.seen(&state.directory, caller.address, user_agent);
    let answer = match file {
        File::Playlist => playlist(&state.directory, &entry, &req).await,
        File::Init(prefix) => match current(&entry, &prefix) {
            Some(view) => media(&view, vec![view.init.clone()]),
            None => renewed(),
        },
        File::Segment(prefix, msn) => match current(&entry, &prefix) {
            Some(view) => match view.segment(msn) {
                Some(parts) => media(&view, parts),
                None => error(StatusCode::NOT_FOUND, "this segment is not in the window"),
            },
            None => renewed(),
        },
        File::Part(prefix, id) => part(&state.directory, &entry, &prefix, id).await,
    };
    with_cors(answer, &req, &gate)
}

/// Whether `caller` may play `entry`'s capture; the hook's yes is remembered for a while.
async fn allow_on(
    gate: &Gate,
    caller: &Caller,
    entry: &HlsEntry,
) -> Result<(), super::access::Refusal> {
    let key = caller_key(caller);
    if entry.recently_allowed(key) {
        return Ok(());
    }
    let capture = &entry.capture;
    gate.allow(
        caller,
        Ask::new(Permission::Play, "hls").capture(&capture.local_stream_name, &capture.uri),
    )
    .await?;
    entry.remember_allowed(key);
    Ok(())
}

/// Who the caller is, hashed: its address and everything its identity holds (a user, a
/// token's claims, a foreign token), so no two callers share an allowance.
fn caller_key(caller: &Caller) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    caller.address.hash(&mut hasher);
    format!("{:?}", caller.identity).hash(&mut hasher);
    hasher.finish()
}

/// The view whose files carry `prefix` (none when the muxer was restarted since).
fn current(entry: &HlsEntry, prefix: &str) -> Option<Arc<HlsView>> {
    entry
        .view
        .borrow()
        .clone()
        .filter(|view| &*view.prefix == prefix)
}

fn renewed() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "this stream's HLS files were renewed; reload the playlist",
    )
}

/// Counts a waiting request on its entry while it lives.
struct Waiting<'a>(&'a HlsEntry);

impl<'a> Waiting<'a> {
    fn enter(entry: &'a HlsEntry, max: usize) -> Option<Self> {
        if entry.waiting.fetch_add(1, Ordering::Relaxed) >= max {
            entry.waiting.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Self(entry))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a wait ended.
enum Waited {
    Ready(Arc<HlsView>),
    TooFar,
    TimedOut,
    Ended(String),
}

/// Waits until `ready` says the view is there, at most `limit` (taken from the view when
/// given none: three target durations).
async fn wait_for(
    directory: &HlsDirectory,
    entry: &HlsEntry,
    limit: Option<Duration>,
    ready: impl Fn(&HlsView) -> Availability,
) -> Result<Waited, HttpResponse> {
    let mut view_rx = entry.view.clone();
    let mut deadline: Option<Instant> = limit.map(|l| Instant::now() + l);
    let mut waiting = None;
    loop {
        let view = view_rx.borrow_and_update().clone();
        if let Some(view) = view {
            match ready(&view) {
                Availability::Ready => return Ok(Waited::Ready(view)),
                Availability::TooFar => return Ok(Waited::TooFar),
                Availability::Wait => {}
            }
            if let Some(reason) = &view.ended {
                return Ok(Waited::Ended(reason.to_string()));
            }
            if deadline.is_none() {
                let configured = directory.settings.block_timeout_ms;
                let limit = if configured > 0 {
                    Duration::from_millis(configured)
                } else {
                    Duration::from_secs(3 * u64::from(view.target_duration.max(1)))
                };
                deadline = Some(Instant::now() + limit);
            }
        }
        if waiting.is_none() {
            waiting = Some(
                Waiting::enter(entry, directory.settings.max_waiting)
                    .ok_or_else(|| unavailable("too many requests are waiting on this stream"))?,
            );
        }
        let until = deadline.unwrap_or_else(|| {
            Instant::now() + Duration::from_millis(directory.settings.first_segment_timeout_ms)
        });
        deadline = Some(until);
        match tokio::time::timeout_at(until, view_rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                // The muxer is gone without a last word.
                return Ok(Waited::Ended("the stream's HLS muxer stopped".to_string()));
            }
            Err(_) => return Ok(Waited::TimedOut),
        }
    }
}

fn unavailable(reason: &str) -> HttpResponse {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, reason);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}

async fn playlist(directory: &HlsDirectory, entry: &HlsEntry, req: &HttpRequest) -> HttpResponse {
    let directives: Directives = match query::parse(req.query_string()) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let first = Duration::from_millis(directory.settings.first_segment_timeout_ms);
    let limit = match directives.msn {
        None => Some(first),
        // Blocking: three target durations (from the view) or the configured time.
        Some(_) => None,
    };
    let (msn, part) = (directives.msn, directives.part);
    let waited = wait_for(directory, entry, limit, |view| {
        if !view.has_content() {
            return Availability::Wait;
        }
        match msn {
            None => Availability::Ready,
            Some(msn) => view.availability(msn, part),
        }
    })
    .await;
    let view = match waited {
        Ok(Waited::Ready(view)) => match &view.ended {
            Some(reason) => {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("the stream ended: {reason}"),
                )
            }
            None => view,
        },
        Ok(Waited::TooFar) => {
            return error(
                StatusCode::BAD_REQUEST,
                "_HLS_msn/_HLS_part is too far ahead of the playlist",
            )
        }
        Ok(Waited::TimedOut) => {
            return unavailable("the stream did not get that far in time; ask again")
        }
        Ok(Waited::Ended(reason)) => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("the stream ended: {reason}"),
            )
        }
        Err(response) => return response,
    };
    let text = render_media(&view, directives.skip, &directives.passthrough);
    count_egress(ViewerProtocol::Hls, text.len());
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/vnd.apple.mpegurl"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(text)
}

async fn part(directory: &HlsDirectory, entry: &HlsEntry, prefix: &str, id: u64) -> HttpResponse {
    let Some(view) = current(entry, prefix) else {
        return renewed();
    };
    match view.part(id) {
        PartLookup::Ready(data) => return media(&view, vec![data]),
        PartLookup::Gone => return error(StatusCode::NOT_FOUND, "this part is not in the window"),
        PartLookup::Next => {}
    }
    // The preload hint: wait for the part to close.
    let waited = wait_for(directory, entry, None, |view| {
        if &*view.prefix != prefix {
            return Availability::TooFar;
        }
        match view.part(id) {
            PartLookup::Ready(_) => Availability::Ready,
            PartLookup::Next => Availability::Wait,
            PartLookup::Gone => Availability::TooFar,
        }
    })
    .await;
    match waited {
        Ok(Waited::Ready(view)) => match view.part(id) {
            PartLookup::Ready(data) => media(&view, vec![data]),
            _ => error(StatusCode::NOT_FOUND, "this part is not in the window"),
        },
        Ok(Waited::TooFar) => error(StatusCode::NOT_FOUND, "this part will not come"),
        Ok(Waited::TimedOut) => unavailable("the part did not come in time; ask again"),
        Ok(Waited::Ended(reason)) => error(
            StatusCode::NOT_FOUND,
            &format!("the stream ended: {reason}"),
        ),
        Err(response) => response,
    }
}

/// A media file made of `chunks` (shared, not copied).
fn media(view: &HlsView, chunks: Vec<Bytes>) -> HttpResponse {
    let len: usize = chunks.iter().map(Bytes::len).sum();
    count_egress(ViewerProtocol::Hls, len);
    count_egress_frames(ViewerProtocol::Hls, 1);
    let body = futures_util::stream::iter(chunks.into_iter().map(Ok::<Bytes, actix_web::Error>));
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            if view.audio_only {
                "audio/mp4"
            } else {
                "video/mp4"
            },
        ))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600, immutable"))
        .no_chunking(len as u64)
        .streaming(body)
}

/// Lets a page of an allowed origin read the answer (hls.js fetches from the page).
fn with_cors(mut response: HttpResponse, req: &HttpRequest, gate: &Gate) -> HttpResponse {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    if let Some(allowed) = origin.and_then(|o| gate.cors_origin(o)) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(parse_file("cam.m3u8"), Some(File::Playlist));
        assert_eq!(parse_file("ab12_init.mp4"), Some(File::Init("ab12".into())));
        assert_eq!(
            parse_file("ab12_seg41.mp4"),
            Some(File::Segment("ab12".into(), 41))
        );
        assert_eq!(
            parse_file("ab12_part410.mp4"),
            Some(File::Part("ab12".into(), 410))
        );
        for bad in [
            "ab12_seg.mp4",
            "ab12_part-1.mp4",
            "ab12_seg99999999999999999999.mp4",
            "zz_init.mp4",
            "_init.mp4",
            "ab12_other.mp4",
            "x.mp4",
            "cam.ts",
        ] {
            assert_eq!(parse_file(bad), None, "{bad}");
        }
    }
}
