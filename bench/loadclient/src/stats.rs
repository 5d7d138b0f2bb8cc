//! Receive-side counters of one viewer: packets, bytes, video frames (RTP marker bit),
//! unique packets and losses from sequence-number gaps, plus small helpers (percentiles).
//!
//! Pure code, no I/O; the viewer's reader tasks feed it with every decrypted RTP packet.

/// Sequence tracking for one RTP stream (one SSRC): extends the 16-bit sequence number,
/// counts unique packets (a NACK retransmission of a packet already received is a
/// duplicate) and so the packets that never arrived.
pub struct SeqTracker {
    started: bool,
    first: i64,
    highest: i64,
    /// One bit per sequence number (mod 65536): received since that slot was last reused.
    seen: Box<[u64; 1024]>,
    pub unique: u64,
    pub duplicates: u64,
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self {
            started: false,
            first: 0,
            highest: 0,
            seen: Box::new([0; 1024]),
            unique: 0,
            duplicates: 0,
        }
    }
}

impl SeqTracker {
    fn slot(ext: i64) -> (usize, u64) {
        let s = (ext & 0xffff) as usize;
        (s / 64, 1u64 << (s % 64))
    }

    /// Records one received sequence number.
    pub fn push(&mut self, seq: u16) {
        if !self.started {
            self.started = true;
            self.first = i64::from(seq);
            self.highest = self.first;
            let (w, b) = Self::slot(self.first);
            self.seen[w] |= b;
            self.unique = 1;
            return;
        }
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        let ext = self.highest + delta;
        if delta > 0 {
            // New positions: forget what the slot held 65536 packets ago.
            for x in self.highest + 1..=ext {
                let (w, b) = Self::slot(x);
                self.seen[w] &= !b;
            }
            self.highest = ext;
        }
        if ext < self.first {
            // Older than the first packet we saw (reordered start): ignore.
            return;
        }
        let (w, b) = Self::slot(ext);
        if self.seen[w] & b != 0 {
            self.duplicates += 1;
        } else {
            self.seen[w] |= b;
            self.unique += 1;
        }
    }

    /// Packets the sender numbered since the first one we received.
    pub fn expected(&self) -> u64 {
        if self.started {
            (self.highest - self.first + 1) as u64
        } else {
            0
        }
    }

    /// Expected but never received (late packets still in flight count as lost).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.unique)
    }
}

/// Everything one viewer received; a snapshot of it marks the start and end of the window.
#[derive(Default)]
pub struct Counters {
    pub packets: u64,
    /// RTP header + payload bytes after SRTP decryption.
    pub bytes: u64,
    pub video_packets: u64,
    pub audio_packets: u64,
    /// Video packets with the marker bit (the last packet of an access unit).
    pub video_frames: u64,
    pub video_seq: SeqTracker,
    pub audio_seq: SeqTracker,
    pub video_timing: VideoTiming,
}

/// The figures of [`Counters`] that are compared between two instants.
#[derive(Clone, Copy, Default, Debug)]
pub struct Snapshot {
    pub packets: u64,
    pub bytes: u64,
    pub video_frames: u64,
    pub expected: u64,
    pub unique: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            packets: self.packets,
            bytes: self.bytes,
            video_frames: self.video_frames,
            expected: self.video_seq.expected() + self.audio_seq.expected(),
            unique: self.video_seq.unique + self.audio_seq.unique,
        }
    }
}

/// A video track's RTP timestamps, and how a keyframe request (PLI) was answered.
#[derive(Default, Debug, Clone)]
pub struct VideoTiming {
    highest_seq: Option<u16>,
    last_ts: Option<u32>,
    requested_ms: Option<f64>,
    /// Packets whose RTP timestamp is before the previous packet's (signed 32-bit step).
    pub backwards: u64,
    /// After a request: ms from the request to the first packet that starts a keyframe, and
    /// that packet's timestamp step from the packet before it (90 kHz ticks).
    pub answer: Option<(f64, i64)>,
}

