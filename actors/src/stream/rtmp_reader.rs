//! `RtmpReader`: one TCP connection to the source, driving the pure
//! `pullcast::rtmp::PlaySession`.
//!
//! It moves bytes between the socket and the session, forwards FLV tags to the normalizer
//! and connection events to the supervisor, and enforces the watchdogs (DNS + connect,
//! handshake, play, no media after play, stall mid-stream). When the server says the
//! publisher left, the reader keeps the connection (a new publisher's media arrives on it)
//! and says so on the tags' path, so the news cannot overtake the frames before it.
//! Whatever ends the connection is reported once, on the same path, as
//! `MediaEnd::ConnectionEnded` with a sentence an operator can act on; then the actor stops.
//! It never parses media and never decides what the capture's status is.

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use log::{debug, info};
use pullcast::config::CaptureSettings;
use pullcast::media::Track;
use pullcast::rtmp::{PlaySession, PlaySessionConfig, RtmpUrl, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::budget::MESSAGE_OVERHEAD;
use super::SourceContext;
use crate::messages::{FlvTag, MediaEnd, ReaderEvent, StopSource};
use crate::panic_guard::Panic;
use crate::telemetry::now_us;

/// How often the byte counter is reported to the supervisor.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Socket read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// Pulls one RTMP stream.
pub struct RtmpReader {
    context: Option<SourceContext>,
}

impl RtmpReader {
    pub fn new(context: SourceContext) -> Self {
        Self {
            context: Some(context),
        }
    }
}

impl Actor for RtmpReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(source) = self.context.take() else {
            ctx.stop();
            return;
        };
        let media_end = source.media_end.clone();
        // A bug that panics while pulling ends this capture, not the capture thread.
        let pull = AssertUnwindSafe(async move { pull(&source).await }).catch_unwind();
        ctx.spawn(pull.into_actor(self).map(move |ended, _act, ctx| {
            media_end.do_send(match ended {
                Ok(reason) => MediaEnd::ConnectionEnded { reason },
                Err(payload) => MediaEnd::Crashed {
                    reason: Panic::from_payload(payload.as_ref()).reason("the RTMP reader"),
                },
            });
            ctx.stop();
        }));
    }
}

impl Handler<StopSource> for RtmpReader {
    type Result = ();

    fn handle(&mut self, _msg: StopSource, ctx: &mut Self::Context) {
        // Stopping cancels the connection future, which closes the socket.
        ctx.stop();
    }
}

/// Where the pull is, for the watchdog's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Negotiating,
    AwaitingMedia,
    Streaming,
    /// The publisher left; the server may send a new one's media on this connection.
    Republish,
}

