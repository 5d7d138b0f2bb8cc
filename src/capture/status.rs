//! A capture's status as `find_all` reports it: the current state with its reason, the last
//! transitions, the latest return of a dropped source, the next retry. Plain data and the
//! rule for what counts as a transition; no clock is read here.

use std::collections::VecDeque;
use std::time::SystemTime;

/// Status transitions kept for `find_all`.
pub const HISTORY_LEN: usize = 20;

/// The state of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureStatus {
    /// Connecting to the source, or connected and waiting for media.
    Pending,
    /// Media is flowing.
    ProcessedRemote,
    /// Media flowed, then the source dropped; it is being pulled again (see the reason and
    /// the retry).
    Reconnecting,
    /// The pull failed; see the reason. A REST capture keeps retrying (see the retry); an
    /// on-demand one that gave up has ended.
    Failed,
}

/// One status transition of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub at: SystemTime,
    pub status: CaptureStatus,
    pub reason: Option<String>,
}

/// The latest return of a dropped source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeInfo {
    /// When its first frame went out to the subscribers (the first keyframe, on video).
    pub at: SystemTime,
    /// From the drop to then.
    pub gap_ms: u64,
}

/// The next attempt of a capture waiting to pull its source again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryInfo {
    /// Attempts since media last flowed (1 = the first retry).
    pub attempt: u32,
    /// Milliseconds until it starts (0 once it is under way).
    pub next_attempt_in_ms: u64,
}

/// The current status, its reason and the last [`HISTORY_LEN`] transitions.
#[derive(Debug, Clone)]
pub struct StatusLog {
    status: CaptureStatus,
    reason: Option<String>,
    history: VecDeque<StatusChange>,
}

impl StatusLog {
    /// `PENDING` since `at`.
    pub fn new(at: SystemTime) -> Self {
        Self {
            status: CaptureStatus::Pending,
            reason: None,
            history: VecDeque::from([StatusChange {
                at,
                status: CaptureStatus::Pending,
                reason: None,
            }]),
        }
    }

    pub fn status(&self) -> CaptureStatus {
        self.status
    }

    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Oldest first.
    pub fn history(&self) -> impl Iterator<Item = &StatusChange> {
        self.history.iter()
    }

    /// Moves to `status` with `reason` at `at`; the same status with the same reason again (a
    /// retry failing the same way) is not a transition.
    pub fn set(&mut self, status: CaptureStatus, reason: Option<String>, at: SystemTime) {
        if status == self.status && reason == self.reason {
            return;
        }
        self.status = status;
        self.reason = reason.clone();
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(StatusChange { at, status, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn repeats_are_not_transitions_and_the_history_is_bounded() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut log = StatusLog::new(t0);
        log.set(CaptureStatus::Failed, Some("refused".into()), t0);
        log.set(CaptureStatus::Failed, Some("refused".into()), t0);
        assert_eq!(log.history().count(), 2);
        log.set(CaptureStatus::Failed, Some("timed out".into()), t0);
        assert_eq!(log.history().count(), 3);
        for i in 0..50 {
            let status = if i % 2 == 0 {
                CaptureStatus::ProcessedRemote
            } else {
                CaptureStatus::Reconnecting
            };
            log.set(status, None, t0 + Duration::from_secs(i));
        }
        assert_eq!(log.history().count(), HISTORY_LEN);
        assert_eq!(log.status(), CaptureStatus::Reconnecting);
        assert_eq!(
            log.history().last().map(|c| c.at),
            Some(t0 + Duration::from_secs(49))
        );
    }
}
