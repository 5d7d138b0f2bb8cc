//! A port worker: the viewers' transports of one share of the media port, on a thread of
//! its own.
//!
//! It owns each of its viewers' [`ViewerTransport`] (ICE-lite, DTLS, SRTP) and that
//! transport's next timer, takes the packets the receiver routed to them, their media and
//! RTCP, and sends what they produce: UDP datagrams gathered over one turn of the task (every
//! media batch queued by then, for any number of its viewers) in `sendmmsg` batches on its
//! handle of the port's one socket ([`crate::webrtc::udp_batch`]); TCP packets through the
//! receiver, which holds the connections. Sends never block: a datagram the kernel will not
//! take now is dropped, as the network would. Each viewer's next timer sits in one ordered
//! set, so a turn costs what it touches, not the number of viewers. It must not route
//! packets (the receiver does) or decide anything about media.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::debug;
use tokio::sync::mpsc;

use super::receiver::TcpOut;
use super::{PortCounters, PortEvent, RtpOut, SentProbe};
use crate::telemetry::now_us;
use crate::webrtc::transport::{Protocol, ViewerTransport};
use crate::webrtc::udp_batch::{Flushed, UdpBatch, BATCH};

/// How long the task sleeps when no transport has a timer.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// Datagrams gathered before they are sent (more media batches wait for the next turn): one
/// full `sendmmsg`, so a frame's packets leave viewer group by viewer group while the rest
/// are still being protected, instead of all at the end.
const GATHER_DATAGRAMS: usize = BATCH;

/// What a worker is told about its viewers (never dropped).
pub enum WorkerControl {
    /// Viewer `key`'s transport is this worker's from now on; its events go to `events`.
    Add {
        key: u64,
        transport: Box<ViewerTransport>,
        events: Recipient<PortEvent>,
    },
    /// Viewer `key` is gone: close its transport and forget it.
    Remove { key: u64 },
    /// RTCP (sender reports) for viewer `key`.
    Rtcp {
        key: u64,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    },
}

/// A packet the receiver routed to viewer `key`.
pub struct Inbound {
    pub key: u64,
    pub protocol: Protocol,
    pub from: SocketAddr,
    pub data: Bytes,
}

/// RTP packets for viewer `key`; with a probe, they end a live video frame whose latency is
/// recorded once they have left.
pub struct Media {
    pub key: u64,
    pub packets: Vec<RtpOut>,
    pub probe: Option<SentProbe>,
}

struct Viewer {
    transport: Box<ViewerTransport>,
    events: Recipient<PortEvent>,
    /// Its transport's next timer, as entered in `PortWorker::deadlines`.
    deadline: Option<Instant>,
}

