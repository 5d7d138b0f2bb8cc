//! Datagrams queued for the media port's UDP socket and sent in batches: one `sendmmsg`
//! system call carries up to [`BATCH`] messages to any mix of viewers, and a run of one
//! viewer's equal-sized packets (a frame's FU-A fragments) is one UDP GSO message the kernel
//! cuts into datagrams (`UDP_SEGMENT`), so it crosses the network stack once
//! (`pullcast::media_port::send_plan` decides which).
//!
//! Sending never waits and needs no runtime (a non-blocking socket, never registered for
//! readiness, so the kernel's "room to write again" never wakes anybody): what the kernel
//! will not take now (its send buffer is full) is dropped and counted, as the network would
//! drop it; a message the kernel refuses (an
//! unreachable address) is skipped alone. A kernel or route without GSO refuses the first
//! GSO message: from then on every datagram goes alone. The order of one viewer's datagrams
//! is kept. It must not decide what to send: the port's transports do.

use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use log::warn;
use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
use pullcast::media_port::send_plan::{plan_calls, plan_messages, Call, Message};

/// Messages per system call (the kernel takes up to 1 024; 64 is where the gain flattens).
pub const BATCH: usize = 64;

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams the kernel took (a GSO message counts its segments).
    pub sent: usize,
    /// Their bytes.
    pub sent_bytes: usize,
    pub dropped: usize,
    /// System calls made.
    pub calls: usize,
}

/// Datagrams waiting for the next flush.
pub struct UdpBatch {
    queue: Vec<(SocketAddr, BytesMut)>,
    /// Whether runs may go as GSO messages (until the kernel refuses one).
    gso: bool,
}

impl Default for UdpBatch {
    fn default() -> Self {
        Self::new(true)
    }
}

impl UdpBatch {
    /// A batch that sends runs as GSO messages when `gso`.
    pub fn new(gso: bool) -> Self {
        Self {
            queue: Vec::new(),
            gso,
        }
    }

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

    /// Whether runs still go as GSO messages.
    pub fn uses_gso(&self) -> bool {
        self.gso
    }

    /// Sends everything queued on `udp` (non-blocking) without waiting; the queue is empty
    /// afterwards.
    pub fn flush(&mut self, udp: &UdpSocket) -> Flushed {
        let mut done = Flushed::default();
        let mut from = 0;
        while from < self.queue.len() {
            match self.send_from(udp, from, &mut done) {
                Some(next) => {
                    // A GSO message was refused: the rest goes datagram by datagram.
                    warn!("the kernel refused a UDP GSO message: sending every datagram alone from now on");
                    self.gso = false;
                    from = next;
                }
                None => break,
            }
        }
        self.queue.clear();
        done
    }

    /// Sends the queue from datagram `from` on; `Some(i)` when a GSO message starting at
    /// datagram `i` was refused (nothing from `i` on was sent).
    fn send_from(&self, udp: &UdpSocket, from: usize, done: &mut Flushed) -> Option<usize> {
        let queue = &self.queue[from..];
        let shape: Vec<(SocketAddr, usize)> = queue.iter().map(|(to, d)| (*to, d.len())).collect();
        let messages = plan_messages(&shape, self.gso);
        let calls = plan_calls(&messages, &shape, BATCH);
        let mut calls = calls.into_iter();
        let mut pending: Option<Call> = calls.next();
        while let Some(call) = pending.take() {
            let chunk = &messages[call.messages.clone()];
            done.calls += 1;
            let result = send_messages(udp, queue, chunk, call.segment);
            let segments = |m: &[Message]| m.iter().map(|m| m.datagrams.len()).sum::<usize>();
            match result {
                Ok(n) if n > 0 => {
                    let taken = &chunk[..n.min(chunk.len())];
                    done.sent += segments(taken);
                    done.sent_bytes += taken
                        .iter()
                        .flat_map(|m| queue[m.datagrams.clone()].iter())
                        .map(|(_, d)| d.len())
                        .sum::<usize>();
                    if n < chunk.len() {
                        // Partial: the next call starts at the first message not sent.
                        pending = Some(Call {
                            messages: call.messages.start + n..call.messages.end,
                            segment: call.segment,
                        });
                        continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The send buffer is full: the rest would not go either.
                    done.dropped += segments(&messages[call.messages.start..]);
                    return None;
                }
                other => {
                    // The kernel refused the call's first message (no route, or no GSO).
                    let first = &chunk[0];
                    let no_gso = other.as_ref().err().is_some_and(refuses_gso);
                    if first.segment.is_some() && self.gso && no_gso {
                        return Some(from + first.datagrams.start);
                    }
                    done.dropped += first.datagrams.len();
                    if chunk.len() > 1 {
                        pending = Some(Call {
                            messages: call.messages.start + 1..call.messages.end,
                            segment: call.segment,
                        });
                        continue;
                    }
                }
            }
            pending = calls.next();
        }
        None
    }
}

/// Whether `error` is how a kernel, device or route without UDP GSO refuses a GSO message
/// (rather than an unreachable address).
fn refuses_gso(error: &io::Error) -> bool {
    use nix::errno::Errno;
    let errno = error.raw_os_error().map(Errno::from_raw);
    matches!(
        errno,
        Some(Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP)
    )
}

/// One `sendmmsg` of `messages` (datagrams of `queue`), each cut at `segment` when it is
/// set: how many messages the kernel took. `EAGAIN` comes back as `WouldBlock`.
fn send_messages(
    udp: &UdpSocket,
    queue: &[(SocketAddr, BytesMut)],
    messages: &[Message],
    segment: Option<u16>,
) -> io::Result<usize> {
    if let ([message], None) = (messages, segment) {
        // One datagram: a plain sendto.
        let Some((to, datagram)) = queue.get(message.datagrams.start) else {
            return Ok(0);
        };
        return udp.send_to(datagram, *to).map(|_| 1);
    }
    let slices: Vec<Vec<IoSlice<'_>>> = messages
        .iter()
        .map(|m| {
            queue[m.datagrams.clone()]
                .iter()
                .map(|(_, d)| IoSlice::new(d))
                .collect()
        })
        .collect();
    let addresses: Vec<Option<SockaddrStorage>> = messages
        .iter()
        .map(|m| Some(SockaddrStorage::from(queue[m.datagrams.start].0)))
        .collect();
    // Built on every call: it holds raw pointers, so it may not live across an await.
    let sent = match segment {
        Some(size) => {
            let space = nix::cmsg_space!(u16);
            let mut headers =
                MultiHeaders::<SockaddrStorage>::preallocate(messages.len(), Some(space));
            let cmsgs = [ControlMessage::UdpGsoSegments(&size)];
            sendmmsg(
                udp.as_raw_fd(),
                &mut headers,
                &slices,
                &addresses,
                cmsgs,
                MsgFlags::empty(),
            )?
            .count()
        }
        None => {
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(messages.len(), None);
            sendmmsg(
                udp.as_raw_fd(),
                &mut headers,
                &slices,
                &addresses,
                [],
                MsgFlags::empty(),
            )?
            .count()
        }
    };
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bound non-blocking socket, as the port's workers send on.
    fn sender() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("non-blocking");
        socket
    }

