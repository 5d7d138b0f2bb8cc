//! `StreamSupervisor`: one per capture. It owns the capture's children (the source reader
//! and the normalizer), holds its status, codec configuration and counters, keeps the frames
//! since the last keyframe, and fans media out to subscribers.
//!
//! When the source drops it pulls it again with jittered exponential backoff
//! (`pullcast::backoff`), one fresh reader + normalizer per connection, and keeps the
//! subscribers: frames of the new connection are moved onto the capture's one monotonic
//! timeline (`pullcast::timeline`), and every subscriber resumes at the next keyframe. A REST
//! capture retries until it is terminated; an on-demand capture gives up after
//! `on_demand_give_up_ms` and its viewers get `FAILED`.
//!
//! Fan-out is bounded: each subscriber's mailbox has a capacity, frames go out with
//! `try_send`, and a subscriber whose mailbox is full misses frames until the next keyframe.
//! A slow subscriber therefore never slows the capture or any other subscriber. The
//! supervisor does no I/O and no parsing.
//!
//! Every handler runs inside `panic_guard::catch`: a bug that panics ends this capture
//! `FAILED` with the panic's message as the reason (viewers told, the Registry forgets it),
//! and only this one.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use log::{error, info, warn};
use pullcast::access::redact_text;
use pullcast::backoff::Backoff;
use pullcast::codec::h264::profile_name;
use pullcast::config::{CaptureSettings, RecordSettings};
use pullcast::gop::{GopCache, GopPush};
use pullcast::media::{CodecSet, MediaFrame, Track};
use pullcast::normalize::NormalizedEvent;
use pullcast::rtmp::session::MetaValue;
use pullcast::stats::RateMeter;
use pullcast::timeline::Timeline;
use pullcast::video::transcode::TranscodeSettings;
use pullcast::video::BFrameDetector;
use uuid::Uuid;

use crate::panic_guard::{self, Panic};
use crate::telemetry::{LatencySummary, SharedTelemetry};

use super::audio_transcoder::AudioTranscoderActor;
use super::budget::{ByteBudget, SharedBudget, MESSAGE_OVERHEAD};
use super::normalizer::NormalizerActor;
use super::recorder::Recorder;
use super::video_transcoder::VideoTranscoderActor;
use super::{SourceContext, SourceStarter};
use crate::messages::{
    AudioInfo, CaptureEnd, CaptureEnded, CaptureSnapshot, CaptureStatus, Delivery, FinishRecording,
    ForceKeyframe, GetSnapshot, InjectPanic, MediaEnd, PullRequest, ReaderEvent, RecordingStatus,
    RequestKeyframe, ResetVideoTranscode, ResumeInfo, RetryInfo, SourceMedia, SourceMediaEnded,
    StatusChange, StopCapture, StopSource, Subscribe, SubscriberMedia, TranscodeAudio,
    TranscodeBacklog, TranscodeVideo, TranscodedAudio, TranscodedVideo, TranscoderConfig,
    Unsubscribe, VideoInfo,
};

/// Status transitions kept for `find_all`.
const HISTORY_LEN: usize = 20;
/// Window over which the frame rate is averaged.
const FRAME_RATE_WINDOW_MS: i64 = 2000;
/// Window over which the bitrate is averaged: longer than a typical 2 s GOP, so the burst of
/// each keyframe does not swing the figure.
const BITRATE_WINDOW_MS: i64 = 6000;

/// Extra time an on-demand capture waits for its first viewer (ICE + DTLS take a moment).
const FIRST_VIEWER_GRACE: Duration = Duration::from_secs(15);

struct SubscriberState {
    recipient: Recipient<SubscriberMedia>,
    /// What this subscriber has queued, in bytes.
    queue: SharedBudget,
    delivery: Delivery,
    /// Missed a frame: send no video until the next keyframe.
    waiting_for_keyframe: bool,
}

/// The capture's one AAC → Opus transcoder, while it has WebRTC subscribers.
struct Transcoder {
    addr: Addr<AudioTranscoderActor>,
    arbiter: Arbiter,
    /// What it has queued, in bytes.
    queue: SharedBudget,
}

/// The capture's one B-frame → Constrained Baseline transcoder, while it has B-frames and
/// WebRTC subscribers.
struct VideoTranscoder {
    addr: Addr<VideoTranscoderActor>,
    arbiter: Arbiter,
    /// What it has queued, in bytes.
    queue: SharedBudget,
    /// It fell behind by its whole queue: frames skip it until the next keyframe.
    skipping: bool,
}

