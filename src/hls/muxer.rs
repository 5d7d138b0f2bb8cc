//! One capture's LL-HLS stream: [`MediaFrame`]s in, CMAF parts and segments out, kept in a
//! window of the latest segments that a [`HlsView`] shows.
//!
//! The media is the source's, untouched (H.264 with its B-frames, AAC): the fragmented MP4
//! writer of `crate::mp4` makes the init segment and one `moof`+`mdat` per part, video
//! track 1 and audio track 2 muxed in each. The [`PartCutter`] decides the boundaries on
//! the leading track (video, else audio). Until `WARMUP_SAMPLES` leading samples have come
//! the frames wait in the writer, then the part target is fixed from their durations and
//! their cuts are made at once; nothing is published before the first segment ends anyway.
//!
//! A segment is its parts' bytes one after the other (never copied). Each segment carries
//! its `PROGRAM-DATE-TIME`: the wall time its first frame reached the server, from one
//! anchor (wall time of the first frame) plus decode time, so it never drifts.
//!
//! Bounded: at most `segment_count` complete segments, and the window (segments, open parts
//! and frames waiting for a cut) within `max_window_bytes`, oldest segments dropped first.
//! Frames waiting for a cut over the bound on their own (the leading track stalled while the
//! other floods) are an [`Overflow`]: the caller starts a new muxer. Pure: no clock (wall
//! time is passed in), no I/O.

use std::collections::VecDeque;
use std::sync::Arc;

use super::cutter::{part_target_ms, Cut, PartCutter};
use super::view::{HlsView, Part, Segment};
use crate::codec::h264::codec_string;
use crate::media::{CodecSet, MediaFrame, Track};
use crate::mp4::{FragmentedMp4Writer, Mp4Error, Mp4Options};

/// Leading samples whose durations fix the part target.
const WARMUP_SAMPLES: usize = 11;

/// How a stream is cut and how much of it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsOptions {
    /// Asked part length, ms (the target is whole samples near it).
    pub part_ms: i64,
    /// A segment ends at the first keyframe this long after it began, ms.
    pub segment_min_ms: i64,
    /// A segment ends without a keyframe after this long, ms.
    pub segment_max_ms: i64,
    /// Complete segments kept (and listed).
    pub segment_count: usize,
    /// Most bytes the window holds: segments, open parts and frames waiting for a cut.
    pub max_window_bytes: usize,
}

impl Default for HlsOptions {
    fn default() -> Self {
        Self {
            part_ms: 200,
            segment_min_ms: 1000,
            segment_max_ms: 10_000,
            segment_count: 10,
            max_window_bytes: 64 << 20,
        }
    }
}

/// The frames waiting for a cut are over `max_window_bytes` on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    pub waiting_bytes: usize,
}

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes of media waited for a part boundary (the leading track stalled)",
            self.waiting_bytes
        )
    }
}

/// Counters of what happened to the stream, for logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HlsStats {
    pub parts: u64,
    pub segments: u64,
    /// Segments dropped from the window early to keep it within its bytes.
    pub evicted_for_bytes: u64,
}

/// One capture's LL-HLS muxer (see the module documentation).
#[derive(Debug)]
pub struct HlsMuxer {
    options: HlsOptions,
    codecs: CodecSet,
    writer: FragmentedMp4Writer,
    leading: Track,
    prefix: Arc<str>,
    codecs_attribute: Arc<str>,
    /// Leading samples (dts, keyframe) waiting for the part target.
    warmup: Vec<(i64, bool)>,
    cutter: Option<PartCutter>,
    /// (dts, wall ms) of the first leading sample.
    anchor: Option<(i64, i64)>,
    segments: VecDeque<Arc<Segment>>,
    open: Vec<Arc<Part>>,
    open_start_dts: i64,
    part_start_dts: i64,
    next_msn: u64,
    next_part_id: u64,
    target_duration: u32,
    window_bytes: usize,
    stats: HlsStats,
}

impl HlsMuxer {
    /// A muxer for these codecs; `prefix` names its files (choose a new one per muxer, so
    /// a client never mixes two muxers' parts).
    pub fn new(codecs: CodecSet, prefix: &str, options: HlsOptions) -> Result<Self, Mp4Error> {
        let writer = Self::writer(&codecs)?;
        let leading = if codecs.video.is_some() {
            Track::Video
        } else {
            Track::Audio
        };
        let mut names = Vec::new();
        if let Some(v) = &codecs.video {
            names.push(codec_string(v));
        }
        if let Some(a) = &codecs.audio {
            names.push(format!("mp4a.40.{}", a.object_type));
        }
        Ok(Self {
            options,
            writer,
            leading,
            prefix: Arc::from(prefix),
            codecs_attribute: Arc::from(names.join(",")),
            codecs,
            warmup: Vec::new(),
            cutter: None,
            anchor: None,
            segments: VecDeque::new(),
            open: Vec::new(),
            open_start_dts: 0,
            part_start_dts: 0,
            next_msn: 0,
            next_part_id: 0,
            target_duration: 1,
            window_bytes: 0,
            stats: HlsStats::default(),
        })
    }

    fn writer(codecs: &CodecSet) -> Result<FragmentedMp4Writer, Mp4Error> {
        FragmentedMp4Writer::new(
            codecs.video.clone(),
            codecs.audio.clone(),
            Mp4Options {
                max_fragment_ms: i64::MAX,
            },
        )
    }

