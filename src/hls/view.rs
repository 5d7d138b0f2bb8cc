//! What an LL-HLS client may see of a stream at one moment: the window of complete segments,
//! the open segment's parts so far, and the answers to a client's questions about it —
//! whether a blocking playlist request can be answered ([`HlsView::availability`]), which
//! bytes a part or segment request gets ([`HlsView::part`], [`HlsView::segment`]).
//!
//! A snapshot: cheap to clone (shared parts), never changed after it is made; the muxer makes
//! a new one when a part closes. Pure: it must not wait or know about HTTP.

use std::sync::Arc;

use bytes::Bytes;

/// One part: a `moof`+`mdat` of every track's samples in its time span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Counts up over the stream (not per segment).
    pub id: u64,
    /// Length on the leading track, ms.
    pub duration_ms: i64,
    /// Holds a keyframe (for audio only: always).
    pub independent: bool,
    pub data: Bytes,
}

/// One complete segment: its parts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its media sequence number.
    pub msn: u64,
    /// The sum of its parts', ms.
    pub duration_ms: i64,
    /// Wall time of its first frame, ms since the Unix epoch.
    pub pdt_ms: i64,
    pub parts: Vec<Arc<Part>>,
}

/// Whether a playlist request that waits for (`msn`, `part`) can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The playlist holds it now.
    Ready,
    /// Not yet: wait for the next change.
    Wait,
    /// Too far in the future to wait for (RFC 8216bis §6.2.5.2): answer 400.
    TooFar,
}

/// What a part request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartLookup {
    Ready(Bytes),
    /// The next part to come (the preload hint): wait for it.
    Next,
    /// Not in the window, or too far ahead.
    Gone,
}

/// One snapshot of a stream (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsView {
    /// Names this muxer's files: `{prefix}_init.mp4`, `_seg{msn}`, `_part{id}`.
    pub prefix: Arc<str>,
    /// `ftyp` + `moov`.
    pub init: Bytes,
    /// RFC 6381 codecs, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: Arc<str>,
    pub audio_only: bool,
    /// 0 until the part target is fixed.
    pub part_target_ms: i64,
    /// Seconds; never goes down.
    pub target_duration: u32,
    /// Complete segments, oldest first.
    pub segments: Vec<Arc<Segment>>,
    /// The open segment's parts.
    pub open: Vec<Arc<Part>>,
    /// Msn of the open segment.
    pub next_msn: u64,
    /// Id of the next part to close.
    pub next_part_id: u64,
    /// Why the stream ended, once it has: waiting requests are answered at once.
    pub ended: Option<Arc<str>>,
}

/// Parts a request may ask ahead of the last one, at least (RFC 8216bis "Advance Part
/// Limit": 3, or more for parts under a second).
fn advance_part_limit(part_target_ms: i64) -> u64 {
    if part_target_ms <= 0 {
        return 3;
    }
    u64::try_from((3000 + part_target_ms - 1) / part_target_ms)
        .unwrap_or(3)
        .max(3)
}

impl HlsView {
    /// Whether there is a playlist to show: at least one complete segment.
    pub fn has_content(&self) -> bool {
        !self.segments.is_empty()
    }

    /// Media sequence number of the first listed segment.
    pub fn media_sequence(&self) -> u64 {
        self.segments.first().map_or(self.next_msn, |s| s.msn)
    }

    /// Whether a request blocking on (`msn`, `part`) can be answered: `part` `None` waits
    /// for segment `msn` to be complete; `Some(p)` for part `p` of segment `msn` (a `p`
    /// past the end of a complete segment means the next segment's first part).
    pub fn availability(&self, msn: u64, part: Option<u64>) -> Availability {
        let limit = advance_part_limit(self.part_target_ms);
        // The last complete segment is next_msn - 1; RFC: no more than two past it.
        if msn > self.next_msn.saturating_add(1) {
            return Availability::TooFar;
        }
        if !self.has_content() {
            return Availability::Wait;
        }
        let Some(p) = part else {
            return if msn < self.next_msn {
                Availability::Ready
            } else {
                Availability::Wait
            };
        };
        if msn < self.next_msn {
            let in_segment = self
                .segments
                .iter()
                .find(|s| s.msn == msn)
                .map_or(0, |s| s.parts.len() as u64);
            if p < in_segment || msn + 1 < self.next_msn || msn < self.media_sequence() {
                return Availability::Ready;
            }
            // Past its end: the first part of the next (open) segment.
            return if self.open.is_empty() {
                Availability::Wait
            } else {
                Availability::Ready
            };
        }
        let have = self.open.len() as u64;
        if msn == self.next_msn {
            if p < have {
                Availability::Ready
            } else if p >= have + limit {
                Availability::TooFar
            } else {
                Availability::Wait
            }
        } else if p >= limit {
            // msn == next_msn + 1
            Availability::TooFar
        } else {
            Availability::Wait
        }
    }

