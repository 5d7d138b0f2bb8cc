//! Fragmented MP4 (ISO BMFF) writing for recordings: [`MediaFrame`](crate::media::MediaFrame)s
//! in, bytes out — an init segment (`ftyp`+`moov` with empty sample tables and `mvex`), then
//! self-contained `moof`+`mdat` fragments, so a file cut off anywhere after a fragment still
//! plays. H.264 and AAC pass through untouched (only Annex-B → length-prefixed NAL units).
//!
//! Pure code: no files, no clock, no async; the caller (the server's recorder) decides where
//! the bytes go. Nothing here panics on any input: bad frames are dropped and counted.
//!
//! - [`writer`] — the state machine: fragmenting and timing rules, [`FragmentedMp4Writer`].
//! - `init` — `ftyp`/`moov` and the `avc1`/`mp4a` sample descriptions.
//! - `fragment` — `moof`/`mdat` layout (`tfhd`, `tfdt`, `trun` with signed offsets).
//! - `timeline` — per-track ms → timescale conversion, jumps and wrap-arounds smoothed.
//! - `boxes` — box-writing primitives with size back-patching.

mod boxes;
mod error;
mod fragment;
pub(crate) mod init;
mod timeline;
pub mod writer;

#[cfg(test)]
mod real_tests;
#[cfg(test)]
pub(crate) mod testutil;
#[cfg(test)]
mod writer_tests;

pub use error::Mp4Error;
pub use writer::{Fragment, FragmentedMp4Writer, Mp4Options, Mp4Stats, RunInfo};
