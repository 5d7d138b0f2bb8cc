//! Fuzz entry points of the core: one function per fuzz target, each taking arbitrary bytes.
//!
//! The same functions are called by the cargo-fuzz targets in `fuzz/fuzz_targets/` (nightly,
//! libFuzzer) and by `tests/fuzz_corpus.rs`, which replays every committed corpus file and
//! regression on stable in `cargo test`. [`TARGETS`] lists them by target name; `fuzz/README.md`
//! describes the layout and how to run them.
//!
//! An entry must never panic on any input: a panic is a bug in the code it drives. The
//! `assert!`s here are the oracle, so they state only what the driven code promises in its
//! documentation. Inputs that need structure (a sequence of tags, frames or messages) are read
//! with [`FuzzInput`], which never fails: past the end every read is zero or empty, so every
//! byte string is a valid program. Nothing here is used by the server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::Bytes;

use crate::access::forwarded::client_address;
use crate::access::host_check::names_this_server;
use crate::access::origin::origin_allowed;
use crate::access::token::{is_pullcast_token, TokenClaims, TokenKey};
use crate::access::{redact_text, redact_uri, Credentials, PermissionSet, StreamPattern};
use crate::audio::transcoder::AudioTranscoder;
use crate::codec::aac::{adts_header, parse_audio_specific_config};
use crate::codec::h264::{avcc_to_annexb, codec_string, parse_avc_decoder_config, parse_sps};
use crate::flv::file::read_flv_file;
use crate::flv::tag::{parse_audio_tag, parse_video_tag};
use crate::media::{MediaFrame, Track};
use crate::media_port::send_plan::{self, plan_calls, plan_messages};
use crate::media_port::{binding_request_username, frame, is_stun, Demux, FrameDecoder, Route};
use crate::mp4::{FragmentedMp4Writer, Mp4Options};
use crate::net::address::{embedded_ipv4, special_range};
use crate::net::cidr::Cidr;
use crate::net::host::numeric_host;
use crate::net::pull_guard::PullGuard;
use crate::normalize::{NormalizedEvent, Normalizer};
use crate::record::naming::{self, NameFields};
use crate::rtmp::aggregate::{split_aggregate, AGGREGATE_TYPE_ID, MAX_AGGREGATE_PARTS};
use crate::rtmp::chunk::{max_message_bytes, ChunkDecoder, RawMessage, MAX_BUFFERED_PARTIAL_BYTES};
use crate::rtmp::{PlaySession, PlaySessionConfig, RtmpUrl};
use crate::rtp::h264::packetize;
use crate::video::transcode::{BFrameTranscoder, TranscodeSettings};
use crate::video::BFrameDetector;
use crate::webrtc_viewer::{
    choose_h264, offer_transport, opus_answer_fmtp, parse_offer, SourceProfile,
};

/// A fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs` and the corpus folder
/// `fuzz/corpus/<name>/`) and its entry function.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target of the core crate.
pub const TARGETS: &[Target] = &[
    ("rtmp_chunk", rtmp_chunk),
    ("rtmp_session", rtmp_session),
    ("rtmp_amf0", rtmp_amf0),
    ("rtmp_aggregate", rtmp_aggregate),
    ("rtmp_url", rtmp_url),
    ("flv_tag", flv_tag),
    ("flv_file", flv_file),
    ("avc_config", avc_config),
    ("avc_sps", avc_sps),
    ("avc_annexb", avc_annexb),
    ("aac_config", aac_config),
    ("normalize", normalize),
    ("aac_transcode", aac_transcode),
    ("h264_transcode", h264_transcode),
    ("mp4_writer", mp4_writer),
    ("sdp_offer", sdp_offer),
    ("record_naming", record_naming),
    ("auth_header", auth_header),
    ("auth_token", auth_token),
    ("stream_pattern", stream_pattern),
    ("web_origin", web_origin),
    ("redact", redact),
    ("net_host", net_host),
    ("media_port", media_port),
    ("rtp_h264", rtp_h264),
];

/// The `auth.token_secret` of the `auth_token` target (its seeds are minted with it).
pub const TOKEN_SECRET: &str = "pullcast-fuzz-token-secret-0123456789";

/// Reads structure out of fuzz bytes. It never fails: past the end, numbers read as 0 and
/// slices as empty.
#[derive(Debug, Clone)]
pub struct FuzzInput<'a> {
    data: &'a [u8],
}