    /// A socket that receives in the test's runtime.
    async fn socket() -> tokio::net::UdpSocket {
        tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind")
    }

    #[tokio::test]
    async fn a_batch_reaches_every_destination_in_order() {
        let sender = sender();
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
        let sender = sender();
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
    async fn a_run_of_one_viewers_packets_goes_as_one_gso_message_and_arrives_as_datagrams() {
        let sender = sender();
        let viewer = socket().await;
        let other = socket().await;
        let (to, to_other) = (
            viewer.local_addr().expect("addr"),
            other.local_addr().expect("addr"),
        );
        let mut batch = UdpBatch::default();
        // A frame: three 1 238-byte fragments and a shorter last one; audio for another
        // viewer; then the first viewer's next frame, one small packet.
        let datagram = |tag: u8, len: usize| BytesMut::from(&vec![tag; len][..]);
        for (tag, len) in [(1, 1238), (2, 1238), (3, 1238), (4, 700)] {
            batch.push(to, datagram(tag, len));
        }
        batch.push(to_other, datagram(9, 120));
        batch.push(to, datagram(5, 300));
        let flushed = batch.flush(&sender);
        assert_eq!((flushed.sent, flushed.dropped), (6, 0));
        assert_eq!(flushed.calls, 1, "one sendmmsg: the run is one message");
        assert!(batch.uses_gso(), "loopback takes GSO messages");
        let mut buf = [0u8; 2048];
        for (tag, len) in [(1u8, 1238usize), (2, 1238), (3, 1238), (4, 700), (5, 300)] {
            let (n, _) = viewer.recv_from(&mut buf).await.expect("recv");
            assert_eq!(
                (n, buf[0], buf[n - 1]),
                (len, tag, tag),
                "cut at the segment size, in order"
            );
        }
        let (n, _) = other.recv_from(&mut buf).await.expect("recv");
        assert_eq!((n, buf[0]), (120, 9));
    }

    #[tokio::test]
    async fn without_gso_every_datagram_goes_alone() {
        let sender = sender();
        let receiver = socket().await;
        let to = receiver.local_addr().expect("addr");
        let mut batch = UdpBatch::new(false);
        for i in 0..70u8 {
            batch.push(to, BytesMut::from(&[i; 500][..]));
        }
        let flushed = batch.flush(&sender);
        assert_eq!((flushed.sent, flushed.calls), (70, 2), "64 messages a call");
        let mut buf = [0u8; 1024];
        for i in 0..70u8 {
            let (n, _) = receiver.recv_from(&mut buf).await.expect("recv");
            assert_eq!((n, buf[0]), (500, i));
        }
    }

    #[test]
    fn only_the_errors_of_a_kernel_without_gso_turn_it_off() {
        use nix::errno::Errno;
        let error = |e: Errno| io::Error::from_raw_os_error(e as i32);
        assert!(refuses_gso(&error(Errno::EIO)), "no checksum offload");
        assert!(refuses_gso(&error(Errno::EINVAL)));
        assert!(
            !refuses_gso(&error(Errno::EAFNOSUPPORT)),
            "an address of another family"
        );
        assert!(!refuses_gso(&error(Errno::ENETUNREACH)));
        assert!(!refuses_gso(&io::Error::from(io::ErrorKind::Other)));
    }

    #[tokio::test]
    async fn an_empty_batch_makes_no_call() {
        let sender = sender();
        assert_eq!(UdpBatch::default().flush(&sender), Flushed::default());
    }
}
