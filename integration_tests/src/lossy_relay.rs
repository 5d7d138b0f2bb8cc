//! A UDP relay between one WebRTC viewer and the server's media port that loses some of the
//! server's video packets on purpose, so the browser has to ask for them again (NACK, RFC
//! 4585) and the test can see whether they came back. Test scaffolding: it forwards
//! datagrams as they are (it cannot read SRTP) and decides only by size and first bytes.
//!
//! The browser is told the relay's address instead of the server's (its answer's candidate
//! is rewritten); the server sees the relay's second socket as the browser.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the relay did.
#[derive(Debug, Default)]
pub struct RelayCounts {
    /// Server → browser datagrams forwarded.
    pub forwarded: AtomicU64,
    /// Server → browser video packets dropped on purpose.
    pub dropped: AtomicU64,
}

/// A running relay; stops when dropped.
pub struct LossyRelay {
    /// The address the browser sends to.
    pub address: SocketAddr,
    pub counts: Arc<RelayCounts>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// A packet is "video" for the relay when it is SRTP RTP (RFC 7983: first byte 128..=191,
/// second byte not an RTCP type) and at least this long: a full FU-A fragment.
const VIDEO_PACKET_BYTES: usize = 1_000;

/// The relay's socket receive buffers, asked for.
const RELAY_BUFFER: usize = 4 << 20;

impl LossyRelay {
    /// Relays between a browser and `server` (a UDP address on 127.0.0.1), dropping every
    /// `drop_every`-th video packet from the server after the first `spare` of them (the
    /// start, replayed GOP included, goes through whole).
    pub fn start(server: SocketAddr, drop_every: u64, spare: u64) -> Self {
        let to_browser = UdpSocket::bind("127.0.0.1:0").expect("bind the relay's browser side");
        let to_server = UdpSocket::bind("127.0.0.1:0").expect("bind the relay's server side");
        let address = to_browser.local_addr().expect("relay address");
        for s in [&to_browser, &to_server] {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("read timeout");
            // A keyframe-cache replay arrives as one burst of a GOP's packets, faster than
            // this thread forwards them: with the kernel's default buffer the relay itself
            // would lose the burst's tail, and the test would measure that instead of the
            // losses it makes on purpose (the kernel caps the size at net.core.rmem_max).
            let _ =
                nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::RcvBuf, &RELAY_BUFFER);
        }
        let counts = Arc::new(RelayCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let browser: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        let mut threads = Vec::new();
        {
            // Browser → server, as is; remembers where the browser is.
            let (inbound, outbound) = (
                to_browser.try_clone().expect("clone"),
                to_server.try_clone().expect("clone"),
            );
            let (stop, browser) = (stop.clone(), browser.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = inbound.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Ok(mut b) = browser.lock() {
                        *b = Some(from);
                    }
                    let _ = outbound.send_to(&buf[..n], server);
                }
            }));
        }
        {
            // Server → browser, losing some video.
            let (inbound, outbound) = (to_server, to_browser);
            let (stop, counts) = (stop.clone(), counts.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut video = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = inbound.recv_from(&mut buf) else {
                        continue;
                    };
                    let data = &buf[..n];
                    let rtp = matches!(data.first(), Some(128..=191))
                        && !matches!(data.get(1), Some(192..=223));
                    if rtp && n >= VIDEO_PACKET_BYTES {
                        video += 1;
                        if video > spare && video.is_multiple_of(drop_every.max(1)) {
                            counts.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    let to = browser.lock().ok().and_then(|b| *b);
                    if let Some(to) = to {
                        let _ = outbound.send_to(data, to);
                        counts.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Self {
            address,
            counts,
            stop,
            threads,
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
