//! How a turn's queued datagrams leave the port's UDP socket: which of them travel as one
//! UDP GSO message (Linux `UDP_SEGMENT`: one buffer the kernel cuts into datagrams of
//! one size, so a run of one viewer's packets crosses the network stack once) and which
//! messages share a `sendmmsg` call (one call carries one segment size).
//!
//! A message is consecutive datagrams to one address, every one but the last of the same
//! size and the last no longer; at most [`MAX_SEGMENTS`] and [`MAX_MESSAGE_BYTES`]. A call
//! is consecutive messages that need the same segment size (a single datagram goes with any
//! call whose size it does not exceed), at most `batch` of them. The queue's order is kept.
//! Pure: lengths and addresses in, ranges out.

use std::net::SocketAddr;
use std::ops::Range;

/// The most segments in one GSO message (the kernel's `UDP_MAX_SEGMENTS` was 64 before
/// Linux 6.9).
pub const MAX_SEGMENTS: usize = 64;

/// The most bytes in one GSO message (a UDP payload's limit, with room for headers).
pub const MAX_MESSAGE_BYTES: usize = 65_000;

/// One message: `datagrams` of the queue, cut at `segment` bytes when there are several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub datagrams: Range<usize>,
    /// The segment size the kernel cuts at; `None` for a single datagram.
    pub segment: Option<u16>,
}

/// One `sendmmsg` call: `messages` of the plan, all sent with `segment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub messages: Range<usize>,
    pub segment: Option<u16>,
}

/// Groups `datagrams` (destination, length) into messages; with `gso` false every datagram
/// is its own message.
pub fn plan_messages(datagrams: &[(SocketAddr, usize)], gso: bool) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut i = 0;
    while i < datagrams.len() {
        let (to, size) = datagrams[i];
        let mut end = i + 1;
        let mut bytes = size;
        let segmentable = gso && size > 0 && size <= usize::from(u16::MAX);
        while segmentable && end < datagrams.len() && end - i < MAX_SEGMENTS {
            let (next_to, next_size) = datagrams[end];
            if next_to != to || next_size > size || next_size == 0 {
                break;
            }
            if bytes + next_size > MAX_MESSAGE_BYTES {
                break;
            }
            bytes += next_size;
            end += 1;
            if next_size < size {
                // A shorter datagram can only be the last segment.
                break;
            }
        }
        let segment = (end - i > 1).then_some(size as u16);
        messages.push(Message {
            datagrams: i..end,
            segment,
        });
        i = end;
    }
    messages
}

