//! A port worker: the viewers of one share of the media port, on a thread of its own.
//!
//! It owns each of its viewers' [`ViewerTransport`] (ICE-lite, DTLS, SRTP) and
//! [`MediaPlane`] (RTP stamping, sender reports) and their next timer. A capture's frame
//! arrives once for all of the worker's viewers that may have it (`PortMedia::Frame`); each
//! viewer's plane stamps it and its transport protects the packets; they leave in
//! `sendmmsg` batches of up to 64 datagrams on the worker's handle of the port's one socket
//! ([`crate::webrtc::udp_batch`]) while the next viewers' are still being made, so the first
//! viewers' packets do not wait for the last. TCP packets go through the receiver, which
//! holds the connections. Sends never block: a datagram the kernel will not take now is
//! dropped, as the network would. A live video frame's latency is recorded once the call
//! that sent its last packet to a viewer has returned. Each viewer's next timer sits in one
//! ordered set, so a turn costs what it touches, not the number of viewers. It must not
//! route packets (the receiver does) or choose which frames a viewer gets (the capture's
//! keyframe gate does).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use bytes::Bytes;
use log::debug;
use tokio::sync::mpsc;

use pullcast::media::MediaFrame;
use rtc::shared::time::SystemInstant;

use super::receiver::TcpOut;
use super::{PortCounters, PortEvent, RtpOut};
use crate::stream::budget::Charge;
use crate::telemetry::{now_us, SharedTelemetry};
use crate::webrtc::media_plane::{MediaPlane, Stamped};
use crate::webrtc::transport::{Protocol, ViewerTransport};
use crate::webrtc::udp_batch::{Flushed, UdpBatch, BATCH};

/// How long the task sleeps when no transport has a timer.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// Datagrams gathered before they are sent: one full `sendmmsg`, so a frame's packets leave
/// viewer group by viewer group while the rest are still being made, not all at the end.
const GATHER_DATAGRAMS: usize = BATCH;

/// What a worker is told about its viewers (never dropped).
pub enum WorkerControl {
    /// Viewer `key`'s transport and media plane are this worker's from now on; its events
    /// go to `events`.
    Add {
        key: u64,
        transport: Box<ViewerTransport>,
        plane: Box<MediaPlane>,
        events: Recipient<PortEvent>,
    },
    /// Viewer `key` is gone: close its transport and forget it.
    Remove { key: u64 },
}

/// A packet the receiver routed to viewer `key`.
pub struct Inbound {
    pub key: u64,
    pub protocol: Protocol,
    pub from: SocketAddr,
    pub data: Bytes,
}

/// A capture's media for some of the worker's viewers (bounded: a worker that is behind
/// loses it, and the capture closes those viewers' keyframe gates). The charge holds the
/// bytes on the capture's queue budget until the worker has handled the message.
pub enum PortMedia {
    /// One live frame, for every viewer in `viewers`.
    Frame {
        frame: MediaFrame,
        viewers: Vec<u64>,
        charge: Charge,
    },
    /// The keyframe cache, for one viewer (its start, or its keyframe request).
    Replay {
        viewer: u64,
        frames: Vec<MediaFrame>,
        charge: Charge,
    },
    /// The codecs of viewer `viewer`'s capture changed (or are told at its start). In line
    /// with the frames: told after a replay, it would hold back the live frames that follow
    /// until the next keyframe.
    Codecs { viewer: u64, has_video: bool },
}

/// A live video frame whose latency is recorded once the datagrams gathered so far have
/// left: when it arrived, for how many viewers, and whose measurements.
struct SentProbe {
    ingest_us: u64,
    telemetry: SharedTelemetry,
}