/// Supervises one capture.
pub struct StreamSupervisor {
    id: Uuid,
    request: PullRequest,
    settings: CaptureSettings,
    starter: SourceStarter,
    registry: Option<Recipient<CaptureEnded>>,
    source: Option<Recipient<StopSource>>,
    status: CaptureStatus,
    reason: Option<String>,
    codecs: CodecSet,
    gop: GopCache,
    subscribers: HashMap<Uuid, SubscriberState>,
    transcoder: Option<Transcoder>,
    /// Whether the source has B-frames (decided once).
    bframes: BFrameDetector,
    video_transcoder: Option<VideoTranscoder>,
    /// The transcoded frames since their latest keyframe (instant start for WebRTC viewers).
    transcoded_gop: GopCache,
    linger: Option<SpawnHandle>,
    bytes_received: u64,
    video_frames: u64,
    video_keyframes: u64,
    audio_frames: u64,
    bitrate: RateMeter,
    frame_rate: RateMeter,
    metadata: Vec<(String, MetaValue)>,
    telemetry: SharedTelemetry,
    /// Why this capture ended, for viewers that arrive after it (shared with its handles).
    end: CaptureEnd,
    record_settings: RecordSettings,
    recording: Option<RecordingStatus>,
    recorder: Option<Addr<Recorder>>,
    history: VecDeque<StatusChange>,
    started_at: SystemTime,
    origin: Instant,
    /// The capture's one output timeline across reconnects.
    timeline: Timeline,
    backoff: Backoff,
    /// Numbers the current connection; media of older ones is ignored.
    generation: u64,
    /// When the pending re-pull starts.
    retry_at: Option<Instant>,
    /// An on-demand capture's deadline for its dropped source to return.
    give_up: Option<SpawnHandle>,
    /// When the source dropped (until media flows again).
    lost_at: Option<Instant>,
    reconnects: u64,
    /// Since when subscribers wait for the source to come back (a keyframe, on video).
    resume_from: Option<Instant>,
    last_resume: Option<ResumeInfo>,
    /// Bytes of the connections before the current one.
    bytes_before: u64,
    /// Viewers get `FAILED` (not `STOPPED`) when the capture ends.
    end_failed: bool,
    /// `StopCapture` arrived: no more retries.
    stopping: bool,
    /// Media between the socket and this supervisor (bytes), shared with the reader and
    /// the normalizer of every connection.
    ingest: SharedBudget,
}

impl StreamSupervisor {
    /// A supervisor for `request`; `registry` hears when it stops on its own.
    pub fn new(
        id: Uuid,
        request: PullRequest,
        settings: CaptureSettings,
        starter: SourceStarter,
        registry: Option<Recipient<CaptureEnded>>,
    ) -> Self {
        Self {
            id,
            request,
            starter,
            registry,
            source: None,
            status: CaptureStatus::Pending,
            reason: None,
            codecs: CodecSet::default(),
            gop: GopCache::new(settings.keyframe_cache_bytes),
            subscribers: HashMap::new(),
            transcoder: None,
            bframes: BFrameDetector::new(),
            video_transcoder: None,
            transcoded_gop: GopCache::new(settings.keyframe_cache_bytes),
            linger: None,
            bytes_received: 0,
            video_frames: 0,
            video_keyframes: 0,
            audio_frames: 0,
            bitrate: RateMeter::new(BITRATE_WINDOW_MS),
            frame_rate: RateMeter::new(FRAME_RATE_WINDOW_MS),
            metadata: Vec::new(),
            telemetry: SharedTelemetry::default(),
            end: CaptureEnd::default(),
            record_settings: RecordSettings::default(),
            recording: None,
            recorder: None,
            history: VecDeque::from([StatusChange {
                at: SystemTime::now(),
                status: CaptureStatus::Pending,
                reason: None,
            }]),
            started_at: SystemTime::now(),
            origin: Instant::now(),
            timeline: Timeline::new(),
            backoff: Backoff::new(settings.reconnect_initial_ms, settings.reconnect_max_ms),
            ingest: ByteBudget::new(settings.ingest_queue_bytes),
            settings,
            generation: 0,
            retry_at: None,
            give_up: None,
            lost_at: None,
            reconnects: 0,
            resume_from: None,
            last_resume: None,
            bytes_before: 0,
            end_failed: false,
            stopping: false,
        }
    }

    /// Where and how this capture records, when its request says `record`.
    pub fn with_record_settings(mut self, settings: RecordSettings) -> Self {
        self.record_settings = settings;
        self
    }

    fn start_recorder(&mut self, ctx: &mut Context<Self>) {
        let arbiter = Arbiter::new();
        let label = self.label();
        let stream = self.request.local_stream_name.clone();
        let (id, settings) = (self.id, self.record_settings.clone());
        let (has_audio, has_video) = (self.request.has_audio, self.request.has_video);
        let status = ctx.address().recipient::<RecordingStatus>();
        let recorder = Recorder::start_in_arbiter(&arbiter.handle(), move |ctx| {
            ctx.set_mailbox_capacity(4096);
            Recorder::new(label, stream, id, settings, status).expecting(has_audio, has_video)
        });
        self.recording = Some(RecordingStatus {
            file: None,
            bytes: 0,
            error: None,
        });
        ctx.address().do_send(Subscribe {
            id: Uuid::new_v4(),
            recipient: recorder.clone().recipient(),
            delivery: Delivery::Original,
        });
        self.recorder = Some(recorder);
    }

    /// Changes the status and remembers the transition (the last [`HISTORY_LEN`]); the same
    /// status with the same reason again (a retry failing the same way) is not a transition.
    fn set_status(&mut self, status: CaptureStatus, reason: Option<String>) {
        if status == self.status && reason == self.reason {
            return;
        }
        self.status = status;
        self.reason = reason.clone();
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(StatusChange {
            at: SystemTime::now(),
            status,
            reason,
        });
    }

    /// Starts one connection: a fresh normalizer and reader, numbered by `generation`.
    fn start_source(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let normalizer = NormalizerActor::new(
            self.label(),
            ctx.address().recipient(),
            ctx.address().recipient(),
            self.generation,
            self.ingest.clone(),
        )
        .start();
        let source = (self.starter)(SourceContext {
            url: self.request.url.clone(),
            settings: self.settings.clone(),
            may_pull_private: self.request.may_pull_private,
            events: ctx.address().recipient(),
            tags: normalizer.clone().recipient(),
            media_end: normalizer.recipient(),
            ingest: self.ingest.clone(),
        });
        self.source = Some(source);
    }