impl<'a> FuzzInput<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.bytes(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// Big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    /// Big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }

    /// Big-endian.
    pub fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.array())
    }

    /// A `u16` length, then that many bytes.
    pub fn block(&mut self) -> &'a [u8] {
        let len = self.u16();
        self.bytes(usize::from(len))
    }
}

/// What an RTMP server sends in answer to C0+C1: S0 (version 3), S1 and S2. S1 carries no
/// digest, so the client takes it as the old (plain) handshake and completes; S2 is not
/// checked by the client.
pub fn server_handshake() -> Vec<u8> {
    let mut out = vec![0u8; 1 + 2 * 1536];
    out[0] = 3;
    out
}

/// One RTMP message as chunks of the initial chunk size (128) on chunk stream `csid`
/// (2..=63): a type-0 header, then type-3 headers between the pieces.
pub fn chunk_message(
    csid: u8,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
) -> Vec<u8> {
    let csid = csid.clamp(2, 63);
    let len = payload.len().min(0xff_ffff) as u32;
    let ts = timestamp.min(0xff_fffe);
    let mut out = Vec::with_capacity(payload.len() + 12 + payload.len() / 128);
    out.push(csid);
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    for (i, piece) in payload.chunks(128).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid);
        }
        out.extend_from_slice(piece);
    }
    out
}

fn session() -> Option<PlaySession> {
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/fuzz").ok()?;
    PlaySession::new(PlaySessionConfig {
        url,
        chunk_size: 4096,
        buffer_length_ms: 1000,
    })
    .ok()
}

/// Feeds `bytes` in pieces of `piece` bytes, draining events and outbound bytes after each;
/// `false` once the session has failed (the connection would be closed).
fn feed(session: &mut PlaySession, bytes: &[u8], piece: usize) -> bool {
    for part in bytes.chunks(piece.max(1)) {
        let result = session.handle_input(part);
        while session.poll_event().is_some() {}
        session.take_outbound();
        if result.is_err() {
            return false;
        }
    }
    true
}

/// `rtmp_chunk`: the chunk decoder alone. Input: a chunk size to set first (`u32`), a piece
/// size (`u8`, 0 = everything at once), then the byte stream. `SetChunkSize` (type 1) and
/// `Abort` (type 2) messages are applied as the session applies them.
pub fn rtmp_chunk(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let mut decoder = ChunkDecoder::new();
    let initial = input.u32();
    if initial != 0 && decoder.set_chunk_size(initial).is_err() {
        return;
    }
    let piece = match input.u8() {
        0 => usize::MAX,
        n => usize::from(n),
    };
    let stream = input.rest();
    let mut payload_bytes = 0usize;
    for part in stream.chunks(piece) {
        decoder.push(part);
        loop {
            let next = decoder.next_message();
            assert!(decoder.buffered_bytes() <= MAX_BUFFERED_PARTIAL_BYTES);
            let message = match next {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => return,
            };
            assert!(message.payload.len() <= max_message_bytes(message.type_id));
            payload_bytes += message.payload.len();
            // Every payload byte is a byte of the stream, read once.
            assert!(payload_bytes <= stream.len());
            let word = message
                .payload
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            match (message.type_id, word) {
                (1, Some(size)) if decoder.set_chunk_size(size).is_err() => return,
                (2, Some(csid)) => decoder.abort(csid),
                _ => {}
            }
        }
    }
}

/// `rtmp_session`: the play session from its first byte. Input: a mode byte (bit 0 set: the
/// input starts with the handshake too; clear: a valid S0+S1+S2 is fed first), a piece size
/// (`u8`, 0 = everything at once), then what the server sends.
pub fn rtmp_session(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let mode = input.u8();
    let piece = match input.u8() {
        0 => usize::MAX,
        n => usize::from(n),
    };
    let Some(mut session) = session() else {
        return;
    };
    session.take_outbound();
    if mode & 1 == 0 && !feed(&mut session, &server_handshake(), usize::MAX) {
        return;
    }
    feed(&mut session, input.rest(), piece);
}

