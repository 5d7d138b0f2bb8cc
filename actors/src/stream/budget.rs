//! Bytes in flight between a capture's actors, counted and bounded.
//!
//! actix mailboxes count messages, not bytes, and `do_send` ignores even that count; a
//! hostile source (or a slow consumer) could otherwise fill memory with queued media. Every
//! message that carries media between a capture's actors carries a [`Charge`] on the
//! [`ByteBudget`] of that queue: the sender takes it when it sends, and it is given back when
//! the message is dropped — that is, when the receiver has handled it. What a queue holds is
//! therefore known in bytes (payload plus a fixed per-message overhead), and:
//!
//! - the reader waits ([`ByteBudget::wait_for_room`]) before reading more from the socket
//!   while the capture's ingest queue (reader → normalizer → supervisor) is over its limit:
//!   backpressure to the source, through TCP;
//! - the fan-out asks [`ByteBudget::try_charge`] per subscriber: a subscriber over its limit
//!   misses frames until the next keyframe, as with a full mailbox.
//!
//! It moves no media and makes no decisions of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// What one queued message costs beyond its payload: the message and frame structs, the
/// `Bytes` handle, the mailbox slot — the core's per-frame figure.
pub const MESSAGE_OVERHEAD: usize = pullcast::media::FRAME_OVERHEAD_BYTES;

/// One queue's byte count and limit, and how many charges (messages) are out.
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicUsize,
    messages: AtomicUsize,
    peak: AtomicUsize,
    limit: usize,
    freed: Notify,
}

/// A budget shared by the actors on both ends of a queue.
pub type SharedBudget = Arc<ByteBudget>;

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> SharedBudget {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            messages: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit,
            freed: Notify::new(),
        })
    }

    /// Bytes charged and not yet given back.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Charges (messages) not yet given back.
    pub fn messages(&self) -> usize {
        self.messages.load(Ordering::Relaxed)
    }

    /// The most ever charged at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the queue holds more than its limit.
    pub fn over_limit(&self) -> bool {
        self.used() > self.limit
    }

    /// Charges `bytes` whatever the count (the sender waits for room before, see
    /// [`Self::wait_for_room`]).
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        let now = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.peak.fetch_max(now, Ordering::Relaxed);
        Charge {
            budget: Some(self.clone()),
            bytes,
        }
    }

    /// Charges `bytes` if they fit under the limit — or if the queue is empty, so one message
    /// larger than the whole limit still gets through — else `None`.
    pub fn try_charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            if current != 0 && current.saturating_add(bytes) > self.limit {
                return None;
            }
            match self.used.compare_exchange_weak(
                current,
                current + bytes,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.messages.fetch_add(1, Ordering::Relaxed);
                    self.peak.fetch_max(current + bytes, Ordering::Relaxed);
                    return Some(Charge {
                        budget: Some(self.clone()),
                        bytes,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Returns once the queue is at or under its limit in bytes and holds at most
    /// `max_messages` charges.
    ///
    /// The count matters where one message turns into a larger one further down the queue:
    /// an 11-byte keyframe tag becomes a frame with its SPS and PPS in front (up to 12 KiB),
    /// so bytes alone, counted as tags, would let tens of thousands of small tags in and
    /// each grow a thousandfold.
    pub async fn wait_for_room(&self, max_messages: usize) {
        while self.over_limit() || self.messages() > max_messages {
            // A charge given back in between leaves a permit: no wake-up is lost.
            self.freed.notified().await;
        }
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
        self.messages.fetch_sub(1, Ordering::Relaxed);
        self.freed.notify_one();
    }
}

/// Bytes held on a budget while a message is queued or handled; given back when dropped.
pub struct Charge {
    budget: Option<SharedBudget>,
    bytes: usize,
}

impl Charge {
    /// A charge on no budget (messages made by tests, or outside any bounded queue).
    pub fn none() -> Self {
        Self {
            budget: None,
            bytes: 0,
        }
    }

    /// The bytes this charge holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.give_back(self.bytes);
        }
    }
}

/// A copy of a queued message is queued too: it holds its own charge.
impl Clone for Charge {
    fn clone(&self) -> Self {
        match &self.budget {
            Some(budget) => budget.charge(self.bytes),
            None => Self::none(),
        }
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charge({} bytes)", self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_given_back_when_dropped() {
        let budget = ByteBudget::new(1000);
        let a = budget.charge(600);
        let b = budget.charge(600);
        assert_eq!(budget.used(), 1200);
        assert!(budget.over_limit());
        let c = b.clone();
        assert_eq!(budget.used(), 1800);
        drop((a, b, c));
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.peak(), 1800);
    }

    #[test]
    fn try_charge_refuses_past_the_limit_but_never_an_empty_queue() {
        let budget = ByteBudget::new(1000);
        let big = budget.try_charge(5000);
        assert!(big.is_some(), "an empty queue takes any one message");
        assert!(budget.try_charge(1).is_none());
        drop(big);
        let a = budget.try_charge(700);
        assert!(a.is_some());
        assert!(budget.try_charge(301).is_none());
        assert!(budget.try_charge(300).is_some_and(|c| c.bytes() == 300));
        assert_eq!(Charge::none().bytes(), 0);
    }

    #[tokio::test]
    async fn wait_for_room_returns_when_enough_is_given_back() {
        let budget = ByteBudget::new(100);
        let held = budget.charge(500);
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.wait_for_room(usize::MAX).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(waited, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn wait_for_room_also_waits_for_the_message_count() {
        let budget = ByteBudget::new(1 << 20);
        let held: Vec<Charge> = (0..5).map(|_| budget.charge(10)).collect();
        assert_eq!(budget.messages(), 5);
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.wait_for_room(3).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "5 messages out, 3 allowed");
        drop(held);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(waited, Ok(Ok(()))));
        assert_eq!(budget.messages(), 0);
    }
}