    /// The reader stopped (the pull failed or the connection ended); every frame it got was
    /// handled before this. Retries after the backoff delay, or fails an on-demand capture
    /// that never played.
    fn connection_ended(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.source = None;
        // Nothing more comes from this connection; a guard against anything that still would.
        self.generation += 1;
        self.bytes_before = self.bytes_received;
        if self.stopping {
            return;
        }
        warn!("{}: source failed: {reason}", self.label());
        if self.request.on_demand && !self.has_streamed() {
            // A viewer asked for a name that does not play: tell it now.
            self.fail_and_stop(ctx, reason);
            return;
        }
        let status = if self.has_streamed() {
            CaptureStatus::Reconnecting
        } else {
            CaptureStatus::Failed
        };
        self.set_status(status, Some(reason));
        self.source_lost(ctx);
        self.schedule_retry(ctx);
    }

    /// The source stopped delivering (its connection ended, or the publisher left): the next
    /// frames start a new segment of the timeline, at a keyframe for every subscriber.
    fn source_lost(&mut self, ctx: &mut Context<Self>) {
        self.timeline.discontinuity();
        // The cached frames end where the source did; what comes next may not start at a
        // keyframe.
        self.gop.clear();
        self.transcoded_gop.clear();
        if let Some(t) = &self.video_transcoder {
            t.addr.do_send(ResetVideoTranscode);
        }
        let has_video = self.codecs.video.is_some();
        for sub in self.subscribers.values_mut() {
            sub.waiting_for_keyframe = has_video;
        }
        if self.lost_at.is_none() {
            self.lost_at = Some(Instant::now());
        }
        if self.has_streamed() && self.resume_from.is_none() {
            self.resume_from = Some(Instant::now());
        }
        if self.request.on_demand && self.give_up.is_none() {
            let limit = self.settings.on_demand_give_up_ms;
            self.give_up = Some(
                ctx.run_later(Duration::from_millis(limit), move |act, ctx| {
                    act.give_up = None;
                    if act.status == CaptureStatus::ProcessedRemote {
                        return;
                    }
                    let last = act.reason.clone().unwrap_or_default();
                    act.fail_and_stop(
                        ctx,
                        format!("the source did not come back within {limit} ms ({last})"),
                    );
                }),
            );
        }
    }

