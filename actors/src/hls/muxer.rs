//! [`HlsMuxerActor`]: one capture's LL-HLS muxer. A subscriber of the capture with
//! `Delivery::Original` (the source's H.264 and AAC): it hands each frame to
//! `pullcast::hls::HlsMuxer` with the wall time the frame reached the server, and publishes
//! the new view on its entry's watch channel whenever a part closes.
//!
//! It starts with the cached GOP (the capture's replay), so the first segment ends at the
//! next keyframe. New codecs, or a muxer that overflows, start a new muxer under a new file
//! prefix (players' old URLs then answer 404 and they reload the playlist). It stops when no
//! HLS request came for `hls.idle_timeout_ms` or the capture ends (the last view says why, so
//! waiting requests are answered at once), and removes its entry. It must not serve HTTP.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::{debug, info, warn};
use pullcast::access::redact_text;
use pullcast::hls::{HlsMuxer, HlsView};
use pullcast::media::{CodecSet, MediaFrame};
use tokio::sync::watch;
use uuid::Uuid;

use super::{HlsDirectory, HlsEntry};
use crate::messages::{Delivery, Subscribe, SubscriberMedia, Unsubscribe};
use crate::telemetry::{now_us, ViewerProtocol};

/// How often the muxer looks whether it is idle or its capture is gone.
const CHECK_EVERY: Duration = Duration::from_secs(1);

pub struct HlsMuxerActor {
    /// Its subscription's id.
    id: Uuid,
    label: String,
    directory: HlsDirectory,
    entry: Arc<HlsEntry>,
    publish: watch::Sender<Option<Arc<HlsView>>>,
    mailbox_frames: usize,
    muxer: Option<HlsMuxer>,
    /// (wall ms, monotonic µs) at start: turns a frame's `ingest_us` into wall time.
    anchor: (i64, u64),
}

impl HlsMuxerActor {
    pub fn new(
        directory: HlsDirectory,
        entry: Arc<HlsEntry>,
        publish: watch::Sender<Option<Arc<HlsView>>>,
        mailbox_frames: usize,
    ) -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let label = format!("HLS of {}", redact_text(&entry.capture.local_stream_name));
        Self {
            id: Uuid::new_v4(),
            label,
            directory,
            entry,
            publish,
            mailbox_frames,
            muxer: None,
            anchor: (wall, now_us()),
        }
    }

    /// When `frame` reached the server, ms since the Unix epoch (now, if it carries no stamp).
    fn wall_ms(&self, frame: &MediaFrame) -> i64 {
        let (wall, mono) = self.anchor;
        let at = if frame.ingest_us == 0 {
            now_us()
        } else {
            frame.ingest_us
        };
        let delta_us = i64::try_from(at).unwrap_or(i64::MAX) - i64::try_from(mono).unwrap_or(0);
        wall + delta_us.div_euclid(1000)
    }

    fn start_muxer(&mut self, codecs: CodecSet) {
        // A fresh file prefix per muxer: 8 hex digits of a random id.
        let prefix = Uuid::new_v4().simple().to_string()[..8].to_string();
        match HlsMuxer::new(codecs, &prefix, self.directory.options()) {
            Ok(muxer) => {
                debug!("{}: muxer {prefix} started", self.label);
                self.muxer = Some(muxer);
            }
            Err(e) => {
                warn!("{}: cannot mux these codecs: {e}", self.label);
                self.muxer = None;
            }
        }
        self.publish_view();
    }

    fn publish_view(&self) {
        let view = self.muxer.as_ref().map(|m| Arc::new(m.view()));
        self.publish.send_replace(view);
    }

    fn push(&mut self, frame: &MediaFrame) -> bool {
        let wall = self.wall_ms(frame);
        let Some(muxer) = self.muxer.as_mut() else {
            return false;
        };
        match muxer.push(frame, wall) {
            Ok(changed) => changed,
            Err(overflow) => {
                warn!("{}: {overflow}; starting over", self.label);
                let codecs = muxer.codecs().clone();
                self.start_muxer(codecs);
                false
            }
        }
    }

    fn end(&mut self, reason: &str, ctx: &mut Context<Self>) {
        let ended = self.muxer.as_ref().map(|m| {
            let mut view = m.view();
            view.ended = Some(Arc::from(reason));
            Arc::new(view)
        });
        let ended = ended.unwrap_or_else(|| Arc::new(ended_empty(reason)));
        self.publish.send_replace(Some(ended));
        ctx.stop();
    }
}

