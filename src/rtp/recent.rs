//! The RTP payloads of a capture's most recent video frames, so that a frame is packetized
//! once however many viewers send it: the first viewer to send a frame packetizes it, the
//! others get the same shared `Bytes`.
//!
//! A frame is known by its identity (the address and length of its shared bytes), not its
//! content: every viewer of a capture is handed clones of the same `MediaFrame`. An entry
//! keeps its frame's bytes alive, so no other frame can have its address while it is here.
//! Bounded: the `capacity` latest frames (a viewer that sends an older one packetizes it
//! again, and it becomes the latest). Found newest first, so a live frame costs one compare.
//! Pure: no lock (the owner shares it behind one), no clock.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::h264;

/// How many frames a capture's cache keeps by default: every viewer of a capture sends a live
/// frame within a few milliseconds of the others, and a new viewer's replay of the keyframe
/// cache (a GOP: 2 s is 60 frames at 30 fps) finds its frames here too, instead of making
/// payloads of its own that its NACK history would then hold.
pub const RECENT_FRAMES: usize = 96;

/// The payloads of the latest frames, newest last.
#[derive(Debug)]
pub struct RecentPayloads {
    capacity: usize,
    frames: VecDeque<(Bytes, Arc<[Bytes]>)>,
    packetized: u64,
}

impl Default for RecentPayloads {
    fn default() -> Self {
        Self::new(RECENT_FRAMES)
    }
}

impl RecentPayloads {
    /// Keeps the payloads of at most `capacity` (≥ 1) frames.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            frames: VecDeque::new(),
            packetized: 0,
        }
    }

    /// The H.264 payloads of `access_unit` (at most [`h264::MAX_PAYLOAD`] bytes each), made
    /// now unless this very frame was packetized recently.
    pub fn h264(&mut self, access_unit: &Bytes) -> Arc<[Bytes]> {
        let same = |(frame, _): &&(Bytes, Arc<[Bytes]>)| {
            frame.as_ptr() == access_unit.as_ptr() && frame.len() == access_unit.len()
        };
        if let Some((_, payloads)) = self.frames.iter().rev().find(same) {
            return Arc::clone(payloads);
        }
        let payloads: Arc<[Bytes]> = h264::packetize(access_unit, h264::MAX_PAYLOAD).into();
        self.packetized += 1;
        if self.frames.len() >= self.capacity {
            self.frames.pop_front();
        }
        self.frames
            .push_back((access_unit.clone(), Arc::clone(&payloads)));
        payloads
    }

    /// How many frames were packetized (the others were found here).
    pub fn packetized(&self) -> u64 {
        self.packetized
    }

    /// The bytes the kept frames and their payloads hold (the payloads of a large NAL unit
    /// are one copy of it; small ones are slices of the frame).
    pub fn held_bytes(&self) -> usize {
        self.frames
            .iter()
            .map(|(frame, payloads)| frame.len() + payloads.iter().map(Bytes::len).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access_unit(nal_len: usize, fill: u8) -> Bytes {
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend(std::iter::repeat_n(fill, nal_len));
        Bytes::from(au)
    }

    #[test]
    fn every_viewer_of_a_frame_gets_the_same_payloads() {
        let mut recent = RecentPayloads::default();
        let frame = access_unit(3000, 7);
        let first = recent.h264(&frame);
        for _ in 0..100 {
            let again = recent.h264(&frame.clone());
            assert!(Arc::ptr_eq(&first, &again));
        }
        assert_eq!(recent.packetized(), 1);
        assert_eq!(first.len(), 3, "3 000 bytes make three FU-A fragments");
        assert_eq!(&first[..], &h264::packetize(&frame, h264::MAX_PAYLOAD)[..]);
    }

    #[test]
    fn equal_bytes_in_another_frame_are_another_frame() {
        let mut recent = RecentPayloads::default();
        let a = access_unit(100, 1);
        let b = access_unit(100, 1);
        let pa = recent.h264(&a);
        let pb = recent.h264(&b);
        assert!(!Arc::ptr_eq(&pa, &pb));
        assert_eq!(pa, pb);
        assert_eq!(recent.packetized(), 2);
    }

    #[test]
    fn a_slice_of_a_frame_is_not_the_frame() {
        let mut recent = RecentPayloads::default();
        let frame = access_unit(100, 1);
        recent.h264(&frame);
        let shorter = frame.slice(..50);
        recent.h264(&shorter);
        assert_eq!(recent.packetized(), 2);
    }

    #[test]
    fn it_keeps_only_the_latest_frames() {
        let mut recent = RecentPayloads::new(3);
        let frames: Vec<Bytes> = (0..5).map(|i| access_unit(2000, i)).collect();
        for f in &frames {
            recent.h264(f);
        }
        assert_eq!(recent.packetized(), 5);
        // The latest three are found; the first two were let go and are made again.
        for f in &frames[2..] {
            recent.h264(f);
        }
        assert_eq!(recent.packetized(), 5);
        recent.h264(&frames[0]);
        assert_eq!(recent.packetized(), 6);
        assert!(recent.held_bytes() <= 3 * 2 * 2100);
    }

    #[test]
    fn an_empty_or_unusable_frame_has_no_payloads() {
        let mut recent = RecentPayloads::default();
        assert!(recent.h264(&Bytes::new()).is_empty());
        assert!(recent
            .h264(&Bytes::from_static(&[0, 0, 0, 1, 0x09, 0x10]))
            .is_empty());
    }
}
