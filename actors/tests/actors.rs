//! Actor tests by message injection: the `Registry` and `StreamSupervisor` driven with
//! messages, with a fake source standing in for the RTMP reader (no sockets).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use pullcast::config::Settings;
use pullcast::media::Track;
use pullcast::rtmp::RtmpUrl;
use pullcast_server::messages::*;
use pullcast_server::registry::Registry;
use pullcast_server::stream::budget::Charge;
use pullcast_server::stream::supervisor::StreamSupervisor;
use pullcast_server::stream::{SourceContext, SourceStarter};
use uuid::Uuid;

/// x264 Constrained Baseline 1280x720 AVC sequence header as nginx-rtmp sends it.
fn avc_sequence_header() -> Bytes {
    let sps: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
    ];
    let pps: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    let mut v = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1f, 0xff, 0xe1];
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(pps);
    Bytes::from(v)
}

fn video(keyframe: bool, n: u8) -> Bytes {
    let nal: &[u8] = if keyframe {
        &[0x65, 0x88]
    } else {
        &[0x41, 0x9a]
    };
    let mut v = vec![if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 3];
    v.extend_from_slice(nal);
    v.push(n);
    Bytes::from(v)
}

fn tag(track: Track, timestamp: u32, body: Bytes) -> FlvTag {
    FlvTag {
        track,
        timestamp,
        body,
        received_us: 1,
        charge: Charge::none(),
    }
}

const AAC_HEADER: &[u8] = &[0xaf, 0x00, 0x11, 0x90];
const AAC_FRAME: &[u8] = &[0xaf, 0x01, 0x21, 0x10, 0x04];

/// A source that records what it was given and whether it was stopped.
struct FakeSource {
    stops: Arc<AtomicUsize>,
}

impl Actor for FakeSource {
    type Context = Context<Self>;
}

impl Handler<StopSource> for FakeSource {
    type Result = ();
    fn handle(&mut self, _: StopSource, ctx: &mut Self::Context) {
        self.stops.fetch_add(1, Ordering::SeqCst);
        ctx.stop();
    }
}

#[derive(Clone, Default)]
struct Sources {
    contexts: Arc<Mutex<Vec<SourceContext>>>,
    stops: Arc<AtomicUsize>,
}

impl Sources {
    fn starter(&self) -> SourceStarter {
        let me = self.clone();
        Arc::new(move |ctx: SourceContext| {
            me.contexts.lock().unwrap().push(ctx);
            FakeSource {
                stops: me.stops.clone(),
            }
            .start()
            .recipient()
        })
    }

    async fn wait_for(&self, n: usize) -> (Recipient<ReaderEvent>, Recipient<FlvTag>) {
        eventually(|| self.contexts.lock().unwrap().len() >= n).await;
        let guard = self.contexts.lock().unwrap();
        let ctx = &guard[n - 1];
        (ctx.events.clone(), ctx.tags.clone())
    }

    /// Connection `n` (from 1) says the publisher left, in line with its tags.
    fn publisher_left(&self, n: usize, reason: &str) {
        self.end(
            n,
            MediaEnd::PublisherLeft {
                reason: reason.into(),
            },
        );
    }

    /// Connection `n` (from 1) ends, in line with its tags, as a reader does when it stops.
    fn end_connection(&self, n: usize, reason: &str) {
        self.end(
            n,
            MediaEnd::ConnectionEnded {
                reason: reason.into(),
            },
        );
    }

    fn end(&self, n: usize, end: MediaEnd) {
        self.contexts.lock().unwrap()[n - 1].media_end.do_send(end);
    }
}

/// A Registry whose captures run on this test's own runtime with its clock paused: sleeps
/// and the captures' deadlines (retries, linger, give-up) advance virtual time — at once,
/// whenever every actor is idle — instead of waiting for real time.
fn registry_on_paused_clock(settings: Settings, sources: &Sources) -> Addr<Registry> {
    tokio::time::pause();
    Registry::on_this_arbiter(settings, sources.starter()).start()
}

async fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 2 s");
}

fn request(uri: &str, name: Option<&str>) -> PullRequest {
    PullRequest {
        uri: uri.to_string(),
        url: RtmpUrl::parse(uri).unwrap(),
        local_stream_name: name.unwrap_or(uri).to_string(),
        record: false,
        has_audio: true,
        has_video: true,
        on_demand: false,
        published: false,
        publish_grace_ms: 0,
        may_pull_private: true,
    }
}

/// A REST pull of `uri` (no local name), which the registry accepts.
async fn pull(registry: &Addr<Registry>, uri: &str) {
    registry
        .send(Pull {
            request: request(uri, None),
        })
        .await
        .unwrap()
        .unwrap();
}

