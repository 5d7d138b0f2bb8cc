//! Tests of [`PlaySession`] against `rml_rtmp`'s *server* session (an independent
//! implementation of the other side), plus hand-made byte vectors for what that server
//! cannot produce (media on message stream 0, StreamNotFound, aggregates, ...).

#![allow(clippy::unwrap_used)]

use super::metadata::META_VALUE_COST;
use super::*;
use crate::rtmp::amf0::{amf0_too_big, decode_amf0, MAX_AMF0_DEPTH};
use crate::rtmp::chunk::ChunkDecoder;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

fn config() -> PlaySessionConfig {
    PlaySessionConfig {
        url: RtmpUrl::parse("rtmp://127.0.0.1/live/cam?token=7").unwrap(),
        chunk_size: 4096,
        buffer_length_ms: 1000,
    }
}

/// A fake RTMP server built from rml_rtmp's server session.
struct FakeServer {
    handshake: Handshake,
    session: Option<ServerSession>,
    events: Vec<ServerSessionEvent>,
    /// Bytes waiting to go to the client.
    to_client: Vec<u8>,
    /// Every byte the client sent, handshake included.
    from_client: Vec<u8>,
    auto_accept: bool,
}

impl FakeServer {
    fn new(auto_accept: bool) -> Self {
        Self {
            handshake: Handshake::new(PeerType::Server),
            session: None,
            events: Vec::new(),
            to_client: Vec::new(),
            from_client: Vec::new(),
            auto_accept,
        }
    }

    fn receive(&mut self, bytes: &[u8]) {
        self.from_client.extend_from_slice(bytes);
        if self.session.is_none() {
            match self.handshake.process_bytes(bytes).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.to_client.extend(response_bytes);
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.to_client.extend(response_bytes);
                    let mut cfg = ServerSessionConfig::new();
                    cfg.window_ack_size = 5000;
                    let (session, results) = ServerSession::new(cfg).unwrap();
                    self.session = Some(session);
                    self.apply(results);
                    let results = self.session().handle_input(&remaining_bytes).unwrap();
                    self.apply(results);
                }
            }
            return;
        }
        let results = self.session().handle_input(bytes).unwrap();
        self.apply(results);
    }

    fn session(&mut self) -> &mut ServerSession {
        self.session.as_mut().unwrap()
    }

    fn apply(&mut self, results: Vec<ServerSessionResult>) {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    self.to_client.extend(packet.bytes)
                }
                ServerSessionResult::RaisedEvent(event) => {
                    let request = match &event {
                        ServerSessionEvent::ConnectionRequested { request_id, .. }
                        | ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                            Some(*request_id)
                        }
                        _ => None,
                    };
                    self.events.push(event);
                    if let (Some(id), true) = (request, self.auto_accept) {
                        let results = self.session().accept_request(id).unwrap();
                        self.apply(results);
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
    }
}

/// Moves bytes both ways until both sides are quiet; returns the client's events.
fn pump(client: &mut PlaySession, server: &mut FakeServer) -> Vec<SessionEvent> {
    let mut events = Vec::new();
    for _ in 0..50 {
        let out = client.take_outbound();
        if !out.is_empty() {
            server.receive(&out);
        }
        let back = std::mem::take(&mut server.to_client);
        if !back.is_empty() {
            client.handle_input(&back).unwrap();
        }
        events.extend(std::iter::from_fn(|| client.poll_event()));
        if out.is_empty() && back.is_empty() {
            break;
        }
    }
    events
}

fn started() -> (PlaySession, FakeServer, Vec<SessionEvent>) {
    let mut client = PlaySession::new(config()).unwrap();
    let mut server = FakeServer::new(true);
    let events = pump(&mut client, &mut server);
    (client, server, events)
}

fn stream_id(server: &FakeServer) -> u32 {
    server
        .events
        .iter()
        .find_map(|e| match e {
            ServerSessionEvent::PlayStreamRequested { stream_id, .. } => Some(*stream_id),
            _ => None,
        })
        .unwrap()
}

#[test]
fn connects_creates_a_stream_and_plays_with_the_query() {
    let (_client, server, events) = started();
    assert!(events.contains(&SessionEvent::HandshakeComplete));
    // rml_rtmp's server also sends `onStatus NetStream.Data.Start` as a data message.
    assert!(
        !events.iter().any(|e| matches!(
            e,
            SessionEvent::Ignored { .. } | SessionEvent::Failed { .. }
        )),
        "{events:?}"
    );
    assert!(events.contains(&SessionEvent::Connected));
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::PlayStarted { .. })));
    let app = server.events.iter().find_map(|e| match e {
        ServerSessionEvent::ConnectionRequested { app_name, .. } => Some(app_name.clone()),
        _ => None,
    });
    assert_eq!(app.as_deref(), Some("live"));
    let key = server.events.iter().find_map(|e| match e {
        ServerSessionEvent::PlayStreamRequested { stream_key, .. } => Some(stream_key.clone()),
        _ => None,
    });
    assert_eq!(key.as_deref(), Some("cam?token=7"));
    // rml_rtmp's server raises no event for SetChunkSize, but our `connect` (~220 bytes, one
    // 4096-byte chunk) only parses on its side because it applied our chunk size first.
}