/// Groups `messages` (planned from `datagrams`) into calls of at most `batch` (≥ 1) messages
/// sharing one segment size (a single datagram joins a call whose segment it does not
/// exceed).
pub fn plan_calls(
    messages: &[Message],
    datagrams: &[(SocketAddr, usize)],
    batch: usize,
) -> Vec<Call> {
    let length = |d: usize| datagrams.get(d).map(|&(_, len)| len);
    let batch = batch.max(1);
    let mut calls: Vec<Call> = Vec::new();
    for (m, message) in messages.iter().enumerate() {
        let single_len = match message.segment {
            None => length(message.datagrams.start),
            Some(_) => None,
        };
        if let Some(call) = calls.last_mut() {
            let room = call.messages.len() < batch;
            let fits = match (call.segment, message.segment, single_len) {
                (a, b, _) if a == b => true,
                // A single datagram no longer than the call's segment goes out whole.
                (Some(s), None, Some(len)) => len <= usize::from(s),
                // A call of singles takes a segment size when every single in it fits.
                (None, Some(s), _) => call.messages.clone().all(|k| {
                    messages[k]
                        .datagrams
                        .clone()
                        .all(|d| length(d).is_some_and(|l| l <= usize::from(s)))
                }),
                _ => false,
            };
            if room && fits {
                call.messages.end = m + 1;
                call.segment = call.segment.or(message.segment);
                continue;
            }
        }
        calls.push(Call {
            messages: m..m + 1,
            segment: message.segment,
        });
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Datagrams of `lengths` to one address.
    fn shape(lengths: &[usize]) -> Vec<(SocketAddr, usize)> {
        lengths.iter().map(|&len| (addr(1), len)).collect()
    }

    fn plan(datagrams: &[(u16, usize)]) -> Vec<(Range<usize>, Option<u16>)> {
        let d: Vec<(SocketAddr, usize)> = datagrams.iter().map(|&(p, l)| (addr(p), l)).collect();
        plan_messages(&d, true)
            .into_iter()
            .map(|m| (m.datagrams, m.segment))
            .collect()
    }

    #[test]
    fn one_viewers_run_of_equal_packets_is_one_message_ending_at_a_shorter_one() {
        // A frame's FU-A fragments (1 238 bytes) and its last, shorter one; then audio.
        let got = plan(&[
            (1, 1238),
            (1, 1238),
            (1, 1238),
            (1, 400),
            (1, 120),
            (2, 1238),
        ]);
        assert_eq!(
            got,
            vec![(0..4, Some(1238)), (4..5, None), (5..6, None)],
            "the 120-byte datagram cannot follow a shorter last segment"
        );
    }

    #[test]
    fn a_longer_datagram_or_another_address_starts_a_new_message() {
        let got = plan(&[(1, 100), (1, 1238), (1, 1238), (2, 1238), (1, 1238)]);
        assert_eq!(
            got,
            vec![(0..1, None), (1..3, Some(1238)), (3..4, None), (4..5, None)]
        );
    }

    #[test]
    fn messages_are_bounded_in_segments_and_bytes() {
        let many: Vec<(u16, usize)> = (0..MAX_SEGMENTS + 5).map(|_| (1, 500)).collect();
        let got = plan(&many);
        assert_eq!(got[0], (0..MAX_SEGMENTS, Some(500)));
        assert_eq!(got[1], (MAX_SEGMENTS..MAX_SEGMENTS + 5, Some(500)));
        let big: Vec<(u16, usize)> = (0..10).map(|_| (1, 9_000)).collect();
        let got = plan(&big);
        assert_eq!(
            got[0],
            (0..7, Some(9_000)),
            "7 × 9 000 ≤ 65 000 < 8 × 9 000"
        );
        let empty = plan(&[(1, 0), (1, 0)]);
        assert_eq!(
            empty,
            vec![(0..1, None), (1..2, None)],
            "empty datagrams go alone"
        );
    }

    #[test]
    fn without_gso_every_datagram_is_alone() {
        let d = vec![(addr(1), 1238); 3];
        let got = plan_messages(&d, false);
        assert_eq!(got.len(), 3);
        assert!(got
            .iter()
            .all(|m| m.segment.is_none() && m.datagrams.len() == 1));
    }

    #[test]
    fn calls_share_one_segment_size_and_take_singles_that_fit() {
        let lengths = [1238, 1238, 120, 1238, 1238, 1244, 1244, 1300, 100];
        let messages = vec![
            Message {
                datagrams: 0..2,
                segment: Some(1238),
            },
            Message {
                datagrams: 2..3,
                segment: None,
            },
            Message {
                datagrams: 3..5,
                segment: Some(1238),
            },
            Message {
                datagrams: 5..7,
                segment: Some(1244),
            },
            Message {
                datagrams: 7..8,
                segment: None,
            },
            Message {
                datagrams: 8..9,
                segment: None,
            },
        ];
        let calls = plan_calls(&messages, &shape(&lengths), 64);
        assert_eq!(
            calls,
            vec![
                Call {
                    messages: 0..3,
                    segment: Some(1238)
                },
                Call {
                    messages: 3..4,
                    segment: Some(1244)
                },
                // 1 300 > 1 244: it would be cut; it starts a call of singles.
                Call {
                    messages: 4..6,
                    segment: None
                },
            ]
        );
        let singles = [100, 200, 1238, 1238];
        let messages = vec![
            Message {
                datagrams: 0..1,
                segment: None,
            },
            Message {
                datagrams: 1..2,
                segment: None,
            },
            Message {
                datagrams: 2..4,
                segment: Some(1238),
            },
        ];
        assert_eq!(
            plan_calls(&messages, &shape(&singles), 64),
            vec![Call {
                messages: 0..3,
                segment: Some(1238)
            }],
            "singles that fit take the segment size of the message after them"
        );
        assert_eq!(
            plan_calls(&messages, &shape(&singles), 2).len(),
            2,
            "at most `batch` a call"
        );
    }
}
