//! What the server session does with a client's commands and data messages (the table is
//! in the session's module documentation).

use std::collections::HashMap;

use rml_rtmp::rml_amf0::Amf0Value;

use super::wire::{self, status_object, text};
use super::{short, ServeEvent, ServeSession, StreamRole, MAX_STREAMS};
use crate::rtmp::session::metadata::{metadata_properties, MAX_METADATA_BYTES};
use crate::rtmp::session::shorten;

/// The version we announce in `connect`'s answer (what FMS-compatible clients expect).
const FMS_VERSION: &str = "FMS/3,5,7,7009";

impl ServeSession {
    pub(super) fn handle_command_values(&mut self, stream_id: u32, values: Vec<Amf0Value>) {
        let mut values = values.into_iter();
        let name = match values.next() {
            Some(Amf0Value::Utf8String(name)) => name.trim_end_matches('\0').to_string(),
            _ => {
                self.report_once("command message without a name");
                return;
            }
        };
        let transaction = match values.next() {
            Some(Amf0Value::Number(n)) if n.is_finite() => n,
            _ => 0.0,
        };
        let object = values.next().unwrap_or(Amf0Value::Null);
        let arguments: Vec<Amf0Value> = values.collect();
        self.handle_command(stream_id, &name, transaction, object, arguments);
    }

    fn handle_command(
        &mut self,
        stream_id: u32,
        name: &str,
        transaction: f64,
        object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) {
        let first_text = arguments.iter().find_map(|v| match v {
            Amf0Value::Utf8String(s) => Some(s.trim_end_matches('\0').to_string()),
            _ => None,
        });
        match name {
            "connect" => self.connect(transaction, object),
            "createStream" => self.create_stream(transaction),
            "play" => match first_text {
                Some(play) if self.streams.contains_key(&stream_id) => {
                    if let Some(role) = self.streams.get_mut(&stream_id) {
                        *role = StreamRole::Created;
                    }
                    self.events.push_back(ServeEvent::Play {
                        stream_id,
                        name: short(&play),
                    });
                }
                Some(_) => {
                    wire::on_status(
                        &mut self.outbound,
                        stream_id,
                        "error",
                        "NetStream.Play.Failed",
                        "play on a stream that was not created",
                    );
                }
                None => {
                    self.report_once("play without a stream name");
                }
            },
            "publish" => match first_text {
                Some(publish) if self.streams.contains_key(&stream_id) => {
                    let kind = arguments
                        .iter()
                        .filter_map(|v| match v {
                            Amf0Value::Utf8String(s) => Some(s.as_str()),
                            _ => None,
                        })
                        .nth(1)
                        .unwrap_or("live")
                        .to_string();
                    self.events.push_back(ServeEvent::Publish {
                        stream_id,
                        name: short(&publish),
                        kind: short(&kind),
                    });
                }
                Some(_) => wire::on_status(
                    &mut self.outbound,
                    stream_id,
                    "error",
                    "NetStream.Publish.BadName",
                    "publish on a stream that was not created",
                ),
                None => self.report_once("publish without a stream name"),
            },
            "releaseStream" | "_checkbw" => self.result(stream_id, transaction, Amf0Value::Null),
            "getStreamLength" => self.result(stream_id, transaction, Amf0Value::Number(0.0)),
            "FCPublish" => {
                let stream = short(&first_text.unwrap_or_default());
                self.answer_fc(
                    stream_id,
                    transaction,
                    "onFCPublish",
                    "NetStream.Publish.Start",
                    &format!("FCPublish to stream {stream}."),
                );
            }
            "FCUnpublish" => {
                let stream = short(&first_text.unwrap_or_default());
                self.answer_fc(
                    stream_id,
                    transaction,
                    "onFCUnpublish",
                    "NetStream.Unpublish.Success",
                    &format!("FCUnpublish from stream {stream}."),
                );
                self.end_publishing(None);
            }
            "FCSubscribe" => {
                let stream = short(&first_text.unwrap_or_default());
                self.answer_fc(
                    stream_id,
                    transaction,
                    "onFCSubscribe",
                    "NetStream.Play.Start",
                    &format!("FCSubscribe to stream {stream}."),
                );
            }
            "deleteStream" | "closeStream" => {
                // deleteStream names the stream in its argument; closeStream is sent on it.
                let target = if name == "deleteStream" {
                    arguments.iter().find_map(|v| match v {
                        Amf0Value::Number(n) if *n >= 0.0 && *n <= f64::from(u32::MAX) => {
                            Some(*n as u32)
                        }
                        _ => None,
                    })
                } else {
                    Some(stream_id)
                };
                if let Some(id) = target {
                    self.end_stream(id, name == "deleteStream");
                }
            }
            "receiveAudio" | "receiveVideo" | "pause" | "seek" | "_result" | "_error"
            | "onBWDone" | "_onbwdone" | "onStatus" | "_onbwcheck" => {}
            other => {
                if transaction > 0.0 {
                    self.call_failed(transaction, &format!("{} is not supported", short(other)));
                }
                self.report_once(&format!("command '{}'", shorten(other)));
            }
        }
    }

