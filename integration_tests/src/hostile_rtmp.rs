//! A hostile RTMP server of our own: a scripted server on 127.0.0.1 whose every accepted
//! connection runs one [`Scenario`] — an attack a malicious source could make on a server
//! that pulls from it (garbage, endless handshakes, lying lengths, AMF bombs, parameter-set
//! floods, codec flapping, slowloris trickles, aggregate bombs, timestamp jumps) — or, with
//! [`Scenario::Valid`], a well-behaved live stream that real clients (ffprobe, pullcast)
//! play.
//!
//! The protocol is written here, server side: the handshake is `rml_rtmp`'s, AMF0 values
//! are encoded by `rml_amf0`, chunks are framed by hand so they can lie. Media are real
//! H.264 + AAC tags encoded by ffmpeg at test time ([`crate::flv_clip`]).
//!
//! Bounded in time: a connection ends after [`CONNECTION_LIMIT`] at most, every blocking
//! call has a short timeout, and [`HostileRtmpServer::abort`] (or dropping the server) ends
//! every connection at once and stops accepting, so a test can stop an attack that is
//! taking the machine's memory. It attacks and counts; it never decides whether a test
//! passes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::rml_amf0::{self, Amf0Value};

use crate::flv_clip::{Clip, ClipSpec, FlvTag, TAG_AUDIO, TAG_VIDEO};

/// The longest a connection lasts, whatever its scenario.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(60);
/// How long the flooding scenarios flood before they close the connection.
pub const FLOOD_FOR: Duration = Duration::from_secs(10);
/// How long the paced scenarios (codec flapping, timestamp jumps) stream before closing.
pub const PACED_FOR: Duration = Duration::from_secs(8);
/// Read and write timeout of one socket call: how quickly a connection notices an abort.
const IO_SLICE: Duration = Duration::from_millis(100);
/// How long a connection that ends its script waits for the peer to read what it sent and
/// close its side.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// The message stream id `createStream` hands out.
pub const STREAM_ID: u32 = 1;
/// The chunk size the valid session announces.
pub const CHUNK_SIZE: usize = 4096;
/// The largest length an RTMP message header can state (24 bits).
pub const MAX_DECLARED_LENGTH: usize = 0xff_ffff;

// Chunk stream ids, as common servers use them.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_VIDEO: u32 = 4;
const CSID_AUDIO: u32 = 5;
const CSID_DATA: u32 = 6;

// Message type ids.
const MSG_SET_CHUNK_SIZE: u8 = 1;
const MSG_USER_CONTROL: u8 = 4;
const MSG_WINDOW_ACK_SIZE: u8 = 5;
const MSG_SET_PEER_BANDWIDTH: u8 = 6;
const MSG_VIDEO: u8 = 9;
const MSG_AMF3_COMMAND: u8 = 17;
const MSG_DATA: u8 = 18;
const MSG_COMMAND: u8 = 20;
const MSG_AGGREGATE: u8 = 22;

/// An 11-byte FLV video tag body: an AVC keyframe holding one 2-byte IDR slice NAL unit
/// (4-byte length prefix). Tiny on the wire; a server that copies the parameter sets in
/// front of every keyframe turns each into a copy of the whole configuration.
pub const TINY_KEYFRAME: [u8; 11] = [0x17, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88];

/// What each connection to the server does. Every scenario but [`Scenario::Valid`] is an
/// attack; its documentation says what a real attacker achieves against a server that
/// does not defend itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// A well-behaved live source: handshake, `connect`, `createStream`, `play`, then clip
    /// [`ClipSpec::A`] (320x180 H.264 + AAC, `onMetaData`) looped in real time.
    Valid,
    /// An HTTP answer instead of the RTMP handshake.
    GarbageInsteadOfHandshake,
    /// A handshake that completes, then random bytes as fast as the socket takes them.
    GarbageAfterHandshake,
    /// S0, then one byte of S1 every 100 ms: the handshake never completes.
    EndlessHandshake,
    /// After play: Set Chunk Size 0x7fffffff, then a video message that declares 16 MiB,
    /// its body trickled at 10 KiB/s.
    HugeChunkSize,
    /// After play: 60 chunk streams each open a message declaring 16 MiB and receive all of
    /// it but the last chunk, interleaved; then one byte a second.
    InterleavedPartialMessages,
    /// After play: messages whose header says more than their chunks carry (abandoned by a
    /// new header), interleaved with audio; then one that carries more than it says.
    LyingMessageLength,
    /// `connect` answered by `_result`, `onStatus` and `onMetaData` bodies nested a million
    /// levels deep, never by a usable answer.
    AmfDeepNesting,
    /// `connect` answered with arrays declaring 2^32-1 elements and one of 250 000 nulls,
    /// then properly; after play, `onMetaData` with 250 000 properties, five times.
    AmfHugeCounts,
    /// `connect` answered by strings whose length headers claim 64 KiB or 4 GiB and are cut
    /// short, and by 250 strings of 64 KiB; never by a usable answer.
    AmfGiantStrings,
    /// After play: an AVC sequence header of 31 SPS and 200 PPS of 64 000 bytes each, then
    /// [`TINY_KEYFRAME`] tags as fast as the socket takes them.
    ParameterSetFlood,
    /// The same flood with parameter sets of 30 000 bytes: the record (6.9 MB) fits one
    /// media message, so the AVC configuration's own caps must refuse it.
    ParameterSetFloodUnderMessageCap,
    /// After play: a record the server accepts (31 SPS and 30 PPS of 1 000 bytes, 61 KB),
    /// then the keyframe flood: only the two sets a keyframe names may go in front of it,
    /// and the flood must be slowed by backpressure, not queued.
    KeyframeFloodAfterValidSets,
    /// After play: the stream switches between clips [`ClipSpec::A`] and [`ClipSpec::B`]
    /// (two AVC and two AAC configurations) every 100 ms, in real time.
    CodecFlapping,
    /// After play and a second of media: one byte a second.
    Slowloris,
    /// After play and a second of media: aggregate messages of 15.6 MB, each 600 000
    /// [`TINY_KEYFRAME`] records, as fast as the socket takes them.
    AggregateBomb,
    /// After play: the clip in real time, its timestamps jumping by hours forwards and
    /// backwards and across the 32-bit wrap every half second.
    TimestampJumps,
}

impl Scenario {
    /// Every attack (all but [`Scenario::Valid`]).
    pub const ATTACKS: [Scenario; 16] = [
        Scenario::GarbageInsteadOfHandshake,
        Scenario::GarbageAfterHandshake,
        Scenario::EndlessHandshake,
        Scenario::HugeChunkSize,
        Scenario::InterleavedPartialMessages,
        Scenario::LyingMessageLength,
        Scenario::AmfDeepNesting,
        Scenario::AmfHugeCounts,
        Scenario::AmfGiantStrings,
        Scenario::ParameterSetFlood,
        Scenario::ParameterSetFloodUnderMessageCap,
        Scenario::KeyframeFloodAfterValidSets,
        Scenario::CodecFlapping,
        Scenario::Slowloris,
        Scenario::AggregateBomb,
        Scenario::TimestampJumps,
    ];