#[test]
fn media_metadata_and_pings_flow() {
    let (mut client, mut server, _) = started();
    let sid = stream_id(&server);
    let video = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
    let audio = Bytes::from_static(&[0xaf, 1, 0x21, 0x10]);
    let p = server
        .session()
        .send_video_data(sid, video.clone(), RtmpTimestamp::new(40), false)
        .unwrap();
    server.to_client.extend(p.bytes);
    let p = server
        .session()
        .send_audio_data(sid, audio.clone(), RtmpTimestamp::new(43), false)
        .unwrap();
    server.to_client.extend(p.bytes);
    let mut meta = rml_rtmp::sessions::StreamMetadata::new();
    meta.video_width = Some(1280);
    let p = server.session().send_metadata(sid, &meta).unwrap();
    server.to_client.extend(p.bytes);
    let (p, _) = server.session().send_ping_request().unwrap();
    server.to_client.extend(p.bytes);
    let events = pump(&mut client, &mut server);
    assert!(events.contains(&SessionEvent::Video {
        timestamp: 40,
        data: video
    }));
    assert!(events.contains(&SessionEvent::Audio {
        timestamp: 43,
        data: audio
    }));
    let meta = events.iter().find_map(|e| match e {
        SessionEvent::Metadata(props) => Some(props.clone()),
        _ => None,
    });
    let meta = meta.unwrap();
    assert!(meta.contains(&("width".to_string(), MetaValue::Number(1280.0))));
    assert!(server
        .events
        .iter()
        .any(|e| matches!(e, ServerSessionEvent::PingResponseReceived { .. })));
}

#[test]
fn acknowledgements_count_total_bytes() {
    let (mut client, mut server, _) = started();
    let sid = stream_id(&server);
    // The fake server asked for an ack every 5000 bytes; send ~20 kB.
    for i in 0..10u32 {
        let p = server
            .session()
            .send_video_data(
                sid,
                Bytes::from(vec![0x27; 2000]),
                RtmpTimestamp::new(i * 33),
                false,
            )
            .unwrap();
        server.to_client.extend(p.bytes);
        pump(&mut client, &mut server);
    }
    let acks: Vec<u32> = server
        .events
        .iter()
        .filter_map(|e| match e {
            ServerSessionEvent::AcknowledgementReceived { bytes_received } => Some(*bytes_received),
            _ => None,
        })
        .collect();
    assert!(acks.len() >= 3, "{acks:?}");
    // Totals, strictly growing, each at least one window beyond the previous.
    for pair in acks.windows(2) {
        assert!(pair[1] >= pair[0] + 5000, "{acks:?}");
    }
    assert!(*acks.last().unwrap() as u64 <= client.bytes_received());
    assert!(*acks.last().unwrap() as u64 > 15_000);
}

/// Frames a raw message from the server side, on any stream id and chunk stream.
fn raw_message(csid: u8, type_id: u8, stream_id: u32, ts: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![csid];
    v.extend_from_slice(&ts.to_be_bytes()[1..]);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&stream_id.to_le_bytes());
    v.extend_from_slice(body);
    v
}

fn amf0(values: Vec<Amf0Value>) -> Vec<u8> {
    rml_rtmp::rml_amf0::serialize(&values).unwrap()
}

fn status(code: &str, level: &str) -> Vec<u8> {
    let mut info = HashMap::new();
    info.insert("level".to_string(), string(level));
    info.insert("code".to_string(), string(code));
    info.insert("description".to_string(), string("from the test"));
    amf0(vec![
        string("onStatus"),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::Object(info),
    ])
}

#[test]
fn media_on_message_stream_0_is_kept() {
    // ffmpeg's `-listen` server sends its media on message stream id 0.
    let (mut client, mut server, _) = started();
    server
        .to_client
        .extend(raw_message(7, 9, 0, 100, &[0x17, 0, 0, 0, 0, 1]));
    let events = pump(&mut client, &mut server);
    assert!(events.contains(&SessionEvent::Video {
        timestamp: 100,
        data: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1])
    }));
}

#[test]
fn status_codes_map_to_events() {
    let (mut client, mut server, _) = started();
    for (code, level) in [
        ("NetStream.Play.StreamNotFound", "error"),
        ("NetStream.Play.UnpublishNotify", "status"),
        ("NetStream.Play.Stop", "status"),
        ("NetStream.Play.PublishNotify", "status"),
        ("Some.Vendor.Error", "error"),
    ] {
        server
            .to_client
            .extend(raw_message(5, 20, 1, 0, &status(code, level)));
    }
    let events = pump(&mut client, &mut server);
    let interesting: Vec<&SessionEvent> = events
        .iter()
        .filter(|e| !matches!(e, SessionEvent::Video { .. } | SessionEvent::Audio { .. }))
        .collect();
    assert!(
        matches!(interesting[0], SessionEvent::Failed { reason } if reason.contains("stream not found"))
    );
    assert!(matches!(interesting[1], SessionEvent::Unpublished { .. }));
    assert!(matches!(interesting[2], SessionEvent::Ended { .. }));
    assert!(
        matches!(interesting[3], SessionEvent::Status { code, .. } if code == "NetStream.Play.PublishNotify")
    );
    assert!(
        matches!(interesting[4], SessionEvent::Failed { reason } if reason.contains("Some.Vendor.Error"))
    );
}

#[test]
fn refused_connect_fails_with_the_servers_words() {
    let mut client = PlaySession::new(config()).unwrap();
    let mut server = FakeServer::new(false);
    pump(&mut client, &mut server);
    let id = server
        .events
        .iter()
        .find_map(|e| match e {
            ServerSessionEvent::ConnectionRequested { request_id, .. } => Some(*request_id),
            _ => None,
        })
        .unwrap();
    let results = server
        .session()
        .reject_request(id, "NetConnection.Connect.Rejected", "no such app")
        .unwrap();
    server.apply(results);
    let events = pump(&mut client, &mut server);
    assert!(
        events.iter().any(|e| matches!(e, SessionEvent::Failed { reason } if reason.contains("refused connect") && reason.contains("no such app"))),
        "{events:?}"
    );
}

