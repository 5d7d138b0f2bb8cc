//! Datagrams queued for the media port's UDP socket and sent in batches: one `sendmmsg`
//! system call carries up to [`BATCH`] datagrams to any mix of viewers, instead of one
//! `sendto` each.
//!
//! Sending never waits: what the kernel will not take now (its send buffer is full) is
//! dropped and counted, as the network would drop it; a datagram the kernel refuses (an
//! unreachable address) is skipped alone. The order of one viewer's datagrams is kept.
//! It must not decide what to send: the port's transports do.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call (the kernel takes up to 1 024; 64 is where the gain flattens).
pub const BATCH: usize = 64;

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    pub dropped: usize,
    /// System calls made.
    pub calls: usize,
}

/// Datagrams waiting for the next flush.
#[derive(Default)]
pub struct UdpBatch {
    queue: Vec<(SocketAddr, BytesMut)>,
}

impl UdpBatch {
    /// Queues `datagram` for `to`.
    pub fn push(&mut self, to: SocketAddr, datagram: BytesMut) {
        self.queue.push((to, datagram));
    }

    /// How many datagrams wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sends everything queued on `udp` without waiting; the queue is empty afterwards.
    pub fn flush(&mut self, udp: &UdpSocket) -> Flushed {
        let mut done = Flushed::default();
        let total = self.queue.len();
        let mut next = 0;
        while next < total {
            let end = (next + BATCH).min(total);
            let chunk = &self.queue[next..end];
            done.calls += 1;
            match udp.try_io(Interest::WRITABLE, || send_chunk(udp, chunk)) {
                Ok(0) => {
                    // Nothing taken and no error: skip one so the loop always ends.
                    done.dropped += 1;
                    next += 1;
                }
                // Partial: the next call starts at the first one not sent (and reports its
                // error, if it had one).
                Ok(n) => {
                    done.sent += n;
                    next += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The send buffer is full: the rest would not go either.
                    done.dropped += total - next;
                    break;
                }
                Err(_) => {
                    // The kernel refused the first datagram of the chunk (e.g. no route).
                    done.dropped += 1;
                    next += 1;
                }
            }
        }
        self.queue.clear();
        done
    }
}

/// One `sendmmsg` of `chunk`: how many datagrams the kernel took. `EAGAIN` comes back as
/// `WouldBlock`, so tokio knows the socket is not writable.
fn send_chunk(udp: &UdpSocket, chunk: &[(SocketAddr, BytesMut)]) -> io::Result<usize> {
    if let [(to, datagram)] = chunk {
        // One datagram: a plain sendto.
        return udp.try_send_to(datagram, *to).map(|_| 1);
    }
    let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
    let addresses: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|(to, _)| Some(SockaddrStorage::from(*to)))
        .collect();
    // Built on every call: it holds raw pointers, so it may not live across an await.
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let sent = sendmmsg(
        udp.as_raw_fd(),
        &mut headers,
        &slices,
        &addresses,
        [],
        MsgFlags::empty(),
    )?;
    Ok(sent.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bound socket whose write readiness the runtime has seen (a running port's has).
    async fn socket() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket.writable().await.expect("writable");
        socket
    }

    #[tokio::test]
    async fn a_batch_reaches_every_destination_in_order() {
        let sender = socket().await;
        let receivers = [socket().await, socket().await, socket().await];
        let mut batch = UdpBatch::default();
        // 150 datagrams: three system calls of up to 64, interleaved over three receivers.
        for i in 0..150u32 {
            let to = receivers[(i % 3) as usize].local_addr().expect("addr");
            batch.push(to, BytesMut::from(&i.to_be_bytes()[..]));
        }
        let flushed = batch.flush(&sender);
        assert_eq!(flushed.sent, 150);
        assert_eq!(flushed.dropped, 0);
        assert_eq!(flushed.calls, 3);
        assert!(batch.is_empty());
        let mut buf = [0u8; 16];
        for (r, receiver) in receivers.iter().enumerate() {
            for k in 0..50u32 {
                let (n, from) = receiver.recv_from(&mut buf).await.expect("recv");
                assert_eq!(from, sender.local_addr().expect("addr"));
                let got = u32::from_be_bytes(buf[..n].try_into().expect("4 bytes"));
                assert_eq!(got, k * 3 + r as u32, "order kept per destination");
            }
        }
    }

    #[tokio::test]
    async fn a_refused_datagram_is_skipped_alone() {
        let sender = socket().await;
        let receiver = socket().await;
        let to = receiver.local_addr().expect("addr");
        let mut batch = UdpBatch::default();
        batch.push(to, BytesMut::from(&b"one"[..]));
        // An IPv6 destination on an IPv4 socket: the kernel refuses it.
        batch.push(
            "[::1]:9".parse().expect("addr"),
            BytesMut::from(&b"bad"[..]),
        );
        batch.push(to, BytesMut::from(&b"two"[..]));
        let flushed = batch.flush(&sender);
        assert_eq!((flushed.sent, flushed.dropped), (2, 1));
        let mut buf = [0u8; 16];
        for expected in [&b"one"[..], b"two"] {
            let (n, _) = receiver.recv_from(&mut buf).await.expect("recv");
            assert_eq!(&buf[..n], expected);
        }
    }

    #[tokio::test]
    async fn an_empty_batch_makes_no_call() {
        let sender = socket().await;
        assert_eq!(UdpBatch::default().flush(&sender), Flushed::default());
    }
}
