//! Scenarios of a capture with explicit times: what the actor tests used to prove with real
//! sleeps — drop and return, a publisher that leaves with frames queued, on-demand give-up
//! and linger, a slow subscriber skipping to the next keyframe, a PLI's replay — and the
//! transcoders' lifecycles and the memory budget.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::*;
use crate::codec::aac::parse_audio_specific_config;
use crate::codec::h264::AvcConfig;
use crate::config::CaptureSettings;
use crate::media::{CodecSet, MediaFrame, Track};

const LABEL: &str = "capture test";

fn settings() -> CaptureSettings {
    CaptureSettings {
        reconnect_initial_ms: 1000,
        reconnect_max_ms: 8000,
        on_demand_give_up_ms: 20_000,
        on_demand_linger_ms: 10_000,
        ..CaptureSettings::default()
    }
}

/// A capture under test: the machine, its clock, the actions it asked for.
struct Run {
    capture: Capture,
    t0: Instant,
    now: Instant,
    actions: Vec<Action>,
}

impl Run {
    fn new(on_demand: bool, record: bool) -> Self {
        Self::with(on_demand, record, settings())
    }

    fn with(on_demand: bool, record: bool, settings: CaptureSettings) -> Self {
        let t0 = Instant::now();
        let config = CaptureConfig {
            label: LABEL.to_string(),
            on_demand,
            published: false,
            publish_grace_ms: 0,
            record,
            has_audio: true,
            has_video: true,
            settings,
            jitter_seed: 7,
        };
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Self {
            capture: Capture::new(config, t0, wall),
            t0,
            now: t0,
            actions: Vec::new(),
        }
    }

    /// Feeds `input` now; returns (and keeps) its actions.
    fn send(&mut self, input: Input) -> Vec<Action> {
        let actions = self.capture.handle(input, self.now);
        self.actions.extend(actions.iter().cloned());
        actions
    }

    /// Moves the clock to `ms` after the start and ticks if a deadline passed.
    fn at(&mut self, ms: u64) -> Vec<Action> {
        self.now = self.t0 + Duration::from_millis(ms);
        match self.capture.next_deadline() {
            Some(due) if due <= self.now => self.send(Input::Tick),
            _ => Vec::new(),
        }
    }

    fn subscribe(&mut self, id: SubscriberId, delivery: Delivery) -> Vec<Action> {
        self.send(Input::Subscribe { id, delivery })
    }

    fn generation(&self) -> u64 {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::StartSource { generation } => Some(*generation),
                _ => None,
            })
            .last()
            .unwrap()
    }

    fn frame(&mut self, track: Track, pts: i64, keyframe: bool) -> Vec<Action> {
        self.frame_with(track, pts, pts, keyframe)
    }

    fn frame_with(&mut self, track: Track, pts: i64, dts: i64, keyframe: bool) -> Vec<Action> {
        let generation = self.generation();
        self.send(Input::Frame {
            generation,
            frame: media(track, pts, dts, keyframe),
            queued: QueuedBytes::default(),
        })
    }

    fn codecs(&mut self) -> Vec<Action> {
        let generation = self.generation();
        self.send(Input::Codecs {
            generation,
            codecs: codecs(),
        })
    }

    fn ended(&mut self, end: SourceEnd) -> Vec<Action> {
        let generation = self.generation();
        self.send(Input::SourceEnded { generation, end })
    }
}

fn media(track: Track, pts: i64, dts: i64, keyframe: bool) -> MediaFrame {
    MediaFrame {
        track,
        pts,
        dts,
        keyframe,
        data: Bytes::from(vec![0u8; 100]),
        ingest_us: 0,
    }
}

fn codecs() -> CodecSet {
    CodecSet {
        video: Some(Arc::new(AvcConfig {
            profile: 100,
            compatibility: 0,
            level: 31,
            nal_length_size: 4,
            sps: vec![],
            pps: vec![],
            sps_info: None,
        })),
        audio: Some(Arc::new(
            parse_audio_specific_config(&[0x12, 0x10]).unwrap(),
        )),
    }
}