#[test]
fn set_peer_bandwidth_is_answered_and_unknown_commands_reported_once() {
    let (mut client, mut server, _) = started();
    let mut ser = ChunkSerializer::new();
    for _ in 0..2 {
        let p = RtmpMessage::Amf0Command {
            command_name: "onVendorThing".to_string(),
            transaction_id: 0.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![],
        }
        .into_message_payload(RtmpTimestamp::new(0), 0)
        .unwrap();
        server
            .to_client
            .extend(ser.serialize(&p, true, false).unwrap().bytes);
    }
    // Set Peer Bandwidth 7777, dynamic.
    server
        .to_client
        .extend(raw_message(2, 6, 0, 0, &[0, 0, 0x1e, 0x61, 2]));
    let events = pump_raw(&mut client, &mut server);
    let ignored: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Ignored { what } if what.contains("onVendorThing")))
        .collect();
    assert_eq!(ignored.len(), 1, "{events:?}");
    // Decode what the client sent back with our own decoder: a Window Ack Size of 7777.
    let mut d = ChunkDecoder::new();
    d.set_chunk_size(4096).unwrap();
    d.push(&client.take_outbound());
    let mut found = false;
    while let Ok(Some(m)) = d.next_message() {
        if m.type_id == 5 && m.payload.as_ref() == 7777u32.to_be_bytes() {
            found = true;
        }
    }
    assert!(found, "no Window Acknowledgement Size answer");
}

/// Delivers the server's bytes without sending the client's answer back.
fn pump_raw(client: &mut PlaySession, server: &mut FakeServer) -> Vec<SessionEvent> {
    let back = std::mem::take(&mut server.to_client);
    client.handle_input(&back).unwrap();
    std::iter::from_fn(|| client.poll_event()).collect()
}

#[test]
fn aggregate_messages_are_split() {
    let (mut client, mut server, _) = started();
    let mut body = Vec::new();
    for (type_id, ts, data) in [(9u8, 500u32, vec![0x17, 1]), (8, 523, vec![0xaf, 1])] {
        body.push(type_id);
        body.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        body.extend_from_slice(&ts.to_be_bytes()[1..]);
        body.extend_from_slice(&[0, 0, 0, 1]);
        body.extend_from_slice(&data);
        body.extend_from_slice(&((data.len() + 11) as u32).to_be_bytes());
    }
    server.to_client.extend(raw_message(6, 22, 1, 1000, &body));
    let events = pump(&mut client, &mut server);
    assert!(events.contains(&SessionEvent::Video {
        timestamp: 1000,
        data: Bytes::from_static(&[0x17, 1])
    }));
    assert!(events.contains(&SessionEvent::Audio {
        timestamp: 1023,
        data: Bytes::from_static(&[0xaf, 1])
    }));
}

#[test]
fn a_non_rtmp_server_is_named_as_such() {
    let mut client = PlaySession::new(config()).unwrap();
    let err = client
        .handle_input(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        .unwrap_err();
    assert!(err.to_string().contains("not the RTMP version"), "{err}");
}

#[test]
fn garbage_after_a_good_session_start_never_panics() {
    let mut seed = 0x9e37_79b9u32;
    for round in 0..200 {
        let (mut client, _server, _) = started();
        let len = 1 + (round * 37) % 3000;
        let noise = crate::test_vectors::noise(&mut seed, len);
        for piece in noise.chunks(1 + round % 200) {
            if client.handle_input(piece).is_err() {
                break;
            }
        }
        while client.poll_event().is_some() {}
    }
}

#[test]
fn garbage_instead_of_a_handshake_is_an_error_not_a_panic() {
    let mut client = PlaySession::new(config()).unwrap();
    // Starts with the right version byte, so the noise reaches the handshake itself.
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    // Either the handshake rejects it or it completes and the chunk layer rejects what
    // follows; nothing may panic.
    let _ = client.handle_input(&garbage);
    let _ = client.handle_input(&garbage);
    while client.poll_event().is_some() {}
}

#[test]
fn stream_eof_is_not_the_end_of_the_connection() {
    // What nginx-rtmp sends a player when the publisher leaves: StreamEOF (user control
    // event 1) for stream 1, then UnpublishNotify. The session goes on; media follows.
    let (mut client, mut server, _) = started();
    server
        .to_client
        .extend(raw_message(2, 4, 0, 0, &[0, 1, 0, 0, 0, 1]));
    server.to_client.extend(raw_message(
        5,
        20,
        1,
        0,
        &status("NetStream.Play.UnpublishNotify", "status"),
    ));
    server
        .to_client
        .extend(raw_message(7, 9, 1, 40, &[0x17, 0, 0, 0, 0, 1]));
    let events = pump(&mut client, &mut server);
    let unpublished: Vec<&SessionEvent> = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Unpublished { .. }))
        .collect();
    assert_eq!(unpublished.len(), 2, "{events:?}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, SessionEvent::Ended { .. } | SessionEvent::Failed { .. })));
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Video { timestamp: 40, .. })));
}

// ---------------------------------------------------------------------------------------
// Commands from the server: FCSubscribe and the rest of the Adobe-era calls.
// ---------------------------------------------------------------------------------------

/// A command the client sent: name, transaction id, message stream id, values after the
/// command object.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    name: String,
    tx: f64,
    stream_id: u32,
    args: Vec<Amf0Value>,
}