/// Where packets go out: the UDP socket (in batches) or, through the receiver, a viewer's
/// TCP connection.
struct Outlets {
    /// The port's socket (non-blocking, never registered with the runtime).
    udp: std::net::UdpSocket,
    /// UDP datagrams gathered this turn.
    batch: UdpBatch,
    tcp: mpsc::Sender<TcpOut>,
    counters: Arc<PortCounters>,
    /// The frames whose last packets are in this turn's batch.
    probes: Vec<SentProbe>,
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
    /// full queue drops and counts it).
    fn send_pending(&mut self, transport: &mut ViewerTransport) {
        while let Some((protocol, to, packet)) = transport.poll_transmit() {
            match protocol {
                Protocol::Udp => self.batch.push(to, packet),
                Protocol::Tcp => {
                    if self.tcp.try_send(TcpOut { to, packet }).is_err() {
                        self.counters.send_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Sends the turn's UDP datagrams; what the kernel will not take now is counted and
    /// dropped. The frames they end have left the server: their latency is recorded.
    fn send_batch(&mut self) {
        if !self.batch.is_empty() {
            let done = self.batch.flush(&self.udp);
            self.count(done);
        }
        if !self.probes.is_empty() {
            let now = now_us();
            for probe in self.probes.drain(..) {
                let added = now.saturating_sub(probe.ingest_us);
                probe.telemetry.lock().frame_latency_us.record(added);
            }
        }
    }

    fn count(&self, done: Flushed) {
        let c = &self.counters;
        c.udp_datagrams
            .fetch_add(done.sent as u64, Ordering::Relaxed);
        c.udp_send_calls
            .fetch_add(done.calls as u64, Ordering::Relaxed);
        c.send_failures
            .fetch_add(done.dropped as u64, Ordering::Relaxed);
    }
}

/// One worker of the port, before it runs.
pub struct PortWorker {
    index: usize,
    socket: std::net::UdpSocket,
    tcp: mpsc::Sender<TcpOut>,
    counters: Arc<PortCounters>,
}

impl PortWorker {
    /// Worker `index`, sending on `socket` (a handle on the port's socket) and through `tcp`.
    pub fn new(
        index: usize,
        socket: std::net::UdpSocket,
        tcp: mpsc::Sender<TcpOut>,
        counters: Arc<PortCounters>,
    ) -> Self {
        Self {
            index,
            socket,
            tcp,
            counters,
        }
    }

    /// Serves its viewers until the port's handles are gone; must run inside the runtime of
    /// its own thread. It sends on its socket without ever registering it for readiness.
    pub async fn run(
        self,
        control: mpsc::UnboundedReceiver<WorkerControl>,
        inbound: mpsc::Receiver<Inbound>,
        media: mpsc::Receiver<Media>,
    ) {
        let running = Running {
            index: self.index,
            out: Outlets {
                udp: self.socket,
                batch: UdpBatch::default(),
                tcp: self.tcp,
                counters: self.counters,
                probes: Vec::new(),
            },
            viewers: HashMap::new(),
            deadlines: BTreeSet::new(),
        };
        running.run(control, inbound, media).await;
    }
}

struct Running {
    index: usize,
    out: Outlets,
    viewers: HashMap<u64, Viewer>,
    /// Every viewer's next timer, soonest first (a viewer at most once).
    deadlines: BTreeSet<(Instant, u64)>,
}

impl Running {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<WorkerControl>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut media: mpsc::Receiver<Media>,
    ) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                command = control.recv() => match command {
                    Some(command) => self.control(command),
                    None => break,
                },
                Some(packet) = inbound.recv() => {
                    self.deliver(packet);
                }
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
        debug!("media port worker {}: closed", self.index);
    }

    /// The soonest viewer timer, or the idle tick.
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

    /// A packet the receiver routed here (a viewer removed meanwhile loses it).
    fn deliver(&mut self, packet: Inbound) {
        let Inbound {
            key,
            protocol,
            from,
            data,
        } = packet;
        if let Some(viewer) = self.viewers.get_mut(&key) {
            viewer
                .transport
                .receive(Instant::now(), protocol, from, &data);
            self.out.flush(viewer);
            self.reschedule(key);
        }
    }

    fn control(&mut self, command: WorkerControl) {
        match command {
            WorkerControl::Add {
                key,
                transport,
                events,
            } => {
                let viewer = Viewer {
                    transport,
                    events,
                    deadline: None,
                };
                self.viewers.insert(key, viewer);
                self.reschedule(key);
            }
            WorkerControl::Remove { key } => {
                if let Some(mut viewer) = self.viewers.remove(&key) {
                    if let Some(at) = viewer.deadline {
                        self.deadlines.remove(&(at, key));
                    }
                    viewer.transport.close();
                    // The close alerts go out; its events are nobody's now.
                    while viewer.transport.poll_event().is_some() {}
                    self.out.send_pending(&mut viewer.transport);
                }
            }
            WorkerControl::Rtcp { key, packets } => {
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
        self.out.probes.extend(batch.probe);
        self.reschedule(batch.key);
    }

    /// Runs the timers that are due, each viewer's once.
    fn timers(&mut self) {
        let now = Instant::now();
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