    /// Schedules the next connection after the backoff delay.
    fn schedule_retry(&mut self, ctx: &mut Context<Self>) {
        // Jitter from the OS random source (uuid v4), in [0, 1].
        let jitter = (Uuid::new_v4().as_u128() % 1_000_001) as f64 / 1_000_000.0;
        let delay = Duration::from_millis(self.backoff.next_delay_ms(jitter));
        info!(
            "{}: pulling again in {} ms (attempt {})",
            self.label(),
            delay.as_millis(),
            self.backoff.attempts()
        );
        ctx.run_later(delay, |act, ctx| {
            act.retry_at = None;
            if !act.stopping {
                act.start_source(ctx);
            }
        });
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Ends the capture as failed: viewers get `FAILED` with `reason`.
    fn fail_and_stop(&mut self, ctx: &mut Context<Self>, reason: String) {
        warn!("{}: giving up: {reason}", self.label());
        self.set_status(CaptureStatus::Failed, Some(reason));
        self.end_failed = true;
        ctx.stop();
    }

    /// Where this capture's viewers record their measurements.
    pub fn telemetry(&self) -> SharedTelemetry {
        self.telemetry.clone()
    }

    /// Where this capture leaves the reason it ended.
    pub fn end(&self) -> CaptureEnd {
        self.end.clone()
    }

    fn now_ms(&self) -> i64 {
        self.origin.elapsed().as_millis() as i64
    }

    fn label(&self) -> String {
        // The local name is the uri when none was given: its stream key stays out of logs.
        format!(
            "capture {} ({})",
            redact_text(&self.request.local_stream_name),
            self.id
        )
    }

    fn on_codecs(&mut self, mut codecs: CodecSet, ctx: &mut Context<Self>) {
        // A connection's normalizer never drops a track; a fresh one (after a reconnect)
        // reports the tracks one at a time. A track not reported yet keeps its configuration,
        // so a reconnect to the same source is not a codec change.
        codecs.video = codecs.video.or_else(|| self.codecs.video.clone());
        codecs.audio = codecs.audio.or_else(|| self.codecs.audio.clone());
        if !self.request.has_video {
            codecs.video = None;
        }
        if !self.request.has_audio {
            codecs.audio = None;
        }
        if codecs == self.codecs {
            return;
        }
        info!(
            "{}: codec configuration {}",
            self.label(),
            describe(&codecs)
        );
        let video_changed = codecs.video != self.codecs.video;
        if video_changed {
            // Cached frames belong to the old configuration.
            self.gop.clear();
            self.transcoded_gop.clear();
            if let Some(t) = &self.video_transcoder {
                t.addr.do_send(ResetVideoTranscode);
            }
        }
        if codecs.audio != self.codecs.audio {
            if let (Some(t), Some(config)) = (&self.transcoder, &codecs.audio) {
                t.addr.do_send(TranscoderConfig {
                    config: config.clone(),
                });
            }
        }
        self.codecs = codecs.clone();
        if video_changed {
            if let Some(avc) = &codecs.video {
                if self.bframes.on_config(avc) {
                    self.bframes_found(ctx);
                }
            }
        }
        for sub in self.subscribers.values() {
            // Rare and essential: queued even past the mailbox bound.
            sub.recipient
                .do_send(SubscriberMedia::Codecs(codecs.clone()));
        }
    }

    fn on_frame(&mut self, mut frame: MediaFrame, ctx: &mut Context<Self>) {
        if let Some(reason) = self.over_memory_budget() {
            self.stopping = true;
            self.fail_and_stop(ctx, reason);
            return;
        }
        let wanted = match frame.track {
            Track::Video => self.request.has_video,
            Track::Audio => self.request.has_audio,
        };
        if !wanted {
            return;
        }
        let now = self.now_ms();
        self.timeline.place(&mut frame, now);
        let had_media = self.has_streamed();
        match frame.track {
            Track::Video => {
                self.video_frames += 1;
                self.video_keyframes += u64::from(frame.keyframe);
                self.frame_rate.add(now, 1);
            }
            Track::Audio => self.audio_frames += 1,
        }
        if self.status != CaptureStatus::ProcessedRemote {
            match self.lost_at.take() {
                Some(lost) if had_media => {
                    self.reconnects += 1;
                    info!(
                        "{}: the source is back after {} ms; media is flowing again",
                        self.label(),
                        lost.elapsed().as_millis()
                    );
                }
                _ => info!("{}: media is flowing", self.label()),
            }
            self.backoff.reset();
            if let Some(handle) = self.give_up.take() {
                ctx.cancel_future(handle);
            }
            self.set_status(CaptureStatus::ProcessedRemote, None);
        }
        if let GopPush::Overflowed {
            would_hold,
            max_bytes,
        } = self.gop.push(&frame)
        {
            warn!(
                "{}: the frames since the last keyframe ({would_hold} bytes) pass \
                 capture.keyframe_cache_bytes ({max_bytes}); new viewers wait for the next keyframe",
                self.label()
            );
        }
        if let Some(since) = self.resume_from {
            // Subscribers resume at a video keyframe (any frame when there is no video).
            let resumes = match frame.track {
                Track::Video => frame.keyframe,
                Track::Audio => self.codecs.video.is_none(),
            };
            if resumes {
                self.resume_from = None;
                self.last_resume = Some(ResumeInfo {
                    at: SystemTime::now(),
                    gap_ms: since.elapsed().as_millis() as u64,
                });
            }
        }
        if frame.track == Track::Audio {
            if let Some(t) = &self.transcoder {
                // Over its queue the transcoder is far behind: a frame less beats a backlog.
                if let Some(charge) = t.queue.try_charge(frame.data.len() + MESSAGE_OVERHEAD) {
                    t.addr.do_send(TranscodeAudio {
                        frame: frame.clone(),
                        charge,
                    });
                }
            }
            // AAC goes to the subscribers that take the original; WebRTC gets Opus.
            self.fan_out(&frame, Some(Delivery::Original), ctx);
        } else {
            if self.bframes.on_frame(&frame) {
                self.bframes_found(ctx);
            }
            if self.webrtc_video_transcoded() {
                // The original (B-frames and all) for recordings; WebRTC gets the transcode.
                if let Some(t) = &mut self.video_transcoder {
                    // Over its queue it is far behind: skip to the next keyframe.
                    let charge = (!t.skipping || frame.keyframe)
                        .then(|| t.queue.try_charge(frame.data.len() + MESSAGE_OVERHEAD))
                        .flatten();
                    t.skipping = charge.is_none();
                    if let Some(charge) = charge {
                        t.addr.do_send(TranscodeVideo {
                            frame: frame.clone(),
                            charge,
                        });
                    }
                }
                self.fan_out(&frame, Some(Delivery::Original), ctx);
            } else {
                self.fan_out(&frame, None, ctx);
            }
        }
    }

    /// Sends `frame` to every subscriber (or only those taking `only`), with `try_send`.
    fn fan_out(&mut self, frame: &MediaFrame, only: Option<Delivery>, ctx: &mut Context<Self>) {
        let has_video = self.codecs.video.is_some();
        let mut gone = Vec::new();
        for (id, sub) in self.subscribers.iter_mut() {
            if only.is_some_and(|d| d != sub.delivery) {
                continue;
            }
            if frame.track == Track::Video {
                if frame.keyframe {
                    sub.waiting_for_keyframe = false;
                } else if sub.waiting_for_keyframe {
                    continue;
                }
            }
            let Some(charge) = sub.queue.try_charge(frame.data.len() + MESSAGE_OVERHEAD) else {
                // Its queue holds its limit in bytes: as full as a full mailbox.
                if has_video && !sub.waiting_for_keyframe {
                    log::debug!("subscriber {id} fell behind; skipping to the next keyframe");
                    sub.waiting_for_keyframe = true;
                }
                continue;
            };
            match sub
                .recipient
                .try_send(SubscriberMedia::Frame(frame.clone(), charge))
            {
                Ok(()) => {}
                Err(SendError::Full(_)) => {
                    if has_video && !sub.waiting_for_keyframe {
                        log::debug!("subscriber {id} fell behind; skipping to the next keyframe");
                        sub.waiting_for_keyframe = true;
                    }
                }
                Err(SendError::Closed(_)) => gone.push(*id),
            }
        }
        if !gone.is_empty() {
            for id in gone {
                self.subscribers.remove(&id);
            }
            self.subscribers_changed(ctx);
        }
    }

    /// Starts or stops the transcoder and the on-demand linger timer after the set of
    /// subscribers changed.
    fn subscribers_changed(&mut self, ctx: &mut Context<Self>) {
        let webrtc = self.webrtc_subscribers();
        self.update_video_transcoder(ctx);
        if webrtc > 0 && self.transcoder.is_none() && self.request.has_audio {
            self.start_transcoder(ctx);
        } else if webrtc == 0 {
            if let Some(t) = self.transcoder.take() {
                info!(
                    "{}: last WebRTC viewer left; audio transcoder stopped",
                    self.label()
                );
                t.arbiter.stop();
            }
        }
        if self.request.on_demand {
            if self.subscribers.is_empty() {
                self.arm_linger(
                    ctx,
                    Duration::from_millis(self.settings.on_demand_linger_ms),
                );
            } else if let Some(handle) = self.linger.take() {
                ctx.cancel_future(handle);
            }
        }
    }

    /// Sends the cached frames since the latest keyframe to `recipient` (with `try_send`;
    /// video only when `video_only`): for a WebRTC subscriber of a source with B-frames the
    /// transcoded ones, else the original. True when a keyframe went out.
    fn replay_cache(
        &self,
        recipient: &Recipient<SubscriberMedia>,
        queue: &SharedBudget,
        delivery: Delivery,
        video_only: bool,
    ) -> bool {
        let cache = if delivery == Delivery::WebRtc && self.webrtc_video_transcoded() {
            self.transcoded_gop.frames()
        } else {
            self.gop.frames()
        };
        let frames: Vec<MediaFrame> = cache
            .iter()
            .filter(|f| !video_only || f.track == Track::Video)
            .cloned()
            .collect();
        if frames.is_empty() {
            return false;
        }
        let has_keyframe = frames.iter().any(|f| f.track == Track::Video && f.keyframe);
        let cost = frames.iter().map(|f| f.data.len() + MESSAGE_OVERHEAD).sum();
        let Some(charge) = queue.try_charge(cost) else {
            return false;
        };
        recipient
            .try_send(SubscriberMedia::Replay(frames, charge))
            .is_ok()
            && has_keyframe
    }

    /// What this capture holds in memory, in bytes: media in flight from the socket, the
    /// keyframe caches, the largest subscriber queue (subscribers share frames, so their
    /// queues overlap), the transcoders' queues.
    fn memory_in_use(&self) -> MemoryInUse {
        MemoryInUse {
            ingest: self.ingest.used(),
            caches: self.gop.bytes() + self.transcoded_gop.bytes(),
            subscriber_queue: self
                .subscribers
                .values()
                .map(|s| s.queue.used())
                .max()
                .unwrap_or(0),
            transcoders: self.transcoder.as_ref().map_or(0, |t| t.queue.used())
                + self.video_transcoder.as_ref().map_or(0, |t| t.queue.used()),
        }
    }

    /// The reason to end this capture when it holds more than its memory budget.
    fn over_memory_budget(&self) -> Option<String> {
        let used = self.memory_in_use();
        let budget = self.settings.memory_budget_bytes;
        (used.total() > budget).then(|| {
            format!(
                "the capture held {} bytes, over its memory budget of {budget} \
                 (capture.memory_budget_bytes): {} in flight from the source, {} in keyframe \
                 caches, {} in the largest viewer queue, {} queued for transcoders",
                used.total(),
                used.ingest,
                used.caches,
                used.subscriber_queue,
                used.transcoders
            )
        })
    }

    /// Media has flowed at least once.
    fn has_streamed(&self) -> bool {
        self.video_frames + self.audio_frames > 0
    }

    /// WebRTC viewers get transcoded video (the source has B-frames).
    fn webrtc_video_transcoded(&self) -> bool {
        self.request.has_video && self.bframes.decided() == Some(true)
    }

    fn webrtc_subscribers(&self) -> usize {
        self.subscribers
            .values()
            .filter(|s| s.delivery == Delivery::WebRtc)
            .count()
    }

    fn bframes_found(&mut self, ctx: &mut Context<Self>) {
        info!(
            "{}: the video has B-frames ({}); WebRTC viewers get a Constrained Baseline transcode, recordings the original",
            self.label(),
            self.bframes.evidence().unwrap_or("")
        );
        self.update_video_transcoder(ctx);
    }

    /// Runs the video transcoder while the capture has B-frames and WebRTC subscribers.
    fn update_video_transcoder(&mut self, ctx: &mut Context<Self>) {
        let wanted = self.webrtc_video_transcoded() && self.webrtc_subscribers() > 0;
        if wanted && self.video_transcoder.is_none() {
            let arbiter = Arbiter::new();
            let label = self.label();
            let output = ctx.address().recipient::<TranscodedVideo>();
            let settings = TranscodeSettings::for_source(
                self.settings.bframe_transcode_bitrate,
                self.declared_frame_rate(),
            );
            let addr = VideoTranscoderActor::start_in_arbiter(&arbiter.handle(), move |ctx| {
                ctx.set_mailbox_capacity(1024);
                VideoTranscoderActor::new(label, settings, output)
            });
            // Start from the cached keyframe: the first viewer need not wait for the next.
            let backlog: Vec<MediaFrame> = self
                .gop
                .frames()
                .iter()
                .filter(|f| f.track == Track::Video)
                .cloned()
                .collect();
            if !backlog.is_empty() {
                addr.do_send(TranscodeBacklog { frames: backlog });
            }
            info!(
                "{}: video transcoder (B-frames → Constrained Baseline) started",
                self.label()
            );
            self.video_transcoder = Some(VideoTranscoder {
                addr,
                arbiter,
                queue: ByteBudget::new(self.settings.transcoder_queue_bytes),
                skipping: false,
            });
        } else if !wanted {
            if let Some(t) = self.video_transcoder.take() {
                info!("{}: video transcoder stopped", self.label());
                t.arbiter.stop();
                self.transcoded_gop.clear();
            }
        }
    }

    fn start_transcoder(&mut self, ctx: &mut Context<Self>) {
        let arbiter = Arbiter::new();
        let label = self.label();
        let bitrate = self.settings.opus_bitrate;
        let output = ctx.address().recipient::<TranscodedAudio>();
        let addr = AudioTranscoderActor::start_in_arbiter(&arbiter.handle(), move |_| {
            AudioTranscoderActor::new(label, bitrate, output)
        });
        if let Some(config) = &self.codecs.audio {
            addr.do_send(TranscoderConfig {
                config: config.clone(),
            });
        }
        info!(
            "{}: first WebRTC viewer; audio transcoder (AAC → Opus) started",
            self.label()
        );
        self.transcoder = Some(Transcoder {
            addr,
            arbiter,
            queue: ByteBudget::new(self.settings.transcoder_queue_bytes),
        });
    }

    /// Stops an on-demand capture after `after` unless a subscriber arrives first.
    fn arm_linger(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if self.linger.is_some() {
            return;
        }
        self.linger = Some(ctx.run_later(after, move |act, ctx| {
            act.linger = None;
            if act.subscribers.is_empty() {
                info!(
                    "{}: no viewers for {} ms; stopping the on-demand capture",
                    act.label(),
                    after.as_millis()
                );
                act.reason =
                    Some("the on-demand capture ended after its last viewer left".to_string());
                ctx.stop();
            }
        }));
    }

    /// The frame rate the source declares: its SPS timing, else its `onMetaData`.
    fn declared_frame_rate(&self) -> Option<f64> {
        self.codecs
            .video
            .as_ref()
            .and_then(|v| v.sps_info.as_ref())
            .and_then(|s| s.frame_rate)
            .or_else(|| metadata_number(&self.metadata, &["framerate", "fps"]))
    }

    fn snapshot(&mut self) -> CaptureSnapshot {
        let now = self.now_ms();
        let measured_fps = self.frame_rate.per_second(now);
        let video = self.codecs.video.as_ref().map(|avc| {
            let sps = avc.sps_info.as_ref();
            VideoInfo {
                codec: "H264".to_string(),
                profile: profile_name(avc.profile, avc.compatibility).to_string(),
                level: level_name(avc.level),
                width: sps.map_or(0, |s| s.width),
                height: sps.map_or(0, |s| s.height),
                frame_rate: self
                    .declared_frame_rate()
                    .or((measured_fps > 0.0).then_some(measured_fps))
                    .map(|f| (f * 100.0).round() / 100.0),
            }
        });
        let (frame_latency, first_frame) = {
            let telemetry = self.telemetry.lock();
            (
                LatencySummary::of(&telemetry.frame_latency_us),
                LatencySummary::of(&telemetry.first_frame_us),
            )
        };
        let audio = self.codecs.audio.as_ref().map(|asc| AudioInfo {
            codec: "AAC".to_string(),
            profile: asc.profile_name().to_string(),
            sample_rate: asc.output_sample_rate(),
            channels: asc.output_channels(),
        });
        CaptureSnapshot {
            id: self.id,
            uri: self.request.uri.clone(),
            local_stream_name: self.request.local_stream_name.clone(),
            record: self.request.record,
            has_audio: self.request.has_audio,
            has_video: self.request.has_video,
            status: self.status,
            reason: self.reason.clone(),
            video,
            audio,
            bytes_received: self.bytes_received,
            video_frames: self.video_frames,
            video_keyframes: self.video_keyframes,
            audio_frames: self.audio_frames,
            bitrate_kbps: (self.bitrate.per_second(now) * 8.0 / 1000.0).round(),
            measured_fps: (measured_fps * 10.0).round() / 10.0,
            started_at: self.started_at,
            subscribers: self.subscribers.len(),
            on_demand: self.request.on_demand,
            recording: self.recording.clone(),
            history: self.history.iter().cloned().collect(),
            reconnects: self.reconnects,
            b_frames: self.bframes.decided(),
            b_frames_evidence: self.bframes.evidence().map(str::to_string),
            video_transcoding: self.video_transcoder.is_some(),
            last_resume: self.last_resume.clone(),
            retry: (self.backoff.attempts() > 0 && self.status != CaptureStatus::ProcessedRemote)
                .then(|| RetryInfo {
                    attempt: self.backoff.attempts(),
                    next_attempt_in_ms: self.retry_at.map_or(0, |at| {
                        at.saturating_duration_since(Instant::now()).as_millis() as u64
                    }),
                }),
            frame_latency,
            first_frame,
            metadata: self.metadata.clone(),
        }
    }
}

impl Actor for StreamSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!("{}: pulling {}", self.label(), self.request.url);
        self.start_source(ctx);
        if self.request.record {
            self.start_recorder(ctx);
        }
        if self.request.on_demand {
            let first_viewer =
                Duration::from_millis(self.settings.on_demand_linger_ms) + FIRST_VIEWER_GRACE;
            self.arm_linger(ctx, first_viewer);
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Err(panic) = panic_guard::catch(|| self.tell_everyone_it_ended()) {
            error!("{}: caught a panic while stopping: {panic}", self.label());
        }
    }
}

