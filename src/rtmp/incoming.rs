//! One received RTMP message, sorted for a session (client or server): media, AMF0 data and
//! commands (decoded behind `amf0`'s checks), the parts of an aggregate, or a protocol
//! control message — and what about it is worth a report. Both sessions take messages apart
//! the same way; what they do with each kind is theirs.
//!
//! Pure; never panics on input.

use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use super::aggregate::{split_aggregate, AggregateError, AGGREGATE_TYPE_ID};
use super::amf0::decode_amf0;
use super::chunk::RawMessage;

/// What a message is.
pub(crate) enum Incoming {
    /// Audio (8) or video (9) with a payload.
    Media(RawMessage),
    /// The messages of an aggregate (aggregates inside left out).
    Parts(Vec<RawMessage>),
    /// AMF0 data (types 15, 18) on `stream_id`.
    Data {
        stream_id: u32,
        values: Vec<Amf0Value>,
    },
    /// An AMF0 command (types 17, 20) on `stream_id`.
    Command {
        stream_id: u32,
        values: Vec<Amf0Value>,
    },
    /// A protocol or user control message.
    Control(RtmpMessage),
    /// Nothing to act on; `key` names the kind (report once per key), `what` says it.
    Report { key: String, what: String },
}

/// The aggregate had more parts than anyone sends: the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooManyParts(pub String);

/// Sorts `message`; a truncated aggregate gives its whole parts and a report after them.
pub(crate) fn sort(message: RawMessage) -> Result<Vec<Incoming>, TooManyParts> {
    let report = |key: String, what: String| Incoming::Report { key, what };
    Ok(match message.type_id {
        8 | 9 if message.payload.is_empty() => vec![report(
            "empty audio or video message".into(),
            "empty audio or video message".into(),
        )],
        8 | 9 => vec![Incoming::Media(message)],
        AGGREGATE_TYPE_ID => {
            let (parts, truncated) = match split_aggregate(&message) {
                Ok(parts) => (parts, false),
                Err(AggregateError::Truncated { parts }) => (parts, true),
                Err(e @ AggregateError::TooManyParts) => return Err(TooManyParts(e.to_string())),
            };
            let parts = parts
                .into_iter()
                .filter(|p| p.type_id != AGGREGATE_TYPE_ID)
                .collect();
            let mut out = vec![Incoming::Parts(parts)];
            if truncated {
                out.push(report(
                    "truncated aggregate message".into(),
                    "truncated aggregate message".into(),
                ));
            }
            out
        }
        // AMF0 data (18) and commands (20), and their AMF3-flagged twins (15, 17) that
        // Flash-era peers fill with AMF0 anyway: decoded here, not by rml_rtmp, whose
        // command decoder panics on fewer than three values.
        15 | 18 => vec![match decode_amf0(&message.payload) {
            Ok(values) => Incoming::Data {
                stream_id: message.stream_id,
                values,
            },
            Err(e) => report(
                format!("undecodable data type {}", message.type_id),
                format!("undecodable AMF0 data message ({e})"),
            ),
        }],
        17 | 20 => {
            let body = match message.payload.split_first() {
                // An AMF3 command starts with a format byte of 0 before its AMF0 values.
                Some((&0, rest)) if message.type_id == 17 => rest,
                _ => &message.payload[..],
            };
            vec![match decode_amf0(body) {
                Ok(values) => Incoming::Command {
                    stream_id: message.stream_id,
                    values,
                },
                Err(e) => report(
                    format!("undecodable command type {}", message.type_id),
                    format!("undecodable AMF0 command message ({e})"),
                ),
            }]
        }
        type_id => {
            let payload = MessagePayload {
                timestamp: RtmpTimestamp::new(message.timestamp),
                type_id,
                message_stream_id: message.stream_id,
                data: message.payload,
            };
            vec![match payload.to_rtmp_message() {
                Ok(parsed) => Incoming::Control(parsed),
                Err(e) => report(
                    format!("undecodable type {type_id}"),
                    format!("undecodable RTMP message of type {type_id} ({e})"),
                ),
            }]
        }
    })
}
