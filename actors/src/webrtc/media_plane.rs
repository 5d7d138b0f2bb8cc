//! One WebRTC viewer's media plane: what turns the capture's frames into this viewer's RTP
//! packets, and its RTCP sender reports. It lives in the media port's worker that owns the
//! viewer's transport, so a frame goes from the capture to that worker once for all the
//! worker's viewers, and no actor sits between a frame and its packets.
//!
//! H.264 access units go out untouched, packetized once per capture for all its viewers
//! (`SharedPayloads`: FU-A, STAP-A with the SPS/PPS that precede every IDR; a viewer only
//! puts its RTP header on the shared payloads); Opus packets go out one per RTP packet. RTP
//! timestamps are the frame's pts on a 90 kHz / 48 kHz clock with a random base
//! (`pullcast::webrtc_viewer`), never backwards; the keyframe cache replayed at the start or
//! for a PLI goes out as a burst ending at the live edge (`ForwardTime::place_replay`), so it
//! costs no latency. Video waits for a keyframe at the start and after a codec change.
//!
//! Sender reports: every [`SENDER_REPORT_EVERY`] each track that has sent media reports the
//! capture time of "now" through one [`SyncAnchor`] shared by both tracks (a frame's pts and
//! its arrival at the server), so the browser aligns audio and video as the source had them,
//! whatever the transcodes' delays.
//!
//! It holds no socket, no actor and reads no clock: the worker passes the time in. It must
//! not decide which frames a viewer is sent (the capture's keyframe gate does).

use std::time::{Duration, Instant};

use bytes::Bytes;
use pullcast::lipsync::SyncAnchor;
use pullcast::media::{MediaFrame, Track};
use pullcast::webrtc_viewer::{ForwardTime, RtpClock};
use rtc::rtcp::sender_report::SenderReport;

use super::media_port::RtpOut;
use super::transport::OutgoingTrack;
use crate::messages::SharedPayloads;
use crate::telemetry::SharedTelemetry;

/// How often each track sends an RTCP sender report (browsers need two before they sync).
pub const SENDER_REPORT_EVERY: Duration = Duration::from_millis(500);

/// One outgoing track of this viewer.
#[derive(Debug, Clone)]
struct OutTrack {
    /// The track on the viewer's transport (its SSRC and payload type).
    out: OutgoingTrack,
    sequence: u16,
    clock: RtpClock,
    /// Keeps the video timestamps moving forward through a keyframe-cache replay (audio skips
    /// replayed frames instead).
    time: ForwardTime,
    /// RTP packets and payload octets sent (for sender reports; wrap as RFC 3550 says).
    packets: u32,
    octets: u32,
}

impl OutTrack {
    fn new(out: OutgoingTrack, sequence: u16, clock: RtpClock) -> Self {
        Self {
            out,
            sequence,
            clock,
            time: ForwardTime::default(),
            packets: 0,
            octets: 0,
        }
    }

    /// The next packet of this track: `payload` under this viewer's header fields.
    fn packet(&mut self, timestamp: u32, marker: bool, payload: Bytes) -> RtpOut {
        let sequence_number = self.sequence;
        self.sequence = self.sequence.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        RtpOut {
            track: self.out,
            sequence_number,
            timestamp,
            marker,
            payload,
        }
    }
}

/// What a frame (or a replay) became.
#[derive(Debug, Default)]
pub struct Stamped {
    /// The packets to send, in order.
    pub packets: Vec<RtpOut>,
    /// A live video frame's arrival at the server (`telemetry::now_us`): its latency is
    /// recorded once the packets have left.
    pub live_video_ingest_us: Option<u64>,
    /// These are the first packets that make the viewer play (video, or audio when there is
    /// no video).
    pub now_playing: bool,
}

/// Where a track's RTP starts: its first sequence number and its clock's base (random per
/// viewer, RFC 3550 §5.1).
#[derive(Debug, Clone, Copy)]
pub struct TrackStart {
    pub track: OutgoingTrack,
    pub sequence: u16,
    pub clock_base: u32,
}

