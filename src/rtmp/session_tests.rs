//! Tests of [`PlaySession`] against `rml_rtmp`'s *server* session (an independent
//! implementation of the other side), plus hand-made byte vectors for what that server
//! cannot produce (media on message stream 0, StreamNotFound, aggregates, ...).

#![allow(clippy::unwrap_used)]

use super::*;
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
    auto_accept: bool,
}

impl FakeServer {
    fn new(auto_accept: bool) -> Self {
        Self {
            handshake: Handshake::new(PeerType::Server),
            session: None,
            events: Vec::new(),
            to_client: Vec::new(),
            auto_accept,
        }
    }

    fn receive(&mut self, bytes: &[u8]) {
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