/// `rtmp_amf0`: AMF0 commands and data messages through a session whose handshake is done,
/// as a server would send them. Input: records of a selector byte (bits 0-1: message type
/// 20, 18, 17 or 15; bit 2: on message stream 1 instead of 0) and a `u16`-length body,
/// each sent as one chunked message. The session sends `connect` with transaction 1,
/// `createStream` with 2, `FCSubscribe` with 3 and `play` with 4.
pub fn rtmp_amf0(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let Some(mut session) = session() else {
        return;
    };
    session.take_outbound();
    if !feed(&mut session, &server_handshake(), usize::MAX) {
        return;
    }
    while !input.is_empty() {
        let selector = input.u8();
        let type_id = [20, 18, 17, 15][usize::from(selector & 3)];
        let stream_id = u32::from(selector >> 2 & 1);
        let body = input.block();
        let bytes = chunk_message(3, type_id, stream_id, 0, body);
        if !feed(&mut session, &bytes, usize::MAX) {
            return;
        }
    }
}

/// `rtmp_aggregate`: an aggregate message body. Input: the aggregate's timestamp (`u32`),
/// then the body.
pub fn rtmp_aggregate(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let timestamp = input.u32();
    let payload = Bytes::copy_from_slice(input.rest());
    let aggregate = RawMessage {
        csid: 4,
        timestamp,
        type_id: AGGREGATE_TYPE_ID,
        stream_id: 1,
        payload,
    };
    let parts = split_aggregate(&aggregate).unwrap_or_default();
    // Each record has an 11-byte header and a 4-byte back pointer.
    assert!(parts.len() <= aggregate.payload.len() / 11);
    assert!(parts.len() <= MAX_AGGREGATE_PARTS);
    let total: usize = parts.iter().map(|p| p.payload.len()).sum();
    assert!(total <= aggregate.payload.len());
}

/// `rtmp_url`: an `rtmp://` URL as a REST client or a viewer gives it.
pub fn rtmp_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(url) = RtmpUrl::parse(&text) {
        let _ = url.tc_url();
        let _ = url.authority();
        let _ = url.to_string();
    }
}

/// `flv_tag`: one body read as a video tag and as an audio tag.
pub fn flv_tag(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    let _ = parse_video_tag(&body);
    let _ = parse_audio_tag(&body);
}

/// `flv_file`: an FLV file.
pub fn flv_file(data: &[u8]) {
    if let Ok(tags) = read_flv_file(data) {
        let total: usize = tags.iter().map(|t| t.body.len()).sum();
        assert!(total <= data.len());
    }
}

/// `avc_config`: an AVCDecoderConfigurationRecord, and each SPS in it.
pub fn avc_config(data: &[u8]) {
    let Ok(config) = parse_avc_decoder_config(data) else {
        return;
    };
    assert!((1..=4).contains(&config.nal_length_size));
    let _ = codec_string(&config);
    for sps in &config.sps {
        let _ = parse_sps(sps);
    }
}

/// `avc_sps`: a sequence parameter set NAL unit (header byte included).
pub fn avc_sps(data: &[u8]) {
    let _ = parse_sps(data);
}

/// `avc_annexb`: length-prefixed NAL units to Annex-B. Input: the NAL length size (`u8`),
/// then the data.
pub fn avc_annexb(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let size = input.u8() % 6;
    let data = input.rest();
    let before: &[u8] = b"kept";
    let mut out = before.to_vec();
    match avcc_to_annexb(data, size, &mut out) {
        Ok(summary) => {
            assert!(out.starts_with(before));
            // Each NAL unit loses its prefix (1..=4 bytes) and gains a 4-byte start code.
            assert!(out.len() - before.len() <= data.len() + 3 * summary.nal_count);
            assert!(summary.nal_count <= data.len() / 2);
        }
        Err(_) => assert_eq!(out, before, "output changed on error"),
    }
}

/// `aac_config`: an AudioSpecificConfig, and the ADTS header for it.
pub fn aac_config(data: &[u8]) {
    let Ok(config) = parse_audio_specific_config(data) else {
        return;
    };
    let _ = config.output_sample_rate();
    let _ = config.output_channels();
    let _ = config.profile_name();
    for payload_len in [0usize, 1, 300, 8184, 8185, usize::MAX] {
        let Some(header) = adts_header(&config, payload_len) else {
            continue;
        };
        assert_eq!(header[0], 0xff);
        let frame_length = usize::from(header[3] & 0x03) << 11
            | usize::from(header[4]) << 3
            | usize::from(header[5] >> 5);
        assert_eq!(frame_length, payload_len + 7);
    }
}

