//! The one port every WebRTC viewer's media goes through: what arrives on it is sorted out
//! here, before any viewer's ICE agent sees it.
//!
//! - [`announce`] — which addresses every answer's host candidates name;
//! - [`stun`] — the USERNAME of a Binding request, read in place;
//! - [`demux`] — which viewer a datagram belongs to (its fragment first, its address after);
//! - [`tcp_framing`] — ICE-TCP's RFC 4571 framing, bounded;
//! - [`send_plan`] — which queued datagrams leave as one GSO message, and in which call.
//!
//! Nothing here does I/O or reads a clock.

pub mod announce;
pub mod demux;
pub mod send_plan;
pub mod stun;
pub mod tcp_framing;

pub use announce::{announced_addresses, parse_advertised, AnnounceSettings};
pub use demux::{Demux, FragmentInUse, Route};
pub use send_plan::{plan_calls, plan_messages, Call, Message};
pub use stun::{binding_request_username, is_stun, IceUsername};
pub use tcp_framing::{frame, FrameDecoder, FramingError};