/// The messages in bytes the client sent, from a decoder at `chunk_size` that follows the
/// client's SetChunkSize.
fn client_messages(bytes: &[u8], chunk_size: u32) -> Vec<RawMessage> {
    let mut d = ChunkDecoder::new();
    d.set_chunk_size(chunk_size).unwrap();
    d.push(bytes);
    let mut messages = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        if m.type_id == 1 {
            let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
            d.set_chunk_size(size).unwrap();
        }
        messages.push(m);
    }
    messages
}

fn commands(messages: &[RawMessage]) -> Vec<Sent> {
    messages
        .iter()
        .filter(|m| m.type_id == 20)
        .map(|m| {
            let mut values =
                rml_rtmp::rml_amf0::deserialize(&mut std::io::Cursor::new(&m.payload[..]))
                    .unwrap()
                    .into_iter();
            let name = match values.next() {
                Some(Amf0Value::Utf8String(s)) => s,
                other => panic!("command without a name: {other:?}"),
            };
            let tx = match values.next() {
                Some(Amf0Value::Number(n)) => n,
                other => panic!("command without a transaction id: {other:?}"),
            };
            let object = values.next();
            if name != "connect" {
                assert_eq!(object, Some(Amf0Value::Null), "{name}: command object");
            }
            Sent {
                name,
                tx,
                stream_id: m.stream_id,
                args: values.collect(),
            }
        })
        .collect()
}

/// Everything the client has sent since the handshake (C0+C1 and C2: 3073 bytes).
fn sent_since_handshake(server: &FakeServer) -> Vec<RawMessage> {
    client_messages(&server.from_client[3073..], 128)
}

/// The commands waiting in the client's outbound queue (after `started()`, at 4096).
fn answers(client: &mut PlaySession) -> Vec<Sent> {
    commands(&client_messages(&client.take_outbound(), 4096))
}

fn sent_tx(server: &FakeServer, name: &str) -> f64 {
    commands(&sent_since_handshake(server))
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("the client sent no {name}"))
        .tx
}

fn info(level: &str, code: &str, description: &str) -> Amf0Value {
    let mut map = HashMap::new();
    map.insert("level".to_string(), string(level));
    map.insert("code".to_string(), string(code));
    map.insert("description".to_string(), string(description));
    Amf0Value::Object(map)
}

/// An AMF0 command body: name, transaction id, null, arguments.
fn call(name: &str, tx: f64, args: Vec<Amf0Value>) -> Vec<u8> {
    let mut values = vec![string(name), Amf0Value::Number(tx), Amf0Value::Null];
    values.extend(args);
    amf0(values)
}

/// Frames a message of any length at the client's receive chunk size (4096) after
/// `started()`: one type-0 chunk, then type-3 continuations.
fn chunked(csid: u8, type_id: u8, stream_id: u32, ts: u32, body: &[u8]) -> Vec<u8> {
    let mut v = raw_message(csid, type_id, stream_id, ts, &[]);
    v[4..7].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    for (i, piece) in body.chunks(4096).enumerate() {
        if i > 0 {
            v.push(0xc0 | csid);
        }
        v.extend_from_slice(piece);
    }
    v
}

const VIDEO: [u8; 6] = [0x17, 0, 0, 0, 0, 1];

/// Queues `bodies` as command messages (message stream 0 and 1 alternately), then a video
/// message; delivers them; returns the events other than that video, and checks that the
/// video still came out.
fn deliver_commands(
    client: &mut PlaySession,
    server: &mut FakeServer,
    bodies: &[Vec<u8>],
) -> Vec<SessionEvent> {
    for (i, body) in bodies.iter().enumerate() {
        server
            .to_client
            .extend(chunked(5, 20, (i % 2) as u32, 0, body));
    }
    server.to_client.extend(raw_message(7, 9, 1, 4321, &VIDEO));
    let mut events = pump_raw(client, server);
    let video = SessionEvent::Video {
        timestamp: 4321,
        data: Bytes::from_static(&VIDEO),
    };
    assert_eq!(events.last(), Some(&video), "the session broke: {events:?}");
    events.pop();
    events
}

#[test]
fn fc_subscribe_goes_out_after_create_stream_like_ffmpeg_and_librtmp() {
    // ffmpeg's rtmpproto.c and librtmp answer connect's _result with (window ack size),
    // createStream, then FCSubscribe <playpath>; play follows createStream's _result. A
    // player sends no releaseStream / FCPublish.
    let (_client, server, _) = started();
    let sent = sent_since_handshake(&server);
    assert_eq!(sent[0].type_id, 1, "SetChunkSize comes first");
    let names: Vec<String> = commands(&sent).into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["connect", "createStream", "FCSubscribe", "play"]);
    let cmds = commands(&sent);
    let txs: Vec<f64> = cmds.iter().map(|c| c.tx).collect();
    assert_eq!(txs, [1.0, 2.0, 3.0, 4.0]);
    let fc = &cmds[2];
    assert_eq!(fc.stream_id, 0);
    assert_eq!(fc.args, vec![string("cam?token=7")]);
    assert_eq!(cmds[3].stream_id, stream_id(&server));
    // The window acknowledgement size goes before createStream, as ffmpeg sends it.
    let window = sent.iter().position(|m| m.type_id == 5).unwrap();
    let create = sent
        .iter()
        .position(|m| m.type_id == 20 && m.payload.windows(12).any(|w| w == b"createStream"))
        .unwrap();
    assert!(window < create);
}