/// `normalize`: the normalizer fed a sequence of tags, and what it makes of them fed to the
/// B-frame detector, as the capture's supervisor does. Input: records of a kind byte (bit 0:
/// audio, else video), a timestamp (`u32`) and a `u16`-length tag body.
pub fn normalize(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let mut normalizer = Normalizer::new();
    let mut detector = BFrameDetector::new();
    while !input.is_empty() {
        let kind = input.u8();
        let timestamp = input.u32();
        let body = Bytes::copy_from_slice(input.block());
        let _ = if kind & 1 == 1 {
            normalizer.handle_audio(timestamp, &body)
        } else {
            normalizer.handle_video(timestamp, &body)
        };
        while let Some(event) = normalizer.poll() {
            match event {
                NormalizedEvent::CodecChange(codecs) => {
                    if let Some(video) = &codecs.video {
                        detector.on_config(video);
                    }
                }
                NormalizedEvent::Frame(frame) => {
                    detector.on_frame(&frame);
                }
            }
        }
    }
    let _ = detector.evidence();
}

/// `aac_transcode`: the AAC → Opus transcoder of WebRTC viewers (FDK AAC decoder, rubato
/// resampler, libopus) fed an AudioSpecificConfig and raw AAC frames. Input: a `u8`-length
/// AudioSpecificConfig, then frames: a time step in ms (`u8`; 255 jumps 10 s) and a
/// `u16`-length frame.
pub fn aac_transcode(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let config_len = input.u8();
    let Ok(config) = parse_audio_specific_config(input.bytes(usize::from(config_len))) else {
        return;
    };
    let Ok(mut transcoder) = AudioTranscoder::new(64_000) else {
        return;
    };
    if transcoder.set_config(&Arc::new(config)).is_err() {
        return;
    }
    let mut pts = 0i64;
    while !input.is_empty() {
        pts += match input.u8() {
            255 => 10_000,
            step => i64::from(step),
        };
        let frame = MediaFrame {
            track: Track::Audio,
            pts,
            dts: pts,
            keyframe: true,
            data: Bytes::copy_from_slice(input.block()),
            ingest_us: 0,
        };
        let _ = transcoder.push(&frame);
    }
}

/// `h264_transcode`: the B-frame transcoder of WebRTC viewers (OpenH264 decode, Constrained
/// Baseline encode) fed Annex-B access units, as the normalizer makes them. Input: frames of
/// a flags byte (bit 0: keyframe), a composition offset in ms (`u8`) and a `u16`-length
/// access unit; frames are 33 ms apart.
pub fn h264_transcode(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let Ok(mut transcoder) = BFrameTranscoder::new(TranscodeSettings::default()) else {
        return;
    };
    let mut dts = 0i64;
    while !input.is_empty() {
        let flags = input.u8();
        let offset = i64::from(input.u8());
        let frame = MediaFrame {
            track: Track::Video,
            pts: dts + offset,
            dts,
            keyframe: flags & 1 != 0,
            data: Bytes::copy_from_slice(input.block()),
            ingest_us: 0,
        };
        let _ = transcoder.push(&frame);
        dts += 33;
    }
}

/// `mp4_writer`: the fragmented MP4 writer fed arbitrary frames. Input: a flags byte (bit 0:
/// video track, bit 1: audio track), the longest fragment in ms (`u16`, minus 100), a
/// `u16`-length AVCDecoderConfigurationRecord and a `u16`-length AudioSpecificConfig (a
/// track whose configuration does not parse is left out), then frames: a flags byte (bit 0:
/// audio, bit 1: keyframe, bit 2: dts × 2^20), dts (`u32` read as `i32`), composition offset
/// (`u16` read as `i16`) and a `u16`-length body.
///
/// The init segment and every fragment must be a whole number of well-formed boxes, and the
/// stats must count the fragment bytes returned.
pub fn mp4_writer(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let flags = input.u8();
    let max_fragment_ms = i64::from(input.u16()) - 100;
    let avc = input.block();
    let asc = input.block();
    let video = (flags & 1 != 0)
        .then(|| parse_avc_decoder_config(avc).ok())
        .flatten()
        .map(Arc::new);
    let audio = (flags & 2 != 0)
        .then(|| parse_audio_specific_config(asc).ok())
        .flatten()
        .map(Arc::new);
    let Ok(mut writer) = FragmentedMp4Writer::new(video, audio, Mp4Options { max_fragment_ms })
    else {
        return;
    };
    check_boxes(&writer.init_segment());
    let mut fragment_bytes = 0u64;
    let mut take = |fragment: Option<Bytes>| {
        if let Some(fragment) = fragment {
            check_boxes(&fragment);
            fragment_bytes += fragment.len() as u64;
        }
    };
    while !input.is_empty() {
        let frame_flags = input.u8();
        let mut dts = i64::from(input.u32() as i32);
        if frame_flags & 4 != 0 {
            dts <<= 20;
        }
        let offset = i64::from(input.u16() as i16);
        let frame = MediaFrame {
            track: if frame_flags & 1 != 0 {
                Track::Audio
            } else {
                Track::Video
            },
            pts: dts + offset,
            dts,
            keyframe: frame_flags & 2 != 0,
            data: Bytes::copy_from_slice(input.block()),
            ingest_us: 0,
        };
        take(writer.push(&frame));
    }
    take(writer.finish());
    assert_eq!(writer.stats().fragment_bytes, fragment_bytes);
}

