//! What a browser's SDP offer holds (its H.264 and Opus formats) and which H.264 format to
//! answer with for a given source. Reads text only: the offer comes from the network, so
//! every line is bounded and nothing panics.

use std::fmt;

/// One H.264 format a browser offered (`a=rtpmap:PT H264/90000` with its `a=fmtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Format {
    /// The payload type the browser chose for it.
    pub payload_type: u8,
    /// `profile_idc`, `profile-iop` (constraint flags) and `level_idc` from
    /// `profile-level-id`; `None` when absent (RFC 6184 then means 42000a).
    pub profile_level_id: Option<[u8; 3]>,
    /// `packetization-mode` (0 when absent).
    pub packetization_mode: u8,
    /// `level-asymmetry-allowed=1`.
    pub level_asymmetry_allowed: bool,
    /// The `a=fmtp` parameters exactly as offered (may be empty).
    pub fmtp: String,
}

/// The Opus format a browser offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusFormat {
    pub payload_type: u8,
    /// Channels from the rtpmap (`opus/48000/2` → 2).
    pub channels: u8,
    /// The `a=fmtp` parameters exactly as offered (may be empty).
    pub fmtp: String,
}

/// What a browser's offer says about media we can send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfferSummary {
    /// The offer has a video m-section.
    pub has_video_section: bool,
    /// The offer has an audio m-section.
    pub has_audio_section: bool,
    /// H.264 formats of the first video m-section, in offer order.
    pub h264: Vec<H264Format>,
    /// Opus in the first audio m-section, if offered.
    pub opus: Option<OpusFormat>,
}

/// Why an offer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    /// Not an SDP session description at all.
    Malformed(String),
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::Malformed(m) => write!(f, "malformed SDP offer: {m}"),
        }
    }
}

impl std::error::Error for SdpError {}

#[derive(Default)]
struct Section {
    kind: String,
    payload_types: Vec<u8>,
    rtpmap: Vec<(u8, String)>,
    fmtp: Vec<(u8, String)>,
}

/// Reads the parts of an SDP offer that decide the answer's codecs. Tolerates `\r\n` or
/// `\n`, unknown lines and attributes; refuses text that is not SDP (no `v=0`, no m-line,
/// bad m-line).
pub fn parse_offer(sdp: &str) -> Result<OfferSummary, SdpError> {
    let mut lines = sdp.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some("v=0") => {}
        Some(other) => {
            return Err(SdpError::Malformed(format!(
                "it must start with v=0, not {:?}",
                truncate(other, 40)
            )))
        }
        None => return Err(SdpError::Malformed("it is empty".to_string())),
    }
    let mut sections: Vec<Section> = Vec::new();
    for line in lines {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let (Some(kind), Some(_port), Some(_proto)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(SdpError::Malformed(format!(
                    "bad m-line {:?}",
                    truncate(line, 60)
                )));
            };
            sections.push(Section {
                kind: kind.to_ascii_lowercase(),
                payload_types: parts.filter_map(|p| p.parse::<u8>().ok()).collect(),
                ..Section::default()
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, enc)) = split_pt(rest) {
                section.rtpmap.push((pt, enc.to_string()));
            }
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            if let Some((pt, params)) = split_pt(rest) {
                section.fmtp.push((pt, params.to_string()));
            }
        }
    }
    if sections.is_empty() {
        return Err(SdpError::Malformed("it has no m= line".to_string()));
    }
    let mut summary = OfferSummary::default();
    let video = sections.iter().find(|s| s.kind == "video");
    let audio = sections.iter().find(|s| s.kind == "audio");
    summary.has_video_section = video.is_some();
    summary.has_audio_section = audio.is_some();
    if let Some(v) = video {
        for &pt in &v.payload_types {
            let Some(enc) = rtpmap_of(v, pt) else {
                continue;
            };
            let mut parts = enc.split('/');
            let name = parts.next().unwrap_or("");
            let clock = parts.next().unwrap_or("");
            if !name.eq_ignore_ascii_case("H264") || clock != "90000" {
                continue;
            }
            let fmtp = fmtp_of(v, pt).unwrap_or("").to_string();
            summary.h264.push(h264_format(pt, &fmtp));
        }
    }
    if let Some(a) = audio {
        for &pt in &a.payload_types {
            let Some(enc) = rtpmap_of(a, pt) else {
                continue;
            };
            let mut parts = enc.split('/');
            let name = parts.next().unwrap_or("");
            let clock = parts.next().unwrap_or("");
            if !name.eq_ignore_ascii_case("opus") || clock != "48000" {
                continue;
            }
            let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            summary.opus = Some(OpusFormat {
                payload_type: pt,
                channels,
                fmtp: fmtp_of(a, pt).unwrap_or("").to_string(),
            });
            break;
        }
    }
    Ok(summary)
}

