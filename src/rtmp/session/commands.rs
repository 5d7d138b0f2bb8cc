//! What the play session does with the commands and data messages a server sends: the
//! answers to `connect`, `createStream` and `play`, `onStatus` and its kin, the calls a
//! publisher's server may make of us, and `onMetaData` (the table is in the session's module
//! documentation). Status texts are cut at [`MAX_STATUS_TEXT_BYTES`]; unknown commands are
//! reported once each.

use std::collections::HashMap;

use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;

use super::metadata::{cut_text, metadata_properties, MAX_METADATA_BYTES};
use super::{PlaySession, SessionError, SessionEvent, State, MAX_REPORTED_NAME};

impl PlaySession {
    /// Splits a command message into name, transaction id, command object and arguments.
    pub(super) fn handle_command_values(
        &mut self,
        stream_id: u32,
        values: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        let mut values = values.into_iter();
        let name = match values.next() {
            // nginx-rtmp pads some strings with NULs.
            Some(Amf0Value::Utf8String(name)) => name.trim_end_matches('\0').to_string(),
            _ => {
                self.report_once("command message without a name");
                return Ok(());
            }
        };
        // A missing or non-numeric transaction id reads as 0 (a notification), a missing
        // command object as null.
        let transaction = match values.next() {
            Some(Amf0Value::Number(n)) => n,
            _ => 0.0,
        };
        let object = values.next().unwrap_or(Amf0Value::Null);
        self.handle_command(stream_id, &name, transaction, object, values.collect())
    }

    fn handle_command(
        &mut self,
        stream_id: u32,
        name: &str,
        transaction: f64,
        object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        // The info object is the first argument; a few servers put it in the command
        // object's place instead.
        let info = status_info(arguments.iter().chain(std::iter::once(&object)));
        match name {
            "_result" if transaction == self.connect_tx && self.state == State::Connecting => {
                self.events.push_back(SessionEvent::Connected);
                self.after_connect()
            }
            "_result"
                if transaction == self.create_stream_tx && self.state == State::CreatingStream =>
            {
                let stream_id = arguments.iter().find_map(|v| match v {
                    Amf0Value::Number(n) if *n >= 0.0 && *n <= u32::MAX as f64 => Some(*n as u32),
                    _ => None,
                });
                match stream_id {
                    Some(id) => self.send_play(id),
                    None => {
                        self.events.push_back(SessionEvent::Failed {
                            reason: "the server answered createStream without a stream id"
                                .to_string(),
                        });
                        Ok(())
                    }
                }
            }
            "_error" if transaction == self.connect_tx && self.state == State::Connecting => {
                self.events.push_back(SessionEvent::Failed {
                    reason: format!("the server refused connect: {}", info.describe()),
                });
                Ok(())
            }
            "_error"
                if transaction == self.create_stream_tx && self.state == State::CreatingStream =>
            {
                self.events.push_back(SessionEvent::Failed {
                    reason: format!("the server refused createStream: {}", info.describe()),
                });
                Ok(())
            }
            // ffmpeg takes an `_error` answering `play` as fatal; the server will not play.
            "_error" if transaction == self.play_tx && self.state == State::Playing => {
                self.events.push_back(SessionEvent::Failed {
                    reason: format!("the server refused play: {}", info.describe()),
                });
                Ok(())
            }
            // The answer to FCSubscribe, an Adobe-era extra: servers that do not know it
            // answer `_error` (ffmpeg and librtmp ignore that too); `play` decides.
            "_result" | "_error"
                if transaction == self.fc_subscribe_tx && self.fc_subscribe_tx > 0.0 =>
            {
                self.events
                    .push_back(status_event(&format!("{name} to FCSubscribe"), info));
                Ok(())
            }
            // A late or duplicate answer nobody waits for.
            "_result" | "_error" => {
                self.events.push_back(status_event(name, info));
                Ok(())
            }
            "onStatus" => {
                self.handle_status(info);
                Ok(())
            }
            // Wowza, Akamai and FMS answer FCSubscribe with this; an error there is the
            // refusal `play` would get, so the pull fails now with the server's words.
            "onFCSubscribe" => {
                let event = if info.code == "NetStream.Play.StreamNotFound" {
                    SessionEvent::Failed {
                        reason: format!("stream not found (onFCSubscribe {})", info.describe()),
                    }
                } else if is_failure(&info) {
                    SessionEvent::Failed {
                        reason: format!("the server refused FCSubscribe: {}", info.describe()),
                    }
                } else {
                    status_event(name, info)
                };
                self.events.push_back(event);
                Ok(())
            }
            // The server relays that the publisher stopped (FMS/Wowza edges), or dropped
            // our subscription: like UnpublishNotify, it keeps the connection.
            "onFCUnpublish" | "onFCUnsubscribe" => {
                self.events.push_back(SessionEvent::Unpublished {
                    description: format!("{name} ({})", info.describe()),
                });
                Ok(())
            }
            // Informational: a publisher started (relayed), or the CDN names its origin.
            "onFCPublish" | "onUpstreamBase" => {
                self.events.push_back(status_event(name, info));
                Ok(())
            }
            // The server offers a bandwidth check; we run none (librtmp would call
            // `_checkbw`), and the server needs no answer.
            "onBWDone" | "_onbwdone" => Ok(()),
            // The server measures the round trip of its calls: answer `_result` with the
            // same transaction id and a counter, as librtmp and Flash players do. A
            // transaction id of 0 asks for no answer.
            "onBWCheck" | "_onbwcheck" => {
                if transaction > 0.0 {
                    let count = self.bw_checks;
                    self.bw_checks = self.bw_checks.wrapping_add(1);
                    self.send(
                        command(
                            "_result",
                            transaction,
                            Amf0Value::Null,
                            vec![Amf0Value::Number(count as f64)],
                        ),
                        stream_id,
                    )?;
                }
                Ok(())
            }
            // A publisher's calls: a player takes none. Answer `_error` when an answer is
            // awaited (transaction id > 0) so the peer is not left hanging; never fail.
            "releaseStream" | "FCPublish" | "FCUnpublish" => {
                if transaction > 0.0 {
                    self.send(call_failed(name, transaction), stream_id)?;
                    self.report_once(&format!(
                        "command '{name}' (a publisher's; answered _error)"
                    ));
                } else {
                    self.report_once(&format!("command '{name}' (a publisher's)"));
                }
                Ok(())
            }
            // Flash players' permission to read raw samples; nothing for us to do.
            "|RtmpSampleAccess" => Ok(()),
            "close" => {
                self.events.push_back(SessionEvent::Ended {
                    reason: "the server closed the connection (close)".to_string(),
                });
                Ok(())
            }
            other => {
                self.report_once(&format!("command '{}'", shorten(other)));
                Ok(())
            }
        }
    }