    /// A short name for logs and stream names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Valid => "valid",
            Scenario::GarbageInsteadOfHandshake => "garbage-instead-of-handshake",
            Scenario::GarbageAfterHandshake => "garbage-after-handshake",
            Scenario::EndlessHandshake => "endless-handshake",
            Scenario::HugeChunkSize => "huge-chunk-size",
            Scenario::InterleavedPartialMessages => "interleaved-partial-messages",
            Scenario::LyingMessageLength => "lying-message-length",
            Scenario::AmfDeepNesting => "amf-deep-nesting",
            Scenario::AmfHugeCounts => "amf-huge-counts",
            Scenario::AmfGiantStrings => "amf-giant-strings",
            Scenario::ParameterSetFlood => "parameter-set-flood",
            Scenario::ParameterSetFloodUnderMessageCap => "parameter-set-flood-under-message-cap",
            Scenario::KeyframeFloodAfterValidSets => "keyframe-flood-after-valid-sets",
            Scenario::CodecFlapping => "codec-flapping",
            Scenario::Slowloris => "slowloris",
            Scenario::AggregateBomb => "aggregate-bomb",
            Scenario::TimestampJumps => "timestamp-jumps",
        }
    }

    /// Whether the attack comes after a complete, valid `play` (so a client that never got
    /// there did not receive it).
    pub fn attacks_after_play(self) -> bool {
        !matches!(
            self,
            Scenario::GarbageInsteadOfHandshake
                | Scenario::GarbageAfterHandshake
                | Scenario::EndlessHandshake
                | Scenario::AmfDeepNesting
                | Scenario::AmfGiantStrings
        )
    }
}

/// Counters shared by the server and its connections.
#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicUsize,
    /// Connections that got through `play` (NetStream.Play.Start sent).
    played: AtomicUsize,
    /// Connections that began sending their attack proper.
    attacked: AtomicUsize,
    bytes_sent: AtomicU64,
    log: Mutex<Vec<String>>,
}

impl Stats {
    fn note(&self, line: String) {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
    }
}

/// The server: a listener on 127.0.0.1:0 and a thread per connection. Dropping it ends
/// every connection and joins the threads.
pub struct HostileRtmpServer {
    scenario: Scenario,
    port: u16,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<()>>,
}

impl HostileRtmpServer {
    /// Binds 127.0.0.1:0 and serves `scenario` on every connection. Media clips are
    /// encoded here (before the port opens) so no connection waits for ffmpeg.
    pub fn start(scenario: Scenario) -> HostileRtmpServer {
        if uses_clips(scenario) {
            Clip::get(ClipSpec::A);
            if scenario == Scenario::CodecFlapping {
                Clip::get(ClipSpec::B);
            }
        }
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the hostile RTMP server");
        listener
            .set_nonblocking(true)
            .expect("hostile listener set_nonblocking");
        let port = listener.local_addr().expect("hostile listener addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let abort = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let thread = {
            let (stop, abort, stats) = (stop.clone(), abort.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("hostile-{}", scenario.name()))
                .spawn(move || accept_loop(listener, scenario, stop, abort, stats))
                .expect("spawn the hostile server thread")
        };
        HostileRtmpServer {
            scenario,
            port,
            stop,
            abort,
            stats,
            thread: Some(thread),
        }
    }

    /// What its connections do.
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtmp://127.0.0.1:<port>/app/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/app/{name}", self.port)
    }

    /// The flag [`HostileRtmpServer::abort`] raises: hand it to whoever must be able to stop
    /// the attack (e.g. a [`crate::memory::Guard`]).
    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        self.abort.clone()
    }

    /// Ends every connection now and refuses new ones.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }

    /// Whether the attack was aborted.
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::Relaxed)
    }

    /// Connections that got through `play`.
    pub fn played(&self) -> usize {
        self.stats.played.load(Ordering::Relaxed)
    }

    /// Connections that began sending their attack proper (for [`Scenario::Valid`]: media).
    pub fn attacked(&self) -> usize {
        self.stats.attacked.load(Ordering::Relaxed)
    }

    /// Bytes written to all connections.
    pub fn bytes_sent(&self) -> u64 {
        self.stats.bytes_sent.load(Ordering::Relaxed)
    }

    /// One line per finished connection: how far it got and why it ended.
    pub fn log(&self) -> Vec<String> {
        self.stats
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Drop for HostileRtmpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn uses_clips(scenario: Scenario) -> bool {
    scenario.attacks_after_play()
}

fn accept_loop(
    listener: TcpListener,
    scenario: Scenario,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    stats: Arc<Stats>,
) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) && !abort.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let n = stats.accepted.fetch_add(1, Ordering::Relaxed) + 1;
                let halt = Halt {
                    stop: stop.clone(),
                    abort: abort.clone(),
                    peer_closed: Arc::new(AtomicBool::new(false)),
                    deadline: Instant::now() + CONNECTION_LIMIT,
                };
                let stats = stats.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("hostile-conn-{n}"))
                    .spawn(move || serve(stream, n, scenario, halt, stats));
                match spawned {
                    Ok(handle) => connections.push(handle),
                    Err(e) => eprintln!("[hostile] cannot spawn a connection thread: {e}"),
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // Aborted or stopped: the listener closes (new connections are refused) and every
    // connection notices within one I/O slice.
    drop(listener);
    for c in connections {
        let _ = c.join();
    }
}

fn serve(stream: TcpStream, n: usize, scenario: Scenario, halt: Halt, stats: Arc<Stats>) {
    let started = Instant::now();
    let result = Conn::new(stream, halt, stats.clone()).and_then(|mut conn| {
        let result = run(&mut conn, scenario);
        conn.finish();
        result
    });
    let how = match result {
        Ok(()) => "ended by the script".to_string(),
        Err(e) => format!("ended: {e}"),
    };
    stats.note(format!(
        "connection {n} ({}): {how} after {:.1} s",
        scenario.name(),
        started.elapsed().as_secs_f64()
    ));
}

/// When a connection must stop.
#[derive(Debug, Clone)]
struct Halt {
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    /// Set by the draining reader when the peer closes.
    peer_closed: Arc<AtomicBool>,
    deadline: Instant,
}

impl Halt {
    fn check(&self) -> io::Result<()> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(io::Error::other("stopped: the test called abort()"));
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("server stopped"));
        }
        if self.peer_closed.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer closed the connection",
            ));
        }
        if Instant::now() >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connection limit of {CONNECTION_LIMIT:?} reached"),
            ));
        }
        Ok(())
    }
}

/// A command the client sent.
#[derive(Debug)]
struct ClientCommand {
    name: String,
    transaction: f64,
}

/// One connection, server side.
struct Conn {
    stream: TcpStream,
    halt: Halt,
    stats: Arc<Stats>,
    /// Our outgoing chunk size.
    chunk_size: usize,
    input: ChunkDeserializer,
    /// Bytes read but not yet given to `input`.
    unread: Vec<u8>,
    drain: Option<JoinHandle<()>>,
}

