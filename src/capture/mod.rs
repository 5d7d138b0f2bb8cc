//! A capture's behaviour as one pure, clock-free state machine (the shape of str0m: input
//! in, actions out, time passed in).
//!
//! - [`machine`] — [`Capture`]: status and history, reconnects with backoff, on-demand
//!   give-up and linger, the timeline across reconnects, the keyframe caches, fan-out with
//!   keyframe gating and replays, the transcoders' lifecycles, the memory budget;
//! - [`input`] — what happens to a capture ([`Input`]);
//! - [`action`] — what it asks its actor to do ([`Action`]);
//! - [`subscribers`] — the subscriber table and the one owner of keyframe gating;
//! - [`status`] — the status, its history, retry and resume figures.
//!
//! The server's `StreamSupervisor` owns a [`Capture`], feeds it every message with the
//! time, carries out the actions (and reports what it could not deliver), and arms one timer
//! at [`Capture::next_deadline`]. Nothing here does I/O, reads a clock or knows actix.

pub mod action;
pub mod input;
pub mod machine;
pub mod status;
pub mod subscribers;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use action::{Action, Outgoing};
pub use input::{AudioConfig, Input, QueuedBytes, SourceEnd};
pub use machine::{describe, Capture, CaptureConfig, Counters, Rates, FIRST_VIEWER_GRACE};
pub use status::{CaptureStatus, ResumeInfo, RetryInfo, StatusChange, StatusLog, HISTORY_LEN};
pub use subscribers::{Delivery, SubscriberId, Subscribers};