/// The view of a stream that ended before it had codecs.
fn ended_empty(reason: &str) -> HlsView {
    HlsView {
        prefix: Arc::from(""),
        init: bytes::Bytes::new(),
        codecs: Arc::from(""),
        audio_only: false,
        part_target_ms: 0,
        target_duration: 1,
        segments: Vec::new(),
        open: Vec::new(),
        next_msn: 0,
        next_part_id: 0,
        ended: Some(Arc::from(reason)),
    }
}

impl Actor for HlsMuxerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_frames);
        if self.entry.capture.is_gone() {
            let why = self
                .entry
                .capture
                .end
                .reason()
                .unwrap_or("it stopped")
                .to_string();
            info!("{}: the stream ended before it started: {why}", self.label);
            self.end(&why, ctx);
            return;
        }
        info!("{}: started", self.label);
        self.entry.capture.subscribe.do_send(Subscribe {
            id: self.id,
            recipient: ctx.address().recipient(),
            delivery: Delivery::Original,
        });
        let idle_after = Duration::from_millis(self.directory.settings.idle_timeout_ms.max(1));
        ctx.run_interval(CHECK_EVERY, move |act, ctx| {
            let players = act.entry.players();
            act.entry
                .capture
                .telemetry
                .lock()
                .viewers
                .set(ViewerProtocol::Hls, players);
            if act.directory.idle_for(&act.entry) >= idle_after {
                info!("{}: no HLS request for {idle_after:?}; stopping", act.label);
                act.end("nobody asked for it lately", ctx);
            } else if act.entry.capture.is_gone() {
                let why = act
                    .entry
                    .capture
                    .end
                    .reason()
                    .unwrap_or("it stopped")
                    .to_string();
                act.end(&why, ctx);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.entry
            .capture
            .unsubscribe
            .do_send(Unsubscribe { id: self.id });
        self.entry
            .capture
            .telemetry
            .lock()
            .viewers
            .set(ViewerProtocol::Hls, 0);
        self.directory.remove(&self.entry);
        if let Some(m) = &self.muxer {
            let s = m.stats();
            info!(
                "{}: stopped ({} segments, {} parts{})",
                self.label,
                s.segments,
                s.parts,
                if s.evicted_for_bytes > 0 {
                    format!(
                        ", {} segments dropped early for the byte bound",
                        s.evicted_for_bytes
                    )
                } else {
                    String::new()
                }
            );
        }
    }
}

impl Handler<SubscriberMedia> for HlsMuxerActor {
    type Result = ();

    fn handle(&mut self, msg: SubscriberMedia, ctx: &mut Self::Context) {
        let changed = match msg {
            SubscriberMedia::Codecs(codecs) => {
                if self.muxer.as_ref().map(|m| m.codecs()) != Some(&codecs) {
                    self.start_muxer(codecs);
                }
                false
            }
            SubscriberMedia::Frame(frame, _charge) => self.push(&frame),
            SubscriberMedia::Replay(frames, _charge) => {
                let mut changed = false;
                for frame in &frames {
                    changed |= self.push(frame);
                }
                changed
            }
            SubscriberMedia::Stopped { reason, .. } => {
                info!("{}: the stream ended: {reason}", self.label);
                self.end(&reason, ctx);
                return;
            }
        };
        if changed {
            self.publish_view();
        }
    }
}
