//! The initialization segment of a fragmented MP4 (ISO/IEC 14496-12): `ftyp`, then `moov`
//! with one `trak` per track whose sample tables are empty, and `mvex` with one `trex` per
//! track (which is what announces that the samples come in `moof` fragments).
//!
//! Also the track descriptions themselves ([`TrackInfo`]): `avc1`+`avcC` (ISO/IEC 14496-15)
//! for H.264 and `mp4a`+`esds` (ISO/IEC 14496-14) for AAC, validated once at creation so that
//! writing never fails. Pure: bytes out, no I/O, no clock (all creation times are 0).

use std::sync::Arc;

use crate::codec::aac::AudioSpecificConfig;
use crate::codec::h264::{avc_decoder_config_record, AvcConfig};
use crate::media::Track;

use super::boxes::{BoxWriter, UNITY_MATRIX};
use super::Mp4Error;

/// Video timescale: 90 kHz, so every millisecond is exactly 90 ticks.
pub(crate) const VIDEO_TIMESCALE: u32 = 90_000;

/// The longest AudioSpecificConfig we record (real ones are 2 to 7 bytes).
const MAX_ASC_LEN: usize = 1024;

/// The codec of one track.
#[derive(Debug, Clone)]
pub(crate) enum Codec {
    Avc(Arc<AvcConfig>),
    Aac(Arc<AudioSpecificConfig>),
}

/// One track of the file: its id, timescale and codec configuration.
#[derive(Debug, Clone)]
pub(crate) struct TrackInfo {
    pub id: u32,
    pub timescale: u32,
    pub codec: Codec,
}

impl TrackInfo {
    /// An H.264 track; refuses configurations `avcC` cannot carry.
    pub(crate) fn video(id: u32, cfg: Arc<AvcConfig>) -> Result<Self, Mp4Error> {
        if cfg.sps.is_empty() || cfg.pps.is_empty() {
            return Err(Mp4Error::MissingParameterSets);
        }
        if let Some(ps) = cfg
            .sps
            .iter()
            .chain(cfg.pps.iter())
            .find(|ps| ps.len() > usize::from(u16::MAX))
        {
            return Err(Mp4Error::ParameterSetTooLong(ps.len()));
        }
        Ok(Self {
            id,
            timescale: VIDEO_TIMESCALE,
            codec: Codec::Avc(cfg),
        })
    }

    /// An AAC track at the decoder's output rate (the SBR rate for HE-AAC).
    pub(crate) fn audio(id: u32, cfg: Arc<AudioSpecificConfig>) -> Result<Self, Mp4Error> {
        let timescale = cfg.output_sample_rate();
        if timescale == 0 {
            return Err(Mp4Error::ZeroSampleRate);
        }
        if cfg.raw.is_empty() || cfg.raw.len() > MAX_ASC_LEN {
            return Err(Mp4Error::BadAudioConfigLength(cfg.raw.len()));
        }
        Ok(Self {
            id,
            timescale,
            codec: Codec::Aac(cfg),
        })
    }

    /// Which media track this is.
    pub(crate) fn kind(&self) -> Track {
        match self.codec {
            Codec::Avc(_) => Track::Video,
            Codec::Aac(_) => Track::Audio,
        }
    }

    /// A sample duration for when none can be derived: one AAC frame, or 1/30 s of video.
    pub(crate) fn default_duration(&self) -> u32 {
        match &self.codec {
            Codec::Avc(_) => self.timescale / 30,
            Codec::Aac(cfg) => {
                // frame_length samples at the core rate, expressed at the output rate.
                let core = u64::from(cfg.sample_rate.max(1));
                let d = u64::from(cfg.frame_length.max(1)) * u64::from(self.timescale) / core;
                u32::try_from(d.max(1)).unwrap_or(1024)
            }
        }
    }

    /// Display size from the SPS (0×0 when the SPS did not parse; decoders read the SPS).
    fn size(&self) -> (u32, u32) {
        match &self.codec {
            Codec::Avc(cfg) => cfg
                .sps_info
                .as_ref()
                .map(|s| (s.width.min(0xffff), s.height.min(0xffff)))
                .unwrap_or((0, 0)),
            Codec::Aac(_) => (0, 0),
        }
    }
}