const A: SubscriberId = SubscriberId(0xA);
const B: SubscriberId = SubscriberId(0xB);

/// The frames delivered to `to`: (track, pts, keyframe); replays flattened.
fn delivered(actions: &[Action], to: SubscriberId) -> Vec<(Track, i64, bool)> {
    let mut out = Vec::new();
    for a in actions {
        if let Action::Deliver { to: t, media } = a {
            if *t != to {
                continue;
            }
            match media {
                Outgoing::Frame(f) => out.push((f.track, f.pts, f.keyframe)),
                Outgoing::Replay(fs) => {
                    out.extend(fs.iter().map(|f| (f.track, f.pts, f.keyframe)));
                }
                _ => {}
            }
        }
    }
    out
}

fn video_pts(actions: &[Action], to: SubscriberId) -> Vec<i64> {
    delivered(actions, to)
        .into_iter()
        .filter(|(t, _, _)| *t == Track::Video)
        .map(|(_, pts, _)| pts)
        .collect()
}

fn has(actions: &[Action], pred: impl Fn(&Action) -> bool) -> bool {
    actions.iter().any(pred)
}

/// Starts a REST capture with codecs and one GOP (keyframe at 0, P-frames to 66 ms).
fn streaming(on_demand: bool) -> Run {
    let mut run = Run::new(on_demand, false);
    run.send(Input::Start);
    run.codecs();
    for (i, pts) in [0, 33, 66].into_iter().enumerate() {
        run.at(pts as u64);
        run.frame(Track::Video, pts, i == 0);
    }
    run
}

#[test]
fn a_start_pulls_records_and_an_on_demand_capture_waits_for_its_first_viewer() {
    let mut run = Run::new(true, true);
    let actions = run.send(Input::Start);
    assert!(matches!(actions[0], Action::StartSource { generation: 1 }));
    assert!(has(&actions, |a| matches!(a, Action::StartRecorder)));
    let first_viewer = settings().on_demand_linger_ms + FIRST_VIEWER_GRACE.as_millis() as u64;
    assert_eq!(
        run.capture.next_deadline(),
        Some(run.t0 + Duration::from_millis(first_viewer))
    );
    assert_eq!(run.capture.status(), CaptureStatus::Pending);
}

#[test]
fn a_dropped_source_is_pulled_again_and_subscribers_resume_at_a_keyframe_on_one_timeline() {
    let mut run = streaming(false);
    run.subscribe(A, Delivery::Original);
    run.at(100);
    run.frame(Track::Video, 100, false);
    // The connection drops at 200 ms.
    run.at(200);
    let actions = run.ended(SourceEnd::ConnectionEnded {
        reason: "connection reset".into(),
    });
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(run.capture.status(), CaptureStatus::Reconnecting);
    assert_eq!(run.capture.reason(), Some("connection reset"));
    let retry = run.capture.next_deadline().unwrap();
    let delay = retry - run.now;
    assert!(
        (500..=1000).contains(&delay.as_millis()),
        "first retry within the initial backoff: {delay:?}"
    );
    assert_eq!(run.capture.retry(run.now).unwrap().attempt, 1);
    // Late media of the old connection is ignored.
    run.send(Input::Frame {
        generation: 1,
        frame: media(Track::Video, 133, 133, false),
        queued: QueuedBytes::default(),
    });
    assert_eq!(run.capture.counters().video_frames, 4);
    // Nothing happens before the deadline; at it, a second connection.
    assert!(run.at(200 + delay.as_millis() as u64 - 1).is_empty());
    let actions = run.at(200 + delay.as_millis() as u64);
    assert!(matches!(
        actions[..],
        [Action::StartSource { generation: 3 }]
    ));
    // The new connection's timestamps start at 0 again; a P-frame first.
    let back = 2000;
    run.at(back);
    let p = run.frame(Track::Video, 0, false);
    assert!(
        video_pts(&p, A).is_empty(),
        "no P-frame before the keyframe"
    );
    run.at(back + 33);
    let k = run.frame(Track::Video, 33, true);
    let pts = video_pts(&k, A);
    assert_eq!(pts.len(), 1);
    // Placed after the old segment's end (100) plus the wall-clock gap, never back.
    assert!(pts[0] > 100 + 1500, "{pts:?}");
    assert_eq!(run.capture.status(), CaptureStatus::ProcessedRemote);
    assert_eq!(run.capture.reconnects(), 1);
    assert_eq!(run.capture.retry(run.now), None);
    let resume = run.capture.last_resume().unwrap();
    assert_eq!(resume.gap_ms, back + 33 - 200);
    let statuses: Vec<_> = run.capture.history().iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            CaptureStatus::Pending,
            CaptureStatus::ProcessedRemote,
            CaptureStatus::Reconnecting,
            CaptureStatus::ProcessedRemote
        ]
    );
}

