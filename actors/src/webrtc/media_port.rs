//! The media port: one UDP socket that every WebRTC viewer's ICE, DTLS and SRTP go through,
//! and its TCP twin on the same port number for browsers whose UDP is blocked (ICE-TCP).
//!
//! One task owns the socket, the listener, the port's demultiplexer
//! (`pullcast::media_port::Demux`) and every viewer's [`ViewerTransport`]. A datagram goes to
//! the viewer its ICE fragment names (a Binding request whose integrity that viewer's
//! password checks binds the sender's address) or to the viewer its address is bound to;
//! anything else is dropped. A TCP connection is bound to a viewer the same way, by its
//! first valid Binding request ([`super::tcp_conns`] reads and writes its frames). Viewers are
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
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::tcp_conns::{TcpConnections, TcpIn};
use super::transport::{OutgoingTrack, Protocol, TransportEvent, ViewerTransport};

/// Bound addresses kept per viewer (a browser checks from each of its candidates).
const PATHS_PER_VIEWER: usize = 8;
/// Media batches queued for the port task before new ones are dropped.
const MEDIA_QUEUE: usize = 4096;
/// The largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// How long the task sleeps when no transport has a timer.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// Packets from TCP readers queued for the port task (a reader waits when it is full).
const TCP_INBOUND_QUEUE: usize = 1024;

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
        let (control, control_rx) = mpsc::unbounded_channel();
        let (media, media_rx) = mpsc::channel(MEDIA_QUEUE);
        let counters = Arc::new(PortCounters::default());
        let task_counters = Arc::clone(&counters);
        arbiter.spawn(async move {
            let (tcp_tx, tcp_rx) = mpsc::channel(TCP_INBOUND_QUEUE);
            let sockets = UdpSocket::from_std(socket)
                .and_then(|udp| Ok((udp, TcpListener::from_std(listener)?)));
            let (udp, listener) = match sockets {
                Ok(sockets) => sockets,
                Err(e) => {
                    warn!("media port {advertised}: cannot use its sockets: {e}");
                    return;
                }
            };
            let task = PortTask {
                advertised,
                out: Outlets {
                    udp,
                    tcp: TcpConnections::new(tcp_tx),
                    counters: task_counters,
                },
                demux: Demux::new(PATHS_PER_VIEWER),
                viewers: HashMap::new(),
            };
            task.run(listener, tcp_rx, control_rx, media_rx).await;
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

/// Where packets go out: the UDP socket or a viewer's TCP connection.
struct Outlets {
    udp: UdpSocket,
    tcp: TcpConnections,
    counters: Arc<PortCounters>,
}

impl Outlets {
    /// Passes on what `viewer`'s transport reported and sends what it has to send.
    fn flush(&self, viewer: &mut Viewer) {
        while let Some(event) = viewer.transport.poll_event() {
            viewer.events.do_send(PortEvent { event });
        }
        self.send_pending(&mut viewer.transport);
    }

    /// Sends what `transport` has to send; what the kernel or a TCP queue will not take
    /// now is counted and dropped.
    fn send_pending(&self, transport: &mut ViewerTransport) {
        while let Some((protocol, to, packet)) = transport.poll_transmit() {
            let sent = match protocol {
                Protocol::Udp => self.udp.try_send_to(&packet, to).is_ok(),
                Protocol::Tcp => self.tcp.send(to, &packet),
            };
            if !sent {
                self.counters.send_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct PortTask {
    /// The address transports are told packets arrive on (UDP and TCP alike).
    advertised: SocketAddr,
    out: Outlets,
    demux: Demux<u64>,
    viewers: HashMap<u64, Viewer>,
}

impl PortTask {
    async fn run(
        mut self,
        listener: TcpListener,
        mut tcp_in: mpsc::Receiver<TcpIn>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut media: mpsc::Receiver<Media>,
    ) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                received = self.out.udp.recv_from(&mut buffer) => match received {
                    Ok((len, from)) => {
                        if let Some(data) = buffer.get(..len) {
                            self.received(from, data);
                        }
                    }
                    Err(e) => debug!("media port {}: receive: {e}", self.advertised),
                },
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.out.tcp.accept(stream, peer),
                    Err(e) => debug!("media port {}: accept: {e}", self.advertised),
                },
                Some(TcpIn { conn, packet }) = tcp_in.recv() => match packet {
                    Some(packet) => self.received_over_tcp(conn, &packet),
                    None => self.out.tcp.close(conn),
                },
                command = control.recv() => match command {
                    Some(command) => self.control(command),
                    None => break,
                },
                Some(batch) = media.recv() => self.media(batch),
                () = tokio::time::sleep_until(deadline.into()) => self.timers(),
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

    /// The viewer `data` from `from` belongs to, binding `from` when it proves it.
    fn owner(&mut self, data: &[u8], from: SocketAddr) -> Option<u64> {
        match self.demux.route(data, from) {
            Route::Viewer(key) => Some(key),
            Route::Claims(key) => {
                let trusted = self
                    .viewers
                    .get(&key)
                    .is_some_and(|v| v.transport.authenticates(data));
                (trusted && self.demux.bind_path(from, key)).then_some(key)
            }
            Route::Unknown => None,
        }
    }

    fn received(&mut self, from: SocketAddr, data: &[u8]) {
        let Some(key) = self.owner(data, from) else {
            self.out
                .counters
                .dropped_datagrams
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.deliver(key, Protocol::Udp, from, data);
    }

    /// A packet on TCP connection `conn`: its viewer's, once its first Binding request with
    /// that viewer's integrity has named it.
    fn received_over_tcp(&mut self, conn: u64, packet: &[u8]) {
        let Some((peer, bound)) = self.out.tcp.get(conn) else {
            return;
        };
        let key = match bound {
            Some(key) => key,
            None => {
                let claimed = match self.demux.route(packet, peer) {
                    Route::Claims(key) | Route::Viewer(key) => Some(key),
                    Route::Unknown => None,
                };
                let trusted = claimed.filter(|key| {
                    let stun = pullcast::media_port::binding_request_username(packet).is_some();
                    stun && self
                        .viewers
                        .get(key)
                        .is_some_and(|v| v.transport.authenticates(packet))
                });
                let Some(key) = trusted else {
                    self.out
                        .counters
                        .dropped_datagrams
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                };
                self.out.tcp.bind(conn, key);
                key
            }
        };
        self.deliver(key, Protocol::Tcp, peer, packet);
    }

    fn deliver(&mut self, key: u64, protocol: Protocol, from: SocketAddr, data: &[u8]) {
        let advertised = self.advertised;
        if let Some(viewer) = self.viewers.get_mut(&key) {
            let now = Instant::now();
            viewer
                .transport
                .receive(now, protocol, advertised, from, data);
            self.out.flush(viewer);
        }
    }

    fn control(&mut self, command: Control) {
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
                    self.out.send_pending(&mut viewer.transport);
                }
                self.out.tcp.close_viewer(key);
            }
            Control::Rtcp {
                key,
                track,
                packets,
            } => {
                if let Some(viewer) = self.viewers.get_mut(&key) {
                    viewer.transport.send_rtcp(Instant::now(), track, packets);
                    self.out.flush(viewer);
                }
            }
        }
    }

    fn media(&mut self, batch: Media) {
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
        self.out.flush(viewer);
    }

    fn timers(&mut self) {
        let now = Instant::now();
        self.out.tcp.close_unbound(now);
        for viewer in self.viewers.values_mut() {
            let due = viewer.transport.next_timeout().is_some_and(|at| at <= now);
            if due {
                if let Some(event) = viewer.transport.handle_timeout(now) {
                    viewer.events.do_send(PortEvent { event });
                }
                self.out.flush(viewer);
            }
        }
    }
}