/// Asserts that `bytes` is a run of whole ISO BMFF boxes (32-bit or 64-bit sizes).
fn check_boxes(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = rest.get(..8).unwrap_or_default();
        assert_eq!(header.len(), 8, "truncated box header");
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let size = match size32 {
            1 => {
                let large = rest.get(8..16).unwrap_or_default();
                assert_eq!(large.len(), 8, "truncated largesize");
                let mut be = [0u8; 8];
                be.copy_from_slice(large);
                usize::try_from(u64::from_be_bytes(be)).unwrap_or(usize::MAX)
            }
            n => n as usize,
        };
        assert!(size >= 8, "box smaller than its header");
        assert!(size <= rest.len(), "box larger than the bytes");
        rest = &rest[size..];
    }
}

/// `sdp_offer`: a browser's SDP offer (WebSocket `play` or a WHEP POST), the answer's format
/// choices made from it, and its DTLS fingerprint and ICE credentials.
pub fn sdp_offer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(transport) = offer_transport(&text) {
        for credential in [&transport.ice_ufrag, &transport.ice_pwd] {
            assert!(!credential.is_empty() && credential.len() <= 256);
        }
    }
    let Ok(offer) = parse_offer(&text) else {
        return;
    };
    let sources = [
        None,
        Some(SourceProfile {
            profile_idc: 100,
            constraint_flags: 0,
            level_idc: 31,
        }),
        Some(SourceProfile {
            profile_idc: 66,
            constraint_flags: 0xc0,
            level_idc: 30,
        }),
    ];
    for source in sources {
        let chosen = choose_h264(&offer.h264, source);
        assert_eq!(chosen.is_some(), !offer.h264.is_empty());
    }
    if let Some(opus) = &offer.opus {
        let _ = opus_answer_fmtp(&opus.fmtp);
    }
}

/// `record_naming`: recording file names from a template. Input: start and end times
/// (`i64` each, shifted right by 16 bits: the server's clock gives times within ±4000 years
/// of 1970, not any `i64`; the end is absent when its first byte is 0xff), then the template,
/// stream name, session id, audio and video codec, separated by NUL bytes.
pub fn record_naming(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let start_ms = input.i64() >> 16;
    let end_raw = input.bytes(8);
    let end_ms = match end_raw.first() {
        Some(0xff) | None => None,
        Some(_) => {
            let mut be = [0u8; 8];
            be[..end_raw.len()].copy_from_slice(end_raw);
            Some(i64::from_be_bytes(be) >> 16)
        }
    };
    let mut texts = input
        .rest()
        .split(|&b| b == 0)
        .map(|t| String::from_utf8_lossy(t).into_owned());
    let template = texts.next().unwrap_or_default();
    let fields = NameFields {
        stream_name: texts.next().unwrap_or_default(),
        media_session_id: texts.next().unwrap_or_default(),
        start_ms,
        end_ms,
        audio_codec: texts.next().unwrap_or_default(),
        video_codec: texts.next().unwrap_or_default(),
    };
    let _ = naming::needs_final_rename(&template);
    let _ = naming::format_time(start_ms);
    let name = naming::render(&template, &fields);
    assert!(name.len() <= naming::MAX_NAME_BYTES, "{name:?} is too long");
    assert!(name.ends_with(naming::EXTENSION), "{name:?}");
    assert!(
        !name.starts_with(['.', '-']),
        "{name:?} starts with a dot or dash"
    );
    assert!(
        name.chars()
            .all(|c| (c.is_alphanumeric() || matches!(c, '.' | '-' | '_')) && !c.is_control()),
        "{name:?} holds a character that is not safe in a file name"
    );
    let sanitized = naming::sanitize(&template);
    assert!(!sanitized.starts_with(['.', '-']), "{sanitized:?}");
    assert!(!sanitized.contains(['/', '\\', ':']), "{sanitized:?}");
}

