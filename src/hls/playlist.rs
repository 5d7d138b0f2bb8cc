//! The media playlist text of an [`HlsView`] (RFC 8216bis, LL-HLS).
//!
//! One muxed rendition (video and audio in the same parts), so the playlist a client asks for
//! is the media playlist itself; no multivariant step. Tags, in order:
//! `EXT-X-VERSION:9`, `TARGETDURATION`, `SERVER-CONTROL` (blocking reload; `PART-HOLD-BACK`
//! = 3 × part target; delta updates `CAN-SKIP-UNTIL` = 6 × target duration), `PART-INF`,
//! `MEDIA-SEQUENCE`, `MAP` (not in a delta update, where `EXT-X-SKIP` stands for the skipped
//! segments), then each segment with its `PROGRAM-DATE-TIME`, its parts when it is one of the
//! last [`PARTS_LISTED_FOR`] segments, `EXTINF` and URI; the open segment's parts; and
//! always a `PRELOAD-HINT` for the next part. A plain HLS client ignores the LL tags.
//!
//! Pure text; it must not decide what is in the window.

use std::fmt::Write;

use super::view::{HlsView, Part};
use crate::record::naming::civil_from_days;

/// Complete segments (the newest ones) whose parts are listed.
pub const PARTS_LISTED_FOR: usize = 2;

/// The playlist of `view`; a delta update when `skip`; `query` (`?…` or empty) is added to
/// every URI.
pub fn render_media(view: &HlsView, skip: bool, query: &str) -> String {
    let mut out = String::with_capacity(512 + 160 * view.segments.len() + 96 * view.open.len());
    let td = view.target_duration.max(1);
    let part_target = view.part_target_ms.max(1);
    let skip_until_ms = 6_000 * i64::from(td);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{td}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},CAN-SKIP-UNTIL={}\n\
         #EXT-X-PART-INF:PART-TARGET={}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
        seconds(3 * part_target),
        seconds(skip_until_ms),
        seconds(part_target),
        view.media_sequence(),
    );
    let skipped = if skip {
        skippable(view, skip_until_ms)
    } else {
        0
    };
    let prefix = &view.prefix;
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    } else {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{prefix}_init.mp4{query}\"");
    }
    let listed_from = view.segments.len().saturating_sub(PARTS_LISTED_FOR);
    for (i, segment) in view.segments.iter().enumerate().skip(skipped) {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso_time(segment.pdt_ms));
        if i >= listed_from {
            for part in &segment.parts {
                write_part(&mut out, prefix, part, query);
            }
        }
        let _ = write!(
            out,
            "#EXTINF:{},\n{prefix}_seg{}.mp4{query}\n",
            seconds(segment.duration_ms),
            segment.msn
        );
    }
    for part in &view.open {
        write_part(&mut out, prefix, part, query);
    }
    if view.ended.is_none() {
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{prefix}_part{}.mp4{query}\"",
            view.next_part_id
        );
    }
    out
}

fn write_part(out: &mut String, prefix: &str, part: &Part, query: &str) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{prefix}_part{}.mp4{query}\"",
        seconds(part.duration_ms),
        part.id
    );
    out.push_str(if part.independent {
        ",INDEPENDENT=YES\n"
    } else {
        "\n"
    });
}

/// How many of the oldest segments a delta update leaves out: the Skip Boundary (start of
/// the first segment kept) stays at least `skip_until_ms` before the playlist's end.
fn skippable(view: &HlsView, skip_until_ms: i64) -> usize {
    let open: i64 = view.open.iter().map(|p| p.duration_ms).sum();
    let mut after = open + view.segments.iter().map(|s| s.duration_ms).sum::<i64>();
    let mut skipped = 0;
    for segment in &view.segments {
        // Skipping this one makes the next one the boundary.
        after -= segment.duration_ms;
        if after < skip_until_ms {
            break;
        }
        skipped += 1;
    }
    skipped
}

