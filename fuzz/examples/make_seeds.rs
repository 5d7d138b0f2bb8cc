//! Writes the seed inputs of every fuzz target: small valid inputs in each target's input
//! format (see `pullcast::fuzzing` and `pullcast_server::fuzzing`), built from the FLV files
//! given on the command line (tags, codec configurations, frames) and from hand-written
//! protocol messages. The committed corpus is these seeds plus what fuzzing found, minimised.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- OUT_DIR FILE.flv...`
//! writes `OUT_DIR/<target>/seed-<what>`; `fuzz/README.md` says which FLV files were used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pullcast::access::token::{TokenClaims, TokenKey};
use pullcast::access::{PermissionSet, StreamPattern};
use pullcast::flv::file::{read_flv_file, FileTag};
use pullcast::flv::tag::{parse_video_tag, VideoTag};
use pullcast::fuzzing::{chunk_message, server_handshake, TOKEN_SECRET};
use pullcast::media::Track;
use pullcast::normalize::{NormalizedEvent, Normalizer};
use rml_rtmp::rml_amf0::{serialize, Amf0Value};

struct Seeds {
    out: PathBuf,
    written: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let folder = self.out.join(target);
        std::fs::create_dir_all(&folder).expect("create the target's folder");
        let path = folder.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).expect("write a seed");
        self.written += 1;
    }
}

fn amf(values: Vec<Amf0Value>) -> Vec<u8> {
    serialize(&values).expect("AMF0 serialises")
}

fn s(text: &str) -> Amf0Value {
    Amf0Value::Utf8String(text.to_string())
}

fn n(value: f64) -> Amf0Value {
    Amf0Value::Number(value)
}