impl Conn {
    fn new(stream: TcpStream, halt: Halt, stats: Arc<Stats>) -> io::Result<Conn> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(IO_SLICE))?;
        stream.set_write_timeout(Some(IO_SLICE))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            halt,
            stats,
            chunk_size: 128,
            input: ChunkDeserializer::new(),
            unread: Vec::new(),
            drain: None,
        })
    }

    /// Closes the connection the polite way: our side first (FIN after everything we
    /// sent), then reading until the peer closes too (at most [`CLOSE_WAIT`]), so the peer
    /// reads to the end and sees the close rather than a reset (closing with unread bytes
    /// would send one). Then joins the draining reader.
    fn finish(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let until = Instant::now() + CLOSE_WAIT;
        let stopped =
            |halt: &Halt| halt.abort.load(Ordering::Relaxed) || halt.stop.load(Ordering::Relaxed);
        if self.drain.is_some() {
            while Instant::now() < until
                && !self.halt.peer_closed.load(Ordering::Relaxed)
                && !stopped(&self.halt)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            let mut buf = vec![0u8; 64 * 1024];
            while Instant::now() < until && !stopped(&self.halt) {
                match self.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.halt.peer_closed.store(true, Ordering::Relaxed);
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }

    /// Writes all of `bytes`, retrying on timeouts until the connection must stop.
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.halt.check()?;
            match self.stream.write(bytes) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing")),
                Ok(n) => {
                    self.stats.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
                    bytes = bytes.get(n..).unwrap_or_default();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the peer sent (at least one byte), waiting until the connection must
    /// stop. A closed connection is an error.
    fn read_some(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            self.halt.check()?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection",
                    ))
                }
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and discards until the peer closes (`Ok`) or the connection must stop.
    fn hold_until_closed(&mut self) -> io::Result<()> {
        loop {
            match self.read_some() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// From now on a thread reads and discards what the peer sends (acknowledgements and the
    /// like), so the peer is never blocked on us, and notes when it closes.
    fn drain_in_background(&mut self) -> io::Result<()> {
        let mut reader = self.stream.try_clone()?;
        let halt = self.halt.clone();
        self.drain = Some(
            std::thread::Builder::new()
                .name("hostile-drain".to_string())
                .spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while halt.check().is_ok() {
                        match reader.read(&mut buf) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::WouldBlock
                                        | io::ErrorKind::TimedOut
                                        | io::ErrorKind::Interrupted
                                ) => {}
                            Err(_) => break,
                        }
                    }
                    halt.peer_closed.store(true, Ordering::Relaxed);
                })?,
        );
        Ok(())
    }

    /// Sleeps until `when`, in slices, noticing an abort or a closed peer.
    fn sleep_until(&self, when: Instant) -> io::Result<()> {
        loop {
            self.halt.check()?;
            let now = Instant::now();
            if now >= when {
                return Ok(());
            }
            std::thread::sleep((when - now).min(Duration::from_millis(50)));
        }
    }

    /// The server side of the handshake (`rml_rtmp`'s, the FP9 digest one when the client
    /// uses it); keeps the bytes after C2 for the chunk reader.
    fn handshake(&mut self) -> io::Result<()> {
        let mut handshake = Handshake::new(PeerType::Server);
        loop {
            let bytes = self.read_some()?;
            match handshake.process_bytes(&bytes) {
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    self.write(&response_bytes)?;
                }
                Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                }) => {
                    self.write(&response_bytes)?;
                    self.unread = remaining_bytes;
                    return Ok(());
                }
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("client handshake: {e:?}"),
                    ))
                }
            }
        }
    }

    /// The next AMF0 command from the client, following its Set Chunk Size on the way.
    fn next_command(&mut self) -> io::Result<ClientCommand> {
        let mut fresh = std::mem::take(&mut self.unread);
        loop {
            let message = self.input.get_next_message(&fresh).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("client chunks: {e:?}"))
            })?;
            fresh.clear();
            let Some(message) = message else {
                fresh = self.read_some()?;
                continue;
            };
            let data: &[u8] = &message.data;
            match message.type_id {
                MSG_SET_CHUNK_SIZE => {
                    if let Some(b) = data.get(..4) {
                        let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff;
                        self.input.set_max_chunk_size(size as usize).map_err(|e| {
                            io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}"))
                        })?;
                    }
                }
                MSG_COMMAND => {
                    let values =
                        rml_amf0::deserialize(&mut io::Cursor::new(data)).map_err(|e| {
                            io::Error::new(io::ErrorKind::InvalidData, format!("client AMF0: {e}"))
                        })?;
                    let mut values = values.into_iter();
                    if let Some(Amf0Value::Utf8String(name)) = values.next() {
                        let transaction = match values.next() {
                            Some(Amf0Value::Number(n)) => n,
                            _ => 0.0,
                        };
                        return Ok(ClientCommand { name, transaction });
                    }
                }
                _ => {}
            }
        }
    }

    /// One message, chunked with our chunk size: a type-0 chunk, then type-3 chunks.
    fn send_message(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let bytes = encode_message(
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
            self.chunk_size,
        );
        self.write(&bytes)
    }

    fn send_control(&mut self, type_id: u8, payload: &[u8]) -> io::Result<()> {
        self.send_message(CSID_CONTROL, 0, type_id, 0, payload)
    }

    fn set_chunk_size(&mut self, size: u32) -> io::Result<()> {
        self.send_control(MSG_SET_CHUNK_SIZE, &size.to_be_bytes())?;
        self.chunk_size = (size & 0x7fff_ffff).max(1) as usize;
        Ok(())
    }

    fn send_command(&mut self, stream_id: u32, values: Vec<Amf0Value>) -> io::Result<()> {
        let payload = amf0(values);
        self.send_message(CSID_COMMAND, 0, MSG_COMMAND, stream_id, &payload)
    }

    fn send_status(&mut self, code: &str, description: &str) -> io::Result<()> {
        self.send_command(
            STREAM_ID,
            vec![
                string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                object(&[
                    ("level", string("status")),
                    ("code", string(code)),
                    ("description", string(description)),
                ]),
            ],
        )
    }

    /// An FLV tag as an RTMP message on the play stream.
    fn send_tag(&mut self, kind: u8, timestamp: u32, body: &[u8]) -> io::Result<()> {
        let csid = match kind {
            TAG_AUDIO => CSID_AUDIO,
            TAG_VIDEO => CSID_VIDEO,
            _ => CSID_DATA,
        };
        self.send_message(csid, timestamp, kind, STREAM_ID, body)
    }

    /// Handshake, `connect` (answered by `answer`), `createStream`, `play`; returns once
    /// `NetStream.Play.Start` is sent, with the peer drained in the background from then on.
    fn play_session(&mut self, answer: ConnectAnswer) -> io::Result<()> {
        self.handshake()?;
        loop {
            let command = self.next_command()?;
            let tx = command.transaction;
            match command.name.as_str() {
                "connect" => {
                    self.send_control(MSG_WINDOW_ACK_SIZE, &2_500_000u32.to_be_bytes())?;
                    let mut bandwidth = 2_500_000u32.to_be_bytes().to_vec();
                    bandwidth.push(2); // dynamic
                    self.send_control(MSG_SET_PEER_BANDWIDTH, &bandwidth)?;
                    self.set_chunk_size(CHUNK_SIZE as u32)?;
                    let bombs = match answer {
                        ConnectAnswer::Success => Vec::new(),
                        ConnectAnswer::BombsOnly(bombs)
                        | ConnectAnswer::BombsThenSuccess(bombs) => bombs(tx),
                    };
                    if !bombs.is_empty() {
                        self.stats.attacked.fetch_add(1, Ordering::Relaxed);
                    }
                    for (type_id, payload) in bombs {
                        let csid = if type_id == MSG_DATA {
                            CSID_DATA
                        } else {
                            CSID_COMMAND
                        };
                        self.send_message(csid, 0, type_id, 0, &payload)?;
                    }
                    if matches!(answer, ConnectAnswer::BombsOnly(_)) {
                        // Never a usable answer: wait for the client to give up.
                        return Err(self.hold_until_closed().map_or_else(
                            |e| e,
                            |()| {
                                io::Error::new(
                                    io::ErrorKind::ConnectionAborted,
                                    "the peer gave up on connect and closed the connection",
                                )
                            },
                        ));
                    }
                    self.send_command(
                        0,
                        vec![
                            string("_result"),
                            Amf0Value::Number(tx),
                            object(&[
                                ("fmsVer", string("FMS/3,5,7,7009")),
                                ("capabilities", Amf0Value::Number(31.0)),
                            ]),
                            object(&[
                                ("level", string("status")),
                                ("code", string("NetConnection.Connect.Success")),
                                ("description", string("Connection succeeded.")),
                                ("objectEncoding", Amf0Value::Number(0.0)),
                            ]),
                        ],
                    )?;
                }
                "createStream" => {
                    self.send_command(
                        0,
                        vec![
                            string("_result"),
                            Amf0Value::Number(tx),
                            Amf0Value::Null,
                            Amf0Value::Number(f64::from(STREAM_ID)),
                        ],
                    )?;
                }
                "play" => {
                    // User Control: Stream Begin on the play stream.
                    let mut begin = vec![0u8, 0];
                    begin.extend_from_slice(&STREAM_ID.to_be_bytes());
                    self.send_control(MSG_USER_CONTROL, &begin)?;
                    self.send_status("NetStream.Play.Reset", "Playing and resetting stream.")?;
                    self.send_status("NetStream.Play.Start", "Started playing stream.")?;
                    let access = amf0(vec![
                        string("|RtmpSampleAccess"),
                        Amf0Value::Boolean(true),
                        Amf0Value::Boolean(true),
                    ]);
                    self.send_message(CSID_DATA, 0, MSG_DATA, STREAM_ID, &access)?;
                    self.stats.played.fetch_add(1, Ordering::Relaxed);
                    return self.drain_in_background();
                }
                // FCSubscribe, releaseStream, getStreamLength, _checkbw, ...: no answer
                // needed by pullcast or ffmpeg.
                _ => {}
            }
        }
    }

    /// `onMetaData` and both sequence headers of `clip`, at `timestamp`.
    fn send_clip_start(&mut self, clip: &Clip, timestamp: u32) -> io::Result<()> {
        if let Some(meta) = clip.metadata() {
            let body = meta.body.clone();
            self.send_tag(MSG_DATA, timestamp, &body)?;
        }
        for tag in [clip.video_config().clone(), clip.audio_config().clone()] {
            self.send_tag(tag.kind, timestamp, &tag.body)?;
        }
        Ok(())
    }

    /// Loops `clip`'s frames in real time for `length`, timestamps starting at `first_ts`
    /// and passed through `stamp`. Returns the next timestamp (before `stamp`).
    fn stream_clip(
        &mut self,
        clip: &Clip,
        first_ts: u32,
        length: Duration,
        stamp: impl Fn(u32) -> u32,
    ) -> io::Result<u32> {
        let started = Instant::now();
        let length_ms = length.as_millis() as u32;
        let mut loop_start = 0u32;
        loop {
            for tag in clip.frames() {
                let offset = loop_start + tag.timestamp;
                if offset >= length_ms {
                    return Ok(first_ts + length_ms);
                }
                self.sleep_until(started + Duration::from_millis(u64::from(offset)))?;
                self.send_tag(tag.kind, stamp(first_ts + offset), &tag.body)?;
            }
            loop_start += clip.duration_ms();
        }
    }

    /// A valid session with one second of clip A: the capture is streaming. Returns the
    /// next timestamp.
    fn play_one_second(&mut self) -> io::Result<u32> {
        self.play_session(ConnectAnswer::Success)?;
        let clip = Clip::get(ClipSpec::A);
        self.send_clip_start(&clip, 0)?;
        self.stream_clip(&clip, 0, Duration::from_secs(1), |t| t)
    }

    /// Sends `byte` once a second, forever (until the peer gives up).
    fn trickle_forever(&mut self, byte: u8) -> io::Result<()> {
        loop {
            self.write(&[byte])?;
            self.sleep_until(Instant::now() + Duration::from_secs(1))?;
        }
    }
}