impl VideoTiming {
    /// A video packet arrived at `now_ms`.
    ///
    /// Only packets newer than every one before (by sequence number) count: a retransmitted
    /// or reordered packet is not a step back in time.
    pub fn on_packet(&mut self, now_ms: f64, seq: u16, ts: u32, keyframe_start: bool) {
        if self
            .highest_seq
            .is_some_and(|high| (seq.wrapping_sub(high) as i16) <= 0)
        {
            return;
        }
        self.highest_seq = Some(seq);
        let step = self
            .last_ts
            .map(|last| i64::from(ts.wrapping_sub(last) as i32));
        if step.is_some_and(|s| s < 0) {
            self.backwards += 1;
        }
        self.last_ts = Some(ts);
        if let (Some(asked), None, true) = (self.requested_ms, self.answer, keyframe_start) {
            self.answer = Some((now_ms - asked, step.unwrap_or(0)));
        }
    }

    /// A keyframe request went out at `now_ms`.
    pub fn requested(&mut self, now_ms: f64) {
        self.requested_ms = Some(now_ms);
        self.answer = None;
    }

    /// When the request went out, if one did.
    pub fn requested_ms(&self) -> Option<f64> {
        self.requested_ms
    }
}

/// True when an H.264 RTP payload starts an IDR access unit (or carries SPS, as the
/// STAP-A in front of every IDR does).
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        5 | 7 => true,
        // STAP-A: 16-bit size, then the NAL unit.
        24 => payload.get(3).is_some_and(|n| matches!(n & 0x1f, 5 | 7)),
        // FU-A: start bit and the fragmented NAL's type.
        28 => payload
            .get(1)
            .is_some_and(|h| h & 0x80 != 0 && h & 0x1f == 5),
        _ => false,
    }
}

/// The `p`-th percentile (0..=100, nearest rank) of `values`; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_duplicates_and_wraparound() {
        let mut t = SeqTracker::default();
        for s in [65533u16, 65534, 65535, 1, 2, 2, 0] {
            t.push(s);
        }
        // 65533..=2 is 6 numbers; all arrived (0 late), 2 twice.
        assert_eq!(t.expected(), 6);
        assert_eq!(t.unique, 6);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.lost(), 0);
        t.push(10);
        assert_eq!(t.expected(), 14);
        assert_eq!(t.lost(), 7);
    }

    #[test]
    fn keyframe_detection() {
        assert!(starts_keyframe(&[0x78, 0x00, 0x10, 0x67]));
        assert!(starts_keyframe(&[0x7c, 0x85]));
        assert!(!starts_keyframe(&[0x7c, 0x05]));
        assert!(!starts_keyframe(&[0x41, 0x9a]));
    }

    #[test]
    fn video_timing_counts_steps_back_and_times_the_answer_to_a_request() {
        let mut v = VideoTiming::default();
        // Two packets of one frame (same timestamp), then the next frame.
        v.on_packet(0.0, 1, 1000, true);
        v.on_packet(1.0, 2, 1000, false);
        v.on_packet(33.0, 3, 3970, false);
        v.requested(40.0);
        // A non-keyframe first, then a keyframe stamped 9 ticks after it.
        v.on_packet(66.0, 4, 6940, false);
        v.on_packet(70.0, 5, 6949, true);
        // A retransmitted older packet is not a step back.
        v.on_packet(71.0, 3, 3970, false);
        assert_eq!(v.answer, Some((30.0, 9)));
        // A later keyframe does not replace the answer; a step back is counted, also across
        // the 32-bit wrap (forward there is not back).
        v.on_packet(80.0, 6, 6000, true);
        assert_eq!(v.answer, Some((30.0, 9)));
        assert_eq!(v.backwards, 1);
        let mut w = VideoTiming::default();
        w.on_packet(0.0, u16::MAX, u32::MAX - 10, false);
        w.on_packet(1.0, 0, 5, false);
        assert_eq!(w.backwards, 0);
        assert_eq!(w.answer, None);
        assert_eq!(w.requested_ms(), None);
    }

    #[test]
    fn percentiles() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 100.0), Some(5.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
