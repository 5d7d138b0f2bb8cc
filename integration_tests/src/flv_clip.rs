//! Short H.264 + AAC clips encoded by ffmpeg at test time and split into FLV tags: real
//! media (sequence headers, keyframes, frames, `onMetaData`) for test peers that speak RTMP
//! themselves, such as [`crate::hostile_rtmp`].
//!
//! It only encodes and splits; it never sends anything. A clip is encoded once per test
//! process (cached). A missing ffmpeg or a failed encode is a loud panic, never a skip.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::process::{kill_tree, require_tool, spawn_logged, tail, wait_exit};
use crate::tempdir::TempDir;

/// FLV tag type of audio.
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video.
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of script data (`onMetaData`).
pub const TAG_SCRIPT: u8 = 18;

/// One FLV tag: its type, timestamp in ms and body (what an RTMP message of the same type
/// carries as its payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// [`TAG_AUDIO`], [`TAG_VIDEO`] or [`TAG_SCRIPT`].
    pub kind: u8,
    /// Timestamp in ms (24 bits + the extension byte).
    pub timestamp: u32,
    /// The tag body.
    pub body: Vec<u8>,
}

impl FlvTag {
    /// An AVC or AAC sequence header (packet type 0 after the codec byte).
    pub fn is_sequence_header(&self) -> bool {
        match self.kind {
            TAG_VIDEO => {
                self.body.get(1) == Some(&0) && self.body.first().is_some_and(|b| b & 0x0f == 7)
            }
            TAG_AUDIO => {
                self.body.get(1) == Some(&0) && self.body.first().is_some_and(|b| b >> 4 == 10)
            }
            _ => false,
        }
    }

    /// A video keyframe (frame type 1) that is not a sequence header.
    pub fn is_keyframe(&self) -> bool {
        self.kind == TAG_VIDEO
            && !self.is_sequence_header()
            && self.body.first().is_some_and(|b| b >> 4 == 1)
    }
}

/// What to encode: `testsrc2` video and a sine, H.264 Constrained Baseline (no B-frames)
/// and AAC-LC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClipSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// A keyframe every `gop` frames.
    pub gop: u32,
    pub sample_rate: u32,
    pub channels: u32,
    pub seconds: u32,
}

impl ClipSpec {
    /// 320x180, 30 fps, a keyframe every 3 frames (every 100 ms); AAC 48 kHz stereo; 2 s.
    pub const A: ClipSpec = ClipSpec {
        width: 320,
        height: 180,
        fps: 30,
        gop: 3,
        sample_rate: 48_000,
        channels: 2,
        seconds: 2,
    };
    /// A second configuration for flapping between two: 256x144, 30 fps, a keyframe every
    /// 3 frames; AAC 44.1 kHz mono; 2 s.
    pub const B: ClipSpec = ClipSpec {
        width: 256,
        height: 144,
        fps: 30,
        gop: 3,
        sample_rate: 44_100,
        channels: 1,
        seconds: 2,
    };
}

/// An encoded clip: its tags in file order.
#[derive(Debug)]
pub struct Clip {
    pub spec: ClipSpec,
    pub tags: Vec<FlvTag>,
}

impl Clip {
    /// The clip of `spec`, encoded on first use and cached for the test process.
    pub fn get(spec: ClipSpec) -> Arc<Clip> {
        static CACHE: OnceLock<Mutex<HashMap<ClipSpec, Arc<Clip>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let mut cache = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .entry(spec)
            .or_insert_with(|| Arc::new(encode(spec)))
            .clone()
    }

    /// Length of the clip in ms (what a loop of it advances by).
    pub fn duration_ms(&self) -> u32 {
        self.spec.seconds * 1000
    }

    /// The AVC sequence header tag.
    pub fn video_config(&self) -> &FlvTag {
        self.tags
            .iter()
            .find(|t| t.kind == TAG_VIDEO && t.is_sequence_header())
            .expect("ffmpeg wrote an AVC sequence header")
    }

    /// The AAC sequence header tag.
    pub fn audio_config(&self) -> &FlvTag {
        self.tags
            .iter()
            .find(|t| t.kind == TAG_AUDIO && t.is_sequence_header())
            .expect("ffmpeg wrote an AAC sequence header")
    }

    /// The `onMetaData` script tag.
    pub fn metadata(&self) -> Option<&FlvTag> {
        self.tags.iter().find(|t| t.kind == TAG_SCRIPT)
    }

    /// Audio and video frames (no sequence headers, no script tags), in file order.
    pub fn frames(&self) -> impl Iterator<Item = &FlvTag> {
        self.tags
            .iter()
            .filter(|t| (t.kind == TAG_AUDIO || t.kind == TAG_VIDEO) && !t.is_sequence_header())
    }

    /// The `AVCDecoderConfigurationRecord`'s first SPS and first PPS (each with its NAL
    /// header byte).
    pub fn sps_pps(&self) -> (Vec<u8>, Vec<u8>) {
        parse_first_sps_pps(&self.video_config().body)
            .expect("ffmpeg's AVC sequence header holds an SPS and a PPS")
    }
}

