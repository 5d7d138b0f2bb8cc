//! H.264 access units → RTP payloads (RFC 6184, packetization-mode 1), made once per capture
//! and shared by every viewer as `Bytes`: per viewer only the RTP header differs.
//!
//! A NAL unit that fits is sent alone (a zero-copy slice of the access unit); a larger one
//! as FU-A fragments, all cut from one allocation; the parameter sets in front of a keyframe
//! (SPS, PPS) go together in one STAP-A when they fit. Access unit delimiters and filler
//! data are dropped. Stateless: our access units carry their own parameter sets (the
//! normalizer puts them in front of every keyframe). Pure: no clock, no I/O, no RTP header.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::h264::split_nals;

/// The largest RTP payload sent, in bytes: with the 12-byte header, SRTP's 10-16 byte tag
/// and the IP/UDP headers, a packet stays well under a 1 280-byte IPv6 minimum MTU path.
pub const MAX_PAYLOAD: usize = 1200;

const NAL_TYPE_MASK: u8 = 0x1f;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;

/// The payloads of `access_unit` (Annex-B) for payloads of at most `max_payload` bytes (at
/// least 3 are used), in sending order; the last one takes the RTP marker bit. Empty when
/// the access unit holds nothing to send.
pub fn packetize(access_unit: &Bytes, max_payload: usize) -> Vec<Bytes> {
    let max_payload = max_payload.max(3);
    let mut payloads = Vec::new();
    let mut parameter_sets: Vec<&[u8]> = Vec::new();
    for nal in split_nals(access_unit) {
        let Some(&header) = nal.first() else {
            continue;
        };
        match header & NAL_TYPE_MASK {
            NAL_AUD | NAL_FILLER => continue,
            NAL_SPS | NAL_PPS => {
                parameter_sets.push(nal);
                continue;
            }
            _ => {}
        }
        flush_parameter_sets(access_unit, &mut parameter_sets, max_payload, &mut payloads);
        single_or_fragments(access_unit, nal, max_payload, &mut payloads);
    }
    flush_parameter_sets(access_unit, &mut parameter_sets, max_payload, &mut payloads);
    payloads
}

/// Sends the parameter sets gathered so far: one STAP-A when there are several and they fit
/// in one payload, else each on its own.
fn flush_parameter_sets(
    access_unit: &Bytes,
    sets: &mut Vec<&[u8]>,
    max_payload: usize,
    payloads: &mut Vec<Bytes>,
) {
    if sets.is_empty() {
        return;
    }
    let aggregate_len = 1 + sets.iter().map(|nal| 2 + nal.len()).sum::<usize>();
    let lengths_fit = sets.iter().all(|nal| nal.len() <= usize::from(u16::MAX));
    if sets.len() > 1 && aggregate_len <= max_payload && lengths_fit {
        // F = 0, NRI = the highest of the aggregated units (RFC 6184 §5.7.1).
        let nri = sets.iter().map(|nal| nal[0] & 0x60).max().unwrap_or(0);
        let mut stap = BytesMut::with_capacity(aggregate_len);
        stap.put_u8(nri | STAP_A);
        for nal in sets.iter() {
            stap.put_u16(nal.len() as u16);
            stap.put_slice(nal);
        }
        payloads.push(stap.freeze());
    } else {
        for nal in sets.iter() {
            single_or_fragments(access_unit, nal, max_payload, payloads);
        }
    }
    sets.clear();
}

