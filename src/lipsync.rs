//! [`SyncAnchor`]: what a viewer's RTCP sender reports say, so browsers line audio up with
//! video.
//!
//! A browser synchronises audio and video of one stream by the sender reports (RFC 3550
//! §6.4.1) of each: "RTP timestamp T corresponds to wall-clock time W". If each report named
//! the time a packet happened to be *sent*, every difference in processing between the tracks
//! — AAC → Opus re-framing, the B-frame transcode's reorder delay, RTMP bursts — would become
//! an audio/video offset. Instead both tracks of a viewer share one anchor: the capture-time
//! (pts) of a frame and the server clock when its source message arrived. A report at server
//! time `now` names the capture time `anchor.pts + (now − anchor.arrival)` on each track's own
//! RTP clock, so the browser sees the source's own alignment, whatever each path's delay.
//!
//! Pure: the caller passes the clock readings.

use crate::webrtc_viewer::RtpClock;

/// One viewer's capture-time ↔ server-clock mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncAnchor {
    /// A frame's presentation time, ms on the capture's timeline.
    pub pts_ms: i64,
    /// When its source message arrived, µs on the server's monotonic clock.
    pub arrival_us: u64,
}

impl SyncAnchor {
    /// The capture time (µs) that corresponds to server time `now_us`.
    pub fn capture_time_us(&self, now_us: u64) -> i128 {
        i128::from(self.pts_ms) * 1000 + i128::from(now_us) - i128::from(self.arrival_us)
    }

    /// The RTP timestamp a sender report at server time `now_us` carries for a track on
    /// `clock`.
    pub fn rtp_time(&self, clock: &RtpClock, now_us: u64) -> u32 {
        clock.timestamp_us(self.capture_time_us(now_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tracks_report_the_same_capture_instant() {
        let anchor = SyncAnchor {
            pts_ms: 10_000,
            arrival_us: 5_000_000,
        };
        let video = RtpClock::video(1000);
        let audio = RtpClock::opus(777);
        // 1.5 s after the anchor frame arrived: capture time 11.5 s on both clocks.
        let now = 6_500_000;
        assert_eq!(anchor.capture_time_us(now), 11_500_000);
        assert_eq!(anchor.rtp_time(&video, now), video.timestamp(11_500));
        assert_eq!(anchor.rtp_time(&audio, now), audio.timestamp(11_500));
    }

    #[test]
    fn sub_millisecond_instants_and_times_before_the_anchor() {
        let anchor = SyncAnchor {
            pts_ms: 0,
            arrival_us: 1_000_000,
        };
        let video = RtpClock::video(0);
        // 0.5 ms after: 45 ticks at 90 kHz.
        assert_eq!(anchor.rtp_time(&video, 1_000_500), 45);
        // 1 ms before capture time 0 wraps below the base.
        assert_eq!(anchor.rtp_time(&video, 999_000), 0u32.wrapping_sub(90));
    }

    #[test]
    fn the_report_does_not_depend_on_when_packets_were_sent() {
        // A video frame sent 120 ms late (transcoding) and an audio frame sent on time give
        // the same anchor-based report; only the anchor matters.
        let anchor = SyncAnchor {
            pts_ms: 2000,
            arrival_us: 2_000_000,
        };
        let audio = RtpClock::opus(0);
        let at = |now| anchor.rtp_time(&audio, now);
        assert_eq!(at(3_000_000).wrapping_sub(at(2_000_000)), 48_000);
    }
}