/// Encodes `spec` with ffmpeg into an FLV file and splits it.
fn encode(spec: ClipSpec) -> Clip {
    let ffmpeg = require_tool("ffmpeg");
    let dir = TempDir::new("flv-clip");
    let file = dir.join("clip.flv");
    let video = format!(
        "testsrc2=size={}x{}:rate={}",
        spec.width, spec.height, spec.fps
    );
    let audio = format!("sine=frequency=1000:sample_rate={}", spec.sample_rate);
    let mut cmd = Command::new(ffmpeg);
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
    ])
    .arg(&video)
    .args(["-f", "lavfi", "-i"])
    .arg(&audio)
    .args([
        "-t",
        &spec.seconds.to_string(),
        "-map",
        "0:v",
        "-map",
        "1:a",
    ])
    .args([
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-preset",
        "ultrafast",
    ])
    .args(["-tune", "zerolatency", "-bf", "0", "-pix_fmt", "yuv420p"])
    .args([
        "-g",
        &spec.gop.to_string(),
        "-keyint_min",
        &spec.gop.to_string(),
    ])
    .args(["-c:a", "aac", "-b:a", "64k"])
    .args(["-ar", &spec.sample_rate.to_string()])
    .args(["-ac", &spec.channels.to_string()])
    .args(["-f", "flv", "-y"])
    .arg(&file);
    let log = dir.join("ffmpeg.log");
    let mut child = spawn_logged(&mut cmd, &log);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    if status.is_none() {
        kill_tree(&mut child);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "ffmpeg could not encode the clip {spec:?} ({status:?}):\n{}",
        tail(&log, 20)
    );
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let tags = parse_flv(&bytes).unwrap_or_else(|e| panic!("ffmpeg's FLV for {spec:?}: {e}"));
    Clip { spec, tags }
}

/// Splits an FLV file (header, then tags each followed by its 4-byte back pointer) into
/// tags. Stops with an error at the first tag that runs past the end.
pub fn parse_flv(bytes: &[u8]) -> Result<Vec<FlvTag>, String> {
    if bytes.get(..3) != Some(b"FLV") {
        return Err("not an FLV file".to_string());
    }
    let header_len = bytes
        .get(5..9)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("FLV header truncated")?;
    let mut pos = header_len + 4;
    let mut tags = Vec::new();
    while pos < bytes.len() {
        let h = bytes
            .get(pos..pos + 11)
            .ok_or_else(|| format!("tag header truncated at byte {pos}"))?;
        let kind = h[0] & 0x1f;
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let timestamp = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        let body = bytes
            .get(pos + 11..pos + 11 + size)
            .ok_or_else(|| format!("tag body truncated at byte {pos}"))?;
        tags.push(FlvTag {
            kind,
            timestamp,
            body: body.to_vec(),
        });
        pos += 11 + size + 4;
    }
    Ok(tags)
}

/// The first SPS and PPS of an FLV AVC sequence header body (5-byte video tag header, then
/// the `AVCDecoderConfigurationRecord`).
fn parse_first_sps_pps(body: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let record = body.get(5..)?;
    let mut pos = 5usize; // version, profile, compatibility, level, length size
    let sps_count = record.get(pos)? & 0x1f;
    pos += 1;
    let mut first_sps = None;
    for _ in 0..sps_count {
        let len = usize::from(u16::from_be_bytes([
            *record.get(pos)?,
            *record.get(pos + 1)?,
        ]));
        let nal = record.get(pos + 2..pos + 2 + len)?;
        first_sps.get_or_insert_with(|| nal.to_vec());
        pos += 2 + len;
    }
    let pps_count = *record.get(pos)?;
    pos += 1;
    let mut first_pps = None;
    for _ in 0..pps_count {
        let len = usize::from(u16::from_be_bytes([
            *record.get(pos)?,
            *record.get(pos + 1)?,
        ]));
        let nal = record.get(pos + 2..pos + 2 + len)?;
        first_pps.get_or_insert_with(|| nal.to_vec());
        pos += 2 + len;
    }
    Some((first_sps?, first_pps?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_and_rejects_truncation() {
        let mut file = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        let body = [0x17u8, 0x00, 0, 0, 0];
        file.extend_from_slice(&[9, 0, 0, 5, 0x00, 0x01, 0x02, 0x00, 0, 0, 0]);
        file.extend_from_slice(&body);
        file.extend_from_slice(&16u32.to_be_bytes());
        let tags = parse_flv(&file).expect("one tag");
        assert_eq!(
            tags,
            vec![FlvTag {
                kind: 9,
                timestamp: 0x0102,
                body: body.to_vec()
            }]
        );
        assert!(tags[0].is_sequence_header());
        assert!(parse_flv(&file[..file.len() - 6]).is_err());
        assert!(parse_flv(b"GIF89a").is_err());
    }

    #[test]
    fn finds_the_first_sps_and_pps() {
        let body = [
            0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0x42, 1, 0, 1, 0x68,
        ];
        assert_eq!(
            parse_first_sps_pps(&body),
            Some((vec![0x67, 0x42], vec![0x68]))
        );
        assert_eq!(parse_first_sps_pps(&body[..body.len() - 1]), None);
    }
}