/// One viewer's media plane.
pub struct MediaPlane {
    video: Option<OutTrack>,
    audio: Option<OutTrack>,
    /// The capture has video (from its codecs); playing waits for a video frame then.
    capture_has_video: bool,
    /// Send no video until a keyframe (start, codec change).
    waiting_for_keyframe: bool,
    last_audio_pts: Option<i64>,
    playing: bool,
    /// Capture time ↔ server clock for the sender reports of both tracks.
    anchor: Option<SyncAnchor>,
    next_report: Instant,
    /// The capture's packetizations, shared by all its viewers.
    payloads: SharedPayloads,
    /// The capture's measurements (frame latency).
    pub telemetry: SharedTelemetry,
}

impl MediaPlane {
    /// A plane for a viewer whose transport sends `video` and `audio`; its first report is
    /// due a report interval after `now`.
    pub fn new(
        video: Option<TrackStart>,
        audio: Option<TrackStart>,
        payloads: SharedPayloads,
        telemetry: SharedTelemetry,
        now: Instant,
    ) -> Self {
        Self {
            video: video.map(|t| OutTrack::new(t.track, t.sequence, RtpClock::video(t.clock_base))),
            audio: audio.map(|t| OutTrack::new(t.track, t.sequence, RtpClock::opus(t.clock_base))),
            capture_has_video: true,
            waiting_for_keyframe: true,
            last_audio_pts: None,
            playing: false,
            anchor: None,
            next_report: now + SENDER_REPORT_EVERY,
            payloads,
            telemetry,
        }
    }

    /// The capture's codecs changed (or were told at the start): what follows starts at a
    /// keyframe.
    pub fn codecs(&mut self, has_video: bool) {
        self.capture_has_video = has_video;
        self.waiting_for_keyframe = true;
    }

    /// A live frame; `now_us` (`telemetry::now_us`) stands for its arrival when it carries
    /// none.
    pub fn frame(&mut self, frame: &MediaFrame, now_us: u64) -> Stamped {
        match frame.track {
            Track::Video => self.video_frame(frame, now_us),
            Track::Audio => {
                let packet = self.audio_packet(frame, now_us);
                let packets: Vec<RtpOut> = packet.into_iter().collect();
                self.stamped(packets, self.audio_plays(), None)
            }
        }
    }

    fn video_frame(&mut self, frame: &MediaFrame, now_us: u64) -> Stamped {
        if self.waiting_for_keyframe {
            if !frame.keyframe {
                return Stamped::default();
            }
            self.waiting_for_keyframe = false;
        }
        let Some(video) = self.video.as_mut() else {
            return Stamped::default();
        };
        let at_us = video.time.place(frame.pts);
        let packets = self.video_packets(frame, at_us, now_us);
        let ingest = (frame.ingest_us > 0).then_some(frame.ingest_us);
        self.stamped(packets, true, ingest)
    }

    /// The keyframe cache: its video as a burst ending at the live edge (`ForwardTime`), so
    /// the browser decodes it at once and plays on from now; its audio (none for WebRTC
    /// subscribers, whose Opus starts live) as live audio.
    pub fn replay(&mut self, frames: &[MediaFrame], now_us: u64) -> Stamped {
        let mut video: Vec<&MediaFrame> =
            frames.iter().filter(|f| f.track == Track::Video).collect();
        if self.waiting_for_keyframe {
            let first_keyframe = video.iter().position(|f| f.keyframe);
            video.drain(..first_keyframe.unwrap_or(video.len()));
            self.waiting_for_keyframe = video.is_empty();
        }
        let mut packets = Vec::new();
        let mut plays = false;
        if let Some(track) = self.video.as_mut() {
            let pts: Vec<i64> = video.iter().map(|f| f.pts).collect();
            let stamps = track.time.place_replay(&pts);
            for (frame, at_us) in video.into_iter().zip(stamps) {
                packets.extend(self.video_packets(frame, at_us, now_us));
            }
            // Playing once the newest picture — the live edge — is out.
            plays = !packets.is_empty();
        }
        let audio: Vec<RtpOut> = frames
            .iter()
            .filter(|f| f.track == Track::Audio)
            .filter_map(|frame| self.audio_packet(frame, now_us))
            .collect();
        if !audio.is_empty() {
            plays |= self.audio_plays();
            packets.extend(audio);
        }
        self.stamped(packets, plays, None)
    }

    /// Whether audio alone makes this viewer play (no video to wait for).
    fn audio_plays(&self) -> bool {
        !self.capture_has_video || self.video.is_none()
    }