#[test]
fn on_fc_subscribe_start_informs_and_its_errors_fail_with_the_servers_words() {
    let (mut client, mut server, _) = started();
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[
            call(
                "onFCSubscribe",
                0.0,
                vec![info(
                    "status",
                    "NetStream.Play.Start",
                    "FCSubscribe to stream cam.",
                )],
            ),
            call(
                "onFCSubscribe",
                0.0,
                vec![info(
                    "error",
                    "NetStream.Play.StreamNotFound",
                    "No such stream: cam",
                )],
            ),
            call(
                "onFCSubscribe",
                0.0,
                vec![info("error", "NetStream.Play.Failed", "Upstream is down")],
            ),
            call(
                "onFCSubscribe",
                0.0,
                vec![info("error", "Akamai.Vendor.Refused", "token expired")],
            ),
            call(
                "onFCSubscribe",
                0.0,
                vec![info("warning", "NetStream.Play.InsufficientBW", "slow")],
            ),
        ],
    );
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(
        matches!(&events[0], SessionEvent::Status { code, description }
            if code == "NetStream.Play.Start" && description.contains("FCSubscribe to stream cam.")),
        "{events:?}"
    );
    assert!(
        matches!(&events[1], SessionEvent::Failed { reason }
            if reason.contains("stream not found") && reason.contains("No such stream: cam")),
        "{events:?}"
    );
    assert!(
        matches!(&events[2], SessionEvent::Failed { reason }
            if reason.contains("refused FCSubscribe") && reason.contains("Upstream is down")),
        "{events:?}"
    );
    assert!(
        matches!(&events[3], SessionEvent::Failed { reason } if reason.contains("token expired")),
        "{events:?}"
    );
    assert!(
        matches!(&events[4], SessionEvent::Status { code, .. } if code == "NetStream.Play.InsufficientBW"),
        "{events:?}"
    );
    assert!(answers(&mut client).is_empty());
}

#[test]
fn an_error_answering_fc_subscribe_is_harmless_but_one_answering_play_fails() {
    let (mut client, mut server, _) = started();
    let fc = sent_tx(&server, "FCSubscribe");
    let play = sent_tx(&server, "play");
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[
            // What FMS / Red5 answer for a method they do not have.
            call(
                "_error",
                fc,
                vec![info(
                    "error",
                    "NetConnection.Call.Failed",
                    "Method not found (FCSubscribe)",
                )],
            ),
            call("_result", fc, vec![]),
        ],
    );
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| matches!(e, SessionEvent::Status { .. })),
        "{events:?}"
    );
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[call(
            "_error",
            play,
            vec![info("error", "NetStream.Play.Failed", "not allowed")],
        )],
    );
    assert!(
        matches!(&events[..], [SessionEvent::Failed { reason }]
            if reason.contains("refused play") && reason.contains("not allowed")),
        "{events:?}"
    );
}

#[test]
fn fc_unpublish_and_fc_unsubscribe_mean_the_publisher_left_not_the_end() {
    let (mut client, mut server, _) = started();
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[
            call(
                "onFCUnpublish",
                0.0,
                vec![info(
                    "status",
                    "NetStream.Unpublish.Success",
                    "cam is now unpublished",
                )],
            ),
            call(
                "onFCUnsubscribe",
                0.0,
                vec![info("status", "NetStream.Play.Stop", "unsubscribed")],
            ),
            // No info object at all.
            call("onFCUnpublish", 0.0, vec![]),
        ],
    );
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        matches!(&events[0], SessionEvent::Unpublished { description }
            if description.contains("onFCUnpublish") && description.contains("cam is now unpublished")),
        "{events:?}"
    );
    assert!(
        matches!(&events[1], SessionEvent::Unpublished { description } if description.contains("onFCUnsubscribe")),
        "{events:?}"
    );
    assert!(matches!(&events[2], SessionEvent::Unpublished { .. }));
    assert!(answers(&mut client).is_empty());
}

#[test]
fn informational_and_housekeeping_commands_are_taken_quietly() {
    let (mut client, mut server, _) = started();
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[
            call(
                "onFCPublish",
                0.0,
                vec![info(
                    "status",
                    "NetStream.Publish.Start",
                    "cam is now published",
                )],
            ),
            call(
                "onUpstreamBase",
                0.0,
                vec![string("rtmp://origin.example/live")],
            ),
            // Servers call it after connect; with a transaction id librtmp would call _checkbw.
            call("onBWDone", 0.0, vec![Amf0Value::Number(8192.0)]),
            call("onBWDone", 3.0, vec![]),
            call("_onbwdone", 0.0, vec![Amf0Value::Number(100.0)]),
            // Wowza sends it as a data message, some servers as a command.
            call(
                "|RtmpSampleAccess",
                0.0,
                vec![Amf0Value::Boolean(true), Amf0Value::Boolean(true)],
            ),
            // The bandwidth check without a transaction id asks for no answer.
            call("onBWCheck", 0.0, vec![]),
        ],
    );
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        matches!(&events[0], SessionEvent::Status { code, description }
            if code == "NetStream.Publish.Start" && description.contains("onFCPublish")),
        "{events:?}"
    );
    assert!(
        matches!(&events[1], SessionEvent::Status { code, .. } if code == "onUpstreamBase"),
        "{events:?}"
    );
    assert!(answers(&mut client).is_empty(), "nothing is answered");
}