impl StreamSupervisor {
    /// The end of the capture: the source and transcoders stop, subscribers and the Registry
    /// are told.
    fn tell_everyone_it_ended(&mut self) {
        let reason = self
            .reason
            .clone()
            .unwrap_or_else(|| "the capture was terminated".to_string());
        self.end.record(&reason);
        if let Some(source) = self.source.take() {
            source.do_send(StopSource);
        }
        if let Some(t) = self.transcoder.take() {
            t.arbiter.stop();
        }
        if let Some(t) = self.video_transcoder.take() {
            t.arbiter.stop();
        }
        for sub in self.subscribers.values() {
            sub.recipient.do_send(SubscriberMedia::Stopped {
                reason: reason.clone(),
                failed: self.end_failed,
            });
        }
        if let Some(registry) = &self.registry {
            registry.do_send(CaptureEnded { id: self.id });
        }
        info!("{}: stopped", self.label());
    }
}

impl Handler<ReaderEvent> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, event: ReaderEvent, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| match event {
            ReaderEvent::Connected { peer } => info!("{}: connected to {peer}", self.label()),
            ReaderEvent::HandshakeDone => log::debug!("{}: handshake done", self.label()),
            ReaderEvent::PlayStarted => info!("{}: the source started playing", self.label()),
            ReaderEvent::Metadata(props) => self.metadata = props,
            ReaderEvent::Status { message } => info!("{}: {message}", self.label()),
            ReaderEvent::Progress { bytes_received } => {
                let total = self.bytes_before + bytes_received;
                let delta = total.saturating_sub(self.bytes_received);
                self.bytes_received = total;
                let now = self.now_ms();
                self.bitrate.add(now, delta);
            }
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<SourceMedia> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, media: SourceMedia, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            if media.generation != self.generation {
                // Late frames of a connection that has already ended.
                return;
            }
            match media.event {
                NormalizedEvent::CodecChange(codecs) => self.on_codecs(codecs, ctx),
                NormalizedEvent::Frame(frame) => self.on_frame(frame, ctx),
            }
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<SourceMediaEnded> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SourceMediaEnded, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            if msg.generation != self.generation {
                // About a connection the supervisor has already given up on.
                return;
            }
            match msg.end {
                MediaEnd::PublisherLeft { reason } => {
                    if self.has_streamed() {
                        let reason = format!("{reason}; waiting for it to return");
                        self.set_status(CaptureStatus::Reconnecting, Some(reason));
                    }
                    self.source_lost(ctx);
                }
                MediaEnd::ConnectionEnded { reason } => self.connection_ended(reason, ctx),
                MediaEnd::Crashed { reason } => {
                    error!("{}: {reason}", self.label());
                    self.stopping = true;
                    self.fail_and_stop(ctx, reason);
                }
            }
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<Subscribe> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            let recipient = msg.recipient;
            if self.codecs != CodecSet::default() {
                recipient.do_send(SubscriberMedia::Codecs(self.codecs.clone()));
            }
            // Instant start: the frames since the latest keyframe, at once. WebRTC subscribers
            // get the cached video only; their audio is Opus, which starts live.
            let video_only = msg.delivery == Delivery::WebRtc;
            let queue = ByteBudget::new(self.settings.subscriber_queue_bytes);
            let keyframe_sent = self.replay_cache(&recipient, &queue, msg.delivery, video_only);
            let waiting_for_keyframe = self.codecs.video.is_some() && !keyframe_sent;
            self.subscribers.insert(
                msg.id,
                SubscriberState {
                    recipient,
                    queue,
                    delivery: msg.delivery,
                    waiting_for_keyframe,
                },
            );
            self.subscribers_changed(ctx);
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<RequestKeyframe> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RequestKeyframe, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            if self.codecs.video.is_none() {
                return;
            }
            let Some(sub) = self.subscribers.get(&msg.id) else {
                return;
            };
            let (recipient, queue, delivery) =
                (sub.recipient.clone(), sub.queue.clone(), sub.delivery);
            let keyframe_sent = match &self.video_transcoder {
                Some(t) if delivery == Delivery::WebRtc && self.webrtc_video_transcoded() => {
                    // A fresh keyframe for everyone watching the transcode, times moving forward.
                    t.addr.do_send(ForceKeyframe);
                    false
                }
                // The cached video from the latest keyframe, to this subscriber only.
                _ => self.replay_cache(&recipient, &queue, delivery, true),
            };
            if let Some(sub) = self.subscribers.get_mut(&msg.id) {
                sub.waiting_for_keyframe = !keyframe_sent;
            }
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<Unsubscribe> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            if self.subscribers.remove(&msg.id).is_some() {
                self.subscribers_changed(ctx);
            }
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<RecordingStatus> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RecordingStatus, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            self.recording = Some(msg);
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<TranscodedAudio> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: TranscodedAudio, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            if self.transcoder.is_none() {
                // Late output of a transcoder that was just stopped.
                return;
            }
            for frame in &msg.frames {
                self.fan_out(frame, Some(Delivery::WebRtc), ctx);
            }
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<TranscodedVideo> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, msg: TranscodedVideo, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| {
            if self.video_transcoder.is_none() {
                // Late output of a transcoder that was just stopped.
                return;
            }
            for frame in &msg.frames {
                let _ = self.transcoded_gop.push(frame);
                self.fan_out(frame, Some(Delivery::WebRtc), ctx);
            }
        });
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl Handler<GetSnapshot> for StreamSupervisor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _msg: GetSnapshot, ctx: &mut Self::Context) -> Self::Result {
        match panic_guard::catch(|| self.snapshot()) {
            Ok(snapshot) => MessageResult(snapshot),
            Err(panic) => {
                let reason = panic.reason("this capture");
                self.crashed(panic, ctx);
                MessageResult(self.minimal_snapshot(reason))
            }
        }
    }
}

