//! Tests of [`ServeSession`]: against our own play session (the client a cascaded pullcast
//! is), against a client written from ffmpeg's publish and play call orders and nginx-rtmp's
//! relay (with `rml_rtmp`'s chunk serializer and handshake: an independent encoder), and
//! against hostile input.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::{self, Amf0Value};
use rml_rtmp::time::RtmpTimestamp;

use super::wire::{self, text};
use super::*;
use crate::rtmp::chunk::ChunkDecoder;
use crate::rtmp::session::{PlaySession, PlaySessionConfig, SessionEvent};
use crate::rtmp::RtmpUrl;

/// Moves bytes between our play session and the server session until both are quiet;
/// returns (client events, server events). `answer` decides plays.
fn pump(
    client: &mut PlaySession,
    server: &mut ServeSession,
    media: &mut Vec<u8>,
    mut answer: impl FnMut(&mut ServeSession, &ServeEvent),
) -> (Vec<SessionEvent>, Vec<ServeEvent>) {
    let (mut client_events, mut server_events) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let out = client.take_outbound();
        if !out.is_empty() {
            server.handle_input(&out).unwrap();
        }
        while let Some(e) = server.poll_event() {
            answer(server, &e);
            server_events.push(e);
        }
        let mut back = server.take_outbound();
        back.append(media);
        if !back.is_empty() {
            client.handle_input(&back).unwrap();
        }
        client_events.extend(std::iter::from_fn(|| client.poll_event()));
        if out.is_empty() && back.is_empty() {
            break;
        }
    }
    (client_events, server_events)
}

fn play_client(url: &str) -> PlaySession {
    PlaySession::new(PlaySessionConfig {
        url: RtmpUrl::parse(url).unwrap(),
        chunk_size: 4096,
        buffer_length_ms: 1000,
    })
    .unwrap()
}

#[test]
fn our_play_session_plays_through_it() {
    let mut client = play_client("rtmp://127.0.0.1/live/cam?token=7");
    let mut server = ServeSession::new();
    let mut media = Vec::new();
    let (events, served) = pump(&mut client, &mut server, &mut media, |s, e| {
        if let ServeEvent::Play { stream_id, name } = e {
            s.accept_play(*stream_id, name);
        }
    });
    assert_eq!(
        served[..2],
        [
            ServeEvent::Connected {
                app: "live".into(),
                tc_url: "rtmp://127.0.0.1:1935/live".into()
            },
            ServeEvent::Play {
                stream_id: 1,
                name: "cam?token=7".into()
            },
        ],
        "{served:?}"
    );
    assert!(server.is_playing(1));
    assert!(events.contains(&SessionEvent::Connected));
    assert!(events.contains(&SessionEvent::PlayRequested { stream_id: 1 }));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::PlayStarted { .. })),
        "{events:?}"
    );

    // Media written by the wire functions (as a player's actor does) reaches the client.
    let big = Bytes::from(vec![0x17; 9000]);
    wire::media(&mut media, 1, wire::TYPE_VIDEO, 0, &big);
    wire::media(&mut media, 1, wire::TYPE_AUDIO, 21, &[0xaf, 1, 9, 9]);
    wire::media(
        &mut media,
        1,
        wire::TYPE_VIDEO,
        0x0100_0000,
        &[0x27, 1, 0, 0, 0, 5],
    );
    let (events, _) = pump(&mut client, &mut server, &mut media, |_, _| {});
    let media_events: Vec<_> = events
        .into_iter()
        .filter(|e| matches!(e, SessionEvent::Video { .. } | SessionEvent::Audio { .. }))
        .collect();
    assert_eq!(
        media_events,
        vec![
            SessionEvent::Video {
                timestamp: 0,
                data: big
            },
            SessionEvent::Audio {
                timestamp: 21,
                data: Bytes::from_static(&[0xaf, 1, 9, 9])
            },
            SessionEvent::Video {
                timestamp: 0x0100_0000,
                data: Bytes::from_static(&[0x27, 1, 0, 0, 0, 5])
            },
        ]
    );

    // The source goes and comes back: the client hears it and keeps the connection.
    wire::unpublish_notify(&mut media, 1, "cam");
    let (events, _) = pump(&mut client, &mut server, &mut media, |_, _| {});
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Unpublished { .. })));
    wire::play_stopped(&mut media, 1, "terminated");
    let (events, _) = pump(&mut client, &mut server, &mut media, |_, _| {});
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Ended { .. })),
        "{events:?}"
    );
}

