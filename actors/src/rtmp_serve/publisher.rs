//! One RTMP publisher (ffmpeg, OBS) feeding a capture: the connection stands in for the
//! `RtmpReader` a pulled capture has. [`start_publish`] decides the publish (credentials
//! from `?token=` or `?user=&pass=`, the `publish` permission on the name, a name nobody
//! else captures) and attaches to the capture's source (`stream::published`); then each
//! audio/video message goes to the capture's normalizer as an `FlvTag`, charged on its
//! ingest budget — while the budget is full the connection is not read (TCP slows the
//! encoder down) — and no faster than `capture.max_media_messages_per_second` (a source
//! that keeps above it for 5 s is dropped as a flood). The end of the publish is told on
//! the tags' path. It never parses media.

use std::net::SocketAddr;
use std::time::Duration;

use log::info;
use pullcast::access::{redact_text, Permission};
use pullcast::media::Track;
use pullcast::rate_limit::RateLimiter;
use pullcast::rtmp::session::MetaValue;
use pullcast::rtmp::RtmpUrl;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::connection::{credentials_from_query, query_of, stream_part};
use super::RtmpDeps;
use crate::http::access::{Ask, Client};
use crate::messages::{FlvTag, MediaEnd, Publish, PullError, PullRequest, ReaderEvent};
use crate::stream::budget::MESSAGE_OVERHEAD;
use crate::stream::SourceContext;
use crate::telemetry::now_us;

/// Media messages in flight to the capture at most (as for a pulled source).
const MAX_INGEST_MESSAGES: usize = 2048;
/// A publisher kept over the message rate this long is dropped as a flood.
const FLOOD_FOR: Duration = Duration::from_secs(5);
/// A second without being slowed down ends a burst.
const FLOOD_CALM: Duration = Duration::from_secs(1);
/// How long the new capture may take to offer its source.
const ATTACH_WITHIN: Duration = Duration::from_secs(5);
/// Longest stream name a publisher may use, in bytes.
const MAX_PUBLISH_NAME_BYTES: usize = 256;

/// A publish in progress.
pub struct Publisher {
    pub stream_id: u32,
    pub label: String,
    context: SourceContext,
    /// Fires when the capture stops this source (terminate, its end).
    pub stop: oneshot::Receiver<()>,
    rate: RateLimiter<()>,
    started: Instant,
    flooding_since: Option<Instant>,
    last_slowed: Instant,
}

