//! The fragmented MP4 writer: [`MediaFrame`]s in, an init segment and `moof`+`mdat`
//! fragments out, with the fragmenting and timing rules of a crash-safe recording.
//!
//! Fragmenting: a fragment closes when a video keyframe arrives (and the pending fragment
//! is not empty), and in any case once a track holds `max_fragment_ms` of media (measured on
//! the track that drives the file: video when there is video, else audio). Audio closes a
//! fragment on its own only after `2 × max_fragment_ms` when there is video (so a stalled
//! video track cannot hold audio back forever). A fragment also closes once its samples
//! cost [`MAX_FRAGMENT_BYTES`] (payload plus [`SAMPLE_OVERHEAD_BYTES`] each), which bounds
//! what a recorder holds whatever the source's timestamps do and keeps every size and
//! offset within 32 bits.
//!
//! Timing: one timeline for all tracks, whose origin (decode time 0) is the smallest dts
//! among the tracks' first samples, fixed when the first fragment is written. Each track
//! converts its dts with a [`Timeline`] (drift-free, jumps smoothed, see `timeline.rs`).
//! One sample per track is held back until the next sample on that track gives its
//! duration; [`FragmentedMp4Writer::finish`] writes it with the previous duration.
//! Composition offsets are `pts − dts`, signed, clamped to ±[`MAX_JUMP_MS`].
//!
//! Dropped (counted in [`Mp4Stats::dropped_frames`], never an error): video before the first
//! keyframe, audio before the first video keyframe when there is a video track, frames of
//! a track the writer was not created with, frames with no data left (video made only of
//! SPS/PPS/AUD) and frames over [`MAX_SAMPLE_BYTES`].
//!
//! No I/O and no clock: the caller writes the bytes where it wants.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::aac::AudioSpecificConfig;
use crate::codec::h264::AvcConfig;
use crate::media::{MediaFrame, Track};

use super::fragment::{write_fragment, Sample, TrackRun, NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};
use super::init::{init_segment, TrackInfo};
use super::timeline::{Timeline, MAX_JUMP_MS};
use super::Mp4Error;
use crate::codec::h264::annexb_to_avcc;

/// A single frame larger than this is dropped.
pub const MAX_SAMPLE_BYTES: usize = 256 << 20;
/// A fragment is closed once its queued samples cost this much (payload plus
/// [`SAMPLE_OVERHEAD_BYTES`] each): 32 MiB. A second of 4K at 100 Mbit/s is 12.5 MB; a
/// source whose timestamps stand still (so no fragment ever closes on time) or that floods
/// tiny frames holds at most this much in a recorder.
pub const MAX_FRAGMENT_BYTES: usize = 32 << 20;
/// What a queued sample costs beside its payload: its queue entry (72 bytes) and its `trun`
/// entry (16), rounded up.
pub const SAMPLE_OVERHEAD_BYTES: usize = 128;

/// How the writer fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp4Options {
    /// Close a fragment once it holds this much media (ms); at most what a crash loses.
    /// Values below 1 are taken as 1.
    pub max_fragment_ms: i64,
}

impl Default for Mp4Options {
    fn default() -> Self {
        Self {
            max_fragment_ms: 1000,
        }
    }
}

/// What has been written so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mp4Stats {
    /// Smallest presentation time written, on the source's millisecond timeline.
    pub first_pts_ms: Option<i64>,
    /// Largest presentation time written, on the source's millisecond timeline.
    pub last_pts_ms: Option<i64>,
    /// Length of the written media on the file's timeline (end of the track that ends
    /// last, in ms; jumps in the source do not count).
    pub duration_ms: i64,
    /// Video samples written.
    pub video_samples: u64,
    /// Audio samples written.
    pub audio_samples: u64,
    /// Fragments written.
    pub fragments: u64,
    /// Bytes of fragments returned (the init segment not included).
    pub fragment_bytes: u64,
    /// Frames dropped (see the module documentation for which).
    pub dropped_frames: u64,
    /// Backward or too-large forward dts jumps smoothed over, all tracks.
    pub timestamp_discontinuities: u64,
}

