//! `RtmpReader`: one TCP connection to the source, driving the pure
//! `pullcast::rtmp::PlaySession`.
//!
//! It moves bytes between the socket and the session, forwards FLV tags to the normalizer
//! and connection events to the supervisor, and enforces the watchdogs (DNS + connect,
//! handshake, play, no media after play, stall mid-stream). It connects only to addresses
//! the pull guard accepted ([`super::connect`]); a refused target ends the pull at once with
//! the policy's reason. When the server says the
//! publisher left, the reader keeps the connection (a new publisher's media arrives on it)
//! and says so on the tags' path, so the news cannot overtake the frames before it.
//! Whatever ends the connection is reported once, on the same path, as
//! `MediaEnd::ConnectionEnded` with a sentence an operator can act on; then the actor stops.
//! It never parses media and never decides what the capture's status is.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use log::{debug, info};
use pullcast::config::CaptureSettings;
use pullcast::media::Track;
use pullcast::net::pull_guard::PullGuard;
use pullcast::rtmp::{PlaySession, PlaySessionConfig, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use super::connect::connect_checked;
use super::SourceContext;
use crate::messages::{FlvTag, MediaEnd, ReaderEvent, StopSource};
use crate::telemetry::now_us;

/// How often the byte counter is reported to the supervisor.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Socket read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// Pulls one RTMP stream.
pub struct RtmpReader {
    context: Option<SourceContext>,
    /// Where it may connect (the `[pull]` policy).
    guard: Arc<PullGuard>,
}

impl RtmpReader {
    pub fn new(context: SourceContext, guard: Arc<PullGuard>) -> Self {
        Self {
            context: Some(context),
            guard,
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
        let guard = self.guard.clone();
        let pull = async move { pull(&source, &guard).await };
        ctx.spawn(pull.into_actor(self).map(move |reason, _act, ctx| {
            media_end.do_send(MediaEnd::ConnectionEnded { reason });
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
async fn pull(source: &SourceContext, guard: &PullGuard) -> String {
    let SourceContext {
        url,
        settings,
        may_pull_private,
        events,
        tags,
        media_end,
    } = source;
    let limit = Duration::from_millis(settings.connect_timeout_ms);
    let (mut stream, peer) =
        match connect_checked(&url.host, url.port, guard, *may_pull_private, limit).await {
            Ok((stream, addr)) => (stream, addr.to_string()),
            // A refused target fails the capture with the policy's sentence.
            Err(refused) => return refused.detail,
        };
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
                    tags.do_send(FlvTag {
                        track,
                        timestamp,
                        body: data,
                        received_us: now_us(),
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
