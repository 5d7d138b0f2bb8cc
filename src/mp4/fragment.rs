//! One movie fragment (ISO/IEC 14496-12 §8.8): `moof` (`mfhd`, then per track a `traf` with
//! `tfhd`, `tfdt` v1 and `trun` v1) followed by one `mdat` holding the samples track by track
//! in `traf` order.
//!
//! Every `trun` carries per-sample duration, size, flags and a signed composition time
//! offset, and a `data_offset` relative to the start of the `moof` (`tfhd`
//! default-base-is-moof), back-patched once the `moof` size is known. This module only lays
//! out bytes for samples it is given; what goes into a fragment and the timing are decided in
//! `writer.rs`. The caller keeps a fragment below 2 GiB, so every size and offset fits 32 bits.

use bytes::Bytes;

use super::boxes::BoxWriter;

/// `sample_depends_on = 2` (depends on no other sample): a sync sample.
pub(crate) const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1` and `sample_is_non_sync_sample`.
pub(crate) const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// `tfhd` flag: base data offset is the start of the enclosing `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data-offset, sample-duration, sample-size, sample-flags and
/// sample-composition-time-offsets present.
pub(crate) const TRUN_FLAGS: u32 = 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800;

/// One sample ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// `trun` sample flags.
    pub flags: u32,
    /// Presentation minus decode time, in the track's timescale.
    pub composition_offset: i32,
    /// The sample's bytes (AVCC for H.264, a raw frame for AAC).
    pub data: Bytes,
}

/// The samples of one track in one fragment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrackRun<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    pub samples: &'a [Sample],
}

/// `moof` + `mdat` for these runs; runs without samples are left out.
pub(crate) fn write_fragment(sequence_number: u32, runs: &[TrackRun<'_>]) -> Vec<u8> {
    let runs: Vec<&TrackRun<'_>> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let payload: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let table: usize = runs.iter().map(|r| 16 * r.samples.len() + 76).sum();
    let mut w = BoxWriter::with_capacity(payload + table + 32);

    let moof = w.start_box(b"moof");
    let mfhd = w.start_full_box(b"mfhd", 0, 0);
    w.u32(sequence_number);
    w.end_box(mfhd);
    let mut offset_slots = Vec::with_capacity(runs.len());
    for run in &runs {
        let traf = w.start_box(b"traf");
        let tfhd = w.start_full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        w.u32(run.track_id);
        w.end_box(tfhd);
        let tfdt = w.start_full_box(b"tfdt", 1, 0);
        w.u64(run.base_decode_time);
        w.end_box(tfdt);
        let trun = w.start_full_box(b"trun", 1, TRUN_FLAGS);
        w.u32(u32::try_from(run.samples.len()).unwrap_or(u32::MAX));
        offset_slots.push(w.len());
        w.i32(0); // data_offset, patched below
        for s in run.samples {
            w.u32(s.duration);
            w.u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
            w.u32(s.flags);
            w.i32(s.composition_offset);
        }
        w.end_box(trun);
        w.end_box(traf);
    }
    w.end_box(moof);

    // data_offset: from the first byte of the moof to the track's first sample in mdat.
    let moof_size = w.len();
    let mut offset = moof_size + 8;
    for (slot, run) in offset_slots.into_iter().zip(&runs) {
        w.patch_u32(slot, u32::try_from(offset).unwrap_or(u32::MAX));
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }

    let mdat = w.start_box(b"mdat");
    for s in runs.iter().flat_map(|r| r.samples.iter()) {
        w.bytes(&s.data);
    }
    w.end_box(mdat);
    w.into_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testutil::{fragments, walk_all};
    use super::*;

    fn sample(duration: u32, sync: bool, cto: i32, data: &[u8]) -> Sample {
        Sample {
            duration,
            flags: if sync {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            },
            composition_offset: cto,
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn two_tracks_offsets_and_sizes() {
        let video = [
            sample(3000, true, 6000, &[1, 1, 1, 1, 1]),
            sample(3000, false, -3000, &[2, 2, 2]),
        ];
        let audio = [
            sample(1024, true, 0, &[9; 7]),
            sample(1024, true, 0, &[8; 4]),
            sample(1024, true, 0, &[7; 1]),
        ];
        let data = write_fragment(
            7,
            &[
                TrackRun {
                    track_id: 1,
                    base_decode_time: 90_000,
                    samples: &video,
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: u64::from(u32::MAX) + 5,
                    samples: &audio,
                },
                TrackRun {
                    track_id: 3,
                    base_decode_time: 0,
                    samples: &[],
                },
            ],
        );
        let root = walk_all(&data); // every size adds up
        assert_eq!(root.child_types(), vec!["moof", "mdat"]);
        let moof = &root.children[0];
        assert_eq!(moof.child_types(), vec!["mfhd", "traf", "traf"]);
        // traf = header + tfhd (16) + tfdt v1 (20) + trun (20 + 16 per sample).
        let trafs = moof.all("traf");
        assert_eq!(trafs[0].end - trafs[0].start, 8 + 16 + 20 + 20 + 32);
        assert_eq!(trafs[1].end - trafs[1].start, 8 + 16 + 20 + 20 + 48);

        let f = fragments(&data);
        assert_eq!(f.len(), 1);
        let f = &f[0];
        assert_eq!(f.sequence, 7);
        assert_eq!(f.trafs.len(), 2);
        let (v, a) = (&f.trafs[0], &f.trafs[1]);
        assert_eq!((v.track_id, v.tfhd_flags), (1, 0x02_0000));
        assert_eq!((v.tfdt_version, v.base_decode_time), (1, 90_000));
        assert_eq!(a.base_decode_time, u64::from(u32::MAX) + 5);
        assert_eq!((v.trun.version, v.trun.flags), (1, 0xf01));
        assert_eq!(
            v.trun.samples,
            vec![(3000, 5, 0x0200_0000, 6000), (3000, 3, 0x0101_0000, -3000)]
        );
        // data_offset points exactly at each track's first sample byte.
        assert_eq!(
            v.trun.data_offset as usize,
            f.mdat_payload.start - f.moof_start
        );
        assert_eq!(data[f.moof_start + v.trun.data_offset as usize], 1);
        let a_first = f.moof_start + a.trun.data_offset as usize;
        assert_eq!(a_first, f.mdat_payload.start + 8);
        assert_eq!(&data[a_first..a_first + 7], &[9; 7]);
        assert_eq!(
            &data[f.mdat_payload.clone()],
            &[1, 1, 1, 1, 1, 2, 2, 2, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 7]
        );
    }

    #[test]
    fn only_empty_runs_give_an_empty_moof() {
        let data = write_fragment(1, &[]);
        let root = walk_all(&data);
        assert_eq!(root.child_types(), vec!["moof", "mdat"]);
    }
}