/// One written fragment and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// `moof` + `mdat`.
    pub bytes: Bytes,
    /// Each track that has samples in it, in track order.
    pub runs: Vec<RunInfo>,
}

impl Fragment {
    /// The run of `track`, if the fragment has samples of it.
    pub fn run(&self, track: Track) -> Option<&RunInfo> {
        self.runs.iter().find(|r| r.track == track)
    }
}

/// The samples of one track in a [`Fragment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunInfo {
    pub track: Track,
    /// Ticks per second of the times below.
    pub timescale: u32,
    /// Decode time of the first sample.
    pub base_decode_time: u64,
    /// Sum of the samples' durations.
    pub duration: u64,
    /// How many samples.
    pub samples: usize,
    /// Whether any of them is a sync sample (for video: an IDR).
    pub any_sync: bool,
}

/// A queued sample: its source times, and its decode time once converted.
#[derive(Debug, Clone)]
struct Queued {
    dts: i64,
    pts: i64,
    sync: bool,
    data: Bytes,
    decode_time: Option<u64>,
}

#[derive(Debug)]
struct TrackState {
    info: TrackInfo,
    timeline: Timeline,
    /// Samples not written yet, in decode order; the converted ones come first.
    queue: Vec<Queued>,
    /// End of the last written sample, in the timescale.
    written_end: u64,
}

/// A fragmented MP4 (ISO BMFF) writer for one recording: write
/// [`init_segment`](Self::init_segment) once, then every fragment [`push`](Self::push)
/// returns, then what [`finish`](Self::finish) returns. The file is playable after every
/// fragment, so a crash loses at most the pending fragment.
#[derive(Debug)]
pub struct FragmentedMp4Writer {
    tracks: Vec<TrackState>,
    threshold_video_ms: i64,
    init: Bytes,
    origin: Option<i64>,
    sequence: u32,
    video_started: bool,
    queued_bytes: usize,
    stats: Mp4Stats,
}

impl FragmentedMp4Writer {
    /// A writer for these tracks (at least one). Video is track 1 with timescale 90000,
    /// audio the next track with the AAC output sample rate as its timescale.
    pub fn new(
        video: Option<Arc<AvcConfig>>,
        audio: Option<Arc<AudioSpecificConfig>>,
        options: Mp4Options,
    ) -> Result<Self, Mp4Error> {
        let mut infos = Vec::new();
        if let Some(v) = video {
            infos.push(TrackInfo::video(1, v)?);
        }
        if let Some(a) = audio {
            infos.push(TrackInfo::audio(infos.len() as u32 + 1, a)?);
        }
        if infos.is_empty() {
            return Err(Mp4Error::NoTracks);
        }
        let init = Bytes::from(init_segment(&infos));
        let tracks = infos
            .into_iter()
            .map(|info| TrackState {
                timeline: Timeline::new(info.timescale, info.default_duration()),
                info,
                queue: Vec::new(),
                written_end: 0,
            })
            .collect();
        Ok(Self {
            tracks,
            threshold_video_ms: options.max_fragment_ms.max(1),
            init,
            origin: None,
            sequence: 0,
            video_started: false,
            queued_bytes: 0,
            stats: Mp4Stats::default(),
        })
    }

    /// `ftyp` + `moov`: the first bytes of the file (the same every call).
    pub fn init_segment(&self) -> Bytes {
        self.init.clone()
    }