#[test]
fn retries_back_off_until_media_flows_and_the_same_failure_is_one_history_entry() {
    let mut run = Run::new(false, false);
    run.send(Input::Start);
    let mut delays = Vec::new();
    for _ in 0..5 {
        run.ended(SourceEnd::ConnectionEnded {
            reason: "connection refused".into(),
        });
        let due = run.capture.next_deadline().unwrap();
        delays.push((due - run.now).as_millis() as u64);
        let ms = (due - run.t0).as_millis() as u64;
        assert!(matches!(run.at(ms)[..], [Action::StartSource { .. }]));
    }
    // 1 s, 2 s, 4 s, 8 s, 8 s (capped), each jittered into [½, 1].
    for (delay, full) in delays.iter().zip([1000, 2000, 4000, 8000, 8000]) {
        assert!((full / 2..=full).contains(delay), "{delays:?}");
    }
    assert_eq!(run.capture.status(), CaptureStatus::Failed);
    assert_eq!(run.capture.history().len(), 2, "PENDING, then one FAILED");
    assert_eq!(run.capture.retry(run.now).unwrap().attempt, 5);
}

#[test]
fn a_publisher_that_leaves_keeps_the_connection_and_every_frame_before_the_news_is_delivered() {
    let mut run = streaming(false);
    run.subscribe(A, Delivery::Original);
    // Sixty frames queued before the news: each goes out, in order.
    let mut sent = Vec::new();
    for i in 1..=60 {
        let pts = 66 + i * 33;
        run.at(pts as u64);
        sent.extend(video_pts(&run.frame(Track::Video, pts, false), A));
    }
    assert_eq!(sent.len(), 60);
    let actions = run.ended(SourceEnd::PublisherLeft {
        reason: "the source stopped publishing (StreamEOF)".into(),
    });
    assert!(
        !has(&actions, |a| matches!(a, Action::StartSource { .. })),
        "no new connection: {actions:?}"
    );
    assert_eq!(run.capture.status(), CaptureStatus::Reconnecting);
    assert!(run
        .capture
        .reason()
        .unwrap()
        .ends_with("waiting for it to return"));
    assert_eq!(run.capture.reconnects(), 0);
    assert_eq!(
        run.capture.next_deadline(),
        None,
        "a REST capture just waits"
    );
    // The new publisher's media on the same connection.
    run.at(5000);
    let actions = run.frame(Track::Video, 0, true);
    assert_eq!(video_pts(&actions, A).len(), 1);
    assert_eq!(run.capture.status(), CaptureStatus::ProcessedRemote);
    assert_eq!(run.capture.reconnects(), 1);
    assert_eq!(run.generation(), 1);
}