#[test]
fn bandwidth_checks_are_answered_with_the_same_transaction_id() {
    let (mut client, mut server, _) = started();
    // FMS's server-side bandwidth check sends a payload and times the _result.
    let payload = Amf0Value::StrictArray(vec![Amf0Value::Number(1.5); 600]);
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[
            call("onBWCheck", 7.0, vec![payload]),
            call("_onbwcheck", 9.0, vec![]),
            call("onBWCheck", 0.0, vec![]),
        ],
    );
    assert!(events.is_empty(), "{events:?}");
    let answers = answers(&mut client);
    assert_eq!(
        answers,
        vec![
            Sent {
                name: "_result".into(),
                tx: 7.0,
                stream_id: 0,
                args: vec![Amf0Value::Number(0.0)],
            },
            // Delivered on message stream 1 (`deliver_commands` alternates): answered there.
            Sent {
                name: "_result".into(),
                tx: 9.0,
                stream_id: 1,
                args: vec![Amf0Value::Number(1.0)],
            },
        ]
    );
}

#[test]
fn a_publishers_commands_are_answered_error_when_awaited_and_never_fail() {
    let (mut client, mut server, _) = started();
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[
            call("releaseStream", 5.0, vec![string("cam")]),
            call("FCPublish", 6.0, vec![string("cam")]),
            call("FCUnpublish", 0.0, vec![string("cam")]),
            call("FCPublish", 8.0, vec![string("cam")]),
        ],
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            SessionEvent::Failed { .. }
                | SessionEvent::Ended { .. }
                | SessionEvent::Unpublished { .. }
        )),
        "{events:?}"
    );
    // Reported once per name.
    let ignored: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Ignored { what } => Some(what),
            _ => None,
        })
        .collect();
    assert_eq!(ignored.len(), 3, "{events:?}");
    assert!(ignored[0].contains("releaseStream"));
    assert!(ignored[1].contains("FCPublish"));
    assert!(ignored[2].contains("FCUnpublish"));
    let answers = answers(&mut client);
    let txs: Vec<(f64, u32)> = answers.iter().map(|a| (a.tx, a.stream_id)).collect();
    assert_eq!(txs, [(5.0, 0), (6.0, 1), (8.0, 1)]);
    for answer in &answers {
        assert_eq!(answer.name, "_error");
        let Amf0Value::Object(map) = &answer.args[0] else {
            panic!("{answer:?}")
        };
        assert_eq!(map.get("level"), Some(&string("error")));
        assert_eq!(map.get("code"), Some(&string("NetConnection.Call.Failed")));
    }
}

#[test]
fn on_status_levels_and_close() {
    let (mut client, mut server, _) = started();
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[
            call(
                "onStatus",
                0.0,
                vec![info(
                    "warning",
                    "NetStream.Play.InsufficientBW",
                    "slow link",
                )],
            ),
            call(
                "onStatus",
                0.0,
                vec![info("warning", "Vendor.Something.Odd", "odd")],
            ),
            call(
                "onStatus",
                0.0,
                vec![info("status", "NetStream.Play.Reset", "reset")],
            ),
            call(
                "onStatus",
                0.0,
                vec![info("error", "Vendor.Broken", "broken")],
            ),
            call("close", 0.0, vec![]),
        ],
    );
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(
        matches!(&events[0], SessionEvent::Status { code, .. } if code == "NetStream.Play.InsufficientBW")
    );
    assert!(
        matches!(&events[1], SessionEvent::Status { code, .. } if code == "Vendor.Something.Odd")
    );
    assert!(
        matches!(&events[2], SessionEvent::Status { code, .. } if code == "NetStream.Play.Reset")
    );
    assert!(
        matches!(&events[3], SessionEvent::Failed { reason } if reason.contains("Vendor.Broken: broken"))
    );
    assert!(matches!(&events[4], SessionEvent::Ended { .. }));
}

#[test]
fn a_flood_of_one_unknown_command_is_reported_once_and_not_answered() {
    let (mut client, mut server, _) = started();
    let bodies: Vec<Vec<u8>> = (0..500)
        .map(|i| {
            call(
                "onVendorPing",
                (i % 3) as f64,
                vec![Amf0Value::Number(i as f64)],
            )
        })
        .collect();
    let events = deliver_commands(&mut client, &mut server, &bodies);
    assert_eq!(
        events,
        vec![SessionEvent::Ignored {
            what: "command 'onVendorPing'".into()
        }]
    );
    assert!(answers(&mut client).is_empty());
}

#[test]
fn reports_of_distinct_unknown_commands_are_bounded() {
    let (mut client, mut server, start) = started();
    let long = "x".repeat(5000);
    let mut bodies = vec![call(&long, 0.0, vec![])];
    bodies.extend((0..300).map(|i| call(&format!("onThing{i}"), 0.0, vec![])));
    let events = deliver_commands(&mut client, &mut server, &bodies);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, SessionEvent::Ignored { .. })),
        "{events:?}"
    );
    // MAX_REPORTED distinct reports in the session's life, the next one saying that
    // reporting stops, however many names the server makes up.
    let before = start
        .iter()
        .filter(|e| matches!(e, SessionEvent::Ignored { .. }))
        .count();
    assert_eq!(events.len() + before, MAX_REPORTED + 1, "{events:?}");
    let SessionEvent::Ignored { what } = &events[0] else {
        unreachable!()
    };
    assert!(what.chars().count() < 100, "{what}");
    let Some(SessionEvent::Ignored { what }) = events.last() else {
        unreachable!()
    };
    assert!(what.contains("unreported"), "{what}");
    let events = deliver_commands(
        &mut client,
        &mut server,
        &[call("onYetAnother", 0.0, vec![])],
    );
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn garbage_amf_in_a_command_does_not_break_the_session() {
    let (mut client, mut server, _) = started();
    let whole = status("NetStream.Play.Start", "status");
    let mut bad_marker = call("onStatus", 0.0, vec![]);
    bad_marker.push(0x42);
    let bodies = vec![
        // Truncated in the middle of the info object, of a number, of a string.
        whole[..whole.len() - 9].to_vec(),
        whole[..14].to_vec(),
        whole[..5].to_vec(),
        bad_marker,
        // No name, a name only (rml_rtmp 0.8 panics on fewer than three values), nothing.
        amf0(vec![Amf0Value::Number(1.0), Amf0Value::Null]),
        amf0(vec![string("onBWDone")]),
        amf0(vec![string("close_me_not"), Amf0Value::Number(2.0)]),
        vec![],
        // An object property without a value.
        vec![
            0x02, 0, 1, b'x', 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 1, b'a', 0, 0, 9,
        ],
    ];
    let events = deliver_commands(&mut client, &mut server, &bodies);
    assert!(
        events.iter().all(|e| matches!(
            e,
            SessionEvent::Ignored { .. } | SessionEvent::Status { .. }
        )),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Ignored { what } if what.contains("undecodable AMF0 command"))),
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, SessionEvent::Ignored { what } if what.contains("without a name"))
        ),
        "{events:?}"
    );
    assert!(answers(&mut client).is_empty());
}