/// How a [`Conn::play_session`] answers `connect`. The bombs get the transaction id.
#[derive(Clone, Copy)]
enum ConnectAnswer {
    /// `_result` NetConnection.Connect.Success.
    Success,
    /// These messages (type id, payload), and no usable answer ever.
    BombsOnly(fn(f64) -> Vec<(u8, Vec<u8>)>),
    /// These messages, then the success.
    BombsThenSuccess(fn(f64) -> Vec<(u8, Vec<u8>)>),
}

fn run(conn: &mut Conn, scenario: Scenario) -> io::Result<()> {
    match scenario {
        Scenario::Valid => valid(conn),
        Scenario::GarbageInsteadOfHandshake => garbage_instead_of_handshake(conn),
        Scenario::GarbageAfterHandshake => garbage_after_handshake(conn),
        Scenario::EndlessHandshake => endless_handshake(conn),
        Scenario::HugeChunkSize => huge_chunk_size(conn),
        Scenario::InterleavedPartialMessages => interleaved_partial_messages(conn),
        Scenario::LyingMessageLength => lying_message_length(conn),
        Scenario::AmfDeepNesting => conn.play_session(ConnectAnswer::BombsOnly(deep_nesting_bombs)),
        Scenario::AmfHugeCounts => amf_huge_counts(conn),
        Scenario::AmfGiantStrings => {
            conn.play_session(ConnectAnswer::BombsOnly(giant_string_bombs))
        }
        Scenario::ParameterSetFlood => {
            parameter_set_flood(conn, FLOOD_SPS, FLOOD_PPS, FLOOD_SET_SIZE)
        }
        Scenario::ParameterSetFloodUnderMessageCap => {
            parameter_set_flood(conn, FLOOD_SPS, FLOOD_PPS, 30_000)
        }
        Scenario::KeyframeFloodAfterValidSets => parameter_set_flood(conn, FLOOD_SPS, 30, 1_000),
        Scenario::CodecFlapping => codec_flapping(conn),
        Scenario::Slowloris => slowloris(conn),
        Scenario::AggregateBomb => aggregate_bomb(conn),
        Scenario::TimestampJumps => timestamp_jumps(conn),
    }
}

/// A live source that behaves: clip A looped in real time until the peer leaves.
fn valid(conn: &mut Conn) -> io::Result<()> {
    conn.play_session(ConnectAnswer::Success)?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    let clip = Clip::get(ClipSpec::A);
    conn.send_clip_start(&clip, 0)?;
    conn.stream_clip(&clip, 0, CONNECTION_LIMIT, |t| t)?;
    Ok(())
}