#[test]
fn a_refused_play_fails_the_client_with_the_reason() {
    let mut client = play_client("rtmp://127.0.0.1/live/nothing");
    let mut server = ServeSession::new();
    let (events, _) = pump(&mut client, &mut server, &mut Vec::new(), |s, e| {
        if let ServeEvent::Play { stream_id, .. } = e {
            s.refuse_play(
                *stream_id,
                "NetStream.Play.StreamNotFound",
                "no such stream",
            );
        }
    });
    let failed = events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Failed { reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("the client fails");
    assert!(failed.contains("no such stream"), "{failed}");
}

/// A client written from ffmpeg's call orders, on rml_rtmp's serializer and handshake.
struct ScriptedClient {
    handshake: Option<Handshake>,
    serializer: ChunkSerializer,
    decoder: ChunkDecoder,
    to_server: Vec<u8>,
    received: Vec<crate::rtmp::chunk::RawMessage>,
}

impl ScriptedClient {
    fn new() -> Self {
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 = handshake.generate_outbound_p0_and_p1().unwrap();
        let mut decoder = ChunkDecoder::new();
        decoder.set_chunk_size(128).unwrap();
        Self {
            handshake: Some(handshake),
            serializer: ChunkSerializer::new(),
            decoder,
            to_server: c0c1,
            received: Vec::new(),
        }
    }

    fn receive(&mut self, bytes: &[u8]) {
        let rest = match self.handshake.as_mut() {
            Some(h) => match h.process_bytes(bytes).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.to_server.extend(response_bytes);
                    return;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.to_server.extend(response_bytes);
                    self.handshake = None;
                    remaining_bytes
                }
            },
            None => bytes.to_vec(),
        };
        self.decoder.push(&rest);
        while let Some(m) = self.decoder.next_message().unwrap() {
            if m.type_id == 1 {
                let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                self.decoder.set_chunk_size(size).unwrap();
            }
            self.received.push(m);
        }
    }

    fn send(&mut self, message: RtmpMessage, stream_id: u32) {
        let payload = message
            .into_message_payload(RtmpTimestamp::new(0), stream_id)
            .unwrap();
        self.send_payload(&payload);
    }

    fn send_payload(&mut self, payload: &MessagePayload) {
        let packet = self.serializer.serialize(payload, false, false).unwrap();
        self.to_server.extend(packet.bytes);
    }

    fn command(&mut self, name: &str, tx: f64, object: Amf0Value, args: Vec<Amf0Value>, msid: u32) {
        self.send(
            RtmpMessage::Amf0Command {
                command_name: name.into(),
                transaction_id: tx,
                command_object: object,
                additional_arguments: args,
            },
            msid,
        );
    }

    fn media(&mut self, type_id: u8, ts: u32, data: &[u8], msid: u32) {
        self.send_payload(&MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            type_id,
            message_stream_id: msid,
            data: Bytes::copy_from_slice(data),
        });
    }

    /// Commands received: (name, transaction, first argument's `code` if any).
    fn commands(&self) -> Vec<(String, f64, String)> {
        self.received
            .iter()
            .filter(|m| m.type_id == 20)
            .map(|m| {
                let v = rml_amf0::deserialize(&mut std::io::Cursor::new(&m.payload[..])).unwrap();
                let name = match &v[0] {
                    Amf0Value::Utf8String(s) => s.clone(),
                    _ => String::new(),
                };
                let tx = match &v[1] {
                    Amf0Value::Number(n) => *n,
                    _ => -1.0,
                };
                let code = v
                    .get(3)
                    .and_then(|o| match o {
                        Amf0Value::Object(o) => o.get("code").cloned(),
                        _ => None,
                    })
                    .and_then(|c| match c {
                        Amf0Value::Utf8String(s) => Some(s),
                        _ => None,
                    })
                    .unwrap_or_default();
                (name, tx, code)
            })
            .collect()
    }
}

/// Moves bytes until both are quiet; returns the server's events.
fn exchange(client: &mut ScriptedClient, server: &mut ServeSession) -> Vec<ServeEvent> {
    let mut events = Vec::new();
    for _ in 0..20 {
        let out = std::mem::take(&mut client.to_server);
        if !out.is_empty() {
            server.handle_input(&out).unwrap();
        }
        events.extend(std::iter::from_fn(|| server.poll_event()));
        let back = server.take_outbound();
        if !back.is_empty() {
            client.receive(&back);
        }
        if out.is_empty() && back.is_empty() {
            break;
        }
    }
    events
}