/// `ftyp` + `moov` for these tracks (in this order; ids must be 1..=n).
pub(crate) fn init_segment(tracks: &[TrackInfo]) -> Vec<u8> {
    let mut w = BoxWriter::with_capacity(1024);
    write_ftyp(&mut w, tracks.iter().any(|t| t.kind() == Track::Video));
    let moov = w.start_box(b"moov");
    write_mvhd(&mut w, tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
    for t in tracks {
        write_trak(&mut w, t);
    }
    let mvex = w.start_box(b"mvex");
    for t in tracks {
        let trex = w.start_full_box(b"trex", 0, 0);
        w.u32(t.id);
        w.u32(1); // default_sample_description_index
        w.u32(0); // default_sample_duration
        w.u32(0); // default_sample_size
        w.u32(0); // default_sample_flags
        w.end_box(trex);
    }
    w.end_box(mvex);
    w.end_box(moov);
    w.into_vec()
}

fn write_ftyp(w: &mut BoxWriter, video: bool) {
    let b = w.start_box(b"ftyp");
    w.bytes(b"isom");
    w.u32(0x200); // minor_version
    w.bytes(b"isom");
    w.bytes(b"iso6");
    if video {
        w.bytes(b"avc1");
    }
    w.bytes(b"mp41");
    w.end_box(b);
}

fn write_mvhd(w: &mut BoxWriter, next_track_id: u32) {
    let b = w.start_full_box(b"mvhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(1000); // timescale
    w.u32(0); // duration: unknown, the fragments carry it
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(2 + 8); // reserved
    for v in UNITY_MATRIX {
        w.u32(v);
    }
    w.zeros(6 * 4); // pre_defined
    w.u32(next_track_id);
    w.end_box(b);
}

fn write_trak(w: &mut BoxWriter, t: &TrackInfo) {
    let trak = w.start_box(b"trak");
    let (width, height) = t.size();
    // tkhd: track_enabled | track_in_movie
    let tkhd = w.start_full_box(b"tkhd", 0, 0x3);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(t.id);
    w.u32(0); // reserved
    w.u32(0); // duration
    w.zeros(8); // reserved
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(if t.kind() == Track::Audio { 0x0100 } else { 0 }); // volume
    w.u16(0); // reserved
    for v in UNITY_MATRIX {
        w.u32(v);
    }
    w.u32(width << 16);
    w.u32(height << 16);
    w.end_box(tkhd);

    let mdia = w.start_box(b"mdia");
    let mdhd = w.start_full_box(b"mdhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(t.timescale);
    w.u32(0); // duration
    w.u16(0x55c4); // language "und"
    w.u16(0); // pre_defined
    w.end_box(mdhd);

    let hdlr = w.start_full_box(b"hdlr", 0, 0);
    w.u32(0); // pre_defined
    let (handler, name): (&[u8; 4], &[u8]) = match t.kind() {
        Track::Video => (b"vide", b"VideoHandler\0"),
        Track::Audio => (b"soun", b"SoundHandler\0"),
    };
    w.bytes(handler);
    w.zeros(12); // reserved
    w.bytes(name);
    w.end_box(hdlr);

    let minf = w.start_box(b"minf");
    match t.kind() {
        Track::Video => {
            let vmhd = w.start_full_box(b"vmhd", 0, 1);
            w.u16(0); // graphicsmode
            w.zeros(6); // opcolor
            w.end_box(vmhd);
        }
        Track::Audio => {
            let smhd = w.start_full_box(b"smhd", 0, 0);
            w.u16(0); // balance
            w.u16(0); // reserved
            w.end_box(smhd);
        }
    }
    let dinf = w.start_box(b"dinf");
    let dref = w.start_full_box(b"dref", 0, 0);
    w.u32(1); // entry_count
    let url = w.start_full_box(b"url ", 0, 1); // self-contained
    w.end_box(url);
    w.end_box(dref);
    w.end_box(dinf);

    let stbl = w.start_box(b"stbl");
    let stsd = w.start_full_box(b"stsd", 0, 0);
    w.u32(1); // entry_count
    match &t.codec {
        Codec::Avc(cfg) => write_avc1(w, cfg, width, height),
        Codec::Aac(cfg) => write_mp4a(w, cfg, t.id),
    }
    w.end_box(stsd);
    for table in [b"stts", b"stsc", b"stco"] {
        let b = w.start_full_box(table, 0, 0);
        w.u32(0); // entry_count
        w.end_box(b);
    }
    let stsz = w.start_full_box(b"stsz", 0, 0);
    w.u32(0); // sample_size
    w.u32(0); // sample_count
    w.end_box(stsz);
    w.end_box(stbl);
    w.end_box(minf);
    w.end_box(mdia);
    w.end_box(trak);
}

fn write_avc1(w: &mut BoxWriter, cfg: &AvcConfig, width: u32, height: u32) {
    let avc1 = w.start_box(b"avc1");
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
    w.u16(0); // pre_defined
    w.u16(0); // reserved
    w.zeros(12); // pre_defined
    w.u16(u16::try_from(width).unwrap_or(0));
    w.u16(u16::try_from(height).unwrap_or(0));
    w.u32(0x0048_0000); // horizresolution 72 dpi
    w.u32(0x0048_0000); // vertresolution 72 dpi
    w.u32(0); // reserved
    w.u16(1); // frame_count
    w.zeros(32); // compressorname
    w.u16(0x0018); // depth
    w.u16(0xffff); // pre_defined = -1
    write_avcc(w, cfg);
    w.end_box(avc1);
}

/// The `avcC` box: the `AVCDecoderConfigurationRecord` (checked in `TrackInfo::video`).
fn write_avcc(w: &mut BoxWriter, cfg: &AvcConfig) {
    let avcc = w.start_box(b"avcC");
    w.bytes(&avc_decoder_config_record(cfg));
    w.end_box(avcc);
}

fn write_mp4a(w: &mut BoxWriter, cfg: &AudioSpecificConfig, track_id: u32) {
    let mp4a = w.start_box(b"mp4a");
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
    w.zeros(8); // reserved
    let channels = match cfg.output_channels() {
        0 => 2, // in a program config element: the ASC says
        n => u16::from(n),
    };
    w.u16(channels);
    w.u16(16); // samplesize
    w.u16(0); // pre_defined
    w.u16(0); // reserved
              // samplerate as 16.16; rates above 65535 Hz do not fit and are left to the ASC.
    let rate = cfg.output_sample_rate();
    w.u32(if rate <= 0xffff { rate << 16 } else { 0 });

    let esds = w.start_full_box(b"esds", 0, 0);
    let asc = &cfg.raw;
    // DecoderSpecificInfo (tag 5), DecoderConfigDescriptor (tag 4), SLConfigDescriptor (6).
    let dsi_len = asc.len();
    let dcd_len = 13 + 5 + dsi_len;
    let es_len = 3 + (5 + dcd_len) + (5 + 1);
    descriptor_header(w, 0x03, es_len);
    w.u16(u16::try_from(track_id).unwrap_or(1)); // ES_ID
    w.u8(0); // no stream dependence, URL or OCR stream
    descriptor_header(w, 0x04, dcd_len);
    w.u8(0x40); // objectTypeIndication: MPEG-4 Audio
    w.u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    w.u24(0); // bufferSizeDB
    w.u32(0); // maxBitrate
    w.u32(0); // avgBitrate
    descriptor_header(w, 0x05, dsi_len);
    w.bytes(asc);
    descriptor_header(w, 0x06, 1);
    w.u8(0x02); // predefined: MP4
    w.end_box(esds);
    w.end_box(mp4a);
}

/// A descriptor tag and its length in the 4-byte expandable form (as ffmpeg writes it);
/// lengths are bounded by [`MAX_ASC_LEN`], far below the 2^28 limit.
fn descriptor_header(w: &mut BoxWriter, tag: u8, len: usize) {
    let len = u32::try_from(len).unwrap_or(0) & 0x0fff_ffff;
    w.u8(tag);
    w.u8(0x80 | (len >> 21) as u8);
    w.u8(0x80 | ((len >> 14) & 0x7f) as u8);
    w.u8(0x80 | ((len >> 7) & 0x7f) as u8);
    w.u8((len & 0x7f) as u8);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::super::testutil::{be16, be32, walk_all};
    use super::*;
    use crate::codec::aac::parse_audio_specific_config;
    use crate::codec::h264::parse_avc_decoder_config;

    /// A real 320x240 High profile avcC from libx264 (ffmpeg testsrc2).
    pub(crate) fn avc_config() -> Arc<AvcConfig> {
        let sps = [
            0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
        ];
        let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
        let mut rec = vec![1, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0, sps.len() as u8];
        rec.extend_from_slice(&sps);
        rec.extend_from_slice(&[1, 0, pps.len() as u8]);
        rec.extend_from_slice(&pps);
        Arc::new(parse_avc_decoder_config(&rec).unwrap())
    }

    pub(crate) fn aac_config(asc: &[u8]) -> Arc<AudioSpecificConfig> {
        Arc::new(parse_audio_specific_config(asc).unwrap())
    }

    #[test]
    fn test_sps_is_320x240_high() {
        let info = avc_config().sps_info.clone().unwrap();
        assert_eq!((info.width, info.height, info.profile_idc), (320, 240, 100));
    }

    #[test]
    fn video_and_audio_init_segment_structure() {
        let tracks = [
            TrackInfo::video(1, avc_config()).unwrap(),
            TrackInfo::audio(2, aac_config(&[0x11, 0x90])).unwrap(),
        ];
        let data = init_segment(&tracks);
        let root = walk_all(&data); // every size checked
        assert_eq!(root.child_types(), vec!["ftyp", "moov"]);
        let ftyp = &root.children[0];
        assert_eq!(
            &data[ftyp.payload..ftyp.end],
            b"isom\0\0\x02\0isomiso6avc1mp41"
        );
        let moov = &root.children[1];
        assert_eq!(moov.child_types(), vec!["mvhd", "trak", "trak", "mvex"]);
        let mvhd = &moov.children[0];
        assert_eq!(mvhd.end - mvhd.start, 108);
        assert_eq!(be32(&data, mvhd.end - 4), 3, "next_track_ID");

        // mvex: one trex per track, and nothing else (the mp4 crate writes `mdia` here).
        let mvex = moov.find("mvex").unwrap();
        assert_eq!(mvex.child_types(), vec!["trex", "trex"]);
        for (i, trex) in mvex.children.iter().enumerate() {
            assert_eq!(trex.end - trex.start, 32);
            assert_eq!(be32(&data, trex.payload + 4), i as u32 + 1, "track_ID");
            assert_eq!(be32(&data, trex.payload + 8), 1, "sample description");
        }

        let traks = moov.all("trak");
        for (trak, (id, handler, timescale)) in traks
            .iter()
            .zip([(1, b"vide", 90_000), (2, b"soun", 48_000)])
        {
            assert_eq!(trak.child_types(), vec!["tkhd", "mdia"]);
            let tkhd = &trak.children[0];
            assert_eq!(tkhd.end - tkhd.start, 92);
            assert_eq!(
                be32(&data, tkhd.payload) & 0xff_ffff,
                3,
                "enabled, in movie"
            );
            assert_eq!(be32(&data, tkhd.payload + 12), id);
            let mdia = &trak.children[1];
            assert_eq!(mdia.child_types(), vec!["mdhd", "hdlr", "minf"]);
            assert_eq!(be32(&data, mdia.children[0].payload + 12), timescale);
            assert_eq!(&data[mdia.children[1].payload + 8..][..4], handler);
            let minf = &mdia.children[2];
            let media_header = if id == 1 { "vmhd" } else { "smhd" };
            assert_eq!(minf.child_types(), vec![media_header, "dinf", "stbl"]);
            assert_eq!(minf.find("dinf/dref").unwrap().child_types(), vec!["url "]);
            let stbl = &minf.children[2];
            assert_eq!(
                stbl.child_types(),
                vec!["stsd", "stts", "stsc", "stco", "stsz"]
            );
            // Empty sample tables.
            for table in &stbl.children[1..] {
                let entries = be32(&data, table.payload + 4);
                assert_eq!(entries, 0, "{}", table.typ);
            }
        }

        // Video: tkhd size, avc1 size and avcC contents.
        let tkhd = &traks[0].children[0];
        assert_eq!(be32(&data, tkhd.end - 8), 320 << 16);
        assert_eq!(be32(&data, tkhd.end - 4), 240 << 16);
        let avc1 = traks[0].find("mdia/minf/stbl/stsd/avc1").unwrap();
        assert_eq!(be16(&data, avc1.start + 32), 320);
        assert_eq!(be16(&data, avc1.start + 34), 240);
        assert_eq!(avc1.child_types(), vec!["avcC"]);
        let avcc = &avc1.children[0];
        let rec = &data[avcc.payload..avcc.end];
        assert_eq!(&rec[..7], &[1, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0]);
        let cfg = parse_avc_decoder_config(rec).unwrap();
        assert_eq!(cfg.sps, avc_config().sps);
        assert_eq!(cfg.pps, avc_config().pps);
        assert_eq!(cfg.nal_length_size, 4);
        // High profile extension: 4:2:0, 8 bit.
        assert_eq!(&rec[rec.len() - 4..], &[0xfd, 0xf8, 0xf8, 0]);

        // Audio: mp4a with esds carrying the ASC.
        let mp4a = traks[1].find("mdia/minf/stbl/stsd/mp4a").unwrap();
        assert_eq!(be16(&data, mp4a.start + 24), 2, "channels");
        assert_eq!(be32(&data, mp4a.start + 32), 48_000 << 16);
        let esds = &mp4a.children[0];
        assert_eq!(esds.typ, "esds");
        let body = &data[esds.payload + 4..esds.end];
        assert_eq!(
            body,
            &[
                3, 0x80, 0x80, 0x80, 34, 0, 2, 0, // ES_Descriptor
                4, 0x80, 0x80, 0x80, 20, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
                5, 0x80, 0x80, 0x80, 2, 0x11, 0x90, // the ASC
                6, 0x80, 0x80, 0x80, 1, 2
            ]
        );
    }

    #[test]
    fn single_track_segments() {
        let audio = init_segment(&[TrackInfo::audio(1, aac_config(&[0x15, 0x08])).unwrap()]);
        let root = walk_all(&audio);
        assert_eq!(
            &audio[root.children[0].payload..root.children[0].end],
            b"isom\0\0\x02\0isomiso6mp41"
        );
        let moov = &root.children[1];
        assert_eq!(moov.child_types(), vec!["mvhd", "trak", "mvex"]);
        let mdhd = moov.find("trak/mdia/mdhd").unwrap();
        assert_eq!(be32(&audio, mdhd.payload + 12), 11025, "true sample rate");
        let mp4a = moov.find("trak/mdia/minf/stbl/stsd/mp4a").unwrap();
        assert_eq!(be16(&audio, mp4a.start + 24), 1, "mono");
        assert_eq!(be32(&audio, mp4a.start + 32), 11025 << 16);

        let video = init_segment(&[TrackInfo::video(1, avc_config()).unwrap()]);
        let moov = &walk_all(&video).children[1];
        assert_eq!(moov.child_types(), vec!["mvhd", "trak", "mvex"]);
        assert_eq!(moov.find("mvex").unwrap().child_types(), vec!["trex"]);
    }

    #[test]
    fn he_aac_uses_the_output_rate_and_refusals() {
        // HE-AAC 22050 core, 44100 output.
        let t = TrackInfo::audio(1, aac_config(&[0x2b, 0x92, 0x08, 0x00])).unwrap();
        assert_eq!((t.timescale, t.default_duration()), (44_100, 2048));
        let lc = TrackInfo::audio(1, aac_config(&[0x15, 0x08])).unwrap();
        assert_eq!(lc.default_duration(), 1024);
        let v = TrackInfo::video(1, avc_config()).unwrap();
        assert_eq!(v.default_duration(), 3000);

        let mut cfg = (*avc_config()).clone();
        cfg.pps.clear();
        assert_eq!(
            TrackInfo::video(1, Arc::new(cfg.clone())).unwrap_err(),
            Mp4Error::MissingParameterSets
        );
        cfg.pps.push(bytes::Bytes::from(vec![0x68; 70_000]));
        assert_eq!(
            TrackInfo::video(1, Arc::new(cfg)).unwrap_err(),
            Mp4Error::ParameterSetTooLong(70_000)
        );
        let mut asc = (*aac_config(&[0x11, 0x90])).clone();
        asc.raw = bytes::Bytes::new();
        assert_eq!(
            TrackInfo::audio(1, Arc::new(asc.clone())).unwrap_err(),
            Mp4Error::BadAudioConfigLength(0)
        );
        asc.sample_rate = 0;
        assert_eq!(
            TrackInfo::audio(1, Arc::new(asc)).unwrap_err(),
            Mp4Error::ZeroSampleRate
        );
    }
}