#[test]
fn deeply_nested_or_huge_amf_is_refused_not_a_stack_overflow() {
    // rml_amf0 recurses once per level: 200 000 nested strict arrays (1 MB) abort the
    // process with a stack overflow if they reach it.
    let (mut client, mut server, _) = started();
    let mut arrays = call("onStatus", 0.0, vec![]);
    for _ in 0..200_000 {
        arrays.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    let mut objects = call("onStatus", 0.0, vec![]);
    objects.push(0x03);
    for _ in 0..200_000 {
        objects.extend_from_slice(&[0, 1, b'a', 0x03]);
    }
    let nulls = vec![0x05; 1 << 20];
    let events = deliver_commands(&mut client, &mut server, &[arrays, objects, nulls.clone()]);
    // Undecodable commands are reported once, whatever is wrong with them.
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(&events[0], SessionEvent::Ignored { what } if what.contains("nested deeper than 32")),
        "{events:?}"
    );
    // Data messages go through the same check.
    server.to_client.extend(chunked(5, 18, 1, 0, &nulls));
    let events = pump_raw(&mut client, &mut server);
    assert!(
        matches!(&events[..], [SessionEvent::Ignored { what }] if what.contains("more than")),
        "{events:?}"
    );
}

#[test]
fn amf0_walk_agrees_with_rml_amf0() {
    // Within the limits, what rml_amf0 serializes passes and decodes back.
    let mut nested = Amf0Value::Number(1.0);
    for depth in 0..MAX_AMF0_DEPTH {
        nested = if depth % 2 == 0 {
            Amf0Value::StrictArray(vec![string("a"), nested])
        } else {
            let mut map = HashMap::new();
            map.insert("k".to_string(), nested);
            map.insert("n".to_string(), Amf0Value::Null);
            Amf0Value::Object(map)
        };
    }
    let values = vec![
        string("onMetaData"),
        nested.clone(),
        Amf0Value::Boolean(true),
    ];
    let bytes = amf0(values.clone());
    assert_eq!(amf0_too_big(&bytes), None);
    assert_eq!(decode_amf0(&bytes).unwrap(), values);
    // One level more is refused.
    let deeper = amf0(vec![Amf0Value::StrictArray(vec![nested])]);
    assert!(amf0_too_big(&deeper).unwrap().contains("nested deeper"));
    // ECMA arrays count as objects.
    let mut ecma = vec![];
    for _ in 0..=MAX_AMF0_DEPTH {
        ecma.extend_from_slice(&[0x08, 0, 0, 0, 1, 0, 1, b'k']);
    }
    assert!(amf0_too_big(&ecma).is_some());
    // Noise never panics either way.
    let mut seed = 0x0bad_cafe_u32;
    for round in 0..2000 {
        let noise = crate::test_vectors::noise(&mut seed, 1 + round % 300);
        let _ = amf0_too_big(&noise);
        let _ = decode_amf0(&noise);
    }
}

#[test]
fn amf3_flagged_commands_are_read_as_amf0() {
    // Type 17 carries a 0 format byte, then AMF0.
    let (mut client, mut server, _) = started();
    let mut body = vec![0];
    body.extend(status("NetStream.Play.UnpublishNotify", "status"));
    server.to_client.extend(raw_message(5, 17, 1, 0, &body));
    let events = pump_raw(&mut client, &mut server);
    assert!(
        matches!(&events[..], [SessionEvent::Unpublished { .. }]),
        "{events:?}"
    );
}

// ---------------------------------------------------------------------------------------
// What a hostile server can make the session keep (issue 11).
// ---------------------------------------------------------------------------------------

/// One aggregate record: type, length, timestamp, stream id, body, back pointer.
fn aggregate_record(type_id: u8, ts: u32, data: &[u8]) -> Vec<u8> {
    let mut v = vec![type_id];
    v.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(&ts.to_be_bytes()[1..]);
    v.extend_from_slice(&[0, 0, 0, 1]);
    v.extend_from_slice(data);
    v.extend_from_slice(&((data.len() + 11) as u32).to_be_bytes());
    v
}

#[test]
fn an_aggregate_of_too_many_messages_ends_the_connection() {
    let (mut client, mut server, _) = started();
    let body: Vec<u8> = (0..=crate::rtmp::aggregate::MAX_AGGREGATE_PARTS as u32)
        .flat_map(|i| aggregate_record(8, i, &[0xaf, 1]))
        .collect();
    server.to_client.extend(chunked(6, 22, 1, 0, &body));
    let back = std::mem::take(&mut server.to_client);
    let err = client.handle_input(&back).unwrap_err();
    assert_eq!(
        err.to_string(),
        "RTMP protocol error: aggregate message holding more than 1024 messages"
    );
}