fn connect_object(app: &str) -> Amf0Value {
    let mut o = HashMap::new();
    o.insert("app".to_string(), text(app));
    o.insert(
        "tcUrl".to_string(),
        text(&format!("rtmp://127.0.0.1:1935/{app}")),
    );
    o.insert(
        "flashVer".to_string(),
        text("FMLE/3.0 (compatible; Lavf59.27)"),
    );
    o.insert("type".to_string(), text("nonprivate"));
    Amf0Value::Object(o)
}

#[test]
fn ffmpeg_publishes_in_its_order() {
    let mut client = ScriptedClient::new();
    let mut server = ServeSession::new();
    exchange(&mut client, &mut server);
    assert!(server.handshake_done());
    client.send(RtmpMessage::SetChunkSize { size: 4096 }, 0);
    client
        .serializer
        .set_max_chunk_size(4096, RtmpTimestamp::new(0))
        .unwrap();
    client.command("connect", 1.0, connect_object("live"), vec![], 0);
    let events = exchange(&mut client, &mut server);
    assert_eq!(
        events,
        vec![ServeEvent::Connected {
            app: "live".into(),
            tc_url: "rtmp://127.0.0.1:1935/live".into()
        }]
    );
    client.command("releaseStream", 2.0, Amf0Value::Null, vec![text("pub")], 0);
    client.command("FCPublish", 3.0, Amf0Value::Null, vec![text("pub")], 0);
    client.command("createStream", 4.0, Amf0Value::Null, vec![], 0);
    exchange(&mut client, &mut server);
    client.command(
        "publish",
        5.0,
        Amf0Value::Null,
        vec![text("pub"), text("live")],
        1,
    );
    let events = exchange(&mut client, &mut server);
    assert_eq!(
        events,
        vec![ServeEvent::Publish {
            stream_id: 1,
            name: "pub".into(),
            kind: "live".into()
        }]
    );
    server.accept_publish(1, "pub");
    exchange(&mut client, &mut server);
    let commands = client.commands();
    let has = |name: &str, tx: f64, code: &str| {
        commands
            .iter()
            .any(|(n, t, c)| n == name && *t == tx && c == code)
    };
    assert!(
        has("_result", 1.0, "NetConnection.Connect.Success"),
        "{commands:?}"
    );
    assert!(has("_result", 2.0, ""), "releaseStream: {commands:?}");
    assert!(
        has("onFCPublish", 0.0, "NetStream.Publish.Start"),
        "{commands:?}"
    );
    assert!(has("_result", 3.0, ""), "FCPublish: {commands:?}");
    assert!(has("_result", 4.0, ""), "createStream: {commands:?}");
    assert!(
        has("onStatus", 0.0, "NetStream.Publish.Start"),
        "{commands:?}"
    );
    // The stream id createStream answered: 1.
    let created = client
        .received
        .iter()
        .filter(|m| m.type_id == 20)
        .find_map(|m| {
            let v = rml_amf0::deserialize(&mut std::io::Cursor::new(&m.payload[..])).unwrap();
            (v[1] == Amf0Value::Number(4.0)).then(|| v[3].clone())
        });
    assert_eq!(created, Some(Amf0Value::Number(1.0)));

    // Metadata and media come out as events.
    let mut meta = HashMap::new();
    meta.insert("width".to_string(), Amf0Value::Number(640.0));
    let body = rml_amf0::serialize(&vec![
        text("@setDataFrame"),
        text("onMetaData"),
        Amf0Value::Object(meta),
    ])
    .unwrap();
    client.media(18, 0, &body, 1);
    client.media(9, 0, &[0x17, 0, 0, 0, 0, 1, 2], 1);
    client.media(8, 23, &[0xaf, 0, 0x11, 0x90], 1);
    // The same on a stream that does not publish is dropped.
    client.media(9, 0, &[0x17, 1], 0);
    let events = exchange(&mut client, &mut server);
    assert_eq!(
        events[..3],
        [
            ServeEvent::Metadata(vec![("width".into(), MetaValue::Number(640.0))]),
            ServeEvent::Video {
                timestamp: 0,
                data: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2])
            },
            ServeEvent::Audio {
                timestamp: 23,
                data: Bytes::from_static(&[0xaf, 0, 0x11, 0x90])
            },
        ]
    );
    assert!(
        matches!(&events[3], ServeEvent::Ignored { what } if what.contains("does not publish"))
    );

    // ffmpeg's goodbye: FCUnpublish, deleteStream.
    client.command("FCUnpublish", 6.0, Amf0Value::Null, vec![text("pub")], 0);
    client.command(
        "deleteStream",
        7.0,
        Amf0Value::Null,
        vec![Amf0Value::Number(1.0)],
        0,
    );
    let events = exchange(&mut client, &mut server);
    assert_eq!(events, vec![ServeEvent::PublishEnded { stream_id: 1 }]);
}

