//! The port's receiver: everything that arrives on the media port, routed to the worker that
//! owns its viewer.
//!
//! It reads the UDP socket, accepts the ICE-TCP connections and reads their frames
//! ([`crate::webrtc::tcp_conns`]), and keeps the port's demultiplexer
//! (`pullcast::media_port::Demux`) with every viewer's ICE credentials: a packet from an
//! address bound to a viewer is that viewer's; a Binding request naming a viewer's fragment
//! binds its sender's address (or TCP connection) only when that viewer's password checks its
//! integrity; anything else is dropped and counted. A routed packet goes to its viewer's
//! worker over a bounded channel (a worker that is behind loses it, counted). It also
//! writes the TCP packets the workers send. It must not hold a transport or send UDP:
//! the workers do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use log::{debug, info, warn};
use pullcast::media_port::{binding_request_username, Demux, Route};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::worker::Inbound;
use super::{PortCounters, PortEvent};
use crate::webrtc::tcp_conns::{TcpConnections, TcpIn};
use crate::webrtc::transport::{CheckCredentials, Protocol, TransportEvent};

/// Bound addresses kept per viewer (a browser checks from each of its candidates).
const PATHS_PER_VIEWER: usize = 8;
/// The largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// How often connections that never named a viewer are looked for and closed.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// Packets from TCP readers queued for the receiver (a reader waits when it is full).
const TCP_INBOUND_QUEUE: usize = 1024;

/// What the receiver is told about the viewers (never dropped).
pub enum ReceiverControl {
    /// Viewer `key`'s claims are checked with `credentials`; its packets go to worker
    /// `worker`. A fragment already in use fails the viewer (told to `events`).
    Register {
        key: u64,
        credentials: CheckCredentials,
        worker: usize,
        events: Recipient<PortEvent>,
    },
    /// Viewer `key` is gone: its addresses and TCP connections with it.
    Unregister { key: u64 },
}

/// A packet a worker sends over the TCP connection from `to`.
pub struct TcpOut {
    pub to: SocketAddr,
    pub packet: BytesMut,
}

/// A registered viewer, as the receiver knows it.
struct Registered {
    credentials: CheckCredentials,
    worker: usize,
}

/// The receiver, before it runs.
pub struct PortReceiver {
    /// The port's first announced address (what its log lines name).
    advertised: SocketAddr,
    /// Each worker's inbox of routed packets.
    workers: Vec<mpsc::Sender<Inbound>>,
    counters: Arc<PortCounters>,
}

impl PortReceiver {
    pub fn new(
        advertised: SocketAddr,
        workers: Vec<mpsc::Sender<Inbound>>,
        counters: Arc<PortCounters>,
    ) -> Self {
        Self {
            advertised,
            workers,
            counters,
        }
    }

    /// Receives until the port's handles are gone; must run inside the runtime of its own
    /// thread. `udp` is registered for reading only: the workers' sends free room in its
    /// send buffer all the time, and that must not wake this thread.
    pub async fn run(
        self,
        udp: std::net::UdpSocket,
        listener: std::net::TcpListener,
        control: mpsc::UnboundedReceiver<ReceiverControl>,
        tcp_out: mpsc::Receiver<TcpOut>,
    ) {
        // `with_interest` is deprecated only because a type could hand out another fd later;
        // a std socket keeps its one fd (the replacement is `unsafe`, which this crate
        // forbids).
        #[allow(deprecated)]
        let udp = AsyncFd::with_interest(udp, Interest::READABLE);
        let sockets = udp.and_then(|udp| Ok((udp, TcpListener::from_std(listener)?)));
        let (udp, listener) = match sockets {
            Ok(sockets) => sockets,
            Err(e) => {
                warn!(
                    "media port {}: cannot use its sockets: {e}",
                    self.advertised
                );
                return;
            }
        };
        let (tcp_tx, tcp_in) = mpsc::channel(TCP_INBOUND_QUEUE);
        let running = Running {
            advertised: self.advertised,
            workers: self.workers,
            counters: self.counters,
            tcp: TcpConnections::new(tcp_tx),
            demux: Demux::new(PATHS_PER_VIEWER),
            viewers: HashMap::new(),
        };
        running.run(udp, listener, tcp_in, control, tcp_out).await;
    }
}

struct Running {
    advertised: SocketAddr,
    workers: Vec<mpsc::Sender<Inbound>>,
    counters: Arc<PortCounters>,
    tcp: TcpConnections,
    demux: Demux<u64>,
    viewers: HashMap<u64, Registered>,
}