/// `nal` as one payload (a slice of `access_unit`, no copy) or as FU-A fragments.
fn single_or_fragments(access_unit: &Bytes, nal: &[u8], max_payload: usize, out: &mut Vec<Bytes>) {
    if nal.len() <= max_payload {
        out.push(access_unit.slice_ref(nal));
        return;
    }
    let header = nal[0];
    let body = &nal[1..];
    let per_fragment = max_payload - 2;
    let fragments = body.len().div_ceil(per_fragment);
    let mut all = BytesMut::with_capacity(body.len() + 2 * fragments);
    for (i, chunk) in body.chunks(per_fragment).enumerate() {
        let mut fu_header = header & NAL_TYPE_MASK;
        if i == 0 {
            fu_header |= FU_START;
        }
        if i + 1 == fragments {
            fu_header |= FU_END;
        }
        all.put_u8((header & 0xe0) | FU_A);
        all.put_u8(fu_header);
        all.put_slice(chunk);
        out.push(all.split().freeze());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An Annex-B access unit of `nals`, each behind a 4-byte start code.
    fn access_unit(nals: &[Vec<u8>]) -> Bytes {
        let mut out = Vec::new();
        for nal in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        Bytes::from(out)
    }

    /// A NAL unit of `len` bytes with header `header`, its body free of start codes.
    fn nal(header: u8, len: usize) -> Vec<u8> {
        let mut v = vec![header];
        v.extend((1..len).map(|i| (i % 251) as u8 | 0x10));
        v
    }

    /// What a receiver rebuilds from the payloads (RFC 6184 depacketization).
    fn depacketize(payloads: &[Bytes]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut partial: Option<Vec<u8>> = None;
        for p in payloads {
            match p[0] & NAL_TYPE_MASK {
                STAP_A => {
                    let mut rest = &p[1..];
                    while rest.len() >= 2 {
                        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                        nals.push(rest[2..2 + len].to_vec());
                        rest = &rest[2 + len..];
                    }
                    assert!(rest.is_empty(), "STAP-A with trailing bytes");
                }
                FU_A => {
                    let (indicator, fu) = (p[0], p[1]);
                    if fu & FU_START != 0 {
                        assert!(partial.is_none(), "FU-A start inside a fragmented unit");
                        partial = Some(vec![(indicator & 0xe0) | (fu & NAL_TYPE_MASK)]);
                    }
                    let unit = partial.as_mut().expect("FU-A fragment without a start");
                    unit.extend_from_slice(&p[2..]);
                    if fu & FU_END != 0 {
                        nals.push(partial.take().unwrap());
                    }
                }
                _ => nals.push(p.to_vec()),
            }
        }
        assert!(partial.is_none(), "an FU-A unit never ended");
        nals
    }

    #[test]
    fn a_keyframe_sends_its_parameter_sets_in_one_stap_a_then_its_slice_in_fragments() {
        let sps = nal(0x67, 20);
        let pps = nal(0x68, 4);
        let idr = nal(0x65, 5000);
        let au = access_unit(&[vec![0x09, 0xf0], sps.clone(), pps.clone(), idr.clone()]);
        let payloads = packetize(&au, MAX_PAYLOAD);
        assert_eq!(payloads[0][0], 0x60 | STAP_A, "NRI of the SPS, type 24");
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        assert_eq!(payloads.len(), 1 + 5000_usize.div_ceil(MAX_PAYLOAD - 2));
        assert_eq!(
            depacketize(&payloads),
            vec![sps, pps, idr],
            "the AUD is dropped"
        );
        let last = payloads.last().unwrap();
        assert_eq!(last[1] & (FU_START | FU_END), FU_END);
    }

    #[test]
    fn small_units_go_alone_as_zero_copy_slices_of_the_access_unit() {
        let au = access_unit(&[nal(0x06, 30), nal(0x41, 900)]);
        let payloads = packetize(&au, MAX_PAYLOAD);
        assert_eq!(payloads.len(), 2);
        let range = au.as_ptr() as usize..au.as_ptr() as usize + au.len();
        for p in &payloads {
            assert!(range.contains(&(p.as_ptr() as usize)), "a copy was made");
        }
        assert_eq!(payloads[1].len(), 900);
    }

    #[test]
    fn a_unit_exactly_at_the_limit_goes_alone_and_one_byte_more_is_fragmented() {
        let at_limit = access_unit(&[nal(0x41, 100)]);
        assert_eq!(packetize(&at_limit, 100).len(), 1);
        let over = access_unit(&[nal(0x41, 101)]);
        let payloads = packetize(&over, 100);
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[0].len(), 100);
        assert_eq!(payloads[1].len(), 2 + 2, "100 body bytes: 98 then 2");
        assert_eq!(depacketize(&payloads), vec![nal(0x41, 101)]);
    }

    #[test]
    fn parameter_sets_too_big_for_one_aggregate_go_alone_or_fragmented() {
        let sps = nal(0x67, 700);
        let pps = nal(0x68, 700);
        let idr = nal(0x65, 10);
        let payloads = packetize(&access_unit(&[sps.clone(), pps.clone(), idr.clone()]), 1000);
        assert_eq!(payloads.len(), 3);
        assert_eq!(depacketize(&payloads), vec![sps, pps, idr]);
        let lone = nal(0x67, 40);
        let payloads = packetize(&access_unit(std::slice::from_ref(&lone)), 1000);
        assert_eq!(payloads.len(), 1, "one set alone needs no aggregate");
        assert_eq!(payloads[0].to_vec(), lone);
    }

    #[test]
    fn every_size_round_trips_and_no_payload_exceeds_the_limit() {
        for max_payload in [3, 4, 17, 100, MAX_PAYLOAD] {
            for len in [1, 2, 3, 50, 99, 100, 101, 1199, 1200, 1201, 3000] {
                let nals = vec![nal(0x67, 12), nal(0x68, 5), nal(0x25, len), nal(0x01, 7)];
                let payloads = packetize(&access_unit(&nals), max_payload);
                assert!(
                    payloads.iter().all(|p| p.len() <= max_payload.max(3)),
                    "{max_payload}/{len}"
                );
                assert_eq!(depacketize(&payloads), nals, "{max_payload}/{len}");
            }
        }
    }

    #[test]
    fn nothing_to_send_gives_no_payloads_and_garbage_never_panics() {
        assert!(packetize(&Bytes::new(), MAX_PAYLOAD).is_empty());
        assert!(packetize(&Bytes::from_static(&[0, 0, 1, 0x09, 0xf0]), 1200).is_empty());
        assert!(packetize(&Bytes::from_static(&[0, 0, 0, 1, 0x0c, 0xff]), 1200).is_empty());
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 5) as u8).collect();
            let _ = packetize(&Bytes::from(junk), 4);
        }
        // Without a start code the whole buffer is one NAL unit.
        let raw = Bytes::from(nal(0x41, 10));
        assert_eq!(packetize(&raw, 1200), vec![raw]);
    }
}