/// [`pull`], then the handle a viewer of `uri` gets.
async fn pull_and_watch(registry: &Addr<Registry>, uri: &str) -> CaptureHandle {
    pull(registry, uri).await;
    registry
        .send(Watch {
            name: uri.into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap()
        .unwrap()
}

async fn snapshot_of(registry: &Addr<Registry>, uri: &str) -> CaptureSnapshot {
    let all = registry.send(FindAll).await.unwrap();
    all.into_iter().find(|s| s.uri == uri).unwrap()
}

#[actix::test]
async fn registry_lifecycle_with_a_fake_source() {
    let sources = Sources::default();
    let mut settings = Settings::default();
    settings.limits.max_captures = 2;
    let registry = Registry::new(settings, sources.starter(), 2).start();
    let uri = "rtmp://origin/live/a";

    let first = registry
        .send(Pull {
            request: request(uri, Some("a")),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, CaptureStatus::Pending);
    assert_eq!(first.local_stream_name, "a");

    let (events, tags) = sources.wait_for(1).await;
    events.do_send(ReaderEvent::Connected {
        peer: "127.0.0.1:1935".into(),
    });
    tags.do_send(tag(Track::Video, 0, avc_sequence_header()));
    tags.do_send(tag(Track::Audio, 0, Bytes::from_static(AAC_HEADER)));
    for i in 0..30u8 {
        tags.do_send(tag(Track::Video, i as u32 * 33, video(i % 10 == 0, i)));
        tags.do_send(tag(
            Track::Audio,
            i as u32 * 21,
            Bytes::from_static(AAC_FRAME),
        ));
    }
    events.do_send(ReaderEvent::Progress {
        bytes_received: 4096,
    });
    let mut snap = snapshot_of(&registry, uri).await;
    for _ in 0..100 {
        if snap.video_frames == 30 {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
        snap = snapshot_of(&registry, uri).await;
    }
    assert_eq!(snap.status, CaptureStatus::ProcessedRemote);
    assert_eq!((snap.video_frames, snap.audio_frames), (30, 30));
    assert_eq!(snap.bytes_received, 4096);
    let video = snap.video.unwrap();
    assert_eq!((video.width, video.height), (1280, 720));
    assert_eq!(video.profile, "Constrained Baseline");
    let audio = snap.audio.unwrap();
    assert_eq!((audio.sample_rate, audio.channels), (48000, 2));

    // Same uri, or same local name: 409.
    let again = registry
        .send(Pull {
            request: request(uri, Some("other")),
        })
        .await
        .unwrap();
    assert!(matches!(again, Err(PullError::Conflict(_))));
    let same_name = registry
        .send(Pull {
            request: request("rtmp://origin/live/b", Some("a")),
        })
        .await
        .unwrap();
    assert!(matches!(same_name, Err(PullError::Conflict(e)) if e.contains("'a'")));

    // The limit of 2.
    registry
        .send(Pull {
            request: request("rtmp://origin/live/b", None),
        })
        .await
        .unwrap()
        .unwrap();
    let third = registry
        .send(Pull {
            request: request("rtmp://origin/live/c", None),
        })
        .await
        .unwrap();
    assert!(matches!(third, Err(PullError::CannotStart(e)) if e.contains("limit")));

    // A late "ended" notice for an unknown id removes nothing.
    registry.do_send(CaptureEnded { id: Uuid::new_v4() });
    assert_eq!(registry.send(FindAll).await.unwrap().len(), 2);

    // Terminate: gone from the list, its source stopped.
    registry
        .send(Terminate { uri: uri.into() })
        .await
        .unwrap()
        .unwrap();
    let left = registry.send(FindAll).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].uri, "rtmp://origin/live/b");
    eventually(|| sources.stops.load(Ordering::SeqCst) == 1).await;
    let unknown = registry
        .send(Terminate {
            uri: "rtmp://nope/a/b".into(),
        })
        .await
        .unwrap();
    assert!(matches!(unknown, Err(TerminateError::NotFound(_))));
}

#[actix::test]
async fn a_failed_source_shows_failed_with_its_reason_and_stays_listed() {
    let sources = Sources::default();
    let registry = registry_on_paused_clock(Settings::default(), &sources);
    let uri = "rtmp://origin/live/x";
    pull(&registry, uri).await;
    let (_events, tags) = sources.wait_for(1).await;
    sources.end_connection(1, "connection refused by 127.0.0.1:1");
    // Late media from the dead reader does not revive it.
    tags.do_send(tag(Track::Audio, 0, Bytes::from_static(AAC_HEADER)));
    tags.do_send(tag(Track::Audio, 20, Bytes::from_static(AAC_FRAME)));
    actix::clock::sleep(Duration::from_millis(100)).await;
    let snap = snapshot_of(&registry, uri).await;
    assert_eq!(snap.status, CaptureStatus::Failed);
    assert_eq!(
        snap.reason.as_deref(),
        Some("connection refused by 127.0.0.1:1")
    );
    assert_eq!(snap.audio_frames, 0);
}

/// A subscriber that records what it gets; optionally blocks its thread to be slow.
struct Recorder {
    got: Arc<Mutex<Vec<SubscriberMedia>>>,
    delay: Duration,
    capacity: usize,
}

impl Actor for Recorder {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.capacity);
    }
}

/// A [`Recorder`] on this thread with a mailbox of `capacity`, and what it receives.
fn recorder(capacity: usize) -> (Arc<Mutex<Vec<SubscriberMedia>>>, Addr<Recorder>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let addr = Recorder {
        got: got.clone(),
        delay: Duration::ZERO,
        capacity,
    }
    .start();
    (got, addr)
}

impl Handler<SubscriberMedia> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: SubscriberMedia, _ctx: &mut Self::Context) {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.got.lock().unwrap().push(msg);
    }
}