fn obj(props: &[(&str, Amf0Value)]) -> Amf0Value {
    Amf0Value::Object(
        props
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

fn status(code: &str, level: &str) -> Amf0Value {
    obj(&[
        ("level", s(level)),
        ("code", s(code)),
        ("description", s(&format!("{code} for fuzz"))),
    ])
}

/// The AMF0 commands and data messages a server sends during a pull: (message type, message
/// stream, body).
fn commands(metadata: Option<&Bytes>) -> Vec<(u8, u32, Vec<u8>)> {
    let mut out = vec![
        (
            20,
            0,
            amf(vec![
                s("_result"),
                n(1.0),
                obj(&[("fmsVer", s("FMS/3,0,1,123")), ("capabilities", n(31.0))]),
                status("NetConnection.Connect.Success", "status"),
            ]),
        ),
        (20, 0, amf(vec![s("onBWDone"), n(0.0), Amf0Value::Null])),
        (
            20,
            0,
            amf(vec![s("onBWCheck"), n(5.0), Amf0Value::Null, n(1.0)]),
        ),
        (
            20,
            0,
            amf(vec![s("_result"), n(2.0), Amf0Value::Null, n(1.0)]),
        ),
        (
            20,
            0,
            amf(vec![
                s("onFCSubscribe"),
                n(0.0),
                Amf0Value::Null,
                status("NetStream.Play.Start", "status"),
            ]),
        ),
        (
            20,
            1,
            amf(vec![
                s("onStatus"),
                n(0.0),
                Amf0Value::Null,
                status("NetStream.Play.Reset", "status"),
            ]),
        ),
        (
            20,
            1,
            amf(vec![
                s("onStatus"),
                n(0.0),
                Amf0Value::Null,
                status("NetStream.Play.Start", "status"),
            ]),
        ),
        (
            18,
            1,
            amf(vec![s("|RtmpSampleAccess"), Amf0Value::Boolean(true)]),
        ),
        (
            18,
            1,
            amf(vec![
                s("onStatus"),
                status("NetStream.Data.Start", "status"),
            ]),
        ),
    ];
    if let Some(meta) = metadata {
        out.push((18, 1, meta.to_vec()));
    }
    out.push((
        18,
        1,
        amf(vec![
            s("onMetaData"),
            obj(&[
                ("width", n(96.0)),
                ("height", n(64.0)),
                ("encoder", s("fuzz\0")),
                (
                    "keyframes",
                    obj(&[(
                        "times",
                        Amf0Value::StrictArray(vec![n(0.0), n(0.5), Amf0Value::Undefined]),
                    )]),
                ),
            ]),
        ]),
    ));
    out.push((
        17,
        1,
        [
            vec![0u8],
            amf(vec![
                s("onStatus"),
                n(0.0),
                Amf0Value::Null,
                status("NetStream.Play.UnpublishNotify", "status"),
            ]),
        ]
        .concat(),
    ));
    out.push((
        20,
        0,
        amf(vec![s("releaseStream"), n(7.0), Amf0Value::Null, s("x")]),
    ));
    out.push((
        20,
        1,
        amf(vec![
            s("onStatus"),
            n(0.0),
            Amf0Value::Null,
            status("NetStream.Play.StreamNotFound", "error"),
        ]),
    ));
    out.push((20, 0, amf(vec![s("close"), n(0.0), Amf0Value::Null])));
    out
}

/// `rtmp_amf0` records: selector (type index, stream bit), u16 length, body.
fn amf0_records(commands: &[(u8, u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (type_id, stream, body) in commands {
        let index = [20u8, 18, 17, 15]
            .iter()
            .position(|t| t == type_id)
            .unwrap_or(0) as u8;
        out.push(index | ((*stream as u8 & 1) << 2));
        out.extend_from_slice(&(body.len().min(0xffff) as u16).to_be_bytes());
        out.extend_from_slice(&body[..body.len().min(0xffff)]);
    }
    out
}

/// A control message on chunk stream 2.
fn control(type_id: u8, body: &[u8]) -> Vec<u8> {
    chunk_message(2, type_id, 0, 0, body)
}

/// An aggregate (type 22) body of `tags`: FLV-tag-like records with back pointers.
fn aggregate_body(tags: &[&FileTag]) -> Vec<u8> {
    let mut out = Vec::new();
    for tag in tags {
        let len = tag.body.len() as u32;
        out.push(tag.kind);
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&tag.timestamp.to_be_bytes()[1..]);
        out.push((tag.timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&tag.body);
        out.extend_from_slice(&(len + 11).to_be_bytes());
    }
    out
}

/// What a server sends after the handshake: controls, the AMF0 conversation, then `tags`
/// as media messages (one aggregate among them), a ping, a larger chunk size, an abort.
fn server_stream(tags: &[FileTag], metadata: Option<&Bytes>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(control(5, &5_000_000u32.to_be_bytes()));
    out.extend(control(6, &[0, 0x4c, 0x4b, 0x40, 2]));
    out.extend(control(4, &[0, 0, 0, 0, 0, 1]));
    for (type_id, stream, body) in commands(metadata) {
        if body.starts_with(&amf(vec![s("close")])) || body.windows(8).any(|w| w == b"NotFound") {
            continue;
        }
        out.extend(chunk_message(3, type_id, stream, 0, &body));
    }
    let media: Vec<&FileTag> = tags.iter().filter(|t| t.kind == 8 || t.kind == 9).collect();
    for (i, tag) in media.iter().enumerate() {
        let csid = if tag.kind == 8 { 4 } else { 6 };
        out.extend(chunk_message(csid, tag.kind, 1, tag.timestamp, &tag.body));
        if i == 3 {
            // A ping request, then the next two tags as one aggregate message.
            out.extend(control(4, &[0, 6, 0, 0, 0x12, 0x34]));
            let next: Vec<&FileTag> = media.iter().skip(4).take(2).copied().collect();
            if !next.is_empty() {
                out.extend(chunk_message(
                    5,
                    22,
                    1,
                    next[0].timestamp,
                    &aggregate_body(&next),
                ));
            }
        }
    }
    // SetChunkSize 4096, then one message in 4096-byte chunks, then an Abort.
    out.extend(control(1, &4096u32.to_be_bytes()));
    let big = vec![0x17u8; 5000];
    let mut header = chunk_message(7, 9, 1, 1000, &[]);
    header.splice(4..7, (big.len() as u32).to_be_bytes()[1..].iter().copied());
    out.extend(header);
    for (i, piece) in big.chunks(4096).enumerate() {
        if i > 0 {
            out.push(0xc7);
        }
        out.extend_from_slice(piece);
    }
    out.extend(control(2, &7u32.to_be_bytes()));
    out.extend(chunk_message(
        3,
        20,
        1,
        0,
        &amf(vec![
            s("onStatus"),
            n(0.0),
            Amf0Value::Null,
            status("NetStream.Play.Stop", "status"),
        ]),
    ));
    out
}

/// `normalize` records: kind (1 audio, 0 video), u32 timestamp, u16 length, body.
fn normalize_records(tags: &[&FileTag]) -> Vec<u8> {
    let mut out = Vec::new();
    for tag in tags {
        out.push(u8::from(tag.kind == 8));
        out.extend_from_slice(&tag.timestamp.to_be_bytes());
        let body = &tag.body[..tag.body.len().min(0xffff)];
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// An `mp4_writer` input: the configurations in the tags, then the frames the normalizer
/// makes of them.
fn mp4_input(tags: &[&FileTag], max_frames: usize) -> Option<Vec<u8>> {
    let mut normalizer = Normalizer::new();
    let mut frames = Vec::new();
    let mut codecs = None;
    for tag in tags {
        let _ = match tag.kind {
            8 => normalizer.handle_audio(tag.timestamp, &tag.body),
            _ => normalizer.handle_video(tag.timestamp, &tag.body),
        };
        while let Some(event) = normalizer.poll() {
            match event {
                NormalizedEvent::CodecChange(set) => codecs = Some(set),
                NormalizedEvent::Frame(frame) => frames.push(frame),
            }
        }
    }
    let codecs = codecs?;
    let mut avc = Vec::new();
    if let Some(tag) = tags.iter().find(|t| t.kind == 9) {
        if let Ok(VideoTag::AvcSequenceHeader(config)) = parse_video_tag(&tag.body) {
            avc = config.to_vec();
        }
    }
    let asc = codecs
        .audio
        .as_ref()
        .map(|a| a.raw.to_vec())
        .unwrap_or_default();
    let flags = u8::from(codecs.video.is_some()) | (u8::from(codecs.audio.is_some()) << 1);
    let mut out = vec![flags];
    out.extend_from_slice(&1100u16.to_be_bytes());
    out.extend_from_slice(&(avc.len() as u16).to_be_bytes());
    out.extend_from_slice(&avc);
    out.extend_from_slice(&(asc.len() as u16).to_be_bytes());
    out.extend_from_slice(&asc);
    for frame in frames.iter().take(max_frames) {
        out.push(u8::from(frame.track == Track::Audio) | (u8::from(frame.keyframe) << 1));
        out.extend_from_slice(&(frame.dts as i32).to_be_bytes());
        out.extend_from_slice(&((frame.pts - frame.dts) as i16).to_be_bytes());
        let data = &frame.data[..frame.data.len().min(0xffff)];
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    Some(out)
}

/// A small FLV file of `tags`.
fn flv_file(tags: &[&FileTag]) -> Vec<u8> {
    let mut out = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for tag in tags {
        let len = tag.body.len() as u32;
        out.push(tag.kind);
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&tag.timestamp.to_be_bytes()[1..]);
        out.push((tag.timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&tag.body);
        out.extend_from_slice(&(len + 11).to_be_bytes());
    }
    out
}

fn flv_seeds(seeds: &mut Seeds, stem: &str, file: &[u8]) {
    let tags = read_flv_file(file).expect("an FLV file");
    let metadata = tags.iter().find(|t| t.kind == 18).map(|t| t.body.clone());
    let media: Vec<&FileTag> = tags.iter().filter(|t| t.kind == 8 || t.kind == 9).collect();
    let small: Vec<&FileTag> = media
        .iter()
        .copied()
        .scan(0usize, |bytes, tag| {
            *bytes += tag.body.len();
            (*bytes < 12_000).then_some(tag)
        })
        .collect();
    let small_owned: Vec<FileTag> = small.iter().map(|t| (*t).clone()).collect();

    // RTMP: the whole conversation, whole and in small pieces, with and without the canned
    // handshake.
    let stream = server_stream(&small_owned, metadata.as_ref());
    seeds.put("rtmp_session", stem, &[&[0u8, 0][..], &stream].concat());
    seeds.put(
        "rtmp_session",
        &format!("{stem}-pieces"),
        &[&[0u8, 7][..], &stream].concat(),
    );
    seeds.put(
        "rtmp_session",
        &format!("{stem}-handshake"),
        &[&[1u8, 0][..], &server_handshake(), &stream].concat(),
    );
    seeds.put(
        "rtmp_chunk",
        stem,
        &[&[0u8, 0, 0, 0, 0][..], &stream].concat(),
    );
    seeds.put(
        "rtmp_chunk",
        &format!("{stem}-pieces"),
        &[&[0u8, 0, 0x10, 0, 13][..], &stream].concat(),
    );
    let aggregate = aggregate_body(&small.iter().copied().take(4).collect::<Vec<_>>());
    seeds.put(
        "rtmp_aggregate",
        stem,
        &[&1000u32.to_be_bytes()[..], &aggregate].concat(),
    );
    if let Some(meta) = &metadata {
        seeds.put(
            "rtmp_amf0",
            &format!("{stem}-metadata"),
            &amf0_records(&[(18, 1, meta.to_vec())]),
        );
    }

    // FLV tags, one seed per kind of tag.
    let mut kinds_seen = Vec::new();
    for tag in &media {
        let kind = (tag.body.first().copied(), tag.body.get(1).copied());
        if kinds_seen.contains(&kind) {
            continue;
        }
        kinds_seen.push(kind);
        let body = &tag.body[..tag.body.len().min(2048)];
        seeds.put(
            "flv_tag",
            &format!(
                "{stem}-{:02x}{:02x}",
                kind.0.unwrap_or(0),
                kind.1.unwrap_or(0)
            ),
            body,
        );
    }
    seeds.put(
        "flv_file",
        stem,
        &flv_file(&small.iter().copied().take(6).collect::<Vec<_>>()),
    );

    // Codec configurations, SPS, AVCC frames.
    for tag in &media {
        match parse_video_tag(&tag.body) {
            Ok(VideoTag::AvcSequenceHeader(config)) => {
                seeds.put("avc_config", stem, &config);
                if let Ok(parsed) = pullcast::codec::h264::parse_avc_decoder_config(&config) {
                    for (i, sps) in parsed.sps.iter().enumerate() {
                        seeds.put("avc_sps", &format!("{stem}-{i}"), sps);
                    }
                }
            }
            Ok(VideoTag::AvcNalus { keyframe, data, .. }) => {
                let name = format!("{stem}-{}", if keyframe { "key" } else { "inter" });
                let data = &data[..data.len().min(4096)];
                seeds.put("avc_annexb", &name, &[&[4u8][..], data].concat());
            }
            _ => {}
        }
        if tag.kind == 8 && tag.body.get(1) == Some(&0) {
            seeds.put("aac_config", stem, &tag.body[2..]);
        }
    }

    // The normalizer, the MP4 writer and the transcoders.
    seeds.put("normalize", stem, &normalize_records(&small));
    if let Some(input) = mp4_input(&small, 40) {
        seeds.put("mp4_writer", stem, &input);
    }
    if let Some(input) = aac_transcode_input(&small, 12) {
        seeds.put("aac_transcode", stem, &input);
    }
    if let Some(input) = h264_transcode_input(&small, 10) {
        seeds.put("h264_transcode", stem, &input);
    }
}

/// An `aac_transcode` input: the AudioSpecificConfig of the tags, then their raw AAC frames.
fn aac_transcode_input(tags: &[&FileTag], max_frames: usize) -> Option<Vec<u8>> {
    let audio: Vec<&&FileTag> = tags.iter().filter(|t| t.kind == 8).collect();
    let config = audio.iter().find(|t| t.body.get(1) == Some(&0))?;
    let asc = config.body.get(2..)?;
    let mut out = vec![asc.len() as u8];
    out.extend_from_slice(asc);
    let mut last = config.timestamp;
    for tag in audio
        .iter()
        .filter(|t| t.body.get(1) == Some(&1))
        .take(max_frames)
    {
        out.push(tag.timestamp.saturating_sub(last).min(254) as u8);
        last = tag.timestamp;
        let frame = &tag.body[2..];
        out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        out.extend_from_slice(frame);
    }
    Some(out)
}

/// An `h264_transcode` input: the first video frames the normalizer makes of the tags.
fn h264_transcode_input(tags: &[&FileTag], max_frames: usize) -> Option<Vec<u8>> {
    let mut normalizer = Normalizer::new();
    let mut out = Vec::new();
    let mut frames = 0;
    for tag in tags.iter().filter(|t| t.kind == 9) {
        let _ = normalizer.handle_video(tag.timestamp, &tag.body);
        while let Some(event) = normalizer.poll() {
            if let NormalizedEvent::Frame(frame) = event {
                if frames < max_frames {
                    out.push(u8::from(frame.keyframe));
                    out.push((frame.pts - frame.dts).clamp(0, 255) as u8);
                    out.extend_from_slice(&(frame.data.len() as u16).to_be_bytes());
                    out.extend_from_slice(&frame.data);
                    frames += 1;
                }
            }
        }
    }
    (frames > 0).then_some(out)
}

const CHROMIUM_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 107 109 116 39 45\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Yl4X\r\n\
a=ice-pwd:oV2Jq6hRqwn3ywF4IkOeYjvI\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:103 H264/90000\r\n\
a=rtcp-fb:103 goog-remb\r\n\
a=rtcp-fb:103 nack pli\r\n\
a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:104 rtx/90000\r\n\
a=fmtp:104 apt=103\r\n\
a=rtpmap:107 H264/90000\r\n\
a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:109 H264/90000\r\n\
a=fmtp:109 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:116 H264/90000\r\n\
a=fmtp:116 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
a=rtpmap:39 H264/90000\r\n\
a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f\r\n\
a=rtpmap:45 AV1/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Yl4X\r\n\
a=ice-pwd:oV2Jq6hRqwn3ywF4IkOeYjvI\r\n\
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n";

const FIREFOX_OFFER: &str = "v=0\r\n\
o=mozilla...THIS_IS_SDPARTA-99.0 7203232960240178339 0 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=fingerprint:sha-256 2A:13:4B:1B:62:B8:1E:6A:1D:0B:3A:7F:43:A4:F8:6E:62:C5:03:13:2A:4C:3F:DF:DC:0B:42:0E:50:1D:8C:5F\r\n\
a=group:BUNDLE 0 1\r\n\
a=ice-options:trickle\r\n\
a=msid-semantic:WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=recvonly\r\n\
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\r\n\
a=ice-pwd:9b5f2c8d1e0a7b6c3d4e5f60718293a4\r\n\
a=ice-ufrag:4f1a2b3c\r\n\
a=mid:0\r\n\
a=rtcp-mux\r\n\
a=rtpmap:109 opus/48000/2\r\n\
a=setup:actpass\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98\r\n\
c=IN IP4 0.0.0.0\r\n\
a=recvonly\r\n\
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\r\n\
a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1\r\n\
a=ice-pwd:9b5f2c8d1e0a7b6c3d4e5f60718293a4\r\n\
a=ice-ufrag:4f1a2b3c\r\n\
a=mid:1\r\n\
a=rtcp-fb:126 nack pli\r\n\
a=rtcp-mux\r\n\
a=rtpmap:120 VP8/90000\r\n\
a=rtpmap:126 H264/90000\r\n\
a=rtpmap:97 H264/90000\r\n\
a=setup:actpass\r\n";

fn text_seeds(seeds: &mut Seeds) {
    // The AMF0 conversation of a pull, message by message and all in one.
    let all = commands(None);
    for (i, command) in all.iter().enumerate() {
        seeds.put(
            "rtmp_amf0",
            &format!("message-{i:02}"),
            &amf0_records(std::slice::from_ref(command)),
        );
    }
    seeds.put("rtmp_amf0", "conversation", &amf0_records(&all));

    for (name, url) in [
        ("plain", "rtmp://example.com/live/cam"),
        (
            "port-query",
            "rtmp://example.com:1936/app/inst/stream?token=secret&x=1",
        ),
        ("ipv6", "rtmp://[::1]:1935/live/a"),
        ("decimal-host", "rtmp://2130706433/live/a"),
        ("unicode", "rtmp://例え.jp/live/直播流"),
    ] {
        seeds.put("rtmp_url", name, url.as_bytes());
    }

    // AudioSpecificConfigs: AAC-LC 44.1 kHz stereo, 48 kHz mono, 960-sample frames, AAC
    // Main, HE-AAC (explicit and backward-compatible signalling), HE-AAC v2, AAC-LD, ELD, an
    // escaped sample rate, channel configuration 7.
    for (name, asc) in [
        ("lc-44100-stereo", &[0x12, 0x10][..]),
        ("lc-48000-mono", &[0x11, 0x88]),
        ("lc-960", &[0x12, 0x14]),
        ("main", &[0x0a, 0x10]),
        ("he-explicit", &[0x2b, 0x92, 0x08, 0x00]),
        ("he-compatible", &[0x13, 0x90, 0x56, 0xe5, 0x98]),
        ("he-v2", &[0xeb, 0x09, 0x88, 0x00]),
        ("ld", &[0xb9, 0x88, 0x00]),
        ("eld", &[0xf8, 0xe6, 0x20, 0x30, 0x00]),
        ("escaped-rate", &[0x17, 0x80, 0x00, 0xfa, 0x10]),
        ("eight-channels", &[0x11, 0xb8]),
    ] {
        seeds.put("aac_config", name, asc);
    }

    // Video tag bodies the FLV files do not have: enhanced RTMP, a command frame, a
    // non-AVC codec, a non-AAC audio format.
    for (name, body) in [
        (
            "enhanced-hvc1",
            &[0x90, b'h', b'v', b'c', b'1', 0, 0, 0][..],
        ),
        ("command-frame", &[0x52, 0]),
        ("vp6", &[0x14, 0, 0, 0, 0]),
        ("mp3", &[0x2f, 0xff, 0xfb]),
        ("avc-end-of-sequence", &[0x17, 2, 0, 0, 0]),
    ] {
        seeds.put("flv_tag", name, body);
    }

    seeds.put("sdp_offer", "chromium", CHROMIUM_OFFER.as_bytes());
    seeds.put("sdp_offer", "firefox", FIREFOX_OFFER.as_bytes());
    seeds.put("webrtc_offer", "chromium", CHROMIUM_OFFER.as_bytes());
    seeds.put("webrtc_offer", "firefox", FIREFOX_OFFER.as_bytes());

    let start: i64 = 1_700_000_000_000 << 16;
    let end: i64 = 1_700_000_123_456 << 16;
    for (name, end, texts) in [
        ("default", None, "stream-{mediaSessionId}\0cam\0f81d4fae-7dec\0AAC\0H264"),
        (
            "every-field",
            Some(end),
            "{streamName}_{startTime}_{endTime}_{duration}_{audioCodec}_{videoCodec}\0rtmp://h/live/直播流?key=1\0id\0mp4a.40.2\0avc1.64001f",
        ),
        ("dots", Some(end), "../{streamName}/..\0..\0\0\0"),
    ] {
        let mut input = start.to_be_bytes().to_vec();
        match end {
            Some(end) => input.extend_from_slice(&end.to_be_bytes()),
            None => input.extend_from_slice(&[0xff; 8]),
        }
        input.extend_from_slice(texts.as_bytes());
        seeds.put("record_naming", name, &input);
    }

    let offer_json = serde_json_string(CHROMIUM_OFFER);
    for (name, message) in [
        (
            "play",
            format!(r#"{{"type":"play","id":"s1","name":"cam","sdp":{offer_json}}}"#),
        ),
        (
            "play-unicode",
            r#"{"type":"play","id":"s2","name":"直播流","sdp":"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"}"#.to_string(),
        ),
        (
            "play-token",
            r#"{"type":"play","id":"s3","name":"rtmp://h/live/x","sdp":"v=0\nm=audio 9 RTP/AVP 111\n","token":"pc1.x.y"}"#.to_string(),
        ),
        ("stop", r#"{"type":"stop","id":"s1"}"#.to_string()),
        ("ping", r#"{"type":"ping","ts":1733470000123}"#.to_string()),
        ("pong", r#"{"type":"pong","ts":{"a":[1,2.5,null,"x"]}}"#.to_string()),
    ] {
        seeds.put("ws_message", name, message.as_bytes());
    }

    for (name, body) in [
        (
            "pull",
            &br#"{"uri":"rtmp://example.com/live/cam","localStreamName":"cam","record":"true","hasAudio":false,"hasVideo":true,"extra":[1]}"#[..],
        ),
        ("pull-minimal", br#"{"uri":"rtmp://10.0.0.1:1936/app/s?k=v"}"#),
        ("terminate", br#"{"uri":"rtmp://example.com/live/cam"}"#),
        ("empty", b" \n"),
        (
            "token-request",
            r#"{"stream":"直播*","permissions":["play","records"],"expiresInSeconds":60}"#.as_bytes(),
        ),
        (
            "find-all-answer",
            br#"[{"uri":"rtmp://u:p@h/live/s?key=1","localStreamName":"s","reason":"cannot pull rtmp://h/a?k=v"}]"#,
        ),
        ("array", b"[1,2]"),
    ] {
        seeds.put("rest_body", name, &[&[0u8][..], body].concat());
    }

    for name in [
        "a.mp4",
        "b-1_x.mp4",
        "%C3%A9.mp4",
        "inside.mp4",
        "out.mp4",
        "folder.mp4",
        "..%2Fa.mp4",
        ".a.mp4",
    ] {
        seeds.put(
            "record_path",
            &name.replace(['%', '.', '/'], "_"),
            name.as_bytes(),
        );
    }

    seeds.put(
        "record_sidecar",
        "finished",
        br#"{
  "stream": "cam",
  "mediaSessionId": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
  "startMs": 1733470000123,
  "endMs": 1733470060123,
  "videoCodec": "avc1.64001f",
  "audioCodec": "mp4a.40.2"
}"#,
    );
    seeds.put(
        "record_sidecar",
        "recording",
        br#"{"stream":"s","mediaSessionId":"x","startMs":-1,"endMs":null,"videoCodec":"","audioCodec":""}"#,
    );
}

/// Seeds of the access model and the pull guard.
fn access_seeds(seeds: &mut Seeds) {
    for (name, value) in [
        ("basic", "Basic b3BzOnMzY3JldA=="),
        ("basic-unicode", "basic  w6lsw6h2ZTrDqQ=="),
        ("bearer", "Bearer pc1.abc.def"),
        ("bearer-opaque", "bearer eyJhbGciOiJIUzI1NiJ9.e30.x"),
        ("digest", "Digest username=\"x\""),
    ] {
        seeds.put("auth_header", name, value.as_bytes());
    }

    let key = TokenKey::new(TOKEN_SECRET).expect("the fuzz secret is long enough");
    let now: u64 = 1_733_470_000;
    for (name, permissions, stream, expires) in [
        ("play-cam", "play", "cam1", now + 3600),
        (
            "all-glob",
            "api,pull,pull_private,play,records",
            "直播*",
            now + 60,
        ),
        ("expired", "play", "cam?", now - 1),
    ] {
        let claims = TokenClaims {
            permissions: PermissionSet::parse(&permissions.split(',').collect::<Vec<_>>())
                .expect("permissions"),
            stream: StreamPattern::parse(stream).expect("pattern"),
            expires_unix_s: expires,
        };
        let token = key.mint(&claims);
        let mut verify = vec![0u8];
        verify.extend_from_slice(&now.to_be_bytes());
        verify.extend_from_slice(token.as_bytes());
        seeds.put("auth_token", &format!("verify-{name}"), &verify);
        let mut mint = vec![1u8];
        mint.extend_from_slice(&now.to_be_bytes());
        mint.extend_from_slice(&expires.to_be_bytes());
        mint.extend_from_slice(permissions.replace(',', "\0").as_bytes());
        mint.push(0);
        mint.extend_from_slice(stream.as_bytes());
        seeds.put("auth_token", &format!("mint-{name}"), &mint);
    }

    for (name, pattern, stream) in [
        ("star", "*", "rtmp://h/live/cam?key=1"),
        ("prefix", "cam*", "cam12"),
        ("unicode", "直播?", "直播流"),
        ("escaped", "a\\*b*c?", "a*bxxcd"),
        (
            "literal",
            "rtmp://example.com/live/cam",
            "rtmp://example.com/live/cam",
        ),
        (
            "many-stars",
            "*a*a*a*a*a*b",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
    ] {
        seeds.put(
            "stream_pattern",
            name,
            format!("{pattern}\0{stream}").as_bytes(),
        );
    }

    for (name, text) in [
        ("same-host", "https://example.com\0example.com:443"),
        ("listed", "http://app.example.net:8080\0pullcast.local:8081\0http://app.example.net:8080/\0https://other"),
        ("any", "null\0h\0*"),
        ("ipv6", "http://[::1]:8081\0[::1]:8081"),
    ] {
        seeds.put("web_origin", name, text.as_bytes());
    }

    for (name, text) in [
        (
            "query-userinfo",
            "rtmp://user:pass@example.com:1935/live/cam?key=abc&x#frag",
        ),
        (
            "sentence",
            "cannot pull rtmp://h/app/s?token=secret: refused; also rtmps://a@b/c",
        ),
        ("fragment", "rtmp://h/live/s#k"),
        ("unicode", "rtmp://直播@例え.jp/流?鍵=秘密"),
    ] {
        seeds.put("redact", name, text.as_bytes());
    }

    for (name, text) in [
        ("decimal", "2130706433\x0010.0.0.0/8\0"),
        ("octal", "0177.0.0.1\x00127.0.0.0/8\0\u{1}"),
        ("hex", "0x7f.1\0*.example.com\0"),
        ("short", "127.1\0cam-?.local\0"),
        ("mapped", "[::ffff:169.254.169.254]\0::ffff:0:0/96\0"),
        ("nat64", "64:ff9b::a00:1\x0064:ff9b::/96\0"),
        ("6to4", "2002:c0a8:101::1\x002002::/16\0"),
        ("zone", "[fe80::1%25eth0]\0fe80::/10\0"),
        ("public", "203.0.113.7\x00203.0.113.0/24\0"),
        ("name", "cams.example.com.\0CAMS.example.com\0"),
    ] {
        seeds.put("net_host", name, text.as_bytes());
    }

    let mapped = |v4: [u8; 4]| {
        let mut octets = [0u8; 16];
        octets[10] = 0xff;
        octets[11] = 0xff;
        octets[12..].copy_from_slice(&v4);
        octets
    };
    for (name, selector, address, text) in [
        (
            "play-whep",
            3u8 | (1 << 6),
            mapped([203, 0, 113, 7]),
            "cam1\0rtmp://h/live/cam1?key=1\0ops\0opaque-token\0http://127.0.0.1:9000/auth\0HTTP/1.1 204 No Content\r\n",
        ),
        (
            "nulls-ipv6",
            0b0111_1000,
            [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            "\0\0\0\0http://[::1]/hook?x=1\0HTTP/1.0 403 Forbidden\r\n",
        ),
        (
            "escapes",
            2 | (3 << 6),
            mapped([127, 0, 0, 1]),
            "直播\"流\\\n\u{2028}\0u\0\u{1}\0t\0http://hook.local:8080\0",
        ),
    ] {
        let mut input = vec![selector];
        input.extend_from_slice(&address);
        input.extend_from_slice(text.as_bytes());
        seeds.put("auth_hook", name, &input);
    }
}

/// `text` as a JSON string literal.
fn serde_json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: make_seeds OUT_DIR FILE.flv..."));
    let mut seeds = Seeds { out, written: 0 };
    for file in args {
        let bytes = std::fs::read(&file).expect("read an FLV file");
        let stem = Path::new(&file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("flv")
            .replace('.', "_");
        flv_seeds(&mut seeds, &stem, &bytes);
    }
    text_seeds(&mut seeds);
    access_seeds(&mut seeds);
    println!("{} seeds written to {}", seeds.written, seeds.out.display());
}
