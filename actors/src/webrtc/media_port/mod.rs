//! The media port: one UDP socket that every WebRTC viewer's ICE, DTLS and SRTP go through,
//! and its TCP twin on the same port number for browsers whose UDP is blocked (ICE-TCP),
//! served by one receiver and one worker per core.
//!
//! - The [`receiver`] reads the socket, accepts and reads the TCP connections, and
//!   demultiplexes (`pullcast::media_port::Demux`): a packet goes to the viewer its address
//!   is bound to, or — a Binding request whose integrity that viewer's credentials check —
//!   binds its sender's address to the viewer it names; anything else is dropped. It hands
//!   each packet to the worker that owns the viewer. It sends nothing over UDP; it writes the
//!   TCP frames the workers give it.
//! - Each [`worker`] owns its share of the viewers' [`ViewerTransport`]s and
//!   [`MediaPlane`]s (a viewer's key picks the worker), their timers, and a handle on the
//!   same socket it sends on in `sendmmsg` batches. A capture sends each frame to a worker
//!   once for all of that worker's viewers ([`MediaPort::send_frame`]), so stamping,
//!   protecting and sending run on every core at once, while the port stays one address.
//!
//! Viewers are added and removed over control channels that never drop; media and received
//! packets go over bounded channels (full: dropped and counted, never waited for). What a
//! transport reports goes to its viewer's recipient. It must not decide anything about media
//! (timestamps, which frames): it carries packets.

mod receiver;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, info};
use tokio::sync::mpsc;

use pullcast::media::MediaFrame;

use super::media_plane::MediaPlane;
use super::transport::{OutgoingTrack, TransportEvent, ViewerTransport};
use crate::stream::budget::Charge;
use receiver::{PortReceiver, ReceiverControl};
use worker::{PortMedia, PortWorker, WorkerControl};

/// Media messages (a frame for some of its viewers, a replay for one) queued for one worker
/// before new ones are dropped; the capture's byte budget bounds them first.
const MEDIA_QUEUE: usize = 4096;
/// Received packets queued for one worker before new ones are dropped.
const INBOUND_QUEUE: usize = 4096;
/// TCP packets the workers queue for the receiver before new ones are dropped.
const TCP_OUT_QUEUE: usize = 4096;
/// The socket's send buffer asked for (the kernel caps it at `net.core.wmem_max`): a
/// keyframe to many viewers leaves in one burst.
const SEND_BUFFER_BYTES: usize = 4 << 20;
/// The most workers a port runs.
pub const MAX_WORKERS: usize = 64;

/// What a viewer hears from the port.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum PortEvent {
    /// What its transport reported (connected, failed, closed, a keyframe request).
    Transport(TransportEvent),
    /// Its first packets that make it play have left (video, or audio without video).
    Playing,
}

/// One RTP packet to send: the payload (shared) and this viewer's header fields.
#[derive(Debug, Clone)]
pub struct RtpOut {
    pub track: OutgoingTrack,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// Counters of what the port did (read by tests and benches).
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Datagrams nobody owned, or whose claim failed its integrity check.
    pub dropped_datagrams: AtomicU64,
    /// Received packets dropped because their viewer's worker was behind.
    pub dropped_inbound: AtomicU64,
    /// Media messages dropped because their worker was behind.
    pub dropped_batches: AtomicU64,
    /// Datagrams the kernel would not take at once.
    pub send_failures: AtomicU64,
    /// Datagrams sent over UDP, and the system calls that sent them.
    pub udp_datagrams: AtomicU64,
    pub udp_send_calls: AtomicU64,
}

/// One worker's inboxes.
struct WorkerInbox {
    control: mpsc::UnboundedSender<WorkerControl>,
    media: mpsc::Sender<PortMedia>,
}

/// Why media did not reach a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    /// The worker is behind: its queue is full.
    Full,
    /// The port has stopped.
    Closed,
}

/// A handle on a running port: cheap to clone.
#[derive(Clone)]
pub struct MediaPort {
    receiver: mpsc::UnboundedSender<ReceiverControl>,
    workers: Arc<Vec<WorkerInbox>>,
    /// The addresses viewers send to (every answer's candidates), most preferred first.
    announced: Arc<Vec<SocketAddr>>,
    counters: Arc<PortCounters>,
}

