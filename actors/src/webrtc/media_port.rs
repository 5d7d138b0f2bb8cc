//! The media port: one UDP socket that every WebRTC viewer's ICE, DTLS and SRTP go through.
//!
//! One task owns the socket, the port's demultiplexer (`pullcast::media_port::Demux`) and
//! every viewer's [`ViewerTransport`]. A datagram goes to the viewer its ICE fragment names
//! (a Binding request whose integrity that viewer's password checks binds the sender's
//! address) or to the viewer its address is bound to; anything else is dropped. Viewers are
//! added and removed over a control channel that never drops; their RTP arrives over a
//! bounded media channel (full: the batch is dropped and counted, never waited for). What a
//! transport reports goes to its viewer's recipient. Sends never block: a datagram the
//! kernel will not take now is dropped, as the network would.
//!
//! It must not decide anything about media (timestamps, which frames): it carries packets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, info, warn};
use pullcast::media_port::{Demux, Route};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::transport::{OutgoingTrack, TransportEvent, ViewerTransport};

/// Bound addresses kept per viewer (a browser checks from each of its candidates).
const PATHS_PER_VIEWER: usize = 8;
/// Media batches queued for the port task before new ones are dropped.
const MEDIA_QUEUE: usize = 4096;
/// The largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// How long the task sleeps when no transport has a timer.
const IDLE_TICK: Duration = Duration::from_millis(500);

/// What a viewer hears from the port.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct PortEvent {
    pub event: TransportEvent,
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

enum Control {
    Add {
        key: u64,
        transport: Box<ViewerTransport>,
        events: Recipient<PortEvent>,
    },
    Remove {
        key: u64,
    },
    Rtcp {
        key: u64,
        track: OutgoingTrack,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    },
}

struct Media {
    key: u64,
    packets: Vec<RtpOut>,
}

/// Counters of what the port did (read by tests and benches).
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Datagrams nobody owned, or whose claim failed its integrity check.
    pub dropped_datagrams: AtomicU64,
    /// Media batches dropped because the port task was behind.
    pub dropped_batches: AtomicU64,
    /// Datagrams the kernel would not take at once.
    pub send_failures: AtomicU64,
}

/// A handle on a running port: cheap to clone.
#[derive(Clone)]
pub struct MediaPort {
    control: mpsc::UnboundedSender<Control>,
    media: mpsc::Sender<Media>,
    /// The addresses viewers send to (every answer's candidates), most preferred first.
    announced: Arc<Vec<SocketAddr>>,
    counters: Arc<PortCounters>,
}

impl MediaPort {
    /// Binds `bind` and starts the port's task on `arbiter`; every answer announces
    /// `announced` (a port 0 there stands for the bound port). Datagrams are handed to the
    /// transports as received on the first announced address: with one socket the
    /// destination a browser chose is not known, and the transport only needs an address it
    /// announced (replies leave from the address the kernel routes them from).
    pub fn start(
        bind: SocketAddr,
        announced: Vec<SocketAddr>,
        arbiter: &ArbiterHandle,
    ) -> std::io::Result<Self> {
        let socket = std::net::UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        let bound = socket.local_addr()?.port();
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
        let (control, control_rx) = mpsc::unbounded_channel();
        let (media, media_rx) = mpsc::channel(MEDIA_QUEUE);
        let counters = Arc::new(PortCounters::default());
        let task = PortTask {
            advertised,
            demux: Demux::new(PATHS_PER_VIEWER),
            viewers: HashMap::new(),
            counters: counters.clone(),
        };
        arbiter.spawn(async move {
            match UdpSocket::from_std(socket) {
                Ok(socket) => task.run(socket, control_rx, media_rx).await,
                Err(e) => warn!("media port {advertised}: cannot use its socket: {e}"),
            }
        });
        info!("media port: every WebRTC viewer on {bind}, announced as {announced:?}");
        Ok(Self {
            control,
            media,
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

    /// Hands viewer `key`'s transport to the port; its events go to `events`.
    pub fn add(&self, key: u64, transport: ViewerTransport, events: Recipient<PortEvent>) {
        let transport = Box::new(transport);
        let _ = self.control.send(Control::Add {
            key,
            transport,
            events,
        });
    }

    /// Closes viewer `key`'s transport and forgets it.
    pub fn remove(&self, key: u64) {
        let _ = self.control.send(Control::Remove { key });
    }

    /// Sends RTCP (sender reports) on viewer `key`'s `track`.
    pub fn send_rtcp(
        &self,
        key: u64,
        track: OutgoingTrack,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) {
        let _ = self.control.send(Control::Rtcp {
            key,
            track,
            packets,
        });
    }

    /// Queues `packets` for viewer `key`; false when the port is behind (nothing queued).
    pub fn send(&self, key: u64, packets: Vec<RtpOut>) -> bool {
        if self.media.try_send(Media { key, packets }).is_ok() {
            return true;
        }
        self.counters
            .dropped_batches
            .fetch_add(1, Ordering::Relaxed);
        false
    }
}

struct Viewer {
    transport: Box<ViewerTransport>,
    events: Recipient<PortEvent>,
}

struct PortTask {
    advertised: SocketAddr,
    demux: Demux<u64>,
    viewers: HashMap<u64, Viewer>,
    counters: Arc<PortCounters>,
}

impl PortTask {
    async fn run(
        mut self,
        socket: UdpSocket,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut media: mpsc::Receiver<Media>,
    ) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                received = socket.recv_from(&mut buffer) => match received {
                    Ok((len, from)) => {
                        if let Some(data) = buffer.get(..len) {
                            self.received(&socket, from, data);
                        }
                    }
                    Err(e) => debug!("media port {}: receive: {e}", self.advertised),
                },
                command = control.recv() => match command {
                    Some(command) => self.control(&socket, command),
                    None => break,
                },
                Some(batch) = media.recv() => self.media(&socket, batch),
                () = tokio::time::sleep_until(deadline.into()) => self.timers(&socket),
            }
        }
        for viewer in self.viewers.values_mut() {
            viewer.transport.close();
        }
        info!("media port {}: closed", self.advertised);
    }