    fn stamped(
        &mut self,
        packets: Vec<RtpOut>,
        counts_as_playing: bool,
        live_video_ingest_us: Option<u64>,
    ) -> Stamped {
        let now_playing = !packets.is_empty() && counts_as_playing && !self.playing;
        self.playing |= now_playing;
        Stamped {
            live_video_ingest_us: live_video_ingest_us.filter(|_| !packets.is_empty()),
            packets,
            now_playing,
        }
    }

    /// `frame`'s RTP packets stamped at `at_us` (capture time, µs): none when there is no
    /// video track or the access unit cannot be packetized.
    fn video_packets(&mut self, frame: &MediaFrame, at_us: i128, now_us: u64) -> Vec<RtpOut> {
        let Some(video) = self.video.as_mut() else {
            return Vec::new();
        };
        let payloads = self.payloads.h264(&frame.data);
        if payloads.is_empty() {
            return Vec::new();
        }
        let timestamp = video.clock.timestamp_us(at_us);
        self.anchor.get_or_insert_with(|| anchor_of(frame, now_us));
        let last = payloads.len() - 1;
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| video.packet(timestamp, i == last, p.clone()))
            .collect()
    }

    /// `frame`'s RTP packet, unless there is no audio track, it is empty, or it is not after
    /// the last one sent (after a resubscribe the cache replays audio already sent).
    fn audio_packet(&mut self, frame: &MediaFrame, now_us: u64) -> Option<RtpOut> {
        if self.last_audio_pts.is_some_and(|last| frame.pts <= last) {
            return None;
        }
        let audio = self.audio.as_mut()?;
        if frame.data.is_empty() {
            return None;
        }
        self.last_audio_pts = Some(frame.pts);
        let timestamp = audio.clock.timestamp(frame.pts);
        self.anchor.get_or_insert_with(|| anchor_of(frame, now_us));
        Some(audio.packet(timestamp, false, frame.data.clone()))
    }

    /// When the next sender reports are due.
    pub fn next_report(&self) -> Instant {
        self.next_report
    }

    /// The sender reports due at `now` (one per track that has sent media, naming the capture
    /// time of `now_us` on the server's clock and `ntp_time` on the wall clock); the next are
    /// due a report interval later.
    pub fn sender_reports(
        &mut self,
        now: Instant,
        now_us: u64,
        ntp_time: u64,
    ) -> Vec<SenderReport> {
        if now < self.next_report {
            return Vec::new();
        }
        self.next_report = now + SENDER_REPORT_EVERY;
        let Some(anchor) = self.anchor else {
            return Vec::new();
        };
        [self.video.as_ref(), self.audio.as_ref()]
            .into_iter()
            .flatten()
            .filter(|track| track.packets > 0)
            .map(|track| SenderReport {
                ssrc: track.out.ssrc,
                ntp_time,
                rtp_time: anchor.rtp_time(&track.clock, now_us),
                packet_count: track.packets,
                octet_count: track.octets,
                ..Default::default()
            })
            .collect()
    }
}