impl Handler<StopCapture> for StreamSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    /// Answered once the capture has stopped and its recording (if any) is closed.
    fn handle(&mut self, msg: StopCapture, _ctx: &mut Self::Context) -> Self::Result {
        // Nothing here can panic but the log line's formatting: no guard needed.
        info!("{}: stopping: {}", self.label(), msg.reason);
        self.registry = None;
        self.stopping = true;
        self.reason = Some(msg.reason);
        let recorder = self.recorder.take();
        Box::pin(
            async move {
                if let Some(recorder) = recorder {
                    let _ = recorder.send(FinishRecording).await;
                }
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        )
    }
}

impl Handler<InjectPanic> for StreamSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: InjectPanic, ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| panic!("injected panic (test)"));
        if let Err(panic) = outcome {
            self.crashed(panic, ctx);
        }
    }
}

impl StreamSupervisor {
    /// A handler panicked: the state may be half-changed, so this capture ends `FAILED`
    /// (viewers are told so, the Registry forgets it); every other capture goes on.
    fn crashed(&mut self, panic: Panic, ctx: &mut Context<Self>) {
        error!(
            "{}: caught a panic; ending this capture: {panic}",
            self.label()
        );
        self.stopping = true;
        self.fail_and_stop(ctx, panic.reason("this capture"));
    }