fn frames(got: &Arc<Mutex<Vec<SubscriberMedia>>>) -> Vec<pullcast::media::MediaFrame> {
    got.lock()
        .unwrap()
        .iter()
        .flat_map(|m| match m {
            SubscriberMedia::Frame(f, _) => vec![f.clone()],
            SubscriberMedia::Replay(frames, _) => frames.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// Subscribes a recording subscriber (mailbox of 64, on this thread) that takes the
/// original media straight from `supervisor`; returns what it receives.
async fn subscribe_original(
    supervisor: &Addr<StreamSupervisor>,
) -> Arc<Mutex<Vec<SubscriberMedia>>> {
    let (got, viewer) = recorder(64);
    supervisor
        .send(Subscribe {
            id: Uuid::new_v4(),
            recipient: viewer.recipient(),
            delivery: Delivery::Original,
        })
        .await
        .unwrap();
    got
}

#[actix::test]
async fn new_subscriber_starts_at_the_cached_keyframe_and_slow_ones_skip_to_keyframes() {
    let sources = Sources::default();
    let supervisor = StreamSupervisor::new(
        Uuid::new_v4(),
        request("rtmp://origin/live/g", None),
        Settings::default().capture,
        sources.starter(),
        None,
    )
    .start();
    let (_events, tags) = sources.wait_for(1).await;
    tags.do_send(tag(Track::Video, 0, avc_sequence_header()));
    tags.do_send(tag(Track::Audio, 0, Bytes::from_static(AAC_HEADER)));
    // keyframe at 0 and 10; frames 10..=14 are the current GOP (+ audio after it).
    for i in 0..15u8 {
        tags.do_send(tag(Track::Video, i as u32 * 33, video(i % 10 == 0, i)));
    }
    tags.do_send(tag(Track::Audio, 470, Bytes::from_static(AAC_FRAME)));
    for _ in 0..200 {
        if supervisor.send(GetSnapshot).await.unwrap().audio_frames == 1 {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }

    // An instant-start subscriber: codecs, then the GOP from keyframe 10.
    let got = subscribe_original(&supervisor).await;
    eventually(|| frames(&got).len() == 6).await;
    assert!(
        matches!(got.lock().unwrap()[0], SubscriberMedia::Codecs(ref c) if c.video.is_some() && c.audio.is_some())
    );
    let first = &frames(&got)[0];
    assert!(first.keyframe && first.track == Track::Video && first.dts == 330);
    assert_eq!(frames(&got)[5].track, Track::Audio);

    // A slow subscriber on its own thread with a mailbox of 2.
    let slow_got = Arc::new(Mutex::new(Vec::new()));
    let arbiter = Arbiter::new();
    let slow_got2 = slow_got.clone();
    let slow = Recorder::start_in_arbiter(&arbiter.handle(), move |_| Recorder {
        got: slow_got2,
        delay: Duration::from_millis(20),
        capacity: 2,
    });
    supervisor
        .send(Subscribe {
            id: Uuid::new_v4(),
            recipient: slow.clone().recipient(),
            delivery: Delivery::Original,
        })
        .await
        .unwrap();
    for i in 15..75u8 {
        tags.do_send(tag(Track::Video, i as u32 * 33, video(i % 10 == 0, i)));
    }
    // The fast viewer gets every frame while the slow one (20 ms a message) is still far
    // behind: the slow one never held the capture up.
    eventually(|| frames(&got).len() == 6 + 60).await;
    assert!(
        frames(&slow_got).len() < 30,
        "the fast viewer waited for the slow one"
    );
    // Whatever the slow one was sent is in its mailbox before this; once this is answered,
    // it has handled all of it.
    slow.send(SubscriberMedia::Codecs(Default::default()))
        .await
        .unwrap();
    let slow_frames = frames(&slow_got);
    assert!(
        slow_frames.len() < 6 + 60,
        "the slow subscriber should have missed frames"
    );
    // Wherever it missed frames, it resumed at a keyframe.
    let mut last: Option<i64> = None;
    for f in slow_frames.iter().filter(|f| f.track == Track::Video) {
        if let Some(prev) = last {
            if f.dts != prev + 33 {
                assert!(f.keyframe, "resumed at dts {} without a keyframe", f.dts);
            }
        }
        last = Some(f.dts);
    }
    arbiter.stop();
}

#[actix::test]
async fn a_subscriber_whose_byte_queue_is_full_skips_to_the_next_keyframe() {
    let sources = Sources::default();
    let mut settings = Settings::default().capture;
    // A keyframe and two P-frames (each its payload + 256 bytes of overhead) fit, no more.
    settings.subscriber_queue_bytes = 900;
    let supervisor = StreamSupervisor::new(
        Uuid::new_v4(),
        request("rtmp://origin/live/q", None),
        settings,
        sources.starter(),
        None,
    )
    .start();
    let (_events, tags) = sources.wait_for(1).await;
    tags.do_send(tag(Track::Video, 0, avc_sequence_header()));
    // A subscriber with room in its mailbox that holds on to what it got (and so to its
    // queue's bytes).
    let got = subscribe_original(&supervisor).await;
    for i in 0..6u8 {
        tags.do_send(tag(Track::Video, i as u32 * 33, video(i == 0, i)));
    }
    let handled = |n: u64| {
        let supervisor = supervisor.clone();
        async move {
            for _ in 0..200 {
                if supervisor.send(GetSnapshot).await.unwrap().video_frames >= n {
                    return;
                }
                actix::clock::sleep(Duration::from_millis(10)).await;
            }
            panic!("the supervisor never handled {n} frames");
        }
    };
    handled(6).await;
    eventually(|| frames(&got).len() == 3).await;
    // It catches up: what it held is released. P6 and P7 must not reach it (it missed P3),
    // the keyframe at 8 and what follows must.
    let before: Vec<i64> = frames(&got).iter().map(|f| f.dts).collect();
    assert_eq!(before, [0, 33, 66]);
    got.lock().unwrap().clear();
    for i in 6..10u8 {
        tags.do_send(tag(Track::Video, i as u32 * 33, video(i == 8, i)));
    }
    handled(10).await;
    eventually(|| frames(&got).len() == 2).await;
    let after: Vec<(i64, bool)> = frames(&got).iter().map(|f| (f.dts, f.keyframe)).collect();
    assert_eq!(after, [(264, true), (297, false)]);
}

#[actix::test]
async fn watch_finds_by_name_or_uri_and_starts_rtmp_names_on_demand() {
    let sources = Sources::default();
    let mut settings = Settings::default();
    settings.capture.on_demand_linger_ms = 200;
    let registry = registry_on_paused_clock(settings, &sources);
    registry
        .send(Pull {
            request: request("rtmp://origin/live/a", Some("cam")),
        })
        .await
        .unwrap()
        .unwrap();
    let by_name = registry
        .send(Watch {
            name: "cam".into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap()
        .unwrap();
    let by_uri = registry
        .send(Watch {
            name: "rtmp://origin/live/a".into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name.id, by_uri.id);
    let missing = registry
        .send(Watch {
            name: "nope".into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap();
    assert!(matches!(missing, Err(WatchError::NotFound(e)) if e.contains("Stream not found")));
    let bad = registry
        .send(Watch {
            name: "rtmp://host-only".into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap();
    assert!(matches!(bad, Err(WatchError::CannotStart(_))));

    // An rtmp:// name: an on-demand capture, listed like any other.
    let uri = "rtmp://origin/live/ondemand";
    let handle = registry
        .send(Watch {
            name: uri.into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap()
        .unwrap();
    let snap = snapshot_of(&registry, uri).await;
    assert!(snap.on_demand);
    assert_eq!(snap.local_stream_name, uri);
    // A viewer comes and goes; 200 ms later the capture is gone, its source stopped.
    let (_got, id) = subscribe_recorder(&handle, 16, Delivery::WebRtc).await;
    actix::clock::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        registry.send(FindAll).await.unwrap().len(),
        2,
        "a watched capture stays"
    );
    handle.unsubscribe.send(Unsubscribe { id }).await.unwrap();
    actix::clock::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        registry.send(FindAll).await.unwrap().len(),
        2,
        "it lingers a while"
    );
    eventually(|| sources.stops.load(Ordering::SeqCst) == 1).await;
    let left = registry.send(FindAll).await.unwrap();
    assert_eq!(left.len(), 1, "the on-demand capture should be gone");
    assert_eq!(left[0].local_stream_name, "cam", "the REST capture stays");
}

/// A caller without `pull` (`may_start_pull: false`) finds captures that exist, by name or
/// uri, but an rtmp:// name nobody captures is `NotFound` and starts nothing; names that
/// are not ASCII are ordinary names.
#[actix::test]
async fn watch_without_pull_permission_finds_only_captures_that_exist() {
    let sources = Sources::default();
    let registry = registry_on_paused_clock(Settings::default(), &sources);
    registry
        .send(Pull {
            request: request("rtmp://origin/live/a", Some("直播流")),
        })
        .await
        .unwrap()
        .unwrap();
    for name in ["直播流", "rtmp://origin/live/a"] {
        let found = registry
            .send(Watch {
                name: name.into(),
                may_start_pull: false,
                may_pull_private: false,
            })
            .await
            .unwrap();
        assert!(found.is_ok(), "{name}");
    }
    for name in [
        "rtmp://origin/live/other",
        "RTMP://origin/live/other",
        "Ёлка",
        "rtmp:/é",
    ] {
        let missing = registry
            .send(Watch {
                name: name.into(),
                may_start_pull: false,
                may_pull_private: false,
            })
            .await
            .unwrap();
        assert!(
            matches!(missing, Err(WatchError::NotFound(_))),
            "{name}: {missing:?}"
        );
    }
    assert_eq!(registry.send(FindAll).await.unwrap().len(), 1);
    assert_eq!(
        sources.contexts.lock().unwrap().len(),
        1,
        "no other pull was started"
    );
}

/// Real AAC-LC 48 kHz stereo frames from the FDK encoder, as FLV tag bodies.
fn aac_tags(seconds: f32) -> (Bytes, Vec<Bytes>) {
    use fdk_aac::enc::{
        AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport as T,
    };
    let enc = Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(128_000),
        sample_rate: 48_000,
        transport: T::Raw,
        channels: ChannelMode::Stereo,
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .unwrap();
    let info = enc.info().unwrap();
    let mut header = vec![0xaf, 0x00];
    header.extend_from_slice(&info.confBuf[..info.confSize as usize]);
    let n = (48_000.0 * seconds) as usize;
    let pcm: Vec<i16> = (0..n)
        .flat_map(|i| {
            let v = ((i as f32) * 2.0 * std::f32::consts::PI * 1000.0 / 48_000.0).sin();
            [(v * 10_000.0) as i16; 2]
        })
        .collect();
    let mut out = vec![0u8; 4096];
    let mut tags = Vec::new();
    for chunk in pcm.chunks(2048) {
        let r = enc.encode(chunk, &mut out).unwrap();
        if r.output_size > 0 {
            let mut tag = vec![0xaf, 0x01];
            tag.extend_from_slice(&out[..r.output_size]);
            tags.push(Bytes::from(tag));
        }
    }
    (Bytes::from(header), tags)
}

#[actix::test]
async fn webrtc_subscribers_get_opus_from_one_transcoder_and_originals_get_aac() {
    let sources = Sources::default();
    let supervisor = StreamSupervisor::new(
        Uuid::new_v4(),
        request("rtmp://origin/live/audio", None),
        Settings::default().capture,
        sources.starter(),
        None,
    )
    .start();
    let (_events, tags) = sources.wait_for(1).await;
    let (header, aac_frames) = aac_tags(1.0);
    tags.do_send(tag(Track::Audio, 0, header));

    let (web_got, web) = recorder(256);
    let (web2_got, web2) = recorder(256);
    let (orig_got, orig) = recorder(256);
    for (addr, delivery) in [
        (web.recipient(), Delivery::WebRtc),
        (web2.recipient(), Delivery::WebRtc),
        (orig.recipient(), Delivery::Original),
    ] {
        supervisor
            .send(Subscribe {
                id: Uuid::new_v4(),
                recipient: addr,
                delivery,
            })
            .await
            .unwrap();
    }
    for (i, frame) in aac_frames.iter().enumerate() {
        tags.do_send(tag(
            Track::Audio,
            (i * 1024 * 1000 / 48_000) as u32,
            frame.clone(),
        ));
    }
    // ~1 s of audio: ~46 AAC frames to the original, ~48 Opus frames to each WebRTC viewer.
    eventually(|| frames(&web_got).len() >= 45 && frames(&web2_got).len() >= 45).await;
    let opus = frames(&web_got);
    assert!(
        opus.windows(2).all(|w| w[1].pts - w[0].pts == 20),
        "Opus frames are 20 ms apart"
    );
    assert_eq!(opus[0].pts, 0);
    // Each is an Opus packet whose TOC byte says "one 20 ms frame" (RFC 6716 §3.1).
    assert!(opus.iter().all(|f| {
        let config = f.data[0] >> 3;
        [1, 5, 9, 13, 15, 19, 23, 27, 31].contains(&config) && f.data[0] & 0x03 == 0
    }));
    assert_eq!(
        opus.iter().map(|f| f.pts).collect::<Vec<_>>(),
        frames(&web2_got)
            .iter()
            .map(|f| f.pts)
            .take(opus.len())
            .collect::<Vec<_>>(),
        "both viewers get the same transcode"
    );
    let aac = frames(&orig_got);
    assert_eq!(aac.len(), aac_frames.len());
    assert_eq!(aac[3].data, aac_frames[3].slice(2..));
}

/// The Recorder on its own, driven by messages: a codec change closes the file and the next
/// one starts; both files carry the frames of their configuration.
/// Records `rounds` configurations of one stream, alternating between two (another level),
/// 120 frames each, with `settings` (into a new temporary folder); returns the folder, the
/// recorder's statuses and the `.mp4` file names, once `files` of them exist.
async fn record_alternating_configurations(
    mut settings: pullcast::config::RecordSettings,
    rounds: usize,
    files: usize,
) -> (std::path::PathBuf, Vec<RecordingStatus>, Vec<String>) {
    use pullcast::codec::h264::parse_avc_decoder_config;
    use pullcast::media::{CodecSet, MediaFrame};
    use pullcast_server::stream::recorder::Recorder;

    let folder = std::env::temp_dir().join(format!("pullcast-recorder-{}", Uuid::new_v4()));
    settings.folder = folder.to_string_lossy().into_owned();
    settings.template = "{streamName}".to_string();
    struct Statuses(Arc<Mutex<Vec<RecordingStatus>>>);
    impl Actor for Statuses {
        type Context = Context<Self>;
    }
    impl Handler<RecordingStatus> for Statuses {
        type Result = ();
        fn handle(&mut self, msg: RecordingStatus, _: &mut Self::Context) {
            self.0.lock().unwrap().push(msg);
        }
    }
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let status = Statuses(statuses.clone()).start().recipient();
    let recorder = Recorder::new(
        "test".into(),
        "cam".into(),
        Uuid::new_v4(),
        settings,
        status,
    )
    .start();

    let header = avc_sequence_header();
    let first = Arc::new(parse_avc_decoder_config(&header[5..]).unwrap());
    // The same stream re-announced with another level: a new configuration.
    let mut changed = (*first).clone();
    changed.level = 40;
    let changed = Arc::new(changed);
    let frame = |dts: i64, key: bool| MediaFrame {
        track: Track::Video,
        pts: dts,
        dts,
        keyframe: key,
        data: Bytes::from(if key {
            vec![0, 0, 0, 1, 0x65, 0x88, 0x84]
        } else {
            vec![0, 0, 0, 1, 0x41, 0x9a]
        }),
        ingest_us: 0,
    };
    for round in 0..rounds {
        let config = if round % 2 == 0 { &first } else { &changed };
        recorder.do_send(SubscriberMedia::Codecs(CodecSet {
            video: Some(config.clone()),
            audio: None,
        }));
        let start = round as i64 * 10_000;
        for i in 0..120 {
            recorder.do_send(SubscriberMedia::Frame(
                frame(start + i * 33, i % 30 == 0),
                Charge::none(),
            ));
        }
    }
    recorder.do_send(SubscriberMedia::Stopped {
        reason: "test over".into(),
        failed: false,
    });
    let names = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".mp4"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    // Stopped (by the error, or by `Stopped` after the last frame): every status is sent.
    eventually(|| !recorder.connected()).await;
    eventually(|| names().len() == files).await;
    let statuses = statuses.lock().unwrap().clone();
    (folder.clone(), statuses, names())
}

#[actix::test]
async fn recorder_starts_a_new_file_on_a_codec_change() {
    let settings = pullcast::config::RecordSettings::default();
    let (folder, statuses, names) = record_alternating_configurations(settings, 2, 2).await;
    assert_eq!(names, vec!["cam-2.mp4", "cam.mp4"]);
    for name in &names {
        let bytes = std::fs::read(folder.join(name)).unwrap();
        assert_eq!(&bytes[4..8], b"ftyp", "{name}");
        assert!(
            bytes.windows(4).any(|w| w == b"moof"),
            "{name} has fragments"
        );
    }
    assert!(statuses.iter().all(|s| s.error.is_none()));
    let _ = std::fs::remove_dir_all(folder);
}

#[actix::test]
async fn a_source_flipping_codecs_stops_its_recording_at_the_file_rate_cap() {
    let settings = pullcast::config::RecordSettings {
        max_files_per_minute: 3,
        ..Default::default()
    };
    let (folder, statuses, names) = record_alternating_configurations(settings, 8, 3).await;
    assert_eq!(names, vec!["cam-2.mp4", "cam-3.mp4", "cam.mp4"]);
    let errors: Vec<_> = statuses.iter().filter_map(|s| s.error.clone()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("record.max_files_per_minute"),
        "{errors:?}"
    );
    let _ = std::fs::remove_dir_all(folder);
}

#[actix::test]
async fn a_recording_needs_the_free_disk_space_it_is_told() {
    let settings = pullcast::config::RecordSettings {
        min_free_bytes: u64::MAX,
        ..Default::default()
    };
    let (folder, statuses, names) = record_alternating_configurations(settings, 1, 0).await;
    assert!(names.is_empty());
    let errors: Vec<_> = statuses.iter().filter_map(|s| s.error.clone()).collect();
    assert!(
        errors.iter().any(|e| e.contains("record.min_free_bytes")),
        "{errors:?}"
    );
    let _ = std::fs::remove_dir_all(folder);
}

#[actix::test]
async fn find_all_keeps_the_status_history_with_reasons() {
    let sources = Sources::default();
    let registry = registry_on_paused_clock(Settings::default(), &sources);
    let uri = "rtmp://origin/live/history";
    pull(&registry, uri).await;
    let (_events, tags) = sources.wait_for(1).await;
    tags.do_send(tag(Track::Audio, 0, Bytes::from_static(AAC_HEADER)));
    tags.do_send(tag(Track::Audio, 21, Bytes::from_static(AAC_FRAME)));
    actix::clock::sleep(Duration::from_millis(50)).await;
    sources.end_connection(1, "no media for 10000 ms: the source stalled");
    actix::clock::sleep(Duration::from_millis(50)).await;
    let snap = snapshot_of(&registry, uri).await;
    let seen: Vec<(CaptureStatus, Option<String>)> = snap
        .history
        .iter()
        .map(|h| (h.status, h.reason.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (CaptureStatus::Pending, None),
            (CaptureStatus::ProcessedRemote, None),
            (
                CaptureStatus::Reconnecting,
                Some("no media for 10000 ms: the source stalled".into())
            ),
        ]
    );
    assert!(snap.history.windows(2).all(|w| w[0].at <= w[1].at));
}

/// Subscribes a new recording subscriber (mailbox of `capacity`) to the watched capture;
/// returns what it receives and its subscriber id.
async fn subscribe_recorder(
    handle: &CaptureHandle,
    capacity: usize,
    delivery: Delivery,
) -> (Arc<Mutex<Vec<SubscriberMedia>>>, Uuid) {
    let (got, addr) = recorder(capacity);
    let id = Uuid::new_v4();
    handle
        .subscribe
        .send(Subscribe {
            id,
            recipient: addr.recipient(),
            delivery,
        })
        .await
        .unwrap();
    (got, id)
}

fn fast_retries() -> Settings {
    let mut settings = Settings::default();
    settings.capture.reconnect_initial_ms = 100;
    settings.capture.reconnect_max_ms = 200;
    settings
}

#[actix::test]
async fn a_dropped_source_is_pulled_again_and_subscribers_continue_on_one_timeline() {
    let sources = Sources::default();
    let registry = registry_on_paused_clock(fast_retries(), &sources);
    let uri = "rtmp://origin/live/comeback";
    let handle = pull_and_watch(&registry, uri).await;
    let (_events, tags) = sources.wait_for(1).await;
    let (got, _) = subscribe_recorder(&handle, 1024, Delivery::Original).await;
    tags.do_send(tag(Track::Video, 0, avc_sequence_header()));
    for i in 0..30u32 {
        tags.do_send(tag(
            Track::Video,
            50_000 + i * 33,
            video(i % 10 == 0, i as u8),
        ));
    }
    // The end right behind the frames, as a reader sends it: every frame before it arrives.
    sources.end_connection(1, "the source 10.0.0.1:1935 closed the connection");
    // A tag after the end (a reader sends none): ignored.
    tags.do_send(tag(Track::Video, 51_000, video(false, 99)));
    wait_for_status(&registry, uri, CaptureStatus::Reconnecting).await;
    assert_eq!(
        frames(&got).len(),
        30,
        "nothing lost at the end of a connection"
    );
    let snap = snapshot_of(&registry, uri).await;
    assert_eq!(
        snap.reason.as_deref(),
        Some("the source 10.0.0.1:1935 closed the connection")
    );
    assert_eq!(snap.retry.as_ref().map(|r| r.attempt), Some(1));

    // The retry (within 100 ms) gets a second connection; its timestamps restart at 0 and
    // it starts mid-GOP.
    let (events2, tags2) = sources.wait_for(2).await;
    tags2.do_send(tag(Track::Video, 0, avc_sequence_header()));
    tags2.do_send(tag(Track::Video, 0, video(false, 100)));
    for i in 1..20u32 {
        tags2.do_send(tag(Track::Video, i * 33, video(i == 5, 100 + i as u8)));
    }
    eventually(|| frames(&got).len() == 30 + 15).await;
    let all = frames(&got);
    let resumed = &all[30..];
    assert!(resumed[0].keyframe, "subscribers resume at a keyframe");
    assert_eq!(resumed[0].data.last(), Some(&105));
    assert!(
        all.windows(2).all(|w| w[1].dts > w[0].dts),
        "one monotonic timeline across the reconnect"
    );
    let snap = snapshot_of(&registry, uri).await;
    assert_eq!(snap.status, CaptureStatus::ProcessedRemote);
    assert_eq!(snap.reconnects, 1);
    assert!(snap.retry.is_none());
    let statuses: Vec<CaptureStatus> = snap.history.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        [
            CaptureStatus::Pending,
            CaptureStatus::ProcessedRemote,
            CaptureStatus::Reconnecting,
            CaptureStatus::ProcessedRemote
        ]
    );
    // No Stopped was sent to the subscriber through all this.
    assert!(!got
        .lock()
        .unwrap()
        .iter()
        .any(|m| matches!(m, SubscriberMedia::Stopped { .. })));
    drop(events2);
}

#[actix::test]
async fn a_publisher_that_leaves_is_reconnecting_until_new_media_comes_and_nothing_in_flight_is_lost(
) {
    let sources = Sources::default();
    let registry = registry_on_paused_clock(fast_retries(), &sources);
    let uri = "rtmp://origin/live/republish";
    let handle = pull_and_watch(&registry, uri).await;
    let (_events, tags) = sources.wait_for(1).await;
    let (got, _) = subscribe_recorder(&handle, 1024, Delivery::Original).await;
    tags.do_send(tag(Track::Video, 0, avc_sequence_header()));
    for i in 0..60u32 {
        tags.do_send(tag(Track::Video, i * 33, video(i % 30 == 0, i as u8)));
    }
    // Sent right behind the tags, as the reader does on StreamEOF: the frames still queued
    // for the normalizer come first and are not taken for the source's return.
    sources.publisher_left(1, "the source stopped publishing (StreamEOF)");
    wait_for_status(&registry, uri, CaptureStatus::Reconnecting).await;
    actix::clock::sleep(Duration::from_millis(100)).await;
    let snap = snapshot_of(&registry, uri).await;
    assert_eq!(snap.status, CaptureStatus::Reconnecting);
    assert_eq!(
        snap.reason.as_deref(),
        Some("the source stopped publishing (StreamEOF); waiting for it to return")
    );
    assert_eq!(snap.reconnects, 0);
    assert_eq!(
        frames(&got).len(),
        60,
        "every frame before the news delivered"
    );
    // No retry: the connection stays open for the publisher's return.
    assert!(snap.retry.is_none());

    // A new publisher on the same connection: its timestamps restart at 0.
    tags.do_send(tag(Track::Video, 0, avc_sequence_header()));
    for i in 0..10u32 {
        tags.do_send(tag(Track::Video, i * 33, video(i == 0, 200 + i as u8)));
    }
    eventually(|| frames(&got).len() == 70).await;
    let snap = snapshot_of(&registry, uri).await;
    assert_eq!(snap.status, CaptureStatus::ProcessedRemote);
    assert_eq!(snap.reconnects, 1);
    let all = frames(&got);
    assert!(all[60].keyframe);
    assert!(
        all.windows(2).all(|w| w[1].dts > w[0].dts),
        "one monotonic timeline across the publisher's return"
    );
    assert_eq!(
        sources.contexts.lock().unwrap().len(),
        1,
        "no new connection"
    );
}

/// Waits (up to 2 s) until the capture at `uri` has `status`.
async fn wait_for_status(registry: &Addr<Registry>, uri: &str, status: CaptureStatus) {
    for _ in 0..200 {
        if snapshot_of(registry, uri).await.status == status {
            return;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!("{uri} never reached {status:?}");
}

#[actix::test]
async fn a_rest_capture_that_never_connected_keeps_retrying_with_a_failed_status() {
    let sources = Sources::default();
    let registry = registry_on_paused_clock(fast_retries(), &sources);
    let uri = "rtmp://origin/live/notyet";
    pull(&registry, uri).await;
    for n in 1..=3 {
        sources.wait_for(n).await;
        sources.end_connection(
            n,
            "connection refused by 127.0.0.1:1 (nothing listens there)",
        );
    }
    let (_, tags) = sources.wait_for(4).await;
    let snap = snapshot_of(&registry, uri).await;
    assert_eq!(snap.status, CaptureStatus::Failed);
    assert_eq!(snap.retry.as_ref().map(|r| r.attempt), Some(3));
    // The same failure three times is one transition.
    assert_eq!(snap.history.len(), 2);
    // Then the source appears.
    tags.do_send(tag(Track::Audio, 0, Bytes::from_static(AAC_HEADER)));
    tags.do_send(tag(Track::Audio, 21, Bytes::from_static(AAC_FRAME)));
    wait_for_status(&registry, uri, CaptureStatus::ProcessedRemote).await;
}

#[actix::test]
async fn an_on_demand_capture_gives_up_and_its_viewers_get_failed() {
    let sources = Sources::default();
    let mut settings = fast_retries();
    settings.capture.on_demand_give_up_ms = 400;
    let registry = registry_on_paused_clock(settings, &sources);
    let uri = "rtmp://origin/live/gone";
    let handle = registry
        .send(Watch {
            name: uri.into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap()
        .unwrap();
    let (got, _) = subscribe_recorder(&handle, 1024, Delivery::WebRtc).await;
    let (_events, tags) = sources.wait_for(1).await;
    tags.do_send(tag(Track::Video, 0, avc_sequence_header()));
    tags.do_send(tag(Track::Video, 0, video(true, 1)));
    eventually(|| frames(&got).len() == 1).await;
    sources.end_connection(1, "the source 10.0.0.1:1935 closed the connection");
    // Every retry fails; 400 ms (of the paused clock) after the drop the capture gives up.
    let mut n = 2;
    let give_up = tokio::time::Instant::now();
    while registry.send(FindAll).await.unwrap().len() == 1 {
        if sources.contexts.lock().unwrap().len() >= n {
            sources.wait_for(n).await;
            sources.end_connection(
                n,
                "connection refused by 10.0.0.1:1935 (nothing listens there)",
            );
            n += 1;
        }
        assert!(give_up.elapsed() < Duration::from_secs(3), "never gave up");
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    let took = give_up.elapsed();
    assert!(
        (Duration::from_millis(400)..=Duration::from_millis(410)).contains(&took),
        "gave up after {took:?}"
    );
    assert!(n > 2, "it retried before giving up");
    eventually(|| {
        got.lock().unwrap().iter().any(|m| {
            matches!(m, SubscriberMedia::Stopped { failed: true, reason }
                if reason.contains("did not come back within 400 ms"))
        })
    })
    .await;
}

#[actix::test]
async fn an_on_demand_name_that_never_plays_fails_its_viewers_at_once() {
    let sources = Sources::default();
    let registry = registry_on_paused_clock(fast_retries(), &sources);
    let handle = registry
        .send(Watch {
            name: "rtmp://origin/live/never".into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap()
        .unwrap();
    let (got, _) = subscribe_recorder(&handle, 16, Delivery::WebRtc).await;
    sources.wait_for(1).await;
    sources.end_connection(
        1,
        "connection refused by 10.0.0.1:1935 (nothing listens there)",
    );
    eventually(|| {
        got.lock().unwrap().iter().any(|m| {
            matches!(m, SubscriberMedia::Stopped { failed: true, reason }
                if reason.starts_with("connection refused"))
        })
    })
    .await;
    assert!(registry.send(FindAll).await.unwrap().is_empty());
    // A viewer that finishes connecting only now reads the capture's own reason from its
    // handle (the supervisor is gone).
    assert_eq!(
        handle.end.reason(),
        Some("connection refused by 10.0.0.1:1935 (nothing listens there)")
    );
}

#[actix::test]
async fn a_keyframe_request_replays_the_cache_to_that_subscriber_only() {
    let sources = Sources::default();
    let registry = registry_on_paused_clock(Settings::default(), &sources);
    let uri = "rtmp://origin/live/pli";
    let handle = pull_and_watch(&registry, uri).await;
    let (got_a, id_a) = subscribe_recorder(&handle, 1024, Delivery::WebRtc).await;
    let (got_b, _) = subscribe_recorder(&handle, 1024, Delivery::WebRtc).await;
    let (_events, tags) = sources.wait_for(1).await;
    tags.do_send(tag(Track::Video, 0, avc_sequence_header()));
    for i in 0..6u32 {
        tags.do_send(tag(Track::Video, i * 33, video(i == 0, i as u8)));
    }
    eventually(|| frames(&got_a).len() == 6 && frames(&got_b).len() == 6).await;
    handle
        .keyframe
        .send(RequestKeyframe { id: id_a })
        .await
        .unwrap();
    tags.do_send(tag(Track::Video, 6 * 33, video(false, 6)));
    eventually(|| frames(&got_a).len() == 13 && frames(&got_b).len() == 7).await;
    let replay: Vec<u8> = frames(&got_a)[6..12]
        .iter()
        .map(|f| *f.data.last().unwrap())
        .collect();
    assert_eq!(
        replay,
        [0, 1, 2, 3, 4, 5],
        "the cached GOP, from its keyframe"
    );
    assert!(frames(&got_a)[6].keyframe);
    // Still subscribed, both of them; nothing was re-sent to B.
    let snap = snapshot_of(&registry, uri).await;
    assert_eq!(snap.subscribers, 2);
    assert_eq!(*frames(&got_b)[6].data.last().unwrap(), 6);
}

/// Waits (up to 2 s) until the capture list has `n` entries; returns it.
async fn listed(registry: &Addr<Registry>, n: usize) -> Vec<CaptureSnapshot> {
    for _ in 0..200 {
        let all = registry.send(FindAll).await.unwrap();
        if all.len() == n {
            return all;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!("the registry never listed {n} capture(s)");
}

#[actix::test]
async fn a_panic_ends_only_its_capture_and_never_the_registry() {
    let sources = Sources::default();
    let registry = Registry::new(Settings::default(), sources.starter(), 1).start();

    // A bug in the registry while answering: that request fails, the registry stays.
    registry
        .send(InjectPanic {
            target: PanicTarget::Registry,
        })
        .await
        .unwrap();
    let (a, b) = ("rtmp://origin/live/a", "rtmp://origin/live/b");
    pull(&registry, a).await;
    pull(&registry, b).await;
    let (_, tags_b) = sources.wait_for(2).await;
    let watched = registry
        .send(Watch {
            name: a.into(),
            may_start_pull: true,
            may_pull_private: true,
        })
        .await
        .unwrap()
        .unwrap();
    let (got, viewer) = recorder(64);
    watched
        .subscribe
        .send(Subscribe {
            id: Uuid::new_v4(),
            recipient: viewer.recipient(),
            delivery: Delivery::Original,
        })
        .await
        .unwrap();

    // A bug in capture a's supervisor: a ends FAILED, its viewer is told why.
    registry
        .send(InjectPanic {
            target: PanicTarget::Capture { name: a.into() },
        })
        .await
        .unwrap();
    eventually(|| {
        got.lock().unwrap().iter().any(|m| {
            matches!(m, SubscriberMedia::Stopped { failed: true, reason }
                if reason.contains("internal error") && reason.contains("injected panic"))
        })
    })
    .await;
    let left = listed(&registry, 1).await;
    assert_eq!(left[0].uri, b);

    // Capture b goes on: its media still counts.
    tags_b.do_send(tag(Track::Audio, 0, Bytes::from_static(AAC_HEADER)));
    for i in 0..5u32 {
        tags_b.do_send(tag(Track::Audio, i * 21, Bytes::from_static(AAC_FRAME)));
    }
    let mut audio_frames = 0;
    for _ in 0..200 {
        audio_frames = snapshot_of(&registry, b).await.audio_frames;
        if audio_frames == 5 {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(audio_frames, 5);

    // The registry still pulls, watches and answers, a included, and non-ASCII names are
    // just names (this one used to panic the registry: it was sliced at byte 7).
    pull(&registry, a).await;
    for name in ["直播流", "Ёлка", "café", &"長".repeat(10_000)] {
        let answer = registry
            .send(Watch {
                name: name.to_string(),
                may_start_pull: true,
                may_pull_private: true,
            })
            .await
            .unwrap();
        assert!(matches!(answer, Err(WatchError::NotFound(_))), "{name}");
    }
    assert_eq!(listed(&registry, 2).await.len(), 2);
}
