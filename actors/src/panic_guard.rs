//! Panic containment: a bug that panics inside one actor's handler ends that capture or that
//! viewer, never the server.
//!
//! Without this, a panic unwinds out of the actor's future; tokio's task harness catches it
//! and drops the actor, silently: the `Registry` dying that way left every REST, WebSocket
//! and WHEP call answering 500 until a restart. So every handler of the long-lived actors
//! runs its body through [`catch`]; the actor then decides what the panic ends (the Registry
//! answers the one request with an error and carries on; a `StreamSupervisor` ends its
//! capture `FAILED`; a `ViewerPeer` ends its viewer `FAILED`). [`install_hook`] makes the
//! panic's message and place go to the log instead of stderr.
//!
//! This is a safety net, not error handling: input errors are values, never panics.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// A panic that was caught: its message, for logs and `FAILED` reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    pub message: String,
}

impl Panic {
    /// The reason given to whoever the panic ended (a capture, a viewer, one request).
    pub fn reason(&self, what: &str) -> String {
        format!(
            "internal error in {what} ({}); this is a bug in pullcast, please report it",
            self.message
        )
    }
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs `body`; a panic inside it is returned as `Err(Panic)` instead of unwinding.
///
/// `body` may leave the state it was changing half-done: callers end what the state belongs
/// to (a capture, a viewer) or only answer the one request and keep state that stays valid.
pub fn catch<R>(body: impl FnOnce() -> R) -> Result<R, Panic> {
    catch_unwind(AssertUnwindSafe(body)).map_err(|payload| Panic {
        message: payload_message(payload.as_ref()),
    })
}

impl Panic {
    /// The panic carried by a payload caught elsewhere (e.g. `FutureExt::catch_unwind`).
    pub fn from_payload(payload: &(dyn std::any::Any + Send)) -> Self {
        Self {
            message: payload_message(payload),
        }
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Sends every panic's message and location to the log (`error`), once, where it happens.
/// Call once at start, after the logger.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = payload_message(info.payload());
        let thread = std::thread::current();
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "an unknown place".to_string());
        log::error!(
            "panic in thread '{}' at {place}: {message}",
            thread.name().unwrap_or("unnamed")
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_keeps_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        let caught = catch(|| -> u8 { panic!("boom {}", 3) });
        assert_eq!(
            caught,
            Err(Panic {
                message: "boom 3".to_string()
            })
        );
        let sliced = catch(|| {
            let name = String::from("直播流");
            name[..1].len()
        });
        assert!(sliced
            .err()
            .is_some_and(|p| p.message.contains("char boundary")));
        let reason = Panic {
            message: "x".into(),
        }
        .reason("the capture");
        assert!(reason.starts_with("internal error in the capture (x)"));
    }
}