/// The Opus `a=fmtp` of our answer: what the browser offered, plus `stereo=1;sprop-stereo=1`
/// (RFC 7587 §7.1) — we send stereo, and without them browsers decode it as mono.
pub fn opus_answer_fmtp(offered: &str) -> String {
    let mut params: Vec<&str> = offered
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or("").trim();
            key != "stereo" && key != "sprop-stereo"
        })
        .collect();
    params.extend(["stereo=1", "sprop-stereo=1"]);
    params.join(";")
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn split_pt(rest: &str) -> Option<(u8, &str)> {
    let (pt, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some((pt.parse().ok()?, value.trim()))
}

fn rtpmap_of(s: &Section, pt: u8) -> Option<&str> {
    s.rtpmap
        .iter()
        .find(|(p, _)| *p == pt)
        .map(|(_, e)| e.as_str())
}

fn fmtp_of(s: &Section, pt: u8) -> Option<&str> {
    s.fmtp
        .iter()
        .find(|(p, _)| *p == pt)
        .map(|(_, e)| e.as_str())
}

/// Parses one H.264 `a=fmtp` parameter list.
pub fn h264_format(payload_type: u8, fmtp: &str) -> H264Format {
    let mut format = H264Format {
        payload_type,
        profile_level_id: None,
        packetization_mode: 0,
        level_asymmetry_allowed: false,
        fmtp: fmtp.to_string(),
    };
    for param in fmtp.split(';') {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        match key.as_str() {
            "profile-level-id" => format.profile_level_id = parse_profile_level_id(value),
            "packetization-mode" => format.packetization_mode = value.parse().unwrap_or(0),
            "level-asymmetry-allowed" => format.level_asymmetry_allowed = value == "1",
            _ => {}
        }
    }
    format
}

fn parse_profile_level_id(hex: &str) -> Option<[u8; 3]> {
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// The H.264 profile of the source, from its SPS (or AVC decoder configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceProfile {
    pub profile_idc: u8,
    /// The constraint_set flags byte (`profile-iop`).
    pub constraint_flags: u8,
    pub level_idc: u8,
}

/// Orders H.264 profiles by what a decoder of that profile can take: Constrained Baseline
/// < Baseline < Main < (Constrained) High < High 10 < High 4:2:2 < High 4:4:4.
fn profile_rank(profile_idc: u8, constraint_flags: u8) -> u8 {
    match profile_idc {
        66 if constraint_flags & 0x40 != 0 => 0, // Constrained Baseline
        66 => 1,
        77 if constraint_flags & 0x80 != 0 => 0, // Main compatible with CB
        77 | 88 => 2,
        100 => 3,
        110 => 4,
        122 => 5,
        244 | 44 => 6,
        _ => 3,
    }
}

/// Chooses the H.264 format to answer with: one the browser offered (its payload type and
/// parameters are echoed, as RFC 6184 §8.2.2 asks), never a refusal because of the source's
/// profile — a browser that offers no High profile still decodes High bitstreams.
///
/// Preference: packetization-mode 1 (the sender fragments large NAL units with FU-A); then
/// the closest offered profile able to carry the source (the smallest one at or above it, else
/// the highest below); with an unknown source, the most widely decodable (Constrained
/// Baseline); then `level-asymmetry-allowed=1`; then offer order. `None` only when no H.264
/// was offered.
pub fn choose_h264(offered: &[H264Format], source: Option<SourceProfile>) -> Option<H264Format> {
    let target = source.map_or(0, |s| profile_rank(s.profile_idc, s.constraint_flags));
    let distance = |f: &H264Format| -> u16 {
        let plid = f.profile_level_id.unwrap_or([0x42, 0x00, 0x0a]);
        let rank = profile_rank(plid[0], plid[1]);
        if rank >= target {
            u16::from(rank - target)
        } else {
            // Below the source: worse than any superset, closer is better.
            100 + u16::from(target - rank)
        }
    };
    offered
        .iter()
        .enumerate()
        .min_by_key(|(index, f)| {
            (
                u8::from(f.packetization_mode != 1),
                distance(f),
                u8::from(!f.level_asymmetry_allowed),
                *index,
            )
        })
        .map(|(_, f)| f.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Trimmed from a real Chromium 156 recvonly offer.
    const CHROMIUM_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 107 108 109 114 115 116 117 118 39 40 45 46 98 99 100 101 119 120 121\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:103 H264/90000\r\n\
a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:104 rtx/90000\r\n\
a=fmtp:104 apt=103\r\n\
a=rtpmap:107 H264/90000\r\n\
a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:109 H264/90000\r\n\
a=fmtp:109 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:114 H264/90000\r\n\
a=fmtp:114 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:116 H264/90000\r\n\
a=fmtp:116 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
a=rtpmap:118 H264/90000\r\n\
a=fmtp:118 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r\n\
a=rtpmap:39 H264/90000\r\n\
a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f\r\n\
a=rtpmap:45 AV1/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=rtpmap:9 G722/8000\r\n";

    fn pt(f: Option<H264Format>) -> u8 {
        f.unwrap().payload_type
    }

    #[test]
    fn parses_chromium_offer() {
        let s = parse_offer(CHROMIUM_OFFER).unwrap();
        assert!(s.has_video_section && s.has_audio_section);
        assert_eq!(
            s.h264.iter().map(|f| f.payload_type).collect::<Vec<_>>(),
            vec![103, 107, 109, 114, 116, 118, 39]
        );
        assert_eq!(s.h264[2].profile_level_id, Some([0x42, 0xe0, 0x1f]));
        assert_eq!(s.h264[2].packetization_mode, 1);
        assert!(s.h264[2].level_asymmetry_allowed);
        assert_eq!(
            s.h264[2].fmtp,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
        );
        let opus = s.opus.unwrap();
        assert_eq!((opus.payload_type, opus.channels), (111, 2));
        assert_eq!(opus.fmtp, "minptime=10;useinbandfec=1");
        assert_eq!(
            opus_answer_fmtp(&opus.fmtp),
            "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1"
        );
        assert_eq!(opus_answer_fmtp(""), "stereo=1;sprop-stereo=1");
        assert_eq!(
            opus_answer_fmtp("stereo=0; useinbandfec=1"),
            "useinbandfec=1;stereo=1;sprop-stereo=1"
        );
    }

    #[test]
    fn refuses_what_is_not_sdp() {
        assert!(parse_offer("").is_err());
        assert!(parse_offer("hello").is_err());
        assert!(parse_offer("v=0\r\ns=-\r\n").is_err());
        assert!(parse_offer("v=0\nm=video\n").is_err());
        // Odd but harmless input is not a panic.
        let s = parse_offer("v=0\nm=video 9 RTP/AVP x 300 96\na=rtpmap:96\na=fmtp:\n").unwrap();
        assert!(s.h264.is_empty());
    }

    #[test]
    fn chooses_an_offered_profile_for_each_source() {
        let s = parse_offer(CHROMIUM_OFFER).unwrap();
        let cb = SourceProfile {
            profile_idc: 66,
            constraint_flags: 0xc0,
            level_idc: 31,
        };
        let main = SourceProfile {
            profile_idc: 77,
            constraint_flags: 0x40,
            level_idc: 31,
        };
        let high = SourceProfile {
            profile_idc: 100,
            constraint_flags: 0,
            level_idc: 31,
        };
        // Unknown source and Constrained Baseline: 42e01f, mode 1.
        assert_eq!(pt(choose_h264(&s.h264, None)), 109);
        assert_eq!(pt(choose_h264(&s.h264, Some(cb))), 109);
        assert_eq!(pt(choose_h264(&s.h264, Some(main))), 116);
        // High is not offered: the smallest offered superset (High 4:4:4 Predictive).
        assert_eq!(pt(choose_h264(&s.h264, Some(high))), 39);
        // Without f4001f, High is answered with the closest below (Main), never refused.
        let no_f4: Vec<_> = s
            .h264
            .iter()
            .filter(|f| f.payload_type != 39)
            .cloned()
            .collect();
        assert_eq!(pt(choose_h264(&no_f4, Some(high))), 116);
    }

    #[test]
    fn prefers_packetization_mode_1_and_falls_back() {
        let only_mode0 = vec![h264_format(
            100,
            "packetization-mode=0;profile-level-id=42e01f",
        )];
        assert_eq!(pt(choose_h264(&only_mode0, None)), 100);
        let both = vec![
            h264_format(100, "packetization-mode=0;profile-level-id=42e01f"),
            h264_format(101, "packetization-mode=1;profile-level-id=640c1f"),
        ];
        assert_eq!(pt(choose_h264(&both, None)), 101);
        let asym = vec![
            h264_format(100, "packetization-mode=1;profile-level-id=42e01f"),
            h264_format(
                101,
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            ),
        ];
        assert_eq!(pt(choose_h264(&asym, None)), 101);
        assert_eq!(choose_h264(&[], None), None);
        // No profile-level-id means 42000a (Baseline).
        let bare = vec![h264_format(97, "packetization-mode=1")];
        assert_eq!(pt(choose_h264(&bare, None)), 97);
        assert_eq!(bare[0].profile_level_id, None);
        assert_eq!(h264_format(1, "profile-level-id=zz").profile_level_id, None);
    }
}
