//! [`Capture`]: one capture's decisions as a state machine — inputs in, actions out, time
//! passed in.
//!
//! It decides: the status and its history; when to pull again (jittered backoff) and when an
//! on-demand capture gives up or ends for want of viewers; the one timeline across
//! reconnects; the keyframe caches; who gets which frame (keyframe gating, replays of the
//! cache); when the transcoders run and what they get; the memory budget. It does no I/O,
//! reads no clock and holds no actor: the `StreamSupervisor` feeds it inputs with the time
//! and carries out the actions, and arms one timer at [`Capture::next_deadline`].

use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};

use super::action::{Action, Outgoing};
use super::input::{Input, QueuedBytes, SourceEnd};
use super::status::{CaptureStatus, ResumeInfo, RetryInfo, StatusChange, StatusLog};
use super::subscribers::{Delivery, SubscriberId, Subscribers};
use crate::backoff::Backoff;
use crate::config::CaptureSettings;
use crate::gop::{GopCache, GopPush};
use crate::media::{CodecSet, MediaFrame, Track};
use crate::rtmp::session::MetaValue;
use crate::stats::RateMeter;
use crate::timeline::Timeline;
use crate::video::BFrameDetector;

/// Window over which the frame rate is averaged.
const FRAME_RATE_WINDOW_MS: i64 = 2000;
/// Window over which the bitrate is averaged: longer than a typical 2 s GOP, so the burst of
/// each keyframe does not swing the figure.
const BITRATE_WINDOW_MS: i64 = 6000;
/// Extra time an on-demand capture waits for its first viewer (ICE + DTLS take a moment).
pub const FIRST_VIEWER_GRACE: Duration = Duration::from_secs(15);

/// What a capture is asked to do.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// How logs name it (no stream key).
    pub label: String,
    /// Started by a viewer: gives up when its source does not come back, ends when its
    /// viewers leave.
    pub on_demand: bool,
    /// Fed by a publisher (RTMP publish) instead of a pull: when its connection ends, the
    /// next source is started at once (it waits for the publisher to come back, nothing
    /// dials), and the capture fails when none came within `publish_grace_ms`.
    pub published: bool,
    /// How long a published capture waits for its publisher to return, ms.
    pub publish_grace_ms: u64,
    /// Record it.
    pub record: bool,
    pub has_audio: bool,
    pub has_video: bool,
    pub settings: CaptureSettings,
    /// Seeds the backoff jitter (random in the server, fixed in tests).
    pub jitter_seed: u64,
}

/// Counters of what came in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes_received: u64,
    pub video_frames: u64,
    pub video_keyframes: u64,
    pub audio_frames: u64,
}

/// What a capture receives, averaged over the last seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Kilobits per second received, over the last few seconds.
    pub bitrate_kbps: f64,
    /// Video frames per second received, over the last two seconds.
    pub measured_fps: f64,
}

/// The video transcoder, while it runs.
#[derive(Debug, Clone, Copy)]
struct VideoTranscoding {
    /// Its queue was full: frames skip it until the next keyframe.
    skipping: bool,
}

/// One capture's state.
#[derive(Debug)]
pub struct Capture {
    config: CaptureConfig,
    /// The instant and wall time the capture started: wall times are derived from them.
    started: Instant,
    started_wall: SystemTime,
    status: StatusLog,
    codecs: CodecSet,
    /// The original frames since the latest keyframe.
    gop: GopCache,
    /// The transcoded frames since their latest keyframe.
    transcoded_gop: GopCache,
    subscribers: Subscribers,
    audio_transcoder: bool,
    video_transcoder: Option<VideoTranscoding>,
    bframes: BFrameDetector,
    counters: Counters,
    /// Bytes of the connections before the current one.
    bytes_before: u64,
    bitrate: RateMeter,
    frame_rate: RateMeter,
    metadata: Vec<(String, MetaValue)>,
    timeline: Timeline,
    backoff: Backoff,
    jitter: SplitMix64,
    /// Numbers the current connection; media of older ones is ignored.
    generation: u64,
    source_running: bool,
    retry_at: Option<Instant>,
    /// An on-demand capture's deadline for its dropped source to return.
    give_up_at: Option<Instant>,
    /// An on-demand capture's deadline for a viewer to come.
    linger_at: Option<(Instant, Duration)>,
    /// When the source dropped (until media flows again).
    lost_at: Option<Instant>,
    reconnects: u64,
    /// Since when subscribers wait for the source to come back (a keyframe, on video).
    resume_from: Option<Instant>,
    last_resume: Option<ResumeInfo>,
    /// No more retries: the capture is stopping.
    stopping: bool,
    /// Why it ends, when that is not the status's reason (terminated, no viewers left).
    end_reason: Option<String>,
    /// Subscribers get `FAILED` (not `STOPPED`) when it ends.
    end_failed: bool,
    /// `End` was asked for.
    ended: bool,
    actions: Vec<Action>,
}