    /// Adds a frame; returns a finished fragment (`moof`+`mdat`) when one closes by the
    /// recording's rule (module documentation).
    pub fn push(&mut self, frame: &MediaFrame) -> Option<Bytes> {
        let has_video = self.has_video();
        let threshold = if frame.track == Track::Video || !has_video {
            self.threshold_video_ms
        } else {
            self.threshold_video_ms.saturating_mul(2)
        };
        let track = self.tracks.iter().find(|t| t.info.kind() == frame.track);
        let keyframe_cut = frame.track == Track::Video
            && frame.keyframe
            && track.is_some_and(|t| !t.queue.is_empty());
        let span_cut = track
            .and_then(|t| t.queue.first())
            .is_some_and(|first| frame.dts.saturating_sub(first.dts) >= threshold);
        if !self.push_uncut(frame) {
            return None;
        }
        let bytes_cut = self.queued_bytes >= MAX_FRAGMENT_BYTES;
        if keyframe_cut || span_cut || bytes_cut {
            self.close_fragment(i64::MAX, false).map(|f| f.bytes)
        } else {
            None
        }
    }

    /// Adds a frame and leaves the cutting to the caller ([`cut_before`](Self::cut_before));
    /// false when the frame is dropped (see the module documentation).
    pub fn push_uncut(&mut self, frame: &MediaFrame) -> bool {
        let has_video = self.has_video();
        let Some(index) = self
            .tracks
            .iter()
            .position(|t| t.info.kind() == frame.track)
        else {
            self.stats.dropped_frames += 1;
            return false;
        };
        let data = match frame.track {
            Track::Video => {
                if !self.video_started && !frame.keyframe {
                    self.stats.dropped_frames += 1;
                    return false;
                }
                let mut out = Vec::with_capacity(frame.data.len() + 16);
                annexb_to_avcc(&frame.data, &mut out);
                Bytes::from(out)
            }
            Track::Audio => {
                if has_video && !self.video_started {
                    self.stats.dropped_frames += 1;
                    return false;
                }
                frame.data.clone()
            }
        };
        if data.is_empty() || data.len() > MAX_SAMPLE_BYTES {
            self.stats.dropped_frames += 1;
            return false;
        }
        if frame.track == Track::Video {
            self.video_started = true;
        }
        let len = data.len();
        let Some(track) = self.tracks.get_mut(index) else {
            return false;
        };
        track.queue.push(Queued {
            dts: frame.dts,
            pts: frame.pts,
            sync: frame.track == Track::Audio || frame.keyframe,
            data,
            decode_time: None,
        });
        self.queued_bytes = self
            .queued_bytes
            .saturating_add(len + SAMPLE_OVERHEAD_BYTES);
        true
    }

    /// Writes, as one fragment, every queued sample that decodes before `boundary_dts` (the
    /// source's ms). A track whose samples all decode before it (the track that does not
    /// drive the cuts) has its last one written with the duration of the one before (its
    /// successor then starts no earlier than that), so every track reaches the boundary.
    /// `None` when no sample is queued before it.
    pub fn cut_before(&mut self, boundary_dts: i64) -> Option<Fragment> {
        self.close_fragment(boundary_dts, true)
    }

    /// Bytes of the samples queued and not yet written (each with its overhead).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Closes the pending fragment at the end of the recording, if any samples are pending:
    /// every held-back sample is written, the last one of each track with the duration of
    /// the one before it (or one AAC frame / 1/30 s when there is none).
    pub fn finish(&mut self) -> Option<Bytes> {
        let last = self.close_fragment(i64::MAX, true).map(|f| f.bytes);
        self.queued_bytes = 0;
        last
    }

    /// What has been written so far.
    pub fn stats(&self) -> Mp4Stats {
        let mut stats = self.stats.clone();
        stats.timestamp_discontinuities =
            self.tracks.iter().map(|t| t.timeline.discontinuities).sum();
        stats
    }

    fn has_video(&self) -> bool {
        self.tracks.iter().any(|t| t.info.kind() == Track::Video)
    }