    fn handle_status(&mut self, info: StatusInfo) {
        let event = match info.code.as_str() {
            "NetStream.Play.Start" => SessionEvent::PlayStarted {
                description: info.description,
            },
            "NetStream.Play.StreamNotFound" => SessionEvent::Failed {
                reason: format!("stream not found ({})", info.describe()),
            },
            "NetStream.Play.UnpublishNotify" => SessionEvent::Unpublished {
                description: info.describe(),
            },
            "NetStream.Play.Stop" | "NetStream.Play.Complete" => SessionEvent::Ended {
                reason: format!("the server stopped the stream ({})", info.describe()),
            },
            "NetConnection.Connect.Rejected"
            | "NetConnection.Connect.Failed"
            | "NetConnection.Connect.Closed" => SessionEvent::Failed {
                reason: format!("the server reported {}", info.describe()),
            },
            // `NetStream.Play.Failed`, `NetStream.Failed` and any `error` level. Other levels
            // (`status`, `warning` as in `NetStream.Play.InsufficientBW`) only inform.
            _ if is_failure(&info) => SessionEvent::Failed {
                reason: format!("the server reported {}", info.describe()),
            },
            _ => SessionEvent::Status {
                code: info.code,
                description: info.description,
            },
        };
        self.events.push_back(event);
    }

    pub(super) fn handle_data(&mut self, values: Vec<Amf0Value>) {
        let mut values = values.into_iter();
        let mut name = values.next();
        if matches!(&name, Some(Amf0Value::Utf8String(s)) if s == "@setDataFrame") {
            name = values.next();
        }
        match name {
            Some(Amf0Value::Utf8String(s)) if s == "onMetaData" => {
                let (props, cut) = metadata_properties(values.next());
                if cut {
                    self.report_once(&format!(
                        "onMetaData over {MAX_METADATA_BYTES} bytes (the rest is left out)"
                    ));
                }
                self.events.push_back(SessionEvent::Metadata(props));
            }
            // Flash players' permission to read raw samples; nothing for us to do.
            Some(Amf0Value::Utf8String(s)) if s == "|RtmpSampleAccess" => {}
            // Servers (rml_rtmp, Wowza) announce `NetStream.Data.Start` as a data message.
            Some(Amf0Value::Utf8String(s)) if s == "onStatus" => {
                let values: Vec<Amf0Value> = values.collect();
                self.handle_status(status_info(&values));
            }
            Some(Amf0Value::Utf8String(s)) => {
                self.report_once(&format!("data message '{}'", shorten(&s)))
            }
            _ => self.report_once("data message without a name"),
        }
    }
}