impl Capture {
    /// A capture that has not started, at `now` (wall time `wall`).
    pub fn new(config: CaptureConfig, now: Instant, wall: SystemTime) -> Self {
        let s = &config.settings;
        Self {
            started: now,
            started_wall: wall,
            status: StatusLog::new(wall),
            codecs: CodecSet::default(),
            gop: GopCache::new(s.keyframe_cache_bytes),
            transcoded_gop: GopCache::new(s.keyframe_cache_bytes),
            subscribers: Subscribers::default(),
            audio_transcoder: false,
            video_transcoder: None,
            bframes: BFrameDetector::new(),
            counters: Counters::default(),
            bytes_before: 0,
            bitrate: RateMeter::new(BITRATE_WINDOW_MS),
            frame_rate: RateMeter::new(FRAME_RATE_WINDOW_MS),
            metadata: Vec::new(),
            timeline: Timeline::new(),
            backoff: Backoff::new(s.reconnect_initial_ms, s.reconnect_max_ms),
            jitter: SplitMix64(config.jitter_seed),
            generation: 0,
            source_running: false,
            retry_at: None,
            give_up_at: None,
            linger_at: None,
            lost_at: None,
            reconnects: 0,
            resume_from: None,
            last_resume: None,
            stopping: false,
            end_reason: None,
            end_failed: false,
            ended: false,
            actions: Vec::new(),
            config,
        }
    }

