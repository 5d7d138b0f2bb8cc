//! RTMP, sans-IO: the client side of a pull, and the server side players and publishers
//! connect to.
//!
//! - [`url`] parses `rtmp://host[:port]/app[/more]/stream[?query]` into what `connect` and
//!   `play` need.
//! - [`chunk`] is our own chunk-stream decoder (RTMP spec §5.3). `rml_rtmp` 0.8's decoder
//!   shares one payload buffer between chunk streams, assumes every type-3 chunk repeats an
//!   extended timestamp, and drops what it does not know; ours keeps one buffer per chunk
//!   stream and checks the bytes before taking them as a timestamp.
//! - [`aggregate`] splits aggregate messages (type 22) into their audio/video/data messages.
//! - `incoming` sorts a received message (media, AMF0 data or command, aggregate parts,
//!   control) the same way for both sessions.
//! - [`amf0`] checks AMF0 bodies (depth, value count) before `rml_amf0` decodes them.
//! - [`session`] is the play session: handshake, `connect`, `createStream`, `FCSubscribe`,
//!   `play`, control messages and acknowledgements, bytes in and [`SessionEvent`]s out. It
//!   accepts media on any message stream id, including 0. Its `commands` submodule answers
//!   what the server says; `metadata` keeps `onMetaData` within bounds.
//!
//! - [`serve`] is the server session: handshake, `connect`, `createStream`, `play`,
//!   `publish` and the calls around them (ffmpeg, OBS, nginx-rtmp's relay, Wowza), with our
//!   own stateless chunk writer (`serve::wire`) for what it sends.
//!
//! From `rml_rtmp` we keep what it does right: the handshake, the chunk *serializer* for
//! what we send, and the message and AMF0 codecs.

pub mod aggregate;
pub mod amf0;
pub mod chunk;
pub(crate) mod incoming;
pub mod serve;
pub mod session;
pub mod url;

pub use serve::{ServeEvent, ServeSession};
pub use session::{PlaySession, PlaySessionConfig, SessionError, SessionEvent};
pub use url::{RtmpUrl, UrlError};
