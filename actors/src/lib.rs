//! # pullcast-server — the actors, the HTTP API and the configuration loader
//!
//! This crate is the only place with a runtime. It moves bytes and messages; the media logic
//! it calls lives in the pure `pullcast` core. See `ARCHITECTURE.md` for the actor tree.
//!
//! - [`settings`] loads the configuration (defaults → file → `PULLCAST_…` environment).
//! - [`messages`] holds every actor message, grouped by the actor that receives it.
//! - [`registry`] is the single owner of all captures.
//! - [`panic_guard`] contains a panic to the capture or viewer it happened in.
//! - [`stream`] holds one capture's actors: `StreamSupervisor`, `RtmpReader`, `Normalizer`.
//! - [`http`] serves the REST API over HTTP and HTTPS, and every player's HTTP routes.
//! - [`hls`] holds the LL-HLS streams being served and their muxer actors.
//! - [`rtmp_serve`] is the RTMP listener: players of any capture, one actor per play.
//! - [`webrtc`] holds the WebRTC engine and the `ViewerPeer` actor (one per browser viewer).
//! - `fuzzing` (hidden) holds the entry points of the server's fuzz targets (`fuzz/README.md`).

#[doc(hidden)]
pub mod fuzzing;
pub mod hls;
pub mod http;
pub mod messages;
pub mod panic_guard;
pub mod records;
pub mod registry;
pub mod rtmp_serve;
pub mod settings;
pub mod stream;
pub mod telemetry;
pub mod webrtc;
