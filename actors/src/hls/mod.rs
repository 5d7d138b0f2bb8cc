//! LL-HLS streams being served: the [`HlsDirectory`] of one [`HlsEntry`] per capture that
//! HLS players asked for, each fed by an [`HlsMuxerActor`] (see `muxer.rs`).
//!
//! An entry is made by the first playlist request of a capture and removed when its muxer
//! stops (no HLS request for `hls.idle_timeout_ms`, or the capture ended). Requests never
//! talk to the muxer: it publishes each new [`HlsView`] on a watch channel, and a request
//! that must wait (blocking reload, preload hint) waits on that channel, so 100 players
//! cost the muxer nothing but one snapshot per part. Nothing here cuts media or writes
//! playlists (that is `pullcast::hls`).

mod muxer;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use pullcast::config::HlsSettings;
use pullcast::hls::{HlsOptions, HlsView};
use tokio::sync::watch;
use uuid::Uuid;

use crate::messages::CaptureHandle;
pub use muxer::HlsMuxerActor;

/// A player counts as watching for this long after its last request.
pub const CLIENT_SEEN_FOR: Duration = Duration::from_secs(10);
/// How long an allowed caller's media requests skip the Gate's hook.
pub const ALLOWED_FOR: Duration = Duration::from_secs(10);
/// Most distinct players one entry remembers (the rest are not counted).
const MAX_CLIENTS: usize = 16_384;

/// One capture served over HLS.
pub struct HlsEntry {
    pub capture: CaptureHandle,
    /// The latest snapshot; `None` until the muxer has the codecs.
    pub view: watch::Receiver<Option<Arc<HlsView>>>,
    /// Requests waiting on `view` now.
    pub waiting: AtomicUsize,
    /// When the last request came, in ms since the directory started.
    last_request_ms: AtomicU64,
    /// Players seen lately: (address, user agent) hashed → last request.
    clients: Mutex<HashMap<u64, Instant>>,
    /// Callers the Gate (its hook) allowed lately, hashed → when.
    allowed: Mutex<HashMap<u64, Instant>>,
}

impl HlsEntry {
    /// Notes a request of this player (for the idle timer and the viewer count).
    pub fn seen(&self, directory: &HlsDirectory, address: IpAddr, user_agent: &str) {
        self.last_request_ms
            .store(directory.elapsed_ms(), Ordering::Relaxed);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        address.hash(&mut hasher);
        user_agent.hash(&mut hasher);
        let key = hasher.finish();
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key) {
            clients.retain(|_, at| now.duration_since(*at) < CLIENT_SEEN_FOR);
            if clients.len() >= MAX_CLIENTS {
                return;
            }
        }
        clients.insert(key, now);
    }

    /// Distinct players that made a request within [`CLIENT_SEEN_FOR`].
    pub fn players(&self) -> usize {
        let now = Instant::now();
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .values()
            .filter(|at| now.duration_since(**at) < CLIENT_SEEN_FOR)
            .count()
    }

    /// Whether the caller hashed to `key` was allowed to play this stream within
    /// [`ALLOWED_FOR`] (so a hook is not asked for every part).
    pub fn recently_allowed(&self, key: u64) -> bool {
        let allowed = self.allowed.lock().unwrap_or_else(|p| p.into_inner());
        allowed
            .get(&key)
            .is_some_and(|at| at.elapsed() < ALLOWED_FOR)
    }

    /// Remembers that the caller hashed to `key` was allowed.
    pub fn remember_allowed(&self, key: u64) {
        let now = Instant::now();
        let mut allowed = self.allowed.lock().unwrap_or_else(|p| p.into_inner());
        if allowed.len() >= MAX_CLIENTS {
            allowed.retain(|_, at| now.duration_since(*at) < ALLOWED_FOR);
            if allowed.len() >= MAX_CLIENTS {
                return;
            }
        }
        allowed.insert(key, now);
    }

    /// Whether it answers to `name` (its local stream name or its uri).
    pub fn is_named(&self, name: &str) -> bool {
        self.capture.local_stream_name == name || self.capture.uri == name
    }
}

/// Every capture served over HLS (cloned into each HTTP worker).
#[derive(Clone)]
pub struct HlsDirectory {
    entries: Arc<Mutex<HashMap<Uuid, Arc<HlsEntry>>>>,
    pub settings: HlsSettings,
    /// Frames a muxer's mailbox may hold (`capture.subscriber_queue_frames`).
    mailbox_frames: usize,
    started: Instant,
}

impl HlsDirectory {
    pub fn new(settings: &HlsSettings, mailbox_frames: usize) -> Self {
        Self {
            entries: Arc::default(),
            settings: settings.clone(),
            mailbox_frames,
            started: Instant::now(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How the muxers cut and bound their streams.
    pub fn options(&self) -> HlsOptions {
        let s = &self.settings;
        HlsOptions {
            part_ms: i64::from(s.part_ms.max(1)),
            segment_min_ms: i64::from(s.segment_min_ms),
            segment_max_ms: i64::from(s.segment_max_ms),
            segment_count: s.segment_count.max(1),
            max_window_bytes: s.max_window_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<HlsEntry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `capture`, its muxer started (on this thread's arbiter) if it had none.
    pub fn ensure(&self, capture: &CaptureHandle) -> Arc<HlsEntry> {
        let mut entries = self.lock();
        if let Some(entry) = entries.get(&capture.id) {
            return Arc::clone(entry);
        }
        let (publish, view) = watch::channel(None);
        let entry = Arc::new(HlsEntry {
            capture: capture.clone(),
            view,
            waiting: AtomicUsize::new(0),
            last_request_ms: AtomicU64::new(self.elapsed_ms()),
            clients: Mutex::default(),
            allowed: Mutex::default(),
        });
        entries.insert(capture.id, Arc::clone(&entry));
        drop(entries);
        HlsMuxerActor::new(
            self.clone(),
            Arc::clone(&entry),
            publish,
            self.mailbox_frames,
        )
        .start();
        entry
    }

    /// The entry serving `name`, if any.
    pub fn find(&self, name: &str) -> Option<Arc<HlsEntry>> {
        self.lock().values().find(|e| e.is_named(name)).cloned()
    }

    /// How long `entry` has gone without a request.
    pub fn idle_for(&self, entry: &HlsEntry) -> Duration {
        let last = entry.last_request_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.elapsed_ms().saturating_sub(last))
    }

    /// Forgets `entry` (its muxer stopped); a later request starts a new one.
    fn remove(&self, entry: &Arc<HlsEntry>) {
        let mut entries = self.lock();
        if entries
            .get(&entry.capture.id)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            entries.remove(&entry.capture.id);
        }
    }

    /// Streams served over HLS now.
    pub fn streams(&self) -> usize {
        self.lock().len()
    }

    /// Requests waiting (blocking reloads, preload hints) over every stream.
    pub fn waiting(&self) -> usize {
        self.lock()
            .values()
            .map(|e| e.waiting.load(Ordering::Relaxed))
            .sum()
    }
}