    /// What `find_all` shows when building the full snapshot itself panicked.
    fn minimal_snapshot(&self, reason: String) -> CaptureSnapshot {
        CaptureSnapshot {
            id: self.id,
            uri: self.request.uri.clone(),
            local_stream_name: self.request.local_stream_name.clone(),
            record: self.request.record,
            has_audio: self.request.has_audio,
            has_video: self.request.has_video,
            status: CaptureStatus::Failed,
            reason: Some(reason),
            video: None,
            audio: None,
            bytes_received: self.bytes_received,
            video_frames: self.video_frames,
            video_keyframes: self.video_keyframes,
            audio_frames: self.audio_frames,
            bitrate_kbps: 0.0,
            measured_fps: 0.0,
            started_at: self.started_at,
            subscribers: self.subscribers.len(),
            on_demand: self.request.on_demand,
            recording: None,
            history: Vec::new(),
            reconnects: self.reconnects,
            b_frames: None,
            b_frames_evidence: None,
            video_transcoding: false,
            last_resume: None,
            retry: None,
            frame_latency: None,
            first_frame: None,
            metadata: Vec::new(),
        }
    }
}

/// Where a capture's memory is, in bytes (see `StreamSupervisor::memory_in_use`).
#[derive(Debug, Clone, Copy)]
struct MemoryInUse {
    ingest: usize,
    caches: usize,
    subscriber_queue: usize,
    transcoders: usize,
}