/// Milliseconds as the playlist's decimal seconds (`2.00000`).
fn seconds(ms: i64) -> String {
    let ms = ms.max(0);
    format!("{}.{:03}00", ms / 1000, ms % 1000)
}

/// `2026-12-06T10:00:00.000Z`.
pub fn iso_time(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms.rem_euclid(1000)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::hls::view::Segment;

    fn part(id: u64, ms: i64, independent: bool) -> Arc<Part> {
        Arc::new(Part {
            id,
            duration_ms: ms,
            independent,
            data: Bytes::new(),
        })
    }

    /// `count` complete 2 s segments of two parts each (from msn 40), one open part.
    fn view(count: u64) -> HlsView {
        let segments = (0..count)
            .map(|i| {
                Arc::new(Segment {
                    msn: 40 + i,
                    duration_ms: 2000,
                    pdt_ms: 1_796_551_200_000 + 2000 * i as i64,
                    parts: vec![part(2 * i, 1000, true), part(2 * i + 1, 1000, false)],
                })
            })
            .collect();
        HlsView {
            prefix: Arc::from("ab12"),
            init: Bytes::new(),
            codecs: Arc::from("avc1.64001f,mp4a.40.2"),
            audio_only: false,
            part_target_ms: 1000,
            target_duration: 2,
            segments,
            open: vec![part(2 * count, 1000, true)],
            next_msn: 40 + count,
            next_part_id: 2 * count + 1,
            ended: None,
        }
    }

    #[test]
    fn the_exact_text() {
        let text = render_media(&view(3), false, "?token=t");
        assert_eq!(
            text,
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.00000,CAN-SKIP-UNTIL=12.00000
#EXT-X-PART-INF:PART-TARGET=1.00000
#EXT-X-MEDIA-SEQUENCE:40
#EXT-X-MAP:URI=\"ab12_init.mp4?token=t\"
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T10:00:00.000Z
#EXTINF:2.00000,
ab12_seg40.mp4?token=t
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T10:00:02.000Z
#EXT-X-PART:DURATION=1.00000,URI=\"ab12_part2.mp4?token=t\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.00000,URI=\"ab12_part3.mp4?token=t\"
#EXTINF:2.00000,
ab12_seg41.mp4?token=t
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T10:00:04.000Z
#EXT-X-PART:DURATION=1.00000,URI=\"ab12_part4.mp4?token=t\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.00000,URI=\"ab12_part5.mp4?token=t\"
#EXTINF:2.00000,
ab12_seg42.mp4?token=t
#EXT-X-PART:DURATION=1.00000,URI=\"ab12_part6.mp4?token=t\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ab12_part7.mp4?token=t\"
"
        );
    }

    #[test]
    fn a_delta_update_skips_what_lies_before_the_skip_boundary() {
        // 10 segments of 2 s + 1 s open: 21 s; the boundary must stay 12 s from the end.
        let v = view(10);
        let text = render_media(&v, true, "");
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"), "{text}");
        assert!(!text.contains("EXT-X-MAP"));
        assert!(!text.contains("_seg43.mp4"));
        assert!(text.contains("#EXTINF:2.00000,\nab12_seg44.mp4\n"));
        // Kept: 6 segments + the open part = 13 s ≥ 12 s.
        assert_eq!(text.matches("#EXTINF").count(), 6);
        // Too short a window: nothing skipped, a full playlist.
        let text = render_media(&view(3), true, "");
        assert!(text.contains("EXT-X-MAP") && !text.contains("EXT-X-SKIP"));
    }

    #[test]
    fn an_ended_stream_has_no_preload_hint() {
        let mut v = view(2);
        v.ended = Some(Arc::from("stopped"));
        assert!(!render_media(&v, false, "").contains("PRELOAD-HINT"));
    }

    #[test]
    fn times_and_seconds() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_796_551_200_123), "2026-12-06T10:00:00.123Z");
        assert_eq!(seconds(204), "0.20400");
        assert_eq!(seconds(2000), "2.00000");
        assert_eq!(seconds(-5), "0.00000");
    }
}
