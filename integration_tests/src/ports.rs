//! Loopback ports: picking free ones, waiting for a listener, and a TCP peer that never
//! answers.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wait::poll_until;

/// A port on 127.0.0.1 that was free a moment ago: bound on port 0, then released. A port
/// is never handed out twice by one test process, so parallel tests do not collide.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..100 {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0 for a free port");
        let port = listener
            .local_addr()
            .expect("local_addr of free port")
            .port();
        drop(listener);
        if given
            .lock()
            .expect("free port set lock poisoned")
            .insert(port)
        {
            return port;
        }
    }
    panic!("could not find a free loopback port in 100 tries");
}

/// True once a TCP connection to 127.0.0.1:`port` succeeds.
pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True if some socket listens on 127.0.0.1:`port` (or 0.0.0.0), read from `/proc/net/tcp`
/// without connecting — for single-client servers such as `ffmpeg -listen 1`, which a
/// probing connection would use up.
pub fn is_listening(port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table.lines().skip(1).any(|line| {
        let mut cols = line.split_whitespace();
        let local = cols.nth(1).unwrap_or("");
        let state = cols.nth(1).unwrap_or("");
        state == "0A" && wanted.iter().any(|w| w == local)
    })
}

/// Waits until 127.0.0.1:`port` accepts connections, for at most `timeout`.
pub fn wait_accepts(port: u16, timeout: Duration) -> bool {
    poll_until(timeout, Duration::from_millis(50), || {
        accepts(port).then_some(())
    })
    .is_some()
}

/// A TCP listener on a free loopback port that accepts every connection and never writes a
/// byte (nor closes, until dropped): a server that hangs in the RTMP handshake. Made with
/// [`SilentTcpListener::replying`], it first writes fixed bytes (garbage instead of an RTMP
/// handshake), then goes silent the same way.
pub struct SilentTcpListener {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl SilentTcpListener {
    /// Binds 127.0.0.1:0 and starts accepting on a thread.
    pub fn start() -> SilentTcpListener {
        Self::replying(Vec::new())
    }

    /// Like [`SilentTcpListener::start`], but writes `reply` to each connection it accepts.
    pub fn replying(reply: Vec<u8>) -> SilentTcpListener {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind silent TCP listener");
        listener
            .set_nonblocking(true)
            .expect("silent listener set_nonblocking");
        let port = listener.local_addr().expect("silent listener addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = stop.clone();
            let accepted = accepted.clone();
            std::thread::Builder::new()
                .name(format!("silent-tcp-{port}"))
                .spawn(move || {
                    let mut held = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((mut stream, _)) => {
                                accepted.fetch_add(1, Ordering::Relaxed);
                                if !reply.is_empty() {
                                    let _ = std::io::Write::write_all(&mut stream, &reply);
                                }
                                held.push(stream);
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                })
                .expect("spawn silent listener thread")
        };
        SilentTcpListener {
            port,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for SilentTcpListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
