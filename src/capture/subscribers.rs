//! Who takes a capture's media, in what form, and whether each may be sent the next video
//! frame: the one owner of keyframe gating.
//!
//! A subscriber that missed a video frame (its queue was full, a replay did not go out, the
//! source dropped) may decode nothing until the next keyframe, so it is sent no video until
//! one comes. Audio is never gated. Pure table; the actor holds the recipients.

use std::collections::BTreeMap;

use crate::media::{MediaFrame, Track};

/// A subscriber, named by its owner (a viewer's or recorder's id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriberId(pub u128);

/// What form of the media a subscriber takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// WebRTC: Opus audio (transcoded from AAC), and H.264 as the source has it unless it
    /// has B-frames, then a Constrained Baseline transcode.
    WebRtc,
    /// The source's own AAC and H.264, B-frames and all (recordings, HLS, RTMP and
    /// FLV muxers).
    Original,
}

#[derive(Debug, Clone)]
struct Subscriber {
    delivery: Delivery,
    /// Missed a video frame: send no video until the next keyframe.
    waiting_for_keyframe: bool,
}

/// The subscriber table.
#[derive(Debug, Clone, Default)]
pub struct Subscribers {
    table: BTreeMap<SubscriberId, Subscriber>,
}

impl Subscribers {
    /// Adds (or replaces) `id`; `waiting_for_keyframe` when what it was sent to start with
    /// holds no keyframe.
    pub fn insert(&mut self, id: SubscriberId, delivery: Delivery, waiting_for_keyframe: bool) {
        self.table.insert(
            id,
            Subscriber {
                delivery,
                waiting_for_keyframe,
            },
        );
    }

    /// Removes `id`; whether it was there.
    pub fn remove(&mut self, id: SubscriberId) -> bool {
        self.table.remove(&id).is_some()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// How `id` takes the media, if it is subscribed.
    pub fn delivery(&self, id: SubscriberId) -> Option<Delivery> {
        self.table.get(&id).map(|s| s.delivery)
    }

    /// How many take `delivery`.
    pub fn count(&self, delivery: Delivery) -> usize {
        self.table
            .values()
            .filter(|s| s.delivery == delivery)
            .count()
    }

    /// Every subscriber, in id order.
    pub fn ids(&self) -> Vec<SubscriberId> {
        self.table.keys().copied().collect()
    }

    /// Whether `id` is gated until the next keyframe.
    pub fn waiting_for_keyframe(&self, id: SubscriberId) -> bool {
        self.table.get(&id).is_some_and(|s| s.waiting_for_keyframe)
    }

    /// Sets `id`'s gate (a replay that carried a keyframe opens it, one that failed closes
    /// it).
    pub fn set_waiting(&mut self, id: SubscriberId, waiting: bool) {
        if let Some(s) = self.table.get_mut(&id) {
            s.waiting_for_keyframe = waiting;
        }
    }

    /// Gates every subscriber until the next keyframe (the source dropped).
    pub fn wait_all(&mut self) {
        for s in self.table.values_mut() {
            s.waiting_for_keyframe = true;
        }
    }

    /// Who is sent `frame` (of those taking `only`, or all): a video keyframe opens the gate;
    /// other video frames skip gated subscribers.
    pub fn recipients(&mut self, frame: &MediaFrame, only: Option<Delivery>) -> Vec<SubscriberId> {
        let mut out = Vec::with_capacity(self.table.len());
        for (id, s) in self.table.iter_mut() {
            if only.is_some_and(|d| d != s.delivery) {
                continue;
            }
            if frame.track == Track::Video {
                if frame.keyframe {
                    s.waiting_for_keyframe = false;
                } else if s.waiting_for_keyframe {
                    continue;
                }
            }
            out.push(*id);
        }
        out
    }

    /// `id` missed a frame (its queue was full): gate it until the next keyframe when the
    /// capture has video. True when this closed its gate.
    pub fn fell_behind(&mut self, id: SubscriberId, has_video: bool) -> bool {
        match self.table.get_mut(&id) {
            Some(s) if has_video && !s.waiting_for_keyframe => {
                s.waiting_for_keyframe = true;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(track: Track, keyframe: bool) -> MediaFrame {
        MediaFrame {
            track,
            pts: 0,
            dts: 0,
            keyframe,
            data: Bytes::from_static(b"x"),
            ingest_us: 0,
        }
    }

    #[test]
    fn a_subscriber_behind_gets_no_video_until_a_keyframe_but_keeps_its_audio() {
        let mut subs = Subscribers::default();
        let (a, b) = (SubscriberId(1), SubscriberId(2));
        subs.insert(a, Delivery::WebRtc, false);
        subs.insert(b, Delivery::Original, true);
        let p = frame(Track::Video, false);
        assert_eq!(subs.recipients(&p, None), vec![a]);
        assert!(subs.fell_behind(a, true));
        assert!(!subs.fell_behind(a, true), "already gated");
        assert!(subs.recipients(&p, None).is_empty());
        let audio = frame(Track::Audio, false);
        assert_eq!(subs.recipients(&audio, None), vec![a, b]);
        assert_eq!(subs.recipients(&audio, Some(Delivery::Original)), vec![b]);
        let k = frame(Track::Video, true);
        assert_eq!(subs.recipients(&k, None), vec![a, b]);
        assert_eq!(subs.recipients(&p, None), vec![a, b]);
        // Audio-only captures never gate.
        assert!(!subs.fell_behind(b, false));
        assert_eq!(subs.count(Delivery::WebRtc), 1);
        assert!(subs.remove(a));
        assert!(!subs.remove(a));
        assert_eq!(subs.len(), 1);
    }
}