impl Running {
    async fn run(
        mut self,
        udp: AsyncFd<std::net::UdpSocket>,
        listener: TcpListener,
        mut tcp_in: mpsc::Receiver<TcpIn>,
        mut control: mpsc::UnboundedReceiver<ReceiverControl>,
        mut tcp_out: mpsc::Receiver<TcpOut>,
    ) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let mut tick = tokio::time::interval(IDLE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = recv_from(&udp, &mut buffer) => match received {
                    Ok((len, from)) => {
                        if let Some(data) = buffer.get(..len) {
                            self.received(from, data);
                        }
                    }
                    Err(e) => debug!("media port {}: receive: {e}", self.advertised),
                },
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.tcp.accept(stream, peer),
                    Err(e) => debug!("media port {}: accept: {e}", self.advertised),
                },
                Some(TcpIn { conn, packet }) = tcp_in.recv() => match packet {
                    Some(packet) => self.received_over_tcp(conn, packet),
                    None => self.tcp.close(conn),
                },
                Some(TcpOut { to, packet }) = tcp_out.recv() => {
                    if !self.tcp.send(to, &packet) {
                        self.counters.send_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                command = control.recv() => match command {
                    Some(command) => self.control(command),
                    None => break,
                },
                _ = tick.tick() => self.tcp.close_unbound(Instant::now()),
            }
        }
        info!("media port {}: closed", self.advertised);
    }

    fn control(&mut self, command: ReceiverControl) {
        match command {
            ReceiverControl::Register {
                key,
                credentials,
                worker,
                events,
            } => {
                if self.demux.add_viewer(key, credentials.ufrag()).is_err() {
                    let reason = "its ICE fragment is already in use".to_string();
                    events.do_send(PortEvent::Transport(TransportEvent::Failed(reason)));
                    return;
                }
                let registered = Registered {
                    credentials,
                    worker,
                };
                self.viewers.insert(key, registered);
            }
            ReceiverControl::Unregister { key } => {
                self.demux.remove_viewer(key);
                self.viewers.remove(&key);
                self.tcp.close_viewer(key);
            }
        }
    }

    /// Whether `data` is a Binding request that viewer `key`'s password signed.
    fn proves(&self, key: u64, data: &[u8]) -> bool {
        self.viewers
            .get(&key)
            .is_some_and(|v| v.credentials.authenticates(data))
    }

    /// The viewer `data` from `from` belongs to, binding `from` when it proves it.
    fn owner(&mut self, data: &[u8], from: SocketAddr) -> Option<u64> {
        match self.demux.route(data, from) {
            Route::Viewer(key) => Some(key),
            Route::Claims(key) => {
                (self.proves(key, data) && self.demux.bind_path(from, key)).then_some(key)
            }
            Route::Unknown => None,
        }
    }

    fn dropped(&self) {
        self.counters
            .dropped_datagrams
            .fetch_add(1, Ordering::Relaxed);
    }

    fn received(&mut self, from: SocketAddr, data: &[u8]) {
        match self.owner(data, from) {
            Some(key) => self.forward(key, Protocol::Udp, from, Bytes::copy_from_slice(data)),
            None => self.dropped(),
        }
    }

    /// A packet on TCP connection `conn`: its viewer's, once its first Binding request with
    /// that viewer's integrity has named it.
    fn received_over_tcp(&mut self, conn: u64, packet: Bytes) {
        let Some((peer, bound)) = self.tcp.get(conn) else {
            return;
        };
        let key = match bound {
            Some(key) => key,
            None => {
                let claimed = match self.demux.route(&packet, peer) {
                    Route::Claims(key) | Route::Viewer(key) => Some(key),
                    Route::Unknown => None,
                };
                let trusted = claimed.filter(|&key| {
                    binding_request_username(&packet).is_some() && self.proves(key, &packet)
                });
                let Some(key) = trusted else {
                    self.dropped();
                    return;
                };
                self.tcp.bind(conn, key);
                key
            }
        };
        self.forward(key, Protocol::Tcp, peer, packet);
    }

    /// Hands `data` to viewer `key`'s worker; a worker that is behind loses it (counted).
    fn forward(&mut self, key: u64, protocol: Protocol, from: SocketAddr, data: Bytes) {
        let Some(worker) = self
            .viewers
            .get(&key)
            .and_then(|v| self.workers.get(v.worker))
        else {
            return;
        };
        let packet = Inbound {
            key,
            protocol,
            from,
            data,
        };
        if worker.try_send(packet).is_err() {
            self.counters
                .dropped_inbound
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The next datagram on `udp` (cancel-safe: a datagram is taken only when it is returned).
async fn recv_from(
    udp: &AsyncFd<std::net::UdpSocket>,
    buffer: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        let mut ready = udp.readable().await?;
        if let Ok(received) = ready.try_io(|udp| udp.get_ref().recv_from(buffer)) {
            return received;
        }
    }
}