/// An HTTP error page where S0 should be. Against a client that parses whatever comes, an
/// attacker gets its handshake state machine to interpret text as RTMP; the least it
/// learns is what the client does with a non-RTMP port (a scanner's oracle).
fn garbage_instead_of_handshake(conn: &mut Conn) -> io::Result<()> {
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    let mut page = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n".to_vec();
    page.extend(noise(&mut 0x1234_5678, 64 * 1024));
    conn.write(&page)?;
    conn.hold_until_closed()
}

/// A handshake that completes, then random bytes as fast as the socket takes them (for
/// [`FLOOD_FOR`]). Random chunk headers declare messages of up to 16 MiB on random chunk
/// streams with random types, chunk sizes and timestamps: a parser that trusts them
/// buffers without bound, indexes out of range, or loops.
fn garbage_after_handshake(conn: &mut Conn) -> io::Result<()> {
    conn.handshake()?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let mut state = 0x9e37_79b9;
    while started.elapsed() < FLOOD_FOR {
        let block = noise(&mut state, 64 * 1024);
        conn.write(&block)?;
    }
    Ok(())
}

/// S0, then one byte of S1 every 100 ms: 1536 bytes would take two and a half minutes. A
/// client without a handshake deadline keeps the connection (a socket, a task, buffers)
/// forever; a thousand such sources exhaust it.
fn endless_handshake(conn: &mut Conn) -> io::Result<()> {
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    conn.write(&[3])?;
    conn.drain_in_background()?;
    let mut state = 0x0bad_f00d;
    loop {
        let byte = noise(&mut state, 1);
        conn.write(&byte)?;
        conn.sleep_until(Instant::now() + Duration::from_millis(100))?;
    }
}

/// After a valid start: Set Chunk Size 0x7fffffff (the spec's maximum), then a video
/// message declaring 16 MiB in one chunk, trickled at 10 KiB/s. A client that accepts the
/// size and sizes its buffers by it allocates 2 GiB per chunk stream; one that waits for
/// whole chunks holds 16 MiB per connection for half an hour.
fn huge_chunk_size(conn: &mut Conn) -> io::Result<()> {
    let ts = conn.play_one_second()?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    conn.set_chunk_size(0x7fff_ffff)?;
    let mut header = chunk_basic_header(0, CSID_VIDEO);
    header.extend(message_header(
        ts,
        MAX_DECLARED_LENGTH,
        MSG_VIDEO,
        STREAM_ID,
    ));
    conn.write(&header)?;
    let mut body = TINY_KEYFRAME.to_vec();
    body.resize(1024, 0);
    loop {
        conn.write(&body)?;
        body.fill(0);
        conn.sleep_until(Instant::now() + Duration::from_millis(100))?;
    }
}

/// Chunk streams opened by [`interleaved_partial_messages`].
pub const PARTIAL_STREAMS: u32 = 60;
/// Chunk size [`interleaved_partial_messages`] announces (a common one; nothing huge).
const PARTIAL_CHUNK: usize = 64 * 1024;

/// After a valid start: [`PARTIAL_STREAMS`] chunk streams each open a video message
/// declaring 16 MiB, interleaved chunk by chunk, and get all of it but the last chunk
/// (~960 MiB in all, as fast as the socket takes it); then one byte a second. Each partial
/// message is legal on its own; a client that bounds messages but not their sum over
/// chunk streams holds a gigabyte per connection.
fn interleaved_partial_messages(conn: &mut Conn) -> io::Result<()> {
    conn.play_one_second()?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    conn.set_chunk_size(PARTIAL_CHUNK as u32)?;
    let filler = vec![0u8; PARTIAL_CHUNK];
    let full_chunks = MAX_DECLARED_LENGTH / PARTIAL_CHUNK; // 255, leaving 65 535 bytes
    let first_csid = 7;
    for round in 0..full_chunks {
        for csid in first_csid..first_csid + PARTIAL_STREAMS {
            let mut chunk = if round == 0 {
                let mut h = chunk_basic_header(0, csid);
                h.extend(message_header(0, MAX_DECLARED_LENGTH, MSG_VIDEO, STREAM_ID));
                h
            } else {
                chunk_basic_header(3, csid)
            };
            if round == 0 {
                chunk.extend_from_slice(&TINY_KEYFRAME);
                chunk.extend_from_slice(filler.get(TINY_KEYFRAME.len()..).unwrap_or_default());
            } else {
                chunk.extend_from_slice(&filler);
            }
            conn.write(&chunk)?;
        }
    }
    // The last chunk of the first stream, a byte a second.
    conn.write(&chunk_basic_header(3, first_csid))?;
    conn.trickle_forever(0)
}

/// After a valid start: 200 video messages whose header declares 1 000 000 bytes but that
/// carry one chunk and are then abandoned by a new type-0 header on the same chunk stream,
/// interleaved with valid audio; then a message that declares 11 bytes and carries 4 096
/// more, which read as chunk headers name a chunk stream that never had one. A client that
/// trusts lengths reads the next headers as body or the body as headers; one that resyncs
/// badly keeps every abandoned buffer.
fn lying_message_length(conn: &mut Conn) -> io::Result<()> {
    let ts = conn.play_one_second()?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    let clip = Clip::get(ClipSpec::A);
    let audio: Vec<&FlvTag> = clip.frames().filter(|t| t.kind == TAG_AUDIO).collect();
    let mut body = TINY_KEYFRAME.to_vec();
    body.resize(CHUNK_SIZE, 0);
    for i in 0..200u32 {
        // Says 1 000 000, carries one chunk of it.
        let mut lie = chunk_basic_header(0, CSID_VIDEO);
        lie.extend(message_header(ts + i, 1_000_000, MSG_VIDEO, STREAM_ID));
        lie.extend_from_slice(&body);
        conn.write(&lie)?;
        if let Some(a) = audio.get(i as usize % audio.len().max(1)) {
            conn.send_tag(TAG_AUDIO, ts + i, &a.body)?;
        }
    }
    // Says 11, carries 11 + 4096: the extra bytes are 0xff, a type-3 chunk on chunk stream
    // 63, which never had a header.
    let mut more = chunk_basic_header(0, CSID_VIDEO);
    more.extend(message_header(
        ts + 200,
        TINY_KEYFRAME.len(),
        MSG_VIDEO,
        STREAM_ID,
    ));
    more.extend_from_slice(&TINY_KEYFRAME);
    more.extend(std::iter::repeat_n(0xffu8, 4096));
    conn.write(&more)?;
    // Whatever the client made of it, nothing more comes.
    loop {
        conn.sleep_until(Instant::now() + Duration::from_secs(1))?;
    }
}

/// Levels of nesting in [`deep_nesting_bombs`].
pub const NESTING_LEVELS: usize = 1_000_000;

