//! One RTMP client connection: the socket, the pure `ServeSession`, and the players it
//! starts.
//!
//! The read loop feeds the session and answers its events; a writer task drains the
//! connection's [`OutQueue`] onto the socket (a client that takes nothing for
//! `rtmp.send_timeout_ms` while bytes wait is dropped). A `play` is decided like every play
//! (the caller authenticated from `?token=` or `?user=&pass=` on the stream name or the
//! app, the viewer-start rate, `find_capture` with protocol `rtmp`, the viewer limits), then
//! answered, and the player joins its capture's fan-out on this arbiter
//! ([`super::fanout::RtmpFanout`]). A `publish` makes the
//! connection the source of a capture ([`super::publisher`]); one publish per connection.
//! A connection that has neither started playing nor publishing within
//! `rtmp.start_timeout_ms` is closed. Nothing here parses media.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use log::{debug, info, warn};
use pullcast::access::{redact_text, Credentials};
use pullcast::media::Track;
use pullcast::rtmp::{ServeEvent, ServeSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use uuid::Uuid;

use super::fanout::{fanout_for, AddPlayer, FanoutSettings, PlayerSpec, RemovePlayer, RtmpFanout};
use super::out_queue::{out_queue, OutDrain, OutQueue};
use super::publisher::{start_publish, Publisher};
use super::RtmpDeps;
use crate::http::access::Client;
use crate::http::play::{find_capture, PlayRefusal};
use crate::http::whep::percent_decode;
use crate::telemetry::{count_egress, ViewerProtocol};

/// Socket read buffer.
const READ_BUFFER: usize = 64 * 1024;
/// How often a publisher's byte count is reported to its capture.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Which track a media event carries (decided before the event is taken apart).
enum Kind {
    Audio,
    Other,
}

/// Serves one accepted connection until it ends.
pub async fn serve_connection(socket: TcpStream, peer: SocketAddr, deps: Arc<RtmpDeps>) {
    let label = format!("RTMP client {peer}");
    let _ = socket.set_nodelay(true);
    let (mut reader, writer) = socket.into_split();
    let (queue, drain) = out_queue(deps.queue_bytes);
    let send_timeout = Duration::from_millis(deps.settings.send_timeout_ms.max(1));
    let writer_label = label.clone();
    actix::spawn(write_loop(writer, drain, send_timeout, writer_label));

    let mut session = ServeSession::new();
    let mut players: HashMap<u32, (Addr<RtmpFanout>, Uuid)> = HashMap::new();
    let mut app_query = String::new();
    let (mut app, mut tc_url) = (String::new(), String::new());
    let mut publisher: Option<Publisher> = None;
    let mut last_progress = Instant::now();
    let start_by = Instant::now() + Duration::from_millis(deps.settings.start_timeout_ms.max(1));
    let mut buffer = vec![0u8; READ_BUFFER];
    let ended = 'connection: loop {
        let idle = players.is_empty() && publisher.is_none();
        let stopped = async {
            match publisher.as_mut() {
                Some(p) => {
                    let _ = (&mut p.stop).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let read = tokio::select! {
            read = reader.read(&mut buffer) => read,
            () = queue.closed() => break "the client stopped reading (or left)".to_string(),
            () = stopped => break "the capture was stopped".to_string(),
            () = tokio::time::sleep_until(start_by), if idle => {
                break format!(
                    "nothing played within {} ms (rtmp.start_timeout_ms)",
                    deps.settings.start_timeout_ms
                );
            }
        };
        let n = match read {
            Ok(0) => break "the client closed the connection".to_string(),
            Ok(n) => n,
            Err(e) => break format!("read error: {e}"),
        };
        if let Err(e) = session.handle_input(&buffer[..n]) {
            break e.to_string();
        }
        if queue.control(session.take_outbound()).is_err() {
            break "the client stopped reading".to_string();
        }
        while let Some(event) = session.poll_event() {
            let event_kind = if matches!(event, ServeEvent::Audio { .. }) {
                Kind::Audio
            } else {
                Kind::Other
            };
            match event {
                ServeEvent::Connected {
                    app: connect_app,
                    tc_url: connect_tc_url,
                } => {
                    debug!("{label}: connect app '{}'", redact_text(&connect_app));
                    app_query = query_of(&connect_app)
                        .or_else(|| query_of(&connect_tc_url))
                        .unwrap_or_default()
                        .to_string();
                    app = connect_app;
                    tc_url = connect_tc_url;
                }
                ServeEvent::Play { stream_id, name } => {
                    if let Some((fanout, id)) = players.remove(&stream_id) {
                        fanout.do_send(RemovePlayer { id });
                    }
                    match start_player(&deps, &queue, peer, stream_id, &name, &app_query).await {
                        Ok((capture, player)) => {
                            session.accept_play(stream_id, stream_part(&name));
                            // The start sequence goes before the player's first media.
                            let _ = queue.control(session.take_outbound());
                            let fanout = fanout_for(
                                &capture,
                                FanoutSettings {
                                    mailbox_frames: deps.mailbox_frames,
                                    keep_bytes: deps.capture.keyframe_cache_bytes,
                                },
                            );
                            let id = player.id;
                            fanout.do_send(AddPlayer(player));
                            players.insert(stream_id, (fanout, id));
                        }
                        Err((code, reason)) => {
                            info!(
                                "{label}: play of '{}' refused: {reason}",
                                redact_text(stream_part(&name))
                            );
                            session.refuse_play(stream_id, code, &reason);
                        }
                    }
                }
                ServeEvent::PlayEnded { stream_id } => {
                    if let Some((fanout, id)) = players.remove(&stream_id) {
                        fanout.do_send(RemovePlayer { id });
                    }
                }
                ServeEvent::Publish {
                    stream_id, name, ..
                } => {
                    if publisher.is_some() {
                        session.refuse_publish(
                            stream_id,
                            "NetStream.Publish.BadName",
                            "this connection publishes already",
                        );
                        continue;
                    }
                    match start_publish(&deps, peer, stream_id, &name, &app, &tc_url).await {
                        Ok(p) => {
                            session.accept_publish(stream_id, stream_part(&name));
                            publisher = Some(p);
                        }
                        Err((code, reason)) => {
                            info!(
                                "{label}: publish of '{}' refused: {reason}",
                                redact_text(stream_part(&name))
                            );
                            session.refuse_publish(stream_id, code, &reason);
                        }
                    }
                }
                ServeEvent::PublishEnded { stream_id } => {
                    if let Some(p) = publisher.take_if(|p| p.stream_id == stream_id) {
                        p.end("the publisher stopped publishing".to_string());
                    }
                }
                ServeEvent::Metadata(properties) => {
                    if let Some(p) = &publisher {
                        p.metadata(properties);
                    }
                }
                ServeEvent::Video { timestamp, data } | ServeEvent::Audio { timestamp, data } => {
                    let track = if matches!(event_kind, Kind::Audio) {
                        Track::Audio
                    } else {
                        Track::Video
                    };
                    if let Some(p) = publisher.as_mut() {
                        if let Err(flood) = p.media(track, timestamp, data).await {
                            break 'connection flood;
                        }
                    }
                }
                ServeEvent::Ignored { what } => debug!("{label}: ignored {what}"),
            }
        }
        if queue.control(session.take_outbound()).is_err() {
            break "the client stopped reading".to_string();
        }
        if let Some(p) = &publisher {
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                p.progress(session.bytes_received());
            }
        }
    };
    for (fanout, id) in players.values() {
        fanout.do_send(RemovePlayer { id: *id });
    }
    if let Some(p) = publisher {
        p.end(ended.clone());
    }
    info!("{label}: closed: {ended}");
}

/// Messages written with one system call at most.
const WRITE_BATCH: usize = 64;

/// Writes queued messages until the queue ends or the client stops taking them: what is
/// queued goes out in one vectored write, without a timer while the socket takes it (the
/// send timeout only runs while the socket is full).
async fn write_loop(
    writer: tokio::net::tcp::OwnedWriteHalf,
    mut drain: OutDrain,
    send_timeout: Duration,
    label: String,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut writer = writer;
    while drain.next_batch(&mut batch, WRITE_BATCH).await {
        match write_batch(&writer, &batch, send_timeout).await {
            Ok(true) => {
                count_egress(ViewerProtocol::Rtmp, batch.iter().map(|b| b.len()).sum());
            }
            Ok(false) => {
                warn!("{label}: took nothing for {send_timeout:?}; dropped");
                break;
            }
            Err(e) => {
                debug!("{label}: write error: {e}");
                break;
            }
        }
        batch.clear();
    }
    let _ = writer.shutdown().await;
}

/// Writes all of `batch`; false when the socket took nothing for `limit`.
async fn write_batch(
    writer: &tokio::net::tcp::OwnedWriteHalf,
    batch: &[bytes::Bytes],
    limit: Duration,
) -> std::io::Result<bool> {
    let (mut index, mut offset) = (0, 0);
    while index < batch.len() {
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&batch[index][offset..])
            .chain(batch[index + 1..].iter().map(|b| &b[..]))
            .map(std::io::IoSlice::new)
            .collect();
        match writer.try_write_vectored(&slices) {
            Ok(mut n) => {
                while n > 0 && index < batch.len() {
                    let left = batch[index].len() - offset;
                    if n >= left {
                        n -= left;
                        index += 1;
                        offset = 0;
                    } else {
                        offset += n;
                        n = 0;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if timeout(limit, writer.writable()).await.is_err() {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The part of a play name before its query.
pub(super) fn stream_part(name: &str) -> &str {
    name.split_once('?').map_or(name, |(stream, _)| stream)
}

pub(super) fn query_of(text: &str) -> Option<&str> {
    text.split_once('?').map(|(_, q)| q)
}

/// Credentials given in a query: `token=…` (a bearer token), or `user=…&pass=…`.
pub fn credentials_from_query(query: &str) -> Option<Credentials> {
    let value = |key: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .and_then(percent_decode)
    };
    if let Some(token) = value("token").filter(|t| !t.is_empty()) {
        return Some(Credentials::Bearer(token));
    }
    match (value("user"), value("pass")) {
        (Some(user), Some(password)) if !user.is_empty() => {
            Some(Credentials::Basic { user, password })
        }
        _ => None,
    }
}

/// Decides a play and makes its player (not started yet); `Err` with the status code and
/// reason to tell the client.
async fn start_player(
    deps: &RtmpDeps,
    queue: &OutQueue,
    peer: SocketAddr,
    stream_id: u32,
    name: &str,
    app_query: &str,
) -> Result<(crate::messages::CaptureHandle, PlayerSpec), (&'static str, String)> {
    let failed = "NetStream.Play.Failed";
    let stream = stream_part(name);
    let credentials = query_of(name)
        .and_then(credentials_from_query)
        .or_else(|| credentials_from_query(app_query));
    let client = Client {
        address: peer.ip(),
        names_this_server: true,
    };
    let caller = deps
        .gate
        .authenticate(client, Ok(credentials))
        .await
        .map_err(|refusal| (failed, refusal.reason()))?;
    deps.admission
        .start_viewer(&caller)
        .map_err(|too_many| (failed, too_many.reason.clone()))?;
    let show_uris = deps.gate.shows_uris(&caller);
    let capture = find_capture(&deps.gate, &deps.registry, &caller, stream, "rtmp")
        .await
        .map_err(|refusal| {
            let code = match refusal {
                PlayRefusal::NotFound(_) => "NetStream.Play.StreamNotFound",
                _ => failed,
            };
            (code, refusal.reason(show_uris))
        })?;
    let slot = deps
        .engine
        .take_viewer_slot(capture.id)
        .map_err(|e| (failed, PlayRefusal::Viewer(e).reason(show_uris)))?;
    let id = Uuid::new_v4();
    let label = format!(
        "RTMP player {id} of {} ({peer})",
        redact_text(&capture.local_stream_name)
    );
    let counted = capture
        .telemetry
        .count_viewer(crate::telemetry::ViewerProtocol::Rtmp);
    Ok((
        capture,
        PlayerSpec {
            id,
            label,
            stream_id,
            queue: queue.clone(),
            _slot: slot,
            _counted: counted,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_query() {
        assert_eq!(
            credentials_from_query("a=1&token=abc%2Edef"),
            Some(Credentials::Bearer("abc.def".into()))
        );
        assert_eq!(
            credentials_from_query("user=ops&pass=p%40ss"),
            Some(Credentials::Basic {
                user: "ops".into(),
                password: "p@ss".into()
            })
        );
        assert_eq!(credentials_from_query("user=ops"), None);
        assert_eq!(credentials_from_query("token="), None);
        assert_eq!(credentials_from_query("tokens=x"), None);
        assert_eq!(credentials_from_query(""), None);
        assert_eq!(stream_part("cam?token=1"), "cam");
        assert_eq!(query_of("live?token=1"), Some("token=1"));
    }
}
