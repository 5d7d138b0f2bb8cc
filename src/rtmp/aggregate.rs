//! Splitting RTMP aggregate messages (message type 22) into the messages they carry.
//!
//! An aggregate body is a run of FLV-tag-like records: type (1), length (3), timestamp (3 +
//! 1 extension byte), stream id (3), body, then a 4-byte back pointer. The records'
//! timestamps are rebased so the first one equals the aggregate message's own timestamp
//! (what Wowza and FMS expect of a player). `rml_rtmp` 0.8 has no support for them.

use bytes::Bytes;

use super::chunk::RawMessage;

/// Message type id of an aggregate message.
pub const AGGREGATE_TYPE_ID: u8 = 22;

/// Splits `aggregate` into its sub-messages. A truncated trailing record is dropped and
/// reported as `Err` with the messages read so far.
pub fn split_aggregate(aggregate: &RawMessage) -> Result<Vec<RawMessage>, Vec<RawMessage>> {
    let data: &Bytes = &aggregate.payload;
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < data.len() {
        let Some(h) = data.get(pos..pos + 11) else {
            return Err(out);
        };
        let type_id = h[0];
        let length = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
        let ts = ((h[7] as u32) << 24) | ((h[4] as u32) << 16) | ((h[5] as u32) << 8) | h[6] as u32;
        let start = pos + 11;
        let end = start + length;
        if end > data.len() {
            return Err(out);
        }
        let base = *first_ts.get_or_insert(ts);
        out.push(RawMessage {
            csid: aggregate.csid,
            timestamp: aggregate.timestamp.wrapping_add(ts.wrapping_sub(base)),
            type_id,
            stream_id: aggregate.stream_id,
            payload: data.slice(start..end),
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
        assert_eq!(err.len(), 1);
        for cut in 0..20 {
            let body = record(9, 1, &[9; 6]);
            let _ = split_aggregate(&aggregate(0, body[..cut.min(body.len())].to_vec()));
        }
    }
}