#[test]
fn an_on_demand_capture_gives_up_when_its_source_does_not_return() {
    let mut run = streaming(true);
    run.subscribe(A, Delivery::WebRtc);
    run.at(1000);
    run.ended(SourceEnd::ConnectionEnded {
        reason: "connection reset".into(),
    });
    // Retries come and fail; at 20 s after the drop the capture gives up.
    let mut t = 1000;
    let mut ended = false;
    while t < 30_000 && !ended {
        t = (run.capture.next_deadline().unwrap() - run.t0).as_millis() as u64;
        let actions = run.at(t);
        if has(&actions, |a| matches!(a, Action::End)) {
            ended = true;
        } else {
            run.ended(SourceEnd::ConnectionEnded {
                reason: "connection refused".into(),
            });
        }
    }
    assert!(ended);
    assert_eq!(t, 21_000, "give-up deadline");
    assert_eq!(run.capture.status(), CaptureStatus::Failed);
    assert!(run
        .capture
        .reason()
        .unwrap()
        .starts_with("the source did not come back within 20000 ms (connection refused)"));
    let actions = run.send(Input::Finish);
    assert!(has(&actions, |a| matches!(a, Action::StopAudioTranscoder)));
    assert!(has(&actions, |a| matches!(
        a,
        Action::Deliver { to: A, media: Outgoing::Stopped { failed: true, reason } }
            if reason.contains("did not come back")
    )));
}

/// A published capture (RTMP publish) streaming one GOP.
fn published(grace_ms: u64) -> Run {
    let mut run = Run::new(false, false);
    run.capture = Capture::new(
        CaptureConfig {
            label: LABEL.to_string(),
            on_demand: false,
            published: true,
            publish_grace_ms: grace_ms,
            record: false,
            has_audio: true,
            has_video: true,
            settings: settings(),
            jitter_seed: 7,
        },
        run.t0,
        SystemTime::UNIX_EPOCH,
    );
    run.send(Input::Start);
    run.codecs();
    for (i, pts) in [0, 33, 66].into_iter().enumerate() {
        run.at(pts as u64);
        run.frame(Track::Video, pts, i == 0);
    }
    run
}

#[test]
fn a_published_capture_waits_for_its_publisher_then_resumes_or_gives_up() {
    let mut run = published(10_000);
    run.subscribe(A, Delivery::Original);
    run.at(1000);
    let before = run.generation();
    // The publisher leaves: no dialing, the next source (its return) is waited for at once,
    // and the capture stays (RECONNECTING, never linger-stopped without viewers).
    let actions = run.ended(SourceEnd::ConnectionEnded {
        reason: "the publisher closed the connection".into(),
    });
    assert!(has(
        &actions,
        |a| matches!(a, Action::StartSource { generation } if *generation > before)
    ));
    assert_eq!(run.capture.status(), CaptureStatus::Reconnecting);
    run.send(Input::Unsubscribe { id: A });
    assert!(run.at(5000).iter().all(|a| !matches!(a, Action::End)));
    // It comes back within the grace: media flows again on the same capture.
    run.codecs();
    run.at(6000);
    let actions = run.frame(Track::Video, 6000, true);
    assert_eq!(run.capture.status(), CaptureStatus::ProcessedRemote);
    assert!(!has(&actions, |a| matches!(a, Action::End)));

    // Gone for longer than the grace: FAILED with the reason.
    let mut run = published(10_000);
    run.at(1000);
    run.ended(SourceEnd::ConnectionEnded {
        reason: "connection reset".into(),
    });
    assert!(run.at(10_999).iter().all(|a| !matches!(a, Action::End)));
    let actions = run.at(11_000);
    assert!(has(&actions, |a| matches!(a, Action::End)));
    assert_eq!(run.capture.status(), CaptureStatus::Failed);
    assert!(
        run.capture
            .reason()
            .unwrap()
            .starts_with("the publisher did not come back within 10000 ms"),
        "{:?}",
        run.capture.reason()
    );
}