#[test]
fn messages_over_their_types_cap_end_the_connection_with_a_reason() {
    for (type_id, len) in [
        (20u8, crate::rtmp::chunk::MAX_AMF_MESSAGE_BYTES + 1),
        (9, crate::rtmp::chunk::MAX_MEDIA_MESSAGE_BYTES + 1),
        (4, crate::rtmp::chunk::MAX_OTHER_MESSAGE_BYTES + 1),
    ] {
        let (mut client, mut server, _) = started();
        // Only the header: the refusal comes before any body is buffered.
        let mut header = raw_message(5, type_id, 1, 0, &[]);
        header[4..7].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        server.to_client.extend(header);
        let back = std::mem::take(&mut server.to_client);
        let err = client.handle_input(&back).unwrap_err().to_string();
        assert!(
            err.starts_with("RTMP protocol error: RTMP message of type")
                && err.contains(&format!("declares {len} bytes")),
            "{err}"
        );
    }
}

/// `onMetaData` with a huge keyframe table, long strings and thousands of properties is
/// kept within its budget, scalars first; the cut is reported once.
#[test]
fn metadata_is_kept_within_its_budget() {
    let (mut client, mut server, _) = started();
    let mut props = HashMap::new();
    props.insert("width".to_string(), Amf0Value::Number(1280.0));
    props.insert("framerate".to_string(), Amf0Value::Number(30.0));
    props.insert(
        "encoder".to_string(),
        string(&format!("{}\0\0", "é".repeat(1000))),
    );
    let times: Vec<Amf0Value> = (0..20_000).map(|i| Amf0Value::Number(i as f64)).collect();
    let mut keyframes = HashMap::new();
    keyframes.insert("times".to_string(), Amf0Value::StrictArray(times));
    props.insert("keyframes".to_string(), Amf0Value::Object(keyframes));
    for i in 0..3000 {
        props.insert(format!("zz{i:04}"), Amf0Value::Boolean(true));
    }
    let body = amf0(vec![string("onMetaData"), Amf0Value::Object(props)]);
    assert!(body.len() > 200_000);
    for _ in 0..2 {
        server.to_client.extend(chunked(5, 18, 1, 0, &body));
    }
    let events = pump_raw(&mut client, &mut server);
    let metas: Vec<&Vec<(String, MetaValue)>> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Metadata(props) => Some(props),
            _ => None,
        })
        .collect();
    assert_eq!(metas.len(), 2);
    let meta = metas[0];
    assert!(meta.contains(&("width".to_string(), MetaValue::Number(1280.0))));
    assert!(meta.contains(&("framerate".to_string(), MetaValue::Number(30.0))));
    // The string: cut at a character boundary (2-byte characters, 512-byte cap).
    let encoder = meta.iter().find(|(k, _)| k == "encoder").unwrap();
    assert_eq!(encoder.1, MetaValue::String("é".repeat(256)));
    fn cost(v: &MetaValue) -> usize {
        META_VALUE_COST
            + match v {
                MetaValue::String(s) => s.len(),
                MetaValue::Array(items) => items.iter().map(cost).sum(),
                MetaValue::Object(props) => props.iter().map(|(k, v)| k.len() + cost(v)).sum(),
                _ => 0,
            }
    }
    let total: usize = meta.iter().map(|(k, v)| k.len() + cost(v)).sum();
    assert!(total <= MAX_METADATA_BYTES, "{total}");
    assert!(total > MAX_METADATA_BYTES - 100, "{total}");
    // Sorted by name, as before.
    assert!(meta.windows(2).all(|w| w[0].0 < w[1].0));
    let cuts: Vec<&SessionEvent> = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Ignored { what } if what.contains("onMetaData")))
        .collect();
    assert_eq!(cuts.len(), 1, "{events:?}");
}

#[test]
fn status_texts_are_cut_and_escaped() {
    let (mut client, mut server, _) = started();
    let long = format!("line one\nline two {}", "x".repeat(5000));
    let body = call(
        "onStatus",
        0.0,
        vec![info("error", "NetStream.Play.Failed", &long)],
    );
    server.to_client.extend(chunked(5, 20, 1, 0, &body));
    let events = pump_raw(&mut client, &mut server);
    let reason = events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Failed { reason } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(reason.contains("line one\\nline two xxx"), "{reason}");
    assert!(!reason.contains('\n'));
    assert!(
        reason.len() < MAX_STATUS_TEXT_BYTES + 100,
        "{}",
        reason.len()
    );
    assert!(reason.ends_with('…'));
}

/// A type-3 chunk header alone is a new zero-length message when the last one was empty:
/// one byte each. They are dropped at once (reported once), not handed on as events.
#[test]
fn empty_media_messages_are_dropped() {
    let (mut client, mut server, _) = started();
    server.to_client.extend(raw_message(7, 9, 1, 0, &[]));
    server.to_client.extend(std::iter::repeat_n(0xc7, 10_000));
    server.to_client.extend(raw_message(7, 9, 1, 40, &VIDEO));
    let events = pump_raw(&mut client, &mut server);
    assert_eq!(
        events,
        vec![
            SessionEvent::Ignored {
                what: "empty audio or video message".to_string()
            },
            SessionEvent::Video {
                timestamp: 40,
                data: Bytes::from_static(&VIDEO)
            }
        ]
    );
}