    /// The part `id`.
    pub fn part(&self, id: u64) -> PartLookup {
        if id == self.next_part_id {
            return if self.ended.is_some() {
                PartLookup::Gone
            } else {
                PartLookup::Next
            };
        }
        self.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(self.open.iter())
            .find(|p| p.id == id)
            .map_or(PartLookup::Gone, |p| PartLookup::Ready(p.data.clone()))
    }

    /// The bytes of segment `msn`, as its parts' bytes in order; `None` when it is not in
    /// the window (or not complete).
    pub fn segment(&self, msn: u64) -> Option<Vec<Bytes>> {
        self.segments
            .iter()
            .find(|s| s.msn == msn)
            .map(|s| s.parts.iter().map(|p| p.data.clone()).collect())
    }

    /// Bytes of the media in the window.
    pub fn window_bytes(&self) -> usize {
        self.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(self.open.iter())
            .map(|p| p.data.len())
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn part(id: u64, independent: bool) -> Arc<Part> {
        Arc::new(Part {
            id,
            duration_ms: 200,
            independent,
            data: Bytes::from(vec![id as u8; 3]),
        })
    }

    /// Segments 5 and 6 complete (parts 0..10 and 10..20), segment 7 open with parts 20, 21.
    fn view() -> HlsView {
        let segment = |msn: u64, first: u64| {
            Arc::new(Segment {
                msn,
                duration_ms: 2000,
                pdt_ms: 0,
                parts: (first..first + 10).map(|i| part(i, i == first)).collect(),
            })
        };
        HlsView {
            prefix: Arc::from("p"),
            init: Bytes::new(),
            codecs: Arc::from(""),
            audio_only: false,
            part_target_ms: 204,
            target_duration: 2,
            segments: vec![segment(5, 0), segment(6, 10)],
            open: vec![part(20, true), part(21, false)],
            next_msn: 7,
            next_part_id: 22,
            ended: None,
        }
    }

    #[test]
    fn blocking_requests_decision_table() {
        use Availability::*;
        let v = view();
        let cases = [
            // (msn, part, answer)
            (5, None, Ready),
            (6, None, Ready),
            (7, None, Wait),
            (8, None, Wait),
            (9, None, TooFar),
            (2, None, Ready),
            (6, Some(9), Ready),
            (6, Some(10), Ready), // past the end of 6: part 0 of 7, which is there
            (7, Some(0), Ready),
            (7, Some(1), Ready),
            (7, Some(2), Wait),
            (7, Some(15), Wait),
            (7, Some(17), TooFar), // 2 parts + ceil(3000/204) = 15 ahead
            (8, Some(0), Wait),
            (8, Some(14), Wait),
            (8, Some(15), TooFar),
            (9, Some(0), TooFar),
            (0, Some(3), Ready), // fell out of the window: the current playlist
        ];
        for (msn, part, expected) in cases {
            assert_eq!(v.availability(msn, part), expected, "{msn} {part:?}");
        }
    }

    #[test]
    fn the_first_part_of_the_next_segment_waits_when_it_is_not_there() {
        let mut v = view();
        v.open.clear();
        assert_eq!(v.availability(6, Some(10)), Availability::Wait);
        assert_eq!(v.availability(6, Some(9)), Availability::Ready);
    }

    #[test]
    fn nothing_before_the_first_segment() {
        let mut v = view();
        v.segments.clear();
        v.next_msn = 0;
        assert!(!v.has_content());
        assert_eq!(v.availability(0, None), Availability::Wait);
        assert_eq!(v.availability(0, Some(0)), Availability::Wait);
        assert_eq!(v.availability(2, None), Availability::TooFar);
    }

    #[test]
    fn parts_and_segments_lookup() {
        let v = view();
        assert_eq!(v.part(3), PartLookup::Ready(Bytes::from(vec![3u8; 3])));
        assert_eq!(v.part(21), PartLookup::Ready(Bytes::from(vec![21u8; 3])));
        assert_eq!(v.part(22), PartLookup::Next);
        assert_eq!(v.part(23), PartLookup::Gone);
        let segment = v.segment(6).unwrap();
        assert_eq!(segment.len(), 10);
        assert_eq!(segment[0], Bytes::from(vec![10u8; 3]));
        assert_eq!(v.segment(7), None);
        assert_eq!(v.segment(4), None);
        assert_eq!(v.window_bytes(), 22 * 3);
        let mut ended = v.clone();
        ended.ended = Some(Arc::from("gone"));
        assert_eq!(ended.part(22), PartLookup::Gone);
        assert_eq!(v.media_sequence(), 5);
    }
}
