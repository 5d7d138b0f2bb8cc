//! A small WebSocket client (RFC 6455) over a plain TCP socket, for the signalling tests
//! that need what a browser cannot do or say: any `Origin`, an `Authorization` header on the
//! upgrade, a refused upgrade's status and body. Text frames only (masked, as clients
//! must); pings are answered; every read has a deadline.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 1 << 20;

/// An open WebSocket.
pub struct WsClient {
    stream: TcpStream,
    buffered: Vec<u8>,
}

/// Why an upgrade did not happen: the HTTP status and body the server answered, or a
/// transport error (status 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

impl WsClient {
    /// Opens `ws://127.0.0.1:<port><path>` with `headers` added to the upgrade request (a
    /// `Host` among them replaces the default `127.0.0.1:<port>`).
    pub fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<WsClient, Refused> {
        let transport = |e: std::io::Error| Refused {
            status: 0,
            body: e.to_string(),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(transport)?;
        stream.set_nodelay(true).map_err(transport)?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n"
        );
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
        }
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).map_err(transport)?;
        let mut client = WsClient {
            stream,
            buffered: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let head_end = loop {
            if let Some(i) = client.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            client.fill(deadline).map_err(|e| Refused {
                status: 0,
                body: format!("no upgrade answer: {e}"),
            })?;
        };
        let head = String::from_utf8_lossy(&client.buffered[..head_end]).to_string();
        client.buffered.drain(..head_end);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        if status == 101 {
            return Ok(client);
        }
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while client.buffered.len() < length && client.fill(deadline).is_ok() {}
        let body = String::from_utf8_lossy(&client.buffered[..length.min(client.buffered.len())])
            .to_string();
        Err(Refused { status, body })
    }

    fn fill(&mut self, deadline: Instant) -> std::io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "deadline passed",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buf = [0u8; 16 * 1024];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        self.buffered.extend_from_slice(&buf[..n]);
        Ok(())
    }

    fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame)
    }

    /// Sends one text message.
    pub fn send_text(&mut self, text: &str) {
        self.send_frame(0x1, text.as_bytes())
            .unwrap_or_else(|e| panic!("WebSocket send: {e}"));
    }

    /// Sends `value` as JSON text.
    pub fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string());
    }

    /// The next text message, parsed as JSON; `None` at the deadline or when the server
    /// closes.
    pub fn recv_json(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut message = Vec::new();
        loop {
            let Frame {
                fin,
                opcode,
                payload,
            } = self.next_frame(deadline)?;
            match opcode {
                0x9 => {
                    let _ = self.send_frame(0xA, &payload);
                }
                0xA => {}
                0x8 => return None,
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if message.len() > MAX_MESSAGE {
                        return None;
                    }
                    if fin {
                        let text = String::from_utf8_lossy(&message).to_string();
                        return Some(serde_json::from_str(&text).unwrap_or(Value::String(text)));
                    }
                }
                _ => return None,
            }
        }
    }

    /// Waits for the first message that satisfies `pred`; panics with what came instead.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.recv_json(deadline.saturating_duration_since(Instant::now())) {
                Some(m) if pred(&m) => return m,
                Some(m) => seen.push(m),
                None => break,
            }
        }
        panic!("no WebSocket message like {what} within {timeout:?}; got {seen:?}");
    }

    fn next_frame(&mut self, deadline: Instant) -> Option<Frame> {
        loop {
            if let Some((used, frame)) = parse_frame(&self.buffered) {
                self.buffered.drain(..used);
                return Some(frame);
            }
            if self.buffered.len() > MAX_MESSAGE + 16 {
                return None;
            }
            self.fill(deadline).ok()?;
        }
    }
}

/// One frame from the server.
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// One complete server frame at the start of `buf`, and the bytes it used.
fn parse_frame(buf: &[u8]) -> Option<(usize, Frame)> {
    let b0 = *buf.first()?;
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mask: Option<[u8; 4]> = if masked {
        let m = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    let data = buf.get(at..at.checked_add(len)?)?;
    let payload = match mask {
        Some(m) => data.iter().enumerate().map(|(i, b)| b ^ m[i % 4]).collect(),
        None => data.to_vec(),
    };
    Some((
        at + len,
        Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload,
        },
    ))
}