#[test]
fn ffmpeg_and_nginx_relay_play_orders() {
    // ffmpeg: connect; WindowAck + createStream + FCSubscribe; getStreamLength + play(-2000).
    let mut client = ScriptedClient::new();
    let mut server = ServeSession::new();
    exchange(&mut client, &mut server);
    client.command("connect", 1.0, connect_object("live"), vec![], 0);
    client.send(RtmpMessage::WindowAcknowledgement { size: 2_500_000 }, 0);
    client.command("createStream", 2.0, Amf0Value::Null, vec![], 0);
    client.command("FCSubscribe", 3.0, Amf0Value::Null, vec![text("cam")], 0);
    exchange(&mut client, &mut server);
    client.command(
        "getStreamLength",
        4.0,
        Amf0Value::Null,
        vec![text("cam")],
        1,
    );
    client.command(
        "play",
        5.0,
        Amf0Value::Null,
        vec![text("cam"), Amf0Value::Number(-2000.0)],
        1,
    );
    let events = exchange(&mut client, &mut server);
    assert!(events.contains(&ServeEvent::Play {
        stream_id: 1,
        name: "cam".into()
    }));
    server.accept_play(1, "cam");
    exchange(&mut client, &mut server);
    let commands = client.commands();
    for (name, tx, code) in [
        ("_result", 2.0, ""),
        ("onFCSubscribe", 0.0, "NetStream.Play.Start"),
        ("_result", 3.0, ""),
        ("_result", 4.0, ""),
        ("onStatus", 0.0, "NetStream.Play.Reset"),
        ("onStatus", 0.0, "NetStream.Play.Start"),
    ] {
        assert!(
            commands
                .iter()
                .any(|(n, t, c)| n == name && *t == tx && c == code),
            "{name} {tx} {code}: {commands:?}"
        );
    }

    // nginx-rtmp's relay: connect (txn 1), createStream (txn 2), play on stream 1.
    let mut client = ScriptedClient::new();
    let mut server = ServeSession::new();
    exchange(&mut client, &mut server);
    client.command("connect", 1.0, connect_object("live"), vec![], 0);
    exchange(&mut client, &mut server);
    client.command("createStream", 2.0, Amf0Value::Null, vec![], 0);
    exchange(&mut client, &mut server);
    client.command(
        "play",
        0.0,
        Amf0Value::Null,
        vec![
            text("cam"),
            Amf0Value::Number(-2.0),
            Amf0Value::Number(-1.0),
        ],
        1,
    );
    let events = exchange(&mut client, &mut server);
    assert_eq!(
        events,
        vec![ServeEvent::Play {
            stream_id: 1,
            name: "cam".into()
        }]
    );
    // deleteStream while playing ends the play.
    server.accept_play(1, "cam");
    client.command(
        "deleteStream",
        0.0,
        Amf0Value::Null,
        vec![Amf0Value::Number(1.0)],
        0,
    );
    let events = exchange(&mut client, &mut server);
    assert_eq!(events, vec![ServeEvent::PlayEnded { stream_id: 1 }]);
}