#[test]
fn an_on_demand_name_that_never_plays_fails_its_viewers_at_once() {
    let mut run = Run::new(true, false);
    run.send(Input::Start);
    run.subscribe(A, Delivery::WebRtc);
    let actions = run.ended(SourceEnd::ConnectionEnded {
        reason: "connection refused by 10.0.0.1:1935".into(),
    });
    assert!(matches!(actions[..], [Action::End]));
    assert!(run.capture.end_failed());
    assert_eq!(
        run.capture.end_reason(),
        "connection refused by 10.0.0.1:1935"
    );
}

#[test]
fn an_on_demand_capture_lingers_for_viewers_then_ends() {
    let mut run = streaming(true);
    let first_viewer = settings().on_demand_linger_ms + FIRST_VIEWER_GRACE.as_millis() as u64;
    // A viewer comes within the grace: no deadline while it watches.
    run.at(5000);
    run.subscribe(A, Delivery::WebRtc);
    assert_eq!(run.capture.next_deadline(), None);
    assert!(run.at(first_viewer + 1000).is_empty());
    // It leaves at 30 s: the capture ends 10 s later unless another comes.
    run.at(30_000);
    run.send(Input::Unsubscribe { id: A });
    assert!(run.at(39_999).is_empty());
    let actions = run.at(40_000);
    assert!(matches!(actions[..], [Action::End]));
    assert!(!run.capture.end_failed());
    assert_eq!(
        run.capture.end_reason(),
        "the on-demand capture ended after its last viewer left"
    );
}

#[test]
fn a_slow_subscriber_skips_to_the_next_keyframe_and_keeps_its_audio() {
    let mut run = streaming(false);
    run.subscribe(A, Delivery::Original);
    run.subscribe(B, Delivery::Original);
    run.at(100);
    run.frame(Track::Video, 100, false);
    // A's queue was full for that frame.
    run.send(Input::DeliveryFailed { id: A });
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for (pts, track, key) in [
        (133, Track::Video, false),
        (140, Track::Audio, false),
        (166, Track::Video, false),
        (200, Track::Video, true),
        (233, Track::Video, false),
    ] {
        run.at(pts as u64);
        let actions = run.frame(track, pts, key);
        got_a.extend(delivered(&actions, A));
        got_b.extend(delivered(&actions, B));
    }
    assert_eq!(
        got_a,
        [
            (Track::Audio, 140, false),
            (Track::Video, 200, true),
            (Track::Video, 233, false)
        ]
    );
    assert_eq!(got_b.len(), 5, "the other subscriber missed nothing");
}

#[test]
fn a_new_subscriber_starts_at_the_cached_keyframe_and_a_pli_replays_to_that_one_only() {
    let mut run = streaming(false);
    run.at(70);
    run.frame(Track::Audio, 70, false);
    let actions = run.subscribe(A, Delivery::WebRtc);
    // Codecs, then the cached video (WebRTC takes Opus for audio, which starts live).
    assert!(matches!(
        &actions[0],
        Action::Deliver {
            to: A,
            media: Outgoing::Codecs(_)
        }
    ));
    assert_eq!(video_pts(&actions, A), [0, 33, 66]);
    assert!(delivered(&actions, A)
        .iter()
        .all(|(t, _, _)| *t == Track::Video));
    assert!(has(&actions, |a| matches!(
        a,
        Action::StartAudioTranscoder { config: Some(_) }
    )));
    // An original subscriber gets the audio of the cache too.
    let actions = run.subscribe(B, Delivery::Original);
    assert_eq!(delivered(&actions, B).len(), 4);
    // A PLI from A: the cached video again, to A only.
    run.at(100);
    let actions = run.send(Input::KeyframeRequest { id: A });
    assert_eq!(video_pts(&actions, A), [0, 33, 66]);
    assert!(delivered(&actions, B).is_empty());
    // A replay that did not go out closes the gate until the next keyframe.
    run.send(Input::DeliveryFailed { id: A });
    let actions = run.frame(Track::Video, 100, false);
    assert!(video_pts(&actions, A).is_empty());
    assert_eq!(video_pts(&actions, B), [100]);
}