    /// Takes `input` at `now`; returns what to do, in order. The actor reports what it could
    /// not deliver (`DeliveryFailed`, `SubscriberGone`, `VideoTranscodeDropped`) before it
    /// feeds the next frame.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        // Whatever a handling that panicked left behind is not to be carried out.
        self.actions.clear();
        match input {
            Input::Start => self.start(now),
            Input::Progress { bytes_received } => self.progress(bytes_received, now),
            Input::Metadata(props) => self.metadata = props,
            Input::Codecs { generation, codecs } => {
                if generation == self.generation {
                    self.on_codecs(codecs);
                }
            }
            Input::Frame {
                generation,
                frame,
                queued,
            } => {
                if generation == self.generation {
                    self.on_frame(frame, queued, now);
                }
            }
            Input::SourceEnded { generation, end } => {
                if generation == self.generation {
                    self.source_ended(end, now);
                }
            }
            Input::Subscribe { id, delivery } => self.subscribe(id, delivery, now),
            Input::Unsubscribe { id } | Input::SubscriberGone { id } => {
                if self.subscribers.remove(id) {
                    self.subscribers_changed(now);
                }
            }
            Input::KeyframeRequest { id } => self.keyframe_request(id),
            Input::DeliveryFailed { id } => {
                let has_video = self.codecs.video.is_some();
                if self.subscribers.fell_behind(id, has_video) {
                    debug!(
                        "subscriber {:x} fell behind; skipping to the next keyframe",
                        id.0
                    );
                }
            }
            Input::VideoTranscodeDropped => {
                if let Some(t) = &mut self.video_transcoder {
                    t.skipping = true;
                }
            }
            Input::TranscodedAudio { frame } => {
                if self.audio_transcoder {
                    self.fan_out(&frame, Some(Delivery::WebRtc));
                }
            }
            Input::TranscodedVideo { frame } => {
                if self.video_transcoder.is_some() {
                    let _ = self.transcoded_gop.push(&frame);
                    self.fan_out(&frame, Some(Delivery::WebRtc));
                }
            }
            Input::Tick => self.tick(now),
            Input::Fail { reason } => {
                self.stopping = true;
                self.fail(reason, now);
            }
            Input::Stop { reason } => {
                self.stopping = true;
                self.retry_at = None;
                self.end_reason = Some(reason);
            }
            Input::Finish => self.finish(),
        }
        std::mem::take(&mut self.actions)
    }

    /// When [`Input::Tick`] is next due (the earliest of the retry, give-up and linger
    /// deadlines), if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.retry_at,
            self.give_up_at,
            self.linger_at.map(|(at, _)| at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // --- what find_all shows -------------------------------------------------------------

    pub fn status(&self) -> CaptureStatus {
        self.status.status()
    }

    pub fn reason(&self) -> Option<&str> {
        self.status.reason()
    }

    pub fn history(&self) -> Vec<StatusChange> {
        self.status.history().cloned().collect()
    }

    pub fn codecs(&self) -> &CodecSet {
        &self.codecs
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    pub fn last_resume(&self) -> Option<&ResumeInfo> {
        self.last_resume.as_ref()
    }

    /// Whether the source has B-frames, once decided, and the evidence.
    pub fn b_frames(&self) -> (Option<bool>, Option<&str>) {
        (self.bframes.decided(), self.bframes.evidence())
    }

    pub fn video_transcoding(&self) -> bool {
        self.video_transcoder.is_some()
    }

    /// What is received at `now` (the meters drop what fell out of their windows).
    pub fn rates(&mut self, now: Instant) -> Rates {
        let now_ms = self.ms(now);
        Rates {
            bitrate_kbps: self.bitrate.per_second(now_ms) * 8.0 / 1000.0,
            measured_fps: self.frame_rate.per_second(now_ms),
        }
    }

    /// The frame rate the source declares: its SPS timing, else its `onMetaData`.
    pub fn declared_frame_rate(&self) -> Option<f64> {
        self.codecs
            .video
            .as_ref()
            .and_then(|v| v.sps_info.as_ref())
            .and_then(|s| s.frame_rate)
            .or_else(|| metadata_number(&self.metadata, &["framerate", "fps"]))
    }

    /// The pending retry, while the capture waits to pull its source again.
    pub fn retry(&self, now: Instant) -> Option<RetryInfo> {
        (self.backoff.attempts() > 0 && self.status() != CaptureStatus::ProcessedRemote).then(
            || RetryInfo {
                attempt: self.backoff.attempts(),
                next_attempt_in_ms: self
                    .retry_at
                    .map_or(0, |at| at.saturating_duration_since(now).as_millis() as u64),
            },
        )
    }

    /// What the keyframe caches hold, in bytes.
    pub fn cached_bytes(&self) -> usize {
        self.gop.bytes() + self.transcoded_gop.bytes()
    }

    /// Why the capture ends (once it has): told to its subscribers and to late viewers.
    pub fn end_reason(&self) -> String {
        self.end_reason
            .clone()
            .or_else(|| self.status.reason().map(str::to_string))
            .unwrap_or_else(|| "the capture was terminated".to_string())
    }

    /// Whether the end is a failure.
    pub fn end_failed(&self) -> bool {
        self.end_failed
    }

    // --- the source's life ---------------------------------------------------------------

    fn start(&mut self, now: Instant) {
        self.start_source();
        if self.config.record {
            self.actions.push(Action::StartRecorder);
        }
        if self.config.on_demand {
            let first_viewer = Duration::from_millis(self.config.settings.on_demand_linger_ms)
                + FIRST_VIEWER_GRACE;
            self.arm_linger(now, first_viewer);
        }
    }

    fn start_source(&mut self) {
        self.generation += 1;
        self.source_running = true;
        self.actions.push(Action::StartSource {
            generation: self.generation,
        });
    }

    fn progress(&mut self, bytes_received: u64, now: Instant) {
        let total = self.bytes_before + bytes_received;
        let delta = total.saturating_sub(self.counters.bytes_received);
        self.counters.bytes_received = total;
        let now_ms = self.ms(now);
        self.bitrate.add(now_ms, delta);
    }

    fn source_ended(&mut self, end: SourceEnd, now: Instant) {
        match end {
            SourceEnd::PublisherLeft { reason } => {
                if self.has_streamed() {
                    let reason = format!("{reason}; waiting for it to return");
                    self.set_status(CaptureStatus::Reconnecting, Some(reason), now);
                }
                self.source_lost(now);
            }
            SourceEnd::ConnectionEnded { reason } => self.connection_ended(reason, now),
            SourceEnd::Crashed { reason } => {
                log::error!("{}: {reason}", self.config.label);
                self.stopping = true;
                self.fail(reason, now);
            }
        }
    }

    /// The connection ended; every frame it got was handled before this. Retries after
    /// the backoff delay, or fails an on-demand capture that never played.
    fn connection_ended(&mut self, reason: String, now: Instant) {
        self.source_running = false;
        // Nothing more comes from this connection; a guard against anything that still would.
        self.generation += 1;
        self.bytes_before = self.counters.bytes_received;
        if self.stopping {
            return;
        }
        warn!("{}: source failed: {reason}", self.config.label);
        if self.config.on_demand && !self.has_streamed() {
            // A viewer asked for a name that does not play: tell it now.
            self.fail(reason, now);
            return;
        }
        if self.config.published {
            // Nothing to dial: the next source is the publisher's return, waited for now.
            let reason = format!("{reason}; waiting for the publisher to return");
            self.set_status(CaptureStatus::Reconnecting, Some(reason), now);
            self.source_lost(now);
            self.start_source();
            return;
        }
        let status = if self.has_streamed() {
            CaptureStatus::Reconnecting
        } else {
            CaptureStatus::Failed
        };
        self.set_status(status, Some(reason), now);
        self.source_lost(now);
        self.schedule_retry(now);
    }

    /// The source stopped delivering: the next frames start a new segment of the timeline,
    /// at a keyframe for every subscriber.
    fn source_lost(&mut self, now: Instant) {
        self.timeline.discontinuity();
        // The cached frames end where the source did; what comes next may not start at a
        // keyframe.
        self.gop.clear();
        self.transcoded_gop.clear();
        if self.video_transcoder.is_some() {
            self.actions.push(Action::ResetVideoTranscoder);
        }
        if self.codecs.video.is_some() {
            self.subscribers.wait_all();
        }
        self.lost_at.get_or_insert(now);
        if self.has_streamed() && self.resume_from.is_none() {
            self.resume_from = Some(now);
        }
        if self.give_up_at.is_none() {
            if self.config.published {
                self.give_up_at = Some(now + Duration::from_millis(self.config.publish_grace_ms));
            } else if self.config.on_demand {
                self.give_up_at =
                    Some(now + Duration::from_millis(self.config.settings.on_demand_give_up_ms));
            }
        }
    }

    fn schedule_retry(&mut self, now: Instant) {
        let delay = Duration::from_millis(self.backoff.next_delay_ms(self.jitter.unit()));
        info!(
            "{}: pulling again in {} ms (attempt {})",
            self.config.label,
            delay.as_millis(),
            self.backoff.attempts()
        );
        self.retry_at = Some(now + delay);
    }

    fn tick(&mut self, now: Instant) {
        if let Some((at, after)) = self.linger_at {
            if at <= now {
                self.linger_at = None;
                if self.subscribers.is_empty() && !self.ended {
                    info!(
                        "{}: no viewers for {} ms; stopping the on-demand capture",
                        self.config.label,
                        after.as_millis()
                    );
                    self.end_reason =
                        Some("the on-demand capture ended after its last viewer left".to_string());
                    self.end();
                }
            }
        }
        if self.give_up_at.is_some_and(|at| at <= now) {
            self.give_up_at = None;
            if self.status() != CaptureStatus::ProcessedRemote && !self.ended {
                let last = self.status.reason().unwrap_or_default().to_string();
                let why = if self.config.published {
                    format!(
                        "the publisher did not come back within {} ms ({last})",
                        self.config.publish_grace_ms
                    )
                } else {
                    format!(
                        "the source did not come back within {} ms ({last})",
                        self.config.settings.on_demand_give_up_ms
                    )
                };
                self.fail(why, now);
            }
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            if !self.stopping && !self.ended {
                self.start_source();
            }
        }
    }

    /// Ends the capture as failed: subscribers get `FAILED` with `reason` (also when a stop
    /// was under way: the failure is what they are told).
    fn fail(&mut self, reason: String, now: Instant) {
        warn!("{}: giving up: {reason}", self.config.label);
        self.end_reason = None;
        self.set_status(CaptureStatus::Failed, Some(reason), now);
        self.end_failed = true;
        self.end();
    }

    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            self.stopping = true;
            self.actions.push(Action::End);
        }
    }

    /// The actor stops: its children stop, every subscriber is told.
    fn finish(&mut self) {
        self.stopping = true;
        if self.source_running {
            self.source_running = false;
            self.actions.push(Action::StopSource);
        }
        if self.audio_transcoder {
            self.audio_transcoder = false;
            self.actions.push(Action::StopAudioTranscoder);
        }
        if self.video_transcoder.take().is_some() {
            self.actions.push(Action::StopVideoTranscoder);
        }
        let reason = self.end_reason();
        for to in self.subscribers.ids() {
            self.actions.push(Action::Deliver {
                to,
                media: Outgoing::Stopped {
                    reason: reason.clone(),
                    failed: self.end_failed,
                },
            });
        }
    }

    // --- media ---------------------------------------------------------------------------

    fn on_codecs(&mut self, mut codecs: CodecSet) {
        // A connection's normalizer never drops a track; a fresh one (after a reconnect)
        // reports the tracks one at a time. A track not reported yet keeps its configuration,
        // so a reconnect to the same source is not a codec change.
        codecs.video = codecs.video.or_else(|| self.codecs.video.clone());
        codecs.audio = codecs.audio.or_else(|| self.codecs.audio.clone());
        if !self.config.has_video {
            codecs.video = None;
        }
        if !self.config.has_audio {
            codecs.audio = None;
        }
        if codecs == self.codecs {
            return;
        }
        info!(
            "{}: codec configuration {}",
            self.config.label,
            describe(&codecs)
        );
        let video_changed = codecs.video != self.codecs.video;
        if video_changed {
            // Cached frames belong to the old configuration.
            self.gop.clear();
            self.transcoded_gop.clear();
            if self.video_transcoder.is_some() {
                self.actions.push(Action::ResetVideoTranscoder);
            }
        }
        if codecs.audio != self.codecs.audio && self.audio_transcoder {
            if let Some(config) = &codecs.audio {
                self.actions.push(Action::ConfigureAudioTranscoder {
                    config: config.clone(),
                });
            }
        }
        self.codecs = codecs.clone();
        if video_changed {
            if let Some(avc) = &codecs.video {
                if self.bframes.on_config(avc) {
                    self.bframes_found();
                }
            }
        }
        for to in self.subscribers.ids() {
            self.actions.push(Action::Deliver {
                to,
                media: Outgoing::Codecs(codecs.clone()),
            });
        }
    }

    fn on_frame(&mut self, mut frame: MediaFrame, queued: QueuedBytes, now: Instant) {
        if let Some(reason) = self.over_memory_budget(queued) {
            self.stopping = true;
            self.fail(reason, now);
            return;
        }
        let wanted = match frame.track {
            Track::Video => self.config.has_video,
            Track::Audio => self.config.has_audio,
        };
        if !wanted || self.ended {
            return;
        }
        let now_ms = self.ms(now);
        self.timeline.place(&mut frame, now_ms);
        let had_media = self.has_streamed();
        match frame.track {
            Track::Video => {
                self.counters.video_frames += 1;
                self.counters.video_keyframes += u64::from(frame.keyframe);
                self.frame_rate.add(now_ms, 1);
            }
            Track::Audio => self.counters.audio_frames += 1,
        }
        if self.status() != CaptureStatus::ProcessedRemote {
            match self.lost_at.take() {
                Some(lost) if had_media => {
                    self.reconnects += 1;
                    info!(
                        "{}: the source is back after {} ms; media is flowing again",
                        self.config.label,
                        now.saturating_duration_since(lost).as_millis()
                    );
                }
                _ => info!("{}: media is flowing", self.config.label),
            }
            self.backoff.reset();
            self.give_up_at = None;
            self.set_status(CaptureStatus::ProcessedRemote, None, now);
        }
        if let GopPush::Overflowed {
            would_hold,
            max_bytes,
        } = self.gop.push(&frame)
        {
            warn!(
                "{}: the frames since the last keyframe ({would_hold} bytes) pass \
                 capture.keyframe_cache_bytes ({max_bytes}); new viewers wait for the next keyframe",
                self.config.label
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
                    at: self.wall(now),
                    gap_ms: now.saturating_duration_since(since).as_millis() as u64,
                });
            }
        }
        if frame.track == Track::Audio {
            if self.audio_transcoder {
                self.actions.push(Action::TranscodeAudio {
                    frame: frame.clone(),
                });
            }
            // AAC goes to the subscribers that take the original; WebRTC gets Opus.
            self.fan_out(&frame, Some(Delivery::Original));
            return;
        }
        if self.bframes.on_frame(&frame) {
            self.bframes_found();
        }
        if self.webrtc_video_transcoded() {
            // The original (B-frames and all) for recordings; WebRTC gets the transcode.
            if let Some(t) = &mut self.video_transcoder {
                // Behind by its whole queue: skip to the next keyframe.
                if !t.skipping || frame.keyframe {
                    t.skipping = false;
                    self.actions.push(Action::TranscodeVideo {
                        frame: frame.clone(),
                    });
                }
            }
            self.fan_out(&frame, Some(Delivery::Original));
        } else {
            self.fan_out(&frame, None);
        }
    }

    /// Sends `frame` to every subscriber (or only those taking `only`) that may have it.
    fn fan_out(&mut self, frame: &MediaFrame, only: Option<Delivery>) {
        for to in self.subscribers.recipients(frame, only) {
            self.actions.push(Action::Deliver {
                to,
                media: Outgoing::Frame(frame.clone()),
            });
        }
    }

    // --- subscribers ---------------------------------------------------------------------

    fn subscribe(&mut self, id: SubscriberId, delivery: Delivery, now: Instant) {
        if self.codecs != CodecSet::default() {
            self.actions.push(Action::Deliver {
                to: id,
                media: Outgoing::Codecs(self.codecs.clone()),
            });
        }
        // Instant start: the frames since the latest keyframe, at once. WebRTC subscribers
        // get the cached video only; their audio is Opus, which starts live.
        let keyframe_sent = self.replay(id, delivery, delivery == Delivery::WebRtc);
        let waiting = self.codecs.video.is_some() && !keyframe_sent;
        self.subscribers.insert(id, delivery, waiting);
        self.subscribers_changed(now);
    }

    fn keyframe_request(&mut self, id: SubscriberId) {
        if self.codecs.video.is_none() {
            return;
        }
        let Some(delivery) = self.subscribers.delivery(id) else {
            return;
        };
        let keyframe_sent = if self.video_transcoder.is_some()
            && delivery == Delivery::WebRtc
            && self.webrtc_video_transcoded()
        {
            // A fresh keyframe for everyone watching the transcode, times moving forward.
            self.actions.push(Action::ForceKeyframe);
            false
        } else {
            // The cached video from the latest keyframe, to this subscriber only.
            self.replay(id, delivery, true)
        };
        self.subscribers.set_waiting(id, !keyframe_sent);
    }

    /// Sends the cached frames since the latest keyframe to `id` (video only when
    /// `video_only`): for a WebRTC subscriber of a source with B-frames the transcoded ones,
    /// else the original. True when they hold a keyframe (if they do not go out, the actor
    /// reports `DeliveryFailed` and the gate closes again).
    fn replay(&mut self, id: SubscriberId, delivery: Delivery, video_only: bool) -> bool {
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
        self.actions.push(Action::Deliver {
            to: id,
            media: Outgoing::Replay(frames),
        });
        has_keyframe
    }

    /// Starts or stops the transcoders and the on-demand linger deadline after the set of
    /// subscribers changed.
    fn subscribers_changed(&mut self, now: Instant) {
        let webrtc = self.subscribers.count(Delivery::WebRtc);
        self.update_video_transcoder();
        if webrtc > 0 && !self.audio_transcoder && self.config.has_audio {
            info!(
                "{}: first WebRTC viewer; audio transcoder (AAC → Opus) started",
                self.config.label
            );
            self.audio_transcoder = true;
            self.actions.push(Action::StartAudioTranscoder {
                config: self.codecs.audio.clone(),
            });
        } else if webrtc == 0 && self.audio_transcoder {
            info!(
                "{}: last WebRTC viewer left; audio transcoder stopped",
                self.config.label
            );
            self.audio_transcoder = false;
            self.actions.push(Action::StopAudioTranscoder);
        }
        if self.config.on_demand {
            if self.subscribers.is_empty() {
                self.arm_linger(
                    now,
                    Duration::from_millis(self.config.settings.on_demand_linger_ms),
                );
            } else {
                self.linger_at = None;
            }
        }
    }

    /// Stops an on-demand capture after `after` unless a subscriber comes first.
    fn arm_linger(&mut self, now: Instant, after: Duration) {
        if self.linger_at.is_none() {
            self.linger_at = Some((now + after, after));
        }
    }

    fn bframes_found(&mut self) {
        info!(
            "{}: the video has B-frames ({}); WebRTC viewers get a Constrained Baseline transcode, recordings the original",
            self.config.label,
            self.bframes.evidence().unwrap_or("")
        );
        self.update_video_transcoder();
    }

    /// Runs the video transcoder while the capture has B-frames and WebRTC subscribers.
    fn update_video_transcoder(&mut self) {
        let wanted = self.webrtc_video_transcoded() && self.subscribers.count(Delivery::WebRtc) > 0;
        if wanted && self.video_transcoder.is_none() {
            // Start from the cached keyframe: the first viewer need not wait for the next.
            let backlog = self
                .gop
                .frames()
                .iter()
                .filter(|f| f.track == Track::Video)
                .cloned()
                .collect();
            info!(
                "{}: video transcoder (B-frames → Constrained Baseline) started",
                self.config.label
            );
            self.video_transcoder = Some(VideoTranscoding { skipping: false });
            self.actions.push(Action::StartVideoTranscoder {
                frame_rate: self.declared_frame_rate(),
                backlog,
            });
        } else if !wanted && self.video_transcoder.take().is_some() {
            info!("{}: video transcoder stopped", self.config.label);
            self.transcoded_gop.clear();
            self.actions.push(Action::StopVideoTranscoder);
        }
    }

    // --- helpers -------------------------------------------------------------------------

    /// The reason to end this capture when it holds more than its memory budget.
    fn over_memory_budget(&self, queued: QueuedBytes) -> Option<String> {
        let caches = self.cached_bytes();
        let total = queued.ingest + caches + queued.largest_subscriber_queue + queued.transcoders;
        let budget = self.config.settings.memory_budget_bytes;
        (total > budget).then(|| {
            format!(
                "the capture held {total} bytes, over its memory budget of {budget} \
                 (capture.memory_budget_bytes): {} in flight from the source, {caches} in \
                 keyframe caches, {} in the largest viewer queue, {} queued for transcoders",
                queued.ingest, queued.largest_subscriber_queue, queued.transcoders
            )
        })
    }

    fn set_status(&mut self, status: CaptureStatus, reason: Option<String>, now: Instant) {
        let at = self.wall(now);
        self.status.set(status, reason, at);
    }

    /// Media has flowed at least once.
    fn has_streamed(&self) -> bool {
        self.counters.video_frames + self.counters.audio_frames > 0
    }

    /// WebRTC viewers get transcoded video (the source has B-frames).
    fn webrtc_video_transcoded(&self) -> bool {
        self.config.has_video && self.bframes.decided() == Some(true)
    }

    /// Milliseconds since the capture started.
    fn ms(&self, now: Instant) -> i64 {
        now.saturating_duration_since(self.started).as_millis() as i64
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.started_wall + now.saturating_duration_since(self.started)
    }
}

fn metadata_number(metadata: &[(String, MetaValue)], keys: &[&str]) -> Option<f64> {
    metadata.iter().find_map(|(k, v)| match v {
        MetaValue::Number(n) if keys.contains(&k.as_str()) && *n > 0.0 => Some(*n),
        _ => None,
    })
}

/// "H.264 High 1280x720 + AAC-LC 48000 Hz 2 ch", for the log.
pub fn describe(codecs: &CodecSet) -> String {
    let video = codecs.video.as_ref().map(|v| {
        let size = v
            .sps_info
            .as_ref()
            .map(|s| format!(" {}x{}", s.width, s.height))
            .unwrap_or_default();
        format!(
            "H.264 {}{size}",
            crate::codec::h264::profile_name(v.profile, v.compatibility)
        )
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

/// The backoff's jitter source: SplitMix64, seeded once (by the server from the OS's random
/// source, by tests with a constant).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    /// The next number in [0, 1].
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / ((1u64 << 53) - 1) as f64
    }
}
