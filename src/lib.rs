//! # pullcast — the pure media core
//!
//! Everything in this crate is plain data in, plain data out: it never opens a socket or a
//! file, never reads the clock and never spawns a task. Time, when it matters, is passed in
//! by the caller as milliseconds. That is what keeps it testable with byte vectors, and what
//! lets the server crate (`actors/`) stay a thin layer of actors that move messages.
//!
//! ## Code map
//! - [`access`] — the access model: permissions, users, stream patterns, signed tokens, the
//!   failed-login throttle, origins, uri redaction, and the decision every way in asks.
//! - [`rtmp`] — the RTMP *client* side of a pull: URL parsing, our own chunk decoder, and a
//!   play session that speaks `connect` / `createStream` + `FCSubscribe` / `play` and turns
//!   bytes into [`rtmp::SessionEvent`]s. It borrows the handshake, the chunk serializer and the
//!   message codecs from `rml_rtmp`, and replaces what `rml_rtmp` 0.8 gets wrong.
//! - [`flv`] — FLV tag bodies: the tag headers, H.264 (AVC decoder configuration, SPS,
//!   AVCC → Annex-B) and AAC (AudioSpecificConfig).
//! - [`normalize`] — the [`normalize::Normalizer`]: FLV tags in, [`media::MediaFrame`]s and
//!   codec changes out, on one 64-bit millisecond timeline.
//! - [`audio`] — AAC → 48 kHz → Opus for WebRTC viewers (FDK AAC, rubato, libopus called
//!   in-process; still no I/O).
//! - [`gop`] — the keyframe cache that lets a new viewer start at once.
//! - [`media`] — the types every later stage shares: frames, tracks, codec configurations.
//! - [`mp4`] — the fragmented MP4 writer for recordings and HLS: frames in, init + fragments
//!   out.
//! - [`hls`] — LL-HLS: parts and segments cut from the fragmented MP4 writer, the window, the
//!   playlist text and the answers to blocking requests.
//! - [`net`] — CIDR ranges, the address ranges a pull must not reach, numeric host
//!   spellings, and the pull-target policy (no DNS, no sockets).
//! - [`record`] — recording file names (templates, sanitising, 255-byte cap).
//! - [`video`] — B-frame detection and the per-capture transcode to Constrained Baseline
//!   (OpenH264 in-process) for WebRTC viewers.
//! - [`timeline`] — keeps frame times monotonic when a source restarts (reconnects).
//! - [`backoff`] — jittered exponential retry delays for a dropped source.
//! - [`rate_limit`] — a token bucket per client address, with a bounded table.
//! - [`report_once`] — log each distinct problem of a stream once, with a bound.
//! - [`stats`] — counters and rate meters fed with caller-supplied time.
//! - [`metrics`] — the Prometheus text format: families, samples, histograms, escaping.
//! - [`config`] — the configuration schema with its built-in defaults.
//! - [`lipsync`] — what a viewer's RTCP sender reports say, so browsers align audio and video
//!   by the source's timestamps.
//! - [`webrtc_viewer`] — a WebRTC viewer's decisions: the browser's offered H.264/Opus formats,
//!   the format to answer with, RTP timestamps from pts, keyframe-request rate limits.
//! - `fuzzing` (hidden) — the entry points of the fuzz targets, shared by `fuzz/` and the
//!   corpus replay in `cargo test` (see `fuzz/README.md`).
//!
//! ## The input/poll contract
//! Stateful cores follow one shape: `handle_*(input)` feeds bytes or events in, and the
//! results are drained with `poll_*()` until it returns `None`. "Not enough bytes yet" is
//! `Ok(None)` / no output, never an error; errors mean the peer broke the protocol.

pub mod access;
pub mod audio;
pub mod backoff;
pub mod capture;
pub mod codec;
pub mod config;
pub mod flv;
#[doc(hidden)]
pub mod fuzzing;
pub mod gop;
pub mod hls;
pub mod lipsync;
pub mod media;
pub mod media_port;
pub mod metrics;
pub mod mp4;
pub mod net;
pub mod normalize;
pub mod rate_limit;
pub mod record;
pub mod report_once;
pub mod rtmp;
pub mod rtp;
pub mod stats;
#[cfg(test)]
pub(crate) mod test_vectors;
pub mod timeline;
pub mod video;
pub mod webrtc_viewer;