#[test]
fn the_audio_transcoder_runs_while_webrtc_subscribers_watch_and_gets_only_aac() {
    let mut run = streaming(false);
    let actions = run.subscribe(A, Delivery::Original);
    assert!(!has(&actions, |a| matches!(
        a,
        Action::StartAudioTranscoder { .. }
    )));
    run.subscribe(B, Delivery::WebRtc);
    run.at(80);
    let actions = run.frame(Track::Audio, 80, false);
    assert!(has(&actions, |a| matches!(
        a,
        Action::TranscodeAudio { .. }
    )));
    assert_eq!(delivered(&actions, A).len(), 1, "AAC to the original");
    assert!(delivered(&actions, B).is_empty(), "no AAC to WebRTC");
    let actions = run.send(Input::TranscodedAudio {
        frame: media(Track::Audio, 80, 80, true),
    });
    assert_eq!(delivered(&actions, B).len(), 1, "Opus to WebRTC");
    assert!(delivered(&actions, A).is_empty());
    let actions = run.send(Input::Unsubscribe { id: B });
    assert!(has(&actions, |a| matches!(a, Action::StopAudioTranscoder)));
    // Late Opus of the stopped transcoder goes nowhere.
    let actions = run.send(Input::TranscodedAudio {
        frame: media(Track::Audio, 100, 100, true),
    });
    assert!(actions.is_empty());
}

#[test]
fn b_frames_start_the_video_transcoder_which_skips_to_a_keyframe_when_behind() {
    let mut run = streaming(false);
    run.subscribe(A, Delivery::WebRtc);
    run.subscribe(B, Delivery::Original);
    // A frame shown later than it is decoded: B-frames.
    run.at(100);
    let actions = run.frame_with(Track::Video, 166, 100, false);
    let Some(Action::StartVideoTranscoder { backlog, .. }) = actions
        .iter()
        .find(|a| matches!(a, Action::StartVideoTranscoder { .. }))
    else {
        panic!("no video transcoder: {actions:?}");
    };
    assert_eq!(backlog.len(), 4, "the cached GOP and this frame");
    assert!(run.capture.video_transcoding());
    assert_eq!(run.capture.b_frames().0, Some(true));
    // From now on WebRTC gets the transcode; the original goes to B only.
    run.at(133);
    let actions = run.frame_with(Track::Video, 133, 133, false);
    assert!(has(&actions, |a| matches!(
        a,
        Action::TranscodeVideo { .. }
    )));
    assert!(delivered(&actions, A).is_empty());
    assert_eq!(delivered(&actions, B).len(), 1);
    // Its queue was full: P-frames skip it until the next keyframe.
    run.send(Input::VideoTranscodeDropped);
    let actions = run.frame(Track::Video, 166, false);
    assert!(!has(&actions, |a| matches!(
        a,
        Action::TranscodeVideo { .. }
    )));
    let actions = run.frame(Track::Video, 200, true);
    assert!(has(&actions, |a| matches!(
        a,
        Action::TranscodeVideo { .. }
    )));
    // The transcode's output goes to WebRTC and into its own cache.
    let actions = run.send(Input::TranscodedVideo {
        frame: media(Track::Video, 200, 200, true),
    });
    assert_eq!(video_pts(&actions, A), [200]);
    // A PLI on the transcode asks it for a fresh keyframe.
    let actions = run.send(Input::KeyframeRequest { id: A });
    assert!(matches!(actions[..], [Action::ForceKeyframe]));
    // The last WebRTC viewer leaves: the transcoder stops.
    let actions = run.send(Input::Unsubscribe { id: A });
    assert!(has(&actions, |a| matches!(a, Action::StopVideoTranscoder)));
}

