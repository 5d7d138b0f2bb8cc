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
use pullcast::rate_limit::RateLimiter;
use pullcast::rtmp::{PlaySession, PlaySessionConfig, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::budget::MESSAGE_OVERHEAD;
use super::connect::connect_checked;
use super::SourceContext;
use crate::messages::{FlvTag, MediaEnd, ReaderEvent, StopSource};
use crate::panic_guard::Panic;
use crate::telemetry::now_us;

/// How often the byte counter is reported to the supervisor.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Most media messages (tags, and the frames made of them) between the socket and the
/// supervisor: with the byte budget, this bounds what small tags can grow into (a keyframe
/// tag gets its SPS and PPS in front). ~10 s of a 60 fps source with audio.
const MAX_INGEST_MESSAGES: usize = 2048;
/// A source kept over `capture.max_media_messages_per_second` this long is dropped as a
/// flood (shorter bursts are only slowed down).
const FLOOD_FOR: Duration = Duration::from_secs(5);
/// A second without being slowed down ends a burst.
const FLOOD_CALM: Duration = Duration::from_secs(1);
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
        // A bug that panics while pulling ends this capture, not the capture thread.
        let pull = AssertUnwindSafe(async move { pull(&source, &guard).await }).catch_unwind();
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
async fn pull(source: &SourceContext, guard: &PullGuard) -> String {
    let SourceContext {
        url,
        settings,
        may_pull_private,
        events,
        tags,
        media_end,
        ingest,
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
    let started = Instant::now();
    let per_second = settings.max_media_messages_per_second;
    let mut message_rate = RateLimiter::new(f64::from(per_second), per_second, 1);
    // Since when the source has been sending faster than the rate (None: it is not).
    let mut flooding_since: Option<Instant> = None;
    let mut last_slowed = started;
    loop {
        let out = session.take_outbound();
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                return format!("connection to {peer} lost while sending: {e}");
            }
        }
        if ingest.over_limit() || ingest.messages() > MAX_INGEST_MESSAGES {
            // Backpressure: the capture is behind; read no more until it catches up. The
            // wait is not the source's silence: the watchdog's deadline moves with it.
            let paused = Instant::now();
            ingest.wait_for_room(MAX_INGEST_MESSAGES).await;
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
                    if ingest.over_limit() || ingest.messages() > MAX_INGEST_MESSAGES {
                        // One read can hold thousands of tiny tags: wait between them too.
                        ingest.wait_for_room(MAX_INGEST_MESSAGES).await;
                    }
                    // A source sends what it sends; we take it no faster than this. A burst is
                    // slowed down; a source that keeps sending faster is a flood, dropped.
                    while let Err(wait_ms) =
                        message_rate.allow(&(), started.elapsed().as_millis() as i64)
                    {
                        let now = Instant::now();
                        let since = *flooding_since.get_or_insert(now);
                        last_slowed = now;
                        if now.duration_since(since) >= FLOOD_FOR {
                            return format!(
                                "the source sent more than {per_second} media messages a second \
                                 for {} s (capture.max_media_messages_per_second): a flood, \
                                 dropped",
                                FLOOD_FOR.as_secs()
                            );
                        }
                        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                    }
                    if last_slowed.elapsed() >= FLOOD_CALM {
                        flooding_since = None;
                    }
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