#[test]
fn hostile_and_odd_clients() {
    let mut client = ScriptedClient::new();
    let mut server = ServeSession::new();
    exchange(&mut client, &mut server);
    client.command("connect", 1.0, Amf0Value::Null, vec![], 0);
    let events = exchange(&mut client, &mut server);
    // connect without an object: connected, app unknown.
    assert_eq!(
        events,
        vec![ServeEvent::Connected {
            app: String::new(),
            tc_url: String::new()
        }]
    );
    // Unknown calls: _error when someone waits (txn > 0), silence otherwise; reported once.
    client.command("secretCall", 9.0, Amf0Value::Null, vec![], 0);
    client.command("secretCall", 0.0, Amf0Value::Null, vec![], 0);
    // play and publish on a stream never created.
    client.command("play", 0.0, Amf0Value::Null, vec![text("x")], 5);
    client.command("publish", 0.0, Amf0Value::Null, vec![text("x")], 6);
    // play without a name; @setDataFrame alone; a data message without a name.
    client.command("createStream", 10.0, Amf0Value::Null, vec![], 0);
    let events = exchange(&mut client, &mut server);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ServeEvent::Ignored { what } if what.contains("secretCall")))
            .count(),
        1
    );
    let commands = client.commands();
    assert!(commands
        .iter()
        .any(|(n, t, c)| n == "_error" && *t == 9.0 && c == "NetConnection.Call.Failed"));
    assert_eq!(commands.iter().filter(|(n, _, _)| n == "_error").count(), 1);
    assert!(commands
        .iter()
        .any(|(n, _, c)| n == "onStatus" && c == "NetStream.Play.Failed"));
    assert!(commands
        .iter()
        .any(|(n, _, c)| n == "onStatus" && c == "NetStream.Publish.BadName"));
    client.command("play", 0.0, Amf0Value::Null, vec![], 1);
    client.media(
        18,
        0,
        &rml_amf0::serialize(&vec![text("@setDataFrame")]).unwrap(),
        1,
    );
    client.media(
        18,
        0,
        &rml_amf0::serialize(&vec![Amf0Value::Null]).unwrap(),
        1,
    );
    // Deep nesting: refused before the recursive decoder sees it.
    let mut deep = Vec::new();
    for _ in 0..10_000 {
        deep.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    client.media(20, 0, &deep, 0);
    client.media(18, 0, &deep, 1);
    let events = exchange(&mut client, &mut server);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, ServeEvent::Ignored { .. })),
        "{events:?}"
    );
    // At most MAX_STREAMS streams.
    for tx in 0..(MAX_STREAMS as u32 + 3) {
        client.command(
            "createStream",
            f64::from(100 + tx),
            Amf0Value::Null,
            vec![],
            0,
        );
    }
    exchange(&mut client, &mut server);
    assert!(server.streams.len() <= MAX_STREAMS);
    // Names are cut.
    let long = "é".repeat(5000);
    client.command("play", 0.0, Amf0Value::Null, vec![text(&long)], 1);
    let events = exchange(&mut client, &mut server);
    match &events[..] {
        [ServeEvent::Play { name, .. }] => assert_eq!(name.chars().count(), MAX_NAME_CHARS + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_rtmp_is_an_error() {
    let mut server = ServeSession::new();
    let e = server.handle_input(b"GET / HTTP/1.1\r\n").unwrap_err();
    assert!(e.to_string().contains("not the RTMP version"), "{e}");
}

#[test]
fn pings_and_acknowledgements() {
    let mut client = ScriptedClient::new();
    let mut server = ServeSession::new();
    exchange(&mut client, &mut server);
    client.send(RtmpMessage::WindowAcknowledgement { size: 1000 }, 0);
    client.send(
        RtmpMessage::UserControl {
            event_type: rml_rtmp::messages::UserControlEventType::PingRequest,
            stream_id: None,
            buffer_length: None,
            timestamp: Some(RtmpTimestamp::new(77)),
        },
        0,
    );
    client.command(
        "connect",
        1.0,
        connect_object("live"),
        vec![text(&"x".repeat(2000))],
        0,
    );
    exchange(&mut client, &mut server);
    let control: Vec<(u8, Vec<u8>)> = client
        .received
        .iter()
        .filter(|m| m.type_id == 3 || m.type_id == 4)
        .map(|m| (m.type_id, m.payload.to_vec()))
        .collect();
    assert!(
        control.contains(&(4, vec![0, 7, 0, 0, 0, 77])),
        "{control:?}"
    );
    let ack = control
        .iter()
        .find(|(t, _)| *t == 3)
        .expect("an acknowledgement");
    let total = u32::from_be_bytes(ack.1[..4].try_into().unwrap());
    assert!(u64::from(total) <= server.bytes_received() && total >= 1000);
}