impl MediaPort {
    /// Binds `bind` (UDP, and TCP on the same port number) and starts the receiver and
    /// `workers` workers (at least one, at most [`MAX_WORKERS`]), each on a thread of its
    /// own; every answer announces `announced` (a port 0 there stands for the bound port).
    /// Packets are handed to the transports as received on the first announced address: with
    /// one socket the destination a browser chose is not known, and the transport only needs
    /// an address it announced (replies leave from the address the kernel routes them from).
    pub fn start(
        bind: SocketAddr,
        announced: Vec<SocketAddr>,
        workers: usize,
    ) -> std::io::Result<Self> {
        let socket = std::net::UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        if let Err(e) = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::SndBuf,
            &SEND_BUFFER_BYTES,
        ) {
            debug!("media port {bind}: cannot enlarge the send buffer: {e}");
        }
        let bound = socket.local_addr()?.port();
        let listener = std::net::TcpListener::bind(SocketAddr::new(bind.ip(), bound))?;
        listener.set_nonblocking(true)?;
        let announced: Vec<SocketAddr> = announced
            .into_iter()
            .map(|a| match a.port() {
                0 => SocketAddr::new(a.ip(), bound),
                _ => a,
            })
            .collect();
        let Some(&advertised) = announced.first() else {
            return Err(std::io::Error::other("no address to announce"));
        };
        let counters = Arc::new(PortCounters::default());
        let (tcp_out, tcp_out_rx) = mpsc::channel(TCP_OUT_QUEUE);
        let count = workers.clamp(1, MAX_WORKERS);
        let mut inboxes = Vec::with_capacity(count);
        let mut inbound = Vec::with_capacity(count);
        for index in 0..count {
            let (control, control_rx) = mpsc::unbounded_channel();
            let (media, media_rx) = mpsc::channel(MEDIA_QUEUE);
            let (to_worker, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
            let worker = PortWorker::new(
                index,
                socket.try_clone()?,
                tcp_out.clone(),
                Arc::clone(&counters),
            );
            Arbiter::new().spawn(async move {
                worker.run(control_rx, inbound_rx, media_rx).await;
                Arbiter::current().stop();
            });
            inboxes.push(WorkerInbox { control, media });
            inbound.push(to_worker);
        }
        let (receiver, receiver_rx) = mpsc::unbounded_channel();
        let port_receiver = PortReceiver::new(advertised, inbound, Arc::clone(&counters));
        Arbiter::new().spawn(async move {
            port_receiver
                .run(socket, listener, receiver_rx, tcp_out_rx)
                .await;
            Arbiter::current().stop();
        });
        info!(
            "media port: every WebRTC viewer on {bind}, announced as {announced:?}, {count} worker(s)"
        );
        Ok(Self {
            receiver,
            workers: Arc::new(inboxes),
            announced: Arc::new(announced),
            counters,
        })
    }

    /// The addresses every answer's candidates name, most preferred first.
    pub fn announced(&self) -> &[SocketAddr] {
        &self.announced
    }

    /// What the port has counted.
    pub fn counters(&self) -> &PortCounters {
        &self.counters
    }

    /// How many workers send the port's packets.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The worker that owns viewer `key`.
    pub fn worker_of(&self, key: u64) -> usize {
        (key % self.workers.len() as u64) as usize
    }

    /// Whether `other` is a handle on the same port.
    pub fn same_port(&self, other: &MediaPort) -> bool {
        Arc::ptr_eq(&self.workers, &other.workers)
    }

    /// Hands viewer `key`'s transport and media plane to its worker (its credentials to the
    /// receiver); its events go to `events`.
    pub fn add(
        &self,
        key: u64,
        transport: ViewerTransport,
        plane: MediaPlane,
        events: Recipient<PortEvent>,
    ) {
        let credentials = transport.credentials();
        let worker = self.worker_of(key);
        let _ = self.workers[worker].control.send(WorkerControl::Add {
            key,
            transport: Box::new(transport),
            plane: Box::new(plane),
            events: events.clone(),
        });
        let _ = self.receiver.send(ReceiverControl::Register {
            key,
            credentials,
            worker,
            events,
        });
    }

    /// Closes viewer `key`'s transport and forgets it.
    pub fn remove(&self, key: u64) {
        let _ = self.receiver.send(ReceiverControl::Unregister { key });
        let worker = &self.workers[self.worker_of(key)];
        let _ = worker.control.send(WorkerControl::Remove { key });
    }

    /// Queues the codecs of viewer `key`'s capture, in line with its frames (a worker that
    /// is behind loses them: the capture then holds the viewer's video until a keyframe).
    pub fn send_codecs(&self, key: u64, has_video: bool) -> Result<(), NotQueued> {
        let message = PortMedia::Codecs {
            viewer: key,
            has_video,
        };
        self.queue(self.worker_of(key), message)
    }

    /// Queues one live `frame` for `viewers`, all of them worker `worker`'s.
    pub fn send_frame(
        &self,
        worker: usize,
        frame: MediaFrame,
        viewers: Vec<u64>,
        charge: Charge,
    ) -> Result<(), NotQueued> {
        let message = PortMedia::Frame {
            frame,
            viewers,
            charge,
        };
        self.queue(worker, message)
    }

    /// Queues the keyframe cache's `frames` for viewer `viewer`.
    pub fn send_replay(
        &self,
        viewer: u64,
        frames: Vec<MediaFrame>,
        charge: Charge,
    ) -> Result<(), NotQueued> {
        let message = PortMedia::Replay {
            viewer,
            frames,
            charge,
        };
        self.queue(self.worker_of(viewer), message)
    }

    fn queue(&self, worker: usize, message: PortMedia) -> Result<(), NotQueued> {
        let Some(inbox) = self.workers.get(worker) else {
            return Err(NotQueued::Closed);
        };
        match inbox.media.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters
                    .dropped_batches
                    .fetch_add(1, Ordering::Relaxed);
                Err(NotQueued::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotQueued::Closed),
        }
    }
}