/// `connect` "answered" by a `_result` whose command object is [`NESTING_LEVELS`] strict
/// arrays deep (5 MB), an `onStatus` of objects as deep, and an `onMetaData` of ECMA
/// arrays as deep. A recursive AMF0 decoder overflows its stack: the whole process
/// aborts, not just the connection.
fn deep_nesting_bombs(tx: f64) -> Vec<(u8, Vec<u8>)> {
    let mut result = amf0(vec![string("_result"), Amf0Value::Number(tx)]);
    for _ in 0..NESTING_LEVELS {
        result.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    result.push(0x05);
    let mut status = amf0(vec![
        string("onStatus"),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
    ]);
    for _ in 0..NESTING_LEVELS {
        status.extend_from_slice(&[0x03, 0, 1, b'a']);
    }
    status.push(0x05);
    let mut meta = amf0(vec![string("onMetaData")]);
    for _ in 0..NESTING_LEVELS {
        meta.extend_from_slice(&[0x08, 0, 0, 0, 1, 0, 1, b'a']);
    }
    meta.push(0x05);
    vec![
        (MSG_COMMAND, result),
        (MSG_COMMAND, status),
        (MSG_DATA, meta),
    ]
}

/// Elements (and `onMetaData` properties) in [`huge_count_bombs`].
pub const BOMB_ELEMENTS: usize = 250_000;

/// `_result`s for `connect` whose arrays declare 2^32-1 elements (strict and ECMA) and hold
/// a few, and one strict array of [`BOMB_ELEMENTS`] nulls, one byte each. A decoder that
/// reserves by the declared count allocates hundreds of GiB (an abort); one that does not
/// bound the count turns a 250 KB message into ~15 MB of values.
fn huge_count_bombs(tx: f64) -> Vec<(u8, Vec<u8>)> {
    let head = || amf0(vec![string("_result"), Amf0Value::Number(tx)]);
    let mut strict = head();
    strict.extend_from_slice(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05, 0x05, 0x05]);
    let mut ecma = head();
    ecma.extend_from_slice(&[0x08, 0xff, 0xff, 0xff, 0xff, 0, 1, b'a', 0x05, 0, 0, 0x09]);
    let mut nulls = head();
    nulls.extend_from_slice(&[0x0a]);
    nulls.extend_from_slice(&(BOMB_ELEMENTS as u32).to_be_bytes());
    nulls.extend(std::iter::repeat_n(0x05u8, BOMB_ELEMENTS));
    vec![
        (MSG_COMMAND, strict),
        (MSG_COMMAND, ecma),
        (MSG_COMMAND, nulls),
    ]
}

/// `onMetaData` with an ECMA array declaring 2^32-1 entries and holding [`BOMB_ELEMENTS`]
/// numbers (4.75 MB). A server that keeps metadata and shows it in its API stores a map of
/// a quarter million entries per capture and serialises it on every listing.
fn metadata_bomb() -> Vec<u8> {
    let mut meta = amf0(vec![string("onMetaData")]);
    meta.extend_from_slice(&[0x08, 0xff, 0xff, 0xff, 0xff]);
    for i in 0..BOMB_ELEMENTS {
        let key = format!("k{i:07}");
        meta.extend_from_slice(&(key.len() as u16).to_be_bytes());
        meta.extend_from_slice(key.as_bytes());
        meta.push(0x00);
        meta.extend_from_slice(&(i as f64).to_be_bytes());
    }
    meta.extend_from_slice(&[0, 0, 0x09]);
    meta
}

/// How many times [`amf_huge_counts`] sends [`metadata_bomb`].
pub const METADATA_BOMBS: usize = 5;

/// The huge counts as `connect`'s answers, then a proper session, then [`metadata_bomb`]
/// [`METADATA_BOMBS`] times with 100 ms of media after each, then the connection closes.
fn amf_huge_counts(conn: &mut Conn) -> io::Result<()> {
    conn.play_session(ConnectAnswer::BombsThenSuccess(huge_count_bombs))?;
    let clip = Clip::get(ClipSpec::A);
    conn.send_clip_start(&clip, 0)?;
    let mut ts = conn.stream_clip(&clip, 0, Duration::from_millis(500), |t| t)?;
    let bomb = metadata_bomb();
    for _ in 0..METADATA_BOMBS {
        conn.send_message(CSID_DATA, ts, MSG_DATA, STREAM_ID, &bomb)?;
        // Media keeps flowing between the bombs: the capture is not stalled, it is bombed.
        ts = conn.stream_clip(&clip, ts, Duration::from_millis(100), |t| t)?;
    }
    Ok(())
}

/// `connect` "answered" by strings that lie about their length: a string whose 2-byte
/// length says 65 535 with 16 bytes behind it, a long string (0x0c) and an XML document
/// (0x0f) whose 4-byte lengths say 4 GiB, an object property name of 65 535 bytes cut
/// short, and a `_result` of 250 honest 64 KiB strings (16 MB). A decoder that allocates by
/// the declared length reserves 4 GiB per string.
fn giant_string_bombs(tx: f64) -> Vec<(u8, Vec<u8>)> {
    let head = || amf0(vec![string("_result"), Amf0Value::Number(tx)]);
    let mut short = head();
    short.extend_from_slice(&[0x02, 0xff, 0xff]);
    short.extend_from_slice(b"sixteen bytes!!!");
    let mut long = head();
    long.extend_from_slice(&[0x0c, 0xff, 0xff, 0xff, 0xff]);
    long.extend_from_slice(b"sixteen bytes!!!");
    let mut xml = head();
    xml.extend_from_slice(&[0x0f, 0xff, 0xff, 0xff, 0xff]);
    xml.extend_from_slice(b"<a/>");
    let mut label = head();
    label.extend_from_slice(&[0x03, 0xff, 0xff]);
    label.extend_from_slice(b"eight b!");
    let mut many = head();
    many.push(0x05);
    for _ in 0..250 {
        many.extend_from_slice(&[0x02, 0xff, 0xff]);
        many.extend(std::iter::repeat_n(b'x', 0xffff));
    }
    // The same, flagged as an AMF3 command (format byte 0 first).
    let mut amf3 = vec![0u8];
    amf3.extend_from_slice(&long);
    vec![
        (MSG_COMMAND, short),
        (MSG_COMMAND, long),
        (MSG_COMMAND, xml),
        (MSG_COMMAND, label),
        (MSG_COMMAND, many),
        (MSG_AMF3_COMMAND, amf3),
    ]
}

/// SPS in [`flood_sequence_header`].
pub const FLOOD_SPS: usize = 31;
/// PPS in [`flood_sequence_header`].
pub const FLOOD_PPS: usize = 200;
/// Size of each parameter set in [`flood_sequence_header`].
pub const FLOOD_SET_SIZE: usize = 64_000;

/// An FLV AVC sequence header whose `AVCDecoderConfigurationRecord` holds [`FLOOD_SPS`]
/// SPS and [`FLOOD_PPS`] PPS of [`FLOOD_SET_SIZE`] bytes each (14.8 MB, framing valid):
/// the first SPS is clip A's real one padded with zeros, the others distinct filler.
pub fn flood_sequence_header(real_sps: &[u8]) -> Vec<u8> {
    flood_sequence_header_of(real_sps, FLOOD_SPS, FLOOD_PPS, FLOOD_SET_SIZE)
}