/// Decides a publish of `name` on `stream_id` and attaches it to its capture; `Err` with
/// the status code and reason to tell the encoder.
pub async fn start_publish(
    deps: &RtmpDeps,
    peer: SocketAddr,
    stream_id: u32,
    name: &str,
    app: &str,
    tc_url: &str,
) -> Result<Publisher, (&'static str, String)> {
    let unauthorized = "NetStream.Publish.Unauthorized";
    let bad_name = "NetStream.Publish.BadName";
    let stream = stream_part(name).trim();
    if stream.is_empty()
        || stream.len() > MAX_PUBLISH_NAME_BYTES
        || stream.chars().any(char::is_control)
    {
        return Err((
            bad_name,
            format!(
                "a stream name is 1 to {MAX_PUBLISH_NAME_BYTES} bytes without control characters"
            ),
        ));
    }
    let credentials = query_of(name)
        .and_then(credentials_from_query)
        .or_else(|| query_of(app).and_then(credentials_from_query))
        .or_else(|| query_of(tc_url).and_then(credentials_from_query));
    let client = Client {
        address: peer.ip(),
        names_this_server: true,
    };
    let caller = deps
        .gate
        .authenticate(client, Ok(credentials))
        .await
        .map_err(|refusal| (unauthorized, refusal.reason()))?;
    deps.gate
        .allow(&caller, Ask::new(Permission::Publish, "rtmp").on(stream))
        .await
        .map_err(|refusal| (unauthorized, refusal.reason()))?;
    // The capture's uri: where players find it over RTMP (the address the encoder used).
    let app_name = stream_part(app).trim_matches('/');
    let app_name = if app_name.is_empty() {
        "live"
    } else {
        app_name
    };
    let base = tc_url.split('?').next().unwrap_or("").trim_end_matches('/');
    let url = RtmpUrl::parse(&format!("{base}/{stream}"))
        .or_else(|_| RtmpUrl::parse(&format!("rtmp://localhost/{app_name}/{stream}")))
        .map_err(|e| (bad_name, format!("'{stream}' cannot be a stream name: {e}")))?;
    let uri = format!("rtmp://{}/{}/{stream}", url.authority(), url.app);
    let request = PullRequest {
        uri,
        url,
        local_stream_name: stream.to_string(),
        record: deps.record_by_default,
        has_audio: true,
        has_video: true,
        on_demand: false,
        published: true,
        publish_grace_ms: deps.settings.publish_grace_ms,
        may_pull_private: false,
    };
    let publishing = deps
        .registry
        .send(Publish { request })
        .await
        .map_err(|e| {
            (
                "NetStream.Publish.Failed",
                format!("the server is busy: {e}"),
            )
        })?
        .map_err(|e| match e {
            PullError::Conflict(why) => (bad_name, why),
            PullError::CannotStart(why) => ("NetStream.Publish.Failed", why),
        })?;
    let attached = publishing
        .slot
        .take(ATTACH_WITHIN)
        .await
        .ok_or_else(|| (bad_name, format!("'{stream}' is being published already")))?;
    let label = format!(
        "RTMP publisher of {} ({peer}){}",
        redact_text(stream),
        if publishing.resumed { ", back" } else { "" }
    );
    info!("{label}: publishing");
    let context = attached.context;
    context.events.do_send(ReaderEvent::Connected {
        peer: peer.to_string(),
    });
    context.events.do_send(ReaderEvent::HandshakeDone);
    context.events.do_send(ReaderEvent::PlayStarted);
    let per_second = deps.capture.max_media_messages_per_second;
    let now = Instant::now();
    Ok(Publisher {
        stream_id,
        label,
        context,
        stop: attached.stop,
        rate: RateLimiter::new(f64::from(per_second), per_second, 1),
        started: now,
        flooding_since: None,
        last_slowed: now,
    })
}

impl Publisher {
    /// One audio or video message; an error ends the publish (a flood).
    pub async fn media(
        &mut self,
        track: Track,
        timestamp: u32,
        body: bytes::Bytes,
    ) -> Result<(), String> {
        let ingest = &self.context.ingest;
        if ingest.over_limit() || ingest.messages() > MAX_INGEST_MESSAGES {
            ingest.wait_for_room(MAX_INGEST_MESSAGES).await;
        }
        let per_second = self.context.settings.max_media_messages_per_second;
        while let Err(wait_ms) = self
            .rate
            .allow(&(), self.started.elapsed().as_millis() as i64)
        {
            let now = Instant::now();
            let since = *self.flooding_since.get_or_insert(now);
            self.last_slowed = now;
            if now.duration_since(since) >= FLOOD_FOR {
                return Err(format!(
                    "the publisher sent more than {per_second} media messages a second for {} s \
                     (capture.max_media_messages_per_second): a flood, dropped",
                    FLOOD_FOR.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
        if self.last_slowed.elapsed() >= FLOOD_CALM {
            self.flooding_since = None;
        }
        let charge = ingest.charge(body.len() + MESSAGE_OVERHEAD);
        self.context.tags.do_send(FlvTag {
            track,
            timestamp,
            body,
            received_us: now_us(),
            charge,
        });
        Ok(())
    }

    /// The publisher's `onMetaData`.
    pub fn metadata(&self, properties: Vec<(String, MetaValue)>) {
        self.context
            .events
            .do_send(ReaderEvent::Metadata(properties));
    }

    /// Bytes received on the connection so far.
    pub fn progress(&self, bytes_received: u64) {
        self.context
            .events
            .do_send(ReaderEvent::Progress { bytes_received });
    }

    /// The publish ended: the capture hears it after the tags before.
    pub fn end(self, reason: String) {
        info!("{}: ended: {reason}", self.label);
        self.context
            .media_end
            .do_send(MediaEnd::ConnectionEnded { reason });
    }
}