/// Splits `data` (read as UTF-8, lossily) at NUL characters.
fn texts(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .split('\0')
        .map(str::to_string)
        .collect()
}

/// `auth_header`: an `Authorization` header value (REST, WHEP, the WebSocket upgrade) and a
/// bare token (the WebSocket `play` message's `token`).
pub fn auth_header(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(Credentials::Basic { user, .. }) = Credentials::from_header(&text) {
        assert!(!user.contains(':'), "the user name holds the separator");
    }
    match Credentials::token(&text) {
        Ok(Credentials::Bearer(token)) => {
            assert!(!token.is_empty());
            assert!(!token.chars().any(|c| c.is_control() || c == ' '));
        }
        Ok(Credentials::Basic { .. }) => panic!("a bare token read as Basic credentials"),
        Err(_) => {}
    }
    let _ = is_pullcast_token(&text);
}

/// `auth_token`: signed play tokens. Input: a mode byte, the time (`u64` as two `u32`s),
/// then: mode bit 0 clear, a token to verify (a verified token must mint back to one with
/// the same claims); set, claims to mint (an expiry `u64` as two `u32`s, then permission
/// names and the stream pattern separated by NUL, the pattern last), and the minted token
/// must verify to the same claims while it has not expired. Key: [`TOKEN_SECRET`].
pub fn auth_token(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let mode = input.u8();
    let now = u64::from(input.u32()) << 32 | u64::from(input.u32());
    let Ok(key) = TokenKey::new(TOKEN_SECRET) else {
        return;
    };
    if mode & 1 == 0 {
        let token = String::from_utf8_lossy(input.rest());
        if let Ok(claims) = key.verify(&token, now) {
            assert!(claims.expires_unix_s > now, "an expired token verified");
            assert_eq!(key.verify(&key.mint(&claims), now), Ok(claims));
        }
        return;
    }
    let expires_unix_s = u64::from(input.u32()) << 32 | u64::from(input.u32());
    let mut parts = texts(input.rest());
    let pattern = parts.pop().unwrap_or_default();
    let (Ok(permissions), Ok(stream)) =
        (PermissionSet::parse(&parts), StreamPattern::parse(&pattern))
    else {
        return;
    };
    let claims = TokenClaims {
        permissions,
        stream,
        expires_unix_s,
    };
    let token = key.mint(&claims);
    assert!(is_pullcast_token(&token));
    assert!(
        Credentials::token(&token).is_ok(),
        "a minted token is not a valid bearer token"
    );
    match key.verify(&token, now) {
        Ok(verified) => assert_eq!(verified, claims),
        Err(e) => assert!(now >= expires_unix_s, "a fresh minted token failed: {e}"),
    }
}

/// `stream_pattern`: a stream glob (`[[auth.users]] streams`, tokens) and a name matched
/// against it. Input: the pattern, NUL, the name.
pub fn stream_pattern(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\0').unwrap_or((&text, ""));
    let Ok(glob) = StreamPattern::parse(pattern) else {
        return;
    };
    let matched = glob.matches(name);
    if glob.is_everything() {
        assert!(matched, "* does not match {name:?}");
    }
    if !pattern.contains(['*', '?', '\\']) {
        assert!(glob.is_literal());
        assert_eq!(
            matched,
            name == pattern,
            "literal {pattern:?} against {name:?}"
        );
    }
    if !pattern.contains(['?', '\\']) {
        // `*` matches any run, itself included, and every other character itself.
        assert!(glob.matches(pattern), "{pattern:?} does not match itself");
    }
}

/// `web_origin`: the request headers that say where a request comes from — the WebSocket
/// upgrade's `Origin` check, `Host` against the server's names (trust by address), and
/// `X-Forwarded-For` behind trusted proxies. Input: the origin (also read as an
/// `X-Forwarded-For` value), NUL, the `Host`, then the `http.allowed_origins` entries (also
/// read as `http.host_names` and, those that parse, `http.trusted_proxies`), NUL-separated.
pub fn web_origin(data: &[u8]) {
    let mut parts = texts(data).into_iter();
    let origin = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    let allowed: Vec<String> = parts.collect();
    let _ = names_this_server(Some(&host), &allowed);
    assert!(
        names_this_server(None, &allowed),
        "no Host is not a browser"
    );
    let proxies: Vec<Cidr> = allowed.iter().filter_map(|a| Cidr::parse(a).ok()).collect();
    let peer = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let client = client_address(peer, Some(&origin), &proxies);
    if !proxies.iter().any(|p| p.contains(peer)) {
        assert_eq!(client, peer, "only a trusted proxy is believed");
    }
    assert!(
        origin_allowed(None, Some(&host), &allowed),
        "no Origin is not a browser"
    );
    let any = allowed.iter().any(|a| a.trim() == "*");
    for host in [Some(host.as_str()), None] {
        let verdict = origin_allowed(Some(&origin), host, &allowed);
        if any {
            assert!(verdict, "\"*\" allows every origin");
        }
    }
}

