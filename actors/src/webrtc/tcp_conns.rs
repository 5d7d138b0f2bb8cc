//! The media port's ICE-TCP side (RFC 6544, passive): the connections browsers whose UDP is
//! blocked open to the port's TCP twin, each carrying RFC 4571 frames.
//!
//! Each connection gets a reader task (bytes → whole packets of at most 2 KiB → the port task,
//! which routes them; the decoder holds at most one partial packet plus one read, and the reader waits
//! while the port task is behind, so TCP's own flow control bounds the rest) and a writer
//! task (a bounded queue of framed packets; full: the packet is dropped, as on UDP). The
//! table is bounded; a connection that has not proven whose it is (a Binding request with
//! a viewer's integrity) within [`UNBOUND_LIFETIME`] is closed. It decides nothing about
//! media and owns no viewer: the port task tells it which viewer a connection is.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pullcast::media_port::{frame, FrameDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The most connections at once (past it, new ones are closed at once).
const MAX_CONNECTIONS: usize = 2048;
/// The longest packet a browser sends over ICE-TCP (STUN, DTLS records, SRTCP fit in a UDP
/// datagram's worth); a longer frame closes the connection. With [`READ_CHUNK`] this bounds
/// what one connection can make the server hold to about 6 KiB, 12 MiB for a full table.
/// A connection must name its viewer within this time.
pub const UNBOUND_LIFETIME: Duration = Duration::from_secs(10);
const MAX_PACKET: usize = 2048;
/// Bytes read at a time.
const READ_CHUNK: usize = 4 * 1024;
/// Framed packets queued for one connection's writer.
const WRITE_QUEUE: usize = 512;

/// What a reader task hands the port task.
pub struct TcpIn {
    pub conn: u64,
    /// A whole packet; `None`: the connection is gone.
    pub packet: Option<Bytes>,
}

struct Connection {
    peer: SocketAddr,
    viewer: Option<u64>,
    writer: mpsc::Sender<Vec<u8>>,
    tasks: [JoinHandle<()>; 2],
    opened: Instant,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Every ICE-TCP connection of one port.
pub struct TcpConnections {
    table: HashMap<u64, Connection>,
    by_peer: HashMap<SocketAddr, u64>,
    next: u64,
    inbound: mpsc::Sender<TcpIn>,
}

impl TcpConnections {
    /// An empty table whose readers hand packets to `inbound`.
    pub fn new(inbound: mpsc::Sender<TcpIn>) -> Self {
        Self {
            table: HashMap::new(),
            by_peer: HashMap::new(),
            next: 0,
            inbound,
        }
    }

    /// Takes a new connection from `peer` (closed at once past the limit).
    pub fn accept(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.table.len() >= MAX_CONNECTIONS {
            return;
        }
        let _ = stream.set_nodelay(true);
        let conn = self.next;
        self.next += 1;
        let (reader, writer) = stream.into_split();
        let (queue, queued) = mpsc::channel(WRITE_QUEUE);
        let tasks = [
            actix::spawn(read_packets(conn, reader, self.inbound.clone())),
            actix::spawn(write_packets(writer, queued)),
        ];
        if let Some(old) = self.by_peer.insert(peer, conn) {
            self.table.remove(&old);
        }
        let connection = Connection {
            peer,
            viewer: None,
            writer: queue,
            tasks,
            opened: Instant::now(),
        };
        self.table.insert(conn, connection);
    }

    /// The peer of `conn` and the viewer it is bound to.
    pub fn get(&self, conn: u64) -> Option<(SocketAddr, Option<u64>)> {
        self.table.get(&conn).map(|c| (c.peer, c.viewer))
    }

    /// From now on `conn` is `viewer`'s.
    pub fn bind(&mut self, conn: u64, viewer: u64) {
        if let Some(c) = self.table.get_mut(&conn) {
            c.viewer = Some(viewer);
        }
    }

    /// Queues `packet` for the connection from `to`; false when there is none or its queue
    /// is full (the packet is lost, as on UDP).
    pub fn send(&self, to: SocketAddr, packet: &[u8]) -> bool {
        let Some(c) = self.by_peer.get(&to).and_then(|id| self.table.get(id)) else {
            return false;
        };
        match frame(packet) {
            Ok(framed) => c.writer.try_send(framed).is_ok(),
            Err(_) => false,
        }
    }

    /// Closes `conn`.
    pub fn close(&mut self, conn: u64) {
        if let Some(c) = self.table.remove(&conn) {
            if self.by_peer.get(&c.peer) == Some(&conn) {
                self.by_peer.remove(&c.peer);
            }
        }
    }

    /// Closes every connection of `viewer`.
    pub fn close_viewer(&mut self, viewer: u64) {
        let of_viewer: Vec<u64> = self
            .table
            .iter()
            .filter(|(_, c)| c.viewer == Some(viewer))
            .map(|(id, _)| *id)
            .collect();
        for conn in of_viewer {
            self.close(conn);
        }
    }

    /// Closes the connections that named no viewer within [`UNBOUND_LIFETIME`].
    pub fn close_unbound(&mut self, now: Instant) {
        let stale: Vec<u64> = self
            .table
            .iter()
            .filter(|(_, c)| c.viewer.is_none() && now.duration_since(c.opened) > UNBOUND_LIFETIME)
            .map(|(id, _)| *id)
            .collect();
        for conn in stale {
            self.close(conn);
        }
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// Reads `conn`'s frames and hands each packet to the port task; says when it ends.
async fn read_packets(conn: u64, mut reader: OwnedReadHalf, inbound: mpsc::Sender<TcpIn>) {
    let mut decoder = FrameDecoder::with_max_packet(READ_CHUNK, MAX_PACKET);
    let mut buffer = vec![0u8; READ_CHUNK];
    'reading: loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(read) = buffer.get(..n) else {
            break;
        };
        if decoder.push(read).is_err() {
            break;
        }
        loop {
            let packet = match decoder.next_packet() {
                Ok(Some(packet)) => Some(packet),
                Ok(None) => break,
                Err(_) => break 'reading,
            };
            if inbound.send(TcpIn { conn, packet }).await.is_err() {
                break 'reading;
            }
        }
    }
    let _ = inbound.send(TcpIn { conn, packet: None }).await;
}

/// Writes the framed packets queued for one connection, in order.
async fn write_packets(mut writer: OwnedWriteHalf, mut queued: mpsc::Receiver<Vec<u8>>) {
    while let Some(framed) = queued.recv().await {
        if writer.write_all(&framed).await.is_err() {
            break;
        }
    }
}