    /// The codecs this muxer was made for.
    pub fn codecs(&self) -> &CodecSet {
        &self.codecs
    }

    /// What happened so far.
    pub fn stats(&self) -> HlsStats {
        self.stats
    }

    /// Adds a frame that reached the server at `wall_ms` (ms since the Unix epoch); true
    /// when the view changed (a part closed). An error means this muxer cannot go on: make
    /// a new one (with a new prefix).
    pub fn push(&mut self, frame: &MediaFrame, wall_ms: i64) -> Result<bool, Overflow> {
        if !self.writer.push_uncut(frame) {
            return Ok(false);
        }
        if frame.track != self.leading {
            return self.bound_waiting();
        }
        self.anchor.get_or_insert((frame.dts, wall_ms));
        let changed = match &mut self.cutter {
            Some(cutter) => {
                let cuts = cutter.sample(frame.dts, frame.keyframe);
                self.apply(&cuts)
            }
            None => {
                self.warmup.push((frame.dts, frame.keyframe));
                self.warmup.len() >= WARMUP_SAMPLES && self.start_cutting()
            }
        };
        Ok(self.bound_waiting()? || changed)
    }

    /// Fixes the part target from the warmup's durations and makes its cuts.
    fn start_cutting(&mut self) -> bool {
        let durations: Vec<i64> = self.warmup.windows(2).map(|w| w[1].0 - w[0].0).collect();
        let target = part_target_ms(&durations, self.options.part_ms);
        let mut cutter = PartCutter::new(
            target,
            self.options.segment_min_ms,
            self.options.segment_max_ms,
        );
        let mut cuts = Vec::new();
        for &(dts, keyframe) in &self.warmup {
            cuts.extend(cutter.sample(dts, keyframe));
        }
        if let Some(&(first, _)) = self.warmup.first() {
            self.open_start_dts = first;
            self.part_start_dts = first;
        }
        self.warmup = Vec::new();
        self.cutter = Some(cutter);
        self.apply(&cuts)
    }

    fn apply(&mut self, cuts: &[Cut]) -> bool {
        let mut changed = false;
        for cut in cuts {
            match *cut {
                Cut::Part(at) => changed |= self.close_part(at),
                Cut::Segment(at) => {
                    changed |= self.close_part(at);
                    self.close_segment(at);
                }
            }
        }
        changed
    }

    fn close_part(&mut self, at: i64) -> bool {
        let Some(fragment) = self.writer.cut_before(at) else {
            return false;
        };
        let independent = match self.leading {
            Track::Video => fragment.run(Track::Video).is_some_and(|r| r.any_sync),
            Track::Audio => true,
        };
        let duration_ms = (at - self.part_start_dts).max(0);
        self.part_start_dts = at;
        self.window_bytes += fragment.bytes.len();
        self.open.push(Arc::new(Part {
            id: self.next_part_id,
            duration_ms,
            independent,
            data: fragment.bytes,
        }));
        self.next_part_id += 1;
        self.stats.parts += 1;
        true
    }

    fn close_segment(&mut self, at: i64) {
        if self.open.is_empty() {
            return;
        }
        let parts = std::mem::take(&mut self.open);
        let duration_ms: i64 = parts.iter().map(|p| p.duration_ms).sum();
        let pdt_ms = self
            .anchor
            .map(|(dts, wall)| wall + (self.open_start_dts - dts))
            .unwrap_or(0);
        let seconds = u32::try_from((duration_ms + 500) / 1000).unwrap_or(u32::MAX);
        self.target_duration = self.target_duration.max(seconds.max(1));
        self.segments.push_back(Arc::new(Segment {
            msn: self.next_msn,
            duration_ms,
            pdt_ms,
            parts,
        }));
        self.next_msn += 1;
        self.open_start_dts = at;
        self.stats.segments += 1;
        while self.segments.len() > self.options.segment_count.max(1) {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.segments.pop_front() {
            let bytes: usize = old.parts.iter().map(|p| p.data.len()).sum();
            self.window_bytes = self.window_bytes.saturating_sub(bytes);
        }
    }

    /// Keeps the window within its bytes, oldest segments first (the newest one stays).
    /// True when something was dropped; an error when the frames waiting for a cut alone
    /// are over the bound (the leading track stalled while the other one flows).
    fn bound_waiting(&mut self) -> Result<bool, Overflow> {
        let limit = self.options.max_window_bytes;
        let mut changed = false;
        while self.window_bytes + self.writer.queued_bytes() > limit && self.segments.len() > 1 {
            self.drop_oldest();
            self.stats.evicted_for_bytes += 1;
            changed = true;
        }
        if self.writer.queued_bytes() > limit {
            return Err(Overflow {
                waiting_bytes: self.writer.queued_bytes(),
            });
        }
        Ok(changed)
    }

    /// What a client may see now.
    pub fn view(&self) -> HlsView {
        HlsView {
            prefix: Arc::clone(&self.prefix),
            init: self.writer.init_segment(),
            codecs: Arc::clone(&self.codecs_attribute),
            audio_only: self.leading == Track::Audio,
            part_target_ms: self.cutter.as_ref().map_or(0, |c| c.target_ms()),
            target_duration: self.target_duration,
            segments: self.segments.iter().cloned().collect(),
            open: self.open.clone(),
            next_msn: self.next_msn,
            next_part_id: self.next_part_id,
            ended: None,
        }
    }
}