    /// `_error` `NetConnection.Call.Failed` answering `transaction`.
    fn call_failed(&mut self, transaction: f64, description: &str) {
        wire::command(
            &mut self.outbound,
            0,
            "_error",
            transaction,
            Amf0Value::Null,
            vec![status_object(
                "error",
                "NetConnection.Call.Failed",
                description,
            )],
        );
    }

    /// The `onFC…` notification `event` with `code`, then `_result` answering the call.
    fn answer_fc(
        &mut self,
        stream_id: u32,
        transaction: f64,
        event: &str,
        code: &str,
        description: &str,
    ) {
        wire::command(
            &mut self.outbound,
            stream_id,
            event,
            0.0,
            Amf0Value::Null,
            vec![status_object("status", code, description)],
        );
        self.result(stream_id, transaction, Amf0Value::Null);
    }

    fn result(&mut self, stream_id: u32, transaction: f64, value: Amf0Value) {
        if transaction > 0.0 {
            wire::command(
                &mut self.outbound,
                stream_id,
                "_result",
                transaction,
                Amf0Value::Null,
                vec![value],
            );
        }
    }

    fn connect(&mut self, transaction: f64, object: Amf0Value) {
        let properties = match object {
            Amf0Value::Object(p) => p,
            _ => HashMap::new(),
        };
        let text_of = |key: &str| match properties.get(key) {
            Some(Amf0Value::Utf8String(s)) => short(s.trim_end_matches('\0')),
            _ => String::new(),
        };
        let app = text_of("app");
        let tc_url = text_of("tcUrl");
        let encoding = match properties.get("objectEncoding") {
            Some(Amf0Value::Number(n)) if *n == 0.0 || *n == 3.0 => *n,
            _ => 0.0,
        };
        let mut server = HashMap::new();
        server.insert("fmsVer".to_string(), text(FMS_VERSION));
        server.insert("capabilities".to_string(), Amf0Value::Number(31.0));
        let mut info = match status_object(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        ) {
            Amf0Value::Object(info) => info,
            _ => HashMap::new(),
        };
        info.insert("objectEncoding".to_string(), Amf0Value::Number(encoding));
        wire::command(
            &mut self.outbound,
            0,
            "_result",
            transaction,
            Amf0Value::Object(server),
            vec![Amf0Value::Object(info)],
        );
        if !self.connected {
            self.connected = true;
            self.events.push_back(ServeEvent::Connected { app, tc_url });
        }
    }

    fn create_stream(&mut self, transaction: f64) {
        if self.streams.len() >= MAX_STREAMS {
            self.call_failed(
                transaction,
                &format!("at most {MAX_STREAMS} streams per connection"),
            );
            self.report_once("too many createStream calls");
            return;
        }
        let id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.saturating_add(1);
        self.streams.insert(id, StreamRole::Created);
        wire::command(
            &mut self.outbound,
            0,
            "_result",
            transaction,
            Amf0Value::Null,
            vec![Amf0Value::Number(f64::from(id))],
        );
    }

    /// A stream's play or publish ends; `delete` forgets the stream.
    fn end_stream(&mut self, id: u32, delete: bool) {
        match self.streams.get(&id) {
            Some(StreamRole::Playing) => self
                .events
                .push_back(ServeEvent::PlayEnded { stream_id: id }),
            Some(StreamRole::Publishing) => self
                .events
                .push_back(ServeEvent::PublishEnded { stream_id: id }),
            _ => {}
        }
        if delete {
            self.streams.remove(&id);
        } else if let Some(role) = self.streams.get_mut(&id) {
            *role = StreamRole::Created;
        }
    }

    /// `FCUnpublish`: every publishing stream (or `only`) stops publishing.
    fn end_publishing(&mut self, only: Option<u32>) {
        let ids: Vec<u32> = self
            .streams
            .iter()
            .filter(|(id, role)| **role == StreamRole::Publishing && only.is_none_or(|o| o == **id))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.end_stream(id, false);
        }
    }

    pub(super) fn handle_data(&mut self, stream_id: u32, values: Vec<Amf0Value>) {
        let mut values = values.into_iter();
        let mut name = values.next();
        if matches!(&name, Some(Amf0Value::Utf8String(s)) if s == "@setDataFrame") {
            name = values.next();
        }
        match name {
            Some(Amf0Value::Utf8String(s)) if s == "onMetaData" => {
                if self.streams.get(&stream_id) != Some(&StreamRole::Publishing) {
                    self.report_once("onMetaData on a stream that does not publish");
                    return;
                }
                let (props, cut) = metadata_properties(values.next());
                if cut {
                    self.report_once(&format!(
                        "onMetaData over {MAX_METADATA_BYTES} bytes (the rest is left out)"
                    ));
                }
                self.events.push_back(ServeEvent::Metadata(props));
            }
            Some(Amf0Value::Utf8String(s)) => {
                self.report_once(&format!("data message '{}'", shorten(&s)))
            }
            _ => self.report_once("data message without a name"),
        }
    }
}