#[test]
fn the_same_codecs_after_a_reconnect_are_not_a_change_but_new_ones_are_told() {
    let mut run = streaming(false);
    run.subscribe(A, Delivery::Original);
    run.ended(SourceEnd::ConnectionEnded {
        reason: "reset".into(),
    });
    let due = (run.capture.next_deadline().unwrap() - run.t0).as_millis() as u64;
    run.at(due);
    let actions = run.codecs();
    assert!(actions.is_empty(), "{actions:?}");
    let generation = run.generation();
    let mut other = codecs();
    other.video = Some(Arc::new(AvcConfig {
        level: 40,
        ..(*other.video.unwrap()).clone()
    }));
    let actions = run.send(Input::Codecs {
        generation,
        codecs: other,
    });
    assert!(matches!(
        &actions[..],
        [Action::Deliver {
            to: A,
            media: Outgoing::Codecs(_)
        }]
    ));
}

#[test]
fn a_capture_over_its_memory_budget_fails_with_the_figures() {
    let mut s = settings();
    s.memory_budget_bytes = 10_000;
    let mut run = Run::with(false, false, s);
    run.send(Input::Start);
    run.codecs();
    let generation = run.generation();
    let actions = run.send(Input::Frame {
        generation,
        frame: media(Track::Video, 0, 0, true),
        queued: QueuedBytes {
            ingest: 4000,
            largest_subscriber_queue: 7000,
            transcoders: 0,
        },
    });
    assert!(matches!(actions[..], [Action::End]));
    let reason = run.capture.reason().unwrap();
    assert!(
        reason.starts_with("the capture held 11000 bytes, over its memory budget of 10000"),
        "{reason}"
    );
    assert!(
        reason.contains("7000 in the largest viewer queue"),
        "{reason}"
    );
}

#[test]
fn a_stop_ends_the_retries_and_tells_every_subscriber_why() {
    let mut run = streaming(false);
    run.subscribe(A, Delivery::Original);
    run.ended(SourceEnd::ConnectionEnded {
        reason: "reset".into(),
    });
    run.send(Input::Stop {
        reason: "terminated over REST".into(),
    });
    assert_eq!(run.capture.next_deadline(), None);
    let actions = run.send(Input::Finish);
    assert!(
        !has(&actions, |a| matches!(a, Action::StopSource)),
        "the connection had already ended"
    );
    assert!(has(&actions, |a| matches!(
        a,
        Action::Deliver { to: A, media: Outgoing::Stopped { failed: false, reason } }
            if reason == "terminated over REST"
    )));
}

#[test]
fn a_crash_of_the_reader_ends_the_capture_without_retrying() {
    let mut run = streaming(false);
    let actions = run.ended(SourceEnd::Crashed {
        reason: "the reader panicked".into(),
    });
    assert!(matches!(actions[..], [Action::End]));
    assert_eq!(run.capture.status(), CaptureStatus::Failed);
    assert_eq!(run.capture.next_deadline(), None);
    let actions = run.send(Input::Finish);
    assert!(has(&actions, |a| matches!(a, Action::StopSource)));
}

#[test]
fn a_failure_while_stopping_is_what_subscribers_are_told() {
    let mut run = streaming(false);
    run.subscribe(A, Delivery::Original);
    run.send(Input::Stop {
        reason: "terminated over REST".into(),
    });
    // The recorder is still finishing when the source's reader crashes.
    run.ended(SourceEnd::Crashed {
        reason: "the reader panicked".into(),
    });
    let actions = run.send(Input::Finish);
    assert!(has(&actions, |a| matches!(
        a,
        Action::Deliver { to: A, media: Outgoing::Stopped { failed: true, reason } }
            if reason == "the reader panicked"
    )));
}