/// `redact`: stream keys and user information out of a uri, and out of every uri in a
/// sentence.
pub fn redact(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = redact_uri(&text);
    let _ = redact_text(&text);
}

/// `net_host`: pull-target hosts and the SSRF guard. Input: a host (as written in an
/// `rtmp://` uri), NUL, a `pull.allow`/`pull.deny` entry, NUL, bit 0 of the first byte after
/// it is `pull_private`. Checks that the numeric spellings agree with the standard library
/// where it reads them, that an address in a special range (or carrying one, in IPv6) is
/// refused without permission, and that a deny range always wins.
pub fn net_host(data: &[u8]) {
    let parts = texts(data);
    let host = parts.first().map(String::as_str).unwrap_or_default();
    let entry = parts.get(1).map(String::as_str).unwrap_or_default();
    let private = parts
        .get(2)
        .and_then(|p| p.bytes().next())
        .is_some_and(|b| b & 1 == 1);

    let numeric = numeric_host(host);
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        assert_eq!(numeric, Some(IpAddr::V4(v4)), "{host:?}");
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        assert_eq!(numeric, Some(IpAddr::V6(v6)), "{host:?}");
    }
    let ip = numeric.unwrap_or(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
    let special = special_range(ip);
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = embedded_ipv4(v6) {
            if special_range(IpAddr::V4(v4)).is_some() {
                assert!(special.is_some(), "{v6} carries the special {v4}");
            }
        }
    }
    if let Ok(guard) = PullGuard::new(&[], &[]) {
        let verdict = guard.check(host, &[ip], false);
        if special.is_some() {
            assert!(
                verdict.is_err(),
                "{host:?} ({ip}) pulled without permission"
            );
        }
        assert!(
            guard.check(host, &[], true).is_err(),
            "no address is refused"
        );
    }

    if let Ok(range) = Cidr::parse(entry) {
        assert!(range.contains(range.network()));
        assert_eq!(Cidr::parse(&range.to_string()), Ok(range));
        if let Ok(guard) = PullGuard::new(&[], &[entry.to_string()]) {
            if range.contains(ip) {
                assert!(
                    guard.check(host, &[ip], true).is_err(),
                    "{ip} pulled through the deny range {range}"
                );
            }
        }
    }
    for (allow, deny) in [
        (vec![entry.to_string()], vec![]),
        (vec![], vec![entry.to_string()]),
    ] {
        if let Ok(guard) = PullGuard::new(&allow, &deny) {
            let _ = guard.check(host, &[ip], private);
        }
    }
}

/// `media_port`: what reaches the shared WebRTC port — datagrams for the STUN username scan
/// and the demultiplexer (viewers added, bound and removed as the input says), and a TCP
/// byte stream cut into reads of any size for the RFC 4571 decoder — and what leaves it: any
/// queue of datagrams planned into GSO messages and `sendmmsg` calls.
pub fn media_port(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let mut demux: Demux<u8> = Demux::new(usize::from(input.u8() % 4));
    let max_read = usize::from(input.u8()) + 1;
    let max_packet = usize::from(input.u16());
    let mut decoder = FrameDecoder::with_max_packet(max_read, max_packet);
    let limit = 2 + max_packet + max_read;
    while !input.is_empty() {
        let op = input.u8();
        let viewer = input.u8() % 8;
        let from = std::net::SocketAddr::from(([192, 0, 2, input.u8()], input.u16()));
        let block = input.block();
        match op % 6 {
            0 => {
                let ufrag = String::from_utf8_lossy(block);
                let _ = demux.add_viewer(viewer, &ufrag);
            }
            1 => demux.remove_viewer(viewer),
            2 => {
                let _ = demux.bind_path(from, viewer);
            }
            3 => {
                if let Some(username) = binding_request_username(block) {
                    assert!(is_stun(block), "a username from what is not STUN");
                    assert!(!username.local.is_empty() && !username.remote.is_empty());
                    assert!(
                        !username.local.contains(':'),
                        "the local fragment holds ':'"
                    );
                }
                match demux.route(block, from) {
                    Route::Claims(_) => assert!(binding_request_username(block).is_some()),
                    Route::Viewer(_) | Route::Unknown => {}
                }
            }
            4 => send_plan_holds(block, input.u8()),
            _ => {
                if decoder.push(block).is_ok() {
                    while let Ok(Some(packet)) = decoder.next_packet() {
                        assert!(!packet.is_empty() && packet.len() <= max_packet);
                        let framed = frame(&packet).expect("a decoded packet frames again");
                        assert_eq!(framed.len(), packet.len() + 2);
                    }
                }
                assert!(
                    decoder.held() <= limit,
                    "the decoder holds {}",
                    decoder.held()
                );
            }
        }
        let (viewers, paths) = demux.len();
        assert!(viewers <= 8 && paths <= 8 * 4);
    }
}