/// An FLV AVC sequence header with `sps_count` SPS (the first one `real_sps`, padded) and
/// `pps_count` PPS, each `set_size` bytes (`sps_count` ≤ 31, `pps_count` ≤ 255,
/// `set_size` ≤ 65 535).
pub fn flood_sequence_header_of(
    real_sps: &[u8],
    sps_count: usize,
    pps_count: usize,
    set_size: usize,
) -> Vec<u8> {
    let (sps_count, pps_count, set_size) =
        (sps_count.min(31), pps_count.min(255), set_size.min(65_535));
    let mut body = vec![0x17, 0x00, 0, 0, 0];
    let profile = real_sps.get(1..4).unwrap_or(&[0x42, 0xc0, 0x1f]);
    body.push(1);
    body.extend_from_slice(profile);
    body.push(0xff); // 4-byte NAL lengths
    body.push(0xe0 | sps_count as u8);
    for i in 0..sps_count {
        let mut sps = if i == 0 {
            real_sps.to_vec()
        } else {
            vec![0x67, 0x42, 0xc0, 0x1f, i as u8]
        };
        sps.resize(set_size, i as u8);
        body.extend_from_slice(&(set_size as u16).to_be_bytes());
        body.extend_from_slice(&sps);
    }
    body.push(pps_count as u8);
    for i in 0..pps_count {
        let mut pps = vec![0x68, (i & 0xff) as u8];
        pps.resize(set_size, (i % 251) as u8);
        body.extend_from_slice(&(set_size as u16).to_be_bytes());
        body.extend_from_slice(&pps);
    }
    body
}

/// After a valid start: [`flood_sequence_header`], then [`TINY_KEYFRAME`] tags (15 bytes
/// on the wire each, timestamps 33 ms apart) as fast as the socket takes them for
/// [`FLOOD_FOR`]; then the connection closes. A server that puts every parameter set in
/// front of every keyframe makes 14.8 MB of each 15 bytes received — a million-fold
/// amplification — and with unbounded queues between its stages it runs out of memory in
/// seconds.
fn parameter_set_flood(
    conn: &mut Conn,
    sps_count: usize,
    pps_count: usize,
    set_size: usize,
) -> io::Result<()> {
    conn.play_session(ConnectAnswer::Success)?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    let (sps, _) = Clip::get(ClipSpec::A).sps_pps();
    conn.set_chunk_size(64 * 1024)?;
    let header = flood_sequence_header_of(&sps, sps_count, pps_count, set_size);
    conn.send_tag(TAG_VIDEO, 0, &header)?;
    // The first keyframe with a full header, then type-2 chunks: 1-byte basic header, a
    // 3-byte timestamp delta, the 11-byte body.
    let mut first = chunk_basic_header(0, CSID_VIDEO);
    first.extend(message_header(0, TINY_KEYFRAME.len(), MSG_VIDEO, STREAM_ID));
    first.extend_from_slice(&TINY_KEYFRAME);
    conn.write(&first)?;
    let mut block = Vec::with_capacity(4096 * 15);
    for _ in 0..4096 {
        block.extend(chunk_basic_header(2, CSID_VIDEO));
        block.extend_from_slice(&[0, 0, 33]);
        block.extend_from_slice(&TINY_KEYFRAME);
    }
    let started = Instant::now();
    while started.elapsed() < FLOOD_FOR {
        conn.write(&block)?;
    }
    Ok(())
}

/// After a valid start: clips A and B alternate every 100 ms (each segment starts with
/// both sequence headers and a keyframe) in real time for [`PACED_FOR`], 80 switches of
/// both codecs; then the connection closes. A server that starts a new recording file (and
/// re-creates decoders and transcoders) on each change creates files as fast as the
/// source flaps.
fn codec_flapping(conn: &mut Conn) -> io::Result<()> {
    conn.play_session(ConnectAnswer::Success)?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    let clips = [Clip::get(ClipSpec::A), Clip::get(ClipSpec::B)];
    let segment_ms = 100u32;
    let started = Instant::now();
    let segments = PACED_FOR.as_millis() as u32 / segment_ms;
    for k in 0..segments {
        let clip = &clips[(k % 2) as usize];
        let start = k * segment_ms;
        conn.sleep_until(started + Duration::from_millis(u64::from(start)))?;
        conn.send_tag(TAG_VIDEO, start, &clip.video_config().body)?;
        conn.send_tag(TAG_AUDIO, start, &clip.audio_config().body)?;
        // The clip's tags of this segment's time window (clip A and B both have a
        // keyframe every 100 ms, at the same offsets).
        let within = start % clip.duration_ms();
        for tag in clip
            .frames()
            .filter(|t| t.timestamp >= within && t.timestamp < within + segment_ms)
        {
            let ts = start + (tag.timestamp - within);
            conn.sleep_until(started + Duration::from_millis(u64::from(ts)))?;
            conn.send_tag(tag.kind, ts, &tag.body)?;
        }
    }
    Ok(())
}

/// After a valid start and a second of media: the first byte of a video chunk header,
/// then one byte a second. Each byte resets a naive read timeout; a client that only times
/// out on a silent socket keeps the connection, its buffers and its capture forever.
fn slowloris(conn: &mut Conn) -> io::Result<()> {
    let ts = conn.play_one_second()?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    let mut message = chunk_basic_header(0, CSID_VIDEO);
    message.extend(message_header(ts, 1000, MSG_VIDEO, STREAM_ID));
    message.extend_from_slice(&TINY_KEYFRAME);
    message.resize(message.len() + 1000 - TINY_KEYFRAME.len(), 0);
    for byte in message {
        conn.write(&[byte])?;
        conn.sleep_until(Instant::now() + Duration::from_secs(1))?;
    }
    conn.trickle_forever(0)
}

/// Records in each aggregate of [`aggregate_bomb`].
pub const AGGREGATE_RECORDS: usize = 600_000;

/// After a valid start and a second of media: aggregate messages (type 22) of
/// [`AGGREGATE_RECORDS`] 26-byte records, each a [`TINY_KEYFRAME`] (15.6 MB), as fast as
/// the socket takes them for [`FLOOD_FOR`]; then the connection closes. One message becomes
/// 600 000 frames: a server that splits it into per-frame messages on unbounded queues
/// multiplies its memory by the per-message overhead.
fn aggregate_bomb(conn: &mut Conn) -> io::Result<()> {
    let ts = conn.play_one_second()?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    conn.set_chunk_size(64 * 1024)?;
    let mut aggregate = Vec::with_capacity(AGGREGATE_RECORDS * 26);
    for i in 0..AGGREGATE_RECORDS as u32 {
        aggregate.push(MSG_VIDEO);
        aggregate.extend_from_slice(&(TINY_KEYFRAME.len() as u32).to_be_bytes()[1..]);
        aggregate.extend_from_slice(&i.to_be_bytes()[1..]);
        aggregate.push((i >> 24) as u8);
        aggregate.extend_from_slice(&[0, 0, 0]);
        aggregate.extend_from_slice(&TINY_KEYFRAME);
        aggregate.extend_from_slice(&(11 + TINY_KEYFRAME.len() as u32).to_be_bytes());
    }
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < FLOOD_FOR {
        conn.send_message(CSID_VIDEO, ts + n, MSG_AGGREGATE, STREAM_ID, &aggregate)?;
        n += 1;
    }
    Ok(())
}

/// Offsets [`timestamp_jumps`] adds to the timestamps, one per half second, in turn.
const JUMPS: [u32; 8] = [
    0,
    3_600_000,   // an hour ahead
    0,           // and back
    0x7fff_0000, // 24 days ahead
    0xffff_f000, // just behind the 32-bit wrap (−4 s)
    0,
    0x8000_0000, // half the clock away
    10_000,      // 10 s ahead
];

