//! One RTMP connection's outgoing bytes: a bounded queue of whole RTMP messages that the
//! connection's writer drains onto the socket, filled by the connection itself (control
//! answers) and by its players (media). Bounded in messages and in bytes; a player's media
//! that does not fit is refused (the player then waits for a keyframe), a control answer
//! goes in while there is room for a message at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Messages queued at most (whatever their size).
pub const QUEUE_MESSAGES: usize = 1024;

/// Why bytes were not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// Over the bound: the client reads too slowly.
    Full,
    /// The connection is gone.
    Closed,
}

/// The sending side (cloned into each player).
#[derive(Clone)]
pub struct OutQueue {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The writer's side.
pub struct OutDrain {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A queue holding at most `max_bytes` of media.
pub fn out_queue(max_bytes: usize) -> (OutQueue, OutDrain) {
    let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        OutQueue {
            tx,
            queued: Arc::clone(&queued),
            max_bytes,
        },
        OutDrain { rx, queued },
    )
}

impl OutQueue {
    /// Queues media, within the byte bound.
    pub fn media(&self, bytes: Bytes) -> Result<(), QueueError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let len = bytes.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before + len > self.max_bytes {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return if self.tx.is_closed() {
                Err(QueueError::Closed)
            } else {
                Err(QueueError::Full)
            };
        }
        self.send(bytes, len)
    }

    /// Queues a control answer (small), whatever the byte count.
    pub fn control(&self, bytes: Vec<u8>) -> Result<(), QueueError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let len = bytes.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.send(Bytes::from(bytes), len)
    }

    fn send(&self, bytes: Bytes, len: usize) -> Result<(), QueueError> {
        match self.tx.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => Err(QueueError::Full),
                    mpsc::error::TrySendError::Closed(_) => Err(QueueError::Closed),
                }
            }
        }
    }

    /// Whether the writer is gone (the client left or was too slow).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Waits until the writer is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

impl OutDrain {
    /// The next message to write; `None` once every sender is gone.
    pub async fn next(&mut self) -> Option<Bytes> {
        let bytes = self.rx.recv().await?;
        self.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
        Some(bytes)
    }

    /// Waits for the next message, then takes every message already queued too, up to `max`
    /// in all, into `batch`; false once every sender is gone.
    pub async fn next_batch(&mut self, batch: &mut Vec<Bytes>, max: usize) -> bool {
        let Some(first) = self.next().await else {
            return false;
        };
        batch.push(first);
        while batch.len() < max {
            match self.rx.try_recv() {
                Ok(bytes) => {
                    self.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                    batch.push(bytes);
                }
                Err(_) => break,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_in_bytes_for_media_not_for_control() {
        let (queue, mut drain) = out_queue(100);
        assert_eq!(queue.media(Bytes::from(vec![1; 60])), Ok(()));
        assert_eq!(queue.media(Bytes::from(vec![2; 60])), Err(QueueError::Full));
        assert_eq!(queue.control(vec![3; 60]), Ok(()));
        assert_eq!(drain.next().await.map(|b| b.len()), Some(60));
        assert_eq!(drain.next().await.map(|b| b[0]), Some(3));
        assert_eq!(queue.media(Bytes::from(vec![4; 90])), Ok(()));
        drop(drain);
        assert_eq!(
            queue.media(Bytes::from(vec![5; 1])),
            Err(QueueError::Closed)
        );
        assert!(queue.is_closed());
    }
}