pub(super) fn command(name: &str, tx: f64, object: Amf0Value, args: Vec<Amf0Value>) -> RtmpMessage {
    RtmpMessage::Amf0Command {
        command_name: name.to_string(),
        transaction_id: tx,
        command_object: object,
        additional_arguments: args,
    }
}

pub(super) fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_string())
}

/// The `_error` a server gives for a call it does not take (`NetConnection.Call.Failed`).
fn call_failed(name: &str, tx: f64) -> RtmpMessage {
    let mut info = HashMap::new();
    info.insert("level".to_string(), string("error"));
    info.insert("code".to_string(), string("NetConnection.Call.Failed"));
    info.insert(
        "description".to_string(),
        string(&format!("{name} is not supported: this client only plays")),
    );
    command("_error", tx, Amf0Value::Null, vec![Amf0Value::Object(info)])
}

/// A server-chosen name, cut to [`MAX_REPORTED_NAME`] characters and escaped for a log line.
pub(crate) fn shorten(name: &str) -> String {
    let mut short: String = name
        .chars()
        .take(MAX_REPORTED_NAME)
        .collect::<String>()
        .escape_debug()
        .collect();
    if name.chars().nth(MAX_REPORTED_NAME).is_some() {
        short.push('…');
    }
    short
}

/// An informational [`SessionEvent::Status`] from a command and its info object.
fn status_event(name: &str, info: StatusInfo) -> SessionEvent {
    SessionEvent::Status {
        code: if info.code.is_empty() {
            name.to_string()
        } else {
            info.code
        },
        description: if info.description.is_empty() {
            name.to_string()
        } else {
            format!("{name}: {}", info.description)
        },
    }
}

/// Whether an info object says the request failed: an `error` level, or a failure code some
/// servers send with another level.
fn is_failure(info: &StatusInfo) -> bool {
    info.level == "error"
        || matches!(
            info.code.as_str(),
            "NetStream.Play.StreamNotFound" | "NetStream.Play.Failed" | "NetStream.Failed"
        )
}

/// Longest status text (`level`, `code`, `description` of an info object) kept, in bytes:
/// it ends up in capture failure reasons and log lines.
pub const MAX_STATUS_TEXT_BYTES: usize = 512;

/// The `level` / `code` / `description` of a status or error info object.
#[derive(Debug, Default)]
struct StatusInfo {
    level: String,
    code: String,
    description: String,
}

impl StatusInfo {
    fn describe(&self) -> String {
        match (self.code.is_empty(), self.description.is_empty()) {
            (true, true) => "no details given".to_string(),
            (false, true) => self.code.clone(),
            (true, false) => self.description.clone(),
            (false, false) => format!("{}: {}", self.code, self.description),
        }
    }
}

/// A server's status text as we keep it: at most [`MAX_STATUS_TEXT_BYTES`], control
/// characters escaped (it goes into log lines and failure reasons).
fn status_text(text: &str) -> String {
    // nginx-rtmp pads some strings with NULs.
    let text = text.trim_end_matches('\0');
    let cut = cut_text(text, MAX_STATUS_TEXT_BYTES);
    let mut out = String::with_capacity(cut.len());
    for c in cut.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut.len() < text.len() {
        out.push('…');
    }
    out
}

/// The first info object among `values`.
fn status_info<'a>(values: impl IntoIterator<Item = &'a Amf0Value>) -> StatusInfo {
    let mut info = StatusInfo::default();
    for value in values {
        if let Amf0Value::Object(map) = value {
            let text = |key: &str| match map.get(key) {
                Some(Amf0Value::Utf8String(s)) => status_text(s),
                _ => String::new(),
            };
            info.level = text("level");
            info.code = text("code");
            info.description = text("description");
            break;
        }
    }
    info
}