/// After a valid start: clip A in real time for [`PACED_FOR`], its timestamps jumping
/// every half second by [`JUMPS`] (hours and days forwards and backwards, across the
/// 32-bit wrap); then the connection closes. A server that trusts timestamps computes
/// durations of days (files, buffers sized by time, A/V sync waiting forever) or
/// underflows.
fn timestamp_jumps(conn: &mut Conn) -> io::Result<()> {
    conn.play_session(ConnectAnswer::Success)?;
    conn.stats.attacked.fetch_add(1, Ordering::Relaxed);
    let clip = Clip::get(ClipSpec::A);
    conn.send_clip_start(&clip, 0)?;
    conn.stream_clip(&clip, 0, PACED_FOR, |t| {
        t.wrapping_add(JUMPS[(t / 500) as usize % JUMPS.len()])
    })?;
    Ok(())
}

/// The basic header of a chunk: format (0-3) and chunk stream id (2..=65599) in 1-3 bytes.
pub fn chunk_basic_header(fmt: u8, csid: u32) -> Vec<u8> {
    let fmt = (fmt & 3) << 6;
    match csid {
        2..=63 => vec![fmt | csid as u8],
        64..=319 => vec![fmt, (csid - 64) as u8],
        _ => {
            let id = csid.saturating_sub(64);
            vec![fmt | 1, (id & 0xff) as u8, (id >> 8) as u8]
        }
    }
}

/// The 11-byte type-0 message header (timestamp, length, type, stream id), with the 4-byte
/// extended timestamp after it when the timestamp does not fit 24 bits.
pub fn message_header(timestamp: u32, length: usize, type_id: u8, stream_id: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(15);
    let field = timestamp.min(0xff_ffff);
    h.extend_from_slice(&field.to_be_bytes()[1..]);
    h.extend_from_slice(&(length.min(MAX_DECLARED_LENGTH) as u32).to_be_bytes()[1..]);
    h.push(type_id);
    h.extend_from_slice(&stream_id.to_le_bytes());
    if field == 0xff_ffff {
        h.extend_from_slice(&timestamp.to_be_bytes());
    }
    h
}

/// One whole message as chunks of `chunk_size`: a type-0 chunk, then type-3 chunks (each
/// repeating the extended timestamp, as librtmp and ffmpeg expect).
pub fn encode_message(
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    let chunk_size = chunk_size.max(1);
    let extended = timestamp >= 0xff_ffff;
    let mut out = Vec::with_capacity(payload.len() + 16 + payload.len() / chunk_size * 8);
    out.extend(chunk_basic_header(0, csid));
    out.extend(message_header(timestamp, payload.len(), type_id, stream_id));
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.extend(chunk_basic_header(3, csid));
            if extended {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(piece);
    }
    out
}

/// AMF0 encoding of `values` (by `rml_amf0`; our values always encode).
fn amf0(values: Vec<Amf0Value>) -> Vec<u8> {
    rml_amf0::serialize(&values).unwrap_or_default()
}

fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_string())
}

fn object(props: &[(&str, Amf0Value)]) -> Amf0Value {
    Amf0Value::Object(
        props
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

/// `len` bytes of xorshift32 noise from `state` (which advances).
fn noise(state: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 17;
            *state ^= *state << 5;
            *state as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::ChunkDeserializer;

    #[test]
    fn encoded_messages_read_back_with_rml_rtmp() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        for ts in [0u32, 1234, 0x0100_0000] {
            let bytes = encode_message(CSID_VIDEO, ts, MSG_VIDEO, STREAM_ID, &payload, 4096);
            let mut d = ChunkDeserializer::new();
            d.set_max_chunk_size(4096).expect("chunk size");
            let m = d
                .get_next_message(&bytes)
                .expect("valid chunks")
                .expect("a whole message");
            assert_eq!(m.type_id, MSG_VIDEO);
            assert_eq!(m.message_stream_id, STREAM_ID);
            assert_eq!(m.timestamp.value, ts);
            assert_eq!(&m.data[..], &payload[..]);
        }
    }

    #[test]
    fn abort_ends_every_connection_and_refuses_new_ones() {
        let server = HostileRtmpServer::start(Scenario::EndlessHandshake);
        let addr = (Ipv4Addr::LOCALHOST, server.port());
        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut s0 = [0u8; 1];
        client.read_exact(&mut s0).expect("S0");
        assert_eq!(s0, [3]);
        server.abort();
        let started = Instant::now();
        let mut rest = Vec::new();
        // The trickle stops and the connection closes (EOF or reset) within a few slices.
        let _ = client.read_to_end(&mut rest);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        crate::wait::poll_until(Duration::from_secs(2), Duration::from_millis(20), || {
            TcpStream::connect(addr).is_err().then_some(())
        })
        .expect("new connections are refused after abort");
        assert_eq!(server.accepted(), 1);
        let line =
            crate::wait::poll_until(Duration::from_secs(2), Duration::from_millis(20), || {
                server.log().first().cloned()
            })
            .expect("the connection's end is logged");
        assert!(line.contains("abort"), "{line}");
    }

    #[test]
    fn basic_headers_of_every_width() {
        assert_eq!(chunk_basic_header(0, 4), vec![0x04]);
        assert_eq!(chunk_basic_header(3, 63), vec![0xff]);
        assert_eq!(chunk_basic_header(0, 64), vec![0x00, 0x00]);
        assert_eq!(chunk_basic_header(2, 66), vec![0x80, 0x02]);
        assert_eq!(chunk_basic_header(0, 320), vec![0x01, 0x00, 0x01]);
    }

    #[test]
    fn the_flood_header_is_a_well_framed_configuration_record() {
        let body = flood_sequence_header(&[0x67, 0x42, 0xc0, 0x1f, 0xda]);
        let record = &body[5..];
        assert_eq!(record[0], 1);
        assert_eq!(usize::from(record[5] & 0x1f), FLOOD_SPS);
        let mut pos = 6;
        for _ in 0..FLOOD_SPS {
            let len = usize::from(u16::from_be_bytes([record[pos], record[pos + 1]]));
            assert_eq!(len, FLOOD_SET_SIZE);
            assert_eq!(record[pos + 2] & 0x1f, 7);
            pos += 2 + len;
        }
        assert_eq!(usize::from(record[pos]), FLOOD_PPS);
        pos += 1;
        for _ in 0..FLOOD_PPS {
            let len = usize::from(u16::from_be_bytes([record[pos], record[pos + 1]]));
            assert_eq!(record[pos + 2] & 0x1f, 8);
            pos += 2 + len;
        }
        assert_eq!(pos, record.len());
        assert!(body.len() < MAX_DECLARED_LENGTH, "{}", body.len());
    }

    #[test]
    fn bombs_fit_in_one_message() {
        let giant: usize = giant_string_bombs(1.0)
            .iter()
            .map(|(_, p)| p.len())
            .max()
            .unwrap_or(0);
        let deep: usize = deep_nesting_bombs(1.0)
            .iter()
            .map(|(_, p)| p.len())
            .max()
            .unwrap_or(0);
        for (what, len) in [
            ("giant strings", giant),
            ("deep nesting", deep),
            ("metadata", metadata_bomb().len()),
            ("aggregate", AGGREGATE_RECORDS * 26),
        ] {
            assert!(len <= MAX_DECLARED_LENGTH, "{what}: {len}");
        }
    }
}
