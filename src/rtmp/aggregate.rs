//! Splitting RTMP aggregate messages (message type 22) into the messages they carry.
//!
//! An aggregate body is a run of FLV-tag-like records: type (1), length (3), timestamp (3 +
//! 1 extension byte), stream id (3), body, then a 4-byte back pointer. The records'
//! timestamps are rebased so the first one equals the aggregate message's own timestamp
//! (what Wowza and FMS expect of a player). `rml_rtmp` 0.8 has no support for them.

use std::fmt;

use bytes::Bytes;

use super::chunk::RawMessage;

/// Message type id of an aggregate message.
pub const AGGREGATE_TYPE_ID: u8 = 22;

/// Most messages taken from one aggregate: 1024. Wowza and FMS bundle 100–500 ms of audio
/// and video, a few dozen messages. Each one costs an event and a queue slot downstream
/// whatever its size, and an aggregate at the 8 MiB media cap made of empty 15-byte records
/// would otherwise become 560 000 of them.
pub const MAX_AGGREGATE_PARTS: usize = 1024;

/// Why an aggregate could not be split completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggregateError {
    /// The last record runs past the end of the body; `parts` are the whole records before
    /// it. Not fatal: report it and use them.
    Truncated {
        /// The records read before the cut one.
        parts: Vec<RawMessage>,
    },
    /// More than [`MAX_AGGREGATE_PARTS`] records: no real server sends that; the
    /// connection ends.
    TooManyParts,
}

impl fmt::Display for AggregateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AggregateError::Truncated { parts } => write!(
                f,
                "truncated aggregate message (the record after the first {} is cut short)",
                parts.len()
            ),
            AggregateError::TooManyParts => write!(
                f,
                "aggregate message holding more than {MAX_AGGREGATE_PARTS} messages"
            ),
        }
    }
}

impl std::error::Error for AggregateError {}

/// Splits `aggregate` into its sub-messages, at most [`MAX_AGGREGATE_PARTS`]. Each
/// sub-message's payload is copied into an allocation of its own, so a small frame kept in
/// a cache does not keep the whole aggregate alive.
pub fn split_aggregate(aggregate: &RawMessage) -> Result<Vec<RawMessage>, AggregateError> {
    let data: &Bytes = &aggregate.payload;
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < data.len() {
        let Some(&[type_id, l0, l1, l2, t0, t1, t2, t3, ..]) = data.get(pos..pos + 11) else {
            return Err(AggregateError::Truncated { parts: out });
        };
        let length = (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2);
        let ts = u32::from_be_bytes([t3, t0, t1, t2]);
        let start = pos + 11;
        let end = start + length;
        let Some(body) = data.get(start..end) else {
            return Err(AggregateError::Truncated { parts: out });
        };
        if out.len() == MAX_AGGREGATE_PARTS {
            return Err(AggregateError::TooManyParts);
        }
        let base = *first_ts.get_or_insert(ts);
        out.push(RawMessage {
            csid: aggregate.csid,
            timestamp: aggregate.timestamp.wrapping_add(ts.wrapping_sub(base)),
            type_id,
            stream_id: aggregate.stream_id,
            payload: Bytes::copy_from_slice(body),
        });
        // Skip the back pointer (tolerate its absence at the very end).
        pos = (end + 4).min(data.len());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(type_id: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![type_id];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.push((ts >> 24) as u8);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(body);
        v.extend_from_slice(&((body.len() + 11) as u32).to_be_bytes());
        v
    }

    fn aggregate(ts: u32, body: Vec<u8>) -> RawMessage {
        RawMessage {
            csid: 4,
            timestamp: ts,
            type_id: AGGREGATE_TYPE_ID,
            stream_id: 1,
            payload: Bytes::from(body),
        }
    }

    #[test]
    fn splits_and_rebases_timestamps() {
        let mut body = record(9, 5000, &[0x17, 1, 0, 0, 0]);
        body.extend(record(8, 5023, &[0xaf, 1, 0x21]));
        body.extend(record(9, 5033, &[0x27, 1, 0, 0, 0]));
        let msgs = split_aggregate(&aggregate(100, body)).unwrap();
        let summary: Vec<(u8, u32, usize)> = msgs
            .iter()
            .map(|m| (m.type_id, m.timestamp, m.payload.len()))
            .collect();
        assert_eq!(summary, vec![(9, 100, 5), (8, 123, 3), (9, 133, 5)]);
        assert_eq!(msgs[1].payload.as_ref(), &[0xaf, 1, 0x21]);
        assert_eq!(msgs[0].stream_id, 1);
    }

    #[test]
    fn extended_timestamp_byte_is_used() {
        let body = record(8, 0x0100_0005, &[1]);
        let mut body2 = body.clone();
        body2.extend(record(8, 0x0100_0019, &[2]));
        let msgs = split_aggregate(&aggregate(0x0100_0005, body2)).unwrap();
        assert_eq!(msgs[1].timestamp, 0x0100_0019);
    }

    #[test]
    fn truncated_records_keep_what_was_whole() {
        let mut body = record(8, 10, &[1, 2, 3]);
        body.extend_from_slice(&record(9, 20, &[4, 5, 6, 7])[..9]);
        let err = split_aggregate(&aggregate(10, body)).unwrap_err();
        assert!(matches!(&err, AggregateError::Truncated { parts } if parts.len() == 1));
        assert_eq!(
            err.to_string(),
            "truncated aggregate message (the record after the first 1 is cut short)"
        );
        for cut in 0..20 {
            let body = record(9, 1, &[9; 6]);
            let _ = split_aggregate(&aggregate(0, body[..cut.min(body.len())].to_vec()));
        }
    }

    #[test]
    fn the_number_of_parts_is_capped() {
        let mut body = Vec::new();
        for i in 0..MAX_AGGREGATE_PARTS as u32 {
            body.extend(record(9, i, &[]));
        }
        let msgs = split_aggregate(&aggregate(0, body.clone())).unwrap();
        assert_eq!(msgs.len(), MAX_AGGREGATE_PARTS);
        body.extend(record(9, 5000, &[]));
        assert_eq!(
            split_aggregate(&aggregate(0, body)),
            Err(AggregateError::TooManyParts)
        );
    }

    #[test]
    fn parts_do_not_share_the_aggregate_buffer() {
        let mut body = record(8, 0, &[0xaf, 1, 0x21]);
        body.extend(record(9, 0, &vec![0; 100_000]));
        let agg = aggregate(0, body);
        let msgs = split_aggregate(&agg).unwrap();
        let range = agg.payload.as_ptr_range();
        assert!(!range.contains(&msgs[0].payload.as_ptr()));
        assert_eq!(msgs[0].payload.as_ref(), &[0xaf, 1, 0x21]);
    }
}