/// The send plan's promises for datagrams described by `block` (pairs of destination and
/// length bytes): messages cover every datagram once, in order; a message goes to one address,
/// its datagrams all of its segment size but the last, which is no longer; calls cover every
/// message once, in order, at most `batch` each, and no datagram in a call exceeds its
/// segment size.
fn send_plan_holds(block: &[u8], batch: u8) {
    let datagrams: Vec<(std::net::SocketAddr, usize)> = block
        .chunks(2)
        .map(|pair| {
            let to = std::net::SocketAddr::from(([127, 0, 0, 1], u16::from(pair[0] % 3)));
            let len = pair.get(1).map_or(0, |&l| usize::from(l) * 300);
            (to, len)
        })
        .collect();
    let messages = plan_messages(&datagrams, batch.is_multiple_of(2));
    let mut next = 0;
    for m in &messages {
        assert_eq!(m.datagrams.start, next, "messages in order, none skipped");
        assert!(!m.datagrams.is_empty() && m.datagrams.len() <= send_plan::MAX_SEGMENTS);
        next = m.datagrams.end;
        let part = &datagrams[m.datagrams.clone()];
        assert!(
            part.iter().all(|d| d.0 == part[0].0),
            "one address a message"
        );
        match m.segment {
            None => assert_eq!(part.len(), 1),
            Some(size) => {
                let size = usize::from(size);
                let (last, rest) = part.split_last().expect("a message has datagrams");
                assert!(rest.iter().all(|d| d.1 == size) && last.1 <= size && last.1 > 0);
                assert!(part.iter().map(|d| d.1).sum::<usize>() <= send_plan::MAX_MESSAGE_BYTES);
            }
        }
    }
    assert_eq!(next, datagrams.len());
    let batch = usize::from(batch % 70);
    let calls = plan_calls(&messages, &datagrams, batch);
    let mut next = 0;
    for call in &calls {
        assert_eq!(call.messages.start, next, "calls in order, none skipped");
        assert!(!call.messages.is_empty() && call.messages.len() <= batch.max(1));
        next = call.messages.end;
        for m in &messages[call.messages.clone()] {
            assert!(m.segment.is_none() || m.segment == call.segment);
            if let Some(size) = call.segment {
                for d in m.datagrams.clone() {
                    assert!(
                        datagrams[d].1 <= usize::from(size),
                        "a datagram the call would cut"
                    );
                }
            }
        }
    }
    assert_eq!(next, messages.len());
}

/// `rtp_h264`: any bytes as an access unit, packetized at any payload limit: no payload over
/// the limit, and every byte of every NAL unit sent (AUD and filler aside) in order.
pub fn rtp_h264(data: &[u8]) {
    let mut input = FuzzInput::new(data);
    let max_payload = usize::from(input.u16() % 2048);
    let access_unit = Bytes::copy_from_slice(input.rest());
    let payloads = packetize(&access_unit, max_payload);
    let limit = max_payload.max(3);
    let sent: usize = payloads.iter().map(Bytes::len).sum();
    for p in &payloads {
        assert!(
            !p.is_empty() && p.len() <= limit,
            "{} bytes over {limit}",
            p.len()
        );
    }
    // Fragment and aggregate headers add at most 2 bytes per payload; nothing else grows.
    assert!(sent <= access_unit.len() + 2 * payloads.len() + 1);
}