/// Runs the pull until it ends; returns why it ended.
async fn pull(source: &SourceContext) -> String {
    let SourceContext {
        url,
        settings,
        events,
        tags,
        media_end,
        ingest,
    } = source;
    let mut stream = match connect(url, settings).await {
        Ok(s) => s,
        Err(reason) => return reason,
    };
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| url.authority());
    events.do_send(ReaderEvent::Connected { peer: peer.clone() });
    if let Err(e) = stream.set_nodelay(true) {
        debug!("{url}: cannot set TCP_NODELAY: {e}");
    }
    let mut session = match PlaySession::new(PlaySessionConfig {
        url: url.clone(),
        chunk_size: settings.chunk_size,
        buffer_length_ms: settings.buffer_length_ms,
    }) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };

    let ms = Duration::from_millis;
    let mut phase = Phase::Handshake;
    let mut deadline = Instant::now() + ms(settings.handshake_timeout_ms);
    let mut last_progress = Instant::now();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let out = session.take_outbound();
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                return format!("connection to {peer} lost while sending: {e}");
            }
        }
        if ingest.over_limit() {
            // Backpressure: the capture is behind; read no more until it catches up. The
            // wait is not the source's silence: the watchdog's deadline moves with it.
            let paused = Instant::now();
            ingest.wait_for_room().await;
            deadline += paused.elapsed();
        }
        let n = match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return watchdog_reason(phase, settings),
            Ok(Err(e)) => return format!("connection to {peer} lost: {e}"),
            Ok(Ok(0)) => {
                return match phase {
                    Phase::Handshake => {
                        format!("{peer} closed the connection during the RTMP handshake")
                    }
                    _ => format!("the source {peer} closed the connection"),
                }
            }
            Ok(Ok(n)) => n,
        };
        if let Err(e) = session.handle_input(buf.get(..n).unwrap_or_default()) {
            return e.to_string();
        }
        while let Some(event) = session.poll_event() {
            let track = match &event {
                SessionEvent::Audio { .. } => Track::Audio,
                _ => Track::Video,
            };
            match event {
                SessionEvent::HandshakeComplete => {
                    phase = Phase::Negotiating;
                    deadline = Instant::now() + ms(settings.play_timeout_ms);
                    events.do_send(ReaderEvent::HandshakeDone);
                }
                SessionEvent::Connected => debug!("{url}: connect accepted"),
                SessionEvent::PlayRequested { stream_id } => {
                    debug!("{url}: play sent on stream {stream_id}");
                    phase = Phase::AwaitingMedia;
                    deadline = Instant::now() + ms(settings.media_timeout_ms);
                }
                SessionEvent::PlayStarted { description } => {
                    debug!("{url}: play started ({description})");
                    events.do_send(ReaderEvent::PlayStarted);
                }
                SessionEvent::Video { timestamp, data }
                | SessionEvent::Audio { timestamp, data } => {
                    phase = Phase::Streaming;
                    deadline = Instant::now() + ms(settings.stall_timeout_ms);
                    let charge = ingest.charge(data.len() + MESSAGE_OVERHEAD);
                    tags.do_send(FlvTag {
                        track,
                        timestamp,
                        body: data,
                        received_us: now_us(),
                        charge,
                    });
                }
                SessionEvent::Metadata(props) => events.do_send(ReaderEvent::Metadata(props)),
                SessionEvent::Unpublished { .. } if phase == Phase::Republish => {
                    // StreamEOF and UnpublishNotify both say it; once is enough.
                }
                SessionEvent::Unpublished { description } => {
                    // The server keeps the connection; a new publisher's media comes on it.
                    let reason = format!("the source stopped publishing ({description})");
                    info!("{url}: {reason}; waiting for it on the open connection");
                    phase = Phase::Republish;
                    deadline = Instant::now() + ms(settings.media_timeout_ms);
                    media_end.do_send(MediaEnd::PublisherLeft { reason });
                }
                SessionEvent::Status { code, description } => {
                    debug!("{url}: status {code} {description}");
                }
                SessionEvent::Ignored { what } => {
                    info!("{url}: ignoring {what} from the source (reported once)");
                }
                SessionEvent::Failed { reason } | SessionEvent::Ended { reason } => {
                    return reason;
                }
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            events.do_send(ReaderEvent::Progress {
                bytes_received: session.bytes_received(),
            });
        }
    }
}

fn watchdog_reason(phase: Phase, s: &CaptureSettings) -> String {
    match phase {
        Phase::Handshake => format!(
            "RTMP handshake timed out after {} ms (the server accepted TCP but did not answer)",
            s.handshake_timeout_ms
        ),
        Phase::Negotiating => format!(
            "the server did not answer connect/createStream within {} ms",
            s.play_timeout_ms
        ),
        Phase::AwaitingMedia => format!(
            "no media received within {} ms after play (is anyone publishing the stream?)",
            s.media_timeout_ms
        ),
        Phase::Streaming => format!("no media for {} ms: the source stalled", s.stall_timeout_ms),
        Phase::Republish => format!(
            "the source stopped publishing and did not return within {} ms",
            s.media_timeout_ms
        ),
    }
}

/// DNS lookup and TCP connect, each address in turn, within the connect timeout.
async fn connect(url: &RtmpUrl, settings: &CaptureSettings) -> Result<TcpStream, String> {
    let limit = Duration::from_millis(settings.connect_timeout_ms);
    let deadline = Instant::now() + limit;
    let authority = url.authority();
    let addrs: Vec<SocketAddr> =
        match timeout_at(deadline, tokio::net::lookup_host(authority.as_str())).await {
            Err(_) => {
                return Err(format!(
                    "cannot resolve host '{}': lookup timed out after {} ms",
                    url.host, settings.connect_timeout_ms
                ))
            }
            Ok(Err(e)) => return Err(format!("cannot resolve host '{}': {e}", url.host)),
            Ok(Ok(addrs)) => addrs.collect(),
        };
    if addrs.is_empty() {
        return Err(format!("cannot resolve host '{}': no addresses", url.host));
    }
    let mut last_error = String::new();
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(format!(
                    "connection to {addr} timed out after {} ms",
                    settings.connect_timeout_ms
                ))
            }
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last_error = format!("connection refused by {addr} (nothing listens there)");
            }
            Ok(Err(e)) => last_error = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last_error)
}