    /// Writes the queued samples that decode before `boundary` and whose durations are
    /// known; a track's last sample too when `estimate_last` (with the previous duration).
    fn close_fragment(&mut self, boundary: i64, estimate_last: bool) -> Option<Fragment> {
        let origin = match self.origin {
            Some(o) => o,
            None => {
                let o = self
                    .tracks
                    .iter()
                    .filter_map(|t| t.queue.first().map(|q| q.dts))
                    .min()?;
                self.origin = Some(o);
                o
            }
        };

        let mut per_track: Vec<(u32, u64, Vec<Sample>)> = Vec::with_capacity(self.tracks.len());
        for track in &mut self.tracks {
            for q in track.queue.iter_mut().filter(|q| q.decode_time.is_none()) {
                q.decode_time = Some(track.timeline.decode_time(q.dts, origin));
            }
            let known = if estimate_last {
                track.queue.len()
            } else {
                track.queue.len().saturating_sub(1)
            };
            let count = track
                .queue
                .iter()
                .take(known)
                .take_while(|q| q.dts < boundary)
                .count();
            let mut samples = Vec::with_capacity(count);
            let base = track.queue.first().and_then(|q| q.decode_time).unwrap_or(0);
            for (i, q) in track.queue.iter().take(count).enumerate() {
                let this = q.decode_time.unwrap_or(0);
                let duration = match track.queue.get(i + 1).and_then(|n| n.decode_time) {
                    Some(next) => u32::try_from(next.saturating_sub(this)).unwrap_or(u32::MAX),
                    None => {
                        let d = track.timeline.fallback_duration();
                        track.timeline.closed_with(d);
                        d
                    }
                };
                let cto_ms = q.pts.saturating_sub(q.dts).clamp(-MAX_JUMP_MS, MAX_JUMP_MS);
                samples.push(Sample {
                    duration,
                    flags: if q.sync {
                        SYNC_SAMPLE_FLAGS
                    } else {
                        NON_SYNC_SAMPLE_FLAGS
                    },
                    composition_offset: track.timeline.ms_to_ticks_signed(cto_ms),
                    data: q.data.clone(),
                });
                track.written_end = this.saturating_add(u64::from(duration));
            }
            per_track.push((track.info.id, base, samples));
        }
        if per_track.iter().all(|(_, _, s)| s.is_empty()) {
            return None;
        }

        self.sequence = self.sequence.saturating_add(1);
        let runs: Vec<TrackRun<'_>> = per_track
            .iter()
            .map(|(id, base, samples)| TrackRun {
                track_id: *id,
                base_decode_time: *base,
                samples,
            })
            .collect();
        let bytes = Bytes::from(write_fragment(self.sequence, &runs));
        let described = per_track
            .iter()
            .zip(&self.tracks)
            .map(|((_, base, samples), track)| RunInfo {
                track: track.info.kind(),
                timescale: track.info.timescale,
                base_decode_time: *base,
                duration: samples.iter().map(|s| u64::from(s.duration)).sum(),
                samples: samples.len(),
                any_sync: samples.iter().any(|s| s.flags == SYNC_SAMPLE_FLAGS),
            })
            .filter(|run| run.samples > 0)
            .collect();

        // Bookkeeping: drop what was written, update the stats.
        for (track, (_, _, samples)) in self.tracks.iter_mut().zip(&per_track) {
            let written: Vec<Queued> = track.queue.drain(..samples.len()).collect();
            for q in &written {
                self.queued_bytes = self
                    .queued_bytes
                    .saturating_sub(q.data.len() + SAMPLE_OVERHEAD_BYTES);
                let first = self.stats.first_pts_ms.get_or_insert(q.pts);
                *first = (*first).min(q.pts);
                let last = self.stats.last_pts_ms.get_or_insert(q.pts);
                *last = (*last).max(q.pts);
            }
            match track.info.kind() {
                Track::Video => self.stats.video_samples += written.len() as u64,
                Track::Audio => self.stats.audio_samples += written.len() as u64,
            }
            let end_ms = track.timeline.ticks_to_ms(track.written_end);
            self.stats.duration_ms = self.stats.duration_ms.max(end_ms);
        }
        self.stats.fragments += 1;
        self.stats.fragment_bytes += bytes.len() as u64;
        Some(Fragment {
            bytes,
            runs: described,
        })
    }
}