    fn next_deadline(&mut self) -> Instant {
        let mut next = Instant::now() + IDLE_TICK;
        for viewer in self.viewers.values_mut() {
            if let Some(at) = viewer.transport.next_timeout() {
                next = next.min(at);
            }
        }
        next
    }

    fn received(&mut self, socket: &UdpSocket, from: SocketAddr, data: &[u8]) {
        let key = match self.demux.route(data, from) {
            Route::Viewer(key) => key,
            Route::Claims(key) => {
                let trusted = self
                    .viewers
                    .get(&key)
                    .is_some_and(|v| v.transport.authenticates(data));
                if !trusted || !self.demux.bind_path(from, key) {
                    self.counters
                        .dropped_datagrams
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
                key
            }
            Route::Unknown => {
                self.counters
                    .dropped_datagrams
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let advertised = self.advertised;
        if let Some(viewer) = self.viewers.get_mut(&key) {
            viewer
                .transport
                .receive(Instant::now(), advertised, from, data);
            flush(socket, viewer, &self.counters);
        }
    }

    fn control(&mut self, socket: &UdpSocket, command: Control) {
        match command {
            Control::Add {
                key,
                transport,
                events,
            } => {
                if self.demux.add_viewer(key, transport.ufrag()).is_err() {
                    let reason = "its ICE fragment is already in use".to_string();
                    events.do_send(PortEvent {
                        event: TransportEvent::Failed(reason),
                    });
                    return;
                }
                self.viewers.insert(key, Viewer { transport, events });
            }
            Control::Remove { key } => {
                self.demux.remove_viewer(key);
                if let Some(mut viewer) = self.viewers.remove(&key) {
                    viewer.transport.close();
                    // The close alerts go out; its events are nobody's now.
                    while viewer.transport.poll_event().is_some() {}
                    while let Some((to, datagram)) = viewer.transport.poll_transmit() {
                        let _ = socket.try_send_to(&datagram, to);
                    }
                }
            }
            Control::Rtcp {
                key,
                track,
                packets,
            } => {
                if let Some(viewer) = self.viewers.get_mut(&key) {
                    viewer.transport.send_rtcp(Instant::now(), track, packets);
                    flush(socket, viewer, &self.counters);
                }
            }
        }
    }

    fn media(&mut self, socket: &UdpSocket, batch: Media) {
        let Some(viewer) = self.viewers.get_mut(&batch.key) else {
            return;
        };
        let now = Instant::now();
        for p in batch.packets {
            let RtpOut {
                track,
                sequence_number,
                timestamp,
                marker,
                payload,
            } = p;
            (viewer.transport).send_rtp(now, track, sequence_number, timestamp, marker, payload);
        }
        flush(socket, viewer, &self.counters);
    }

    fn timers(&mut self, socket: &UdpSocket) {
        let now = Instant::now();
        for viewer in self.viewers.values_mut() {
            let due = viewer.transport.next_timeout().is_some_and(|at| at <= now);
            if due {
                if let Some(event) = viewer.transport.handle_timeout(now) {
                    viewer.events.do_send(PortEvent { event });
                }
                flush(socket, viewer, &self.counters);
            }
        }
    }
}

/// Passes on what `viewer`'s transport reported and sends what it has to send.
fn flush(socket: &UdpSocket, viewer: &mut Viewer, counters: &PortCounters) {
    while let Some(event) = viewer.transport.poll_event() {
        viewer.events.do_send(PortEvent { event });
    }
    while let Some((to, datagram)) = viewer.transport.poll_transmit() {
        if socket.try_send_to(&datagram, to).is_err() {
            counters.send_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}
