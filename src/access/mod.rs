//! The access model: who may do what, decided without I/O.
//!
//! Every way into the server — REST, WebSocket signalling, WHEP, recording downloads, and
//! HTTP-FLV, HLS, RTMP play and publish — asks [`Policy`] the same two questions: who is this caller
//! ([`Policy::authenticate`]: its address and credentials) and may it do this
//! ([`Policy::decide`]: a [`Permission`] on a stream known by its local name and uri). The
//! server runs the answer: 401, 403, the hook ([`hook`]), 429 from the [`LoginThrottle`].
//!
//! - [`permission`] — `api`, `pull`, `pull_private`, `play`, `records`;
//! - [`pattern`] — the stream globs (Unicode-safe);
//! - [`credentials`] — `Authorization` values (Basic, Bearer) and bare tokens;
//! - [`password`] — clear or argon2 passwords, constant-time comparisons;
//! - [`token`] — signed, expiring tokens (HMAC-SHA256);
//! - [`throttle`] — failed logins per address, time passed in;
//! - [`origin`] — which pages may open the WebSocket;
//! - [`forwarded`] — the client's address behind trusted reverse proxies;
//! - [`host_check`] — whether `Host` names this server (trust by address vs DNS rebinding);
//! - [`redact`] — stream keys out of uris shown to non-`api` callers and out of logs;
//! - [`hook`] — the hook's URL, JSON question, request bytes and status line;
//! - [`policy`] — the decision itself (its rules are in that module's documentation).

mod base64;
pub mod credentials;
pub mod forwarded;
pub mod hook;
pub mod host_check;
pub mod origin;
pub mod password;
pub mod pattern;
pub mod permission;
pub mod policy;
#[cfg(test)]
mod policy_tests;
pub mod redact;
pub mod throttle;
pub mod token;

pub use credentials::Credentials;
pub use pattern::StreamPattern;
pub use permission::{Permission, PermissionSet};
pub use policy::{Caller, Decision, Identity, Policy};
pub use redact::{redact_text, redact_uri};
pub use throttle::LoginThrottle;
pub use token::{TokenClaims, TokenKey};