/// The anchor a frame gives: its pts and when its source message arrived (`now_us` when
/// unknown).
fn anchor_of(frame: &MediaFrame, now_us: u64) -> SyncAnchor {
    SyncAnchor {
        pts_ms: frame.pts,
        arrival_us: if frame.ingest_us > 0 {
            frame.ingest_us
        } else {
            now_us
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: OutgoingTrack = OutgoingTrack {
        ssrc: 1111,
        payload_type: 102,
    };
    const AUDIO: OutgoingTrack = OutgoingTrack {
        ssrc: 2222,
        payload_type: 111,
    };

    fn plane(now: Instant) -> MediaPlane {
        let start = |track, sequence, clock_base| TrackStart {
            track,
            sequence,
            clock_base,
        };
        MediaPlane::new(
            Some(start(VIDEO, 65_534, 1_000)),
            Some(start(AUDIO, 7, 5_000)),
            SharedPayloads::default(),
            SharedTelemetry::default(),
            now,
        )
    }

    /// An access unit of `len` bytes (IDR or not), arrived at `ingest_us`.
    fn video(pts: i64, keyframe: bool, len: usize, ingest_us: u64) -> MediaFrame {
        let mut data = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
        data.resize(len, 0x5a);
        MediaFrame {
            track: Track::Video,
            pts,
            dts: pts,
            keyframe,
            data: Bytes::from(data),
            ingest_us,
        }
    }

    fn audio(pts: i64) -> MediaFrame {
        MediaFrame {
            track: Track::Audio,
            pts,
            dts: pts,
            keyframe: true,
            data: Bytes::from_static(&[0xfc, 1, 2, 3]),
            ingest_us: 0,
        }
    }

    #[test]
    fn video_waits_for_a_keyframe_then_plays_once_with_its_own_sequence_and_clock() {
        let mut plane = plane(Instant::now());
        assert!(plane
            .frame(&video(0, false, 3_000, 10), 0)
            .packets
            .is_empty());
        let first = plane.frame(&video(33, true, 3_000, 20), 0);
        assert!(first.now_playing);
        assert_eq!(first.live_video_ingest_us, Some(20));
        let seqs: Vec<u16> = first.packets.iter().map(|p| p.sequence_number).collect();
        assert_eq!(seqs, [65_534, 65_535, 0], "three FU-A packets, wrapping");
        let markers: Vec<bool> = first.packets.iter().map(|p| p.marker).collect();
        assert_eq!(markers, [false, false, true]);
        assert!(first.packets.iter().all(|p| p.timestamp == 1_000 + 33 * 90));
        assert!(first.packets.iter().all(|p| p.track == VIDEO));
        let next = plane.frame(&video(66, false, 500, 30), 0);
        assert!(!next.now_playing, "Playing is said once");
        assert_eq!(next.packets[0].sequence_number, 1);
        assert_eq!(next.packets[0].timestamp, 1_000 + 66 * 90);
        // A new codec configuration: video waits for a keyframe again.
        plane.codecs(true);
        assert!(plane
            .frame(&video(99, false, 500, 40), 0)
            .packets
            .is_empty());
    }

    #[test]
    fn audio_plays_alone_only_without_video_and_never_goes_back() {
        let mut plane = plane(Instant::now());
        let first = plane.frame(&audio(20), 0);
        assert_eq!(first.packets.len(), 1);
        assert!(!first.now_playing, "the capture has video: wait for it");
        assert_eq!(first.packets[0].timestamp, 5_000 + 20 * 48);
        assert!(
            plane.frame(&audio(20), 0).packets.is_empty(),
            "not after the last"
        );
        plane.codecs(false);
        assert!(plane.frame(&audio(40), 0).now_playing);
    }

    #[test]
    fn a_replay_starts_at_its_keyframe_and_ends_at_the_live_edge() {
        let mut plane = plane(Instant::now());
        let cache = [
            video(0, false, 400, 1),
            video(33, true, 400, 2),
            video(66, false, 400, 3),
            video(99, false, 400, 4),
        ];
        let replay = plane.replay(&cache, 0);
        assert!(replay.now_playing);
        assert_eq!(
            replay.live_video_ingest_us, None,
            "old on purpose: not measured"
        );
        assert_eq!(replay.packets.len(), 3, "from the keyframe on");
        let last = replay.packets.last().map(|p| p.timestamp);
        assert_eq!(last, Some(1_000 + 99 * 90), "the newest at its own time");
        let live = plane.frame(&video(132, false, 400, 5), 0);
        assert_eq!(live.packets[0].timestamp, 1_000 + 132 * 90);
    }

    #[test]
    fn sender_reports_are_due_every_interval_for_the_tracks_that_sent() {
        let t0 = Instant::now();
        let mut plane = plane(t0);
        let due = t0 + SENDER_REPORT_EVERY;
        assert_eq!(plane.next_report(), due);
        plane.frame(&video(33, true, 3_000, 1_000_000), 0);
        assert!(
            plane.sender_reports(t0, 1_000_000, 7).is_empty(),
            "not due yet"
        );
        // 100 ms after the frame arrived, the capture time is pts + 100 ms.
        let reports = plane.sender_reports(due, 1_100_000, 7);
        assert_eq!(reports.len(), 1, "audio has sent nothing: no report for it");
        let report = &reports[0];
        assert_eq!(report.ssrc, VIDEO.ssrc);
        assert_eq!(report.packet_count, 3);
        assert_eq!(report.octet_count, 3_000 - 4 + 2 * 2 + 1);
        assert_eq!(report.rtp_time, 1_000 + 133 * 90);
        assert_eq!(report.ntp_time, 7);
        assert_eq!(plane.next_report(), due + SENDER_REPORT_EVERY);
        assert!(plane.sender_reports(due, 1_100_000, 7).is_empty());
    }
}
