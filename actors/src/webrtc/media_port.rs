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
//! transport reports goes to its viewer's recipient. Outgoing datagrams are gathered over
//! one turn of the task (every media batch queued by then, for any number of viewers) and
//! leave in `sendmmsg` batches ([`super::udp_batch`]). Sends never block: a datagram the
//! kernel will not take now is dropped, as the network would. Each viewer's next timer sits
//! in one ordered set, so a turn costs what it touches, not the number of viewers.
//!
//! It must not decide anything about media (timestamps, which frames): it carries packets.

use std::collections::{BTreeSet, HashMap};
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
use super::udp_batch::UdpBatch;

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
/// Datagrams gathered before they are sent, at most (more media batches wait for the next
/// turn).
const GATHER_DATAGRAMS: usize = 1024;
/// The socket's send buffer asked for (the kernel caps it at `net.core.wmem_max`): a
/// keyframe to many viewers leaves in one burst.
const SEND_BUFFER_BYTES: usize = 4 << 20;

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
    /// Datagrams sent over UDP, and the system calls that sent them.
    pub udp_datagrams: AtomicU64,
    pub udp_send_calls: AtomicU64,
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
                    batch: UdpBatch::default(),
                    tcp: TcpConnections::new(tcp_tx),
                    counters: task_counters,
                },
                demux: Demux::new(PATHS_PER_VIEWER),
                viewers: HashMap::new(),
                deadlines: BTreeSet::new(),
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

    /// Sends RTCP (sender reports) to viewer `key`.
    pub fn send_rtcp(&self, key: u64, packets: Vec<Box<dyn rtc::rtcp::Packet>>) {
        let _ = self.control.send(Control::Rtcp { key, packets });
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
    /// Its transport's next timer, as entered in `PortTask::deadlines`.
    deadline: Option<Instant>,
}

/// Where packets go out: the UDP socket (in batches) or a viewer's TCP connection.
struct Outlets {
    udp: UdpSocket,
    /// UDP datagrams gathered this turn.
    batch: UdpBatch,
    tcp: TcpConnections,
    counters: Arc<PortCounters>,
}

impl Outlets {
    /// Passes on what `viewer`'s transport reported and queues what it has to send.
    fn flush(&mut self, viewer: &mut Viewer) {
        while let Some(event) = viewer.transport.poll_event() {
            viewer.events.do_send(PortEvent { event });
        }
        self.send_pending(&mut viewer.transport);
    }

    /// Queues what `transport` has to send (UDP for the turn's batch; TCP at once, where a
    /// full connection queue drops and counts it).
    fn send_pending(&mut self, transport: &mut ViewerTransport) {
        while let Some((protocol, to, packet)) = transport.poll_transmit() {
            match protocol {
                Protocol::Udp => self.batch.push(to, packet),
                Protocol::Tcp => {
                    if !self.tcp.send(to, &packet) {
                        self.counters.send_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Sends the turn's UDP datagrams; what the kernel will not take now is counted and
    /// dropped.
    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let done = self.batch.flush(&self.udp);
        let c = &self.counters;
        c.udp_datagrams
            .fetch_add(done.sent as u64, Ordering::Relaxed);
        c.udp_send_calls
            .fetch_add(done.calls as u64, Ordering::Relaxed);
        c.send_failures
            .fetch_add(done.dropped as u64, Ordering::Relaxed);
    }
}

struct PortTask {
    /// The port's first announced address (what its log lines name).
    advertised: SocketAddr,
    out: Outlets,
    demux: Demux<u64>,
    viewers: HashMap<u64, Viewer>,
    /// Every viewer's next timer, soonest first (a viewer at most once).
    deadlines: BTreeSet<(Instant, u64)>,
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
                Some(batch) = media.recv() => {
                    self.media(batch);
                    // Whatever else is queued goes out in the same system calls.
                    while self.out.batch.len() < GATHER_DATAGRAMS {
                        let Ok(batch) = media.try_recv() else { break };
                        self.media(batch);
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => self.timers(),
            }
            self.out.send_batch();
        }
        for viewer in self.viewers.values_mut() {
            viewer.transport.close();
        }
        info!("media port {}: closed", self.advertised);
    }

    /// The soonest viewer timer, or the idle tick (which also closes unnamed TCP
    /// connections).
    fn next_deadline(&self) -> Instant {
        let idle = Instant::now() + IDLE_TICK;
        match self.deadlines.first() {
            Some(&(at, _)) => at.min(idle),
            None => idle,
        }
    }

    /// Enters viewer `key`'s next timer in the ordered set, after anything that may have
    /// changed it.
    fn reschedule(&mut self, key: u64) {
        let Some(viewer) = self.viewers.get_mut(&key) else {
            return;
        };
        let next = viewer.transport.next_timeout();
        if next == viewer.deadline {
            return;
        }
        if let Some(old) = viewer.deadline {
            self.deadlines.remove(&(old, key));
        }
        if let Some(at) = next {
            self.deadlines.insert((at, key));
        }
        viewer.deadline = next;
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
        if let Some(viewer) = self.viewers.get_mut(&key) {
            let now = Instant::now();
            viewer.transport.receive(now, protocol, from, data);
            self.out.flush(viewer);
            self.reschedule(key);
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
                let viewer = Viewer {
                    transport,
                    events,
                    deadline: None,
                };
                self.viewers.insert(key, viewer);
                self.reschedule(key);
            }
            Control::Remove { key } => {
                self.demux.remove_viewer(key);
                if let Some(mut viewer) = self.viewers.remove(&key) {
                    if let Some(at) = viewer.deadline {
                        self.deadlines.remove(&(at, key));
                    }
                    viewer.transport.close();
                    // The close alerts go out; its events are nobody's now.
                    while viewer.transport.poll_event().is_some() {}
                    self.out.send_pending(&mut viewer.transport);
                }
                self.out.tcp.close_viewer(key);
            }
            Control::Rtcp { key, packets } => {
                if let Some(viewer) = self.viewers.get_mut(&key) {
                    viewer.transport.send_rtcp(packets);
                    self.out.flush(viewer);
                    self.reschedule(key);
                }
            }
        }
    }

    fn media(&mut self, batch: Media) {
        let Some(viewer) = self.viewers.get_mut(&batch.key) else {
            return;
        };
        for p in batch.packets {
            let RtpOut {
                track,
                sequence_number,
                timestamp,
                marker,
                payload,
            } = p;
            (viewer.transport).send_rtp(track, sequence_number, timestamp, marker, payload);
            // Taken out at once: the transport's queue would keep the room of its longest
            // burst (a keyframe-cache replay is a GOP's worth of packets) for the viewer's
            // whole life.
            self.out.send_pending(&mut viewer.transport);
        }
        self.out.flush(viewer);
        self.reschedule(batch.key);
    }

    /// Runs the timers that are due, each viewer's once.
    fn timers(&mut self) {
        let now = Instant::now();
        self.out.tcp.close_unbound(now);
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            due.push(key);
        }
        for key in due {
            let Some(viewer) = self.viewers.get_mut(&key) else {
                continue;
            };
            viewer.deadline = None;
            if let Some(event) = viewer.transport.handle_timeout(now) {
                viewer.events.do_send(PortEvent { event });
            }
            self.out.flush(viewer);
            self.reschedule(key);
        }
    }
}