struct Viewer {
    transport: Box<ViewerTransport>,
    plane: Box<MediaPlane>,
    events: Recipient<PortEvent>,
    /// Its next timer (its transport's or its plane's sender reports), as entered in
    /// `Running::deadlines`; `None` until it is first scheduled.
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
            viewer.events.do_send(PortEvent::Transport(event));
        }
        self.send_pending(&mut viewer.transport);
    }

    /// Sends what `viewer`'s plane made of a frame: each packet through its transport (taken
    /// out at once: the transport's queue would keep the room of its longest burst — a
    /// keyframe-cache replay — for the viewer's whole life), its latency probe, its
    /// `Playing`.
    fn send(&mut self, viewer: &mut Viewer, stamped: Stamped) {
        let Stamped {
            packets,
            live_video_ingest_us,
            now_playing,
        } = stamped;
        if !packets.is_empty() {
            crate::telemetry::count_egress_frames(crate::telemetry::ViewerProtocol::WebRtc, 1);
        }
        for p in packets {
            let RtpOut {
                track,
                sequence_number,
                timestamp,
                marker,
                payload,
            } = p;
            (viewer.transport).send_rtp(track, sequence_number, timestamp, marker, payload);
            self.send_pending(&mut viewer.transport);
        }
        self.flush(viewer);
        if let Some(ingest_us) = live_video_ingest_us {
            let telemetry = viewer.plane.telemetry.clone();
            self.probes.push(SentProbe {
                ingest_us,
                telemetry,
            });
        }
        if now_playing {
            viewer.events.do_send(PortEvent::Playing);
        }
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
            crate::telemetry::count_egress(
                crate::telemetry::ViewerProtocol::WebRtc,
                done.sent_bytes,
            );
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

    /// Sends what is gathered once it fills a system call.
    fn send_when_full(&mut self) {
        if self.batch.len() >= GATHER_DATAGRAMS {
            self.send_batch();
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
        media: mpsc::Receiver<PortMedia>,
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
        mut media: mpsc::Receiver<PortMedia>,
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
                Some(message) = media.recv() => {
                    self.media(message);
                    // Whatever else is queued goes out in the same system calls.
                    while self.out.batch.len() < GATHER_DATAGRAMS {
                        let Ok(message) = media.try_recv() else { break };
                        self.media(message);
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
        // The plane always has a report due, so a viewer always has a next timer.
        let report = viewer.plane.next_report();
        let next = (viewer.transport.next_timeout()).map_or(report, |t| t.min(report));
        if viewer.deadline == Some(next) {
            return;
        }
        if let Some(old) = viewer.deadline.replace(next) {
            self.deadlines.remove(&(old, key));
        }
        self.deadlines.insert((next, key));
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
                plane,
                events,
            } => {
                let viewer = Viewer {
                    transport,
                    plane,
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
        }
    }

    fn media(&mut self, message: PortMedia) {
        let now_us = now_us();
        match message {
            PortMedia::Frame {
                frame,
                viewers,
                charge,
            } => {
                for key in viewers {
                    let Some(viewer) = self.viewers.get_mut(&key) else {
                        continue;
                    };
                    let stamped = viewer.plane.frame(&frame, now_us);
                    self.out.send(viewer, stamped);
                    self.reschedule(key);
                    self.out.send_when_full();
                }
                drop(charge);
            }
            PortMedia::Replay {
                viewer: key,
                frames,
                charge,
            } => {
                if let Some(viewer) = self.viewers.get_mut(&key) {
                    let stamped = viewer.plane.replay(&frames, now_us);
                    self.out.send(viewer, stamped);
                    self.reschedule(key);
                }
                drop(charge);
            }
            PortMedia::Codecs { viewer, has_video } => {
                if let Some(viewer) = self.viewers.get_mut(&viewer) {
                    viewer.plane.codecs(has_video);
                }
            }
        }
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
                viewer.events.do_send(PortEvent::Transport(event));
            }
            let reports = viewer.plane.sender_reports(now, now_us(), ntp_now());
            if !reports.is_empty() {
                let packets = reports
                    .into_iter()
                    .map(|r| Box::new(r) as Box<dyn rtc::rtcp::Packet>)
                    .collect();
                viewer.transport.send_rtcp(packets);
            }
            self.out.flush(viewer);
            self.reschedule(key);
        }
    }
}

/// The wall clock as an NTP timestamp (for sender reports).
fn ntp_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, SystemInstant::unix2ntp)
}