impl MemoryInUse {
    fn total(&self) -> usize {
        self.ingest + self.caches + self.subscriber_queue + self.transcoders
    }
}

/// `level_idc` 31 → "3.1"; 9 → "1b".
fn level_name(level_idc: u8) -> String {
    if level_idc == 9 {
        "1b".to_string()
    } else {
        format!("{}.{}", level_idc / 10, level_idc % 10)
    }
}

fn metadata_number(metadata: &[(String, MetaValue)], keys: &[&str]) -> Option<f64> {
    metadata.iter().find_map(|(k, v)| match v {
        MetaValue::Number(n) if keys.contains(&k.as_str()) && *n > 0.0 => Some(*n),
        _ => None,
    })
}

fn describe(codecs: &CodecSet) -> String {
    let video = codecs.video.as_ref().map(|v| {
        let size = v
            .sps_info
            .as_ref()
            .map(|s| format!(" {}x{}", s.width, s.height))
            .unwrap_or_default();
        format!("H.264 {}{size}", profile_name(v.profile, v.compatibility))
    });
    let audio = codecs.audio.as_ref().map(|a| {
        format!(
            "{} {} Hz {} ch",
            a.profile_name(),
            a.output_sample_rate(),
            a.output_channels()
        )
    });
    match (video, audio) {
        (Some(v), Some(a)) => format!("{v} + {a}"),
        (Some(v), None) => v,
        (None, Some(a)) => a,
        (None, None) => "none".to_string(),
    }
}
